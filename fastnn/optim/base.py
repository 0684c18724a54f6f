"""The optimizer base: named parameters, hyper-parameter schedules, per-parameter state, exact state_dict.

An optimizer holds `{name: Param}` (from `model.parameters()`), reads each `Param.grad` (a dense ndarray or a
coalesced `RowGrad`) in `step()`, and updates `Param.value` in place through fastnn.kernels.  Sparse row gradients
are never densified: only the touched rows of the parameter and of its state are read or written.

Weight decay (`weight_decay`, the L2 coefficient, torch's convention: g += weight_decay * w, i.e. the objective
gains weight_decay / 2 * ||w||^2) and `l1` (g += l1 * sign(w)) apply only to parameters with `Param.decay` True
(weights and embeddings; biases are created with decay=False, as in Bengio et al. 2003).  For a sparse parameter
both are lazy: they act on the rows touched in that step only.
"""
import numpy as np

from fastnn._validation import check_scalar
from fastnn.graph import Module, Param, RowGrad
from fastnn.optim.schedules import as_schedule


def named_params(params, where, *, writes=False):
    """{name: Param} from a dict of Params or a Module (only trainable ones); writes=True (the caller updates them
    in place) also demands writeable values."""
    if isinstance(params, Module):
        params = params.parameters()
    if not isinstance(params, dict):
        raise TypeError(f"{where}: 'params' must be a dict name -> Param (model.parameters()) or a Module; got "
                        f"{type(params).__name__}. Names key the optimizer state, so a bare list is not accepted.")
    first = {}                              # id(Param) -> the first name it came under
    for name, p in params.items():
        if not isinstance(p, Param):
            raise TypeError(f"{where}: 'params[{name!r}]' must be a fastnn.graph.Param; got {type(p).__name__}.")
        if first.setdefault(id(p), name) != name:   # (each step updated it once per name: twice the step)
            raise ValueError(f"{where}: every Param must be listed once; {first[id(p)]!r} and {name!r} are the same "
                             f"Param. Pass model.parameters() (it lists tied weights once).")
    out = {name: p for name, p in params.items() if p.trainable}
    if not out:
        raise ValueError(f"{where}: 'params' must contain at least one trainable Param; got none.")
    for name, p in out.items() if writes else ():   # (the first step failed in a kernel: "sgd_: 'w' must be writeable")
        if not p.value.flags.writeable:
            raise ValueError(f"{where}: '{name}' must be writeable (it is updated in place); got a read-only array, "
                             "as joblib.load(..., mmap_mode='r') gives. Train a copy (copy.deepcopy(model)), or "
                             "load it with mmap_mode='c' or None.")
    return out


class Optimizer:
    """Base class.  Subclasses add to `self._hyper` (name -> Schedule) and implement `_dense(...)` and
    `_sparse(...)` for one parameter.

    Attributes
    ----------
    params : {name: Param}, trainable only, in the model's order.
    state : {name: {slot: ndarray}} (momentum buffers, accumulators), created at construction.
    step_count : number of completed step() calls; schedules are evaluated at it.
    """

    def __init__(self, params, *, lr, weight_decay=0.0, l1=0.0):
        where = type(self).__name__
        self.params = named_params(params, where, writes=True)
        self.weight_decay = float(check_scalar(weight_decay, "weight_decay", where, low=0))
        self.l1 = float(check_scalar(l1, "l1", where, low=0))
        self._hyper = {"lr": as_schedule(lr, "lr", where)}
        self.step_count = 0
        self.state = {}

    @property
    def lr(self):
        """The learning rate the next step will use."""
        return self._hyper["lr"](self.step_count)

    def hyper(self, name):
        """The Schedule behind a hyper-parameter ("lr", "momentum")."""
        return self._hyper[name]

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def step(self):
        """Apply one update from the current gradients (parameters without a gradient are left alone)."""
        self._follow_params()
        values = {k: float(s(self.step_count)) for k, s in self._hyper.items()}
        items = []
        for name, p in self.params.items():
            if p.grad is not None:
                items.append((name, p, p.grad, self.weight_decay if p.decay else 0.0, self.l1 if p.decay else 0.0))
        self._update(items, **values)
        self.step_count += 1

    def _update(self, items, **values):
        """Apply the updates of [(name, Param, grad, l2, l1)] (each parameter's on its own; a subclass may batch
        them: they are independent)."""
        for name, p, g, l2, l1 in items:
            if isinstance(g, RowGrad):
                self._sparse(name, p, g, l2, l1, **values)
            else:
                self._dense(name, p, g, l2, l1, **values)

    def observe(self, score, *, mode):
        """Pass a validation score to the schedules (HalveOnPlateau reacts); mode "max" or "min" says which way is
        better."""
        for s in self._hyper.values():
            s.observe(score, mode=mode)

    def _follow_params(self):
        """Each state slot takes its parameter's dtype again when the model was cast (Module.astype) after the
        optimizer was built: the kernels refused the old one ("'v' must have dtype float64 to match 'w'. Cast 'v'"),
        naming a buffer the user never made.  A parameter whose shape changed under the optimizer is a ValueError."""
        for name, slots in self.state.items():
            value = self.params[name].value
            for k, a in slots.items():
                if a.dtype != value.dtype:
                    slots[k] = a.astype(value.dtype)
                if a.shape != value.shape:
                    raise ValueError(f"{type(self).__name__}: '{name}' has shape {value.shape} but its optimizer "
                                     f"state '{k}' was made for {a.shape}. Build the optimizer again for the "
                                     "model's new parameters.")

    # -- state ---------------------------------------------------------------------------------------------------
    def state_dict(self):
        """{"type", "step", "hyper": {name: schedule state}, "state": {param: {slot: array copy}}}."""
        self._follow_params()
        return {"type": type(self).__name__, "step": self.step_count,
                "hyper": {k: s.state_dict() for k, s in self._hyper.items()},
                "state": {n: {k: a.copy() for k, a in st.items()} for n, st in self.state.items()}}

    def load_state_dict(self, sd):
        """Restore a state_dict, checking the optimizer type, parameter names, slots, shapes and dtypes."""
        where = f"{type(self).__name__}.load_state_dict"
        self._follow_params()
        if not isinstance(sd, dict) or sd.get("type") != type(self).__name__:
            got = sd.get("type") if isinstance(sd, dict) else type(sd).__name__
            raise ValueError(f"{where}: the state must come from a {type(self).__name__}; got {got!r}.")
        state = sd["state"]
        if set(state) != set(self.state):
            missing, extra = sorted(set(self.state) - set(state)), sorted(set(state) - set(self.state))
            raise ValueError(f"{where}: parameter names must match; missing from the state {missing}, "
                             f"unknown {extra}.")
        for name, slots in self.state.items():
            if set(state[name]) != set(slots):
                raise ValueError(f"{where}: '{name}' must have state slots {sorted(slots)}; got {sorted(state[name])}.")
            for k, a in slots.items():
                b = np.asarray(state[name][k])
                if b.shape != a.shape:
                    raise ValueError(f"{where}: '{name}' has shape {b.shape} in the checkpoint but {a.shape} in the "
                                     f"model.")
                if b.dtype != a.dtype:
                    raise TypeError(f"{where}: '{name}' state '{k}' has dtype {b.dtype} in the checkpoint but "
                                    f"{a.dtype} in the model.")
        if set(sd["hyper"]) != set(self._hyper):
            raise ValueError(f"{where}: hyper-parameters must be {sorted(self._hyper)}; got {sorted(sd['hyper'])}.")
        for k, s in self._hyper.items():
            s.load_state_dict(sd["hyper"][k])
        for name, slots in self.state.items():
            for k, a in slots.items():
                a[...] = state[name][k]
        self.step_count = int(sd["step"])

    def _slot(self, init=0.0):
        return {n: np.full_like(p.value, init) for n, p in self.params.items()}

    def _repr_extra(self):
        """The subclass's own settings for repr ("eps=1e-10"), or ""."""
        return ""

    def __repr__(self):
        hyper = ", ".join(f"{k}={s!r}" for k, s in self._hyper.items())
        extra = self._repr_extra()
        return (f"{type(self).__name__}({len(self.params)} params, {hyper}, {extra + ', ' if extra else ''}"
                f"weight_decay={self.weight_decay}, l1={self.l1})")


def l1_rows(values, W, rows, l1):
    """values + l1 * sign(W[rows]) (the lazy L1 term of a sparse update; a new array)."""
    return values + np.asarray(l1, dtype=values.dtype) * np.sign(W[rows])
