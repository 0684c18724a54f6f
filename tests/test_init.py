"""Initialisers: Glorot ranges and statistics, identity, the compose matrix, optimal output biases, seeding."""
import numpy as np
import pytest
from scipy.special import expit

from fastnn import init, nn


@pytest.mark.parametrize("gain,mult", [("tanh", 1.0), ("sigmoid", 4.0)])
def test_glorot_uniform_range_and_statistics(gain, mult):
    fan_in, fan_out = 300, 200
    W = init.glorot_uniform(fan_in, fan_out, 0, gain, dtype=np.float64)
    r = mult * np.sqrt(6 / (fan_in + fan_out))
    assert W.shape == (fan_out, fan_in)
    assert init.glorot_range(fan_in, fan_out, gain) == pytest.approx(r)
    assert np.abs(W).max() <= r and np.abs(W).max() > 0.99 * r       # fills the whole range
    assert abs(W.mean()) < 0.01 * r
    assert W.var() == pytest.approx(r * r / 3, rel=0.02)              # variance of U(-r, r)
    assert W.var() == pytest.approx(mult ** 2 * 2 / (fan_in + fan_out), rel=0.02)  # Glorot's 2 / (n_in + n_out)


def test_glorot_seed_or_generator_and_dtype():
    a = init.glorot_uniform(5, 4, 7)
    b = init.glorot_uniform(5, 4, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert init.glorot_uniform(5, 4, 7, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="'rng' must be an int seed or a numpy.random.Generator; got None"):
        init.glorot_uniform(5, 4, None)
    with pytest.raises(ValueError, match="'gain' must be one of"):
        init.glorot_uniform(5, 4, 0, "relu")
    with pytest.raises(ValueError, match="'fan_in' must be an integer >= 1"):
        init.glorot_uniform(0, 4, 0)
    with pytest.raises(TypeError, match="'dtype' must be float32 or float64"):
        init.zeros(3, dtype=np.int64)


def test_layers_use_the_glorot_range():
    lin = nn.Linear(30, 20, rng=0, init="glorot_sigmoid")
    assert np.abs(lin.W.value).max() <= 4 * np.sqrt(6 / 50)
    np.testing.assert_array_equal(lin.b.value, 0)
    rnn = nn.RNN(10, 6, rng=0, activation="sigmoid")
    assert np.abs(rnn.W_hh.value).max() > np.sqrt(6 / 12)  # sigmoid units get the 4x range
    assert np.abs(rnn.W_hh.value).max() <= 4 * np.sqrt(6 / 12)


def test_identity_and_zeros():
    np.testing.assert_array_equal(init.identity(4), np.eye(4))
    assert init.identity(3, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(init.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(nn.Linear(3, 3, rng=0, init="identity").W.value, np.eye(3))
    np.testing.assert_array_equal(nn.RNN(2, 3, rng=0, init="identity").W_hh.value, np.eye(3))


def test_compose_matrix_averages_the_children():
    d = 5
    W = init.compose_matrix(d, 0, dtype=np.float64)
    half = 0.5 * np.hstack([np.eye(d), np.eye(d)])
    assert W.shape == (d, 2 * d)
    noise = W - half
    assert np.abs(noise).max() <= 0.001 and np.abs(noise).max() > 0.0009 and np.unique(noise).size == 2 * d * d
    a, b = np.random.default_rng(1).standard_normal((2, d))
    np.testing.assert_allclose(W @ np.concatenate([a, b]), (a + b) / 2, atol=0.001 * 2 * d * 3)  # ~ the average
    a_only = W @ np.concatenate([a, a])                   # two equal children compose to (about) themselves
    np.testing.assert_allclose(a_only, a, atol=0.001 * 2 * d * 3)
    lin = nn.Linear(2 * d, d, rng=0, init="compose")
    assert np.abs(lin.W.value - half).max() <= 0.001 + 1e-7
    with pytest.raises(ValueError, match="init='compose' needs n_in == 2 \\* n_out"):
        nn.Linear(3, 2, rng=0, init="compose")


def test_compose_matrix_sum_on_request():
    d = 4
    W = init.compose_matrix(d, 0, average=False, dtype=np.float64)
    np.testing.assert_allclose(W, np.hstack([np.eye(d), np.eye(d)]), atol=0.001)
    np.testing.assert_allclose(W - np.hstack([np.eye(d)] * 2),                  # same noise, only the prior moves
                               init.compose_matrix(d, 0, dtype=np.float64) - 0.5 * np.hstack([np.eye(d)] * 2),
                               rtol=0, atol=1e-15)


def test_softmax_output_bias_is_the_best_constant_predictor():
    counts = np.array([50.0, 30.0, 15.0, 5.0])
    b = init.output_bias_softmax(counts, dtype=np.float64)
    prior = counts / counts.sum()
    np.testing.assert_allclose(np.exp(b), prior, rtol=1e-12)                 # softmax(b) = the class priors
    targets = np.repeat(np.arange(4), counts.astype(int))
    out = nn.SoftmaxOutput(3, 4, rng=0, dtype=np.float64, class_counts=counts)
    out.W.value[:] = 0                                                       # zero weights: a constant predictor
    h = np.random.default_rng(0).standard_normal((len(targets), 3))
    best = float(out.loss(h, targets).value)
    assert best == pytest.approx(-(prior * np.log(prior)).sum(), rel=1e-12)  # = the entropy of the priors
    rng = np.random.default_rng(1)
    for _ in range(50):                                                      # any other constant logits do worse
        z = np.log(prior) + rng.normal(0, 0.3, 4)
        assert float(nn.softmax_cross_entropy(np.tile(z, (len(targets), 1)), targets).value) > best
    out.loss(h, targets).backward()
    np.testing.assert_allclose(out.b.grad, 0, atol=1e-12)                   # stationary point


def test_sigmoid_and_linear_output_biases():
    m = np.array([0.1, 0.5, 0.97])
    b = init.output_bias_sigmoid(m, dtype=np.float64)
    np.testing.assert_allclose(expit(b), m, rtol=1e-12)

    def bce(c, mean):  # expected binary cross-entropy of predicting sigmoid(c) for targets with this mean
        return -(mean * np.log(expit(c)) + (1 - mean) * np.log(1 - expit(c)))

    for bi, mi in zip(b, m):
        assert bce(bi, mi) < min(bce(bi + 0.01, mi), bce(bi - 0.01, mi))
    y = np.random.default_rng(0).standard_normal(100) + 3
    c = init.output_bias_linear(y.mean(), dtype=np.float64)
    assert c.shape == (1,) and c[0] == pytest.approx(y.mean())
    assert float(nn.mse(np.full(100, c[0]), y).value) < float(nn.mse(np.full(100, c[0] + 0.01), y).value)
    assert init.output_bias_sigmoid(0.25).dtype == np.float32


def test_output_bias_errors():
    with pytest.raises(ValueError, match="'class_counts' must be positive and finite; got 0.0 at position 1"):
        init.output_bias_softmax([3, 0, 2])
    with pytest.raises(ValueError, match=r"'mean_target' must be in \(0, 1\)"):
        init.output_bias_sigmoid([0.5, 1.0])
    with pytest.raises(ValueError, match="'class_counts' must have 3 entries"):
        nn.SoftmaxOutput(2, 3, rng=0, class_counts=[1, 2])


def test_embedding_init_is_seeded_uniform():
    a = nn.Embedding(100, 8, rng=5, scale=0.05)
    b = nn.Embedding(100, 8, rng=np.random.default_rng(5), scale=0.05)
    np.testing.assert_array_equal(a.W.value, b.W.value)
    assert np.abs(a.W.value).max() <= 0.05 and a.W.sparse

