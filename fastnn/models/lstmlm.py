"""LSTM language model: the RNN LM (fastnn.models.rnnlm) with an LSTM recurrence (fastnn.nn.LSTM), one layer or a
stack of them (the deep RNNs of the CS224d lecture).

    (h^l_t, c^l_t) = LSTM_l(h^{l-1}_t, (h^l_{t-1}, c^l_{t-1})),  l = 1..L,  h^0_t = x_t
    P(w_{t+1} | h^L_t) = softmax or class-factorized softmax of h^L_t

x_t is the embedding of the previous token (a sparse Param); each layer's recurrence runs through
kernels.lstm_forward / lstm_backward over the whole sequence of the layer below; the output is the full softmax or,
with `classes` > 0, Mikolov et al. (2011)'s class-factorized layer (`nn.ClassSoftmaxOutput`), as the Elman RNN
LM's.  Dropout, when on, is applied to the non-recurrent connections only (Zaremba et al. 2014): the embeddings,
between layers, and below the output.  Training uses the same truncated-BPTT batches (`rnnlm.BPTTBatches`): B
parallel streams, `block` predicted tokens per update, `bptt` extra steps back, and every layer's state (h, c)
carried from one segment to the next (reset at each epoch start).  Evaluation runs one stream through the whole
text from a zero state with </s> as the first input, so `token_logprobs(stream)[i]` lines up with the other language
models' (fastnn.models.mixture).
"""
import numpy as np

from fastnn import init as _init
from fastnn import nn
from fastnn._validation import check_int
from fastnn.models.neural_lm import RecurrentLM
from fastnn.models.rnnlm import BPTTBatches

__all__ = ["LSTMLM", "gradcheck_cases"]


class LSTMLM(RecurrentLM):
    """LSTM language model.

    Parameters
    ----------
    vocab_size : |V|.
    hidden : K, LSTM units (of every layer).  embed : E, the input embedding size (None: K).
    layers : L, stacked LSTM layers (1: the single-layer model).
    classes : 0 for the full softmax, else the number of frequency classes of the factorized output (needs `counts`,
        or an explicit `word_class`).
    forget_bias : initial bias of the forget gate (nn.LSTM).
    dropout : dropout on the embeddings, between layers and on the hidden layer below the output (Zaremba et al.
        2014; 0 = none).
    clip : element-wise clip of the back-propagated error at the gates' pre-activations (nn.LSTM; 0 = none).
    init_scale : the embeddings start as U(-init_scale, init_scale).
    eos_id : the </s> id (input before the first token).
    counts : word counts (output bias init; classes).  words : the vocabulary's words, kept for the CLI.

    The settings have no defaults here: their one home is fastnn.recipes.lm.LSTMConfig, and
    `recipes.lm.build_model(LSTMConfig(...), vocab_size)` makes the model a Config describes.

    Layer 1 is `lstm` (lstm.W_ih, ...), layer l > 1 `lstm<l>` (lstm2.W_ih, ...): a one-layer model has the
    parameters, model file and carried state it had before deep LSTMs.  `state` is None or the flat tuple
    (h_1, c_1, ..., h_L, c_L), each (B, K): (h, c) for one layer.
    """

    def __init__(self, vocab_size, *, hidden, embed, classes, forget_bias, dropout, clip, init_scale, layers,
                 word_class=None, class_method="sqrt", eos_id=1, rng=0, dtype=np.float32, counts=None, words=None):
        where = "LSTMLM"
        counts = self._check_fields(where, vocab_size=vocab_size, dropout=dropout, eos_id=eos_id,
                                    init_scale=init_scale, dtype=dtype, words=words, counts=counts, classes=classes,
                                    word_class=word_class, class_method=class_method)
        self._check_sizes(where, hidden, embed)
        self.layers = check_int(layers, "layers", where)
        rng = _init.as_rng(rng, where)
        self.emb = nn.Embedding(self.vocab_size, self.embed, rng=rng, dtype=dtype, scale=self.init_scale)
        self.lstm = nn.LSTM(self.embed, self.hidden, rng=rng, dtype=dtype, forget_bias=forget_bias, clip=clip)
        for l in range(2, self.layers + 1):                 # (drawn before the head: one layer draws as before)
            setattr(self, f"lstm{l}", nn.LSTM(self.hidden, self.hidden, rng=rng, dtype=dtype,
                                              forget_bias=forget_bias, clip=clip))
        self.forget_bias, self.clip = self.lstm.forget_bias, self.lstm.clip
        self._head(self.hidden, counts, rng)
        self.state = None              # (h_1, c_1, ..., h_L, c_L), each (B, K), carried between training batches

    @classmethod
    def from_config(cls, cfg):
        # a model file written before deep LSTMs holds no 'layers': it is a one-layer model
        return super().from_config({"layers": 1, **cfg})

    def _stack(self):
        """The LSTM layers, bottom first."""
        return [self.lstm] + [getattr(self, f"lstm{l}") for l in range(2, self.layers + 1)]

    # -- state ---------------------------------------------------------------------------------------------------
    def extra_state(self):
        """The carried state (for checkpoints: a resumed run continues from the same state): h and c, each (B, K)
        for one layer (as before deep LSTMs), (L, B, K) for L layers."""
        if self.state is None:
            return {"h": None, "c": None}
        h, c = np.stack(self.state[0::2]), np.stack(self.state[1::2])
        return {"h": h[0], "c": c[0]} if self.layers == 1 else {"h": h, "c": c}

    def load_extra_state(self, st):
        if st["h"] is None:
            self.state = None
            return
        h, c = (np.array(st[k], dtype=self._dtype) for k in ("h", "c"))
        if self.layers == 1:
            h, c = h[None], c[None]
        if h.ndim != 3 or len(h) != self.layers or h.shape != c.shape:
            raise ValueError(f"LSTMLM.load_extra_state: the carried state must hold (h, c) for each of the "
                             f"{self.layers} layers; got h {np.shape(st['h'])}, c {np.shape(st['c'])}.")
        self.state = tuple(a for pair in zip(h, c) for a in pair)

    # -- graph ---------------------------------------------------------------------------------------------------
    def _recur(self, e, state, state_at):
        # each layer reads the whole sequence of the one below (dropped out between layers: Zaremba et al.'s
        # non-recurrent connections) and carries its own (h, c)
        H, last = e, ()
        for l, layer in enumerate(self._stack()):
            if l and self.drop is not None:
                H = self.drop(H)
            H, hc = layer(H, None if state is None else state[2 * l:2 * l + 2], state_at=state_at)
            last += hc
        return H, last

    def _settings(self):
        # (one layer: no entry, so its model file and repr are those written before deep LSTMs)
        return {"forget_bias": self.forget_bias, **({"layers": self.layers} if self.layers > 1 else {})}


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 LSTM LMs from a carried (h, c) state: full softmax, the class-factorized output, and batches
    with bptt history beyond the predicted block; two stacked layers with each output, and with dropout between
    them (its masks drawn afresh from one seed at every pass)."""
    def case(classes=0, bptt=0, layers=1, dropout=0.0):
        def build(rng):
            V = 13
            counts = rng.integers(1, 50, V)
            m = LSTMLM(V, hidden=4, embed=3, classes=classes, forget_bias=1.0, dropout=dropout, clip=0.0,
                       counts=counts, rng=rng, dtype=np.float64, init_scale=1.0, layers=layers)
            for p in m.parameters().values():
                if not p.sparse:
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            stream = rng.integers(0, V, 40)
            batch = BPTTBatches(stream, batch_size=3, block=4, bptt=bptt, eos_id=1)[2]
            state = tuple(rng.standard_normal((3, 4)) * 0.3 for _ in range(2 * layers))   # (h_1, c_1, ...)

            def loss_fn():
                m.state = tuple(a.copy() for a in state)
                if m.drop is not None:
                    m.drop.rng = np.random.default_rng(7)      # the same masks at every pass
                return m.loss(batch)
            return loss_fn, m.parameters(), {}
        return build
    return [("lstmlm.full", case()), ("lstmlm.classes", case(classes=4)), ("lstmlm.bptt_extra", case(bptt=3)),
            ("lstmlm.classes_bptt", case(classes=3, bptt=2)), ("lstmlm.deep_full", case(layers=2, bptt=2)),
            ("lstmlm.deep_classes", case(classes=4, layers=2)),
            ("lstmlm.deep3_dropout", case(classes=3, layers=3, dropout=0.3))]
