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


def test_tagger_predict_writes_utf8_whatever_the_locale(capsys, tmp_path):
    """Its input is read as UTF-8 and --out written in it; stdout was written in the locale's encoding: latin-1 wrote
    'é' as one byte and failed at '€'."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    data = tmp_path / "d.txt"
    data.write_text("José NNP B-PER\ncosts VBZ O\n€5 CD O\n\n" * 5, encoding="utf-8")
    model = tmp_path / "m.npz"
    assert run_cli(capsys, "tagger", "train", "--train", data, "--task", "ner=2", "--out", model, "--epochs", "1",
                   "--quiet")[0] == 0
    p = subprocess.run([sys.executable, "-m", "fastnn", "tagger", "predict", "--model", str(model), "--data",
                        str(data)], capture_output=True, env={**os.environ, "PYTHONPATH": REPO,
                                                              "PYTHONIOENCODING": "latin-1"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode("utf-8").splitlines()
    assert lines[0].startswith("José NNP B-PER ") and lines[2].startswith("€5 CD O ")


def test_one_sentence_conll_is_detected():
    """A CoNLL file of one sentence has no blank line to separate sentences: it was read as text, each line's tags
    tagged as words."""
    one = ["John NNP I-NP I-PER\n", "visited VBD I-VP O\n", "Paris NNP I-NP I-LOC\n", ". . O O\n"]
    assert detect_format(one) == "conll"
    assert detect_format(["John NNP\n", "sleeps VBZ\n", "( -LRB-\n", "his PRP$\n"]) == "conll"
    assert detect_format(["the cat sat\n", "a dog ran\n"]) == "text"            # words, not tags
    assert detect_format(["John Smith\n", "Mary Jones\n"]) == "text"
    assert detect_format(["John NNP\n", "visited VBD O\n"]) == "text"           # widths differ


def test_other_encodings_get_the_iconv_command(tmp_path, monkeypatch):
    """UTF-16 was called a binary file (with a byte-order mark) or read as valid UTF-8 full of NULs (without one:
    'J\\0o\\0h\\0n'); every message suggested latin1, also for Windows' CP1252 quotes."""
    import io
    import sys

    import pytest
    text = "“John” NNP B-PER\nvisited VBD O\n\n"
    cases = [("UTF-16", "utf-16"), ("UTF-16LE", "utf-16-le"), ("UTF-16BE", "utf-16-be"), ("UTF-32", "utf-32")]
    for name, codec in cases:
        p = tmp_path / f"{codec}.txt"
        p.write_bytes(text.encode(codec))
        with pytest.raises(ValueError, match=rf"got {name} text. Convert it first: iconv -f {name} -t UTF-8 "
                                             rf"\S*{codec}.txt > \S*{codec}.txt.utf8$"):
            read_conll(p)
    p = tmp_path / "cp.txt"
    p.write_bytes(text.encode("cp1252"))
    with pytest.raises(ValueError, match=r"If it is CP1252 text, convert it first: iconv -f CP1252 -t UTF-8 "):
        read_conll(p)
    p.write_bytes(text.replace("“", "é").replace("”", "").encode("latin-1"))
    with pytest.raises(ValueError, match=r"If it is ISO-8859-1 text, convert it first: iconv -f ISO-8859-1 "):
        read_conll(p)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-16"))))
    with pytest.raises(ValueError, match=r"stdin must be UTF-8 text; got UTF-16 text"):
        read_sentences("-")


CONLLU = ("# sent_id = 1\n# text = I don't.\n1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n"
          "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n"
          "3\tn't\tnot\tPART\tRB\t_\t2\tadvmod\t_\t_\n\n")


def test_conllu_is_explained_with_a_conversion(tmp_path):
    """CoNLL-U's comment lines made 'must have 4 columns like line 1' errors, or, without comments, its ID column was
    read as the words; predict's auto-detection read it as text and tagged every field."""
    import subprocess

    import pytest
    p = tmp_path / "u.conllu"
    p.write_text(CONLLU, encoding="utf-8")
    with pytest.raises(ValueError, match=r"u.conllu, line 2: looks like CoNLL-U .* awk -F'\\t' "):
        read_conll(p)
    bare = tmp_path / "bare.conllu"
    bare.write_text("".join(line + "\n" for line in CONLLU.splitlines() if not line.startswith("#")))
    with pytest.raises(ValueError, match="line 1: looks like CoNLL-U"):
        read_conll(bare)
    assert detect_format(CONLLU.splitlines(True)) == "conll"
    with pytest.raises(ValueError, match="looks like CoNLL-U"):
        list(read_document(CONLLU.splitlines(True), "conll"))
    from fastnn.data.conll import CONLLU_TO_CONLL
    out = subprocess.run(f"{CONLLU_TO_CONLL} {p}", shell=True, capture_output=True, text=True)
    if out.returncode == 0:                          # (where awk is installed) the suggested command converts it
        assert out.stdout == "I PRON PRP\ndo AUX VBP\nn't PART RB\n\n"


def test_writers_refuse_fields_that_would_not_read_back(tmp_path):
    """write_conll / write_sentences wrote 'New York' as two tokens (a column more), a tab or newline inside a tag,
    an empty tag (a column less) and an empty sentence (dropped by the reader), all silently."""
    import pytest

    from fastnn.data import write_conll
    from fastnn.data.text import write_sentences
    out = tmp_path / "w.txt"
    bad = [([[("New York", "NNP")]], None, r"sentence 0, token 0, field 0 .* got 'New York' \(has whitespace\)"),
           ([[("a", "B-X"), ("b", "")]], None, r"sentence 0, token 1, field 1 .* got '' \(empty\)"),
           ([[("a", "B-X")]], [[["O\n"]]], r"sentence 0, token 0, field 2 .* got 'O\\n'"),
           ([[("a", "B-X")], []], None, "sentence 1 must hold a token")]
    for sentences, extra, match in bad:
        with pytest.raises(ValueError, match="write_conll: " + match):
            write_conll(out, sentences, extra or ())
        assert not out.exists()
    with pytest.raises(TypeError, match=r"write_conll: sentence 0 must have one row per token, each with the same "
                                        r"columns; row 1 has 1 columns, row 0 has 2"):
        write_conll(out, [[("a", "B-X"), ("b",)]])
    assert not out.exists()
    for sentences, match in [([["a", "b\tc"]], r"sentence 0, field 1 .* 'b\\tc'"), ([["a"], []], "sentence 1"),
                             ([["a", ""]], "sentence 0, field 1")]:
        with pytest.raises(ValueError, match="write_sentences: " + match):
            write_sentences(out, sentences)
        assert not out.exists()
    write_conll(out, [[("New\u00a0York", "NNP")]], [[["B-LOC"]]])          # a no-break space is part of a token
    assert read_conll(out) == [[("New\u00a0York", "NNP", "B-LOC")]]
