"""Stochastic gradient descent, with optional momentum (torch's convention)."""
import numpy as np

from fastnn import kernels
from fastnn._validation import check_bool
from fastnn.optim.base import Optimizer, l1_rows
from fastnn.optim.schedules import Constant, as_schedule


class SGD(Optimizer):
    """SGD with momentum, weight decay and L1.

    With g' = g + weight_decay * w + l1 * sign(w) (decay terms only for Param.decay params):

    - momentum 0: w -= lr * g'
    - momentum mu (torch's convention, not Sutskever's): v = mu * v + g'; w -= lr * v  (v starts at 0);
      nesterov: w -= lr * (g' + mu * v).

    Parameters
    ----------
    params : dict name -> Param (model.parameters()) or a Module.
    lr, momentum : numbers or Schedules of the step count (e.g. momentum=Linear(0.5, 0.99, steps)).
    nesterov : Nesterov's variant (needs momentum).
    weight_decay, l1 : L2 / L1 coefficients (see fastnn.optim.base).

    Sparse (RowGrad) gradients update only their rows.  With momentum the velocity rows are updated lazily: a row's
    velocity decays only in steps that touch it (the usual "lazy momentum" for embeddings; exact for dense params).
    """

    def __init__(self, params, lr, *, momentum=0.0, nesterov=False, weight_decay=0.0, l1=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay, l1=l1)
        mom = as_schedule(momentum, "momentum", "SGD")
        self.nesterov = check_bool(nesterov, "nesterov", "SGD")      # (bool("no") was True)
        uses_momentum = not (isinstance(mom, Constant) and mom.value == 0.0)
        if self.nesterov and not uses_momentum:
            raise ValueError("SGD: 'momentum' must be > 0 with nesterov=True; got 0.")
        if uses_momentum:
            self._hyper["momentum"] = mom
            self.state = {n: {"v": v} for n, v in self._slot().items()}

    def _repr_extra(self):
        return "nesterov=True" if self.nesterov else ""

    @property
    def momentum(self):
        s = self._hyper.get("momentum")
        return 0.0 if s is None else s(self.step_count)

    def _dense(self, name, p, g, l2, l1, lr, momentum=None):
        if momentum is None:
            kernels.sgd_(p.value, g, lr=lr, l2=l2, l1=l1)
        else:
            kernels.momentum_(p.value, self.state[name]["v"], g, lr=lr, mu=momentum, nesterov=self.nesterov,
                              l2=l2, l1=l1)

    def _sparse(self, name, p, g, l2, l1, lr, momentum=None):
        W, rows = p.value, g.rows
        if momentum is not None or l1:
            # (the kernels check the rows of plain SGD; here NumPy's fancy indexing took a repeated row's last update
            # only, silently, and an index past the table was its own IndexError without a name)
            rows = _coalesced_rows(rows, W.shape[0], name)
        G = l1_rows(g.values, W, rows, l1) if l1 else g.values
        if momentum is None:
            kernels.sparse_sgd_(W, rows, G, lr=lr, l2=l2)
            return
        v = self.state[name]["v"]
        Wr = W[rows]
        if l2:
            G = G + np.asarray(l2, dtype=W.dtype) * Wr
        vr = np.asarray(momentum, dtype=W.dtype) * v[rows] + G
        v[rows] = vr
        step = G + np.asarray(momentum, dtype=W.dtype) * vr if self.nesterov else vr
        W[rows] = Wr - np.asarray(lr, dtype=W.dtype) * step


def _coalesced_rows(rows, n, name):
    """rows as an index array, unique, ascending and in [0, n) (a coalesced RowGrad), else a ValueError or IndexError
    naming the parameter."""
    rows = np.asarray(rows)
    if rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"SGD: the RowGrad of '{name}' must have integer rows in [0, {n}); got {rows.dtype} rows "
                         f"from {rows.min()} to {rows.max()}.")
    if rows.ndim != 1 or np.any(rows[1:] <= rows[:-1]):
        raise ValueError(f"SGD: the RowGrad of '{name}' must have unique ascending rows (a coalesced RowGrad); got "
                         "repeats or disorder. Make it with RowGrad.from_rows(rows, G, n_rows), which sums repeats.")
    return rows
