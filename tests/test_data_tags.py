import numpy as np
import pytest

from fastnn.data.tags import (chunks, convert, detect_scheme, end_of_chunk, from_chunks, is_chunk_tag, recode,
                              start_of_chunk)

IOB1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "O", "I-MISC"]
IOB2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "O", "B-MISC"]
IOBES = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG", "O", "S-MISC"]
CHUNKS = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("ORG", 5, 6), ("MISC", 7, 8)]


@pytest.mark.parametrize("scheme,tags", [("iob1", IOB1), ("iob2", IOB2), ("iobes", IOBES)])
def test_chunks_each_scheme(scheme, tags):
    assert chunks(tags, scheme) == CHUNKS
    assert from_chunks(CHUNKS, len(tags), scheme) == tags


@pytest.mark.parametrize("src,a", [("iob1", IOB1), ("iob2", IOB2), ("iobes", IOBES)])
@pytest.mark.parametrize("dst,b", [("iob1", IOB1), ("iob2", IOB2), ("iobes", IOBES)])
def test_convert_all_pairs(src, a, dst, b):
    assert convert(a, src, dst) == b


def test_lenient_reading():
    # I- without B- starts a chunk; a type change ends one; iob2 reader accepts iob1 and vice versa
    assert chunks(["O", "I-X", "I-X", "I-Y", "B-Y"], "iob2") == [("X", 1, 3), ("Y", 3, 4), ("Y", 4, 5)]
    assert chunks(["I-X", "B-X", "I-X"], "iob1") == [("X", 0, 1), ("X", 1, 3)]
    # iobes: unmatched I/E start a chunk, B/S close an open one
    assert chunks(["I-X", "E-X", "E-X", "B-Y", "S-Y", "I-Y"], "iobes") == \
        [("X", 0, 2), ("X", 2, 3), ("Y", 3, 4), ("Y", 4, 5), ("Y", 5, 6)]
    assert chunks(["B-X", "I-Y", "O"], "iobes") == [("X", 0, 1), ("Y", 1, 2)]
    assert chunks([], "iob1") == [] and chunks(["O"], "iobes") == []
    assert chunks(["B-A-B", "I-A-B"]) == [("A-B", 0, 2)]            # the type is everything after the first hyphen


def test_conlleval_rules_table():
    assert start_of_chunk("O", "I", "", "X") and start_of_chunk("I", "B", "X", "X")
    assert not start_of_chunk("B", "I", "X", "X") and not start_of_chunk("E", "B", "X", "X")
    assert start_of_chunk("E", "E", "X", "X") and start_of_chunk("O", "[", "", "")
    assert end_of_chunk("I", "O", "X", "") and end_of_chunk("B", "I", "X", "Y")
    assert not end_of_chunk("B", "I", "X", "X") and not end_of_chunk("I", "E", "X", "X")
    assert end_of_chunk("E", "I", "X", "X") and end_of_chunk("]", ".", "", "")
    assert not end_of_chunk("O", "B", "", "X") and not end_of_chunk(".", "O", "", "")


def test_random_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 12))
        cs, pos = [], 0
        while pos < n:
            pos += int(rng.integers(0, 3))
            length = int(rng.integers(1, 4))
            if pos + length > n:
                break
            cs.append((str(rng.choice(["X", "Y"])), pos, pos + length))
            pos += length
        for scheme in ("iob1", "iob2", "iobes"):
            tags = from_chunks(cs, n, scheme)
            assert chunks(tags, scheme) == cs
            assert convert(tags, scheme, "iob2") == from_chunks(cs, n, "iob2")


def test_errors():
    msg = r"position 1 must be 'O' or one of B-TYPE, I-TYPE for scheme 'iob2'; got 'S-X'"
    with pytest.raises(ValueError, match=msg):
        chunks(["B-X", "S-X"], "iob2")
    with pytest.raises(ValueError, match="got 'B-'"):
        chunks(["B-"], "iob1")
    with pytest.raises(ValueError, match="'scheme' must be one of"):
        chunks(["O"], "bio")
    with pytest.raises(ValueError, match="non-overlapping"):
        from_chunks([("X", 0, 2), ("X", 1, 3)], 4)
    with pytest.raises(TypeError, match="strings"):
        chunks([1], "iob2")


def test_detect_scheme():
    assert detect_scheme([["I-PER", "I-PER", "O", "B-LOC"]]) == "iob1"
    assert detect_scheme([["I-ORG", "B-ORG", "O"]]) == "iob1"
    assert detect_scheme([["B-NP", "I-NP", "B-VP", "O"]]) == "iob2"
    assert detect_scheme([["S-PER", "O"]]) == "iobes"
    assert detect_scheme([["NNP", "VBZ", "."]]) is None
    assert detect_scheme([["O", "O"]]) == "iob1"
    assert detect_scheme([["B-NP"], ["NN"]]) is None              # one tag that is no chunk tag: not chunk tags


def test_is_chunk_tag_and_recode():
    assert [is_chunk_tag(t) for t in ["O", "B-NP", "S-LST", "E-X", "-LRB-", "NN", "B-", "BB-NP", "X-NP"]] == \
        [True, True, True, True, False, False, False, False, False]
    iob2 = [["B-NP", "I-NP", "B-LST"], ["O"]]
    assert recode(iob2, "iob2", "iobes") == [["B-NP", "E-NP", "S-LST"], ["O"]]
    assert recode(recode(iob2, "iob2", "iobes"), "iobes", "iob2") == iob2
    same = recode(iob2, None, "iobes")
    assert same == iob2 and same[0] is not iob2[0]                  # copies


def test_reencode_is_the_one_home_of_re_encoding():
    """Re-encoding predictions into another chunk encoding had three homes (metrics, the tagger CLI's predict, recode's
    scheme detection); reencode is the one, and the scoring and recode answer through it."""
    from fastnn.data import tags
    from fastnn.metrics import conll_f1

    iob1 = [["I-PER", "I-PER", "O", "I-LOC"], ["I-ORG", "B-ORG"]]
    iob2 = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-ORG"]]
    assert tags.reencode(iob1, "iob2") == (iob2, "iob2")
    assert tags.reencode(iob1, "iob2", "iob1") == (iob2, "iob2")
    assert tags.reencode(iob2, "iob2") == (iob2, "iob2")                   # already there: unchanged copies
    assert tags.reencode(iob2, None) == (iob2, None)
    assert tags.reencode([["B-NP", "S-NP"]], "iob1", "iob2") == ([["I-NP", "B-NP"]], "iob1")   # read as IOBES
    assert tags.reencode([["E-NP"]], "iob2", ill_formed="keep") == ([["E-NP"]], None)
    assert tags.reencode([["E-NP"]], "iob2") == ([["B-NP"]], "iob2")        # read leniently, converted
    assert tags.reencode([["0", "O"]], "iob2") == ([["0", "O"]], None)       # not chunk tags as fastnn reads them
    assert tags.scheme_of([["b-per"]]) is None and tags.scheme_of(iob1) == "iob1"
    with pytest.raises(ValueError, match="'ill_formed' must be 'convert' or 'keep'"):
        tags.reencode(iob1, "iob2", ill_formed="drop")
    with pytest.raises(ValueError, match="'scheme' must be one of"):
        tags.reencode(iob1, "bilou")
    assert recode(iob1, "iob1", "iob2") == iob2
    assert conll_f1(iob2, iob1)["accuracy"] == 100.0                         # scored in gold's encoding


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "iobes"])
def test_well_formed_allows_exactly_the_sequences_from_chunks_writes(scheme):
    import itertools
    from fastnn.data.tags import well_formed
    prefixes = {"iob1": "BI", "iob2": "BI", "iobes": "BIES"}[scheme]
    tagset = ["O"] + [f"{p}-{x}" for p in prefixes for x in ("NP", "VP")]
    follows, first, last = well_formed(tagset, scheme)
    index = {t: i for i, t in enumerate(tagset)}
    for n in range(1, 5):
        for seq in itertools.product(tagset, repeat=n):
            ids = [index[t] for t in seq]
            allowed = first[ids[0]] and last[ids[-1]] and all(follows[a][b] for a, b in zip(ids, ids[1:]))
            assert allowed == (convert(list(seq), scheme, scheme) == list(seq)), seq
    with pytest.raises(ValueError, match="scheme 'iob2'"):
        well_formed(["O", "S-NP"], "iob2")



def test_sentence_functions_refuse_one_sentence_given_flat():
    """detect_scheme(['B-NP', 'I-NP']) read each tag as a sentence of one-letter tags: None (not chunk tags), and
    reencode returned [['B', '-', 'N', 'P'], ...], silently; recode's error spoke of a tag 'I' at position 0."""
    from fastnn.data.tags import detect_scheme, recode, reencode
    flat = ["I-NP", "I-NP", "O"]
    for call, where in ((lambda: detect_scheme(flat), "detect_scheme"), (lambda: reencode(flat, "iob2"), "reencode"),
                        (lambda: recode(flat, "iob1", "iob2"), "recode")):
        with pytest.raises(TypeError, match=rf"{where}: sentence 0 must be a list of tag strings; got str 'I-NP'\. "
                                            rf"A flat list of tags: for one sentence pass \[tags\]"):
            call()
    assert detect_scheme([flat]) == "iob1" and recode([flat], "iob1", "iob2") == [["B-NP", "I-NP", "O"]]
