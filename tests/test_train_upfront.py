"""The Trainer checks everything a run needs before its first step, not when first used after an epoch (or an
hour): validate / loss_fn / callback callable, the checkpoint writable, at least one batch, an optimizer over the
model's own parameters; and a validate that returns no number is named."""
import numpy as np
import pytest

from fastnn import optim
from fastnn.models.classifiers import LogisticRegression
from fastnn.train import ArrayBatches, Trainer


@pytest.fixture
def run(rng):
    X = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    calls = []

    def make(data=None, opt=None, **kw):
        model = LogisticRegression(3, n_features=4, seed=0)
        loss_fn = kw.pop("loss_fn", lambda m, b: (calls.append(1), m.loss(b))[1])
        return Trainer(model, opt or optim.SGD(model.parameters(), lr=0.1),
                       data if data is not None else ArrayBatches(X, y, batch_size=5), epochs=2, quiet=True,
                       loss_fn=loss_fn, **kw)
    make.calls, make.X, make.y = calls, X, y
    return make


@pytest.mark.parametrize("name", ["validate", "loss_fn", "callback"])
def test_callables_are_checked_up_front(run, name):
    with pytest.raises(TypeError, match=rf"Trainer: '{name}' must be callable, taking \(.*\); got tuple"):
        run(**{name: (run.X, run.y)}, **({"mode": "max"} if name == "validate" else {}))


@pytest.mark.parametrize("where, err, msg", [("missing", FileNotFoundError, "must be in an existing directory"),
                                             ("dir", IsADirectoryError, "must be a file path, not a directory")])
def test_an_unwritable_checkpoint_fails_before_the_first_step(run, tmp_path, where, err, msg):
    path = tmp_path / "no" / "run.ckpt" if where == "missing" else tmp_path
    with pytest.raises(err, match=f"Trainer: 'checkpoint' {msg}"):
        run(checkpoint=path).fit()
    assert run.calls == []                          # (it failed at the first save, after the first epoch)
    with pytest.raises(TypeError, match="'checkpoint' must be a file path"):
        run(checkpoint=3)


@pytest.mark.parametrize("n, drop_last", [(0, False), (3, True)])
def test_data_without_a_batch(run, n, drop_last):
    # an epoch of no step: a nan training loss, the untrained model validated and kept, no error
    with pytest.raises(ValueError, match="'data' must make at least one batch per epoch"):
        run(ArrayBatches(run.X[:n], run.y[:n], batch_size=5, drop_last=drop_last))
    with pytest.raises(ValueError, match="at least one batch per epoch; got none for epoch 1"):
        run(lambda epoch, rng: []).fit()


def test_an_optimizer_over_another_models_parameters(run):
    # it trained the other model: this one stayed untrained, silently
    other = LogisticRegression(3, n_features=4, seed=0)
    with pytest.raises(ValueError, match=r"'optimizer' must update the model's parameters; got 2 it does not hold"):
        run(opt=optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="'optimizer' must be a fastnn.optim optimizer"):
        run(opt="sgd")


@pytest.mark.parametrize("score", [None, "0.9", (0.9,), True])
def test_validate_must_return_a_number(run, score):
    with pytest.raises(TypeError, match="'validate' must return a number .* after epoch 1"):
        run(validate=lambda m: score, mode="max").fit()


def test_array_batches_of_a_generator(run):
    with pytest.raises(TypeError, match="ArrayBatches: array 0 must be an array .* of rows; got generator"):
        ArrayBatches((x for x in run.X), batch_size=5)


def test_overfit_checks_its_arguments(run):
    from fastnn.train import overfit
    model = LogisticRegression(3, n_features=4, seed=0)
    with pytest.raises(TypeError, match="overfit: 'threshold' must be a real number"):
        overfit(model, (run.X, run.y), threshold="0.1")
    other = LogisticRegression(3, n_features=4, seed=0)
    with pytest.raises(ValueError, match="overfit: 'optimizer' must update the model's parameters"):
        overfit(model, (run.X, run.y), optimizer=optim.SGD(other.parameters(), lr=0.1))


def test_data_returning_a_generator(run):
    with pytest.raises(TypeError, match=r"Trainer.fit: data\(epoch, rng\) must return a sequence of batches .*; got "
                                        "generator"):
        run(lambda epoch, rng: ((run.X[i:i + 5], run.y[i:i + 5]) for i in range(0, 20, 5))).fit()
    history = run(lambda epoch, rng: [(run.X[i:i + 5], run.y[i:i + 5]) for i in range(0, 20, 5)]).fit()
    assert len(history) == 2 and history[-1]["step"] == 8



def _bare_model(config=None):
    from fastnn import graph, nn

    class Net(graph.Module):
        def __init__(self):
            self.out = nn.Linear(4, 3, rng=np.random.default_rng(0))

        def loss(self, batch):
            return nn.softmax_cross_entropy(self.out(batch[0]), batch[1])

    if config is not None:
        Net.config = lambda self: config
    return Net()


@pytest.mark.parametrize("config", [None, {"rng": np.random.default_rng(0)}], ids=["no-config", "not-json"])
def test_a_model_a_checkpoint_cannot_hold_fails_before_the_first_epoch(run, tmp_path, config):
    # the first save (after epoch 1) failed: the epoch's work lost
    model = _bare_model(config)
    with pytest.raises(TypeError, match="Trainer: .*config()"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(run.X, run.y, batch_size=5),
                checkpoint=tmp_path / "run.ckpt", quiet=True)
    Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(run.X, run.y, batch_size=5), epochs=1,
            quiet=True).fit()                        # without a checkpoint it needs none


def test_a_model_without_loss(run):
    from fastnn import graph, nn

    class NoLoss(graph.Module):
        def __init__(self):
            self.out = nn.Linear(4, 3, rng=np.random.default_rng(0))

    model = NoLoss()
    with pytest.raises(TypeError, match="Trainer: the model must have a loss\\(batch\\) method, or pass loss_fn"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(run.X, run.y, batch_size=5))


def test_a_non_finite_validation_score_is_said(run):
    # every epoch scored nan: no epoch was ever 'best', silently.  With on_nonfinite="skip" a warning (the default,
    # "raise", ends the run as a divergence: tests/test_boundary16.py)
    with pytest.warns(RuntimeWarning, match=r"'validate' gave nan after epoch \d; a non-finite score never counts"):
        history = run(validate=lambda m: float("nan"), mode="max", on_nonfinite="skip").fit()
    assert [h["best"] for h in history] == [False, False]


@pytest.mark.parametrize("score", [np.float32(0.5), np.array(0.5), np.array(0.5, dtype=np.float32), 1])
def test_validate_may_return_any_real_number(run, score):
    # e.g. validate=lambda m: m.loss(dev).value, a 0-d array
    history = run(validate=lambda m: score, mode="max").fit()
    assert history[0]["valid"] == float(score)


@pytest.mark.parametrize("name, f", [("validate", lambda: 0.5), ("loss_fn", lambda batch: None),
                                     ("callback", lambda record: None)])
def test_callables_must_take_their_arguments(run, name, f):
    # each failed when first called: validate and callback after the first epoch
    with pytest.raises(TypeError, match=f"Trainer: '{name}' must take \\(.*\\); got a callable that cannot be called"):
        run(**{name: f}, **({"mode": "max"} if name == "validate" else {}))
    run(validate=lambda m, *rest: 0.5, mode="max", callback=lambda *a, **k: None)     # (any that can be called so)


@pytest.mark.parametrize("name", ["shuffle", "drop_last"])
def test_array_batches_switches_are_bools(run, name):
    with pytest.raises(TypeError, match=f"ArrayBatches: '{name}' must be True or False; got 'False'"):
        ArrayBatches(run.X, run.y, batch_size=5, **{name: "False"})      # was read as true


@pytest.mark.parametrize("name", ["restore_best", "quiet", "average"])
def test_trainer_switches_are_bools(run, name):
    with pytest.raises(TypeError, match=f"Trainer: '{name}' must be True or False; got 'no'"):
        model = LogisticRegression(3, n_features=4, seed=0)
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(run.X, run.y, batch_size=5),
                **{name: "no"})


def test_data_given_as_arrays_or_a_list_of_batches_says_what_to_pass(run):
    with pytest.raises(TypeError, match=r"'data' must have an epoch\(rng\) method .*; got tuple. For arrays \(X, y\) "
                                        r"pass ArrayBatches"):
        run((run.X, run.y))
    with pytest.raises(TypeError, match="got list. For a fixed list of batches pass data=lambda epoch, rng: batches"):
        run([(run.X[:5], run.y[:5]), (run.X[5:10], run.y[5:10])])
