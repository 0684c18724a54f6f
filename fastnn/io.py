"""Model files and training checkpoints: one .npz, written atomically, read with allow_pickle=False.

A file holds a JSON header (array "__fastnn__": format name, format version, kind "model" or "checkpoint", the
model's class as "module:QualName" and its config()) and plain numeric arrays: "param/<name>" for each parameter,
and for checkpoints the optimizer state ("optim/...") and the trainer state ("train/...").  A model that holds
state other than parameters (the count tables of an n-gram) gives it as `buffers()` (a dict) and takes it back in
`load_buffers(dict)`: saved as the "buffers" section, restored by load_model.  A model whose words were made from
text by a normalisation carries its name as `text_normalization` (fastnn.embed.NORMALIZATIONS: embed train's models,
"normalize_word"): saved as the header's "text_normalization", set back by load_model; a file without it (every
`lm train` model, and files written before the record) holds a model that reads text as written.  Nested dicts of the
optimizer / trainer states are flattened: arrays become npz members, everything else goes into the JSON header.

Writes go to a temporary file in the same directory, which is flushed, fsynced and renamed over the target
(os.replace), so a crash at any moment leaves either the old file or the new one.  Reading checks the zip CRCs, the
format version, the model class and every parameter's name, shape and dtype, and says what is wrong; a config that
differs in other settings (dropout rate, seed) only warns.
"""
import importlib
import io as _io
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from fastnn._validation import check_path

FORMAT = "fastnn"
FORMAT_VERSION = 1
HEADER = "__fastnn__"


# ---- atomic writes -----------------------------------------------------------------------------------------------

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call write(fileobj) on a temp file next to `path`, fsync it, and rename it over `path`: a crash at any moment
    leaves the old file or the new one.  The new file gets the usual permissions (0o666 less the umask), not the
    owner-only ones of the temporary file.

    Only a regular file is replaced so: a device or a pipe (/dev/stdout, bash's >(gzip > out.gz)) is written as it
    is, and a symbolic link keeps being one, its target being written (atomically) in its own directory."""
    path = os.fspath(path)
    if not is_regular_target(path):
        with open(path, "wb") as f:
            write(f)
        return
    path = os.path.realpath(path) if os.path.islink(path) else path
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as e:                   # about the temporary name: say which file could not be written
        raise type(e)(e.errno, e.strerror, path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:               # e.g. `path` is a directory
            raise type(e)(e.errno, e.strerror, path) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:                                   # make the rename itself durable (POSIX; not possible on Windows)
        dfd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def is_regular_target(path):
    """Is `path` a regular file, a link to one, or nothing yet (which atomic_write creates as a regular file)?  Not
    for a device, a pipe or a socket: those are opened and written in place."""
    import stat
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:                        # missing (or a dangling link: its target is created)
        return True


def cannot_create(folder):
    """Why no file can be made in directory `folder` (the OSError's reason), or None: a file is made and removed
    there, as atomic_write does (os.access says yes to root where the file system refuses: /proc, /sys, a read-only
    or root-squashed mount)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastnn-check-", suffix=".tmp")
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.remove(tmp)
    return None


# ---- nested state <-> JSON + arrays ------------------------------------------------------------------------------

def _pack(tree, key, arrays):
    """JSON-able skeleton of `tree`; ndarrays are moved to arrays[key] and replaced by {"__array__": key}."""
    if isinstance(tree, np.ndarray):
        if tree.dtype.kind not in "biufU":
            raise TypeError(f"save: '{key}' must be a numeric or string array; got dtype {tree.dtype}.")
        arrays[key] = tree
        return {"__array__": key}
    if isinstance(tree, dict):
        for k in tree:
            if not isinstance(k, str) or "/" in k:
                raise TypeError(f"save: keys must be strings without '/'; got {k!r} under '{key}'.")
        return {k: _pack(v, f"{key}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_pack(v, f"{key}/{i}", arrays) for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"save: '{key}' must be an array, number, string, list or dict; got {type(tree).__name__}.")


def _unpack(skel, arrays):
    if isinstance(skel, dict):
        if set(skel) == {"__array__"}:
            return arrays[skel["__array__"]]
        return {k: _unpack(v, arrays) for k, v in skel.items()}
    if isinstance(skel, list):
        return [_unpack(v, arrays) for v in skel]
    return skel


# ---- reading and writing -----------------------------------------------------------------------------------------

def model_class_name(model):
    return f"{type(model).__module__}:{type(model).__qualname__}"


def _model_config(model, where):
    if not hasattr(model, "config"):
        raise TypeError(f"{where}: the model must have a config() method returning its constructor arguments; "
                        f"{type(model).__name__} has none.")
    cfg = model.config()
    try:
        return json.loads(json.dumps(cfg))            # normalised (tuples -> lists) and checked JSON-able
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: {type(model).__name__}.config() must be JSON-serialisable; {e}.") from None


def _write(path, kind, model, sections):
    where = f"save_{kind}"
    if not (callable(getattr(model, "parameters", None)) and callable(getattr(model, "config", None))):
        # (arguments swapped, or a fitted object of another library: an AttributeError otherwise)
        swapped = f" The path comes first: {where}(path, model)." if isinstance(model, (str, os.PathLike)) else ""
        raise TypeError(f"{where}: 'model' must be a fastnn model (with parameters() and config()); got "
                        f"{type(model).__name__}.{swapped}")
    arrays = {}
    params = {name: p.value for name, p in model.parameters().items()}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "model_class": model_class_name(model),
              "model_config": _model_config(model, where),
              "params": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in params.items()}}
    for n, a in params.items():
        arrays[f"param/{n}"] = a
    norm = getattr(model, "text_normalization", None)
    if norm is not None:                # (what a reader of raw text must do to look the model's words up)
        if not isinstance(norm, str):
            raise TypeError(f"{where}: the model's 'text_normalization' must be the name of a normalisation (a str) "
                            f"or None; got {type(norm).__name__} {norm!r:.60}.")
        header["text_normalization"] = norm
    if hasattr(model, "buffers"):
        sections = {**sections, "buffers": model.buffers()}
    for name, tree in sections.items():
        header[name] = _pack(tree, name, arrays)
    arrays[HEADER] = np.array(json.dumps(header, allow_nan=True))
    atomic_write(check_path(path, where), lambda f: np.savez(f, **arrays))


def read_file(path, where="load"):
    """(header dict, {member: array}) of a fastnn file, with clear errors for missing, corrupted or foreign files."""
    path = check_path(path, where)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file: '{path}'.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{where}: '{path}' is a directory; a model file is needed.")
    # a pipe (--model <(zcat m.npz.gz)) is read once, into memory: np.load and the checks below seek
    if os.path.isfile(path):
        source = path
    else:
        with open(path, "rb") as f:
            source = _io.BytesIO(f.read())
    what = _not_fastnn(source)
    if what:
        raise ValueError(f"{where}: '{path}' must be a readable fastnn .npz file (a model or checkpoint); got "
                         f"{what}.")
    if not isinstance(source, str):
        source.seek(0)
    try:
        with np.load(source, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}       # reading every member checks its CRC
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as e:
        if isinstance(e, ValueError) and "allow_pickle" in str(e):     # (not damaged: written by other code)
            raise ValueError(f"{where}: '{path}' must be a fastnn .npz file of plain arrays; got one holding pickled "
                             f"Python objects (object arrays), which fastnn never writes and does not load "
                             f"(allow_pickle=False: loading a pickle can run any code).") from None
        raise ValueError(f"{where}: '{path}' must be a readable fastnn .npz file; got a truncated or corrupted file "
                         f"({type(e).__name__}: {e}). Use an earlier checkpoint or save the model again.") from None
    if HEADER not in arrays:
        raise ValueError(f"{where}: '{path}' must be a fastnn file (with a '{HEADER}' header); got an .npz without "
                         f"one. Was it written by fastnn.io?")
    try:
        header = json.loads(str(arrays.pop(HEADER)))
    except ValueError as e:
        raise ValueError(f"{where}: '{path}' has a corrupted header ({e}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: '{path}' has a corrupted header (a JSON {type(header).__name__}, not an object).")
    if header.get("format") != FORMAT:
        raise ValueError(f"{where}: '{path}' must be a fastnn file; got format {header.get('format')!r}.")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{where}: '{path}' has format version {header.get('version')!r} but this fastnn reads "
                         f"version {FORMAT_VERSION}. Use the fastnn version that wrote it.")
    for key, kind in _HEADER_FIELDS.items():   # what every reader relies on (a KeyError or AttributeError otherwise)
        if not isinstance(header.get(key), kind):
            raise ValueError(f"{where}: '{path}' has a corrupted header: '{key}' must be a JSON "
                             f"{'string' if kind is str else 'object'}; got {header.get(key)!r:.60}.")
    return header, arrays


_HEADER_FIELDS = {"kind": str, "model_class": str, "model_config": dict, "params": dict}


def _not_fastnn(source):
    """What `source` (a path, or the bytes of a pipe in a BytesIO) is when it cannot be a fastnn file, told by its
    first bytes (np.load's own errors call a text file "pickled data", and fail in a `with` on a bare .npy), or None
    for an .npz (its header and any damage inside are read_file's to find)."""
    if isinstance(source, str):
        with open(source, "rb") as f:
            head = f.read(512)
    else:
        head = source.getvalue()[:512]
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return "a single NumPy array (.npy, as np.save writes), not a model file"
    if head.startswith(b"\x1f\x8b"):
        import gzip
        try:
            with gzip.open(source, "rb") if isinstance(source, str) else gzip.GzipFile(fileobj=source) as g:
                inner = g.read(2)
        except (OSError, EOFError):
            inner = b""
        return "a gzip-compressed .npz: decompress it first (gunzip -k)" if inner == b"PK" else "a gzip file"
    if head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05":
        return "a Python pickle, which fastnn never loads (unpickling can run any code)"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(source) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return None                                  # a damaged .npz: np.load names the damage
        if all(n.endswith(".npy") for n in names):
            return None
        return f"a zip archive of other files ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
    if b"\0" not in head:
        try:
            first = (head.decode("utf-8").splitlines() or [""])[0]
        except UnicodeDecodeError:
            first = None
        if first is not None:
            return f"a text file (first line {first[:40]!r}{'...' if len(first) > 40 else ''})"
    return "a binary file of an unknown kind"


def _check_model(header, model, path, where):
    want = header["model_class"]
    if want != model_class_name(model):
        raise ValueError(f"{where}: '{path}' holds a {want} but the model is a {model_class_name(model)}.")


def _warn_config(header, model, where):
    cfg, saved = _model_config(model, where), header["model_config"]
    if cfg != saved:          # parameter names/shapes/dtypes are checked strictly; other settings may differ
        diff = sorted(k for k in set(cfg) | set(saved) if cfg.get(k) != saved.get(k))
        warnings.warn(f"{where}: the model's config differs from the file's in {diff} (file "
                      f"{ {k: saved.get(k) for k in diff} }, model { {k: cfg.get(k) for k in diff} }).",
                      UserWarning, stacklevel=3)


def _check_params(header, arrays, model, path, where):
    params = model.parameters()
    saved = header["params"]
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        raise ValueError(f"{where}: '{path}' must hold the model's parameters; missing {missing}, unknown {extra}.")
    for name, p in params.items():
        a = arrays.get(f"param/{name}")
        if a is None:
            raise ValueError(f"{where}: '{path}' is missing the array of parameter '{name}' (corrupted file).")
        if a.shape != p.value.shape:
            raise ValueError(f"{where}: '{name}' has shape {a.shape} in '{path}' but {p.value.shape} in the model.")
        if a.dtype != p.value.dtype:
            raise TypeError(f"{where}: '{name}' has dtype {a.dtype} in '{path}' but {p.value.dtype} in the model. "
                            f"Build the model with the file's dtype.")
        if not np.all(np.isfinite(a)):                # training never saves these: a damaged file, or one not ours
            raise ValueError(f"{where}: '{name}' in '{path}' holds non-finite values (NaN or Inf); a model with them "
                             f"would score everything as NaN. Use an earlier checkpoint or save the model again.")


def _assign_params(arrays, model):
    for name, p in model.parameters().items():
        p.value[...] = arrays[f"param/{name}"]        # in place: optimizers keep referring to the same arrays
        p.grad = None


def save_model(path, model, extra=None):
    """Write the model's class, config() and parameters to `path` (atomically).

    extra : optional dict of arrays (e.g. a vocabulary as a numpy unicode array), numbers, strings, lists and dicts
        stored alongside; read it back with load_extra(path).
    """
    _write(path, "model", model, {} if extra is None else {"extra": extra})


def load_extra(path):
    """The `extra` dict saved with save_model (an empty dict when there is none)."""
    header, arrays = read_file(path, "load_extra")
    return _unpack(header.get("extra", {}), arrays)


def load_params(path, model):
    """Load parameters from a model or checkpoint file into `model` (class, config, names, shapes, dtypes checked)."""
    where = "load_params"
    header, arrays = read_file(path, where)
    _check_model(header, model, path, where)
    _check_params(header, arrays, model, path, where)
    _warn_config(header, model, where)
    _assign_params(arrays, model)
    return model


class CheckpointGivenError(ValueError):
    """A training checkpoint was given where a model file is expected (load_model).  A front end catches it to say
    in its own words how to get the model (the CLI: resume the run with --resume)."""

    def __init__(self, message, path):
        super().__init__(message)
        self.path = path


def load_model(path, cls=None):
    """Build the model saved in `path` (cls.from_config(config)) and load its parameters.

    cls : the model class; by default the class named in the file, which must live in the fastnn package (other
        modules are not imported from a file's say-so; pass cls for your own models).

    A checkpoint is refused (CheckpointGivenError, a ValueError): it holds the parameters of the last step, not the
    model its run ends with (the best epoch's, or the average), so scoring it would silently score another model.
    """
    where = "load_model"
    header, arrays = read_file(path, where)
    if header["kind"] == "checkpoint":
        raise CheckpointGivenError(
            f"{where}: '{path}' is a training checkpoint, not a model file: it holds the parameters of the last "
            f"training step, not the model the run ends with (its best epoch's, or the average). Resume the run "
            f"from it to its end (resume=True) and use the model it gives, or load_params('{path}', model) to take "
            f"the last step's parameters as they are.", path)
    module, _, qual = header["model_class"].partition(":")
    if cls is None:
        if module.split(".")[0] != "fastnn":
            raise ValueError(f"{where}: '{path}' holds a {header['model_class']}, outside fastnn; pass cls= to load it.")
        try:
            obj = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError, ValueError):
            obj = None
        if not (isinstance(obj, type) and hasattr(obj, "from_config")):
            raise ValueError(f"{where}: '{path}' holds a {header['model_class']}, which is not a model class of this "
                             f"fastnn. Use the fastnn version that wrote it.")
        cls = obj
    elif not (isinstance(cls, type) and hasattr(cls, "from_config")):
        raise TypeError(f"{where}: 'cls' must be a model class (with from_config) or None; got {type(cls).__name__} "
                        f"{cls!r}.")
    elif f"{cls.__module__}:{cls.__qualname__}" != header["model_class"]:
        # (building one from the other's configuration failed as "does not build a NPLM: TypeError: ... 'tasks'")
        raise ValueError(f"{where}: '{path}' holds a {header['model_class']}, not a {cls.__module__}:"
                         f"{cls.__qualname__}; give that model's file, or leave cls out to load what the file holds.")
    try:
        model = cls.from_config(header["model_config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{where}: '{path}' has a configuration that does not build a {cls.__name__}: "
                         f"{type(e).__name__}: {e}") from None
    _check_model(header, model, path, where)
    _check_params(header, arrays, model, path, where)
    if hasattr(model, "load_buffers"):
        if "buffers" not in header:
            raise ValueError(f"{where}: '{path}' must hold the {type(model).__name__}'s buffers; it has none "
                             f"(corrupted file).")
        model.load_buffers(_unpack(header["buffers"], arrays))
    if "text_normalization" in header:
        if not isinstance(header["text_normalization"], str):
            raise ValueError(f"{where}: '{path}' has a corrupted header: 'text_normalization' must be a JSON string; "
                             f"got {header['text_normalization']!r:.60}.")
        model.text_normalization = header["text_normalization"]
    _assign_params(arrays, model)
    return model


def save_checkpoint(path, model, optimizer=None, state=None):
    """Write model parameters + optimizer.state_dict() + a trainer `state` tree (nested dicts/lists of arrays,
    numbers, strings) atomically."""
    sections = {"train": state if state is not None else {}}
    if optimizer is not None:
        sections["optim"] = optimizer.state_dict()
    _write(path, "checkpoint", model, sections)


def load_checkpoint(path, model, optimizer=None, *, check=None):
    """Restore parameters (and the optimizer's state) from `path` in place; return the trainer state tree.
    check : None, or a callable given that tree once the file is known to hold a checkpoint of the model's class,
    before anything is read into the model (e.g. Trainer's: the run's settings must match; it raises to refuse)."""
    where = "load_checkpoint"
    header, arrays = read_file(path, where)
    if header.get("kind") != "checkpoint":
        raise ValueError(f"{where}: '{path}' must be a checkpoint; got a {header.get('kind')} file. "
                         f"Use load_model/load_params for model files.")
    _check_model(header, model, path, where)
    if check is not None:
        check(_unpack(header.get("train", {}), arrays))
    if optimizer is not None and "optim" not in header:
        raise ValueError(f"{where}: '{path}' has no optimizer state; got a checkpoint saved without an optimizer.")
    _check_params(header, arrays, model, path, where)
    _warn_config(header, model, where)
    if optimizer is not None:                          # checks everything before changing anything
        optimizer.load_state_dict(_unpack(header["optim"], arrays))
    _assign_params(arrays, model)
    return _unpack(header.get("train", {}), arrays)
