"""Chunk columns written another way than fastnn reads them ("0" for "O", lower-case prefixes, BILOU) are a clear
error, not plain tags trained and scored by token accuracy."""
import pytest

from fastnn.data.tags import detect_scheme
from tests.conftest import run_cli, write_lines


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("column,match", [
    ([["B-PER", "I-PER", "0", "B-LOC"]], r"sentence 0, token 2 has '0': outside a chunk must be 'O' \(the letter\)"),
    ([["O", "b-per", "i-per"]], r"'b-per': .* upper-case prefix"),
    ([["O"], ["U-PER", "O", "B-LOC", "L-LOC"]], r"sentence 1, token 0 has 'U-PER': BILOU .* IOBES"),
    ([["S-PER", "0"]], "'0'"),
])

def test_chunk_tags_written_otherwise_are_an_error(column, match):
    with pytest.raises(ValueError, match=match):
        detect_scheme(column)


@pytest.mark.parametrize("column", [[["NN", "0"]], [["0", "0", "O"]], [["CD", "u-x"]], [["B-X", "NN"]]])
def test_other_columns_are_still_plain_tags(column):
    assert detect_scheme(column) is None


@pytest.mark.parametrize("outside,prefix", [("0", "B"), ("O", "b"), ("O", "U")])
def test_tagger_train_refuses_them(capsys, tmp_path, outside, prefix):
    lines = []
    for _ in range(5):
        lines += [f"John NNP {prefix}-PER", f"runs VBZ {outside}", f"Paris NNP {prefix}-LOC", ""]
    data = write_lines(tmp_path / "t.txt", lines)
    rc, out, err = run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out",
                           tmp_path / "m.npz", "--epochs", "1", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "look like chunk tags" in err, err
    assert not (tmp_path / "m.npz").exists()


def test_tagger_eval_scores_a_file_in_its_own_encoding(capsys, tmp_path):
    """A model trained on IOB1 (CoNLL-2003 as distributed) scored on an IOB2 copy of its dev file: the chunk scores
    are the same, and token accuracy compares its predictions re-encoded in IOB2 (it counted every I-X/B-X that
    differed only in encoding as wrong); a tag the training data never had is counted, not a crash."""
    import json

    import numpy as np

    from fastnn.data.conll import read_conll
    from fastnn.data.tags import recode
    from tests.test_cli_tagger import SMALL, _conll

    rng = np.random.default_rng(0)
    train, dev = _conll(tmp_path / "train.txt", rng, 40), _conll(tmp_path / "dev.txt", rng, 10)
    rows = [line.split() for line in _read(dev).splitlines()]
    tags = [r[3] for r in rows if len(r) == 4 and r[0] != "-DOCSTART-"]
    iob2 = iter(t for s in recode([tags], "iob1", "iob2") for t in s)
    rows = [r[:3] + [next(iob2)] if len(r) == 4 and r[0] != "-DOCSTART-" else r for r in rows]
    rows[2][3] = "B-GPE"                                   # a type the training data never had
    dev2 = write_lines(tmp_path / "dev2.txt", [" ".join(r) for r in rows])
    model = tmp_path / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", train, "--task", "ner=3", "--out", model, "--quiet",
                   *SMALL)[0] == 0
    rc, out, err = run_cli(capsys, "tagger", "eval", "--model", model, "--data", dev2, "--json")
    assert rc == 0, err
    res = json.loads(out)["ner"]
    assert res["unseen_tags"] == ["B-GPE"] and res["unseen_tokens"] == 1
    rc, out, _ = run_cli(capsys, "tagger", "predict", "--model", model, "--data", dev2)
    pred = [r[4] for r in (line.split() for line in out.splitlines()) if len(r) == 5 and r[0] != "-DOCSTART-"]
    gold = [r[3] for s in read_conll(dev2) for r in s]
    pred2 = [t for s in recode([pred], "iob1", "iob2") for t in s]       # (one long sentence: the same tags here)
    assert res["accuracy"] == pytest.approx(100 * np.mean(np.array(gold) == np.array(pred2)))
    assert res["accuracy"] > 90
    # predict writes the predictions in the input's IOB2 too, so that conlleval on its output scores as eval does
    assert pred == pred2 and any(t.startswith("B-") for t in pred)


def test_an_iobes_file_is_scored_by_an_iob1_model(capsys, tmp_path):
    """S-/E- tags were refused by the IOB1 reader ('chunks: tag at position 2 must be ... for scheme iob1'): an IOBES
    copy of the dev file is read in its own scheme and gets the chunk scores of the IOB1 file."""
    import json

    import numpy as np

    from fastnn.data.tags import recode
    from tests.test_cli_tagger import SMALL, _conll

    rng = np.random.default_rng(1)
    train, dev = _conll(tmp_path / "train.txt", rng, 40), _conll(tmp_path / "dev.txt", rng, 10)
    blocks = _read(dev).split("\n\n")
    out = []
    for b in blocks:
        rows = [r.split() for r in b.splitlines()]
        if rows and rows[0][0] != "-DOCSTART-":
            tags = recode([[r[3] for r in rows]], "iob1", "iobes")[0]
            rows = [r[:3] + [t] for r, t in zip(rows, tags)]
        out.append("\n".join(" ".join(r) for r in rows))
    dev_s = tmp_path / "dev_iobes.txt"
    dev_s.write_text("\n\n".join(out))
    assert "S-PER" in dev_s.read_text()
    model = tmp_path / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", train, "--task", "ner=3", "--out", model, "--quiet",
                   *SMALL)[0] == 0
    scores = []
    for data in (dev, dev_s):
        rc, out_, err = run_cli(capsys, "tagger", "eval", "--model", model, "--data", data, "--json")
        assert rc == 0, err
        scores.append(json.loads(out_)["ner"])
    assert scores[1]["f1"] == scores[0]["f1"] and scores[1]["n_chunks"] == scores[0]["n_chunks"]
    assert scores[1]["unseen_tokens"] == 0


def test_the_fix_for_zeros_names_the_tasks_column(tmp_path, capsys):
    """The awk line that replaces '0' by 'O' edited the last column ($NF) whatever column the task reads: on a
    CoNLL-2003 file whose chunk column (2) holds the zeros, it would have rewritten the NER column instead."""
    with pytest.raises(ValueError, match=r"""awk '\$3=="0"\{\$3="O"\}1' \(column 2 = awk's \$3\)"""):
        detect_scheme([["B-NP", "0"]], column=2)
    with pytest.raises(ValueError, match=r"""awk '\$NF=="0"\{\$NF="O"\}1' \(last column\)"""):
        detect_scheme([["B-NP", "0"]])
    train = tmp_path / "train.txt"
    write_lines(train, ["EU NNP B-NP B-ORG", "rejects VBZ 0 O", "", "German JJ B-NP B-MISC", "call NN I-NP O", ""])
    rc, out, err = run_cli(capsys, "tagger", "train", "--train", train, "--task", "chunk=2", "--epochs", "1",
                           "--out", tmp_path / "m.npz")
    assert rc == 2 and "task 'chunk' (column 2)" in err and """awk '$3=="0"{$3="O"}1'""" in err, err
