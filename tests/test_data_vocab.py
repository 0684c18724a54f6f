from collections import Counter

import numpy as np
import pytest

from fastnn.data import Vocab, lm_stream, read_sentences
from tests.conftest import data_path

SENTS = [["b", "a", "c"], ["a", "b", "a"], ["d", "</s>"]]


def test_build_order_counts_and_specials():
    v = Vocab.build(SENTS)
    assert v.words == ["<unk>", "</s>", "a", "b", "c", "d"]      # a:3, b:2, then c, d tie -> by word
    assert v.counts.dtype == np.int64
    assert v.counts.tolist() == [0, 4, 3, 2, 1, 1]              # </s>: 3 sentences + 1 literal
    assert (v.unk_id, v.eos_id, v.pad_id) == (0, 1, None)


def test_build_min_count_max_size_and_unk_count():
    v = Vocab.build(SENTS, min_count=2)
    assert v.words == ["<unk>", "</s>", "a", "b"]
    assert v.counts[0] == 2                                     # c and d dropped
    v = Vocab.build(SENTS, max_size=1, specials=("<pad>", "<unk>"))
    assert v.words == ["<pad>", "<unk>", "a"]
    assert v.counts.tolist() == [0, 5, 3]                       # b b c d </s>
    assert v.eos_id is None and v.pad_id == 0
    with pytest.raises(ValueError, match="min_count"):
        Vocab.build(SENTS, min_count=0)


def test_build_refuses_a_min_count_that_no_word_reaches():
    """As scikit-learn's "After pruning, no terms remain": a vocabulary of specials alone trains on nothing."""
    top = max(Counter(w for s in SENTS for w in s).values())
    with pytest.raises(ValueError, match=rf"'min_count' {top + 1} leaves no word .* seen {top} times\. Lower "
                                         rf"'min_count' \(to {top} or less\)"):
        Vocab.build(SENTS, min_count=top + 1)
    assert len(Vocab.build(SENTS, min_count=top)) > 2
    assert Vocab.build([], min_count=5).words == [Vocab.UNK, Vocab.EOS]       # no words at all: nothing was pruned


def test_lookup_encode_decode():
    v = Vocab(["<unk>", "x", "y"])
    assert len(v) == 3 and "x" in v and "z" not in v and v.counts is None
    assert v.index("y") == 2 and v.index("zzz") == 0
    ids = v.encode(["y", "q", "x"])
    assert ids.dtype == np.int64 and ids.tolist() == [2, 0, 1]
    assert v.decode(ids) == ["y", "<unk>", "x"]
    assert v.decode(np.array([], dtype=np.int64)) == []
    with pytest.raises(IndexError, match=r"\[0, 3\); got 3 at position 1"):
        v.decode([1, 3])


def test_no_unk_raises_keyerror():
    v = Vocab(["x", "y"])
    assert v.unk_id is None
    with pytest.raises(KeyError, match="'z' is not in the vocabulary"):
        v.index("z")
    with pytest.raises(KeyError, match="'z' at position 1"):
        v.encode(["x", "z"])


def test_duplicates_and_bad_counts():
    with pytest.raises(ValueError, match="'a' more than once"):
        Vocab(["a", "b", "a"])
    with pytest.raises(ValueError, match="shape"):
        Vocab(["a"], counts=[1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        Vocab(["a"], counts=[-1])


def test_npz_roundtrip_without_pickle(tmp_path):
    v = Vocab.build(SENTS + [["é", "日本"]])
    path = tmp_path / "v.npz"
    np.savez(path, **v.to_arrays(prefix="vocab."), other=np.zeros(2))
    with np.load(path, allow_pickle=False) as z:
        w = Vocab.from_arrays(z, prefix="vocab.")
    assert w == v and w.words[-1] in ("é", "日本")
    assert Vocab.from_arrays(Vocab(["a"]).to_arrays()) == Vocab(["a"])
    assert Vocab(["a"]) != Vocab(["a"], [1]) and Vocab(["a"], [1]) != Vocab(["a"], [2])
    assert Vocab.from_arrays(Vocab([]).to_arrays()) == Vocab([])


@pytest.mark.data
def test_brown_vocabulary_protocol():
    train = read_sentences(data_path("brown", "brown.train.txt"))
    v = Vocab.build(train, min_count=4)                          # "seen more than 3 times"
    assert len(v) - 2 == 14113
    stream = lm_stream(train, v)
    assert stream.size == 800001 + len(train) and (stream == v.eos_id).sum() == len(train)
    assert v.counts.sum() == stream.size


def test_encode_refuses_a_string_and_tokens_that_are_not_strings():
    """encode("the") was the ids of 't', 'h', 'e'; encode([1, 2]) and a list of sentences were silently <unk>s (or
    'unhashable type: list')."""
    v = Vocab(["<unk>", "</s>", "the", "t", "h", "e"])
    with pytest.raises(TypeError, match="got a str 'the', which would be read as its characters"):
        v.encode("the")
    for bad, what in (([1, 2], "int 1"), ([["the"]], r"list \['the'\]"), (["the", None], "NoneType None")):
        with pytest.raises(TypeError, match=f"must be a string; got {what}"):
            v.encode(bad)
    assert v.encode(iter(["the", "cat"])).tolist() == [2, 0] and v.encode(np.array(["e"], dtype=object)).tolist() == [5]
