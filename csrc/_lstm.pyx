# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""LSTM recurrence over T steps and its truncated back-propagation through time.

Four gates of K units each, stored side by side in one row of 4K per batch row, in torch's order (i, f, g, o):

    a_t = h_{t-1} W^T + x_t + b                          x_t: the input already projected (one big product by the
    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),   caller), W (4K, K), b (4K,)
    o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Steps are sequential.  Within a step every thread owns a block of units: it computes its units' four gate columns
(single-threaded BLAS on its rows of W), updates their cells, and meets the others at one barrier per step, since the
next step's product reads every unit of h_t.  Backward likewise: each thread back-propagates its units' cells, then,
after the barrier, computes its columns of the carry d loss / d h_{t-1} = da_t W from every unit's da_t.  dW (rows of
the thread's units, over all steps in one product) and db (its columns, rows added in order) follow in the same
region.  Each output element is computed by the same sequence of operations whatever the split (BLAS sums over k in
the same order for any column or row slice), so the result does not depend on the thread count.  BLAS must run
single-threaded inside the region: fastnn/kernels.py limits it for the call.
Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport parallel
from libc.string cimport memset
from _common cimport threads_for, gemm_rm

cdef extern from *:
    """
    #include "fnn_math.h"
    #if defined(_MSC_VER) && !defined(restrict)
    #define restrict __restrict
    #endif

    /* One batch row of a forward step, n units whose four gates lie ld apart.  a (gates) INOUT: h_{t-1} W^T in,
     * the gates' activations out; x (gates) IN: the projected input; bias (gates) IN; c_prev (n) IN; c, h (n) OUT. */
    #define FNN_LSTM_FWD(NAME, T, SIGMOID, TANH, SIMD)                                                     \\
    static inline void NAME(T *restrict a, const T *restrict x, const T *restrict bias,                     \\
                            const T *restrict c_prev, T *restrict c, T *restrict h, ptrdiff_t n,            \\
                            ptrdiff_t ld) {                                                                 \\
        T *restrict ai = a, *restrict af = a + ld, *restrict ag = a + 2 * ld, *restrict ao = a + 3 * ld;    \\
        SIMD                                                                                                \\
        for (ptrdiff_t j = 0; j < n; j++) {                                                                 \\
            T i = SIGMOID(ai[j] + x[j] + bias[j]), f = SIGMOID(af[j] + x[ld + j] + bias[ld + j]);           \\
            T g = TANH(ag[j] + x[2 * ld + j] + bias[2 * ld + j]);                                           \\
            T o = SIGMOID(ao[j] + x[3 * ld + j] + bias[3 * ld + j]);                                        \\
            T cj = f * c_prev[j] + i * g;                                                                   \\
            ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;                                                     \\
            c[j] = cj;                                                                                      \\
            h[j] = o * TANH(cj);                                                                            \\
        }                                                                                                   \\
    }
    FNN_LSTM_FWD(fnn_lstm_fwd_f, float, fnn_sigmoidf, fnn_tanhf, FNN_SIMD)
    FNN_LSTM_FWD(fnn_lstm_fwd_d, double, fnn_sigmoid, tanh, )

    /* One batch row of a backward step, n units whose gates lie ld apart.  a (gates) IN: the activations
     * (i, f, g, o); c_prev, c (n) IN: c_{t-1}, c_t; gh (n) IN: d loss / d h_t from outside; dh (n) IN: d loss / d h_t
     * through step t+1; dc (n) INOUT: d loss / d c_t through step t+1 in, d loss / d c_{t-1} out; da (gates) OUT:
     * d loss / d a_t, clipped to [-clip, clip] when clip > 0 (the clipped error is also what reaches h_{t-1} and W). */
    #define FNN_LSTM_BWD(NAME, T, TANH, SIMD)                                                              \\
    static inline void NAME(const T *restrict a, const T *restrict c_prev, const T *restrict c,            \\
                            const T *restrict gh, const T *restrict dh, T *restrict dc, T *restrict da,     \\
                            ptrdiff_t n, ptrdiff_t ld, T clip) {                                            \\
        const T *restrict ai = a, *restrict af = a + ld, *restrict ag = a + 2 * ld, *restrict ao = a + 3 * ld; \\
        T *restrict di = da, *restrict df = da + ld, *restrict dg = da + 2 * ld, *restrict dout = da + 3 * ld; \\
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

    /* The region's thread count and a barrier (an orphaned one binds to the enclosing parallel region). */
    #ifdef _OPENMP
    #include <omp.h>
    static inline int fnn_lstm_team_size(void) { return omp_get_num_threads(); }
    static inline int fnn_lstm_rank(void) { return omp_get_thread_num(); }
    static inline void fnn_lstm_barrier(void) { _Pragma("omp barrier") }
    #else
    static inline int fnn_lstm_team_size(void) { return 1; }
    static inline int fnn_lstm_rank(void) { return 0; }
    static inline void fnn_lstm_barrier(void) { }
    #endif
    """
    void fnn_lstm_fwd_f(float *a, const float *x, const float *bias, const float *c_prev, float *c, float *h,
                        Py_ssize_t n, Py_ssize_t ld) noexcept nogil
    void fnn_lstm_fwd_d(double *a, const double *x, const double *bias, const double *c_prev, double *c, double *h,
                        Py_ssize_t n, Py_ssize_t ld) noexcept nogil
    void fnn_lstm_bwd_f(const float *a, const float *c_prev, const float *c, const float *gh, const float *dh,
                        float *dc, float *da, Py_ssize_t n, Py_ssize_t ld, float clip) noexcept nogil
    void fnn_lstm_bwd_d(const double *a, const double *c_prev, const double *c, const double *gh, const double *dh,
                        double *dc, double *da, Py_ssize_t n, Py_ssize_t ld, double clip) noexcept nogil
    int fnn_lstm_team_size() noexcept nogil
    int fnn_lstm_rank() noexcept nogil
    void fnn_lstm_barrier() noexcept nogil


cdef inline void cell_forward(floating *a, const floating *x, const floating *bias, const floating *c_prev,
                              floating *c, floating *h, Py_ssize_t n, Py_ssize_t ld) noexcept nogil:
    if floating is float:
        fnn_lstm_fwd_f(a, x, bias, c_prev, c, h, n, ld)
    else:
        fnn_lstm_fwd_d(a, x, bias, c_prev, c, h, n, ld)


cdef inline void cell_backward(const floating *a, const floating *c_prev, const floating *c, const floating *gh,
                               const floating *dh, floating *dc, floating *da, Py_ssize_t n, Py_ssize_t ld,
                               floating clip) noexcept nogil:
    if floating is float:
        fnn_lstm_bwd_f(a, c_prev, c, gh, dh, dc, da, n, ld, clip)
    else:
        fnn_lstm_bwd_d(a, c_prev, c, gh, dh, dc, da, n, ld, clip)


cdef inline int team_threads(Py_ssize_t B, Py_ssize_t K, int n_threads) noexcept nogil:
    """Threads for one step: each needs a block of >= 16 units and ~1M multiply-adds of the step's product."""
    cdef int nt = threads_for(B * K * K // 8, n_threads)
    return nt if nt <= K // 16 else <int> (K // 16)


cdef inline void unit_block(Py_ssize_t K, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """This thread's units [lo, hi): blocks of 16 (one AVX-512 vector of floats) shared out evenly."""
    cdef Py_ssize_t n16 = (K + 15) // 16, p = fnn_lstm_rank(), n = fnn_lstm_team_size()
    lo[0] = 16 * (p * n16 // n)
    hi[0] = 16 * ((p + 1) * n16 // n)
    if hi[0] > K:
        hi[0] = K
    if lo[0] > hi[0]:
        lo[0] = hi[0]


cdef void forward_units(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                        floating[:, :, ::1] A, floating[:, :, ::1] H, floating[:, :, ::1] C, Py_ssize_t lo,
                        Py_ssize_t hi, bint team) noexcept nogil:
    """All T steps for the units [lo, hi); `team`: other threads own the other units (meet them after each step)."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K4 = X.shape[2], K = K4 // 4, t, i, q
    for t in range(T):
        if hi > lo:
            if hi - lo == K:     # all units: the four gates are one contiguous block of columns
                gemm_rm(False, True, <int> B, <int> K4, <int> K, <floating> 1.0, &H[t, 0, 0], <int> K, &W[0, 0],
                        <int> K, <floating> 0.0, &A[t, 0, 0], <int> K4)
            else:
                for q in range(4):
                    gemm_rm(False, True, <int> B, <int> (hi - lo), <int> K, <floating> 1.0, &H[t, 0, 0], <int> K,
                            &W[q * K + lo, 0], <int> K, <floating> 0.0, &A[t, 0, q * K + lo], <int> K4)
            for i in range(B):
                cell_forward(&A[t, i, lo], &X[t, i, lo], &b[lo], &C[t, i, lo], &C[t + 1, i, lo], &H[t + 1, i, lo],
                             hi - lo, K)
        if team:
            fnn_lstm_barrier()


def _lstm_forward(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  floating[:, :, ::1] A, floating[:, :, ::1] H, floating[:, :, ::1] C, int n_threads):
    """X (T, B, 4K) IN projected inputs; W (4K, K) IN; b (4K,) IN; A (T, B, 4K) OUT: the gates' activations;
    H, C (T + 1, B, K) INOUT: H[0], C[0] = the starting state on entry, H[t + 1] = h_t, C[t + 1] = c_t on exit.
    With n_threads > 1 BLAS must be limited to one thread for the call."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K4 = X.shape[2], K = K4 // 4, lo, hi
    cdef int nt = team_threads(B, K, n_threads)
    if T == 0 or B == 0 or K == 0:
        return
    if nt <= 1:
        with nogil:
            forward_units(X, W, b, A, H, C, 0, K, False)
        return
    with nogil, parallel(num_threads=nt):
        unit_block(K, &lo, &hi)
        forward_units(X, W, b, A, H, C, lo, hi, True)


cdef void backward_units(const floating[:, :, ::1] dH, const floating[:, :, ::1] A, const floating[:, :, ::1] H,
                         const floating[:, :, ::1] C, const floating[:, ::1] W, floating[:, :, ::1] dA,
                         floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dh0, floating[:, ::1] dc0,
                         floating clip, Py_ssize_t lo, Py_ssize_t hi, bint team) noexcept nogil:
    """BPTT for the units [lo, hi): their cells, their columns of the carry, their rows of dW and entries of db."""
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], K4 = 4 * K, t, i, j, q
    for t in range(T - 1, -1, -1):
        # the carry d loss / d h_t from step t+1 lives in dh0, d loss / d c_t in dc0
        for i in range(B):
            if hi > lo:
                cell_backward(&A[t, i, lo], &C[t, i, lo], &C[t + 1, i, lo], &dH[t, i, lo], &dh0[i, lo], &dc0[i, lo],
                              &dA[t, i, lo], hi - lo, K, clip)
        if team:
            fnn_lstm_barrier()     # the carry below reads every unit's da_t
        if hi > lo:
            gemm_rm(False, False, <int> B, <int> (hi - lo), <int> K4, <floating> 1.0, &dA[t, 0, 0], <int> K4,
                    &W[0, lo], <int> K, <floating> 0.0, &dh0[0, lo], <int> K)
    if hi <= lo or T == 0:
        return
    # dW = sum_t da_t^T h_{t-1}: one product over all T*B rows per gate block of these units
    for q in range(4):
        gemm_rm(True, False, <int> (hi - lo), <int> K, <int> (T * B), <floating> 1.0, &dA[0, 0, q * K + lo],
                <int> K4, &H[0, 0, 0], <int> K, <floating> 0.0, &dW[q * K + lo, 0], <int> K)
    # db: rows added in order
    for q in range(4):
        for j in range(q * K + lo, q * K + hi):
            db[j] = 0
        for t in range(T):
            for i in range(B):
                for j in range(q * K + lo, q * K + hi):
                    db[j] = db[j] + dA[t, i, j]


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
    With n_threads > 1 BLAS must be limited to one thread for the call.
    """
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], lo, hi
    cdef int nt = team_threads(B, K, n_threads)
    cdef floating c = <floating> clip
    if B == 0 or K == 0:
        return
    memset(&dh0[0, 0], 0, B * K * sizeof(floating))
    if nt <= 1:
        with nogil:
            backward_units(dH, A, H, C, W, dA, dW, db, dh0, dc0, c, 0, K, False)
        return
    with nogil, parallel(num_threads=nt):
        unit_block(K, &lo, &hi)
        backward_units(dH, A, H, C, W, dA, dW, db, dh0, dc0, c, lo, hi, True)
