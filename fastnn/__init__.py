"""fastnn: the classic neural-NLP toolkit (flow-graph backprop, window taggers, NPLM, RNN LMs) on fast CPU kernels."""
import os

# GNU OpenMP's idle threads busy-wait after every parallel region by default, taking the cores from the BLAS threads
# that run next (2-3x slower LM training measured on 2 cores).  It must be set before libgomp loads; a value the user
# set wins.  A sleeping thread is not free to wake: ~72 us per parallel region on a 2-vCPU KVM Xeon, so a short spin
# (GOMP_SPINCOUNT) was measured there (2026-12-06, PASSIVE / +3000 / +10000 / +30000, tokens or windows per second):
# with BLAS on one thread (the `fastnn lm` default) spinning is faster, the RNN LM --preset fast 477k / 515k / 536k /
# 558k, its default 367k / 395k / 419k / 411k, the LSTM LM 135k / - / 136-142k / 148-151k, the NPLM 42-45k / - / 48k /
# 50k; with BLAS on two threads it is slower, the LSTM LM (--threads 2) 131k / 121k / 100k / 75k, the NPLM 31k / 28k /
# 24k / 17k, the tagger step (bench_tagger.py --threads 2) 62k / 56k / 49k / 38k.  The setting is fixed when libgomp
# loads, before anyone says how many BLAS threads will run, so no spin is set: a user whose BLAS runs on one thread
# can set GOMP_SPINCOUNT=30000 in the environment (the same numbers, faster).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")



def _import_kernels():
    """fastnn._ext._info, or an ImportError that names the fix when this is a source tree whose kernels were never
    built (a checkout imported in place of the installed package, e.g. `python -m pytest bench` run inside it) or
    lack a module its csrc/ has (an in-place build older than the sources, e.g. after a pull)."""
    import glob
    import importlib.machinery

    ext = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext")
    root = os.path.dirname(os.path.dirname(ext))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    built = {f.split(".")[0] for f in os.listdir(ext) if f.endswith(suffixes)}
    fix = (f"run `pip install -e .` or `python setup.py build_ext --inplace` in {root}, or run from outside that "
           "directory to use an installed fastnn")
    if "_info" not in built:
        raise ImportError(f"fastnn's compiled kernels are not built in {ext}: {fix}")
    # a source tree (csrc/ beside the package; an installed fastnn has none): every kernel source must be built
    missing = sorted({os.path.basename(p)[:-4] for p in glob.glob(os.path.join(root, "csrc", "*.pyx"))} - built)
    if missing:
        raise ImportError(f"fastnn's compiled kernels in {ext} are older than csrc/ (not built: "
                          f"{', '.join(missing)}): {fix}")
    from fastnn._ext import _info
    return _info


_info = _import_kernels()
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


def build_info():
    """How the kernels were built, recorded by setup.py: target ("native (-march=native)" or "portable"), compiler
    (name and version), cython (version), openmp_flags ("none" without OpenMP), cflags, and amx_tiles ("compiled" or
    "left out": the bfloat16 tile code of kernels.output_layer(precision="bfloat16"))."""
    import json

    return json.loads(getattr(_info, "build_info", lambda: "{}")())   # {} from kernels built before it existed


def show_config():
    """Build and runtime facts: version, where fastnn is, how its kernels were built, OpenMP, kernel threads, BLAS.

    >>> cfg = show_config()
    >>> cfg["openmp"] == openmp_enabled() and cfg["version"] == __version__
    True
    """
    import numpy
    import scipy

    built = build_info()
    return {
        "version": __version__,
        "path": os.path.dirname(os.path.abspath(__file__)),
        "build": built.get("target", "unknown (not built by setup.py)"),
        "compiler": built.get("compiler", "unknown"),
        "cython": built.get("cython", "unknown"),
        "openmp_flags": built.get("openmp_flags", "unknown"),
        "openmp": openmp_enabled(),
        "num_threads": get_num_threads(),
        "blas": _blas_info(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


__all__ = ["show_config", "build_info", "threads", "set_num_threads", "get_num_threads", "openmp_enabled",
           "__version__"]
