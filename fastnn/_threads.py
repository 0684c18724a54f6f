"""How many OpenMP threads the kernels use (scikit-learn's semantics).

None -> the value given to set_num_threads(), else min(OpenMP's max threads, CPUs this process may run on); OpenMP
honours OMP_NUM_THREADS.  A negative n counts back from the CPU count (-1 = all).  0 is an error.  Without OpenMP
the kernels are serial and every count is 1.  `threads(kernels=..., blas=...)` is the public control of both the
kernels' and the BLAS libraries' threads.
"""
import numbers
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
    """The thread count a kernel call should use for the request `n_threads`.  A request is checked the same with
    or without OpenMP (a 0 is an error in every build, not only in those that would use it); a serial build then
    runs it on one thread."""
    if n_threads is None:
        n_threads = _default
    if n_threads is None:
        n = max(1, min(_info.omp_max_threads(), cpu_count()))
    else:
        if type(n_threads) is not int:      # a NumPy integer (a count from an array or a sweep) is an int too
            if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
                raise TypeError(f"n_threads must be an int or None; got {n_threads!r}.")
            n_threads = int(n_threads)
        if n_threads == 0:
            raise ValueError("n_threads must not be 0; use None for the default, a positive count, or -1 for all "
                             "CPUs.")
        if n_threads > MAX_THREADS:
            raise ValueError(f"n_threads must be <= {MAX_THREADS}; got {n_threads}.")
        n = max(1, cpu_count() + 1 + n_threads) if n_threads < 0 else n_threads
    return n if _info.openmp_enabled() else 1


def set_num_threads(n_threads):
    """Set the kernels' default OpenMP thread count (None restores the automatic choice)."""
    global _default
    if n_threads is not None:
        effective_n_threads(n_threads)  # validates
        n_threads = int(n_threads)
    _default = n_threads


def get_num_threads():
    """The thread count kernels use when called without n_threads."""
    return effective_n_threads(None)


def _blas_count(n):
    """The BLAS thread count for the request n (validated like the kernels' counts; negative counts back)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"blas must be an int or None; got {n!r}.")
    n = int(n)
    if n == 0:
        raise ValueError("blas must not be 0; use None to leave BLAS alone, a positive count, or -1 for all CPUs.")
    if n > MAX_THREADS:
        raise ValueError(f"blas must be <= {MAX_THREADS}; got {n}.")
    return n if n > 0 else max(1, cpu_count() + 1 + n)


class threads:
    """Set how many threads fastnn's OpenMP kernels and the BLAS libraries use; the one public thread control.

    `kernels` is the kernels' default count (fastnn.set_num_threads semantics: a positive count, -1 = all CPUs, ...);
    `blas` limits every loaded BLAS (NumPy's and SciPy's OpenBLAS, MKL, ...) through threadpoolctl, negative counts
    back from the CPUs.  None leaves that pool as it is.  Like threadpoolctl's `threadpool_limits`, the limits take
    effect at the call: a plain call sets them for the process, a `with` block undoes them on exit (as does
    `.restore()`).  Keeping the kernels and BLAS to the same small count avoids oversubscribing the cores, since the
    kernels run next to BLAS calls.

    >>> import fastnn
    >>> with fastnn.threads(kernels=1, blas=1):
    ...     fastnn.get_num_threads()
    1
    """

    def __init__(self, kernels=None, blas=None):
        global _default
        if kernels is not None:
            effective_n_threads(kernels)  # validates before anything changes
            kernels = int(kernels)
        n_blas = None if blas is None else _blas_count(blas)
        self._set_kernels, self._saved_kernels = kernels is not None, _default
        self._blas = None
        if n_blas is not None:
            from threadpoolctl import threadpool_limits
            self._blas = threadpool_limits(n_blas, user_api="blas")
        if kernels is not None:
            _default = kernels

    def restore(self):
        """Put back the counts in force before this call (a second call does nothing)."""
        global _default
        if self._set_kernels:
            _default, self._set_kernels = self._saved_kernels, False
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()


_blas_libs = None


class single_threaded_blas:
    """Every loaded BLAS runs single-threaded inside the block (restored after): for kernels whose own threads call
    BLAS, so that the BLAS thread pool does not compete with them for the cores.  The BLAS limit is per process:
    another Python thread's BLAS calls also run on one thread while the block lasts.  Unlike threads(blas=1), which
    looks the libraries up at every call, it keeps threadpoolctl's controllers: it runs once per kernel call."""

    def __enter__(self):
        global _blas_libs
        if _blas_libs is None:
            from threadpoolctl import ThreadpoolController
            _blas_libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        self._saved = [(lib, lib.get_num_threads()) for lib in _blas_libs]
        for lib, n in self._saved:
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in self._saved:
            if n != 1:
                lib.set_num_threads(n)
        return False


def limit_blas_threads(n_threads):
    """Same as threads(blas=n_threads); kept until the CLI's callers move to fastnn.threads."""
    return threads(blas=n_threads)
