# cython: language_level=3
"""Build facts the Python side asks about: was OpenMP compiled in, how many threads it offers, how it was built."""
from _common cimport FNN_OPENMP, omp_get_max_threads

# setup.py defines FNN_BUILD_INFO (a JSON object as a C string) when it compiles this module; a build by other means
# reports "{}".
cdef extern from *:
    """
    #ifndef FNN_BUILD_INFO
    #define FNN_BUILD_INFO "{}"
    #endif
    static const char *fnn_build_info = FNN_BUILD_INFO;
    """
    const char *fnn_build_info


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FNN_OPENMP)


def omp_max_threads():
    """omp_get_max_threads() of the OpenMP runtime (1 without OpenMP); honours OMP_NUM_THREADS."""
    return omp_get_max_threads()


def build_info():
    """How the kernels were built, as JSON text: target (native or portable), compiler, cython, openmp_flags, cflags."""
    return fnn_build_info.decode("ascii")


cdef extern from "fnn_math.h":
    int fnn_cpu_paths() noexcept nogil
    const char *fnn_base_path_name() noexcept nogil


_PATH_NAMES = (fnn_base_path_name().decode("ascii"), "avx2", "avx512")   # by number: fnn_math.h's paths 0, 1, 2


def vector_paths():
    """The instruction sets whose code the kernels that choose theirs at run time (the LSTM's, the float32 softmax
    rows, the RNN LM segment's products and activation) can run here, widest first: in a portable build those of
    "avx512", "avx2" and the baseline (e.g. "sse2") this CPU has; in a native build (or with a compiler or machine
    without the choice) one, the build's own.  On AMD Zen 4, which runs a 512-bit instruction as two 256-bit halves,
    the RNN LM segment's "avx512" products take 8-float vectors in AVX-512's 32 registers (csrc/_rnnlm.pyx's ymm
    layout, the same bits), which makes that path as fast as "avx2" or faster (FASTNN_VECTOR_PATH picks).  See
    csrc/fnn_math.h."""
    cdef int bits = fnn_cpu_paths()
    return [_PATH_NAMES[p] for p in (2, 1, 0) if bits & (1 << p)]


_WARNED = set()      # FASTNN_VECTOR_PATH values already warned about


def vector_path():
    """The path those kernels take by default: FASTNN_VECTOR_PATH if it names one of vector_paths() (a RuntimeWarning
    when it names another, once per process), else the widest."""
    import os
    want = os.environ.get("FASTNN_VECTOR_PATH", "")
    avail = vector_paths()
    if want and want not in avail:
        # every kernel module that dispatches asks at import, and `fastnn info` again: one warning is enough
        if want not in _WARNED:
            _WARNED.add(want)
            import warnings
            warnings.warn(f"FASTNN_VECTOR_PATH={want!r} ignored: it must be one of {avail} (the paths this build has "
                          f"and this CPU runs); using {avail[0]}.", RuntimeWarning)
        return avail[0]
    return want or avail[0]


def path_number(name):
    """The number the kernels take (0: the build's flags, 1: AVX2 + FMA, 2: AVX-512) of the path called `name`, one of
    vector_paths(); None: the widest."""
    avail = vector_paths()
    if name is None:
        name = avail[0]
    if name not in avail:
        raise ValueError(f"_set_vector_path: 'name' must be one of {avail} (the paths this build has and this CPU "
                         f"runs); got {name!r}")
    return _PATH_NAMES.index(name)


def path_name(number):
    """The name of path `number` (see path_number)."""
    return _PATH_NAMES[number]
