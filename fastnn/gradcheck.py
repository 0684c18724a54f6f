"""Finite-difference gradient checks for any graph built from fastnn nodes.

>>> import numpy as np
>>> from fastnn import nn
>>> from fastnn.gradcheck import gradcheck
>>> rng = np.random.default_rng(0)
>>> model = nn.Linear(3, 2, rng=rng)
>>> x, y = rng.normal(size=(4, 3)), rng.integers(0, 2, 4)
>>> report = gradcheck(lambda: nn.softmax_cross_entropy(model(x), y), model.parameters())
>>> report.ok                                    # print(report): one line per parameter, worst relative error
True

How it checks
- Parameters (and optionally input nodes) are cast to float64 for the duration of the check and restored after.
- The analytic gradient comes from one forward + backward; Param grads are cleared again on return.
- Each checked entry is perturbed by +-eps (default 1e-4) and differentiated with central differences:
  order=2: (f(x+eps) - f(x-eps)) / 2eps (error O(eps^2)); order=4 (default): the 5-point stencil
  (8 (f(x+eps) - f(x-eps)) - (f(x+2eps) - f(x-2eps))) / 12eps (error O(eps^4)), which keeps the truncation error
  far below the 1e-6 threshold at eps = 1e-4.
- Relative error per entry: |a - n| / max(|a|, |n|, floor) with floor = 1e-4: entries whose gradients are both
  smaller than the floor are judged on absolute error |a - n| < tol * floor = 1e-10, the level of float64 rounding
  noise in a finite difference.  An entry passes when its relative error is below tol (1e-6).
- At most max_entries entries per dense parameter are checked (a seeded sample when larger).  A sparse (embedding)
  parameter whose gradient is a RowGrad is checked on every touched row plus n_untouched untouched rows, where the
  gradient must be zero; columns are sampled so the total stays near max_entries.
- nondet=True also recomputes the gradients with 1 and 2 kernel threads and demands bitwise equality.

Inputs must be chosen away from kinks (relu/hardtanh at 0 and +-1, maxout ties, hinge at the margin): a finite
difference across a kink measures an average of two slopes.  Dropout must see the same mask in every evaluation:
reseed its rng inside loss_fn.

`node_cases()` lists one small float64 case per node type (and a graph with multiple paths and shared weights);
`all_cases()` adds `gradcheck_cases()` from every module of fastnn.models.  `fastnn gradcheck` runs them all.
"""
import importlib
import pkgutil
from dataclasses import dataclass, field

import numpy as np

from fastnn import graph, nn
from fastnn._threads import threads
from fastnn._validation import check_bool, check_int, check_scalar
from fastnn.graph import Module, Node, Param, RowGrad
from fastnn.init import as_rng

FLOOR = 1e-4
TOL = 1e-6
EPS = 1e-4                  # the perturbation (float64; the 5-point stencil's error is O(eps^4))
MAX_ENTRIES = 64            # entries checked per parameter


class GradCheckError(AssertionError):
    """Raised by gradcheck(..., raise_exception=True) when some checked entry fails."""


@dataclass
class ParamCheck:
    """The check of one parameter (or input): the worst entry and how many were checked."""

    name: str
    shape: tuple
    n_checked: int
    max_rel_err: float
    max_abs_err: float
    worst_index: tuple
    analytic: float
    numeric: float
    ok: bool
    kind: str = "param"          # "param" or "input"
    n_touched_rows: int = None   # for a RowGrad: rows with a gradient (all of them checked)

    @property
    def label(self):
        return self.name if self.kind == "param" else f"{self.name} (input)"

    def describe(self):
        return (f"'{self.name}' entry {self.worst_index}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g}, "
                f"relative error {self.max_rel_err:.3g}")


@dataclass
class GradCheckReport:
    """Per-parameter results; `ok` is True when every checked entry of every parameter passed."""

    checks: list
    eps: float
    tol: float
    floor: float
    order: int
    nondet_ok: bool = None       # None when nondet was not requested
    nondet_detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self):
        return all(c.ok for c in self.checks) and self.nondet_ok is not False

    @property
    def max_rel_err(self):
        return max((c.max_rel_err for c in self.checks), default=0.0)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok]

    def __getitem__(self, name):
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __iter__(self):
        return iter(self.checks)

    def __len__(self):
        return len(self.checks)

    def rows(self, name):
        """One dict per parameter: name (the case), param, max_rel_err, ok (the `fastnn gradcheck --json` rows)."""
        out = [{"name": name, "param": c.label,
                "max_rel_err": float(c.max_rel_err) if np.isfinite(c.max_rel_err) else None, "ok": bool(c.ok)}
               for c in self.checks]
        if self.nondet_ok is not None:
            out.append({"name": name, "param": "(threads 1 vs 2)", "max_rel_err": 0.0 if self.nondet_ok else 1.0,
                        "ok": bool(self.nondet_ok)})
        return out

    def __str__(self):
        lines = [f"{'param':24s} {'shape':>14s} {'checked':>7s} {'max_rel_err':>11s}  result"]
        for c in self.checks:
            lines.append(f"{c.label:24s} {str(tuple(c.shape)):>14s} {c.n_checked:7d} {c.max_rel_err:11.2e}  "
                         f"{'ok' if c.ok else 'FAIL ' + c.describe()}")
        if self.nondet_ok is not None:
            lines.append(f"threads 1 vs 2: {'identical' if self.nondet_ok else 'DIFFER ' + self.nondet_detail}")
        return "\n".join(lines)


def _named_params(params):
    if isinstance(params, Module):
        params = params.parameters()
    if isinstance(params, Param):
        params = [params]
    if isinstance(params, dict):
        items = list(params.items())
    else:
        items = [(p.name, p) for p in params]
    for name, p in items:
        if not isinstance(p, Param):
            raise TypeError(f"gradcheck: 'params' must map names to fastnn.graph.Param; got {type(p).__name__} "
                            f"for '{name}'.")
    return [(n, p) for n, p in items if p.trainable]


def _named_inputs(inputs):
    if inputs is None:
        return []
    items = list(inputs.items()) if isinstance(inputs, dict) else [(f"input{i}", x) for i, x in enumerate(inputs)]
    for name, x in items:
        if not isinstance(x, Node) or not isinstance(x.value, np.ndarray) or x.value.dtype.kind != "f":
            raise TypeError(f"gradcheck: input '{name}' must be a Node with a float array value; got {x!r}.")
        if x.backward_fn is not None:
            raise ValueError(f"gradcheck: input '{name}' must be an input node (no backward_fn); got {x!r}.")
    return items


def _loss_value(loss_fn):
    loss = loss_fn()
    if not isinstance(loss, Node):
        raise TypeError(f"gradcheck: 'loss_fn' must return a scalar fastnn Node; got {type(loss).__name__}.")
    if loss.value.size != 1:
        raise ValueError(f"gradcheck: 'loss_fn' must return a scalar Node; got shape {loss.value.shape}.")
    v = float(loss.value.reshape(()))
    if not np.isfinite(v):
        raise FloatingPointError(f"gradcheck: the loss must be finite; got {v}. Check the inputs and parameters.")
    return loss, v


def _analytic(loss_fn, params, inputs):
    """One forward + backward: {name: dense ndarray or RowGrad copy} for params, then inputs."""
    for _, p in params:
        p.zero_grad()
    for _, x in inputs:
        x.grad = None
    loss, _ = _loss_value(loss_fn)
    graph.backward(loss)
    out = {}
    for name, p in params:
        g = p.grad
        if isinstance(g, RowGrad):
            out[name] = RowGrad(g.rows.copy(), np.array(g.values, dtype=np.float64), g.n_rows)
        elif g is None:
            out[name] = np.zeros(p.value.shape)
        else:
            out[name] = np.array(g, dtype=np.float64)
    for name, x in inputs:
        out[name] = np.zeros(x.value.shape) if x.grad is None else np.array(x.grad, dtype=np.float64)
    return out


def _dense_of(g):
    return g.to_dense() if isinstance(g, RowGrad) else g


def _entries(g, shape, max_entries, n_untouched, rng):
    """Flat indices to check: a sample of a dense gradient, or every touched row (+ some untouched) of a RowGrad."""
    size = int(np.prod(shape))
    if not isinstance(g, RowGrad):
        if size <= max_entries:
            return np.arange(size)
        return np.sort(rng.choice(size, max_entries, replace=False))
    n_rows, D = shape
    untouched = np.setdiff1d(np.arange(n_rows), g.rows)
    if len(untouched) > n_untouched:
        untouched = rng.choice(untouched, n_untouched, replace=False)
    rows = np.sort(np.concatenate([g.rows, untouched]).astype(np.intp))
    per_row = min(D, max(1, max_entries // max(1, len(rows))))
    cols = [np.sort(rng.choice(D, per_row, replace=False)) for _ in rows]
    return np.concatenate([r * D + c for r, c in zip(rows, cols)]) if len(rows) else np.zeros(0, np.intp)


def _numeric(loss_fn, flat, i, eps, order):
    """Central difference of the loss wrt flat[i] (restored exactly afterwards)."""
    x0 = flat[i]

    def f(delta):
        flat[i] = x0 + delta
        return _loss_value(loss_fn)[1]

    try:
        d1 = f(eps) - f(-eps)
        if order == 2:
            return d1 / (2 * eps)
        d2 = f(2 * eps) - f(-2 * eps)
        return (8 * d1 - d2) / (12 * eps)
    finally:
        flat[i] = x0


def _thread_invariance(loss_fn, params, inputs):
    """Gradients with 1 and with 2 kernel threads, compared bitwise: (ok, detail)."""
    runs = []
    for n in (1, 2):
        with threads(kernels=n):
            runs.append({k: _dense_of(g) for k, g in _analytic(loss_fn, params, inputs).items()})
    for k in runs[0]:
        if not np.array_equal(runs[0][k], runs[1][k]):
            diff = np.abs(runs[0][k] - runs[1][k]).max()
            return False, f"'{k}' differs by up to {diff:.3g}"
    return True, ""


def check_options(*, eps, tol, max_entries, where="gradcheck"):
    """The checks of gradcheck()'s eps (> 0), tol (> 0) and max_entries (an integer >= 1): callers that run many
    cases (`fastnn gradcheck`) make them once, before the first."""
    check_scalar(eps, "eps", where, low=0, low_open=True)
    check_scalar(tol, "tol", where, low=0, low_open=True)
    check_int(max_entries, "max_entries", where)


def gradcheck(loss_fn, params, *, inputs=None, eps=EPS, tol=TOL, floor=FLOOR, order=4, max_entries=MAX_ENTRIES,
              n_untouched=4, seed=0, nondet=False, raise_exception=False):
    """Compare the analytic gradients of loss_fn() with central differences in float64.

    Parameters
    ----------
    loss_fn : callable() -> scalar Node; builds the graph from the current parameter (and input) values.
    params : dict name -> Param (e.g. model.parameters()), a Module, or a list of Params.  Frozen ones are skipped.
    inputs : optional dict name -> input Node (or list) that loss_fn reuses; their gradients are checked too.
    eps : the perturbation.  tol : the pass threshold on the relative error.  floor : see the module docstring.
    order : 2 (central difference) or 4 (5-point central stencil, default).
    max_entries : entries checked per parameter (a seeded sample beyond that).  n_untouched : untouched rows of a
        sparse gradient checked to be zero.  seed : the sampling seed.
    nondet : also demand bitwise-equal gradients with 1 and 2 kernel threads.
    raise_exception : raise GradCheckError naming the worst failing parameter and entry instead of returning.

    Returns
    -------
    GradCheckReport with one ParamCheck per parameter and input.
    """
    if order not in (2, 4):
        raise ValueError(f"gradcheck: 'order' must be 2 or 4; got {order!r}.")
    check_options(eps=eps, tol=tol, max_entries=max_entries)
    if not callable(loss_fn):
        raise TypeError(f"gradcheck: 'loss_fn' must be callable() -> scalar Node; got {type(loss_fn).__name__}.")
    # (raise_exception="no" raised, nondet="no" ran the thread check: bool() of a str; seed=None sampled other
    # entries on every call)
    nondet, raise_exception = (check_bool(v, k, "gradcheck") for k, v in
                               (("nondet", nondet), ("raise_exception", raise_exception)))
    rng = as_rng(seed, "gradcheck", "seed")
    params = _named_params(params)
    inputs = _named_inputs(inputs)
    if not params and not inputs:
        raise ValueError("gradcheck: there is nothing to check: 'params' has no trainable Param and 'inputs' is "
                         "empty.")
    saved_values = [(p, p.value) for _, p in params]
    saved_inputs = [(x, x.value, x.requires_grad) for _, x in inputs]
    try:
        for p, v in saved_values:
            p.value = np.array(v, dtype=np.float64, order="C")  # a private copy: perturbed, then dropped
        for x, v, _ in saved_inputs:
            x.value = np.array(v, dtype=np.float64, order="C")
            x.requires_grad = True
        grads = _analytic(loss_fn, params, inputs)
        nondet_ok, nondet_detail = _thread_invariance(loss_fn, params, inputs) if nondet else (None, "")
        checks = []
        targets = [(n, p.value, "param") for n, p in params] + [(n, x.value, "input") for n, x in inputs]
        for name, value, kind in targets:
            g = grads[name]
            idx = _entries(g, value.shape, max_entries, n_untouched, rng)
            a = _dense_of(g).reshape(-1)[idx]
            flat = value.reshape(-1)
            num = np.array([_numeric(loss_fn, flat, int(i), eps, order) for i in idx])
            abs_err = np.abs(a - num)
            rel = abs_err / np.maximum(np.maximum(np.abs(a), np.abs(num)), floor)
            w = int(np.argmax(rel)) if len(idx) else None
            checks.append(ParamCheck(
                name=name, shape=tuple(value.shape), n_checked=len(idx),
                max_rel_err=float(rel[w]) if w is not None else 0.0,
                max_abs_err=float(abs_err.max()) if len(idx) else 0.0,
                worst_index=tuple(int(j) for j in np.unravel_index(idx[w], value.shape)) if w is not None else (),
                analytic=float(a[w]) if w is not None else 0.0, numeric=float(num[w]) if w is not None else 0.0,
                ok=bool(np.all(rel < tol)), kind=kind,
                n_touched_rows=len(g.rows) if isinstance(g, RowGrad) else None))
    finally:
        for p, v in saved_values:
            p.value = v
            p.zero_grad()
        for x, v, rg in saved_inputs:
            x.value, x.grad, x.requires_grad = v, None, rg
    report = GradCheckReport(checks, eps=eps, tol=tol, floor=floor, order=order, nondet_ok=nondet_ok,
                             nondet_detail=nondet_detail)
    if raise_exception and not report.ok:
        bad = report.failures
        if bad:
            worst = max(bad, key=lambda c: c.max_rel_err)
            raise GradCheckError(f"gradcheck: {worst.describe()} >= tol {tol:g} "
                                 f"({len(bad)} of {len(checks)} parameters fail).\n{report}")
        raise GradCheckError(f"gradcheck: gradients differ between 1 and 2 threads: {nondet_detail}.")
    return report


# ---- the cases `fastnn gradcheck` runs ---------------------------------------------------------------------------

F64 = np.float64


def _away(rng, shape, low, high):
    """Random values with |x| in [low, high] and random signs (inputs away from a kink at 0)."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _input(value):
    return graph.constant(np.asarray(value, dtype=F64), requires_grad=True)


def _weighted_sum(y, rng):
    """sum(C * y) with a fixed random C: a scalar whose gradient wrt y is C (no symmetric cancellations)."""
    C = rng.standard_normal(y.value.shape)
    return nn.sum(nn.mul(y, C))


def _case_activation(fn, low, high):
    def build(rng):
        x = _input(_away(rng, (4, 5), low, high))
        C = rng.standard_normal((4, 5))
        return (lambda: nn.sum(nn.mul(fn(x), C))), {}, {"x": x}
    return build


def _case_hardtanh(rng):
    # half the entries inside (-1, 1), half outside (zero gradient), all away from the kinks at 0 and +-1
    inside = _away(rng, (4, 3), 0.05, 0.9)
    outside = _away(rng, (4, 3), 1.1, 2.0)
    x = _input(np.concatenate([inside, outside], axis=1))
    C = rng.standard_normal((4, 6))
    return (lambda: nn.sum(nn.mul(nn.hardtanh(x), C))), {}, {"x": x}


def _case_linear(rng):
    lin = nn.Linear(3, 5, rng=rng, dtype=F64)
    lin.b.value[:] = rng.standard_normal(5)
    x = _input(rng.standard_normal((4, 3)))
    C = rng.standard_normal((4, 5))
    return (lambda: nn.sum(nn.mul(nn.tanh(lin(x)), C))), lin.parameters(), {"x": x}


def _case_linear_3d(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=F64)
    x = _input(rng.standard_normal((2, 4, 3)))
    C = rng.standard_normal((2, 4, 2))
    return (lambda: nn.sum(nn.mul(nn.sigmoid(lin(x)), C))), lin.parameters(), {"x": x}


def _case_embedding(rng):
    emb = nn.Embedding(12, 3, rng=rng, dtype=F64, scale=1.0)
    idx = np.array([[1, 4, 1], [7, 4, 0], [1, 9, 9]])  # repeated rows within and across windows
    C = rng.standard_normal((3, 9))
    return (lambda: nn.sum(nn.mul(nn.tanh(emb(idx)), C))), emb.parameters(), {}


def _case_concat(rng):
    a, b = _input(rng.standard_normal((3, 2))), _input(rng.standard_normal((3, 4)))
    C = rng.standard_normal((3, 6))
    return (lambda: nn.sum(nn.mul(nn.tanh(nn.concat([a, b])), C))), {}, {"a": a, "b": b}


def _case_split(rng):
    a = _input(rng.standard_normal((4, 3)))
    C, D = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    return (lambda: nn.add(nn.sum(nn.mul(nn.tanh(nn.split(a, 2)[0]), C)),
                           nn.sum(nn.mul(nn.split(a, 2)[1], D)))), {}, {"a": a}


def _case_narrow(rng):
    a = _input(rng.standard_normal((4, 3, 2)))
    C, D = rng.standard_normal((4, 2, 2)), rng.standard_normal((1, 3, 2))
    return (lambda: nn.add(nn.sum(nn.mul(nn.tanh(nn.narrow(a, 1, 1, 2)), C)),      # a middle slice and the last step
                           nn.sum(nn.mul(nn.narrow(a, 0, 3, 1), D)))), {}, {"a": a}


def _case_binary(op):
    def build(rng):
        a, b = _input(rng.standard_normal((4, 3))), _input(rng.standard_normal((3,)))  # b broadcast over rows
        C = rng.standard_normal((4, 3))
        return (lambda: nn.sum(nn.mul(nn.tanh(op(a, b)), C))), {}, {"a": a, "b": b}
    return build


def _case_scale_mean(rng):
    a = _input(rng.standard_normal((3, 4)))
    return (lambda: nn.mean(nn.tanh(nn.scale(a, -1.7)))), {}, {"a": a}


def _case_matmul_reshape(rng):
    a, b = _input(rng.standard_normal((3, 4))), _input(rng.standard_normal((4, 2)))
    C = rng.standard_normal((2, 3))
    return (lambda: nn.sum(nn.mul(nn.tanh(nn.reshape(nn.matmul(a, b), (2, 3))), C))), {}, {"a": a, "b": b}


def _case_maxout(rng):
    mo = nn.Maxout(3, 4, 3, rng=rng, dtype=F64)
    mo.b.value[:] = rng.standard_normal(12)
    for _ in range(100):  # keep the winning piece ahead by a clear gap (no ties within the perturbation)
        xv = rng.standard_normal((5, 3))
        z = (xv @ mo.W.value.T + mo.b.value).reshape(5, 4, 3)
        top2 = np.sort(z, axis=-1)[..., -2:]
        if np.min(top2[..., 1] - top2[..., 0]) > 1e-2:
            break
    x = _input(xv)
    C = rng.standard_normal((5, 4))
    return (lambda: nn.sum(nn.mul(mo(x), C))), mo.parameters(), {"x": x}


def _case_max_over_time_take(rng):
    for _ in range(100):  # the winning position ahead by a clear gap (no ties within the perturbation)
        xv = rng.standard_normal((3, 4, 2))
        top2 = np.sort(xv[:, :3], axis=1)[:, -2:]          # every sequence has at least 3 positions
        if np.min(top2[:, 1] - top2[:, 0]) > 1e-2:
            break
    x = _input(xv)
    lengths = np.array([3, 4, 3])
    idx = np.array([[0, 2], [2, 1], [0, 0]])              # row 0 taken three times: gradients add up
    C = rng.standard_normal((3, 2, 2))
    return (lambda: nn.sum(nn.mul(nn.tanh(nn.take(nn.max_over_time(x, lengths), idx)), C))), {}, {"x": x}


def _case_char_cnn(rng):
    cnn = nn.CharCNN(6, 3, 4, width=3, rng=rng, dtype=F64, scale=1.0)
    cnn.conv.b.value[:] = rng.standard_normal(4)
    ids = np.array([[2, 3, 4, 5, 0], [5, 4, 0, 0, 0], [1, 2, 3, 2, 4]])
    lengths = np.array([4, 2, 5])
    C = rng.standard_normal((3, 4))
    return (lambda: nn.sum(nn.mul(cnn(ids, lengths), C))), cnn.parameters(), {}


def _case_dropout(rng):
    lin = nn.Linear(4, 6, rng=rng, dtype=F64)
    drop = nn.Dropout(0.5, rng=0)
    x = _input(rng.standard_normal((3, 4)))
    C = rng.standard_normal((3, 6))

    def loss_fn():
        drop.rng = np.random.default_rng(7)  # the same mask in every evaluation
        return nn.sum(nn.mul(nn.tanh(drop(lin(x))), C))
    return loss_fn, lin.parameters(), {"x": x}


def _case_softmax_xent(rng):
    lin = nn.Linear(4, 6, rng=rng, dtype=F64)
    x = _input(rng.standard_normal((5, 4)))
    t = rng.integers(0, 6, 5)
    return (lambda: nn.softmax_cross_entropy(lin(x), t)), lin.parameters(), {"x": x}


def _case_softmax_xent_3d_sum(rng):
    z = _input(rng.standard_normal((2, 3, 5)) * 2)
    t = rng.integers(0, 5, (2, 3))
    return (lambda: nn.softmax_cross_entropy(z, t, reduction="sum")), {}, {"logits": z}


def _case_softmax_output(rng):
    out = nn.SoftmaxOutput(4, 7, rng=rng, dtype=F64, class_counts=np.arange(1, 8))
    h = _input(rng.standard_normal((6, 4)))
    t = rng.integers(0, 7, 6)
    return (lambda: out.loss(h, t)), out.parameters(), {"h": h}


def _case_sentence_nll(rng):
    tr = nn.Transitions(4, dtype=F64)
    for p in (tr.A, tr.start, tr.end):
        p.value[...] = rng.standard_normal(p.shape)
    scores = _input(rng.standard_normal((6, 4)) * 2)
    tags, offsets = rng.integers(0, 4, 6), np.array([0, 3, 4, 6])     # sentences of 3, 1 and 2 tokens
    return (lambda: nn.sentence_nll(scores, tags, offsets, tr)), tr.parameters(), {"scores": scores}


def _case_hinge(rng):
    pos = _input(rng.standard_normal(6))
    neg = _input(pos.value - 1.0 + _away(rng, 6, 0.1, 1.0))  # margin - pos + neg away from 0 (some inactive)
    return (lambda: nn.hinge(pos, neg)), {}, {"pos": pos, "neg": neg}


class _WindowScorer(graph.Module):
    """The Collobert & Weston ranking net: embeddings of a window -> tanh layer -> scalar score."""

    def __init__(self, rng):
        self.emb = nn.Embedding(15, 3, rng=rng, dtype=F64, scale=1.0)
        self.hidden = nn.Linear(9, 5, rng=rng, dtype=F64)
        self.score = nn.Linear(5, 1, rng=rng, dtype=F64)

    def __call__(self, windows):
        return self.score(nn.tanh(self.hidden(self.emb(windows))))


def _case_window_hinge(rng):
    net = _WindowScorer(rng)
    for _ in range(100):  # keep margin - score(true) + score(corrupt) away from the hinge's kink at 0
        windows = rng.integers(0, 15, (4, 3))
        corrupt = windows.copy()
        corrupt[:, 1] = (windows[:, 1] + 1 + rng.integers(0, 14, 4)) % 15  # a different centre word
        if np.min(np.abs(1.0 - net(windows).value + net(corrupt).value)) > 0.05:
            break
    return (lambda: nn.hinge(net(windows), net(corrupt))), net.parameters(), {}


def _case_mse(rng):
    lin = nn.Linear(3, 2, rng=rng, dtype=F64)
    x = _input(rng.standard_normal((4, 3)))
    y = rng.standard_normal((4, 2))
    return (lambda: nn.mse(lin(x), y)), lin.parameters(), {"x": x}


def _case_rnn(activation, init):
    def build(rng):
        rnn = nn.RNN(3, 4, rng=rng, activation=activation, init=init, dtype=F64)
        rnn.b.value[:] = rng.standard_normal(4) * 0.5
        for _ in range(100):  # for relu, keep every pre-activation away from the kink at 0
            x = _input(rng.standard_normal((3, 2, 3)))
            h0 = _input(rng.standard_normal((2, 4)) * 0.5)
            if activation != "relu" or _min_abs_preactivation(rnn, x.value, h0.value) > 0.02:
                break
        C = rng.standard_normal((3, 2, 4))
        return (lambda: nn.sum(nn.mul(rnn(x, h0)[0], C))), rnn.parameters(), {"x": x, "h0": h0}
    return build


def _case_lstm(rng):
    lstm = nn.LSTM(3, 4, rng=rng, dtype=F64)
    lstm.b.value[:] += rng.standard_normal(16) * 0.5
    x = _input(rng.standard_normal((3, 2, 3)))
    h0, c0 = _input(rng.standard_normal((2, 4)) * 0.5), _input(rng.standard_normal((2, 4)) * 0.5)
    C = rng.standard_normal((3, 2, 4))
    return (lambda: nn.sum(nn.mul(lstm(x, (h0, c0))[0], C))), lstm.parameters(), {"x": x, "h0": h0, "c0": c0}


def _min_abs_preactivation(rnn, x, h):
    smallest = np.inf
    for xt in x:
        z = xt @ rnn.W_ih.value.T + h @ rnn.W_hh.value.T + rnn.b.value
        smallest = min(smallest, np.abs(z).min())
        h = np.maximum(z, 0)
    return smallest


class _SharedNet(graph.Module):
    """A graph with multiple paths and shared weights: the hidden value h feeds three successors, the square
    Linear `tied` is applied twice, and one embedding serves two windows."""

    def __init__(self, rng):
        self.emb = nn.Embedding(10, 2, rng=rng, dtype=F64, scale=1.0)
        self.inp = nn.Linear(4, 3, rng=rng, dtype=F64)
        self.tied = nn.Linear(3, 3, rng=rng, dtype=F64)
        self.out = nn.SoftmaxOutput(6, 4, rng=rng, dtype=F64)

    def loss(self, left, right, t):
        a = nn.tanh(self.inp(self.emb(left)))
        b = nn.tanh(self.inp(self.emb(right)))
        h = nn.add(a, nn.mul(a, b))                      # a feeds two successors
        z = nn.sigmoid(self.tied(nn.tanh(self.tied(h))))  # tied applied twice
        return self.out.loss(nn.concat([z, h]), t)        # h used again


def _case_shared(rng):
    net = _SharedNet(rng)
    left, right = rng.integers(0, 10, (5, 2)), rng.integers(0, 10, (5, 2))
    right[0] = left[0]  # the same rows reached through both windows
    t = rng.integers(0, 4, 5)
    return (lambda: net.loss(left, right, t)), net.parameters(), {}


def node_cases():
    """[(name, build)] with build(rng) -> (loss_fn, params, inputs), one small float64 case per node type."""
    return [
        ("linear", _case_linear),
        ("linear_3d", _case_linear_3d),
        ("embedding", _case_embedding),
        ("concat", _case_concat),
        ("split", _case_split),
        ("narrow", _case_narrow),
        ("add", _case_binary(nn.add)),
        ("sub", _case_binary(nn.sub)),
        ("mul", _case_binary(nn.mul)),
        ("scale_mean", _case_scale_mean),
        ("matmul_reshape", _case_matmul_reshape),
        ("sigmoid", _case_activation(nn.sigmoid, 0.0, 3.0)),
        ("tanh", _case_activation(nn.tanh, 0.0, 2.0)),
        ("hardtanh", _case_hardtanh),
        ("softsign", _case_activation(nn.softsign, 0.05, 3.0)),
        ("relu", _case_activation(nn.relu, 0.05, 2.0)),
        ("maxout", _case_maxout),
        ("max_over_time_take", _case_max_over_time_take),
        ("char_cnn", _case_char_cnn),
        ("dropout", _case_dropout),
        ("softmax_cross_entropy", _case_softmax_xent),
        ("softmax_cross_entropy_3d_sum", _case_softmax_xent_3d_sum),
        ("softmax_output", _case_softmax_output),
        ("sentence_nll", _case_sentence_nll),
        ("hinge", _case_hinge),
        ("window_score_hinge", _case_window_hinge),
        ("mse", _case_mse),
        ("rnn_tanh", _case_rnn("tanh", "glorot")),
        ("rnn_sigmoid", _case_rnn("sigmoid", "glorot")),
        ("rnn_relu_identity", _case_rnn("relu", "identity")),
        ("lstm", _case_lstm),
        ("multipath_shared", _case_shared),
    ]


def model_cases(package="fastnn.models"):
    """[(name, build)] from `gradcheck_cases()` of every module in `package` (none when it is absent).
    A module that fails to import yields a case that re-raises the error when built (it is reported as failing)."""
    try:
        models = importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name != package:
            raise
        return []
    out = []
    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{package}.{info.name}")
        except Exception as e:  # noqa: BLE001 (report it as a failing case, keep checking the rest)
            out.append((f"{package}.{info.name}", _raiser(e)))
            continue
        fn = getattr(mod, "gradcheck_cases", None)
        if callable(fn):
            out.extend(fn())
    return out


def _raiser(exc):
    def build(rng):
        raise exc
    return build


def all_cases():
    """node_cases() + model_cases()."""
    return node_cases() + model_cases()


def run_case(build, *, seed=0, **kwargs):
    """Build one case with rng = default_rng(seed) and gradcheck it (kwargs go to gradcheck)."""
    built = build(np.random.default_rng(seed))
    loss_fn, params = built[0], built[1]
    inputs = built[2] if len(built) > 2 else None
    return gradcheck(loss_fn, params, inputs=inputs, seed=seed, **kwargs)


__all__ = ["gradcheck", "GradCheckReport", "ParamCheck", "GradCheckError", "node_cases", "model_cases", "all_cases",
           "run_case", "check_options", "FLOOR", "TOL", "EPS", "MAX_ENTRIES"]
