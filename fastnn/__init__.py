"""fastnn: the classic neural-NLP toolkit (flow-graph backprop, window taggers, NPLM, RNN LMs) on fast CPU kernels."""
import os

# GNU OpenMP's idle threads busy-wait after every parallel region by default, taking the cores from the BLAS threads
# that run next (2-3x slower LM training measured on 2 cores).  Sleeping idle threads cost a few microseconds of
# wake-up, small beside the kernels, which only thread work of >= 32k elements per thread.  It must be set before
# libgomp loads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fastnn._ext import _info  # noqa: E402
from fastnn._threads import get_num_threads, set_num_threads, threads  # noqa: E402

__version__ = "0.1.0"


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _info.openmp_enabled()


def _blas_info():
    try:
        import scipy

        deps = scipy.show_config(mode="dicts")["Build Dependencies"]
        blas = deps.get("blas", {})
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip() + " (scipy.linalg.cython_blas)"
    except Exception:  # scipy too old for mode="dicts"
        return "scipy.linalg.cython_blas"


def show_config():
    """Build and runtime facts: version, OpenMP, kernel threads, BLAS."""
    import numpy
    import scipy

    return {
        "version": __version__,
        "openmp": openmp_enabled(),
        "num_threads": get_num_threads(),
        "blas": _blas_info(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


__all__ = ["show_config", "threads", "set_num_threads", "get_num_threads", "openmp_enabled", "__version__"]
