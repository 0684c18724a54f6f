"""Argument checks shared by the kernel wrappers and the layers above them.

Messages read "{where}: {what} must be {expected}; got {actual}. {remedy}" (../shared/STYLE.md B7).  Checks are
vectorised NumPy; nothing here copies a parameter, because parameters are updated in place.
"""
import math
import numbers

import numpy as np


def check_not_file(data, name, where, reader):
    """`data` itself, or a TypeError when it is a file rather than the data: an os.PathLike, a string or bytes that
    names a file (an existing one, or one word with a path separator or a .extension), or an open file.  Read as
    data, a path would be its characters and a file its raw lines (consumed), so the message names `reader`, the
    call that reads such a file (e.g. "fastnn.data.read_sentences(path)")."""
    import io
    import os

    if isinstance(data, os.PathLike) or (isinstance(data, (str, bytes)) and _names_file(data)):
        got = f"the path {os.fsdecode(data)!r}"
    elif isinstance(data, io.IOBase) or (hasattr(data, "read") and hasattr(data, "readline")):
        got = f"an open file ({type(data).__name__}{' ' + repr(data.name) if hasattr(data, 'name') else ''})"
    else:
        return data
    what = f"{where}: '{name}'" if name else where          # (name None: `where` names the argument)
    raise TypeError(f"{what} must be the data itself, not a file; got {got}. Read the file first: {reader}.")


def check_path(path, where):
    """`path` as a str: a str, bytes or os.PathLike; anything else is a TypeError naming `where` (os.fspath's own
    message names neither the function nor what to pass): an open file (its name offered), several paths (one file
    per call), None, data."""
    import os

    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(path))
    got = type(path).__name__
    hint = ""
    if hasattr(path, "read") or hasattr(path, "write"):     # an open file
        name = getattr(path, "name", None)
        hint = f" Pass the file's name: {where}({name!r}, ...)." if isinstance(name, str) else ""
    elif isinstance(path, (list, tuple)):
        got += f" {short_repr(path)}"
        hint = " One file per call: give each in turn."
    raise TypeError(f"{where}: 'path' must be a file path (str or os.PathLike); got {got}.{hint}")


def check_callable(f, name, where, args):
    """`f` when it can be called with the arguments `args` names ("model, batch"); else a TypeError saying so, at the
    call that takes it rather than at its first use (after an epoch, or in every trial of a search).  A signature that
    cannot be read (some builtins) passes."""
    import inspect

    if not callable(f):
        raise TypeError(f"{where}: '{name}' must be callable, taking ({args}); got {type(f).__name__}.")
    try:
        sig = inspect.signature(f)
        sig.bind(*[None] * len(args.split(",")))
    except ValueError:
        return f
    except TypeError:
        raise TypeError(f"{where}: '{name}' must take ({args}); got a callable that cannot be called so: "
                        f"{name}{sig}.") from None
    return f


def check_words(words, where):
    """A model's vocabulary as a list of str (None stays None): a string is a TypeError (its characters would be
    taken for the words), as is a word that is not a string (a vocabulary built from ids, say); a word given twice is
    a ValueError (text would be encoded to one of its ids)."""
    if words is None:
        return None
    if isinstance(words, (str, bytes)):
        raise TypeError(f"{where}: 'words' must be a list of words (vocab.words); got the string {short_repr(words)}.")
    words = list(words)
    bad = next((i for i, w in enumerate(words) if not isinstance(w, str)), None)
    if bad is not None:
        raise TypeError(f"{where}: 'words' must be strings; got {type(words[bad]).__name__} {words[bad]!r} at "
                        f"position {bad}.")
    if len(set(words)) != len(words):   # (text was encoded to one of the ids, and a model file loaded that way)
        seen = {}
        i, first = next((i, seen[w]) for i, w in enumerate(words) if seen.setdefault(w, i) != i)
        raise ValueError(f"{where}: 'words' must be distinct (one id per word); got {words[i]!r} at positions "
                         f"{first} and {i}.")
    return [str(w) for w in words]                  # (np.str_ -> str: JSON in model files)


def array_like(data):
    """`data` as an ndarray when it converts to a numeric one by itself (`__array__`: a torch tensor, a pandas Series
    of ids), else unchanged (a Series of token lists stays a sequence of sentences).  Iterated instead, a tensor gives
    0-d tensors, which no check takes for integers."""
    if hasattr(data, "__array__") and not isinstance(data, (np.ndarray, list, tuple, str, bytes)):
        a = np.asarray(data)
        if a.dtype.kind in "biuf":
            return a
    return data


def check_bool(x, name, where):
    """A switch: True or False (a NumPy bool too), returned as a bool; anything else is a TypeError, where bool(x)
    would read "no" or "False" as true."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{where}: '{name}' must be True or False; got {x!r}.")
    return bool(x)


def _names_file(s):
    import os
    import re

    text = os.fsdecode(s) if isinstance(s, bytes) else s
    if not text or len(text) > 4096 or any(c.isspace() for c in text):      # text, not a path
        return False
    return (os.path.sep in text or "/" in text or re.search(r"\.[A-Za-z0-9]{1,8}$", text) is not None
            or os.path.isfile(text))


FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a):
    return f"{type(a).__name__}" if not isinstance(a, np.ndarray) else f"array of dtype {a.dtype}"


def check_float_array(a, name, where, *, ndim=None, writeable=False, contiguous=True):
    """A float32/float64 ndarray, C-contiguous (and writeable when it is updated in place). Never copies."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where}: '{name}' must be a numpy.ndarray of float32 or float64; got {_describe(a)}.")
    if a.dtype not in FLOATS:
        raise TypeError(f"{where}: '{name}' must have dtype float32 or float64; got {a.dtype}.")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{where}: '{name}' must be {ndim}-dimensional; got shape {a.shape}.")
    if contiguous and not a.flags.c_contiguous:
        raise ValueError(f"{where}: '{name}' must be C-contiguous; got a strided view. "
                         f"Pass np.ascontiguousarray({name}) (for a parameter, keep the contiguous copy as the parameter).")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{where}: '{name}' must be writeable; got a read-only array. It is updated in place.")
    return a


def check_input(a, name, where, dtype, *, ndim=None, shape=None):
    """A read-only float input: made C-contiguous if needed (a copy is harmless), dtype must equal `dtype`."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where}: '{name}' must be a numpy.ndarray of {np.dtype(dtype)}; got {_describe(a)}.")
    if a.dtype != dtype:
        raise TypeError(f"{where}: '{name}' must have dtype {np.dtype(dtype)} to match the parameters; got {a.dtype}. "
                        f"Cast '{name}' (parameters are never cast: they are updated in place).")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{where}: '{name}' must be {ndim}-dimensional; got shape {a.shape}.")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{where}: '{name}' must have shape {tuple(shape)}; got {a.shape}.")
    return np.ascontiguousarray(a)


def check_same_dtype(where, ref_name, ref, **arrays):
    for name, a in arrays.items():
        if a.dtype != ref.dtype:
            raise TypeError(f"{where}: '{name}' must have dtype {ref.dtype} to match '{ref_name}'; got {a.dtype}. "
                            f"Cast '{name}', not '{ref_name}' ('{ref_name}' is updated in place).")


def check_shape(a, name, where, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{where}: '{name}' must have shape {tuple(shape)}; got {a.shape}.")


def check_index(idx, n, name, where):
    """Integer indices in [0, n) as a contiguous intp array (copied only if needed)."""
    if isinstance(idx, (list, tuple)):
        idx = np.asarray(idx) if len(idx) else np.zeros(0, dtype=np.intp)
    if not isinstance(idx, np.ndarray):
        raise TypeError(f"{where}: '{name}' must be an integer numpy.ndarray; got {_describe(idx)}.")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{where}: '{name}' must have an integer dtype; got {idx.dtype}.")
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= n:
            pos = int(np.flatnonzero((idx.ravel() < 0) | (idx.ravel() >= n))[0])
            raise IndexError(f"{where}: '{name}' must be in [0, {n}); got {idx.ravel()[pos]} at position {pos}.")
    return np.ascontiguousarray(idx, dtype=np.intp)


def check_no_overlap(where, **arrays):
    items = list(arrays.items())
    for i, (na, a) in enumerate(items):
        for nb, b in items[i + 1:]:
            if a is not None and b is not None and np.shares_memory(a, b):
                raise ValueError(f"{where}: '{na}' and '{nb}' must not share memory.")


def check_scalar(x, name, where, *, low=None, high=None, low_open=False, integer=False):
    """A real (or integer) scalar in [low, high] (low exclusive when low_open)."""
    t = type(x)
    if t is int or (t is float and not integer):      # the common case, without the ABC checks (a hot path)
        if t is float and not math.isfinite(x):
            raise ValueError(f"{where}: '{name}' must be finite; got {x!r}.")
    else:
        kinds = numbers.Integral if integer else numbers.Real
        if isinstance(x, bool) or not isinstance(x, kinds):
            kind = "an integer" if integer else "a real number"
            raise TypeError(f"{where}: '{name}' must be {kind}; got {x!r}.")
        if not integer and not np.isfinite(x):
            raise ValueError(f"{where}: '{name}' must be finite; got {x!r}.")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{where}: '{name}' must be {'>' if low_open else '>='} {low}; got {x!r}.")
    if high is not None and x > high:
        raise ValueError(f"{where}: '{name}' must be <= {high}; got {x!r}.")
    return x


def check_float_dtype(dtype, where, name="dtype"):
    """np.dtype(dtype), which must be float32 or float64 (the kernels' two): TypeError naming `where` and `name`."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.float32, np.float64):
        raise TypeError(f"{where}: '{name}' must be float32 or float64; got {dtype if d is None else d}.")
    return d


def check_int(x, name, where, *, low=1):
    """An integer (not a bool) >= low, returned as a Python int: TypeError for another type, ValueError below low."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{where}: '{name}' must be an integer >= {low}; got {x!r}.")
    if x < low:
        raise ValueError(f"{where}: '{name}' must be an integer >= {low}; got {x!r}.")
    return int(x)


def short_repr(x, n=60):
    """repr(x) cut to n characters, for error messages that quote the offending value."""
    r = repr(x)
    return r if len(r) <= n else r[:n] + "..."


def is_string_array(a):
    """A NumPy array of strings: dtype str, or dtype object holding only str (a pandas column of tokens, or
    np.array(tokens, dtype=object))."""
    return isinstance(a, np.ndarray) and (a.dtype.kind == "U" or (a.dtype.kind == "O" and a.size > 0 and
                                                                 all(isinstance(x, str) for x in a.flat)))


def check_ordered(data, name, where):
    """`data` unless it is a set: read in its iteration order, which for strings changes from one Python process to
    the next (hash randomisation), a corpus or a stream of ids would be another text in every run."""
    if isinstance(data, (set, frozenset)):
        raise TypeError(f"{where}: '{name}' must be a sequence in text order (a list, a tuple, an array); got a "
                        f"{type(data).__name__}, whose order is arbitrary and changes between runs. Pass a list "
                        f"(sorted(...) for a fixed order).")
    return data


def check_sentences(sentences, where, item="token"):
    """The sentences of a tokenised corpus (lists of token strings) as a list, refusing untokenised text.

    A string where a sentence belongs would be read as a sequence of characters (a vocabulary of letters, a
    silently wrong model), so it is a TypeError saying how to tokenise, as are a bare string corpus and
    non-string tokens.  Any iterable of sentences is read once into the list (a generator given to a function that
    reads the corpus twice, for its vocabulary and then its ids, would otherwise leave the second pass empty), and
    a 1-d NumPy array of strings (is_string_array) is a sentence.  item : what the strings are, for the messages
    ("tag" for sentences of tags).
    """
    what = "tokenised sentences" if item == "token" else f"sentences of {item}s"
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"{where}: 'sentences' must be a list of {what}; got a {type(sentences).__name__}"
                        f" {short_repr(sentences)}. Tokenise first, e.g. [line.split() for line in lines].")
    check_ordered(sentences, "sentences", where)
    try:
        sentences = list(sentences)
    except TypeError:
        raise TypeError(f"{where}: 'sentences' must be a list of {what}; got "
                        f"{type(sentences).__name__}.") from None
    for k, s in enumerate(sentences):
        if is_string_array(s) and s.ndim == 1:
            s = sentences[k] = s.tolist()
        if isinstance(s, (str, bytes)) or not isinstance(s, (list, tuple)):
            flat = isinstance(s, str) and all(isinstance(x, str) and len(x.split()) == 1 for x in sentences)
            hint = (f"A flat list of {item}s: for one sentence pass [{item}s]." if flat else
                    "Tokenise first, e.g. [line.split() for line in lines].")     # (a list of lines)
            raise TypeError(f"{where}: sentence {k} must be a list of {item} strings; got {type(s).__name__} "
                            f"{short_repr(s)}. {hint}")
        for i, t in enumerate(s):
            if not isinstance(t, str):
                raise TypeError(f"{where}: sentence {k}, {item} {i} must be a string; got {type(t).__name__} "
                                f"{short_repr(t)}.")
    return sentences
