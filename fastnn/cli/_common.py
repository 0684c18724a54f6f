"""Helpers shared by the subcommands."""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import threading


# --on-nonfinite values -> fastnn.train.Trainer(on_nonfinite=...)
NONFINITE = {"stop": "raise", "skip": "skip"}


class CLIError(Exception):
    """An expected failure (missing file, bad value, malformed data): printed as one line, exit code 2."""


def add_on_nonfinite(parser):
    """The --on-nonfinite option every train command shares (see NONFINITE)."""
    parser.add_argument("--on-nonfinite", choices=list(NONFINITE), default="stop",
                        help="a non-finite loss, gradient or validation score: stop (keeping the last good "
                             "checkpoint and the best epoch) or skip the step (an epoch: never the best) (default "
                             "%(default)s)")


def add_run_options(parser, *, checkpoint_every=None):
    """The options every train command shares: --checkpoint [--checkpoint-every], --resume, --on-nonfinite, --quiet
    and --json (the same words, the same meaning).  checkpoint_every : the default of --checkpoint-every, or None for
    a command without it."""
    steps = ", every --checkpoint-every steps" if checkpoint_every is not None else ""
    parser.add_argument("--checkpoint", metavar="PATH", help=f"checkpoint file (written every epoch{steps} and on "
                                                              "Ctrl-C or SIGTERM)")
    if checkpoint_every is not None:     # (None when not given: checkpoint_steps tells it from the default)
        parser.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                            help=f"steps between checkpoints within an epoch (default {checkpoint_every})")
        parser.set_defaults(checkpoint_every_default=checkpoint_every)
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint (same data and options)")
    add_on_nonfinite(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def checkpoint_steps(args):
    """The --checkpoint-every of a command with one (add_run_options), its default when not given, or None without
    --checkpoint; given without --checkpoint, a CLIError (it was ignored: no checkpoint written)."""
    if args.checkpoint_every is not None and not args.checkpoint:
        raise CLIError("--checkpoint-every needs --checkpoint PATH (it says how often that file is written)")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:     # (else pretrain's name, after reading)
        raise CLIError(f"--checkpoint-every must be >= 1; got {args.checkpoint_every}")
    if not args.checkpoint:
        return None
    return args.checkpoint_every if args.checkpoint_every is not None else args.checkpoint_every_default


@contextlib.contextmanager
def resume_errors(args, configs=()):
    """Around a training call: a library error while resuming names the checkpoint (the likely cause: a file of
    another run or of other options), and the fields of the Config classes `configs` as options (option_names)."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if args.resume:
            raise CLIError(f"--resume {args.checkpoint}: {option_names(str(e), *configs)}") from None
        raise


def train_keeping_work(args, fit, configs=()):
    """(fit(), None), or (what fit() would have returned, the TrainingInterrupted) when Ctrl-C (or SIGTERM, see
    stop_on_sigterm) stopped training between two steps after at least one finished epoch: the command then writes
    and reports the model the trainer ended with (its best epoch), as after a normal end, and exits
    interrupted_exit_code().  Before the first epoch ends, or on a second Ctrl-C, the KeyboardInterrupt propagates
    (main prints "interrupted" and its resume_hint).  Resume errors are named as by resume_errors(args, configs).  A
    search's trial (args.keep_interrupted False) keeps nothing: its model would go to a temporary file, and the
    search runs the trial again.  A run that diverged (fastnn.train.TrainingDiverged) after a best epoch likewise
    keeps that epoch's model: it is written to --out (diverged_model_out) and the error goes on to main, which says
    where (its `written`) and exits 1."""
    from fastnn.train import TrainingDiverged, TrainingInterrupted

    try:
        with resume_errors(args, configs):
            return fit(), None
    except TrainingInterrupted as stop:
        if not getattr(args, "keep_interrupted", True):
            raise KeyboardInterrupt(stop.message) from None
        if stop.trainer.state.epoch < 1:
            raise KeyboardInterrupt("no epoch finished: no model written" + resume_hint(stop.checkpoint)) from None
        return stop.result, stop
    except TrainingDiverged as e:
        out = diverged_model_out(args)
        if out and e.best_epoch and getattr(args, "keep_interrupted", True):
            e.written = save_or_fallback(out, e.trainer.model, "--out")
        raise


def diverged_model_out(args):
    """Where a train command writes the model its Trainer trained when the run diverged: --out of lm train and of
    tagger train of one model; None for embed train (its --out holds vectors the recipe makes from the model) and
    for a tagger ensemble (the member that diverged is not the ensemble, and the members after it are untrained)."""
    if args.command == "tagger":
        from fastnn.recipes import tagger
        config = config_from_args(tagger.TaggerConfig, args, from_preset=tagger.from_preset, preset=args.preset)
        return args.out if config.ensemble == 1 else None
    return args.out if args.command == "lm" else None


def resume_hint(checkpoint):
    """What to type to go on from an interruption's checkpoint (fastnn.train.Interrupted.checkpoint), in the CLI's
    words (the exception's own message gives Python's resume=True); "" without one."""
    return f"; to go on: --checkpoint {checkpoint} --resume" if checkpoint else ""


def interrupted_message(e):
    """The detail of main's "interrupted (...)" line: a fastnn.train.Interrupted's message with resume_hint, any
    other KeyboardInterrupt's text."""
    from fastnn.train import Interrupted
    return e.message + resume_hint(e.checkpoint) if isinstance(e, Interrupted) else str(e)


# The signal that stopped the command: SIGINT (Ctrl-C) unless stop_on_sigterm's handler saw SIGTERM, or
# StderrGuard a closed stderr (SIGPIPE).
_stopped_by = signal.SIGINT


def _stop(signum, frame=None):
    """Stop the command as Ctrl-C does, and remember why (the exit code says it)."""
    global _stopped_by
    _stopped_by = signum
    on_int = signal.getsignal(signal.SIGINT)         # the Trainer's (stop after this step), or Python's
    if callable(on_int):
        on_int(signal.SIGINT, frame)
    else:                                            # SIGINT ignored (a shell's background job) or its default
        raise KeyboardInterrupt


def stop_on_sigterm():
    """Make SIGTERM (kill PID, timeout, a job scheduler's time limit, docker stop) stop the command as Ctrl-C does:
    the training loop finishes its step, writes its checkpoint and says how to go on.  The CLI's main installs it
    (Python's own default, death without a checkpoint, stays for library users).  Returns the previous handler, or
    None when it cannot be installed (not the main thread) or SIGTERM came ignored."""
    global _stopped_by
    _stopped_by = signal.SIGINT
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        return None
    return signal.signal(signal.SIGTERM, _stop)


class StderrGuard:
    """sys.stderr for the CLI's main: when its reader goes away (`fastnn tagger train ... 2>&1 | head -1`), the
    command stops as on Ctrl-C, keeping its work (checkpoint, model), its later lines going to devnull; it died of
    BrokenPipeError in a progress line, exit 0, with neither model nor checkpoint.  (A closed stdout ends a command
    quietly: main's BrokenPipeError.)"""

    def __init__(self, stream):
        self.stream, self.closed_pipe = stream, False
        self.work_done = False       # set by main once the command's work is over: its last message is not a stop

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self):
        if self.closed_pipe:
            return
        self.closed_pipe = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        except (OSError, ValueError):
            self.stream = open(os.devnull, "w")
        finally:
            os.close(devnull)
        if threading.current_thread() is threading.main_thread() and not self.work_done:
            _stop(signal.SIGPIPE)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def stopped_how():
    """"interrupted", or "interrupted by SIGTERM" (see stop_on_sigterm, StderrGuard)."""
    return "interrupted" if _stopped_by == signal.SIGINT else f"interrupted by {signal.Signals(_stopped_by).name}"


def interrupted_exit_code():
    """The exit code of an interrupted command: 128 + the signal's number, as a shell reports a process that signal
    ended (130 for Ctrl-C, 143 for SIGTERM, 141 for a closed stderr)."""
    return 128 + _stopped_by


def interrupted_note(stop, out):
    """The line a train command prints after writing the model of an interrupted run (instead of its "trained ..."
    line: the run did not end as set)."""
    st = stop.trainer.state
    what = (f"the model of its best epoch ({st.best_epoch})" if st.best_epoch
            else f"the model as it stood ({st.epoch} epochs finished)")
    return f"{stopped_how()} in epoch {st.epoch + 1}: {what} written to {out}" + resume_hint(stop.checkpoint)


def add_threads(parser, default=1, why=None):
    """--threads N: fastnn's OpenMP kernels and the BLAS library both use N threads (-1 = all CPUs); the same meaning
    in every command, only the default differs (and is shown)."""
    text = f"{default}" if default is not None else why
    if default is not None and why:
        text += f": {why}"
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"threads of fastnn's kernels and of BLAS, -1 = all CPUs (default {text})")


def set_threads(n, *, kernels=None, option="--threads", kernels_option=None):
    """Apply --threads n (None: leave BLAS alone) and the kernels' count (default n) for the rest of the process.  A
    bad count is a CLIError naming the option that gave it: `option` for n, `kernels_option` (default `option`) for
    `kernels`, in the CLI's words (the library's message offers Python's None)."""
    import re

    import fastnn
    kernels_option = kernels_option or option
    for value, opt, applies in ((kernels if kernels is not None else n, kernels_option if kernels is not None
                                 else option, "kernels"), (n, option, "blas")):
        try:
            fastnn.threads(**{applies: value})
        except (ValueError, TypeError) as e:    # (--kernel-threads was named for a bad --threads given with it)
            message = re.sub(r"^(n_threads|blas) ", "", str(e)).replace("an int or None", "an integer")
            message = re.sub(r"use None [^,]*, ", "give ", message)
            raise CLIError(f"{opt} {message}") from None


def first_repeat(values, key=None):
    """The first of `values` whose key(value) (the value itself when key is None) an earlier one has, or None: a value
    given twice to an option of several (--models tanh tanh trained and reported the model twice)."""
    seen = set()
    for v in values:
        k = v if key is None else key(v)
        if k in seen:
            return v
        seen.add(k)
    return None


def same_file(a, b):
    """Do paths `a` and `b` name one file (the same inode: a link or another spelling of it counts)?"""
    return a is not None and b is not None and _file_key(a) == _file_key(b)


def _file_key(path):
    """What identifies the file `path` names: its inode when it exists (a symlink or hard link to an input is that
    input), else its resolved path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def check_writable(args, *options, inputs=()):
    """Before any work: every output path among `options` (attribute names of args, e.g. "out", "checkpoint") that
    is set can be written: not a directory, its directory exists and a file can be made there.  Saves losing a run
    at the end.  No output may be one of the command's input files (`inputs`: attribute names whose values are a path
    or a list of paths) or another output: writing it would destroy that file (the training data, the checkpoint)."""
    from fastnn.io import cannot_create, is_regular_target
    check_stdin_once(args, *inputs)
    taken = {}
    for name in inputs:
        for p in _paths(getattr(args, name, None)):
            if p != "-":                               # stdin
                taken.setdefault(_file_key(p), flag(name))
    for name in options:
        path = getattr(args, name, None)
        if not path:                                 # (an empty value is refused by the parser: _StoreOnce)
            continue
        where = f"{flag(name)} {path}"
        if os.path.isdir(path):
            raise CLIError(f"{where}: is a directory; give a file name")
        if not is_regular_target(path):              # a device or a pipe (/dev/stdout, >(gzip)): written in place
            if not os.access(path, os.W_OK):
                raise CLIError(f"{where}: not writable")
            continue
        key = _file_key(path)
        if key in taken:
            raise CLIError(f"{where}: is also the {taken[key]} file; writing there would destroy it: give another name")
        taken[key] = flag(name)
        # a symbolic link's target is written, in the target's directory
        d = os.path.dirname(os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path))
        if not os.path.isdir(d):
            raise CLIError(f"{where}: {d} is not a directory" if os.path.exists(d) else
                           f"{where}: no such directory: {d}")
        if not os.access(d, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise CLIError(f"{where}: not writable")
        reason = cannot_create(d)
        if reason:
            raise CLIError(f"{where}: cannot write in {d}: {reason}")


def check_import(module, option, extra):
    """Before any work: an optional dependency an option needs imports, else one line naming the extra to install."""
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        raise CLIError(f"{option} needs {module}: pip install 'fastnn[{extra}]'") from None


def save_or_fallback(path, model, option="--out", save=None):
    """Save `model` to `path` (fastnn.io.save_model, or save(path, model)); if that fails at the end of a run, save it
    under a fallback name in the working directory (else the temp directory) and say where on stderr, so the trained
    model is never lost.  Returns the path written."""
    import sys
    import tempfile
    save = save or (lambda p, m: __import__("fastnn.io", fromlist=["save_model"]).save_model(p, m))
    try:
        save(path, model)
        return path
    except OSError as e:
        first = e
    base = os.path.basename(path) or "model.npz"
    stem, ext = os.path.splitext(base)
    for d in (os.getcwd(), tempfile.gettempdir()):
        fallback = os.path.join(d, f"{stem}.fallback-{os.getpid()}{ext}")
        try:
            save(fallback, model)
        except OSError:
            continue
        print(f"{option} {path}: {first}; the trained model was written to {fallback} instead", file=sys.stderr)
        return fallback
    raise CLIError(f"{option} {path}: {first}; no fallback location was writable either")


def check_resume(args):
    """--resume needs an existing --checkpoint file."""
    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint PATH")
    if args.resume and not os.path.isfile(args.checkpoint):
        raise CLIError(f"--resume: no checkpoint at {args.checkpoint}")


def check_stdin_once(args, *inputs):
    """Standard input ("-") can be read once: at most one of the input options (attribute names of args, each a path
    or a list of paths) may name it (a second reader would get nothing, or what the first left)."""
    given = [flag(name) for name in inputs for p in _paths(getattr(args, name, None)) if p == "-"]
    if len(given) > 1:
        raise CLIError(f"{' and '.join(dict.fromkeys(given))}: standard input (-) can be read once; give it to one "
                       f"option, files to the others")


def _paths(value):
    return [value] if isinstance(value, (str, os.PathLike)) else value or ()


def existing_file(path):
    """`path` if it can be read as a file: a regular file, a pipe such as bash's <(zcat corpus.gz), or "-" (standard
    input, see check_stdin_once)."""
    if path == "-":
        return path
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory; a file is needed")
    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    return path


def load_model_file(path, option="--model"):
    """fastnn.io.load_model(path) for a command's `option`: a missing file, or a training checkpoint given instead of
    a model (said with the CLI's remedy, not the Python one), is a CLIError; other errors propagate."""
    from fastnn import io
    existing_file(path)
    try:
        return io.load_model(path)
    except io.CheckpointGivenError:
        raise checkpoint_given(path, option) from None


def checkpoint_given(path, option):
    """The CLIError for a training checkpoint given as a command's model file `option` (io.CheckpointGivenError)."""
    return CLIError(f"{option} {path} is a training checkpoint, not a model: its parameters are the last step's, not "
                    f"the model the run ends with. Run the train command again with --checkpoint {path} --resume to "
                    f"finish it, and give the file its --out writes")


def print_json(obj):
    """One line of strict JSON: a non-finite number (a diverged model's perplexity) is null, where json.dumps wrote
    Infinity / NaN, which jq and other strict readers refuse."""
    print(json.dumps(_finite_or_null(obj), indent=None, sort_keys=False, allow_nan=False))


def _finite_or_null(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_null(v) for v in x]
    return x


# ---- options generated from a recipe's Config ------------------------------------------------------------------

def flag(name):
    """The option spelling of a Config field: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def _parser_type(f):
    parse = f.metadata.get("parse")
    if parse is not None:
        def convert(text):
            try:
                return parse(text)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        convert.__name__ = f.name
        return convert
    t = f.metadata.get("type") or type(f.default)
    return t


def add_config_options(parser, configs, *, groups=None, aliases=None, skip=()):
    """One option per field of the recipe Config class `configs` (or of several, {name: class}: the union of their
    fields, each default shown per class) whose metadata does not say cli=False, `skip` left out:
    --name-with-dashes, typed and with choices as the field, help = its help + its default (read from the Config,
    so the two cannot drift).  groups : {metadata group: argparse group or parser}.  aliases : {field: [old
    spellings]}.  Defaults are not stored in the namespace (argparse.SUPPRESS): only the options given on the
    command line reach config_from_args, so they override a preset's values and the Config supplies the rest."""
    from fastnn.recipes.config import describe_default
    if not isinstance(configs, dict):
        configs = {None: configs}
    aliases = aliases or {}
    seen = {}
    for owner, cls in configs.items():
        for f in dataclasses.fields(cls):
            seen.setdefault(f.name, []).append((owner, f))
    for name, owners in seen.items():
        f = owners[0][1]
        if f.metadata.get("cli", True) is False or name in skip:
            continue
        target = (groups or {}).get(f.metadata.get("group"), parser)
        names = [flag(name), *aliases.get(name, ())]
        shown = {owner: describe_default(g) for owner, g in owners}
        if len(set(shown.values())) == 1:
            default = f"default {shown[owners[0][0]]}"
        else:
            default = "default " + ", ".join(f"{owner} {text}" for owner, text in shown.items())
        if len(owners) < len(configs):
            default = f"{' and '.join(shown)} only; {default}"
        help = f"{f.metadata['help']} ({default})".replace("%", "%%")
        kw = dict(dest=name, default=argparse.SUPPRESS, help=help)
        if f.type in (bool, "bool"):   # --name and --no-name: a switch a preset turns on can be turned off
            target.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
            continue
        if f.metadata.get("choices"):
            kw["choices"] = list(f.metadata["choices"])
        if f.metadata.get("metavar"):
            kw["metavar"] = f.metadata["metavar"]
        target.add_argument(*names, type=_parser_type(f), **kw)


def given_fields(cls, args):
    """{field: value} of the Config fields given on the command line (see add_config_options)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def config_from_args(cls, args, *, from_preset=None, preset=None, **values):
    """The Config of a command: the preset's fields (from_preset(preset, ...)), then the options given on the command
    line, then `values` (fields the command computed, e.g. the tasks).  A bad value is a CLIError naming the option
    (--batch-size, not batch_size)."""
    from fastnn.recipes.config import unmet_needs
    given = given_fields(cls, args)
    try:
        config = from_preset(preset, **given, **values) if from_preset else cls(**given, **values)
    except (ValueError, TypeError) as e:
        raise CLIError(option_names(str(e), cls)) from None
    # an option that takes effect only with another (--lstm-hidden without --context bilstm) was ignored, silently;
    # a search trial's sampled options are exempt (its space may cross --context with --lstm-hidden)
    sampled = getattr(args, "sampled", ())
    for name, (other, value) in unmet_needs(config, given, vars(args)):
        if name not in sampled and other not in sampled:
            if isinstance(getattr(config, other, None), (tuple, list, frozenset, set)):
                want = f"{value} in {flag(other)}"
            else:
                want = flag(other) + ("" if value is None else f" {value}")
            raise CLIError(f"{flag(name)} has no effect without {want}: give {want} too, or leave {flag(name)} out")
    return config


def option_names(message, *classes, names=()):
    """A Config's message with its field names ('batch_size', or batch_size=64 as a library writes a value) written
    as the options (--batch-size, --batch-size 64), and from_preset's 'preset' as --preset; the class's name that
    starts it in Python ("TaggerConfig: ") left out: the command's name starts the line.  `names`: more argument
    names read so (a recipe function's keywords: `lm sample`'s)."""
    import re
    fields = list(names)
    for cls in classes:
        message = message.removeprefix(f"{cls.__name__}: ")
        fields += [f.name for f in dataclasses.fields(cls)]
    for name in fields:
        message = message.replace(f"'{name}'", flag(name))
        message = re.sub(rf"(?<![\w.-]){name}=(?=\S)", flag(name) + " ", message)
    return message.replace("'preset'", "--preset")


def _refuse_empty(parser, values, option_string):
    if option_string is not None and "" in (values if isinstance(values, list) else [values]):
        parser.error(f"{option_string}: an empty value (an unset shell variable?); give one")


class _AppendNonEmpty(argparse.Action):
    """argparse's "append" (a repeatable option, `gradcheck --only A --only B`: a new list each parse, the default's
    items first), refusing an empty value as _StoreOnce does (`--only ''` matched every case)."""

    def __call__(self, parser, namespace, values, option_string=None):
        _refuse_empty(parser, values, option_string)
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])


class _StoreOnce(argparse.Action):
    """argparse's "store", except that an option of several values (nargs + or *) given twice is a usage error:
    argparse kept the last list, so `--train a.txt --train b.txt` trained on b.txt alone, silently.  Being the action
    argparse calls, it sees every spelling it accepts (--train=a, the abbreviation --tra a).  An option of one value
    given again overrides it, as wrapper scripts expect.  An empty value is a usage error too: no option takes one,
    and `--test "$TEST"` with TEST unset read as no --test (no test perplexity, exit 0), `--out ""` trained an hour
    and then failed to write."""

    def __call__(self, parser, namespace, values, option_string=None):
        _refuse_empty(parser, values, option_string)
        if self.nargs in ("+", "*") and option_string is not None:
            given = parser.lists_given
            if self.dest in given:
                first = given[self.dest]
                parser.error(f"{first} is given twice: the second list would replace the first, silently; give it "
                             f"once with all its values ({first} A B ...)")
            given[self.dest] = option_string
        setattr(namespace, self.dest, values)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are CLIErrors (main prints them as one line, exit 2), and which refuses an
    option that takes several values given twice (_StoreOnce)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.register("action", None, _StoreOnce)      # (argument groups share this registry)
        self.register("action", "store", _StoreOnce)
        self.register("action", "append", _AppendNonEmpty)
        self.lists_given = {}                          # dest -> the option that gave it, in the current parse

    def parse_known_args(self, args=None, namespace=None):
        self.lists_given = {}
        return super().parse_known_args(args, namespace)

    def error(self, message):
        e = CLIError(f"{message} (see {self.prog} -h)")
        e.prog = self.prog
        raise e
