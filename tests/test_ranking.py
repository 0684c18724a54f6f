"""The window-ranking language model (fastnn.models.ranking): gradients, hinge loss, windows, corruptions, training."""
import numpy as np
import pytest

from fastnn import io, optim
from fastnn.gradcheck import run_case
from fastnn.graph import RowGrad
from fastnn.models import ranking as R
from fastnn.train import Trainer


@pytest.mark.parametrize("name,build", R.gradcheck_cases())
def test_gradcheck_cases(name, build):
    assert run_case(build, seed=1).ok


def test_padded_stream_windows_stay_inside_sentences():
    padded, centres = R.padded_stream([np.array([5, 6, 7]), np.array([8])], window=3, pad_id=0)
    assert padded.tolist() == [0, 5, 6, 7, 0, 0, 8, 0]
    data = R.RankingBatches(padded, centres, window=3, batch_size=2, sampler=R.NegativeSampler(np.ones(9)))
    assert data.windows(np.arange(4)).tolist() == [[0, 5, 6], [5, 6, 7], [6, 7, 0], [0, 8, 0]]
    with pytest.raises(ValueError, match="odd"):
        R.padded_stream([[1, 2]], window=4)


def test_loss_is_the_mean_hinge_of_the_scores(rng):
    m = R.WindowRanker(10, window=3, dim=4, hidden=6, rng=0, dtype=np.float64, init_scale=0.1)
    w = rng.integers(0, 10, (7, 3))
    neg = rng.integers(1, 10, 7)
    corrupt = w.copy()
    corrupt[:, 1] = neg
    want = np.maximum(0, 1 - m.scores(w) + m.scores(corrupt)).mean()
    loss = m.loss((w, neg))
    assert float(loss.value) == pytest.approx(want, rel=1e-12)
    assert m.evaluate(w, neg)["hinge"] == pytest.approx(want, rel=1e-12)
    loss.backward()
    g = m.embed.W.grad
    assert isinstance(g, RowGrad) and set(g.rows.tolist()) <= set(w.ravel()) | set(neg)


def test_sampler_never_draws_pad_or_the_centre(rng):
    counts = np.array([0, 50, 1, 1000, 10, 5])
    for kind in R.NEGATIVES:
        s = R.NegativeSampler(counts, kind, pad_id=0)
        centre = rng.integers(1, 6, 20000)
        d = s.draw(centre, rng)
        assert d.min() >= 1 and d.max() <= 5 and not np.any(d == centre)
    # without a centre to avoid (centre = pad), the frequencies follow the distribution
    s = R.NegativeSampler(counts, "unigram", pad_id=0)
    d = s.draw(np.zeros(200000, dtype=np.int64), rng)
    p = counts[1:] ** 0.75 / (counts[1:] ** 0.75).sum()
    np.testing.assert_allclose(np.bincount(d, minlength=6)[1:] / len(d), p, atol=0.005)
    d = R.NegativeSampler(counts, "uniform").draw(np.zeros(100000, dtype=np.int64), rng)
    np.testing.assert_allclose(np.bincount(d, minlength=6)[1:] / len(d), 0.2, atol=0.006)


def test_batches_are_reproducible_from_the_epoch_rng():
    padded, centres = R.padded_stream([np.arange(2, 9), np.arange(3, 6)], window=5)
    data = R.RankingBatches(padded, centres, window=5, batch_size=4, sampler=R.NegativeSampler(np.ones(9)))
    a = data.epoch(np.random.default_rng(3))
    b = data.epoch(np.random.default_rng(3))
    assert len(a) == 3
    for i in (2, 0, 1):                                 # any order: batch i depends only on (epoch seed, i)
        np.testing.assert_array_equal(a[i][0], b[i][0])
        np.testing.assert_array_equal(a[i][1], b[i][1])
    cut = R.RankingBatches(padded, centres, window=5, batch_size=4, sampler=data.sampler, examples_per_epoch=5)
    assert len(cut) == 2 and sum(len(cut.epoch(np.random.default_rng(0))[i][0]) for i in range(2)) == 5


def _toy_corpus(rng, n=600):
    """Sentences "det noun verb det noun" over two noun classes and one verb class: words of a class are
    interchangeable, so a good model gives them similar vectors."""
    det, nouns, verbs = [2, 3], [4, 5, 6, 7], [8, 9, 10]
    return [np.array([rng.choice(det), rng.choice(nouns), rng.choice(verbs), rng.choice(det), rng.choice(nouns)])
            for _ in range(n)]


def test_training_lowers_the_ranking_loss_and_groups_word_classes(rng):
    sents = _toy_corpus(rng)
    padded, centres = R.padded_stream(sents, window=3)
    counts = np.bincount(np.concatenate(sents), minlength=11)
    sampler = R.NegativeSampler(counts, "uniform")
    data = R.RankingBatches(padded, centres, window=3, batch_size=32, sampler=sampler)
    m = R.WindowRanker(11, window=3, dim=8, hidden=16, rng=0, init_scale=0.1)
    w = data.windows(np.arange(len(centres)))
    neg = sampler.draw(w[:, 1], np.random.default_rng(5))
    before = m.evaluate(w, neg)
    Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), data, epochs=15, quiet=True, seed=0).fit()
    after = m.evaluate(w, neg)
    assert before["hinge"] > 0.9 and after["hinge"] < 0.5 * before["hinge"] and after["error"] < 0.2
    V = m.vectors / np.linalg.norm(m.vectors, axis=1, keepdims=True)
    sim = V @ V.T
    nouns, verbs = [4, 5, 6, 7], [8, 9, 10]
    within = np.mean([sim[a, b] for a in nouns for b in nouns if a != b])
    across = np.mean([sim[a, b] for a in nouns for b in verbs])
    assert within > across + 0.3


def test_config_round_trip(tmp_path):
    m = R.WindowRanker(6, window=5, dim=3, hidden=4, init_scale=0.1, rng=1,
                       words=["<pad>", "<unk>", "a", "b", "c", "d"])
    io.save_model(tmp_path / "r.npz", m)
    m2 = io.load_model(tmp_path / "r.npz")
    assert isinstance(m2, R.WindowRanker) and m2.words == m.words and m2.window == 5
    np.testing.assert_array_equal(m2.vectors, m.vectors)
    assert "WindowRanker(vocab_size=6, window=5" in repr(m2)


def test_errors():
    with pytest.raises(ValueError, match="'window' must be odd"):
        R.WindowRanker(5, window=4, dim=50, hidden=100, init_scale=0.1)
    with pytest.raises(ValueError, match="'words' must have 5 entries"):
        R.WindowRanker(5, window=3, words=["a"], dim=50, hidden=100, init_scale=0.1)
    m = R.WindowRanker(5, window=3, dim=2, hidden=2, init_scale=0.1)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        m.loss((np.zeros((2, 5), dtype=int), np.ones(2, dtype=int)))
    with pytest.raises(ValueError, match="'negatives' must have shape"):
        m.loss((np.zeros((2, 3), dtype=int), np.ones(3, dtype=int)))
    with pytest.raises(ValueError, match="'kind' must be one of"):
        R.NegativeSampler(np.ones(5), "zipf")
