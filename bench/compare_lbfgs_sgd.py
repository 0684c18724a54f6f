"""L-BFGS and CG versus mini-batch SGD, momentum and AdaGrad as the training set grows.

    python bench/compare_lbfgs_sgd.py                    # synthetic teacher task, n = 1e3 .. 1e6 (~10 min, 2 cores)
    python bench/compare_lbfgs_sgd.py --data ../shared/data/conll2000/train.txt      # CoNLL-2000 POS windows

The same experiment as `fastnn compare-optimizers` (fastnn.experiments.compare, which documents the protocol and
holds every setting), with the default settings, the markdown table on stdout and the plot written under
bench/results/.  Run it alone on the machine: the timings are wall-clock.
"""
import argparse
import os
import sys

from fastnn.experiments import compare as experiment

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", metavar="FILE", help="a CoNLL or tagged Brown file (default: the synthetic task)")
    ap.add_argument("--sizes", type=experiment.parse_sizes, help="training-set sizes, comma-separated")
    ap.add_argument("--threads", type=int, help="kernel and BLAS threads (default: fastnn's default)")
    args = ap.parse_args(argv)
    config = experiment.CompareConfig(sizes=args.sizes)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    rows, traces, data = experiment.run(config, args.data, threads=args.threads, log=log)
    print(experiment.markdown_table(rows))
    name = os.path.basename(os.path.dirname(args.data)) if args.data else "synthetic"
    where = experiment.plot(traces, os.path.join(RESULTS, f"compare_lbfgs_sgd_{name or 'data'}.png"),
                            title=f"{data.name}: objective vs seconds")
    log(f"plot: {where}" if where else "plot: skipped (matplotlib is not installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
