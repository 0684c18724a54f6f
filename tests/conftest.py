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


def spawned_workers(parent, known=()):
    """Pids (str) of the multiprocessing "spawn" workers whose parent is `parent`, or which are among `known` (a
    worker outlives a killed parent, reparented); found through Linux's /proc."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):     # ended while listed
            continue
        if b"spawn_main" in cmd and (ppid == parent or pid in known):
            found.append(pid)
    return found


def workers_left(pids, seconds=60):
    """The workers among `pids` still running after waiting up to `seconds` for them to end (those are then killed, so
    that a failure leaves no stray trainers)."""
    import signal
    import time
    deadline = time.monotonic() + seconds
    while spawned_workers(None, pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = spawned_workers(None, pids)
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    return left


def signal_with_workers(cmd, sig, workers=2, **popen):
    """Start `cmd`, wait until it has `workers` spawned workers, send it `sig`, wait for it; returns (returncode,
    its stderr, the workers' pids).  Its stderr is read by a thread: a worker may hold the pipe after it ends."""
    import subprocess
    import threading
    import time
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, **popen)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while len(spawned_workers(p.pid)) < workers and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = spawned_workers(p.pid)
        assert len(alive) == workers, (alive, p.poll())
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        p.kill()
    reader.join(20)
    return p.returncode, (err or [""])[0], alive


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
