"""Experiment 4 of "why RNNs are hard to train": 8x8 handwritten digits read one pixel per step (64 steps), plain
and permuted, with IRNN, ReLU, tanh and LSTM networks, each with its best grid point chosen on validation
(fastnn.experiments.digits; needs scikit-learn).

Prints a Markdown table and the wall time, writes bench/results/rnn_digits.json (curves and grid included) and, with
matplotlib, bench/results/rnn_digits.png:

    python bench/rnn_digits.py --workers 2          # the default grid (README table)
    python bench/rnn_digits.py --long --workers 2   # the longer grid
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.experiments import digits, plots, save_json  # noqa: E402


def main(argv=None):
    d = digits.DEFAULTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=digits.MODELS, default=list(digits.MODELS))
    ap.add_argument("--epochs", type=int, default=d["epochs"])
    ap.add_argument("--long", action="store_true", help="the longer grid (LONG_GRID)")
    ap.add_argument("--workers", type=int, default=d["workers"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="folder for the JSON and PNG")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    results = digits.run_digits(models=args.models, grid=digits.LONG_GRID if args.long else digits.GRID,
                                seed=args.seed, epochs=args.epochs, workers=args.workers, log=log)
    print(digits.format_table(results))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s ({args.workers} worker(s), 1 thread each)")
    os.makedirs(args.out, exist_ok=True)
    save_json(os.path.join(args.out, "rnn_digits.json"), results)
    path = plots.plot_digits(results, os.path.join(args.out, "rnn_digits.png"), log=print)
    if path:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
