"""Pretrained vectors given the wrong things: NaN rows, rows that do not match the words, a string of words, an
open file where a path belongs.  A clear error naming the argument, never NaN copied into a model's table, a file of
one word per character, or a bare AttributeError / IndexError."""
import numpy as np
import pytest

from fastnn.data import Vocab
from fastnn.data.vectors import init_pretrained, read_vectors, write_vectors

VOCAB = Vocab(["<pad>", "<unk>", "the", "dog"])


@pytest.fixture
def table(rng):
    return rng.uniform(-0.01, 0.01, size=(4, 3)).astype(np.float32)


def test_non_finite_vectors_are_not_copied(table):
    before = table.copy()
    with pytest.raises(ValueError, match="init_pretrained: the vectors must be finite; got a non-finite value in the "
                                         "vector of 'dog'"):
        init_pretrained(table, VOCAB, ["the", "dog"], np.array([[1.0, 2, 3], [np.nan, 1, 2]]))
    np.testing.assert_array_equal(table, before)


@pytest.mark.parametrize("words, vectors, err, msg", [
    (["the", "dog"], np.ones((1, 3)), ValueError, r"'vectors' must be a numeric \(2, dim\) array"),
    (["the"], np.ones(3), ValueError, r"'vectors' must be a numeric \(1, dim\) array"),
    ("the", np.ones((3, 3)), TypeError, "'words' must be a list of words; got the string 'the'")])
def test_vectors_must_match_the_words(table, words, vectors, err, msg):
    with pytest.raises(err, match=f"init_pretrained: {msg}"):
        init_pretrained(table, VOCAB, words, vectors)


def test_the_table_must_be_the_vocabularys(table):
    with pytest.raises(ValueError, match="'table' must have one row per word of 'vocab', 4; got 2"):
        init_pretrained(table[:2].copy(), VOCAB, ["dog"], np.ones((1, 3)))
    with pytest.raises(TypeError, match="'table' must be a numpy.ndarray"):
        init_pretrained(table.tolist(), VOCAB, ["dog"], np.ones((1, 3)))
    assert init_pretrained(table, VOCAB, ["dog"], [[1.0, 2.0, 3.0]], std=None) == 1   # a list of rows is fine
    np.testing.assert_array_equal(table[3], [1, 2, 3])


def test_write_and_read_take_what_they_say(tmp_path):
    path = tmp_path / "v.txt"
    with pytest.raises(TypeError, match=r"write_vectors: 'words' must be a list of words; got the string 'ab'"):
        write_vectors(path, "ab", np.ones((2, 3)))           # was two words, 'a' and 'b'
    write_vectors(path, ["a", "b"], np.ones((2, 3)))
    with open(path) as f:
        with pytest.raises(TypeError, match=r"read_vectors: 'path' must be a file path .*; got TextIOWrapper. Pass "
                                            r"the file's name: read_vectors\("):
            read_vectors(f)


def test_write_vectors_to_an_open_file_names_the_path(tmp_path):
    with open(tmp_path / "v.txt", "w") as f:
        with pytest.raises(TypeError, match=r"write_vectors: 'path' must be a file path .*; got TextIOWrapper"):
            write_vectors(f, ["a"], np.ones((1, 2)))


def test_vocab_from_arrays_of_a_list():
    with pytest.raises(TypeError, match="Vocab.from_arrays: 'd' must be a dict or an NpzFile"):
        VOCAB.from_arrays([1])
