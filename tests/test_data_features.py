"""Word features (fastnn.data.features): the normalised word, capitalisation classes, affixes, shapes, the characters
of the character feature, affix-length arguments."""
import pytest

from fastnn.data import features as F


def test_features():
    assert F.normalize_word("1996-08-22") == "0000-00-00" and F.normalize_word("EU") == "eu"
    got = [F.caps_feature(w) for w in ["rejects", "Peter", "EU", "McDonald", "1996", ",", "U.S.", "a1", "iPod"]]
    assert got == [F.CAPS_LOWER, F.CAPS_FIRST, F.CAPS_ALL, F.CAPS_HAS, F.CAPS_NONE, F.CAPS_NONE, F.CAPS_ALL,
                   F.CAPS_LOWER, F.CAPS_HAS]


def test_affixes_shapes_and_characters():
    assert [F.word_shape(w) for w in ["age-defying", "10-round", "T.O'Gorman", "1,874", "Paris", "USA", "iPod"]] == \
        ["x-x", "d-x", "X.X'Xx", "d,d", "Xx", "X", "xXx"]
    assert F.word_suffix("Running", 3) == "ing" and F.word_suffix("A1", 3) == "a0" and F.word_prefix("Running", 2) == "ru"
    assert F.normalize("Paris1") == "paris0" and F.normalize("Paris1", lowercase=False) == "Paris0"
    assert F.word_chars("Paris1") == "Paris0"
    long = "a" * 15 + "b" * 15
    assert F.word_chars(long) == "a" * (F.MAX_CHARS // 2) + "b" * (F.MAX_CHARS // 2)


def test_affix_lengths():
    assert F.affix_lengths(0, "n", "w") == () and F.affix_lengths(3, "n", "w") == (3,)
    assert F.affix_lengths([1, 2, 3], "n", "w") == (1, 2, 3)
    for bad in (-1, (2, 2), (0, 1), "3", True, (1.5,)):
        with pytest.raises(ValueError, match="w: 'n' must be"):
            F.affix_lengths(bad, "n", "w")
