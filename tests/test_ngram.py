import math

import numpy as np
import pytest

from fastnn import io
from fastnn.models import ngram
from fastnn.models.ngram import DeletedInterpolation, KneserNey
from tests.conftest import data_path

# Tiny corpus for hand computations: a=0, b=1, c=2, </s>=3.
A, B, C, EOS = 0, 1, 2, 3
TINY = [[A, B], [A, C], [B]]
D_FIXED = (0.5, 1.0, 1.5)


def markov_corpus(rng, n_sent, V, eos):
    """Random sentences of ids != eos: a Zipf-like unigram mixed with a sparse random bigram chain, so that counts-of-
    counts are realistic and bigram contexts carry information."""
    p = 1.0 / np.arange(1, V)
    p /= p.sum()
    words = np.array([w for w in range(V) if w != eos])
    follow = rng.choice(words, size=(V, 3))
    out = []
    for _ in range(n_sent):
        s = [int(rng.choice(words, p=p))]
        for _ in range(rng.integers(0, 12)):
            s.append(int(follow[s[-1], rng.integers(3)] if rng.random() < 0.6 else rng.choice(words, p=p)))
        out.append(s)
    return out


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    V, eos = 400, 1
    return V, eos, markov_corpus(rng, 800, V, eos), markov_corpus(rng, 200, V, eos)


def histories(train, V):
    s = train[3]
    return [[], [0], s[:1], s[:2], s[:3], [V - 1, V - 2, V - 3], [5, 1, 7], list(range(2, 2 + 6))]


# ---- Kneser-Ney -----------------------------------------------------------------------------------------------------


def test_kn_bigram_by_hand():
    lm = KneserNey(2, discounts=D_FIXED).fit(TINY, vocab_size=4, eos_id=EOS)
    # Continuation counts: a {<s>}=1, b {a,<s>}=2, c {a}=1, </s> {b,c}=2; total 6; D(1)=.5, D(2)=1; uniform mass 3/6.
    p1 = {A: 0.5 / 6 + 0.5 / 4, B: 1 / 6 + 0.5 / 4, C: 0.5 / 6 + 0.5 / 4, EOS: 1 / 6 + 0.5 / 4}
    # History c (only "c </s>", count 1): P(w|c) = [w = </s>] (1-.5)/1 + .5/1 * p1(w).
    expect = [0.5 * p1[w] + 0.5 * (w == EOS) for w in range(4)]
    assert lm.prob_vector([A, B, EOS, C]) == pytest.approx(expect, abs=1e-15)   # only the sentence after </s> counts
    # History a: c(a b)=c(a c)=1, denominator 2: P(b|a) = (1-.5)/2 + (.5+.5)/2 * p1(b) = 1/4 + 7/48 = 19/48.
    assert math.exp(lm.logprob(B, [A])) == pytest.approx(19 / 48, abs=1e-15)
    # History <s>: c(<s> a)=2, c(<s> b)=1: P(a|<s>) = (2-1)/3 + (1+.5)/3 * p1(a) = 1/3 + 5/48 = 7/16.
    assert math.exp(lm.logprob(A, [])) == pytest.approx(7 / 16, abs=1e-15)
    # A stream continues after </s> with a new sentence, so the history [b, </s>] is a sentence start again.
    assert math.exp(lm.logprob(A, [B, EOS])) == pytest.approx(7 / 16, abs=1e-15)


def test_kn_trigram_by_hand_bos_ngrams_keep_raw_counts():
    lm = KneserNey(3, discounts=D_FIXED).fit(TINY, vocab_size=4, eos_id=EOS)
    # At a sentence start only <s> is history; "<s> a" keeps its raw count 2 (not the continuation count 0).
    assert math.exp(lm.logprob(A, [])) == pytest.approx(7 / 16, abs=1e-15)
    # P(b|<s> a) = (1-.5)/2 + 1/2 * P2(b|a); P2(b|a) = 19/48 as in the bigram model (a b, a c: one left word each).
    assert math.exp(lm.logprob(B, [A])) == pytest.approx(1 / 4 + 19 / 96, abs=1e-15)


def test_estimate_discounts_by_hand():
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4, 7, 0])     # n1=4 n2=2 n3=1 n4=1 -> Y=1/2
    assert KneserNey.estimate_discounts(counts) == pytest.approx([1 - 2 * .5 * 2 / 4, 2 - 3 * .5 / 2, 3 - 4 * .5])
    assert KneserNey.estimate_discounts(np.array([1, 1, 2, 5])) is None   # n3 = 0


@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kn_normalised(corpus, order, bos):
    V, eos, train, _ = corpus
    lm = KneserNey(order, bos=bos).fit(train, vocab_size=V, eos_id=eos)
    for h in histories(train, V):
        p = lm.prob_vector(h)
        assert p.shape == (V,) and p.min() > 0
        assert abs(p.sum() - 1.0) < 1e-9, (h, p.sum())


@pytest.mark.parametrize("classes", ["history", "longest_seen"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_di_normalised(corpus, order, classes):
    V, eos, train, valid = corpus
    lm = DeletedInterpolation(order, classes=classes).fit(train, vocab_size=V, eos_id=eos, valid=valid)
    for h in histories(train, V):
        p = lm.prob_vector(h)
        assert p.min() > 0 and abs(p.sum() - 1.0) < 1e-9, (h, p.sum())


@pytest.mark.parametrize("model", ["kn", "di"])
@pytest.mark.parametrize("bos", [True, False])
def test_token_logprobs_match_single_queries(corpus, model, bos):
    V, eos, train, valid = corpus
    lm = (KneserNey(3, bos=bos).fit(train, V, eos) if model == "kn"
          else DeletedInterpolation(3, bos=bos).fit(train, V, eos, valid=valid))
    stream = np.concatenate([np.append(s, eos) for s in valid[:20]]).astype(np.int64)
    lp = lm.token_logprobs(stream)
    assert lp.shape == stream.shape
    for i in range(0, len(stream), 7):
        assert lp[i] == pytest.approx(lm.logprob(int(stream[i]), stream[:i]), abs=1e-12)
        assert lp[i] == pytest.approx(math.log(lm.prob_vector(stream[:i])[stream[i]]), abs=1e-12)
    # A list of sentences is the same data as the stream; score and perplexity agree with the per-token values.
    assert np.array_equal(lm.token_logprobs(valid[:20]), lp)
    total, n = lm.score(stream)
    assert n == len(stream) and total == pytest.approx(-lp.sum())
    assert lm.perplexity(stream) == pytest.approx(math.exp(-lp.mean()))


def test_kn_higher_order_fits_training_data_better(corpus):
    V, eos, train, _ = corpus
    ppl = [KneserNey(n).fit(train, V, eos).perplexity(train) for n in (1, 2, 3)]
    assert ppl[0] > ppl[1] > ppl[2]


def test_kn_fallback_discounts_warn_on_tiny_data():
    with pytest.warns(RuntimeWarning, match="cannot give modified Kneser-Ney discounts"):
        lm = KneserNey(2).fit(TINY, vocab_size=4, eos_id=EOS)
    assert np.allclose(lm.discounts[:, 1:], ngram.FALLBACK_DISCOUNTS)


# ---- deleted interpolation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", ["history", "longest_seen"])
def test_di_em_improves_validation_likelihood(corpus, classes):
    V, eos, train, valid = corpus
    lm = DeletedInterpolation(3, classes=classes).fit(train, V, eos, valid=valid)
    ll = lm.em_loglik
    assert len(ll) > 2 and np.all(np.diff(ll) >= -1e-9 * abs(ll[-1]))   # EM never decreases the likelihood
    assert ll[-1] > ll[0] + 1.0                                            # and beats the uniform start
    assert -lm.score(valid)[0] == pytest.approx(ll[-1], rel=1e-12)
    assert np.allclose(lm.weights.sum(axis=1), 1.0) and lm.weights.min() >= 0
    # Contexts of different frequency get different mixtures (the bigram weight grows with the count).
    used = np.flatnonzero(lm.class_counts >= 50)
    assert np.ptp(lm.weights[used, 2]) > 0.1


def test_di_requires_valid(corpus):
    V, eos, train, _ = corpus
    with pytest.raises(ValueError, match="'valid' must be held-out data"):
        DeletedInterpolation(3).fit(train, V, eos, valid=None)


# ---- storage --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["kn", "di"])
def test_save_load_round_trip(corpus, tmp_path, model):
    V, eos, train, valid = corpus
    lm = (KneserNey(3, bos=False).fit(train, V, eos) if model == "kn"
          else DeletedInterpolation(3, classes="longest_seen").fit(train, V, eos, valid=valid))
    path = tmp_path / "lm.npz"
    lm.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["lm.npz"]          # no temporary file left behind
    back = type(lm).load(path)
    assert repr(back) == repr(lm)
    assert np.array_equal(back.token_logprobs(valid), lm.token_logprobs(valid))
    assert np.array_equal(ngram.load(path).prob_vector([3, 4]), lm.prob_vector([3, 4]))
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def _rewrite(src, dst, edit):
    """Copy a fastnn model file with its members (and header) changed by edit(header, arrays)."""
    import json
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays.pop(io.HEADER)))
    edit(header, arrays)
    np.savez(dst, **arrays, **{io.HEADER: np.array(json.dumps(header))})


def test_saved_through_io(corpus, tmp_path):
    V, eos, train, valid = corpus
    lm = KneserNey(2, words=[f"w{i}" for i in range(V)]).fit(train, V, eos)
    path = tmp_path / "kn.npz"
    lm.save(path)
    back = io.load_model(path)                                  # the generic loader restores the tables
    assert isinstance(back, KneserNey) and back.words == lm.words
    assert np.array_equal(back.token_logprobs(valid), lm.token_logprobs(valid))
    with pytest.raises(ValueError, match="'words' must have vocab_size"):
        KneserNey(2, words=["a"]).fit(train, V, eos)
    _rewrite(path, tmp_path / "x.npz", lambda h, a: h["model_config"].update(words=["a"]))
    with pytest.raises(ValueError, match="'words' must have"):
        ngram.load(tmp_path / "x.npz")


def test_load_errors(corpus, tmp_path):
    V, eos, train, valid = corpus
    path = tmp_path / "kn.npz"
    KneserNey(2).fit(train, V, eos).save(path)
    with pytest.raises(ValueError, match="must hold a DeletedInterpolation"):
        DeletedInterpolation.load(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="must be a readable fastnn .npz file"):
        ngram.load(bad)
    with pytest.raises(FileNotFoundError):
        ngram.load(tmp_path / "missing.npz")
    _rewrite(path, bad, lambda h, a: h.update(version=99))
    with pytest.raises(ValueError, match="version 1"):
        ngram.load(bad)
    _rewrite(path, bad, lambda h, a: h.pop("buffers"))
    with pytest.raises(ValueError, match="buffers"):
        ngram.load(bad)
    _rewrite(path, bad, lambda h, a: (h["buffers"].pop("counts_2"), a.pop("buffers/counts_2")))
    with pytest.raises(ValueError, match="'counts_2'"):
        ngram.load(bad)
    _rewrite(path, bad, lambda h, a: a.update({"buffers/keys_2": a["buffers/keys_2"][::-1].copy()}))
    with pytest.raises(ValueError, match="strictly increasing"):
        ngram.load(bad)
    _rewrite(path, bad, lambda h, a: a.update({"buffers/counts_1": a["buffers/counts_1"][:-1]}))
    with pytest.raises(ValueError, match="must have length"):
        ngram.load(bad)
    _rewrite(path, bad, lambda h, a: h["buffers"].update(eos_id=V))
    with pytest.raises(ValueError, match="'eos_id' must be in"):
        ngram.load(bad)


# ---- bad input ------------------------------------------------------------------------------------------------------


def test_bad_inputs(corpus):
    V, eos, train, _ = corpus
    with pytest.raises(ValueError, match="'order' must be an integer >= 1"):
        KneserNey(0)
    with pytest.raises(TypeError, match="'order' must be an integer"):
        KneserNey(2.5)
    with pytest.raises(ValueError, match="'discounts' must satisfy"):
        KneserNey(2, discounts=(1.5, 1.0, 1.0))
    with pytest.raises(ValueError, match="'classes' must be"):
        DeletedInterpolation(3, classes="bogus")
    lm = KneserNey(2)
    with pytest.raises(ValueError, match="must be fitted first"):
        lm.perplexity([[1, 2]])
    with pytest.raises(IndexError, match=r"must hold ids in \[0, 400\); got 400 at position 1"):
        lm.fit([[2, 400]], V, eos)
    # (at fit time it said "using the vocabulary it was trained with")
    with pytest.raises(TypeError, match=r"has no vocabulary .* fastnn.data.lm_stream\(sentences, vocab\), vocab being "
                                        r"the Vocab of the model's training data, or make the model with words="):
        lm.fit([["the", "cat"]], V, eos)
    with pytest.raises(TypeError, match="integer word ids; got dtype float64"):
        lm.fit(np.array([2.0, 1.0]), V, eos)
    with pytest.raises(ValueError, match="must not contain eos_id=1"):
        lm.fit([[2, 1, 3]], V, eos)
    with pytest.raises(ValueError, match="must end with eos_id=1"):
        lm.fit(np.array([2, 3]), V, eos)
    with pytest.raises(ValueError, match="'eos_id' must be in"):
        lm.fit(train, V, V)
    with pytest.raises(ValueError, match="at least one sentence"):
        lm.fit([], V, eos)
    lm.fit(train, V, eos)
    with pytest.raises(IndexError, match="'word' must be in"):
        lm.logprob(V, [])
    with pytest.raises(IndexError, match="'history' must hold ids"):
        lm.prob_vector([-1])
    with pytest.raises(IndexError):
        lm.fit([[2, V]], V, eos)
    with pytest.raises(ValueError, match="must be fitted first"):      # a failed fit leaves no half-fitted model
        lm.prob_vector([])
    di = DeletedInterpolation(2)
    with pytest.raises(IndexError, match="'valid' must hold ids"):
        di.fit(train, V, eos, valid=np.array([V, eos]))
    with pytest.raises(ValueError, match="must be fitted first"):
        di.perplexity(train)


# ---- Brown (../shared/data) -----------------------------------------------------------------------------------------


@pytest.mark.data
def test_brown_kn_trigram_matches_kenlm():
    from fastnn.data import Vocab, lm_stream, read_sentences
    train = read_sentences(data_path("brown", "brown.train.txt"))
    test = read_sentences(data_path("brown", "brown.test.txt"))
    vocab = Vocab.build(train, min_count=4)
    assert len(vocab) == 14113 + 2
    lm = KneserNey(3).fit(lm_stream(train, vocab), len(vocab), vocab.eos_id)
    total, n = lm.score(lm_stream(test, vocab))
    assert n == 171297
    ppl = math.exp(total / n)
    assert abs(ppl / 147.7 - 1) < 0.03, ppl           # KenLM lmplz -o 3 on the same files: 147.7


@pytest.mark.filterwarnings("ignore:.*counts-of-counts:RuntimeWarning")     # (tiny data: fallback discounts)
def test_single_queries_take_words_as_token_logprobs_does():
    """prob_vector / logprob took ids only ("'history' must hold integer word ids") where token_logprobs and
    NPLM.predict of a model with its words read words; unknown words read as <unk>, a bare string is a TypeError."""
    words = ["<unk>", "</s>", "a", "b", "c"]
    lm = KneserNey(3, words=words).fit([[2, 3], [2, 4], [2, 3]], vocab_size=5, eos_id=1)
    assert lm.logprob("b", ["a"]) == lm.logprob(3, [2])
    np.testing.assert_array_equal(lm.prob_vector(["c", "a"]), lm.prob_vector([4, 2]))
    assert lm.logprob("zebra", ["a"]) == lm.logprob(0, [2])
    assert lm.logprob("b", ("a",)) == lm.logprob(3, [2])
    with pytest.raises(TypeError, match=r"pass 'a b'.split\(\)"):
        lm.prob_vector("a b")
    bare = KneserNey(2).fit([[2, 3]], vocab_size=5, eos_id=1)
    with pytest.raises(TypeError, match="no vocabulary"):
        bare.logprob("b", [2])
