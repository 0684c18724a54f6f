"""The Python face of fastnn's compiled kernels: every call is validated here before it reaches C.

This is the only module that imports fastnn._ext.  Each wrapper checks dtypes (float32 or float64, one dtype per
call), shapes, C-contiguity, writeability of in-place targets and index bounds, then calls a typed, GIL-free kernel.
Parameters (arrays updated in place, named with a trailing underscore on the function) are never copied or cast.
Inputs that are only read may be copied to C order.  `n_threads=None` uses fastnn.set_num_threads()'s value.
A public wrapper never calls another public wrapper: shared work goes through a private `_..._unchecked` function
that trusts its (already validated) arguments, so every argument is checked exactly once.
"""
import contextlib

import numpy as np

from fastnn import _validation as V
from fastnn._ext import _adagrad, _blas, _dense_update, _embedding, _lstm, _rnn, _rnnlm, _softmax
from fastnn._threads import effective_n_threads, single_threaded_blas

ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "identity": 3}


def _activation_code(activation, where):
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: 'activation' must be one of {sorted(ACTIVATIONS)}; got {activation!r}.") from None


_BLAS_INT_MAX = 2**31 - 1


def _check_blas_dims(where, *dims):
    """scipy's BLAS takes 32-bit ints: refuse sizes that would overflow them rather than pass garbage to Fortran."""
    for d in dims:
        if d > _BLAS_INT_MAX:
            raise ValueError(f"{where}: matrix dimensions must be < 2**31 for BLAS; got {d}.")


def _out(out, shape, dtype, name, where):
    """A given output buffer (checked) or a new one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    V.check_float_array(out, name, where, writeable=True)
    if out.dtype != dtype:
        raise TypeError(f"{where}: '{name}' must have dtype {np.dtype(dtype)}; got {out.dtype}.")
    V.check_shape(out, name, where, shape)
    return out


# ---- softmax + cross-entropy -------------------------------------------------------------------------------------

def softmax_xent(logits, targets, *, grad=None, scale=1.0, want_grad=True, n_threads=None):
    """Cross-entropy of softmax(logits) against integer targets, per row, and its gradient wrt the logits.

    Parameters
    ----------
    logits : (B, V) float32 or float64, C-contiguous.
    targets : (B,) integers in [0, V).
    grad : (B, V) array of logits' dtype to write the gradient into (may be `logits` itself, for in place), or None
        to allocate one.
    scale : the gradient is scale * (softmax - onehot); use 1/B for the gradient of the mean loss.
    want_grad : False computes the loss only (no gradient buffer is touched).

    Returns
    -------
    loss : (B,) logsumexp(logits[i]) - logits[i, targets[i]], in the logits' dtype.
    grad : (B, V) or None.
    """
    where = "softmax_xent"
    V.check_float_array(logits, "logits", where, ndim=2)
    B, n_classes = logits.shape
    if n_classes == 0:
        raise ValueError(f"{where}: 'logits' must have at least one column; got shape {logits.shape}.")
    targets = V.check_index(targets, n_classes, "targets", where)
    V.check_shape(targets, "targets", where, (B,))
    V.check_scalar(scale, "scale", where)
    if want_grad:
        grad = _out(grad, logits.shape, logits.dtype, "grad", where)
        if grad is not logits and np.shares_memory(grad, logits):
            raise ValueError(f"{where}: 'grad' must be 'logits' itself or not share memory with it.")
    else:
        grad = None
    return _softmax_xent_unchecked(logits, targets, grad, scale, n_threads), grad


def _softmax_xent_unchecked(logits, targets, grad, scale, n_threads):
    """softmax_xent on validated arguments (targets intp in range; grad None, logits itself or a fresh buffer)."""
    loss = np.empty(logits.shape[0], dtype=logits.dtype)
    _softmax._softmax_xent(logits, targets, loss, grad, float(scale), effective_n_threads(n_threads))
    return loss


def log_softmax(logits, *, out=None, n_threads=None):
    """Row-wise log-softmax. logits (B, V) float; out (B, V) or None (may be `logits` for in place)."""
    where = "log_softmax"
    V.check_float_array(logits, "logits", where, ndim=2)
    if logits.shape[1] == 0:
        raise ValueError(f"{where}: 'logits' must have at least one column; got shape {logits.shape}.")
    out = _out(out, logits.shape, logits.dtype, "out", where)
    if out is not logits and np.shares_memory(out, logits):
        raise ValueError(f"{where}: 'out' must be 'logits' itself or not share memory with it.")
    _softmax._log_softmax(logits, out, effective_n_threads(n_threads))
    return out


# ---- matrix products ---------------------------------------------------------------------------------------------

def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """out = alpha * op(a) @ op(b) + beta * out through scipy's BLAS (row-major, one float dtype)."""
    where = "gemm"
    V.check_float_array(a, "a", where, ndim=2)
    b = V.check_input(b, "b", where, a.dtype, ndim=2)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError(f"{where}: inner dimensions must agree; got op(a) {m}x{k} and op(b) {kb}x{n}.")
    _check_blas_dims(where, m, n, k)
    if out is None:
        if beta != 0.0:
            raise ValueError(f"{where}: 'beta' must be 0 when 'out' is None; got {beta}.")
        out = np.empty((m, n), dtype=a.dtype)
    else:
        out = _out(out, (m, n), a.dtype, "out", where)
    V.check_no_overlap(where, out=out, a=a)
    V.check_no_overlap(where, out=out, b=b)
    _blas._gemm(trans_a, trans_b, float(alpha), a, b, float(beta), out)
    return out


def col_sums(a, *, out=None, beta=0.0, n_threads=None):
    """out = beta * out + a.sum(axis=0), summed in row order (same bits for any thread count)."""
    where = "col_sums"
    V.check_float_array(a, "a", where, ndim=2)
    if out is None:
        out = np.zeros(a.shape[1], dtype=a.dtype)
        beta = 0.0
    else:
        out = _out(out, (a.shape[1],), a.dtype, "out", where)
    V.check_no_overlap(where, out=out, a=a)
    return _col_sums_unchecked(a, out, beta, n_threads)


def _col_sums_unchecked(a, out, beta, n_threads):
    _blas._col_sums(a, out, float(beta), effective_n_threads(n_threads))
    return out


def memory_pass(src, upd, dst, *, stream=False, n_threads=None):
    """A pass at memory speed over the bytes of a memory-bound kernel (the roof bench/bench_kernels.py times): every
    element of `src` read, of `upd` read and rewritten in place (upd += 1), of `dst` written (dst = 1, with streaming
    stores when `stream`, which bypass the cache).  1-d float32 arrays, C-contiguous.  Returns a float (the sum of
    the maxima of src's pieces; it only makes the reads count)."""
    where = "memory_pass"
    for name, a, writeable in (("src", src, False), ("upd", upd, True), ("dst", dst, True)):
        V.check_float_array(a, name, where, ndim=1, writeable=writeable)
        if a.dtype != np.float32:
            raise TypeError(f"{where}: '{name}' must have dtype float32; got {a.dtype}.")
    V.check_no_overlap(where, upd=upd, dst=dst)
    return _blas._memory_pass(src, upd, dst, bool(stream), effective_n_threads(n_threads))


def _empty_aligned(shape, dtype, align=64):
    """np.empty(shape, dtype) starting on an `align`-byte boundary (NumPy aligns large arrays to 16 bytes: a 64-byte
    vector load from such rows straddles two cache lines, which made output_layer's register tiles 1.3x slower)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dtype.itemsize + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


class OutputLayerWork:
    """Reusable buffers for output_layer (large fresh allocations page-fault heavily; reuse them across batches)."""

    def __init__(self):
        self._bufs = {}

    def get(self, name, shape, dtype):
        buf = self._bufs.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = _empty_aligned(shape, dtype)
            self._bufs[name] = buf
        return buf


# output_layer's blocking: blocks of output rows whose (B, block) logits tile is about 128 KiB of float32, at most
# _OL_GROUPS groups of consecutive blocks (the units the threads share out; each keeps a (B, H) share of dh, and the
# shares of all groups take at most _OL_PARTS_BYTES).
_OL_TILE = 32768
_OL_GROUPS = 16
_OL_PARTS_BYTES = 32 << 20


def _output_layer_blocking(B, H, n_out, itemsize, amx=False):
    """(block, n_groups) for output_layer: a function of the shapes only, so results do not depend on threads (the
    AMX products take blocks of whole pairs of 16-row tiles)."""
    step = 32 if amx else 16
    block = min(max(64, _OL_TILE // max(B, 1)) // step * step, 2048)
    n_blocks = -(-n_out // block)
    n_groups = max(1, min(n_blocks, _OL_GROUPS, _OL_PARTS_BYTES // max(B * H * itemsize, 1)))
    return block, n_groups


def amx_bf16():
    """True when output_layer can run its products in bfloat16 on AMX tiles here (precision="bfloat16"): a CPU with
    AMX-BF16 (Intel Xeon Sapphire Rapids or later), an OS that grants the tile state (Linux >= 5.16), and a build
    that has the code (gcc >= 11 or clang >= 12, x86-64 Linux)."""
    return _softmax._output_layer_tiles() and _softmax._amx_bf16()


PRECISIONS = ("float32", "bfloat16")


def check_precision(precision, where, name="precision"):
    """`precision` of output_layer's products (named `name`), checked against what this machine can run."""
    if precision not in PRECISIONS:
        raise ValueError(f"{where}: '{name}' must be one of {PRECISIONS}; got {precision!r}.")
    if precision == "bfloat16" and not amx_bf16():
        raise ValueError(f"{where}: {name}='bfloat16' runs the output layer's products on AMX tiles, which this "
                         "machine cannot (they need an Intel Xeon with AMX-BF16, Sapphire Rapids or later, Linux >= "
                         "5.16, the AVX-512 vector path and fastnn built with gcc >= 11 or clang >= 12); use "
                         "'float32'.")
    return precision


def output_layer(h, W, b, targets, *, scale=1.0, want_grad=True, work=None, reuse_grad_buffers=False,
                 precision="float32", n_threads=None):
    """Affine softmax output layer with cross-entropy: logits = h @ W.T + b.

    Parameters
    ----------
    h : (B, H) hidden vectors; W : (V, H) output weights; b : (V,) output biases (one float dtype).
    targets : (B,) integers in [0, V).
    scale : gradients are of scale * sum of the per-row losses (1/B for the mean).
    work : an OutputLayerWork to reuse the (B, V) logits buffer and the other work space across calls.
    reuse_grad_buffers : write dW and dh into `work`'s buffers too (no fresh V x H allocation per call); they are then
        valid only until the next call with the same work.
    precision : "float32", or "bfloat16" (float32 W only, where amx_bf16()): the three products (logits, dW, dh)
        multiply operands rounded to bfloat16 (8 bits of mantissa: h, W and the gradient tile) on AMX tiles and sum
        in float32, 2.2x faster at the NPLM's shapes (B 512, H 100, V 14,115: 8.5 ms against 19 ms on the 2-core
        Xeon); the softmax, its exps, db and the loss's sums stay float32.  A training speed: evaluate in float32.

    Returns
    -------
    loss (B,), and when want_grad: dW (V, H), db (V,), dh (B, H) (new arrays) else None, None, None.

    The kernel's threads share out blocks of output rows.  In float32 with B >= 16 on an AVX-512 vector path each
    block's three products are the kernel's own register tiles (csrc/fnn_outlayer.h); otherwise single-threaded BLAS
    runs them (every loaded BLAS is limited to one thread during the call, see fastnn._threads.single_threaded_blas).
    The two differ by rounding; either gives the same bits for every thread count.
    """
    where = "output_layer"
    V.check_float_array(W, "W", where, ndim=2)
    h = V.check_input(h, "h", where, W.dtype, ndim=2)
    B, H = h.shape
    n_out = W.shape[0]
    if W.shape[1] != H:
        raise ValueError(f"{where}: 'W' must have shape ({n_out}, {H}) to match 'h' {h.shape}; got {W.shape}.")
    b = V.check_input(b, "b", where, W.dtype, shape=(n_out,))
    if n_out == 0:
        raise ValueError(f"{where}: 'W' must have at least one row; got shape {W.shape}.")
    targets = V.check_index(targets, n_out, "targets", where)
    V.check_shape(targets, "targets", where, (B,))
    V.check_scalar(scale, "scale", where)
    _check_blas_dims(where, B, H, n_out)
    amx = check_precision(precision, where) == "bfloat16"
    if amx and W.dtype != np.float32:
        raise TypeError(f"{where}: precision='bfloat16' needs float32 parameters; got {W.dtype}.")
    work = work if work is not None else OutputLayerWork()
    dt = W.dtype
    if want_grad:
        if reuse_grad_buffers:
            dW = work.get("dW", W.shape, dt)
            dh = work.get("dh", h.shape, dt)
        else:
            dW = _empty_aligned(W.shape, dt)
            dh = np.empty_like(h)
    if B == 0 or H == 0:
        # nothing for BLAS to do: every row of logits is b
        g = np.empty((B, n_out), dtype=dt)
        g[...] = b
        loss = _softmax_xent_unchecked(g, targets, g if want_grad else None, scale, n_threads)
        if not want_grad:
            return loss, None, None, None
        dW[...] = 0
        dh[...] = 0
        return loss, dW, _col_sums_unchecked(g, np.zeros(n_out, dtype=dt), 0.0, n_threads), dh
    # float32 on an AVX-512 path: the layer's own register tiles, on transposed work padded to Bp columns; not for
    # B < 16, mostly padding (B 1, H 256, V 10^4, one thread: 2.80 ms against BLAS's 2.15; B 20, H 128, V 5 10^4:
    # 11.3 against 18.2; 2026-12-06 Xeon)
    tiles = dt == np.float32 and (B >= 16 or amx) and _softmax._output_layer_tiles()
    block, n_groups = _output_layer_blocking(B, H, n_out, dt.itemsize, amx)
    n_blocks = -(-n_out // block)
    nt = min(effective_n_threads(n_threads), n_groups)
    if B * H * n_out < 1 << 18:
        nt = 1  # too little work to wake a second thread
    loss = np.empty(B, dtype=dt)
    Bp = -(-B // 32) * 32 if amx else -(-B // 16) * 16 if tiles else B
    row_ref = work.get("row_ref", (n_groups, B), np.float64)
    row_sum = work.get("row_sum", (n_groups, B), np.float64)
    Hp, Hk = -(-H // 16) * 16, -(-H // 32) * 32
    hwork = work.get("hwork", (H * Bp + B * Hp if tiles else 0,), dt)      # tiles: h transposed, and h padded
    if amx:     # fnn_amx.h's products: logits tiles computed twice, in each thread's scratch (see _output_layer_amx)
        scratch = work.get("scratch", (nt, block * (Bp + Hp) + 5 * Bp), dt)
        bwork = work.get("bwork", (Hk * Bp + Bp * Hp + nt * block * (Hk + 2 * Bp + Hp),), np.uint16)
        if want_grad:
            db = np.empty(n_out, dtype=dt)
            dh_parts = work.get("dh_parts", (n_groups, Hp, Bp), dt)
        else:
            dW = db = dh = dh_parts = None
        _softmax._output_layer_amx(h, W, b, targets, loss, row_ref, row_sum, scratch, dW, db, dh, dh_parts, hwork,
                                   bwork, block, float(scale), bool(want_grad), nt)
        return loss, dW, db, dh
    logits = work.get("logits", (Bp * n_out,), dt)
    blk_ref = work.get("blk_ref", (n_blocks, B), np.float64)
    scratch = work.get("scratch", (nt, (block + 6) * Bp if tiles else B * block), dt)
    if want_grad:
        db = np.empty(n_out, dtype=dt)
        dh_parts = work.get("dh_parts", (n_groups, H, Bp) if tiles else (n_groups, B, H), dt)
    else:
        dW = db = dh = dh_parts = None
    # the BLAS blocks run in the kernel's threads: BLAS's own pool must not compete with them (the tiles call none)
    with contextlib.nullcontext() if tiles else single_threaded_blas():
        _softmax._output_layer(h, W, b, targets, loss, logits, row_ref, row_sum, blk_ref, scratch, dW, db, dh,
                               dh_parts, hwork, block, float(scale), bool(want_grad), nt)
    if not want_grad:
        return loss, None, None, None
    return loss, dW, db, dh


def _check_in_block(where, name, rows, classes, start):
    """Each target row lies in its class's block start[c]:start[c + 1] (the kernels index the block by row - start[c],
    so a row outside it would be read and written out of bounds)."""
    bad = (rows < start[classes]) | (rows >= start[classes + 1])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: '{name}' must lie in their class's block; got row {rows[i]} for class "
                         f"{classes[i]} (rows {start[classes[i]]}..{start[classes[i] + 1] - 1}) at position {i}.")


def class_softmax_xent(h, W, b, start, classes, rows, *, scale=1.0, want_grad=True, n_threads=None):
    """The within-class half of a class-factorized softmax (Mikolov et al. 2011): per token, cross-entropy of a
    softmax over only the rows of its class's block of W.

    Parameters
    ----------
    h : (N, H) hidden vectors.  W : (V, H), b : (V,) output rows sorted by class: class c owns rows
        start[c]:start[c+1] (start (C+1,) integers rising strictly from 0 to V: no empty class).
    classes : (N,) each token's class; rows : (N,) each token's target row, inside its class's block.
    scale : gradients are of scale * the summed losses.

    Returns
    -------
    loss (N,) = -log P(target | class, h); and when want_grad: dh (N, H), grad_rows (R,) (the rows of the blocks of
    the classes present, ascending), dW (R, H), db (R,); else None for each.
    """
    where = "class_softmax_xent"
    V.check_float_array(W, "W", where, ndim=2)
    n_rows, H = W.shape
    h = V.check_input(h, "h", where, W.dtype, ndim=2)
    N = h.shape[0]
    if h.shape[1] != H:
        raise ValueError(f"{where}: 'h' must have shape (N, {H}) to match 'W'; got {h.shape}.")
    b = V.check_input(b, "b", where, W.dtype, shape=(n_rows,))
    if not isinstance(start, np.ndarray) or start.dtype.kind not in "iu":
        raise TypeError(f"{where}: 'start' must be an integer ndarray; got "
                        f"{getattr(start, 'dtype', type(start).__name__)}.")
    start = np.ascontiguousarray(start, dtype=np.intp)
    if start.ndim != 1 or start.size < 2:
        raise ValueError(f"{where}: 'start' must be a 1-d integer array of C + 1 >= 2 block boundaries.")
    if start[0] != 0 or start[-1] != n_rows or np.any(np.diff(start) <= 0):
        raise ValueError(f"{where}: 'start' must rise strictly from 0 to {n_rows} (every class non-empty); got "
                         f"{start[:3].tolist()}...{start[-2:].tolist()}.")
    n_classes = start.size - 1
    classes = V.check_index(classes, n_classes, "classes", where).ravel()
    rows = V.check_index(rows, n_rows, "rows", where).ravel()
    V.check_shape(classes, "classes", where, (N,))
    V.check_shape(rows, "rows", where, (N,))
    _check_in_block(where, "rows", rows, classes, start)
    V.check_scalar(scale, "scale", where)
    order, present, seg = _group_rows_unchecked(classes, n_classes)
    sizes = start[present + 1] - start[present]
    row_off = np.zeros(present.size + 1, dtype=np.intp)
    np.cumsum(sizes, out=row_off[1:])
    loss = np.zeros(N, dtype=np.float64)
    # outputs the call does not write (no gradient; no deferred rows) get one row, not none: the kernel takes the
    # address of their first element, which a bounds-checked build (FASTNN_DEBUG_KERNELS) refuses for an empty array
    dh = np.zeros((N if want_grad else 1, H), dtype=W.dtype)
    dW = np.empty((int(row_off[-1]) if want_grad else 1, H), dtype=W.dtype)
    db = np.empty(dW.shape[0], dtype=W.dtype)
    counts = np.diff(seg)
    # the RNN LM's within-class kernel (one home for it): loss and dh are added to, dW and db written
    _rnnlm._rnnlm_word_xent(h, W, b, start, order, seg, present, rows, row_off, float(scale), loss, dh, dW, db,
                            np.empty(1, W.dtype), np.zeros(1, np.intp), np.empty(1),
                            int(sizes.max()) if sizes.size else 1, int(counts.max()) if counts.size else 1,
                            int((counts * sizes).max()) if counts.size else 1, int(want_grad), 0,
                            effective_n_threads(n_threads))
    loss = loss.astype(W.dtype)
    if not want_grad:
        return loss, None, None, None, None
    grad_rows = (np.repeat(start[present] - row_off[:-1], sizes) + np.arange(row_off[-1])).astype(np.intp)
    return loss, dh, grad_rows, dW, db


# ---- sparse embedding rows ---------------------------------------------------------------------------------------

def gather_rows(W, idx, *, out=None, n_threads=None):
    """out[i] = W[idx[i]]. W (V, D) float; idx (N,) ints in [0, V); returns (N, D)."""
    where = "gather_rows"
    V.check_float_array(W, "W", where, ndim=2)
    idx = V.check_index(idx, W.shape[0], "idx", where).ravel()
    out = _out(out, (idx.shape[0], W.shape[1]), W.dtype, "out", where)
    V.check_no_overlap(where, out=out, W=W)
    _embedding._gather_rows(W, idx, out, effective_n_threads(n_threads))
    return out


def group_rows(idx, n_rows):
    """Group repeated indices: returns (order, uniq, seg) with idx[order] sorted (stable), uniq the distinct values
    ascending, and the occurrences of uniq[r] at order[seg[r]:seg[r+1]]."""
    where = "group_rows"
    V.check_scalar(n_rows, "n_rows", where, low=0, integer=True)
    idx = V.check_index(idx, n_rows, "idx", where).ravel()
    return _group_rows_unchecked(idx, n_rows)


def _group_rows_unchecked(idx, n_rows):
    """group_rows on a validated 1-d intp idx with values in [0, n_rows)."""
    n = idx.shape[0]
    order = np.empty(n, dtype=np.intp)
    uniq = np.empty(n, dtype=np.intp)
    seg = np.empty(n + 1, dtype=np.intp)
    n_uniq = _embedding._group_rows(idx, max(int(n_rows), 1), order, uniq, seg)
    return order, uniq[:n_uniq], seg[:n_uniq + 1]


def coalesce_rows(idx, G, n_rows, *, n_threads=None):
    """Sum the rows of G that share an index: returns (rows, values) with rows unique ascending, values (R, D)."""
    where = "coalesce_rows"
    V.check_float_array(G, "G", where, ndim=2)
    V.check_scalar(n_rows, "n_rows", where, low=0, integer=True)
    idx = V.check_index(idx, n_rows, "idx", where).ravel()
    V.check_shape(idx, "idx", where, (G.shape[0],))
    order, uniq, seg = _group_rows_unchecked(idx, n_rows)
    values = np.empty((uniq.shape[0], G.shape[1]), dtype=G.dtype)
    _embedding._segment_sum(G, order, seg, values, effective_n_threads(n_threads))
    return uniq, values


def _check_rows_update(where, W, rows, G, unique):
    V.check_float_array(W, "W", where, ndim=2, writeable=True)
    rows = V.check_index(rows, W.shape[0], "rows", where).ravel()
    G = V.check_input(G, "G", where, W.dtype, shape=(rows.shape[0], W.shape[1]))
    if unique and rows.shape[0] > 1 and not np.all(rows[1:] > rows[:-1]):
        raise ValueError(f"{where}: 'rows' must be unique and ascending (a coalesced RowGrad); got repeats or "
                         f"disorder. Use coalesce_rows() first, or scatter_add_() for repeated rows.")
    V.check_no_overlap(where, W=W, G=G)
    return rows, G


def scatter_add_(W, idx, G, *, alpha=1.0, n_threads=None):
    """W[idx[i]] += alpha * G[i] for each i (repeated indices add up), in place. Same bits for any thread count."""
    where = "scatter_add_"
    idx, G = _check_rows_update(where, W, idx, G, unique=False)
    V.check_scalar(alpha, "alpha", where)
    _embedding._scatter_add(W, idx, G, float(alpha), effective_n_threads(n_threads))


def _check_nonneg(where, **scalars):
    """Every hyper-parameter of an update (lr, l2, eps, ...) is a real >= 0."""
    for name, x in scalars.items():
        V.check_scalar(x, name, where, low=0)


def sparse_sgd_(W, rows, G, *, lr, l2=0.0, n_threads=None):
    """W[rows] = (1 - lr*l2) * W[rows] - lr * G on unique ascending rows (a coalesced RowGrad), in place."""
    where = "sparse_sgd_"
    rows, G = _check_rows_update(where, W, rows, G, unique=True)
    _check_nonneg(where, lr=lr, l2=l2)
    _embedding._sparse_sgd(W, rows, G, float(lr), float(l2), effective_n_threads(n_threads))


def _check_sparse_adagrad(where, W, A, rows, G, unique, **scalars):
    """The checks of both lazy AdaGrads: the rows and their gradients, the accumulator A (W's shape and dtype, not
    overlapping it) and the hyper-parameters.  Returns (rows, G) as the kernels take them."""
    rows, G = _check_rows_update(where, W, rows, G, unique=unique)
    V.check_float_array(A, "A", where, ndim=2, writeable=True)
    V.check_same_dtype(where, "W", W, A=A)
    V.check_shape(A, "A", where, W.shape)
    V.check_no_overlap(where, W=W, A=A)
    _check_nonneg(where, **scalars)
    return rows, G


def sparse_adagrad_(W, A, rows, G, *, lr, eps=1e-10, l2=0.0, n_threads=None):
    """Lazy AdaGrad on unique ascending rows: g = G + l2*W[rows]; A[rows] += g*g; W[rows] -= lr*g/(sqrt(A)+eps).

    Only the given rows of W and of the accumulator A are read or written.  eps after the sqrt, as torch.
    """
    where = "sparse_adagrad_"
    rows, G = _check_sparse_adagrad(where, W, A, rows, G, True, lr=lr, eps=eps, l2=l2)
    _embedding._sparse_adagrad(W, A, rows, G, float(lr), float(eps), float(l2), effective_n_threads(n_threads))


def sparse_adagrad_grouped_(W, A, idx, G, *, lr, eps=1e-10, l2=0.0, n_threads=None):
    """Lazy AdaGrad from uncoalesced row gradients (repeated idx allowed): the rows sharing an index are summed first,
    then one update per distinct row (AdaGrad is non-linear, so the order matters)."""
    where = "sparse_adagrad_grouped_"
    idx, G = _check_sparse_adagrad(where, W, A, idx, G, False, lr=lr, eps=eps, l2=l2)
    order, uniq, seg = _group_rows_unchecked(idx, W.shape[0])
    _embedding._sparse_adagrad_grouped(W, A, G, order, uniq, seg, float(lr), float(eps), float(l2),
                                       effective_n_threads(n_threads))


# ---- dense updates -----------------------------------------------------------------------------------------------

def _check_dense(where, w, g, *states):
    V.check_float_array(w, "w", where, writeable=True)
    g = V.check_input(g, "g", where, w.dtype, shape=w.shape)
    for name, s in states:
        V.check_float_array(s, name, where, writeable=True)
        V.check_same_dtype(where, "w", w, **{name: s})
        V.check_shape(s, name, where, w.shape)
        V.check_no_overlap(where, w=w, **{name: s})
    V.check_no_overlap(where, w=w, g=g)
    return g.reshape(-1)


def sgd_(w, g, *, lr, l2=0.0, l1=0.0, n_threads=None):
    """w -= lr * (g + l2*w + l1*sign(w)), in place, one pass."""
    where = "sgd_"
    g = _check_dense(where, w, g)
    _check_nonneg(where, lr=lr, l2=l2, l1=l1)
    _dense_update._sgd(w.reshape(-1), g, float(lr), float(l2), float(l1), effective_n_threads(n_threads))


def momentum_(w, v, g, *, lr, mu, nesterov=False, l2=0.0, l1=0.0, n_threads=None):
    """torch's momentum: v = mu*v + g'; w -= lr*v (nesterov: w -= lr*(g' + mu*v)); g' = g + l2*w + l1*sign(w)."""
    where = "momentum_"
    g = _check_dense(where, w, g, ("v", v))
    _check_nonneg(where, lr=lr, mu=mu, l2=l2, l1=l1)
    _dense_update._momentum(w.reshape(-1), v.reshape(-1), g, float(lr), float(mu), float(l2), float(l1),
                            bool(nesterov), effective_n_threads(n_threads))


def adagrad_(w, acc, g, *, lr, eps=1e-10, l2=0.0, l1=0.0, n_threads=None):
    """AdaGrad (torch's convention): g' = g + l2*w + l1*sign(w); acc += g'^2; w -= lr*g'/(sqrt(acc)+eps)."""
    where = "adagrad_"
    g = _check_dense(where, w, g, ("acc", acc))
    _check_nonneg(where, lr=lr, eps=eps, l2=l2, l1=l1)
    _dense_update._adagrad(w.reshape(-1), acc.reshape(-1), g, float(lr), float(eps), float(l2), float(l1),
                           effective_n_threads(n_threads))


def adagrad_many_(parts, *, lr, eps=1e-10, n_threads=None):
    """AdaGrad on several parameters in one kernel call: the updates adagrad_ (dense) and sparse_adagrad_ (lazy
    rows) would make one by one, with the same bits, but cut into tasks of ~4k elements shared out in one parallel
    loop (a model's small parameters are each too small to thread, and each call costs its dispatch).

    parts : a list of (w, acc, g, rows, l2): w and acc a parameter and its accumulator (updated in place), l2 its
        weight decay (>= 0); rows None for a dense gradient g of w's shape, else unique ascending row indices and g
        (len(rows), w.shape[1]) their gradients (a coalesced RowGrad).  One float dtype for all; each w a different
        parameter.  (No l1: optim.AdaGrad applies that term one parameter at a time.)
    """
    where = "adagrad_many_"
    _check_nonneg(where, lr=lr, eps=eps)
    ws, accs, gs, rows_, first, l2s = [], [], [], [], [], []
    dtype, seen = None, set()
    for i, part in enumerate(parts):
        if not isinstance(part, tuple) or len(part) != 5:
            raise TypeError(f"{where}: 'parts[{i}]' must be a tuple (w, acc, g, rows, l2); got "
                            f"{type(part).__name__}.")
        w, acc, g, rows, l2 = part
        if rows is None:
            g = _check_dense(where, w, g, ("acc", acc))
            w2, acc2, g2, r, f = w.reshape(1, -1), acc.reshape(1, -1), g.reshape(1, -1), None, 0
        else:
            r, g2 = _check_sparse_adagrad(where, w, acc, rows, g, True)
            w2, acc2, f = w, acc, -1
            if r.shape[0] and r[-1] - r[0] == r.shape[0] - 1:
                f = int(r[0])                                     # a range of rows: one flat span
        _check_nonneg(where, l2=l2)
        if dtype is None:
            dtype = w.dtype
        elif w.dtype != dtype:
            raise TypeError(f"{where}: every parameter must have one dtype; got {dtype} and {w.dtype} (parts[{i}]).")
        if id(w) in seen:
            raise ValueError(f"{where}: each part must update a different parameter; parts[{i}] repeats one.")
        seen.add(id(w))
        if g2.size == 0:
            continue
        ws.append(w2), accs.append(acc2), gs.append(g2), rows_.append(r), first.append(f), l2s.append(float(l2))
    if not ws:
        return
    _adagrad._adagrad_many(np.empty(0, dtype), ws, accs, gs, rows_, np.array(first, dtype=np.intp),
                           np.array(l2s, dtype=np.float64), float(lr), float(eps), effective_n_threads(n_threads))


# ---- Elman recurrence --------------------------------------------------------------------------------------------

def _check_recurrence(where, activation, W, seq, name):
    """(activation code, K, seq) for a square recurrent matrix W (K, K) and a sequence `seq` (T, B, K) of W's dtype."""
    kind = _activation_code(activation, where)
    V.check_float_array(W, "W", where, ndim=2)
    K = W.shape[0]
    if W.shape != (K, K):
        raise ValueError(f"{where}: 'W' must be square; got shape {W.shape}.")
    seq = V.check_input(seq, name, where, W.dtype, ndim=3)
    if seq.shape[2] != K:
        raise ValueError(f"{where}: '{name}' must have shape (T, B, {K}) to match 'W'; got {seq.shape}.")
    return kind, K, seq


def rnn_forward(X, W, b, h0, *, activation="tanh", out=None, n_threads=None):
    """h_t = f(X[t] + h_{t-1} @ W.T + b) for t = 0..T-1.

    X (T, B, K) projected inputs; W (K, K); b (K,); h0 (B, K).  Returns H (T + 1, B, K) with H[0] = h0 and
    H[t + 1] = h_t (pass `out` to reuse a buffer).
    """
    where = "rnn_forward"
    kind, K, X = _check_recurrence(where, activation, W, X, "X")
    T, B, _ = X.shape
    b = V.check_input(b, "b", where, W.dtype, shape=(K,))
    h0 = V.check_input(h0, "h0", where, W.dtype, shape=(B, K))
    _check_blas_dims(where, B, K)
    H = _out(out, (T + 1, B, K), W.dtype, "out", where)
    V.check_no_overlap(where, out=H, X=X)
    V.check_no_overlap(where, out=H, W=W)
    H[0] = h0
    _rnn._rnn_forward(X, W, b, H, kind, effective_n_threads(n_threads))
    return H


def rnn_backward(dH, H, W, *, activation="tanh", clip=0.0, n_threads=None):
    """Truncated BPTT over the T steps of rnn_forward.

    dH (T, B, K): d loss / d h_t from outside the recurrence; H (T + 1, B, K) from rnn_forward; W (K, K).
    clip > 0 clips each step's back-propagated error d loss / d z_t to [-clip, clip] (Mikolov's trick).
    Returns dX (T, B, K) (= d loss / d z_t), dW (K, K), db (K,), dh0 (B, K).
    """
    where = "rnn_backward"
    kind, K, dH = _check_recurrence(where, activation, W, dH, "dH")
    T, B, _ = dH.shape
    H = V.check_input(H, "H", where, W.dtype, shape=(T + 1, B, K))
    V.check_scalar(clip, "clip", where, low=0)
    _check_blas_dims(where, T * B, K)
    dX = np.empty((T, B, K), dtype=W.dtype)
    dW = np.zeros((K, K), dtype=W.dtype)
    db = np.zeros(K, dtype=W.dtype)
    dh0 = np.zeros((B, K), dtype=W.dtype)
    _rnn._rnn_backward(dH, H, W, dX, dW, db, dh0, kind, float(clip), effective_n_threads(n_threads))
    return dX, dW, db, dh0


# ---- Elman RNN LM segment (fused) --------------------------------------------------------------------------------

# the last class layout rnnlm_segment validated whose three arrays are read-only and own their data (so cannot change
# unless someone sets them writeable again): ClassSoftmaxOutput's, checked once instead of on every training step
_LAYOUT_SEEN = [None]


def _class_layout(where, word_class, pos, start, n_out, C):
    """(word_class, pos, start) as intp arrays, checked: start rises strictly from 0 to n_out in C + 1 steps, every
    word's class in [0, C) and its row pos in its class's block (the kernels index a block by row - start[c], so a
    row outside it would be read and written out of bounds).  A read-only triple seen last time is not re-checked."""
    seen = _LAYOUT_SEEN[0]
    if (seen is not None and seen[0] is word_class and seen[1] is pos and seen[2] is start
            and seen[3] == (n_out, C)):
        return word_class, pos, start
    arrays = (word_class, pos, start)
    start = V.check_index(start, n_out + 1, "start", where)
    if start.shape != (C + 1,) or start[0] != 0 or start[-1] != n_out or np.any(np.diff(start) <= 0):
        raise ValueError(f"{where}: 'start' must be {C + 1} block boundaries rising strictly from 0 to {n_out}.")
    word_class = V.check_index(word_class, C, "word_class", where)
    pos = V.check_index(pos, n_out, "pos", where)
    V.check_shape(word_class, "word_class", where, (n_out,))
    V.check_shape(pos, "pos", where, (n_out,))
    _check_in_block(where, "pos", pos, word_class, start)
    if all(a is b and not a.flags.writeable and a.base is None for a, b in zip(arrays, (word_class, pos, start))):
        _LAYOUT_SEEN[0] = (word_class, pos, start, (n_out, C))
    return word_class, pos, start


def rnnlm_segment(x, y, h0, emb, W_ih, W_hh, b, Wc, bc, W, bo, word_class, pos, start, *, activation="tanh",
                  clip=0.0, scale=None, want_grad=True, defer_out=False, n_threads=None):
    """One truncated-BPTT segment of the Elman RNN LM with a class-factorized output, forward and backward at once.

        z_t = W_ih emb[x_t] + W_hh h_{t-1} + b,  h_t = f(z_t),  loss = scale * sum of -log P(y | h) over the last
        k = len(y) steps, P(w | h) = softmax(Wc h + bc)[c(w)] * softmax(W[block c(w)] h + bo[block])[w]

    x (L, B) input ids in [0, len(emb)); y (k, B) target ids in [0, V), k <= L; h0 (B, H) the starting state;
    emb (V_in, E); W_ih (H, E); W_hh (H, H); b (H,); Wc (C, H); bc (C,); W (V, H), bo (V,) output rows sorted by
    class (class c owns rows start[c]:start[c+1]); word_class (V,) and pos (V,): each word's class and row.
    clip > 0 clips the back-propagated error d loss / d z_t to [-clip, clip]; scale defaults to 1 / (k B) (the mean).

    Returns (loss, Hs, grads): loss the scaled sum (float), Hs (L + 1, B, H) with Hs[0] = h0 and Hs[t + 1] = h_t,
    grads None unless want_grad, else a dict: "W_ih", "W_hh", "b", "Wc", "bc" dense; "emb", "W", "bo" as
    (rows, values) with rows unique and ascending (the distinct inputs; the blocks of the classes present).
    Same bits for any thread count (see csrc/_rnnlm.pyx).

    defer_out=True (float32 with H >= 16 on a build with vector extensions; else ignored): "W" is (rows, None) and
    "W_deferred" holds what rebuilds it (an OutRows): the output rows' gradient is never written as one (R, H) array;
    `out_rows.grad()` makes it and `out_rows.adagrad_(...)` applies lazy AdaGrad to it block by block, with the same
    bits as kernels.sparse_adagrad_ on the made array.
    """
    where = "rnnlm_segment"
    kind = _activation_code(activation, where)
    V.check_float_array(W_hh, "W_hh", where, ndim=2)
    dt = W_hh.dtype
    H = W_hh.shape[0]
    if W_hh.shape != (H, H):
        raise ValueError(f"{where}: 'W_hh' must be square; got shape {W_hh.shape}.")
    emb = V.check_input(emb, "emb", where, dt, ndim=2)
    n_in, E = emb.shape
    W_ih = V.check_input(W_ih, "W_ih", where, dt, shape=(H, E))
    b = V.check_input(b, "b", where, dt, shape=(H,))
    Wc = V.check_input(Wc, "Wc", where, dt, ndim=2)
    C = Wc.shape[0]
    V.check_shape(Wc, "Wc", where, (C, H))
    bc = V.check_input(bc, "bc", where, dt, shape=(C,))
    W = V.check_input(W, "W", where, dt, ndim=2)
    n_out = W.shape[0]
    V.check_shape(W, "W", where, (n_out, H))
    bo = V.check_input(bo, "bo", where, dt, shape=(n_out,))
    word_class, pos, start = _class_layout(where, word_class, pos, start, n_out, C)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or y.shape[1] != x.shape[1] or not 0 < y.shape[0] <= x.shape[0]:
        raise ValueError(f"{where}: 'x' must be (L, B) and 'y' (k, B) with 0 < k <= L; got {x.shape} and {y.shape}.")
    L, B = x.shape
    k = y.shape[0]
    xf = V.check_index(x, n_in, "x", where).ravel()
    yf = V.check_index(y, n_out, "y", where).ravel()
    h0 = V.check_input(h0, "h0", where, dt, shape=(B, H))
    V.check_scalar(clip, "clip", where, low=0)
    N = k * B
    scale = 1.0 / N if scale is None else float(V.check_scalar(scale, "scale", where))
    nt = effective_n_threads(n_threads)
    want = bool(want_grad)

    # inputs: one projection per distinct word; targets: grouped by class (the within-class softmaxes' plan)
    order_u, uniq, seg_u = _group_rows_unchecked(xf, n_in)
    inv = np.empty(L * B, dtype=np.intp)
    _rnnlm._segment_ids(order_u, seg_u, inv)
    tc = word_class[yf]
    defer = want and defer_out and dt == np.float32 and H >= 16 and _rnnlm.HAVE_BLOCKS
    order = np.empty(N, dtype=np.intp)
    plan = np.empty((4, C + 1), dtype=np.intp)           # present, seg, row_off, cell_off (the first P (+ 1) of each)
    n_present, max_size, max_tokens, max_cells = _rnnlm._class_plan(tc, start, order, *plan, int(defer))
    present, seg, row_off, cell_off = plan[0, :n_present], *plan[1:, :n_present + 1]

    U = uniq.size
    E_u = np.empty((U, E), dtype=dt)                      # emb[uniq], gathered by the projection's tasks
    P = np.empty((U, H), dtype=dt)
    Hs = np.empty((L + 1, B, H), dtype=dt)
    Hs[0] = h0
    Z = np.empty((N, C), dtype=dt)
    losses = np.empty(N, dtype=np.float64)
    dHo = np.empty((N, H), dtype=dt)
    dWo = np.empty((int(row_off[-1]) if want and not defer else 0, H), dtype=dt)
    dbo = np.empty(int(row_off[-1]) if want else 0, dtype=dt)
    zkeep = np.empty(int(cell_off[-1]), dtype=dt)
    sq = np.empty(present.size if defer else 0)
    # the backward phases' outputs (empty without want): d loss / d z_t, its sums per distinct input word, gradients
    Lg, Ug = (L, U) if want else (0, 0)
    dZ = np.empty((Lg, B, H), dtype=dt)
    S = np.empty((Ug, H), dtype=dt)
    g = {"W_hh": np.empty((H, H), dtype=dt), "W_ih": np.empty((H, E), dtype=dt), "Wc": np.empty((C, H), dtype=dt),
         "b": np.empty(H, dtype=dt), "bc": np.empty(C, dtype=dt)}
    dE = np.empty((Ug, E), dtype=dt)
    # every phase in one kernel call (one parallel region); every product in the kernels' own threads (fixed row
    # blocks), none through BLAS: its threads would compete with the kernels' for the cores (the defect of
    # `--threads 2` training at half the speed)
    _rnnlm._rnnlm_segment(emb, uniq, E_u, np.ascontiguousarray(W_ih.T), b, inv.reshape(L, B),
                          np.ascontiguousarray(W_hh.T), P, Hs, np.ascontiguousarray(Wc.T), bc, Wc, tc, Z, losses, dHo,
                          W, bo, start, order, seg, present, pos[yf], row_off, dWo, dbo, zkeep, cell_off, sq,
                          max_size, max_tokens, max_cells, np.ascontiguousarray(W_hh), dZ, order_u, seg_u, S, W_ih,
                          g["W_hh"], g["Wc"], g["W_ih"], dE, g["b"], g["bc"], kind, scale, float(clip), int(want),
                          int(defer), nt)
    loss = float(losses.sum()) * scale
    if not want:
        return loss, Hs, None
    g["emb"] = (uniq, dE)
    if present.size == C:                                  # every class present (the usual batch): all of W's rows
        rows = np.arange(n_out, dtype=np.intp)
    else:
        rows = (np.repeat(start[present] - row_off[:-1], np.diff(row_off)) + np.arange(row_off[-1])).astype(np.intp)
    g["W"] = (rows, None if defer else dWo)
    g["bo"] = (rows, dbo)
    if defer:
        Ho = Hs[L - k + 1:].reshape(N, H)                  # the states the output saw
        g["W_deferred"] = OutRows((zkeep, cell_off, Ho, order, seg, present, start, row_off), float(sq.sum()),
                                  (W.shape[0], H), dt, max_size, max_tokens)
    return loss, Hs, g


def rnnlm_vector_path():
    """The vector path ("avx512", "avx2", "sse2", ...: fastnn.show_config) rnnlm_segment's float32 products take."""
    return _rnnlm._vector_path()


def rnnlm_mm_layout():
    """The register layout rnnlm_segment's float32 products take on the AVX-512 path: "ymm" (8-float vectors in
    AVX-512's 32 registers, the default on AMD Zen 4, which runs a 512-bit instruction as two halves) or "zmm"
    (16-float vectors, elsewhere).  Both give the same bits; other paths have one layout, reported as "zmm"."""
    return _rnnlm._mm_layout()


class OutRows:
    """The class-factorized output rows' gradient of one rnnlm_segment(defer_out=True) call, kept as its factors
    (each class block's dZ_k (tokens x block) and its tokens' states), so that it is built one block at a time.

    sq_norm : its squared L2 norm (summed in float64 from the blocks, no array built).
    grad(scale=None) -> (R, H) : the gradient rows (the blocks of the classes present, ascending), times `scale`
        (rounded to the dtype first, as `array *= dtype(scale)` would) when given.
    adagrad_(W, A, *, lr, eps=1e-10, l2=0.0, scale=None) : lazy AdaGrad on those rows of W and A in place, each
        block's gradient made in a per-thread tile and applied while it is in cache: the bits of
        sparse_adagrad_(W, A, rows, grad(scale), ...) without the (R, H) array and its two passes.
    """

    def __init__(self, parts, sq_norm, shape, dtype, max_size, max_tokens):
        self._parts, self.sq_norm, self.shape, self.dtype = parts, sq_norm, shape, np.dtype(dtype)
        self._max = (max_size, max_tokens)

    @property
    def n_rows(self):
        """R, the rows of the blocks of the classes present."""
        return int(self._parts[7][-1])

    def _run(self, W, A, out, scale, lr, eps, l2, update):
        has = scale is not None
        _rnnlm._rnnlm_out_rows(*self._parts, W, A, out, float(self.dtype.type(scale)) if has else 1.0, int(has),
                               float(lr), float(eps), float(l2), int(update), *self._max, effective_n_threads(None))

    def grad(self, scale=None):
        out = np.empty((self.n_rows, self.shape[1]), dtype=self.dtype)
        dummy = np.empty((0, self.shape[1]), dtype=self.dtype)
        self._run(dummy, dummy, out, scale, 0.0, 0.0, 0.0, False)
        return out

    def adagrad_(self, W, A, *, lr, eps=1e-10, l2=0.0, scale=None):
        where = "OutRows.adagrad_"
        for name, a in (("W", W), ("A", A)):
            V.check_float_array(a, name, where, ndim=2, writeable=True)
            if a.dtype != self.dtype or a.shape != self.shape:
                raise ValueError(f"{where}: '{name}' must be the output matrix the gradient was made for: "
                                 f"{self.dtype} {self.shape}; got {a.dtype} {a.shape}.")
        V.check_no_overlap(where, W=W, A=A)
        _check_nonneg(where, lr=lr, eps=eps, l2=l2)
        self._run(W, A, np.empty((0, self.shape[1]), dtype=self.dtype), scale, lr, eps, l2, True)


# ---- LSTM recurrence ---------------------------------------------------------------------------------------------

def _lstm_shapes(where, W):
    """W (4K, K): the recurrent matrix of an LSTM with K units; returns K."""
    V.check_float_array(W, "W", where, ndim=2)
    K = W.shape[1]
    if W.shape != (4 * K, K):
        raise ValueError(f"{where}: 'W' must have shape (4K, K) (the gates i, f, g, o stacked); got {W.shape}.")
    return K


def lstm_forward(X, W, b, h0, c0, *, out=None, n_threads=None):
    """An LSTM over T steps, gates in torch's order (i, f, g, o):

        a_t = X[t] + h_{t-1} @ W.T + b;  i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

    Parameters
    ----------
    X : (T, B, 4K) the inputs already projected (x_t @ W_ih.T).  W : (4K, K).  b : (4K,).  h0, c0 : (B, K).
    out : None, or (H, C, A) buffers of the shapes below to reuse.

    Returns
    -------
    H, C : (T + 1, B, K) with H[0] = h0, C[0] = c0 and H[t + 1] = h_t, C[t + 1] = c_t.
    A : (T, B, 4K) the gates' activations [i f g o] (lstm_backward needs them).
    """
    where = "lstm_forward"
    K = _lstm_shapes(where, W)
    X = V.check_input(X, "X", where, W.dtype, ndim=3)
    T, B, K4 = X.shape
    if K4 != 4 * K:
        raise ValueError(f"{where}: 'X' must have shape (T, B, {4 * K}) to match 'W'; got {X.shape}.")
    b = V.check_input(b, "b", where, W.dtype, shape=(4 * K,))
    h0 = V.check_input(h0, "h0", where, W.dtype, shape=(B, K))
    c0 = V.check_input(c0, "c0", where, W.dtype, shape=(B, K))
    _check_blas_dims(where, B, 4 * K, T * B)
    if out is None:
        out = (None, None, None)
    elif not isinstance(out, (tuple, list)) or len(out) != 3:
        raise TypeError(f"{where}: 'out' must be None or a tuple (H, C, A); got {type(out).__name__}.")
    H = _out(out[0], (T + 1, B, K), W.dtype, "out[0] (H)", where)
    C = _out(out[1], (T + 1, B, K), W.dtype, "out[1] (C)", where)
    A = _out(out[2], (T, B, 4 * K), W.dtype, "out[2] (A)", where)
    V.check_no_overlap(where, H=H, C=C, A=A)
    for name, a in (("X", X), ("W", W), ("b", b)):
        for oname, o in (("H", H), ("C", C), ("A", A)):
            V.check_no_overlap(where, **{oname: o, name: a})
    H[0] = h0
    C[0] = c0
    _lstm._lstm_forward(X, W, b, A, H, C, effective_n_threads(n_threads))
    return H, C, A


def lstm_backward(dH, H, C, A, W, *, dc_last=None, clip=0.0, n_threads=None):
    """Truncated BPTT over the T steps of lstm_forward.

    Parameters
    ----------
    dH : (T, B, K) d loss / d h_t from outside the recurrence.  H, C (T + 1, B, K) and A (T, B, 4K): lstm_forward's
        results.  W : (4K, K).
    dc_last : None or (B, K): d loss / d c_T from outside (the final cell state used elsewhere).
    clip : > 0 clips each step's back-propagated error at the gates' pre-activations, d loss / d a_t, element-wise to
        [-clip, clip] (Graves 2013; Mikolov's trick for the Elman layer); the clipped error is what reaches h_{t-1}
        and the weights.  The gradient is then not exact.

    Returns
    -------
    dX (T, B, 4K) (= d loss / d a_t = d loss / d X[t]), dW (4K, K), db (4K,), dh0 (B, K), dc0 (B, K).
    """
    where = "lstm_backward"
    K = _lstm_shapes(where, W)
    dH = V.check_input(dH, "dH", where, W.dtype, ndim=3)
    T, B, KX = dH.shape
    if KX != K:
        raise ValueError(f"{where}: 'dH' must have shape (T, B, {K}) to match 'W'; got {dH.shape}.")
    H = V.check_input(H, "H", where, W.dtype, shape=(T + 1, B, K))
    C = V.check_input(C, "C", where, W.dtype, shape=(T + 1, B, K))
    A = V.check_input(A, "A", where, W.dtype, shape=(T, B, 4 * K))
    V.check_scalar(clip, "clip", where, low=0)
    _check_blas_dims(where, T * B, 4 * K)
    dc0 = (np.zeros((B, K), dtype=W.dtype) if dc_last is None
           else V.check_input(dc_last, "dc_last", where, W.dtype, shape=(B, K)).copy())
    dX = np.empty((T, B, 4 * K), dtype=W.dtype)
    dW = np.zeros((4 * K, K), dtype=W.dtype)
    db = np.zeros(4 * K, dtype=W.dtype)
    dh0 = np.zeros((B, K), dtype=W.dtype)
    _lstm._lstm_backward(dH, A, H, C, W, dX, dW, db, dh0, dc0, float(clip), effective_n_threads(n_threads))
    return dX, dW, db, dh0, dc0
