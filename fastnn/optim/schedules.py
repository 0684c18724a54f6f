"""Hyper-parameter schedules: `step -> value` objects with state_dict() / load_state_dict().

`step` is the optimizer's count of completed updates (0 before the first).  A learning rate or a momentum given as a
plain number becomes `Constant(x)`.  `HalveOnPlateau` wraps another schedule and multiplies it by a factor each time
the validation objective stops improving; the Trainer calls `observe(score, mode=...)` after validating, and both
judge a score with `improves` (mode "max": higher is better, "min": lower is better; never guessed).

>>> from fastnn import optim
>>> lr = optim.InverseTime(0.1, tau=1000)     # 0.1 for 1000 steps, then 0.1 * 1000 / t
>>> lr(0), lr(4000)
(0.1, 0.025)
"""
import math
import numbers

from fastnn._validation import check_scalar

MODES = ("max", "min")


def check_mode(mode, where):
    """mode, or a ValueError saying which direction a validation score must be told."""
    if mode not in MODES:
        raise ValueError(f"{where}: 'mode' must be 'max' (higher scores are better: accuracy, F1) or 'min' (lower is "
                         f"better: loss, perplexity); got {mode!r}.")
    return mode


def improves(score, best, mode, threshold=0.0):
    """True when `score` beats `best` (None: nothing yet) in the direction `mode` by more than `threshold` times
    |best|.  A non-finite score never improves.

    >>> improves(0.9, 0.8, "max"), improves(0.9, 0.8, "min"), improves(1.0, None, "min")
    (True, False, True)
    """
    if not math.isfinite(score):
        return False
    if best is None:
        return True
    margin = threshold * abs(best)
    return score > best + margin if mode == "max" else score < best - margin


class Schedule:
    """Base class: `__call__(step) -> float`; `state_dict()` holds the type and any mutable state (not the
    constructor's settings, which come from the code that builds the schedule again on resume)."""

    def __call__(self, step):
        raise NotImplementedError

    def state_dict(self):
        return {"type": type(self).__name__}

    def load_state_dict(self, state):
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{where}: the state must be of a {type(self).__name__}; got {got!r}. "
                             "Build the same schedule as the run that wrote the checkpoint.")
        self._load(state)

    def _load(self, state):
        pass

    def observe(self, score, *, mode):
        """Called with each validation score (mode "max" or "min"); only plateau schedules react."""

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """value for every step."""

    def __init__(self, value):
        self.value = float(check_scalar(value, "value", "Constant", low=0))

    def __call__(self, step):
        return self.value


class InverseTime(Schedule):
    """O(1/t) decay: value * tau / max(step, tau) (constant for the first tau steps, then 1/t)."""

    def __init__(self, value, tau):
        self.value = float(check_scalar(value, "value", "InverseTime", low=0))
        self.tau = float(check_scalar(tau, "tau", "InverseTime", low=0, low_open=True))

    def __call__(self, step):
        return self.value * self.tau / max(step, self.tau)


class InverseDecay(Schedule):
    """Bengio et al. (2003)'s learning rate eps_t = value / (1 + rate * t), t = number of updates done."""

    def __init__(self, value, rate):
        self.value = float(check_scalar(value, "value", "InverseDecay", low=0))
        self.rate = float(check_scalar(rate, "rate", "InverseDecay", low=0))

    def __call__(self, step):
        return self.value / (1.0 + self.rate * step)


class Linear(Schedule):
    """Linear ramp from start to end over `steps` steps, then end (e.g. momentum 0.5 -> 0.99 over the first epochs:
    steps = n_epochs * batches_per_epoch)."""

    def __init__(self, start, end, steps):
        self.start = float(check_scalar(start, "start", "Linear", low=0))
        self.end = float(check_scalar(end, "end", "Linear", low=0))
        self.steps = int(check_scalar(steps, "steps", "Linear", low=1, integer=True))

    def __call__(self, step):
        frac = min(step, self.steps) / self.steps
        return self.start + (self.end - self.start) * frac


class HalveOnPlateau(Schedule):
    """base(step) * scale, where scale is multiplied by `factor` (default one half) whenever the validation score has
    not improved for more than `patience` observations.

    An improvement means better than the best so far by more than `threshold` (relative).  `min_scale` bounds how
    small the scale may get.  `n_reductions` counts the halvings (a caller may stop training after a few).
    """

    def __init__(self, base, *, factor=0.5, patience=0, threshold=0.0, min_scale=0.0):
        where = "HalveOnPlateau"
        self.base = as_schedule(base, "base", where)
        self.factor = float(check_scalar(factor, "factor", where, low=0, high=1, low_open=True))
        self.patience = int(check_scalar(patience, "patience", where, low=0, integer=True))
        self.threshold = float(check_scalar(threshold, "threshold", where, low=0))
        # (a min_scale above 1 raised the rate on a plateau: max(scale * factor, min_scale))
        self.min_scale = float(check_scalar(min_scale, "min_scale", where, low=0, high=1))
        self._scale, self._best, self._bad, self._n = 1.0, None, 0, 0

    @property
    def scale(self):
        return self._scale

    @property
    def n_reductions(self):
        return self._n

    def __call__(self, step):
        return self.base(step) * self._scale

    def observe(self, score, *, mode):
        if isinstance(score, bool) or not isinstance(score, numbers.Real):    # (float() failed on None, unnamed)
            raise TypeError(f"HalveOnPlateau.observe: 'score' must be a number; got {score!r}.")
        score = float(score)
        # the state keeps "larger is better" (checkpoints written before `mode` existed read the same)
        s = score if check_mode(mode, "HalveOnPlateau.observe") == "max" else -score
        if improves(s, self._best, "max", self.threshold):
            self._best, self._bad = s, 0
            return
        self._bad += 1
        if self._bad > self.patience:
            self._scale = max(self._scale * self.factor, self.min_scale)
            self._bad = 0
            self._n += 1

    def state_dict(self):
        return {"type": type(self).__name__, "scale": self._scale, "best": self._best, "bad": self._bad,
                "n_reductions": self._n, "base": self.base.state_dict()}

    def _load(self, state):
        self._scale = float(state["scale"])
        self._best = None if state["best"] is None else float(state["best"])
        self._bad = int(state["bad"])
        self._n = int(state["n_reductions"])
        self.base.load_state_dict(state["base"])

    def __repr__(self):
        return (f"HalveOnPlateau({self.base!r}, factor={self.factor}, patience={self.patience}, "
                f"threshold={self.threshold}, scale={self._scale})")


def as_schedule(x, name="lr", where="optimizer"):
    """A Schedule, or a non-negative number made Constant."""
    if isinstance(x, Schedule):
        return x
    msg = f"{where}: '{name}' must be a non-negative finite number or a fastnn.optim Schedule; got {x!r}."
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(msg)
    if not math.isfinite(x) or x < 0:
        raise ValueError(msg)
    return Constant(float(x))
