import os
import zipfile

import pytest

from fastnn.data.brown import EXPECTED, brown, brown_splits, sha256_file
from fastnn.data.text import write_sentences
from tests.conftest import data_path

# Three tiny files in NLTK's layout: leading tab, word/tag items, blank lines between sentences.
FILES = {
    "ca01": "\n\n\tThe/at Fulton/np-tl said/vbd ./.\n\n\n\tIt/pps said/vbd ``/`` 1/2/cd ''/'' ./.\n\n",
    "ca02": "\n\tA/at b/nn c/nn\n\t  \n\tnoslash d/nn\n",
    "cb01": "\tX/np Y/np\n\n\tZ/np ./.\n",
}
WORDS = [["The", "Fulton", "said", "."], ["It", "said", "``", "1/2", "''", "."], ["A", "b", "c"],
         ["noslash", "d"], ["X", "Y"], ["Z", "."]]


def make_folder(root):
    d = root / "corpora" / "brown"
    d.mkdir(parents=True)
    for name in ["cb01", "ca02", "ca01"]:                          # created out of order on purpose
        (d / name).write_text(FILES[name], encoding="ascii")
    (d / "README").write_text("not/a corpus/file\n")
    (d / "cats.txt").write_text("ca01 news\n")
    return d


def test_split_algorithm_on_folder(tmp_path):
    d = make_folder(tmp_path)
    # word counts before each sentence: 0, 4, 10, 13, 15, 17 -> train n < 10, valid n < 15, test after
    s = brown(tmp_path, thresholds=(10, 15), n_files=None)
    assert s["train"] == WORDS[:2] and s["valid"] == WORDS[2:4] and s["test"] == WORDS[4:]
    assert brown(d, thresholds=(1, 2), n_files=3)["train"] == WORDS[:1]
    with pytest.raises(ValueError, match="must hold 500 corpus files"):
        brown(d)


def test_zip_and_out_dir_roundtrip(tmp_path):
    z = tmp_path / "brown.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("brown/", "")
        for name, text in FILES.items():
            zf.writestr(f"brown/{name}", text)
        zf.writestr("brown/CONTENTS", "x")
    out = tmp_path / "brown"
    s = brown(z, out, thresholds=(10, 15), n_files=None)
    assert s == brown(make_folder(tmp_path / "f"), thresholds=(10, 15), n_files=None)
    assert (out / "brown.train.txt").read_bytes() == b"The Fulton said .\nIt said `` 1/2 '' .\n"
    assert brown_splits(out) == s and brown_splits(tmp_path) == s   # the folder itself or its brown/ child


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        brown(tmp_path / "nowhere")
    f = tmp_path / "plain.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a zip"):
        brown(f)
    with pytest.raises(ValueError, match="got 0"):
        brown(tmp_path, n_files=None)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "ca01").write_text("x/y\n")
    with pytest.raises(ValueError, match="one copy of each corpus file; got ca01"):
        brown(tmp_path, n_files=None)
    with pytest.raises(FileNotFoundError, match="brown.train.txt"):
        brown_splits(tmp_path)


@pytest.mark.data
def test_shipped_files_match_readme(tmp_path):
    """Counts and sha256 of the shipped split, and that our writer reproduces the bytes exactly."""
    loaded = brown_splits(os.path.dirname(data_path("brown", "brown.train.txt")))
    for split, (n_sent, n_words, sha) in EXPECTED.items():
        path = data_path("brown", f"brown.{split}.txt")
        sents = loaded[split]
        assert (len(sents), sum(map(len, sents))) == (n_sent, n_words)
        assert sha256_file(path).startswith(sha)
        write_sentences(tmp_path / "x.txt", sents)
        assert sha256_file(tmp_path / "x.txt") == sha256_file(path)
    # the thresholds: train ends with the sentence that crosses 800,000 words, valid the one crossing 1,000,000
    assert sum(map(len, loaded["train"][:-1])) < 800_000 <= sum(map(len, loaded["train"]))
    assert 1_000_000 - 800_001 <= sum(map(len, loaded["valid"])) and \
        800_001 + sum(map(len, loaded["valid"][:-1])) < 1_000_000
