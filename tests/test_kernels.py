"""Each kernel against a plain NumPy reference (float64), thread-count invariance, and every validation error."""
import os

import numpy as np
import pytest

from fastnn import kernels as K
from tests.conftest import TOL


def ref_xent(x, t):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    p = np.exp(x - lse[:, None])
    loss = lse - x[np.arange(len(t)), t]
    g = p.copy()
    g[np.arange(len(t)), t] -= 1
    return loss, g


# (40, 110_000): a separate gradient over 16 MiB, written with streaming stores from a per-thread row buffer
@pytest.mark.parametrize("B,V", [(1, 1), (3, 7), (16, 1000), (2, 300_000), (1, 131_073), (40, 110_000)])
def test_softmax_xent_matches_numpy(B, V, dtype, n_threads, rng):
    x = (rng.standard_normal((B, V)) * 3).astype(dtype)
    t = rng.integers(0, V, B)
    loss, g = K.softmax_xent(x, t, scale=0.5, n_threads=n_threads)
    rl, rg = ref_xent(x, t)
    np.testing.assert_allclose(loss, rl, **TOL[dtype])
    np.testing.assert_allclose(g, 0.5 * rg, **TOL[dtype])
    loss_only, none = K.softmax_xent(x, t, want_grad=False, n_threads=n_threads)
    assert none is None
    np.testing.assert_array_equal(loss_only, loss)


def test_softmax_xent_in_place_and_thread_invariant(dtype, rng):
    x = rng.standard_normal((9, 200_000)).astype(dtype)
    t = rng.integers(0, x.shape[1], 9)
    l1, g1 = K.softmax_xent(x, t, n_threads=1)
    l2, g2 = K.softmax_xent(x, t, n_threads=2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1, g2)
    y = x.copy()
    l3, g3 = K.softmax_xent(y, t, grad=y, n_threads=2)
    assert g3 is y
    np.testing.assert_array_equal(l3, l1)
    np.testing.assert_array_equal(g3, g1)


@pytest.mark.parametrize("B,V", [(41, 110_000), (13, 3000), (5, 1)])
def test_softmax_xent_rows_are_the_same_bits_for_any_thread_count_and_buffer(B, V, dtype, rng):
    """Rows up to 131072 logits run in runs of rows whose length depends on the thread count, pipelined (the gradient
    streamed out of a row buffer when it is a separate array over 16 MiB: (41, 110_000) in float32) or in place; the
    loss-only call sums its exps in a scratch: every way gives the same bits."""
    x = (rng.standard_normal((B, V)) * 4).astype(dtype)
    t = rng.integers(0, V, B)
    l1, g1 = K.softmax_xent(x, t, scale=0.7, n_threads=1)
    for n in (2, 3):
        ln, gn = K.softmax_xent(x, t, scale=0.7, n_threads=n)
        np.testing.assert_array_equal(ln, l1)
        np.testing.assert_array_equal(gn, g1)
        np.testing.assert_array_equal(K.softmax_xent(x, t, want_grad=False, n_threads=n)[0], l1)
    y = x.copy()
    l3, g3 = K.softmax_xent(y, t, grad=y, scale=0.7, n_threads=2)
    assert g3 is y
    np.testing.assert_array_equal(l3, l1)
    np.testing.assert_array_equal(g3, g1)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_xent_is_stable_at_extreme_logits(dtype, scale):
    x = np.array([[scale, -scale, 0.0], [-scale, -scale, -scale]], dtype=dtype)
    loss, g = K.softmax_xent(x, np.array([1, 2]))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(loss, ref_xent(x.astype(np.float64), [1, 2])[0], rtol=1e-6)


@pytest.mark.parametrize("order", ["rising", "falling", "spike_last"])
def test_softmax_xent_when_the_row_maximum_moves_between_pieces(order, dtype, n_threads):
    """Rows read piece by piece (1024 logits) with a running maximum: it grows in every piece (rising), never
    (falling), or once at the very end, by far (spike_last: every earlier exp underflows against the final max)."""
    V = 5000
    x = np.tile(np.linspace(-30, 30, V), (3, 1))
    if order == "falling":
        x = x[:, ::-1]
    elif order == "spike_last":
        x = np.zeros((3, V))
        x[:, -1] = [200.0, 5.0, -1.0]
    x = np.ascontiguousarray(x, dtype=dtype)
    t = np.array([0, V // 2, V - 1])
    loss, g = K.softmax_xent(x, t, scale=0.25, n_threads=n_threads)
    rl, rg = ref_xent(x, t)
    np.testing.assert_allclose(loss, rl, **TOL[dtype])
    np.testing.assert_allclose(g, 0.25 * rg, **TOL[dtype])
    y = x.copy()
    np.testing.assert_array_equal(K.softmax_xent(y, t, grad=y, scale=0.25, n_threads=n_threads)[1], g)


def test_softmax_xent_propagates_nan(dtype):
    x = np.zeros((2, 5), dtype=dtype)
    x[0, 3] = np.nan
    loss, g = K.softmax_xent(x, np.array([0, 0]))
    assert np.isnan(loss[0]) and np.isfinite(loss[1])


def test_log_softmax(dtype, rng):
    x = rng.standard_normal((5, 300_000)).astype(dtype)
    out = K.log_softmax(x)
    ref = x.astype(np.float64) - np.log(np.exp(x.astype(np.float64)).sum(1, keepdims=True))
    np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def ref_output_layer(h, W, b, t, scale):
    """loss, dW, db, dh of output_layer in float64."""
    h, W = h.astype(np.float64), W.astype(np.float64)
    loss, g = ref_xent(h @ W.T + b, t)
    g *= scale
    return loss, g.T @ h, g.sum(0), g @ W


# shapes with one block, blocks cut unevenly (V not a multiple of the block), more blocks than groups, and B > 128
OUTPUT_SHAPES = [(7, 5, 11), (1, 1, 1), (3, 2, 1000), (130, 33, 5003), (5, 3, 40_000), (300, 17, 777)]


@pytest.mark.parametrize("B,H,V", OUTPUT_SHAPES)
def test_output_layer_matches_numpy(B, H, V, dtype, n_threads, rng):
    h = rng.standard_normal((B, H)).astype(dtype)
    W = rng.standard_normal((V, H)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    t = rng.integers(0, V, B)
    got = K.output_layer(h, W, b, t, scale=1 / B, n_threads=n_threads)
    for name, x, r in zip(["loss", "dW", "db", "dh"], got, ref_output_layer(h, W, b, t, 1 / B)):
        assert x.dtype == dtype and x.shape == r.shape, name
        # float32: the products add H (or B, or V) rounded terms; compare relative to the largest entry
        np.testing.assert_allclose(x, r, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * np.abs(r).max(),
                                   err_msg=name)
    loss_only = K.output_layer(h, W, b, t, want_grad=False, n_threads=n_threads)
    np.testing.assert_array_equal(loss_only[0], got[0])
    assert loss_only[1:] == (None, None, None)


def test_output_layer_is_the_same_bits_for_any_thread_count(dtype, rng):
    B, H, V = 67, 19, 30_011
    h = rng.standard_normal((B, H)).astype(dtype)
    W = rng.standard_normal((V, H)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    t = rng.integers(0, V, B)
    first = K.output_layer(h, W, b, t, scale=0.3, n_threads=1)
    work = K.OutputLayerWork()
    for n in (2, 3, 1):
        for x, y in zip(first, K.output_layer(h, W, b, t, scale=0.3, work=work, reuse_grad_buffers=True, n_threads=n)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("B", [6, 22])   # 22: float32 on the AVX-512 register tiles (B >= 16)
def test_output_layer_when_the_row_maximum_moves_between_blocks(B, dtype, rng):
    """Logits rising along V (the running maximum grows block after block, rescaling what was summed), falling, and
    spread over +-200 (exps far below the maximum underflow)."""
    H, V = 4, 100_000
    h = np.ones((B, H), dtype)
    h[1] *= -1
    h[2:] = rng.standard_normal((B - 2, H)) * 50
    W = np.repeat(np.linspace(-5, 5, V)[:, None], H, axis=1).astype(dtype)
    W[:, 1:] += rng.standard_normal((V, H - 1)).astype(dtype) * 0.1
    b = rng.standard_normal(V).astype(dtype)
    t = np.concatenate([[V - 1, 0, 3, V // 2, 17, V - 2], rng.integers(0, V, B - 6)])
    got = K.output_layer(h, W, b, t, n_threads=2)
    for name, x, r in zip(["loss", "dW", "db", "dh"], got, ref_output_layer(h, W, b, t, 1.0)):
        assert np.all(np.isfinite(x)), name
        np.testing.assert_allclose(x, r, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=(1e-4 if dtype == np.float32 else 1e-10) * np.abs(r).max(), err_msg=name)


def test_output_layer_big_dW_and_rows_of_other_widths(rng):
    """float32 output layers whose dW passes 16 MiB (written with streaming stores on the AVX-512 tiles) and whose B
    and H are not multiples of 16 (the tiles' padded columns and masked last vectors), against float64, with the same
    bits on 1 and 2 threads; dW comes back 64-byte aligned."""
    B, H, V = 37, 70, 61_000
    h = rng.standard_normal((B, H)).astype(np.float32)
    W = (rng.standard_normal((V, H)) * 0.3).astype(np.float32)
    b = rng.standard_normal(V).astype(np.float32)
    t = rng.integers(0, V, B)
    got = K.output_layer(h, W, b, t, scale=1 / B, n_threads=1)
    assert got[1].ctypes.data % 64 == 0
    for name, x, r in zip(["loss", "dW", "db", "dh"], got, ref_output_layer(h, W, b, t, 1 / B)):
        np.testing.assert_allclose(x, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
    for x, y in zip(got, K.output_layer(h, W, b, t, scale=1 / B, n_threads=2)):
        np.testing.assert_array_equal(x, y)


def test_output_layer_edge_shapes_and_nan(dtype, rng):
    W = rng.standard_normal((9, 4)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    loss, dW, db, dh = K.output_layer(np.zeros((0, 4), dtype), W, b, np.zeros(0, int))
    assert loss.shape == (0,) and dh.shape == (0, 4) and not dW.any() and not db.any()
    t = np.array([0, 8, 3])
    loss, dW, db, dh = K.output_layer(np.zeros((3, 0), dtype), W[:, :0], b, t, scale=0.5)
    rl, rg = ref_xent(np.tile(b, (3, 1)), t)
    np.testing.assert_allclose(loss, rl, **TOL[dtype])
    np.testing.assert_allclose(db, 0.5 * rg.sum(0), **TOL[dtype])
    assert dW.shape == (9, 0) and dh.shape == (3, 0)
    h = rng.standard_normal((3, 4)).astype(dtype)
    h[1, 2] = np.nan
    loss, dW, db, dh = K.output_layer(h, W, b, t)
    assert np.isnan(loss[1]) and np.all(np.isfinite(loss[[0, 2]])) and np.all(np.isfinite(dh[[0, 2]]))


def test_output_layer_leaves_blas_threads_as_they_were():
    from threadpoolctl import threadpool_info, threadpool_limits
    h, W = np.ones((4, 8), np.float32), np.ones((100_000, 8), np.float32)
    with threadpool_limits(2, user_api="blas"):
        before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        K.output_layer(h, W, np.zeros(100_000, np.float32), np.arange(4), n_threads=2)
        assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


@pytest.mark.parametrize("pattern", ["empty", "all_same", "sorted", "random", "one_row_heavy"])
def test_embedding_kernels(pattern, dtype, n_threads, rng):
    Vn, D, N = 50, 37, 300
    idx = {"empty": np.zeros(0, int), "all_same": np.full(N, 7), "sorted": np.sort(rng.integers(0, Vn, N)),
           "random": rng.integers(0, Vn, N),
           "one_row_heavy": np.where(rng.random(N) < 0.8, 3, rng.integers(0, Vn, N))}[pattern]
    W = rng.standard_normal((Vn, D)).astype(dtype)
    G = rng.standard_normal((len(idx), D)).astype(dtype)
    np.testing.assert_array_equal(K.gather_rows(W, idx, n_threads=n_threads), W[idx])
    # coalesce against np.add.at
    rows, vals = K.coalesce_rows(idx, G, Vn, n_threads=n_threads)
    dense = np.zeros((Vn, D))
    np.add.at(dense, idx, G.astype(np.float64))
    np.testing.assert_array_equal(rows, np.unique(idx))
    np.testing.assert_allclose(vals, dense[rows], **TOL[dtype])
    # scatter-add
    W1 = W.copy()
    K.scatter_add_(W1, idx, G, alpha=-0.5, n_threads=n_threads)
    np.testing.assert_allclose(W1, W - 0.5 * dense, **TOL[dtype])
    # sparse SGD with decay
    W2 = W.copy()
    K.sparse_sgd_(W2, rows, vals, lr=0.1, l2=0.01, n_threads=n_threads)
    ref = W.astype(np.float64).copy()
    ref[rows] = (1 - 0.1 * 0.01) * ref[rows] - 0.1 * dense[rows]
    np.testing.assert_allclose(W2, ref, **TOL[dtype])
    # lazy AdaGrad, coalesced and grouped, against the formula on coalesced rows
    A0 = rng.random((Vn, D)).astype(dtype)
    W3, A3 = W.copy(), A0.copy()
    K.sparse_adagrad_(W3, A3, rows, vals, lr=0.1, eps=1e-6, l2=0.01, n_threads=n_threads)
    W4, A4 = W.copy(), A0.copy()
    K.sparse_adagrad_grouped_(W4, A4, idx, G, lr=0.1, eps=1e-6, l2=0.01, n_threads=n_threads)
    rw, ra = W.astype(np.float64).copy(), A0.astype(np.float64).copy()
    g = dense[rows] + 0.01 * rw[rows]
    ra[rows] += g * g
    rw[rows] -= 0.1 * g / (np.sqrt(ra[rows]) + 1e-6)
    for Wx, Ax in ((W3, A3), (W4, A4)):
        np.testing.assert_allclose(Wx, rw, **TOL[dtype])
        np.testing.assert_allclose(Ax, ra, **TOL[dtype])
    untouched = np.setdiff1d(np.arange(Vn), rows)
    np.testing.assert_array_equal(W4[untouched], W[untouched])
    np.testing.assert_array_equal(A4[untouched], A0[untouched])


@pytest.mark.parametrize("offset", [0, 1, 4, 13])
@pytest.mark.parametrize("D", [128, 100])
def test_scatter_add_large_enough_for_threads_at_any_alignment(rng, offset, D):
    """At a size where scatter_add_ splits W's columns over 2-3 threads, with W's first row starting `offset` floats
    past a 64-byte line (the split follows the lines): np.add.at's sums, and the same bits on 1, 2 and 3 threads."""
    N = 6_400_000 // D
    idx = np.minimum(rng.zipf(1.1, N), 3000) - 1
    G = rng.standard_normal((N, D)).astype(np.float32)
    buf = np.zeros(3000 * D + 16 + offset, np.float32)
    start = (-buf.ctypes.data % 64) // 4 + offset
    W0 = rng.standard_normal((3000, D)).astype(np.float32)
    ref = W0.astype(np.float64)
    np.add.at(ref, idx, 0.5 * G.astype(np.float64))
    out = []
    for t in (1, 2, 3):
        W = buf[start:start + 3000 * D].reshape(3000, D)
        W[...] = W0
        assert W.ctypes.data % 64 == 4 * offset % 64
        K.scatter_add_(W, idx, G, alpha=0.5, n_threads=t)
        out.append(W.copy())
    np.testing.assert_allclose(out[0], ref, rtol=1e-4, atol=1e-3)
    for other in out[1:]:
        np.testing.assert_array_equal(out[0], other)


def test_embedding_results_do_not_depend_on_thread_count(rng):
    idx = np.minimum(rng.zipf(1.1, 20000), 5000) - 1
    G = rng.standard_normal((len(idx), 64)).astype(np.float32)
    W = rng.standard_normal((5000, 64)).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        W1, A1, W2 = W.copy(), np.zeros_like(W), W.copy()
        K.sparse_adagrad_grouped_(W1, A1, idx, G, lr=0.1, n_threads=t)
        K.scatter_add_(W2, idx, G, n_threads=t)
        out.append((W1, A1, W2, K.coalesce_rows(idx, G, 5000, n_threads=t)[1]))
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


def test_group_rows_is_a_stable_sort(rng):
    for n_rows in (1, 2, 2047, 2048, 2049, 10**6, 2**23 + 5):
        idx = rng.integers(0, n_rows, 1000)
        order, uniq, seg = K.group_rows(idx, n_rows)
        np.testing.assert_array_equal(order, np.argsort(idx, kind="stable"))
        np.testing.assert_array_equal(uniq, np.unique(idx))
        np.testing.assert_array_equal(np.diff(seg), np.unique(idx, return_counts=True)[1])


def test_dense_updates_match_formulas(dtype, n_threads, rng):
    n = 100_003
    w0 = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    a0 = rng.random(n).astype(dtype)
    v0 = rng.standard_normal(n).astype(dtype)
    w64, g64 = w0.astype(np.float64), g.astype(np.float64)
    gd = g64 + 0.01 * w64 + 0.001 * np.sign(w64)
    w = w0.copy()
    K.sgd_(w, g, lr=0.1, l2=0.01, l1=0.001, n_threads=n_threads)
    np.testing.assert_allclose(w, w64 - 0.1 * gd, **TOL[dtype])
    for nesterov in (False, True):
        w, v = w0.copy(), v0.copy()
        K.momentum_(w, v, g, lr=0.1, mu=0.9, nesterov=nesterov, l2=0.01, l1=0.001, n_threads=n_threads)
        rv = 0.9 * v0 + gd
        np.testing.assert_allclose(v, rv, **TOL[dtype])
        np.testing.assert_allclose(w, w64 - 0.1 * ((gd + 0.9 * rv) if nesterov else rv), **TOL[dtype])
    w, a = w0.copy(), a0.copy()
    K.adagrad_(w, a, g, lr=0.1, eps=1e-8, l2=0.01, l1=0.001, n_threads=n_threads)
    ra = a0 + gd * gd
    np.testing.assert_allclose(a, ra, **TOL[dtype])
    np.testing.assert_allclose(w, w64 - 0.1 * gd / (np.sqrt(ra) + 1e-8), **TOL[dtype])


def ref_rnn(X, W, b, h0, act, dH, clip):
    f = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0),
         "identity": lambda z: z}[act]
    T = X.shape[0]
    H = [h0]
    for t in range(T):
        H.append(f(X[t] + H[-1] @ W.T + b))
    H = np.stack(H)
    dX = np.zeros_like(X)
    dW = np.zeros_like(W)
    carry = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        y = H[t + 1]
        fp = {"tanh": 1 - y * y, "sigmoid": y * (1 - y), "relu": (y > 0) * 1.0, "identity": np.ones_like(y)}[act]
        dz = (dH[t] + carry) * fp
        if clip > 0:
            dz = np.clip(dz, -clip, clip)
        dX[t] = dz
        dW += dz.T @ H[t]
        carry = dz @ W
    return H, dX, dW, dX.sum((0, 1)), carry


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_rnn_matches_numpy(act, clip, dtype, n_threads, rng):
    T, B, Kd = 6, 4, 9
    X = rng.standard_normal((T, B, Kd)).astype(dtype)
    W = (rng.standard_normal((Kd, Kd)) * 0.4).astype(dtype)
    b = rng.standard_normal(Kd).astype(dtype) * 0.1
    h0 = rng.standard_normal((B, Kd)).astype(dtype)
    dH = rng.standard_normal((T, B, Kd)).astype(dtype)
    H = K.rnn_forward(X, W, b, h0, activation=act, n_threads=n_threads)
    rH, rdX, rdW, rdb, rdh0 = ref_rnn(*(a.astype(np.float64) for a in (X, W, b, h0)), act, dH.astype(np.float64), clip)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(H, rH, **tol)
    dX, dW, db, dh0 = K.rnn_backward(dH, H, W, activation=act, clip=clip, n_threads=n_threads)
    for got, ref in ((dX, rdX), (dW, rdW), (db, rdb), (dh0, rdh0)):
        np.testing.assert_allclose(got, ref, **tol)


def test_rnn_thread_invariant(rng):
    T, B, Kd = 5, 128, 512  # B*K large enough that the kernel really uses 2 threads
    X = rng.standard_normal((T, B, Kd)).astype(np.float32)
    W = (rng.standard_normal((Kd, Kd)) * 0.05).astype(np.float32)
    b = np.zeros(Kd, np.float32)
    h0 = np.zeros((B, Kd), np.float32)
    H1 = K.rnn_forward(X, W, b, h0, n_threads=1)
    H2 = K.rnn_forward(X, W, b, h0, n_threads=2)
    np.testing.assert_array_equal(H1, H2)
    g1 = K.rnn_backward(X, H1, W, n_threads=1)
    g2 = K.rnn_backward(X, H1, W, n_threads=2)
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)


# ---- validation: every error is a clear Python exception -----------------------------------------------------------

def test_validation_errors():
    W = np.zeros((10, 4), np.float32)
    G = np.zeros((3, 4), np.float32)
    with pytest.raises(IndexError, match=r"'rows' must be in \[0, 10\); got 10 at position 2"):
        K.scatter_add_(W, np.array([1, 2, 10]), G)
    with pytest.raises(IndexError, match=r"got -1 at position 0"):
        K.gather_rows(W, np.array([-1, 2, 3]))
    with pytest.raises(TypeError, match=r"'G' must have dtype float32 to match"):
        K.scatter_add_(W, np.array([1, 2, 3]), G.astype(np.float64))
    with pytest.raises(TypeError, match=r"integer dtype"):
        K.scatter_add_(W, np.array([1.0, 2.0, 3.0]), G)
    with pytest.raises(ValueError, match=r"C-contiguous"):
        K.scatter_add_(np.zeros((4, 10), np.float32).T, np.array([1, 2, 3]), G)
    ro = W.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"writeable"):
        K.scatter_add_(ro, np.array([1, 2, 3]), G)
    with pytest.raises(ValueError, match=r"'G' must have shape \(2, 4\)"):
        K.scatter_add_(W, np.array([1, 2]), G)
    with pytest.raises(ValueError, match=r"unique and ascending"):
        K.sparse_sgd_(W, np.array([2, 1, 3]), G, lr=0.1)
    with pytest.raises(ValueError, match=r"'lr' must be >= 0"):
        K.sparse_sgd_(W, np.array([1, 2, 3]), G, lr=-1.0)
    with pytest.raises(TypeError, match=r"float32 or float64"):
        K.softmax_xent(np.zeros((2, 3), np.int64), np.array([0, 1]))
    with pytest.raises(IndexError, match=r"'targets' must be in \[0, 3\)"):
        K.softmax_xent(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"'targets' must have shape \(2,\)"):
        K.softmax_xent(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"at least one column"):
        K.softmax_xent(np.zeros((2, 0)), np.array([0, 1]))
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"must be 'logits' itself or not share memory"):
        K.softmax_xent(x, np.array([0, 1]), grad=np.zeros((4, 3))[::2] if False else x[:, :].view())
    with pytest.raises(ValueError, match=r"'activation' must be one of"):
        K.rnn_forward(np.zeros((1, 1, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros((1, 2)), activation="elu")
    with pytest.raises(ValueError, match=r"'W' must be square"):
        K.rnn_forward(np.zeros((1, 1, 2)), np.zeros((2, 3)), np.zeros(2), np.zeros((1, 2)))
    with pytest.raises(TypeError, match=r"'A' must have dtype float32"):
        K.sparse_adagrad_(W, np.zeros((10, 4)), np.array([1]), np.zeros((1, 4), np.float32), lr=0.1)
    with pytest.raises(ValueError, match=r"'n_threads' must not be 0|n_threads must not be 0"):
        K.gather_rows(W, np.array([1]), n_threads=0)
    w = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"'w' and 'acc' must not share memory"):
        K.adagrad_(w, w, np.zeros(5, np.float32), lr=0.1)


def test_composite_wrappers_check_their_own_arguments():
    """output_layer and the grouping wrappers validate once, under their own name (not a nested wrapper's)."""
    h, W, b = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32), np.zeros(4, np.float32)
    with pytest.raises(IndexError, match=r"^output_layer: 'targets' must be in \[0, 4\); got 4 at position 1"):
        K.output_layer(h, W, b, np.array([0, 4]))
    with pytest.raises(ValueError, match=r"^output_layer: 'targets' must have shape \(2,\)"):
        K.output_layer(h, W, b, np.array([0]))
    with pytest.raises(TypeError, match=r"^output_layer: 'scale' must be a real number"):
        K.output_layer(h, W, b, np.array([0, 1]), scale="1")
    with pytest.raises(ValueError, match=r"^output_layer: 'W' must have at least one row"):
        K.output_layer(h, W[:0], b[:0], np.array([0, 1]))
    with pytest.raises(TypeError, match=r"^coalesce_rows: 'n_rows' must be an integer"):
        K.coalesce_rows(np.array([0]), np.zeros((1, 3), np.float32), 2.0)
    with pytest.raises(IndexError, match=r"^sparse_adagrad_grouped_: 'rows' must be in \[0, 4\)"):
        K.sparse_adagrad_grouped_(W, np.zeros_like(W), np.array([5]), np.zeros((1, 3), np.float32), lr=0.1)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux) to read the resident size")
def test_repeated_calls_do_not_grow_resident_memory(rng):
    W = rng.standard_normal((100, 16)).astype(np.float32)
    A = np.zeros_like(W)
    idx = rng.integers(0, 100, 64)
    G = rng.standard_normal((64, 16)).astype(np.float32)
    x = rng.standard_normal((8, 50)).astype(np.float32)
    t = rng.integers(0, 50, 8)
    X = rng.standard_normal((3, 4, 16)).astype(np.float32)
    Wr = (rng.standard_normal((16, 16)) * 0.1).astype(np.float32)
    h, Wo, bo = x[:, :16].copy(), rng.standard_normal((50, 16)).astype(np.float32), np.zeros(50, np.float32)
    start, cls = np.array([0, 20, 50]), np.array([0, 1, 1, 0, 0, 1, 1, 0])
    rows = np.where(cls == 0, t % 20, 20 + t % 30)
    w, acc, g = rng.standard_normal(1000).astype(np.float32), np.ones(1000, np.float32), np.ones(1000, np.float32)

    def calls():
        K.softmax_xent(x, t)
        K.output_layer(h, Wo, bo, t)
        K.class_softmax_xent(h, Wo, bo, start, cls, rows)
        K.adagrad_(w, acc, g, lr=1e-3)
        K.scatter_add_(W, idx, G, alpha=-1e-3)
        K.sparse_sgd_(W, np.unique(idx), G[: np.unique(idx).size], lr=1e-3)
        K.gather_rows(W, idx)
        K.sparse_adagrad_grouped_(W, A, idx, G, lr=1e-3)
        K.coalesce_rows(idx, G, 100)
        H = K.rnn_forward(X, Wr, np.zeros(16, np.float32), np.zeros((4, 16), np.float32))
        K.rnn_backward(X, H, Wr)
        try:
            K.gather_rows(W, np.array([100]))
        except IndexError:
            pass

    for _ in range(500):  # warm up allocator pools
        calls()
    before = _rss_bytes()
    for _ in range(10_000):
        calls()
    grown = _rss_bytes() - before
    assert grown < 4 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 10^4 calls"


def test_class_softmax_xent_matches_numpy(dtype, n_threads, rng):
    sizes = np.array([1, 4, 7, 2, 30])
    start = np.concatenate([[0], np.cumsum(sizes)])
    Vn, H, N = start[-1], 6, 40
    W = rng.standard_normal((Vn, H)).astype(dtype)
    b = rng.standard_normal(Vn).astype(dtype)
    h = rng.standard_normal((N, H)).astype(dtype)
    classes = rng.choice([0, 1, 2, 4], N)
    rows = start[classes] + (rng.integers(0, 1000, N) % sizes[classes])
    loss, dh, grad_rows, dW, db = K.class_softmax_xent(h, W, b, start, classes, rows, scale=0.5, n_threads=n_threads)
    ref_dh = np.zeros((N, H))
    ref_dW = np.zeros((Vn, H))
    ref_db = np.zeros(Vn)
    for i in range(N):
        a, e = start[classes[i]], start[classes[i] + 1]
        z = W[a:e].astype(np.float64) @ h[i] + b[a:e]
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        tol = TOL[dtype]
        np.testing.assert_allclose(loss[i], -np.log(p[rows[i] - a]), rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6)
        g = 0.5 * p
        g[rows[i] - a] -= 0.5
        ref_dh[i] = g @ W[a:e]
        ref_dW[a:e] += np.outer(g, h[i])
        ref_db[a:e] += g
    np.testing.assert_array_equal(grad_rows, np.concatenate([np.arange(start[c], start[c + 1]) for c in (0, 1, 2, 4)]))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(dh, ref_dh, **tol)
    np.testing.assert_allclose(dW, ref_dW[grad_rows], **tol)
    np.testing.assert_allclose(db, ref_db[grad_rows], **tol)
    with pytest.raises(ValueError, match=r"'rows' must lie in their class's block"):
        K.class_softmax_xent(h, W, b, start, classes, np.where(classes == 1, 0, rows))


def test_limit_blas_threads_bounds_every_loaded_blas_and_undoes_it():
    # --threads N must bound BLAS too: an unbounded OpenBLAS starts a thread per core, and two such jobs side by side
    # on 2 cores ran a tagger epoch 10x slower
    import threadpoolctl

    from fastnn._threads import limit_blas_threads
    np.ones((64, 64)) @ np.ones((64, 64))                      # NumPy's BLAS is loaded
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert before
    with limit_blas_threads(1):
        assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"] == before


@pytest.mark.parametrize("D", [1, 5])
def test_sparse_adagrad_of_a_row_range_same_bits_as_row_by_row(rng, D):
    """Rows spanning a range (the RNN LM's output biases when every class is present) are updated as one long row:
    the bits of the same rows updated in two non-contiguous halves, for any thread count."""
    W0 = rng.standard_normal((9000, D)).astype(np.float32)
    A0 = (rng.random((9000, D)) * 0.1).astype(np.float32)
    rows = np.arange(7, 8993)
    G = rng.standard_normal((rows.size, D)).astype(np.float32)
    Wa, Aa = W0.copy(), A0.copy()
    for half in (slice(0, None, 2), slice(1, None, 2)):
        K.sparse_adagrad_(Wa, Aa, rows[half], G[half], lr=0.1, eps=1e-6, l2=0.01)
    for t in (1, 2, 3):
        Wb, Ab = W0.copy(), A0.copy()
        K.sparse_adagrad_(Wb, Ab, rows, G, lr=0.1, eps=1e-6, l2=0.01, n_threads=t)
        assert np.array_equal(Wa, Wb) and np.array_equal(Aa, Ab)
