# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Row-major matrix products through scipy.linalg.cython_blas, and deterministic column sums.

Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from _common cimport gemm_rm, threads_for


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
