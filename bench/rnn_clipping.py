"""Experiment 3 of "why RNNs are hard to train": one exploding setup trained without clipping, with global-norm
clipping, with Mikolov's element-wise clipping of the BPTT error and with element-wise clipping of the summed
gradient; then norm clipping at the heuristic threshold and over a threshold sweep
(fastnn.experiments.clipping.CLIP_DEFAULTS).

Prints a Markdown table, writes bench/results/rnn_clipping.json and, with matplotlib, rnn_clipping.png:

    python bench/rnn_clipping.py --T 150
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.experiments import clipping, plots, save_json  # noqa: E402


def main(argv=None):
    d = clipping.CLIP_DEFAULTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=150)
    ap.add_argument("--steps", type=int, default=d["steps"])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--clip", type=float, default=d["clip"], help="threshold c of the compared modes")
    ap.add_argument("--thresholds", type=float, nargs="*", default=list(d["thresholds"]), help="sweep of norm clipping")
    ap.add_argument("--heuristic-steps", type=int, default=d["heuristic_steps"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="folder for the JSON and PNG")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    results = clipping.run_clipping(args.T, steps=args.steps, seed=args.seed, lr=args.lr, clip=args.clip,
                                    thresholds=args.thresholds, heuristic_steps=args.heuristic_steps, log=log)
    print(clipping.format_table(results))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s (1 thread)")
    os.makedirs(args.out, exist_ok=True)
    save_json(os.path.join(args.out, "rnn_clipping.json"), results)
    path = plots.plot_clipping(results, os.path.join(args.out, "rnn_clipping.png"), log=print)
    if path:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
