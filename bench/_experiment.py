"""What bench/rnn_clipping.py, rnn_digits.py and rnn_gradients.py do: run `fastnn experiment NAME` with the command
line's options, saving the results as bench/results/rnn_NAME.json and, with matplotlib, rnn_NAME.png (later --out
and --plot options win)."""
import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.cli import main  # noqa: E402


def run(name, argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    stem = os.path.join(REPO, "bench", "results", f"rnn_{name}")
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    saved = ["--out", stem + ".json"]
    if importlib.util.find_spec("matplotlib") is not None:
        saved += ["--plot", stem + ".png"]
    return main(["experiment", name, *saved, *argv])
