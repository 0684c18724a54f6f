# cython: language_level=3
"""Sparse embedding rows: gather, grouping of repeated indices, segment sums, scatter-add and sparse updates.

Race-freedom and thread-count independence come from ownership: in a grouped update each unique row belongs to one
thread and its contributions are summed in the order of the stable sort; in `_scatter_add` each thread owns a
contiguous range of columns and walks all tokens in order.  Never `out[idx[i]] += ...` across threads.

Called only from fastnn/kernels.py, which validates every argument (indices in range, shapes, dtypes) first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from _common cimport omp_get_thread_num, threads_for, malloc2, adagrad_row, axpy, fnn_prefetch_w

cdef Py_ssize_t COL_BLOCK = 16   # 64 bytes of float32: one cache line (see _scatter_add for the alignment)
cdef Py_ssize_t PREFETCH = 16    # _scatter_add asks for the row of the token this many ahead


def _gather_rows(const floating[:, ::1] W, const Py_ssize_t[::1] idx, floating[:, ::1] out, int n_threads):
    """out[i] = W[idx[i]].  W (V, D) IN, idx (N,) IN, out (N, D) OUT."""
    cdef Py_ssize_t N = idx.shape[0], D = W.shape[1], i
    if N == 0 or D == 0:
        return
    n_threads = threads_for(N * D, n_threads)
    for i in prange(N, schedule="static", num_threads=n_threads, nogil=True):
        memcpy(&out[i, 0], &W[idx[i], 0], D * sizeof(floating))


def _group_rows(const Py_ssize_t[::1] idx, Py_ssize_t n_rows, Py_ssize_t[::1] order, Py_ssize_t[::1] uniq,
                Py_ssize_t[::1] seg):
    """Stable LSD radix sort of idx (values in [0, n_rows)), then the runs of equal values.

    idx (N,) IN; order (N,) OUT: idx[order] is sorted, ties in original order; uniq (N,) OUT: the distinct values,
    ascending, in uniq[:n_uniq]; seg (N + 1,) OUT: occurrences of uniq[r] are order[seg[r]:seg[r + 1]].
    Returns n_uniq.
    """
    cdef Py_ssize_t N = idx.shape[0], i, r, shift, b, key, total, c
    cdef Py_ssize_t RADIX_BITS = 11, n_buckets = 1 << 11
    cdef Py_ssize_t *count
    cdef Py_ssize_t *tmp
    cdef Py_ssize_t *src
    cdef Py_ssize_t *dst
    cdef Py_ssize_t *swap
    if N == 0:
        seg[0] = 0
        return 0
    if not malloc2(<void **> &count, n_buckets * sizeof(Py_ssize_t), <void **> &tmp, N * sizeof(Py_ssize_t)):
        raise MemoryError()
    with nogil:
        for i in range(N):
            order[i] = i
        src = &order[0]
        dst = tmp
        shift = 0
        while shift == 0 or (n_rows - 1) >> shift > 0:
            for b in range(n_buckets):
                count[b] = 0
            for i in range(N):
                count[(idx[src[i]] >> shift) & (n_buckets - 1)] += 1
            total = 0
            for b in range(n_buckets):
                c = count[b]
                count[b] = total
                total = total + c
            for i in range(N):
                key = (idx[src[i]] >> shift) & (n_buckets - 1)
                dst[count[key]] = src[i]
                count[key] += 1
            swap = src
            src = dst
            dst = swap
            shift = shift + RADIX_BITS
        if src != &order[0]:
            memcpy(&order[0], src, N * sizeof(Py_ssize_t))
        r = 0
        uniq[0] = idx[order[0]]
        seg[0] = 0
        for i in range(1, N):
            if idx[order[i]] != uniq[r]:
                r = r + 1
                uniq[r] = idx[order[i]]
                seg[r] = i
        r = r + 1
        seg[r] = N
    free(count)
    free(tmp)
    return r


def _segment_sum(const floating[:, ::1] G, const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg,
                 floating[:, ::1] out, int n_threads):
    """out[r] = sum of G[order[k]] for k in seg[r]:seg[r+1], in that order.

    G (N, D) IN; order (N,) IN; seg (R + 1,) IN; out (R, D) OUT.
    """
    cdef Py_ssize_t R = out.shape[0], D = G.shape[1], r, k, j, src
    if R == 0 or D == 0:
        return
    n_threads = threads_for(G.shape[0] * D, n_threads)
    for r in prange(R, schedule="dynamic", chunksize=64, num_threads=n_threads, nogil=True):
        src = order[seg[r]]
        memcpy(&out[r, 0], &G[src, 0], D * sizeof(floating))
        for k in range(seg[r] + 1, seg[r + 1]):
            src = order[k]
            for j in range(D):
                out[r, j] = out[r, j] + G[src, j]


cdef inline Py_ssize_t _unit_start(Py_ssize_t u, Py_ssize_t first, Py_ssize_t D) noexcept nogil:
    """Start column of column unit u: unit 0 is [0, first), then units of COL_BLOCK columns (clipped to D)."""
    cdef Py_ssize_t c = 0 if u == 0 else first + (u - 1) * COL_BLOCK
    return c if c < D else D


def _scatter_add(floating[:, ::1] W, const Py_ssize_t[::1] idx, const floating[:, ::1] G, double alpha,
                 int n_threads):
    """W[idx[i]] += alpha * G[i] for every i in order (repeats add up).  Threads own column ranges, not rows.

    Each thread takes one contiguous range of column units and walks the tokens once: every element still gets its
    contributions in token order, so the split (and the thread count) does not change the bits.  The units start on
    64-byte lines of W's first row (NumPy aligns large arrays to 16 bytes only: units counted from column 0 made two
    threads write one line of every row, 1.6x slower than one thread); with rows a whole number of lines long, no
    two threads share a line.  W (V, D) INOUT; idx (N,) IN; G (N, D) IN.
    """
    cdef Py_ssize_t N = idx.shape[0], D = W.shape[1], p, i, lo, hi, first, n_units, n_parts
    cdef floating a = <floating> alpha
    if N == 0 or D == 0:
        return
    # columns before W[0]'s first 64-byte boundary form unit 0 (a whole COL_BLOCK when W[0] is aligned)
    first = ((64 - <size_t> &W[0, 0] % 64) % 64) // sizeof(floating)
    if first == 0:
        first = COL_BLOCK
    n_units = 1 + (D - first + COL_BLOCK - 1) // COL_BLOCK if D > first else 1
    # every thread walks all N tokens for its columns, so a second thread pays off only for far more work than
    # threads_for's default (Xeon, 2026-12-05, 8192 x 128: 1 thread 0.21-0.27 ms, 2 threads 0.35; at 8x that size 2
    # threads win, 1.5 against 1.6-1.9 ms): 64x its work per thread, ~2M elements
    n_threads = threads_for(N * D // 64, n_threads)
    n_parts = n_threads if n_threads < n_units else n_units
    for p in prange(n_parts, schedule="static", num_threads=n_threads, nogil=True):
        lo = _unit_start(p * n_units // n_parts, first, D)
        hi = _unit_start((p + 1) * n_units // n_parts, first, D) if p + 1 < n_parts else D
        for i in range(N):
            if i + PREFETCH < N:
                fnn_prefetch_w(&W[idx[i + PREFETCH], lo], (hi - lo) * sizeof(floating))
            axpy(a, &G[i, lo], &W[idx[i], lo], hi - lo)


def _sparse_sgd(floating[:, ::1] W, const Py_ssize_t[::1] rows, const floating[:, ::1] G, double lr, double l2,
                int n_threads):
    """For unique rows r: W[rows[r]] -= lr * (G[r] + l2 * W[rows[r]]).  W (V, D) INOUT; rows (R,) IN; G (R, D) IN."""
    cdef Py_ssize_t R = rows.shape[0], D = W.shape[1], r, j, row
    cdef floating a = <floating> lr, decay = <floating> (1.0 - lr * l2)
    if R == 0 or D == 0:
        return
    n_threads = threads_for(R * D, n_threads)
    for r in prange(R, schedule="static", num_threads=n_threads, nogil=True):
        row = rows[r]
        for j in range(D):
            W[row, j] = decay * W[row, j] - a * G[r, j]


# elements per task when a row range is updated as one long row (_sparse_adagrad)
cdef enum:
    FLAT = 4096


def _sparse_adagrad(floating[:, ::1] W, floating[:, ::1] A, const Py_ssize_t[::1] rows, const floating[:, ::1] G,
                    double lr, double eps, double l2, int n_threads):
    """Lazy AdaGrad on unique rows (torch's convention: eps after the sqrt).

    W, A (V, D) INOUT: parameters and accumulated squared gradients; rows (R,) IN unique; G (R, D) IN.
    """
    cdef Py_ssize_t R = rows.shape[0], D = W.shape[1], r, row, n, lo
    if R == 0 or D == 0:
        return
    n_threads = threads_for(R * D, n_threads)
    if rows[R - 1] - rows[0] == R - 1:
        # unique ascending rows spanning a range (a bias column whose every row has a gradient: the RNN LM's output
        # biases): one long row cut in fixed pieces instead of R short ones; the same expression, so the same bits
        n = R * D
        for r in prange((n + FLAT - 1) // FLAT, schedule="static", num_threads=n_threads, nogil=True):
            lo = r * FLAT
            adagrad_row(&W[rows[0], 0] + lo, &A[rows[0], 0] + lo, &G[0, 0] + lo, min(<Py_ssize_t> FLAT, n - lo),
                        <floating> lr, <floating> eps, <floating> l2)
        return
    for r in prange(R, schedule="static", num_threads=n_threads, nogil=True):
        row = rows[r]
        adagrad_row(&W[row, 0], &A[row, 0], &G[r, 0], D, <floating> lr, <floating> eps, <floating> l2)


def _sparse_adagrad_grouped(floating[:, ::1] W, floating[:, ::1] A, const floating[:, ::1] G,
                            const Py_ssize_t[::1] order, const Py_ssize_t[::1] uniq, const Py_ssize_t[::1] seg,
                            double lr, double eps, double l2, int n_threads):
    """Lazy AdaGrad straight from uncoalesced row gradients: per unique row, sum its G rows (in a per-thread
    buffer), then one non-linear update.  W, A (V, D) INOUT; G (N, D) IN; order/uniq/seg from _group_rows.
    """
    cdef Py_ssize_t R = uniq.shape[0], D = W.shape[1], r, k, j, row, src
    cdef floating *scratch
    cdef floating *buf
    if R == 0 or D == 0:
        return
    n_threads = threads_for(G.shape[0] * D, n_threads)
    scratch = <floating *> malloc(n_threads * D * sizeof(floating))
    if scratch == NULL:
        raise MemoryError()
    # dynamic: the frequent (Zipf) rows sort first, and a static split would give them all to thread 0
    for r in prange(R, schedule="dynamic", chunksize=64, num_threads=n_threads, nogil=True):
        row = uniq[r]
        src = order[seg[r]]
        if seg[r + 1] - seg[r] == 1:
            # most rows of a Zipf batch occur once: update straight from G, no copy
            adagrad_row(&W[row, 0], &A[row, 0], &G[src, 0], D, <floating> lr, <floating> eps, <floating> l2)
        else:
            buf = scratch + omp_get_thread_num() * D
            for j in range(D):
                buf[j] = G[src, j]
            for k in range(seg[r] + 1, seg[r + 1]):
                src = order[k]
                for j in range(D):
                    buf[j] = buf[j] + G[src, j]
            adagrad_row(&W[row, 0], &A[row, 0], buf, D, <floating> lr, <floating> eps, <floating> l2)
    free(scratch)
