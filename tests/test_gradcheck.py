"""gradcheck: every node type passes, wrong backward functions are caught (dense, bias, sparse rows), strict mode names
the worst entry, sampling is bounded and seeded, dtypes and values are restored."""
import numpy as np
import pytest

import fastnn
from fastnn import graph, nn
from fastnn.gradcheck import GradCheckError, gradcheck, node_cases, run_case
from fastnn.graph import Node, Param

CASES = node_cases()


@pytest.fixture(autouse=True)
def one_thread():
    """The cases are tiny: run their kernels on one thread (test_second_order... compares 1 vs 2 itself)."""
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(None)


@pytest.mark.parametrize("name,build", CASES, ids=[n for n, _ in CASES])
def test_every_node_case_passes(name, build):
    report = run_case(build)
    assert report.ok, f"{name}\n{report}"
    assert len(report) >= 1 and all(c.n_checked > 0 for c in report)
    assert report.max_rel_err < 1e-6


def test_cases_cover_every_node_type():
    names = " ".join(n for n, _ in CASES)
    for op in ["linear", "embedding", "concat", "add", "mul", "sum", "mean", "sigmoid", "tanh", "hardtanh",
               "softsign", "relu", "maxout", "dropout", "softmax_cross_entropy", "softmax_output", "hinge",
               "window_score_hinge", "rnn_tanh", "rnn_sigmoid", "rnn_relu", "lstm", "multipath_shared", "mse", "matmul",
               "max_over_time", "take", "char_cnn"]:
        assert op in names, op


def test_multipath_shared_case_checks_every_param_with_nonzero_gradients():
    build = dict(CASES)["multipath_shared"]
    loss_fn, params, _ = build(np.random.default_rng(0))
    graph.backward(loss_fn())
    for name, p in params.items():
        g = p.grad.to_dense() if hasattr(p.grad, "to_dense") else p.grad
        assert np.abs(g).max() > 1e-3, name
    report = run_case(build)
    assert report.ok and {c.name for c in report} == set(params)


def _bad_sigmoid(a):
    """sigmoid with a deliberately wrong backward (y instead of y (1 - y))."""
    y = 1 / (1 + np.exp(-a.value))

    def backward(g):
        a.add_grad(g * y)
    return Node(y, (a,), backward, "bad_sigmoid")


def test_a_wrong_backward_is_reported_and_strict_mode_raises(rng):
    lin = nn.Linear(3, 4, rng=rng, dtype=np.float64)
    x = rng.standard_normal((5, 3))
    C = rng.standard_normal((5, 4))

    def loss_fn():
        return nn.sum(nn.mul(_bad_sigmoid(lin(x)), C))

    report = gradcheck(loss_fn, lin.parameters())
    assert not report.ok
    assert not report["W"].ok and not report["b"].ok
    assert report["W"].max_rel_err > 1e-2
    assert "FAIL" in str(report)
    with pytest.raises(GradCheckError, match=r"'[Wb]' entry \(\d+(, \d+)?\): analytic .* numeric .* relative error"):
        gradcheck(loss_fn, lin.parameters(), raise_exception=True)


def test_a_wrong_parameter_gradient_is_pinned_to_that_parameter(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 3))

    def loss_fn():
        y = lin(x)
        fn = y.backward_fn

        def doubled_bias(g):  # the right gradients, plus an extra copy of the bias gradient
            fn(g)
            lin.b.add_grad(g.sum(0))
        y.backward_fn = doubled_bias
        return nn.sum(nn.tanh(y))

    report = gradcheck(loss_fn, lin.parameters())
    assert report["W"].ok and not report["b"].ok
    with pytest.raises(GradCheckError, match=r"'b' entry \(\d,\)"):
        gradcheck(loss_fn, lin.parameters(), raise_exception=True)


def test_a_sparse_gradient_on_the_wrong_row_is_caught(rng):
    W = Param("W", rng.standard_normal((6, 2)), sparse=True)
    idx = np.array([1, 3])

    def bad_lookup():
        def backward(g):
            W.add_row_grad(idx + 1, g)  # off by one: rows 2 and 4 instead of 1 and 3
        return Node(W.value[idx], (), backward, "bad_embedding", requires_grad=True)

    report = gradcheck(lambda: nn.sum(nn.tanh(bad_lookup())), {"W": W}, n_untouched=6)
    assert not report["W"].ok
    assert report["W"].worst_index[0] in (1, 2, 3, 4)
    good = gradcheck(lambda: nn.sum(nn.tanh(nn.embedding(W, idx))), {"W": W}, n_untouched=6)
    assert good.ok and good["W"].n_touched_rows == 2 and good["W"].n_checked == 12  # every row: 2 touched + 4


def test_sampling_is_bounded_and_seeded(rng):
    lin = nn.Linear(20, 10, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 20))

    def loss_fn():
        return nn.sum(nn.tanh(lin(x)))

    r1 = gradcheck(loss_fn, lin.parameters(), max_entries=7, seed=3)
    r2 = gradcheck(loss_fn, lin.parameters(), max_entries=7, seed=3)
    assert r1["W"].n_checked == 7 and r1["b"].n_checked == 7
    assert r1["W"].worst_index == r2["W"].worst_index and r1.ok


def test_embedding_sampling_checks_every_touched_row(rng):
    emb = nn.Embedding(1000, 50, rng=rng, dtype=np.float64)
    idx = rng.integers(0, 1000, 30)
    report = gradcheck(lambda: nn.sum(nn.tanh(emb(idx))), emb.parameters(), max_entries=40, n_untouched=3)
    c = report["W"]
    assert c.n_touched_rows == len(np.unique(idx))
    assert c.n_checked == c.n_touched_rows + 3  # one sampled column per row when the budget is tight
    assert report.ok


def test_float32_params_are_checked_in_float64_and_restored(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=np.float32)
    before = lin.W.value
    snapshot = before.copy()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    report = gradcheck(lambda: nn.sum(nn.tanh(lin(x))), lin.parameters())
    assert report.ok
    assert lin.W.value is before and lin.W.value.dtype == np.float32
    np.testing.assert_array_equal(lin.W.value, snapshot)
    assert lin.W.grad is None and lin.b.grad is None


def test_input_gradients_and_restoring_inputs(rng):
    x = graph.constant(rng.standard_normal((3, 2)))
    v0 = x.value
    report = gradcheck(lambda: nn.sum(nn.softsign(x)), {}, inputs={"x": x})
    assert report.ok and report["x"].kind == "input" and report.rows("c")[0]["param"] == "x (input)"
    assert x.value is v0 and x.grad is None and not x.requires_grad


def test_second_order_differences_and_nondet_option():
    build = dict(CASES)["multipath_shared"]
    assert run_case(build, order=2).ok
    report = run_case(build, nondet=True)
    assert report.nondet_ok is True and report.ok


def test_loss_fn_errors(rng):
    x = graph.constant(np.ones(3))
    with pytest.raises(ValueError, match="must return a scalar Node"):
        gradcheck(lambda: nn.tanh(x), {}, inputs=[x])
    w = Param("w", np.array([np.inf]))
    with pytest.raises(FloatingPointError, match="the loss must be finite"):
        gradcheck(lambda: nn.sum(nn.param(w)), {"w": w})
    with pytest.raises(TypeError, match="must map names to fastnn.graph.Param"):
        gradcheck(lambda: nn.sum(np.ones(2)), {"w": np.zeros(2)})
    with pytest.raises(ValueError, match="'order' must be 2 or 4"):
        gradcheck(lambda: nn.sum(np.ones(2)), {}, order=3)
    with pytest.raises(ValueError, match="there is nothing to check"):
        gradcheck(lambda: nn.sum(np.ones(2)), {})


def test_a_nan_gradient_fails_and_reports_null_in_json_rows():
    w = Param("w", np.array([0.5, 1.0]))

    def loss_fn():
        y = nn.param(w)
        return Node(np.asarray(y.value.sum()), (y,), lambda g: y.add_grad(np.full(2, np.nan)), "nan_grad")

    report = gradcheck(loss_fn, {"w": w})
    assert not report.ok and report.rows("nan")[0]["max_rel_err"] is None


def test_the_take_case_catches_a_backward_that_drops_repeated_rows(monkeypatch):
    # the classic mistake: d[idx] = g keeps one gradient for a row taken several times instead of their sum
    from fastnn.nn import functional as F

    def take_assigning(a, idx):
        flat = np.asarray(idx).ravel()
        value = a.value[flat].reshape(np.shape(idx) + a.value.shape[1:])

        def backward(g):
            d = np.zeros_like(a.value)
            d[flat] = g.reshape((len(flat),) + a.value.shape[1:])
            a.add_grad(d)
        return Node(value, (a,), backward, "take")

    build = dict(CASES)["max_over_time_take"]
    assert run_case(build).ok
    monkeypatch.setattr(F, "take", take_assigning)
    monkeypatch.setattr(nn, "take", take_assigning)
    assert not run_case(build).ok


def test_the_lstm_case_catches_a_backward_that_drops_the_forget_gate_from_the_cell_carry(monkeypatch):
    # a classic BPTT slip: d loss / d c_{t-1} = d loss / d c_t (the forget gate's factor f_t left out)
    from fastnn import kernels

    def backward_without_forget(dH, H, C, A, W, *, clip=0.0, dc_last=None, n_threads=None):
        T, B, K = dH.shape
        dX = np.zeros((T, B, 4 * K))
        dh, dc = np.zeros((B, K)), np.zeros((B, K))
        for t in reversed(range(T)):
            i, f, g, o = np.split(A[t], 4, axis=1)
            tc = np.tanh(C[t + 1])
            d_h = dH[t] + dh
            d_c = dc + d_h * o * (1 - tc ** 2)
            dX[t] = np.concatenate([d_c * g * i * (1 - i), d_c * C[t] * f * (1 - f), d_c * i * (1 - g * g),
                                    d_h * tc * o * (1 - o)], axis=1)
            dc = d_c                                            # should be d_c * f
            dh = dX[t] @ W
        flat = dX.reshape(-1, 4 * K)
        return dX, flat.T @ H[:-1].reshape(-1, K), flat.sum(0), dh, dc

    build = dict(CASES)["lstm"]
    assert run_case(build).ok
    monkeypatch.setattr(kernels, "lstm_backward", backward_without_forget)
    report = run_case(build)
    assert not report.ok and not report["W_hh"].ok and not report["c0"].ok
