"""Elman recurrent language model (the lecture's RNN LM; Mikolov et al. 2010/2011).

    h_t = f(W_hh h_{t-1} + W_hx x_t + b),  y_t = softmax(W_s h_t + b_s),  f in {sigmoid, tanh, relu}

x_t is the previous token; W_hx x_t is an embedding lookup (a sparse Param, E = `embed` columns) followed by the
RNN layer's input matrix (fastnn.nn.RNN, through kernels.rnn_forward / rnn_backward).  relu with init="identity"
is Le et al. (2015)'s IRNN.  The output is a full softmax over V (the fused output kernel) or, with `classes` > 0,
Mikolov et al. (2011)'s class-factorized layer P(w | h) = P(c(w) | h) P(w | c(w), h) (`ClassSoftmaxOutput`), whose
cost per token is O(H (C + |c(w)|)) instead of O(H V).

Training (`BPTTBatches`): the token stream is cut into B parallel streams; each batch predicts the next `block`
tokens of every stream and back-propagates through them plus `bptt` earlier steps (Mikolov's -bptt / -bptt-block:
a token at position j of the block gets j + bptt steps of BPTT); the hidden state is carried from batch to batch
(reset at each epoch start) and `clip` clips the back-propagated error element-wise.  Evaluation runs one stream
through the whole text, carrying the state across sentences.

With the class-factorized output and no dropout, training runs each batch through one fused kernel
(kernels.rnnlm_segment: forward, BPTT and every gradient in one call, no per-step graph); `fused=False` keeps the
graph of layers, the reference it is gradient-checked against.

Alignment with the n-gram models: the input before stream[0] is </s> ("a sentence just ended"), every token of the
stream is predicted (</s> included), so `token_logprobs(stream)[i]` lines up with the n-gram's (fastnn.models.mixture).
"""
import numpy as np

from fastnn import init as _init
from fastnn import kernels, nn
from fastnn._validation import check_int, check_scalar
from fastnn.graph import Module, Node, RowGrad
from fastnn.metrics import perplexity as _perplexity
from fastnn.models.nplm import as_stream, output_logprobs
from fastnn.nn import ClassSoftmaxOutput

__all__ = ["RNNLM", "ClassSoftmaxOutput", "BPTTBatches", "word_classes", "check_lm_fields", "gradcheck_cases"]


# ---- frequency classes -------------------------------------------------------------------------------------------

def word_classes(counts, n_classes, *, method="sqrt"):
    """Class of every word (int64 (V,), classes 0..C-1 all non-empty, C <= n_classes) by frequency binning.

    Words are sorted by decreasing count (ties by id) and cut into consecutive bins of equal mass of p(w)
    ("uniform", Mikolov et al. 2011) or of sqrt(p(w)) ("sqrt", the RNNLM toolkit's default, which gives frequent
    words smaller classes less aggressively and balances the two softmaxes better).
    """
    where = "word_classes"
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"{where}: 'counts' must be a non-empty 1-d array of non-negative counts; got shape "
                         f"{c.shape}.")
    n_classes = check_int(n_classes, "n_classes", where)
    if method not in ("sqrt", "uniform"):
        raise ValueError(f"{where}: 'method' must be 'sqrt' or 'uniform'; got {method!r}.")
    order = np.lexsort((np.arange(c.size), -c))
    p = np.maximum(c[order], 0.5) / max(c.sum(), 1.0)      # unseen words still get a tiny mass
    m = np.sqrt(p) if method == "sqrt" else p
    cum = np.cumsum(m) / m.sum()
    # word i (in frequency order) goes to bin floor(C * mass before it), so each bin holds ~1/C of the mass
    before = np.concatenate([[0.0], cum[:-1]])
    cls = np.minimum((before * n_classes).astype(np.int64), n_classes - 1)
    _, cls = np.unique(cls, return_inverse=True)            # drop empty bins: classes 0..C'-1
    out = np.empty(c.size, dtype=np.int64)
    out[order] = cls.ravel()
    return out


# ---- batches -----------------------------------------------------------------------------------------------------

class BPTTBatches:
    """Truncated-BPTT batches over B parallel streams (for `Trainer`).

    The stream is cut into B contiguous streams of n = len // B tokens (the rest is dropped).  Batch i predicts the
    tokens at positions [s, s + block) of every stream (s = i * block) from inputs reaching back `bptt` more steps:
    a batch is (x (L, B) inputs, y (k, B) targets, reset, carry) with L = k + min(bptt, s); the model starts from its
    carried state (zeros when reset, at the start of each epoch) and keeps the state after input row `carry` (-1:
    the starting state) for the next batch.  Inputs are the previous tokens, with </s> before the first one.
    """

    def __init__(self, stream, *, batch_size, block, bptt=0, eos_id):
        where = "BPTTBatches"
        s = np.asarray(stream)
        self.batch_size = check_int(batch_size, "batch_size", where)
        self.block = check_int(block, "block", where)
        self.bptt = check_int(bptt, "bptt", where, low=0)
        n = len(s) // self.batch_size
        if n < 1:
            raise ValueError(f"{where}: the stream must hold at least batch_size={self.batch_size} tokens; got "
                             f"{len(s)}.")
        inp = np.concatenate([[eos_id], s[:-1]]).astype(np.int64)
        self.x = np.ascontiguousarray(inp[:n * self.batch_size].reshape(self.batch_size, n).T)
        self.y = np.ascontiguousarray(s[:n * self.batch_size].astype(np.int64).reshape(self.batch_size, n).T)
        self.n = n

    def __len__(self):
        return -(-self.n // self.block)

    def epoch(self, rng):
        return self

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"BPTTBatches: batch index must be in [0, {len(self)}); got {i}.")
        s = i * self.block
        e = min(s + self.block, self.n)
        w0 = max(0, s - self.bptt)
        nxt = max(0, e - self.bptt)                    # where the next batch's window starts
        return self.x[w0:e], self.y[s:e], i == 0, nxt - 1 - w0

    def n_examples(self, batch):
        return batch[1].size

    def __repr__(self):
        return f"BPTTBatches({self.n} x {self.batch_size} tokens, block={self.block}, bptt={self.bptt})"


# ---- the model ---------------------------------------------------------------------------------------------------

def check_lm_fields(model, where, *, vocab_size, hidden, embed, dropout, eos_id, init_scale, dtype, words, counts,
                    classes, word_class, class_method):
    """Check and set the fields every word-level LM here shares (RNNLM, LSTMLM): sizes, dropout, </s>, dtype, the
    vocabulary's words, and the class-factorized output's word classes (formed from `counts` when not given).
    Returns `counts` as float64 (or None) for the output bias init."""
    model.vocab_size = check_int(vocab_size, "vocab_size", where)
    model.hidden = check_int(hidden, "hidden", where)
    model.embed = model.hidden if embed is None else check_int(embed, "embed", where)
    model.dropout_p = float(check_scalar(dropout, "dropout", where, low=0, high=1))
    if model.dropout_p >= 1:
        raise ValueError(f"{where}: 'dropout' must be < 1; got {dropout}.")
    model.eos_id = check_int(eos_id, "eos_id", where, low=0)
    if model.eos_id >= model.vocab_size:
        raise ValueError(f"{where}: 'eos_id' must be in [0, {model.vocab_size}); got {eos_id}.")
    model.init_scale = float(init_scale)
    model._dtype = np.dtype(dtype)
    model.words = None if words is None else [str(w) for w in words]
    if model.words is not None and len(model.words) != model.vocab_size:
        raise ValueError(f"{where}: 'words' must have {model.vocab_size} entries; got {len(model.words)}.")
    if counts is not None:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (model.vocab_size,):
            raise ValueError(f"{where}: 'counts' must have shape ({model.vocab_size},); got {counts.shape}.")
    model.classes = check_int(classes, "classes", where, low=0)
    model.class_method = class_method
    if model.classes and word_class is None:
        if counts is None:
            raise ValueError(f"{where}: classes > 0 needs 'counts' (or 'word_class') to form frequency classes.")
        word_class = word_classes(counts, model.classes, method=class_method)
    model.word_class = None if not model.classes else [int(c) for c in np.asarray(word_class)]
    if model.word_class is not None and len(model.word_class) != model.vocab_size:
        raise ValueError(f"{where}: 'word_class' must have {model.vocab_size} entries; got {len(model.word_class)}.")
    return counts


class RNNLM(Module):
    """Elman RNN language model.

    Parameters
    ----------
    vocab_size : |V|.
    hidden : H, recurrent units.  embed : E, the input embedding size (default H).
    activation : "tanh", "sigmoid" or "relu"; init : "glorot" or "identity" (W_hh = I: the IRNN, with relu).
    classes : 0 for the full softmax, else the number of frequency classes of the factorized output (needs
        `counts`, or an explicit `word_class`).
    dropout : dropout on the embeddings and on the hidden layer below the output (Zaremba et al. 2014; 0 = none).
    clip : element-wise clip of the back-propagated error inside BPTT (Mikolov's trick; 0 = none).
    eos_id : the </s> id (input before the first token).
    counts : word counts (output bias init; classes).  words : the vocabulary's words, kept for the CLI.
    fused : train the class-factorized model without dropout through kernels.rnnlm_segment (one call per batch:
        forward, BPTT and every gradient; no per-step graph).  False keeps the graph of layers (the reference the
        fused path is gradient-checked against).  Not part of the model file: it changes speed, not the model.
    """

    def __init__(self, vocab_size, *, hidden=256, embed=None, activation="tanh", init="glorot", classes=0,
                 word_class=None, class_method="sqrt", dropout=0.0, clip=0.0, eos_id=1, rng=0, dtype=np.float32,
                 init_scale=0.1, counts=None, words=None, fused=True):
        where = "RNNLM"
        self.fused = bool(fused)
        counts = check_lm_fields(self, where, vocab_size=vocab_size, hidden=hidden, embed=embed, dropout=dropout,
                                 eos_id=eos_id, init_scale=init_scale, dtype=dtype, words=words, counts=counts,
                                 classes=classes, word_class=word_class, class_method=class_method)
        self.activation, self.init = activation, init
        self.clip = float(check_scalar(clip, "clip", where, low=0))
        rng = _init.as_rng(rng, where)
        self.emb = nn.Embedding(self.vocab_size, self.embed, rng=rng, dtype=dtype, scale=self.init_scale)
        self.rnn = nn.RNN(self.embed, self.hidden, rng=rng, activation=activation, init=init, dtype=dtype,
                          clip=self.clip)
        if self.classes:
            self.out = ClassSoftmaxOutput(self.hidden, np.asarray(self.word_class), rng=rng, dtype=dtype,
                                          counts=counts)
        else:
            self.out = nn.SoftmaxOutput(self.hidden, self.vocab_size, rng=rng, dtype=dtype,
                                        class_counts=None if counts is None else np.maximum(counts, 0.5))
        self.drop = nn.Dropout(self.dropout_p, rng=rng) if self.dropout_p else None
        self.state = None                                   # (B, H) carried between training batches

    # -- state ---------------------------------------------------------------------------------------------------
    def reset_state(self):
        self.state = None

    def extra_state(self):
        """The carried hidden state (for checkpoints: a resumed run continues from the same state)."""
        return {"state": None if self.state is None else self.state.copy()}

    def load_extra_state(self, st):
        self.state = None if st["state"] is None else np.array(st["state"], dtype=self._dtype)

    # -- graph ---------------------------------------------------------------------------------------------------
    def _hidden(self, x, h0):
        e = self.emb(x, concat=False)                       # (L, B, E)
        if self.drop is not None:
            e = self.drop(e)
        return self.rnn(e, h0)

    def _out_loss(self, H, y):
        if self.drop is not None:
            H = self.drop(H)
        return self.out.loss(H, y)

    def loss(self, batch):
        """Mean cross-entropy of a BPTTBatches batch (x (L, B), y (k, B), reset, carry); updates the carried state."""
        x, y, reset, carry = batch
        x, y = np.asarray(x), np.asarray(y)
        L, B = x.shape
        k = y.shape[0]
        if y.shape != (k, B) or not 0 < k <= L or not -1 <= carry < L:
            raise ValueError(f"RNNLM.loss: the batch must be (x (L, B), y (k, B), reset, carry) with k <= L; got "
                             f"{x.shape}, {y.shape}, carry {carry}.")
        h0 = None if (reset or self.state is None or self.state.shape[0] != B) else self.state
        if self.fused and self.classes and self.training and self.drop is None:
            return self._fused_loss(x, y, h0, carry)
        H, _ = self._hidden(x, h0)
        self.state = (np.zeros((B, self.hidden), self._dtype) if h0 is None else h0.copy()) if carry < 0 \
            else H.value[carry].copy()
        return self._out_loss(nn.narrow(H, 0, H.value.shape[0] - k, k), y)

    def _fused_loss(self, x, y, h0, carry):
        """loss() in one kernel call: the gradients are computed with the loss and handed over by backward()."""
        out, rnn = self.out, self.rnn
        if h0 is None:
            h0 = np.zeros((x.shape[1], self.hidden), self._dtype)
        loss, Hs, g = kernels.rnnlm_segment(
            x, y, h0, self.emb.W.value, rnn.W_ih.value, rnn.W_hh.value, rnn.b.value, out.Wc.value, out.bc.value,
            out.W.value, out.b.value.reshape(-1), out.word_class, out.pos, out.start, activation=self.activation,
            clip=self.clip)
        self.state = Hs[carry + 1].copy()
        dense = ((rnn.W_ih, "W_ih"), (rnn.W_hh, "W_hh"), (rnn.b, "b"), (out.Wc, "Wc"), (out.bc, "bc"))
        sparse = ((self.emb.W, "emb"), (out.W, "W"), (out.b, "bo"))

        def backward(gr):
            c = self._dtype.type(gr)
            for p, name in dense:
                v = g[name] if c == 1 else g[name] * c
                p.add_grad(v, owned=True)
            for p, name in sparse:
                rows, v = g[name]
                v = (v if c == 1 else v * c).reshape(len(rows), -1)
                if p.trainable:
                    rg = RowGrad(rows, v, p.shape[0])
                    p.grad = rg if p.grad is None else p.grad + rg

        return Node(np.asarray(loss, dtype=self._dtype).reshape(()), (), backward, "rnnlm_segment",
                    requires_grad=True)

    # -- evaluation ----------------------------------------------------------------------------------------------
    def token_logprobs(self, stream, *, chunk=512):
        """log P(stream[i] | everything before it) for every token (float64), one stream, state carried across
        sentences from a zero state and the input </s> before stream[0]."""
        s = as_stream(stream, self.vocab_size, "RNNLM.token_logprobs")
        inp = np.concatenate([[self.eos_id], s[:-1]]) if len(s) else s
        out = np.empty(len(s), dtype=np.float64)
        with self.evaluating():
            h = np.zeros((1, self.hidden), self._dtype)
            for i in range(0, len(s), chunk):
                H, h = self._hidden(inp[i:i + chunk, None], h)
                hv = H.value.reshape(-1, self.hidden)
                t = s[i:i + chunk]
                out[i:i + chunk] = output_logprobs(self.out, hv, t)
        return out

    def perplexity(self, stream):
        lp = self.token_logprobs(stream)
        return _perplexity(float(-lp.sum()), lp.size)

    # -- protocol ------------------------------------------------------------------------------------------------
    def config(self):
        return {"vocab_size": self.vocab_size, "hidden": self.hidden, "embed": self.embed,
                "activation": self.activation, "init": self.init, "classes": self.classes,
                "word_class": self.word_class, "class_method": self.class_method, "dropout": self.dropout_p,
                "clip": self.clip, "eos_id": self.eos_id, "dtype": self._dtype.name, "init_scale": self.init_scale,
                "words": self.words}

    def __repr__(self):
        out = f"{self.classes} classes" if self.classes else "full softmax"
        return (f"RNNLM(vocab_size={self.vocab_size}, hidden={self.hidden}, embed={self.embed}, "
                f"activation={self.activation!r}, init={self.init!r}, {out}, dropout={self.dropout_p}, "
                f"clip={self.clip}, dtype={self._dtype.name})")


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 RNN LMs: full softmax (tanh, sigmoid, IRNN relu), the class-factorized output, and a batch with
    bptt history beyond the predicted block and a carried state."""
    def case(activation="tanh", init="glorot", classes=0, bptt=0):
        def build(rng):
            V = 13
            counts = rng.integers(1, 50, V)
            m = RNNLM(V, hidden=4, embed=3, activation=activation, init=init, classes=classes, counts=counts,
                      rng=rng, dtype=np.float64, init_scale=1.0)
            for name, p in m.parameters().items():
                if not p.sparse and name != "rnn.W_hh":
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            if activation == "relu":
                m.rnn.b.value[...] = 0.3 + 0.2 * rng.random(4)          # away from the kink
            stream = rng.integers(0, V, 40)
            data = BPTTBatches(stream, batch_size=3, block=4, bptt=bptt, eos_id=1)
            batch = data[2]
            state = rng.standard_normal((3, 4)) * 0.3

            def loss_fn():
                m.state = state.copy()
                return m.loss(batch)
            return loss_fn, m.parameters(), {}
        return build
    return [("rnnlm.tanh", case()), ("rnnlm.sigmoid", case("sigmoid")), ("rnnlm.irnn", case("relu", "identity")),
            ("rnnlm.classes", case(classes=4)), ("rnnlm.bptt_extra", case(bptt=3)),
            ("rnnlm.classes_bptt", case(classes=3, bptt=2))]
