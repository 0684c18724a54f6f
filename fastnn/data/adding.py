"""The adding problem (Hochreiter & Schmidhuber 1997), a long-range memory test for recurrent networks.

Each example is a sequence of T steps with two inputs: a value drawn uniformly from [0, 1] and a marker that is 1 at
exactly two steps, one in the first half [0, T//2) and one in the second half [T//2, T), and 0 elsewhere.  The
target is the sum of the two marked values.

Baseline: always predicting 1 (the mean of the target) gives mean squared error E[(y - 1)^2] = Var(y) = 2 * 1/12
= 1/6 ~= 0.1667 = ADDING_BASELINE_MSE.  (Le, Jaitly & Hinton 2015, the IRNN paper, quote 0.1767 for this baseline;
the exact value for uniform [0, 1] inputs is 1/6, which the tests confirm empirically.)  A model "solves" the task
when its test MSE falls well below the baseline.
"""
import numpy as np

from fastnn._validation import check_float_dtype, check_int
from fastnn.init import as_rng

ADDING_BASELINE_MSE = 1.0 / 6.0


def adding(n, T, seed, *, dtype=np.float32):
    """n examples of the adding problem of length T.

    Parameters
    ----------
    n : number of sequences (>= 0).
    T : sequence length (>= 2).
    seed : int or np.random.Generator.
    dtype : float32 or float64.

    Returns
    -------
    X : (n, T, 2) array of `dtype`; X[..., 0] values in [0, 1), X[..., 1] markers (exactly two ones per sequence).
    y : (n,) array of `dtype`, the sum of the two marked values.
    """
    where = "adding"
    check_int(n, "n", where, low=0)
    check_int(T, "T", where, low=2)           # one marker in each half
    dtype = check_float_dtype(dtype, where)
    rng = as_rng(seed, where, "seed")        # (None drew a set no one could draw again)
    X = np.zeros((n, T, 2), dtype=dtype)
    X[:, :, 0] = rng.random((n, T), dtype=dtype)
    rows = np.arange(n)
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    X[rows, first, 1] = 1
    X[rows, second, 1] = 1
    y = X[rows, first, 0] + X[rows, second, 0]
    return X, y
