"""The runs behind the README's pre-training table: word vectors trained without labels, then the window tagger.

    python bench/pretrain_experiments.py --list                      # the steps
    python bench/pretrain_experiments.py tag:ner:supervised tag:chunk:supervised
    python bench/pretrain_experiments.py pretrain:ranking
    python bench/pretrain_experiments.py tag:ner:ranking:fixed tag:ner:ranking:tuned
    python bench/pretrain_experiments.py --table                     # the markdown table of the log

Every step is the real command line in a subprocess (`python -m fastnn embed train ...`, `tagger train ...`, then
`tagger eval --json` on the development set); wall times are measured around the command.  Files (vectors, models,
the CoNLL-2000 split) go to --workdir, never into the repository; one JSON line per step is appended to --log.

Data (../shared/data).  Unlabeled text for pre-training: the whole Brown corpus (train, valid and test: unrelated to
both development sets), the words of CoNLL-2003 eng.train and of CoNLL-2000 train.txt less its last 1,000
sentences.  Never used: any label, the words of eng.testa, and the words of the last 1,000 sentences of
CoNLL-2000 train.txt (the CoNLL-2000 development set, as the tagger experiments hold it out), so the development
sets stay clean.  Taggers are trained on eng.train / the first 7,936 CoNLL-2000 sentences and scored on eng.testa /
the last 1,000.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OBJECTIVES = ("ranking", "nplm", "rnn")
TASKS = {"ner": ("conll2003", "ner=3"), "chunk": ("conll2000", "chunk=2"), "pos": ("conll2003", "pos=1")}
METRIC = {"ner": ("f1", "NER dev F1 (eng.testa)"), "chunk": ("f1", "chunking dev F1 (CoNLL-2000)"),
          "pos": ("accuracy", "POS dev accuracy (eng.testa)")}
MODES = {"fixed": ["--extend-vocab", "--freeze-embeddings"], "tuned": ["--extend-vocab"]}
# Options of `embed train` beyond its defaults, per objective (the README says why).
PRETRAIN_OPTS = {"ranking": [], "nplm": [], "rnn": []}
TAGGER_OPTS = {"ner": [], "chunk": [], "pos": ["--suffix-len", "2", "--suffix-dim", "10"]}   # as tagger_experiments


def steps():
    out = [f"tag:{t}:supervised" for t in TASKS]
    for o in OBJECTIVES:
        out.append(f"pretrain:{o}")
        out += [f"tag:{t}:{o}:{m}" for t in TASKS for m in MODES]
    return out


def fastnn_cmd(*args):
    return [sys.executable, "-m", "fastnn", *map(str, args)]


def conll2000_split(work):
    """train.txt less its last 1,000 sentences, and those sentences (the development set), as files in `work`."""
    from fastnn.data.conll import read_conll, write_conll
    train, dev = os.path.join(work, "conll2000.train"), os.path.join(work, "conll2000.dev")
    if not (os.path.exists(train) and os.path.exists(dev)):
        sents = read_conll(os.path.join(DATA, "conll2000", "train.txt"))
        write_conll(train, sents[:-1000])
        write_conll(dev, sents[-1000:])
    return train, dev


def tagger_files(task, work):
    if TASKS[task][0] == "conll2003":
        d = os.path.join(DATA, "conll2003")
        return os.path.join(d, "eng.train"), os.path.join(d, "eng.testa")
    return conll2000_split(work)


def text_files(work):
    b = os.path.join(DATA, "brown")
    return ([os.path.join(b, f"brown.{s}.txt") for s in ("train", "valid", "test")]
            + [os.path.join(DATA, "conll2003", "eng.train"), conll2000_split(work)[0]])


def _run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p, wall


def _shown(cmd, work):
    """The command as a user would type it (fastnn ..., paths shortened)."""
    s = " ".join(cmd[2:]).replace(DATA + "/", "$D/").replace(work + "/", "")
    return s.replace("-m fastnn", "fastnn") if s.startswith("-m") else "fastnn " + s.split("fastnn ", 1)[-1]


def pretrain(objective, work, extra):
    out = os.path.join(work, f"vectors-{objective}.txt")
    cmd = fastnn_cmd("embed", "train", "--objective", objective, "--text", *text_files(work), "--dim", 50,
                     "--out", out, "--save-model", os.path.join(work, f"lm-{objective}.npz"), "--json",
                     *PRETRAIN_OPTS[objective], *extra)
    p, wall = _run(cmd)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return {"step": f"pretrain:{objective}", "command": _shown(cmd, work), "wall_s": round(wall, 1), "result": res,
            "log": [ln for ln in p.stderr.splitlines() if ln.startswith(("epoch", "/", "Window", "NPLM", "RNN"))]}


def tag(task, objective, mode, work, extra):
    train, dev = tagger_files(task, work)
    name = f"{task}-{objective or 'supervised'}-{mode or ''}".rstrip("-")
    model = os.path.join(work, f"tagger-{name}.npz")
    opts = []
    if objective is not None:
        vec = os.path.join(work, f"vectors-{objective}.txt")
        if not os.path.exists(vec):
            raise SystemExit(f"run pretrain:{objective} first ({vec} is missing)")
        opts = ["--pretrained", vec, *MODES[mode]]
    cmd = fastnn_cmd("tagger", "train", "--train", train, "--dev", dev, "--task", TASKS[task][1], "--out", model,
                     *opts, *TAGGER_OPTS[task], *extra)
    p, wall = _run(cmd)
    e, _ = _run(fastnn_cmd("tagger", "eval", "--model", model, "--data", dev, "--json"))
    epochs = [ln for ln in p.stderr.splitlines() if ln.startswith("epoch ")]
    pre = [ln for ln in p.stderr.splitlines() if ln.startswith("pretrained vectors")]
    return {"step": f"tag:{task}:{objective or 'supervised'}" + (f":{mode}" if mode else ""), "task": task,
            "objective": objective, "mode": mode, "command": _shown(cmd, work), "wall_s": round(wall, 1),
            "dev": json.loads(e.stdout)[task], "epochs": epochs, "pretrained": pre[0] if pre else None}


def run_step(step, work, extra):
    parts = step.split(":")
    if parts[0] == "pretrain" and len(parts) == 2 and parts[1] in OBJECTIVES:
        return pretrain(parts[1], work, extra)
    if parts[0] == "tag" and len(parts) == 3 and parts[1] in TASKS and parts[2] == "supervised":
        return tag(parts[1], None, None, work, extra)
    if parts[0] == "tag" and len(parts) == 4 and parts[1] in TASKS and parts[2] in OBJECTIVES and parts[3] in MODES:
        return tag(parts[1], parts[2], parts[3], work, extra)
    raise SystemExit(f"unknown step {step!r}; see --list")


def table(records):
    """Markdown: one row per (objective, mode), each task's dev score beside its gain over supervised-only, and the
    times (pre-training, then each tagger's training)."""
    last = {}
    for r in records:
        last[r["step"]] = r                                   # a step run again replaces the earlier record
    tasks = [t for t in TASKS if any(k.startswith(f"tag:{t}:") for k in last)]
    rows = [("supervised only", None, None)] + [(f"{o}, {m}", o, m) for o in OBJECTIVES for m in MODES]
    base = {t: last.get(f"tag:{t}:supervised") for t in tasks}
    head = ["word vectors"] + [x for t in tasks for x in (METRIC[t][1], "vs supervised")] + ["pre-training"]
    head += [f"{t} training" for t in tasks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, o, m in rows:
        cells, times = [], []
        for t in tasks:
            r = last.get(f"tag:{t}:supervised" if o is None else f"tag:{t}:{o}:{m}")
            if r is None:
                cells += ["-", ""]
                times.append("-")
                continue
            key = METRIC[t][0]
            v = r["dev"][key]
            diff = "" if o is None or base[t] is None else f"{v - base[t]['dev'][key]:+.2f}"
            cells += [f"{v:.2f}", diff]
            times.append(f"{r['wall_s'] / 60:.1f} min")
        pre = last.get(f"pretrain:{o}") if o else None
        pt = "-" if pre is None else f"{pre['wall_s'] / 60:.1f} min"
        if o is None or any(c != "-" for c in cells[::2]):
            lines.append("| " + " | ".join([label, *cells, pt, *times]) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("steps", nargs="*", help="steps to run, in order (see --list)")
    ap.add_argument("--log", default=os.path.join(REPO, "bench", "results", "pretrain_runs.jsonl"),
                    help="append one JSON line per step here (default %(default)s)")
    ap.add_argument("--workdir", default="/tmp/fastnn-pretrain", help="vectors, models, the CoNLL-2000 split")
    ap.add_argument("--list", action="store_true", help="list the steps and exit")
    ap.add_argument("--table", action="store_true", help="print the table of the log and exit")
    ap.add_argument("--extra", default="", help="extra options appended to every command of this invocation")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(steps()))
        return 0
    if args.table:
        with open(args.log) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        return 0
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # idle OpenMP threads must not spin beside BLAS
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    for step in args.steps:
        rec = run_step(step, os.path.abspath(args.workdir), args.extra.split())
        rec["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(args.log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        brief = {k: rec[k] for k in ("step", "wall_s") if k in rec}
        brief["f1"] = rec.get("dev", {}).get("f1")
        print(json.dumps(brief), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
