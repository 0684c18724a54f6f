"""What a file's characters do: only ASCII whitespace separates tokens and columns (a no-break space is part of a
token: "10\u00a0000", "New\u00a0York")."""
from fastnn.data.conll import detect_format, read_conll, read_document
from fastnn.data.text import read_sentences
from tests.conftest import run_cli


def test_no_break_space_is_part_of_a_token(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("New\u00a0York NNP B-LOC\nhas VBZ O\n10\u00a0000 CD O\n\n", encoding="utf-8")
    assert read_conll(p) == [[("New\u00a0York", "NNP", "B-LOC"), ("has", "VBZ", "O"), ("10\u00a0000", "CD", "O")]]
    t = tmp_path / "t.txt"
    t.write_text("New\u00a0York  has\t10\u00a0000 people\u3000here\n", encoding="utf-8")
    assert read_sentences(t) == [["New\u00a0York", "has", "10\u00a0000", "people\u3000here"]]
    lines = ["New\u00a0York NNP B-LOC\n", "has VBZ O\n", "\n"]
    assert detect_format(lines) == "conll"
    assert list(read_document(lines, "conll")) == [[("New\u00a0York", "NNP", "B-LOC"), ("has", "VBZ", "O")], ""]


def test_tagger_predict_keeps_the_token(capsys, tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("John NNP B-PER\nvisited VBD O\nNew\u00a0York NNP B-LOC\n\n" * 10, encoding="utf-8")
    model = tmp_path / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out", model, "--epochs", "1",
                   "--quiet")[0] == 0
    rc, out, err = run_cli(capsys, "tagger", "predict", "--model", model, "--data", data)
    assert rc == 0, err
    assert out.splitlines()[2].split(" ")[:3] == ["New\u00a0York", "NNP", "B-LOC"]
