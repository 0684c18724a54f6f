import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# Tolerances per dtype for comparisons against float64 NumPy references.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def data_path(*parts):
    """Path to a file under ../shared/data, or skip the test with the reason."""
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path} (../shared/data is not present)")
    return path


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `fastnn argv...` run in this process."""
    from fastnn.cli import main
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def write_lines(path, lines):
    """Write `lines` to `path` (a pathlib.Path), one per line; returns the path as a str."""
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture(params=[1, 2], ids=["t1", "t2"])
def n_threads(request):
    return request.param
