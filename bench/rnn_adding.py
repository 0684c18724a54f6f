"""Experiment 1 of "why RNNs are hard to train": tanh, sigmoid, ReLU and IRNN networks on the adding problem.

Trains every model for the same number of SGD steps (norm clipping, fastnn.experiments.adding.DEFAULTS) for each T,
prints a Markdown table, writes bench/results/rnn_adding.json (curves included) and, with matplotlib,
bench/results/rnn_adding.png.  With --grid, Le et al.'s protocol instead (LE_GRID, best point per model on
validation; GRID_DEFAULTS), into rnn_adding_grid.json:

    python bench/rnn_adding.py                  # T = 50 150 200 300 400
    python bench/rnn_adding.py --T 300 --append # add/replace T = 300 only
    python bench/rnn_adding.py --grid --T 150 400 --append
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.experiments import adding, plots, save_json  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[50, 150, 200, 300, 400], help="sequence lengths")
    ap.add_argument("--steps", type=int, help=f"SGD steps per model (default {adding.DEFAULTS['steps']}; with --grid "
                                              f"per grid point, default {adding.GRID_DEFAULTS['steps']})")
    ap.add_argument("--grid", action="store_true", help="Le et al.'s per-model grid (LE_GRID), best on validation")
    ap.add_argument("--grid-lr", type=float, nargs="+", default=list(adding.LE_GRID["lr"]),
                    help="--grid: learning rates (default LE_GRID's)")
    ap.add_argument("--grid-clip", type=float, nargs="+", default=list(adding.LE_GRID["clip"]),
                    help="--grid: norm-clipping thresholds (default LE_GRID's)")
    ap.add_argument("--workers", type=int, default=adding.GRID_DEFAULTS["workers"], help="--grid: processes")
    ap.add_argument("--models", nargs="+", choices=adding.MODELS, default=list(adding.MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="folder for the JSON and PNG")
    ap.add_argument("--append", action="store_true",
                    help="keep the other T's results already in rnn_adding.json (one run per T)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.grid:
        return grid(args, log)
    for T in args.T:
        t = adding.time_step(T)
        print(f"T = {T}, B = 16, H = 100, 1 thread: rnn_forward + rnn_backward {t['kernels_s'] * 1e3:.2f} ms, "
              f"full SGD step {t['step_s'] * 1e3:.2f} ms (best of 50)")
    t0 = time.perf_counter()
    results = []
    for T in args.T:
        results += adding.run_adding(T, models=args.models, steps=args.steps or adding.DEFAULTS["steps"],
                                     seed=args.seed, log=log)
    results = _merge(results, args, "rnn_adding.json")
    print(adding.format_table(results))
    print(f"\nbaseline MSE 1/6 = {adding.ADDING_BASELINE_MSE:.4f}; settings {json.dumps(results[-1]['settings'])}; "
          f"this run {time.perf_counter() - t0:.0f} s")
    path = plots.plot_adding(results, os.path.join(args.out, "rnn_adding.png"), log=print)
    if path:
        print(f"wrote {path}")
    return 0


def grid(args, log):
    t0 = time.perf_counter()
    steps = args.steps or adding.GRID_DEFAULTS["steps"]
    results = []
    for T in args.T:
        results += adding.run_adding_grid(T, models=args.models, steps=steps, seed=args.seed, workers=args.workers,
                                          grid=dict(lr=args.grid_lr, clip=args.grid_clip), log=log)
    results = _merge(results, args, "rnn_adding_grid.json")
    print(adding.format_grid_table(results))
    print(f"\ngrid {json.dumps(dict(lr=args.grid_lr, clip=args.grid_clip))}, {steps} steps per point, "
          f"{args.workers} worker(s); this run {time.perf_counter() - t0:.0f} s")
    return 0


def _merge(results, args, name):
    """Save results as args.out/name (with --append, beside the other T's results already there) and return them."""
    path = os.path.join(args.out, name)
    if args.append and os.path.exists(path):
        with open(path) as f:
            kept = [r for r in json.load(f) if r["T"] not in args.T]
        results = sorted(kept + results, key=lambda r: (r["T"], adding.MODELS.index(r["model"])))
    os.makedirs(args.out, exist_ok=True)
    save_json(path, results)
    return results


if __name__ == "__main__":
    sys.exit(main())
