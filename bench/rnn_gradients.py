"""Experiment 2 of "why RNNs are hard to train": ||d loss / d h_t|| against the distance from the loss for untrained
and trained sigmoid, tanh and IRNN networks on the adding problem.

Prints a Markdown table, writes bench/results/rnn_gradients.json and, with matplotlib, rnn_gradients.png:

    python bench/rnn_gradients.py --T 150
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.experiments import gradients, plots, save_json  # noqa: E402
from fastnn.experiments.adding import DEFAULTS, MODELS  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=150)
    ap.add_argument("--train-steps", type=int, default=DEFAULTS["steps"], help="SGD steps for the trained networks")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(gradients.GRADIENT_MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="folder for the JSON and PNG")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    results = gradients.run_gradients(args.T, models=args.models, train_steps=args.train_steps, seed=args.seed,
                                      log=log)
    print(gradients.format_table(results))
    os.makedirs(args.out, exist_ok=True)
    save_json(os.path.join(args.out, "rnn_gradients.json"), results)
    path = plots.plot_gradients(results, os.path.join(args.out, "rnn_gradients.png"), log=print)
    if path:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
