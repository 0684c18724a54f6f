"""Experiment 3: gradient clipping (Pascanu, Mikolov & Bengio 2013; Mikolov's element-wise clipping).

One exploding setup, the IRNN of experiment 1 on T = 150 with the same settings (its gradient norm spikes by orders
of magnitude now and then), trained three times from the same initialisation on the same batches: without clipping,
with element-wise clipping of every gradient entry to [-c, c], and with global-norm clipping to c.  Recorded:
training-loss and test-MSE curves, how many steps had a (pre-clipping) gradient norm above c, and how many hidden
units are still active at the end (a ReLU unit that a huge step pushed below zero for every input stays dead).

>>> results = run_clipping(T=10, steps=20, hidden=8, seed=0)             # README: T=150, steps=10000
>>> [r["clip"] for r in results]
['none', 'value', 'norm']
"""
import math

import numpy as np

from fastnn import threads
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.experiments.adding import DEFAULTS, make_model, train

CLIP_MODES = (None, "value", "norm")
CLIP_DEFAULTS = dict(DEFAULTS, kind="irnn", steps=10000, eval_every=500)


def active_units(model, X):
    """How many hidden units are non-zero for at least one step of one of the sequences X."""
    H, _ = model.forward(X)
    return int((H.value != 0).any(axis=(0, 1)).sum())


def mode_name(mode):
    return "none" if mode is None else mode


def run_clipping(T=150, *, modes=CLIP_MODES, steps=None, seed=0, log=None, n_threads=1, **settings):
    """Train the same model with each clipping mode; return one dict per mode: clip ("none" | "value" | "norm"),
    threshold, kind, lr, T, steps (completed), diverged, n_over (steps whose gradient norm exceeded the threshold),
    max_grad_norm, final_test_mse, active_units (of hidden, on the test set), eval_steps, test_mse, loss (per-step
    training loss), grad_norm (per step, before clipping), seconds.  Settings default to CLIP_DEFAULTS (the adding
    DEFAULTS plus kind, and fewer steps)."""
    unknown = set(settings) - set(CLIP_DEFAULTS)
    if unknown:
        raise TypeError(f"run_clipping: unknown settings {sorted(unknown)}; known: {sorted(CLIP_DEFAULTS)}.")
    s = dict(CLIP_DEFAULTS, **settings)
    if steps is not None:
        s["steps"] = steps
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    out = []
    with threads(kernels=n_threads, blas=n_threads):
        for mode in modes:
            if mode not in CLIP_MODES:
                raise ValueError(f"run_clipping: each mode must be one of {CLIP_MODES}; got {mode!r}.")
            model = make_model(s["kind"], s, seed)
            h = train(model, T=T, steps=s["steps"], lr=s["lr"], lr_end=s["lr_end"], momentum=s["momentum"],
                      batch_size=s["batch_size"], clip=mode, max_norm=s["clip"], seed=[seed, 3], test=test,
                      eval_every=s["eval_every"])
            gn = h["grad_norm"][:h["steps"] + int(h["diverged"])]
            r = dict(clip=mode_name(mode), threshold=s["clip"], kind=s["kind"], lr=s["lr"], T=T, steps=h["steps"],
                     diverged=h["diverged"], n_over=h["n_over"],
                     max_grad_norm=float(np.max(gn)) if gn.size else math.nan,
                     final_test_mse=h["test_mse"][-1], baseline_mse=ADDING_BASELINE_MSE,
                     active_units=active_units(model, test[0][:200]), hidden=s["hidden"],
                     eval_steps=h["eval_steps"], test_mse=h["test_mse"], loss=h["loss"][:len(gn)].tolist(),
                     grad_norm=gn.tolist(), seconds=round(h["seconds"], 2))
            out.append(r)
            if log:
                log(f"clip {r['clip']:>5}: {r['steps']} steps{' (diverged)' if r['diverged'] else ''}, "
                    f"{r['n_over']} with |g| > {r['threshold']}, max |g| {r['max_grad_norm']:.3g}, "
                    f"final test MSE {r['final_test_mse']:.4f}, {r['active_units']} active units")
    return out


def format_table(results):
    """Markdown: clipping, steps, diverged, steps over threshold, max norm, final test MSE."""
    lines = ["| clipping | steps run | diverged | steps with norm > c | max grad norm | final test MSE | active "
             "units |", "|---|---|---|---|---|---|---|"]
    for r in results:
        mse = math.nan if r["final_test_mse"] is None else r["final_test_mse"]
        lines.append(f"| {r['clip']} (c = {r['threshold']:g}) | {r['steps']} | {'yes' if r['diverged'] else 'no'} | "
                     f"{r['n_over']} | {r['max_grad_norm']:.3g} | {mse:.4f} | {r['active_units']} / {r['hidden']} |")
    return "\n".join(lines)
