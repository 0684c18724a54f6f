"""Helpers shared by the subcommands."""
import json
import os


# --on-nonfinite values -> fastnn.train.Trainer(on_nonfinite=...)
NONFINITE = {"stop": "raise", "skip": "skip"}


class CLIError(Exception):
    """An expected failure (missing file, bad value, malformed data): printed as one line, exit code 2."""


def existing_file(path):
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    return path


def print_json(obj):
    print(json.dumps(obj, indent=None, sort_keys=False))
