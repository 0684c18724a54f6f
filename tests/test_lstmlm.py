import numpy as np
import pytest

from fastnn import io, kernels, optim
from fastnn.gradcheck import run_case
from fastnn.models import lstmlm as L
from fastnn.models.rnnlm import BPTTBatches
from fastnn.recipes import lm as recipe
from fastnn.train import Trainer


@pytest.mark.parametrize("name,build", L.gradcheck_cases())
def test_gradcheck_cases(name, build):
    assert run_case(build, seed=1).ok


def test_gradcheck_catches_a_broken_backward(monkeypatch):
    real = kernels.lstm_backward

    def broken(*a, **kw):
        dX, dW, db, dh0, dc0 = real(*a, **kw)
        return dX, dW * 1.01, db, dh0, dc0
    monkeypatch.setattr(kernels, "lstm_backward", broken)
    assert not run_case(dict(L.gradcheck_cases())["lstmlm.classes"], seed=1).ok


def _model(classes, rng):
    counts = rng.integers(1, 40, 12)
    m = recipe.build_model(recipe.LSTMConfig(hidden=5, embed=4, classes=classes), 12, counts=counts, dtype=np.float64)
    for p in m.parameters().values():
        p.value[...] += rng.standard_normal(p.shape) * 0.3
    return m


@pytest.mark.parametrize("classes", [0, 3])
def test_token_logprobs_carry_state_and_roundtrip(tmp_path, rng, classes):
    m = _model(classes, rng)
    s = rng.integers(0, 12, 40)
    lp = m.token_logprobs(s)
    np.testing.assert_allclose(m.token_logprobs(s, chunk=7), lp, rtol=1e-12)   # state carried across chunks
    assert np.all(lp < 0) and m.perplexity(s) == pytest.approx(np.exp(-lp.mean()))
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(m2.token_logprobs(s), lp)
    assert m2.word_class == m.word_class and repr(m2) == repr(m)


def test_loss_carries_state_between_segments(rng):
    # two consecutive segments from a carried state score the same tokens as the evaluation over one stream
    m = _model(3, rng)
    s = rng.integers(0, 12, 16)
    data = BPTTBatches(s, batch_size=1, block=8, eos_id=1)
    m.eval()
    total = sum(float(m.loss(data[i]).value) * 8 for i in range(len(data)))
    assert total == pytest.approx(-m.token_logprobs(s).sum(), rel=1e-12)
    m.loss(data[0])                      # reset: the first segment starts from zeros whatever the carried state
    assert float(m.loss(data[0]).value) * 8 == pytest.approx(-m.token_logprobs(s)[:8].sum(), rel=1e-12)


def test_training_learns_a_cycle():
    s = np.tile(np.array([2, 3, 4, 5, 1, 6, 3]), 50)
    m = recipe.build_model(recipe.LSTMConfig(hidden=16, classes=0), 7)
    before = m.perplexity(s)
    tr = Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), BPTTBatches(s, batch_size=5, block=10, eos_id=1),
                 epochs=20, quiet=True, seed=0, clip_norm=5.0)
    tr.fit()
    assert before > 5 and m.perplexity(s) < 1.5


def test_errors():
    with pytest.raises(ValueError, match="classes > 0 needs 'counts'"):
        recipe.build_model(recipe.LSTMConfig(classes=3), 10)
    with pytest.raises(ValueError, match="'dropout' must be < 1"):
        L.LSTMLM(10, hidden=3, embed=None, classes=0, forget_bias=1.0, dropout=1.0, clip=0.0, init_scale=0.1, layers=1)
    m = recipe.build_model(recipe.LSTMConfig(hidden=3, classes=0), 10)
    with pytest.raises(ValueError, match="the batch must be"):
        m.loss((np.zeros((2, 3), int), np.zeros((3, 3), int), True, -1))
    with pytest.raises(IndexError, match="must hold ids in"):
        m.token_logprobs(np.array([1, 12]))
