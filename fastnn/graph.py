"""The flow graph: parameters, nodes, and back-propagation in reverse topological order.

A graph is built by running plain Python on a batch: every operation (fastnn.nn) makes a `Node` holding its value
(fprop happens as the node is made, so creation order is a topological order) and a `backward_fn` that, given the
gradient wrt the node's value, ADDS the gradients wrt its inputs into their `.grad` (and into parameters' grads).
`backward(loss)` seeds d loss / d loss = 1 and visits the nodes in reverse topological order, so a value that feeds
several successors receives the sum of their gradients (the multiple-paths chain rule), and a parameter used by
several nodes accumulates the gradient of every use.  The walk is iterative (no recursion limit for long BPTT
unrolls) and its order depends only on how the graph was built, so results are deterministic.

Embedding parameters (`Param(..., sparse=True)`) receive row gradients: `Param.grad` is then a `RowGrad` of unique
ascending rows and their summed gradients, never a dense V x D array.

A node type adds gradients only through the public hooks: `Node.add_grad(g, owned=)`, `Param.add_grad(g, owned=)`,
`Param.add_row_grad(idx, G)` and `Param.add_grad_matmul(a, b)` (grad += a.T @ b, in place through BLAS).
"""
import contextlib

import numpy as np

from fastnn import kernels
from fastnn._validation import check_bool, check_float_dtype


class RowGrad:
    """A sparse gradient of a (V, D) parameter: `values[r]` is the gradient of row `rows[r]`; rows are unique and
    ascending (coalesced); every other row's gradient is zero."""

    __slots__ = ("rows", "values", "n_rows")

    def __init__(self, rows, values, n_rows):
        self.rows = rows
        self.values = values
        self.n_rows = n_rows

    @classmethod
    def from_rows(cls, idx, G, n_rows):
        """Coalesce possibly repeated row indices `idx` (N,) with gradient rows G (N, D)."""
        rows, values = kernels.coalesce_rows(np.asarray(idx).ravel(), G, n_rows)
        return cls(rows, values, n_rows)

    def __add__(self, other):
        if not isinstance(other, RowGrad):
            return NotImplemented
        return RowGrad.from_rows(np.concatenate([self.rows, other.rows]),
                                 np.concatenate([self.values, other.values]), self.n_rows)

    def to_dense(self):
        """The dense (V, D) gradient (for tests and gradient checks only)."""
        out = np.zeros((self.n_rows, self.values.shape[1]), dtype=self.values.dtype)
        out[self.rows] = self.values
        return out

    def scale_(self, a):
        self.values *= a
        return self

    def __repr__(self):
        return f"RowGrad({len(self.rows)} of {self.n_rows} rows, dim {self.values.shape[1]})"


class _Valued:
    """The shape and dtype of `self.value` (Param, Node)."""

    __slots__ = ()

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype


class Param(_Valued):
    """A named parameter array with a gradient slot.

    Parameters
    ----------
    name : stable dotted name ("embed.W").
    value : float32 or float64 ndarray, kept C-contiguous; optimizers update it in place.
    sparse : gradients arrive as rows (embeddings): `grad` is a RowGrad.
    decay : weight decay applies (True for weights and embeddings, False for biases, as Bengio et al. 2003).
    trainable : False freezes it (no gradient is accumulated, optimizers skip it).
    """

    def __init__(self, name, value, *, sparse=False, decay=True, trainable=True):
        # (bool("no") is True: Param(..., trainable="no") trained, decay="False" decayed)
        sparse, decay, trainable = (check_bool(v, k, f"Param '{name}'") for k, v in
                                    (("sparse", sparse), ("decay", decay), ("trainable", trainable)))
        value = np.asarray(value)
        if not (value.flags.c_contiguous and value.flags.writeable):   # optimizers write into it, C-ordered
            value = np.array(value, order="C")      # (np.ascontiguousarray made a 0-d value 1-d)
        if value.dtype not in (np.float32, np.float64):
            raise TypeError(f"Param: '{name}' must have dtype float32 or float64; got {value.dtype}.")
        if sparse and value.ndim != 2:
            raise ValueError(f"Param: a sparse parameter must be 2-D (rows); got shape {value.shape} for '{name}'.")
        self.name = name
        self.value = value
        self.sparse = sparse
        self.decay = decay
        self.trainable = trainable
        self.grad = None

    def zero_grad(self):
        self.grad = None

    def add_grad(self, g, *, owned=False):
        """Add a dense gradient (same shape as the value).  owned=True: g is a fresh array that nobody else holds,
        taken over as the grad without a copy when it is the first."""
        if not self.trainable:
            return
        if self.sparse:
            raise TypeError(f"Param.add_grad: '{self.name}' is sparse; use add_row_grad(rows, G).")
        if np.shape(g) != self.value.shape:  # a broadcast would silently add the wrong thing
            raise ValueError(f"Param.add_grad: the gradient of '{self.name}' must have shape {self.value.shape}; "
                             f"got {np.shape(g)}.")
        if self.grad is None:
            if owned and g.dtype == self.dtype and g.flags.c_contiguous:
                self.grad = g
            else:
                self.grad = np.array(g, dtype=self.dtype, copy=True, order="C")
        else:
            self.grad += g

    def add_grad_matmul(self, a, b):
        """grad += a.T @ b (the weight gradient of an affine map), accumulated in place by BLAS when it can be."""
        if not self.trainable:
            return
        if self.sparse:
            raise TypeError(f"Param.add_grad_matmul: '{self.name}' is a sparse (embedding) Param; an affine node "
                            "needs a dense one.")
        gr = self.grad
        if gr is None:
            self.grad = kernels.gemm(a, b, trans_a=True)
        elif isinstance(gr, np.ndarray) and gr.dtype == self.dtype and gr.flags.c_contiguous and gr.flags.writeable:
            kernels.gemm(a, b, trans_a=True, beta=1.0, out=gr)
        else:
            self.add_grad(kernels.gemm(a, b, trans_a=True))

    def add_row_grad(self, idx, G):
        """Add gradient rows G (N, D) for (possibly repeated) rows idx (N,); coalesced into a RowGrad."""
        if not self.trainable:
            return
        if not self.sparse:
            dense = np.zeros_like(self.value)
            flat = np.asarray(idx).ravel()
            kernels.scatter_add_(dense, flat, np.ascontiguousarray(G, dtype=self.dtype).reshape(len(flat), -1))
            self.add_grad(dense)
            return
        rg = RowGrad.from_rows(idx, np.ascontiguousarray(G, dtype=self.dtype), self.value.shape[0])
        self.grad = rg if self.grad is None else self.grad + rg

    def __repr__(self):
        flags = "".join([", sparse" if self.sparse else "", "" if self.decay else ", no decay",
                         "" if self.trainable else ", frozen"])
        return f"Param('{self.name}', shape={self.shape}, dtype={self.dtype}{flags})"


class Node(_Valued):
    """A value in the flow graph.

    value : the ndarray computed in fprop.
    parents : the Nodes it was computed from (in a fixed order).
    backward_fn : callable(g) adding the gradients wrt the parents (and parameters) given g = d loss / d value; None
        for inputs and constants.
    grad : d loss / d value, accumulated during backward (None until something flows in).
    requires_grad : whether consumers should send gradients here.  Default: True for computed nodes (those with a
        backward_fn), False for inputs; ops skip the gradient of an input that does not require it (e.g. data).
    """

    __slots__ = ("value", "parents", "backward_fn", "grad", "op", "requires_grad")

    def __init__(self, value, parents=(), backward_fn=None, op="input", requires_grad=None):
        self.value = value
        self.parents = tuple(parents)
        self.backward_fn = backward_fn
        self.grad = None
        self.op = op
        self.requires_grad = backward_fn is not None if requires_grad is None else bool(requires_grad)

    def add_grad(self, g, *, owned=False):
        """grad += g.  owned=True: g is a fresh array that nobody else holds, taken over as the grad without a copy
        when it is the first."""
        if self.grad is None:
            if owned and g.dtype == self.value.dtype and g.shape == self.value.shape:
                self.grad = g
            else:
                self.grad = np.array(g, dtype=self.value.dtype, copy=True)
        else:
            self.grad += g

    def backward(self, grad=None, *, keep_grads=False):
        """Back-propagate from this node (see fastnn.graph.backward)."""
        backward(self, grad, keep_grads=keep_grads)

    def __reduce_ex__(self, protocol):
        # pickle, copy.copy and copy.deepcopy all come here.  A computed node's backward_fn is a closure over the
        # graph and the Params it was built from: pickle failed on it with "Can't pickle local object
        # 'linear.<locals>.backward'", and a deep copy shared it, so its backward() added into the ORIGINAL
        # model's gradients.  (An input node is plain data and copies as such.)
        if self.backward_fn is not None:
            raise TypeError(f"Node: a computed graph node ({self.op!r}) cannot be pickled or copied: its backward "
                            "adds into the graph and parameters it was built from, not a copy's. Keep its value "
                            "(node.value.copy(), float(node.value)); to keep a model, copy or pickle the model, or "
                            "save it with fastnn.io.save_model and read it back with fastnn.io.load_model.")
        return super().__reduce_ex__(protocol)

    def __repr__(self):
        return f"Node({self.op}, shape={self.value.shape}, dtype={self.value.dtype})"


def constant(value, requires_grad=False):
    """An input node.  With requires_grad=True, backward() leaves d loss / d value in its .grad (e.g. to check
    gradients wrt inputs); otherwise ops skip computing it."""
    return Node(np.asarray(value), op="input", requires_grad=check_bool(requires_grad, "requires_grad", "constant"))


def topological_order(root):
    """Nodes reachable from root, each after all of its parents (iterative DFS, deterministic)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in reversed(node.parents):
            if id(p) not in seen:
                stack.append((p, False))
    return order


def backward(loss, grad=None, *, keep_grads=False):
    """bprop: set d loss / d loss (1 for a scalar, or `grad`), then visit nodes in reverse topological order.

    Each node's backward_fn adds into its parents' grads; parameters accumulate into Param.grad.  Intermediate
    gradients are released as soon as a node is done (memory stays proportional to fprop's) unless keep_grads;
    inputs (nodes without backward_fn) always keep theirs and accumulate over calls, like parameters.
    """
    if keep_grads is not False and keep_grads is not True:    # (once per backward: "no" kept every gradient)
        keep_grads = check_bool(keep_grads, "keep_grads", "backward")
    if grad is None:
        if loss.value.size != 1:
            raise ValueError(f"backward: the loss must be a scalar; got shape {loss.value.shape}. "
                             "Sum or average it, or pass grad=.")
        grad = np.ones_like(loss.value)
    order = topological_order(loss)
    for node in order:  # gradients left by an earlier backward(keep_grads=True) must not be propagated again
        if node.backward_fn is not None:
            node.grad = None
    loss.add_grad(grad)
    for node in reversed(order):
        if node.backward_fn is not None and node.grad is not None:
            node.backward_fn(node.grad)
        if not keep_grads and node is not loss and node.backward_fn is not None:
            node.grad = None


def _members(key, val):
    """[(name, Param or Module)] that attribute `key` holds: itself, or the items of a list or tuple ("key.0") or the
    values of a dict with str keys ("key.name") made only of Params and Modules.  (Only lists of Modules were read: a
    dict of layers or a list of Params in a user's Module was left out of parameters(), so no optimizer trained it and
    no model file held it, silently.)"""
    if isinstance(val, (Param, Module)):
        return [(key, val)]
    is_dict = isinstance(val, dict)
    if not ((is_dict or isinstance(val, (list, tuple))) and val):
        return []
    # (all() stops at the first item of another kind: a model's list of words costs one look)
    if not all(isinstance(v, (Param, Module)) for v in (val.values() if is_dict else val)):
        return []
    if is_dict:
        return [(f"{key}.{k}", v) for k, v in val.items()] if all(isinstance(k, str) for k in val) else []
    return [(f"{key}.{i}", v) for i, v in enumerate(val)]


class Module:
    """Base of layers and models: owns Params (directly or through sub-modules) under stable dotted names.

    Subclasses assign Params and Modules as attributes; `parameters()` finds them in assignment order.
    `train()` / `eval()` switch dropout; `astype(np.float64)` casts every parameter (for gradient checks), and `dtype` is theirs.
    """

    training = True

    @classmethod
    def from_config(cls, cfg):
        """The model that `config()` describes (fastnn.io.load_model); a dtype is stored by its name."""
        cfg = dict(cfg)
        if "dtype" in cfg:
            cfg["dtype"] = np.dtype(cfg["dtype"])
        return cls(**cfg)

    def parameters(self, prefix=""):
        """dict name -> Param, names like "hidden.W", in a stable order.  A Param reachable under several names
        (tied weights) is listed once, under the first name, so optimizers update it once."""
        out, seen = {}, set()
        for name, p in self._named_params(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                out[name] = p
        return out

    def _named_params(self, prefix):
        for key, val in vars(self).items():
            for name, v in _members(key, val):
                if isinstance(v, Param):
                    yield f"{prefix}{name}", v
                else:
                    yield from v._named_params(f"{prefix}{name}.")

    def zero_grad(self):
        for p in self.parameters().values():
            p.zero_grad()

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_modules(self, prefix=""):
        """(dotted name with its trailing dot, module) of this module ("" for itself) and every sub-module, named as
        parameters() names their Params: "drop.", "layers.0.", "heads.ner."."""
        yield prefix, self
        for key, val in vars(self).items():
            for name, v in _members(key, val):
                if isinstance(v, Module):
                    yield from v.named_modules(f"{prefix}{name}.")

    def train(self, mode=True):
        mode = check_bool(mode, "mode", f"{type(self).__name__}.train")     # (train("eval") trained: a str is true)
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """`with model.evaluating():` runs the block in eval mode and restores the previous mode after it."""
        was = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was)

    @contextlib.contextmanager
    def frozen(self):
        """`with model.frozen():` makes every parameter untrainable within the block, so ops skip all gradient
        bookkeeping (evaluation without a graph); the flags are restored after it."""
        params = list(self.parameters().values())
        saved = [p.trainable for p in params]
        try:
            for p in params:
                p.trainable = False
            yield self
        finally:
            for p, was in zip(params, saved):
                p.trainable = was

    @property
    def dtype(self):
        """The parameters' dtype (np.dtype; None without parameters).  Models read it rather than keep their own, so
        astype changes what they compute in and what their config() (the model file) says."""
        return next((p.dtype for p in self.parameters().values()), None)

    def astype(self, dtype):
        """Cast every parameter to dtype (float32 or float64, as Param requires) in place of the old arrays
        (gradients are cleared)."""
        dtype = check_float_dtype(dtype, f"{type(self).__name__}.astype")
        for p in self.parameters().values():
            p.value = np.ascontiguousarray(p.value, dtype=dtype)
            p.grad = None
        return self

    def __repr__(self):
        params = ", ".join(f"{k}{tuple(p.shape)}" for k, p in self.parameters().items())
        return f"{type(self).__name__}({params})"
