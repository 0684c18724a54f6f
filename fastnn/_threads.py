"""How many OpenMP threads the kernels use (scikit-learn's semantics).

None -> the value given to set_num_threads(), else min(OpenMP's max threads, CPUs this process may run on); OpenMP
honours OMP_NUM_THREADS.  A negative n counts back from the CPU count (-1 = all).  0 is an error.  Without OpenMP
the kernels are serial and every count is 1.
"""
import os

from fastnn._ext import _info

_default = None
MAX_THREADS = 1024  # far above any sensible count; stops a typo from asking OpenMP for a million threads


def cpu_count():
    """CPUs this process may run on (affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def effective_n_threads(n_threads=None):
    """The thread count a kernel call should use for the request `n_threads`."""
    if not _info.openmp_enabled():
        return 1
    if n_threads is None:
        n_threads = _default
    if n_threads is None:
        return max(1, min(_info.omp_max_threads(), cpu_count()))
    if isinstance(n_threads, bool) or not isinstance(n_threads, int):
        raise TypeError(f"n_threads must be an int or None; got {n_threads!r}.")
    if n_threads == 0:
        raise ValueError("n_threads must not be 0; use None for the default, a positive count, or -1 for all CPUs.")
    if n_threads < 0:
        return max(1, cpu_count() + 1 + n_threads)
    if n_threads > MAX_THREADS:
        raise ValueError(f"n_threads must be <= {MAX_THREADS}; got {n_threads}.")
    return n_threads


def set_num_threads(n_threads):
    """Set the kernels' default OpenMP thread count (None restores the automatic choice)."""
    global _default
    if n_threads is not None:
        effective_n_threads(n_threads)  # validates
    _default = n_threads


def get_num_threads():
    """The thread count kernels use when called without n_threads."""
    return effective_n_threads(None)


def limit_blas_threads(n_threads):
    """Limit the BLAS libraries (NumPy's and SciPy's OpenBLAS, ...) to n_threads through threadpoolctl; a negative
    count counts back from the CPUs as for the kernels.  The limit holds from this call on; used as a context manager
    it is undone on exit."""
    from threadpoolctl import threadpool_limits
    n = n_threads if n_threads > 0 else max(1, cpu_count() + 1 + n_threads)
    return threadpool_limits(n, user_api="blas")
