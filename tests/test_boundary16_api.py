"""The Python API used as a scikit-learn or PyTorch user would: seeds given as int / Generator / None, object
protocols (pickle, deepcopy, ==, repr), and "wrong but reasonable" inputs (NumPy scalars, bools, NaN, iterators,
read-only or Fortran-ordered arrays)."""
import warnings

import numpy as np
import pytest

from fastnn import init, metrics
from fastnn.data import digits, synthetic
from fastnn.data.adding import adding
from fastnn.experiments import adding as adding_exp
from fastnn.experiments import clipping, gradients
from fastnn.experiments import digits as digits_exp
from fastnn.models.ladder import toy_batch

# ---- seeds: an int or a Generator where one stream is drawn; an int where several are derived ([seed, k]) -------

DRAWS = {"adding": lambda seed: adding(2, 4, seed)[0],
         "teacher": lambda seed: synthetic.teacher(3, seed=seed)[0],
         "toy_batch": lambda seed: toy_batch(3, 2, seed=seed)[0]}
DERIVES = {"pixel_order": lambda seed: digits.pixel_order("permuted", seed),
           "split_indices": lambda seed: digits.split_indices(10, seed)[0],
           "teacher_labels": lambda seed: synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=seed),
           "make_model": lambda seed: adding_exp.make_model("tanh", adding_exp.DEFAULTS, seed),
           "time_step": lambda seed: adding_exp.time_step(T=3, batch_size=2, hidden=2, repeats=1, seed=seed),
           "run_adding": lambda seed: adding_exp.run_adding(T=3, steps=1, models=("tanh",), hidden=2, n_test=2,
                                                            seed=seed),
           "run_adding_grid": lambda seed: adding_exp.run_adding_grid(T=3, grid=dict(lr=[0.1], clip=[1.0]),
                                                                      models=("tanh",), hidden=2, n_test=2, steps=1,
                                                                      workers=1, seed=seed),
           "run_clipping": lambda seed: clipping.run_clipping(T=3, steps=1, hidden=2, n_test=2, workers=1, seed=seed),
           "run_gradients": lambda seed: gradients.run_gradients(T=3, train_steps=1, hidden=2, n=2, n_test=2,
                                                                 seed=seed),
           "train_one": lambda seed: digits_exp.train_one("tanh", "plain", 0.1, 1.0, data={}, seed=seed),
           "run_digits": lambda seed: digits_exp.run_digits(models=("nope",), seed=seed)}


@pytest.mark.parametrize("name", sorted(DRAWS))
@pytest.mark.parametrize("seed, error", [(None, TypeError), (True, TypeError), (1.5, TypeError), ("3", TypeError),
                                         (-1, ValueError)])
def test_a_data_seed_is_an_int_or_a_generator_never_none(name, seed, error):
    # adding(2, 4, None) and teacher(3, seed=None) drew a set no one could draw again, silently (and seed=True was
    # seed 1); -1 was NumPy's "expected non-negative integer", 1.5 "SeedSequence expects int or sequence of ints"
    with pytest.raises(error, match=f"{name}: 'seed' must be an int seed( >= 0)? or a numpy.random.Generator; "
                                    f"got {seed!r}"):
        DRAWS[name](seed)
    np.testing.assert_array_equal(DRAWS[name](np.int64(3)), DRAWS[name](np.random.default_rng(3)))
    np.testing.assert_array_equal(DRAWS[name](3), DRAWS[name](3))


@pytest.mark.parametrize("name", sorted(DERIVES))
@pytest.mark.parametrize("seed, error", [(None, TypeError), (np.random.default_rng(0), TypeError), (True, TypeError),
                                         (-1, ValueError)])
def test_a_seed_that_derives_several_streams_is_an_int(name, seed, error):
    # pixel_order("permuted", None), split_indices(10, Generator) and every experiment's run_*(seed=None or a
    # Generator) failed with "object of type 'NoneType' has no len()" (NumPy, from default_rng([seed, k])); seed=True
    # ran as seed 1; -1 was "expected non-negative integer"
    says = "teacher_seed" if name == "teacher_labels" else "seed"
    with pytest.raises(error, match=f"{name}: '{says}' must be an int seed >= 0; got "):
        DERIVES[name](seed)


def test_a_numpy_int_seed_is_the_same_seed():
    np.testing.assert_array_equal(digits.pixel_order("permuted", np.int64(3)), digits.pixel_order("permuted", 3))
    np.testing.assert_array_equal(synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=np.int32(4)),
                                  synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=4))


# ---- a switch is True or False: bool("no") is True ------------------------------------------------------------------

def _switches():
    from fastnn import graph, optim, search
    from fastnn.data import vectors
    from fastnn.models.classifiers import LogisticRegression
    from fastnn.models.rnnlm import RNNLM

    model = LogisticRegression(3, n_features=4, seed=0)
    rnn = dict(hidden=3, embed=None, activation="tanh", init="glorot", classes=0, dropout=0.0, clip=0.0,
               init_scale=0.1)
    return {
        "SGD: 'nesterov'": lambda v: optim.SGD(model.parameters(), 0.1, momentum=0.9, nesterov=v),
        "clip_grad_norm: 'error_if_nonfinite'": lambda v: optim.clip_grad_norm(model, 1.0, error_if_nonfinite=v),
        "RNNLM: 'fused'": lambda v: RNNLM(5, fused=v, **rnn),
        "normalize_vectors: 'lowercase'": lambda v: vectors.normalize_vectors(["A"], np.ones((1, 2)), lowercase=v),
        "compose_matrix: 'average'": lambda v: init.compose_matrix(2, 0, average=v),
        "Param 'w': 'sparse'": lambda v: graph.Param("w", np.zeros((2, 2)), sparse=v),
        "Param 'w': 'decay'": lambda v: graph.Param("w", np.zeros((2, 2)), decay=v),
        "Param 'w': 'trainable'": lambda v: graph.Param("w", np.zeros((2, 2)), trainable=v),
        "LogisticRegression.train: 'mode'": lambda v: model.train(v),
        "constant: 'requires_grad'": lambda v: graph.constant(1.0, requires_grad=v),
        "backward: 'keep_grads'": lambda v: model.loss((np.ones((2, 4)), np.array([0, 1]))).backward(keep_grads=v),
        "read_log: 'repair'": lambda v: search.read_log("/nonexistent/fastnn-log.jsonl", repair=v),
        "random_search: 'retry_failed'": lambda v: search.random_search(lambda params: 1.0, {"a": {"int": [1, 2]}}, 1,
                                                                        workers=1, retry_failed=v)}


@pytest.mark.parametrize("says", sorted(_switches()))
def test_a_switch_refuses_a_string_that_bool_would_read_as_true(says):
    # SGD(..., nesterov="no") ran Nesterov's variant, Param(..., trainable="False") trained, model.train("eval")
    # trained (dropout on), RNNLM(fused="no") fused: each took bool() of a non-empty str, which is True
    call = _switches()[says]
    with pytest.raises(TypeError, match=f"{says} must be True or False; got 'no'"):
        call("no")
    call(False)
    call(np.bool_(True))


def test_read_sentences_lower_is_a_switch(tmp_path):
    from fastnn.data import text
    path = tmp_path / "a.txt"
    path.write_text("The Dog\n")
    with pytest.raises(TypeError, match="read_sentences: 'lower' must be True or False; got 'no'"):
        text.read_sentences(path, lower="no")       # (lowercased the text)
    assert text.read_sentences(path, lower=False) == [["The", "Dog"]]


# ---- object protocols ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("copier", ["pickle", "deepcopy", "copy"])
def test_a_computed_node_refuses_to_be_copied_naming_what_to_keep(copier):
    # pickle.dumps(loss) was "Can't pickle local object 'linear.<locals>.backward'"; copy.deepcopy(loss) made a node
    # whose backward() added into the original model's gradients (the closure was shared), silently
    import copy
    import pickle

    from fastnn import graph
    from fastnn.models.classifiers import MLP

    model = MLP(3, n_features=4, hidden=5, seed=0)
    loss = model.loss((np.ones((2, 4)), np.array([0, 1])))
    do = {"pickle": pickle.dumps, "deepcopy": copy.deepcopy, "copy": copy.copy}[copier]
    with pytest.raises(TypeError, match=r"Node: a computed graph node \('softmax_output'\) cannot be pickled or "
                                        r"copied.*node.value.copy\(\).*fastnn.io.save_model"):
        do(loss)
    assert all(p.grad is None for p in model.parameters().values())
    x = graph.constant(np.arange(3.0), requires_grad=True)      # an input node is data: it copies
    for y in (pickle.loads(pickle.dumps(x)), copy.deepcopy(x)):
        assert y.requires_grad and np.array_equal(y.value, x.value) and not np.shares_memory(y.value, x.value)


# ---- inputs of the wrong but reasonable kind -------------------------------------------------------------------------

@pytest.mark.parametrize("make", ["dense", "window", "mlp"])
def test_bool_labels_are_the_class_ids_0_and_1(make):
    # a scikit-learn user's y = X[:, 0] > 0 was "'y' must hold integer class ids in [0, 2); got dtype bool"
    from fastnn.models.classifiers import MLP, LogisticRegression

    rng = np.random.default_rng(0)
    model = {"dense": lambda: LogisticRegression(2, n_features=3, seed=0),
             "window": lambda: LogisticRegression(2, vocab_size=5, window=3, seed=0),
             "mlp": lambda: MLP(2, n_features=3, hidden=4, seed=0)}[make]()
    x = rng.integers(0, 5, (8, 3)) if make == "window" else rng.normal(size=(8, 3))
    y = x[:, 0] > x[:, 0].mean()
    assert model.accuracy(x, y) == model.accuracy(x, y.astype(int))
    assert float(model.loss((x, y)).value) == float(model.loss((x, y.astype(np.int64))).value)
    assert model.objective(x, y) == model.objective(x, y.astype(np.int64))


def test_minimize_minibatch_names_its_data_seed_and_callback():
    # minimize_minibatch(model, (X, y)) was "AttributeError: 'tuple' object has no attribute 'epoch'"; seed=None drew
    # a batch order no one could repeat; a callback that takes no argument failed after the first batch's L-BFGS run
    from fastnn.models.classifiers import LogisticRegression
    from fastnn.optim import minimize, minimize_minibatch
    from fastnn.train import ArrayBatches

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    model = LogisticRegression(2, n_features=3, seed=0)
    with pytest.raises(TypeError, match=r"minimize_minibatch: 'data' must be a batch source with an epoch\(rng\) "
                                        r"method; got tuple. For arrays \(X, y\) pass ArrayBatches"):
        minimize_minibatch(model, (x, y))
    batches = ArrayBatches(x, y, batch_size=4)
    with pytest.raises(TypeError, match="minimize_minibatch: 'seed' must be an int seed or a numpy.random.Generator; "
                                        "got None"):
        minimize_minibatch(model, batches, seed=None)
    with pytest.raises(TypeError, match=r"minimize_minibatch: 'callback' must take \(result\)"):
        minimize_minibatch(model, batches, callback=lambda: True)
    with pytest.raises(ValueError, match="minimize: 'max_evals' must be >= 1; got 0"):
        minimize(model, (x, y), max_evals=0)      # (returned the untouched model as a success, fun=inf)
    with pytest.raises(TypeError, match=r"minimize: 'loss_fn' must take \(model, data\)"):
        minimize(model, (x, y), loss_fn=lambda m: m.loss((x, y)))
    with pytest.raises(ValueError, match="minimize: 'tol' must be >= 0; got -1.0"):
        minimize(model, (x, y), tol=-1.0)           # (scipy's "ERROR: FACTR < 0" warning, nothing done)
    with pytest.raises(TypeError, match="minimize: 'options' must be a dict of scipy.optimize.minimize options"):
        minimize(model, (x, y), options=[("maxcor", 20)])
    assert all(p.grad is None for p in model.parameters().values())
    assert np.isfinite(minimize_minibatch(model, batches, seed=np.random.default_rng(0), maxiter=2).fun)


@pytest.mark.parametrize("call, error, says", [
    (lambda: init.uniform((2,), float("nan"), 0), ValueError, "uniform: 'scale' must be finite"),
    (lambda: init.uniform((2,), -1.0, 0), ValueError, "uniform: 'scale' must be >= 0; got -1.0"),
    (lambda: init.uniform((2,), True, 0), TypeError, "uniform: 'scale' must be a real number"),
    (lambda: init.glorot_uniform(2, 3, 0, gain=float("nan")), ValueError,
     "glorot_uniform: 'gain' must be finite; got nan"),
    (lambda: init.glorot_uniform(2, 3, 0, gain=-1.0), ValueError,
     "glorot_uniform: 'gain' must be > 0; got -1.0"),
    (lambda: metrics.perplexity(10.0, True), ValueError,
     "perplexity: 'n_tokens' must be a positive int; got True")])
def test_nan_negative_and_bool_hyper_parameters_are_named(call, error, says):
    # uniform(shape, nan, rng) was NumPy's OverflowError "high - low range exceeds valid bounds", -1 "high - low < 0",
    # True drew from U(-1, 1); the same for a glorot gain; perplexity(nll, True) divided by 1
    with pytest.raises(error, match=says):
        call()


@pytest.mark.parametrize("run", ["run_adding", "run_adding_grid", "run_clipping", "run_gradients"])
def test_an_experiments_list_given_as_a_generator_is_read_once(run):
    # run_adding(models=(m for m in ["tanh"])) returned [] with nothing trained: the check of the names used the
    # generator up (likewise modes= of run_clipping, models= of run_gradients)
    call = {"run_adding": lambda v: adding_exp.run_adding(T=3, steps=1, models=v, hidden=2, n_test=2),
            "run_adding_grid": lambda v: adding_exp.run_adding_grid(T=3, grid=dict(lr=[0.1], clip=[1.0]), models=v,
                                                                    hidden=2, n_test=2, steps=1, workers=1),
            "run_clipping": lambda v: clipping.run_clipping(T=3, steps=1, hidden=2, n_test=2, workers=1, modes=v,
                                                            heuristic_steps=0, thresholds=(), temporal_factors=()),
            "run_gradients": lambda v: gradients.run_gradients(T=3, train_steps=1, hidden=2, n=2, n_test=2,
                                                               models=v)}[run]
    name = "norm" if run == "run_clipping" else "tanh"
    assert len(call(x for x in [name])) == len(call([name])) > 0
    with pytest.raises(TypeError, match=f"{run}: '(models|modes)' must be a list; got int 3"):
        call(3)                                 # (was "'int' object is not iterable")


def test_run_digits_reads_generators_once():
    pytest.importorskip("sklearn")
    got = digits_exp.run_digits(models=(m for m in ["tanh"]), orders=(o for o in ["plain"]), hidden=2, epochs=1,
                                grid=dict(lr=[0.1], clip=[1.0]), workers=1)
    assert [(r["model"], r["order"]) for r in got] == [("tanh", "plain")]      # (was [])


@pytest.mark.parametrize("n, fractions, error, says", [
    (-1, (0.6, 0.2, 0.2), ValueError, "split_indices: 'n' must be an integer >= 0; got -1"),
    (True, (0.6, 0.2, 0.2), TypeError, "split_indices: 'n' must be an integer >= 0; got True"),
    (2.5, (0.6, 0.2, 0.2), TypeError, "split_indices: 'n' must be an integer >= 0; got 2.5"),
    (10, "abc", ValueError, "split_indices: 'fractions' must be three numbers > 0 summing to 1; got 'abc'")])
def test_split_indices_checks_its_size_and_fractions(n, fractions, error, says):
    # n=-1 gave three empty splits and True one of one example, silently; 2.5 was NumPy's AxisError, "abc" "'>' not
    # supported between instances of 'str' and 'int'"
    with pytest.raises(error, match=says):
        digits.split_indices(n, 0, fractions)
    assert [len(a) for a in digits.split_indices(np.int64(10), 0, np.array([0.6, 0.2, 0.2]))] == [6, 2, 2]


def test_param_average_has_a_repr():
    # (was <fastnn.optim.average.ParamAverage object at 0x7f...>)
    from fastnn.models.classifiers import LogisticRegression
    from fastnn.optim import ParamAverage
    assert repr(ParamAverage(LogisticRegression(3, n_features=4, seed=0))) == "ParamAverage(2 params, 0 steps)"


@pytest.mark.parametrize("make", ["momentum", "adagrad"])
def test_an_optimizer_follows_its_model_cast_with_astype(make):
    # opt = SGD(model, momentum=0.9); model.astype(np.float64); opt.step() was "momentum_: 'v' must have dtype
    # float64 to match 'w'; got float32. Cast 'v'", naming a buffer the user never made (AdaGrad: 'acc')
    from fastnn import optim
    from fastnn.models.classifiers import MLP

    x, y = np.random.default_rng(0).normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 0])
    runs = []
    for cast_first in (True, False):
        model = MLP(3, n_features=4, hidden=5, seed=0)
        if cast_first:
            model.astype(np.float64)
        opt = optim.SGD(model, 0.1, momentum=0.9) if make == "momentum" else optim.AdaGrad(model, 0.1)
        model.astype(np.float64)
        for _ in range(2):
            model.zero_grad()
            model.loss((x, y)).backward()
            opt.step()
        assert {a.dtype for slots in opt.state.values() for a in slots.values()} == {np.dtype(np.float64)}
        assert {a.dtype for slots in opt.state_dict()["state"].values() for a in slots.values()} == {np.dtype("f8")}
        runs.append({k: p.value for k, p in model.parameters().items()})
    for k in runs[0]:       # the same steps as an optimizer built on the float64 model (the state was zero)
        np.testing.assert_allclose(runs[1][k], runs[0][k], rtol=1e-6)
    model.parameters()["out.b"].value = np.zeros(4)
    with pytest.raises(ValueError, match=r"(SGD|AdaGrad): 'out.b' has shape \(4,\) but its optimizer state '(v|acc)' "
                                         r"was made for \(3,\)"):
        opt.step()


@pytest.mark.parametrize("kwargs, error, says", [
    (dict(seed=None), TypeError, "gradcheck: 'seed' must be an int seed or a numpy.random.Generator; got None"),
    (dict(raise_exception="no"), TypeError, "gradcheck: 'raise_exception' must be True or False; got 'no'"),
    (dict(nondet="no"), TypeError, "gradcheck: 'nondet' must be True or False; got 'no'")])
def test_gradcheck_names_a_seed_and_switches(kwargs, error, says):
    # seed=None sampled other entries on every call; raise_exception="no" raised and nondet="no" ran the thread check
    from fastnn import gradcheck, nn
    lin = nn.Linear(3, 2, rng=0, dtype=np.float64)
    x = np.ones((2, 3))
    with pytest.raises(error, match=says):
        gradcheck.gradcheck(lambda: nn.softmax_cross_entropy(lin(x), np.array([0, 1])), lin, max_entries=2, **kwargs)
    with pytest.raises(TypeError, match="gradcheck: 'loss_fn' must be callable"):
        gradcheck.gradcheck(lin(x), lin)            # (the node itself: "'Node' object is not callable")


@pytest.mark.parametrize("make", ["SGD", "AdaGrad", "ParamAverage", "minimize"])
def test_a_model_memory_mapped_read_only_is_refused_where_it_would_train(make, tmp_path):
    # joblib.load(path, mmap_mode="r") gives read-only parameters: prediction works, and the first step failed in a
    # kernel ("sgd_: 'w' must be writeable"; minimize: NumPy's "assignment destination is read-only")
    import copy

    joblib = pytest.importorskip("joblib")
    from fastnn import optim
    from fastnn.models.classifiers import MLP

    x, y = np.random.default_rng(0).normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 0])
    joblib.dump(MLP(3, n_features=4, hidden=5, seed=0), tmp_path / "m.joblib")
    model = joblib.load(tmp_path / "m.joblib", mmap_mode="r")
    assert model.predict(x).shape == (6,)
    call = {"SGD": lambda m: optim.SGD(m, 0.1), "AdaGrad": lambda m: optim.AdaGrad(m, 0.1),
            "ParamAverage": optim.ParamAverage, "minimize": lambda m: optim.minimize(m, (x, y), maxiter=1)}[make]
    with pytest.raises(ValueError, match=rf"{make}: 'hidden.W' must be writeable \(it is updated in place\); got a "
                                         r"read-only array, as joblib.load\(..., mmap_mode='r'\) gives. Train a copy"):
        call(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # (minimize: scipy stops at maxiter=1)
        call(copy.deepcopy(model))                          # the remedy it names


def test_ranking_batches_need_a_sampler():
    # sampler=None was accepted, and the first batch of training failed: 'NoneType' object has no attribute 'draw'
    from fastnn.models.ranking import NegativeSampler, RankingBatches, padded_stream
    padded, centres = padded_stream([[2, 3, 4], [5, 6]], 3)
    with pytest.raises(TypeError, match=r"RankingBatches: 'sampler' must have a draw\(centres, rng\) method, e.g. "
                                        r"NegativeSampler\(counts\); got NoneType"):
        RankingBatches(padded, centres, window=3, batch_size=2, sampler=None)
    assert len(RankingBatches(padded, centres, window=3, batch_size=2, sampler=NegativeSampler([1] * 7))) == 3


def test_a_dict_of_layers_and_a_list_of_params_are_the_modules_parameters():
    # a user's Module holding {"a": nn.Linear(...), ...} or [Param, ...] had them left out of parameters(): no
    # optimizer trained them and no model file held them, silently (only lists of Modules were read); eval() did not
    # reach a dict's dropout
    from fastnn import nn, optim
    from fastnn.graph import Module, Param

    class Net(Module):
        def __init__(self):
            self.layers = {"a": nn.Linear(3, 4, rng=0, dtype=np.float64), "b": nn.Linear(4, 2, rng=1, dtype=np.float64)}
            self.drop = {"d": nn.Dropout(0.5, rng=0)}
            self.scales = [Param("s", np.ones(2))]
            self.settings = {"width": 4}                # data, not parameters
            self.sizes = [3, 4, 2]

        def loss(self, x, y):
            h = self.drop["d"](nn.tanh(self.layers["a"](x)))
            return nn.softmax_cross_entropy(nn.mul(self.layers["b"](h), nn.param(self.scales[0])), y)

    net = Net()
    assert list(net.parameters()) == ["layers.a.W", "layers.a.b", "layers.b.W", "layers.b.b", "scales.0"]
    assert not net.eval().drop["d"].training and net.train().drop["d"].training
    before = {k: p.value.copy() for k, p in net.parameters().items()}
    opt = optim.SGD(net, 0.5)
    net.loss(np.ones((2, 3)), np.array([0, 1])).backward()
    opt.step()
    assert all(not np.array_equal(before[k], p.value) for k, p in net.parameters().items())


@pytest.mark.parametrize("rows, error, says", [
    ([1, 1], ValueError, r"SGD: the RowGrad of 'E' must have unique ascending rows \(a coalesced RowGrad\)"),
    ([3, 1], ValueError, r"SGD: the RowGrad of 'E' must have unique ascending rows"),
    ([1, 9], IndexError, r"SGD: the RowGrad of 'E' must have integer rows in \[0, 5\); got int64 rows from 1 to 9")])
def test_sgd_with_momentum_refuses_a_row_gradient_that_is_not_coalesced(rows, error, says):
    # a user's RowGrad([1, 1], ...) was applied once (NumPy's fancy assignment keeps the last write), silently, where
    # plain SGD and AdaGrad refuse it; a row past the table was NumPy's "index 9 is out of bounds for axis 0"
    from fastnn import optim
    from fastnn.graph import Param, RowGrad
    E = Param("E", np.ones((5, 2), np.float32), sparse=True)
    opt = optim.SGD({"E": E}, 0.1, momentum=0.9)
    E.grad = RowGrad(np.array(rows), np.ones((2, 2), np.float32), 5)
    with pytest.raises(error, match=says):
        opt.step()
    E.grad = RowGrad.from_rows(np.array([1, 1]), np.ones((2, 2), np.float32), 5)
    opt.step()
    np.testing.assert_allclose(E.value[1], 1 - 0.1 * 2)


def test_write_vectors_takes_integer_vectors(tmp_path):
    # write_vectors(path, ["a", "b"], [[1, 2], [3, 4]]) was "'vectors' must hold finite floats; got dtype int64",
    # though init_pretrained reads integer vectors
    from fastnn.data import vectors
    vectors.write_vectors(tmp_path / "v.txt", ["a", "b"], [[1, 2], [3, 4]])
    words, vecs = vectors.read_vectors(tmp_path / "v.txt")
    assert words == ["a", "b"] and vecs.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="write_vectors: 'vectors' must hold finite numbers; got dtype <U1"):
        vectors.write_vectors(tmp_path / "w.txt", ["a"], [["x"]])


def test_an_optimizers_repr_shows_its_own_settings():
    # AdaGrad's repr left out eps and initial_accumulator (the constants that differ between libraries), SGD's
    # nesterov
    from fastnn import optim
    from fastnn.models.classifiers import MLP
    model = MLP(3, n_features=4, hidden=5, seed=0)
    assert repr(optim.AdaGrad(model, 0.1, eps=1e-8)) == ("AdaGrad(4 params, lr=Constant(value=0.1), eps=1e-08, "
                                                        "initial_accumulator=0, weight_decay=0.0, l1=0.0)")
    assert repr(optim.SGD(model, 0.1, momentum=0.9, nesterov=True)) == (
        "SGD(4 params, lr=Constant(value=0.1), momentum=Constant(value=0.9), nesterov=True, weight_decay=0.0, l1=0.0)")
    assert repr(optim.SGD(model, 0.1)) == "SGD(4 params, lr=Constant(value=0.1), weight_decay=0.0, l1=0.0)"


def test_toy_batch_takes_a_rungs_name_as_ladder_does():
    # toy_batch(3, "two_softmaxes") was "invalid literal for int() with base 10", though the code meant to read it;
    # rung 9 (no such rung) made a batch
    assert toy_batch(3, "two_softmaxes")[1].shape == (3, 2) and toy_batch(3, "softmax")[1].shape == (3,)
    with pytest.raises(ValueError, match="toy_batch: 'rung' must be 1..6 or one of"):
        toy_batch(3, 9)
    with pytest.raises(TypeError, match="toy_batch: 'n' must be an integer >= 0; got True"):
        toy_batch(True, 3)


def test_the_adding_experiments_train_names_its_seed():
    # train(model, ..., seed=None) drew batches no one could draw again, silently; seed=True ran as seed 1
    model = adding_exp.make_model("tanh", dict(adding_exp.DEFAULTS, hidden=2), 0)
    run = lambda seed: adding_exp.train(model, T=3, steps=1, lr=0.01, batch_size=2, eval_every=0, seed=seed)  # noqa
    for seed, error in ((None, TypeError), (True, TypeError), ([0, -1], ValueError)):
        with pytest.raises(error, match="train: 'seed' must be an int seed"):
            run(seed)
    for seed in (0, [0, 3], np.random.default_rng(0)):
        assert run(seed)["steps"] == 1


def test_a_sparsity_penalty_of_an_empty_batch_is_refused():
    # the mean over no row was a nan penalty, with NumPy's RuntimeWarning "Mean of empty slice"
    from fastnn import graph, optim
    with pytest.raises(ValueError, match=r"sparsity_penalty: 'h' must hold at least one row of activations; got shape "
                                         r"\(0, 3\)"):
        optim.sparsity_penalty(graph.constant(np.full((0, 3), 0.5)))


@pytest.mark.parametrize("pads, error, says", [
    (dict(pad_word_id=True), TypeError, "windows: 'pad_word_id' must be an integer >= 0; got True"),
    (dict(pad_word_id=-1), ValueError, "windows: 'pad_word_id' must be an integer >= 0; got -1"),
    (dict(pad_caps_id=1.0), TypeError, "windows: 'pad_caps_id' must be an integer >= 0; got 1.0")])
def test_windows_checks_its_padding_ids(pads, error, says):
    # pad_word_id=True padded with id 1 and -1 with an id no embedding row has, silently
    from fastnn.data import conll
    with pytest.raises(error, match=says):
        conll.windows([np.array([1, 2])], [np.array([0, 1])], window=3, **pads)
    assert conll.windows([np.array([1, 2])], window=3, pad_word_id=np.int64(0))[0].tolist() == [[0, 1, 2], [1, 2, 0]]


@pytest.mark.parametrize("pad_id, error", [(True, TypeError), (-1, ValueError), (1.0, TypeError)])
def test_padded_stream_checks_its_padding_id(pad_id, error):
    # padded_stream([[2, 3]], 3, pad_id=True) padded with id 1 and -1 with an id no embedding row has, silently
    # (NegativeSampler and WindowRanker refused the same pad_id)
    from fastnn.models.ranking import padded_stream
    with pytest.raises(error, match=f"padded_stream: 'pad_id' must be an integer >= 0; got {pad_id!r}"):
        padded_stream([[2, 3]], 3, pad_id=pad_id)
