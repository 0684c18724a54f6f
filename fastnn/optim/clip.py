"""Gradient clipping, in place on Param.grad (dense or RowGrad values; sparse gradients stay sparse).

- clip_grad_norm: rescale all gradients together so that their global L2 norm is at most max_norm (Pascanu,
  Mikolov and Bengio 2013, Algorithm 1).  torch's convention: the scale is min(1, max_norm / (norm + 1e-6)) and the
  PRE-clip norm is returned (optax's clip_by_global_norm has no 1e-6).
- clip_grad_value: clip every element to [-clip, clip] (Mikolov's RNNLM trick).
"""
import math

import numpy as np

from fastnn._validation import check_bool, check_scalar
from fastnn.graph import Module, Param, RowGrad

CLIP_EPS = 1e-6


def _grads(params, where):
    """[(name, Param)] of the params that have a gradient (dict keys name them; else Param.name)."""
    if isinstance(params, Module):
        params = params.parameters()
    if isinstance(params, Param):
        params = [params]
    items = params.items() if isinstance(params, dict) else ((getattr(p, "name", "?"), p) for p in params)
    out, first = [], {}
    for name, p in items:
        if not isinstance(p, Param):
            raise TypeError(f"{where}: 'params' must hold fastnn.graph.Param objects; got {type(p).__name__}.")
        if id(p) in first:                  # (its gradient counted twice in the norm, and scaled twice)
            raise ValueError(f"{where}: every Param must be listed once; {first[id(p)]!r} and {name!r} are the same "
                             f"Param. Pass model.parameters() (it lists tied weights once).")
        first[id(p)] = name
        if p.grad is not None:
            out.append((name, p))
    return out


def _array(g):
    return g.values if isinstance(g, RowGrad) else g


def grad_sq_norms(params):
    """{name: squared L2 norm of the gradient} as Python floats; NaN/inf in a gradient give NaN/inf.

    The dot product runs in the gradient's dtype (BLAS, fast); a float32 overflow is re-checked in float64.
    """
    out = {}
    with np.errstate(over="ignore"):              # a float32 overflow is re-checked in float64 below
        for name, p in _grads(params, "grad_sq_norms"):
            if hasattr(p.grad, "sq_norm"):      # a gradient that knows its norm without being built (OutRowGrad)
                out[name] = float(p.grad.sq_norm())
                continue
            a = _array(p.grad).reshape(-1)
            v = float(np.dot(a, a))
            if not math.isfinite(v) and a.dtype != np.float64:
                a64 = a.astype(np.float64)
                v = float(np.dot(a64, a64))
            out[name] = v
    return out


def global_grad_norm(params):
    """sqrt of the sum of squared gradient entries over all params (float64)."""
    return float(np.sqrt(sum(grad_sq_norms(params).values())))


def clip_grad_norm(params, max_norm, *, error_if_nonfinite=False):
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)); return the pre-clip global norm.

    params : dict of Params, a Module, or an iterable of Params (those without a gradient are skipped).
    error_if_nonfinite : raise FloatingPointError (naming the first non-finite parameter) instead of scaling by NaN.
    """
    where = "clip_grad_norm"
    check_scalar(max_norm, "max_norm", where, low=0, low_open=True)
    check_bool(error_if_nonfinite, "error_if_nonfinite", where)
    ps = _grads(params, where)
    sq = grad_sq_norms(dict(ps))
    norm = float(np.sqrt(sum(sq.values())))
    if error_if_nonfinite and not np.isfinite(norm):
        bad = next((n for n, v in sq.items() if not np.isfinite(v)), "?")
        raise FloatingPointError(f"{where}: the gradient norm must be finite; got {norm} (first non-finite: "
                                 f"'{bad}'). Lower the learning rate or check the inputs.")
    coef = min(1.0, max_norm / (norm + CLIP_EPS))
    if coef < 1.0 or not np.isfinite(coef):
        for _, p in ps:
            if isinstance(p.grad, RowGrad):
                p.grad.scale_(p.value.dtype.type(coef))          # values *= coef (kept as a factor if not built)
            else:
                a = p.grad
                a *= a.dtype.type(coef)
    return norm


def clip_grad_value(params, clip):
    """Clip each gradient entry to [-clip, clip] in place."""
    where = "clip_grad_value"
    check_scalar(clip, "clip", where, low=0, low_open=True)
    for _, p in _grads(params, where):
        a = _array(p.grad)
        np.clip(a, -clip, clip, out=a)
