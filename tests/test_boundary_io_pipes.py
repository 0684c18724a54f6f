"""Input from pipes and stdin: read once, from the start (a second open of a pipe reads what the first left), gzip
found by peeking at its magic bytes, "-" for stdin wherever a file is read once (and refused twice)."""
import gzip
import io
import os
import subprocess
import sys

import pytest

from fastnn.data.conll import read_conll
from fastnn.data.text import read_sentences
from tests.conftest import REPO, run_cli, write_lines

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc/self/fd")

TEXT = [f"the cat number {i} sat on the mat" for i in range(600)]          # ~20 KB: more than one read's buffer


def _pipe(data):
    """A path that reads `data` (bytes) through a pipe, as bash's <(...) does: /proc/self/fd/N."""
    r, w = os.pipe()
    os.write(w, data)                          # (less than the pipe's 64 KB buffer)
    os.close(w)
    return r, f"/proc/self/fd/{r}"


@needs_proc
@pytest.mark.parametrize("gz", [False, True])
def test_read_words_reads_a_pipe_once(gz):
    from fastnn.data.conll import read_words
    data = ("\n".join(TEXT) + "\n").encode()
    r, path = _pipe(gzip.compress(data) if gz else data)
    try:
        sents, fmt = read_words(path)
    finally:
        os.close(r)
    assert fmt == "text" and len(sents) == 600 and sents[-1][3] == "599"


@needs_proc
def test_gzip_through_a_pipe_is_decompressed(tmp_path):
    lines = ["John NNP B-PER", "runs VBZ O", "", "Mary NNP B-PER", ""]
    r, path = _pipe(gzip.compress(("\n".join(lines) + "\n").encode()))
    try:
        assert read_conll(path) == [[("John", "NNP", "B-PER"), ("runs", "VBZ", "O")], [("Mary", "NNP", "B-PER")]]
    finally:
        os.close(r)


def test_dash_reads_stdin_gzip_or_not(monkeypatch):
    for data in (b"a b\nc\n", gzip.compress(b"a b\nc\n")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert read_sentences("-") == [["a", "b"], ["c"]]


@needs_proc
def test_embed_train_reads_a_pipe_whole(capsys, tmp_path):
    """--text <(cat corpus) with --text-format auto: the format was detected on a first open of the pipe, and the
    corpus read from a second, which got only what the first had not buffered: trained on part of it, silently."""
    r, path = _pipe(("\n".join(TEXT) + "\n").encode())
    try:
        rc, out, err = run_cli(capsys, "embed", "train", "--objective", "ranking", "--text", path, "--out",
                               tmp_path / "v.txt", "--epochs", "1", "--dim", "4", "--hidden", "8", "--min-count", "1")
    finally:
        os.close(r)
    assert rc == 0, err
    assert f"{path}: text, 600 sentences, 4,800 tokens" in err


def test_stdin_for_tagger_eval_and_lm_eval(capsys, tmp_path):
    data = write_lines(tmp_path / "d.txt", ["John NNP B-PER", "visited VBD O", "Paris NNP B-LOC", ""] * 10)
    model = tmp_path / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out", model, "--epochs", "1",
                   "--quiet")[0] == 0
    env = {**os.environ, "PYTHONPATH": REPO}
    with open(data, "rb") as f:
        zipped = gzip.compress(f.read())
    p = subprocess.run([sys.executable, "-m", "fastnn", "tagger", "eval", "--model", str(model), "--data", "-",
                        "--json"], input=zipped, capture_output=True, env=env)
    assert p.returncode == 0, p.stderr
    assert b'"n_tokens": 30' in p.stdout
    text = write_lines(tmp_path / "t.txt", ["the cat sat", "the dog ran"] * 5)
    lm = tmp_path / "lm.npz"
    assert run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", text, "--out", lm, "--min-count", "1",
                   "--quiet")[0] == 0
    with open(text, "rb") as f:
        p = subprocess.run([sys.executable, "-m", "fastnn", "lm", "eval", "--model", str(lm), "--data", "-"],
                           stdin=f, capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "tokens 40" in p.stdout, p.stderr


@pytest.mark.parametrize("argv", [
    ["tagger", "train", "--train", "-", "--dev", "-", "--task", "ner=2", "--out", "{d}/m.npz"],
    ["embed", "train", "--objective", "ranking", "--text", "-", "-", "--out", "{d}/v.txt"],
    ["lm", "eval", "--model", "{d}/m.npz", "--data", "-", "--mix", "{d}/m.npz", "--weight", "em", "--tune-on", "-"],
])
def test_stdin_twice_is_refused(capsys, tmp_path, argv):
    rc, out, err = run_cli(capsys, *[a.format(d=tmp_path) for a in argv])
    assert rc == 2 and "standard input (-) can be read once" in err, err
