"""Where a command writes: a device, a pipe or a symbolic link is written as it is (atomic replacement only for a
regular file: it turned /dev/stdout into a regular file, a link into a copy, and refused bash's >(...))."""
import os
import subprocess
import sys

import pytest

from fastnn.io import atomic_write
from tests.conftest import REPO, run_cli, write_lines

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc/self/fd")


def test_atomic_write_keeps_a_symlink_and_writes_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write(link, lambda f: f.write(b"new\n"))
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(os.listdir(tmp_path / "real")) == ["out.txt"]         # the temporary file was next to the target
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "later.txt")
    atomic_write(dangling, lambda f: f.write(b"x"))
    assert dangling.is_symlink() and (tmp_path / "real" / "later.txt").read_bytes() == b"x"


@needs_proc
def test_atomic_write_writes_into_a_pipe(tmp_path):
    r, w = os.pipe()
    try:
        atomic_write(f"/proc/self/fd/{w}", lambda f: f.write(b"through the pipe\n"))
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"through the pipe\n"


@pytest.fixture
def tagger_files(tmp_path):
    lines = []
    for _ in range(20):
        lines += ["John NNP B-PER", "visited VBD O", "Paris NNP B-LOC", ". . O", ""]
    data = write_lines(tmp_path / "d.txt", lines)
    return data, tmp_path


@needs_proc
def test_cli_out_to_stdout_device_pipe_and_link(capsys, tagger_files):
    data, d = tagger_files
    model = d / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out", model, "--epochs", "1",
                   "--quiet")[0] == 0
    stdout = d / "stdout"                     # what /dev/stdout is: a link to the process's fd 1
    stdout.symlink_to("/proc/self/fd/1")
    p = subprocess.run([sys.executable, "-m", "fastnn", "tagger", "predict", "--model", str(model), "--data", data,
                        "--out", str(stdout)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 100 and p.stdout.startswith("John NNP B-PER ") and stdout.is_symlink()
    p_out = p.stdout
    # bash's --out >(gzip > pred.gz): a pipe's /dev/fd entry, in a directory no file can be made in
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "tagger", "predict", "--model", str(model), "--data", data,
                          "--out", f"/dev/fd/{w}"], pass_fds=(w,), stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": REPO})
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    with p.stderr:
        assert p.wait() == 0, p.stderr.read()
    assert got == p_out                     # what the pipe received is what stdout did
    # a link to a file in another directory: the link stays, the target is written
    (d / "sub").mkdir()
    link = d / "pred.txt"
    link.symlink_to(d / "sub" / "pred.txt")
    rc, out, err = run_cli(capsys, "tagger", "predict", "--model", model, "--data", data, "--out", link)
    assert rc == 0, err
    assert link.is_symlink() and (d / "sub" / "pred.txt").read_text() == p_out


def test_cli_checks_a_link_target_directory_before_work(capsys, tagger_files):
    data, d = tagger_files
    link = d / "m.npz"
    link.symlink_to(d / "missing" / "m.npz")
    rc, out, err = run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out", link, "--epochs",
                           "1", "--quiet")
    assert rc == 2 and "no such directory" in err and str(d / "missing") in err, err
