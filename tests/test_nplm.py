import numpy as np
import pytest

from fastnn import io, optim
from fastnn.gradcheck import run_case
from fastnn.graph import RowGrad
from fastnn.models import nplm as N
from fastnn.models.mixture import context_bins, em_weight, em_weights, mix_logprobs
from fastnn.models.ngram import KneserNey
from fastnn.recipes import lm as recipe
from fastnn.train import ArrayBatches, Trainer


def _stream(rng, V=12, n=300, eos=1):
    s = rng.integers(2, V, n)
    s[rng.random(n) < 0.15] = eos
    s[-1] = eos
    return s


@pytest.mark.parametrize("name,build", N.gradcheck_cases())
def test_gradcheck_cases(name, build):
    assert run_case(build, seed=1).ok


def test_contexts_pad_with_eos_and_align():
    s = np.array([5, 6, 1, 7, 1])
    ctx = N.contexts(s, 3, pad_id=1)
    assert ctx.tolist() == [[1, 1], [1, 5], [5, 6], [6, 1], [1, 7]]
    assert N.contexts(s, 2, pad_id=1)[:, 0].tolist() == [1, 5, 6, 1, 7]


def test_inverse_decay():
    lr = N.InverseDecay(0.1, 0.5)
    assert lr(0) == 0.1 and lr(2) == pytest.approx(0.05)


def test_token_logprobs_normalised_and_match_predict(rng):
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=4, hidden=5, direct=True), 12, dtype=np.float64)
    for p in m.parameters().values():
        p.value[...] = rng.standard_normal(p.shape) * 0.3
    s = _stream(rng, n=50)
    lp = m.token_logprobs(s, chunk=7)
    full = m.predict(N.contexts(s, 3, 1))
    np.testing.assert_allclose(np.logaddexp.reduce(full, axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(lp, full[np.arange(len(s)), s], rtol=1e-12)
    total = -lp.sum()
    assert m.perplexity(s) == pytest.approx(np.exp(total / len(s)))


def test_loss_is_mean_nll_and_C_grad_is_rows_of_batch(rng):
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=4, hidden=5, direct=True), 20, dtype=np.float64)
    ctx = np.array([[3, 4], [4, 9], [3, 3]])
    t = np.array([1, 2, 3])
    loss = m.loss((ctx, t))
    lp = m.predict(ctx)[np.arange(3), t]
    assert float(loss.value) == pytest.approx(-lp.mean())
    loss.backward()
    g = m.C.W.grad
    assert isinstance(g, RowGrad) and g.rows.tolist() == [3, 4, 9]


def test_bias_starts_at_unigram(rng):
    counts = np.array([5, 10, 1, 4])
    m = recipe.build_model(recipe.NPLMConfig(order=2, dim=2, hidden=3, direct=True), 4, counts=counts)
    lp = m.predict(np.array([[0]]))[0]
    np.testing.assert_allclose(np.exp(lp), counts / counts.sum(), rtol=1e-5)


def test_training_lowers_perplexity_and_beats_unigram(rng):
    # a deterministic cycle: the NPLM must learn it, an order-1 view cannot
    s = np.tile(np.array([2, 3, 4, 5, 1]), 60)
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=8, hidden=16, direct=True), 6)
    before = m.perplexity(s)
    ctx = N.contexts(s, 3, 1)
    tr = Trainer(m, optim.AdaGrad(m.parameters(), lr=0.3), ArrayBatches(ctx, s, batch_size=16), epochs=15,
                 quiet=True, seed=0)
    tr.fit()
    assert before > 4 and m.perplexity(s) < 1.2


def test_save_load_roundtrip(tmp_path, rng):
    m = N.NPLM(12, order=4, dim=3, hidden=0, direct=True, classes=0, dropout=0.0, init_scale=0.1, rng=3,
               words=[f"w{i}" for i in range(12)])
    m.out.W.value[...] = rng.standard_normal(m.out.W.shape)
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    s = _stream(rng)
    np.testing.assert_array_equal(m.token_logprobs(s), m2.token_logprobs(s))
    assert m2.words == m.words and "direct=True" in repr(m2)


@pytest.mark.parametrize("direct", [False, True])
def test_class_output_normalised_matches_predict_and_roundtrips(tmp_path, rng, direct):
    counts = rng.integers(1, 40, 12)
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=4, hidden=5, direct=direct, classes=3), 12, counts=counts,
                           dtype=np.float64)
    for p in m.parameters().values():
        p.value[...] += rng.standard_normal(p.shape) * 0.3
    s = _stream(rng, n=50)
    lp = m.token_logprobs(s, chunk=7)
    full = m.predict(N.contexts(s, 3, 1))
    np.testing.assert_allclose(np.logaddexp.reduce(full, axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(lp, full[np.arange(len(s)), s], rtol=1e-10)
    ctx, t = N.contexts(s, 3, 1)[:9], s[:9]
    assert float(m.loss((ctx, t)).value) == pytest.approx(-lp[:9].mean())
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    # the same chunks as lp: BLAS may round a product of 7 rows and one of 50 differently
    np.testing.assert_array_equal(m2.token_logprobs(s, chunk=7), lp)
    assert m2.word_class == m.word_class and "3 classes" in repr(m2)


def test_class_output_starts_at_unigram():
    counts = np.array([5, 10, 1, 4, 7, 2])
    m = recipe.build_model(recipe.NPLMConfig(order=2, dim=2, hidden=3, direct=True, classes=2), 6, counts=counts,
                           dtype=np.float64)
    np.testing.assert_allclose(np.exp(m.predict(np.array([[0]]))[0]), counts / counts.sum(), rtol=1e-9)


def test_errors():
    with pytest.raises(ValueError, match="'hidden' must be > 0 when direct=False"):
        N.NPLM(10, order=3, dim=2, hidden=0, direct=False, classes=0, dropout=0.0, init_scale=0.1)
    with pytest.raises(ValueError, match="'eos_id' must be in"):
        recipe.build_model(recipe.NPLMConfig(), 10, eos_id=10)
    with pytest.raises(ValueError, match="classes > 0 needs 'counts'"):
        recipe.build_model(recipe.NPLMConfig(classes=3), 10)
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=2, hidden=2, direct=True), 10)
    with pytest.raises(ValueError, match="'contexts' must have shape"):
        m.loss((np.zeros((4, 3), int), np.zeros(4, int)))
    with pytest.raises(IndexError, match="must hold ids in \\[0, 10\\); got 12 at position 1"):
        m.token_logprobs(np.array([1, 12]))


# ---- mixture ---------------------------------------------------------------------------------------------------

def test_mix_logprobs_formula(rng):
    a, b = np.log(rng.random(20)), np.log(rng.random(20))
    np.testing.assert_allclose(mix_logprobs(a, b, 0.3), np.log(0.3 * np.exp(a) + 0.7 * np.exp(b)))
    np.testing.assert_array_equal(mix_logprobs(a, b, 1.0), a)
    with pytest.raises(ValueError, match="same token stream"):
        mix_logprobs(a, b[:-1], 0.5)


def test_em_weight_maximises_likelihood(rng):
    a, b = np.log(rng.random(500) * 0.5), np.log(rng.random(500) * 0.3)
    lam, ll = em_weight(a, b)
    grid = np.linspace(0.001, 0.999, 999)
    best = grid[np.argmax([mix_logprobs(a, b, w).mean() for w in grid])]
    assert abs(lam - best) < 2e-3
    assert ll >= max(mix_logprobs(a, b, w).mean() for w in grid) - 1e-6


@pytest.mark.filterwarnings("ignore:.*counts-of-counts")
def test_nplm_aligns_with_ngram_stream(rng):
    s = _stream(rng, n=400)
    kn = KneserNey(3).fit(s, 12, 1)
    m = recipe.build_model(recipe.NPLMConfig(order=3, dim=4, hidden=4, direct=True), 12)
    a, b = m.token_logprobs(s), kn.token_logprobs(s)
    assert a.shape == b.shape == s.shape
    lam, _ = em_weight(a, b)
    assert 0 <= lam < 0.5          # an untrained NPLM is worse than the n-gram on its own training data


def test_context_bins_counts_preceding_tokens():
    train = np.array([5, 6, 7, 5, 6, 8, 1])            # contexts (padded with 1): (5, 6) occurs twice
    s = np.array([5, 6, 9, 2, 3])
    # keys of s: (1,1) (1,5) (5,6) (6,9) (9,2); train counts: 1, 1, 2, 0, 0
    assert context_bins(s, train, pad_id=1).tolist() == [1, 1, 1, 0, 0]
    assert context_bins(s, np.tile(train, 4), pad_id=1).tolist() == [1, 2, 3, 0, 0]   # counts 1, 4, 8
    assert context_bins(s, np.tile(train, 4), pad_id=1, max_bucket=2)[2] == 2
    assert context_bins(s, train, context=1, pad_id=1).tolist() == [1, 1, 1, 0, 0]   # counts 1, 2, 2
    with pytest.raises(ValueError, match="'context' must be an integer >= 1"):
        context_bins(s, train, context=0, pad_id=1)


def test_em_weights_per_bin(rng):
    n = 600
    bins = rng.integers(0, 3, n)
    a = np.log(rng.random(n) * np.where(bins == 0, 0.9, 0.2))     # model a is good only in bin 0
    b = np.log(rng.random(n) * 0.5)
    lams, ll = em_weights(a, b, bins, n_bins=4)
    for k in range(3):
        assert lams[k] == pytest.approx(em_weight(a[bins == k], b[bins == k])[0], abs=1e-9)
    assert lams[3] == pytest.approx(em_weight(a, b)[0], abs=1e-9)            # empty bin: the pooled weight
    assert lams[0] > lams[1] and ll > em_weight(a, b)[1]
    np.testing.assert_allclose(mix_logprobs(a, b, lams[bins]).mean(), ll)
    with pytest.raises(ValueError, match="'bins' must be non-negative integers"):
        em_weights(a, b, bins[:-1])
    with pytest.raises(ValueError, match="per-token 'weight' must be an array"):
        mix_logprobs(a, b, np.full(n, 1.5))


def test_nplm_fast_preset_is_the_default_model_at_512():
    c, default = recipe.from_preset("nplm-fast"), recipe.NPLMConfig()
    assert isinstance(c, recipe.NPLMConfig) and c.classes == 0 and (c.order, c.dim, c.hidden) == (5, 60, 100)
    # 512 examples per update at 0.07 / (1 + 4e-4 t), 2 epochs (recipes/lm.py: on Brown valid 129.22, test 119.51
    # against the default's 128.95 / 119.23, in 2 epochs of 33-39 s against 3 of 39-43 s)
    assert (c.batch_size, c.lr, c.lr_decay, c.epochs) == (512, 0.07, 4e-4, 2)
    assert (default.batch_size, default.lr, default.lr_decay, default.epochs) == (128, 0.04, 0.0, 3)
    assert recipe.from_preset("nplm-fast", epochs=3).epochs == 3                 # explicit values win
