"""Node types as functions: each computes its value now (fprop) and returns a Node whose backward_fn ADDS the
gradients wrt its inputs (and parameters) given the gradient wrt its value.

Inputs may be Nodes or arrays (arrays become constant inputs, cast to the dtype of the other operand or of the
parameters).  An op skips the gradient of an input that does not need one (`Node.requires_grad` False, e.g. data);
an op none of whose inputs or parameters needs a gradient returns a plain constant node, so evaluation graphs carry
no backward work.  The heavy ops go through fastnn.kernels (gemm, gather_rows / coalesce_rows, softmax_xent).
"""
import numbers

import numpy as np
from scipy.special import expit

from fastnn import kernels
from fastnn._validation import check_scalar
from fastnn.graph import Node, Param

# ---- helpers -----------------------------------------------------------------------------------------------------


def as_node(x, dtype=None):
    """x itself if it is a Node, else a constant input node (cast to dtype when given)."""
    if isinstance(x, Node):
        return x
    if isinstance(x, Param):
        raise TypeError(f"fastnn.nn: got the Param '{x.name}' where a Node or array was expected. "
                        "Wrap it with nn.param(p) to use its value in the graph.")
    return Node(np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype), op="input")


def _param_colsum(p, g2):
    """p.grad += g2.sum(axis=0) (a bias gradient), summed in row order by the kernel."""
    if not p.trainable:
        return
    gr = p.grad
    if gr is None:
        p.grad = kernels.col_sums(g2)
    elif isinstance(gr, np.ndarray) and gr.dtype == p.dtype and gr.flags.c_contiguous and gr.flags.writeable:
        kernels.col_sums(g2, out=gr, beta=1.0)
    else:
        p.add_grad(kernels.col_sums(g2))


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched, to get a gradient of `shape`."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def _pair(a, b, where, broadcast=False):
    """Two nodes of one float dtype (an array operand takes the dtype of the Node operand); with broadcast=True
    (elementwise ops) shapes that broadcast together."""
    if isinstance(a, Node) and not isinstance(b, Node):
        b = as_node(b, a.value.dtype)
    elif isinstance(b, Node) and not isinstance(a, Node):
        a = as_node(a, b.value.dtype)
    else:
        a, b = as_node(a), as_node(b)
    if a.value.dtype != b.value.dtype:
        raise TypeError(f"{where}: both operands must have one dtype; got {a.value.dtype} and {b.value.dtype}. "
                        "Cast the input (parameters keep their dtype).")
    if broadcast and a.value.shape != b.value.shape:
        try:
            np.broadcast_shapes(a.value.shape, b.value.shape)
        except ValueError:                  # (numpy's message named neither the op nor the rule)
            raise ValueError(f"{where}: the operands' shapes must broadcast together; got {a.value.shape} and "
                             f"{b.value.shape}.") from None
    return a, b


def _out(value, parents, backward_fn, op):
    """The result node; a constant when no parent needs a gradient (backward then skips it)."""
    if backward_fn is None or not any(p.requires_grad for p in parents):
        return Node(value, op=op)
    return Node(value, parents, backward_fn, op)


def _scalar(x, dtype):
    return np.asarray(x, dtype=dtype).reshape(())


# ---- parameters as nodes -----------------------------------------------------------------------------------------


def param(p):
    """A node whose value is the dense Param p (gradients flow into p.grad); for graphs built from raw ops."""
    if not isinstance(p, Param):
        raise TypeError(f"nn.param: 'p' must be a fastnn.graph.Param; got {type(p).__name__}.")
    if p.sparse:
        raise TypeError(f"nn.param: '{p.name}' is sparse; look rows up with nn.embedding (gradients stay sparse).")
    if not p.trainable:
        return Node(p.value, op="param")
    return Node(p.value, (), lambda g: p.add_grad(g), op="param", requires_grad=True)


# ---- arithmetic --------------------------------------------------------------------------------------------------


def add(a, b):
    """a + b with NumPy broadcasting (e.g. a bias row); each gradient is summed back to its operand's shape."""
    a, b = _pair(a, b, "nn.add", broadcast=True)

    def backward(g):
        for p in (a, b):
            if p.requires_grad:
                gp = _unbroadcast(g, p.value.shape)
                p.add_grad(gp, owned=gp is not g)

    return _out(a.value + b.value, (a, b), backward, "add")


def sub(a, b):
    """a - b with broadcasting."""
    a, b = _pair(a, b, "nn.sub", broadcast=True)

    def backward(g):
        if a.requires_grad:
            ga = _unbroadcast(g, a.value.shape)
            a.add_grad(ga, owned=ga is not g)
        if b.requires_grad:
            b.add_grad(-_unbroadcast(g, b.value.shape), owned=True)

    return _out(a.value - b.value, (a, b), backward, "sub")


def mul(a, b):
    """Elementwise a * b with broadcasting."""
    a, b = _pair(a, b, "nn.mul", broadcast=True)
    av, bv = a.value, b.value

    def backward(g):
        if a.requires_grad:
            a.add_grad(_unbroadcast(g * bv, av.shape), owned=True)
        if b.requires_grad:
            b.add_grad(_unbroadcast(g * av, bv.shape), owned=True)

    return _out(av * bv, (a, b), backward, "mul")


def scale(a, c):
    """c * a for a constant real c."""
    a = as_node(a)
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"nn.scale: 'c' must be a real number; got {c!r}. Use nn.mul for a node or an array.")
    c = a.value.dtype.type(c) if a.value.dtype.kind == "f" else float(c)   # NumPy 1 made float32 0-d * float float64
    return _out(a.value * c, (a,), lambda g: a.add_grad(g * c, owned=True), "scale")


def sum(a):  # noqa: A001 (the node type is called sum)
    """The sum of all entries: a scalar node."""
    a = as_node(a)
    dt, shape = a.value.dtype, a.value.shape
    return _out(_scalar(a.value.sum(), dt), (a,), lambda g: a.add_grad(np.full(shape, g, dtype=dt), owned=True), "sum")


def mean(a):
    """The mean of all entries: a scalar node."""
    a = as_node(a)
    dt, shape, n = a.value.dtype, a.value.shape, a.value.size
    if n == 0:
        raise ValueError("nn.mean: 'a' must have at least one entry; got shape {}.".format(shape))
    return _out(_scalar(a.value.sum() / n, dt), (a,),
                lambda g: a.add_grad(np.full(shape, g / n, dtype=dt), owned=True), "mean")


def concat(nodes, axis=-1):
    """Concatenate nodes along `axis` (default: the feature axis); the gradient is split back."""
    nodes = list(nodes)
    if not nodes:
        raise ValueError("nn.concat: 'nodes' must not be empty.")
    first = next((n for n in nodes if isinstance(n, Node)), None)
    dt = first.value.dtype if first is not None else None
    nodes = [as_node(n, dt) for n in nodes]
    for n in nodes:
        if n.value.dtype != nodes[0].value.dtype:
            raise TypeError(f"nn.concat: every input must have one dtype; got {n.value.dtype} and "
                            f"{nodes[0].value.dtype}. Cast the inputs.")
    value = np.concatenate([n.value for n in nodes], axis=axis)
    ax = axis % value.ndim
    bounds = np.cumsum([0] + [n.value.shape[ax] for n in nodes])

    def backward(g):
        for n, lo, hi in zip(nodes, bounds[:-1], bounds[1:]):
            if n.requires_grad:
                sl = [slice(None)] * g.ndim
                sl[ax] = slice(int(lo), int(hi))
                n.add_grad(g[tuple(sl)])

    return _out(value, nodes, backward, "concat")


def split(a, n, axis=0):
    """n equal parts of `a` along `axis` (the inverse of concat); each part's gradient goes back into its slice."""
    a = as_node(a)
    nd = a.value.ndim
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -nd <= axis < nd:
        # (axis % ndim split a 1-d array along axis 0 for axis=3, silently)
        raise ValueError(f"nn.split: 'axis' must be an int in [{-nd}, {nd}); got {axis!r}.")
    ax = int(axis) % nd
    size = a.value.shape[ax]
    if isinstance(n, bool) or not (isinstance(n, numbers.Integral) and n >= 1 and size % n == 0):
        raise ValueError(f"nn.split: 'n' must be a positive int dividing the axis length {size}; got {n!r}.")
    k = size // n
    parts = []
    for i in range(int(n)):
        sl = [slice(None)] * a.value.ndim
        sl[ax] = slice(i * k, (i + 1) * k)
        sl = tuple(sl)

        def backward(g, sl=sl):
            full = np.zeros_like(a.value)
            full[sl] = g
            a.add_grad(full, owned=True)

        parts.append(_out(a.value[sl], (a,), backward, "split"))
    return parts


def narrow(a, axis, start, length):
    """The slice start:start+length of `a` along `axis` (a view, as torch.narrow); its gradient goes back into that
    slice (zeros elsewhere).  E.g. an RNN's last step: narrow(H, 0, T - 1, 1).

    >>> from fastnn import nn
    >>> nn.narrow(np.arange(6.0).reshape(3, 2), 0, 1, 2).value
    array([[2., 3.],
           [4., 5.]])
    """
    a = as_node(a)
    where = "nn.narrow"
    nd = a.value.ndim
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -nd <= axis < nd:
        raise ValueError(f"{where}: 'axis' must be an int in [{-nd}, {nd}); got {axis!r}.")
    ax = int(axis) % nd
    size = a.value.shape[ax]
    check_scalar(start, "start", where, low=0, high=size, integer=True)
    check_scalar(length, "length", where, low=0, high=size - start, integer=True)
    if start == 0 and length == size:
        return a
    sl = [slice(None)] * nd
    sl[ax] = slice(start, start + length)
    sl = tuple(sl)

    def backward(g):
        full = np.zeros_like(a.value)
        full[sl] = g
        a.add_grad(full, owned=True)

    return _out(a.value[sl], (a,), backward, "narrow")


def reshape(a, shape):
    """a with a new shape (same entries)."""
    a = as_node(a)
    old = a.value.shape
    return _out(a.value.reshape(shape), (a,), lambda g: a.add_grad(g.reshape(old)), "reshape")


def matmul(a, b):
    """a @ b for 2-D nodes (for small hand-built graphs; layers use kernels.gemm directly)."""
    a, b = _pair(a, b, "nn.matmul")
    av, bv = a.value, b.value
    if av.ndim != 2 or bv.ndim != 2 or av.shape[1] != bv.shape[0]:
        raise ValueError(f"nn.matmul: operands must be 2-D with matching inner dimensions; got {av.shape} and "
                         f"{bv.shape}.")

    def backward(g):
        if a.requires_grad:
            a.add_grad(g @ bv.T, owned=True)
        if b.requires_grad:
            b.add_grad(av.T @ g, owned=True)

    return _out(av @ bv, (a, b), backward, "matmul")


# ---- nonlinearities ----------------------------------------------------------------------------------------------


def tanh(a):
    """tanh; d/dx = 1 - y^2."""
    a = as_node(a)
    y = np.tanh(a.value)

    def backward(g):
        d = y * y
        np.subtract(1, d, out=d)
        d *= g
        a.add_grad(d, owned=True)

    return _out(y, (a,), backward, "tanh")


def sigmoid(a):
    """The logistic function 1 / (1 + exp(-x)) (stable for large |x|); d/dx = y (1 - y)."""
    a = as_node(a)
    y = expit(a.value)

    def backward(g):
        d = 1 - y
        d *= y
        d *= g
        a.add_grad(d, owned=True)

    return _out(y, (a,), backward, "sigmoid")


def hardtanh(a):
    """clip(x, -1, 1); gradient 1 inside (-1, 1), 0 outside (0 at the kinks)."""
    a = as_node(a)
    x = a.value
    return _out(np.clip(x, -1, 1), (a,), lambda g: a.add_grad(g * (np.abs(x) < 1), owned=True), "hardtanh")


def softsign(a):
    """x / (1 + |x|); d/dx = 1 / (1 + |x|)^2."""
    a = as_node(a)
    den = 1 + np.abs(a.value)

    def backward(g):
        d = g / den
        d /= den
        a.add_grad(d, owned=True)

    return _out(a.value / den, (a,), backward, "softsign")


def relu(a):
    """max(x, 0); gradient 1 where x > 0 (0 at the kink)."""
    a = as_node(a)
    x = a.value
    return _out(np.maximum(x, 0), (a,), lambda g: a.add_grad(g * (x > 0), owned=True), "relu")


def maxout(z, k):
    """Max over groups of k consecutive features: z (..., n_out * k) -> (..., n_out), unit j taking pieces
    z[..., j*k : (j+1)*k] (Goodfellow et al. 2013).  The gradient goes to the winning piece (first on ties)."""
    z = as_node(z)
    zv = z.value
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 or zv.shape[-1] % k:
        raise ValueError(f"nn.maxout: 'k' must be a positive integer dividing the last dimension {zv.shape[-1]}; "
                         f"got {k!r}.")
    z3 = zv.reshape(zv.shape[:-1] + (zv.shape[-1] // k, k))
    arg = z3.argmax(axis=-1)[..., None]
    y = np.take_along_axis(z3, arg, axis=-1)[..., 0]

    def backward(g):
        dz = np.zeros_like(z3)
        np.put_along_axis(dz, arg, g[..., None], axis=-1)
        z.add_grad(dz.reshape(zv.shape), owned=True)

    return _out(y, (z,), backward, "maxout")


def max_over_time(x, lengths):
    """Max over the first lengths[b] positions of each sequence: x (B, T, F), lengths (B,) ints in [1, T] ->
    (B, F) (Collobert et al.'s max layer over a convolution's outputs).  The gradient goes to the winning position
    (the first on ties); positions past a sequence's length get none."""
    x = as_node(x)
    xv = x.value
    if xv.ndim != 3 or xv.shape[1] < 1:
        raise ValueError(f"nn.max_over_time: 'x' must be (B, T, F) with T >= 1; got shape {xv.shape}.")
    B, T, _ = xv.shape
    lengths = np.asarray(lengths)
    if (lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer)
            or (B and (lengths.min() < 1 or lengths.max() > T))):
        raise ValueError(f"nn.max_over_time: 'lengths' must be {B} ints in [1, {T}]; got {lengths!r}.")
    past = np.arange(T)[None, :] >= lengths[:, None]                  # (B, T): positions past the end
    masked = np.where(past[:, :, None], -np.inf, xv) if past.any() else xv
    arg = masked.argmax(axis=1)[:, None, :]                            # (B, 1, F)
    y = np.take_along_axis(xv, arg, axis=1)[:, 0]

    def backward(g):
        dx = np.zeros_like(xv)
        np.put_along_axis(dx, arg, g[:, None, :], axis=1)
        x.add_grad(dx, owned=True)

    return _out(y, (x,), backward, "max_over_time")


def take(a, idx):
    """Rows of a node: a (R, ...) and integer idx (any shape) -> idx.shape + a.shape[1:]; rows taken several times
    add their gradients."""
    a = as_node(a)
    av = a.value
    idx = np.asarray(idx)
    R = av.shape[0] if av.ndim else 0
    if not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < 0 or idx.max() >= R)):
        raise IndexError(f"nn.take: 'idx' must be ints in [0, {R}); got {idx.dtype} "
                         f"{'' if not idx.size else f'in [{idx.min()}, {idx.max()}]'}.")
    flat = idx.ravel()

    def backward(g):
        d = np.zeros_like(av)
        if flat.size:                          # the rows of repeated indices summed by the embedding kernel
            rows, summed = kernels.coalesce_rows(flat, np.ascontiguousarray(g.reshape(len(flat), -1)), R)
            d.reshape(R, -1)[rows] = summed
        a.add_grad(d, owned=True)

    return _out(av[flat].reshape(idx.shape + av.shape[1:]), (a,), backward, "take")


def dropout(a, p, rng, training=True):
    """Inverted dropout: in training each entry is kept with probability 1 - p and scaled by 1 / (1 - p), so
    E[output] = input; in evaluation it is the identity.  (Equivalent to the lecture's "train with the plain mask,
    halve the weights at test time" for p = 0.5 with weights scaled by 1 - p; see tests/test_nn.py.)"""
    a = as_node(a)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"nn.dropout: 'p' must be in [0, 1); got {p!r}.")
    if not training or p == 0:
        return a
    if not isinstance(rng, np.random.Generator):    # (an int seed would draw the same mask at every call)
        raise TypeError(f"nn.dropout: 'rng' must be a np.random.Generator (np.random.default_rng(seed)); got "
                        f"{type(rng).__name__}.")
    dt = a.value.dtype
    mask = rng.random(a.value.shape, dtype=dt if dt in (np.float32, np.float64) else np.float64) >= p
    mask = np.multiply(mask, 1.0 / (1.0 - p), dtype=dt)
    return _out(a.value * mask, (a,), lambda g: a.add_grad(g * mask, owned=True), "dropout")


# ---- affine maps and lookups on Params ---------------------------------------------------------------------------


def linear(x, W, b=None):
    """x @ W.T + b for x (..., n_in), W (n_out, n_in), b (n_out,) Params, through BLAS (kernels.gemm).

    Backward: W.grad += g.T @ x and b.grad += column sums, accumulated in place; dx = g @ W only if x needs it.
    """
    n_out, n_in = W.value.shape
    x = as_node(x, W.value.dtype)
    xv = x.value
    if xv.dtype != W.value.dtype:
        raise TypeError(f"nn.linear: the input must have dtype {W.value.dtype} to match '{W.name}'; got {xv.dtype}. "
                        "Cast the input (parameters keep their dtype).")
    if xv.ndim < 1 or xv.shape[-1] != n_in:
        raise ValueError(f"nn.linear: the input must have shape (..., {n_in}) to match '{W.name}' {W.value.shape}; "
                         f"got {xv.shape}.")
    if W.sparse:
        raise TypeError(f"nn.linear: '{W.name}' is a sparse (embedding) Param; an affine node needs a dense one.")
    if b is not None and b.value.shape != (n_out,):
        raise ValueError(f"nn.linear: the bias '{b.name}' must have shape ({n_out},) to match '{W.name}' "
                         f"{W.value.shape}; got {b.value.shape}.")
    x2 = np.ascontiguousarray(xv).reshape(-1, n_in)
    Wv = W.value
    y = np.empty((x2.shape[0], n_out), dtype=Wv.dtype)
    if b is not None:
        y[...] = b.value
        kernels.gemm(x2, Wv, trans_b=True, beta=1.0, out=y)
    else:
        kernels.gemm(x2, Wv, trans_b=True, out=y)
    y = y.reshape(xv.shape[:-1] + (n_out,))
    need_x = x.requires_grad
    need_b = b is not None and b.trainable
    if not (need_x or W.trainable or need_b):
        return Node(y, op="linear")

    def backward(g):
        g2 = np.ascontiguousarray(g).reshape(-1, n_out)
        W.add_grad_matmul(g2, x2)
        if need_b:
            _param_colsum(b, g2)
        if need_x:
            x.add_grad(kernels.gemm(g2, Wv).reshape(xv.shape), owned=True)

    return Node(y, (x,), backward, "linear", requires_grad=True)


def embedding(W, idx, concat=True):
    """Rows of the (V, D) Param W for integer indices (kernels.gather_rows).

    idx (B,) -> (B, D); idx (B, w) -> (B, w*D) (a window's vectors concatenated) when concat, else idx.shape + (D,).
    Backward adds row gradients to W (a RowGrad for a sparse W: never a dense V x D array).
    """
    idx = np.asarray(idx)
    D = W.value.shape[1]
    flat = idx.ravel()
    rows = kernels.gather_rows(W.value, flat)
    if concat and idx.ndim >= 2:
        shape = idx.shape[:-1] + (idx.shape[-1] * D,)
    else:
        shape = idx.shape + (D,)
    y = rows.reshape(shape)
    if not W.trainable:
        return Node(y, op="embedding")
    return Node(y, (), lambda g: W.add_row_grad(flat, g.reshape(-1, D)), "embedding", requires_grad=True)


# ---- losses ------------------------------------------------------------------------------------------------------


def _reduction_scale(reduction, n, where):
    if reduction == "mean":
        if n == 0:
            raise ValueError(f"{where}: the mean needs at least one target; got none.")
        return 1.0 / n
    if reduction == "sum":
        return 1.0
    raise ValueError(f"{where}: 'reduction' must be 'mean' or 'sum'; got {reduction!r}.")


def softmax_cross_entropy(logits, targets, reduction="mean"):
    """Cross-entropy of softmax(logits) against integer targets (kernels.softmax_xent): a scalar node.

    logits (..., V) and targets of shape logits.shape[:-1].  The gradient (softmax - onehot) * scale is computed by
    the kernel during fprop (it is nearly free there) and handed over in bprop.
    """
    where = "nn.softmax_cross_entropy"
    logits = as_node(logits)
    x = logits.value
    t = np.asarray(targets)
    if x.ndim < 1 or t.shape != x.shape[:-1]:
        raise ValueError(f"{where}: 'targets' must have shape {x.shape[:-1]} to match logits {x.shape}; "
                         f"got {t.shape}.")
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    t = t.ravel()
    s = _reduction_scale(reduction, x2.shape[0], where)
    need = logits.requires_grad
    loss, grad = kernels.softmax_xent(x2, t, scale=s, want_grad=need)
    value = _scalar(loss.sum() * s, x.dtype)
    if not need:
        return Node(value, op="softmax_xent")
    held = [grad]

    def backward(g):
        gx = held[0]
        held[0] = None  # handed over below; a second backward recomputes it
        if gx is None:
            gx = kernels.softmax_xent(x2, t, scale=s)[1]
        if float(g) != 1.0:
            gx *= g
        logits.add_grad(gx.reshape(x.shape), owned=True)

    return Node(value, (logits,), backward, "softmax_xent")


def hinge(pos_score, neg_score, margin=1.0):
    """Max-margin ranking loss mean(max(0, margin - pos + neg)) (Collobert & Weston 2008): a true window should
    outscore a corrupted one by `margin`.  Scores of equal shape (e.g. (B,) or (B, 1))."""
    pos, neg = _pair(pos_score, neg_score, "nn.hinge")
    if pos.value.shape != neg.value.shape:
        raise ValueError(f"nn.hinge: the scores must have one shape; got {pos.value.shape} and {neg.value.shape}.")
    v = margin - pos.value + neg.value
    active = v > 0
    n = v.size
    s = _reduction_scale("mean", n, "nn.hinge")
    value = _scalar(np.where(active, v, 0).sum() * s, v.dtype)

    def backward(g):
        d = active * (float(g) * s)
        d = d.astype(v.dtype, copy=False)
        if pos.requires_grad:
            pos.add_grad(-d, owned=True)
        if neg.requires_grad:
            neg.add_grad(d if not pos.requires_grad else d.copy(), owned=True)

    return _out(value, (pos, neg), backward, "hinge")


def mse(pred, target):
    """Mean squared error mean((pred - target)^2) over all entries: a scalar node."""
    pred, target = _pair(pred, target, "nn.mse")
    if pred.value.shape != target.value.shape:
        raise ValueError(f"nn.mse: 'target' must have shape {pred.value.shape}; got {target.value.shape}.")
    diff = pred.value - target.value
    s = _reduction_scale("mean", diff.size, "nn.mse")

    def backward(g):
        d = diff * (2.0 * s * float(g))
        if pred.requires_grad:
            pred.add_grad(d, owned=not target.requires_grad)
        if target.requires_grad:
            target.add_grad(-d, owned=True)

    return _out(_scalar(np.dot(diff.ravel(), diff.ravel()) * s, diff.dtype), (pred, target), backward, "mse")
