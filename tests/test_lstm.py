"""LSTM: kernels.lstm_forward / lstm_backward against a float64 NumPy oracle, thread-count invariance, argument
checks; nn.LSTM's init, carried state, clipping and gradients (float64 central differences).

Every test here runs once per vector path the kernels have on this machine (a portable build chooses among AVX-512,
AVX2 + FMA and SSE2 code at run time; a native build has one): the oracle, the bitwise invariances and the gradient
checks hold for each.  tests/test_kernels_dispatch.py compares the paths with each other."""
import numpy as np
import pytest

from fastnn import graph, kernels, nn
from fastnn._ext import _lstm
from fastnn.gradcheck import gradcheck

from .conftest import TOL


@pytest.fixture(autouse=True, params=_lstm._vector_paths())
def vector_path(request):
    _lstm._set_vector_path(request.param)
    yield request.param
    _lstm._set_vector_path(None)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_ref(X, W, b, h0, c0):
    """The oracle: (H, C, A) as lstm_forward returns them, in float64."""
    T, B, K4 = X.shape
    K = K4 // 4
    H, C, A = np.zeros((T + 1, B, K)), np.zeros((T + 1, B, K)), np.zeros((T, B, K4))
    H[0], C[0] = h0, c0
    for t in range(T):
        a = X[t] + H[t] @ W.T + b
        i, f, g, o = _sigmoid(a[:, :K]), _sigmoid(a[:, K:2 * K]), np.tanh(a[:, 2 * K:3 * K]), _sigmoid(a[:, 3 * K:])
        C[t + 1] = f * C[t] + i * g
        H[t + 1] = o * np.tanh(C[t + 1])
        A[t] = np.concatenate([i, f, g, o], axis=1)
    return H, C, A


def lstm_backward_ref(dH, H, C, A, W, clip=0.0, dc_last=None):
    """The oracle of lstm_backward: (dX, dW, db, dh0, dc0)."""
    T, B, K = dH.shape
    dh = np.zeros((B, K))
    dc = np.zeros((B, K)) if dc_last is None else dc_last.copy()
    dX = np.zeros((T, B, 4 * K))
    for t in reversed(range(T)):
        i, f, g, o = np.split(A[t], 4, axis=1)
        tc = np.tanh(C[t + 1])
        d_h = dH[t] + dh
        d_c = dc + d_h * o * (1 - tc ** 2)
        da = np.concatenate([d_c * g * i * (1 - i), d_c * C[t] * f * (1 - f), d_c * i * (1 - g * g),
                             d_h * tc * o * (1 - o)], axis=1)
        if clip:
            da = np.clip(da, -clip, clip)
        dX[t] = da
        dc = d_c * f
        dh = da @ W
    flat = dX.reshape(-1, 4 * K)
    return dX, flat.T @ H[:-1].reshape(-1, K), flat.sum(0), dh, dc


def _case(rng, T, B, K, dtype, scale=0.5):
    X = rng.standard_normal((T, B, 4 * K)).astype(dtype)
    W = (rng.standard_normal((4 * K, K)) * scale / np.sqrt(K)).astype(dtype)
    b = rng.standard_normal(4 * K).astype(dtype)
    h0, c0 = (rng.standard_normal((B, K)).astype(dtype) for _ in range(2))
    dH = rng.standard_normal((T, B, K)).astype(dtype)
    return X, W, b, h0, c0, dH


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


# ---- kernels -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3, 4), (7, 33, 70), (1, 1, 1), (0, 2, 3)], ids=str)
@pytest.mark.parametrize("clip", [0.0, 0.3])
def test_kernels_match_numpy(shape, clip, dtype, n_threads, rng):
    X, W, b, h0, c0, dH = _case(rng, *shape, dtype)
    dc_last = rng.standard_normal(h0.shape).astype(dtype)
    got = kernels.lstm_forward(X, W, b, h0, c0, n_threads=n_threads)
    ref = lstm_ref(*_f64(X, W, b, h0, c0))
    for name, g, r in zip("HCA", got, ref):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, r, **TOL[dtype], err_msg=name)
    got_b = kernels.lstm_backward(dH, *got, W, clip=clip, dc_last=dc_last, n_threads=n_threads)
    ref_b = lstm_backward_ref(*_f64(dH, *got, W), clip=clip, dc_last=dc_last.astype(np.float64))
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else TOL[dtype]
    for name, g, r in zip(("dX", "dW", "db", "dh0", "dc0"), got_b, ref_b):
        np.testing.assert_allclose(g, r, **tol, err_msg=name)
    if clip and shape[0]:
        assert np.abs(got_b[0]).max() <= dtype(clip)       # clipped at clip in the kernel's dtype


def test_kernels_are_bitwise_thread_invariant(rng):
    # B * 4K = 65,536 elements per step: large enough for the kernels to start 2 threads
    X, W, b, h0, c0, dH = _case(rng, 3, 64, 256, np.float32)
    out = [kernels.lstm_forward(X, W, b, h0, c0, n_threads=n) for n in (1, 2)]
    for a1, a2 in zip(*out):
        np.testing.assert_array_equal(a1, a2)
    back = [kernels.lstm_backward(dH, *out[0], W, clip=0.1, n_threads=n) for n in (1, 2)]
    for a1, a2 in zip(*back):
        np.testing.assert_array_equal(a1, a2)


def test_tiles_rows_and_threads_do_not_change_the_bits(dtype, rng):
    # B = 13 and K = 257 are multiples of no register block (rows per tile, units per vector), and the work is large
    # enough for 2 and 3 threads, which split the rows differently: every row must come out the same, bit for bit,
    # and the same as the row computed alone (B = 1) or in another batch
    X, W, b, h0, c0, dH = _case(rng, 3, 13, 257, dtype)
    fwd = [kernels.lstm_forward(X, W, b, h0, c0, n_threads=n) for n in (1, 2, 3)]
    bwd = [kernels.lstm_backward(dH, *fwd[0], W, clip=0.5, dc_last=h0, n_threads=n) for n in (1, 2, 3)]
    for other in fwd[1:]:
        for a1, a2 in zip(fwd[0], other):
            np.testing.assert_array_equal(a1, a2)
    for other in bwd[1:]:
        for a1, a2 in zip(bwd[0], other):
            np.testing.assert_array_equal(a1, a2)
    rows = [0, 7, 12]
    one = kernels.lstm_forward(X[:, rows], W, b, h0[rows], c0[rows])
    for a_all, a_rows in zip(fwd[0], one):
        np.testing.assert_array_equal(a_all[:, rows], a_rows)
    ref = lstm_ref(*_f64(X, W, b, h0, c0))
    for name, g, r in zip("HCA", fwd[0], ref):
        np.testing.assert_allclose(g, r, **TOL[dtype], err_msg=name)


def test_saturated_gates_stay_finite_and_nan_propagates(dtype):
    # pre-activations of +-100 saturate every gate (exp under- and overflow inside sigmoid and tanh); a NaN in one
    # input must reach that row's outputs instead of being clamped away
    T, B, K = 3, 7, 37
    X = np.where(np.arange(T * B * 4 * K).reshape(T, B, 4 * K) % 3 == 0, 100.0, -100.0).astype(dtype)
    W = np.zeros((4 * K, K), dtype)
    b = np.zeros(4 * K, dtype)
    h0 = c0 = np.zeros((B, K), dtype)
    H, C, A = kernels.lstm_forward(X, W, b, h0, c0)
    assert np.isfinite(H).all() and np.isfinite(C).all() and np.isfinite(A).all()
    gate_g = (np.arange(4 * K) // K) == 2
    np.testing.assert_allclose(A, np.where(gate_g, np.sign(X), X > 0), atol=1e-6)  # sigmoid(+-100) = 1, 0; tanh +-1
    ref = lstm_ref(*_f64(X, W, b, h0, c0))
    for name, g, r in zip("HCA", (H, C, A), ref):
        np.testing.assert_allclose(g, r, **TOL[dtype], err_msg=name)
    X[1, 4, 5] = np.nan
    H, C, A = kernels.lstm_forward(X, W, b, h0, c0)
    assert np.isnan(H[2, 4, 5]) and np.isnan(A[1, 4, 5])
    assert np.isfinite(np.delete(H[2], 4, axis=0)).all()
    dH = np.ones((T, B, K), dtype)
    dX = kernels.lstm_backward(dH, H, C, A, W, clip=1.0)[0]
    assert np.isnan(dX[1, 4, 5])


def test_forward_reuses_given_buffers(rng):
    X, W, b, h0, c0, _ = _case(rng, 4, 2, 3, np.float64)
    bufs = (np.empty((5, 2, 3)), np.empty((5, 2, 3)), np.empty((4, 2, 12)))
    got = kernels.lstm_forward(X, W, b, h0, c0, out=bufs)
    assert all(g is o for g, o in zip(got, bufs))
    np.testing.assert_allclose(got[0], lstm_ref(X, W, b, h0, c0)[0], **TOL[np.float64])


def test_kernels_reject_bad_arguments(rng):
    X, W, b, h0, c0, dH = _case(rng, 2, 3, 4, np.float32)
    with pytest.raises(ValueError, match=r"lstm_forward: 'W' must have shape \(4K, K\)"):
        kernels.lstm_forward(X, W[:15], b, h0, c0)
    with pytest.raises(ValueError, match=r"'X' must have shape \(T, B, 16\)"):
        kernels.lstm_forward(X[:, :, :12], W, b, h0, c0)
    with pytest.raises(TypeError, match="'h0' must have dtype float32"):
        kernels.lstm_forward(X, W, b, h0.astype(np.float64), c0)
    with pytest.raises(ValueError, match=r"'c0' must have shape \(3, 4\)"):
        kernels.lstm_forward(X, W, b, h0, c0[:2])
    with pytest.raises(TypeError, match="'out' must be None or a tuple"):
        kernels.lstm_forward(X, W, b, h0, c0, out=np.empty(3))
    with pytest.raises(ValueError, match="must not share memory"):
        buf = np.empty((3, 3, 4), np.float32)
        kernels.lstm_forward(X, W, b, h0, c0, out=(buf, buf, np.empty((2, 3, 16), np.float32)))
    H, C, A = kernels.lstm_forward(X, W, b, h0, c0)
    with pytest.raises(ValueError, match=r"lstm_backward: 'A' must have shape \(2, 3, 16\)"):
        kernels.lstm_backward(dH, H, C, A[:1], W)
    with pytest.raises(ValueError, match="'clip' must be >= 0"):
        kernels.lstm_backward(dH, H, C, A, W, clip=-1.0)
    with pytest.raises(TypeError, match="'dH' must be a numpy.ndarray"):
        kernels.lstm_backward(dH.tolist(), H, C, A, W)


# ---- the layer ---------------------------------------------------------------------------------------------------

def test_layer_init_and_forward_match_the_equations(dtype, rng):
    lstm = nn.LSTM(3, 5, rng=rng, dtype=dtype)
    assert lstm.W_ih.shape == (20, 3) and lstm.W_hh.shape == (20, 5) and lstm.b.shape == (20,)
    np.testing.assert_array_equal(lstm.b.value, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])  # forget bias 1
    assert np.abs(lstm.W_ih.value).max() <= np.sqrt(6 / 8) and np.abs(lstm.W_hh.value).max() <= np.sqrt(6 / 10)
    assert set(lstm.parameters()) == {"W_ih", "W_hh", "b"} and not lstm.b.decay
    lstm.b.value[:] = rng.standard_normal(20)
    x = rng.standard_normal((4, 2, 3)).astype(dtype)
    h0, c0 = (rng.standard_normal((2, 5)).astype(dtype) for _ in range(2))
    H, (h, c) = lstm(x, (h0, c0))
    Wih, Whh, b = _f64(lstm.W_ih.value, lstm.W_hh.value, lstm.b.value)
    ref_H, ref_C, _ = lstm_ref(x.astype(np.float64) @ Wih.T, Whh, b, *_f64(h0, c0))
    np.testing.assert_allclose(H.value, ref_H[1:], **TOL[dtype])
    np.testing.assert_allclose(h, ref_H[-1], **TOL[dtype])
    np.testing.assert_allclose(c, ref_C[-1], **TOL[dtype])
    H0, _ = lstm(x)                                              # zero state
    np.testing.assert_allclose(H0.value, lstm_ref(x.astype(np.float64) @ Wih.T, Whh, b, np.zeros((2, 5)),
                                                  np.zeros((2, 5)))[0][1:], **TOL[dtype])
    assert "LSTM(3, 5, forget_bias=1.0" in repr(lstm)


def test_carried_state_continues_the_sequence_and_state_at(rng):
    lstm = nn.LSTM(2, 3, rng=rng, dtype=np.float64, forget_bias=0.5)
    x = rng.standard_normal((6, 2, 2))
    H_all, last = lstm(x)
    H1, state = lstm(x[:4])
    H2, last2 = lstm(x[4:], state)                               # truncated BPTT: the next segment starts here
    np.testing.assert_allclose(np.concatenate([H1.value, H2.value]), H_all.value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(last2[0], last[0], rtol=1e-12)
    np.testing.assert_allclose(last2[1], last[1], rtol=1e-12)
    _, mid = lstm(x, state_at=3)                                 # the state after step 3 = after x[:4]
    np.testing.assert_array_equal(mid[0], state[0])
    np.testing.assert_array_equal(mid[1], state[1])
    _, start = lstm(x, (state[0], None), state_at=-1)
    np.testing.assert_array_equal(start[0], state[0])
    np.testing.assert_array_equal(start[1], np.zeros((2, 3)))


def test_layer_gradients_and_clipping(rng):
    lstm = nn.LSTM(3, 4, rng=rng, dtype=np.float64)
    x = graph.constant(rng.standard_normal((5, 2, 3)), requires_grad=True)
    h0 = graph.constant(rng.standard_normal((2, 4)) * 0.5, requires_grad=True)
    c0 = graph.constant(rng.standard_normal((2, 4)) * 0.5, requires_grad=True)
    weights = rng.standard_normal((5, 2, 4))

    def loss_fn():
        return nn.sum(nn.mul(lstm(x, (h0, c0))[0], weights))

    report = gradcheck(loss_fn, lstm.parameters(), inputs={"x": x, "h0": h0, "c0": c0}, nondet=True)
    assert report.ok, str(report)
    lstm.zero_grad()
    loss_fn().backward()
    exact = {n: p.grad.copy() for n, p in lstm.parameters().items()}
    lstm.clip = 1e6                                              # a threshold never reached changes nothing
    lstm.zero_grad()
    loss_fn().backward()
    for n, p in lstm.parameters().items():
        np.testing.assert_array_equal(p.grad, exact[n])
    lstm.clip = 1e-3                                             # every gate error clipped: |db| <= T * B * clip
    lstm.zero_grad()
    loss_fn().backward()
    assert np.abs(lstm.b.grad).max() <= 5 * 2 * 1e-3 + 1e-12
    assert not np.allclose(lstm.b.grad, exact["b"])


def test_frozen_layer_builds_no_backward(rng):
    lstm = nn.LSTM(2, 3, rng=rng)
    for p in lstm.parameters().values():
        p.trainable = False
    H, _ = lstm(np.ones((2, 1, 2), np.float32))
    assert not H.requires_grad


def test_layer_accepts_lists_and_rejects_bad_input(rng):
    lstm = nn.LSTM(3, 4, rng=rng)
    H, (h, c) = lstm([[[0.1, 0.2, 0.3]]], ([[0.0] * 4], [[0.5] * 4]))    # plain lists, cast to float32
    assert H.value.shape == (1, 1, 4) and h.dtype == c.dtype == np.float32
    with pytest.raises(ValueError, match=r"LSTM: 'x' must have shape \(T, B, 3\)"):
        lstm(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"'state' must be None or a pair \(h0, c0\)"):
        lstm(np.ones((2, 1, 3), np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"'h0' must have shape \(1, 4\)"):
        lstm(np.ones((2, 1, 3), np.float32), (np.zeros((2, 4), np.float32), None))
    with pytest.raises(ValueError, match=r"'state_at' must be an integer in \[-1, 2\)"):
        lstm(np.ones((2, 1, 3), np.float32), state_at=2)
    for bad in (dict(clip=-1), dict(forget_bias=float("nan")), dict(clip=True)):
        with pytest.raises(ValueError, match="LSTM: '(clip|forget_bias)' must be a finite number"):
            nn.LSTM(3, 4, rng=rng, **bad)
    with pytest.raises(ValueError, match="'hidden' must be an integer >= 1"):
        nn.LSTM(3, 0, rng=rng)

