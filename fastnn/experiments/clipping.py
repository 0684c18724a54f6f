"""Experiment 3: gradient clipping (Pascanu, Mikolov & Bengio 2013; Mikolov's element-wise clipping).

One exploding setup, the adding-problem IRNN at a learning rate where its gradient norm spikes, trained three times
from the same initialisation on the same batches: without clipping, with element-wise clipping of every gradient
entry to [-c, c], and with global-norm clipping to c.  Recorded: training-loss and test-MSE curves, and how many
steps had a (pre-clipping) gradient norm above c.

    results = run_clipping(T=150, steps=5000, seed=0)
"""
import math

import numpy as np

from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments.adding import DEFAULTS, AddingRNN, limit_threads, train

CLIP_MODES = (None, "value", "norm")
CLIP_DEFAULTS = dict(DEFAULTS, kind="irnn", lr=0.05, clip=1.0, steps=5000, eval_every=250)


def mode_name(mode):
    return "none" if mode is None else mode


def run_clipping(T=150, *, modes=CLIP_MODES, steps=None, seed=0, log=None, n_threads=1, **settings):
    """Train the same model with each clipping mode; return one dict per mode: clip ("none" | "value" | "norm"),
    threshold, kind, lr, T, steps (completed), diverged, n_over (steps whose gradient norm exceeded the threshold),
    max_grad_norm, final_test_mse, eval_steps, test_mse, loss (per-step training loss), grad_norm (per step, before
    clipping), seconds.  Settings default to CLIP_DEFAULTS (the adding DEFAULTS with kind, a larger lr, steps)."""
    unknown = set(settings) - set(CLIP_DEFAULTS)
    if unknown:
        raise TypeError(f"run_clipping: unknown settings {sorted(unknown)}; known: {sorted(CLIP_DEFAULTS)}.")
    s = dict(CLIP_DEFAULTS, **settings)
    if steps is not None:
        s["steps"] = steps
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    out = []
    with limit_threads(n_threads):
        for mode in modes:
            if mode not in CLIP_MODES:
                raise ValueError(f"run_clipping: each mode must be one of {CLIP_MODES}; got {mode!r}.")
            model = AddingRNN(s["kind"], s["hidden"], rng=np.random.default_rng([seed, 2]),
                              small_std=s["small_std"], in_std=s["in_std"])
            h = train(model, T=T, steps=s["steps"], lr=s["lr"], momentum=s["momentum"], batch_size=s["batch_size"],
                      clip=mode, max_norm=s["clip"], seed=[seed, 3], test=test, eval_every=s["eval_every"])
            gn = h["grad_norm"][:h["steps"] + int(h["diverged"])]
            r = dict(clip=mode_name(mode), threshold=s["clip"], kind=s["kind"], lr=s["lr"], T=T, steps=h["steps"],
                     diverged=h["diverged"], n_over=h["n_over"],
                     max_grad_norm=float(np.max(gn)) if gn.size else math.nan,
                     final_test_mse=h["test_mse"][-1], baseline_mse=ADDING_BASELINE_MSE,
                     eval_steps=h["eval_steps"], test_mse=h["test_mse"], loss=h["loss"][:len(gn)].tolist(),
                     grad_norm=gn.tolist(), seconds=round(h["seconds"], 2))
            out.append(r)
            if log:
                log(f"clip {r['clip']:>5}: {r['steps']} steps{' (diverged)' if r['diverged'] else ''}, "
                    f"{r['n_over']} with |g| > {r['threshold']}, max |g| {r['max_grad_norm']:.3g}, "
                    f"final test MSE {r['final_test_mse']:.4f}")
    return out


def format_table(results):
    """Markdown: clipping, steps, diverged, steps over threshold, max norm, final test MSE."""
    lines = ["| clipping | steps run | diverged | steps with norm > c | max grad norm | final test MSE |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['clip']} (c = {r['threshold']:g}) | {r['steps']} | {'yes' if r['diverged'] else 'no'} | "
                     f"{r['n_over']} | {r['max_grad_norm']:.3g} | {r['final_test_mse']:.4f} |")
    return "\n".join(lines)
