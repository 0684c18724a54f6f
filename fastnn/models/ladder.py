"""The lecture's simplification ladder: a window classifier built up one piece at a time, so that when a model does
not learn (or its gradient check fails) the piece at fault can be found by climbing back down.

Rungs, each adding one thing to the one before (windows of word ids -> class):

1. softmax: softmax(W x) on fixed word vectors x (the embedding is not trained), no bias;
2. word_vectors: the word vectors are trained too;
3. hidden: softmax(W tanh(U x)), still without biases;
4. bias: softmax(W tanh(U x + c) + d);
5. two_layers: a second tanh hidden layer;
6. two_softmaxes: two output layers on the shared hidden layers, one per task, their losses summed (multitask).

`fastnn gradcheck --only ladder` checks every rung; `fastnn overfit` checks each rung can drive the loss of a few
examples near zero (fastnn.train.overfit).  A batch is (idx (B, window) int, y (B,) int) or, on rung 6, y (B, 2).
"""
import numpy as np

from fastnn import nn
from fastnn._validation import check_int
from fastnn.graph import Module
from fastnn.init import as_rng

RUNGS = ("softmax", "word_vectors", "hidden", "bias", "two_layers", "two_softmaxes")


def _rung(rung, where):
    """The rung's number 1..6 from itself or its name in RUNGS (ValueError otherwise)."""
    if rung in RUNGS:
        rung = RUNGS.index(rung) + 1
    if isinstance(rung, bool) or not isinstance(rung, (int, np.integer)) or not 1 <= rung <= len(RUNGS):
        raise ValueError(f"{where}: 'rung' must be 1..{len(RUNGS)} or one of {RUNGS}; got {rung!r}.")
    return int(rung)


class Ladder(Module):
    """The classifier of one rung (see the module docstring).

    Parameters
    ----------
    rung : 1..6 or its name in RUNGS.
    vocab_size, window, dim : word ids in [0, vocab_size), `window` of them per example, `dim`-dimensional vectors.
    hidden : units of each hidden layer (rungs 3-6).  n_classes : classes of each task.
    rng : int seed or np.random.Generator.  dtype : float32 or float64.
    """

    def __init__(self, rung, *, vocab_size=20, window=3, dim=5, hidden=8, n_classes=4, rng=0, dtype=np.float64):
        where = "Ladder"
        rung = _rung(rung, where)
        rng = as_rng(rng, where)
        self.rung, self.name = int(rung), RUNGS[rung - 1]
        self.embed = nn.Embedding(vocab_size, dim, rng=rng, dtype=dtype, scale=1.0)
        self.embed.W.trainable = rung >= 2
        bias = rung >= 4
        n_in = window * dim
        layers = []
        for _ in range(2 if rung >= 5 else 1 if rung >= 3 else 0):
            layers.append(nn.Linear(n_in, hidden, rng=rng, dtype=dtype, bias=bias))
            n_in = hidden
        self.layers = layers                               # parameters layers.0.W, layers.0.b, layers.1.W, ...
        self.out = nn.Linear(n_in, n_classes, rng=rng, dtype=dtype, bias=bias)
        if rung == 6:
            self.out2 = nn.Linear(n_in, n_classes, rng=rng, dtype=dtype, bias=bias)

    def features(self, idx):
        h = self.embed(np.asarray(idx))
        for layer in self.layers:
            h = nn.tanh(layer(h))
        return h

    def loss(self, batch):
        """Mean cross-entropy (summed over the two tasks on rung 6): a scalar Node."""
        idx, y = batch
        h = self.features(idx)
        y = np.asarray(y)
        if self.rung == 6:
            return nn.add(nn.softmax_cross_entropy(self.out(h), y[:, 0]),
                          nn.softmax_cross_entropy(self.out2(h), y[:, 1]))
        return nn.softmax_cross_entropy(self.out(h), y)

    def trainable(self):
        """{name: Param} of the parameters this rung trains."""
        return {n: p for n, p in self.parameters().items() if p.trainable}

    def __repr__(self):
        return f"Ladder({self.rung}: {self.name})"


def toy_batch(n, rung, *, vocab_size=20, window=3, n_classes=4, seed=0):
    """n distinct random windows with random labels ((n, 2) on rung 6): data only memorisation can fit."""
    # (a rung's name was "invalid literal for int()", toy_batch(3, "two_softmaxes") included, and rung 9 was read)
    rung = _rung(rung, "toy_batch")
    n = check_int(n, "n", "toy_batch", low=0)
    rng = as_rng(seed, "toy_batch", "seed")
    idx = rng.integers(0, vocab_size, size=(n, window))
    idx[:, 0] = np.arange(n) % vocab_size           # windows differ (for n <= vocab_size)
    y = rng.integers(0, n_classes, size=(n, 2) if rung == 6 else n)
    return idx, y


def gradcheck_cases():
    """One float64 case per rung (`fastnn gradcheck --only ladder`)."""
    def case(rung):
        def build(rng):
            model = Ladder(rung, rng=rng)
            idx, y = toy_batch(7, rung, seed=int(rng.integers(1 << 30)))
            idx[1] = idx[0]                           # a repeated window: row gradients must add
            return (lambda: model.loss((idx, y))), model.trainable()
        return build

    return [(f"ladder.{i}_{name}", case(i)) for i, name in enumerate(RUNGS, 1)]


__all__ = ["Ladder", "RUNGS", "toy_batch", "gradcheck_cases"]
