"""`fastnn tagger {train,eval,predict}`: window taggers on CoNLL column files (fastnn.models.tagger).

    fastnn tagger train --train eng.train --dev eng.testa --task ner=3 --out ner.npz
    fastnn tagger train --train eng.train --dev eng.testa --task ner=3 --task pos=1 --out ner_pos.npz
    fastnn tagger train --train train.txt --dev dev.txt --task chunk=2 --feature pos=1 --out chunk.npz
    fastnn tagger eval --model ner.npz --data eng.testa --json
    fastnn tagger predict --model ner.npz --data eng.testa > eng.testa.pred     # then: conlleval < eng.testa.pred
    echo "John Smith visited Paris ." | fastnn tagger predict --model ner.npz --data -
"""
import math
import os
import sys
import time

from fastnn.cli._common import (NONFINITE, CLIError, add_config_options, add_run_options, add_threads, check_resume,
                                check_writable, config_from_args, existing_file, flag, interrupted_exit_code,
                                interrupted_note, load_model_file, option_names, print_json, save_or_fallback,
                                set_threads, train_keeping_work)
from fastnn.recipes import tagger as recipe

# kernel and BLAS threads of the tagger commands: the per-step matrices are small
THREADS = 1

def register(sub):
    p = sub.add_parser("tagger", help="window taggers (Collobert et al. 2011): train, eval, predict")
    tsub = p.add_subparsers(dest="tagger_command", metavar="ACTION")
    tsub.required = True

    t = tsub.add_parser("train", help="train a single-task or multitask window tagger")
    t.add_argument("--train", required=True, nargs="+", metavar="FILE",
                   help="CoNLL column file(s) to train on, read as one corpus; the tasks' columns are those of the "
                        "first file, and a later file may lack some of them (e.g. more POS data from another corpus "
                        "for a NER + POS model: its sentences then train only the tasks whose columns they have)")
    t.add_argument("--dev", "--valid", dest="dev", metavar="FILE",
                   help="CoNLL file scored after every epoch (best epoch kept, early stopping with --patience); "
                        "--valid: the same, as lm train spells it")
    t.add_argument("--task", action="append", required=True, metavar="NAME=COL",
                   help="a task: its name and the column of its tags (an index, or word/pos/chunk/ner); repeat for "
                        "a multitask model")
    t.add_argument("--out", required=True, metavar="MODEL.npz", help="where to write the trained model")
    g = t.add_argument_group("model")
    o = t.add_argument_group("training")
    g.add_argument("--feature", action="append", default=[], metavar="NAME=COL[:DIM]",
                   help="a feature column: the tags of column COL (an index, or pos/chunk/...) as an input, one "
                        "learned vector of DIM (default --feature-dim) per tag and window position; eval and predict "
                        "read the same column; repeatable")
    o.add_argument("--task-weight", action="append", default=[], metavar="NAME=W",
                   help="multiply the loss of task NAME by W > 0 (default 1), e.g. pos=0.5 to keep an auxiliary "
                        "task from dominating the shared layers; repeatable")
    o.add_argument("--preset", metavar="NAME",
                   help=f"start from a named configuration ({', '.join(recipe.PRESETS) or 'none defined yet'}); "
                        "options given explicitly override its values")
    add_config_options(t, recipe.TaggerConfig, groups={"model": g, "training": o})
    add_threads(o, THREADS, "the per-step matrices are small")
    add_run_options(o)
    t.set_defaults(func=run_train, configs=(recipe.TaggerConfig,))     # (warnings name their fields as options)

    e = tsub.add_parser("eval", help="score a model on a CoNLL file (chunk F1 as conlleval, token accuracy)")
    e.add_argument("--model", required=True, metavar="MODEL.npz")
    e.add_argument("--data", required=True, metavar="FILE")
    e.add_argument("--json", action="store_true",
                   help='print {"task": {"f1", "precision", "recall", "accuracy" (percent; null F1 for non-chunk '
                        'tasks such as POS), "n_tokens", "n_chunks", "unseen_tokens", "unseen_chunks", '
                        '"unseen_tags"}}: gold tags the model cannot produce are scored as errors and counted')
    add_threads(e, THREADS)
    e.set_defaults(func=run_eval)

    r = tsub.add_parser("predict", help="tag a file line for line: CoNLL columns get one predicted column per "
                                         "task, text lines become word/TAG tokens")
    r.add_argument("--model", required=True, metavar="MODEL.npz")
    r.add_argument("--data", required=True, metavar="FILE",
                   help="CoNLL file (its first, word, column is used, and the model's feature columns) or tokenised "
                        "text, one sentence per line; - reads stdin")
    r.add_argument("--format", choices=["auto", "conll", "text"], default="auto",
                   help="how --data is laid out; auto: CoNLL when its token lines share one number of fields and "
                        "blank or -DOCSTART- lines separate them, else text (default %(default)s)")
    r.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    add_threads(r, THREADS)
    r.set_defaults(func=run_predict)


# ---- helpers -----------------------------------------------------------------------------------------------------

def _threads(n):
    set_threads(n)


def read_conll_file(path, what, starts=None):
    """read_conll(path, starts=starts); a missing or unreadable file is a CLIError naming the option `what`."""
    from fastnn.data.conll import read_conll
    existing_file(path)
    try:
        return read_conll(path, starts=starts)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise CLIError(f"{what}: {e}") from None


def in_files(message, files, first=0):
    """`message` (about sentences given to the library, numbered from 0 in the order given) with each "sentence K[,
    token I]" said as the place in its file: "line L of FILE (its sentence k[, token I])".  files : [(path, starts)]
    in the order their sentences were given, starts being read_conll's (one line number per sentence); first : the
    number of sentence 0 of the message among them (a block of a file read in blocks)."""
    import re

    def place(m):
        k, token = int(m.group(1)) + first, m.group(2)
        for path, starts in files:
            if k < len(starts):
                line = starts[k] + (int(token) if token is not None else 0)
                return f"line {line} of {path} (its sentence {k}{'' if token is None else ', token ' + token})"
            k -= len(starts)
        return m.group(0)

    return re.sub(r"\bsentence (\d+)(?:, token (\d+))?", place, message)


def _parse_tasks(specs, n_cols, path):
    from fastnn.data.conll import column_index
    tasks = {}
    for spec in specs:
        name, sep, col = spec.partition("=")
        if not sep or not name or not col:
            raise CLIError(f"--task must be NAME=COLUMN (e.g. ner=3); got {spec!r}")
        if name in tasks:
            raise CLIError(f"--task {name!r} is given twice")
        try:
            c = column_index(int(col) if col.lstrip("-").isdigit() else col, "--task")
        except ValueError as e:
            raise CLIError(str(e)) from None
        if c >= n_cols:
            raise CLIError(f"--task {spec}: column {c} is out of range; {path} has {n_cols} columns "
                           f"(0..{n_cols - 1})")
        if c == 0:
            raise CLIError(f"--task {spec}: column 0 holds the words; a task must tag another column")
        same = next((other for other, oc in tasks.items() if oc == c), None)
        if same is not None:        # (two heads trained on the same tags: the task counted twice, silently)
            raise CLIError(f"--task {spec}: column {c} is already the column of --task {same}; give each column once")
        tasks[name] = c
    return tasks


def _features(specs, default_dim, n_cols, path, tasks):
    """{name: (column, dim)} from --feature NAME=COL[:DIM] options."""
    from fastnn.data.conll import column_index
    out = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        col, _, dim = rest.partition(":")
        try:
            if not sep or not name or name in out:
                raise ValueError("a new NAME")
            c = column_index(int(col) if col.isdigit() else col, "--feature")
            dim = int(dim) if dim else default_dim
        except ValueError as e:
            raise CLIError(f"--feature {spec}: expected NAME=COL[:DIM], e.g. pos=1 or pos=pos:10 ({e})") from None
        if not 1 <= c < n_cols:
            raise CLIError(f"--feature {spec}: column {c} is not a tag column of {path}, which has {n_cols} columns "
                           f"(0 = the words)")
        if c in tasks.values():
            raise CLIError(f"--feature {spec}: column {c} is the column a --task predicts")
        same = next((other for other, (oc, _) in out.items() if oc == c), None)
        if same is not None:        # (the same tags read twice, as two features)
            raise CLIError(f"--feature {spec}: column {c} is already the column of --feature {same}; give each "
                           f"column once")
        if dim < 1:
            raise CLIError(f"--feature {spec}: the dimension must be >= 1; got {dim}")
        out[name] = (c, dim)
    return out


def _task_weights(specs, tasks):
    """{name: weight} from --task-weight NAME=W options."""
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or name not in tasks:
            raise CLIError(f"--task-weight {spec}: expected NAME=W with NAME one of the --task names "
                           f"({', '.join(tasks)})")
        if name in out:             # (the last one was taken, silently)
            raise CLIError(f"--task-weight {name!r} is given twice")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not (math.isfinite(w) and w > 0):
            raise CLIError(f"--task-weight {spec}: the weight must be a number > 0")
        out[name] = w
    return out


def _check_args(args):
    check_resume(args)
    check_writable(args, "out", "checkpoint", inputs=("train", "dev", "pretrained"))


def _load_model(path):
    from fastnn.models.tagger import TaggerEnsemble, WindowTagger
    try:
        model = load_model_file(path)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise CLIError(str(e)) from None
    if not isinstance(model, (WindowTagger, TaggerEnsemble)):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a tagger model")
    return model


# ---- subcommands -------------------------------------------------------------------------------------------------

def train_config(args):
    """The recipe Config of `tagger train` (its parsed `args`) before the files are read: the preset's, then the
    options given; a CLIError naming the option otherwise.  `search tagger` checks every sampled trial with it."""
    return config_from_args(recipe.TaggerConfig, args, from_preset=recipe.from_preset, preset=args.preset)


def run_train(args):
    config = train_config(args)
    _check_args(args)
    if not args.dev and recipe.needs_dev(config):
        raise CLIError(f"{flag(recipe.needs_dev(config))} acts on the --dev score: give --dev FILE, or leave it out")
    # --workers only splits an ensemble: say so when it was asked for (a preset's workers with --ensemble 1 is not)
    if getattr(args, "workers", 1) > 1 and config.ensemble == 1 and not args.quiet:
        print(f"--workers {args.workers} applies to ensembles only (--ensemble K > 1): one model trains in this "
              f"process (its threads: --threads)", file=sys.stderr)
    if config.pretrained:
        existing_file(config.pretrained)
    _threads(args.threads)
    starts = [[] for _ in args.train]                  # each sentence's line, for messages (in_files)
    parts = [read_conll_file(path, "--train", st) for path, st in zip(args.train, starts)]
    widths = [min(len(s[0]) for s in part) for part in parts]
    tasks = _parse_tasks(args.task, widths[0], args.train[0])
    for path, width in zip(args.train[1:], widths[1:]):      # more files: data for the tasks whose columns they have
        missing = [name for name, c in tasks.items() if c >= width]
        if len(missing) == len(tasks):
            raise CLIError(f"--train {path} has {width} columns: no column of any --task")
        if missing and not args.quiet:
            print(f"{path} ({width} columns) has no labels for {', '.join(missing)}: its sentences train the other "
                  f"tasks", file=sys.stderr)
    # no --feature: the preset's feature columns (e.g. --preset ner reads the POS and chunk columns)
    specs = args.feature or [f"{n}={c}:{d}" for n, (c, d) in config.features.items()]
    features = _features(specs, config.feature_dim, widths[0], args.train[0], tasks)
    for path, width in zip(args.train[1:], widths[1:]):
        missing = [f"{name} (column {c})" for name, (c, _) in features.items() if c >= width]
        if missing:
            raise CLIError(f"--train {path} has {width} columns: no column for --feature {', '.join(missing)}")
    config = config_from_args(recipe.TaggerConfig, args, from_preset=recipe.from_preset, preset=args.preset,
                              tasks=tasks, features=features, task_weights=_task_weights(args.task_weight, tasks))
    train = [s for part in parts for s in part]
    dev_starts = []
    dev = read_conll_file(args.dev, "--dev", dev_starts) if args.dev else None

    log = None if args.quiet else (lambda m: print(m, file=sys.stderr))
    try:
        model = recipe.build(config, train, log=log)
    except (ValueError, IndexError) as e:
        raise CLIError(in_files(option_names(str(e), recipe.TaggerConfig), list(zip(args.train, starts)))) from None
    if dev is not None:
        try:
            notice = recipe.check_dev(model, dev)
        except (ValueError, IndexError) as e:
            raise CLIError(f"--dev {args.dev}: {in_files(str(e), [(args.dev, dev_starts)])}") from None
        if notice and log:
            log(f"--dev {args.dev}: {notice}")
    if log:
        log(repr(model))
    t0 = time.perf_counter()
    trainer, stop = train_keeping_work(args, lambda: recipe.fit(
        model, train, dev, config, checkpoint=args.checkpoint, resume=args.resume, quiet=args.quiet,
        on_nonfinite=NONFINITE[args.on_nonfinite]))
    elapsed = time.perf_counter() - t0
    out = save_or_fallback(args.out, model, "--out")
    hist = trainer.history
    secs = sum(h["seconds"] for h in hist)
    rate = sum(len(s) for s in train) * len(hist) / secs if secs else float("nan")
    if args.json:
        res = {"out": out, "epochs": len(hist), "seconds": round(elapsed, 1), "train_windows_per_s": round(rate)}
        if dev is not None:
            res.update(metric=trainer.metric[0], best_dev_score=trainer.best_score, best_epoch=trainer.best_epoch)
        if stop is not None:
            res["interrupted"] = True
        print_json(res)
    elif not args.quiet and stop is None:               # an interrupted run says so below, not "trained"
        best = ""
        if dev is not None and isinstance(trainer.best_epoch, list):      # an ensemble: the members' best epochs
            best = (f", ensemble dev score {trainer.best_score:.2f} (members' best epochs "
                    f"{', '.join(map(str, trainer.best_epoch))})")
        elif dev is not None:
            best = f", best dev score {trainer.best_score:.2f} at epoch {trainer.best_epoch}"
        print(f"trained {len(hist)} epochs in {elapsed:.1f} s ({rate:,.0f} windows/s in training steps){best}; "
              f"model written to {out}", file=sys.stderr)
    if stop is not None:
        print(f"fastnn tagger train: {interrupted_note(stop, out)}", file=sys.stderr)
        return interrupted_exit_code()
    return 0 if out == args.out else 1


def run_eval(args):
    _threads(args.threads)
    existing_file(args.data)        # (a missing file was found after the model, an ensemble maybe, had been loaded)
    model = _load_model(args.model)
    starts = []
    data = read_conll_file(args.data, "--data", starts)
    try:
        res = model.evaluate(data)
    except (ValueError, IndexError) as e:
        raise CLIError(f"--data {args.data}: {in_files(str(e), [(args.data, starts)])}") from None
    unseen = {}
    _add_unseen(unseen, model, data)
    _say_unseen(f"--data {args.data}", unseen)
    if args.json:
        print_json(res)
        return 0
    print(f"{'task':10s} {'precision':>9s} {'recall':>9s} {'F1':>9s} {'accuracy':>9s}")
    for name, r in res.items():
        f = (lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9s}")
        print(f"{name:10s} {f(r['precision'])} {f(r['recall'])} {f(r['f1'])} {f(r['accuracy'])}")
    for name, r in res.items():
        if r["unseen_tokens"]:
            chunks = f" ({r['unseen_chunks']} of {r['n_chunks']} gold chunks)" if r["n_chunks"] is not None else ""
            print(f"{name}: {r['unseen_tokens']} of {r['n_tokens']} gold tokens{chunks} have tags the model cannot "
                  f"produce ({', '.join(r['unseen_tags'])}); they are scored as errors")
    return 0


# one block of sentences tagged at a time: output starts before the input ends, memory stays bounded
PREDICT_BLOCK = 2000


def run_predict(args):
    import itertools

    from fastnn.data import conll
    from fastnn.data.text import open_text

    _threads(args.threads)
    check_writable(args, "out", inputs=("data", "model"))   # (and the --data below: before a model is loaded)
    existing_file(args.data)
    model = _load_model(args.model)
    src = open_text(args.data, "--data")
    name = "stdin" if args.data == "-" else args.data
    with src:
        try:
            head = conll.read_head(src, 1000) if args.format == "auto" else []     # (1000 token lines)
            fmt = conll.detect_format(head) if args.format == "auto" else args.format
            items = conll.read_document(itertools.chain(head, src), fmt, name, "--data")
            guessed = " (read as text, one sentence per line, by auto-detection: give --format conll for a CoNLL " \
                      "file)" if fmt == "text" and args.format == "auto" else ""
            unseen = {}
            lines = _predicted_lines(model, items, fmt, name + guessed, unseen, name)
            if args.out:
                from fastnn.io import atomic_write
                atomic_write(args.out, lambda f: f.writelines(line.encode("utf-8") for line in lines))
            else:
                _write_stdout(lines)
            _say_unseen(f"--data {name}", unseen)
        except ValueError as e:
            raise CLIError(str(e)) from None
        except OSError as e:
            if args.out and not isinstance(e, BrokenPipeError):
                raise CLIError(f"--out {args.out}: {e}") from None
            raise
    return 0


def _add_unseen(total, model, sentences):
    """Add model.unseen_features(sentences) into `total` ({} at first), with each unseen value's count: predict
    reads its input in blocks, eval at once, and both say the same (_say_unseen)."""
    from collections import Counter
    for feat, u in model.unseen_features(sentences).items():
        tot = total.setdefault(feat, dict(u, n_tokens=0, unseen_tokens=0, counts=Counter()))
        tot["n_tokens"] += u["n_tokens"]
        tot["unseen_tokens"] += u["unseen_tokens"]
        tot["counts"].update(u["unseen_counts"])


def _say_unseen(where, total):
    """The notice of tagger eval and predict on the feature values the training data never had (recipe.feature_notice:
    e.g. a file without the POS column, its next column read as POS tags, silently), on stderr after `where`; the
    values most frequent first, as model.unseen_features orders them."""
    notice = recipe.feature_notice({f: dict(u, unseen_values=sorted(u["counts"], key=lambda v: (-u["counts"][v], v)))
                                    for f, u in total.items()})
    if notice:
        print(f"{where}: {notice}", file=sys.stderr)


def _predicted_lines(model, items, fmt, name, unseen, path):
    """Output lines, one per input line: CoNLL token lines get one predicted column per task (a -DOCSTART- line an
    O per task, so every line keeps conlleval's column count); text lines become word/TAG tokens (one /TAG per task);
    blank lines are kept.  unseen : a dict that receives the unseen feature values of all the input (_add_unseen).
    An input without a token line (empty, or only blank and -DOCSTART- lines) is a CLIError before any line is out,
    as `tagger eval` refuses it: echoed, it went on to conlleval as a score of nothing, exit 0."""
    n_tasks = len(model.tasks)
    schemes = {}                 # task -> the chunk encoding of the input's own column of the task, once it shows one
    items = iter(items)
    starts, line = [], 1         # each sentence's first line, for messages (in_files)
    while True:
        block = []
        n_sentences = 0
        for item in items:
            block.append(item)
            if not isinstance(item, str):
                n_sentences += 1
                starts.append(line)
            line += 1 if isinstance(item, str) or fmt == "text" else len(item)
            if n_sentences == PREDICT_BLOCK:
                break
        if not block and not starts:
            raise CLIError(f"--data {path} is empty; it must contain at least one token line (nothing to tag)")
        if not block:
            return
        sentences = [it for it in block if not isinstance(it, str)]
        if not starts:          # (echoed, such an input gave conlleval a score of no token, exit 0)
            raise CLIError(f"--data {path} has no token line, only {len(block)} blank or -DOCSTART- line"
                           f"{'s' * (len(block) > 1)}; it must contain at least one (nothing to tag)")
        try:
            pred = model.predict(sentences)
        except (ValueError, IndexError) as e:           # e.g. text given to a model that reads feature columns
            where = in_files(str(e), [(path, starts)], first=len(starts) - len(sentences))
            raise CLIError(f"--data {name}: {where}") from None
        _add_unseen(unseen, model, sentences)
        cols = [pred[task] for task in model.task_names]
        if fmt == "conll":
            cols = [_in_input_encoding(c, t, sentences, schemes) for c, t in zip(cols, model.tasks)]
        k = 0
        for item in block:
            if isinstance(item, str):
                yield (item + " O" * n_tasks if fmt == "conll" and item.strip() else item) + "\n"
                continue
            tags = [c[k] for c in cols]
            if fmt == "conll":
                for i, row in enumerate(item):
                    yield " ".join(row + tuple(t[i] for t in tags)) + "\n"
            else:
                yield " ".join("/".join((row[0],) + tuple(t[i] for t in tags)) for i, row in enumerate(item)) + "\n"
            k += 1


def _in_input_encoding(pred, task, sentences, schemes):
    """A chunk task's predictions (in the training file's encoding) in the encoding of the input's own column of that
    task when it has one, e.g. an IOB2 test file and a model of IOB1 data: conlleval on the output then scores the
    tags as `tagger eval` does (fastnn.metrics.conll_f1), not every B-X/I-X that differs only in encoding as an error.
    schemes : {task name: encoding}, filled at the first block whose gold column holds a chunk."""
    from fastnn.data.tags import reencode, scheme_of
    if task["file_scheme"] is None:
        return pred
    if task["name"] not in schemes:
        c = task["column"]
        gold = [[r[c] for r in s] for s in sentences if s and len(s[0]) > c]
        if not any(t != "O" for s in gold for t in s):
            return pred                                  # no gold tags (or no chunk yet) to tell the encoding
        schemes[task["name"]] = scheme_of(gold)          # (None: not chunk tags as fastnn reads them: leave them be)
    return reencode(pred, schemes[task["name"]], task["file_scheme"])[0] if schemes[task["name"]] else pred


def _write_stdout(lines):
    """The lines in UTF-8, as --out writes them and the input was read, whatever the locale's encoding (latin-1 wrote
    'é' as one byte and stopped at '€')."""
    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    encode = (lambda line: line.encode("utf-8")) if out is not None else (lambda line: line)
    out = out if out is not None else sys.stdout
    try:
        for line in lines:
            out.write(encode(line))
        out.flush()
    except BrokenPipeError:                           # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


__all__ = ["register", "train_config", "run_train", "run_eval", "run_predict"]
