"""Helpers shared by the subcommands."""
import json
import os


# --on-nonfinite values -> fastnn.train.Trainer(on_nonfinite=...)
NONFINITE = {"stop": "raise", "skip": "skip"}


class CLIError(Exception):
    """An expected failure (missing file, bad value, malformed data): printed as one line, exit code 2."""


def add_on_nonfinite(parser):
    """The --on-nonfinite option every train command shares (see NONFINITE)."""
    parser.add_argument("--on-nonfinite", choices=list(NONFINITE), default="stop",
                        help="a non-finite loss or gradient: stop (keeping the last good checkpoint) or skip the "
                             "step (default %(default)s)")


def check_resume(args):
    """--resume needs an existing --checkpoint file."""
    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint PATH")
    if args.resume and not os.path.isfile(args.checkpoint):
        raise CLIError(f"--resume: no checkpoint at {args.checkpoint}")


def existing_file(path):
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    return path


def print_json(obj):
    print(json.dumps(obj, indent=None, sort_keys=False))
