"""fastnn.embed: reading unlabeled text (plain or CoNLL), the tagger's normalisation, pre-training drivers for the
three objectives, resume, vectors files and nearest neighbours."""
import numpy as np
import pytest

from fastnn import embed
from fastnn.data.features import normalize, normalize_word
from fastnn.data.vectors import init_pretrained, load_pretrained, read_vectors, write_vectors
from fastnn.recipes import embed as recipe
from fastnn.recipes import tagger as tagger_recipe
from tests.conftest import write_lines


def _text(path, lines):
    return write_lines(path, lines)


CONLL = ["-DOCSTART- -X- -X- O", "", "EU NNP I-NP I-ORG", "rejects VBZ I-VP O", "German JJ I-NP I-MISC", "",
         "Peter NNP I-NP I-PER", "Blackburn NNP I-NP I-PER", ""]
CONLL2000 = ["Confidence NN B-NP", "in IN B-PP", "the DT B-NP", "pound NN I-NP", "", "Chancellor NNP O",
             "of IN B-PP", "1996 CD B-NP", ""]


def test_detect_format_and_read_corpus(tmp_path):
    a = _text(tmp_path / "a.txt", ["The cat sat .", "", "It ran in 1996 ."])
    b = _text(tmp_path / "b.conll", CONLL)
    c = _text(tmp_path / "c.txt", CONLL2000)
    d = _text(tmp_path / "d.txt", ["one two", "", "three four", "five six"])   # 2 tokens a line, but no blank
    assert [embed.detect_format(p) for p in (a, b, c)] == ["text", "conll", "conll"]
    assert embed.detect_format(_text(tmp_path / "e.txt", ["one two", "three four five"])) == "text"
    report = []
    sents = embed.read_corpus([a, b, c], report=report)
    assert sents == [["The", "cat", "sat", "."], ["It", "ran", "in", "1996", "."], ["EU", "rejects", "German"],
                     ["Peter", "Blackburn"], ["Confidence", "in", "the", "pound"], ["Chancellor", "of", "1996"]]
    assert [r[1:] for r in report] == [("text", 2, 9), ("conll", 2, 5), ("conll", 2, 7)]
    assert embed.read_corpus([d], "text")[0] == ["one", "two"]
    # a forced format is obeyed (the columns are read as words); a -DOCSTART- line is a document marker in text too,
    # as tagger predict reads it, not a sentence
    assert embed.read_corpus([b], "text")[0] == ["EU", "NNP", "I-NP", "I-ORG"]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        embed.read_corpus([str(tmp_path / "missing.txt")])
    with pytest.raises(ValueError, match="holds no token"):
        embed.read_corpus([_text(tmp_path / "empty.txt", ["", "  "])])
    with pytest.raises(ValueError, match="'text_format' must be one of"):
        embed.read_corpus([a], "csv")


def test_a_conll_file_with_a_malformed_line_is_named_not_read_as_text(tmp_path):
    """One token line with a column missing made the whole file "text": every tag silently became a word."""
    lines = (CONLL2000[:4] + [""]) * 30
    lines[41] = "pound NN"
    path = _text(tmp_path / "bad.conll", lines)
    assert embed.detect_format(path) == "conll"
    with pytest.raises(ValueError, match=r"bad\.conll, line 42: must have 3 columns like line 1; got 2: 'pound NN'"):
        embed.read_corpus([path])


def test_normalisation_is_the_taggers():
    sents = [["France", "1,996", "EU-based", "McDonald's"]]
    assert embed.normalize_sentences(sents) == [[normalize_word(w) for w in sents[0]]]
    assert embed.normalize_sentences(sents)[0] == [normalize(w) for w in sents[0]] == \
        ["france", "0,000", "eu-based", "mcdonald's"]


def test_split_valid_is_seeded_and_disjoint():
    sents = [[str(i)] for i in range(100)]
    tr, va = embed.split_valid(sents, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90 and sorted(tr + va) == sorted(sents)
    assert embed.split_valid(sents, 0.1, seed=3) == (tr, va)
    assert embed.split_valid(sents, 0, seed=3) == (sents, [])
    assert len(embed.split_valid(sents[:3], 0.01, seed=0)[1]) == 1


def _corpus(rng, n=400):
    det, nouns, verbs = ["The", "a"], ["dog", "Cat", "car", "idea"], ["sees", "likes", "wants"]
    return [[str(rng.choice(det)), str(rng.choice(nouns)), str(rng.choice(verbs)), str(rng.choice(det)),
             str(rng.choice(nouns)), str(rng.integers(1, 99))] for _ in range(n)]


TINY = {"ranking": dict(window=3, hidden=8, batch_size=32, epochs=2),
        "nplm": dict(order=3, hidden=8, batch_size=32, epochs=2),
        "rnn": dict(hidden=8, batch_size=4, bptt_block=5, classes=3, epochs=2)}


@pytest.mark.parametrize("objective", recipe.OBJECTIVES)
def test_pretrain_every_objective_exports_every_vocabulary_word(objective, rng):
    sents = _corpus(rng)
    res = recipe.pretrain(objective, sents, dim=6, min_count=2, valid_fraction=0.05, seed=0, quiet=True,
                         **TINY[objective])
    assert len(res.words) == len(set(res.words)) == res.vectors.shape[0] and res.vectors.shape[1] == 6
    # normalised like the tagger: lowercase, digits -> 0; specials of the model
    assert "cat" in res.words and "Cat" not in res.words and "00" in res.words and "0" in res.words
    assert "<unk>" in res.words and ("<pad>" in res.words) == (objective == "ranking")
    assert len(res.history) == 2 and all(h["valid"] is not None for h in res.history)
    assert res.epoch_examples > 0 and res.train_tokens == sum(map(len, sents)) - sum(
        len(s) for s in embed.split_valid(embed.normalize_sentences(sents), 0.05, 0)[1])
    words, vecs = embed.model_vectors(res.model)
    assert words == res.words
    np.testing.assert_array_equal(vecs, res.vectors)


def test_pretraining_improves_the_held_out_ranking_loss(rng):
    # seed 0 sat on the starting plateau (every score equal, loss ln 2) for all 6 epochs in a portable build (no
    # -march=native, so no FMA): when training leaves it depends on rounding; seed 2 leaves it in both builds
    res = recipe.pretrain("ranking", _corpus(rng, 800), dim=8, window=3, hidden=16, batch_size=32, epochs=6,
                         lr=0.1, valid_fraction=0.1, seed=2, quiet=True)
    valid = [h["valid"] for h in res.history]
    assert valid[-1] < 0.7 * valid[0]


def test_min_count_and_unknown_options(rng):
    sents = [["a", "b"], ["a", "c"], ["a", "b"]]
    res = recipe.pretrain("ranking", sents, dim=2, window=1, hidden=2, min_count=2, epochs=1, valid_fraction=0,
                         quiet=True)
    assert res.words == ["<pad>", "<unk>", "a", "b"]
    # one rule for every recipe's options: the Config's TypeError, with the closest field when there is one
    with pytest.raises(TypeError, match=r"NPLMEmbedConfig: 'window' is not a field\. The fields are dim, hidden"):
        recipe.pretrain("nplm", sents, window=3)
    with pytest.raises(TypeError, match=r"RankingConfig: 'hiden' is not a field; did you mean 'hidden'\?"):
        recipe.pretrain("ranking", sents, hiden=3)
    with pytest.raises(TypeError, match=r"RNNEmbedConfig: 'epoch' is not a field; did you mean 'epochs'\?"):
        recipe.config_for("rnn", recipe.RNNEmbedConfig(), epoch=3)
    with pytest.raises(ValueError, match="'objective' must be one of"):
        recipe.pretrain("glove", sents)
    # no text was "no training sentence is left after holding out 0.01 of 0", or NegativeSampler's 'counts'
    for empty in ([], [[], []]):
        with pytest.raises(ValueError, match="'sentences' must hold at least one token; got"):
            recipe.pretrain("ranking", empty, quiet=True)
    # another objective's Config was an AttributeError ('RankingConfig' object has no attribute 'order')
    with pytest.raises(TypeError, match="'config' must be a NPLMEmbedConfig for objective 'nplm'; got RankingConfig"):
        recipe.pretrain("nplm", sents, config=recipe.RankingConfig(epochs=1))
    with pytest.raises(ValueError, match="'min_count' 4 leaves no word"):      # was: vectors of <pad> and <unk>
        recipe.pretrain("ranking", sents, min_count=4, quiet=True)


def test_resume_continues_to_the_same_vectors(tmp_path, rng):
    sents = _corpus(rng, 200)
    kw = dict(dim=4, valid_fraction=0.05, seed=1, quiet=True, **{**TINY["ranking"], "epochs": 3})
    full = recipe.pretrain("ranking", sents, **kw)
    ck = str(tmp_path / "r.ckpt")
    recipe.pretrain("ranking", sents, checkpoint=ck, **{**kw, "epochs": 1})
    resumed = recipe.pretrain("ranking", sents, checkpoint=ck, resume=True, **kw)
    np.testing.assert_array_equal(resumed.vectors, full.vectors)
    with pytest.raises(ValueError, match="another vocabulary"):
        recipe.pretrain("ranking", sents + [["zebra", "zebra"]] * 3, checkpoint=ck, resume=True, **kw)
    with pytest.raises(ValueError, match="not a fastnn.models.nplm:NPLM"):
        recipe.pretrain("nplm", sents, checkpoint=ck, resume=True, dim=4, quiet=True, **TINY["nplm"])


def test_vectors_file_round_trip_and_tagger_lookup(tmp_path, rng):
    sents = _corpus(rng)
    res = recipe.pretrain("ranking", sents, dim=5, valid_fraction=0, quiet=True, **TINY["ranking"])
    path = tmp_path / "v.txt"
    write_vectors(path, res.words, res.vectors)
    words, vecs = read_vectors(path)
    assert words == res.words
    np.testing.assert_array_equal(vecs, res.vectors)
    # the tagger finds a vector for every word of the same text, whatever its case or digits
    conll = [[(w, "X") for w in s] for s in sents]
    tagger = tagger_recipe.build(tagger_recipe.TaggerConfig(tasks={"t": 1}, embed_dim=5, hidden=4), conll)
    pw, pv = load_pretrained(path)
    assert init_pretrained(tagger.embed.W.value, tagger.vocab, pw, pv) == len(tagger.vocab)   # <pad>, <unk>, all


def test_scale_vectors():
    v = np.arange(12, dtype=np.float32).reshape(4, 3)
    s = embed.scale_vectors(v, 0.1)
    assert s.dtype == np.float32 and s.std() == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_allclose(s / s[1, 0], v / v[1, 0], rtol=1e-6)       # one factor for all


def test_nearest_neighbors_exact_cosine_order():
    words = ["a", "b", "c", "d", "zero", "france"]
    vecs = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0.2], [0, 0], [1, 1]], dtype=np.float32)
    nb = embed.nearest_neighbors(words, vecs, ["a", "France"], k=5)
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)  # noqa: E731
    a = [("b", cos(vecs[0], vecs[1])), ("france", cos(vecs[0], vecs[5])), ("c", 0.0), ("zero", 0.0),
         ("d", cos(vecs[0], vecs[3]))]
    assert [w for w, _ in nb["a"]] == [w for w, _ in a]                  # ties (0.0) in vocabulary order
    np.testing.assert_allclose([s for _, s in nb["a"]], [s for _, s in a], rtol=1e-6, atol=1e-7)
    assert [w for w, _ in nb["France"]][:3] == ["b", "a", "c"]            # looked up as "france"; itself excluded
    assert len(embed.nearest_neighbors(words, vecs, ["c"], k=50)["c"]) == 5
    with pytest.raises(KeyError, match="xbox"):
        embed.nearest_neighbors(words, vecs, ["xbox"])


def test_model_vectors_of_an_lstm_lm():
    """model_vectors read the RNN LM's input vectors but called an LSTMLM's (the same table, emb) none at all."""
    from fastnn.embed import model_vectors
    from fastnn.models.lstmlm import LSTMLM

    lm = LSTMLM(4, hidden=3, embed=2, classes=0, forget_bias=1.0, dropout=0.0, clip=0.0, layers=1, init_scale=0.1,
                words=["<unk>", "</s>", "a", "b"])
    words, vecs = model_vectors(lm)
    assert words == ["<unk>", "</s>", "a", "b"]
    np.testing.assert_array_equal(vecs, lm.emb.W.value)


def test_nearest_neighbors_never_lists_the_vocabulary_markers():
    """A tagger's or LM's table has rows for <pad> and <unk>, which stand for no word: `embed neighbors` listed them
    among a word's neighbours.  They can still be queried."""
    words = ["<pad>", "<unk>", "a", "b", "c"]
    vecs = np.array([[1, 0.01], [1, 0.02], [1, 0], [0.5, 0.5], [0, 1]], dtype=np.float32)
    nb = embed.nearest_neighbors(words, vecs, ["a", "<unk>"], k=10)
    assert [w for w, _ in nb["a"]] == ["b", "c"]
    assert [w for w, _ in nb["<unk>"]] == ["a", "b", "c"]
