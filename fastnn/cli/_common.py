"""Helpers shared by the subcommands."""
import argparse
import dataclasses
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


def add_config_options(parser, cls, *, groups=None, aliases=None, skip=()):
    """One option per field of the recipe Config `cls` (those with metadata cli=False and `skip` are left out):
    --name-with-dashes, typed and with choices as the field, help = its help + its default (read from the Config,
    so the two cannot drift).  groups : {metadata group: argparse group or parser}.  aliases : {field: [old
    spellings]}.  Defaults are not stored in the namespace (argparse.SUPPRESS): only the options given on the
    command line reach config_from_args, so they override a preset's values and the Config supplies the rest."""
    from fastnn.recipes.config import describe_default
    aliases = aliases or {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False or f.name in skip:
            continue
        target = (groups or {}).get(f.metadata.get("group"), parser)
        names = [flag(f.name), *aliases.get(f.name, ())]
        help = f"{f.metadata['help']} (default {describe_default(f)})".replace("%", "%%")
        kw = dict(dest=f.name, default=argparse.SUPPRESS, help=help)
        if f.type in (bool, "bool"):
            target.add_argument(*names, action="store_true", **kw)
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
    fields = {**given_fields(cls, args), **values}
    try:
        return from_preset(preset, **fields) if from_preset else cls(**fields)
    except (ValueError, TypeError) as e:
        raise CLIError(option_names(str(e), cls)) from None


def option_names(message, cls):
    """A Config's message with its field names ('batch_size') written as the options (--batch-size)."""
    for f in dataclasses.fields(cls):
        message = message.replace(f"'{f.name}'", flag(f.name))
    return message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are CLIErrors (main prints them as one line, exit 2)."""

    def error(self, message):
        e = CLIError(f"{message} (see {self.prog} -h)")
        e.prog = self.prog
        raise e
