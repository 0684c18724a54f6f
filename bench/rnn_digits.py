"""Experiment 4 of "why RNNs are hard to train": `fastnn experiment digits` (fastnn.experiments.digits; needs
scikit-learn), the results saved as bench/results/rnn_digits.json and .png; the options are the CLI's:

    python bench/rnn_digits.py            # the default per-model grids, 2 workers (README table)
    python bench/rnn_digits.py --long     # the longer grid
"""
import sys

from _experiment import run

if __name__ == "__main__":
    sys.exit(run("digits"))
