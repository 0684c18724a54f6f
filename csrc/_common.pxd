# Shared declarations for fastnn's kernels: the C math helpers (and their one fused-type face each), row-major BLAS,
# the OpenMP shim and the thread threshold.  A kernel file cimports what it uses from here and redefines none of it.
from cython cimport floating
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "fnn_math.h" nogil:
    float fnn_row_max_f(const float *x, Py_ssize_t n)
    double fnn_row_max_d(const double *x, Py_ssize_t n)
    double fnn_row_exp_f(const float *x, float *out, Py_ssize_t n, float m)
    double fnn_row_exp_d(const double *x, double *out, Py_ssize_t n, double m)
    double fnn_row_sumexp_f(const float *x, Py_ssize_t n, float m)
    double fnn_row_sumexp_d(const double *x, Py_ssize_t n, double m)
    Py_ssize_t FNN_BLOCK
    double fnn_row_exp_online_f(const float *x, float *out, Py_ssize_t n, float *refs, float *m_out)
    double fnn_row_exp_online_d(const double *x, double *out, Py_ssize_t n, double *refs, double *m_out)
    void fnn_row_rescale_f(const float *x, float *out, Py_ssize_t n, const float *refs, float m, double a,
                           int stream)
    void fnn_row_rescale_d(const double *x, double *out, Py_ssize_t n, const double *refs, double m, double a,
                           int stream)
    float fnn_expf_nonpos(float d)
    float fnn_piece_exp_f(const float *x, float *out, Py_ssize_t n, float m, const float *ahead)
    Py_ssize_t fnn_xent_work_f(Py_ssize_t n, int stream)
    void fnn_xent_rows_f(const float *x, float *g, const Py_ssize_t *t, float *loss, Py_ssize_t n_rows, Py_ssize_t n,
                         double scale, float *work, int stream)
    void fnn_row_scale_f(float *y, Py_ssize_t n, float a)
    void fnn_row_scale_d(double *y, Py_ssize_t n, double a)
    void fnn_row_scale_to_f(const float *x, float *out, Py_ssize_t n, float a)
    void fnn_row_scale_to_d(const double *x, double *out, Py_ssize_t n, double a)
    void fnn_row_scale_stream_f(const float *x, float *out, Py_ssize_t n, float a)
    void fnn_row_scale_stream_d(const double *x, double *out, Py_ssize_t n, double a)
    void fnn_row_shift_f(const float *x, float *out, Py_ssize_t n, float shift)
    void fnn_fill_f(float *out, Py_ssize_t n, float v, int stream)
    void fnn_row_shift_d(const double *x, double *out, Py_ssize_t n, double shift)
    void fnn_prefetch_w(const void *p, Py_ssize_t n)
    float fnn_dot_f(const float *x, const float *y, Py_ssize_t n)
    double fnn_dot_d(const double *x, const double *y, Py_ssize_t n)
    void fnn_axpy_f(float a, const float *x, float *y, Py_ssize_t n)
    void fnn_axpy_d(double a, const double *x, double *y, Py_ssize_t n)
    void fnn_act_f(float *h, Py_ssize_t n, int act)
    void fnn_act_d(double *h, Py_ssize_t n, int act)
    void fnn_dact_f(const float *g, const float *carry, const float *h, float *dz, Py_ssize_t n, int act, float clip)
    void fnn_dact_d(const double *g, const double *carry, const double *h, double *dz, Py_ssize_t n, int act,
                    double clip)

# Without OpenMP the kernels still compile: these stand in for the runtime (sklearn's _openmp_helpers idea).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FNN_OPENMP 1
    #else
    #define FNN_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    static int omp_get_num_threads(void) { return 1; }
    #endif
    """
    bint FNN_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil


# ---- one fused face per C helper: float32 and float64 pick their C variant at compile time -------------------------

cdef inline floating root(floating x) noexcept nogil:
    # sqrtf for float32: libm's sqrt would widen every element to double and halve the vector width
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline void adagrad_row(floating *w, floating *acc, const floating *g, Py_ssize_t D, floating lr, floating eps,
                             floating l2) noexcept nogil:
    """One row of lazy AdaGrad (kernels.sparse_adagrad_); the RNN LM's fused output-row update calls the same code,
    so that it gives the same bits."""
    cdef Py_ssize_t j
    cdef floating gj
    for j in range(D):
        gj = g[j] + l2 * w[j]
        acc[j] = acc[j] + gj * gj
        w[j] = w[j] - lr * gj / (root(acc[j]) + eps)


cdef inline floating row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fnn_row_max_f(x, n)
    else:
        return fnn_row_max_d(x, n)


cdef inline double row_exp(const floating *x, floating *out, Py_ssize_t n, floating m) noexcept nogil:
    """out[j] = exp(x[j] - m); returns the sum (out may be x)."""
    if floating is float:
        return fnn_row_exp_f(x, out, n, m)
    else:
        return fnn_row_exp_d(x, out, n, m)


cdef inline double row_exp_online(const floating *x, floating *out, Py_ssize_t n, floating *refs,
                                  floating *m_out) noexcept nogil:
    """out[j] = exp(x[j] - the running max at x[j]'s piece (refs[piece])), in one read of x; returns the sum of the
    exps relative to the row's max, stored in m_out (see fnn_row_exp_online_f).  out may be x."""
    if floating is float:
        return fnn_row_exp_online_f(x, out, n, refs, m_out)
    else:
        return fnn_row_exp_online_d(x, out, n, refs, m_out)


cdef inline void row_rescale(const floating *x, floating *out, Py_ssize_t n, const floating *refs, floating m,
                             double a, bint stream) noexcept nogil:
    """out[j] = a * exp(refs[p] - m) * x[j] in piece p: row_exp_online's exps scaled (streaming stores if stream)."""
    if floating is float:
        fnn_row_rescale_f(x, out, n, refs, m, a, stream)
    else:
        fnn_row_rescale_d(x, out, n, refs, m, a, stream)


cdef inline double row_sumexp(const floating *x, Py_ssize_t n, floating m) noexcept nogil:
    if floating is float:
        return fnn_row_sumexp_f(x, n, m)
    else:
        return fnn_row_sumexp_d(x, n, m)


cdef inline void row_scale_to(const floating *x, floating *out, Py_ssize_t n, floating a) noexcept nogil:
    """out[j] = a * x[j]"""
    if floating is float:
        fnn_row_scale_to_f(x, out, n, a)
    else:
        fnn_row_scale_to_d(x, out, n, a)


cdef inline void row_scale(floating *y, Py_ssize_t n, floating a) noexcept nogil:
    if floating is float:
        fnn_row_scale_f(y, n, a)
    else:
        fnn_row_scale_d(y, n, a)


cdef inline void row_scale_stream(const floating *x, floating *out, Py_ssize_t n, floating a) noexcept nogil:
    """out = a * x with streaming stores (out bypasses the cache; for results bigger than it)."""
    if floating is float:
        fnn_row_scale_stream_f(x, out, n, a)
    else:
        fnn_row_scale_stream_d(x, out, n, a)


cdef inline void row_shift(const floating *x, floating *out, Py_ssize_t n, floating s) noexcept nogil:
    if floating is float:
        fnn_row_shift_f(x, out, n, s)
    else:
        fnn_row_shift_d(x, out, n, s)


cdef inline floating dot(const floating *x, const floating *y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fnn_dot_f(x, y, n)
    else:
        return fnn_dot_d(x, y, n)


cdef inline void axpy(floating a, const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    """y += a * x"""
    if floating is float:
        fnn_axpy_f(a, x, y, n)
    else:
        fnn_axpy_d(a, x, y, n)


cdef inline void act(floating *h, Py_ssize_t n, int kind) noexcept nogil:
    """h = f(h) in place; kind 0 tanh, 1 sigmoid, 2 relu, 3 identity."""
    if floating is float:
        fnn_act_f(h, n, kind)
    else:
        fnn_act_d(h, n, kind)


cdef inline void dact(const floating *g, const floating *carry, const floating *h, floating *dz, Py_ssize_t n,
                      int kind, floating clip) noexcept nogil:
    """dz = (g + carry) * f'(z) from h = f(z), clipped to [-clip, clip] when clip > 0."""
    if floating is float:
        fnn_dact_f(g, carry, h, dz, n, kind, clip)
    else:
        fnn_dact_d(g, carry, h, dz, n, kind, clip)


# ---- BLAS and threads ----------------------------------------------------------------------------------------------

cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                         const floating *a, int lda, const floating *b, int ldb, floating beta,
                         floating *c, int ldc) noexcept nogil:
    """Row-major C[m, n] = alpha * op(A) @ op(B) + beta * C, op(A) being m x k.

    BLAS is column-major, where a row-major matrix reads as its transpose, so compute C^T = op(B)^T op(A)^T.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda, &beta, c, &ldc)


cdef inline bint malloc2(void **a, size_t na, void **b, size_t nb) noexcept nogil:
    """a[0] = malloc(na), b[0] = malloc(nb); when either fails, both are freed and set to NULL and the result is
    False (the caller raises MemoryError once it holds the GIL)."""
    a[0] = malloc(na)
    b[0] = malloc(nb)
    if a[0] == NULL or b[0] == NULL:
        free(a[0])
        free(b[0])
        a[0] = NULL
        b[0] = NULL
        return False
    return True


cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """Threads worth starting for `work` elements: below ~32k per thread the start-up and wake-up of OpenMP threads
    (much worse on a busy machine) costs more than it saves.  Kernels are written so that the result does not depend
    on the thread count, so this only changes speed."""
    cdef Py_ssize_t most = work // 32768
    if most < 1:
        return 1
    return n_threads if n_threads < most else <int> most
