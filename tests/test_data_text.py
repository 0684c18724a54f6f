import numpy as np
import pytest

from fastnn.data import Vocab, count_oov, lm_stream, read_sentences, read_sentences_many
from fastnn.data.text import atomic_write_text, write_sentences


def test_read_sentences(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("The cat  sat\n\n   \nA dog\tran .\n", encoding="utf-8")
    assert read_sentences(p) == [["The", "cat", "sat"], ["A", "dog", "ran", "."]]
    assert read_sentences(str(p), lower=True)[0] == ["the", "cat", "sat"]
    q = tmp_path / "b.txt"
    q.write_text("x y", encoding="utf-8")                         # no final newline
    assert read_sentences_many([p, q]) == read_sentences(p) + [["x", "y"]]


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_sentences(tmp_path / "nope.txt")
    e = tmp_path / "e.txt"
    e.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="e.txt is empty"):
        read_sentences(e)
    b = tmp_path / "bin.txt"
    b.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(ValueError, match="UTF-8"):
        read_sentences(b)


def test_lm_stream_and_oov():
    v = Vocab(["<unk>", "</s>", "a", "b"])
    s = [["a", "b", "z"], ["b"]]
    ids = lm_stream(s, v)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 3, 0, 1, 3, 1]
    assert count_oov(s, v) == 1
    assert lm_stream([], v).tolist() == []
    with pytest.raises(ValueError, match="'</s>'"):
        lm_stream(s, Vocab(["<unk>", "a"]))


def test_write_sentences_atomic(tmp_path):
    p = tmp_path / "out.txt"
    write_sentences(p, [["a", "b"], ["c"]])
    assert p.read_text(encoding="utf-8") == "a b\nc\n"
    atomic_write_text(p, "new\n")
    assert p.read_text() == "new\n" and [f.name for f in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("where, call", [
    ("Vocab.build", lambda s: Vocab.build(s)),
    ("lm_stream", lambda s: lm_stream(s, Vocab.build([["a"]]))),
    ("count_oov", lambda s: count_oov(s, Vocab.build([["a"]]))),
])
def test_untokenised_text_is_refused_not_read_as_characters(where, call):
    # a list of lines (or one string) would otherwise become a vocabulary of letters
    with pytest.raises(TypeError, match=rf"{where}: sentence 0 must be a list of token strings.*line.split\(\)"):
        call(["the cat sat", "a dog ran"])
    with pytest.raises(TypeError, match=rf"{where}: 'sentences' must be a list of tokenised sentences"):
        call("the cat sat")
    with pytest.raises(TypeError, match=rf"{where}: sentence 1, token 0 must be a string; got int"):
        call([["a"], [3]])
    call((["a", "b"], ("c",)))                                   # tuples are token lists too


def test_recipes_refuse_untokenised_text():
    from fastnn.embed import normalize_sentences
    from fastnn.recipes import lm
    with pytest.raises(TypeError, match="prepare: 'train': sentence 0 must be a list of token strings"):
        lm.prepare(lm.RNNConfig(), ["the cat sat"] * 3)
    with pytest.raises(TypeError, match="normalize_sentences: sentence 0"):
        normalize_sentences(["the cat sat"])


def test_a_byte_order_mark_is_not_read_into_the_first_word(tmp_path):
    """Some Windows editors start UTF-8 files with a BOM; it must not become part of the first token."""
    from fastnn.data import read_conll
    for name, text, read in (("t.txt", "The dog\nruns .\n", read_sentences),
                             ("c.conll", "The DT B-NP\ndog NN I-NP\n\n", read_conll)):
        plain, bom = tmp_path / name, tmp_path / f"bom-{name}"
        plain.write_text(text, encoding="utf-8")
        bom.write_text(text, encoding="utf-8-sig")
        assert bom.read_bytes()[:3] == b"\xef\xbb\xbf"
        assert read(str(bom)) == read(str(plain))


def test_gzip_files_are_read_as_their_text_by_every_reader(tmp_path):
    """Corpora and vectors often come gzipped; found by the magic bytes (any name), a damaged file is a ValueError
    naming it (was gzip's EOFError as a traceback)."""
    import gzip

    from fastnn.data import read_conll
    from fastnn.data.vectors import read_vectors
    for name, text, read in (("t.txt", "The dog\nruns .\n", read_sentences),
                             ("c.conll", "The DT B-NP\ndog NN I-NP\n\n", read_conll),
                             ("v.txt", "the 0.5 1\ndog 2 3\n", read_vectors)):
        plain, packed = tmp_path / name, tmp_path / f"{name}.gz"
        plain.write_text(text, encoding="utf-8")
        packed.write_bytes(gzip.compress(text.encode("utf-8")))
        assert repr(read(packed)) == repr(read(plain))
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(packed.read_bytes()[:-12])
        with pytest.raises(ValueError, match=f"cut-{name} is a damaged or truncated gzip file"):
            read(cut)


def test_text_that_is_not_utf8_names_the_file_and_line_in_every_reader(tmp_path):
    """read_conll (and compare-optimizers' reader, embed's format detection) let the codec's own
    UnicodeDecodeError through, naming neither file nor line; open_text's reader names both, gzip or not."""
    import gzip

    from fastnn.data import read_conll
    from fastnn.data.vectors import read_vectors
    for name, good, bad, read in (("t.txt", b"The dog\n", b"caf\xe9 au lait\n", read_sentences),
                                  ("c.conll", b"The DT B-NP\n", b"caf\xe9 NN I-NP\n", read_conll),
                                  ("v.txt", b"the 0.5 1\n", b"caf\xe9 2 3\n", read_vectors)):
        plain, packed = tmp_path / name, tmp_path / f"{name}.gz"
        plain.write_bytes(good * 3000 + bad)                   # past the first decoded chunk
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        for p in (plain, packed):
            with pytest.raises(ValueError, match=rf"{p.name} must be UTF-8 text; got .* in line 3001 "):
                read(p)
    binary = tmp_path / "m.npz"
    np.savez(binary, a=np.arange(1000.0))
    with pytest.raises(ValueError, match=r"m.npz must be UTF-8 text; .* It looks like a binary file"):
        read_sentences(binary)
    with pytest.raises(ValueError, match=r"t.txt must be UTF-8 text; .* iconv -f ISO-8859-1 -t UTF-8 "):
        read_sentences(tmp_path / "t.txt")


def test_a_set_is_refused_where_order_is_the_text():
    """A set of ids or of sentences was read in its iteration order, which for strings changes from one process to
    the next: a stream scored, or a corpus trained, as another text in every run, silently."""
    import pytest

    from fastnn.data import Vocab, lm_stream
    from fastnn.models.ngram import KneserNey
    from fastnn.recipes import lm as recipe

    sents = [["the", "dog", "runs"], ["a", "cat", "runs"]] * 3
    vocab = Vocab.build(sents)
    model = KneserNey(2, words=vocab.words).fit(lm_stream(sents, vocab), len(vocab), vocab.eos_id)
    with pytest.raises(TypeError, match=r"KneserNey.token_logprobs: 'data' must be a sequence in text order .* got a "
                                        r"set, whose order is arbitrary"):
        model.token_logprobs({2, 3, 4})
    nplm = recipe.build_model(recipe.NPLMConfig(hidden=4, dim=3, order=3), len(vocab), eos_id=vocab.eos_id,
                              words=vocab.words)
    with pytest.raises(TypeError, match=r"NPLM.token_logprobs: 'stream' must be a sequence in text order"):
        nplm.token_logprobs(frozenset({("the", "dog"), ("a", "cat")}))
    with pytest.raises(TypeError, match=r"lm_stream: 'sentences' must be a sequence in text order"):
        lm_stream({("the", "dog"), ("a", "cat")}, vocab)
    with pytest.raises(TypeError, match=r"prepare: 'train': 'sentences' must be a sequence in text order"):
        recipe.prepare(recipe.NGramConfig(min_count=1), set(map(tuple, sents)))
    assert model.token_logprobs([2, 3, 4]).shape == (3,)                # a list, a generator: as before
    assert model.token_logprobs(x for x in [2, 3, 4]).shape == (3,)
