# cython: language_level=3
"""Dense optimizer updates as one fused pass over memory (parameters viewed as flat contiguous arrays).

Weight decay enters as a gradient term: g' = g + l2 * w + l1 * sign(w).  Elements are independent, so any thread
split gives the same bits.  Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from _common cimport threads_for, root


cdef inline floating decayed(floating g, floating w, floating l2, floating l1) noexcept nogil:
    if l1 != 0:
        g = g + l1 * ((w > 0) - (w < 0))
    return g + l2 * w


def _sgd(floating[::1] w, const floating[::1] g, double lr, double l2, double l1, int n_threads):
    """w -= lr * g'.  w (N,) INOUT; g (N,) IN."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef floating a = <floating> lr, c2 = <floating> l2, c1 = <floating> l1
    for i in prange(n, schedule="static", num_threads=threads_for(n, n_threads), nogil=True):
        w[i] = w[i] - a * decayed(g[i], w[i], c2, c1)


def _momentum(floating[::1] w, floating[::1] v, const floating[::1] g, double lr, double mu, double l2, double l1,
              bint nesterov, int n_threads):
    """torch's convention: v = mu * v + g'; w -= lr * v (nesterov: w -= lr * (g' + mu * v)).

    w, v (N,) INOUT; g (N,) IN.
    """
    cdef Py_ssize_t n = w.shape[0], i
    cdef floating a = <floating> lr, m = <floating> mu, c2 = <floating> l2, c1 = <floating> l1, gi
    for i in prange(n, schedule="static", num_threads=threads_for(n, n_threads), nogil=True):
        gi = decayed(g[i], w[i], c2, c1)
        v[i] = m * v[i] + gi
        if nesterov:
            w[i] = w[i] - a * (gi + m * v[i])
        else:
            w[i] = w[i] - a * v[i]


def _adagrad(floating[::1] w, floating[::1] acc, const floating[::1] g, double lr, double eps, double l2, double l1,
             int n_threads):
    """AdaGrad, torch's convention: acc += g'^2; w -= lr * g' / (sqrt(acc) + eps).

    w, acc (N,) INOUT; g (N,) IN.
    """
    cdef Py_ssize_t n = w.shape[0], i
    cdef floating a = <floating> lr, e = <floating> eps, c2 = <floating> l2, c1 = <floating> l1, gi
    for i in prange(n, schedule="static", num_threads=threads_for(n, n_threads), nogil=True):
        gi = decayed(g[i], w[i], c2, c1)
        acc[i] = acc[i] + gi * gi
        w[i] = w[i] - a * gi / (root(acc[i]) + e)
