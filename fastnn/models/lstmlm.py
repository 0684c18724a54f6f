"""LSTM language model: the RNN LM (fastnn.models.rnnlm) with an LSTM recurrence (fastnn.nn.LSTM).

    (h_t, c_t) = LSTM(x_t, (h_{t-1}, c_{t-1})),  P(w_{t+1} | h_t) = softmax or class-factorized softmax of h_t

x_t is the embedding of the previous token (a sparse Param); the recurrence runs through kernels.lstm_forward /
lstm_backward; the output is the full softmax or, with `classes` > 0, Mikolov et al. (2011)'s class-factorized
layer (`nn.ClassSoftmaxOutput`), as the Elman RNN LM's.  Training uses the same truncated-BPTT batches
(`rnnlm.BPTTBatches`): B parallel streams, `block` predicted tokens per update, `bptt` extra steps back, and the
state (h, c) carried from one segment to the next (reset at each epoch start).  Evaluation runs one stream through
the whole text from a zero state with </s> as the first input, so `token_logprobs(stream)[i]` lines up with the other
language models' (fastnn.models.mixture).
"""
import numpy as np

from fastnn import init as _init
from fastnn import nn
from fastnn.models.neural_lm import RecurrentLM
from fastnn.models.rnnlm import BPTTBatches

__all__ = ["LSTMLM", "gradcheck_cases"]


class LSTMLM(RecurrentLM):
    """LSTM language model.

    Parameters
    ----------
    vocab_size : |V|.
    hidden : K, LSTM units.  embed : E, the input embedding size (None: K).
    classes : 0 for the full softmax, else the number of frequency classes of the factorized output (needs `counts`,
        or an explicit `word_class`).
    forget_bias : initial bias of the forget gate (nn.LSTM).
    dropout : dropout on the embeddings and on the hidden layer below the output (Zaremba et al. 2014; 0 = none).
    clip : element-wise clip of the back-propagated error at the gates' pre-activations (nn.LSTM; 0 = none).
    init_scale : the embeddings start as U(-init_scale, init_scale).
    eos_id : the </s> id (input before the first token).
    counts : word counts (output bias init; classes).  words : the vocabulary's words, kept for the CLI.

    The settings have no defaults here: their one home is fastnn.recipes.lm.LSTMConfig, and
    `recipes.lm.build_model(LSTMConfig(...), vocab_size)` makes the model a Config describes.
    """

    def __init__(self, vocab_size, *, hidden, embed, classes, forget_bias, dropout, clip, init_scale,
                 word_class=None, class_method="sqrt", eos_id=1, rng=0, dtype=np.float32, counts=None, words=None):
        where = "LSTMLM"
        counts = self._check_fields(where, vocab_size=vocab_size, dropout=dropout, eos_id=eos_id,
                                    init_scale=init_scale, dtype=dtype, words=words, counts=counts, classes=classes,
                                    word_class=word_class, class_method=class_method)
        self._check_sizes(where, hidden, embed)
        rng = _init.as_rng(rng, where)
        self.emb = nn.Embedding(self.vocab_size, self.embed, rng=rng, dtype=dtype, scale=self.init_scale)
        self.lstm = nn.LSTM(self.embed, self.hidden, rng=rng, dtype=dtype, forget_bias=forget_bias, clip=clip)
        self.forget_bias, self.clip = self.lstm.forget_bias, self.lstm.clip
        self._head(self.hidden, counts, rng)
        self.state = None                                   # (h, c), each (B, K), carried between training batches

    # -- state ---------------------------------------------------------------------------------------------------
    def extra_state(self):
        """The carried (h, c) state (for checkpoints: a resumed run continues from the same state)."""
        if self.state is None:
            return {"h": None, "c": None}
        return {"h": self.state[0].copy(), "c": self.state[1].copy()}

    def load_extra_state(self, st):
        self.state = None if st["h"] is None else (np.array(st["h"], dtype=self._dtype),
                                                   np.array(st["c"], dtype=self._dtype))

    # -- graph ---------------------------------------------------------------------------------------------------
    def _recur(self, e, state, state_at):
        return self.lstm(e, state, state_at=state_at)

    def _settings(self):
        return {"forget_bias": self.forget_bias}


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 LSTM LMs from a carried (h, c) state: full softmax, the class-factorized output, and batches
    with bptt history beyond the predicted block."""
    def case(classes=0, bptt=0):
        def build(rng):
            V = 13
            counts = rng.integers(1, 50, V)
            m = LSTMLM(V, hidden=4, embed=3, classes=classes, forget_bias=1.0, dropout=0.0, clip=0.0, counts=counts,
                       rng=rng, dtype=np.float64, init_scale=1.0)
            for p in m.parameters().values():
                if not p.sparse:
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            stream = rng.integers(0, V, 40)
            batch = BPTTBatches(stream, batch_size=3, block=4, bptt=bptt, eos_id=1)[2]
            state = (rng.standard_normal((3, 4)) * 0.3, rng.standard_normal((3, 4)) * 0.3)

            def loss_fn():
                m.state = (state[0].copy(), state[1].copy())
                return m.loss(batch)
            return loss_fn, m.parameters(), {}
        return build
    return [("lstmlm.full", case()), ("lstmlm.classes", case(classes=4)), ("lstmlm.bptt_extra", case(bptt=3)),
            ("lstmlm.classes_bptt", case(classes=3, bptt=2))]
