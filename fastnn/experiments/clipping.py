"""Experiment 3: gradient clipping (Pascanu, Mikolov & Bengio 2013; Mikolov 2012), on one exploding setup.

The IRNN of experiment 1 on T = 150 with the same settings (its gradient norm spikes by orders of magnitude now and
then) is trained from the same initialisation on the same batches with each way of clipping:

- none: no clipping;
- norm: the whole gradient rescaled to global L2 norm c when above it (Pascanu et al. 2013, Algorithm 1);
- temporal: the error back-propagated through time, d loss / d z_t, clipped element-wise to [-c, c] at every step,
  inside BPTT (Mikolov's RNNLM; nn.RNN(clip=c)); the parameter gradient is the sum of the clipped per-step terms;
- value: each entry of the summed parameter gradient clipped to [-c, c] after BPTT (optim.clip_grad_value).

The BPTT error lives on another scale than the gradient's norm (here ~1e-4 against ~1), so temporal clipping gets
its own threshold: the lecture's heuristic (the average over some steps of unclipped training; Pascanu et al. section
3.2) applied to what each method clips: the global gradient norm for norm clipping, the largest element of the BPTT
error for temporal clipping.  Then the lecture's insensitivity claim: norm clipping with c swept over three decades,
temporal clipping at a tenth and ten times its heuristic.  Recorded per run: training-loss and test-MSE curves, how
many steps had a gradient norm above c, and how many hidden units are still active at the end (a ReLU unit that a
huge step pushed below zero for every input stays dead).

>>> results = run_clipping(T=10, steps=20, hidden=8, seed=0, workers=1)   # README: T=150, steps=10000
>>> [r["clip"] for r in results][:4]                                     # then the heuristic rows and the sweeps
['none', 'norm', 'temporal', 'value']
"""
import math

import numpy as np

from fastnn import kernels, threads
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments import check_list, map_jobs, settings_for
from fastnn.experiments.adding import DEFAULTS, fit, time_major
from fastnn.init import check_seed

CLIP_MODES = (None, "norm", "temporal", "value")
CLIP_LABELS = {
    None: "none",
    "norm": "global norm (Pascanu et al. 2013)",
    "temporal": "BPTT error element-wise, every step (Mikolov)",
    "value": "summed gradient element-wise (clip_grad_value)",
}
# thresholds: the sweep of norm clipping (c = DEFAULTS clip is one of them); temporal_factors: the temporal sweep, as
# multiples of its heuristic threshold; heuristic_steps: unclipped steps whose means are the heuristic thresholds (0:
# no heuristic rows; temporal clipping then uses clip); workers: runs trained at once (spawned processes, 1 thread
# each), which keeps the default run under 15 minutes on 2 cores
CLIP_DEFAULTS = dict(DEFAULTS, kind="irnn", steps=10000, eval_every=500, thresholds=(0.1, 0.3, 1.0, 3.0, 10.0, 100.0),
                     temporal_factors=(0.1, 10.0), heuristic_steps=500, workers=2)


def active_units(model, X):
    """How many hidden units are non-zero for at least one step of one of the sequences X."""
    H, _ = model.forward(X)
    return int((H.value != 0).any(axis=(0, 1)).sum())


def mode_name(mode):
    return "none" if mode is None else mode


def bptt_error_max(model, batch):
    """The largest |d loss / d z_t| over the steps, rows and units of one batch for an AddingRNN: the BPTT error that
    temporal clipping clips, computed again (unclipped) through the kernels nn.RNN uses."""
    X, y = batch
    rnn, out = model.rnn, model.out
    dt = out.W.dtype
    x = time_major(np.asarray(X, dtype=dt))
    T, B, n_in = x.shape
    K = rnn.W_hh.shape[0]
    Z = kernels.gemm(x.reshape(T * B, n_in), rnn.W_ih.value, trans_b=True).reshape(T, B, K)
    Hf = kernels.rnn_forward(Z, rnn.W_hh.value, rnn.b.value, np.zeros((B, K), dt), activation=rnn.activation)
    pred = Hf[-1] @ out.W.value.T + out.b.value
    g = np.zeros((T, B, K), dt)
    g[-1] = (2.0 / B) * (pred - np.asarray(y, dtype=dt).reshape(B, 1)) * out.W.value   # d mse / d h_T
    dZ = kernels.rnn_backward(g, Hf, rnn.W_hh.value, activation=rnn.activation)[0]
    return float(np.abs(dZ).max()) if dZ.size else 0.0


def threshold_heuristic(T, s, seed, steps):
    """The lecture's thresholds from `steps` SGD steps of unclipped training (the model is built and trained as every
    run, then thrown away): (mean global gradient norm, mean of the largest BPTT-error element per step), for norm
    and temporal clipping.  Non-finite values (a blow-up) end the averages early."""
    errors = []
    _, h = fit(s["kind"], T, s, seed, steps=steps, clip=None, max_norm=math.inf, eval_every=0,
               on_step=lambda m, batch: errors.append(bptt_error_max(m, batch)))
    g = h["grad_norm"][:h["steps"]]
    e = np.asarray(errors[:h["steps"]])
    e = e[:np.argmin(np.isfinite(e))] if not np.isfinite(e).all() else e
    return (float(np.mean(g)) if g.size else math.nan), (float(np.mean(e)) if e.size else math.nan)


def _run(job):
    """One training run of run_clipping (module level: spawned workers unpickle it by reference)."""
    role, mode, c, T, s, seed, n_threads = job
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    with threads(kernels=n_threads, blas=n_threads):
        model, h = fit(s["kind"], T, s, seed, clip=mode, max_norm=c, test=test)
        units = active_units(model, test[0][:200])
    gn = h["grad_norm"][:h["steps"] + int(h["diverged"])]
    return dict(role=role, clip=mode_name(mode), label=CLIP_LABELS[mode], threshold=c, kind=s["kind"], lr=s["lr"],
                T=T, steps=h["steps"], diverged=h["diverged"], n_over=h["n_over"],
                max_grad_norm=float(np.max(gn)) if gn.size else math.nan,
                final_test_mse=h["test_mse"][-1], baseline_mse=ADDING_BASELINE_MSE, active_units=units,
                hidden=s["hidden"], eval_steps=h["eval_steps"], test_mse=h["test_mse"],
                loss=h["loss"][:len(gn)].tolist(), grad_norm=gn.tolist(), seconds=round(h["seconds"], 2))


def run_clipping(T=150, *, modes=CLIP_MODES, steps=None, seed=0, log=None, n_threads=1, **settings):
    """Train the same model with each clipping mode (threshold settings["clip"]; temporal clipping at its own
    heuristic threshold), then norm clipping at its heuristic threshold and at each of settings["thresholds"], and
    temporal clipping at settings["temporal_factors"] times its heuristic.

    Returns one dict per run: role ("compare", "heuristic" or "sweep"), clip ("none" | "norm" | "temporal" |
    "value"), label, threshold, kind, lr, T, steps (completed), diverged, n_over (steps whose gradient norm exceeded
    the threshold; not meaningful for temporal), max_grad_norm, final_test_mse, active_units (of hidden, on the test
    set), eval_steps, test_mse, loss (per-step training loss), grad_norm (per step, before clipping), seconds.
    Settings default to CLIP_DEFAULTS (the adding DEFAULTS plus kind, fewer steps, thresholds, temporal_factors,
    heuristic_steps, workers).
    """
    modes = check_list(modes, "modes", "run_clipping")
    s = settings_for("run_clipping", CLIP_DEFAULTS, settings, steps=steps, mode=(modes, CLIP_MODES))
    seed = check_seed(seed, "run_clipping")
    workers = s.pop("workers")
    c_norm = c_temporal = math.nan
    if s["heuristic_steps"]:
        with threads(kernels=n_threads, blas=n_threads):
            c_norm, c_temporal = threshold_heuristic(T, s, seed, s["heuristic_steps"])
        if log:
            log(f"heuristic thresholds over {s['heuristic_steps']} unclipped steps: mean gradient norm {c_norm:.4g}, "
                f"mean largest BPTT-error element {c_temporal:.4g}")
    has_temporal = np.isfinite(c_temporal) and c_temporal > 0
    jobs = [("compare", mode, c_temporal if mode == "temporal" and has_temporal else s["clip"]) for mode in modes]
    if np.isfinite(c_norm) and c_norm > 0:
        jobs.append(("heuristic", "norm", c_norm))
    jobs += [("sweep", "norm", float(c)) for c in s["thresholds"]]
    if has_temporal and "temporal" in modes:
        jobs += [("sweep", "temporal", c_temporal * float(f)) for f in s["temporal_factors"]]

    def say(r):
        if log:
            log(f"{r['role']:>9} clip {r['clip']:>8} c = {r['threshold']:<8.3g}: {r['steps']} steps"
                f"{' (diverged)' if r['diverged'] else ''}, {r['n_over']} with |g| > c, max |g| "
                f"{r['max_grad_norm']:.3g}, final test MSE {r['final_test_mse']:.4f}, {r['active_units']} active units")

    return map_jobs(_run, [(role, mode, c, T, s, seed, n_threads) for role, mode, c in jobs], workers, say)


def format_table(results):
    """Markdown: run, clipping, threshold, steps, diverged, steps over threshold, max norm, final test MSE, units."""
    lines = ["| run | clipping | c | steps run | diverged | steps with norm > c | max grad norm | final test MSE | "
             "active units |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mse = math.nan if r["final_test_mse"] is None else r["final_test_mse"]
        lines.append(f"| {r['role']} | {r['label']} | {r['threshold']:.3g} | {r['steps']} | "
                     f"{'yes' if r['diverged'] else 'no'} | {r['n_over']} | {r['max_grad_norm']:.3g} | {mse:.4f} | "
                     f"{r['active_units']} / {r['hidden']} |")
    return "\n".join(lines)
