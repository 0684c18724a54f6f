"""fastnn.threads: the one public control of the kernels' and the BLAS libraries' thread counts."""
import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

import fastnn
from fastnn import _threads


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def restore_default():
    saved = _threads._default
    yield
    fastnn.set_num_threads(saved)


def test_with_block_sets_kernels_and_blas_and_undoes_both():
    np.ones((64, 64)) @ np.ones((64, 64))  # NumPy's BLAS is loaded
    fastnn.set_num_threads(None)
    before_kernels, before_blas = fastnn.get_num_threads(), _blas_threads()
    assert before_blas
    with fastnn.threads(kernels=1, blas=1):
        assert fastnn.get_num_threads() == 1
        assert all(n == 1 for n in _blas_threads())
    assert fastnn.get_num_threads() == before_kernels
    assert _blas_threads() == before_blas


@pytest.mark.skipif(not fastnn.openmp_enabled(), reason="without OpenMP every kernel count is 1")
def test_plain_call_sets_for_the_process_until_restored():
    fastnn.set_num_threads(1)
    limits = fastnn.threads(kernels=2)
    assert fastnn.get_num_threads() == 2     # still in force after the call returned
    limits.restore()
    assert fastnn.get_num_threads() == 1
    limits.restore()                          # a second restore does nothing
    assert fastnn.get_num_threads() == 1


def test_none_leaves_each_pool_alone():
    fastnn.set_num_threads(1)
    before_blas = _blas_threads()
    with fastnn.threads(blas=1):
        assert fastnn.get_num_threads() == 1
    with fastnn.threads(kernels=1):
        assert _blas_threads() == before_blas
    with fastnn.threads():
        assert fastnn.get_num_threads() == 1 and _blas_threads() == before_blas


def test_negative_blas_counts_back_from_the_cpus():
    np.ones((8, 8)) @ np.ones((8, 8))
    with fastnn.threads(blas=-1):
        assert all(n == _threads.cpu_count() for n in _blas_threads())


def test_restored_after_an_exception():
    fastnn.set_num_threads(1)
    with pytest.raises(RuntimeError):
        with fastnn.threads(kernels=-1):
            raise RuntimeError
    assert _threads._default == 1


@pytest.mark.parametrize("kw,err,match", [
    ({"kernels": 0}, ValueError, "must not be 0"),
    ({"blas": 0}, ValueError, "blas must not be 0"),
    ({"kernels": 1.5}, TypeError, "n_threads must be an int"),
    ({"blas": "2"}, TypeError, "blas must be an int"),
    ({"blas": True}, TypeError, "blas must be an int"),
    ({"kernels": 10**6}, ValueError, "<= 1024"),
])
def test_bad_counts_raise_and_change_nothing(kw, err, match):
    fastnn.set_num_threads(1)
    before_blas = _blas_threads()
    with pytest.raises(err, match=match):
        fastnn.threads(**{"kernels": 2, "blas": 1, **kw})
    assert _threads._default == 1 and _blas_threads() == before_blas


def test_numpy_integer_counts_are_counts():
    # a count from an array or a sweep (np.int64) was a TypeError "must be an int"
    fastnn.set_num_threads(1)
    with fastnn.threads(kernels=np.int64(2), blas=np.int32(1)):
        assert fastnn.get_num_threads() == 2 and type(_threads._default) is int
    fastnn.set_num_threads(np.int64(1))
    assert fastnn.get_num_threads() == 1 and type(_threads._default) is int
    with pytest.raises(TypeError, match="n_threads must be an int"):
        fastnn.set_num_threads(np.float64(2))


def _import_fastnn_in_a_new_process(**env):
    """(OMP_WAIT_POLICY after `import fastnn`, GNU OpenMP's display of the settings it read when it loaded, or '')."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DISPLAY_ENV")}
    res = subprocess.run([sys.executable, "-c", "import os, fastnn; print(os.environ['OMP_WAIT_POLICY'])"],
                         env={**base, "PYTHONPATH": root, "OMP_DISPLAY_ENV": "TRUE", **env}, cwd=root,
                         capture_output=True, text=True, check=True, timeout=120)
    return res.stdout.split()[-1], res.stderr if "OPENMP DISPLAY ENVIRONMENT" in res.stderr else ""


def test_idle_openmp_threads_sleep_set_before_libgomp_reads_it_and_the_user_value_wins():
    policy, shown = _import_fastnn_in_a_new_process()
    assert policy == "PASSIVE"
    if shown:                               # GNU OpenMP: the policy it loaded with
        assert "OMP_WAIT_POLICY = 'PASSIVE'" in shown
    policy, shown = _import_fastnn_in_a_new_process(OMP_WAIT_POLICY="active")
    assert policy == "active"
    if shown:
        assert "OMP_WAIT_POLICY = 'ACTIVE'" in shown


@pytest.mark.parametrize("openmp", [True, False])
def test_a_count_is_checked_the_same_in_a_serial_build(monkeypatch, openmp):
    """A build without OpenMP answered 1 before looking at the request, so n_threads=0 (an error elsewhere) passed
    there: a test suite run against a serial build failed, and a user's typo went unnoticed until another machine."""
    info = _threads._info
    monkeypatch.setattr(_threads, "_info", type("SerialInfo", (), {
        "openmp_enabled": staticmethod(lambda: openmp), "omp_max_threads": staticmethod(info.omp_max_threads)}))
    with pytest.raises(ValueError, match="must not be 0"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError, match="int or None"):
        fastnn.set_num_threads(1.5)
    with pytest.raises(ValueError, match="<= 1024"):
        fastnn.set_num_threads(5000)
    assert _threads.effective_n_threads(2) == (2 if openmp else 1) and _threads.effective_n_threads(None) >= 1
