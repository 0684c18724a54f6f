"""Small, fast versions of the RNN experiments (fastnn.experiments) and their CLI."""
import json
import sys

import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.cli import main
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments import jsonable, plots
from fastnn.experiments.adding import (DEFAULTS, MODELS, AddingRNN, format_table, make_model, run_adding, summary,
                                      train)
from fastnn.experiments import clipping
from fastnn.experiments.clipping import run_clipping
from fastnn.experiments.gradients import build, grad_norm_profile, hidden_state_grads, parse_spec, run_gradients

ACTS = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0)}


# the initial scales the experiments use (AddingRNN takes them without defaults: DEFAULTS is their one home)
INIT = {k: DEFAULTS[k] for k in ("small_std", "in_std", "out_std")}


def _rnn(kind, hidden, **kw):
    return AddingRNN(kind, hidden, **{**INIT, **kw})


# ---- the task --------------------------------------------------------------------------------------------------

def test_generator_statistics():
    X, y = adding(20000, 40, seed=0, dtype=np.float64)
    m = X[:, :, 1]
    assert (m[:, :20].sum(1) == 1).all() and (m[:, 20:].sum(1) == 1).all()
    first, second = m[:, :20].argmax(1), m[:, 20:].argmax(1)
    assert np.bincount(first, minlength=20).min() > 800    # positions uniform within each half (1000 expected)
    assert np.bincount(second, minlength=20).min() > 800
    assert y.mean() == pytest.approx(1.0, abs=0.01)         # sum of two U(0, 1)
    assert np.mean((y - 1) ** 2) == pytest.approx(ADDING_BASELINE_MSE, abs=0.005)  # predicting 1 scores 1/6
    assert ADDING_BASELINE_MSE == pytest.approx(1 / 6) and abs(ADDING_BASELINE_MSE - 0.1767) > 0.005


# ---- models ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", MODELS)
def test_model_starts_at_the_mean_and_learns_a_batch(kind):
    model = _rnn(kind, 16, rng=0, out_std=0.3, dtype=np.float64)
    X, y = adding(32, 8, seed=1, dtype=np.float64)
    assert model.predict(X).shape == (32,) and model.out.b.value[0] == 1.0
    before = float(model.loss((X, y)).value)
    opt = optim.SGD(model.parameters(), lr=0.05)
    for _ in range(400):
        model.zero_grad()
        model.loss((X, y)).backward()
        optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
    # the small-init ReLU net forgets its inputs within a step or two, so it cannot fit much of a batch
    assert float(model.loss((X, y)).value) < (0.99 if kind == "relu" else 0.5) * before
    assert model.mse(X, y) == pytest.approx(float(model.loss((X, y)).value), rel=1e-9)


def test_irnn_initial_recurrent_jacobian_is_the_identity():
    model = _rnn("irnn", 7, rng=0, dtype=np.float64)
    rnn = model.rnn
    np.testing.assert_array_equal(rnn.W_hh.value, np.eye(7))
    np.testing.assert_array_equal(rnn.b.value, 0)
    # d h_1 / d h_0 through the kernels' forward and backward, at a state where every unit is active (x = 0)
    h0 = nn.as_node(np.abs(np.random.default_rng(0).normal(size=(7, 7))) + 0.1)
    h0.requires_grad = True
    H, _ = rnn(np.zeros((1, 7, 2)), h0)
    np.testing.assert_array_equal(H.value[0], h0.value)         # h_1 = relu(I h_0) = h_0
    H.backward(np.eye(7)[None])                                  # example i seeds unit i
    np.testing.assert_array_equal(h0.grad, np.eye(7))            # so row i of the Jacobian is e_i
    # and the other models' recurrent matrices are not the identity
    assert not np.allclose(_rnn("relu", 7, rng=0).rnn.W_hh.value, np.eye(7))
    assert np.abs(_rnn("relu", 7, rng=0, small_std=1e-3).rnn.W_hh.value).max() < 0.01


def test_model_errors_and_config():
    with pytest.raises(ValueError, match="'kind' must be one of"):
        _rnn("lstm", 4, rng=0)
    with pytest.raises(ValueError, match="'small_std' must be a number >= 0"):
        _rnn("relu", 4, rng=0, small_std=-1)
    m = _rnn("irnn", 5, rng=0, in_std=0.2)
    assert AddingRNN.from_config(json.loads(json.dumps(m.config()))).config() == m.config()
    assert "irnn" in repr(m)


# ---- experiment 2: d loss / d h_t --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", MODELS)
def test_hidden_state_grads_match_finite_differences(kind):
    """d loss_i / d h_t from the graph + kernels equals central differences of a NumPy re-implementation where a
    perturbation is added to h_t after the activation."""
    T, B, K = 6, 3, 5
    model = _rnn(kind, K, rng=0, in_std=0.5, small_std=0.5, out_std=0.5, dtype=np.float64)
    X, y = adding(B, T, seed=1, dtype=np.float64)
    g = hidden_state_grads(model, X, y)
    assert g.shape == (T, B, K)
    f = ACTS[model.rnn.activation]
    Wi, W, b = model.rnn.W_ih.value, model.rnn.W_hh.value, model.rnn.b.value
    wo, bo = model.out.W.value, model.out.b.value

    def loss_i(t, i, k, d):
        h = np.zeros((B, K))
        for s in range(T):
            h = f(X[:, s] @ Wi.T + h @ W.T + b)
            if s == t:
                h[i, k] += d
        return float((h[i] @ wo[0] + bo[0] - y[i]) ** 2)

    eps = 1e-6
    fd = np.array([[[(loss_i(t, i, k, eps) - loss_i(t, i, k, -eps)) / (2 * eps) for k in range(K)]
                    for i in range(B)] for t in range(T)])
    assert np.abs(fd).max() > 0.01
    np.testing.assert_allclose(g, fd, atol=1e-7)
    assert all(p.grad is None for p in model.parameters().values())  # the measurement leaves no gradients behind


def test_gradient_profiles_vanish_explode_or_neither():
    X, y = adding(64, 60, seed=2)
    s = dict(DEFAULTS, hidden=64)
    sig, irnn, tanh2 = (grad_norm_profile(build(m, s, 0), X, y) for m in ("sigmoid", "irnn", "tanh_x2"))
    assert sig.shape == irnn.shape == tanh2.shape == (60,)
    assert sig[-1] < 1e-6 * sig[0]           # vanishing: gone after 60 steps
    assert 0.3 * irnn[0] < irnn[-1] < 3 * irnn[0]  # identity recurrence: neither at initialisation
    assert tanh2[-1] > 100 * tanh2[0]        # chaotic tanh (W_hh x 2): exploding


def test_model_specs():
    assert parse_spec("tanh") == ("tanh", 1.0) and parse_spec("irnn_x1.5") == ("irnn", 1.5)
    for bad in ("lstm", "tanh_x", "tanh_xa", "tanh_x-1"):
        with pytest.raises(ValueError, match="optionally followed by _x<gain>"):
            parse_spec(bad)
    a, b = build("tanh", DEFAULTS, 0), build("tanh_x2", DEFAULTS, 0)
    np.testing.assert_allclose(b.rnn.W_hh.value, 2 * a.rnn.W_hh.value)


def test_run_gradients_small():
    res = run_gradients(20, models=("tanh", "irnn"), train_steps=30, n=16, n_test=50, hidden=8)
    assert [(r["model"], r["state"]) for r in res] == [("tanh", "untrained"), ("tanh", "trained"),
                                                       ("irnn", "untrained"), ("irnn", "trained")]
    for r in res:
        assert len(r["norms"]) == 20 and r["steps"] == (30 if r["state"] == "trained" else 0)
        assert r["rate"] == pytest.approx(r["decay"] ** (1 / 19))


# ---- experiment 3: clipping --------------------------------------------------------------------------------------

def _exploding_grads(dtype=np.float32):
    """A ReLU net with an expanding recurrent matrix (1.2 I): its gradient norm is far above 1."""
    model = _rnn("irnn", 10, rng=0, in_std=0.5, out_std=0.5, dtype=dtype)
    model.rnn.W_hh.value *= 1.2
    X, y = adding(8, 30, seed=0, dtype=dtype)
    model.zero_grad()
    model.loss((X, y)).backward()
    return model


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0])
def test_norm_clipping_bounds_the_norm_exactly(c, dtype):
    model = _exploding_grads(dtype)
    params = model.parameters()
    before = {k: p.grad.copy() for k, p in params.items()}
    norm = optim.clip_grad_norm(params, c)
    assert norm > 10 * c
    after = optim.global_grad_norm(params)
    if dtype == np.float64:
        assert after == pytest.approx(c * norm / (norm + 1e-6), rel=1e-12) and after <= c  # torch's 1e-6
    else:
        assert after == pytest.approx(c, rel=1e-6)  # float32 rounding of the scaled entries can land 1 ulp above
    for k, p in params.items():                # and the direction is unchanged
        np.testing.assert_allclose(p.grad, before[k] * (c / (norm + 1e-6)), rtol=1e-6)


def test_value_clipping_bounds_every_entry():
    model = _exploding_grads()
    params = model.parameters()
    optim.clip_grad_value(params, 0.1)
    assert max(np.abs(p.grad).max() for p in params.values()) == pytest.approx(0.1)


def test_run_clipping_small():
    res = run_clipping(12, steps=40, hidden=8, n_test=50, eval_every=20, lr=0.5, clip=0.1, thresholds=(0.1, 1.0),
                       heuristic_steps=10, workers=1)
    assert [(r["role"], r["clip"]) for r in res] == [("compare", "none"), ("compare", "norm"),
                                                     ("compare", "temporal"), ("compare", "value"),
                                                     ("heuristic", "norm"), ("sweep", "norm"), ("sweep", "norm"),
                                                     ("sweep", "temporal"), ("sweep", "temporal")]
    assert [r["threshold"] for r in res[5:7]] == [0.1, 1.0] and "Mikolov" in res[2]["label"]
    c_t = res[2]["threshold"]     # temporal clipping's own heuristic threshold, and the sweep around it
    assert [r["threshold"] for r in res[-2:]] == pytest.approx([0.1 * c_t, 10 * c_t])
    for r in res:
        g = np.asarray(r["grad_norm"])
        assert r["n_over"] == int((g[:r["steps"]] > r["threshold"]).sum())
        assert r["max_grad_norm"] == pytest.approx(g.max())
        assert 0 <= r["active_units"] <= 8
        assert len(r["loss"]) == len(g) and r["eval_steps"][-1] == r["steps"]
    assert res[1]["n_over"] > 0
    assert not res[1]["diverged"]
    # the heuristic threshold is the mean gradient norm of 10 unclipped steps (lr decaying over those 10)
    s = dict(DEFAULTS, hidden=8, lr=0.5, kind="irnn")
    errors = []
    h = train(make_model("irnn", s, 0), T=12, steps=10, lr=0.5, lr_end=s["lr_end"], clip=None, seed=[0, 3],
              on_step=lambda m, batch: errors.append(clipping.bptt_error_max(m, batch)))
    assert res[4]["threshold"] == pytest.approx(np.mean(h["grad_norm"]), rel=1e-6)
    assert c_t == pytest.approx(np.mean(errors), rel=1e-6)
    assert h["grad_norm"][0] == pytest.approx(res[0]["grad_norm"][0], rel=1e-6)   # same start as the "none" run


def test_temporal_clipping_clips_the_bptt_error_not_the_sum():
    """clip="temporal" trains through nn.RNN(clip=c) (the kernel clips each step's error) and restores the layer's
    clip afterwards; with a tiny c the gradient differs from the unclipped one but is not bounded entry-wise by c
    (it is a sum over steps), unlike clip_grad_value."""
    model = _exploding_grads(np.float64)
    g_full = model.rnn.W_hh.grad.copy()
    X, y = adding(8, 30, seed=0, dtype=np.float64)
    model.rnn.clip = 1e-4
    model.zero_grad()
    model.loss((X, y)).backward()
    g_temp = model.rnn.W_hh.grad.copy()
    assert not np.allclose(g_temp, g_full) and np.abs(g_temp).max() > 1e-4
    model.rnn.clip = 0.0
    h = train(model, T=30, steps=3, lr=1e-3, clip="temporal", max_norm=1e-4)
    assert model.rnn.clip == 0.0 and h["steps"] == 3
    with pytest.raises(ValueError, match="'clip' must be one of"):
        train(model, T=30, steps=1, lr=1e-3, clip="global")


def test_bptt_error_max_is_what_temporal_clipping_clips():
    """Clipping the BPTT error at twice its largest element changes nothing; at half of it, the gradient."""
    model = _exploding_grads(np.float64)
    X, y = adding(8, 30, seed=0, dtype=np.float64)
    m = clipping.bptt_error_max(model, (X, y))
    grads = []
    for c in (0.0, 2 * m, m / 2):
        model.rnn.clip = c
        model.zero_grad()
        model.loss((X, y)).backward()
        grads.append(model.rnn.W_hh.grad.copy())
    model.rnn.clip = 0.0
    assert m > 0
    np.testing.assert_array_equal(grads[0], grads[1])
    assert not np.allclose(grads[0], grads[2])


def test_train_stops_on_divergence():
    model = _rnn("irnn", 8, rng=0, in_std=0.5)
    model.rnn.W_hh.value *= 3.0                               # h_t grows like 3^t: overflows float32
    h = train(model, T=200, steps=5, lr=0.1, clip=None, test=adding(10, 200, 0), eval_every=0)
    assert h["diverged"] and h["steps"] == 0 and np.isnan(h["test_mse"][-1])
    assert jsonable(h["test_mse"])[-1] is None


# ---- experiment 1: the adding problem ----------------------------------------------------------------------------

def test_run_adding_small_irnn_learns_short_sequences():
    res = run_adding(10, models=("tanh", "irnn"), steps=1000, n_test=300, eval_every=500, hidden=20, in_std=0.1,
                     lr=0.05)
    assert [r["model"] for r in res] == ["tanh", "irnn"]
    for r in res:
        assert r["eval_steps"] == [0, 500, 1000] and r["steps"] == 1000 and r["T"] == 10
        assert r["baseline_mse"] == ADDING_BASELINE_MSE
    assert res[1]["final_test_mse"] < 0.5 * ADDING_BASELINE_MSE
    s = summary(res)
    assert list(s[0]) == ["model", "T", "steps", "final_test_mse", "baseline_mse", "seconds"]
    assert "| irnn | 10 | 1000 |" in format_table(res)


def test_run_adding_grid_small_keeps_the_best_valid_point():
    from fastnn.experiments.adding import format_grid_table, run_adding_grid
    res = run_adding_grid(8, models=("tanh", "irnn"), grid=dict(lr=[1e-3, 0.05], clip=[1.0, 100.0]), steps=30,
                          eval_every=15, hidden=6, n_test=40, workers=1)
    assert [r["model"] for r in res] == ["tanh", "irnn"]
    for r in res:
        assert [(g["lr"], g["clip"]) for g in r["grid"]] == [(1e-3, 1.0), (1e-3, 100.0), (0.05, 1.0), (0.05, 100.0)]
        assert r["valid_mse"] == min(g["valid_mse"] for g in r["grid"])
        assert r["valid_curve"][-1] == r["valid_mse"] and r["eval_steps"] == [0, 15, 30]
        chosen = [g for g in r["grid"] if (g["lr"], g["clip"]) == (r["lr"], r["clip"])][0]
        assert chosen["test_mse"] == r["final_test_mse"] and r["settings"]["lr_end"] is None
    assert "| irnn | 8 |" in format_grid_table(res)
    with pytest.raises(ValueError, match=r"grid\['clip'\] must be"):
        run_adding_grid(8, grid=dict(lr=[0.1], clip=[0]))
    with pytest.raises(ValueError, match="'workers' must be an int >= 1"):
        run_adding_grid(8, workers=0)


def test_cli_adding_grid_json(capsys):
    assert main(["experiment", "adding", "--grid", "--T", "6", "--steps", "4", "--eval-every", "2", "--hidden", "4",
                 "--models", "relu", "--workers", "1", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["model"] for o in out] == ["relu"] and out[0]["steps"] == 4
    assert out[0]["lr"] in (1e-3, 1e-2, 1e-1) and out[0]["clip"] in (1, 10, 100, 1000)


def test_run_adding_rejects_unknown_settings():
    with pytest.raises(TypeError, match="unknown settings"):
        run_adding(10, steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="each model must be one of"):
        run_adding(10, models=("gru",), steps=1)


# ---- CLI and plots -----------------------------------------------------------------------------------------------

def test_cli_adding_json(capsys):
    rc = main(["experiment", "adding", "--T", "8", "--steps", "20", "--eval-every", "10", "--hidden", "8",
               "--seed", "3", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["model"] for o in out] == list(MODELS)
    for o in out:
        assert set(o) == {"model", "T", "steps", "final_test_mse", "baseline_mse", "seconds"}
        assert o["T"] == 8 and o["steps"] == 20 and o["baseline_mse"] == pytest.approx(1 / 6)


def test_cli_gradients_and_clipping_tables(capsys, tmp_path):
    assert main(["experiment", "gradients", "--T", "8", "--train-steps", "5", "--hidden", "4", "--quiet",
                 "--models", "sigmoid", "irnn_x1.1", "--lr-end", "none"]) == 0
    out = capsys.readouterr().out
    assert "| sigmoid | untrained | 0 |" in out and "| irnn_x1.1 | trained | 5 |" in out
    assert main(["experiment", "clipping", "--T", "8", "--steps", "5", "--hidden", "4", "--quiet", "--json",
                 "--heuristic-steps", "3", "--workers", "1", "--out", str(tmp_path / "c.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "c.json").read_text())    # --out: every result, curves included
    assert [r["clip"] for r in saved] == [o["clip"] for o in out] and len(saved[0]["loss"]) == 5
    assert [o["clip"] for o in out] == ["none", "norm", "temporal", "value", "norm"] + ["norm"] * 6 + ["temporal"] * 2
    assert [o["role"] for o in out][-9:] == ["heuristic"] + ["sweep"] * 8


@pytest.mark.parametrize("argv, msg", [(["--lr", "-1"], "--lr must be > 0"), (["--steps", "x"], "--steps must be"),
                                       (["--T", "1"], "'T' must be an integer >= 2"), (["--lr-end", "0"], "--lr-end must be > 0")])
def test_cli_bad_values(argv, msg, capsys):
    assert main(["experiment", "adding", "--quiet"] + argv) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1


def test_cli_gradients_bad_model(capsys):
    assert main(["experiment", "gradients", "--models", "gru", "--quiet"]) == 2
    assert "--models: a model must be one of" in capsys.readouterr().err


def test_plots_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    a = run_adding(6, models=("irnn",), steps=4, eval_every=2, hidden=4, n_test=20)
    g = run_gradients(6, models=("irnn",), train_steps=2, n=4, hidden=4, n_test=20)
    c = run_clipping(6, steps=4, hidden=4, n_test=20, eval_every=2, heuristic_steps=2, thresholds=(0.5, 5.0),
                     workers=1)
    for fn, res, name in ((plots.plot_adding, a, "a.png"), (plots.plot_gradients, g, "g.png"),
                          (plots.plot_clipping, c, "c.png")):
        path = fn(res, str(tmp_path / name))
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    said = []
    assert plots.plot_gradients([], str(tmp_path / "x.png"), log=said.append) is None
    assert "matplotlib is not installed" in said[0] and not (tmp_path / "x.png").exists()


def test_time_step_runs():
    from fastnn.experiments.adding import time_step
    t = time_step(T=5, batch_size=2, hidden=3, repeats=2)
    assert 0 < t["kernels_s"] and 0 < t["step_s"]


@pytest.mark.parametrize("workers", [1, 2])
def test_map_jobs_keeps_job_order_and_reports_each_result(workers):
    from fastnn.experiments import map_jobs
    seen = []
    assert map_jobs(abs, [-3, 1, -2], workers=workers, on_result=seen.append) == [3, 1, 2]
    assert seen == [3, 1, 2]
    with pytest.raises(ValueError, match="'workers' must be an int >= 1"):
        map_jobs(abs, [1], workers=0)


@pytest.mark.parametrize("argv, says", [
    (["adding", "--models", "tanh", "relu", "tanh", "--steps", "2", "--T", "5", "--hidden", "4"],
     "--models tanh is given twice"),
    (["gradients", "--models", "relu", "relu", "--train-steps", "2", "--T", "5", "--hidden", "4"],
     "--models relu is given twice"),
    (["clipping", "--thresholds", "1", "2", "1", "--steps", "2", "--T", "5", "--hidden", "4", "--heuristic-steps",
      "0", "--workers", "1"], "--thresholds 1 is given twice")])
def test_cli_a_model_given_twice_is_refused(capsys, argv, says):
    """--models tanh tanh trained (and reported) the same model twice: one line, exit 2, before any training."""
    assert main(["experiment", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and says in err and len(err.strip().splitlines()) == 1, err
