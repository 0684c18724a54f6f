"""Regularization terms that are not part of an optimizer's update.

- `sparsity_penalty(h, ...)`: a graph node penalising the MEAN activation of each hidden unit over the batch
  (the sparse-autoencoder penalty): add it to the loss before backward.
- `weight_penalty(params, weight_decay, l1)`: the value of the decay terms the optimizers apply, for reporting the
  full objective (objective = loss + weight_decay/2 * ||w||^2 + l1 * |w|_1 over Param.decay params).

Weight decay itself lives in the optimizers (`weight_decay=`, `l1=`) and dropout in the graph (fastnn.nn.Dropout).
"""
import numpy as np

from fastnn._validation import check_scalar
from fastnn.graph import Node
from fastnn.optim.base import named_params


def sparsity_penalty(h, *, target=0.05, weight=1.0, kind="kl"):
    """weight * sum_j penalty(rho_j), rho_j = mean over the batch of unit j's activation h[..., j].

    kind="kl": KL(target || rho_j) = t log(t / rho) + (1 - t) log((1 - t) / (1 - rho)); for activations in (0, 1)
    (sigmoid units); rho is clipped to [1e-6, 1 - 1e-6].
    kind="l1": |rho_j| (any activation; `target` is ignored).

    h : a Node of shape (..., H).  Returns a scalar Node whose backward adds into h.grad.
    """
    where = "sparsity_penalty"
    if not isinstance(h, Node):
        raise TypeError(f"{where}: 'h' must be a fastnn.graph.Node; got {type(h).__name__}.")
    check_scalar(weight, "weight", where, low=0)
    H = h.value.shape[-1]
    X = h.value.reshape(-1, H)
    n = X.shape[0]
    if n == 0:                          # (the mean over no row: a nan penalty and NumPy's "Mean of empty slice")
        raise ValueError(f"{where}: 'h' must hold at least one row of activations; got shape {h.value.shape}.")
    rho = X.mean(axis=0, dtype=np.float64)
    if kind == "kl":
        check_scalar(target, "target", where, low=0, high=1, low_open=True)
        if target >= 1:
            raise ValueError(f"{where}: 'target' must be < 1 for kind='kl'; got {target}.")
        r = np.clip(rho, 1e-6, 1 - 1e-6)
        val = np.sum(target * np.log(target / r) + (1 - target) * np.log((1 - target) / (1 - r)))
        drho = -target / r + (1 - target) / (1 - r)
    elif kind == "l1":
        val = np.sum(np.abs(rho))
        drho = np.sign(rho)
    else:
        raise ValueError(f"{where}: 'kind' must be 'kl' or 'l1'; got {kind!r}.")

    def backward_fn(g):
        d = (float(g) * weight / n) * drho
        h.add_grad(np.broadcast_to(d.astype(h.value.dtype), h.value.shape))

    return Node(np.asarray(weight * val, dtype=h.value.dtype), (h,), backward_fn, op="sparsity_penalty")


def weight_penalty(params, weight_decay=0.0, l1=0.0):
    """weight_decay / 2 * sum ||w||^2 + l1 * sum |w| over trainable Param.decay params (a float).  weight_decay and
    l1 are >= 0, as the optimizers take them (a negative one gave an objective unbounded below, silently)."""
    weight_decay = float(check_scalar(weight_decay, "weight_decay", "weight_penalty", low=0))
    l1 = float(check_scalar(l1, "l1", "weight_penalty", low=0))
    total = 0.0
    for p in named_params(params, "weight_penalty").values():
        if not p.decay:
            continue
        w = p.value.reshape(-1)
        if weight_decay:
            total += 0.5 * weight_decay * float(np.dot(w, w))
        if l1:
            total += l1 * float(np.abs(w).sum())
    return total
