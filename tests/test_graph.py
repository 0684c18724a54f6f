"""The flow graph: multiple-paths chain rule, shared parameters, sparse row gradients, traversal order and cost."""
import numpy as np
import pytest

from fastnn import graph, nn
from fastnn.gradcheck import gradcheck
from fastnn.graph import Module, Node, Param, RowGrad


def test_value_feeding_two_successors_and_param_used_twice_hand_computed():
    # a = w x feeds b = w a and c = a + b; w is used by two nodes.  L = w x + w^2 x.
    w = Param("w", np.array([2.0]))
    x = graph.constant(np.array([3.0]), requires_grad=True)
    a = nn.mul(nn.param(w), x)
    b = nn.mul(nn.param(w), a)
    loss = nn.sum(nn.add(a, b))
    assert float(loss.value) == 2 * 3 + 4 * 3
    loss.backward()
    np.testing.assert_array_equal(w.grad, [3.0 + 2 * 2.0 * 3.0])   # dL/dw = x + 2 w x: both uses add up
    np.testing.assert_array_equal(x.grad, [2.0 + 2.0 ** 2])         # dL/dx = w + w^2: both paths add up


def test_one_param_node_reused_is_the_same_as_two_uses():
    w = Param("w", np.array([2.0]))
    pw = nn.param(w)
    x = np.array([3.0])
    a = nn.mul(pw, x)
    nn.sum(nn.add(a, nn.mul(pw, a))).backward()
    np.testing.assert_array_equal(w.grad, [15.0])


class _Tied(Module):
    def __init__(self, rng):
        self.lin = nn.Linear(3, 3, rng=rng, dtype=np.float64)

    def loss(self, x, C):
        h = nn.tanh(self.lin(x))
        return nn.sum(nn.mul(nn.add(self.lin(h), h), C))  # lin used twice; h feeds two successors


def test_tied_linear_matches_hand_gradient_and_finite_differences(rng):
    net = _Tied(rng)
    x = rng.standard_normal((4, 3))
    C = rng.standard_normal((4, 3))
    net.loss(x, C).backward()
    W, b = net.lin.W.value, net.lin.b.value
    # hand bprop: z1 = x W^T + b, h = tanh(z1), z2 = h W^T + b, L = sum(C * (z2 + h))
    z1 = x @ W.T + b
    h = np.tanh(z1)
    dz2 = C
    dh = C + dz2 @ W                      # two successors of h
    dz1 = dh * (1 - h ** 2)
    dW = dz2.T @ h + dz1.T @ x            # two uses of W
    db = dz2.sum(0) + dz1.sum(0)
    np.testing.assert_allclose(net.lin.W.grad, dW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.lin.b.grad, db, rtol=1e-12, atol=1e-14)
    report = gradcheck(lambda: net.loss(x, C), net.parameters())
    assert report.ok, str(report)


def test_shared_embedding_rows_accumulate_as_one_rowgrad(rng):
    emb = nn.Embedding(8, 3, rng=rng, dtype=np.float64)
    left, right = np.array([[1, 5], [5, 5]]), np.array([[0, 1]])
    G1, G2 = rng.standard_normal((2, 6)), rng.standard_normal((1, 6))
    loss = nn.add(nn.sum(nn.mul(emb(left), G1)), nn.sum(nn.mul(emb(right), G2)))
    loss.backward()
    g = emb.W.grad
    assert isinstance(g, RowGrad)
    np.testing.assert_array_equal(g.rows, [0, 1, 5])
    dense = np.zeros((8, 3))
    np.add.at(dense, left.ravel(), G1.reshape(-1, 3))
    np.add.at(dense, right.ravel(), G2.reshape(-1, 3))
    np.testing.assert_allclose(g.to_dense(), dense, rtol=1e-14)


def test_backward_visits_each_node_once_although_paths_multiply():
    # each level feeds the next twice: 2^40 paths, but bprop costs one call per node (proportional to fprop)
    calls = []
    x = graph.constant(np.array(1.0), requires_grad=True)
    v = x
    for _ in range(40):
        v = nn.add(v, v)
    for node in graph.topological_order(v):
        if node.backward_fn is not None:
            fn = node.backward_fn
            node.backward_fn = (lambda f: lambda g: (calls.append(1), f(g)))(fn)
    v.backward()
    assert len(calls) == 40
    assert float(x.grad) == 2.0 ** 40


def test_deep_chain_has_no_recursion_limit():
    x = graph.constant(np.ones(2), requires_grad=True)
    v = x
    for _ in range(5000):
        v = nn.scale(v, 1.0)
    nn.sum(v).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_backward_twice_accumulates_params_without_double_counting(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 3))
    loss = nn.sum(nn.tanh(lin(x)))
    loss.backward(keep_grads=True)
    once = lin.W.grad.copy()
    loss.backward()  # stale intermediate grads from the first call must not flow again
    np.testing.assert_allclose(lin.W.grad, 2 * once, rtol=1e-14)


def test_inputs_get_gradients_only_when_asked(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float64)
    data = graph.constant(rng.standard_normal((4, 3)))
    probe = graph.constant(rng.standard_normal((4, 3)), requires_grad=True)
    nn.sum(nn.add(lin(data), lin(probe))).backward()
    assert data.grad is None
    np.testing.assert_allclose(probe.grad, np.ones((4, 2)) @ lin.W.value)


def test_ops_on_constants_build_no_backward_work():
    y = nn.tanh(nn.add(np.ones(3), np.ones(3)))
    assert y.backward_fn is None and not y.requires_grad and y.parents == ()


def test_parameters_names_nesting_and_tied_params_listed_once(rng):
    class Net(Module):
        def __init__(self):
            self.emb = nn.Embedding(5, 2, rng=rng)
            self.layers = [nn.Linear(2, 2, rng=rng), nn.Linear(2, 2, rng=rng, bias=False)]
            self.head = nn.Linear(2, 2, rng=rng)
            self.head.W = self.layers[0].W  # tied

    params = Net().parameters()
    assert list(params) == ["emb.W", "layers.0.W", "layers.0.b", "layers.1.W", "head.b"]
    assert params["emb.W"].sparse and not params["layers.0.b"].decay


def test_param_add_grad_rejects_a_wrong_shape():
    p = Param("W", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="'W' must have shape \\(2, 3\\); got \\(3,\\)"):
        p.add_grad(np.ones(3))


def test_backward_needs_a_scalar_loss():
    with pytest.raises(ValueError, match="the loss must be a scalar"):
        graph.backward(Node(np.ones(3)))


def test_module_astype_train_eval(rng):
    class Net(Module):
        def __init__(self):
            self.lin = nn.Linear(2, 2, rng=rng)
            self.drop = nn.Dropout(0.5, rng=0)

    net = Net().astype(np.float64)
    assert all(p.dtype == np.float64 for p in net.parameters().values())
    assert net.eval().drop.training is False and net.train().drop.training is True
    with pytest.raises(RuntimeError), net.evaluating():          # eval mode inside, the old mode back after
        assert net.drop.training is False
        raise RuntimeError
    assert net.drop.training is True
    net.eval()
    with net.evaluating():
        pass
    assert net.drop.training is False


def test_module_frozen_builds_no_backward_and_restores_the_flags(rng):
    class Net(Module):
        def __init__(self):
            self.a = nn.Linear(3, 2, rng=rng)
            self.b = nn.Linear(2, 1, rng=rng)

    net = Net()
    net.b.W.trainable = False                                     # frozen before: stays frozen after
    x = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(RuntimeError), net.frozen():
        out = net.b(net.a(Node(x)))
        assert not any(p.trainable for p in net.parameters().values())
        assert not out.requires_grad                               # nothing to differentiate: no graph was kept
        raise RuntimeError
    assert net.a.W.trainable and net.a.b.trainable and net.b.b.trainable and not net.b.W.trainable


def test_two_layer_tanh_net_trains_with_sgd():
    # the README example: built from nodes, checked by gradcheck, trained by SGD on XOR of the signs.  Tiny
    # matrices: one kernel thread and one BLAS thread (extra threads only add latency on a busy machine).
    from threadpoolctl import threadpool_limits

    import fastnn
    from fastnn import optim

    fastnn.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            _train_xor(optim)
    finally:
        fastnn.set_num_threads(None)


def _train_xor(optim):

    class TwoLayer(Module):
        def __init__(self, rng):
            self.hidden, self.out = nn.Linear(2, 16, rng=rng), nn.Linear(16, 2, rng=rng)

        def loss(self, x, y):
            return nn.softmax_cross_entropy(self.out(nn.tanh(self.hidden(x))), y)

    X = np.random.default_rng(1).uniform(-1, 1, (256, 2)).astype(np.float32)
    Y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    net = TwoLayer(np.random.default_rng(0))
    assert gradcheck(lambda: net.loss(X[:8], Y[:8]), net.parameters()).ok
    opt = optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    first = float(net.loss(X, Y).value)
    for _ in range(300):
        net.zero_grad()
        loss = net.loss(X, Y)
        loss.backward()
        opt.step()
    assert first > 0.6 and float(loss.value) < 0.1
