"""`fastnn search {tagger,lm}`: random hyper-parameter search over a training command (fastnn.search).

    fastnn search tagger --space space.json --trials 20 --log runs.jsonl \\
        --train train.txt --dev dev.txt --task chunk=2 --epochs 3

Every option this command does not know is an option of `fastnn tagger train` / `fastnn lm train`, parsed by that
command's own parser; SPACE.json maps names of those options (without the dashes; "batch_size" and "batch-size" both
mean --batch-size) to distributions, e.g.
    {"lr": {"loguniform": [0.001, 0.3]}, "hidden": {"choice": [100, 200, 300]}, "window": {"choice": [3, 5, 7]}}
A flag (an option without a value) takes true (given) or false (not given); null means the command's default.

Score: tagger = the dev F1 of the first --task (token accuracy when its tags are not chunk tags, e.g. POS), higher is
better; lm = the valid perplexity, lower is better.  Each trial writes its model to a temporary file (or to --models
DIR) and trains with its worker's share of the CPUs unless --threads is given.
"""
import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import sys
import tempfile
import warnings

from fastnn.cli._common import CLIError, Parser, check_writable, print_json

TRAINERS = {"tagger": "fastnn.cli.tagger", "lm": "fastnn.cli.lm"}
# Options the search sets itself for every trial.
MANAGED = {"--out": "each trial writes its own model (see --models)", "--checkpoint": "trials are not checkpointed",
           "--resume": "the log is what a rerun resumes from", "--json": "the search reads the result itself",
           "--quiet": "trials always run quietly"}


class _PassThroughParser(Parser):
    """Keeps the options it does not know, in order, as `train_args` (the training command's options)."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras[:1] == ["--"]:
            extras = extras[1:]
        ns.train_args = list(extras)
        return ns, []


class _RaisingParser(Parser):
    """A parser whose errors are CLIErrors (one line) instead of usage + exit."""

    def error(self, message):
        raise CLIError(f"{self.prog}: {message}")


def register(sub):
    p = sub.add_parser("search", help="random hyper-parameter search over `tagger train` or `lm train`",
                       description=__doc__.split("\n\n")[0])
    ssub = p.add_subparsers(dest="search_command", metavar="{tagger,lm}", parser_class=_PassThroughParser)
    ssub.required = True
    for kind, score in (("tagger", "dev F1 of the first task (accuracy for POS), higher is better"),
                        ("lm", "valid perplexity, lower is better")):
        s = ssub.add_parser(kind, allow_abbrev=False, help=f"search `fastnn {kind} train` ({score})",
                            description=f"Random search over `fastnn {kind} train`: each trial trains with a sampled "
                                        f"configuration; score = {score}.",
                            epilog=f"Any other option is passed to `fastnn {kind} train` (see its -h); the sampled "
                                   "options are added to them for each trial.")
        s.add_argument("--space", required=True, metavar="SPACE.json",
                       help='{"option": {"uniform"|"loguniform"|"int": [low, high]} or {"choice": [...]}, ...}')
        s.add_argument("--trials", required=True, type=int, metavar="N", help="number of trials (0..N-1)")
        s.add_argument("--log", required=True, metavar="RUNS.jsonl",
                       help="JSON-lines log, one line per finished trial; a rerun skips the trials it holds")
        s.add_argument("--workers", type=int, metavar="K",
                       help="local worker processes (default: one per CPU, each with its share of the threads; "
                            "1 runs the trials in this process)")
        s.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the trials on a dask.distributed scheduler (e.g. tcp://host:8786); needs "
                            "`pip install fastnn[distributed]` and the same files on every worker")
        s.add_argument("--search-seed", type=int, default=0,
                       help="seed of the sampled configurations (trial i uses [seed, i]; default 0); the training "
                            "command's own --seed is separate")
        s.add_argument("--retry-failed", action="store_true", help="rerun the logged trials that failed")
        s.add_argument("--models", metavar="DIR", help="keep every trial's model in DIR (default: discard them)")
        s.add_argument("--top", type=int, default=10, help="rows of the summary table (default 10)")
        s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="one line per finished trial on stderr (default: on)")
        s.add_argument("--quiet", dest="progress", action="store_false", help="same as --no-progress")
        s.add_argument("--json", action="store_true", help="print the result as one JSON object instead of the table")
        s.set_defaults(func=run, train_args=[])


# ---- the training command ----------------------------------------------------------------------------------------

def _train_parser(kind):
    """(top parser, the `train` subparser) of `fastnn {kind} train`, with errors raised as CLIError."""
    top = _RaisingParser(prog="fastnn", allow_abbrev=False)
    importlib.import_module(TRAINERS[kind]).register(top.add_subparsers())
    train = _subparser(_subparser(top, kind), "train")
    # no abbreviations, as in the search's own options: `-- --wind 7` with "window" in the space passed _check (which
    # compares option names) and the sampled --window, given after it, replaced it, silently
    train.allow_abbrev = False
    return top, train


def _subparser(parser, name):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices[name]
    raise KeyError(name)


def _option(name):
    return name if name.startswith("-") else "--" + name.replace("_", "-")


def _tokens(params, train):
    """The command-line options that give the sampled `params` to the `train` parser."""
    out = []
    for name, value in params.items():
        opt = _option(name)
        action = train._option_string_actions[opt]
        if value is None:
            continue
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise CLIError(f"{opt} is a flag: its values in the search space must be true or false; got {value!r}")
            if value:
                out.append(opt)
        else:
            out += [opt, str(value)]   # str(float) is repr: the exact sampled value
    return out


class TrainObjective:
    """One trial: `fastnn {kind} train` with the base options plus the sampled ones; picklable (process pool, dask).

    Returns {"score", ...}: tagger -> dev F1 of the first task (accuracy for non-chunk tags), lm -> valid perplexity.
    """

    def __init__(self, kind, base_args, models_dir=None):
        self.kind, self.base_args, self.models_dir = kind, list(base_args), models_dir

    def parse(self, params, out):
        top, train = _train_parser(self.kind)
        args = top.parse_args([self.kind, "train", *self.base_args, *_tokens(params, train), "--out", out])
        # (a space may cross options, e.g. --context with --lstm-hidden: config_from_args does not refuse these)
        args.sampled = {train._option_string_actions[_option(name)].dest for name in params}
        if not any(a == "--threads" or a.startswith("--threads=") for a in self.base_args) and "--threads" not in \
                {_option(n) for n in params}:
            import fastnn
            args.threads = fastnn.get_num_threads()   # this worker's share (set by the search's pool)
        args.quiet = True
        args.keep_interrupted = False   # an interrupted trial stops the search, is not logged, and runs again
        return args

    def __call__(self, params):
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        with tempfile.TemporaryDirectory(prefix="fastnn-search-") as tmp:
            d = self.models_dir or tmp
            out = os.path.join(d, f"{self.kind}-{key}.npz")
            args = self.parse(params, out)
            result = _run_tagger(args) if self.kind == "tagger" else _run_lm(args)
            if self.models_dir:
                result["model"] = out
            return result


def _run_tagger(args):
    from fastnn import io as fio
    from fastnn.cli import tagger
    tagger.run_train(args)
    model = fio.load_model(args.out)
    res = model.evaluate(tagger.read_conll_file(args.dev, "--dev"))
    task = next(iter(res))
    metric = "f1" if res[task]["f1"] is not None else "accuracy"
    return {"score": res[task][metric], "task": task, "metric": metric, "dev": res}


def _run_lm(args):
    from fastnn.cli import lm
    args.json = True
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):   # lm train prints its result as one JSON line
        lm.run_train(args)
    result = json.loads(buf.getvalue().strip().splitlines()[-1])
    return {"score": result["valid_perplexity"], "metric": "perplexity",
            **{k: result[k] for k in ("epochs", "vocab", "valid_oov_as_unk") if k in result}}


# ---- run ---------------------------------------------------------------------------------------------------------

def _check(args):
    from fastnn import search
    if args.workers is not None and args.scheduler:
        raise CLIError("--workers sizes the local pool; with --scheduler the dask cluster decides")
    if not os.path.isfile(args.space):
        raise CLIError(f"no such file: {args.space}")
    try:
        space = search.load_space(args.space)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    _, train = _train_parser(args.search_command)
    given = {a.split("=")[0] for a in args.train_args if a.startswith("--")}
    for name in space:
        opt = _option(name)
        if opt not in train._option_string_actions or opt in ("-h", "--help"):
            raise CLIError(f"{args.space}: {name!r} is not an option of `fastnn {args.search_command} train` "
                           f"(see fastnn {args.search_command} train -h)")
        if opt in MANAGED:
            raise CLIError(f"{args.space}: {opt} cannot be searched: {MANAGED[opt]}")
        if opt in given:
            raise CLIError(f"{opt} is both in {args.space} and on the command line; give it in one place")
    bad = sorted(given & set(MANAGED))
    if bad:
        raise CLIError(f"{bad[0]} cannot be given to a search: {MANAGED[bad[0]]}")
    check_writable(args, "log", inputs=("space",))
    obj = TrainObjective(args.search_command, args.train_args, args.models)
    base = obj.parse({}, os.devnull)
    if not base.dev:
        raise CLIError(f"search {args.search_command} needs --dev FILE: a trial's score is measured on it")
    for attr in ("train", "dev", "test", "pretrained"):
        value = getattr(base, attr, None) or []
        for path in value if isinstance(value, list) else [value]:     # tagger's --train takes several files
            if not os.path.isfile(path):
                raise CLIError(f"--{attr}: no such file: {path}")
    try:                               # (checked by best() after every trial had run)
        search.best([], args.top)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--top: {e}") from None
    # every sampled configuration must parse and make a Config: type errors, bad choices, values out of range and
    # options another --arch does not take stop here, not in trial 17 (the first 16 trained, then each failed)
    train_config = importlib.import_module(TRAINERS[args.search_command]).train_config
    for t in range(args.trials):
        params = search.sample(space, args.search_seed, t)
        try:
            train_config(obj.parse(params, os.devnull))
        except CLIError as e:
            ps = " ".join(f"{k}={search.format_value(v)}" for k, v in params.items())
            raise CLIError(f"trial {t} ({ps}): {e}") from None
    if args.models:                    # last: a bad argument must not leave a directory behind
        try:
            os.makedirs(args.models, exist_ok=True)
        except OSError as e:
            raise CLIError(f"--models {args.models}: {e.strerror or e}") from None
    return space, obj


def run(args):
    from fastnn import search

    space, objective = _check(args)
    maximize = args.search_command == "tagger"
    try:
        with warnings.catch_warnings():   # a torn last line is reported once, by random_search
            warnings.simplefilter("ignore")
            done = {r["trial"] for r in search.read_log(args.log) if r["trial"] < args.trials}
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.progress else (lambda m: None)
    if done:
        say(f"{args.log}: {len(done)} of {args.trials} trials already logged")

    def progress(rec):
        ps = " ".join(f"{k}={search.format_value(v)}" for k, v in rec["params"].items())
        if rec["score"] is None:
            say(f"trial {rec['trial']} failed ({ps}): {rec.get('error')}")
        else:
            say(f"trial {rec['trial']}: {rec['score']:.6g} ({ps}) in {rec['seconds']:.1f} s")

    client = None
    executor = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise CLIError("--scheduler needs dask.distributed: pip install 'fastnn[distributed]'") from None
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as e:
            raise CLIError(f"--scheduler {args.scheduler}: cannot connect ({e})") from None
        executor = client.get_executor()
    try:
        records = search.random_search(objective, space, args.trials, args.search_seed, executor=executor,
                                       workers=args.workers, log=args.log, retry_failed=args.retry_failed,
                                       on_result=progress)
    except (ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from None
    except KeyboardInterrupt:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = len({r["trial"] for r in search.read_log(args.log) if r["trial"] < args.trials})
        raise KeyboardInterrupt(f"{n} of {args.trials} trials logged in {args.log}; the same command runs the "
                                f"rest") from None
    finally:
        if client is not None:
            client.close()
    if args.search_command == "tagger":
        ok = [r for r in records if r.get("info")]
        metric = (f"dev {ok[0]['info']['metric'].replace('f1', 'F1')} ({ok[0]['info']['task']})" if ok
                  else "dev score")
    else:
        metric = "valid perplexity"
    if args.json:
        print_json({"metric": metric, "maximize": maximize, "trials": len(records),
                    "failed": sum(r["score"] is None for r in records),
                    "best": search.best(records, args.top, maximize=maximize)})
    else:
        print(search.format_table(records, args.top, maximize=maximize, metric=metric))
    if records and all(r["score"] is None for r in records):
        say("every trial failed; fix the cause and rerun with --retry-failed")
        return 1
    return 0
