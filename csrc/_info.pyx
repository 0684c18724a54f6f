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


def vector_paths():
    """The instruction sets whose code the kernels that choose theirs at run time (the LSTM's) can run here, widest
    first: in a portable build those of "avx512", "avx2" and the baseline (e.g. "sse2") this CPU has; in a native
    build (or with a compiler or machine without the choice) one, the build's own.  See csrc/fnn_math.h."""
    cdef int bits = fnn_cpu_paths()
    names = (fnn_base_path_name().decode("ascii"), "avx2", "avx512")
    return [names[p] for p in (2, 1, 0) if bits & (1 << p)]


def vector_path():
    """The path those kernels take by default: FASTNN_VECTOR_PATH (read when they are imported) if it names one of
    vector_paths(), else the widest."""
    import os
    paths = vector_paths()
    want = os.environ.get("FASTNN_VECTOR_PATH", "")
    return want if want in paths else paths[0]
