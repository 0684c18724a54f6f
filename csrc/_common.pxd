# Shared declarations for fastnn's kernels: the C math helpers, row-major BLAS, and the OpenMP shim.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "fnn_math.h" nogil:
    float fnn_row_max_f(const float *x, Py_ssize_t n)
    double fnn_row_max_d(const double *x, Py_ssize_t n)
    double fnn_row_exp_f(const float *x, float *out, Py_ssize_t n, float m)
    double fnn_row_exp_d(const double *x, double *out, Py_ssize_t n, double m)
    double fnn_row_sumexp_f(const float *x, Py_ssize_t n, float m)
    double fnn_row_sumexp_d(const double *x, Py_ssize_t n, double m)
    void fnn_row_scale_f(float *y, Py_ssize_t n, float a)
    void fnn_row_scale_d(double *y, Py_ssize_t n, double a)
    void fnn_row_shift_f(const float *x, float *out, Py_ssize_t n, float shift)
    void fnn_row_shift_d(const double *x, double *out, Py_ssize_t n, double shift)
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
    #endif
    """
    bint FNN_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil


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


cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """Threads worth starting for `work` elements: below ~32k per thread the start-up and wake-up of OpenMP threads
    (much worse on a busy machine) costs more than it saves.  Kernels are written so that the result does not depend
    on the thread count, so this only changes speed."""
    cdef Py_ssize_t most = work // 32768
    if most < 1:
        return 1
    return n_threads if n_threads < most else <int> most
