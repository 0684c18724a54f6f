"""The training loop every model and the CLI use.

>>> import os, tempfile
>>> import numpy as np
>>> from fastnn import graph, nn, optim
>>> class LogReg(graph.Module):
...     def __init__(self, seed=0):
...         self.seed, self.out = seed, nn.Linear(2, 2, rng=np.random.default_rng(seed))
...     def config(self):                                    # constructor arguments, stored in checkpoints
...         return {"seed": self.seed}
...     def loss(self, batch):                               # a batch of ArrayBatches(X, y): (X[idx], y[idx])
...         return nn.softmax_cross_entropy(self.out(batch[0]), batch[1])
...     def accuracy(self, X, y):
...         return float((self.out(X).value.argmax(1) == y).mean())
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 2)).astype(np.float32)
>>> y = (X[:, 0] > X[:, 1]).astype(np.int64)
>>> model = LogReg(seed=0)
>>> data = ArrayBatches(X[:400], y[:400], batch_size=100)   # or any object with epoch(rng) -> sequence of batches
>>> trainer = Trainer(model, optim.AdaGrad(model.parameters(), lr=0.1), data, epochs=20,
...                   validate=lambda m: m.accuracy(X[400:], y[400:]), mode="max", patience=3,
...                   checkpoint=os.path.join(tempfile.mkdtemp(), "run.ckpt"), checkpoint_every=500, seed=0,
...                   quiet=True)
>>> history = trainer.fit()                                 # trainer.fit(resume=True) continues a killed run
>>> trainer.best_score > 0.9
True

How batches are made is the caller's: `data.epoch(rng)` is called at the start of every epoch with the trainer's
np.random.Generator and returns a sequence (len and [i]) of batches, each passed to `loss_fn(model, batch)` (default
`model.loss(batch)`, a scalar Node).  ArrayBatches shuffles index arrays (window taggers, NPLM contexts); an RNN LM
passes its own sequential BPTT chunks (shuffle=False, hidden state carried by the model).  A plain callable
`data(epoch, rng)` returning such a sequence works too.

Each step: zero grads, loss, backward, non-finite check (FloatingPointError naming the step and the parameter, or
skip with on_nonfinite="skip"), optional clipping (clip_norm: global norm, clip_value: element-wise), optimizer step.
Each epoch: validation in eval mode (`validate(model) -> float`; `mode` "max" or "min" says which way is better and
must be given: the trainer never guesses), best parameters kept in memory, schedules observe the score
(HalveOnPlateau), early stopping once more than `patience` epochs in a row bring no better score, and a
checkpoint.  At the end the best parameters are restored (restore_best=True).  With average=True the trainer also
keeps the mean of the parameters over all steps (fastnn.optim.ParamAverage) and validates, keeps and ends with that.

Checkpoints (fastnn.io, atomic) carry the parameters, the optimizer and schedule state, the Generator's state (as
JSON) at the start of the epoch and now, the epoch and the position within it, the best parameters and score, the
history, the states of Generators held by the model (dropout masks), and optional `model.extra_state()` /
`data.state_dict()`.  A run killed at any point and resumed with fit(resume=True) ends with bit-identical parameters
to one never interrupted.  Ctrl-C finishes the current step, writes a checkpoint (when set), ends the run as if it
had been set to stop there (the best epoch's parameters restored, as at a normal end) and raises TrainingInterrupted
(a KeyboardInterrupt), so that a caller can still save the model; a second Ctrl-C stops at once.  Divergence (a
non-finite loss or gradient with on_nonfinite="raise") ends the run the same way, with the best epoch's parameters
restored, and raises TrainingDiverged (a FloatingPointError); so does a validation score that is not finite, or
whose shown value (`metric`'s fn: a mean NLL's perplexity) overflowed.
"""
import contextlib
import dataclasses
import errno
import json
import math
import numbers
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

from fastnn import io
from fastnn._validation import check_bool, check_callable, check_scalar, short_repr
from fastnn.graph import Module, Node
from fastnn.init import as_rng
from fastnn.optim.average import ParamAverage
from fastnn.optim.clip import clip_grad_norm, clip_grad_value, grad_sq_norms
from fastnn.optim.schedules import check_mode, improves


# ---- batches -----------------------------------------------------------------------------------------------------

class ArrayBatches:
    """Mini-batches of rows of aligned arrays (same first dimension), reshuffled every epoch.

    ArrayBatches(X, y, batch_size=100) yields (X[idx], y[idx]) tuples; with a single array, the array itself.
    shuffle=False gives contiguous slices in order (views, no copy); drop_last drops a final short batch.
    """

    def __init__(self, *arrays, batch_size, shuffle=True, drop_last=False):
        where = "ArrayBatches"
        if not arrays:
            raise ValueError(f"{where}: at least one array must be given; got none.")
        given = arrays
        arrays = [np.asarray(a) for a in arrays]
        for i, a in enumerate(arrays):          # (a generator or a number is a 0-d object array)
            if a.ndim == 0:
                raise TypeError(f"{where}: array {i} must be an array (or a list) of rows; got "
                                f"{type(given[i]).__name__}. Pass np.asarray(list(...)) for a generator.")
        n = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"{where}: every array must have {n} rows like the first; got shape {a.shape} for "
                                 f"array {i}.")
        check_scalar(batch_size, "batch_size", where, low=1, integer=True)
        self.arrays, self.n, self.batch_size = arrays, n, int(batch_size)
        self.shuffle = check_bool(shuffle, "shuffle", where)
        self.drop_last = check_bool(drop_last, "drop_last", where)

    def __len__(self):
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def epoch(self, rng):
        perm = rng.permutation(self.n) if self.shuffle else None
        return BatchPlan.even(self._batch, self.n, self.batch_size, perm, drop_last=self.drop_last)

    def _batch(self, i, rows):
        out = tuple(a[rows] for a in self.arrays)
        return out if len(out) > 1 else out[0]

    @staticmethod
    def n_examples(batch):
        return len(batch[0]) if isinstance(batch, tuple) else len(batch)

    def __repr__(self):
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"ArrayBatches({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle})"


class BatchPlan:
    """One epoch's batches, a sequence the Trainer indexes: batch i is make(i, rows), rows = perm[cuts[j]:cuts[j + 1]]
    with j = order[i] (j = i without `order`); perm None takes the rows in order as slices (views, no copy).  Every
    batch source's epoch(rng) returns one; `i` lets make() seed per-batch randomness so a resumed run redraws it.
    """

    def __init__(self, make, perm, cuts, order=None):
        self.make, self.perm, self.cuts, self.order = make, perm, cuts, order

    @classmethod
    def even(cls, make, n, batch_size, perm=None, *, drop_last=False):
        """Batches of batch_size consecutive rows of perm (or of range(n)); the last one shorter unless drop_last."""
        n_batches = n // batch_size if drop_last else -(-n // batch_size)
        return cls(make, perm, [min(k * batch_size, n) for k in range(n_batches + 1)])

    def __len__(self):
        return len(self.cuts) - 1

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}); got {i}.")
        j = i if self.order is None else self.order[i]
        lo, hi = self.cuts[j], self.cuts[j + 1]
        return self.make(i, slice(lo, hi) if self.perm is None else self.perm[lo:hi])


def _n_examples(data, batch):
    f = getattr(data, "n_examples", None)
    if f is not None:
        return int(f(batch))
    if isinstance(batch, np.ndarray):
        return len(batch)
    if isinstance(batch, (tuple, list)) and batch and hasattr(batch[0], "__len__"):
        return len(batch[0])
    return 1


# ---- model RNG states --------------------------------------------------------------------------------------------

def model_generators(model):
    """{dotted attribute path: np.random.Generator} held by the model and its sub-modules (e.g. dropout's rng), found
    as Module.named_modules finds them (a dropout in a dict of layers too: its stream was not checkpointed, so a
    resumed run drew other masks)."""
    return {f"{name}{key}": val for name, m in model.named_modules() for key, val in vars(m).items()
            if isinstance(val, np.random.Generator)}


def _rng_json(rng):
    return json.dumps(rng.bit_generator.state)


def _set_rng(rng, text, where):
    state = json.loads(text)
    if state.get("bit_generator") != type(rng.bit_generator).__name__:
        raise ValueError(f"{where}: the checkpoint's Generator is a {state.get('bit_generator')}; got a "
                         f"{type(rng.bit_generator).__name__} here. Use the same seed type as the original run.")
    rng.bit_generator.state = state


# ---- progress ----------------------------------------------------------------------------------------------------

def _fmt_time(s):
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tqdm():
    """tqdm's bar class when the `progress` extra is installed, else None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Progress on a terminal: the epoch, loss, examples/s and the ETA of the whole run (epochs x batches, so the
    time left includes the epochs still to come).  Drawn by tqdm when it is installed (the `progress` extra), else
    as a one-line bar of its own.  Silent when disabled.  use_tqdm=False forces the plain bar."""

    BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}{postfix}]"

    def __init__(self, enabled, stream=None, min_interval=0.2, use_tqdm=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.min_interval = min_interval
        self.use_tqdm = use_tqdm
        self._last, self._bar = 0.0, None

    def start(self, title, total, *, run_total=None, run_done=0):
        """An epoch of `total` batches begins.  run_total: batches of the whole run (default: this epoch's);
        run_done: batches of the run already done (earlier epochs, and this one's before a resume)."""
        self.title, self.total, self.t0, self.n_ex, self._last = title, total, time.perf_counter(), 0, 0.0
        self.run_total = total if run_total is None else run_total
        self.run_done, self.steps = run_done, 0
        tqdm = _tqdm() if self.enabled and self.use_tqdm is not False else None
        if tqdm is not None:
            self._bar = tqdm(total=self.run_total, initial=run_done, desc=title, file=self.stream, leave=False,
                             unit="batch", mininterval=self.min_interval, bar_format=self.BAR_FORMAT)

    def update(self, done, loss, n_ex):
        """Batch `done` of the epoch (1-based) has been trained, with mean loss so far `loss`, on n_ex examples."""
        self.n_ex += n_ex
        self.steps += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        due = now - self._last >= self.min_interval or done >= self.total
        dt = max(now - self.t0, 1e-9)
        if self._bar is not None:
            if due:                                   # formatting the postfix every step would cost more than it says
                self._last = now
                self._bar.set_postfix_str(f"loss {loss:.4f}, {self.n_ex / dt:,.0f} ex/s", refresh=False)
            self._bar.update(1)
            return
        if not due:
            return
        self._last = now
        left = self.run_total - self.run_done - self.steps
        eta = left * dt / self.steps
        width = 24
        fill = int(width * done / max(self.total, 1))
        self.stream.write(f"\r{self.title} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} loss {loss:.4f} "
                          f"{self.n_ex / dt:,.0f} ex/s ETA {_fmt_time(eta)}  ")
        self.stream.flush()

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


# ---- the trainer -------------------------------------------------------------------------------------------------

def _check_params_of(model, optimizer, where):
    """The optimizer must update the model's own parameters: one built on another model (a copy, a re-built one)
    would train nothing the checkpoints and the result hold, silently."""
    params = getattr(optimizer, "params", None)
    if not isinstance(params, dict) or not hasattr(optimizer, "step"):
        raise TypeError(f"{where}: 'optimizer' must be a fastnn.optim optimizer; got {type(optimizer).__name__}.")
    own = {id(p) for p in model.parameters().values()}
    foreign = [name for name, p in params.items() if id(p) not in own]
    if foreign:
        raise ValueError(f"{where}: 'optimizer' must update the model's parameters; got {len(foreign)} it does not "
                         f"hold ({', '.join(map(repr, foreign[:3]))}{', ...' if len(foreign) > 3 else ''}). Build "
                         f"the optimizer on this model: e.g. AdaGrad(model.parameters(), lr=...).")


def _check_settings(settings, where):
    """Trainer's `settings` as JSON gives them back (tuples as lists, NumPy scalars as numbers: a Config may hold
    np.float64(0.1)), so that a checkpoint's compare equal; None stays None."""
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise TypeError(f"{where}: 'settings' must be a dict or None; got {type(settings).__name__}.")

    def scalar(x):
        if isinstance(x, np.generic):
            return x.item()
        raise TypeError(f"Object of type {type(x).__name__} is not JSON serializable")
    try:
        return json.loads(json.dumps(settings, default=scalar))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: 'settings' must be JSON-serialisable (numbers, strings, lists, dicts); {e}.") \
            from None


def _same_settings(saved, now, path, where):
    """ValueError naming the first setting in which the run that wrote checkpoint `path` differs from this one
    (see Trainer's `settings`); nothing when either run has none."""
    if saved is None or now is None:
        return
    for key in [*now, *(k for k in saved if k not in now)]:
        if saved.get(key) != now.get(key):
            was, got = (repr(d[key]) if key in d else "none" for d in (saved, now))
            raise ValueError(f"{where}: {path} was written by a run with '{key}' {was}; this run has {got}. A "
                             f"resumed run must have the settings and data of the run it continues: give those, "
                             f"or train afresh without resume.")


def _check_checkpointable(model, where):
    """A checkpoint records the model's config() as JSON (fastnn.io): a model without one, or with a value JSON cannot
    hold (a Generator, an array), would fail at the first save, after the first epoch."""
    config = getattr(model, "config", None)
    if not callable(config):
        raise TypeError(f"{where}: a model trained with a checkpoint must have a config() method returning its "
                        f"constructor arguments (saved with the parameters); {type(model).__name__} has none.")
    try:
        json.dumps(config())
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: {type(model).__name__}.config() must be JSON-serialisable to be saved in a "
                        f"checkpoint; {e}.") from None


def _check_checkpoint_path(path, where):
    """`path` as a str, when a checkpoint can be written there: a file path (not a directory) in an existing,
    writable directory (io.save_checkpoint writes a temporary file beside it and renames it).  The OSError the
    first save would raise, at the start instead of after the first epoch."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: 'checkpoint' must be a file path (str or os.PathLike); got {type(path).__name__} "
                        f"{short_repr(path)}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{where}: 'checkpoint' must be a file path, not a directory; name a "
                                f"file in it, e.g. {os.path.join(path, 'run.ckpt')}", path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"{where}: 'checkpoint' must be in an existing directory; {folder} "
                                f"does not exist (create it first)", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{where}: 'checkpoint' must be in a writable directory; {folder} is "
                              f"not writable", path)
    reason = io.cannot_create(folder)   # (/proc passed os.access, and the first save failed after an epoch)
    if reason:
        raise PermissionError(errno.EACCES, f"{where}: 'checkpoint' must be in a directory where files can be made; "
                              f"{folder}: {reason}", path)
    return path


@dataclasses.dataclass
class TrainState:
    """Where a run is: everything a checkpoint needs besides parameters, optimizer, Generators and the data's and
    model's own state.  The field names are the checkpoint's keys."""
    epoch: int = 0                   # epochs completed
    position: int = 0                # batches done in the current epoch
    batches: int = 0                 # batches in the current epoch's plan (0: not recorded, an older checkpoint)
    step: int = 0                    # optimizer steps taken
    skipped: int = 0                 # steps dropped by on_nonfinite="skip"
    rng_epoch_start: str = None      # the Generator's state (JSON) when the current epoch's plan was drawn
    best_score: float = None
    best_epoch: int = None
    bad_epochs: int = 0              # epochs since the last improvement
    best_params: dict = None         # {name: array} of the best epoch (restore_best)
    stopped: bool = False
    history: list = dataclasses.field(default_factory=list)
    loss_sum: float = 0.0            # the current epoch's example-weighted training loss so far
    loss_n: int = 0
    epoch_seconds: float = 0.0

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d):
        st = cls()
        for f in dataclasses.fields(cls):
            if f.name not in d:          # a field added since the checkpoint was written keeps its default
                continue
            v = d[f.name]
            if v is not None and type(f.default) in (int, float, bool):
                v = type(f.default)(v)
            setattr(st, f.name, v)
        st.history = list(st.history)
        if st.best_params is not None:
            st.best_params = {k: np.array(v) for k, v in st.best_params.items()}
        return st


def _state_field(name):
    return property(lambda self: getattr(self.state, name), doc=f"TrainState.{name} of the run (read-only).")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped training: `message` says where, `checkpoint` is the file to go on from (None: none written).
    str() ends with how to go on in Python (RESUME: Trainer.fit and the recipes share resume=True); a front end with
    other words for it (the CLI's --resume) writes `message` and its own."""

    RESUME = "resume=True with the same checkpoint continues the run"

    def __init__(self, message, checkpoint=None):
        super().__init__(message if checkpoint is None else f"{message}: {self.RESUME}")
        self.message, self.checkpoint = message, checkpoint


class TrainingInterrupted(Interrupted):
    """Ctrl-C stopped Trainer.fit between two steps.  `trainer.model` holds what fit would have ended with had the run
    been set to stop there (the best epoch's parameters with validation), `trainer.state.epoch` the epochs finished;
    `result` is what the interrupted call would have returned (fit: the history; a recipe that wraps fit replaces it
    with its own return value).  The CLI's train commands write that model instead of losing the run."""

    def __init__(self, trainer, result):
        ck = trainer.checkpoint
        super().__init__(f"training interrupted in epoch {trainer.state.epoch + 1}"
                         + (f"; checkpoint written to {ck}" if ck is not None else ""), ck)
        self.trainer, self.result = trainer, result


class TrainingDiverged(FloatingPointError):
    """A non-finite loss, gradient or validation score stopped Trainer.fit (on_nonfinite="raise").  As on Ctrl-C
    (TrainingInterrupted), `trainer.model` holds what the run would have ended with had it been set to stop there: its
    best epoch's parameters (with validation; `best_epoch`, else None), else the last finite ones (or their average).
    `message` is the divergence and its remedies; str() adds what the model holds."""

    def __init__(self, trainer, message):
        self.best_epoch = trainer.state.best_epoch if trainer.restore_best else None
        kept = f" The model holds the parameters of its best epoch ({self.best_epoch})." if self.best_epoch else ""
        super().__init__(message + kept)
        self.trainer, self.message = trainer, message

    def __reduce__(self):
        # from a worker process (an ensemble's members) as the FloatingPointError it is: the trainer stays behind
        return FloatingPointError, self.args


class Trainer:
    """Train `model` with `optimizer` on `data` (see the module docstring).

    Parameters
    ----------
    model : a Module with .loss(batch) (or pass loss_fn(model, batch) -> scalar Node).
    optimizer : a fastnn.optim optimizer over the model's parameters.
    data : object with epoch(rng) -> sequence of batches, or a callable data(epoch, rng) -> sequence.
    epochs : number of passes.
    validate : callable(model) -> float, run in eval mode after each epoch.
    mode : "max" (higher scores are better: accuracy, F1) or "min" (lower is better: loss, perplexity); required when
        validating.  higher_is_better=True/False is a deprecated spelling of mode="max"/"min".
    patience : how many epochs in a row without a better validation score are tolerated: the next one stops
        training (0: the first such epoch; HalveOnPlateau counts its patience the same way; None: never).
    restore_best : load the best-scoring parameters at the end.
    clip_norm : rescale gradients to this global L2 norm at most; clip_value : clip each entry to [-c, c].
    checkpoint : path of the checkpoint file (written each epoch, every `checkpoint_every` steps, and on Ctrl-C).
    seed : int or np.random.Generator for the batch order.
    on_nonfinite : "raise" (TrainingDiverged, a FloatingPointError, with the best epoch's parameters restored) or
        "skip" (drop the step and go on) when loss or a gradient is not finite.  Likewise for a validation score
        that is not finite, or whose `metric` value is not (a mean NLL of 3.9e30: perplexity inf): "raise" ends the
        run as diverged, "skip" warns and never keeps that epoch as the best.
    quiet : no output at all; progress : None = a progress bar when stderr is a terminal and not quiet.
    callback : callable(trainer, record) after each epoch (record = the history entry); return True to stop.
    max_minutes : a training-time budget: no epoch starts that would end past it, judged by the longest epoch so
        far (None: no budget).
    average : keep the mean of the parameters over all steps (fastnn.optim.ParamAverage); validation scores it, the
        best parameters kept are averaged ones, and training ends with them (or with the last mean, unvalidated).
    average_start : with average, the number of epochs trained before the mean starts (0: from the first step); the
        mean then starts from the parameters at the start of epoch average_start + 1, and epochs before that are
        scored on their own parameters.
    metric : the validation score's name on the epoch line ("valid" when None, e.g. "dev F1"), or (name, fn) to
        show fn(score) instead, e.g. ("valid ppl", math.exp) for a mean NLL.
    settings : None, or a dict (JSON-able) of what makes the run and must not change when it is resumed: a recipe's
        Config fields, a digest of its data (fastnn.recipes.config.run_settings).  Checkpoints record it, and
        fit(resume=True) refuses a checkpoint whose run had other settings (ValueError naming the first that
        differs), before anything is read into the model: a resumed run had taken the new learning rate with the old
        schedule state, or other data with a vocabulary of the same size, silently.  Leave out what may change on
        resume (epochs, patience, max_minutes).  A checkpoint written without settings is not checked.

    What a run needs is checked when the Trainer is made, not when first used an epoch later: the optimizer updates
    the model's own parameters; validate, loss_fn and callback can be called with their arguments; the checkpoint
    can be written (an existing, writable directory; a model with a JSON-able config()); the data makes a batch.
    """

    epoch, position, step, skipped = (_state_field(n) for n in ("epoch", "position", "step", "skipped"))
    best_score, best_epoch, best_params = (_state_field(n) for n in ("best_score", "best_epoch", "best_params"))
    bad_epochs, stopped, history = (_state_field(n) for n in ("bad_epochs", "stopped", "history"))

    def __init__(self, model, optimizer, data, *, epochs=10, validate=None, mode=None, patience=None,
                 restore_best=True, clip_norm=None, clip_value=None, checkpoint=None, checkpoint_every=None, seed=0,
                 on_nonfinite="raise", quiet=False, progress=None, loss_fn=None, callback=None, max_minutes=None,
                 average=False, average_start=0, higher_is_better=None, metric=None, settings=None):
        where = "Trainer"
        if not isinstance(model, Module):
            raise TypeError(f"{where}: 'model' must be a fastnn.graph.Module; got {type(model).__name__}.")
        if not (hasattr(data, "epoch") or callable(data)):
            hint = ""
            if isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray):
                hint = " For arrays (X, y) pass ArrayBatches(X, y, batch_size=...)."
            elif isinstance(data, (list, tuple)):   # a list of batches, as a PyTorch DataLoader gives them
                hint = " For a fixed list of batches pass data=lambda epoch, rng: batches."
            raise TypeError(f"{where}: 'data' must have an epoch(rng) method or be callable(epoch, rng); got "
                            f"{type(data).__name__}.{hint}")
        # everything a run needs is checked here, not when first used (after the first epoch, maybe an hour in)
        if hasattr(data, "__len__") and len(data) == 0:
            raise ValueError(f"{where}: 'data' must make at least one batch per epoch; got {data!r}, which makes "
                             f"none (no example, or fewer than batch_size with drop_last).")
        _check_params_of(model, optimizer, where)
        for name, f, args in (("validate", validate, "model"), ("loss_fn", loss_fn, "model, batch"),
                              ("callback", callback, "trainer, record")):
            if f is not None:           # (else a TypeError when first called: after the first epoch)
                check_callable(f, name, where, args)
        if loss_fn is None and not callable(getattr(model, "loss", None)):
            raise TypeError(f"{where}: the model must have a loss(batch) method, or pass loss_fn(model, batch); "
                            f"{type(model).__name__} has no loss.")
        if checkpoint is not None:
            checkpoint = _check_checkpoint_path(checkpoint, where)
            _check_checkpointable(model, where)
        check_scalar(epochs, "epochs", where, low=0, integer=True)
        if patience is not None:
            check_scalar(patience, "patience", where, low=0, integer=True)
            if validate is None:            # (it counted epochs without a better score that no one scored: never)
                raise ValueError(f"{where}: 'patience' needs 'validate' (it counts epochs without a better "
                                 f"validation score); got patience={patience} without validate.")
        if clip_norm is not None:
            check_scalar(clip_norm, "clip_norm", where, low=0, low_open=True)
        if clip_value is not None:
            check_scalar(clip_value, "clip_value", where, low=0, low_open=True)
        if checkpoint_every is not None:
            check_scalar(checkpoint_every, "checkpoint_every", where, low=1, integer=True)
            if checkpoint is None:
                raise ValueError(f"{where}: 'checkpoint' must be a path when checkpoint_every is set; got None.")
        if max_minutes is not None:
            check_scalar(max_minutes, "max_minutes", where, low=0)
        check_scalar(average_start, "average_start", where, low=0, integer=True)
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"{where}: 'on_nonfinite' must be 'raise' or 'skip'; got {on_nonfinite!r}.")
        if higher_is_better is not None:
            # the old spelling, whose default (lower is better) kept the worst epoch of accuracy-like scores
            warnings.warn("Trainer: higher_is_better= is deprecated; pass mode='max' or mode='min'.",
                          DeprecationWarning, stacklevel=2)
            implied = "max" if higher_is_better else "min"
            if mode is not None and mode != implied:
                raise ValueError(f"{where}: 'mode' {mode!r} contradicts higher_is_better={higher_is_better!r}; "
                                 "pass mode only.")
            mode = implied
        if validate is not None:
            if mode is None:
                raise ValueError(f"{where}: 'mode' must be given with validate: 'max' when higher scores are better "
                                 "(accuracy, F1), 'min' when lower is (loss, perplexity); got None.")
            check_mode(mode, where)
        elif mode is not None:
            check_mode(mode, where)
        self.model, self.optimizer, self.data = model, optimizer, data
        self.epochs, self.validate, self.mode = int(epochs), validate, mode
        self.patience, self.restore_best = patience, check_bool(restore_best, "restore_best", where)
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.on_nonfinite, self.quiet, self.callback = on_nonfinite, check_bool(quiet, "quiet", where), callback
        self.max_minutes = max_minutes
        self.metric = metric if isinstance(metric, tuple) else (metric or "valid", None)
        self.averager = ParamAverage(optimizer.params) if check_bool(average, "average", where) else None
        self.average_start = int(average_start)
        self.loss_fn = loss_fn or (lambda m, b: m.loss(b))
        self.rng = as_rng(seed, where, "seed")     # (None, a bool or a float was taken as numpy took it)
        self.settings = _check_settings(settings, where)
        if progress is None:
            progress = not self.quiet and sys.stderr.isatty()
        self.progress = Progress(bool(progress))
        self.state = TrainState()                     # the run's progress; all of it goes into checkpoints
        self._interrupted = self._stop_now = False

    # -- public --------------------------------------------------------------------------------------------------
    def __reduce_ex__(self, protocol):
        # pickle, copy and deepcopy come here: they failed on a lambda or on the progress stream, in the caller's
        # words only after a search (joblib, a process pool) had started
        raise TypeError("Trainer: a Trainer cannot be pickled or copied (it holds the data, callbacks and the "
                        "progress stream). To stop and go on later, give it checkpoint=PATH and call "
                        "fit(resume=True) in a new Trainer; to keep the model, fastnn.io.save_model(path, model).")

    def fit(self, *, resume=False):
        """Train until `epochs` are done or early stopping; return the history (one dict per epoch).

        resume=True first loads `checkpoint` (which must exist) and continues exactly where it stopped.
        """
        if resume:
            if self.checkpoint is None:
                raise ValueError("Trainer.fit: 'checkpoint' must be set to resume; got None.")
            self.load(self.checkpoint)
        old = self._install_sigint()
        try:
            while self.state.epoch < self.epochs and not self.state.stopped:
                self._run_epoch()
        except KeyboardInterrupt:
            if not self._interrupted or self._stop_now:     # not between two steps: the parameters may be half-way
                raise
            if self.checkpoint is not None:             # TrainingInterrupted says so; its catcher says how to resume
                self.save(self.checkpoint)
            self._final_params()
            raise TrainingInterrupted(self, self.state.history) from None
        except FloatingPointError as e:     # diverged: keep the best epoch, as on Ctrl-C (the last checkpoint stays)
            self._final_params()
            raise TrainingDiverged(self, str(e)) from None
        finally:
            self.progress.close()
            if old is not None:
                signal.signal(signal.SIGINT, old)
        if self.checkpoint is not None:               # before the swap below: fit(resume=True) with more epochs
            self.save(self.checkpoint)                # continues from the last step, as if never stopped
        self._final_params()
        return self.state.history

    def _final_params(self):
        """Put the parameters a run ends with into the model: the best epoch's, or the average, or the last."""
        final = self.state.best_params if self.restore_best else None
        if final is None and self.averager is not None and self.state.epoch > self.average_start:
            final = self.averager.mean()
        if final is not None:
            for name, p in self.model.parameters().items():
                if name in final:
                    p.value[...] = final[name]

    def state_dict(self):
        """The trainer's own state (what a checkpoint holds besides params and optimizer)."""
        data_sd = getattr(self.data, "state_dict", None)
        extra = getattr(self.model, "extra_state", None)
        return {
            **self.state.to_dict(), "rng": _rng_json(self.rng),
            "model_rngs": {k: _rng_json(g) for k, g in model_generators(self.model).items()},
            "model_extra": extra() if extra is not None else None,
            "data_state": data_sd() if data_sd is not None else None,
            "average": self.averager.state_dict() if self.averager is not None else None,
            "settings": self.settings,
        }

    def save(self, path):
        io.save_checkpoint(path, self.model, self.optimizer, self.state_dict())

    def load(self, path):
        """Restore model, optimizer and trainer state from a checkpoint written by save()."""
        where = "Trainer.load"
        st = io.load_checkpoint(path, self.model, self.optimizer,
                                check=lambda state: _same_settings(state.get("settings"), self.settings, path, where))
        gens = model_generators(self.model)
        if set(gens) != set(st["model_rngs"]):
            raise ValueError(f"{where}: the model's Generators must match the checkpoint's; got {sorted(gens)} vs "
                             f"{sorted(st['model_rngs'])}.")
        for k, g in gens.items():
            _set_rng(g, st["model_rngs"][k], where)
        _set_rng(self.rng, st["rng"], where)
        self.state = TrainState.from_dict(st)
        if st["model_extra"] is not None:
            self.model.load_extra_state(st["model_extra"])
        if st["data_state"] is not None:
            self.data.load_state_dict(st["data_state"])
        if (st.get("average") is None) != (self.averager is None):
            raise ValueError(f"{where}: the checkpoint was written with average={st.get('average') is not None}, "
                             f"so the trainer must be too; got average={self.averager is not None}.")
        if self.averager is not None:
            self.averager.load_state_dict(st["average"])
        return self

    # -- internals -----------------------------------------------------------------------------------------------
    def _say(self, msg):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._interrupted:                    # second Ctrl-C: stop now
                self._stop_now = True
                raise KeyboardInterrupt
            self._interrupted = True

        self._interrupted = self._stop_now = False
        return signal.signal(signal.SIGINT, handler)

    def _plan(self):
        if hasattr(self.data, "epoch"):
            plan = self.data.epoch(self.rng)
        else:
            plan = self.data(self.state.epoch, self.rng)
        if not (hasattr(plan, "__len__") and hasattr(plan, "__getitem__")):
            # (a generator failed in len(); a resumed run must index the epoch's batches by position)
            made = "data.epoch(rng)" if hasattr(self.data, "epoch") else "data(epoch, rng)"
            raise TypeError(f"Trainer.fit: {made} must return a sequence of batches (len() and [i]); got "
                            f"{type(plan).__name__}. Return a list (or a fastnn.train.BatchPlan).")
        return plan

    def _run_epoch(self):
        st = self.state
        if st.position == 0:
            st.rng_epoch_start = _rng_json(self.rng)
            st.loss_sum, st.loss_n, st.epoch_seconds = 0.0, 0, 0.0
            if self.averager is not None and self.average_start and st.epoch == self.average_start:
                self.averager.restart()              # no step taken since: a resumed run restarts it the same way
            plan = self._plan()
        else:                                         # resuming mid-epoch: rebuild the same plan, then go on
            now = _rng_json(self.rng)
            _set_rng(self.rng, st.rng_epoch_start, "Trainer")
            plan = self._plan()
            _set_rng(self.rng, now, "Trainer")
        n = len(plan)
        if n == 0:          # (an epoch of no step: a nan training loss, and a validation of the untrained model)
            raise ValueError(f"Trainer.fit: the data must make at least one batch per epoch; got none for epoch "
                             f"{st.epoch + 1} (no example, or fewer than batch_size with drop_last).")
        if st.position and (st.position > n or st.batches not in (0, n)):
            # other data or another batch size: continuing at batch `position` of another plan would silently skip
            # or repeat examples (past the plan's end: the rest of the epoch)
            of = f" of an epoch of {st.batches} batches" if st.batches else ""
            raise ValueError(f"Trainer.fit: the checkpoint stopped after batch {st.position}{of}, but the data now "
                             f"makes {n} batches per epoch (other data or another batch size?). Resume with the run's "
                             f"data and batch size, or train afresh without resume.")
        st.batches = n
        self.model.train()
        # the whole run's ETA counts every epoch as long as this one
        self.progress.start(f"epoch {st.epoch + 1}/{self.epochs}", n, run_total=self.epochs * n,
                            run_done=st.epoch * n + st.position)
        t0 = time.perf_counter()
        for i in range(st.position, n):
            batch = plan[i]
            loss = self._train_step(batch)
            k = _n_examples(self.data, batch)
            if loss is not None:
                st.loss_sum += loss * k
                st.loss_n += k
            st.position = i + 1
            self.progress.update(i + 1, st.loss_sum / max(st.loss_n, 1), k)
            if self._interrupted:
                st.epoch_seconds += time.perf_counter() - t0
                raise KeyboardInterrupt
            if self.checkpoint_every and st.step % self.checkpoint_every == 0 and st.position < n:
                st.epoch_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save(self.checkpoint)
        st.epoch_seconds += time.perf_counter() - t0
        self.progress.close()
        self._end_epoch()
        if self._interrupted:                         # Ctrl-C during validation: the epoch's checkpoint is written
            raise KeyboardInterrupt

    def _nonfinite(self, what):
        msg = (f"Trainer: {what} must be finite; got a non-finite value at step {self.state.step + 1} (epoch "
               f"{self.state.epoch + 1}, batch {self.state.position + 1}).")
        if self.on_nonfinite == "skip":
            self.state.skipped += 1
            self.optimizer.zero_grad()
            return None
        keep = f" The last good checkpoint is {self.checkpoint}." if self.checkpoint else ""
        raise FloatingPointError(f"{msg}{keep} {self._remedies('the inputs')}, or pass on_nonfinite='skip'.")

    def _remedies(self, check):
        """What to try after a divergence, `check` naming what to look at."""
        # (options written as a Config writes them, name=value, so that the CLI shows its own: --clip-norm 5)
        clip = f"lower clip_norm={self.clip_norm}" if self.clip_norm is not None else "clip gradients (clip_norm=5)"
        return f"Lower the learning rate, {clip}, check {check}"

    def _shown(self, score):
        """The score as the epoch line shows it (metric's fn, e.g. perplexity_from_nll of a mean NLL); an overflow
        (math.exp of a diverged model's NLL) is inf."""
        show = self.metric[1]
        if show is None:
            return score
        try:
            return float(show(score))
        except OverflowError:
            return math.inf

    def _nonfinite_score(self, score, shown):
        """A validation score that is not finite, or whose shown value is not (a mean NLL of 3.9e30 is finite, its
        perplexity inf): a diverged model (or empty validation data).  on_nonfinite="raise": a FloatingPointError,
        which fit turns into TrainingDiverged (the best epoch kept), as for a non-finite loss; "skip": a warning, and
        the epoch is never the best (had it been, the run would end with that model, reported as 'valid ppl inf')."""
        name = self.metric[0]
        got = f"{score}" if self.metric[1] is None else f"{name} {shown} ('validate' returned {score:.4g})"
        if self.on_nonfinite == "skip":
            warnings.warn(f"Trainer: 'validate' gave {got} after epoch {self.state.epoch + 1}; a non-finite score "
                          f"never counts as an improvement, so this epoch is not kept as the best (a diverged model, "
                          f"or empty validation data?).", RuntimeWarning, stacklevel=5)
            return
        raise FloatingPointError(f"Trainer: the validation score must be finite; got {got} after epoch "
                                 f"{self.state.epoch + 1}: the model diverged (or the validation data is empty). "
                                 f"{self._remedies('the validation data')}, or pass on_nonfinite='skip' (the epoch "
                                 f"is then not kept as the best).")

    def _train_step(self, batch):
        # numpy's overflow / invalid-value warnings (several lines each) would only come before the check of the loss
        # and gradients below, which names the step and the parameter
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._checked_step(batch)

    def _checked_step(self, batch):
        opt = self.optimizer
        opt.zero_grad()
        loss = self.loss_fn(self.model, batch)
        if not (isinstance(loss, Node) and np.size(loss.value) == 1):     # (backward needs the scalar Node)
            raise TypeError(f"Trainer: the loss (loss_fn(model, batch), default model.loss(batch)) must be a scalar "
                            f"Node; got {type(loss).__name__} {short_repr(getattr(loss, 'value', loss))}.")
        value = float(loss.value)
        if not math.isfinite(value):
            return self._nonfinite(f"the loss ({value})")
        loss.backward()
        if self.clip_norm is not None:
            norm = clip_grad_norm(opt.params, self.clip_norm)
        else:
            norm = math.sqrt(sum(grad_sq_norms(opt.params).values()))
        if not math.isfinite(norm):
            sq = grad_sq_norms(opt.params)
            bad = next((n for n, v in sq.items() if not math.isfinite(v)), "?")
            return self._nonfinite(f"the gradient of '{bad}'")
        if self.clip_value is not None:
            clip_grad_value(opt.params, self.clip_value)
        if self.averager is not None:
            self.averager.before_step()
        opt.step()
        if self.averager is not None:
            self.averager.after_step()
        self.state.step += 1
        return value

    def _end_epoch(self):
        st = self.state
        score = shown = None
        improved = False
        if self.validate is not None:
            averaging = self.averager is not None and st.epoch >= self.average_start
            mean = self.averager.mean() if averaging else None     # scored, and kept if best
            self.model.eval()
            try:
                with self.averager.applied(mean) if mean is not None else contextlib.nullcontext():
                    score = self.validate(self.model)
                if isinstance(score, np.ndarray) and score.ndim == 0 and score.dtype.kind in "iuf":
                    score = score.item()        # a 0-d array, e.g. a loss Node's value
                if isinstance(score, bool) or not isinstance(score, numbers.Real):
                    raise TypeError(f"Trainer: 'validate' must return a number (the score); got "
                                    f"{type(score).__name__} {short_repr(score)} after epoch {st.epoch + 1}.")
                score = float(score)
            finally:
                self.model.train()
            shown = self._shown(score)
            usable = math.isfinite(score) and math.isfinite(shown)
            if not usable:
                self._nonfinite_score(score, shown)
            improved = usable and improves(score, st.best_score, self.mode)
            if improved:
                st.best_score, st.best_epoch, st.bad_epochs = score, st.epoch + 1, 0
                if self.restore_best:
                    st.best_params = (mean if mean is not None else
                                      {n: p.value.copy() for n, p in self.model.parameters().items()})
            else:
                st.bad_epochs += 1
            self.optimizer.observe(score if usable else math.nan, mode=self.mode)
        train_loss = st.loss_sum / st.loss_n if st.loss_n else float("nan")
        rec = {"epoch": st.epoch + 1, "train_loss": train_loss, "valid": score, "best": improved,
               "lr": float(self.optimizer.lr), "step": st.step, "skipped": st.skipped,
               "seconds": st.epoch_seconds}
        st.history.append(rec)
        st.epoch += 1
        st.position = 0
        if self.patience is not None and st.bad_epochs > self.patience:
            st.stopped = True
        if self.callback is not None and self.callback(self, rec):
            st.stopped = True
        if self.max_minutes is not None:
            secs = [h["seconds"] for h in st.history]
            if (sum(secs) + max(secs)) / 60 > self.max_minutes:
                st.stopped = True
        name, show = self.metric
        text = "" if score is None else (f"{score:.4f}" if show is None else f"{shown:.2f}")
        valid = "" if score is None else f"  {name} {text}{' *' if improved else ''}"
        self._say(f"epoch {rec['epoch']}/{self.epochs}  train {train_loss:.4f}{valid}  lr {rec['lr']:.4g}  "
                  f"{rec['seconds']:.1f}s" + ("  (early stop)" if st.stopped and st.epoch < self.epochs else ""))
        if self.checkpoint is not None:
            self.save(self.checkpoint)


# ---- the overfitting check ---------------------------------------------------------------------------------------

class OverfitResult:
    """reached: the loss fell below threshold; initial_loss, final_loss, steps taken."""

    def __init__(self, reached, initial_loss, final_loss, steps, threshold):
        self.reached, self.initial_loss, self.final_loss = reached, initial_loss, final_loss
        self.steps, self.threshold = steps, threshold

    def __bool__(self):
        return bool(self.reached)

    def __repr__(self):
        verdict = "reaches" if self.reached else "does NOT reach"
        return (f"OverfitResult({verdict} loss < {self.threshold:g}: {self.initial_loss:.4g} -> {self.final_loss:.4g} "
                f"in {self.steps} steps)")


def overfit(model, batch, *, optimizer=None, steps=1000, threshold=0.01, loss_fn=None, restore=True):
    """Check that the model is powerful enough to overfit: train on one tiny batch until loss < threshold.

    optimizer : defaults to SGD(lr=0.1, momentum=0.9) over the model's parameters.  restore : put the original parameters
    back afterwards (the model is only being diagnosed).  Returns an OverfitResult (truthy when reached).
    """
    from fastnn.optim import SGD

    check_scalar(steps, "steps", "overfit", low=1, integer=True)
    check_scalar(threshold, "threshold", "overfit")
    if optimizer is not None:
        _check_params_of(model, optimizer, "overfit")
    loss_fn = loss_fn or (lambda m, b: m.loss(b))
    params = model.parameters()
    saved = {n: p.value.copy() for n, p in params.items()} if restore else None
    opt = optimizer if optimizer is not None else SGD(params, lr=0.1, momentum=0.9)
    model.train()
    first = value = None
    try:
        for n in range(steps + 1):                   # n = steps taken so far
            opt.zero_grad()
            loss = loss_fn(model, batch)
            value = float(loss.value)
            first = value if first is None else first
            if value < threshold or not math.isfinite(value) or n == steps:
                break
            loss.backward()
            opt.step()
    finally:
        if saved is not None:
            for name, p in params.items():
                p.value[...] = saved[name]
                p.grad = None
    return OverfitResult(value < threshold, first, value, n, threshold)


__all__ = ["Trainer", "TrainingInterrupted", "TrainingDiverged", "Interrupted", "TrainState", "ArrayBatches",
           "Progress", "overfit", "OverfitResult", "model_generators"]
