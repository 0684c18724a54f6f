# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""LSTM recurrence over T steps and its truncated back-propagation through time.

Four gates of K units each, stored side by side in one row of 4K per batch row, in torch's order (i, f, g, o):

    a_t = x_t + h_{t-1} W^T + b                          x_t: the input already projected (one big product by the
    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),   caller), W (4K, K), b (4K,)
    o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Steps are sequential.  The recurrent product of a step goes through BLAS (which threads it); the cell update is
element-wise, so threads split it over batch rows, each owning its rows' units, and the result does not depend on
the thread count.  dW is one matrix product over all steps after the sequential sweep; db is summed in row order.
Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset
from _common cimport threads_for, gemm_rm

cdef extern from *:
    """
    #include "fnn_math.h"
    #if defined(_MSC_VER) && !defined(restrict)
    #define restrict __restrict
    #endif

    /* One batch row of a forward step.  a (4n) INOUT: the gates' pre-activations in, their activations out;
     * c_prev (n) IN; c, h (n) OUT. */
    #define FNN_LSTM_FWD(NAME, T, SIGMOID, TANH, SIMD)                                                     \\
    static inline void NAME(T *restrict a, const T *restrict c_prev, T *restrict c, T *restrict h,          \\
                            ptrdiff_t n) {                                                                  \\
        T *restrict ai = a, *restrict af = a + n, *restrict ag = a + 2 * n, *restrict ao = a + 3 * n;       \\
        SIMD                                                                                                \\
        for (ptrdiff_t j = 0; j < n; j++) {                                                                 \\
            T i = SIGMOID(ai[j]), f = SIGMOID(af[j]), g = TANH(ag[j]), o = SIGMOID(ao[j]);                  \\
            T cj = f * c_prev[j] + i * g;                                                                   \\
            ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;                                                     \\
            c[j] = cj;                                                                                      \\
            h[j] = o * TANH(cj);                                                                            \\
        }                                                                                                   \\
    }
    FNN_LSTM_FWD(fnn_lstm_fwd_f, float, fnn_sigmoidf, fnn_tanhf, FNN_SIMD)
    FNN_LSTM_FWD(fnn_lstm_fwd_d, double, fnn_sigmoid, tanh, )

    /* One batch row of a backward step.  a (4n) IN: the activations (i, f, g, o); c_prev, c (n) IN: c_{t-1}, c_t;
     * gh (n) IN: d loss / d h_t from outside; dh (n) IN: d loss / d h_t through step t+1; dc (n) INOUT:
     * d loss / d c_t through step t+1 in, d loss / d c_{t-1} out; da (4n) OUT: d loss / d a_t, clipped to
     * [-clip, clip] when clip > 0 (the clipped error is also what reaches h_{t-1} and W). */
    #define FNN_LSTM_BWD(NAME, T, TANH, SIMD)                                                              \\
    static inline void NAME(const T *restrict a, const T *restrict c_prev, const T *restrict c,            \\
                            const T *restrict gh, const T *restrict dh, T *restrict dc, T *restrict da,     \\
                            ptrdiff_t n, T clip) {                                                          \\
        const T *restrict ai = a, *restrict af = a + n, *restrict ag = a + 2 * n, *restrict ao = a + 3 * n; \\
        T *restrict di = da, *restrict df = da + n, *restrict dg = da + 2 * n, *restrict dout = da + 3 * n; \\
        SIMD                                                                                                \\
        for (ptrdiff_t j = 0; j < n; j++) {                                                                 \\
            T i = ai[j], f = af[j], g = ag[j], o = ao[j];                                                   \\
            T tc = TANH(c[j]);                                                                              \\
            T d_h = gh[j] + dh[j];                                                                          \\
            T d_c = dc[j] + d_h * o * ((T) 1 - tc * tc);                                                    \\
            T vi = d_c * g * i * ((T) 1 - i);                                                               \\
            T vf = d_c * c_prev[j] * f * ((T) 1 - f);                                                       \\
            T vg = d_c * i * ((T) 1 - g * g);                                                               \\
            T vo = d_h * tc * o * ((T) 1 - o);                                                              \\
            if (clip > (T) 0) {                                                                             \\
                vi = vi > clip ? clip : (vi < -clip ? -clip : vi);                                          \\
                vf = vf > clip ? clip : (vf < -clip ? -clip : vf);                                          \\
                vg = vg > clip ? clip : (vg < -clip ? -clip : vg);                                          \\
                vo = vo > clip ? clip : (vo < -clip ? -clip : vo);                                          \\
            }                                                                                               \\
            di[j] = vi; df[j] = vf; dg[j] = vg; dout[j] = vo;                                               \\
            dc[j] = d_c * f;                                                                                \\
        }                                                                                                   \\
    }
    FNN_LSTM_BWD(fnn_lstm_bwd_f, float, fnn_tanhf, FNN_SIMD)
    FNN_LSTM_BWD(fnn_lstm_bwd_d, double, tanh, )
    """
    void fnn_lstm_fwd_f(float *a, const float *c_prev, float *c, float *h, Py_ssize_t n) noexcept nogil
    void fnn_lstm_fwd_d(double *a, const double *c_prev, double *c, double *h, Py_ssize_t n) noexcept nogil
    void fnn_lstm_bwd_f(const float *a, const float *c_prev, const float *c, const float *gh, const float *dh,
                        float *dc, float *da, Py_ssize_t n, float clip) noexcept nogil
    void fnn_lstm_bwd_d(const double *a, const double *c_prev, const double *c, const double *gh, const double *dh,
                        double *dc, double *da, Py_ssize_t n, double clip) noexcept nogil


cdef inline void cell_forward(floating *a, const floating *c_prev, floating *c, floating *h,
                              Py_ssize_t n) noexcept nogil:
    if floating is float:
        fnn_lstm_fwd_f(a, c_prev, c, h, n)
    else:
        fnn_lstm_fwd_d(a, c_prev, c, h, n)


cdef inline void cell_backward(const floating *a, const floating *c_prev, const floating *c, const floating *gh,
                               const floating *dh, floating *dc, floating *da, Py_ssize_t n,
                               floating clip) noexcept nogil:
    if floating is float:
        fnn_lstm_bwd_f(a, c_prev, c, gh, dh, dc, da, n, clip)
    else:
        fnn_lstm_bwd_d(a, c_prev, c, gh, dh, dc, da, n, clip)


def _lstm_forward(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  floating[:, :, ::1] A, floating[:, :, ::1] H, floating[:, :, ::1] C, int n_threads):
    """X (T, B, 4K) IN projected inputs; W (4K, K) IN; b (4K,) IN; A (T, B, 4K) OUT: the gates' activations;
    H, C (T + 1, B, K) INOUT: H[0], C[0] = the starting state on entry, H[t + 1] = h_t, C[t + 1] = c_t on exit."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K4 = X.shape[2], K = K4 // 4, t, i, j, r
    cdef int nt = threads_for(B * K4, n_threads)
    if T == 0 or B == 0 or K == 0:
        return
    with nogil:
        for r in prange(T * B, schedule="static", num_threads=threads_for(T * B * K4, n_threads)):
            t = r // B
            i = r % B
            for j in range(K4):
                A[t, i, j] = X[t, i, j] + b[j]
        for t in range(T):
            gemm_rm(False, True, <int> B, <int> K4, <int> K, <floating> 1.0, &H[t, 0, 0], <int> K, &W[0, 0],
                    <int> K, <floating> 1.0, &A[t, 0, 0], <int> K4)
            if nt > 1:
                for i in prange(B, schedule="static", num_threads=nt):
                    cell_forward(&A[t, i, 0], &C[t, i, 0], &C[t + 1, i, 0], &H[t + 1, i, 0], K)
            else:
                for i in range(B):
                    cell_forward(&A[t, i, 0], &C[t, i, 0], &C[t + 1, i, 0], &H[t + 1, i, 0], K)


def _lstm_backward(const floating[:, :, ::1] dH, const floating[:, :, ::1] A, const floating[:, :, ::1] H,
                   const floating[:, :, ::1] C, const floating[:, ::1] W, floating[:, :, ::1] dA,
                   floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dh0, floating[:, ::1] dc0, double clip,
                   int n_threads):
    """BPTT from step T-1 back to step 0.

    dH (T, B, K) IN: d loss / d h_t from outside the recurrence (the gradient into the final h included in dH[T-1]);
    A (T, B, 4K), H, C (T + 1, B, K) IN from _lstm_forward; W (4K, K) IN;
    dA (T, B, 4K) OUT: d loss / d a_t (= d loss / d x_t), clipped to [-clip, clip] when clip > 0;
    dW (4K, K) OUT; db (4K,) OUT; dh0 (B, K) OUT: d loss / d h_0;
    dc0 (B, K) INOUT: d loss / d c_T from outside on entry (zeros if none), d loss / d c_0 on exit.
    """
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], K4 = 4 * K, t, i, j, blk, lo, hi
    cdef int nt = threads_for(B * K4, n_threads)
    cdef floating c = <floating> clip
    cdef Py_ssize_t n_blocks = (K4 + 255) // 256
    if B == 0 or K == 0:
        return
    with nogil:
        memset(&dh0[0, 0], 0, B * K * sizeof(floating))
        for t in range(T - 1, -1, -1):
            # the carry d loss / d h_t from step t+1 lives in dh0, d loss / d c_t in dc0
            if nt > 1:
                for i in prange(B, schedule="static", num_threads=nt):
                    cell_backward(&A[t, i, 0], &C[t, i, 0], &C[t + 1, i, 0], &dH[t, i, 0], &dh0[i, 0], &dc0[i, 0],
                                  &dA[t, i, 0], K, c)
            else:
                for i in range(B):
                    cell_backward(&A[t, i, 0], &C[t, i, 0], &C[t + 1, i, 0], &dH[t, i, 0], &dh0[i, 0], &dc0[i, 0],
                                  &dA[t, i, 0], K, c)
            # carry to step t-1: da_t @ W
            gemm_rm(False, False, <int> B, <int> K, <int> K4, <floating> 1.0, &dA[t, 0, 0], <int> K4, &W[0, 0],
                    <int> K, <floating> 0.0, &dh0[0, 0], <int> K)
        # dW = sum_t da_t^T h_{t-1}: one product over all T*B rows
        if T > 0:
            gemm_rm(True, False, <int> K4, <int> K, <int> (T * B), <floating> 1.0, &dA[0, 0, 0], <int> K4,
                    &H[0, 0, 0], <int> K, <floating> 0.0, &dW[0, 0], <int> K)
        # db: rows added in order, threads own column blocks (the same bits for any thread count)
        for blk in prange(n_blocks, schedule="static", num_threads=threads_for(T * B * K4, n_threads)):
            lo = blk * 256
            hi = lo + 256
            if hi > K4:
                hi = K4
            for j in range(lo, hi):
                db[j] = 0
            for t in range(T):
                for i in range(B):
                    for j in range(lo, hi):
                        db[j] = db[j] + dA[t, i, j]
