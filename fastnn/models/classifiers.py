"""Two small classifiers for optimizer comparisons: multinomial logistic regression and a one-hidden-layer tanh
network, on dense feature vectors or on windows of word ids.

Inputs are either
- dense: `n_features` given; a batch is (X (B, n_features) float, y (B,) int);
- windows: `vocab_size` and `window` given; a batch is (idx (B, window) int word ids, y (B,) int), e.g. the
  window around a word whose tag is to be predicted (fastnn.data.conll.windows).

LogisticRegression: p(y | x) = softmax(W x + b).  On windows x is the concatenation of one one-hot vector per
position, so W x is a sum of `window` rows of a sparse (window * vocab_size, n_classes) table (a RowGrad in
training).  Weights start at zero (the objective is convex).
MLP: p(y | x) = softmax(V tanh(U x + c) + d); on windows x is the concatenation of the words' embeddings
(Collobert et al. 2011 without the caps feature).  Glorot initialisation.

Both take `class_counts` (the training labels' counts per class, np.bincount(y, minlength=n_classes)): the output
bias then starts at the log class priors, the optimal bias for zero output weights (the lecture's "optimal bias
init"), so training starts from the best constant predictor instead of the uniform one.  A class with no example
counts as 0.5 (its bias stays finite).  Without it the bias starts at zero.

Both follow the model protocol: loss(batch) -> scalar Node (mean cross-entropy), config() / from_config(cfg),
predict(x), accuracy(x, y), and objective(x, y, weight_decay) for the full-data objective.
"""
import numpy as np

from fastnn import kernels, nn
from fastnn._validation import check_float_dtype, check_index, check_int
from fastnn.graph import Module, Node, Param
from fastnn import init
from fastnn.init import as_rng


def _inputs(n_features, vocab_size, window, where):
    dense = n_features is not None
    win = vocab_size is not None or window is not None
    if dense == win:
        raise ValueError(f"{where}: give either 'n_features' (dense inputs) or 'vocab_size' and 'window' (windows of "
                         f"word ids); got n_features={n_features!r}, vocab_size={vocab_size!r}, window={window!r}.")
    for name, v in (("n_features", n_features), ("vocab_size", vocab_size), ("window", window)):
        if v is not None:
            check_int(v, name, where)
    if win and (vocab_size is None or window is None):
        raise ValueError(f"{where}: window inputs need both 'vocab_size' and 'window'; got vocab_size={vocab_size!r}, "
                         f"window={window!r}.")
    return "dense" if dense else "window"


def _prior_bias(class_counts, n_classes, dtype, where):
    """log priors from counts (zeros count as 0.5), or None."""
    if class_counts is None:
        return None
    try:
        c = np.asarray(class_counts, dtype=np.float64)
    except (TypeError, ValueError):                 # (NumPy's "could not convert string to float")
        raise TypeError(f"{where}: 'class_counts' must be numbers, one count per class; got "
                        f"{type(class_counts).__name__}. Use np.bincount(y, minlength=n_classes).") from None
    if c.shape != (n_classes,):
        raise ValueError(f"{where}: 'class_counts' must have one count per class, shape ({n_classes},); got shape "
                         f"{c.shape}. Use np.bincount(y, minlength=n_classes).")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"{where}: 'class_counts' must be finite and >= 0; got min {c.min()}.")
    return init.output_bias_softmax(np.maximum(c, 0.5), dtype=dtype)


class _Classifier(Module):
    """Shared evaluation: scores in chunks, predictions, accuracy, and the full objective."""

    CHUNK = 1 << 15

    def _check_x(self, x, where=None):
        """The inputs as an array: dense ones real and finite (a NaN row would be predicted as class 0 and a str
        one fail in NumPy's float conversion), windows integer; the shape the model was built for."""
        where = where or type(self).__name__
        try:
            x = np.asarray(x)
        except ValueError:                              # ragged rows
            raise ValueError(f"{where}: inputs must be a 2-d array; got ragged rows (of different lengths).") from None
        if x.shape == (0,):                             # [] : no input (np.asarray gives a 1-d float array)
            x = np.zeros((0, self.n_features if self.kind == "dense" else self.window),
                         dtype=self.dtype if self.kind == "dense" else np.intp)
        if self.kind == "dense":
            if x.dtype.kind == "O":                     # numbers in an object array (a pandas frame of mixed columns)
                try:
                    x = x.astype(np.float64)
                except (TypeError, ValueError):
                    pass
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{where}: inputs must be real numbers (float32 or float64 features); got dtype "
                                f"{x.dtype}. Encode text as features first (or build the model with vocab_size and "
                                f"window for word ids).")
            if x.ndim != 2 or x.shape[1] != self.n_features:
                raise ValueError(f"{where}: inputs must have shape (B, {self.n_features}); got {x.shape}.")
            x = x.astype(self.dtype, copy=False)
            if not np.isfinite(x).all():
                bad = np.argwhere(~np.isfinite(x))[0]
                raise ValueError(f"{where}: inputs must be finite; got {x[tuple(bad)]} at row {bad[0]}, column "
                                 f"{bad[1]}. Impute or drop missing values first.")
            return x
        if x.ndim != 2 or x.shape[1] != self.window or (x.size and x.dtype.kind not in "iu"):
            raise ValueError(f"{where}: inputs must be integer windows of shape (B, {self.window}); got "
                             f"{x.dtype} {x.shape}.")
        # (logistic regression: each position has its own block of V rows in E, so an id outside [0, V) would read
        # another position's block)
        return check_index(x, self.vocab_size, "inputs", where)

    @staticmethod
    def _check_batch(batch, where):
        """(x, y) of a training batch (an ArrayBatches batch: a tuple of inputs and labels)."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            items = f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""
            raise TypeError(f"{where}: 'batch' must be an (inputs, labels) pair, e.g. loss((X, y)); got "
                            f"{type(batch).__name__}{items}.")
        return batch

    def _check_y(self, y, n, where):
        """Labels: n class ids in [0, n_classes), as an int64 array (ValueError for a label the model has no output
        for, a TypeError for non-integer labels: map class names to ids first).  Bool labels (y = x[:, 0] > 0) are the
        class ids 0 and 1, as in scikit-learn."""
        y = np.asarray(y)
        if y.dtype == bool:                             # (was a TypeError: "must hold integer class ids")
            y = y.astype(np.int64)
        if y.shape != (n,):                             # (a shorter y broadcast against the predictions)
            raise ValueError(f"{where}: 'y' must have shape ({n},), one label per input; got {y.shape}.")
        if n and y.dtype.kind not in "iu":
            raise TypeError(f"{where}: 'y' must hold integer class ids in [0, {self.n_classes}); got dtype {y.dtype}. "
                            f"Map labels to ids first, e.g. np.unique(labels, return_inverse=True).")
        bad = np.flatnonzero((y < 0) | (y >= self.n_classes))
        if bad.size:
            raise ValueError(f"{where}: 'y' must hold class ids in [0, {self.n_classes}) (the model has "
                             f"{self.n_classes} classes); got {y[bad[0]]} at position {bad[0]}.")
        return y.astype(np.int64, copy=False)

    def predict(self, x):
        """Predicted classes (B,) int64."""
        x = self._check_x(x)
        out = np.empty(len(x), dtype=np.int64)
        for s in range(0, len(x), self.CHUNK):
            out[s:s + self.CHUNK] = self.scores(x[s:s + self.CHUNK]).argmax(axis=1)
        return out

    def accuracy(self, x, y):
        """Fraction of correct predictions."""
        where = f"{type(self).__name__}.accuracy"
        x = self._check_x(x, where)
        y = self._check_y(y, len(x), where)
        return float(np.mean(self.predict(x) == y)) if len(y) else float("nan")

    def objective(self, x, y, weight_decay=0.0):
        """Mean cross-entropy over all of (x, y) plus weight_decay / 2 * ||w||^2 over the Param.decay parameters (the
        objective that SGD with weight_decay and fastnn.optim.minimize(weight_decay=) minimise)."""
        from fastnn.optim import weight_penalty

        where = f"{type(self).__name__}.objective"
        x = self._check_x(x, where)
        y = self._check_y(y, len(x), where)
        if not len(y):                  # (the mean over nothing was 0.0: a perfect objective, silently)
            raise ValueError(f"{where}: the data must hold at least one example; got none.")
        penalty = weight_penalty(self, weight_decay)     # (its argument checked before the pass over the data)
        total = 0.0
        with self.evaluating():
            for s in range(0, len(x), self.CHUNK):
                xs, ys = x[s:s + self.CHUNK], y[s:s + self.CHUNK]
                total += float(self.loss((xs, ys)).value) * len(ys)
        return total / len(y) + penalty

    def config(self):
        # a Generator given as the seed has no JSON form: the model file records None, so that a model seeded by one
        # saves after training like any other (loading replaces the initial parameters, so it needs no seed)
        cfg = dict(self._cfg, dtype=self.dtype.name)        # (the parameters' dtype: astype changes it)
        if isinstance(cfg["seed"], np.random.Generator):
            cfg["seed"] = None
        return cfg

    @classmethod
    def from_config(cls, cfg):
        if cfg.get("seed") is not None:
            return super().from_config(cfg)
        model = super().from_config(dict(cfg, seed=0))      # any seed: the file's parameters replace these
        model._cfg["seed"] = None
        return model

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in dict(self._cfg, dtype=self.dtype.name).items() if v is not None)
        return f"{type(self).__name__}({args})"


def _window_sum(E, idx, offsets):
    """Node: sum over positions k of E[offsets[k] + idx[:, k]] -> (B, C); the gradient goes to E as row gradients."""
    rows = (idx + offsets).ravel()
    B, w = idx.shape
    C = E.value.shape[1]
    val = kernels.gather_rows(E.value, rows).reshape(B, w, C).sum(axis=1)
    if not E.trainable:
        return Node(val, op="window_sum")

    def backward(g):
        E.add_row_grad(rows, np.repeat(np.ascontiguousarray(g, dtype=E.dtype), w, axis=0))

    return Node(val, (), backward, "window_sum", requires_grad=True)


class LogisticRegression(_Classifier):
    """Multinomial logistic regression (see the module docstring).

    LogisticRegression(n_classes, n_features=50, seed=0) or LogisticRegression(n_classes, vocab_size=V, window=5,
    seed=0) (n_features, or vocab_size and window, describe the data: None = not this kind of input).
    Parameters: dense "out.W" (n_classes, n_features), "out.b"; windows "E" (window * V, n_classes) sparse, "b".
    With class_counts the bias starts at the log priors: with the zero weights the model starts as the best
    constant predictor (initial loss = the entropy of the labels).
    """

    def __init__(self, n_classes, *, seed, n_features=None, vocab_size=None, window=None, dtype="float32",
                 class_counts=None):
        where = "LogisticRegression"
        self.kind = _inputs(n_features, vocab_size, window, where)
        self.n_features, self.vocab_size, self.window = n_features, vocab_size, window
        dtype = check_float_dtype(dtype, where)     # (else the error would come from init.uniform or Param)
        self.n_classes = check_int(n_classes, "n_classes", where, low=2)
        self._cfg = dict(n_classes=self.n_classes, n_features=n_features, vocab_size=vocab_size, window=window,
                         seed=seed)
        if self.kind == "dense":
            self.out = nn.SoftmaxOutput(n_features, n_classes, rng=as_rng(seed, where, "seed"), dtype=dtype)
            self.out.W.value[...] = 0.0
        else:
            self.E = Param("E", np.zeros((window * vocab_size, n_classes), dtype), sparse=True)
            self.b = Param("b", np.zeros(n_classes, dtype), decay=False)
            self._offsets = (np.arange(window) * vocab_size).astype(np.intp)
        bias = _prior_bias(class_counts, self.n_classes, dtype, where)
        if bias is not None:
            (self.out.b if self.kind == "dense" else self.b).value[...] = bias

    def _logits_node(self, x):
        return nn.add(_window_sum(self.E, x, self._offsets), nn.param(self.b))

    def loss(self, batch):
        x, y = self._check_batch(batch, "LogisticRegression.loss")
        x = self._check_x(x, "LogisticRegression.loss")
        y = self._check_y(y, len(x), "LogisticRegression.loss")
        if self.kind == "dense":
            return self.out.loss(x, y)
        return nn.softmax_cross_entropy(self._logits_node(x), y)

    def scores(self, x):
        """Unnormalised class scores (B, n_classes) as an ndarray."""
        x = self._check_x(x)
        if self.kind == "dense":
            return self.out.log_probs(x)
        return self._logits_node(x).value


class MLP(_Classifier):
    """One hidden layer of tanh units and a softmax output (see the module docstring).

    MLP(n_classes, hidden=32, n_features=50, seed=0) or MLP(n_classes, hidden=100, vocab_size=V, window=5,
    embed_dim=50, seed=0) (embed_dim only with windows).  Defaults of the sizes: fastnn.experiments.compare's
    CompareConfig, whose make_model builds either classifier.
    Parameters: ["embed.W" (V, embed_dim) sparse,] "hidden.W", "hidden.b", "out.W", "out.b".
    With class_counts "out.b" starts at the log priors.
    """

    def __init__(self, n_classes, *, hidden, seed, n_features=None, vocab_size=None, window=None, embed_dim=None,
                 dtype="float32", class_counts=None):
        where = "MLP"
        self.kind = _inputs(n_features, vocab_size, window, where)
        if self.kind == "window":
            embed_dim = check_int(embed_dim, "embed_dim", where)
        self.n_features, self.vocab_size, self.window = n_features, vocab_size, window
        dtype = check_float_dtype(dtype, where)     # (else the error would come from init.uniform or Param)
        self.n_classes = check_int(n_classes, "n_classes", where, low=2)
        self._cfg = dict(n_classes=self.n_classes, hidden=check_int(hidden, "hidden", where), n_features=n_features,
                         vocab_size=vocab_size, window=window,
                         embed_dim=int(embed_dim) if self.kind == "window" else None, seed=seed)
        rng = as_rng(seed, where, "seed")
        if self.kind == "window":
            self.embed = nn.Embedding(vocab_size, embed_dim, rng=rng, dtype=dtype)
            n_in = window * embed_dim
        else:
            n_in = n_features
        self.hidden = nn.Linear(n_in, hidden, rng=rng, dtype=dtype)
        self.out = nn.SoftmaxOutput(hidden, n_classes, rng=rng, dtype=dtype)
        bias = _prior_bias(class_counts, self.n_classes, dtype, where)
        if bias is not None:
            self.out.b.value[...] = bias

    def features(self, x):
        """The hidden layer's Node tanh(U x + c)."""
        x = self.embed(np.asarray(x)) if self.kind == "window" else np.asarray(x, dtype=self.dtype)
        return nn.tanh(self.hidden(x))

    def loss(self, batch):
        x, y = self._check_batch(batch, "MLP.loss")
        x = self._check_x(x, "MLP.loss")
        return self.out.loss(self.features(x), self._check_y(y, len(x), "MLP.loss"))

    def scores(self, x):
        return self.out.log_probs(self.features(self._check_x(x)))


def gradcheck_cases():
    """Float64 gradient checks of both classifiers on dense and window inputs (for `fastnn gradcheck`)."""
    def case(cls, kind, **kw):
        def build(rng):
            if kind == "dense":
                model = cls(4, n_features=6, seed=1, dtype="float64", **kw)
                x = rng.normal(size=(9, 6))
            else:
                model = cls(4, vocab_size=7, window=3, seed=1, dtype="float64", **kw)
                x = rng.integers(0, 7, size=(9, 3))
                x[0] = [2, 2, 2]                                 # a repeated word: row gradients must add
            for p in model.parameters().values():             # nonzero weights (logistic regression starts at 0)
                p.value[...] = rng.normal(scale=0.5, size=p.value.shape)
            y = rng.integers(0, 4, size=9)
            return (lambda: model.loss((x, y))), model.parameters()
        return build

    return [("classifiers.LogisticRegression.dense", case(LogisticRegression, "dense")),
            ("classifiers.LogisticRegression.window", case(LogisticRegression, "window")),
            ("classifiers.MLP.dense", case(MLP, "dense", hidden=5)),
            ("classifiers.MLP.window", case(MLP, "window", hidden=5, embed_dim=3))]
