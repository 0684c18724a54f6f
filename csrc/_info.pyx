# cython: language_level=3
"""Build facts the Python side asks about: was OpenMP compiled in, and how many threads it offers."""
from _common cimport FNN_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FNN_OPENMP)


def omp_max_threads():
    """omp_get_max_threads() of the OpenMP runtime (1 without OpenMP); honours OMP_NUM_THREADS."""
    return omp_get_max_threads()
