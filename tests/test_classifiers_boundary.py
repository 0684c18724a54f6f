"""The classifiers called as a scikit-learn user calls an estimator: NaN / inf features, strings, wrong shapes,
labels the model has no output for.  Each is a clear exception from the classifier's own entry point, never class 0
predicted for a NaN row, an accuracy counted against impossible labels, or an error from an internal layer."""
import numpy as np
import pytest

from fastnn.models.classifiers import MLP, LogisticRegression

MODELS = [(LogisticRegression, {}), (MLP, {"hidden": 4})]


def _dense(cls, kw):
    return cls(3, n_features=4, seed=0, **kw)


def _window(cls, kw):
    return cls(3, vocab_size=10, window=3, seed=0, **(dict(kw, embed_dim=2) if kw else kw))


@pytest.fixture
def xy(rng):
    return rng.normal(size=(5, 4)), np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(cls, kw, bad, xy):
    m = _dense(cls, kw)
    x, y = xy
    x[2, 1] = bad
    for call in (lambda: m.predict(x), lambda: m.scores(x), lambda: m.loss((x, y)), lambda: m.objective(x, y),
                 lambda: m.accuracy(x, y)):
        with pytest.raises(ValueError, match=r"inputs must be finite; got (-?inf|nan) at row 2, column 1"):
            call()


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
@pytest.mark.parametrize("x", [np.array([["a"] * 4] * 2), np.array([[1, "a", 2, 3]] * 2, dtype=object)],
                         ids=["str", "object"])
def test_string_features(cls, kw, x):
    m = _dense(cls, kw)
    for call in (lambda: m.predict(x), lambda: m.loss((x, np.array([0, 1])))):
        with pytest.raises(TypeError, match=f"{cls.__name__}.*inputs must be real numbers"):
            call()


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
@pytest.mark.parametrize("labels, err, msg", [([0, 1, 5, 1, 0], ValueError, r"class ids in \[0, 3\).*got 5 at position 2"),
                                              ([0, 1, -1, 1, 0], ValueError, r"got -1 at position 2"),
                                              ([0., 1., 2., 1., 0.], TypeError, "integer class ids"),
                                              (list("abcab"), TypeError, "integer class ids")])
def test_labels_the_model_has_no_output_for(cls, kw, labels, err, msg, xy):
    m = _dense(cls, kw)
    x, _ = xy
    y = np.array(labels)
    for name, call in (("loss", lambda: m.loss((x, y))), ("objective", lambda: m.objective(x, y)),
                       ("accuracy", lambda: m.accuracy(x, y))):   # accuracy counted them as errors, silently
        with pytest.raises(err, match=f"{cls.__name__}.{name}: 'y' must hold .*{msg}"):
            call()


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
def test_window_ids_out_of_range_are_named_by_the_model(cls, kw):
    m = _window(cls, kw)        # (the MLP's error came from the embedding's gather_rows: 'idx')
    with pytest.raises(IndexError, match=rf"^{cls.__name__}: 'inputs' must be in \[0, 10\); got 10"):
        m.predict(np.array([[10, 0, 0]]))
    with pytest.raises(IndexError, match=rf"^{cls.__name__}.loss: 'inputs' must be in \[0, 10\)"):
        m.loss((np.array([[0, 0, -1]]), np.array([0])))


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
def test_plain_lists_and_empty_inputs_work(cls, kw, xy):
    m = _dense(cls, kw)
    x, y = xy
    np.testing.assert_array_equal(m.predict(x.tolist()), m.predict(x))
    assert float(m.loss((x.tolist(), y.tolist())).value) == float(m.loss((x, y)).value)
    assert m.predict(np.zeros((0, 4))).shape == (0,)


@pytest.mark.parametrize("n_classes, err", [(1, ValueError), (2.5, TypeError), ("3", TypeError)])
def test_n_classes_is_checked(n_classes, err):
    with pytest.raises(err, match="'n_classes' must be an integer >= 2"):
        LogisticRegression(n_classes, n_features=3, seed=0)


@pytest.mark.parametrize("cls, kw", MODELS, ids=["logreg", "mlp"])
def test_empty_data(cls, kw):
    m = _dense(cls, kw)
    # the objective of no example was 0.0, the best possible value, silently
    with pytest.raises(ValueError, match=f"{cls.__name__}.objective: the data must hold at least one example"):
        m.objective(np.zeros((0, 4)), np.zeros(0, int))
    assert m.predict([]).shape == (0,)           # [] is no input, as an empty (0, n_features) array


def test_numbers_in_an_object_array_are_numbers(xy):
    m = LogisticRegression(3, n_features=4, seed=0)
    x, _ = xy
    np.testing.assert_array_equal(m.predict(x.astype(object)), m.predict(x))


def test_class_counts_of_labels_instead_of_counts():
    # the class names themselves: NumPy's "could not convert string to float: 'a'"
    with pytest.raises(TypeError, match="LogisticRegression: 'class_counts' must be numbers, one count per class"):
        LogisticRegression(3, n_features=2, seed=0, class_counts=["a", "b", "c"])
