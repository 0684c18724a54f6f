"""Vocab used the way a user expects a vocabulary to work: vocab[i], `in`, len, index of an unknown word; every
other use a clear error that says what to call, not a bare list error or a silent <unk>."""
import numpy as np
import pytest

from fastnn.data import Vocab


@pytest.fixture
def vocab():
    return Vocab.build([["the", "dog"], ["the", "cat"]])


def test_lookups_that_work(vocab):
    the = vocab.index("the")
    assert vocab[the] == "the" and vocab[np.int64(the)] == "the" and vocab[1:3] == vocab.words[1:3]
    assert "the" in vocab and "zebra" not in vocab and len(vocab) == 5 and list(vocab) == vocab.words
    assert vocab.index("zebra") == vocab.unk_id
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        Vocab(["a", "b"]).index("zebra")


def test_a_word_as_key_says_to_use_index(vocab):
    with pytest.raises(TypeError, match=r"integer id.*got the word 'the'. Use vocab.index\('the'\)"):
        vocab["the"]


@pytest.mark.parametrize("key", [100, -1])
def test_id_out_of_range(vocab, key):
    with pytest.raises(IndexError, match=r"Vocab\[...\]: the id must be in \[0, 5\); got "):
        vocab[key]


@pytest.mark.parametrize("key", [1.0, [1, 2], np.array([1, 2]), True])
def test_other_keys(vocab, key):
    with pytest.raises(TypeError, match=r"Vocab\[...\]: the key must be an integer id"):
        vocab[key]


def test_membership_of_a_non_word_is_false(vocab):
    assert ["the"] not in vocab and 2 not in vocab


@pytest.mark.parametrize("word", [3, ["the"], None])
def test_index_of_a_non_string(vocab, word):
    # a number or a sentence was an unknown word: <unk>, silently (or a bare 'unhashable type')
    with pytest.raises(TypeError, match="Vocab.index: 'word' must be a string"):
        vocab.index(word)


def test_strings_where_sequences_belong():
    with pytest.raises(TypeError, match="'words' must be a sequence of word strings; got a str 'abc'"):
        Vocab("abc")
    with pytest.raises(TypeError, match="'specials' must be a sequence of strings"):
        Vocab.build([["a"]], specials="<unk>")


def test_decode_keeps_a_batch_of_sequences_apart(vocab):
    ids = np.array([[2, 3], [2, 4]])
    assert vocab.decode(ids) == [["the", "cat"], ["the", "dog"]]      # was one list of the four words
    assert vocab.decode(ids[0]) == ["the", "cat"] and vocab.decode(2) == ["the"]
