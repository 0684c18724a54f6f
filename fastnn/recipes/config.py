"""What every recipe Config shares: `option()` (a dataclass field with its help text), `from_preset()` (a preset's
fields, then explicit values on top) and `check_fields()` (the Config's range checks, one family, from _validation).

A Config field's metadata is what a front end needs to offer it: "help" (one line, without the default: the front end
appends it), and optionally "choices", "type" (when the default is None), "parse" (text -> value, e.g. "1,2,3"),
"metavar", "group" ("model" or "training") and "cli": False for a field a front end fills itself (e.g. the tasks,
which need the data's columns), and "needs": (field, value) when the field takes effect only with another one set
(value None) or at a value (see unmet_needs).
"""
import copy
import dataclasses
import difflib
import os

import numpy as np

from fastnn._validation import check_scalar

__all__ = ["Config", "option", "from_preset", "check_fields", "describe_default", "run_settings", "unmet_needs",
           "RESUMABLE", "CLIP_NORM_HELP"]

# help texts of fields several recipes share (each recipe writes its own default)
CLIP_NORM_HELP = "clip the global gradient norm (0: off)"


class Config:
    """Base of the recipes' dataclass Configs: a misspelt field name ('hiden', 'epoch') is a TypeError naming the
    closest field, in every way of making one (the constructor, from_preset, dataclasses.replace, fit's overrides),
    where the dataclass's own __init__ would only say "unexpected keyword argument"."""

    def __new__(cls, *args, **values):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        for name in values:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
                raise TypeError(f"{cls.__name__}: {name!r} is not a field" + (
                    f"; did you mean {close[0]!r}?" if close else f". The fields are {', '.join(names)}."))
        return super().__new__(cls)


def option(default, help, **metadata):
    """A Config field: its default (the only place it is written) and its help text.  added_later=True: a field
    added after checkpoints were written without it, which run_settings records only when it is not the default,
    so that those checkpoints still resume (they ran with what is now its default)."""
    if isinstance(default, (dict, list)):       # a fresh (deep) copy per Config: nested tables are not shared
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=dict(help=help, **metadata))
    return dataclasses.field(default=default, metadata=dict(help=help, **metadata))


def from_preset(cls, presets, preset=None, **values):
    """cls() with the preset's fields (presets[preset], a dict of field values), then `values` on top."""
    if preset is not None and preset not in presets:
        # a misspelt name ('chnk', 'CHUNK') is the usual cause: name the closest
        close = difflib.get_close_matches(str(preset).lower(), list(presets), n=1, cutoff=0.6)
        raise ValueError(f"{cls.__name__}: 'preset' must be one of {', '.join(presets) or '(none defined)'}; "
                         f"got {preset!r}." + (f" Did you mean {close[0]!r}?" if close else ""))
    return cls(**{**(presets[preset] if preset is not None else {}), **values})


def check_fields(config, *, ints=(), positive=(), nonneg=(), positive_or_none=(), fractions=(), odd=()):
    """The range checks of a Config, named after its fields (TypeError for a wrong type, ValueError for a value).

    ints : {name: low} integers >= low (None values pass when the default is None).  positive : reals > 0.
    nonneg : reals >= 0.  positive_or_none : reals > 0 or None.  fractions : reals in [0, 1).  odd : integers that must be odd.  Choices come from the fields' metadata.
    """
    where = type(config).__name__
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name, low in dict(ints).items():
        v = getattr(config, name)
        if v is None and defaults[name] is None:
            continue
        check_scalar(v, name, where, low=low, integer=True)
    for name in odd:
        if getattr(config, name) % 2 == 0:
            raise ValueError(f"{where}: '{name}' must be an odd number >= 1; got {getattr(config, name)!r}.")
    for name in positive:
        check_scalar(getattr(config, name), name, where, low=0, low_open=True)
    for name in positive_or_none:
        if getattr(config, name) is not None:
            check_scalar(getattr(config, name), name, where, low=0, low_open=True)
    for name in nonneg:
        check_scalar(getattr(config, name), name, where, low=0)
    for name in fractions:
        v = check_scalar(getattr(config, name), name, where, low=0)
        if not v < 1:
            raise ValueError(f"{where}: '{name}' must be in [0, 1); got {v!r}.")
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        # a table (tasks, features) must be a dict: a list or a name failed later as an AttributeError on .items()
        if f.default_factory is not dataclasses.MISSING and isinstance(f.default_factory(), dict) \
                and not isinstance(v, dict):
            example = next(iter(f.default_factory().items()), None)
            raise TypeError(f"{where}: '{f.name}' must be a dict{f' like {dict([example])}' if example else ''} "
                            f"({f.metadata['help']}); got {type(v).__name__} {v!r}.")
        # a path or name (type=str, default None): a number failed later in open() as a bare TypeError
        if f.metadata.get("type") is str and v is not None:
            if not isinstance(v, (str, os.PathLike)):
                raise TypeError(f"{where}: '{f.name}' must be a string (a path) or None; got {type(v).__name__} "
                                f"{v!r}.")
            setattr(config, f.name, os.fspath(v))   # (a pathlib.Path is not JSON, which model files hold)
        # a switch takes True or False only: any other value would be read by its truth ("no" is true)
        if isinstance(f.default, bool):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{where}: '{f.name}' must be True or False; got {v!r}.")
            setattr(config, f.name, bool(v))         # (a NumPy bool is not JSON, which model files hold)
        allowed = f.metadata.get("choices")
        if allowed is not None and getattr(config, f.name) not in allowed:
            raise ValueError(f"{where}: '{f.name}' must be one of {', '.join(map(str, allowed))}; "
                             f"got {getattr(config, f.name)!r}.")


def unmet_needs(config, names, outside=None):
    """[(name, (field, value))] for the fields `names` of `config` (those a user gave) that are off their default yet
    have no effect in it: their metadata's "needs" field is unset (falsy) when the value named is None, else not at
    that value (lstm_hidden without context "bilstm"), or without it when the field is a list of names (momentum
    without "momentum" among the methods).  A needed name that is no field is looked up in `outside` (a dict: what
    the front end has besides the Config, e.g. a command's --data file).  A front end refuses them: they were
    ignored, silently."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    out = []
    for name in names:
        f = fields[name]
        needs = f.metadata.get("needs")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if needs is None or getattr(config, name) == default:
            continue
        other, value = needs
        have = getattr(config, other) if other in fields else (outside or {}).get(other)
        if value is None:                                       # set at all (a number > 0, a path, a switch)
            met = bool(have)
        elif isinstance(have, (tuple, list, frozenset, set)):   # a list of names (methods): the value among them
            met = value in have
        else:
            met = have == value
        if not met:
            out.append((name, needs))
    return out


def describe_default(f):
    """The default of field `f` as a front end shows it ("none" for None, "1,2" for a tuple)."""
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


# The Config fields a resumed run may change: how long it goes on, not what it trains.
RESUMABLE = ("epochs", "patience", "max_minutes")


def run_settings(config, *, after=(), **data):
    """What a run of `config` on `data` is, for fastnn.train.Trainer's `settings` (recorded in its checkpoints, and
    matched by a resumed run): the Config's class and fields but RESUMABLE and `after` (fields applied only to the
    result, which a resumed run may change too), and for each part of the data (name=ids, a 1-d integer array, or
    name=sentences, lists of tokens) its size and a SHA-1 digest of its content.

    >>> from fastnn.recipes.lm import RNNConfig
    >>> s = run_settings(RNNConfig(hidden=8), train=np.array([2, 3, 1]))
    >>> s["config"], s["hidden"], "epochs" in s, s["train data"][:9]
    ('RNNConfig', 8, False, '3 tokens,')
    """
    import hashlib
    out = {"config": type(config).__name__}
    out.update((f.name, getattr(config, f.name)) for f in dataclasses.fields(config)
               if f.name not in RESUMABLE and f.name not in after
               and not (f.metadata.get("added_later") and getattr(config, f.name) == f.default))
    for name, part in data.items():
        h = hashlib.sha1()
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part, dtype=np.int64)
            h.update(part.tobytes())
            n = len(part)
        else:
            n = 0
            for sentence in part:
                h.update(("\x1f".join(sentence) + "\n").encode("utf-8"))
                n += len(sentence)
        out[f"{name} data"] = f"{n:,} tokens, sha1 {h.hexdigest()[:12]}"
    return out
