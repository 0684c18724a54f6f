"""Experiment 2 of "why RNNs are hard to train": `fastnn experiment gradients` (fastnn.experiments.gradients), the
results saved as bench/results/rnn_gradients.json and .png; the options are the CLI's:

    python bench/rnn_gradients.py --T 150
"""
import sys

from _experiment import run

if __name__ == "__main__":
    sys.exit(run("gradients"))
