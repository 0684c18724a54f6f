"""The Brown language-model experiments of the README: train with `fastnn lm train`, evaluate alone and mixed with the
Kneser-Ney trigram (`fastnn lm eval --mix`: weight 0.5, one EM weight, and EM weights per context-frequency bin),
append one JSON line per experiment, print a markdown table.

    python bench/lm_experiments.py ngram3 nplm rnn --out runs/lm.jsonl     # selected experiments
    python bench/lm_experiments.py --list
    python bench/lm_experiments.py --table runs/lm.jsonl                   # the table of earlier results

Each experiment is a `fastnn lm train` command line (printed and stored with its result); the mixtures use weight
0.5 and the EM weight tuned on valid.  Run it alone on the machine: the tokens/s column is a timing.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data", "brown")

# name -> (model, extra `lm train` options).  Empty options = the CLI's defaults (what the README promises).
EXPERIMENTS = {
    "ngram3": ("ngram", []),
    "ngram5": ("ngram", ["--order", "5"]),
    "di3": ("ngram", ["--smoothing", "di"]),
    "nplm": ("nplm", []),
    "nplm_direct": ("nplm", ["--direct", "--max-minutes", "70"]),   # ~3x the cost of nplm per epoch
    "nplm_class": ("nplm", ["--classes", "100"]),
    "nplm_class_direct": ("nplm", ["--classes", "100", "--direct"]),
    "lstm": ("lstm", ["--max-minutes", "15"]),
    "rnn": ("rnn", []),
    "rnn_fast": ("rnn", ["--preset", "fast"]),
    "rnn256_full": ("rnn", ["--hidden", "256", "--classes", "0", "--dropout", "0.25", "--batch-size", "32",
                            "--epochs", "20"]),
    "rnn256_class": ("rnn", ["--hidden", "256", "--dropout", "0.25", "--epochs", "40", "--max-minutes", "9"]),
}


def _cli(*args):
    cmd = [sys.executable, "-m", "fastnn", *args]
    t0 = time.perf_counter()
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # idle OpenMP threads sleep instead of slowing BLAS down
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0, out.stderr


def _paths(data):
    return {s: os.path.join(data, f"brown.{s}.txt") for s in ("train", "valid", "test")}


def run(name, out_dir, data, threads):
    model, extra = EXPERIMENTS[name]
    p = _paths(data)
    path = os.path.join(out_dir, f"{name}.npz")
    train = ["lm", "train", "--model", model, "--train", p["train"], "--valid", p["valid"], "--test", p["test"],
             "--out", path, "--json", "--quiet", *extra]
    if threads:
        train += ["--threads", str(threads)]
    res, seconds, _ = _cli(*train)
    rec = {"name": name, "command": "fastnn " + " ".join(shlex.quote(a) for a in train), **res,
           "wall_seconds": round(seconds, 1)}
    tri = os.path.join(out_dir, "ngram3.npz")
    if model != "ngram" and os.path.exists(tri):
        for w in ("0.5", "em", "em_ctx"):
            ev = ["lm", "eval", "--model", path, "--data", p["test"], "--mix", tri, "--weight", w[:2] if
                  w.startswith("em") else w, "--json"]
            if w.startswith("em"):
                ev += ["--tune-on", p["valid"]]
            if w == "em_ctx":
                ev += ["--context-bins", p["train"]]
            r, _, _ = _cli(*ev)
            rec[f"mix_{w}"] = {"perplexity": r["perplexity"], "weight": r.get("weight", r.get("weights"))}
    return rec


def table(records):
    lines = ["| experiment | valid ppl | test ppl | + KN3 (0.5) | + KN3 (EM weight) | + KN3 (EM per context bin) "
             "| epochs | train tok/s | time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        m5 = r.get("mix_0.5", {}).get("perplexity", "-")
        me = r.get("mix_em")
        me = f"{me['perplexity']} (w {me['weight']:.2f})" if me else "-"
        mc = r.get("mix_em_ctx", {}).get("perplexity", "-")
        lines.append(f"| {r['name']} | {r.get('valid_perplexity', '-')} | {r.get('test_perplexity', '-')} | {m5} | "
                     f"{me} | {mc} | {r.get('epochs', '-')} | {r.get('train_tokens_per_s', '-')} | {r['seconds']} s |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"experiments among {', '.join(EXPERIMENTS)}")
    ap.add_argument("--out", default=os.path.join(REPO, "runs", "lm.jsonl"), help="JSON lines file to append to")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", metavar="JSONL", help="only print the table of a results file")
    args = ap.parse_args(argv)
    if args.list:
        for k, (m, extra) in EXPERIMENTS.items():
            print(f"{k:16s} --model {m} {' '.join(extra)}")
        return 0
    if args.table:
        with open(args.table) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        return 0
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown or not args.names:
        ap.error(f"name experiments among {list(EXPERIMENTS)}; got {unknown or 'none'}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for name in args.names:
        rec = run(name, out_dir, args.data, args.threads)
        records.append(rec)
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), file=sys.stderr, flush=True)
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
