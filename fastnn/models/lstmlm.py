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
from fastnn.graph import Module
from fastnn.metrics import perplexity as _perplexity
from fastnn.models.nplm import as_stream, output_logprobs
from fastnn.models.rnnlm import BPTTBatches, check_lm_fields
from fastnn.nn import ClassSoftmaxOutput

__all__ = ["LSTMLM", "gradcheck_cases"]


class LSTMLM(Module):
    """LSTM language model.

    Parameters
    ----------
    vocab_size : |V|.
    hidden : K, LSTM units.  embed : E, the input embedding size (default K).
    classes : 0 for the full softmax, else the number of frequency classes of the factorized output (needs `counts`,
        or an explicit `word_class`).
    forget_bias : initial bias of the forget gate (nn.LSTM).
    dropout : dropout on the embeddings and on the hidden layer below the output (Zaremba et al. 2014; 0 = none).
    clip : element-wise clip of the back-propagated error at the gates' pre-activations (nn.LSTM; 0 = none).
    eos_id : the </s> id (input before the first token).
    counts : word counts (output bias init; classes).  words : the vocabulary's words, kept for the CLI.
    """

    def __init__(self, vocab_size, *, hidden=100, embed=None, classes=0, word_class=None, class_method="sqrt",
                 forget_bias=1.0, dropout=0.0, clip=0.0, eos_id=1, rng=0, dtype=np.float32, init_scale=0.1,
                 counts=None, words=None):
        where = "LSTMLM"
        counts = check_lm_fields(self, where, vocab_size=vocab_size, hidden=hidden, embed=embed, dropout=dropout,
                                 eos_id=eos_id, init_scale=init_scale, dtype=dtype, words=words, counts=counts,
                                 classes=classes, word_class=word_class, class_method=class_method)
        rng = _init.as_rng(rng, where)
        self.emb = nn.Embedding(self.vocab_size, self.embed, rng=rng, dtype=dtype, scale=self.init_scale)
        self.lstm = nn.LSTM(self.embed, self.hidden, rng=rng, dtype=dtype, forget_bias=forget_bias, clip=clip)
        self.forget_bias, self.clip = self.lstm.forget_bias, self.lstm.clip
        if self.classes:
            self.out = ClassSoftmaxOutput(self.hidden, np.asarray(self.word_class), rng=rng, dtype=dtype,
                                          counts=counts)
        else:
            self.out = nn.SoftmaxOutput(self.hidden, self.vocab_size, rng=rng, dtype=dtype,
                                        class_counts=None if counts is None else np.maximum(counts, 0.5))
        self.drop = nn.Dropout(self.dropout_p, rng=rng) if self.dropout_p else None
        self.state = None                                   # (h, c), each (B, K), carried between training batches

    # -- state ---------------------------------------------------------------------------------------------------
    def reset_state(self):
        self.state = None

    def extra_state(self):
        """The carried (h, c) state (for checkpoints: a resumed run continues from the same state)."""
        if self.state is None:
            return {"h": None, "c": None}
        return {"h": self.state[0].copy(), "c": self.state[1].copy()}

    def load_extra_state(self, st):
        self.state = None if st["h"] is None else (np.array(st["h"], dtype=self._dtype),
                                                   np.array(st["c"], dtype=self._dtype))

    # -- graph ---------------------------------------------------------------------------------------------------
    def _hidden(self, x, state, state_at=None):
        e = self.emb(x, concat=False)                       # (L, B, E)
        if self.drop is not None:
            e = self.drop(e)
        return self.lstm(e, state, state_at=state_at)

    def loss(self, batch):
        """Mean cross-entropy of a BPTTBatches batch (x (L, B), y (k, B), reset, carry); updates the carried state
        to the state after input row `carry`."""
        x, y, reset, carry = batch
        x, y = np.asarray(x), np.asarray(y)
        L, B = x.shape
        k = y.shape[0]
        if y.shape != (k, B) or not 0 < k <= L or not -1 <= carry < L:
            raise ValueError(f"LSTMLM.loss: the batch must be (x (L, B), y (k, B), reset, carry) with k <= L; got "
                             f"{x.shape}, {y.shape}, carry {carry}.")
        fresh = reset or self.state is None or self.state[0].shape[0] != B
        H, self.state = self._hidden(x, None if fresh else self.state, state_at=carry)
        H = nn.narrow(H, 0, L - k, k)
        if self.drop is not None:
            H = self.drop(H)
        return self.out.loss(H, y)

    # -- evaluation ----------------------------------------------------------------------------------------------
    def token_logprobs(self, stream, *, chunk=512):
        """log P(stream[i] | everything before it) for every token (float64), one stream, state carried across
        sentences from a zero state and the input </s> before stream[0]."""
        s = as_stream(stream, self.vocab_size, "LSTMLM.token_logprobs")
        inp = np.concatenate([[self.eos_id], s[:-1]]) if len(s) else s
        out = np.empty(len(s), dtype=np.float64)
        with self.evaluating():
            state = None
            for i in range(0, len(s), chunk):
                H, state = self._hidden(inp[i:i + chunk, None], state)
                hv = H.value.reshape(-1, self.hidden)
                t = s[i:i + chunk]
                out[i:i + chunk] = output_logprobs(self.out, hv, t)
        return out

    def perplexity(self, stream):
        lp = self.token_logprobs(stream)
        return _perplexity(float(-lp.sum()), lp.size)

    # -- protocol ------------------------------------------------------------------------------------------------
    def config(self):
        return {"vocab_size": self.vocab_size, "hidden": self.hidden, "embed": self.embed, "classes": self.classes,
                "word_class": self.word_class, "class_method": self.class_method, "forget_bias": self.forget_bias,
                "dropout": self.dropout_p, "clip": self.clip, "eos_id": self.eos_id, "dtype": self._dtype.name,
                "init_scale": self.init_scale, "words": self.words}

    def __repr__(self):
        out = f"{self.classes} classes" if self.classes else "full softmax"
        return (f"LSTMLM(vocab_size={self.vocab_size}, hidden={self.hidden}, embed={self.embed}, {out}, "
                f"forget_bias={self.forget_bias}, dropout={self.dropout_p}, clip={self.clip}, "
                f"dtype={self._dtype.name})")


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 LSTM LMs from a carried (h, c) state: full softmax, the class-factorized output, and batches
    with bptt history beyond the predicted block."""
    def case(classes=0, bptt=0):
        def build(rng):
            V = 13
            counts = rng.integers(1, 50, V)
            m = LSTMLM(V, hidden=4, embed=3, classes=classes, counts=counts, rng=rng, dtype=np.float64,
                       init_scale=1.0)
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
