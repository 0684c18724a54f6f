"""Parameter initialisation for the classic recipes.

* Glorot & Bengio (2010) uniform U(-r, r), r = sqrt(6 / (fan_in + fan_out)) for tanh units, 4r for sigmoid units.
* Zeros for hidden biases.
* Output biases at their optimal value for zero weights: log class priors (softmax), logit of the mean target
  (sigmoid), the mean target (linear output).
* Identity for a recurrent matrix (IRNN, Le et al. 2015).
* 0.5 [I I] + U(-0.001, 0.001) for a matrix that composes two d-vectors into one: the prior averages the two
  children (Socher et al. 2013); [I I] (their sum) on request.

Every random initialiser takes `rng`: an int seed or a numpy Generator (never a global RNG).
Matrices follow the layers' layout: (fan_out, fan_in), y = x @ W.T.
"""
import numbers

import numpy as np

from fastnn._validation import check_bool, check_float_dtype, check_int, check_scalar

GAINS = {"tanh": 1.0, "sigmoid": 4.0}


def as_rng(rng, where="init", name="rng"):
    """An np.random.Generator from an int seed or a Generator (None is refused: runs must be reproducible)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{where}: '{name}' must be an int seed >= 0 or a numpy.random.Generator; got {rng!r}.")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{where}: '{name}' must be an int seed or a numpy.random.Generator; got {rng!r}. "
                    f"Pass e.g. {name}=0 or {name}=np.random.default_rng(0).")


def check_seed(seed, where, name="seed"):
    """An int seed >= 0, as a Python int, for code that derives several streams from it (default_rng([seed, k]))
    and records it with its results: a Generator (which has no such form), None (a run no one can repeat) and a
    bool are a TypeError naming `where`, a negative seed a ValueError (NumPy said only "expected non-negative
    integer", or "object of type 'NoneType' has no len()")."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        hint = (" A Generator cannot be recorded with the results nor derive the seeds [seed, k] drawn from it."
                if isinstance(seed, np.random.Generator) else "")
        raise TypeError(f"{where}: '{name}' must be an int seed >= 0; got {seed!r}.{hint} Pass e.g. {name}=0.")
    if seed < 0:
        raise ValueError(f"{where}: '{name}' must be an int seed >= 0; got {seed!r}.")
    return int(seed)


def glorot_range(fan_in, fan_out, gain="tanh"):
    """r = sqrt(6 / (fan_in + fan_out)), times 4 for sigmoid units (or times a float gain)."""
    g = gain if isinstance(gain, numbers.Real) and not isinstance(gain, bool) else GAINS.get(gain)
    if g is None:
        raise ValueError(f"glorot_uniform: 'gain' must be one of {sorted(GAINS)} or a number; got {gain!r}.")
    check_scalar(g, "gain", "glorot_uniform", low=0, low_open=True)  # (nan, -1: NumPy's "high - low range ...")
    return float(g) * np.sqrt(6.0 / (fan_in + fan_out))


def glorot_uniform(fan_in, fan_out, rng, gain="tanh", *, dtype=np.float32):
    """A (fan_out, fan_in) matrix drawn from U(-r, r), r = glorot_range(fan_in, fan_out, gain)."""
    where = "glorot_uniform"
    fan_in, fan_out = check_int(fan_in, "fan_in", where), check_int(fan_out, "fan_out", where)
    r = glorot_range(fan_in, fan_out, gain)
    return uniform((fan_out, fan_in), r, rng, dtype=dtype)


def uniform(shape, scale, rng, *, dtype=np.float32):
    """An array of `shape` drawn from U(-scale, scale) (e.g. embeddings)."""
    dtype = check_float_dtype(dtype, "uniform")
    # (nan or inf was NumPy's OverflowError "high - low range exceeds valid bounds", -1 "high - low < 0", True 1)
    check_scalar(scale, "scale", "uniform", low=0)
    rng = as_rng(rng, "uniform")
    return rng.uniform(-scale, scale, size=shape).astype(dtype)


def zeros(shape, *, dtype=np.float32):
    """Zeros (hidden biases)."""
    return np.zeros(shape, dtype=check_float_dtype(dtype, "zeros"))


def identity(n, *, dtype=np.float32):
    """The n x n identity (a recurrent matrix for IRNN, Le et al. 2015: with ReLU units the state is carried
    unchanged until the inputs move it)."""
    return np.eye(check_int(n, "n", "identity"), dtype=check_float_dtype(dtype, "identity"))


def compose_matrix(d, rng, *, average=True, dtype=np.float32):
    """0.5 [I I] + U(-0.001, 0.001), shape (d, 2d): composes [a; b] into (a + b) / 2 plus a little noise, the
    averaging prior of Socher et al. (2013).  average=False gives [I I] + noise, the sum a + b (a parent's norm then
    grows with the depth of the tree)."""
    d = check_int(d, "d", "compose_matrix")
    eye = np.eye(d) * (0.5 if check_bool(average, "average", "compose_matrix") else 1.0)
    return (np.hstack([eye, eye]) + as_rng(rng, "compose_matrix").uniform(-0.001, 0.001, size=(d, 2 * d))).astype(
        check_float_dtype(dtype, "compose_matrix"))


def output_bias_softmax(class_counts, *, dtype=np.float32):
    """log class priors, log(count_c / sum counts): with zero weights the softmax predicts the priors, the best
    constant predictor under cross-entropy.  Every class needs a positive count (smooth zero counts yourself)."""
    where = "output_bias_softmax"
    c = np.asarray(class_counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{where}: 'class_counts' must be a non-empty 1-D array; got shape {c.shape}.")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(c) & (c > 0)))[0])
        raise ValueError(f"{where}: 'class_counts' must be positive and finite; got {c[bad]} at position {bad}. "
                         "Add a pseudo-count (e.g. counts + 1) for unseen classes.")
    return (np.log(c) - np.log(c.sum())).astype(check_float_dtype(dtype, where))


def output_bias_sigmoid(mean_target, *, dtype=np.float32):
    """logit(mean target) = log(m / (1 - m)): with zero weights sigmoid(b) predicts the mean, which minimises the
    binary cross-entropy among constant predictors.  m must lie in (0, 1) (per output unit)."""
    where = "output_bias_sigmoid"
    m = np.asarray(mean_target, dtype=np.float64)
    if not np.all((m > 0) & (m < 1)):
        raise ValueError(f"{where}: 'mean_target' must be in (0, 1); got {m.min()} .. {m.max()}. "
                         "A constant target needs no model; clip m to [eps, 1 - eps] if you must.")
    return np.atleast_1d(np.log(m) - np.log1p(-m)).astype(check_float_dtype(dtype, where))


def output_bias_linear(mean_target, *, dtype=np.float32):
    """The mean target: with zero weights a linear output predicts it, the minimiser of squared error."""
    m = np.asarray(mean_target, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"output_bias_linear: 'mean_target' must be finite; got {m}.")
    return np.atleast_1d(m).astype(check_float_dtype(dtype, "output_bias_linear"))


__all__ = ["as_rng", "glorot_range", "glorot_uniform", "uniform", "zeros", "identity", "compose_matrix",
           "output_bias_softmax", "output_bias_sigmoid", "output_bias_linear", "GAINS"]
