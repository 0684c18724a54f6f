"""Fuzzing the kernel wrappers: random shapes, dtypes, strides, read-only arrays, empty batches, bad indices, NaN/Inf.

The only acceptable outcomes are a result or one of the documented exceptions (TypeError, ValueError, IndexError);
a crash kills the test process.  FASTNN_FUZZ_EXAMPLES sets the number of cases per wrapper (default 60).
"""
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastnn import kernels as K  # noqa: E402

N_EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXPECTED = (TypeError, ValueError, IndexError)
DTYPES = [np.float32, np.float64, np.float32, np.float64, np.int64, np.int32, np.float16, np.bool_]
CASES = {"n": 0}


@st.composite
def arrays(draw, shape=None, dtypes=DTYPES, lo=-3.0, hi=3.0):
    """An array that is usually well-formed and sometimes wrong in one or more ways."""
    if shape is None or draw(st.integers(0, 9)) == 0:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(dtypes)) if draw(st.integers(0, 4)) == 0 else dtypes[0]
    seed = draw(st.integers(0, 2**16))
    a = np.random.default_rng(seed).uniform(lo, hi, size=shape)
    special = draw(st.integers(0, 11))
    if a.size and special == 0:
        a.flat[seed % a.size] = np.nan
    elif a.size and special == 1:
        a.flat[seed % a.size] = np.inf
    with np.errstate(invalid="ignore"):
        a = a.astype(dtype)
    layout = draw(st.integers(0, 9))
    if layout == 0 and a.ndim >= 2:
        a = a.T
    elif layout == 1 and a.ndim >= 1:
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == 2:
        a = a.copy()
        a.flags.writeable = False
    return a


@st.composite
def indices(draw, n_rows, length=None):
    if length is None:
        length = draw(st.integers(0, 8))
    kind = draw(st.integers(0, 9))
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    idx = r.integers(0, max(n_rows, 1), length)
    if kind == 0 and length:
        idx[seed % length] = n_rows + seed % 3          # out of range
    elif kind == 1 and length:
        idx[seed % length] = -1 - seed % 3              # negative
    elif kind == 2:
        idx = idx.astype(np.float64)                     # wrong dtype
    elif kind == 3:
        idx = idx.astype(np.int32)                       # other int width: fine
    elif kind == 4:
        idx = idx.astype(np.uint16 if n_rows < 60000 else np.uint64)
    return idx


def run(fn, *args, **kw):
    CASES["n"] += 1
    try:
        return fn(*args, **kw)
    except EXPECTED:
        return None


@FUZZ
@given(st.data())
def test_fuzz_softmax(data):
    x = data.draw(arrays(shape=(data.draw(st.integers(0, 4)), data.draw(st.integers(0, 7)))))
    n_classes = x.shape[-1] if x.ndim else 1
    t = data.draw(indices(n_classes, x.shape[0] if x.ndim else 1))
    out = run(K.softmax_xent, x, t, scale=data.draw(st.sampled_from([1.0, 0.5, float("nan")])))
    if out is not None and np.all(np.isfinite(x)):
        loss, g = out
        assert np.all(loss >= -1e-5) and np.all(np.isfinite(g))
    run(K.log_softmax, x)


@FUZZ
@given(st.data())
def test_fuzz_embedding(data):
    Vn, D = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 5))
    W = data.draw(arrays(shape=(Vn, D)))
    idx = data.draw(indices(Vn))
    G = data.draw(arrays(shape=(len(idx), D)))
    A = data.draw(arrays(shape=(Vn, D), lo=0.0))
    before = W.copy()
    run(K.gather_rows, W, idx)
    run(K.coalesce_rows, idx, G, Vn)
    run(K.group_rows, idx, Vn)
    run(K.scatter_add_, W, idx, G, alpha=-0.5)
    run(K.sparse_adagrad_grouped_, W, A, idx, G, lr=0.1)
    rows = np.unique(idx) if idx.dtype.kind in "iu" else idx
    run(K.sparse_sgd_, W, rows, G[: len(rows)] if G.ndim == 2 else G, lr=0.1, l2=0.01)
    run(K.sparse_adagrad_, W, A, rows, G[: len(rows)] if G.ndim == 2 else G, lr=0.1)
    if W.dtype.kind == "f" and idx.dtype.kind in "iu" and idx.size and (idx.min() < 0 or idx.max() >= Vn):
        # out-of-range indices must be rejected before anything is written
        np.testing.assert_array_equal(W, before)


@FUZZ
@given(st.data())
def test_fuzz_dense_updates(data):
    n = data.draw(st.integers(0, 9))
    w = data.draw(arrays(shape=(n,)))
    g = data.draw(arrays(shape=(n,)))
    s = data.draw(arrays(shape=(n,), lo=0.0))
    lr = data.draw(st.sampled_from([0.1, 0.0, -1.0, float("inf")]))
    run(K.sgd_, w, g, lr=lr)
    run(K.momentum_, w, s, g, lr=lr, mu=0.9)
    run(K.adagrad_, w, s, g, lr=lr)
    run(K.adagrad_, w, w, g, lr=0.1)      # aliasing state and parameter


@FUZZ
@given(st.data())
def test_fuzz_rnn_and_gemm(data):
    T, B, H = (data.draw(st.integers(0, 3)) for _ in range(3))
    X = data.draw(arrays(shape=(T, B, H)))
    W = data.draw(arrays(shape=(H, H)))
    b = data.draw(arrays(shape=(H,)))
    h0 = data.draw(arrays(shape=(B, H)))
    act = data.draw(st.sampled_from(["tanh", "sigmoid", "relu", "identity", "elu"]))
    Hs = run(K.rnn_forward, X, W, b, h0, activation=act)
    dH = data.draw(arrays(shape=(T, B, H)))
    run(K.rnn_backward, dH, Hs if Hs is not None else data.draw(arrays(shape=(T + 1, B, H))), W, activation=act,
        clip=data.draw(st.sampled_from([0.0, 1.0, -1.0])))
    a = data.draw(arrays(shape=(B, H)))
    c = data.draw(arrays(shape=(H, T)))
    run(K.gemm, a, c)
    run(K.gemm, a, c, trans_a=True)
    run(K.col_sums, a)
    Wo = data.draw(arrays(shape=(T + 1, H)))
    run(K.output_layer, a, Wo, data.draw(arrays(shape=(T + 1,))), data.draw(indices(T + 1, B)))


@FUZZ
@given(st.data())
def test_fuzz_class_softmax(data):
    N, H, C = data.draw(st.integers(0, 5)), data.draw(st.integers(0, 4)), data.draw(st.integers(1, 3))
    sizes = [data.draw(st.integers(0 if data.draw(st.integers(0, 9)) == 0 else 1, 3)) for _ in range(C)]
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(data.draw(st.sampled_from([np.int64, np.int32,
                                                                                       np.float64])))
    n_rows = int(sum(sizes))
    W = data.draw(arrays(shape=(n_rows, H)))
    h = data.draw(arrays(shape=(N, H)))
    b = data.draw(arrays(shape=(n_rows,)))
    classes = data.draw(indices(C, N))
    rows = data.draw(indices(n_rows, N))
    if data.draw(st.booleans()) and classes.dtype.kind in "iu" and np.all((classes >= 0) & (classes < C)):
        lo = np.asarray(start, dtype=np.int64)          # mostly valid rows: a random row inside each token's block
        width = np.maximum(lo[classes.astype(np.int64) + 1] - lo[classes.astype(np.int64)], 1)
        rows = lo[classes.astype(np.int64)] + data.draw(st.integers(0, 2)) % width
    out = run(K.class_softmax_xent, h, W, b, start, classes, rows, want_grad=data.draw(st.booleans()))
    if out is not None and np.all(np.isfinite(h)) and np.all(np.isfinite(W)) and np.all(np.isfinite(b)):
        assert np.all(out[0] >= -1e-5)


def test_fuzz_case_count_recorded():
    """Runs last in this file: the number of wrapper calls the fuzz tests made (shown with -rA / -s)."""
    print(f"fuzz cases run: {CASES['n']}")
    assert CASES["n"] >= 4 * N_EXAMPLES or CASES["n"] == 0
