"""The runs behind the README's tagger table: single-task and multitask window taggers on CoNLL-2003 and CoNLL-2000.

    python bench/tagger_experiments.py --seeds 0 1 2      # the runs missing from bench/results/tagger_runs.jsonl
    python bench/tagger_experiments.py --table bench/results/tagger_runs.jsonl    # print the table again
    python bench/tagger_experiments.py --presets --seeds 0 1 2    # the presets (`--preset pos|chunk|ner`) table
    python bench/tagger_experiments.py --screen n-avs1 --only ner --seeds 0 -- --average-start 1
                                          # a change on top of a preset: one line per seed in tagger_screens.jsonl
    python bench/tagger_experiments.py --screen c-x --only chunk --seeds 0 1 2 --save-models M -- --ensemble 1 ...
    python bench/tagger_experiments.py --combine 3 --screen c-x --only chunk --seeds 0 1 2 --save-models M
                          # single models kept in M; then the ensembles of 3 of them: seed e = the models of seeds
                          # 3e, 3e+1, 3e+2 (the members `--ensemble 3 --seed e` trains), scored without training again

Every run is the real command line (`python -m fastnn tagger train ...` then `tagger eval --json`) in a subprocess;
the wall time of `train` is reported as measured (it includes reading the data and scoring the dev set after every
epoch).  Data: $FASTNN_DATA, else ../shared/data.  CoNLL-2000 has no development file: as the issue asks, the last 1,000 sentences of
train.txt are held out (written to a temporary directory, never into the repository) and the rest is trained on.
Only development data is used for model selection and reporting; no test set is read.  Corpus "conll2003+wsj" trains
POS on eng.train plus all of CoNLL-2000's train.txt (WSJ sentences with gold POS tags, no NER column: in a NER + POS
model they train only POS) and scores on eng.testa.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("FASTNN_DATA") or os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# Options beyond the CLI defaults (which are the NER settings).  Tuned on the development sets only.  Every multitask
# model is compared with single-task models trained with the same options (and the same seeds).
# SUFFIX_OPTS: the first POS settings; POS_OPTS: the best found on eng.testa (case-sensitive words, suffixes of 1-3
# and prefixes of 1-2 letters, word shape, dropout, iterate averaging).
SUFFIX_OPTS = ["--suffix-len", "2", "--suffix-dim", "10"]
POS_OPTS = ["--keep-case", "--suffix-len", "1,2,3", "--suffix-dim", "10", "--prefix-len", "1,2", "--prefix-dim", "10",
            "--shape-dim", "10", "--dropout", "0.2", "--hidden-dropout", "0.3", "--average"]
# POS alone, the best on eng.testa: longer affixes and more dropout (found after the multitask rows were run)
POS_BEST = ["--keep-case", "--suffix-len", "1,2,3,4", "--suffix-dim", "10", "--prefix-len", "1,2,3", "--prefix-dim",
            "10", "--shape-dim", "10", "--dropout", "0.3", "--hidden-dropout", "0.5", "--average"]
# POS_BEST with the character feature (a convolution over each word's characters; dos Santos and Zadrozny 2014)
POS_CHAR = POS_BEST + ["--char-dim", "10", "--char-filters", "50"]
LOWER_OPTS = POS_OPTS[1:]                    # POS_OPTS with lowercased words, as Collobert et al.
assert "--keep-case" not in LOWER_OPTS
RUNS = [
    # name, corpus, tasks, extra options
    ("ner", "conll2003", ["ner=3"], []),
    ("pos", "conll2003", ["pos=1"], POS_CHAR),
    ("pos", "conll2003+wsj", ["pos=1"], POS_CHAR),
    ("ner", "conll2003", ["ner=3"], POS_CHAR),
    ("ner+pos", "conll2003", ["ner=3", "pos=1"], POS_CHAR),
    ("ner+pos", "conll2003+wsj", ["ner=3", "pos=1"], POS_CHAR),      # NER labels from eng.train only
    ("pos", "conll2003", ["pos=1"], POS_BEST),
    ("pos", "conll2003", ["pos=1"], POS_OPTS),
    ("ner", "conll2003", ["ner=3"], POS_OPTS),
    ("ner+pos", "conll2003", ["ner=3", "pos=1"], POS_OPTS),
    ("ner+pos", "conll2003", ["ner=3", "pos=1"], POS_OPTS + ["--task-weight", "pos=0.5"]),
    ("ner", "conll2003", ["ner=3"], LOWER_OPTS),
    ("pos", "conll2003", ["pos=1"], LOWER_OPTS),
    ("ner+pos", "conll2003", ["ner=3", "pos=1"], LOWER_OPTS),
    ("chunk", "conll2000", ["chunk=2"], []),
    ("chunk", "conll2000", ["chunk=2"], POS_OPTS),
    ("pos", "conll2000", ["pos=1"], POS_OPTS),
    ("chunk+pos", "conll2000", ["chunk=2", "pos=1"], POS_OPTS),
    ("pos", "conll2003", ["pos=1"], SUFFIX_OPTS),
    ("ner", "conll2003", ["ner=3"], SUFFIX_OPTS),
    ("ner+pos", "conll2003", ["ner=3", "pos=1"], SUFFIX_OPTS),
    ("chunk", "conll2000", ["chunk=2"], SUFFIX_OPTS),
    ("pos", "conll2000", ["pos=1"], SUFFIX_OPTS),
    ("chunk+pos", "conll2000", ["chunk=2", "pos=1"], SUFFIX_OPTS),
]
# The presets (fastnn.recipes.tagger.PRESETS): name, corpus, tasks; the preset supplies every other option, the feature
# columns included.  Targets (issue 17, mean of three seeds): POS 0.8 above NLTK's averaged perceptron on the same
# sentences (bench/pos_perceptron.py: 97.54), chunking F1 95.0 with the POS column, NER F1 91.5 with POS and chunk.
PRESET_RUNS = [("pos", "conll2000", ["pos=1"]), ("chunk", "conll2000", ["chunk=2"]), ("ner", "conll2003", ["ner=3"])]
PRESET_TARGETS = {"pos": ("accuracy", 97.54 + 0.8), "chunk": ("f1", 95.0), "ner": ("f1", 91.5)}
TARGETS = {("conll2003", "ner"): ("f1", 86.0), ("conll2003", "pos"): ("accuracy", 95.5),
           ("conll2003+wsj", "pos"): ("accuracy", 95.5),
           ("conll2000", "chunk"): ("f1", 90.5)}


def conll2000_split(tmp):
    """train.txt less its last 1,000 sentences, and those sentences, as files in `tmp`."""
    from fastnn.data.conll import read_conll, write_conll
    sents = read_conll(os.path.join(DATA, "conll2000", "train.txt"))
    train, dev = os.path.join(tmp, "conll2000.train"), os.path.join(tmp, "conll2000.dev")
    write_conll(train, sents[:-1000])
    write_conll(dev, sents[-1000:])
    return train, dev


def files(corpus, tmp):
    """([training files], development file) of a corpus name."""
    d = os.path.join(DATA, "conll2003")
    if corpus == "conll2003":
        return [os.path.join(d, "eng.train")], os.path.join(d, "eng.testa")
    if corpus == "conll2003+wsj":        # more POS data: CoNLL-2000's train.txt is WSJ text with gold POS tags
        wsj = os.path.join(DATA, "conll2000", "train.txt")
        return [os.path.join(d, "eng.train"), wsj], os.path.join(d, "eng.testa")
    train, dev = conll2000_split(tmp)
    return [train], dev


def fastnn_cmd(*args):
    return [sys.executable, "-m", "fastnn", *map(str, args)]


def run(name, corpus, tasks, extra, tmp, threads, seed):
    train, dev = files(corpus, tmp)
    model = os.path.join(tmp, f"{corpus}-{name}.npz")
    cmd = fastnn_cmd("tagger", "train", "--train", *train, "--dev", dev, *sum((["--task", t] for t in tasks), []),
                     "--out", model, "--threads", threads, *extra, *(["--seed", seed] if seed else []))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    log = p.stderr
    rate = None
    for line in log.splitlines():
        if line.startswith("trained "):
            rate = float(line.split("(")[1].split(" windows/s")[0].replace(",", ""))
    epochs = [line for line in log.splitlines() if line.startswith("epoch ")]
    e = subprocess.run(fastnn_cmd("tagger", "eval", "--model", model, "--data", dev, "--json", "--threads", threads),
                       capture_output=True, text=True, check=True)
    shown = " ".join(map(str, extra))
    return {"name": name, "corpus": corpus, "tasks": tasks, "options": shown, "seed": seed, "wall_s": round(wall, 1),
            "train_windows_per_s": rate, "epochs": epochs, "dev": json.loads(e.stdout)}


def _key(r):
    return r["name"], r["corpus"], r["options"].replace("--threads 1", "").strip()


def table(records):
    """The markdown table of a list of run records: one row per (model, options) and task, the mean over seeds."""
    groups = {}
    for r in records:
        groups.setdefault(_key(r), {})[r.get("seed", 0)] = r        # a seed run again replaces the earlier one
    head = ["corpus", "model", "options", "task", "dev F1", "dev accuracy", "seeds", "target", "train wall time",
            "windows/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def stat(values):
        v = np.array([x for x in values if x is not None])
        if v.size == 0:
            return "-"
        return f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if v.size > 1 else "")

    known = [(n, c, " ".join(x)) for n, c, _, x in RUNS]
    for (name, corpus, opts), by_seed in sorted(groups.items(), key=lambda kv: (
            known.index(kv[0]) if kv[0] in known else len(known), kv[0])):
        runs = list(by_seed.values())
        for task in runs[0]["dev"]:
            scores = [r["dev"][task] for r in runs]
            tgt, mark = TARGETS.get((corpus, task)), ""
            if tgt is not None and name == task and (opts == "" or (name == "pos" and opts == " ".join(POS_CHAR))):
                mean = np.mean([s[tgt[0]] for s in scores])
                mark = f"{tgt[0]} >= {tgt[1]}: {'yes' if mean >= tgt[1] else 'NO'}"
            wall = np.mean([r["wall_s"] for r in runs])
            rate = np.mean([r["train_windows_per_s"] or 0 for r in runs])
            lines.append(f"| {corpus} | {name} | `{opts or '(defaults)'}` | {task} | {stat(s['f1'] for s in scores)} | "
                         f"{stat(s['accuracy'] for s in scores)} | {len(runs)} | {mark} | {wall:.0f} s | {rate:,.0f} |")
    return "\n".join(lines)


def preset_table(records):
    """Markdown: one row per preset, the mean ± sd of its dev score over seeds, the target, the mean wall time."""
    groups = {}
    for r in records:
        groups.setdefault(r["name"], {})[r.get("seed", 0)] = r
    lines = ["| preset | corpus | dev score | seeds | target | train wall time | command |", "|---|---|---|---|---|---|---|"]
    for name, corpus, tasks in PRESET_RUNS:
        if name not in groups:
            continue
        runs = [groups[name][k] for k in sorted(groups[name])]
        metric, target = PRESET_TARGETS[name]
        v = np.array([r["dev"][name][metric] for r in runs])
        score = f"{metric} {v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if v.size > 1 else "")
        seeds = ", ".join(f"{x:.2f}" for x in v)
        train, dev = ("eng.train", "eng.testa") if corpus == "conll2003" else ("conll2000.train", "conll2000.dev")
        cmd = f"fastnn tagger train --preset {name} --train {train} --dev {dev} " + " ".join(f"--task {t}" for t in tasks)
        lines.append(f"| {name} | {corpus} | {score} ({seeds}) | {len(runs)} | {metric} >= {target:.2f}: "
                     f"{'yes' if v.mean() >= target else 'NO'} | {min(r['wall_s'] for r in runs) / 60:.1f} min | "
                     f"`{cmd} --out {name}.npz` |")
    return "\n".join(lines)


def screen_table(records):
    """Markdown: one row per screen (label and corpus) of a --screen log, its dev score per seed and their mean ± sd
    (F1 for chunk tasks, else accuracy; a later run of a seed replaces the earlier; failed runs have no score)."""
    groups = {}
    for r in records:
        if "dev" in r:
            groups.setdefault((r["label"], r["corpus"]), {})[r.get("seed", 0)] = r
    lines = ["| label | corpus | options | dev score per seed | mean ± sd |", "|---|---|---|---|---|"]
    for (label, corpus), by_seed in groups.items():                  # in the log's order
        runs = [by_seed[k] for k in sorted(by_seed)]
        task, res = next(iter(runs[0]["dev"].items()))
        metric = "f1" if res.get("f1") is not None else "accuracy"
        v = np.array([r["dev"][task][metric] for r in runs])
        k = len(runs[0].get("combined_from", []))
        opts = runs[0].get("flags") or f"ensembles of {k} saved single models (--combine {k})"
        lines.append(f"| {label} | {corpus} | `{opts}` | {metric} " + ", ".join(
            f"{k}: {x:.2f}" for k, x in zip(sorted(by_seed), v)) + f" | {v.mean():.2f}" +
            (f" ± {v.std(ddof=1):.2f}" if v.size > 1 else "") + " |")
    return "\n".join(lines)


def run_presets(args):
    log = args.log or os.path.join(REPO, "bench", "results", "tagger_presets.jsonl")
    if args.table:
        with open(args.table) as f:
            print(preset_table([json.loads(line) for line in f if line.strip()]))
        return 0
    with tempfile.TemporaryDirectory(prefix="fastnn-tagger-") as tmp:
        for seed in args.seeds:
            for name, corpus, tasks in PRESET_RUNS:
                if args.only and name not in args.only:
                    continue
                rec = run(name, corpus, tasks, ["--preset", name], tmp, args.threads, seed)
                with open(log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec[k] for k in ("name", "corpus", "options", "seed", "wall_s", "dev")}), flush=True)
    with open(log) as f:
        print(preset_table([json.loads(line) for line in f if line.strip()]))
    return 0


def run_screen(args, extra):
    """`--preset NAME` plus `extra` options, for each preset of --only and each seed: one record (label, corpus,
    seed, flags, wall_s, rc, epochs, dev) per run appended to --log (default bench/results/tagger_screens.jsonl)."""
    log = args.log or os.path.join(REPO, "bench", "results", "tagger_screens.jsonl")
    with tempfile.TemporaryDirectory(prefix="fastnn-tagger-") as tmp:
        for seed in args.seeds:
            for name, corpus, tasks in PRESET_RUNS:
                if args.only and name not in args.only:
                    continue
                flags = ["--preset", name, *extra]
                rec = run(name, corpus, tasks, flags, tmp, args.threads, seed)
                if args.save_models:
                    os.makedirs(args.save_models, exist_ok=True)
                    os.replace(os.path.join(tmp, f"{corpus}-{name}.npz"), _saved(args, name, seed))
                out = {"label": args.screen, "corpus": corpus, "seed": seed, "flags": rec["options"],
                       "wall_s": round(rec["wall_s"]), "rc": 0, "epochs": rec["epochs"], "dev": rec["dev"]}
                with open(log, "a") as f:
                    f.write(json.dumps(out) + "\n")
                print(json.dumps({k: out[k] for k in ("label", "corpus", "seed", "flags", "wall_s")}),
                      {t: r["f1"] if r["f1"] is not None else r["accuracy"] for t, r in rec["dev"].items()}, flush=True)
    return 0


def _saved(args, name, seed):
    return os.path.join(args.save_models, f"{args.screen}-{name}-seed{seed}.npz")


def run_combine(args):
    """Score ensembles of --combine K single models saved by a --screen run with --save-models: for each seed e of
    --seeds, the models of seeds K*e .. K*e+K-1 (an `--ensemble K --seed e` run's members, each trained as the
    single model of its seed), one record per ensemble (label LABEL-ensK) appended to the screens log."""
    from fastnn import io
    from fastnn.data.conll import read_conll
    from fastnn.models.tagger import TaggerEnsemble
    log = args.log or os.path.join(REPO, "bench", "results", "tagger_screens.jsonl")
    k = args.combine
    with tempfile.TemporaryDirectory(prefix="fastnn-tagger-") as tmp:
        for name, corpus, tasks in PRESET_RUNS:
            if args.only and name not in args.only:
                continue
            dev = read_conll(files(corpus, tmp)[1])
            for e in args.seeds:
                members = [io.load_model(_saved(args, name, s)) for s in range(k * e, k * e + k)]
                model = TaggerEnsemble([m for member in members for m in getattr(member, "members", [member])])
                out = {"label": f"{args.screen}-ens{k}", "corpus": corpus, "seed": e,
                       "combined_from": [f"{args.screen} seed {s}" for s in range(k * e, k * e + k)],
                       "dev": model.evaluate(dev)}
                with open(log, "a") as f:
                    f.write(json.dumps(out) + "\n")
                print(json.dumps(out), flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", help="append one JSON line per run here (default bench/results/tagger_runs.jsonl, "
                                   "with --presets tagger_presets.jsonl)")
    ap.add_argument("--presets", action="store_true", help="run the presets (--preset NAME) instead of RUNS")
    ap.add_argument("--only", action="append", help="run only these names (ner, pos, ner+pos, chunk, chunk+pos)")
    ap.add_argument("--corpus", choices=["conll2003", "conll2003+wsj", "conll2000"], help="run only this corpus")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run each model with (default 0)")
    ap.add_argument("--table", metavar="LOG", help="print the table of an existing log and exit")
    ap.add_argument("--screen", metavar="LABEL", help="run the presets of --only with the options after -- on top "
                                                     "(log: bench/results/tagger_screens.jsonl)")
    ap.add_argument("--save-models", metavar="DIR", help="with --screen: keep each model as "
                                                         "DIR/LABEL-NAME-seedS.npz")
    ap.add_argument("--combine", type=int, metavar="K", help="with --screen LABEL and --save-models: score "
                                                            "ensembles of K of the saved models (see above)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.combine:
        return run_combine(args)
    if args.screen:
        return run_screen(args, extra)
    if args.presets:
        return run_presets(args)
    args.log = args.log or os.path.join(REPO, "bench", "results", "tagger_runs.jsonl")
    if args.table:
        with open(args.table) as f:
            records = [json.loads(line) for line in f if line.strip()]
        print(screen_table(records) if records and "label" in records[0] else table(records))   # a --screen log
        return 0
    done = set()
    if os.path.exists(args.log):                       # runs already in the log are not run again
        with open(args.log) as f:
            done = {(*_key(r), r.get("seed", 0)) for r in map(json.loads, filter(str.strip, f))}
    records = []
    with tempfile.TemporaryDirectory(prefix="fastnn-tagger-") as tmp:
        for seed in args.seeds:
            for name, corpus, tasks, extra in RUNS:
                if (args.only and name not in args.only) or (args.corpus and corpus != args.corpus):
                    continue
                if (name, corpus, " ".join(extra), seed) in done:
                    continue
                rec = run(name, corpus, tasks, extra, tmp, args.threads, seed)
                records.append(rec)
                with open(args.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec[k] for k in ("name", "corpus", "options", "seed", "wall_s", "dev")}),
                      flush=True)
    with open(args.log) as f:
        print(table([json.loads(line) for line in f if line.strip()]))
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
