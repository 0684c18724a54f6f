"""Every node type: forward against a NumPy reference in float32 and float64, gradients against NumPy where they are
closed-form, dropout's train/eval equivalence, and the validation errors."""
import numpy as np
import pytest

from fastnn import graph, nn
from fastnn.graph import RowGrad
from tests.conftest import TOL


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _xent(z, t):
    z = z.astype(np.float64)
    m = z.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(z, t[..., None], -1)[..., 0]


ELEMENTWISE = {
    "tanh": (nn.tanh, np.tanh),
    "sigmoid": (nn.sigmoid, _sig),
    "hardtanh": (nn.hardtanh, lambda x: np.clip(x, -1, 1)),
    "softsign": (nn.softsign, lambda x: x / (1 + np.abs(x))),
    "relu": (nn.relu, lambda x: np.maximum(x, 0)),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_forward(name, dtype, rng):
    op, ref = ELEMENTWISE[name]
    x = (rng.standard_normal((5, 7)) * 2).astype(dtype)
    y = op(x)
    assert y.value.dtype == dtype
    np.testing.assert_allclose(y.value, ref(x.astype(np.float64)), **TOL[dtype])


def test_sigmoid_is_stable_at_extremes(dtype):
    y = nn.sigmoid(np.array([-1e4, 0.0, 1e4], dtype=dtype)).value
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


BINARY = {"add": (nn.add, np.add), "sub": (nn.sub, np.subtract), "mul": (nn.mul, np.multiply)}


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_forward_with_broadcast(name, dtype, rng):
    op, ref = BINARY[name]
    a = graph.constant(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True)
    b = graph.constant(rng.standard_normal(3).astype(dtype), requires_grad=True)
    y = op(a, b)
    assert y.value.dtype == dtype
    np.testing.assert_allclose(y.value, ref(a.value.astype(np.float64), b.value), **TOL[dtype])
    nn.sum(y).backward()
    assert a.grad.shape == (4, 3) and b.grad.shape == (3,)  # summed back over the broadcast rows


def test_array_operand_takes_the_node_dtype():
    a = graph.constant(np.ones(3, dtype=np.float32), requires_grad=True)
    assert nn.add(a, np.ones(3)).value.dtype == np.float32
    with pytest.raises(TypeError, match="nn.add: both operands must have one dtype"):
        nn.add(a, graph.constant(np.ones(3)))


def test_reductions_scale_concat_reshape_matmul(dtype, rng):
    a = rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal((3, 2)).astype(dtype)
    m = rng.standard_normal((4, 5)).astype(dtype)
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(nn.sum(a).value, a64.sum(), **TOL[dtype])
    np.testing.assert_allclose(nn.mean(a).value, a64.mean(), **TOL[dtype])
    np.testing.assert_allclose(nn.scale(a, -2.5).value, -2.5 * a64, **TOL[dtype])
    np.testing.assert_array_equal(nn.concat([a, b]).value, np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(nn.concat([a, a], axis=0).value, np.concatenate([a, a], axis=0))
    np.testing.assert_array_equal(nn.reshape(a, (4, 3)).value, a.reshape(4, 3))
    np.testing.assert_allclose(nn.matmul(a, m).value, a64 @ m, **TOL[dtype])
    for v in (nn.sum(a), nn.mean(a), nn.scale(a, 2.0), nn.concat([a, b]), nn.matmul(a, m)):
        assert v.value.dtype == dtype


def test_concat_splits_the_gradient():
    a = graph.constant(np.zeros((2, 1)), requires_grad=True)
    b = graph.constant(np.zeros((2, 2)), requires_grad=True)
    C = np.arange(6.0).reshape(2, 3)
    nn.sum(nn.mul(nn.concat([a, b]), C)).backward()
    np.testing.assert_array_equal(a.grad, C[:, :1])
    np.testing.assert_array_equal(b.grad, C[:, 1:])


def test_split_returns_the_parts_and_their_gradients():
    a = graph.constant(np.arange(12.0).reshape(4, 3), requires_grad=True)
    top, bottom = nn.split(a, 2)
    np.testing.assert_array_equal(top.value, a.value[:2])
    np.testing.assert_array_equal(bottom.value, a.value[2:])
    C = np.arange(6.0).reshape(2, 3)
    nn.add(nn.sum(nn.mul(top, C)), nn.sum(nn.scale(bottom, 2.0))).backward()
    np.testing.assert_array_equal(a.grad, np.concatenate([C, np.full((2, 3), 2.0)]))
    with pytest.raises(ValueError, match="dividing the axis length 4"):
        nn.split(a, 3)


def test_narrow_is_a_view_whose_gradient_fills_its_slice():
    a = graph.constant(np.arange(24.0).reshape(4, 3, 2), requires_grad=True)
    mid = nn.narrow(a, -2, 1, 2)
    np.testing.assert_array_equal(mid.value, a.value[:, 1:3])
    assert np.shares_memory(mid.value, a.value)
    nn.sum(nn.scale(mid, 3.0)).backward()
    want = np.zeros((4, 3, 2))
    want[:, 1:3] = 3.0
    np.testing.assert_array_equal(a.grad, want)
    assert nn.narrow(a, 0, 0, 4) is a                               # the whole axis: the node itself
    assert not nn.narrow(np.ones((3, 2)), 0, 1, 1).requires_grad    # a constant stays a constant
    for kw, err, match in [((3, 0, 1), ValueError, "'axis' must be an int in \\[-3, 3\\); got 3"),
                           ((0, 5, 1), ValueError, "'start' must be <= 4; got 5"),
                           ((0, 2, 3), ValueError, "'length' must be <= 2; got 3"),
                           ((0, 1.0, 1), TypeError, "'start' must be an integer")]:
        with pytest.raises(err, match=match):
            nn.narrow(a, *kw)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3)])
def test_linear_forward_and_backward(shape, dtype, rng):
    lin = nn.Linear(3, 4, rng=rng, dtype=dtype)
    lin.b.value[:] = rng.standard_normal(4)
    x = graph.constant(rng.standard_normal(shape).astype(dtype), requires_grad=True)
    y = lin(x)
    W, b, x64 = lin.W.value.astype(np.float64), lin.b.value, x.value.astype(np.float64)
    assert y.value.dtype == dtype and y.value.shape == shape[:-1] + (4,)
    np.testing.assert_allclose(y.value, x64 @ W.T + b, **TOL[dtype])
    G = rng.standard_normal(y.value.shape).astype(dtype)
    nn.sum(nn.mul(y, G)).backward()
    G2, x2 = G.reshape(-1, 4).astype(np.float64), x64.reshape(-1, 3)
    np.testing.assert_allclose(lin.W.grad, G2.T @ x2, rtol=1e-4 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(lin.b.grad, G2.sum(0), rtol=1e-4 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(x.grad, (G2 @ W).reshape(shape), rtol=1e-4 if dtype == np.float32 else 1e-12)


def test_linear_casts_arrays_but_rejects_a_node_of_another_dtype(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float32)
    assert lin(np.ones((2, 3))).value.dtype == np.float32
    with pytest.raises(TypeError, match="nn.linear: the input must have dtype float32 to match 'W'"):
        lin(graph.constant(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"the input must have shape \(\.\.\., 3\)"):
        lin(np.ones((2, 4), dtype=np.float32))


def test_linear_without_bias_and_empty_batch(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float64, bias=False)
    assert "b" not in lin.parameters()
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(lin(x).value, x @ lin.W.value.T, rtol=1e-12)
    y = lin(np.zeros((0, 3)))
    assert y.value.shape == (0, 2)
    nn.sum(y).backward()
    np.testing.assert_array_equal(lin.W.grad, np.zeros((2, 3)))


def test_embedding_shapes_and_sparse_gradient(dtype, rng):
    emb = nn.Embedding(10, 3, rng=rng, dtype=dtype)
    W = emb.W.value
    win = np.array([[1, 2, 1], [9, 0, 2]])
    np.testing.assert_array_equal(emb(win).value, W[win].reshape(2, 9))        # window concatenated
    np.testing.assert_array_equal(emb(np.array([4, 4])).value, W[[4, 4]])      # (B,) -> (B, D)
    np.testing.assert_array_equal(emb(win, concat=False).value, W[win])        # (T, B) -> (T, B, D)
    G = rng.standard_normal((2, 9)).astype(dtype)
    nn.sum(nn.mul(emb(win), G)).backward()
    assert isinstance(emb.W.grad, RowGrad) and emb.W.grad.values.dtype == dtype
    np.testing.assert_array_equal(emb.W.grad.rows, [0, 1, 2, 9])
    dense = np.zeros((10, 3))
    np.add.at(dense, win.ravel(), G.reshape(-1, 3).astype(np.float64))
    np.testing.assert_allclose(emb.W.grad.to_dense(), dense, **TOL[dtype])


def test_embedding_rejects_out_of_range_indices(rng):
    emb = nn.Embedding(5, 2, rng=rng)
    with pytest.raises(IndexError, match=r"must be in \[0, 5\); got 7 at position 1"):
        emb(np.array([0, 7]))


def test_maxout_forward_and_gradient_to_the_winner(dtype, rng):
    mo = nn.Maxout(4, 3, 2, rng=rng, dtype=dtype)
    mo.b.value[:] = rng.standard_normal(6)
    x = rng.standard_normal((5, 4)).astype(dtype)
    z = x.astype(np.float64) @ mo.W.value.T.astype(np.float64) + mo.b.value
    y = mo(x)
    assert y.value.shape == (5, 3) and y.value.dtype == dtype
    np.testing.assert_allclose(y.value, z.reshape(5, 3, 2).max(-1), **TOL[dtype])
    nn.sum(y).backward()
    win = z.reshape(5, 3, 2).argmax(-1)
    onehot = np.zeros((5, 3, 2))
    np.put_along_axis(onehot, win[..., None], 1.0, -1)
    np.testing.assert_allclose(mo.b.grad, onehot.sum(0).ravel(), **TOL[dtype])
    with pytest.raises(ValueError, match="'k' must be a positive integer dividing"):
        nn.maxout(np.ones((2, 5)), 2)


def test_max_over_time_ignores_positions_past_each_length_and_take_adds_repeated_rows(dtype, rng):
    x = rng.standard_normal((3, 4, 2)).astype(dtype)
    x[0, 3] = 100.0                                        # past sequence 0's length: must not win
    lengths = np.array([3, 4, 1])
    y = nn.max_over_time(x, lengths)
    np.testing.assert_array_equal(y.value, np.stack([x[0, :3].max(0), x[1].max(0), x[2, 0]]))
    node = graph.Node(x, op="input", requires_grad=True)
    out = nn.take(nn.max_over_time(node, lengths), np.array([[0, 0], [2, 0]]))
    assert out.value.shape == (2, 2, 2)
    nn.sum(out).backward()
    expect = np.zeros_like(x)
    for b, n, times in ((0, 3, 3.0), (2, 1, 1.0)):
        np.put_along_axis(expect[b], x[b, :n].argmax(0)[None], times, axis=0)
    np.testing.assert_array_equal(node.grad, expect)
    with pytest.raises(ValueError, match=r"'lengths' must be 3 ints in \[1, 4\]"):
        nn.max_over_time(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="must be \\(B, T, F\\)"):
        nn.max_over_time(x[0], lengths)
    with pytest.raises(IndexError, match=r"'idx' must be ints in \[0, 3\)"):
        nn.take(x, np.array([3]))


def test_char_cnn_is_a_convolution_over_padded_characters_then_a_max(rng):
    cnn = nn.CharCNN(5, 2, 3, width=3, rng=rng, dtype=np.float64, scale=1.0)
    cnn.conv.b.value[:] = rng.standard_normal(3)
    ids, lengths = np.array([[2, 3, 4], [4, 0, 0]]), np.array([3, 1])
    C, W, b = cnn.chars.W.value, cnn.conv.W.value, cnn.conv.b.value
    for u in range(2):
        padded = np.concatenate([[0], ids[u, :lengths[u]], [0]])
        z = [np.concatenate([C[padded[t + k]] for k in range(3)]) @ W.T + b for t in range(lengths[u])]
        np.testing.assert_allclose(cnn(ids, lengths).value[u], np.max(z, axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="'width' must be an odd positive integer"):
        nn.CharCNN(5, 2, 3, width=2, rng=rng)


def test_softmax_cross_entropy_forward(dtype, rng):
    z = (rng.standard_normal((2, 3, 6)) * 3).astype(dtype)
    t = rng.integers(0, 6, (2, 3))
    ref = _xent(z, t)
    np.testing.assert_allclose(nn.softmax_cross_entropy(z, t).value, ref.mean(), **TOL[dtype])
    np.testing.assert_allclose(nn.softmax_cross_entropy(z, t, reduction="sum").value, ref.sum(), **TOL[dtype])
    with pytest.raises(ValueError, match="'targets' must have shape"):
        nn.softmax_cross_entropy(z, t[0])
    with pytest.raises(ValueError, match="'reduction' must be 'mean' or 'sum'"):
        nn.softmax_cross_entropy(z, t, reduction="none")


def test_softmax_cross_entropy_gradient_and_second_backward(rng):
    z = graph.constant(rng.standard_normal((4, 5)), requires_grad=True)
    t = np.array([0, 4, 4, 2])
    loss = nn.scale(nn.softmax_cross_entropy(z, t), 3.0)
    loss.backward(keep_grads=True)
    p = np.exp(z.value) / np.exp(z.value).sum(1, keepdims=True)
    p[np.arange(4), t] -= 1
    np.testing.assert_allclose(z.grad, 3.0 * p / 4, rtol=1e-12)
    loss.backward()  # the kernel's gradient buffer was handed over; the second pass recomputes it
    np.testing.assert_allclose(z.grad, 6.0 * p / 4, rtol=1e-12)


def test_softmax_output_matches_linear_plus_xent(dtype, rng):
    out = nn.SoftmaxOutput(4, 7, rng=rng, dtype=dtype, class_counts=np.arange(1, 8))
    h = graph.constant(rng.standard_normal((3, 5, 4)).astype(dtype), requires_grad=True)
    t = rng.integers(0, 7, (3, 5))
    fused = out.loss(h, t)
    logits = h.value.astype(np.float64) @ out.W.value.T.astype(np.float64) + out.b.value
    np.testing.assert_allclose(fused.value, _xent(logits, t).mean(), **TOL[dtype])
    np.testing.assert_allclose(out.log_probs(h.value), logits - np.log(np.exp(logits).sum(-1, keepdims=True)),
                               **TOL[dtype])
    fused.backward()
    fused_grads = (out.W.grad.copy(), out.b.grad.copy(), h.grad.copy())
    out.zero_grad()
    h.grad = None
    nn.softmax_cross_entropy(out(h), t).backward()
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    for a, b in zip(fused_grads, (out.W.grad, out.b.grad, h.grad)):
        np.testing.assert_allclose(a, b, **tol)


def test_softmax_output_in_eval_mode_refuses_backward(rng):
    out = nn.SoftmaxOutput(3, 4, rng=rng).eval()
    loss = out.loss(np.ones((2, 3), dtype=np.float32), np.array([0, 1]))
    assert np.isfinite(loss.value)
    with pytest.raises(RuntimeError, match="built in eval mode"):
        loss.backward()


def test_hinge_and_mse_forward(dtype, rng):
    pos = rng.standard_normal(6).astype(dtype)
    neg = rng.standard_normal(6).astype(dtype)
    ref = np.maximum(0, 1.0 - pos.astype(np.float64) + neg).mean()
    np.testing.assert_allclose(nn.hinge(pos, neg).value, ref, **TOL[dtype])
    np.testing.assert_allclose(nn.hinge(pos, neg, margin=0.5).value,
                               np.maximum(0, 0.5 - pos.astype(np.float64) + neg).mean(), **TOL[dtype])
    np.testing.assert_allclose(nn.mse(pos, neg).value, ((pos.astype(np.float64) - neg) ** 2).mean(), **TOL[dtype])
    p = graph.constant(pos, requires_grad=True)
    nn.hinge(p, neg).backward()
    np.testing.assert_allclose(p.grad, -((1.0 - pos + neg) > 0).astype(np.float64) / 6, **TOL[dtype])


def _rnn_ref(x, Wih, Whh, b, h0, act):
    f = {"tanh": np.tanh, "sigmoid": _sig, "relu": lambda z: np.maximum(z, 0)}[act]
    h, out = h0, []
    for t in range(x.shape[0]):
        h = f(x[t] @ Wih.T + h @ Whh.T + b)
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_rnn_forward(activation, dtype, rng):
    rnn = nn.RNN(3, 5, rng=rng, activation=activation, dtype=dtype)
    rnn.b.value[:] = rng.standard_normal(5) * 0.1
    x = rng.standard_normal((4, 2, 3)).astype(dtype)
    h0 = rng.standard_normal((2, 5)).astype(dtype)
    H, h_last = rnn(x, h0)
    f64 = [a.astype(np.float64) for a in (x, rnn.W_ih.value, rnn.W_hh.value, rnn.b.value, h0)]
    ref = _rnn_ref(*f64, activation)
    assert H.value.shape == (4, 2, 5) and H.value.dtype == dtype
    np.testing.assert_allclose(H.value, ref, **TOL[dtype])
    np.testing.assert_array_equal(h_last, H.value[-1])
    H0, _ = rnn(x)  # h0 = zeros
    np.testing.assert_allclose(H0.value, _rnn_ref(*f64[:4], np.zeros((2, 5)), activation), **TOL[dtype])


def test_rnn_identity_init_and_truncated_bptt_state(rng):
    rnn = nn.RNN(2, 3, rng=rng, activation="relu", init="identity", dtype=np.float64)
    np.testing.assert_array_equal(rnn.W_hh.value, np.eye(3))
    x = rng.standard_normal((6, 1, 2))
    H_all, _ = rnn(x)
    H1, h = rnn(x[:3])
    H2, _ = rnn(x[3:], h)  # carrying h_last continues the sequence exactly
    np.testing.assert_allclose(np.concatenate([H1.value, H2.value]), H_all.value, rtol=1e-14)


def test_rnn_rejects_bad_input(rng):
    rnn = nn.RNN(3, 4, rng=rng)
    with pytest.raises(ValueError, match=r"'x' must have shape \(T, B, 3\)"):
        rnn(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="'activation' must be one of"):
        nn.RNN(3, 4, rng=rng, activation="softsign")


# ---- dropout -----------------------------------------------------------------------------------------------------

def test_dropout_train_mask_and_eval_identity(dtype, rng):
    drop = nn.Dropout(0.25, rng=3)
    x = rng.standard_normal((50, 40)).astype(dtype)
    y = drop(x).value
    kept = y != 0
    assert y.dtype == dtype
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, **TOL[dtype])   # kept entries scaled by 1/(1-p)
    assert abs(kept.mean() - 0.75) < 0.03
    drop.eval()
    xn = graph.constant(x)
    assert drop(xn) is xn                                               # eval: the identity
    assert nn.Dropout(0.0, rng=0)(xn) is xn


def test_dropout_expectation_equals_eval_output():
    # exactly: each mask entry is 0 w.p. p and 1/(1-p) w.p. 1-p, so E[mask] = 1 and E[train output] = eval output.
    p = 0.3
    assert (1 - p) * (1 / (1 - p)) + p * 0 == pytest.approx(1.0, abs=1e-15)
    # and by Monte Carlo over masks
    drop = nn.Dropout(p, rng=0)
    x = np.linspace(-2, 2, 8)
    mean = np.mean([drop(x).value for _ in range(20000)], axis=0)
    se = np.abs(x) * np.sqrt(p / (1 - p) / 20000)
    assert np.all(np.abs(mean - x) < 5 * se + 1e-12)
    drop.eval()
    np.testing.assert_array_equal(drop(x).value, x)


def test_halving_the_weights_equals_inverted_dropout_for_p_half(rng):
    # lecture: train y = W (m * x) with a plain 0/1 mask, test y = (W / 2) x.  Inverted dropout with W' = W / 2:
    # train y = W' (m * x / (1 - p)) = W (m * x), test y = W' x: the same network in training and at test time.
    p = 0.5
    W = rng.standard_normal((3, 6))
    x = rng.standard_normal((4, 6))
    lin = nn.Linear(6, 3, rng=rng, dtype=np.float64, bias=False)
    lin.W.value[:] = W * (1 - p)
    drop = nn.Dropout(p, rng=11)
    train_inverted = lin(drop(x)).value
    m = np.random.default_rng(11).random(x.shape) >= p        # the same mask, plain 0/1
    np.testing.assert_allclose(train_inverted, (m * x) @ W.T, rtol=1e-12)
    drop.eval()
    np.testing.assert_allclose(lin(drop(x)).value, (x @ (W * 0.5).T), rtol=1e-12)


def test_dropout_gradient_uses_the_mask():
    drop = nn.Dropout(0.5, rng=1)
    x = graph.constant(np.ones((3, 4)), requires_grad=True)
    y = drop(x)
    nn.sum(y).backward()
    np.testing.assert_array_equal(x.grad, y.value)  # d/dx (x * mask) = mask, and x = 1
    with pytest.raises(ValueError, match=r"'p' must be in \[0, 1\)"):
        nn.Dropout(1.0, rng=0)


def test_frozen_params_get_no_gradient(rng):
    lin = nn.Linear(2, 2, rng=rng, dtype=np.float64)
    emb = nn.Embedding(4, 2, rng=rng, dtype=np.float64)
    lin.W.trainable = False
    emb.W.trainable = False
    nn.sum(lin(emb(np.array([1, 2])))).backward()
    assert lin.W.grad is None and emb.W.grad is None and lin.b.grad is not None


def test_float32_gradients_agree_with_float64(rng):
    from fastnn.gradcheck import node_cases

    for name in ("multipath_shared", "rnn_tanh", "window_score_hinge"):
        build = dict(node_cases())[name]
        grads = {}
        for dt in (np.float64, np.float32):
            loss_fn, params, inputs = build(np.random.default_rng(0))
            for p in params.values():
                p.value = p.value.astype(dt)
            for x in inputs.values():
                x.value = x.value.astype(dt)
            graph.backward(loss_fn())
            grads[dt] = {k: (p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad)
                         for k, p in params.items()}
        for k in grads[np.float64]:
            assert grads[np.float32][k].dtype == np.float32
            np.testing.assert_allclose(grads[np.float32][k], grads[np.float64][k], rtol=2e-3, atol=2e-5,
                                       err_msg=f"{name}: {k}")
