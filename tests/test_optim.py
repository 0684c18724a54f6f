"""fastnn.optim: one step vs the hand formula (dense and RowGrad), repeated rows, schedules, clipping, state_dict,
convergence table, errors."""
import numpy as np
import pytest

from fastnn import kernels, optim
from fastnn.graph import Module, Node, Param, RowGrad

from tests.conftest import TOL


def make_params(dtype, rng, sparse_rows=None):
    W = Param("W", rng.normal(size=(4, 3)).astype(dtype))
    b = Param("b", rng.normal(size=3).astype(dtype), decay=False)
    E = Param("E", rng.normal(size=(10, 3)).astype(dtype), sparse=True)
    ps = {"W": W, "b": b, "E": E}
    W.add_grad(rng.normal(size=(4, 3)).astype(dtype))
    b.add_grad(rng.normal(size=3).astype(dtype))
    rows = np.array([1, 4, 7] if sparse_rows is None else sparse_rows)
    E.add_row_grad(rows, rng.normal(size=(len(rows), 3)).astype(dtype))
    return ps


def snapshot(ps):
    return {n: (p.value.copy(), p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad.copy())
            for n, p in ps.items()}


def dense_g(w, g, wd, l1):
    return g + wd * w + l1 * np.sign(w)


@pytest.mark.parametrize("wd,l1", [(0.0, 0.0), (0.1, 0.0), (0.05, 0.02)])
def test_sgd_one_step_matches_formula(dtype, rng, wd, l1):
    ps = make_params(dtype, rng)
    before = snapshot(ps)
    optim.SGD(ps, lr=0.1, weight_decay=wd, l1=l1).step()
    for n, p in ps.items():
        w, g = before[n]
        d_wd, d_l1 = (wd, l1) if p.decay else (0.0, 0.0)
        want = w - dtype(0.1) * dense_g(w, g, d_wd, d_l1)
        if p.sparse:                      # lazy: untouched rows stay exactly as they were
            touched = np.zeros(w.shape[0], bool)
            touched[[1, 4, 7]] = True
            want[~touched] = w[~touched]
            np.testing.assert_array_equal(p.value[~touched], w[~touched])
        np.testing.assert_allclose(p.value, want, **TOL[dtype])
    assert isinstance(ps["E"].grad, RowGrad)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_match_formula(dtype, rng, nesterov):
    ps = make_params(dtype, rng)
    before = snapshot(ps)
    opt = optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01, l1=0.001)
    opt.step()
    opt.step()                            # same gradients again
    rows = [1, 4, 7]
    for n, p in ps.items():
        w, g = before[n]
        wd, l1 = (0.01, 0.001) if p.decay else (0.0, 0.0)
        w = w.astype(np.float64)
        v = np.zeros_like(w)
        for _ in range(2):
            gg = dense_g(w, g, wd, l1)
            v = 0.9 * v + gg
            w = w - 0.1 * ((gg + 0.9 * v) if nesterov else v)
        if p.sparse:
            mask = np.zeros(w.shape[0], bool)
            mask[rows] = True
            w[~mask] = before[n][0][~mask]
            np.testing.assert_array_equal(opt.state[n]["v"][~mask], 0)
        np.testing.assert_allclose(p.value, w, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("wd,l1", [(0.0, 0.0), (0.1, 0.01)])
def test_adagrad_two_steps_match_formula(dtype, rng, wd, l1):
    ps = make_params(dtype, rng)
    before = snapshot(ps)
    opt = optim.AdaGrad(ps, lr=0.5, eps=1e-10, weight_decay=wd, l1=l1)
    opt.step()
    opt.step()
    for n, p in ps.items():
        w, g = before[n]
        d_wd, d_l1 = (wd, l1) if p.decay else (0.0, 0.0)
        w = w.astype(np.float64)
        acc = np.zeros_like(w)
        for _ in range(2):
            gg = dense_g(w, g, d_wd, d_l1)
            acc += gg * gg
            w = w - 0.5 * gg / (np.sqrt(acc) + 1e-10)       # eps after the sqrt (torch)
        if p.sparse:
            mask = np.ones(w.shape[0], bool)
            mask[[1, 4, 7]] = False
            w[mask] = before[n][0][mask]
            assert not opt.state[n]["acc"][mask].any()        # untouched accumulator rows stay 0
        np.testing.assert_allclose(p.value, w, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_adagrad_initial_accumulator(rng):
    p = Param("w", np.zeros(3))
    p.add_grad(np.ones(3))
    optim.AdaGrad({"w": p}, lr=1.0, initial_accumulator=3.0, eps=0.0).step()
    np.testing.assert_allclose(p.value, -1.0 / np.sqrt(4.0) * np.ones(3))


def test_repeated_rows_adagrad_equals_coalesced_oracle(dtype, rng):
    E0 = rng.normal(size=(6, 4)).astype(dtype)
    idx = np.array([2, 5, 2, 2, 0, 5])
    G = rng.normal(size=(6, 4)).astype(dtype)
    p = Param("E", E0.copy(), sparse=True)
    p.add_row_grad(idx, G)
    opt = optim.AdaGrad({"E": p}, lr=0.3)
    opt.step()
    summed = np.zeros((6, 4))
    np.add.at(summed, idx, G.astype(np.float64))             # coalesce first: the update is non-linear
    want = E0.astype(np.float64).copy()
    rows = np.unique(idx)
    want[rows] -= 0.3 * summed[rows] / (np.sqrt(summed[rows] ** 2) + 1e-10)
    np.testing.assert_allclose(p.value, want, **TOL[dtype])
    np.testing.assert_allclose(opt.state["E"]["acc"], summed ** 2, **TOL[dtype])
    # the naive per-occurrence update is different, so the test can tell
    naive = E0.astype(np.float64).copy()
    acc = np.zeros_like(naive)
    for i, r in enumerate(idx):
        acc[r] += G[i] ** 2
        naive[r] -= 0.3 * G[i] / (np.sqrt(acc[r]) + 1e-10)
    assert not np.allclose(naive, want)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1), lambda ps: optim.SGD(ps, 0.1, momentum=0.5),
                                  lambda ps: optim.AdaGrad(ps, 0.1, l1=0.01, weight_decay=0.01)],
                         ids=["sgd", "momentum", "adagrad"])
def test_sparse_gradients_are_never_densified(rng, make, monkeypatch):
    ps = make_params(np.float64, rng)
    monkeypatch.setattr(RowGrad, "to_dense", lambda self: (_ for _ in ()).throw(AssertionError("densified")))
    make(ps).step()


def test_params_without_grad_or_frozen_are_skipped(rng):
    a = Param("a", np.ones(3))
    f = Param("f", np.ones(3), trainable=False)
    opt = optim.SGD({"a": a, "f": f}, lr=0.1, weight_decay=1.0)
    assert list(opt.params) == ["a"]
    opt.step()
    np.testing.assert_array_equal(a.value, 1.0)               # no grad: weight decay does not touch it either
    np.testing.assert_array_equal(f.value, 1.0)


# ---- schedules ---------------------------------------------------------------------------------------------------

def test_improves_is_one_comparison_both_ways():
    assert optim.improves(0.9, 0.8, "max") and not optim.improves(0.9, 0.8, "min")
    assert optim.improves(0.7, 0.8, "min") and not optim.improves(0.8, 0.8, "min")
    assert optim.improves(float("-inf"), None, "min") is False and optim.improves(3.0, None, "max")
    assert not optim.improves(float("nan"), 1.0, "max")
    assert not optim.improves(1.05, 1.0, "max", threshold=0.1) and optim.improves(1.2, 1.0, "max", threshold=0.1)
    assert not optim.improves(-1.05, -1.0, "min", threshold=0.1) and optim.improves(-1.2, -1.0, "min", threshold=0.1)


def test_schedule_values():
    assert optim.Constant(0.3)(10 ** 6) == 0.3
    s = optim.InverseTime(0.1, tau=100)
    assert [s(t) for t in (0, 50, 100, 200, 400)] == [0.1, 0.1, 0.1, 0.05, 0.025]
    m = optim.Linear(0.5, 0.99, steps=10)
    np.testing.assert_allclose([m(0), m(5), m(10), m(1000)], [0.5, 0.745, 0.99, 0.99])
    h = optim.HalveOnPlateau(0.2, patience=1)
    seen = []
    for score in [1.0, 0.9, 0.95, 0.93, 0.8, 0.85, 0.86]:     # losses: lower is better
        h.observe(score, mode="min")
        seen.append(h(0))
    assert seen == [0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05]
    assert h.n_reductions == 2
    with pytest.raises(ValueError, match="'mode' must be 'max'"):
        h.observe(1.0, mode=None)
    up = optim.HalveOnPlateau(optim.InverseTime(1.0, tau=1), factor=0.5)
    up.observe(0.5, mode="max")
    up.observe(0.4, mode="max")
    assert up(4) == 0.125


def test_optimizer_uses_schedule_per_step():
    p = Param("w", np.zeros(1))
    opt = optim.SGD({"w": p}, lr=optim.InverseTime(1.0, tau=1), momentum=optim.Linear(0.0, 0.5, steps=2))
    lrs = []
    for _ in range(3):
        lrs.append(opt.lr)
        p.grad = np.ones(1)
        opt.step()
    assert lrs == [1.0, 1.0, 0.5]
    assert opt.momentum == 0.5


def test_schedule_errors():
    with pytest.raises(ValueError, match="'lr' must be a non-negative finite number"):
        optim.SGD({"w": Param("w", np.zeros(1))}, lr=-1)
    with pytest.raises(TypeError, match="'lr' must be a non-negative finite number"):
        optim.SGD({"w": Param("w", np.zeros(1))}, lr="0.1")
    with pytest.raises(ValueError, match="'tau' must be > 0"):
        optim.InverseTime(0.1, tau=0)
    with pytest.raises(ValueError, match="'factor' must be <= 1"):
        optim.HalveOnPlateau(0.1, factor=2)
    with pytest.raises(ValueError, match="state must be of a Linear"):
        optim.Linear(0, 1, 3).load_state_dict(optim.Constant(1).state_dict())


# ---- state_dict --------------------------------------------------------------------------------------------------

def _run(opt, ps, grads, steps):
    for k in range(steps):
        for n, p in ps.items():
            g = grads[n][k]
            p.grad = RowGrad(*g, p.value.shape[0]) if isinstance(g, tuple) else g.copy()
        opt.step()
        if k % 2:
            opt.observe(1.0, mode="min")                      # no improvement: plateau halves


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=optim.HalveOnPlateau(0.1), momentum=optim.Linear(0.5, 0.99, 3), nesterov=True,
                         weight_decay=1e-3),
    lambda ps: optim.AdaGrad(ps, lr=optim.InverseTime(0.2, tau=2), l1=1e-3)], ids=["momentum", "adagrad"])
def test_state_dict_roundtrip_resumes_exactly(rng, make):
    def fresh():
        r = np.random.default_rng(1)
        return {"W": Param("W", r.normal(size=(5, 2))), "E": Param("E", r.normal(size=(8, 2)), sparse=True)}

    grads = {"W": [rng.normal(size=(5, 2)) for _ in range(8)],
             "E": [(np.sort(rng.choice(8, 3, replace=False)), rng.normal(size=(3, 2))) for _ in range(8)]}
    ps = fresh()
    opt = make(ps)
    _run(opt, ps, grads, 8)
    ps2 = fresh()
    opt2 = make(ps2)
    _run(opt2, ps2, {k: v[:4] for k, v in grads.items()}, 4)
    sd = opt2.state_dict()
    values = {n: p.value.copy() for n, p in ps2.items()}
    ps3 = fresh()
    for n, p in ps3.items():
        p.value[...] = values[n]
    opt3 = make(ps3)
    opt3.load_state_dict(sd)
    _run(opt3, ps3, {k: v[4:] for k, v in grads.items()}, 4)
    for n in ps:
        np.testing.assert_array_equal(ps3[n].value, ps[n].value)


def test_load_state_dict_errors():
    ps = {"W": Param("W", np.zeros((3, 2)))}
    opt = optim.AdaGrad(ps, lr=0.1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="must come from a AdaGrad; got 'SGD'"):
        opt.load_state_dict(optim.SGD(ps, lr=0.1).state_dict())
    other = optim.AdaGrad({"V": Param("V", np.zeros((3, 2)))}, lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"missing from the state \['W'\], unknown \['V'\]"):
        opt.load_state_dict(other)
    bad = optim.AdaGrad({"W": Param("W", np.zeros((4, 2)))}, lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"'W' has shape \(4, 2\) in the checkpoint but \(3, 2\) in the model"):
        opt.load_state_dict(bad)
    bad32 = optim.AdaGrad({"W": Param("W", np.zeros((3, 2), np.float32))}, lr=0.1).state_dict()
    with pytest.raises(TypeError, match="dtype float32 in the checkpoint but float64"):
        opt.load_state_dict(bad32)
    opt.load_state_dict(sd)


def test_constructor_errors():
    w = Param("w", np.zeros(2))
    with pytest.raises(TypeError, match="must be a dict name -> Param"):
        optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="at least one trainable Param"):
        optim.SGD({"w": Param("w", np.zeros(2), trainable=False)}, lr=0.1)
    with pytest.raises(ValueError, match="'momentum' must be > 0 with nesterov=True"):
        optim.SGD({"w": w}, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="'weight_decay' must be >= 0"):
        optim.AdaGrad({"w": w}, lr=0.1, weight_decay=-1.0)
    with pytest.raises(TypeError, match=r"'params\['w'\]' must be a fastnn.graph.Param"):
        optim.SGD({"w": np.zeros(2)}, lr=0.1)


# ---- clipping ----------------------------------------------------------------------------------------------------

def test_clip_grad_norm_exact_and_idempotent(dtype, rng):
    ps = make_params(dtype, rng)
    g = np.concatenate([ps["W"].grad.ravel(), ps["b"].grad.ravel(), ps["E"].grad.values.ravel()]).astype(np.float64)
    norm = np.sqrt(np.sum(g * g))
    before = snapshot(ps)
    got = optim.clip_grad_norm(ps, 1.0)
    np.testing.assert_allclose(got, norm, rtol=1e-6)          # the pre-clip norm (torch)
    coef = 1.0 / (norm + 1e-6)
    for n, p in ps.items():
        gg = p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad
        np.testing.assert_allclose(gg, before[n][1] * coef, **TOL[dtype])
    assert isinstance(ps["E"].grad, RowGrad)
    new = optim.global_grad_norm(ps)
    np.testing.assert_allclose(new, norm * coef, rtol=1e-6)
    assert new <= 1.0
    again = optim.clip_grad_norm(ps, 1.0)                        # re-clipping changes (almost) nothing
    np.testing.assert_allclose(again, new, rtol=1e-6)
    np.testing.assert_allclose(optim.global_grad_norm(ps), new, rtol=2e-6)


def test_clip_grad_norm_below_threshold_is_untouched(rng):
    ps = make_params(np.float64, rng)
    before = snapshot(ps)
    optim.clip_grad_norm(ps, 1e6)
    for n, p in ps.items():
        gg = p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad
        np.testing.assert_array_equal(gg, before[n][1])


def test_clip_grad_norm_nonfinite(rng):
    ps = make_params(np.float64, rng)
    ps["b"].grad[1] = np.nan
    with pytest.raises(FloatingPointError, match="first non-finite: 'b'"):
        optim.clip_grad_norm(ps, 1.0, error_if_nonfinite=True)
    assert np.isnan(optim.clip_grad_norm(ps, 1.0))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_clip_grad_norm_of_a_float32_gradient_past_float32_range():
    """A diverging float32 run: the squared norm overflows float32 but not float64; it is clipped with the float64
    norm, silently (no numpy overflow warning for a case the code handles)."""
    p = Param("W", np.zeros(4, np.float32))
    p.grad = np.full(4, 1e30, np.float32)
    norm = optim.clip_grad_norm({"W": p}, 1.0)
    assert norm == pytest.approx(2e30, rel=1e-6)
    np.testing.assert_allclose(p.grad, 0.5, rtol=1e-5)


def test_clip_grad_value(dtype, rng):
    ps = make_params(dtype, rng)
    before = snapshot(ps)
    optim.clip_grad_value(ps, 0.5)
    for n, p in ps.items():
        gg = p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad
        np.testing.assert_array_equal(gg, np.clip(before[n][1], -0.5, 0.5))
    with pytest.raises(ValueError, match="'clip' must be > 0"):
        optim.clip_grad_value(ps, 0.0)


# ---- regularization ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["kl", "l1"])
def test_sparsity_penalty_gradient(rng, kind):
    H0 = rng.uniform(0.05, 0.95, size=(7, 4))

    def f(H):
        return float(optim.sparsity_penalty(Node(H), target=0.1, weight=0.7, kind=kind).value)

    h = Node(H0.copy())
    pen = optim.sparsity_penalty(h, target=0.1, weight=0.7, kind=kind)
    pen.backward()
    num = np.zeros_like(H0)
    for i in np.ndindex(H0.shape):
        d = np.zeros_like(H0)
        d[i] = 1e-6
        num[i] = (f(H0 + d) - f(H0 - d)) / 2e-6
    np.testing.assert_allclose(h.grad, num, rtol=1e-5, atol=1e-8)


def test_weight_penalty_skips_biases():
    ps = {"W": Param("W", np.full((2, 2), 2.0)), "b": Param("b", np.full(2, 5.0), decay=False)}
    assert optim.weight_penalty(ps, weight_decay=0.5, l1=0.1) == pytest.approx(0.25 * 16 + 0.1 * 8)


# ---- convergence table: quadratic and Rosenbrock -----------------------------------------------------------------

class Fn(Module):
    """A 2-D test function as a model: loss() returns a scalar Node with the exact gradient."""

    def __init__(self, kind, x0):
        self.kind = kind
        self.x = Param("x", np.array(x0, dtype=np.float64))

    def loss(self, batch=None):
        x = self.x.value
        if self.kind == "quadratic":              # ill-conditioned parabola, minimum at (1, -2)
            d = x - np.array([1.0, -2.0])
            val, grad = 0.5 * (d[0] ** 2 + 10 * d[1] ** 2), np.array([d[0], 10 * d[1]])
        else:                                     # Rosenbrock, minimum at (1, 1)
            a, b = x
            val = (1 - a) ** 2 + 100 * (b - a * a) ** 2
            grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return Node(np.asarray(val), (), lambda g: self.x.add_grad(float(g) * grad), "fn")


OPTIMIZERS = {  # name -> (make, steps) per function
    "sgd": {"quadratic": (lambda p: optim.SGD(p, 0.1), 300), "rosenbrock": (lambda p: optim.SGD(p, 1e-3), 20000)},
    "momentum": {"quadratic": (lambda p: optim.SGD(p, 0.05, momentum=0.9), 300),
                 "rosenbrock": (lambda p: optim.SGD(p, 2e-4, momentum=0.9), 10000)},
    "nesterov": {"quadratic": (lambda p: optim.SGD(p, 0.05, momentum=0.9, nesterov=True), 300),
                 "rosenbrock": (lambda p: optim.SGD(p, 2e-4, momentum=0.9, nesterov=True), 10000)},
    "adagrad": {"quadratic": (lambda p: optim.AdaGrad(p, 1.0), 500),
                "rosenbrock": (lambda p: optim.AdaGrad(p, 0.5), 20000)},
}
TARGET = {"quadratic": np.array([1.0, -2.0]), "rosenbrock": np.array([1.0, 1.0])}


@pytest.mark.parametrize("fn", ["quadratic", "rosenbrock"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_convergence_table(fn, name):
    model = Fn(fn, [-1.0, 1.5] if fn == "rosenbrock" else [4.0, 3.0])
    make, steps = OPTIMIZERS[name][fn]
    opt = make(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        model.loss().backward()
        opt.step()
    np.testing.assert_allclose(model.x.value, TARGET[fn], atol=2e-2)


@pytest.mark.parametrize("fn", ["quadratic", "rosenbrock"])
@pytest.mark.parametrize("method", ["L-BFGS-B", "CG"])
def test_convergence_batch_methods(fn, method):
    model = Fn(fn, [-1.0, 1.5] if fn == "rosenbrock" else [4.0, 3.0])
    res = optim.minimize(model, None, method, maxiter=500, tol=1e-12)
    np.testing.assert_allclose(model.x.value, TARGET[fn], atol=1e-4)
    assert res.fun == pytest.approx(float(model.loss().value), abs=1e-12)   # the best point is in the params
    assert len(res.history["fun"]) == res.nfev >= res.nit
    assert all(np.diff(res.history["seconds"]) >= 0)


# ---- iterate averaging -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.5, weight_decay=0.01),
                                  lambda ps: optim.AdaGrad(ps, 0.2, weight_decay=0.01)], ids=["momentum", "adagrad"])
def test_param_average_is_the_mean_of_all_iterates(rng, make):
    ps = {"W": Param("W", rng.normal(size=(5, 2))), "E": Param("E", rng.normal(size=(8, 2)), sparse=True)}
    opt, avg = make(ps), optim.ParamAverage(ps)
    seen = {n: [p.value.copy()] for n, p in ps.items()}
    for step in range(12):
        for p in ps.values():
            p.grad = None
        ps["W"].add_grad(rng.normal(size=(5, 2)))
        if step % 3:                                  # some steps leave the table alone, some rows wait long
            rows = np.sort(rng.choice(4, 2, replace=False))
            ps["E"].add_row_grad(rows, rng.normal(size=(2, 2)))
        avg.before_step()
        opt.step()
        avg.after_step()
        for n, p in ps.items():
            seen[n].append(p.value.copy())
    mean = avg.mean()
    for n in ps:
        np.testing.assert_allclose(mean[n], np.mean(seen[n], axis=0), rtol=1e-12, atol=1e-12, err_msg=n)
    assert not np.allclose(mean["E"], ps["E"].value)
    current = {n: p.value.copy() for n, p in ps.items()}
    with avg.applied():
        np.testing.assert_array_equal(ps["W"].value, mean["W"])
    np.testing.assert_array_equal(ps["E"].value, current["E"])          # restored after the block


def test_param_average_state_dict_roundtrip_and_errors(rng):
    ps = {"E": Param("E", rng.normal(size=(6, 2)), sparse=True)}
    avg = optim.ParamAverage(ps)
    ps["E"].add_row_grad(np.array([2]), np.ones((1, 2)))
    avg.before_step()
    ps["E"].value[2] += 1.0
    avg.after_step()
    other = optim.ParamAverage(ps)
    other.load_state_dict(avg.state_dict())
    np.testing.assert_array_equal(other.mean()["E"], avg.mean()["E"])
    with pytest.raises(ValueError, match="averaged parameters must be the model's"):
        optim.ParamAverage({"F": Param("F", np.zeros((6, 2)), sparse=True)}).load_state_dict(avg.state_dict())


def test_by_name_is_the_command_line_choice(rng):
    ps = {"W": Param("W", np.zeros((2, 2)))}
    assert isinstance(optim.by_name("adagrad", ps, 0.1, weight_decay=0.1), optim.AdaGrad)
    assert isinstance(optim.by_name("sgd", ps, 0.1), optim.SGD)
    with pytest.raises(ValueError, match="fit: 'optimizer' must be one of adagrad, sgd; got 'adam'"):
        optim.by_name("adam", ps, 0.1, "fit")


# ---- AdaGrad's one-call update of every plain parameter (kernels.adagrad_many_) ----------------------------------

def _adagrad_parts(rng, dtype):
    """Parameters as a model has them: dense matrices and biases, scattered rows, a range of rows (all of a bias
    column), with and without weight decay; sizes that cut into several tasks and into one."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)
    out = []
    for shape, rows, l2 in [((100, 100), None, 0.0), ((7,), None, 0.0), ((30, 50), None, 0.01),
                            ((14115, 1), np.arange(14115), 0.0), ((3000, 100), np.unique(rng.integers(0, 3000, 900)),
                                                                  0.0),
                            ((500, 16), np.arange(40, 400), 0.02), ((20, 5), np.array([3]), 0.0)]:
        w, acc = arr(*shape), np.abs(arr(*shape))
        g = arr(*shape) if rows is None else arr(len(rows), shape[1])
        out.append((w, acc, g, rows, l2))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_adagrad_many_same_bits_as_one_call_per_parameter(dtype, rng, n_threads):
    parts = _adagrad_parts(rng, dtype)
    ref = [(w.copy(), a.copy(), g, r, l2) for w, a, g, r, l2 in parts]
    for w, a, g, r, l2 in ref:
        if r is None:
            kernels.adagrad_(w, a, g, lr=0.05, eps=1e-10, l2=l2)
        else:
            kernels.sparse_adagrad_(w, a, r, g, lr=0.05, eps=1e-10, l2=l2)
    kernels.adagrad_many_(parts, lr=0.05, eps=1e-10, n_threads=n_threads)
    for (w, a, *_), (w0, a0, *_) in zip(parts, ref):
        assert np.array_equal(w, w0) and np.array_equal(a, a0)


def test_adagrad_many_checks_its_parts(rng):
    w, a = np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="unique and ascending"):
        kernels.adagrad_many_([(w, a, np.ones((2, 3), np.float32), np.array([2, 1]), 0.0)], lr=0.1)
    with pytest.raises(TypeError, match="one dtype"):
        kernels.adagrad_many_([(w, a, np.ones_like(w), None, 0.0),
                               (np.zeros(3), np.zeros(3), np.ones(3), None, 0.0)], lr=0.1)
    with pytest.raises(ValueError, match="different parameter"):
        kernels.adagrad_many_([(w, a, np.ones_like(w), None, 0.0), (w, np.zeros_like(w), np.ones_like(w), None, 0.0)],
                              lr=0.1)
    with pytest.raises(ValueError, match="l2"):
        kernels.adagrad_many_([(w, a, np.ones_like(w), None, -1.0)], lr=0.1)
    kernels.adagrad_many_([(w, a, np.ones((0, 3), np.float32), np.array([], int), 0.0)], lr=0.1)   # nothing to do
    assert not w.any()


@pytest.mark.parametrize("l1", [0.0, 0.01])
def test_adagrad_step_same_bits_as_each_parameter_alone(rng, l1):
    """optim.AdaGrad.step applies its plain updates in one call; the result is the per-parameter one."""
    parts = _adagrad_parts(rng, np.float32)
    params = {f"p{i}": Param(f"p{i}", w.copy(), sparse=r is not None, decay=l2 > 0) for i, (w, _, _, r, l2)
              in enumerate(parts)}
    opt = optim.AdaGrad(params, lr=0.05, weight_decay=0.01, l1=l1, initial_accumulator=0.1)
    ref = {n: (p.value.copy(), opt.state[n]["acc"].copy()) for n, p in params.items()}
    for (n, p), (w, _, g, r, _) in zip(params.items(), parts):
        p.grad = g if r is None else RowGrad(np.asarray(r, np.intp), g, w.shape[0])
    opt.step()
    for (n, p), (w, _, g, r, _) in zip(params.items(), parts):
        w0, a0 = ref[n]
        l2 = 0.01 if p.decay else 0.0
        if r is None:
            kernels.adagrad_(w0, a0, g, lr=0.05, l2=l2, l1=l1 if p.decay else 0.0)
        else:
            G = optim.base.l1_rows(g, w0, r, l1) if l1 and p.decay else g
            kernels.sparse_adagrad_(w0, a0, r, G, lr=0.05, l2=l2)
        assert np.array_equal(p.value, w0) and np.array_equal(opt.state[n]["acc"], a0), n


def test_weight_penalty_takes_the_coefficients_the_optimizers_take():
    """A negative weight_decay (or l1) gave a negative penalty, an objective unbounded below, silently (the
    optimizers refuse it), also through a classifier's objective(x, y, weight_decay); a string failed deep inside."""
    from fastnn.models.classifiers import LogisticRegression
    ps = {"w": Param("w", np.full(4, 2.0))}
    for kw, err in ((dict(weight_decay=-0.5), ValueError), (dict(l1=-0.1), ValueError),
                    (dict(weight_decay="0.1"), TypeError), (dict(weight_decay=float("nan")), ValueError)):
        with pytest.raises(err, match=r"weight_penalty: '(weight_decay|l1)' must be"):
            optim.weight_penalty(ps, **kw)
    m = LogisticRegression(2, seed=0, n_features=3)
    with pytest.raises(ValueError, match=r"weight_penalty: 'weight_decay' must be >= 0; got -1"):
        m.objective(np.ones((4, 3)), np.array([0, 1, 0, 1]), weight_decay=-1)
    assert m.objective(np.ones((4, 3)), np.array([0, 1, 0, 1]), weight_decay=0.0) == pytest.approx(np.log(2))
