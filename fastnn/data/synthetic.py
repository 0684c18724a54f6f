"""A synthetic classification task from a fixed random teacher network, for comparing optimizers and models.

Inputs are standard Gaussian.  The teacher scores class k as a linear term plus a one-hidden-layer tanh term,
    logits = X @ A + tanh(X @ W + b) @ V,
and labels are the arg-max, of which a fraction `label_noise` is then replaced by a uniformly drawn class.  A linear
model (logistic regression) captures the linear term only, so it plateaus below a one-hidden-layer tanh network,
which can represent the teacher; neither can beat the noise ceiling 1 - label_noise * (1 - 1/n_classes).
The teacher depends only on `teacher_seed` and the sizes, so sets drawn with different `seed`s (train, test) and
different `n` share it.
"""
import numpy as np

from fastnn._validation import check_int
from fastnn.init import as_rng, check_seed


def _teacher_weights(n_features, n_classes, hidden, teacher_seed, where):
    rng = np.random.default_rng(check_seed(teacher_seed, where, "teacher_seed"))   # (a Generator made another teacher per call)
    A = rng.standard_normal((n_features, n_classes)) / np.sqrt(n_features)
    W = 2.0 * rng.standard_normal((n_features, hidden)) / np.sqrt(n_features)   # gain 2: tanh well past linear
    b = 0.5 * rng.standard_normal(hidden)
    V = 3.0 * rng.standard_normal((hidden, n_classes)) / np.sqrt(hidden)
    return [a.astype(np.float32) for a in (A, W, b, V)]


def teacher(n, *, n_features=50, n_classes=10, hidden=20, label_noise=0.05, seed, teacher_seed=0):
    """n labelled examples from the teacher network.

    Parameters
    ----------
    n : number of examples (>= 0).
    n_features, n_classes, hidden : sizes of the teacher (hidden = its tanh units).
    label_noise : probability in [0, 1] that a label is replaced by a uniform random class.
    seed : int or np.random.Generator for the examples.
    teacher_seed : int; fixes the teacher network.

    Returns
    -------
    X : (n, n_features) float32, standard normal.
    y : (n,) int64 in [0, n_classes).
    """
    where = "teacher"
    for name, v, lo in (("n", n, 0), ("n_features", n_features, 1), ("n_classes", n_classes, 2), ("hidden", hidden, 1)):
        check_int(v, name, where, low=lo)
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"{where}: 'label_noise' must be in [0, 1]; got {label_noise!r}.")
    rng = as_rng(seed, where, "seed")        # (None drew a set no one could draw again)
    X = rng.standard_normal((n, n_features), dtype=np.float32)
    flip = rng.random(n) < label_noise
    noise = rng.integers(0, n_classes, size=n)
    y = teacher_labels(X, n_classes=n_classes, hidden=hidden, teacher_seed=teacher_seed)
    y[flip] = noise[flip]
    return X, y


def teacher_labels(X, *, n_classes=10, hidden=20, teacher_seed=0):
    """The teacher's noise-free labels (int64) for float32 inputs X of shape (n, n_features)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"teacher_labels: 'X' must be 2-dimensional (n, n_features); got shape {X.shape}.")
    n = X.shape[0]
    A, W, b, V = _teacher_weights(X.shape[1], n_classes, hidden, teacher_seed, "teacher_labels")
    y = np.empty(n, dtype=np.int64)
    AW = np.concatenate([A, W], axis=1)       # one product for the linear term and the hidden pre-activations
    for s in range(0, n, 1 << 15):            # chunks keep the temporaries in cache
        Z = X[s:s + (1 << 15)] @ AW
        H = np.tanh(np.add(Z[:, n_classes:], b, out=Z[:, n_classes:]))
        logits = Z[:, :n_classes] + H @ V
        y[s:s + len(Z)] = logits.argmax(axis=1)
    return y
