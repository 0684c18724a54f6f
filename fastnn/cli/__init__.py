"""The `fastnn` command: argparse subcommands.  Each feature module under fastnn/cli/ adds its own with
`register(subparsers)`; this file only wires them and turns expected errors into one line and exit code 2."""
import argparse
import importlib
import sys

from fastnn.cli._common import CLIError

# Modules that register subcommands, in help order.  A module missing here is simply not offered.
_COMMAND_MODULES = ["info", "gradcheck", "compare", "tagger", "lm", "embed", "experiment", "search"]


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: neural-NLP models on fast CPU kernels.")
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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except CLIError as e:
        print(f"fastnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:                 # training diverged: the Trainer's message names step and parameter
        msg = str(e).replace("pass on_nonfinite='skip'", "pass --on-nonfinite skip")
        print(f"fastnn {args.command}: stopped: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130
