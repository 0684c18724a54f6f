"""Batch methods through scipy.optimize: L-BFGS-B and nonlinear CG on the flattened parameters.

`minimize(model, data, method="L-BFGS-B")` flattens every trainable parameter into one float64 vector, gives scipy
the exact objective (the model's mean loss on `data`, plus weight_decay/2 * ||w||^2 over Param.decay params) and
its gradient from the graph, and writes the best point found back into the parameters (in their own dtype).
Value and gradient are cast to float64 on every call: L-BFGS-B's Fortran core is float64-only (scipy#18825).
The run records objective against wall time and number of evaluations (`result.history`).

`minimize_minibatch` is the large-batch variant of Le et al. (2011): a few L-BFGS iterations on each of a sequence
of large mini-batches, starting a fresh curvature memory on each batch.
"""
import time
import warnings

import numpy as np
import scipy.optimize

from fastnn._validation import check_callable, check_scalar
from fastnn.graph import RowGrad
from fastnn.init import as_rng
from fastnn.optim.base import named_params

METHODS = ("L-BFGS-B", "CG")


def ravel_params(params):
    """One float64 vector of the trainable parameters' values, in `named_params` order."""
    ps = named_params(params, "ravel_params")
    return np.concatenate([p.value.reshape(-1).astype(np.float64) for p in ps.values()])


def unravel_params(x, params):
    """Write the vector x back into the parameters, in place, cast to each parameter's dtype."""
    ps = named_params(params, "unravel_params", writes=True)
    n = sum(p.value.size for p in ps.values())
    x = np.asarray(x)
    if x.shape != (n,):
        raise ValueError(f"unravel_params: 'x' must have shape ({n},) (the parameters' total size); got {x.shape}.")
    i = 0
    for p in ps.values():
        k = p.value.size
        p.value[...] = x[i:i + k].reshape(p.value.shape)
        i += k


def ravel_grads(params, out=None):
    """The gradients as one float64 vector (zeros where a parameter has none; RowGrad rows placed in their rows)."""
    ps = named_params(params, "ravel_grads")
    n = sum(p.value.size for p in ps.values())
    out = np.zeros(n) if out is None else out
    i = 0
    for p in ps.values():
        k = p.value.size
        seg = out[i:i + k]
        g = p.grad
        if g is None:
            seg[:] = 0.0
        elif isinstance(g, RowGrad):
            seg[:] = 0.0
            seg.reshape(p.value.shape)[g.rows] = g.values
        else:
            seg[:] = g.reshape(-1)
        i += k
    return out


def _decay_mask(ps):
    return np.concatenate([np.full(p.value.size, 1.0 if p.decay else 0.0) for p in ps.values()])


class MinimizeResult:
    """What a batch run did.

    success, message : from scipy (or the stop reason);  fun : best objective found (it is in the params);
    nit : iterations;  nfev : objective evaluations;  seconds : wall time (excluding callbacks);
    history : {"seconds": [...], "fun": [...], "nfev": [...]} one entry per evaluation.
    """

    def __init__(self, method):
        self.method = method
        self.success, self.message, self.fun, self.nit, self.nfev, self.seconds = False, "", np.inf, 0, 0, 0.0
        self.history = {"seconds": [], "fun": [], "nfev": []}

    def __repr__(self):
        return (f"MinimizeResult(method={self.method!r}, success={self.success}, fun={self.fun:.6g}, nit={self.nit}, "
                f"nfev={self.nfev}, seconds={self.seconds:.3f}, message={self.message!r})")


class _Stop(Exception):
    pass


class _Objective:
    """f(x), grad f(x) in float64 from the graph, recording history and the best point."""

    def __init__(self, model, ps, data, loss_fn, weight_decay, result, t0, max_seconds, max_evals):
        self.model, self.ps, self.data, self.loss_fn = model, ps, data, loss_fn
        self.wd = float(weight_decay)
        self.mask = _decay_mask(ps) if self.wd else None
        self.result, self.t0 = result, t0
        self.max_seconds, self.max_evals = max_seconds, max_evals
        self.best_x, self.best_f = None, np.inf
        self.nfev0 = result.nfev
        self.g = None

    def elapsed(self):
        return time.perf_counter() - self.t0

    def __call__(self, x):
        if self.max_seconds is not None and self.elapsed() >= self.max_seconds:
            raise _Stop(f"stopped after max_seconds={self.max_seconds}")
        if self.max_evals is not None and self.result.nfev - self.nfev0 >= self.max_evals:
            raise _Stop(f"stopped after max_evals={self.max_evals}")
        unravel_params(x, self.ps)
        for p in self.ps.values():
            p.grad = None
        loss = self.loss_fn(self.model, self.data)
        loss.backward()
        f = float(loss.value)
        self.g = ravel_grads(self.ps, self.g)
        g = self.g.copy()
        if self.wd:
            wx = self.mask * x
            f += 0.5 * self.wd * float(np.dot(wx, x))
            g += self.wd * wx
        r = self.result
        r.nfev += 1
        r.history["seconds"].append(self.elapsed())
        r.history["fun"].append(f)
        r.history["nfev"].append(r.nfev)
        if f < self.best_f:
            self.best_f, self.best_x = f, x.copy()
        return f, g


def _default_loss(model, data):
    return model.loss(data)


def minimize(model, data, method="L-BFGS-B", *, maxiter=100, tol=None, weight_decay=0.0, loss_fn=None,
             max_seconds=None, max_evals=None, options=None, _result=None, _t0=None):
    """Minimize the model's loss on `data` (the whole batch) with scipy.optimize.

    Parameters
    ----------
    model : a Module; its trainable parameters are optimized in place.
    data : whatever `loss_fn(model, data)` takes (default `model.loss(data)`), e.g. (X, y).
    method : "L-BFGS-B" or "CG".
    maxiter : scipy's iteration limit; tol : scipy's tolerance; options : extra scipy options.
    weight_decay : adds weight_decay/2 * ||w||^2 over Param.decay params (the same objective SGD's weight_decay
        optimizes).
    max_seconds, max_evals : stop (keeping the best point so far) after this much wall time / evaluations.

    Returns a MinimizeResult.  Warns (RuntimeWarning with scipy's message) when scipy reports failure.
    """
    where = "minimize"
    if method not in METHODS:
        raise ValueError(f"{where}: 'method' must be one of {METHODS}; got {method!r}.")
    check_scalar(maxiter, "maxiter", where, low=1, integer=True)
    check_scalar(weight_decay, "weight_decay", where, low=0)
    if max_seconds is not None:
        check_scalar(max_seconds, "max_seconds", where, low=0)
    if tol is not None:                 # (-1 was scipy's "ERROR: FACTR < 0" with nothing done; "1e-5" a ufunc error)
        check_scalar(tol, "tol", where, low=0)
    if options is not None and not isinstance(options, dict):      # (a list was "'list' object is not a mapping")
        raise TypeError(f"{where}: 'options' must be a dict of scipy.optimize.minimize options, e.g. "
                        f"{{'maxcor': 20}}; got {type(options).__name__}.")
    if max_evals is not None:           # (max_evals=0 returned the untouched model with fun=inf as a success)
        check_scalar(max_evals, "max_evals", where, low=1, integer=True)
    if loss_fn is not None:             # (else a TypeError from inside scipy's first evaluation)
        check_callable(loss_fn, "loss_fn", where, "model, data")
    ps = named_params(model, where, writes=True)
    result = _result if _result is not None else MinimizeResult(method)
    t0 = _t0 if _t0 is not None else time.perf_counter()
    obj = _Objective(model, ps, data, loss_fn or _default_loss, weight_decay, result, t0, max_seconds, max_evals)
    x0 = ravel_params(ps)
    opts = {"maxiter": int(maxiter), **(options or {})}
    stopped = None
    try:
        res = scipy.optimize.minimize(obj, x0, jac=True, method=method, tol=tol, options=opts)
    except _Stop as e:
        stopped, res = str(e), None
    finally:
        if obj.best_x is not None:
            unravel_params(obj.best_x, ps)      # the best point seen (line-search trials included)
        for p in ps.values():
            p.grad = None
    result.fun = obj.best_f                     # (mini-batch runs: the last batch's)
    result.seconds = obj.elapsed()
    if res is None:
        result.success, result.message = True, stopped
    else:
        result.nit += int(res.get("nit", 0))
        result.success, result.message = bool(res.success), str(res.message)
        if not res.success and _result is None:
            warnings.warn(f"minimize({method}): scipy did not report success: {res.message}", RuntimeWarning,
                          stacklevel=2)
    return result


def minimize_minibatch(model, data, method="L-BFGS-B", *, epochs=1, maxiter=10, seed=0, weight_decay=0.0,
                       loss_fn=None, max_seconds=None, callback=None):
    """Large-batch L-BFGS (Le et al. 2011): `maxiter` iterations on each large mini-batch in turn.

    data : a batch source with `epoch(rng) -> sequence of batches` (e.g. fastnn.train.ArrayBatches with a large
        batch_size); seed : int or np.random.Generator for the batch order.
    callback(result) : called after each batch; return True to stop.  Time spent in it is not counted.
    Returns a MinimizeResult whose history spans all batches.
    """
    where = "minimize_minibatch"
    if not callable(getattr(data, "epoch", None)):   # (was "'tuple' object has no attribute 'epoch'", unnamed)
        hint = (" For arrays (X, y) pass ArrayBatches(X, y, batch_size=...) (fastnn.train), or minimize(model, (X, y)) "
                "for the full batch." if isinstance(data, (tuple, list)) else "")
        raise TypeError(f"{where}: 'data' must be a batch source with an epoch(rng) method; got "
                        f"{type(data).__name__}.{hint}")
    check_scalar(epochs, "epochs", where, low=1, integer=True)
    if callback is not None:
        check_callable(callback, "callback", where, "result")
    rng = as_rng(seed, where, "seed")                   # (None drew an order no one could repeat)
    result = MinimizeResult(f"{method} (mini-batch)")
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in data.epoch(rng):
            left = None if max_seconds is None else max_seconds - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                result.message = f"stopped after max_seconds={max_seconds}"
                return result
            minimize(model, batch, method, maxiter=maxiter, weight_decay=weight_decay, loss_fn=loss_fn,
                     max_seconds=max_seconds, _result=result, _t0=t0)
            if callback is not None:
                tc = time.perf_counter()
                stop = callback(result)
                t0 += time.perf_counter() - tc         # callbacks are not charged to the optimizer
                if stop:
                    result.message = "stopped by callback"
                    return result
    result.seconds = time.perf_counter() - t0
    result.success = True
    result.message = f"{epochs} epoch(s) of mini-batch {method}"
    return result
