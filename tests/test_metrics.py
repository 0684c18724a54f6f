import math

import numpy as np
import pytest

from fastnn.data.tags import chunks
from fastnn.metrics import accuracy, conll_f1, format_conlleval, perplexity


def counts(gold, pred, **kw):
    r = conll_f1(gold, pred, **kw)
    return r["n_gold"], r["n_pred"], r["n_correct"]


def test_perfect_and_mixed_encodings():
    g = [["B-PER", "I-PER", "O", "B-LOC"]]
    r = conll_f1(g, g)
    assert (r["precision"], r["recall"], r["f1"], r["accuracy"]) == (100.0, 100.0, 100.0, 100.0)
    # IOB1 gold vs IOB2 prediction: same chunks, scored in gold's encoding (conlleval: accuracy 50)
    r = conll_f1([["I-PER", "I-PER", "O", "I-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]])
    assert r["f1"] == 100.0 and r["accuracy"] == 100.0 and r["n_tokens"] == 4


@pytest.mark.parametrize("gold,pred,expected", [
    ([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]], (1, 1, 1)),    # I- without B- starts a chunk
    ([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]], (1, 2, 0)),              # a type change ends a chunk
    ([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]], (2, 2, 2)),          # a sentence boundary ends a chunk
    ([["B-PER", "O"]], [["B-PER", "I-PER"]], (1, 1, 0)),                  # predicted chunk too long
    ([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]], (1, 1, 0)),  # too short
    ([["B-PER", "B-PER"]], [["B-PER", "I-PER"]], (2, 1, 0)),              # B after B splits
    ([["I-X", "B-X", "I-X"]], [["B-X", "B-X", "I-X"]], (2, 2, 2)),        # IOB1 adjacency
    ([["O", "B-LOC"]], [["O", "B-LOC"]], (1, 1, 1)),                      # chunk at the sentence end
    ([["B-LOC", "O"]], [["B-ORG", "O"]], (1, 1, 0)),                      # right span, wrong type
    ([["O", "O"]], [["O", "I-X"]], (0, 1, 0)),
    ([[]], [[]], (0, 0, 0)),
])
def test_edges(gold, pred, expected):
    assert counts(gold, pred) == expected


def test_per_type_numbers():
    g = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    p = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG"]]
    r = conll_f1(g, p)
    assert (r["n_gold"], r["n_pred"], r["n_correct"]) == (3, 3, 2)
    assert r["f1"] == pytest.approx(200 / 3)
    assert r["per_type"]["LOC"] == dict(precision=0.0, recall=0.0, f1=0.0, n_gold=1, n_pred=0, n_correct=0)
    org = r["per_type"]["ORG"]
    assert (org["precision"], org["recall"], org["f1"]) == (50.0, 100.0, pytest.approx(200 / 3))
    assert r["per_type"]["PER"]["f1"] == 100.0 and list(r["per_type"]) == ["LOC", "ORG", "PER"]
    text = format_conlleval(r)
    assert "processed 6 tokens with 3 phrases; found: 3 phrases; correct: 2." in text
    assert "              ORG: precision:  50.00%; recall: 100.00%; FB1:  66.67  2" in text


def test_iobes_option():
    g = [["S-X", "B-Y", "E-Y"]]
    assert counts(g, [["S-X", "B-Y", "I-Y"]], scheme="iobes") == (2, 2, 2)
    with pytest.raises(ValueError, match="scheme"):
        conll_f1(g, g, scheme="iob2")


def test_matches_chunk_set_intersection_on_random_tags():
    """conlleval's state machine counts exactly the chunks (type, start, end) shared by both sides."""
    rng = np.random.default_rng(1)
    alphabet = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    for _ in range(300):
        sents = [int(rng.integers(0, 7)) for _ in range(3)]
        g = [list(rng.choice(alphabet, n)) for n in sents]
        p = [list(rng.choice(alphabet, n)) for n in sents]
        cg = {(k,) + c for k, s in enumerate(g) for c in chunks(s, "iob2")}
        cp = {(k,) + c for k, s in enumerate(p) for c in chunks(s, "iob2")}
        assert counts(g, p) == (len(cg), len(cp), len(cg & cp))


def test_conll_f1_errors():
    with pytest.raises(ValueError, match="same number of sentences"):
        conll_f1([["O"]], [])
    with pytest.raises(ValueError, match="sentence 1 must have as many predicted as gold tags; got 1 predicted and 2"):
        conll_f1([["O"], ["O", "O"]], [["O"], ["O"]])


def test_conll_f1_takes_sentences_of_tag_strings_only():
    """One sentence's tags given flat (as sklearn's metrics take labels) were scored as sentences of characters:
    precision 50 over 9 'tokens' for a perfect prediction; a None or int tag was an AttributeError ('partition')."""
    tags = ["B-NP", "I-NP", "O"]
    with pytest.raises(TypeError, match=r"conll_f1: 'gold_sentences': sentence 0 must be a list of tag strings; got "
                                        r"str 'B-NP'\. A flat list of tags: for one sentence pass \[tags\]"):
        conll_f1(tags, tags)
    with pytest.raises(TypeError, match=r"'pred_sentences': sentence 0 must be a list of tag strings; got str "
                                        r"'B-NP I-NP O'\. Tokenise first"):
        conll_f1([tags], [" ".join(tags)])
    with pytest.raises(TypeError, match=r"'gold_sentences': sentence 0, tag 1 must be a string; got NoneType"):
        conll_f1([["O", None]], [["O", "O"]])
    assert conll_f1([tags], (np.array(tags),))["f1"] == 100.0           # tuples and string arrays are sentences


def test_accuracy():
    assert accuracy(np.array([1, 2, 3, 4]), np.array([1, 0, 3, 4])) == 0.75
    assert accuracy([["a", "b"], ["c"]], [["a", "x"], ["c"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same length"):
        accuracy([1, 2], [1])


def test_accuracy_compares_sentences_and_labels_not_characters():
    """Sentences of other lengths with the same total were compared shifted ([[a, b], [c]] against [[a], [b, c]]:
    1.0), strings character by character ('abc' against 'abd': 0.67), and a number was 'int is not iterable'."""
    with pytest.raises(ValueError, match=r"must have the same sentences; got 2 gold and 1 predicted labels in "
                                         r"sentence 0"):
        accuracy([["a", "b"], ["c"]], [["a"], ["b", "c"]])
    with pytest.raises(ValueError, match=r"must have the same sentences; got 2 and 3 sentences"):
        accuracy([["a", "b"], ["c"]], [["a"], ["b"], ["c"]])
    with pytest.raises(TypeError, match=r"'pred' must be a sequence of labels, or of sentences of labels; got a "
                                        r"str 'abd'"):
        accuracy(["a", "b", "c"], "abd")
    with pytest.raises(TypeError, match=r"'gold' must be a sequence of labels.*; got int 1"):
        accuracy(1, [1])
    assert accuracy([["a", "b"], ("c",)], [np.array(["a", "x"]), ["c"]]) == pytest.approx(2 / 3)
    assert accuracy((x for x in [1, 2]), np.array([1, 0])) == 0.5


def test_perplexity():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(50.0), 10) == pytest.approx(50.0)
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(FloatingPointError, match="finite"):
        perplexity(float("nan"), 3)
    with pytest.raises(ValueError, match="positive int"):
        perplexity(1.0, 0)


@pytest.mark.data
def test_conll2003_gold_against_itself_in_iob2():
    from fastnn.data.conll import column, read_conll
    from fastnn.data.tags import convert
    from tests.conftest import data_path

    gold = column(read_conll(data_path("conll2003", "eng.testa"), columns=["ner"]), 0)
    r = conll_f1(gold, [convert(s, "iob1", "iob2") for s in gold])
    assert r["f1"] == 100.0 and r["n_gold"] == r["n_correct"] == 5942      # entities in the CoNLL-2003 dev set
    assert r["n_tokens"] == 51362 and r["accuracy"] == 100.0     # scored in gold's encoding
    assert set(r["per_type"]) == {"LOC", "MISC", "ORG", "PER"}


def test_scored_in_gold_encoding():
    """A prediction consistently in another encoding is re-encoded into gold's before tags are compared (a model
    trained on IOB1 data scored on an IOB2 file); one ill-formed in its own is compared as it is."""
    g2 = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]]
    p1 = [["I-PER", "I-PER", "I-ORG", "I-LOC", "B-LOC"]]          # IOB1: one wrong token, one wrong chunk
    r = conll_f1(g2, p1)
    assert r["accuracy"] == 80.0 and (r["n_gold"], r["n_pred"], r["n_correct"]) == (3, 4, 3)
    r = conll_f1([["B-X", "I-X", "O", "B-Y"]], [["I-X", "I-X", "O", "B-Y"]])    # ill-formed IOB1 (B-Y after O)
    assert r["accuracy"] == 75.0 and r["f1"] == 100.0
    # IOBES on both sides needs no scheme= (conlleval joins S-X S-X into one chunk)
    r = conll_f1([["S-PER", "S-PER", "O"]], [["S-PER", "O", "S-PER"]])
    assert (r["n_gold"], r["n_pred"], r["n_correct"]) == (2, 2, 1) and r["accuracy"] == pytest.approx(100 / 3)
    r = conll_f1([["S-PER", "B-LOC", "E-LOC"]], [["B-PER", "B-LOC", "I-LOC"]])   # IOBES gold, IOB2 prediction
    assert r["f1"] == 100.0 and r["accuracy"] == 100.0
    r = conll_f1([["B-NP", "NN"]], [["B-NP", "I-NP"]])              # not chunk tags: conlleval's rules as they are
    assert r["accuracy"] == 50.0
