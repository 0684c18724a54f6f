# cython: language_level=3
"""Row-major matrix products through scipy.linalg.cython_blas, and deterministic column sums.

Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from fastnn._ext import _info
from _common cimport gemm_rm, threads_for

cdef extern from "fnn_math.h":
    float fnn_memory_piece_f_path(int path, int kind, float *x, Py_ssize_t n, int stream) noexcept nogil


def _gemm(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A, const floating[:, ::1] B, double beta,
          floating[:, ::1] C):
    """C = alpha * op(A) @ op(B) + beta * C, all row-major.  C (M, N) INOUT; must not overlap A or B."""
    cdef int M = C.shape[0], N = C.shape[1]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t i, j
    if M == 0 or N == 0:
        return
    if K == 0:
        # BLAS would leave beta * C; keep that meaning without calling it with zero leading dimensions
        for i in range(M):
            for j in range(N):
                C[i, j] = <floating> beta * C[i, j] if beta != 0 else 0
        return
    with nogil:
        gemm_rm(trans_a, trans_b, M, N, K, <floating> alpha, &A[0, 0], <int> A.shape[1], &B[0, 0], <int> B.shape[1],
                <floating> beta, &C[0, 0], N)


def _col_sums(const floating[:, ::1] A, floating[::1] out, double beta, int n_threads):
    """out = beta * out + A.sum(axis=0), rows added in order (threads own column blocks).

    A (M, N) IN; out (N,) INOUT.
    """
    cdef Py_ssize_t M = A.shape[0], N = A.shape[1], blk, i, j, lo, hi
    cdef Py_ssize_t n_blocks = (N + 255) // 256
    cdef floating bb = <floating> beta
    n_threads = threads_for(M * N, n_threads)
    for blk in prange(n_blocks, schedule="static", num_threads=n_threads, nogil=True):
        lo = blk * 256
        hi = lo + 256
        if hi > N:
            hi = N
        for j in range(lo, hi):
            out[j] = out[j] * bb if bb != 0 else 0
        for i in range(M):
            for j in range(lo, hi):
                out[j] = out[j] + A[i, j]


def _memory_pass(const float[::1] src, float[::1] upd, float[::1] dst, bint stream, int n_threads):
    """One pass at memory speed over three regions, in pieces of 64 Ki elements shared out over the threads: every
    element of src read, of upd read and written back (upd += 1, in place), of dst written (dst = 1; streaming
    stores when `stream`), on the fastest vector path this build has for this CPU (fnn_memory_piece_f_path).
    bench/bench_kernels.py's memory roof.  Returns the sum of src's piece maxima (so that its reads are used).

    src (n_r,) IN; upd (n_u,) INOUT; dst (n_w,) OUT.
    """
    cdef Py_ssize_t P = 65536, n_r = src.shape[0], n_u = upd.shape[0], n_w = dst.shape[0]
    cdef Py_ssize_t p, lo, hi
    cdef double total = 0
    cdef int path = _info.path_number(_info.vector_path())
    with nogil:
        if n_r > 0:
            for p in prange((n_r + P - 1) // P, schedule="static", num_threads=n_threads):
                lo = p * P
                hi = min(lo + P, n_r)
                total += fnn_memory_piece_f_path(path, 0, <float *> &src[lo], hi - lo, 0)
        if n_u > 0:
            for p in prange((n_u + P - 1) // P, schedule="static", num_threads=n_threads):
                lo = p * P
                hi = min(lo + P, n_u)
                fnn_memory_piece_f_path(path, 1, &upd[lo], hi - lo, 0)
        if n_w > 0:
            for p in prange((n_w + P - 1) // P, schedule="static", num_threads=n_threads):
                lo = p * P
                hi = min(lo + P, n_w)
                fnn_memory_piece_f_path(path, 2, &dst[lo], hi - lo, stream)
    return total
