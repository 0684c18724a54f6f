# cython: language_level=3
"""Elman recurrence over T steps and its truncated back-propagation through time.

    z_t = x_t + h_{t-1} W^T + b,   h_t = f(z_t),   f: 0 tanh, 1 sigmoid, 2 relu, 3 identity

x_t is the already-projected input (one big matrix product done by the caller).  Steps are sequential; the product
per step goes through BLAS (which threads it); the elementwise work per step is split over batch rows when there is
enough of it.  dW is one matrix product over all steps after the sequential sweep.  Called only from
fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from _common cimport threads_for, gemm_rm, act, dact


def _rnn_forward(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                 floating[:, :, ::1] H, int kind, int n_threads):
    """X (T, B, K) IN projected inputs; W (K, K) IN; b (K,) IN; H (T + 1, B, K) INOUT: H[0] = h_0 on entry,
    H[t + 1] = h_t on exit."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K = X.shape[2], t, i, j
    cdef int nt = threads_for(B * K, n_threads)
    if T == 0 or B == 0 or K == 0:
        return
    with nogil:
        for t in range(T):
            for i in range(B):
                for j in range(K):
                    H[t + 1, i, j] = X[t, i, j] + b[j]
            gemm_rm(False, True, <int> B, <int> K, <int> K, <floating> 1.0, &H[t, 0, 0], <int> K, &W[0, 0], <int> K,
                    <floating> 1.0, &H[t + 1, 0, 0], <int> K)
            if nt > 1:
                for i in prange(B, schedule="static", num_threads=nt):
                    act(&H[t + 1, i, 0], K, kind)
            else:
                act(&H[t + 1, 0, 0], B * K, kind)


def _rnn_backward(const floating[:, :, ::1] dH, const floating[:, :, ::1] H, const floating[:, ::1] W,
                  floating[:, :, ::1] dX, floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dh0, int kind,
                  double clip, int n_threads):
    """BPTT from step T-1 back to step 0.

    dH (T, B, K) IN: d loss / d h_t from outside the recurrence (gradient into the final state included in dH[T-1]);
    H (T + 1, B, K) IN from _rnn_forward; W (K, K) IN;
    dX (T, B, K) OUT: d loss / d z_t (= d loss / d x_t), clipped to [-clip, clip] when clip > 0;
    dW (K, K) OUT; db (K,) OUT; dh0 (B, K) OUT: d loss / d h_0.
    """
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], t, i, j
    cdef int nt = threads_for(B * K, n_threads)
    cdef floating c = <floating> clip
    if B == 0 or K == 0:
        return
    with nogil:
        memset(&dh0[0, 0], 0, B * K * sizeof(floating))
        memset(&dW[0, 0], 0, K * K * sizeof(floating))
        memset(&db[0], 0, K * sizeof(floating))
        for t in range(T - 1, -1, -1):
            # dz_t = (dH[t] + carry) * f'(z_t); the carry d loss / d h_t from step t+1 lives in dh0
            if nt > 1:
                for i in prange(B, schedule="static", num_threads=nt):
                    dact(&dH[t, i, 0], &dh0[i, 0], &H[t + 1, i, 0], &dX[t, i, 0], K, kind, c)
            else:
                dact(&dH[t, 0, 0], &dh0[0, 0], &H[t + 1, 0, 0], &dX[t, 0, 0], B * K, kind, c)
            # carry to step t-1: dz_t @ W
            gemm_rm(False, False, <int> B, <int> K, <int> K, <floating> 1.0, &dX[t, 0, 0], <int> K, &W[0, 0], <int> K,
                    <floating> 0.0, &dh0[0, 0], <int> K)
        # dW = sum_t dz_t^T h_{t-1}: one product over all T*B rows
        if T > 0:
            gemm_rm(True, False, <int> K, <int> K, <int> (T * B), <floating> 1.0, &dX[0, 0, 0], <int> K, &H[0, 0, 0],
                    <int> K, <floating> 0.0, &dW[0, 0], <int> K)
        for t in range(T):
            for i in range(B):
                for j in range(K):
                    db[j] = db[j] + dX[t, i, j]
