"""Experiment 3: gradient clipping (Pascanu, Mikolov & Bengio 2013; Mikolov 2012), on one exploding setup.

The IRNN of experiment 1 on T = 150 with the same settings (its gradient norm spikes by orders of magnitude now and
then) is trained from the same initialisation on the same batches with each way of clipping, each with threshold c:

- none: no clipping;
- norm: the whole gradient rescaled to global L2 norm c when above it (Pascanu et al. 2013, Algorithm 1);
- temporal: the error back-propagated through time clipped element-wise to [-c, c] at every step, inside BPTT
  (Mikolov's RNNLM; nn.RNN(clip=c)); the parameter gradient is the sum of the clipped per-step terms;
- value: each entry of the summed parameter gradient clipped to [-c, c] after BPTT (optim.clip_grad_value).

Then the lecture's two claims about the threshold: the heuristic (c = the average gradient norm over some steps of
unclipped training; Pascanu et al. section 3.2) and insensitivity (norm clipping with c swept over two decades).
Recorded per run: training-loss and test-MSE curves, how many steps had a gradient norm above c, and how many hidden
units are still active at the end (a ReLU unit that a huge step pushed below zero for every input stays dead).

>>> results = run_clipping(T=10, steps=20, hidden=8, seed=0)             # README: T=150, steps=10000
>>> [r["clip"] for r in results][:4]                                   # then the threshold heuristic and sweep
['none', 'norm', 'temporal', 'value']
"""
import math

import numpy as np

from fastnn import threads
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments.adding import DEFAULTS, make_model, train

CLIP_MODES = (None, "norm", "temporal", "value")
CLIP_LABELS = {
    None: "none",
    "norm": "global norm (Pascanu et al. 2013)",
    "temporal": "BPTT error element-wise, every step (Mikolov)",
    "value": "summed gradient element-wise (clip_grad_value)",
}
# thresholds: the sweep of norm clipping (c = DEFAULTS clip is one of them); heuristic_steps: unclipped steps whose
# mean gradient norm is the heuristic threshold (0 skips the heuristic row)
CLIP_DEFAULTS = dict(DEFAULTS, kind="irnn", steps=10000, eval_every=500, thresholds=(0.1, 0.3, 1.0, 3.0, 10.0, 100.0),
                     heuristic_steps=500)


def active_units(model, X):
    """How many hidden units are non-zero for at least one step of one of the sequences X."""
    H, _ = model.forward(X)
    return int((H.value != 0).any(axis=(0, 1)).sum())


def mode_name(mode):
    return "none" if mode is None else mode


def threshold_heuristic(T, s, seed, steps):
    """The lecture's threshold: the mean gradient norm over `steps` SGD steps of unclipped training (the model is
    built and trained as every run, then thrown away).  Non-finite norms (a blow-up) end the average early."""
    model = make_model(s["kind"], s, seed)
    h = train(model, T=T, steps=steps, lr=s["lr"], lr_end=s["lr_end"], momentum=s["momentum"],
              batch_size=s["batch_size"], clip=None, max_norm=math.inf, seed=[seed, 3], test=None, eval_every=0)
    g = h["grad_norm"][:h["steps"]]
    return float(np.mean(g)) if g.size else math.nan


def run_clipping(T=150, *, modes=CLIP_MODES, steps=None, seed=0, log=None, n_threads=1, **settings):
    """Train the same model with each clipping mode at threshold c (settings["clip"]), then with norm clipping at
    the heuristic threshold and at each of settings["thresholds"].

    Returns one dict per run: role ("compare", "heuristic" or "sweep"), clip ("none" | "norm" | "temporal" |
    "value"), label, threshold, kind, lr, T, steps (completed), diverged, n_over (steps whose gradient norm exceeded
    the threshold), max_grad_norm, final_test_mse, active_units (of hidden, on the test set), eval_steps, test_mse,
    loss (per-step training loss), grad_norm (per step, before clipping), seconds.  Settings default to
    CLIP_DEFAULTS (the adding DEFAULTS plus kind, fewer steps, thresholds and heuristic_steps).
    """
    unknown = set(settings) - set(CLIP_DEFAULTS)
    if unknown:
        raise TypeError(f"run_clipping: unknown settings {sorted(unknown)}; known: {sorted(CLIP_DEFAULTS)}.")
    for mode in modes:
        if mode not in CLIP_MODES:
            raise ValueError(f"run_clipping: each mode must be one of {CLIP_MODES}; got {mode!r}.")
    s = dict(CLIP_DEFAULTS, **settings)
    if steps is not None:
        s["steps"] = steps
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    out = []

    def run(role, mode, c):
        model = make_model(s["kind"], s, seed)
        h = train(model, T=T, steps=s["steps"], lr=s["lr"], lr_end=s["lr_end"], momentum=s["momentum"],
                  batch_size=s["batch_size"], clip=mode, max_norm=c, seed=[seed, 3], test=test,
                  eval_every=s["eval_every"])
        gn = h["grad_norm"][:h["steps"] + int(h["diverged"])]
        r = dict(role=role, clip=mode_name(mode), label=CLIP_LABELS[mode], threshold=c, kind=s["kind"], lr=s["lr"],
                 T=T, steps=h["steps"], diverged=h["diverged"], n_over=h["n_over"],
                 max_grad_norm=float(np.max(gn)) if gn.size else math.nan,
                 final_test_mse=h["test_mse"][-1], baseline_mse=ADDING_BASELINE_MSE,
                 active_units=active_units(model, test[0][:200]), hidden=s["hidden"],
                 eval_steps=h["eval_steps"], test_mse=h["test_mse"], loss=h["loss"][:len(gn)].tolist(),
                 grad_norm=gn.tolist(), seconds=round(h["seconds"], 2))
        out.append(r)
        if log:
            log(f"{role:>9} clip {r['clip']:>8} c = {c:<8.3g}: {r['steps']} steps"
                f"{' (diverged)' if r['diverged'] else ''}, {r['n_over']} with |g| > c, max |g| "
                f"{r['max_grad_norm']:.3g}, final test MSE {r['final_test_mse']:.4f}, {r['active_units']} active units")

    with threads(kernels=n_threads, blas=n_threads):
        for mode in modes:
            run("compare", mode, s["clip"])
        if s["heuristic_steps"]:
            c = threshold_heuristic(T, s, seed, s["heuristic_steps"])
            if log:
                log(f"heuristic threshold: mean gradient norm over {s['heuristic_steps']} unclipped steps = {c:.4g}")
            if np.isfinite(c) and c > 0:
                run("heuristic", "norm", c)
        for c in s["thresholds"]:
            run("sweep", "norm", float(c))
    return out


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
