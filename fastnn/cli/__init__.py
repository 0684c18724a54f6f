"""The `fastnn` command: argparse subcommands.  Each feature module under fastnn/cli/ adds its own with
`register(subparsers)`; this file only wires them and is the one place that turns expected errors (a CLIError, or a
library ValueError/TypeError about an argument or a file) into one line on stderr and exit code 2 (set
FASTNN_TRACEBACK=1 to see the traceback of such an error instead), and that makes SIGTERM stop a command as Ctrl-C
does (stop_on_sigterm; exit code 128 + the signal's number: 130, 143)."""
import importlib
import os
import signal
import sys
import warnings

from fastnn.cli._common import (CLIError, Parser, StderrGuard, interrupted_exit_code, interrupted_message,
                                option_names, stop_on_sigterm, stopped_how)

# Modules that register subcommands, in help order.  A module missing here is simply not offered.
_COMMAND_MODULES = ["info", "gradcheck", "overfit", "compare", "tagger", "lm", "embed", "experiment", "search"]


def _version():
    import fastnn
    return fastnn.__version__


class _Version(__import__("argparse").Action):
    """--version without importing the kernels' version at parser build time."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"fastnn {_version()}")
        parser.exit()


def build_parser():
    parser = Parser(prog="fastnn", description="fastnn: neural-NLP models on fast CPU kernels.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"fastnn.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"fastnn.cli.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def _stdout_closed():
    """stdout's reader went away (e.g. `| head`): stop quietly.  Further writes (and the interpreter's final flush)
    go to devnull, so no second BrokenPipeError is printed at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):          # stdout is not a real file (e.g. captured by a test)
        pass
    finally:
        os.close(devnull)
    return 0


def _one_line_warnings(command, quiet, configs=()):
    """warnings.showwarning of a command: a library warning (too little data for Kneser-Ney discounts, ...) as one
    line naming the command, not Python's two (file:line: Category: message, then the source line), the fields of
    the command's Config classes `configs` written as its options (option_names); none with --quiet."""
    from fastnn.cli._common import option_names

    def show(message, category, filename, lineno, file=None, line=None):
        if not quiet:
            text = option_names(" ".join(str(message).split()), *configs)
            print(f"{command}: warning: {text}", file=file or sys.stderr)
    return show


def main(argv=None):
    command, configs = "fastnn", ()
    old_sigterm = stop_on_sigterm()
    old_showwarning = warnings.showwarning
    stderr = sys.stderr
    sys.stderr = guard = StderrGuard(stderr)
    try:
        try:
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            sub = next((getattr(args, d) for d in (f"{args.command}_command", args.command) if
                        isinstance(getattr(args, d, None), str)), None)   # e.g. "tagger train", "experiment adding"
            command = f"fastnn {args.command}" + (f" {sub}" if sub and sub != args.command else "")
            if extra:               # (argparse names the top-level parser: "fastnn: error: ... (see fastnn -h)")
                raise CLIError(f"unrecognized arguments: {' '.join(extra)} (see {command} -h)")
            configs = getattr(args, "configs", ())     # (the commands' Config fields, named as their options)
            warnings.showwarning = _one_line_warnings(command, quiet=getattr(args, "quiet", False), configs=configs)
            rc = args.func(args) or 0
            sys.stdout.flush()
            return rc
        finally:
            guard.work_done = True  # a closed stderr now only loses the messages below, which must not raise
    except CLIError as e:
        print(f"{getattr(e, 'prog', command)}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as e:   # a library check on an argument or a file: its message names both
        if os.environ.get("FASTNN_TRACEBACK"):
            raise
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:                 # training diverged: the Trainer's message names step and parameter
        msg = option_names(getattr(e, "message", str(e)), *configs)      # (TrainingDiverged: without the Python note)
        msg = msg.replace("pass on_nonfinite='skip'", "pass --on-nonfinite skip")
        if getattr(e, "written", None):             # train_keeping_work kept the best epoch
            msg += f" The model of its best epoch ({e.best_epoch}) was written to {e.written}."
        print(f"{command}: stopped: {msg}", file=sys.stderr)
        return 1
    except MemoryError as e:                        # a size option too large for this machine (--hidden 100000000)
        if os.environ.get("FASTNN_TRACEBACK"):
            raise
        print(f"{command}: error: out of memory: {e or 'an allocation failed'}. Lower the sizes (--hidden, "
              f"--embed-dim, --batch-size, ...)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    except OSError as e:                            # a file that cannot be read or written (name and reason)
        if os.environ.get("FASTNN_TRACEBACK"):
            raise
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        detail = interrupted_message(e)
        print(f"{command}: {stopped_how()}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return interrupted_exit_code()
    finally:
        sys.stderr = stderr
        warnings.showwarning = old_showwarning
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
