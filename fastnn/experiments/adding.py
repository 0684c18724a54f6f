"""Experiment 1: the adding problem with tanh, sigmoid, ReLU and identity-initialised ReLU (IRNN) networks.

Task (fastnn.data.adding, Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015): read a length-T sequence of
(value, marker) pairs and output the sum of the two marked values.  Predicting 1 always scores MSE 1/6
(ADDING_BASELINE_MSE; Le et al. quote 0.1767), the baseline to beat.

Every model is h_t = f(W_ih x_t + W_hh h_{t-1} + b) with 100 hidden units and a linear read-out of h_T, trained by
mini-batch SGD with global-norm clipping on fresh training batches (the generator is infinite), with the same
settings and step budget for all four; the test MSE on a fixed test set is recorded against steps.

>>> results = run_adding(T=10, steps=20, models=("tanh",), hidden=8, eval_every=10, seed=0)   # README: T=150, 20000
>>> [(r["model"], r["steps"]) for r in results]          # one dict per model; print(format_table(results))
[('tanh', 20)]
"""
import math
import numbers
import time

import numpy as np

from fastnn import init as _init
from fastnn import nn, optim, threads
from fastnn._validation import check_int, check_scalar
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments import check_grid, check_list, jsonable, map_jobs, settings_for
from fastnn.init import check_seed
from fastnn.graph import Module

MODELS = ("tanh", "sigmoid", "relu", "irnn")
CLIPS = ("norm", "temporal", "value", None)   # see train()

# How each model is built (a short description for tables and the README).
MODEL_INIT = {
    "tanh": "tanh, W_hh Glorot uniform (library default)",
    "sigmoid": "sigmoid, W_hh Glorot uniform x4 (library default)",
    "relu": "ReLU, W_hh ~ N(0, small_std^2)",
    "irnn": "ReLU, W_hh = I, b = 0 (Le et al. 2015)",
}

# The defaults of `fastnn experiment adding` and bench/rnn_adding.py, found by a small search on T = 150 (README):
# with them the IRNN ends below 0.1 x baseline on T = 150 (3 seeds) and all four models together train in about 6
# minutes on one core.  lr decays linearly from lr to lr_end over the steps; clip is the global-norm threshold.
DEFAULTS = dict(hidden=100, batch_size=16, lr=0.01, lr_end=0.001, momentum=0.0, clip=1.0, steps=30000, n_test=1000,
                eval_every=1000, small_std=1e-3, in_std=0.1, out_std=1e-3)


def time_major(X):
    """(B, T, n) as returned by fastnn.data.adding -> contiguous (T, B, n) as nn.RNN reads it."""
    return np.ascontiguousarray(np.asarray(X).transpose(1, 0, 2))


class AddingRNN(Module):
    """An Elman RNN regressor for the adding problem: prediction = w . h_T + c.

    Parameters
    ----------
    kind : "tanh" | "sigmoid" | "relu" | "irnn" (see MODEL_INIT).
    hidden : number of recurrent units.
    rng : int seed or np.random.Generator.
    small_std : std of the Gaussian W_hh of the "relu" model (Le et al.'s "small random init").
    in_std : std of the Gaussian W_ih of the ReLU models (relu, irnn); tanh and sigmoid keep Glorot.
    out_std : std of the Gaussian read-out weights w.
    dtype : float32 or float64.

    The read-out bias c starts at 1, the mean target, and w is small, so every model starts near the best constant
    prediction (test MSE ~ 1/6) and the gradient reaching h_T is small but not zero.
    """

    def __init__(self, kind, hidden, *, rng, small_std, in_std, out_std, dtype=np.float32):
        where = "AddingRNN"
        if kind not in MODELS:
            raise ValueError(f"{where}: 'kind' must be one of {MODELS}; got {kind!r}.")
        for name, v in (("small_std", small_std), ("in_std", in_std), ("out_std", out_std)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                raise ValueError(f"{where}: '{name}' must be a number >= 0; got {v!r}.")
        rng = _init.as_rng(rng, where)
        self.kind, self.hidden = kind, int(hidden)
        self.small_std, self.in_std, self.out_std = float(small_std), float(in_std), float(out_std)
        act = "tanh" if kind == "tanh" else "sigmoid" if kind == "sigmoid" else "relu"
        self.rnn = nn.RNN(2, hidden, activation=act, init="identity" if kind == "irnn" else "glorot", rng=rng,
                          dtype=dtype)
        if kind in ("relu", "irnn"):
            self.rnn.W_ih.value[...] = rng.normal(0.0, in_std, self.rnn.W_ih.shape)
        if kind == "relu":
            self.rnn.W_hh.value[...] = rng.normal(0.0, small_std, self.rnn.W_hh.shape)
        self.out = nn.Linear(hidden, 1, rng=rng, dtype=dtype)
        self.out.W.value[...] = rng.normal(0.0, out_std, self.out.W.shape)
        self.out.b.value[...] = _init.output_bias_linear(1.0, dtype=dtype)

    def forward(self, X):
        """X (B, T, 2) -> (H Node (T, B, hidden), prediction Node (B, 1))."""
        H, _ = self.rnn(time_major(np.asarray(X, dtype=self.out.W.dtype)))
        return H, self.out(nn.reshape(nn.narrow(H, 0, H.value.shape[0] - 1, 1), H.value.shape[1:]))

    def loss(self, batch):
        """Mean squared error of a batch (X (B, T, 2), y (B,)): a scalar Node."""
        X, y = batch
        _, pred = self.forward(X)
        return nn.mse(pred, np.asarray(y, dtype=pred.dtype).reshape(-1, 1))

    def predict(self, X, batch_size=1000):
        """Predictions (B,) without building a graph."""
        with self.frozen():
            out = [self.forward(X[i:i + batch_size])[1].value[:, 0] for i in range(0, len(X), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=self.out.W.dtype)

    def mse(self, X, y):
        """Test mean squared error (float, computed in float64)."""
        d = self.predict(X).astype(np.float64) - np.asarray(y, dtype=np.float64)
        return float(np.mean(d * d))

    def config(self):
        return dict(kind=self.kind, hidden=self.hidden, small_std=self.small_std, in_std=self.in_std,
                    out_std=self.out_std, dtype=np.dtype(self.out.W.dtype).name)

    @classmethod
    def from_config(cls, cfg, rng=0):
        return cls(cfg["kind"], cfg["hidden"], rng=rng, small_std=cfg["small_std"], in_std=cfg["in_std"],
                   out_std=cfg["out_std"], dtype=np.dtype(cfg["dtype"]))

    def __repr__(self):
        return f"AddingRNN({self.kind!r}, hidden={self.hidden})"


def train(model, *, T, steps, lr, lr_end=None, momentum=0.0, batch_size=16, clip="norm", max_norm=1.0, seed=0,
          test=None, eval_every=500, log=None, on_step=None):
    """Train `model` (an AddingRNN) by SGD on fresh adding batches; return its history.

    lr_end : None keeps lr constant; a number decays it linearly from lr to lr_end over the steps.
    clip : "norm" (rescale the global gradient norm to max_norm: Pascanu et al. 2013), "temporal" (clip each
        step's back-propagated error inside BPTT to [-max_norm, max_norm]: Mikolov's method, nn.RNN(clip=...)),
        "value" (clip each entry of the summed gradient to [-max_norm, max_norm]: optim.clip_grad_value) or None.
    seed : the batches' seed: an int, a list of ints (fit() passes [seed, 3]) or an np.random.Generator.
    test : (X, y) evaluated at step 0, every eval_every steps and at the end; None skips evaluation.
    log : callable(str) for progress lines, or None.
    on_step : callable(model, (X, y)) called with each batch after its gradient, before the update (measurements).

    Returns a dict: eval_steps, test_mse (lists), loss (per step training loss), grad_norm (per step, before
    clipping; with "temporal", of the gradient the clipped BPTT returns), n_over (steps whose gradient norm exceeded
    max_norm), diverged (a non-finite loss or gradient stopped the run), steps (completed), seconds (training time
    excluding evaluation).
    """
    if clip not in CLIPS:
        raise ValueError(f"train: 'clip' must be one of {CLIPS}; got {clip!r}.")
    # (checked here, where every experiment trains: batch_size=0 failed in nn.mse, steps=0 in optim.Linear, a
    # negative max_norm in clip_grad_norm, each under its own name; momentum=2 trained on, diverging)
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1), ("eval_every", eval_every, 0)):
        check_int(value, name, "train", low=low)
    for name, value in (("lr", lr), ("lr_end", lr_end), ("max_norm", max_norm if clip is not None else None)):
        if value is not None:
            check_scalar(value, name, "train", low=0, low_open=True)
    if not 0 <= check_scalar(momentum, "momentum", "train") < 1:
        raise ValueError(f"train: 'momentum' must be in [0, 1); got {momentum!r}.")
    if lr_end is not None and lr_end > lr:          # (a rising rate, silently, where every table says "decays")
        raise ValueError(f"train: 'lr_end' {lr_end} is above 'lr' {lr}: the rate decays linearly from lr to lr_end; "
                         f"pass lr_end <= lr, or None for a constant rate.")
    # (None drew batches no one could draw again; True ran as seed 1)
    rng = (np.random.default_rng([check_seed(s, "train") for s in seed]) if isinstance(seed, (list, tuple))
           else _init.as_rng(seed, "train", "seed"))
    saved_clip = model.rnn.clip
    model.rnn.clip = max_norm if clip == "temporal" else 0.0   # the kernel clips the BPTT error at every step
    try:
        return _train(model, rng, T=T, steps=steps, lr=lr, lr_end=lr_end, momentum=momentum, batch_size=batch_size,
                      clip=clip, max_norm=max_norm, test=test, eval_every=eval_every, log=log, on_step=on_step)
    finally:
        model.rnn.clip = saved_clip


def _train(model, rng, *, T, steps, lr, lr_end, momentum, batch_size, clip, max_norm, test, eval_every, log,
           on_step):
    params = model.parameters()
    opt = optim.SGD(params, lr=lr if lr_end is None else optim.Linear(lr, lr_end, steps), momentum=momentum)
    hist = dict(eval_steps=[], test_mse=[], loss=np.full(steps, np.nan), grad_norm=np.full(steps, np.nan),
                n_over=0, diverged=False, steps=0, seconds=0.0)

    def evaluate(step):
        if test is not None:
            hist["eval_steps"].append(step)
            hist["test_mse"].append(model.mse(*test))
            if log:
                log(f"{model.kind:>8} step {step:>7}: test MSE {hist['test_mse'][-1]:.5f} "
                    f"({hist['seconds']:.0f} s)")

    evaluate(0)
    for step in range(steps):
        t0 = time.perf_counter()
        X, y = adding(batch_size, T, rng, dtype=model.out.W.dtype)
        model.zero_grad()
        loss = model.loss((X, y))
        loss.backward()
        norm = optim.global_grad_norm(params)
        hist["loss"][step], hist["grad_norm"][step] = float(loss.value), norm
        if not (np.isfinite(norm) and np.isfinite(float(loss.value))):
            hist["diverged"] = True
            hist["seconds"] += time.perf_counter() - t0
            break
        hist["n_over"] += int(norm > max_norm)
        if on_step is not None:
            on_step(model, (X, y))
        if clip == "norm":
            optim.clip_grad_norm(params, max_norm)
        elif clip == "value":
            optim.clip_grad_value(params, max_norm)
        opt.step()
        hist["steps"] = step + 1
        hist["seconds"] += time.perf_counter() - t0
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            evaluate(step + 1)
    if hist["diverged"]:
        if test is not None:
            hist["eval_steps"].append(hist["steps"])
            hist["test_mse"].append(math.nan)
    else:
        evaluate(hist["steps"])
    return hist


def make_model(kind, settings, seed):
    """The AddingRNN every experiment builds for `kind` from a settings dict (DEFAULTS keys) and a seed."""
    return AddingRNN(kind, settings["hidden"], rng=np.random.default_rng([check_seed(seed, "make_model"), 2]), small_std=settings["small_std"],
                     in_std=settings["in_std"], out_std=settings["out_std"])


def fit(kind, T, settings, seed, **overrides):
    """make_model(kind, settings, seed) trained by train() as every experiment trains it: the settings' lr, lr_end,
    momentum, batch size, steps and eval_every, norm clipping at settings["clip"], batches from [seed, 3];
    `overrides` replace any of train()'s keywords.  Returns (model, history)."""
    model = make_model(kind, settings, seed)
    kw = dict(T=T, steps=settings["steps"], lr=settings["lr"], lr_end=settings["lr_end"],
              momentum=settings["momentum"], batch_size=settings["batch_size"], clip="norm", max_norm=settings["clip"],
              seed=[seed, 3], eval_every=settings["eval_every"])
    kw.update(overrides)
    return model, train(model, **kw)


def run_adding(T=150, *, models=MODELS, steps=None, seed=0, log=None, n_threads=1, **settings):
    """Train each model in `models` on the adding problem of length T with the same settings; return one dict per
    model: model, T, steps, final_test_mse, baseline_mse, seconds, plus the curves (eval_steps, test_mse) and the
    settings used.  Settings default to DEFAULTS (keys hidden, batch_size, lr, clip, steps, n_test, eval_every,
    small_std, in_std); every model gets the same initialisation seed and the same training batches."""
    models = check_list(models, "models", "run_adding")
    s = settings_for("run_adding", DEFAULTS, settings, steps=steps, model=(models, MODELS))
    seed = check_seed(seed, "run_adding")
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    out = []
    with threads(kernels=n_threads, blas=n_threads):
        for kind in models:
            _, h = fit(kind, T, s, seed, test=test, log=log)
            out.append(dict(model=kind, T=T, steps=h["steps"], final_test_mse=h["test_mse"][-1],
                            baseline_mse=ADDING_BASELINE_MSE, seconds=round(h["seconds"], 2),
                            diverged=h["diverged"], eval_steps=h["eval_steps"], test_mse=h["test_mse"],
                            settings=dict(s, seed=seed)))
    return out


# Le et al.'s (2015) search for Table 1: learning rates {1e-9, ..., 1e-1} x gradient-clipping thresholds
# {1, 10, 100, 1000}, best per model.  LE_GRID keeps their thresholds and the three largest of their rates (the smaller
# ones barely move the weights in the few thousand steps two cores allow); GRID_DEFAULTS: constant lr (as theirs), and
# the step budget per grid point, scaled down from their millions of steps to fit two cores.
LE_GRID = dict(lr=(1e-3, 1e-2, 1e-1), clip=(1.0, 10.0, 100.0, 1000.0))
GRID_DEFAULTS = dict(DEFAULTS, lr_end=None, steps=5000, eval_every=1000, workers=2)


def _grid_job(job):
    kind, T, lr, clip, seed, n_threads, s = job
    valid = adding(s["n_test"], T, np.random.default_rng([seed, 5]))
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    with threads(kernels=n_threads, blas=n_threads):
        model, h = fit(kind, T, s, seed, lr=lr, max_norm=clip, test=valid)
        test_mse = math.nan if h["diverged"] else model.mse(*test)
    return dict(model=kind, T=T, lr=lr, clip=clip, steps=h["steps"], diverged=h["diverged"],
                valid_mse=h["test_mse"][-1], test_mse=test_mse, eval_steps=h["eval_steps"], valid_curve=h["test_mse"],
                seconds=round(h["seconds"], 2))


def run_adding_grid(T=150, *, models=MODELS, grid=None, seed=0, log=None, n_threads=1, **settings):
    """Le et al.'s protocol for Table 1: each model trained at every (lr, clip) of `grid` (default LE_GRID) with
    norm clipping and a constant learning rate; the point with the lowest final MSE on a validation set (fresh
    sequences) is kept and its test MSE reported.  settings: GRID_DEFAULTS keys (steps per point, workers: grid
    points trained at once in spawned processes, ...).

    Returns one dict per model: model, T, lr, clip (chosen), steps, valid_mse, final_test_mse, baseline_mse,
    seconds (the whole grid of that model), eval_steps and valid_curve (chosen run), grid (every point: lr, clip,
    valid_mse, test_mse, diverged, seconds), settings.
    """
    where = "run_adding_grid"
    models = check_list(models, "models", where)
    s = settings_for(where, GRID_DEFAULTS, settings, model=(models, MODELS))
    seed = check_seed(seed, where)
    grid = check_grid(where, LE_GRID if grid is None else grid)
    workers = s.pop("workers")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"{where}: 'workers' must be an int >= 1; got {workers!r}.")
    jobs = [(kind, T, float(lr), float(clip), seed, n_threads, s) for kind in models
            for lr in grid["lr"] for clip in grid["clip"]]

    def say(r):
        if log:
            log(f"{r['model']:>8} T {T} lr {r['lr']:<6g} clip {r['clip']:<6g}: valid MSE {r['valid_mse']:.4f}"
                f"{' (diverged)' if r['diverged'] else ''}, {r['seconds']:.0f} s")

    runs = map_jobs(_grid_job, jobs, workers, say)
    out = []
    for kind in models:
        mine = [r for r in runs if r["model"] == kind]
        best = min(mine, key=lambda r: r["valid_mse"] if r["valid_mse"] is not None and np.isfinite(r["valid_mse"])
                   else math.inf)
        out.append(dict(model=kind, T=T, lr=best["lr"], clip=best["clip"], steps=best["steps"],
                        valid_mse=best["valid_mse"], final_test_mse=best["test_mse"],
                        baseline_mse=ADDING_BASELINE_MSE, seconds=round(sum(r["seconds"] for r in mine), 2),
                        eval_steps=best["eval_steps"], valid_curve=best["valid_curve"],
                        grid=[{k: r[k] for k in ("lr", "clip", "valid_mse", "test_mse", "diverged", "seconds")}
                              for r in mine],
                        settings=dict(s, seed=seed, grid=grid, workers=workers)))
    return out


def format_grid_table(results):
    """Markdown: model, T, chosen lr and clip, steps, valid MSE, test MSE, its ratio to the baseline, seconds."""
    lines = ["| model | T | lr | clip | steps | valid MSE | test MSE | / baseline | seconds (grid) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mse = math.nan if r["final_test_mse"] is None else r["final_test_mse"]
        v = math.nan if r["valid_mse"] is None else r["valid_mse"]
        lines.append(f"| {r['model']} | {r['T']} | {r['lr']:g} | {r['clip']:g} | {r['steps']} | {v:.4f} | "
                     f"{mse:.4f} | {mse / r['baseline_mse']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def time_step(T=150, batch_size=16, hidden=100, *, repeats=50, n_threads=1, seed=0):
    """Seconds per call, best of `repeats`, of (a) kernels.rnn_forward + rnn_backward alone and (b) one full SGD step
    of an IRNN (data, graph, read-out, clipping, update) at these sizes: a dict kernels_s, step_s."""
    from fastnn import kernels
    seed = check_seed(seed, "time_step")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, batch_size, hidden)).astype(np.float32)
    W = (np.eye(hidden) + rng.normal(0, 0.01, (hidden, hidden))).astype(np.float32)
    b, h0 = np.zeros(hidden, np.float32), np.zeros((batch_size, hidden), np.float32)
    dH = rng.normal(size=(T, batch_size, hidden)).astype(np.float32)
    model = make_model("irnn", dict(DEFAULTS, hidden=hidden), seed)
    best_k = best_s = math.inf
    with threads(kernels=n_threads, blas=n_threads):
        for _ in range(repeats):
            t0 = time.perf_counter()
            H = kernels.rnn_forward(X, W, b, h0, activation="relu")
            kernels.rnn_backward(dH, H, W, activation="relu")
            best_k = min(best_k, time.perf_counter() - t0)
        for _ in range(repeats):  # a 1-step train() call: batch generation, graph, backward, clipping, SGD update
            t0 = time.perf_counter()
            train(model, T=T, steps=1, lr=1e-6, batch_size=batch_size, seed=seed)
            best_s = min(best_s, time.perf_counter() - t0)
    return dict(kernels_s=best_k, step_s=best_s)


def summary(results):
    """The per-model objects of `fastnn experiment adding --json`: model, T, steps, final_test_mse, baseline_mse,
    seconds."""
    keys = ("model", "T", "steps", "final_test_mse", "baseline_mse", "seconds")
    return jsonable([{k: r[k] for k in keys} for r in results])


def format_table(results):
    """A Markdown table: model, T, steps, final test MSE, its ratio to the baseline, seconds."""
    lines = ["| model | T | steps | final test MSE | / baseline | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        mse = math.nan if r["final_test_mse"] is None else r["final_test_mse"]  # None: read back from JSON
        ratio = mse / r["baseline_mse"] if np.isfinite(mse) else math.nan
        lines.append(f"| {r['model']} | {r['T']} | {r['steps']} | {mse:.4f} | {ratio:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)
