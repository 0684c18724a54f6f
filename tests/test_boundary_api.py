"""The Python API called the way a scikit-learn or PyTorch user calls it: files where data belongs, a string where a
list belongs, NaN, wrong dtypes, empty input, unknown words.  Every case is a clear exception naming what to pass,
never characters read as tokens, a consumed file, a silent wrong answer or a bare KeyError."""
import io

import pytest

from fastnn.data import Vocab

SENTS = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]]


# ---- a file (path or open file) where the data belongs -------------------------------------------------------------

def _vocab_build(data):
    Vocab.build(data)


def _normalize(data):
    from fastnn.embed import normalize_sentences
    normalize_sentences(data)


def _lm_prepare(data):
    from fastnn.recipes import lm
    lm.prepare(lm.config_for("ngram"), data)


def _pretrain(data):
    from fastnn.recipes.embed import pretrain
    pretrain("ranking", data, dim=4, epochs=1, quiet=True)


def _tagger_train(data):
    from fastnn.recipes import tagger
    tagger.train(tagger.from_preset(None), data, quiet=True)


def _ngram_fit(data):
    from fastnn.models.ngram import KneserNey
    vocab = Vocab.build(SENTS)
    KneserNey(2, words=vocab.words).fit(data, len(vocab), vocab.eos_id)


def _ngram_score(data):
    from fastnn.models.ngram import KneserNey
    vocab = Vocab.build(SENTS)
    KneserNey(2, words=vocab.words).fit(SENTS, len(vocab), vocab.eos_id).perplexity(data)


def _nplm_score(data):
    from fastnn.recipes.lm import build_model, config_for
    vocab = Vocab.build(SENTS)
    build_model(config_for("nplm", order=3, dim=4, hidden=5), len(vocab), words=vocab.words).perplexity(data)


ENTRY_POINTS = [_vocab_build, _normalize, _lm_prepare, _pretrain, _tagger_train, _ngram_fit, _ngram_score, _nplm_score]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the dog runs\nthe cat runs\n")
    return path


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("kind", ["str", "pathlib", "bytes", "missing", "file", "stringio"])
def test_file_given_as_data_names_the_reader(entry, kind, corpus):
    data = {"str": lambda: str(corpus), "pathlib": lambda: corpus, "bytes": lambda: str(corpus).encode(),
            "missing": lambda: "train.txt", "file": lambda: open(corpus), "stringio": lambda: io.StringIO("a b\n")}[kind]()
    try:
        with pytest.raises(TypeError, match=r"must be the data itself, not a file; got .*Read the file first: "
                                            r"fastnn\.(data|embed)\.read_"):
            entry(data)
        if hasattr(data, "read"):
            assert data.read(1) != ""            # refused before anything was read
    finally:
        if hasattr(data, "close"):
            data.close()


@pytest.mark.parametrize("text", ["the dog runs", "hello"])
def test_untokenised_text_still_asks_to_tokenise(text):
    # a string that is not a path keeps its own message (check_sentences'): tokenise it
    with pytest.raises(TypeError, match="Tokenise first"):
        Vocab.build(text)
