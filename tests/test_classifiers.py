"""The classifiers' optimal output-bias init: the log class priors make the untrained model the best constant
predictor."""
import numpy as np
import pytest

from fastnn.gradcheck import gradcheck
from fastnn.models.classifiers import MLP, LogisticRegression, gradcheck_cases
from fastnn.models.nplm import NPLM


def _labels(rng, n=400):
    return rng.choice(4, size=n, p=[0.6, 0.25, 0.1, 0.05])


@pytest.mark.parametrize("kind", ["dense", "window"])
def test_logreg_starts_at_the_label_entropy(kind, rng):
    y = _labels(rng)
    counts = np.bincount(y, minlength=4)
    spec = {"n_features": 5} if kind == "dense" else {"vocab_size": 7, "window": 3}
    x = rng.normal(size=(len(y), 5)) if kind == "dense" else rng.integers(0, 7, size=(len(y), 3))
    m = LogisticRegression(4, dtype="float64", class_counts=counts, **spec, seed=0)
    prior = counts / counts.sum()
    entropy = -float(np.sum(prior * np.log(prior)))
    assert m.objective(x, y) == pytest.approx(entropy, rel=1e-12)         # zero weights: softmax(b) = the priors
    plain = LogisticRegression(4, dtype="float64", **spec, seed=0)
    assert plain.objective(x, y) == pytest.approx(np.log(4), rel=1e-12)
    assert entropy < np.log(4) - 0.2


def test_mlp_prior_bias_lowers_the_initial_loss(rng):
    y = _labels(rng)
    x = rng.normal(size=(len(y), 5))
    counts = np.bincount(y, minlength=4)
    m = MLP(4, hidden=8, n_features=5, dtype="float64", class_counts=counts, seed=0)
    plain = MLP(4, hidden=8, n_features=5, dtype="float64", seed=0)
    np.testing.assert_allclose(np.exp(m.out.b.value), counts / counts.sum(), rtol=1e-12)
    np.testing.assert_array_equal(m.hidden.W.value, plain.hidden.W.value)   # only the bias moves
    assert m.objective(x, y) < plain.objective(x, y) - 0.1


def test_class_counts_errors_and_unseen_classes():
    b = LogisticRegression(3, n_features=2, class_counts=[3, 0, 1], dtype="float64", seed=0).out.b.value
    np.testing.assert_allclose(np.exp(b), np.array([3, 0.5, 1]) / 4.5)        # an unseen class counts as 0.5
    with pytest.raises(ValueError, match=r"one count per class, shape \(3,\); got shape \(2,\)"):
        MLP(3, n_features=2, class_counts=[1, 2], hidden=32, seed=0)
    with pytest.raises(ValueError, match="'class_counts' must be finite and >= 0"):
        LogisticRegression(3, vocab_size=4, window=1, class_counts=[1, -1, 2], seed=0)


def test_gradchecks_still_pass():
    for name, build in gradcheck_cases():
        fn, params = build(np.random.default_rng(0))
        assert gradcheck(fn, params).ok, name


def test_window_ids_out_of_range_and_labels_of_another_length_are_errors():
    """LogisticRegression keeps one block of V rows per window position: an id of -1 (or V + 2 in the first
    position) silently read another position's block; accuracy broadcast a shorter y against the predictions."""
    m = LogisticRegression(3, vocab_size=10, window=3, seed=0)
    for x in ([[0, 0, -1]], [[12, 0, 0]]):
        with pytest.raises(IndexError, match=r"LogisticRegression: 'inputs' must be in \[0, 10\)"):
            m.predict(np.array(x))
        with pytest.raises(IndexError, match="'inputs' must be in"):
            m.loss((np.array(x), np.array([0])))
    with pytest.raises(ValueError, match=r"'y' must have shape \(2,\)"):
        m.accuracy(np.array([[0, 0, 1], [1, 1, 1]]), [0])


def test_a_model_seeded_by_a_generator_saves_and_loads(tmp_path):
    # its config() held the Generator, so save_model failed after training ("not JSON serializable"): work lost
    from fastnn import io

    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for model in (LogisticRegression(3, n_features=4, seed=np.random.default_rng(1)),
                  MLP(3, hidden=4, n_features=4, seed=np.random.default_rng(1))):
        path = tmp_path / f"{type(model).__name__}.npz"
        io.save_model(path, model)
        loaded = io.load_model(path)
        assert loaded.config()["seed"] is None
        np.testing.assert_array_equal(loaded.scores(x), model.scores(x))
        io.load_params(path, loaded)


@pytest.mark.parametrize("make, where", [
    (lambda dtype: LogisticRegression(3, n_features=4, seed=0, dtype=dtype), "LogisticRegression"),
    (lambda dtype: LogisticRegression(3, vocab_size=4, window=3, seed=0, dtype=dtype), "LogisticRegression"),
    (lambda dtype: MLP(3, hidden=2, vocab_size=4, window=3, embed_dim=2, seed=0, dtype=dtype), "MLP"),
    (lambda dtype: NPLM(11, order=3, dim=3, hidden=2, direct=False, classes=0, dropout=0.0, init_scale=0.1,
                        dtype=dtype), "NPLM")])
def test_a_bad_dtype_names_the_class_and_the_argument(make, where):
    # (was "uniform: 'dtype' ...", or Param's "'E' must have dtype ...": the internal names)
    for dtype in ("int32", "float33"):
        with pytest.raises(TypeError, match=rf"^{where}: 'dtype' must be float32 or float64; got {dtype}\.$"):
            make(dtype)
