"""fastnn's RNN LM beside faster-rnnlm (yandex/faster-rnnlm, C++, hierarchical softmax) on the Brown split, when a built
faster-rnnlm binary is given; skipped otherwise.  The project never carries faster-rnnlm's code: build it yourself
(https://github.com/yandex/faster-rnnlm: `./build.sh`, or `make` in faster-rnnlm/ with Eigen 3 on the include path).

    python bench/peer_faster_rnnlm.py --faster-rnnlm /path/to/rnnlm [--threads 2] [--fastnn-args "--preset fast"]
    FASTNN_FASTER_RNNLM=/path/to/rnnlm python bench/peer_faster_rnnlm.py
    FASTNN_FASTER_RNNLM=/path/to/rnnlm pytest bench/peer_faster_rnnlm.py      # the same, as a (skipped) test

Same data mapping for both: fastnn's vocabulary protocol (../shared/data/README.md: train types seen > 3 times, every
other token of every split becomes <unk>) is applied first and the mapped files are what faster-rnnlm reads, so both
models have the same 14,115-word vocabulary (faster-rnnlm builds its vocabulary from all training words, which are
then exactly fastnn's), see no out-of-vocabulary token, and predict every word and every </s>.  Differences that
remain: faster-rnnlm starts every sentence from its initial hidden state (fastnn carries the state across
sentences); faster-rnnlm's settings are H=100 sigmoid with a binary hierarchical softmax (its defaults otherwise:
lr 0.1, BPTT 5, validation-driven decay), fastnn's are its own defaults or preset.  Perplexity = 2 ** (faster-rnnlm's
test entropy in bits).  Speeds: training tokens (words and </s>) x epochs / training seconds, validation excluded, for both
(faster-rnnlm's per-epoch "elapsed: <train>s+<valid>s"; fastnn's train_tokens_per_s).  Run it alone on the machine.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data", "brown")
ENV = "FASTNN_FASTER_RNNLM"


def _paths(data):
    return {s: os.path.join(data, f"brown.{s}.txt") for s in ("train", "valid", "test")}


def write_mapped(data, out_dir, min_count=4):
    """The Brown splits with fastnn's vocabulary protocol applied (rare and unseen words -> <unk>), one sentence a
    line, in out_dir; returns their paths and the vocabulary size (</s> and <unk> included)."""
    sys.path.insert(0, REPO)
    from fastnn.data import Vocab
    sents = {}
    for split, path in _paths(data).items():
        with open(path, encoding="utf-8") as f:
            sents[split] = [line.split() for line in f if line.strip()]
    vocab = Vocab.build(sents["train"], min_count=min_count)
    known = set(vocab.words)
    out = {}
    for split, ss in sents.items():
        out[split] = os.path.join(out_dir, f"brown.{split}.unk.txt")
        with open(out[split], "w", encoding="utf-8") as f:
            for s in ss:
                f.write(" ".join(w if w in known else "<unk>" for w in s) + "\n")
    return out, len(vocab)


def run_faster_rnnlm(binary, files, work, threads, hidden=100, extra=()):
    """Train faster-rnnlm on the mapped files, then score test; returns a result dict."""
    model = os.path.join(work, "frnn.model")
    train = [binary, "-rnnlm", model, "-train", files["train"], "-valid", files["valid"], "-hidden", str(hidden),
             "-hidden-type", "sigmoid", "-threads", str(threads), *extra]
    t0 = time.perf_counter()
    res = subprocess.run(train, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"faster-rnnlm failed ({res.returncode}): {res.stderr[-2000:]}")
    log = res.stderr.replace("\r", "\n")
    # one line per epoch: "... valid: <entropy in bits>  elapsed: <train>s+<validation>s"
    valid = [float(v) for v in re.findall(r"(?<!Initial entropy \(bits\) )valid:\s+([\d.]+)\s+elapsed", log)]
    train_s = [float(v) for v in re.findall(r"elapsed:\s+([\d.]+)s\+", log)]
    with open(files["train"], encoding="utf-8") as f:
        n_tokens = sum(len(line.split()) + 1 for line in f)         # words and </s>, as fastnn counts them
    test = subprocess.run([binary, "-rnnlm", model, "-test", files["test"]], capture_output=True, text=True)
    m = re.search(r"Test entropy ([\d.]+)", test.stderr)
    if test.returncode != 0 or m is None:
        raise RuntimeError(f"faster-rnnlm test failed ({test.returncode}): {test.stderr[-2000:]}")
    return {"name": "faster-rnnlm", "command": " ".join(shlex.quote(a) for a in train),
            "epochs": len(train_s), "words_per_s": round(len(train_s) * n_tokens / sum(train_s)) if train_s else None,
            "valid_perplexity_by_epoch": [round(2 ** v, 2) for v in valid],
            "test_perplexity": round(2 ** float(m.group(1)), 2), "seconds": round(seconds, 1)}


def run_fastnn(data, work, threads, fastnn_args):
    p = _paths(data)
    cmd = [sys.executable, "-m", "fastnn", "lm", "train", "--arch", "rnn", "--train", p["train"], "--dev", p["valid"],
           "--test", p["test"], "--out", os.path.join(work, "fastnn.npz"), "--json", "--threads", str(threads),
           *fastnn_args]
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"fastnn lm train failed ({res.returncode}): {res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    valid = [float(v) for v in re.findall(r"valid ppl ([\d.]+),", res.stderr)]
    return {"name": "fastnn", "command": "fastnn " + " ".join(shlex.quote(a) for a in cmd[3:]),
            "epochs": out.get("epochs"), "words_per_s": out.get("train_tokens_per_s"),
            "valid_perplexity_by_epoch": valid, "test_perplexity": out.get("test_perplexity"),
            "seconds": round(seconds, 1)}


def table(rows):
    lines = ["| implementation | words/s (training) | test ppl | epochs | wall time |", "|---|---|---|---|---|"]
    for r in rows:
        wps = f"{r['words_per_s']:,}" if r["words_per_s"] else "-"
        lines.append(f"| {r['name']} | {wps} | {r['test_perplexity']} | {r['epochs']} | {r['seconds']} s |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faster-rnnlm", default=os.environ.get(ENV), metavar="PATH",
                    help=f"the built faster-rnnlm binary (default: ${ENV}); without it the run is skipped")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--threads", type=int, default=2, help="threads of both implementations (default 2)")
    ap.add_argument("--fastnn-args", default="", help="extra `fastnn lm train` options, e.g. '--preset fast'")
    ap.add_argument("--frnn-args", default="", help="extra faster-rnnlm options")
    ap.add_argument("--skip-fastnn", action="store_true")
    ap.add_argument("--out", help="append the results as JSON lines to this file")
    args = ap.parse_args(argv)
    if not args.faster_rnnlm:
        print(f"skipped: no faster-rnnlm binary (pass --faster-rnnlm PATH or set {ENV})", file=sys.stderr)
        return 0
    if not (os.path.isfile(args.faster_rnnlm) and os.access(args.faster_rnnlm, os.X_OK)):
        print(f"error: {args.faster_rnnlm} is not an executable file", file=sys.stderr)
        return 2
    if not os.path.isdir(args.data):
        print(f"skipped: no Brown data at {args.data}", file=sys.stderr)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastnn-peer-") as work:
        files, n_vocab = write_mapped(args.data, work)
        print(f"vocabulary {n_vocab} words (</s>, <unk> included); mapped files in {work}", file=sys.stderr)
        rows.append(run_faster_rnnlm(args.faster_rnnlm, files, work, args.threads,
                                     extra=shlex.split(args.frnn_args)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if not args.skip_fastnn:
            rows.append(run_fastnn(args.data, work, args.threads, shlex.split(args.fastnn_args)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(table(rows))
    return 0


def test_peer_faster_rnnlm():
    import pytest
    if not os.environ.get(ENV):
        pytest.skip(f"set {ENV} to a built faster-rnnlm binary to run the peer comparison")
    if not os.path.isdir(DATA):
        pytest.skip(f"no Brown data at {DATA}")
    assert main([]) == 0


if __name__ == "__main__":
    sys.exit(main())
