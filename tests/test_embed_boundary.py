"""nearest_neighbors called the way a user calls it: one word as a string, an unknown word, a generator of
queries, NaN or huge vectors.  A clear error or the right answer, never a KeyError for a letter, an empty result or
NaN similarities."""
import numpy as np
import pytest

from fastnn.embed import nearest_neighbors

WORDS = ["cat", "dog", "the", "paris"]


@pytest.fixture
def vecs(rng):
    return rng.normal(size=(4, 3))


def test_a_string_query_says_to_pass_a_list(vecs):
    # it was iterated: KeyError 'c', the letter
    with pytest.raises(TypeError, match=r"'queries' must be a list of words; got the string 'cat'. Pass \['cat'\]"):
        nearest_neighbors(WORDS, vecs, "cat")
    with pytest.raises(TypeError, match="'words' must be a list of words"):
        nearest_neighbors("abcd", vecs, ["a"])


def test_an_unknown_word_is_a_keyerror_naming_it(vecs):
    with pytest.raises(KeyError, match=r"nearest_neighbors: the query 'Zebra' is not in the vocabulary \(nor is "
                                       r"'zebra', its normalised form\)"):
        nearest_neighbors(WORDS, vecs, ["cat", "Zebra"])
    with pytest.raises(TypeError, match="every query must be a word"):
        nearest_neighbors(WORDS, vecs, [3])


def test_a_generator_of_queries_is_read_once(vecs):
    # it was read twice (lookup, then output): an empty dict, silently
    assert nearest_neighbors(WORDS, vecs, (q for q in ["cat", "dog"]), k=2) == \
        nearest_neighbors(WORDS, vecs, ["cat", "dog"], k=2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vectors_are_named(vecs, bad):
    # NaN similarities sorted anywhere: the query itself came back as its own neighbour (-inf)
    vecs[1, 2] = bad
    with pytest.raises(ValueError, match=r"'vectors' must be finite; got a non-finite value in the vector of 'dog' "
                                         r"\(row 1\)"):
        nearest_neighbors(WORDS, vecs, ["cat"], k=3)


def test_zero_and_huge_vectors(vecs):
    vecs[1] = 0.0
    assert dict(nearest_neighbors(WORDS, vecs, ["cat"], k=3)["cat"])["dog"] == 0.0
    vecs[1] = [1e200, -1e200, 1e200]            # its norm overflowed to inf: a similarity of 0, silently
    s = dict(nearest_neighbors(WORDS, vecs, ["cat"], k=3)["cat"])["dog"]
    u = vecs[0] / np.linalg.norm(vecs[0])
    assert s == pytest.approx(u @ np.array([1, -1, 1]) / np.sqrt(3), rel=1e-12)


def test_non_numeric_vectors(vecs):
    with pytest.raises(TypeError, match="'vectors' must be a .* array of real numbers"):
        nearest_neighbors(WORDS, np.array([["a"] * 3] * 4), ["cat"])


# ---- the corpus helpers ------------------------------------------------------------------------------------------

def test_split_valid_reads_a_generator_once_and_checks_its_numbers():
    from fastnn.embed import split_valid
    sents = [["a", "b"], ["c"], ["d"], ["e"]]
    assert split_valid((s for s in sents), 0.3, 0) == split_valid(sents, 0.3, 0)      # was: no len()
    with pytest.raises(TypeError, match="split_valid: 'fraction' must be a real number; got '0.3'"):
        split_valid(sents, "0.3", 0)
    with pytest.raises(TypeError, match="split_valid: 'seed' must be an integer >= 0; got None"):
        split_valid(sents, 0.3, None)


def test_scale_vectors_of_integers_is_not_all_zeros():
    from fastnn.embed import scale_vectors
    v = scale_vectors(np.array([[1, 2], [3, 4]]), 0.1)       # was scaled, then cast back to int: zeros
    assert v.dtype == np.float64 and v.std() == pytest.approx(0.1)
    with pytest.raises(TypeError, match="scale_vectors: 'std' must be a real number"):
        scale_vectors(np.eye(2), "0.1")


def test_read_corpus_given_sentences_says_they_need_no_reading():
    from fastnn.embed import read_corpus
    with pytest.raises(TypeError, match="read_corpus: 'paths' must be file paths; got list .* pass them to pretrain"):
        read_corpus([["the", "dog"]])


def test_duplicate_words_are_refused(vecs):
    with pytest.raises(ValueError, match="nearest_neighbors: 'words' must be distinct; got 'cat' more than once"):
        nearest_neighbors(["cat", "dog", "cat", "paris"], vecs, ["cat"], k=1)    # was ('cat', 1.0)
