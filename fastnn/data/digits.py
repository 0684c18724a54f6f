"""Handwritten digits read pixel by pixel: scikit-learn's bundled 8x8 digits (1797 images from the UCI optical
recognition set, shipped inside scikit-learn: no download) as sequences of 64 steps with one input each.

Le, Jaitly & Hinton (2015) ran this task on MNIST (784 steps of one pixel); the 8x8 set gives 64-step sequences, so
it is a shorter-range test than theirs.  The "permuted" order applies one fixed, seeded permutation to the pixels
of every image, which spreads the strokes over the whole sequence.

scikit-learn is an optional dependency (`pip install 'fastnn[digits]'`); it is imported only by `digit_sequences`.
"""
import numbers

import numpy as np

from fastnn._validation import check_float_dtype, check_int
from fastnn.init import check_seed

DIGIT_STEPS = 64        # 8 x 8 pixels, one per step
DIGIT_CLASSES = 10
ORDERS = ("plain", "permuted")


def pixel_order(order, seed=0):
    """The pixel index read at each step: arange(64) for "plain", a permutation drawn from `seed` for "permuted"."""
    if order not in ORDERS:
        raise ValueError(f"pixel_order: 'order' must be one of {ORDERS}; got {order!r}.")
    if order == "plain":
        return np.arange(DIGIT_STEPS)
    return np.random.default_rng([check_seed(seed, "pixel_order"), 64]).permutation(DIGIT_STEPS)


def split_indices(n, seed=0, fractions=(0.6, 0.2, 0.2)):
    """A seeded shuffle of range(n) cut into train, valid and test index arrays by `fractions`."""
    where = "split_indices"
    check_int(n, "n", where, low=0)             # (n=-1 gave three empty splits, n=True one of one example)
    fracs = list(fractions) if np.ndim(fractions) == 1 else None
    if (fracs is None or len(fracs) != 3 or any(isinstance(f, bool) or not isinstance(f, numbers.Real) or not f > 0
                                                for f in fracs) or abs(sum(fracs) - 1) > 1e-9):
        raise ValueError(f"{where}: 'fractions' must be three numbers > 0 summing to 1; got {fractions!r}.")
    idx = np.random.default_rng([check_seed(seed, "split_indices"), 1797]).permutation(n)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return idx[:a], idx[a:b], idx[b:]


def digit_sequences(order="plain", *, seed=0, fractions=(0.6, 0.2, 0.2), dtype=np.float32):
    """The 8x8 digits as pixel sequences, split into train, valid and test.

    Parameters
    ----------
    order : "plain" (row by row) or "permuted" (pixel_order("permuted", seed)).
    seed : int; picks the split and the permutation.
    fractions : (train, valid, test) shares of the 1797 images.
    dtype : float32 or float64.

    Returns
    -------
    dict with "train", "valid", "test": each (X, y), X (n, 64, 1) of `dtype` with pixels scaled from 0..16 to
    [0, 1], y (n,) int64 labels 0..9.

    Raises ImportError with the install command when scikit-learn is missing.
    """
    where = "digit_sequences"
    perm = pixel_order(order, check_seed(seed, where))
    dtype = check_float_dtype(dtype, where)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(f"{where}: needs scikit-learn (its bundled 8x8 digits): pip install 'fastnn[digits]'") \
            from None
    d = load_digits()
    X = (d.data[:, perm] / 16.0).astype(dtype)[:, :, None]
    y = d.target.astype(np.int64)
    return {name: (np.ascontiguousarray(X[i]), y[i])
            for name, i in zip(("train", "valid", "test"), split_indices(len(y), seed, fractions))}
