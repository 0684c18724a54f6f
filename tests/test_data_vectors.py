import numpy as np
import pytest

from fastnn.data.vectors import read_vectors, write_vectors


def test_roundtrip_exact(tmp_path, rng):
    words = ["the", "é", "<unk>", "x-1"]
    V = rng.standard_normal((4, 7)).astype(np.float32) * np.float32(1e-3)
    p = tmp_path / "v.txt"
    write_vectors(p, words, V)
    assert p.read_text(encoding="utf-8").splitlines()[0] == "4 7"
    w, M = read_vectors(p)
    assert w == words and M.dtype == np.float32 and np.array_equal(M, V)
    write_vectors(p, [], np.zeros((0, 3)))
    w, M = read_vectors(p)
    assert w == [] and M.shape == (0, 3)


def test_reads_word2vec_style_text(tmp_path):
    p = tmp_path / "w2v.txt"
    p.write_text("2 3\n</s> 0.1 0.2 0.3 \nking -1e-2 2 3.5\n\n", encoding="utf-8")   # trailing space as word2vec
    w, M = read_vectors(p)
    assert w == ["</s>", "king"] and M[1].tolist() == pytest.approx([-0.01, 2, 3.5])


@pytest.mark.parametrize("text,match", [
    ("2 x\na 1\n", r"line 1: values must be numbers; got .x."),      # no header: "2" is a word
    ("-1 2\na 1 2\n", r"line 1: must be the header 'n_words dim' with n_words >= 0"),
    ("1 2\na 1\n", r"line 2: must have a word and 2 values; got 1"),
    ("1 2\na 1 zz\n", r"line 2: values must be numbers; got 'zz'"),
    ("2 1\na 1\na 2\n", r"line 3: words must be distinct; got 'a' again \(first on line 2\)"),
    ("1 1\na 1\nb 2\n", r"line 3: the header says 1 words; got more"),
    ("3 1\na 1\n", r"the header says 3 words; got 1"),
    ("a 1 2\nb nan 0\nc 1 inf\n", r"values must be finite; got nan for 'b' \(line 2; 2 words in all\)"),
])
def test_malformed(tmp_path, text, match):
    p = tmp_path / "bad.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match) as e:
        read_vectors(p)
    assert "bad.txt" in str(e.value)


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_vectors(tmp_path / "o", ["a"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="without space"):
        write_vectors(tmp_path / "o", ["a b"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="finite"):
        write_vectors(tmp_path / "o", ["a"], np.full((1, 2), np.nan))
    with pytest.raises(FileNotFoundError, match="nope"):
        read_vectors(tmp_path / "nope")
    assert not (tmp_path / "o").exists()


def test_reads_glove_files_without_the_header_line(tmp_path, rng):
    words = [f"w{i}" for i in range(1500)] + ["1", "2"]         # more rows than the first buffer; numeric words
    V = rng.standard_normal((len(words), 3)).astype(np.float32)
    p = tmp_path / "v.txt"
    write_vectors(p, words, V)
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(p.read_text(encoding="utf-8").splitlines(True)[1:]), encoding="utf-8")
    w, M = read_vectors(glove)
    assert w == words and np.array_equal(M, V) and M.flags.c_contiguous
    (tmp_path / "one.txt").write_text("the 0.5 -1\n", encoding="utf-8")
    w, M = read_vectors(tmp_path / "one.txt")
    assert w == ["the"] and M.tolist() == [[0.5, -1.0]]
    (tmp_path / "ragged.txt").write_text("the 0.5 -1\nof 1 2\nnew york 3 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ragged.txt, line 3: must have a word and 2 values like line 1 \(a file "
                                         r"without a header line\); got 3 values"):
        read_vectors(tmp_path / "ragged.txt")
    (tmp_path / "word.txt").write_text("the\nof 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: must be the header 'n_words dim' or a word and its values"):
        read_vectors(tmp_path / "word.txt")


def test_binary_word2vec_is_named_not_reported_as_bad_utf8_only(tmp_path):
    p = tmp_path / "bad.bin"
    p.write_bytes(b"2 2\nthe " + np.array([1, 2], np.float32).tobytes() + b"\ncat \xff\xfe\x00\x00\x00\x00\x00\x80\n")
    with pytest.raises(ValueError, match=r"bad.bin must be UTF-8 text.*word2vec's binary format.*binary=False"):
        read_vectors(p)


def test_a_value_beyond_float32_is_one_error_not_a_numpy_warning_first(tmp_path):
    """1e39 overflowed to inf with NumPy's "overflow encountered in cast" warning (a second, Python-format line on
    the command line) before the error, which called it inf without saying why."""
    import warnings
    p = tmp_path / "v.txt"
    p.write_text("a 1e39 2\nb 4 5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"values must be finite; got inf for 'a' .*beyond float32's range"):
            read_vectors(p)
