# cython: language_level=3
"""Softmax + cross-entropy over rows of logits (B x V, V up to 10^6).

Rows of up to CHUNK columns are handled whole by one thread (max and exps in one read, piece by piece against a
running max, then the scale), so a row is read from memory once and then stays in cache.  In float32 the threads
take runs of rows (fnn_xent_rows_f): a cheaper exp (fnn_expf_nonpos), sums in a fixed order, and, when the gradient
is streamed to memory, each row's reads and exps overlapped with the previous row's writes.  Longer rows are cut into
CHUNK-column pieces handled in parallel with an online softmax: per piece a local max and a local sum, combined per
row in a fixed order.  Which path runs depends only on V, so results are bit-identical for every thread count.

Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log, exp
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from fastnn._ext import _info
from _common cimport (threads_for, malloc2, omp_get_thread_num, row_max, row_exp, row_sumexp, row_scale, row_shift,
                      row_scale_to, gemm_rm, axpy, row_exp_online, row_rescale, FNN_BLOCK, fnn_xent_work_f)

cdef extern from "fnn_math.h":
    void fnn_xent_rows_f_path(int path, const float *x, float *g, const Py_ssize_t *t, float *loss,
                              Py_ssize_t n_rows, Py_ssize_t n, double scale, float *work, int stream) noexcept nogil
    float fnn_piece_exp_f_path(int path, const float *x, float *out, Py_ssize_t n, float m,
                               const float *ahead) noexcept nogil

cdef extern from "fnn_outlayer.h":
    int fnn_ol_tiles(int path) noexcept nogil
    void fnn_ol_logits(const float *W, const float *b, Py_ssize_t w, Py_ssize_t H, const float *hT, Py_ssize_t Bp,
                       float *Z) noexcept nogil
    void fnn_ol_dh(const float *W, Py_ssize_t w, Py_ssize_t H, const float *E, Py_ssize_t Bp, float *D,
                   int add) noexcept nogil
    void fnn_ol_dw(const float *G, Py_ssize_t w, Py_ssize_t Bp, Py_ssize_t B, const float *hp, Py_ssize_t Hp,
                   Py_ssize_t H, float *dW, int stream) noexcept nogil
    void fnn_ol_colmax(const float *Z, Py_ssize_t w, Py_ssize_t Bp, float *m) noexcept nogil
    void fnn_ol_exp(float *Z, Py_ssize_t w, Py_ssize_t Bp, const float *R, float *s) noexcept nogil
    void fnn_ol_scale_cols(float *D, Py_ssize_t n, Py_ssize_t Bp, const float *f) noexcept nogil
    void fnn_ol_grad(const float *E, Py_ssize_t w, Py_ssize_t Bp, Py_ssize_t B, const float *c, const int *t,
                     float sc, float *G, float *db) noexcept nogil

cdef extern from "fnn_amx.h":
    int fnn_amx_ok() noexcept nogil
    void fnn_amx_pack_rows(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds, unsigned short *dst,
                           Py_ssize_t rows_p, Py_ssize_t cols_p) noexcept nogil
    void fnn_amx_pack_pairs(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds, unsigned short *dst,
                            Py_ssize_t rows_p, Py_ssize_t cols_p) noexcept nogil
    void fnn_amx_pack_cols(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds, unsigned short *dst,
                           Py_ssize_t rows_p, Py_ssize_t cols_p) noexcept nogil
    void fnn_amx_mm(const unsigned short *A, Py_ssize_t lda, const unsigned short *B, Py_ssize_t ldb, float *C,
                    Py_ssize_t ldc, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int add) noexcept nogil


# ---- which compiled code the float32 rows run (as in _lstm.pyx: 0 = the build's flags, 1 = AVX2 + FMA, 2 = AVX-512) --

cdef int _path = 0    # the path the kernels use (fastnn._ext._info.path_number); read once per call


def _vector_paths():
    """Names of the vector paths this build has and this CPU can run, the fastest first (_info.vector_paths)."""
    return _info.vector_paths()


def _vector_path():
    """The name of the vector path the float32 softmax rows use now."""
    return _info.path_name(_path)


def _set_vector_path(name):
    """Make the float32 softmax rows use the path called `name` (one of _vector_paths()); None: the fastest."""
    global _path
    _path = _info.path_number(name)


_set_vector_path(_info.vector_path())

cdef Py_ssize_t CHUNK = 131072
# A separate gradient buffer bigger than this is written with streaming stores (see fnn_row_scale_stream_f): it
# would not stay in the cache anyway, and a plain store first reads every line it writes.
cdef Py_ssize_t STREAM_BYTES = 16 << 20


cdef int row_stats(const floating *x, Py_ssize_t B, Py_ssize_t V, floating *out_max, double *out_sum,
                   floating *grad, int n_threads) noexcept nogil:
    """Per row i: out_max[i] = max_j x[i, j], out_sum[i] = sum_j exp(x[i, j] - max) (over CHUNK pieces when V > CHUNK).

    If grad is not NULL it receives exp(x - piece max) per piece, and the caller rescales.  Returns -1 if out of
    memory, else the number of pieces per row.
    """
    cdef Py_ssize_t n_pieces = (V + CHUNK - 1) // CHUNK
    cdef Py_ssize_t u, i, p, lo, hi
    cdef floating *pm
    cdef double *ps
    cdef floating m
    cdef double s
    if n_pieces <= 1:
        for i in prange(B, schedule="static", num_threads=n_threads, nogil=True):
            m = row_max(x + i * V, V)
            if grad != NULL:
                s = row_exp(x + i * V, grad + i * V, V, m)
            else:
                s = row_sumexp(x + i * V, V, m)
            out_max[i] = m
            out_sum[i] = s
        return 1
    if not malloc2(<void **> &pm, B * n_pieces * sizeof(floating), <void **> &ps, B * n_pieces * sizeof(double)):
        return -1
    for u in prange(B * n_pieces, schedule="static", num_threads=n_threads, nogil=True):
        i = u // n_pieces
        lo = (u % n_pieces) * CHUNK
        hi = min(lo + CHUNK, V)
        m = row_max(x + i * V + lo, hi - lo)
        pm[u] = m
        if grad != NULL:
            ps[u] = row_exp(x + i * V + lo, grad + i * V + lo, hi - lo, m)
        else:
            ps[u] = row_sumexp(x + i * V + lo, hi - lo, m)
    for i in range(B):
        m = pm[i * n_pieces]
        for p in range(1, n_pieces):
            if not (pm[i * n_pieces + p] <= m):   # also picks up NaN
                m = pm[i * n_pieces + p]
        s = 0
        for p in range(n_pieces):
            s = s + ps[i * n_pieces + p] * exp(pm[i * n_pieces + p] - m)
        out_max[i] = m
        out_sum[i] = s
    if grad != NULL:
        # rescale each piece from its own max to the row's max, and divide by the row sum
        for u in prange(B * n_pieces, schedule="static", num_threads=n_threads, nogil=True):
            i = u // n_pieces
            lo = (u % n_pieces) * CHUNK
            hi = min(lo + CHUNK, V)
            row_scale(grad + i * V + lo, hi - lo, <floating> (exp(pm[u] - out_max[i]) / out_sum[i]))
    free(pm)
    free(ps)
    return n_pieces


def _softmax_xent(const floating[:, ::1] logits, const Py_ssize_t[::1] targets, floating[::1] loss,
                  floating[:, ::1] grad, double scale, int n_threads):
    """Cross-entropy per row and (optionally) its gradient wrt the logits.

    logits  (B, V) IN     may be the same memory as grad (in place)
    targets (B,)   IN     in [0, V)
    loss    (B,)   OUT    logsumexp(logits[i]) - logits[i, targets[i]]
    grad    (B, V) OUT    scale * (softmax(logits[i]) - onehot(targets[i])), or None for the loss only
    """
    cdef Py_ssize_t B = logits.shape[0], V = logits.shape[1], i, t, n_pieces, c, r0, r1
    cdef int path = _path
    cdef bint want_grad = grad is not None
    cdef floating *g = &grad[0, 0] if (want_grad and B > 0) else NULL
    cdef floating *mx
    cdef double *sm
    cdef floating *scratch = NULL
    cdef floating *buf
    cdef floating xt, m
    cdef double s
    if B == 0:
        return
    n_threads = threads_for(B * V, n_threads)
    # the gradient goes to memory with streaming stores out of a per-thread row buffer (it stays in cache)
    cdef bint stream = (want_grad and g != &logits[0, 0] and V <= CHUNK
                        and B * V * <Py_ssize_t> sizeof(floating) > STREAM_BYTES)
    # float32: rows in runs of `rows` handed out to the threads (see fnn_xent_rows_f); per thread its work space
    cdef Py_ssize_t rows = max(1, B // (4 * n_threads)), n_runs = (B + rows - 1) // rows
    # float64, per thread: the row buffer (stream only), then the pieces' reference maxima of row_exp_online
    cdef Py_ssize_t n_refs = (V + FNN_BLOCK - 1) // FNN_BLOCK, stride = (V if stream else 0) + n_refs
    cdef floating *refs
    cdef bint need_scratch = V <= CHUNK and want_grad
    if floating is float:
        stride = fnn_xent_work_f(V, stream)
        need_scratch = V <= CHUNK
    mx = <floating *> malloc(B * sizeof(floating))
    sm = <double *> malloc(B * sizeof(double))
    if need_scratch:
        scratch = <floating *> malloc(n_threads * stride * sizeof(floating))
    if mx == NULL or sm == NULL or (need_scratch and scratch == NULL):
        free(mx)
        free(sm)
        free(scratch)
        raise MemoryError()
    with nogil:
        if V <= CHUNK:
            n_pieces = 1
            if floating is float:
                # dynamic: a thread that loses its core to another process hands its runs to the other threads
                for c in prange(n_runs, schedule="dynamic", num_threads=n_threads):
                    r0 = c * rows
                    r1 = min(r0 + rows, B)
                    fnn_xent_rows_f_path(path, &logits[r0, 0], (g + r0 * V) if want_grad else NULL, &targets[r0],
                                         &loss[r0], r1 - r0, V, scale, scratch + omp_get_thread_num() * stride, stream)
            else:
                for i in prange(B, schedule="dynamic", num_threads=n_threads):
                    # whole row in one thread: read once from memory (max and exp piece by piece), then scaled in cache
                    t = targets[i]
                    xt = logits[i, t]
                    m = 0   # assigned in the loop, so private to each thread (row_exp_online writes it through &m)
                    if want_grad:
                        buf = scratch + omp_get_thread_num() * stride
                        refs = buf + (V if stream else 0)
                        if not stream:
                            buf = g + i * V
                        s = row_exp_online(&logits[i, 0], buf, V, refs, &m)
                        row_rescale(buf, g + i * V, V, refs, m, scale / s, stream)
                        g[i * V + t] = g[i * V + t] - <floating> scale
                    else:
                        s = row_exp_online(&logits[i, 0], <floating *> NULL, V, <floating *> NULL, &m)
                    loss[i] = <floating> ((m - xt) + log(s))
        else:
            # read the target logits first: with grad aliasing logits they are about to be overwritten
            for i in range(B):
                loss[i] = logits[i, targets[i]]
            n_pieces = row_stats(&logits[0, 0], B, V, mx, sm, g, n_threads)
            if n_pieces > 0:
                for i in prange(B, schedule="static", num_threads=n_threads):
                    xt = loss[i]
                    loss[i] = <floating> ((mx[i] - xt) + log(sm[i]))
                    if want_grad:
                        if scale != 1.0:
                            row_scale(g + i * V, V, <floating> scale)
                        t = targets[i]
                        g[i * V + t] = g[i * V + t] - <floating> scale
    free(mx)
    free(sm)
    free(scratch)
    if n_pieces < 0:
        raise MemoryError()


def _log_softmax(const floating[:, ::1] logits, floating[:, ::1] out, int n_threads):
    """out[i] = logits[i] - logsumexp(logits[i]).  logits (B, V) IN, out (B, V) OUT (may alias logits)."""
    cdef Py_ssize_t B = logits.shape[0], V = logits.shape[1], i, n_pieces
    cdef floating *mx
    cdef double *sm
    if B == 0:
        return
    n_threads = threads_for(B * V, n_threads)
    if not malloc2(<void **> &mx, B * sizeof(floating), <void **> &sm, B * sizeof(double)):
        raise MemoryError()
    with nogil:
        n_pieces = row_stats(&logits[0, 0], B, V, mx, sm, <floating *> NULL, n_threads)
        if n_pieces > 0:
            for i in prange(B, schedule="static", num_threads=n_threads):
                row_shift(&logits[i, 0], &out[i, 0], V, <floating> (mx[i] + log(sm[i])))
    free(mx)
    free(sm)
    if n_pieces < 0:
        raise MemoryError()



# ---- the affine output layer fused with its softmax cross-entropy ----------------------------------------------------

cdef inline double groups_logsumexp(double[:, ::1] row_ref, double[:, ::1] row_sum, Py_ssize_t i) noexcept nogil:
    """Row i's logsumexp over the column groups of the output layer (both paths): each group g holds its reference
    row_ref[g, i] and its sum of exp(logit - reference) row_sum[g, i]; taken in group order for the same bits."""
    cdef Py_ssize_t u, G = row_ref.shape[0]
    cdef double r = row_ref[0, i], s = 0
    for u in range(1, G):
        if not (row_ref[u, i] <= r):   # also picks up NaN
            r = row_ref[u, i]
    for u in range(G):
        s = s + row_sum[u, i] * exp(row_ref[u, i] - r)
    return r + log(s)


def _output_layer_tiles():
    """True when the float32 output layer runs the register tiles of fnn_outlayer.h on the current vector path (an
    AVX-512 one); kernels.output_layer then lays its work out for them (see _output_layer)."""
    return bool(fnn_ol_tiles(_path))


def _amx_bf16():
    """True when this build has the AMX bfloat16 products (fnn_amx.h) and this CPU and OS can run them."""
    return bool(fnn_amx_ok())


def _output_layer(const floating[:, ::1] h, const floating[:, ::1] W, const floating[::1] b,
                  const Py_ssize_t[::1] targets, floating[::1] loss, floating[::1] logits, double[:, ::1] row_ref,
                  double[:, ::1] row_sum, double[:, ::1] blk_ref, floating[:, ::1] scratch, floating[:, ::1] dW,
                  floating[::1] db, floating[:, ::1] dh, floating[:, :, ::1] dh_parts, floating[::1] hwork,
                  Py_ssize_t block, double scale, bint want_grad, int n_threads):
    """logits = h W^T + b, loss = logsumexp - logits[target] per row, and the gradients of scale * sum(loss).

    The V output rows are cut into blocks of `block` rows and the blocks into G = row_ref.shape[0] groups of
    consecutive blocks; a thread runs a whole group with single-threaded BLAS (the caller has set BLAS to one thread),
    so each product is small and its operands stay in the thread's cache.

    Pass 1, per block of a group: the logits tile (B, w) = bias + h W_blk^T (in `logits`, blocks one after the
    other); with R the group's running row maxima, the tile is replaced by E = exp(tile - R) (R of each row kept in
    blk_ref), the group's row sums of exps accumulate, and so does its share of dh += E W_blk while W_blk is still in
    cache (flash-attention style: when a row's maximum grows, what that row has summed is rescaled by
    exp(R_old - R_new)).  The groups' (R, sum, share) are combined in group order into each row's logsumexp, the loss
    and dh = scale * (the shares rescaled to the logsumexp - W[target]).  Pass 2, per block: the gradient tile
    scale * (softmax - onehot) = E * scale * exp(R - logsumexp) - onehot in the thread's scratch, its column sums
    (db) and dW_blk = tile^T h: W is read once and exp runs once per logit.  Blocks and groups depend only on the
    shapes, so the results are the same bits for every thread count.

    h (B, H), W (V, H), b (V,), targets (B,) IN (B, H >= 1).
    loss (B,) OUT (holds the target logits while pass 1 runs).
    logits (B V,), row_ref, row_sum (G, B), blk_ref (n_blocks, B), scratch (n_threads, B block) work.
    dW (V, H), db (V,), dh (B, H) OUT and dh_parts (G, B, H) work when want_grad (else None).
    hwork (0,), or (H Bp + B Hp,) in float32 when _output_layer_tiles() (Bp, Hp: B, H rounded up to 16): the layer
    then runs _output_layer_tiles_f, whose work arrays have other shapes (see there).
    """
    cdef Py_ssize_t B = h.shape[0], H = h.shape[1], V = W.shape[0], G = row_ref.shape[0]
    cdef int path = _path
    cdef Py_ssize_t n_blocks = (V + block - 1) // block
    cdef Py_ssize_t gi, k, k0, k1, lo, w, i, j, t, u
    cdef floating *tile
    cdef floating *S
    cdef floating m
    cdef double s, f
    cdef floating sc = <floating> scale
    if floating is float:
        if hwork.shape[0] > 0:     # kernels.py asked _output_layer_tiles() and laid the work out for them
            _output_layer_tiles_f(h, W, b, targets, loss, logits, row_ref, row_sum, blk_ref, scratch, dW, db, dh,
                                  dh_parts, hwork, block, scale, want_grad, n_threads)
            return
    with nogil:
        # pass 1: logits tiles turned into exps, the groups' row statistics and (want_grad) shares of dh
        for gi in prange(G, schedule="dynamic", num_threads=n_threads):
            k0 = gi * n_blocks // G
            k1 = (gi + 1) * n_blocks // G
            for k in range(k0, k1):
                lo = k * block
                w = min(block, V - lo)
                tile = &logits[0] + B * lo
                for i in range(B):
                    memcpy(tile + i * w, &b[lo], w * sizeof(floating))
                gemm_rm(False, True, <int> B, <int> w, <int> H, <floating> 1, &h[0, 0], <int> H, &W[lo, 0], <int> H,
                        <floating> 1, tile, <int> w)
                for i in range(B):
                    t = targets[i] - lo
                    if 0 <= t < w:
                        loss[i] = tile[i * w + t]
                    m = row_max(tile + i * w, w)
                    if k == k0:
                        row_ref[gi, i] = m
                        row_sum[gi, i] = 0
                    elif not (m <= row_ref[gi, i]):   # a larger maximum (or NaN): rescale what is summed so far
                        f = exp(row_ref[gi, i] - m)
                        row_ref[gi, i] = m
                        row_sum[gi, i] = row_sum[gi, i] * f
                        if want_grad:
                            row_scale(&dh_parts[gi, i, 0], H, <floating> f)
                    blk_ref[k, i] = row_ref[gi, i]
                    if floating is float:
                        # the softmax rows' exp (tile <= its running max): vectorised on every x86 target, where
                        # fnn_expf's floorf needed SSE4.1; 8 or 16 wide on AVX2 / AVX-512 CPUs in a portable build
                        row_sum[gi, i] = row_sum[gi, i] + fnn_piece_exp_f_path(path, tile + i * w, tile + i * w,
                                                                               w, <float> row_ref[gi, i],
                                                                               tile + i * w)
                    else:
                        row_sum[gi, i] = row_sum[gi, i] + row_exp(tile + i * w, tile + i * w, w,
                                                                  <floating> row_ref[gi, i])
                if want_grad:
                    gemm_rm(False, False, <int> B, <int> H, <int> w, <floating> 1, tile, <int> w, &W[lo, 0], <int> H,
                            <floating> (0 if k == k0 else 1), &dh_parts[gi, 0, 0], <int> H)
        # each row's logsumexp over the groups, in group order (row_ref[0] then holds it); the loss; dh
        for i in prange(B, schedule="static", num_threads=n_threads):
            s = groups_logsumexp(row_ref, row_sum, i)
            loss[i] = <floating> (s - loss[i])
            if want_grad:
                t = targets[i]
                for j in range(H):
                    dh[i, j] = -sc * W[t, j]
                for u in range(G):
                    axpy(<floating> (scale * exp(row_ref[u, i] - s)), &dh_parts[u, i, 0], &dh[i, 0], H)
            row_ref[0, i] = s
        if want_grad:
            # pass 2: gradient tiles, db and dW
            for gi in prange(G, schedule="dynamic", num_threads=n_threads):
                S = &scratch[omp_get_thread_num(), 0]
                k0 = gi * n_blocks // G
                k1 = (gi + 1) * n_blocks // G
                for k in range(k0, k1):
                    lo = k * block
                    w = min(block, V - lo)
                    tile = &logits[0] + B * lo
                    for i in range(B):
                        f = scale * exp(blk_ref[k, i] - row_ref[0, i])
                        row_scale_to(tile + i * w, S + i * w, w, <floating> f)
                        t = targets[i] - lo
                        if 0 <= t < w:
                            S[i * w + t] = S[i * w + t] - sc
                    for j in range(w):
                        db[lo + j] = S[j]
                    for i in range(1, B):
                        axpy(<floating> 1, S + i * w, &db[lo], w)
                    gemm_rm(True, False, <int> w, <int> H, <int> B, <floating> 1, S, <int> w, &h[0, 0], <int> H,
                            <floating> 0, &dW[lo, 0], <int> H)




cdef void _output_layer_tiles_f(const float[:, ::1] h, const float[:, ::1] W, const float[::1] b,
                                const Py_ssize_t[::1] targets, float[::1] loss, float[::1] logits,
                                double[:, ::1] row_ref, double[:, ::1] row_sum, double[:, ::1] blk_ref,
                                float[:, ::1] scratch, float[:, ::1] dW, float[::1] db, float[:, ::1] dh,
                                float[:, :, ::1] dh_parts, float[::1] hwork, Py_ssize_t block, double scale,
                                bint want_grad, int n_threads) noexcept:
    """_output_layer on the AVX-512 register tiles of fnn_outlayer.h (float32): the same blocks, groups, passes and
    running maxima, with every (B, .) matrix kept transposed and its columns padded to Bp = B rounded up to 16 (the
    padding columns come from zero inputs, and nothing of theirs reaches a result).

    logits (V Bp,) work: block k's tile (w, Bp) at k block Bp.  hwork (H Bp + B Hp,) work: h transposed (H, Bp),
    then h with its rows padded to Hp = H rounded up to 16 (B, Hp).  dh_parts (G, H, Bp)
    work when want_grad: each group's share of dh, transposed.  scratch (n_threads, block Bp + 6 Bp) work: per thread
    the gradient tile, then m, s, f, c, R (Bp floats each) and the targets' rows in the block (Bp ints).  The rest as
    _output_layer.
    """
    cdef Py_ssize_t B = h.shape[0], H = h.shape[1], V = W.shape[0], G = row_ref.shape[0]
    cdef Py_ssize_t Bp = (B + 15) // 16 * 16, Hp = (H + 15) // 16 * 16
    cdef float *hT = &hwork[0]
    cdef float *hp = hT + H * Bp
    cdef Py_ssize_t n_blocks = (V + block - 1) // block
    cdef Py_ssize_t gi, k, k0, k1, lo, w, i, j, t, u
    cdef float *Z
    cdef float *m
    cdef float *sv
    cdef float *f
    cdef float *c
    cdef float *R
    cdef int *trow
    cdef float *D
    cdef float *acc
    cdef double s, fi
    cdef bint changed
    cdef float sc = <float> scale
    # dW bigger than the cache goes to memory with streaming stores (no read of the lines first; 2026-12-06 Xeon,
    # V 10^5, one thread: 152 -> 142 ms); a smaller one stays in cache for the update that reads it next
    cdef bint stream = V * H * <Py_ssize_t> sizeof(float) > STREAM_BYTES
    with nogil:
        for j in range(H):
            for i in range(B):
                hT[j * Bp + i] = h[i, j]
            for i in range(B, Bp):
                hT[j * Bp + i] = 0
        for i in range(B):
            for j in range(H):
                hp[i * Hp + j] = h[i, j]
            for j in range(H, Hp):
                hp[i * Hp + j] = 0
        # pass 1: logits tiles turned into exps, the groups' column statistics and (want_grad) shares of dh
        for gi in prange(G, schedule="dynamic", num_threads=n_threads):
            m = &scratch[omp_get_thread_num(), 0] + block * Bp
            sv = m + Bp
            f = sv + Bp
            R = f + 2 * Bp
            D = &dh_parts[gi, 0, 0] if want_grad else NULL
            k0 = gi * n_blocks // G
            k1 = (gi + 1) * n_blocks // G
            for k in range(k0, k1):
                lo = k * block
                w = min(block, V - lo)
                Z = &logits[0] + Bp * lo
                fnn_ol_logits(&W[lo, 0], &b[lo], w, H, hT, Bp, Z)
                for i in range(B):
                    t = targets[i] - lo
                    if 0 <= t < w:
                        loss[i] = Z[t * Bp + i]
                fnn_ol_colmax(Z, w, Bp, m)
                changed = False
                for i in range(Bp):
                    f[i] = 1
                    R[i] = m[i]            # the padding columns: their own block maximum
                    if i >= B:
                        continue
                    if k == k0:
                        row_ref[gi, i] = m[i]
                        row_sum[gi, i] = 0
                    elif not (m[i] <= row_ref[gi, i]):   # a larger maximum (or NaN): rescale what is summed so far
                        fi = exp(row_ref[gi, i] - m[i])
                        row_ref[gi, i] = m[i]
                        row_sum[gi, i] = row_sum[gi, i] * fi
                        f[i] = <float> fi
                        changed = True
                    blk_ref[k, i] = row_ref[gi, i]
                    R[i] = <float> row_ref[gi, i]
                if changed and want_grad:
                    fnn_ol_scale_cols(D, H, Bp, f)
                fnn_ol_exp(Z, w, Bp, R, sv)
                for i in range(B):
                    row_sum[gi, i] = row_sum[gi, i] + sv[i]
                if want_grad:
                    fnn_ol_dh(&W[lo, 0], w, H, Z, Bp, D, k != k0)
        # each row's logsumexp over the groups, in group order (row_ref[0] then holds it), the loss, and in row_sum
        # the factor that brings each group's share of dh to it
        for i in prange(B, schedule="static", num_threads=n_threads):
            s = groups_logsumexp(row_ref, row_sum, i)
            loss[i] = <float> (s - loss[i])
            for u in range(G):
                row_sum[u, i] = scale * exp(row_ref[u, i] - s)
            row_ref[0, i] = s
        if want_grad:
            # dh = scale * (the shares rescaled) - scale W[target], one row of dh^T (a column of dh) per j
            for j in prange(H, schedule="static", num_threads=n_threads):
                acc = &scratch[omp_get_thread_num(), 0]
                for i in range(B):
                    acc[i] = -sc * W[targets[i], j]
                for u in range(G):
                    for i in range(B):
                        acc[i] = acc[i] + <float> row_sum[u, i] * dh_parts[u, j, i]
                for i in range(B):
                    dh[i, j] = acc[i]
            # pass 2: gradient tiles, db and dW
            for gi in prange(G, schedule="dynamic", num_threads=n_threads):
                m = &scratch[omp_get_thread_num(), 0]     # the gradient tile
                c = m + block * Bp + 3 * Bp
                trow = <int *> (c + 2 * Bp)
                k0 = gi * n_blocks // G
                k1 = (gi + 1) * n_blocks // G
                for k in range(k0, k1):
                    lo = k * block
                    w = min(block, V - lo)
                    Z = &logits[0] + Bp * lo
                    for i in range(Bp):
                        c[i] = 0
                        trow[i] = -1
                    for i in range(B):
                        c[i] = <float> (scale * exp(blk_ref[k, i] - row_ref[0, i]))
                        t = targets[i] - lo
                        if 0 <= t < w:
                            trow[i] = <int> t
                    fnn_ol_grad(Z, w, Bp, B, c, trow, sc, m, &db[lo])
                    fnn_ol_dw(m, w, Bp, B, hp, Hp, H, &dW[lo, 0], stream)


def _output_layer_amx(const float[:, ::1] h, const float[:, ::1] W, const float[::1] b,
                      const Py_ssize_t[::1] targets, float[::1] loss, double[:, ::1] row_ref, double[:, ::1] row_sum,
                      float[:, ::1] scratch, float[:, ::1] dW, float[::1] db, float[:, ::1] dh,
                      float[:, :, ::1] dh_parts, float[::1] hwork, unsigned short[::1] bwork, Py_ssize_t block,
                      double scale, bint want_grad, int n_threads):
    """_output_layer (float32) with its products on AMX tiles in bfloat16, float32 sums (fnn_amx.h).

    With products this cheap the float32 layer's stored logits (B V floats, written in pass 1 and read back in pass
    2) cost more than computing them again, so each pass computes a block's logits tile into the thread's scratch:
    pass 1 for the rows' running maxima and sums of exps (the groups' (R, sum) as in _output_layer), pass 2, once
    each row's logsumexp is known, for the gradient tile G = scale (softmax - onehot) itself, then db, the group's
    share of dh (+= W_blk^T G) and dW_blk = G h.  Four products instead of three, no V x B traffic and no rescaled
    shares.  The same blocks and groups for every thread count: the same bits.

    Shapes: Bp = B rounded up to 32, Hp = H rounded up to 16, Hk = H rounded up to 32; `block` a multiple of 32.
    scratch (n_threads, block Bp + block Hp + 5 Bp) work: the logits tile, the block's dW rows padded to Hp, then m, s, R, c and the
    targets' rows in the block (Bp each).  dh_parts (G, Hp, Bp) work: each group's share of dh, transposed.
    hwork (H Bp + B Hp,) work: h transposed and h with rows padded, as the float32 tiles.  bwork (Hk Bp + Bp Hp +
    n_threads block (Hk + 2 Bp + Hp),) bfloat16 work: h packed for the logits and for dW, then per thread the block's
    W rows, G's rows, G in pairs of rows and W^T.  The rest as _output_layer.
    """
    cdef Py_ssize_t B = h.shape[0], H = h.shape[1], V = W.shape[0], G = row_ref.shape[0]
    cdef Py_ssize_t Bp = (B + 31) // 32 * 32, Hp = (H + 15) // 16 * 16, Hk = (H + 31) // 32 * 32
    cdef Py_ssize_t n_blocks = (V + block - 1) // block
    cdef Py_ssize_t per_thread = block * (Hk + 2 * Bp + Hp)
    cdef float *hT = &hwork[0]
    cdef float *hp = hT + H * Bp
    cdef unsigned short *hV = &bwork[0]
    cdef unsigned short *hV2 = hV + Hk * Bp
    cdef unsigned short *Wb
    cdef unsigned short *Gb
    cdef unsigned short *GV
    cdef unsigned short *WT
    cdef Py_ssize_t gi, k, k0, k1, lo, w, i, j, t, u
    cdef float *Z
    cdef float *T
    cdef float *m
    cdef float *sv
    cdef float *R
    cdef float *c
    cdef int *trow
    cdef float *acc
    cdef double s
    cdef float sc = <float> scale
    with nogil:
        for j in range(H):
            for i in range(Bp):
                hT[j * Bp + i] = h[i, j] if i < B else 0
        for i in range(B):
            for j in range(Hp):
                hp[i * Hp + j] = h[i, j] if j < H else 0
        fnn_amx_pack_pairs(hT, H, Bp, Bp, hV, Hk, Bp)
        fnn_amx_pack_pairs(hp, B, Hp, Hp, hV2, Bp, Hp)
        # pass 1: each group's running row maxima and sums of exps
        for gi in prange(G, schedule="dynamic", num_threads=n_threads):
            Z = &scratch[omp_get_thread_num(), 0]
            m = Z + block * Bp + block * Hp
            sv = m + Bp
            R = sv + Bp
            Wb = hV2 + Bp * Hp + omp_get_thread_num() * per_thread
            k0 = gi * n_blocks // G
            k1 = (gi + 1) * n_blocks // G
            for k in range(k0, k1):
                lo = k * block
                w = min(block, V - lo)
                _amx_logits_tile(W, b, lo, w, block, H, Hk, Bp, hV, Wb, Z)
                for i in range(B):
                    t = targets[i] - lo
                    if 0 <= t < w:
                        loss[i] = Z[t * Bp + i]
                fnn_ol_colmax(Z, w, Bp, m)
                for i in range(Bp):
                    R[i] = m[i]            # the padding columns: their own block maximum
                    if i >= B:
                        continue
                    if k == k0:
                        row_ref[gi, i] = m[i]
                        row_sum[gi, i] = 0
                    elif not (m[i] <= row_ref[gi, i]):   # a larger maximum (or NaN): rescale what is summed so far
                        row_sum[gi, i] = row_sum[gi, i] * exp(row_ref[gi, i] - m[i])
                        row_ref[gi, i] = m[i]
                    R[i] = <float> row_ref[gi, i]
                fnn_ol_exp(Z, w, Bp, R, sv)
                for i in range(B):
                    row_sum[gi, i] = row_sum[gi, i] + sv[i]
        # each row's logsumexp over the groups, in group order (row_ref[0] then holds it), and the loss
        for i in prange(B, schedule="static", num_threads=n_threads):
            s = groups_logsumexp(row_ref, row_sum, i)
            loss[i] = <float> (s - loss[i])
            row_ref[0, i] = s
        if want_grad:
            # pass 2: the logits tile again, G, db, the group's share of dh and dW
            for gi in prange(G, schedule="dynamic", num_threads=n_threads):
                Z = &scratch[omp_get_thread_num(), 0]
                T = Z + block * Bp
                m = T + block * Hp
                R = m + 2 * Bp
                c = R + Bp
                trow = <int *> (c + Bp)
                Wb = hV2 + Bp * Hp + omp_get_thread_num() * per_thread
                Gb = Wb + block * Hk
                GV = Gb + block * Bp
                WT = GV + block * Bp
                k0 = gi * n_blocks // G
                k1 = (gi + 1) * n_blocks // G
                for k in range(k0, k1):
                    lo = k * block
                    w = min(block, V - lo)
                    _amx_logits_tile(W, b, lo, w, block, H, Hk, Bp, hV, Wb, Z)
                    for i in range(Bp):
                        # softmax = exp(logit - logsumexp); the padding columns' exps (c = 0) are never used
                        R[i] = <float> row_ref[0, i] if i < B else 3.0e38
                        c[i] = sc if i < B else 0
                        trow[i] = -1
                        if i < B:
                            t = targets[i] - lo
                            if 0 <= t < w:
                                trow[i] = <int> t
                    fnn_ol_exp(Z, w, Bp, R, m)
                    fnn_ol_grad(Z, w, Bp, B, c, trow, sc, Z, &db[lo])
                    fnn_amx_pack_rows(Z, w, Bp, Bp, Gb, block, Bp)
                    fnn_amx_pack_pairs(Z, w, Bp, Bp, GV, block, Bp)
                    fnn_amx_pack_cols(&W[lo, 0], w, H, H, WT, block, Hp)
                    fnn_amx_mm(WT, block, GV, 2 * Bp, &dh_parts[gi, 0, 0], Bp, Hp, Bp, block, k != k0)
                    fnn_amx_mm(Gb, Bp, hV2, 2 * Hp, T, Hp, block, Hp, Bp, 0)
                    for j in range(w):
                        memcpy(&dW[lo + j, 0], T + j * Hp, H * sizeof(float))
            # dh = the groups' shares added in group order, one row of dh^T (a column of dh) per j
            for j in prange(H, schedule="static", num_threads=n_threads):
                acc = &scratch[omp_get_thread_num(), 0]
                for i in range(B):
                    acc[i] = dh_parts[0, j, i]
                for u in range(1, G):
                    for i in range(B):
                        acc[i] = acc[i] + dh_parts[u, j, i]
                for i in range(B):
                    dh[i, j] = acc[i]


cdef inline void _amx_logits_tile(const float[:, ::1] W, const float[::1] b, Py_ssize_t lo, Py_ssize_t w,
                                  Py_ssize_t block, Py_ssize_t H, Py_ssize_t Hk, Py_ssize_t Bp,
                                  const unsigned short *hV, unsigned short *Wb, float *Z) noexcept nogil:
    """Z (block x Bp) = b[lo:lo + w] + W[lo:lo + w] h^T, rows past w zero (their W rows are zeros)."""
    cdef Py_ssize_t j, i
    cdef float bj
    for j in range(block):
        bj = b[lo + j] if j < w else 0
        for i in range(Bp):
            Z[j * Bp + i] = bj
    fnn_amx_pack_rows(&W[lo, 0], w, H, H, Wb, block, Hk)
    fnn_amx_mm(Wb, Hk, hV, 2 * Bp, Z, Bp, block, Bp, Hk, 1)
