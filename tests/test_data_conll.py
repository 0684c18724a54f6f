import numpy as np
import pytest

from fastnn.data import conll as C
from fastnn.data import features as F
from fastnn.data.tags import chunks
from tests.conftest import data_path

SAMPLE = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
BRUSSELS NNP I-NP I-LOC
1996-08-22 CD I-NP O
"""


@pytest.fixture
def sample(tmp_path):
    p = tmp_path / "eng.sample"
    p.write_text(SAMPLE, encoding="utf-8")
    return p


def test_read_conll_all_and_selected_columns(sample):
    s = C.read_conll(sample)
    assert [len(x) for x in s] == [3, 2, 2]                       # DOCSTART without a blank line still separates
    assert s[0][0] == ("EU", "NNP", "I-NP", "I-ORG")
    s = C.read_conll(sample, columns=["word", 3])
    assert s[2] == [("BRUSSELS", "I-LOC"), ("1996-08-22", "O")]
    assert C.column(s, 1)[1] == ["I-PER", "I-PER"]
    assert C.read_conll(sample, columns="ner")[0] == [("I-ORG",), ("O",), ("I-MISC",)]


def test_read_conll_errors(tmp_path, sample):
    bad = tmp_path / "bad.txt"
    bad.write_text("a B C\nb B C\n\nc B\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt, line 4: must have 3 columns like line 1; got 2"):
        C.read_conll(bad)
    with pytest.raises(ValueError, match="has 4 columns"):
        C.read_conll(sample, columns=[5])
    with pytest.raises(ValueError, match="column name must be one of"):
        C.read_conll(sample, columns=["lemma"])
    assert len(C.read_conll(sample, task="conll2003")) == 3
    with pytest.raises(ValueError, match=r"line 3: a conll2000 file must have 3 columns \(word pos chunk\); got 4"):
        C.read_conll(sample, task="conll2000")
    with pytest.raises(ValueError, match="'task' must be"):
        C.read_conll(sample, task="conll2002")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        C.read_conll(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("-DOCSTART- -X- O O\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        C.read_conll(empty)


def test_write_conll_roundtrip(tmp_path, sample):
    s = C.read_conll(sample)
    pred = [["O"] * len(x) for x in s]
    out = tmp_path / "out.txt"
    C.write_conll(out, s, [C.column(s, "ner"), pred])
    back = C.read_conll(out)
    assert [r[:4] for x in back for r in x] == [r for x in s for r in x]
    assert back[0][0] == ("EU", "NNP", "I-NP", "I-ORG", "I-ORG", "O")
    assert out.read_text().endswith("O\n\n")
    with pytest.raises(ValueError, match="extra column 0"):
        C.write_conll(out, s, [pred[:1]])


def test_vocab_and_encoding(sample):
    s = C.read_conll(sample)
    v = C.word_vocab(s, extra_words=["zebra", "eu"])
    assert v.words[:2] == ["<pad>", "<unk>"] and v.pad_id == 0 and v.unk_id == 1
    assert "0000-00-00" in v and "EU" not in v and v.words[-1] == "zebra" and v.counts[-1] == 0
    with pytest.raises(ValueError, match="'min_count' 2 leaves no word"):   # every word occurs once: was specials only
        C.word_vocab(s, min_count=2)
    ids = C.encode_words([[("Unseen",), ("Peter",)]], v)
    assert ids[0].tolist() == [1, v.index("peter")]
    tv = C.tag_vocab(s, "ner")
    assert tv.words[:2] == ["I-PER", "O"] and tv.unk_id is None      # ties by name
    t = C.encode_tags(s, tv, "ner")
    assert tv.decode(t[1]) == ["I-PER", "I-PER"]
    assert C.encode_caps(s)[0].tolist() == [F.CAPS_ALL, F.CAPS_LOWER, F.CAPS_FIRST]


def test_windows():
    w = [np.array([10, 11, 12]), np.array([], dtype=np.int64), np.array([20])]
    c = [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([4])]
    ww, cw, off = C.windows(w, c, window=5, pad_word_id=0, pad_caps_id=9)
    assert off.tolist() == [0, 3, 3, 4]
    assert ww.tolist() == [[0, 0, 10, 11, 12], [0, 10, 11, 12, 0], [10, 11, 12, 0, 0], [0, 0, 20, 0, 0]]
    assert cw[3].tolist() == [9, 9, 4, 9, 9] and ww.dtype == np.int64
    ww1, none, _ = C.windows(w, window=1)
    assert none is None and ww1.ravel().tolist() == [10, 11, 12, 20]
    assert C.windows([], window=3)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="odd"):
        C.windows(w, window=4)
    with pytest.raises(ValueError, match="caps_ids"):
        C.windows(w, c[:2])


@pytest.mark.data
def test_conll2003_files():
    train = C.read_conll(data_path("conll2003", "eng.train"), task="conll2003")
    assert (len(train), sum(map(len, train))) == (14041, 203621)
    testa = C.read_conll(data_path("conll2003", "eng.testa"), columns=["word", "ner"])
    assert (len(testa), sum(map(len, testa))) == (3250, 51362)
    n_chunks = sum(len(chunks(t, "iob1")) for t in C.column(train, "ner"))
    assert n_chunks == 23499                                       # entities in the CoNLL-2003 training set
    v = C.word_vocab(train)
    ww, cw, off = C.windows(C.encode_words(train, v), C.encode_caps(train), window=5, pad_word_id=v.pad_id)
    assert ww.shape == (203621, 5) and off[-1] == 203621 and (ww[:, 2] != v.unk_id).all()


@pytest.mark.data
def test_conll2000_file():
    train = C.read_conll(data_path("conll2000", "train.txt"), task="conll2000")
    assert (len(train), sum(map(len, train))) == (8936, 211727) and len(train[0][0]) == 3


@pytest.mark.parametrize("text, fmt", [
    (SAMPLE, "conll"),
    ("EU NNP\nrejects VBZ\n\n", "conll"),                       # blank line after token lines of 2 fields
    ("EU\nrejects\n\nGerman\n", "conll"),                       # words only
    ("-DOCSTART-\nEU rejects German lamb\n", "conll"),
    ("EU rejects German lamb .\n", "text"),                     # one line: a sentence
    ("EU rejects German lamb .\nPeter Blackburn\n", "text"),    # varying numbers of fields
    ("EU rejects\n\nPeter\n", "text"),
    ("-DOCSTART-\nEU rejects German lamb .\nPeter Blackburn\n", "text"),
    ("EU NNP\nrejects VBZ\n", "conll"),                         # one sentence, no separator: tags in column 2
    ("EU rejects\nPeter Blackburn\n", "text"),                  # ... words there: text
    # one malformed line among many CoNLL ones: CoNLL (whose reader names the line), not text tagging every column
    ("".join(f"w{i} NN B-NP\n" + ("\n" if i % 5 == 4 else "") for i in range(30)) + "bad line of five\n\n", "conll"),
    ("a b\nc d e\n\nf g\n", "text"),                           # 2 of 3 lines alike: text
    ("", "text"),
])
def test_detect_format(text, fmt):
    assert C.detect_format(text.splitlines(True)) == fmt


def test_read_document_keeps_every_line():
    items = list(C.read_document(SAMPLE.splitlines(True), "conll"))
    assert items[:2] == ["-DOCSTART- -X- -X- O", ""]
    assert items[2] == [("EU", "NNP", "I-NP", "I-ORG"), ("rejects", "VBZ", "I-VP", "O"), ("German", "JJ", "I-NP",
                                                                                          "I-MISC")]
    assert [x if isinstance(x, str) else len(x) for x in items] == ["-DOCSTART- -X- -X- O", "", 3, "", 2,
                                                                     "-DOCSTART- -X- -X- O", 2]
    assert sum(1 if isinstance(x, str) else len(x) for x in items) == len(SAMPLE.splitlines())
    text = list(C.read_document(["EU rejects  it\r\n", "\n", "  \n", "Peter\n"], "text"))
    assert text == [[("EU",), ("rejects",), ("it",)], "", "  ", [("Peter",)]]
    with pytest.raises(ValueError, match=r"x.txt, line 2: must have 2 columns like line 1; got 1"):
        list(C.read_document(["a B\n", "b\n"], "conll", "x.txt"))
    with pytest.raises(ValueError, match="'fmt' must be one of"):
        list(C.read_document([], "json"))


def test_as_rows():
    rows = [[("EU", "NNP"), ("rejects", "VBZ")]]
    assert C.as_rows(rows) is not rows and C.as_rows(rows) == rows
    assert C.as_rows([["EU", "rejects"], []]) == [[("EU",), ("rejects",)], []]
    with pytest.raises(TypeError, match="the gold tags are needed"):
        C.as_rows([["EU"]], "evaluate", tokens=False)
    with pytest.raises(TypeError, match="ambiguous"):
        C.as_rows(["EU", "rejects"])
    # (tokens, tags) pairs are column-major: two "rows" per sentence whose widths follow the sentence lengths
    pairs = [(["John", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"]), (["Mary", "left"], ["B-PER", "O"])]
    with pytest.raises(TypeError, match=r"every sentence has 2 rows.*list\(zip\(tokens, tags\)\)"):
        C.as_rows(pairs)
    with pytest.raises(TypeError, match="row 1 has 1 columns, row 0 has 2"):
        C.as_rows([[("EU", "NNP"), ("rejects",)]])
    two_sources = [[("Oslo", "NNP", "I-NP")], [("EU", "NNP", "I-NP", "I-ORG"), ("rejects", "VBZ", "I-VP", "O")]]
    assert C.as_rows(two_sources) == two_sources       # widths may differ between sources
    zipped = [list(zip(*p)) for p in pairs]
    assert C.as_rows(zipped) == zipped


@pytest.mark.parametrize("text", ["-DOCSTART- -X- -X- O\n\n", "-DOCSTART-\n",
                                  "\n-DOCSTART- -X- O\n\n-DOCSTART- -X- O\n"])
def test_an_input_of_docstart_lines_only_is_conll_of_no_sentence(tmp_path, text):
    """A file of -DOCSTART- lines only was "text" to auto-detection, whose one sentence was "-DOCSTART- -X- -X- O":
    lm train/eval and embed train trained on (or scored) the marker as words, silently.  It is CoNLL of no sentence,
    which the reader refuses as empty; in text a -DOCSTART- line is no sentence either (as tagger predict reads
    it)."""
    from fastnn.data.conll import detect_format, read_words
    path = tmp_path / "d.txt"
    path.write_text(text)
    assert detect_format(text.splitlines(True)) == "conll"
    with pytest.raises(ValueError, match="is empty; it must contain at least one token line"):
        read_words(path)
    path.write_text("-DOCSTART-\nthe dog runs\n\n-DOCSTART- -X- O\na cat\n")
    assert read_words(path) == ([["the", "dog", "runs"], ["a", "cat"]], "text")
    assert read_words(path, "text")[0] == [["the", "dog", "runs"], ["a", "cat"]]


def test_write_conll_writes_tokens_as_words_and_refuses_what_it_would_misread(tmp_path):
    """A tokenised sentence ([["John", "runs"]]) was written a character per column ('J o h n'), one sentence's rows
    given flat as two sentences of their columns, and an extra column's sentence given as a string a character per
    token, all silently."""
    from fastnn.data.conll import write_conll
    out = tmp_path / "out.txt"
    write_conll(out, [["John", "runs"]], [[["B-PER", "O"]]])
    assert out.read_text() == "John B-PER\nruns O\n\n"
    with pytest.raises(TypeError, match=r"write_conll: 'sentences' must be a list of sentences, each a list of rows; "
                                        r"got a flat list of 2 row tuples"):
        write_conll(out, [("a", "B"), ("b", "C")])
    with pytest.raises(TypeError, match=r"write_conll: extra column 0: sentence 0 must be a list of tag strings; got "
                                        r"str 'XY'"):
        write_conll(out, [[("a", "B"), ("b", "C")]], [["XY"]])
    write_conll(out, (s for s in [[("a", "B"), ("b", "C")]]), [[("X", "Y")]])     # any iterables of sentences
    assert out.read_text() == "a B X\nb C Y\n\n"


def test_parse_conll_and_read_document_refuse_a_text_or_a_path_as_their_lines():
    """parse_conll('a B\\nb C\\n') read the text a character per line (four one-word sentences 'a', 'B', ...) and
    parse_conll('eng.testa') the path's characters as a sentence, silently."""
    from fastnn.data.conll import parse_conll, read_document
    with pytest.raises(TypeError, match=r"parse_conll: 'lines' must be an iterable of lines \(an open file, a list "
                                        r"of str\); got a str 'a B\\nb C\\n': text\? Pass text.splitlines\(\)"):
        parse_conll("a B\nb C\n")
    with pytest.raises(TypeError, match=r"got a str 'eng.testa': a path\? Read the file with read_conll\(path\)"):
        parse_conll("eng.testa")
    with pytest.raises(TypeError, match=r"read_document: 'lines' must be an iterable of lines"):
        list(read_document("a B\nb C\n", "conll"))
    assert parse_conll("a B\nb C\n".splitlines()) == [[("a", "B"), ("b", "C")]]


def test_column_helpers_refuse_sentences_that_are_not_rows():
    """word_vocab([['John', 'runs']]) built a vocabulary of first letters ('j', 'r'), and column / tag_vocab /
    encode_words / encode_caps / encode_tags read a tokenised sentence, or one sentence's rows given flat, a
    character per column, silently."""
    from fastnn.data import conll
    rows = [[("John", "NNP", "B-NP"), ("runs", "VBZ", "B-VP")]]
    vocab = conll.word_vocab(rows)
    calls = {"word_vocab": lambda s: conll.word_vocab(s), "tag_vocab": lambda s: conll.tag_vocab(s, 1),
             "column": lambda s: conll.column(s, 1), "encode_words": lambda s: conll.encode_words(s, vocab),
             "encode_caps": lambda s: conll.encode_caps(s), "encode_tags": lambda s: conll.encode_tags(s, vocab, 1)}
    for where, call in calls.items():
        with pytest.raises(TypeError, match=rf"{where}: sentence 0 must be a list of rows like read_conll's .*; got "
                                            rf"\['John', 'runs'\]\. Tokenised sentences are made rows by as_rows"):
            call([["John", "runs"]])
        with pytest.raises(TypeError, match=rf"{where}: sentence 0 .*; got \('John', 'NNP', 'B-NP'\)\. One "
                                            rf"sentence's rows given flat\? Pass \[rows\]"):
            call(rows[0])
    assert conll.column(iter(rows), 2) == [["B-NP", "B-VP"]] and vocab.words[2:] == ["john", "runs"]


def test_windows_takes_sentences_of_integer_ids():
    """Float ids were truncated into other words (1.7 -> 1), silently; one sentence's ids given flat failed as
    'numpy.int64 has no len()', and window=True was a window of 1."""
    from fastnn.data.conll import windows
    with pytest.raises(TypeError, match=r"windows: 'word_ids' sentence 0 must be a 1-d array of integer ids; got "
                                        r"array\(\[1.7, 3. \]\) \(1-d, dtype float64\)"):
        windows([np.array([1.7, 3.0])], window=3)
    with pytest.raises(TypeError, match=r"'word_ids' must be a list of sentences, .*; got one 1-d array .*: for one "
                                        r"sentence pass \[ids\]"):
        windows(np.array([2, 3, 4]), window=3)
    with pytest.raises(TypeError, match=r"'caps_ids' sentence 1 must be a 1-d array of integer ids"):
        windows([[2], [3]], [[1], ["a"]], window=3)
    with pytest.raises(ValueError, match="'window' must be an odd int >= 1; got True"):
        windows([[2, 3]], window=True)
    w, _, offsets = windows([[2, 3], [], np.array([4], dtype=np.int32)], window=3)
    assert w.tolist() == [[0, 2, 3], [2, 3, 0], [0, 4, 0]] and offsets.tolist() == [0, 2, 2, 3]
