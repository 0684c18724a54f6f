# cython: language_level=3
"""AdaGrad on many parameters in one parallel loop (optim.AdaGrad.step): the dense ones and the lazy sparse ones.

One call instead of one per parameter: a model's small parameters (the RNN LM's five dense matrices and biases, its
output biases, its input rows) would each be a call too small to thread, and each call costs its validation and its
Python dispatch.  Here they are cut into tasks of about PIECE elements and shared out in one parallel loop.  Every
element gets adagrad_row's expression (the one kernels.sparse_adagrad_ and adagrad_ compute), independently of the
others, so the bits do not depend on the tasks or the threads.  Called only from fastnn/kernels.py, which validates
every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

from _common cimport adagrad_row, threads_for

cdef enum:
    PIECE = 4096            # elements per task
    AHEAD = 2               # scattered rows: prefetch the parameter and accumulator rows this many rows ahead

cdef extern from *:
    """
    static inline void fnn_prefetch_span(const void *p, Py_ssize_t n_bytes) {
        const char *c = (const char *) p;
        for (Py_ssize_t i = 0; i < n_bytes; i += 64) __builtin_prefetch(c + i, 1, 3);
    }
    """
    void prefetch_span "fnn_prefetch_span"(const void *p, Py_ssize_t n_bytes) noexcept nogil


def _adagrad_many(floating[::1] probe, list ws, list accs, list gs, list rows, const Py_ssize_t[::1] first,
                  const double[::1] l2, double lr, double eps, int n_threads):
    """AdaGrad, torch's convention (g' = g + l2 w; acc += g'^2; w -= lr g' / (sqrt(acc) + eps)), on P parts.

    probe : an empty array of the parameters' dtype (picks the float type).
    ws[p], accs[p] (V, D) INOUT: a parameter and its accumulator, C-contiguous; gs[p] (R, D) IN: its gradient rows.
    rows[p] (R,) IN: unique ascending rows of ws[p] the rows of gs[p] update, read only when first[p] < 0.
    first[p] : >= 0 when the R rows are first[p] .. first[p] + R - 1 (a dense parameter: 0 and R = V), updated as
        one flat span; -1 for scattered rows.  Every part has R >= 1 and D >= 1.
    l2[p] : its weight decay.
    """
    cdef Py_ssize_t P = len(ws), p, t, n_tasks = 0, total = 0, per, lo, hi, r, k
    cdef floating[:, ::1] W
    cdef floating[:, ::1] A
    cdef const floating[:, ::1] G
    cdef const Py_ssize_t[::1] R
    cdef floating **wp = <floating **> malloc(P * sizeof(floating *))
    cdef floating **ap = <floating **> malloc(P * sizeof(floating *))
    cdef const floating **gp = <const floating **> malloc(P * sizeof(floating *))
    cdef const Py_ssize_t **rp = <const Py_ssize_t **> malloc(P * sizeof(Py_ssize_t *))
    cdef Py_ssize_t *dim = <Py_ssize_t *> malloc(P * sizeof(Py_ssize_t))
    cdef Py_ssize_t *n_tasks_of = <Py_ssize_t *> malloc(P * sizeof(Py_ssize_t))
    cdef Py_ssize_t *task_part = NULL
    cdef Py_ssize_t *task_lo = NULL
    cdef Py_ssize_t *task_hi = NULL
    cdef floating a = <floating> lr, e = <floating> eps, c2
    try:
        if wp == NULL or ap == NULL or gp == NULL or rp == NULL or dim == NULL or n_tasks_of == NULL:
            raise MemoryError()
        for p in range(P):
            W = ws[p]
            A = accs[p]
            G = gs[p]
            dim[p] = W.shape[1]
            wp[p] = &W[0, 0]
            ap[p] = &A[0, 0]
            gp[p] = &G[0, 0]
            rp[p] = NULL
            if first[p] >= 0:                  # a flat span of R * D elements from row first[p]
                wp[p] = &W[first[p], 0]
                ap[p] = &A[first[p], 0]
                dim[p] = G.shape[0] * W.shape[1]
                n_tasks_of[p] = (dim[p] + PIECE - 1) // PIECE
            else:                              # scattered rows, whole rows per task
                R = rows[p]
                rp[p] = &R[0]
                per = max(1, PIECE // dim[p])
                n_tasks_of[p] = (G.shape[0] + per - 1) // per
            n_tasks += n_tasks_of[p]
            total += G.shape[0] * W.shape[1]
        task_part = <Py_ssize_t *> malloc(n_tasks * sizeof(Py_ssize_t))
        task_lo = <Py_ssize_t *> malloc(n_tasks * sizeof(Py_ssize_t))
        task_hi = <Py_ssize_t *> malloc(n_tasks * sizeof(Py_ssize_t))
        if task_part == NULL or task_lo == NULL or task_hi == NULL:
            raise MemoryError()
        t = 0
        for p in range(P):
            G = gs[p]
            if rp[p] == NULL:                  # [lo, hi) elements of the span
                per, hi = PIECE, dim[p]
            else:                              # [lo, hi) of the R rows
                per, hi = max(1, PIECE // dim[p]), G.shape[0]
            for k in range(n_tasks_of[p]):
                task_part[t] = p
                task_lo[t] = k * per
                task_hi[t] = min((k + 1) * per, hi)
                t += 1
        # a second thread only from 2 x 256k elements: below that, waking it costs more than it saves (measured on
        # the 2-vCPU Xeon VM, OMP_WAIT_POLICY=PASSIVE: the RNN LM's ~240k elements per step took 275 us on one
        # thread, 340 on two; a 1.4M-element update 630 and 442)
        for t in prange(n_tasks, schedule="static", num_threads=threads_for(total // 8, n_threads), nogil=True):
            p = task_part[t]
            lo = task_lo[t]
            hi = task_hi[t]
            c2 = <floating> l2[p]
            if rp[p] == NULL:
                adagrad_row(wp[p] + lo, ap[p] + lo, gp[p] + lo, hi - lo, a, e, c2)
            else:
                for r in range(lo, hi):
                    # the rows are scattered over tables larger than the cache: ask for the rows AHEAD on first
                    if r + AHEAD < hi:
                        prefetch_span(wp[p] + rp[p][r + AHEAD] * dim[p], dim[p] * sizeof(floating))
                        prefetch_span(ap[p] + rp[p][r + AHEAD] * dim[p], dim[p] * sizeof(floating))
                    adagrad_row(wp[p] + rp[p][r] * dim[p], ap[p] + rp[p][r] * dim[p], gp[p] + r * dim[p], dim[p],
                                a, e, c2)
    finally:
        free(wp)
        free(ap)
        free(gp)
        free(rp)
        free(dim)
        free(n_tasks_of)
        free(task_part)
        free(task_lo)
        free(task_hi)
