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
