"""Boundary defects left between modules: a pipe read whole by every reader, vectors files that read back, tag
scheme messages, empty sentences in language-model text, pretrain's data-size message."""
import os
import sys

import pytest


def _pipe(text):
    """A path naming the read end of a pipe holding `text` (as bash's <(zcat corpus.gz) or /dev/stdin give)."""
    r, w = os.pipe()
    data = text.encode()
    assert len(data) < 60000                        # (the pipe's buffer holds it: no writer thread needed)
    os.write(w, data)
    os.close(w)
    return f"/dev/fd/{r}", r


pipes = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/fd/N reopens a pipe on Linux")


def _lines(n=600):
    return "".join(" ".join(f"w{j}" for j in range(i % 7 + 1)) + "\n" for i in range(n))


@pipes
@pytest.mark.parametrize("fmt", ["auto", "text"])
def test_read_corpus_reads_a_pipe_whole(fmt):
    """detect_format opened the path, then the reader opened it again: a pipe gave only what the look had left."""
    from fastnn.embed import read_corpus
    path, r = _pipe(_lines())
    try:
        report = []
        sents = read_corpus([path], fmt, report=report)
    finally:
        os.close(r)
    assert len(sents) == 600 and sents[0] == ["w0"] and sents[-1] == [f"w{j}" for j in range(599 % 7 + 1)]
    assert report[0][1:3] == ("text", 600)
