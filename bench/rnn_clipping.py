"""Experiment 3 of "why RNNs are hard to train": `fastnn experiment clipping` (fastnn.experiments.clipping), the
results saved as bench/results/rnn_clipping.json and .png; the options are the CLI's:

    python bench/rnn_clipping.py --T 150
"""
import sys

from _experiment import run

if __name__ == "__main__":
    sys.exit(run("clipping"))
