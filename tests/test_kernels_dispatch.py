"""Vector paths chosen at run time (csrc/fnn_math.h, FNN_DISPATCH): a portable build compiles the LSTM kernels' hot
code (and the float32 softmax rows, and the RNN LM segment's products) for AVX-512, AVX2 + FMA and the baseline (SSE2)
and picks the widest one the CPU runs; a native build has only its own.  Each path is checked on its own in
tests/test_lstm.py (every test there runs once per path) and the RNN LM's paths against each other in
tests/test_rnnlm.py; here: the paths agree with each other up to rounding, the choice can be forced, and what is
reported."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import kernels
from fastnn._ext import _info, _lstm, _rnnlm

from .test_lstm import _case

PATHS = _lstm._vector_paths()
NAMES = ("avx512", "avx2", "avx", "sse2", "neon", "generic")


@pytest.fixture
def restore_path():
    yield
    _lstm._set_vector_path(None)
    _rnnlm._set_vector_path(None)


def _run(dtype, rng):
    X, W, b, h0, c0, dH = _case(rng, 35, 13, 257, dtype)
    fwd = kernels.lstm_forward(X, W, b, h0, c0, n_threads=2)
    return fwd + kernels.lstm_backward(dH, *fwd, W, clip=0.0, dc_last=h0, n_threads=2)


def test_paths_are_known_fastest_first_and_the_default(restore_path):
    assert PATHS and all(p in NAMES for p in PATHS) and len(set(PATHS)) == len(PATHS)
    assert [p for p in NAMES if p in PATHS] == PATHS            # widest first
    assert _lstm._vector_path() == PATHS[0] or os.environ.get("FASTNN_VECTOR_PATH")
    build = json.loads(_info.build_info()).get("target", "")
    if build.startswith("native"):
        assert len(PATHS) == 1                                   # a native build keeps only its own code
    _lstm._set_vector_path(PATHS[-1])
    assert _lstm._vector_path() == PATHS[-1]
    _lstm._set_vector_path(None)
    assert _lstm._vector_path() == PATHS[0]


def test_forcing_a_path_the_machine_lacks_is_refused(restore_path):
    missing = next((p for p in NAMES if p not in PATHS), None)
    with pytest.raises(ValueError, match=r"_set_vector_path: 'name' must be one of .*; got 'mmx'"):
        _lstm._set_vector_path("mmx")
    if missing:
        with pytest.raises(ValueError, match=f"got '{missing}'"):
            _lstm._set_vector_path(missing)
    assert _lstm._vector_path() == PATHS[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_paths_agree_up_to_rounding(dtype, restore_path):
    # The paths add the same products in the same order per output element; they differ only where the wider ones
    # fuse a multiply-add (FMA, one rounding instead of two) and in the float32 gates' 1/x (AVX-512: rcp14 + one
    # Newton step, ~1 ulp).  Over 35 steps that stays below ~6e-7 (float32) and ~2e-15 (float64) of each array's
    # largest value (measured: 5.8e-7 and 7.5e-16 on an AVX-512 Xeon); each path alone is bitwise repeatable.
    ref = None
    for path in reversed(PATHS):                                 # the baseline first
        _lstm._set_vector_path(path)
        got = _run(dtype, np.random.default_rng(0))
        again = _run(dtype, np.random.default_rng(0))
        for a, b in zip(got, again):
            np.testing.assert_array_equal(a, b)
        if ref is None:
            ref = got
            continue
        tol = 2e-6 if dtype == np.float32 else 5e-15
        for name, a, r in zip(("H", "C", "A", "dX", "dW", "db", "dh0", "dc0"), got, ref):
            scale = np.abs(r).max()
            assert np.abs(a - r).max() <= tol * scale, (path, name, np.abs(a - r).max() / scale)


def _in_subprocess(env_value, module="_lstm"):
    env = dict(os.environ, FASTNN_VECTOR_PATH=env_value)
    code = f"from fastnn._ext import {module}; print({module}._vector_path())"
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("module", ["_lstm", "_rnnlm"])
def test_environment_variable_forces_a_path_at_import(module):
    proc = _in_subprocess(PATHS[-1], module)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == PATHS[-1]
    proc = _in_subprocess("mmx", module)                         # unknown: a warning, and the default path
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == PATHS[0]
    assert "FASTNN_VECTOR_PATH='mmx' ignored" in proc.stderr


def test_a_bad_environment_variable_warns_once():
    """`fastnn info` warned twice (the kernels at import, then info itself), naming _set_vector_path's argument."""
    env = dict(os.environ, FASTNN_VECTOR_PATH="mmx")
    proc = subprocess.run([sys.executable, "-W", "always", "-m", "fastnn", "info"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("FASTNN_VECTOR_PATH='mmx' ignored: it must be one of") == 1, proc.stderr
    assert "_set_vector_path" not in proc.stderr, proc.stderr


def test_info_reports_the_path_the_kernels_take(capsys, restore_path):
    assert _info.vector_paths() == PATHS
    if not os.environ.get("FASTNN_VECTOR_PATH"):                # (the fixtures here reset to the widest)
        assert _info.vector_path() == _lstm._vector_path()
    from fastnn.cli import main
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("vector_code "))
    assert line.split()[1] == PATHS[0] or os.environ.get("FASTNN_VECTOR_PATH")
    assert ("compiled in" in line) == (len(PATHS) == 1), line
    assert ("RNN LM" in line) == (len(PATHS) > 1), line         # the segment's products choose their path too


def test_rnnlm_products_choose_their_path_as_the_lstm_does(restore_path):
    """The RNN LM segment's float32 products (csrc/_rnnlm.pyx) take their path from the same place as the LSTM's: the
    same list, the same default, forced and refused the same way.  (Before, a portable build ran them in its SSE2
    code on every CPU, and a build without AVX-512 ran them ~30x slower than with it.)"""
    assert _rnnlm._vector_paths() == PATHS
    assert _rnnlm._vector_path() == _lstm._vector_path()
    _rnnlm._set_vector_path(PATHS[-1])
    assert _rnnlm._vector_path() == PATHS[-1] and _lstm._vector_path() == PATHS[0]    # each module its own choice
    with pytest.raises(ValueError, match=r"_set_vector_path: 'name' must be one of .*; got 'mmx'"):
        _rnnlm._set_vector_path("mmx")
    _rnnlm._set_vector_path(None)
    assert _rnnlm._vector_path() == PATHS[0]


def test_info_names_the_rnnlm_products_layout(capsys):
    """`fastnn info` says which register layout the RNN LM's AVX-512 products take (the Zen 4 "ymm" layout is chosen
    by CPUID, so a timing is read against it), and says nothing where the build has no AVX-512 path."""
    import json

    from fastnn import kernels
    from fastnn.cli import main
    assert main(["info", "--json"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    if "avx512" in PATHS:
        assert cfg["rnnlm_layout"] == kernels.rnnlm_mm_layout() == _rnnlm._mm_layout() in ("ymm", "zmm")
    else:
        assert "rnnlm_layout" not in cfg


@pytest.mark.parametrize("path", PATHS)
def test_the_memory_roof_does_its_pass_on_every_path(path, monkeypatch):
    """kernels.memory_pass (the benchmarks' memory roof) runs on the path FASTNN_VECTOR_PATH names, as the kernels it
    bounds do (in SSE2 a portable build's roof ran up to 1.75x slower than theirs): every path reads, updates and
    writes every element, with and without streaming stores."""
    monkeypatch.setenv("FASTNN_VECTOR_PATH", path)
    rng = np.random.default_rng(0)
    n = 3 * 65536 + 17                                   # three whole pieces and a tail
    src = rng.standard_normal(n).astype(np.float32)
    for stream in (False, True):
        upd = rng.standard_normal(n).astype(np.float32)
        want = upd + np.float32(1)
        dst = np.zeros(n + 3, np.float32)[3:]            # not 64-byte aligned: the streaming stores' head
        total = kernels.memory_pass(src, upd, dst, stream=stream, n_threads=2)
        np.testing.assert_array_equal(upd, want)
        assert np.all(dst == 1)
        assert total == pytest.approx(sum(float(src[i:i + 65536].max()) for i in range(0, n, 65536)), rel=1e-6)
