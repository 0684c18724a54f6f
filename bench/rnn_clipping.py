"""Experiment 3 of "why RNNs are hard to train": one exploding setup trained without clipping, with element-wise
clipping and with norm clipping (fastnn.experiments.clipping.CLIP_DEFAULTS).

Prints a Markdown table, writes bench/results/rnn_clipping.json and, with matplotlib, rnn_clipping.png:

    python bench/rnn_clipping.py --T 150
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.experiments import clipping, plots, save_json  # noqa: E402


def main(argv=None):
    d = clipping.CLIP_DEFAULTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=150)
    ap.add_argument("--steps", type=int, default=d["steps"])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--clip", type=float, default=d["clip"], help="threshold c for both kinds of clipping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="folder for the JSON and PNG")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    results = clipping.run_clipping(args.T, steps=args.steps, seed=args.seed, lr=args.lr, clip=args.clip, log=log)
    print(clipping.format_table(results))
    os.makedirs(args.out, exist_ok=True)
    save_json(os.path.join(args.out, "rnn_clipping.json"), results)
    path = plots.plot_clipping(results, os.path.join(args.out, "rnn_clipping.png"), log=print)
    if path:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
