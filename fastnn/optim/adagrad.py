"""AdaGrad (Duchi, Hazan and Singer 2010/2011), dense and lazy-sparse."""
from fastnn import kernels
from fastnn._validation import check_scalar
from fastnn.graph import RowGrad
from fastnn.optim.base import Optimizer, l1_rows


class AdaGrad(Optimizer):
    """AdaGrad with torch's constants: acc starts at `initial_accumulator` (0), eps is added AFTER the square root.

    With g' = g + weight_decay * w + l1 * sign(w):  acc += g'^2;  w -= lr * g' / (sqrt(acc) + eps).

    Sparse (RowGrad) gradients are lazy: only the touched rows of w and of acc change, so rare embedding rows keep a
    small accumulator and get larger steps.  Rows are coalesced (unique) before the update, as it must be, since the
    update is non-linear in the gradient.  (optax differs: eps inside the sqrt, initial accumulator 0.1.)
    """

    def __init__(self, params, lr, *, eps=1e-10, initial_accumulator=0.0, weight_decay=0.0, l1=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay, l1=l1)
        self.eps = float(check_scalar(eps, "eps", "AdaGrad", low=0))
        self.initial_accumulator = float(check_scalar(initial_accumulator, "initial_accumulator", "AdaGrad", low=0))
        self.state = {n: {"acc": a} for n, a in self._slot(self.initial_accumulator).items()}

    def _repr_extra(self):      # (the constants that differ between libraries: see the class docstring)
        return f"eps={self.eps:g}, initial_accumulator={self.initial_accumulator:g}"

    def _update(self, items, lr):
        # every plain update (no l1; not a gradient that applies itself) in one kernel call per dtype, the same bits
        # as one call per parameter (kernels.adagrad_many_): the RNN LM's embedding rows, output biases and five
        # dense parameters are each too small to thread alone
        batches = {}
        for name, p, g, l2, l1 in items:
            sparse = isinstance(g, RowGrad)
            if l1 or (sparse and hasattr(g, "adagrad_")):
                (self._sparse if sparse else self._dense)(name, p, g, l2, l1, lr)
                continue
            part = (p.value, self.state[name]["acc"], g.values if sparse else g, g.rows if sparse else None, l2)
            batches.setdefault(p.value.dtype, []).append(part)
        for parts in batches.values():
            kernels.adagrad_many_(parts, lr=lr, eps=self.eps)

    def _dense(self, name, p, g, l2, l1, lr):
        kernels.adagrad_(p.value, self.state[name]["acc"], g, lr=lr, eps=self.eps, l2=l2, l1=l1)

    def _sparse(self, name, p, g, l2, l1, lr):
        # a gradient that can apply this update itself without building its rows (models.rnnlm.OutRowGrad: the
        # RNN LM's output rows, made and applied one class block at a time) is asked first
        fused = getattr(g, "adagrad_", None)
        if fused is not None and not l1 and fused(p.value, self.state[name]["acc"], lr=lr, eps=self.eps, l2=l2):
            return
        G = l1_rows(g.values, p.value, g.rows, l1) if l1 else g.values
        kernels.sparse_adagrad_(p.value, self.state[name]["acc"], g.rows, G, lr=lr, eps=self.eps, l2=l2)
