"""Layers: Modules that own Params and are called like functions on Nodes (or arrays).

Each layer reads its parameters' dtype at call time, so `module.astype(np.float64)` (gradient checks) just works.
Random initialisation always takes `rng` (an int seed or a numpy Generator).
"""
import numbers

import numpy as np

from fastnn import init as _init
from fastnn import kernels
from fastnn._validation import check_int
from fastnn.graph import Module, Node, Param, RowGrad
from fastnn.nn import functional as F

LINEAR_INITS = ("glorot_tanh", "glorot_sigmoid", "zeros", "identity", "compose")


def _weight(init, n_in, n_out, rng, dtype, where):
    """An (n_out, n_in) weight matrix for one of LINEAR_INITS."""
    if init == "glorot_tanh":
        return _init.glorot_uniform(n_in, n_out, rng, "tanh", dtype=dtype)
    if init == "glorot_sigmoid":
        return _init.glorot_uniform(n_in, n_out, rng, "sigmoid", dtype=dtype)
    if init == "zeros":
        return _init.zeros((n_out, n_in), dtype=dtype)
    if init == "identity":
        if n_in != n_out:
            raise ValueError(f"{where}: init='identity' needs n_in == n_out; got {n_in} and {n_out}.")
        return _init.identity(n_in, dtype=dtype)
    if init == "compose":
        if n_in != 2 * n_out:
            raise ValueError(f"{where}: init='compose' needs n_in == 2 * n_out; got {n_in} and {n_out}.")
        return _init.compose_matrix(n_out, rng, dtype=dtype)
    raise ValueError(f"{where}: 'init' must be one of {LINEAR_INITS}; got {init!r}.")


class Linear(Module):
    """Affine node y = x @ W.T + b, W (n_out, n_in), b (n_out,) (b without weight decay).

    Works on (B, n_in) and (T, B, n_in) inputs.  init: "glorot_tanh" (default; U(-r, r), r = sqrt(6/(n_in+n_out))),
    "glorot_sigmoid" (4r), "zeros", "identity", "compose" (0.5 [I I] + U(-0.001, 0.001), for n_in = 2 n_out:
    the average of the two halves).
    Biases start at zero; set `lin.b.value[:] = fastnn.init.output_bias_...(...)` for an output layer.
    """

    def __init__(self, n_in, n_out, *, rng, dtype=np.float32, bias=True, init="glorot_tanh"):
        n_in, n_out = check_int(n_in, "n_in", "Linear"), check_int(n_out, "n_out", "Linear")
        self.W = Param("W", _weight(init, n_in, n_out, rng, dtype, "Linear"))
        self.b = Param("b", _init.zeros(n_out, dtype=dtype), decay=False) if bias else None

    def __call__(self, x):
        return F.linear(x, self.W, self.b)

    def __repr__(self):
        n_out, n_in = self.W.shape
        return f"Linear({n_in}, {n_out}, bias={self.b is not None}, dtype={self.W.dtype})"


class Embedding(Module):
    """A lookup table W (n_rows, dim), a sparse Param: its gradient is a RowGrad of the rows used.

    emb(idx (B,)) -> (B, dim); emb(idx (B, w)) -> (B, w*dim), the window's vectors concatenated;
    emb(idx, concat=False) -> idx.shape + (dim,) (e.g. (T, B) -> (T, B, dim) for an RNN).
    Initialised from U(-scale, scale).
    """

    def __init__(self, n_rows, dim, *, rng, dtype=np.float32, scale=0.1):
        n_rows, dim = check_int(n_rows, "n_rows", "Embedding"), check_int(dim, "dim", "Embedding")
        self.W = Param("W", _init.uniform((n_rows, dim), scale, rng, dtype=dtype), sparse=True)

    def __call__(self, idx, concat=True):
        return F.embedding(self.W, idx, concat=concat)

    def __repr__(self):
        return f"Embedding({self.W.shape[0]}, {self.W.shape[1]}, dtype={self.W.dtype})"


class Maxout(Module):
    """Maxout units (Goodfellow et al. 2013): k affine pieces per unit, output the max.

    W (n_out * k, n_in), b (n_out * k,); rows j*k .. j*k + k - 1 are unit j's pieces.  Glorot range over
    (n_in, n_out).
    """

    def __init__(self, n_in, n_out, k, *, rng, dtype=np.float32):
        n_in, n_out, k = check_int(n_in, "n_in", "Maxout"), check_int(n_out, "n_out", "Maxout"), check_int(k, "k", "Maxout")
        r = _init.glorot_range(n_in, n_out)
        self.k = k
        self.W = Param("W", _init.uniform((n_out * k, n_in), r, rng, dtype=dtype))
        self.b = Param("b", _init.zeros(n_out * k, dtype=dtype), decay=False)

    def __call__(self, x):
        return F.maxout(F.linear(x, self.W, self.b), self.k)

    def __repr__(self):
        return f"Maxout({self.W.shape[1]}, {self.W.shape[0] // self.k}, k={self.k}, dtype={self.W.dtype})"


class CharCNN(Module):
    """Word vectors from the word's characters (dos Santos and Zadrozny 2014): each character maps to a vector
    (`chars`, a lookup table), a convolution over `width` consecutive characters (`conv`, with pad characters past
    both ends of the word) gives `filters` features at every position, and the max over the word's positions is its
    vector.  cnn(ids (U, T) char ids, 0 = pad past each word's end; lengths (U,) in [1, T]) -> (U, filters)."""

    def __init__(self, n_chars, char_dim, filters, width=3, *, rng, dtype=np.float32, scale=0.1):
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1 or width % 2 == 0:
            raise ValueError(f"CharCNN: 'width' must be an odd positive integer; got {width!r}.")
        self.width = int(width)
        self.chars = Embedding(n_chars, char_dim, rng=rng, dtype=dtype, scale=scale)
        self.conv = Linear(self.width * check_int(char_dim, "char_dim", "CharCNN"), filters, rng=rng, dtype=dtype)

    def __call__(self, ids, lengths):
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"CharCNN: 'ids' must be (words, characters); got shape {ids.shape}.")
        U, T = ids.shape
        half = self.width // 2
        padded = np.zeros((U, T + 2 * half), dtype=np.int64)
        padded[:, half:half + T] = ids
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.width, axis=1).reshape(U * T, self.width)
        z = self.conv(self.chars(windows))                                 # (U * T, filters)
        return F.max_over_time(F.reshape(z, (U, T, z.value.shape[1])), lengths)

    def __repr__(self):
        n, d = self.chars.W.shape
        return (f"CharCNN({n} chars x {d}, {self.conv.W.shape[0]} filters of width {self.width}, "
                f"dtype={self.chars.W.dtype})")


class Dropout(Module):
    """Inverted dropout: in training, keep each entry with probability 1 - p and scale it by 1 / (1 - p); in eval
    mode, the identity.  In expectation over masks the training output equals the eval output, which is what the
    lecture's "train with the plain mask, halve the weights at test time" (p = 0.5) achieves by scaling at test time.

    The mask comes from self.rng; to hold it fixed across forward passes (gradient checks), reset
    `drop.rng = np.random.default_rng(seed)` before each pass.
    """

    def __init__(self, p, *, rng):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: 'p' must be in [0, 1); got {p!r}.")
        self.p = float(p)
        self.rng = _init.as_rng(rng, "Dropout")

    def __call__(self, x):
        return F.dropout(x, self.p, self.rng, self.training)

    def __repr__(self):
        return f"Dropout(p={self.p})"


def _project_sequence(x, W_ih, where):
    """What both recurrent layers start with: x (T, B, n_in) as a Node of W_ih's dtype (checked), x2 = its values as
    (T * B, n_in), and the input projection X = x W_ih^T as (T, B, rows of W_ih)."""
    dt = W_ih.value.dtype
    K, n_in = W_ih.value.shape
    x = F.as_node(x, dt)
    xv = x.value
    if xv.ndim != 3 or xv.shape[2] != n_in:
        raise ValueError(f"{where}: 'x' must have shape (T, B, {n_in}); got {xv.shape}.")
    if xv.dtype != dt:
        raise TypeError(f"{where}: 'x' must have dtype {dt} to match the parameters; got {xv.dtype}.")
    T, B, _ = xv.shape
    x2 = np.ascontiguousarray(xv).reshape(T * B, n_in)
    return x, x2, kernels.gemm(x2, W_ih.value, trans_b=True).reshape(T, B, K)


def _sequence_grads(layer, x, x2, dX, dW, db, need_x):
    """What both recurrent layers' backward ends with: the gradients of W_hh and b, and through the input projection
    X = x W_ih^T (dX = d loss / d X) those of W_ih and, when it needs one, of x."""
    layer.W_hh.add_grad(dW, owned=True)
    layer.b.add_grad(db, owned=True)
    dX2 = dX.reshape(x2.shape[0], -1)
    layer.W_ih.add_grad_matmul(dX2, x2)
    if need_x:
        x.add_grad(kernels.gemm(dX2, layer.W_ih.value).reshape(x.value.shape), owned=True)


class RNN(Module):
    """Elman recurrent layer: h_t = f(W_ih x_t + W_hh h_{t-1} + b), through kernels.rnn_forward / rnn_backward.

    W_ih (hidden, n_in), W_hh (hidden, hidden), b (hidden,).  init "glorot" draws both matrices from the Glorot
    range (x4 for sigmoid); "identity" sets W_hh = I (IRNN, Le et al. 2015, meant for activation="relu").
    clip > 0 clips each step's back-propagated error to [-clip, clip] (Mikolov); the gradient is then not exact.

    rnn(x, h0=None) with x (T, B, n_in) returns (H, h_last): H a Node (T, B, hidden), h_last an ndarray (B, hidden)
    to carry into the next segment (truncated BPTT).  h0: None (zeros), an array, or a Node (its gradient flows).
    """

    ACTIVATIONS = ("tanh", "sigmoid", "relu")

    def __init__(self, n_in, hidden, *, rng, activation="tanh", init="glorot", dtype=np.float32, clip=0.0):
        where = "RNN"
        n_in, hidden = check_int(n_in, "n_in", where), check_int(hidden, "hidden", where)
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"{where}: 'activation' must be one of {self.ACTIVATIONS}; got {activation!r}.")
        if init not in ("glorot", "identity"):
            raise ValueError(f"{where}: 'init' must be 'glorot' or 'identity'; got {init!r}.")
        if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip >= 0:
            raise ValueError(f"{where}: 'clip' must be a number >= 0; got {clip!r}.")
        rng = _init.as_rng(rng, where)
        gain = "sigmoid" if activation == "sigmoid" else "tanh"
        self.activation = activation
        self.clip = float(clip)
        self.W_ih = Param("W_ih", _init.glorot_uniform(n_in, hidden, rng, gain, dtype=dtype))
        W_hh = (_init.identity(hidden, dtype=dtype) if init == "identity"
                else _init.glorot_uniform(hidden, hidden, rng, gain, dtype=dtype))
        self.W_hh = Param("W_hh", W_hh)
        self.b = Param("b", _init.zeros(hidden, dtype=dtype), decay=False)

    def __call__(self, x, h0=None):
        W_ih, W_hh, b = self.W_ih, self.W_hh, self.b
        x, x2, X = _project_sequence(x, W_ih, "RNN")
        T, B, K = X.shape
        dt = W_hh.value.dtype
        h0_node = h0 if isinstance(h0, Node) else None
        h0v = np.zeros((B, K), dtype=dt) if h0 is None else (h0.value if h0_node is not None else np.asarray(h0))
        Whh = W_hh.value
        act, clip = self.activation, self.clip
        Hf = kernels.rnn_forward(X, Whh, b.value, h0v, activation=act)
        H, h_last = Hf[1:], Hf[-1].copy()
        need_x = x.requires_grad
        need_h0 = h0_node is not None and h0_node.requires_grad
        if not (need_x or need_h0 or W_ih.trainable or W_hh.trainable or b.trainable):
            return Node(H, op="rnn"), h_last

        def backward(g):
            dX, dW, db, dh0 = kernels.rnn_backward(np.ascontiguousarray(g), Hf, Whh, activation=act, clip=clip)
            _sequence_grads(self, x, x2, dX, dW, db, need_x)
            if need_h0:
                h0_node.add_grad(dh0, owned=True)

        parents = (x, h0_node) if h0_node is not None else (x,)
        return Node(H, parents, backward, "rnn", requires_grad=True), h_last

    def __repr__(self):
        K, n_in = self.W_ih.shape
        return f"RNN({n_in}, {K}, activation={self.activation!r}, clip={self.clip}, dtype={self.W_hh.dtype})"


class LSTM(Module):
    """Long short-term memory layer (Hochreiter and Schmidhuber 1997, with a forget gate; no peepholes), through
    kernels.lstm_forward / lstm_backward.  For each step t, with gates in torch's order (i, f, g, o):

        a_t = W_ih x_t + W_hh h_{t-1} + b                    (4 * hidden pre-activations)
        i_t = sigmoid(a_i),  f_t = sigmoid(a_f),  g_t = tanh(a_g),  o_t = sigmoid(a_o)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    W_ih (4 hidden, n_in), W_hh (4 hidden, hidden), b (4 hidden,): rows [k*hidden, (k+1)*hidden) belong to gate k of
    (i, f, g, o).  Each gate's block of W_ih and W_hh is drawn from the Glorot range of its own fan-in and fan-out;
    b is zero except the forget gate's block, `forget_bias` (1.0: remember by default, Jozefowicz et al. 2015).
    clip > 0 clips each step's back-propagated error at the gates' pre-activations element-wise to [-clip, clip]
    (Graves 2013; the LSTM form of Mikolov's clip in `RNN`); the gradient is then not exact.

    lstm(x, state=None) with x (T, B, n_in) returns (H, (h_last, c_last)): H a Node (T, B, hidden) of the h_t, and
    the final state as two ndarrays (B, hidden) to carry into the next segment (truncated BPTT).  state: None
    (zeros) or a pair (h0, c0), each None (zeros), an array or a Node (its gradient flows).  state_at=k returns the
    state after step k instead of the last (-1: the starting state), for segments that overlap the next one.
    """

    def __init__(self, n_in, hidden, *, rng, dtype=np.float32, forget_bias=1.0, clip=0.0):
        where = "LSTM"
        n_in, hidden = check_int(n_in, "n_in", where), check_int(hidden, "hidden", where)
        for name, v, low in (("forget_bias", forget_bias, None), ("clip", clip, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or (
                    low is not None and v < low):
                raise ValueError(f"{where}: '{name}' must be a finite number{' >= 0' if low is not None else ''}; "
                                 f"got {v!r}.")
        rng = _init.as_rng(rng, where)
        self.forget_bias, self.clip = float(forget_bias), float(clip)
        self.W_ih = Param("W_ih", _init.uniform((4 * hidden, n_in), _init.glorot_range(n_in, hidden), rng,
                                                dtype=dtype))
        self.W_hh = Param("W_hh", _init.uniform((4 * hidden, hidden), _init.glorot_range(hidden, hidden), rng,
                                                dtype=dtype))
        b = _init.zeros(4 * hidden, dtype=dtype)
        b[hidden:2 * hidden] = self.forget_bias
        self.b = Param("b", b, decay=False)

    def __call__(self, x, state=None, *, state_at=None):
        where = "LSTM"
        W_ih, W_hh, b = self.W_ih, self.W_hh, self.b
        x, x2, X = _project_sequence(x, W_ih, where)
        T, B, K4 = X.shape
        K = K4 // 4
        dt = W_hh.value.dtype
        if state is None:
            state = (None, None)
        elif not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"{where}: 'state' must be None or a pair (h0, c0); got {type(state).__name__}.")
        nodes = [s if isinstance(s, Node) else None for s in state]
        h0v, c0v = (np.zeros((B, K), dtype=dt) if s is None
                    else (s.value if isinstance(s, Node) else np.asarray(s, dtype=dt)) for s in state)
        if state_at is None:
            state_at = T - 1
        if isinstance(state_at, bool) or not isinstance(state_at, numbers.Integral) or not -1 <= state_at < T:
            raise ValueError(f"{where}: 'state_at' must be an integer in [-1, {T}); got {state_at!r}.")
        Whh, clip = W_hh.value, self.clip
        Hf, Cf, A = kernels.lstm_forward(X, Whh, b.value, h0v, c0v)
        last = (Hf[state_at + 1].copy(), Cf[state_at + 1].copy())
        H = Hf[1:]
        need_x = x.requires_grad
        need_state = [n is not None and n.requires_grad for n in nodes]
        if not (need_x or any(need_state) or W_ih.trainable or W_hh.trainable or b.trainable):
            return Node(H, op="lstm"), last

        def backward(g):
            dX, dW, db, dh0, dc0 = kernels.lstm_backward(np.ascontiguousarray(g), Hf, Cf, A, Whh, clip=clip)
            _sequence_grads(self, x, x2, dX, dW, db, need_x)
            for node, need, d in zip(nodes, need_state, (dh0, dc0)):
                if need:
                    node.add_grad(d, owned=True)

        parents = (x,) + tuple(n for n in nodes if n is not None)
        return Node(H, parents, backward, "lstm", requires_grad=True), last

    def __repr__(self):
        K4, n_in = self.W_ih.shape
        return (f"LSTM({n_in}, {K4 // 4}, forget_bias={self.forget_bias}, clip={self.clip}, "
                f"dtype={self.W_hh.dtype})")


class SoftmaxOutput(Module):
    """Softmax output layer fused with its cross-entropy (kernels.output_layer): logits = h @ W.T + b.

    W (n_classes, n_in) Glorot; b (n_classes,) zeros, or the log class priors when class_counts is given (the
    optimal bias for zero weights).  out.loss(h, targets) -> scalar Node (mean or sum over rows); out(h) -> the logits
    Node (for use with nn.softmax_cross_entropy); out.log_probs(h) -> ndarray (evaluation, no graph).

    In eval mode loss() skips the gradient work; calling backward through such a loss raises.
    `precision` (kernels.output_layer's): "bfloat16" runs a training loss's products on AMX tiles (float32 W, CPUs
    with AMX-BF16); evaluation stays float32.  It applies while the parameters are float32, the only dtype with
    bfloat16 products: after astype(np.float64) (a gradient check) the layer trains in float64, and astype(np.float32)
    brings the bfloat16 products back (`precision` keeps saying "bfloat16" throughout).  Setting "bfloat16" on float64
    parameters is refused, a request that could not take effect.
    """

    def __init__(self, n_in, n_classes, *, rng, dtype=np.float32, class_counts=None, precision="float32"):
        n_in, n_classes = check_int(n_in, "n_in", "SoftmaxOutput"), check_int(n_classes, "n_classes", "SoftmaxOutput")
        self.W = Param("W", _init.glorot_uniform(n_in, n_classes, rng, dtype=dtype))
        if class_counts is not None:
            bias = _init.output_bias_softmax(class_counts, dtype=dtype)
            if bias.shape != (n_classes,):
                raise ValueError(f"SoftmaxOutput: 'class_counts' must have {n_classes} entries; got {bias.shape[0]}.")
        else:
            bias = _init.zeros(n_classes, dtype=dtype)
        self.b = Param("b", bias, decay=False)
        self._work = kernels.OutputLayerWork()
        self.precision = precision

    @property
    def precision(self):
        return self._precision

    @precision.setter
    def precision(self, value):
        kernels.check_precision(value, "SoftmaxOutput")
        if value != "float32" and self.W.value.dtype != np.float32:
            raise TypeError(f"SoftmaxOutput: precision={value!r} needs float32 parameters; got "
                            f"{self.W.value.dtype}.")
        self._precision = value

    def __call__(self, h):
        return F.linear(h, self.W, self.b)

    def _flat(self, h, where):
        W = self.W.value
        h = F.as_node(h, W.dtype)
        hv = h.value
        if hv.dtype != W.dtype:
            raise TypeError(f"{where}: 'h' must have dtype {W.dtype} to match the parameters; got {hv.dtype}.")
        if hv.ndim < 1 or hv.shape[-1] != W.shape[1]:
            raise ValueError(f"{where}: 'h' must have shape (..., {W.shape[1]}); got {hv.shape}.")
        return h, np.ascontiguousarray(hv).reshape(-1, W.shape[1])

    def loss(self, h, targets, reduction="mean"):
        """Cross-entropy of softmax(h @ W.T + b) against integer targets (shape h.shape[:-1]): a scalar Node."""
        where = "SoftmaxOutput.loss"
        h, h2 = self._flat(h, where)
        t = np.asarray(targets)
        if t.shape != h.value.shape[:-1]:
            raise ValueError(f"{where}: 'targets' must have shape {h.value.shape[:-1]}; got {t.shape}.")
        t = t.ravel()
        s = F._reduction_scale(reduction, h2.shape[0], where)
        W, b = self.W, self.b
        Wv, bv = W.value, b.value
        need = h.requires_grad or W.trainable or b.trainable
        want = need and self.training
        # (a float64 layer, cast by astype, has no bfloat16 products: its own precision; see the class docstring)
        precision = self.precision if want and Wv.dtype == np.float32 else "float32"
        loss, dW, db, dh = kernels.output_layer(h2, Wv, bv, t, scale=s, want_grad=want, work=self._work,
                                                precision=precision)
        value = F._scalar(loss.sum() * s, Wv.dtype)
        if not need:
            return Node(value, op="softmax_output")
        if not want:
            def refuse(g):
                raise RuntimeError(f"{where}: this loss was built in eval mode, so no gradients were computed. "
                                   "Call .train() on the model before the forward pass you differentiate.")
            return Node(value, (h,), refuse, "softmax_output")
        held = [(dW, db, dh)]

        def backward(g):
            grads = held[0]
            held[0] = None  # handed over below; a second backward recomputes them
            if grads is None:
                grads = kernels.output_layer(h2, Wv, bv, t, scale=s, work=self._work, precision=precision)[1:]
            gW, gb, gh = grads
            c = float(g)
            if c != 1.0:
                gW *= c
                gb *= c
                gh *= c
            W.add_grad(gW, owned=True)
            b.add_grad(gb, owned=True)
            if h.requires_grad:
                h.add_grad(gh.reshape(h.value.shape), owned=True)

        return Node(value, (h,), backward, "softmax_output", requires_grad=True)

    def log_probs(self, h):
        """log softmax(h @ W.T + b) as an ndarray of shape h.shape[:-1] + (n_classes,) (no graph)."""
        h, h2 = self._flat(h, "SoftmaxOutput.log_probs")
        logits = np.empty((h2.shape[0], self.W.shape[0]), dtype=self.W.dtype)
        logits[...] = self.b.value
        kernels.gemm(h2, self.W.value, trans_b=True, beta=1.0, out=logits)
        kernels.log_softmax(logits, out=logits)
        return logits.reshape(h.value.shape[:-1] + (self.W.shape[0],))

    def __repr__(self):
        n_classes, n_in = self.W.shape
        return f"SoftmaxOutput({n_in}, {n_classes}, dtype={self.W.dtype})"


class ClassSoftmaxOutput(Module):
    """Class-factorized softmax: log P(w | h) = log softmax(Wc h + bc)[c(w)] + log softmax(W_c(w) h + b_c(w))[w].

    Parameters
    ----------
    n_in : H.
    word_class : (V,) ints, the class of each word; classes 0..C-1 must all be non-empty.
    counts : optional (V,) word counts: the biases then start at the log class priors and log P(w | class).

    Params: Wc (C, H), bc (C,) dense; W (V, H) and b (V, 1) sparse, stored in class-sorted row order (row pos[w]),
    so each class's words are one contiguous block of rows.  A batch is grouped by the targets' classes: per class
    present, one small fused output layer (gemm + softmax-xent + gemms) over that class's block, and only the rows of
    the blocks of the classes present get a (RowGrad) gradient.
    """

    def __init__(self, n_in, word_class, *, rng, dtype=np.float32, counts=None):
        where = "ClassSoftmaxOutput"
        n_in = check_int(n_in, "n_in", where)
        wc = np.asarray(word_class)
        if wc.ndim != 1 or wc.size == 0 or wc.dtype.kind not in "iu":
            raise ValueError(f"{where}: 'word_class' must be a non-empty 1-d integer array; got dtype {wc.dtype}, "
                             f"shape {wc.shape}.")
        wc = wc.astype(np.int64)
        n_classes = int(wc.max()) + 1
        sizes = np.bincount(wc, minlength=n_classes)
        if wc.min() < 0 or np.any(sizes == 0):
            raise ValueError(f"{where}: 'word_class' must use every class 0..{n_classes - 1}; got empty classes "
                             f"{np.flatnonzero(sizes == 0)[:5].tolist()}. Use word_classes() to build it.")
        V = wc.size
        self.word_class = wc
        self.n_classes = n_classes
        self.order = np.argsort(wc, kind="stable")                 # row r of W holds word order[r]
        self.pos = np.empty(V, dtype=np.int64)
        self.pos[self.order] = np.arange(V)
        self.start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        rng = _init.as_rng(rng, where)
        self.Wc = Param("Wc", _init.glorot_uniform(n_in, n_classes, rng, dtype=dtype))
        self.bc = Param("bc", _init.zeros(n_classes, dtype=dtype), decay=False)
        r = _init.glorot_range(n_in, max(V // n_classes, 1))
        self.W = Param("W", _init.uniform((V, n_in), r, rng, dtype=dtype), sparse=True)
        self.b = Param("b", _init.zeros((V, 1), dtype=dtype), sparse=True, decay=False)
        if counts is not None:
            cnt = np.maximum(np.asarray(counts, dtype=np.float64), 0.5)
            if cnt.shape != (V,):
                raise ValueError(f"{where}: 'counts' must have shape ({V},); got {cnt.shape}.")
            csum = np.bincount(wc, weights=cnt, minlength=n_classes)
            self.bc.value[...] = np.log(csum / csum.sum())
            self.b.value[self.pos, 0] = np.log(cnt / csum[wc])
        for a in (self.word_class, self.order, self.pos, self.start):   # constants: the fused RNN LM kernel checks
            a.flags.writeable = False                                   # them once (kernels._class_layout)

    def _run(self, h2, targets, scale, want):
        """Per-row losses (N,) and, when want, the gradients (dWc, dbc, dh, W rows, W values, b values): the class
        softmax through kernels.output_layer, the within-class softmaxes through kernels.class_softmax_xent (one
        thread per class present, each over its own block of rows)."""
        t = np.asarray(targets).ravel()
        V = self.word_class.size
        if t.size and (t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= V):
            raise IndexError(f"ClassSoftmaxOutput: 'targets' must be word ids in [0, {V}); got values in "
                             f"[{t.min()}, {t.max()}].")
        c = self.word_class[t]
        loss, dWc, dbc, dh = kernels.output_layer(h2, self.Wc.value, self.bc.value, c, scale=scale, want_grad=want)
        lw, dhw, rows, vals, bvals = kernels.class_softmax_xent(h2, self.W.value, self.b.value.reshape(-1),
                                                                self.start, c, self.pos[t], scale=scale,
                                                                want_grad=want)
        loss = loss.astype(np.float64) + lw
        if not want:
            return loss, None
        dh += dhw
        return loss, (dWc, dbc, dh, rows, vals, bvals[:, None])

    def loss(self, h, targets, reduction="mean"):
        """Cross-entropy of the factorized softmax against integer targets (shape h.shape[:-1]): a scalar Node."""
        where = "ClassSoftmaxOutput.loss"
        K = self.Wc.value.shape[1]
        h = F.as_node(h, self.Wc.value.dtype)
        if h.value.shape[-1:] != (K,) or np.shape(targets) != h.value.shape[:-1]:
            raise ValueError(f"{where}: 'h' must have shape (..., {K}) and 'targets' h.shape[:-1]; got {h.value.shape} "
                             f"and {np.shape(targets)}.")
        h2 = np.ascontiguousarray(h.value).reshape(-1, K)
        s = F._reduction_scale(reduction, h2.shape[0], where)
        want = self.training
        losses, grads = self._run(h2, targets, s, want)
        value = F._scalar(losses.sum() * s, h2.dtype)
        if not want:
            return Node(value, op="class_softmax")
        V = self.word_class.size
        held = [grads]

        def backward(g):
            dWc, dbc, dh, rows, vals, bvals = held[0]
            held[0] = None
            c = h2.dtype.type(g)
            if c != 1:
                for a in (dWc, dbc, dh, vals, bvals):
                    a *= c
            self.Wc.add_grad(dWc, owned=True)
            self.bc.add_grad(dbc, owned=True)
            for p, v in ((self.W, vals), (self.b, bvals)):
                if p.trainable:
                    rg = RowGrad(rows, v, V)              # class blocks: unique, ascending already
                    p.grad = rg if p.grad is None else p.grad + rg
            if h.requires_grad:
                h.add_grad(dh.reshape(h.value.shape), owned=True)

        return Node(value, (h,), backward, "class_softmax", requires_grad=True)

    def token_logprobs(self, h, targets):
        """log P(targets[i] | h[i]) as float64 (N,) (no graph)."""
        h2 = np.ascontiguousarray(h).reshape(-1, self.Wc.value.shape[1])
        return -self._run(h2, targets, 1.0, False)[0]

    def log_probs(self, h):
        """The full (N, V) log-distribution, in word-id order (for tests and small vocabularies)."""
        h2 = np.ascontiguousarray(h).reshape(-1, self.Wc.value.shape[1])
        lc = kernels.log_softmax(np.ascontiguousarray(h2 @ self.Wc.value.T + self.bc.value))
        out = np.empty((h2.shape[0], self.word_class.size), dtype=h2.dtype)
        for cls in range(self.n_classes):
            a, e = self.start[cls], self.start[cls + 1]
            lw = kernels.log_softmax(np.ascontiguousarray(h2 @ self.W.value[a:e].T + self.b.value[a:e, 0]))
            out[:, self.order[a:e]] = lw + lc[:, cls:cls + 1]
        return out

    def __repr__(self):
        return f"ClassSoftmaxOutput({self.Wc.shape[1]}, {self.word_class.size} words, {self.n_classes} classes)"
