"""Bengio et al. (2003)'s neural probabilistic language model (NPLM) and the pieces the neural LMs share.

    P(w_t | w_{t-n+1} .. w_{t-1}) = softmax(b + W x + U tanh(d + H x)),  x = [C(w_{t-n+1}); ..; C(w_{t-1})]

C is the |V| x m table of word features (a sparse Param: only the rows of the words in a batch get a gradient and
are updated), H, d the hidden tanh layer, U the output weights and W the optional direct connections from the
features to the output.  The output layer computes [U W] [h; x] + b in ONE fused softmax layer over V (BLAS matrix
products + the softmax-xent kernel), so the direct connections cost one wider matrix, not a second pass.  Weight
decay applies to C, H, U and W, not to the biases (Param.decay).  Bengio's learning rate eps_t = eps_0 / (1 + r t)
is `optim.InverseDecay(eps_0, r)`.

With `classes` > 0 the output is instead Mikolov et al. (2011)'s class-factorized softmax (`nn.ClassSoftmaxOutput`,
the RNN LM's): P(w | x) = P(c(w) | [h; x]) P(w | c(w), [h; x]) over frequency classes, O((h + nx)(C + |c(w)|)) per
token instead of O((h + nx) |V|), which is what makes an epoch on Brown fast (README, "Language models").

Token stream and alignment with the n-gram models: the model predicts every token of a `fastnn.data.lm_stream`
(sentences each followed by </s>, which is predicted).  The context of position i is the n-1 stream tokens before
it, crossing sentence boundaries (the previous sentence's words and its </s> are context; before the first token the
stream is padded with </s>, "a sentence just ended").  `token_logprobs(stream)[i]` therefore lines up with
`KneserNey.token_logprobs(stream)[i]` position by position, which is what the mixture (fastnn.models.mixture) needs.
"""
import numpy as np

from fastnn import init as _init
from fastnn import kernels, nn
from fastnn._validation import check_int, check_scalar
from fastnn.graph import Module
from fastnn.metrics import perplexity as _perplexity
from fastnn.nn import ClassSoftmaxOutput
from fastnn.optim.schedules import InverseDecay  # noqa: F401  (its old home; kept importable)

__all__ = ["NPLM", "contexts", "as_stream", "output_logprobs", "gradcheck_cases"]


# ---- data --------------------------------------------------------------------------------------------------------

def as_stream(stream, vocab_size, where):
    """A 1-d int64 array of ids in [0, vocab_size) (IndexError naming the first bad id)."""
    a = np.asarray(stream)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise TypeError(f"{where}: 'stream' must be a 1-d array of integer word ids; got dtype {a.dtype}, shape "
                        f"{a.shape}. Use fastnn.data.lm_stream(sentences, vocab).")
    a = a.astype(np.int64, copy=False)
    bad = np.flatnonzero((a < 0) | (a >= vocab_size))
    if bad.size:
        raise IndexError(f"{where}: 'stream' must hold ids in [0, {vocab_size}); got {a[bad[0]]} at position "
                         f"{bad[0]}. Encode the text with the model's vocabulary.")
    return a


def contexts(stream, order, pad_id):
    """(N, order-1) int32 array: row i holds the order-1 tokens before stream[i] (oldest first), the stream being
    preceded by pad_id (</s>).  With the targets `stream` itself, these are the NPLM's training examples."""
    stream = np.asarray(stream)
    k = order - 1
    padded = np.concatenate([np.full(k, pad_id, dtype=np.int32), stream.astype(np.int32)])
    if k == 0:
        return np.zeros((len(stream), 0), dtype=np.int32)
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(padded[:-1], k))


# ---- evaluation helper -------------------------------------------------------------------------------------------

def output_logprobs(out, h, targets):
    """log P(targets[i] | h[i]) under the output layer `out`, as float64 (N,), without gradients: a SoftmaxOutput
    through the fused kernel (loss only), a ClassSoftmaxOutput through its own token_logprobs."""
    if isinstance(out, ClassSoftmaxOutput):
        return out.token_logprobs(h, targets)
    work = out.__dict__.setdefault("_eval_work", kernels.OutputLayerWork())
    loss = kernels.output_layer(np.ascontiguousarray(h), out.W.value, out.b.value, targets, want_grad=False,
                                work=work)[0]
    return -loss.astype(np.float64)


# ---- the model ---------------------------------------------------------------------------------------------------

class NPLM(Module):
    """Bengio et al. (2003)'s NPLM.

    Parameters
    ----------
    vocab_size : |V| (predicted and context words).
    order : n: the context is the n-1 previous tokens.
    dim : m, the word feature size (C is |V| x m).
    hidden : h, tanh hidden units (0: no hidden layer, only direct connections).
    direct : direct connections W from the features to the output.
    dropout : dropout on the features and the hidden layer during training (0: none; not in the 2003 paper).
    eos_id : the </s> id that pads the context at the start of a stream.
    rng : seed or Generator for the initialisation: C ~ U(-init_scale, init_scale), Glorot for H, zeros for the
        output weights [U W]; the output bias starts at the log unigram frequencies when `counts` is given.
    words : optional list of the vocabulary's words (kept in the config for the CLI; not used by the maths).
    classes : 0 for the full softmax over V, else the number of frequency classes of a class-factorized output
        (needs `counts`, or an explicit `word_class`; `class_method` as `rnnlm.word_classes`).
    """

    def __init__(self, vocab_size, *, order=5, dim=60, hidden=100, direct=True, dropout=0.0, eos_id=1, rng=0,
                 dtype=np.float32, init_scale=0.1, counts=None, words=None, classes=0, word_class=None,
                 class_method="sqrt"):
        where = "NPLM"
        self.vocab_size = check_int(vocab_size, "vocab_size", where)
        self.order = check_int(order, "order", where, low=2)
        self.dim = check_int(dim, "dim", where)
        self.hidden = check_int(hidden, "hidden", where, low=0)
        self.direct = bool(direct)
        if self.hidden == 0 and not self.direct:
            raise ValueError(f"{where}: 'hidden' must be > 0 when direct=False (the output would see nothing); got 0.")
        self.dropout_p = float(check_scalar(dropout, "dropout", where, low=0, high=1))
        if self.dropout_p >= 1:
            raise ValueError(f"{where}: 'dropout' must be < 1; got {dropout}.")
        self.eos_id = check_int(eos_id, "eos_id", where, low=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"{where}: 'eos_id' must be in [0, {self.vocab_size}); got {eos_id}.")
        self.init_scale = float(init_scale)
        self.words = None if words is None else [str(w) for w in words]
        if self.words is not None and len(self.words) != self.vocab_size:
            raise ValueError(f"{where}: 'words' must have {self.vocab_size} entries; got {len(self.words)}.")
        rng = _init.as_rng(rng, where)
        self._dtype = np.dtype(dtype)
        nx = (self.order - 1) * self.dim
        self.C = nn.Embedding(self.vocab_size, self.dim, rng=rng, dtype=dtype, scale=self.init_scale)
        self.H = nn.Linear(nx, self.hidden, rng=rng, dtype=dtype) if self.hidden else None
        n_out_in = self.hidden + (nx if self.direct else 0)
        c = None if counts is None else np.asarray(counts, dtype=np.float64)
        if c is not None and c.shape != (self.vocab_size,):
            raise ValueError(f"{where}: 'counts' must have shape ({self.vocab_size},); got {c.shape}.")
        self.classes = check_int(classes, "classes", where, low=0)
        self.class_method = class_method
        if self.classes:
            if word_class is None:
                if c is None:
                    raise ValueError(f"{where}: classes > 0 needs 'counts' (or 'word_class') to form frequency "
                                     "classes.")
                from fastnn.models.rnnlm import word_classes      # rnnlm imports this module: import late
                word_class = word_classes(c, self.classes, method=class_method)
            self.word_class = [int(k) for k in np.asarray(word_class)]
            if len(self.word_class) != self.vocab_size:
                raise ValueError(f"{where}: 'word_class' must have {self.vocab_size} entries; got "
                                 f"{len(self.word_class)}.")
            # biases at the log class prior and log P(w | class), as the full softmax's at the log unigram
            self.out = ClassSoftmaxOutput(n_out_in, np.asarray(self.word_class), rng=rng, dtype=dtype, counts=c)
            self.out.Wc.value[...] = 0
            self.out.W.value[...] = 0      # as Bengio: output weights from zero
        else:
            self.word_class = None
            self.out = nn.SoftmaxOutput(n_out_in, self.vocab_size, rng=rng, dtype=dtype)
            self.out.W.value[...] = 0      # as Bengio: output weights from zero, the bias carries the unigram
            if c is not None:
                self.out.b.value[...] = _init.output_bias_softmax(np.maximum(c, 0.5), dtype=dtype)
        self.drop = nn.Dropout(self.dropout_p, rng=rng) if self.dropout_p else None

    # -- graph -------------------------------------------------------------------------------------------------
    def _features(self, ctx):
        x = self.C(ctx)                                         # (B, (n-1) m)
        if self.drop is not None:
            x = self.drop(x)
        parts = []
        if self.H is not None:
            h = nn.tanh(self.H(x))
            if self.drop is not None:
                h = self.drop(h)
            parts.append(h)
        if self.direct:
            parts.append(x)
        return parts[0] if len(parts) == 1 else nn.concat(parts)

    def _check_batch(self, batch, where):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"{where}: 'batch' must be a (contexts, targets) pair; got {type(batch).__name__}.")
        ctx, t = np.asarray(batch[0]), np.asarray(batch[1])
        if ctx.ndim != 2 or ctx.shape[1] != self.order - 1 or t.shape != (ctx.shape[0],):
            raise ValueError(f"{where}: 'contexts' must have shape (B, {self.order - 1}) and 'targets' (B,); got "
                             f"{ctx.shape} and {t.shape}.")
        return ctx, t

    def loss(self, batch):
        """Mean cross-entropy over a batch (contexts (B, n-1), targets (B,)): a scalar Node."""
        ctx, t = self._check_batch(batch, "NPLM.loss")
        if len(t) == 0:
            raise ValueError("NPLM.loss: the batch must hold at least one example; got 0.")
        return self.out.loss(self._features(ctx), t)

    # -- evaluation --------------------------------------------------------------------------------------------
    def token_logprobs(self, stream, *, batch_size=512):
        """Natural-log probability of every token of `stream` (float64, one per position; see the module
        docstring for the contexts)."""
        where = "NPLM.token_logprobs"
        s = as_stream(stream, self.vocab_size, where)
        ctx = contexts(s, self.order, self.eos_id)
        with self.evaluating():
            out = np.empty(len(s), dtype=np.float64)
            for i in range(0, len(s), batch_size):
                feats = self._features(ctx[i:i + batch_size]).value
                t = s[i:i + batch_size]
                out[i:i + batch_size] = output_logprobs(self.out, feats, t)
        return out

    def perplexity(self, stream):
        """exp(mean NLL) over every token of `stream` (</s> and <unk> included)."""
        lp = self.token_logprobs(stream)
        return _perplexity(float(-lp.sum()), lp.size)

    def predict(self, ctx):
        """log P(. | context) for contexts (B, n-1): a (B, |V|) float array."""
        with self.evaluating():
            return self.out.log_probs(self._features(np.asarray(ctx)).value)

    # -- protocol ----------------------------------------------------------------------------------------------
    def config(self):
        return {"vocab_size": self.vocab_size, "order": self.order, "dim": self.dim, "hidden": self.hidden,
                "direct": self.direct, "dropout": self.dropout_p, "eos_id": self.eos_id,
                "dtype": self._dtype.name, "init_scale": self.init_scale, "words": self.words,
                "classes": self.classes, "word_class": self.word_class, "class_method": self.class_method}

    def __repr__(self):
        return (f"NPLM(vocab_size={self.vocab_size}, order={self.order}, dim={self.dim}, hidden={self.hidden}, "
                f"direct={self.direct}, dropout={self.dropout_p}, "
                f"{f'{self.classes} classes' if self.classes else 'full softmax'}, dtype={self._dtype.name})")


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 NPLMs: with and without direct connections, without a hidden layer, class-factorized output."""
    def case(**kw):
        def build(rng):
            m = NPLM(11, order=4, dim=3, eos_id=1, rng=rng, dtype=np.float64, init_scale=1.0,
                     counts=rng.integers(1, 50, 11), **kw)
            for p in m.parameters().values():
                if not p.sparse:
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            ctx = rng.integers(0, 11, (6, 3))
            ctx[1] = ctx[0]                                       # repeated rows in one batch
            t = rng.integers(0, 11, 6)
            return (lambda: m.loss((ctx, t))), m.parameters(), {}
        return build
    return [("nplm.direct", case(hidden=5, direct=True)), ("nplm.no_direct", case(hidden=5, direct=False)),
            ("nplm.direct_only", case(hidden=0, direct=True)),
            ("nplm.classes", case(hidden=5, direct=False, classes=3)),
            ("nplm.classes_direct", case(hidden=5, direct=True, classes=4))]
