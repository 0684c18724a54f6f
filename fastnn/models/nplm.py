"""Bengio et al. (2003)'s neural probabilistic language model (NPLM); what it shares with the recurrent LMs is in
fastnn.models.neural_lm.

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
from fastnn import nn
from fastnn._validation import check_bool, check_index, check_int
from fastnn.data.text import word_ids
from fastnn.models.neural_lm import NeuralLM
from fastnn.optim.schedules import InverseDecay  # noqa: F401  (its old home; kept importable)

__all__ = ["NPLM", "contexts", "gradcheck_cases"]


# ---- data --------------------------------------------------------------------------------------------------------

def contexts(stream, order, pad_id):
    """(N, order-1) int32 array: row i holds the order-1 tokens before stream[i] (oldest first), the stream being
    preceded by pad_id (</s>).  With the targets `stream` itself, these are the NPLM's training examples."""
    where = "contexts"
    stream = np.asarray(stream)
    if stream.ndim != 1 or (stream.size and (stream.dtype.kind not in "iu" or stream.min() < 0
                                             or stream.max() > np.iinfo(np.int32).max)):
        # (a float stream was truncated and an id past int32 wrapped around, silently)
        raise ValueError(f"{where}: 'stream' must be a 1-d array of word ids (integers in [0, 2**31)); got dtype "
                         f"{stream.dtype}, shape {stream.shape}. Use fastnn.data.lm_stream(sentences, vocab).")
    k = check_int(order, "order", where) - 1
    pad_id = check_int(pad_id, "pad_id", where, low=0)
    padded = np.concatenate([np.full(k, pad_id, dtype=np.int32), stream.astype(np.int32)])
    if k == 0 or stream.size == 0:                  # (no window to slide over an empty stream)
        return np.zeros((len(stream), k), dtype=np.int32)
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(padded[:-1], k))


# ---- the model ---------------------------------------------------------------------------------------------------

class NPLM(NeuralLM):
    """Bengio et al. (2003)'s NPLM.

    Parameters
    ----------
    vocab_size : |V| (predicted and context words).
    order : n: the context is the n-1 previous tokens.
    dim : m, the word feature size (C is |V| x m).
    hidden : h, tanh hidden units (0: no hidden layer, only direct connections).
    direct : direct connections W from the features to the output.
    classes : 0 for the full softmax over V, else the number of frequency classes of a class-factorized output
        (needs `counts`, or an explicit `word_class`; `class_method` as `neural_lm.word_classes`).
    dropout : dropout on the features and the hidden layer during training (0: none; not in the 2003 paper).
    init_scale : C starts as U(-init_scale, init_scale); H is Glorot, the output weights [U W] zeros, and the output
        bias starts at the log unigram frequencies when `counts` is given.
    eos_id : the </s> id that pads the context at the start of a stream.
    rng : seed or Generator for the initialisation.
    words : optional list of the vocabulary's words (kept in the config for the CLI; not used by the maths).

    The settings have no defaults here: their one home is fastnn.recipes.lm.NPLMConfig, and
    `recipes.lm.build_model(NPLMConfig(...), vocab_size)` makes the model a Config describes.
    """

    def __init__(self, vocab_size, *, order, dim, hidden, direct, classes, dropout, init_scale, eos_id=1, rng=0,
                 dtype=np.float32, counts=None, words=None, word_class=None, class_method="sqrt"):
        where = "NPLM"
        c = self._check_fields(where, vocab_size=vocab_size, dropout=dropout, eos_id=eos_id, init_scale=init_scale,
                               dtype=dtype, words=words, counts=counts, classes=classes, word_class=word_class,
                               class_method=class_method)
        self.order = check_int(order, "order", where, low=2)
        self.dim = check_int(dim, "dim", where)
        self.hidden = check_int(hidden, "hidden", where, low=0)
        self.direct = check_bool(direct, "direct", where)
        if self.hidden == 0 and not self.direct:
            raise ValueError(f"{where}: 'hidden' must be > 0 when direct=False (the output would see nothing); got 0.")
        rng = _init.as_rng(rng, where)
        nx = (self.order - 1) * self.dim
        self.C = nn.Embedding(self.vocab_size, self.dim, rng=rng, dtype=dtype, scale=self.init_scale)
        self.H = nn.Linear(nx, self.hidden, rng=rng, dtype=dtype) if self.hidden else None
        # biases at the log priors (unigram; class prior and P(w | class)), output weights from zero, as Bengio
        self._head(self.hidden + (nx if self.direct else 0), c, rng)
        if self.classes:
            self.out.Wc.value[...] = 0
        self.out.W.value[...] = 0

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
        return self._check_contexts(ctx, where), check_index(t, self.vocab_size, "targets", where)

    def _contexts_array(self, ctx, where):
        """`ctx` as an ndarray: rows of one length (NumPy's "inhomogeneous shape" otherwise), and in a list either all
        word ids or all words (a number among words became the string "2", read as <unk>, silently)."""
        if isinstance(ctx, (list, tuple)):
            rows = [r for r in ctx if isinstance(r, (list, tuple))]
            if rows and len({len(r) for r in rows}) > 1:
                raise ValueError(f"{where}: 'contexts' must have shape (B, {self.order - 1}), the {self.order - 1} "
                                 f"word ids before each predicted word; got rows of lengths "
                                 f"{sorted({len(r) for r in rows})}.")
            kinds = {isinstance(x, str) for r in rows for x in r}
            if len(kinds) > 1:
                raise TypeError(f"{where}: 'contexts' must be all word ids or all words; got both.")
        try:
            return np.asarray(ctx)
        except ValueError:
            raise ValueError(f"{where}: 'contexts' must be a (B, {self.order - 1}) array of word ids; got "
                             f"{type(ctx).__name__} of rows of different lengths.") from None

    def _check_contexts(self, ctx, where):
        """Contexts (B, n-1) of word ids in [0, V), named by `where` (the kernels' own errors would name gather_rows,
        and a context of another width nn.linear's input size)."""
        ctx = self._contexts_array(ctx, where)
        if ctx.ndim != 2 or ctx.shape[1] != self.order - 1:
            raise ValueError(f"{where}: 'contexts' must have shape (B, {self.order - 1}), the {self.order - 1} word "
                             f"ids before each predicted word; got {ctx.shape}.")
        return check_index(ctx, self.vocab_size, "contexts", where)

    def loss(self, batch):
        """Mean cross-entropy over a batch (contexts (B, n-1), targets (B,)): a scalar Node."""
        ctx, t = self._check_batch(batch, "NPLM.loss")
        if len(t) == 0:
            raise ValueError("NPLM.loss: the batch must hold at least one example; got 0.")
        return self.out.loss(self._features(ctx), t)

    # -- evaluation --------------------------------------------------------------------------------------------
    def _eval_hidden(self, s, chunk):
        ctx = contexts(s, self.order, self.eos_id)
        for i in range(0, len(s), chunk):
            yield i, self._features(ctx[i:i + chunk]).value

    def predict(self, ctx):
        """log P(. | context) for contexts (B, n-1): a (B, |V|) float array.  The contexts are word ids, or words
        ([["the", "jury", "said", "it"]]) when the model has its vocabulary's words (unknown ones read as <unk>), as
        token_logprobs reads text."""
        where = "NPLM.predict"
        ctx = self._contexts_array(ctx, where)
        if ctx.dtype.kind in "US":                       # (was "'contexts' must have an integer dtype; got <U4")
            if self.words is not None and ctx.ndim != 2:
                raise ValueError(f"{where}: 'contexts' must have shape (B, {self.order - 1}), the {self.order - 1} "
                                 f"words before each predicted word; got {ctx.shape}.")
            ctx = word_ids(ctx.astype(str).ravel().tolist(), self.words, "its contexts", where).reshape(ctx.shape)
        ctx = self._check_contexts(ctx, where)
        with self.evaluating():
            return self.out.log_probs(self._features(ctx).value)

    # -- protocol ----------------------------------------------------------------------------------------------
    def config(self):
        return {**self._vocab_config(), "order": self.order, "dim": self.dim, "hidden": self.hidden,
                "direct": self.direct}

    def __repr__(self):
        return (f"NPLM(vocab_size={self.vocab_size}, order={self.order}, dim={self.dim}, hidden={self.hidden}, "
                f"direct={self.direct}, dropout={self.dropout_p}, "
                f"{f'{self.classes} classes' if self.classes else 'full softmax'}, dtype={self._dtype.name})")


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 NPLMs: with and without direct connections, without a hidden layer, class-factorized output."""
    def case(**kw):
        def build(rng):
            m = NPLM(11, order=4, dim=3, dropout=0.0, eos_id=1, rng=rng, dtype=np.float64, init_scale=1.0,
                     counts=rng.integers(1, 50, 11), **kw)
            for p in m.parameters().values():
                if not p.sparse:
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            ctx = rng.integers(0, 11, (6, 3))
            ctx[1] = ctx[0]                                       # repeated rows in one batch
            t = rng.integers(0, 11, 6)
            return (lambda: m.loss((ctx, t))), m.parameters(), {}
        return build
    return [("nplm.direct", case(hidden=5, direct=True, classes=0)),
            ("nplm.no_direct", case(hidden=5, direct=False, classes=0)),
            ("nplm.direct_only", case(hidden=0, direct=True, classes=0)),
            ("nplm.classes", case(hidden=5, direct=False, classes=3)),
            ("nplm.classes_direct", case(hidden=5, direct=True, classes=4))]
