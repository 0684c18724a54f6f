"""Chunk columns written another way than fastnn reads them ("0" for "O", lower-case prefixes, BILOU) are a clear
error, not plain tags trained and scored by token accuracy."""
import pytest

from fastnn.data.tags import detect_scheme
from tests.conftest import run_cli, write_lines


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
