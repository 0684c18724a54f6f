"""NLTK's averaged perceptron POS tagger on the tagger table's CoNLL-2000 split: the peer the POS preset must beat.

    pip install nltk                              # a benchmark peer only, not a dependency of fastnn
    python bench/pos_perceptron.py                # trains on train.txt less its last 1,000 sentences, 5 iterations

Trained on the same sentences as `fastnn tagger train` (bench/tagger_experiments.py's conll2000 split) and scored by
token accuracy on the held-out last 1,000 sentences; prints one JSON line.  nltk's training shuffles with Python's
`random`, seeded here so the figure repeats.
"""
import argparse
import json
import os
import random
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None):
    from nltk.tag.perceptron import PerceptronTagger

    from fastnn.data.conll import read_conll

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "conll2000", "train.txt"))
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sents = read_conll(args.data)
    train = [[(r[0], r[1]) for r in s] for s in sents[:-1000]]
    dev = sents[-1000:]
    random.seed(args.seed)
    tagger = PerceptronTagger(load=False)
    t0 = time.perf_counter()
    tagger.train(train, nr_iter=args.iterations)
    seconds = time.perf_counter() - t0
    right = total = 0
    for s in dev:
        pred = tagger.tag([r[0] for r in s])
        right += sum(p == r[1] for (_, p), r in zip(pred, s))
        total += len(s)
    print(json.dumps({"model": "nltk PerceptronTagger", "iterations": args.iterations, "seed": args.seed,
                      "train_sentences": len(train), "dev_tokens": total, "dev_accuracy": round(100.0 * right / total, 2),
                      "train_seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
