"""Optimizers (SGD, momentum, AdaGrad; dense and lazy-sparse), iterate averaging, schedules, clipping,
regularization, and batch methods (L-BFGS-B, CG) through scipy.optimize.

>>> import numpy as np
>>> from fastnn import nn, optim
>>> rng = np.random.default_rng(0)
>>> model = nn.Linear(3, 2, rng=rng)
>>> x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.integers(0, 2, 8)
>>> opt = optim.AdaGrad(model.parameters(), lr=0.1, weight_decay=1e-4)
>>> model.zero_grad(); nn.softmax_cross_entropy(model(x), y).backward()
>>> norm = optim.clip_grad_norm(model.parameters(), 5.0)      # pre-clip norm (torch's convention)
>>> opt.step()
"""
from fastnn.optim.adagrad import AdaGrad
from fastnn.optim.average import ParamAverage
from fastnn.optim.base import Optimizer
from fastnn.optim.clip import clip_grad_norm, clip_grad_value, global_grad_norm, grad_sq_norms
from fastnn.optim.lbfgs import MinimizeResult, minimize, minimize_minibatch, ravel_grads, ravel_params, unravel_params
from fastnn.optim.regularize import sparsity_penalty, weight_penalty
from fastnn.optim.schedules import (Constant, HalveOnPlateau, InverseDecay, InverseTime, Linear, Schedule, as_schedule,
                                    improves)
from fastnn.optim.sgd import SGD

# the choice every training command offers as --optimizer
BY_NAME = {"adagrad": AdaGrad, "sgd": SGD}


def by_name(name, params, lr, where="optimizer", **kwargs):
    """BY_NAME[name](params, lr, **kwargs); ValueError naming `where` for an unknown name."""
    if name not in BY_NAME:
        raise ValueError(f"{where}: 'optimizer' must be one of {', '.join(BY_NAME)}; got {name!r}.")
    return BY_NAME[name](params, lr, **kwargs)

__all__ = ["Optimizer", "SGD", "AdaGrad", "ParamAverage", "BY_NAME", "by_name",
           "Schedule", "Constant", "InverseTime", "InverseDecay", "Linear", "HalveOnPlateau",
           "as_schedule", "improves",
           "clip_grad_norm", "clip_grad_value", "global_grad_norm", "grad_sq_norms", "minimize",
           "minimize_minibatch", "MinimizeResult", "ravel_params", "unravel_params", "ravel_grads",
           "sparsity_penalty", "weight_penalty"]
