"""L-BFGS and CG versus mini-batch SGD, momentum and AdaGrad as the training set grows.

    python bench/compare_lbfgs_sgd.py                    # synthetic teacher task, n = 1e3 .. 1e6 (~10 min, 2 cores)
    python bench/compare_lbfgs_sgd.py --data ../shared/data/conll2000/train.txt      # CoNLL-2000 POS windows

The same experiment as `fastnn compare-optimizers` (fastnn/cli/compare.py, which documents the protocol) with the
plot written under bench/results/ by default.  Run it alone on the machine: the timings are wall-clock.
"""
import os
import sys

from fastnn.cli import main

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--plot" not in argv:
        data = argv[argv.index("--data") + 1] if "--data" in argv else "synthetic"
        name = os.path.splitext(os.path.basename(os.path.dirname(data) if data != "synthetic" else data))[0]
        argv += ["--plot", os.path.join(RESULTS, f"compare_lbfgs_sgd_{name or 'data'}.png")]
    sys.exit(main(["compare-optimizers", *argv]))
