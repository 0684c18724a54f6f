"""fastnn.train: batches, validation and early stopping, exact resume (in process, Ctrl-C, and a real SIGKILL),
non-finite handling, the overfit check, progress output."""
import io as _io
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastnn import io, kernels, optim
from fastnn.graph import Module, Node, Param
from fastnn.train import ArrayBatches, Trainer, TrainingInterrupted, model_generators, overfit

from tests.conftest import REPO


class Tiny(Module):
    """Softmax regression on dense features, plus optional sparse per-index class scores and input dropout;
    built straight from graph.Node so the trainer is tested without fastnn.nn."""

    def __init__(self, d=5, c=3, vocab=0, dropout=0.0, seed=0, dtype="float64"):
        rng = np.random.default_rng(seed)
        self.cfg = dict(d=d, c=c, vocab=vocab, dropout=dropout, seed=seed, dtype=dtype)
        self.W = Param("W", rng.normal(0, 0.1, (c, d)).astype(dtype))
        self.b = Param("b", np.zeros(c, dtype), decay=False)
        if vocab:
            self.E = Param("E", rng.normal(0, 0.1, (vocab, c)).astype(dtype), sparse=True)
        self.drop_rng = np.random.default_rng(seed + 1) if dropout else None

    def config(self):
        return dict(self.cfg)

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    def loss(self, batch):
        X, y = batch[0], batch[1]
        if self.drop_rng is not None and self.training:
            X = X * (self.drop_rng.random(X.shape) > self.cfg["dropout"]) / (1 - self.cfg["dropout"])
        logits = X @ self.W.value.T + self.b.value
        if self.cfg["vocab"]:
            logits = logits + self.E.value[batch[2]]
        losses, g = kernels.softmax_xent(np.ascontiguousarray(logits), y, scale=1.0 / len(y))

        def backward_fn(grad):
            gg = g * float(grad)
            self.W.add_grad(gg.T @ X)
            self.b.add_grad(gg.sum(0))
            if self.cfg["vocab"]:
                self.E.add_row_grad(batch[2], gg)
        return Node(np.asarray(losses.mean()), (), backward_fn, "tiny_xent")


def make_data(n=200, d=5, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    idx = rng.integers(0, vocab, n)
    y = ((X[:, 0] > 0).astype(int) + (idx % 2)).astype(np.intp)
    return X, y, idx


def build(seed=0, patience=None, **kw):
    """A model + AdaGrad-with-plateau + trainer setup used by the resume tests."""
    X, y, idx = make_data()
    model = Tiny(vocab=20, dropout=0.2, seed=seed)
    opt = optim.AdaGrad(model.parameters(), lr=optim.HalveOnPlateau(0.3, patience=0, threshold=0.05),
                        weight_decay=1e-3, l1=1e-4)
    Xv, yv, iv = make_data(100, seed=1)
    trainer = Trainer(model, opt, ArrayBatches(X, y, idx, batch_size=16), epochs=4,
                      validate=lambda m: float(m.loss((Xv, yv, iv)).value), mode="min", patience=patience, seed=seed,
                      quiet=True, clip_norm=1.0, **kw)
    return model, trainer


def params_of(model):
    return {n: p.value.copy() for n, p in model.parameters().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---- batches -----------------------------------------------------------------------------------------------------

def test_array_batches_cover_each_row_once_and_shuffle_by_seed():
    X = np.arange(23)[:, None] * np.ones((1, 2))
    y = np.arange(23)
    data = ArrayBatches(X, y, batch_size=5)
    assert len(data) == 5
    plan = data.epoch(np.random.default_rng(3))
    seen = np.concatenate([plan[i][1] for i in range(len(plan))])
    assert sorted(seen) == list(range(23)) and list(seen) != list(range(23))
    again = data.epoch(np.random.default_rng(3))
    np.testing.assert_array_equal(plan[2][0], again[2][0])
    np.testing.assert_array_equal(plan[2][0][:, 0], plan[2][1])              # rows stay aligned
    assert len(ArrayBatches(X, batch_size=5, drop_last=True)) == 4
    seq = ArrayBatches(y, batch_size=10, shuffle=False).epoch(np.random.default_rng(0))
    np.testing.assert_array_equal(seq[2], [20, 21, 22])
    with pytest.raises(IndexError, match=r"batch index must be in \[0, 3\); got 3"):
        seq[3]


def test_array_batches_errors():
    with pytest.raises(ValueError, match="every array must have 4 rows like the first; got shape"):
        ArrayBatches(np.zeros(4), np.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="'batch_size' must be >= 1"):
        ArrayBatches(np.zeros(4), batch_size=0)


# ---- the loop ----------------------------------------------------------------------------------------------------

def test_fit_learns_and_records_history():
    model, trainer = build()
    before = float(model.loss(make_data()).value)
    history = trainer.fit()
    assert len(history) == 4
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < before
    assert history[-1]["step"] == 4 * 13
    assert trainer.best_score == min(h["valid"] for h in history)


def test_early_stopping_restores_best_params():
    X, y, idx = make_data()
    model = Tiny(vocab=20)
    scores = iter([3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    snaps = []
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=50),
                      epochs=8, validate=lambda m: next(scores), mode="min", patience=1, quiet=True,
                      callback=lambda t, rec: snaps.append(params_of(t.model)))
    history = trainer.fit()
    assert len(history) == 5                         # epochs 4 and 5 did not improve on epoch 3
    assert trainer.best_epoch == 3 and [h["best"] for h in history] == [True, True, True, False, False]
    assert_same(params_of(model), snaps[2])


def test_callable_data_and_loss_fn():
    X, y, idx = make_data()
    model = Tiny(vocab=20)
    seen = []

    def data(epoch, rng):
        seen.append(epoch)
        return [(X[:50], y[:50], idx[:50]), (X[50:], y[50:], idx[50:])]

    Trainer(model, optim.SGD(model.parameters(), 0.1), data, epochs=2, quiet=True,
            loss_fn=lambda m, b: m.loss(b)).fit()
    assert seen == [0, 1]


def test_model_generators_found():
    model = Tiny(dropout=0.5)
    assert list(model_generators(model)) == ["drop_rng"]


# ---- exact resume ------------------------------------------------------------------------------------------------

class Boom(Exception):
    pass


def test_resume_mid_epoch_equals_uninterrupted(tmp_path):
    ref_model, ref = build()
    ref.fit()
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path, checkpoint_every=5)
    calls = [0]
    orig = trainer.loss_fn

    def exploding(m, b):
        calls[0] += 1
        if calls[0] == 23:                          # epoch 2, after the checkpoint at step 20
            raise Boom()
        return orig(m, b)

    trainer.loss_fn = exploding
    with pytest.raises(Boom):
        trainer.fit()
    state = io.load_checkpoint(path, Tiny(vocab=20, dropout=0.2))
    assert (state["epoch"], state["position"], state["step"]) == (1, 7, 20)
    model2, trainer2 = build(checkpoint=path, checkpoint_every=5)
    trainer2.fit(resume=True)
    assert_same(params_of(model2), params_of(ref_model))
    assert [h["valid"] for h in trainer2.history] == [h["valid"] for h in ref.history]
    assert [h["train_loss"] for h in trainer2.history] == [h["train_loss"] for h in ref.history]


def test_resume_mid_epoch_with_another_batch_size_is_refused(tmp_path):
    # batch 7 of another plan was silently another part of the data (past the plan's end: the epoch's rest skipped)
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path, checkpoint_every=5)
    orig, calls = trainer.loss_fn, [0]

    def exploding(m, b):
        calls[0] += 1
        if calls[0] == 23:                          # epoch 2 (13 batches of 16), after the checkpoint at step 20
            raise Boom()
        return orig(m, b)

    trainer.loss_fn = exploding
    with pytest.raises(Boom):
        trainer.fit()
    for batch_size in (64, 8):
        model2, trainer2 = build(checkpoint=path)
        trainer2.data = ArrayBatches(*make_data(), batch_size=batch_size)
        with pytest.raises(ValueError, match=r"stopped after batch 7 of an epoch of 13 batches, but the data now makes "
                                             r"\d+ batches per epoch \(other data or another batch size\?\)"):
            trainer2.fit(resume=True)
    model3, trainer3 = build(checkpoint=path)
    trainer3.fit(resume=True)


def test_resume_with_averaging_equals_uninterrupted(tmp_path):
    ref_model, ref = build(average=True)
    ref.fit()
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path, checkpoint_every=5, average=True)
    orig, calls = trainer.loss_fn, [0]

    def exploding(m, b):
        calls[0] += 1
        if calls[0] == 30:
            raise Boom()
        return orig(m, b)

    trainer.loss_fn = exploding
    with pytest.raises(Boom):
        trainer.fit()
    model2, trainer2 = build(checkpoint=path, average=True)
    trainer2.fit(resume=True)
    assert_same(params_of(model2), params_of(ref_model))
    _, plain = build(checkpoint=path)
    with pytest.raises(ValueError, match="written with average=True, so the trainer must be too"):
        plain.fit(resume=True)


def test_averaging_validates_keeps_and_ends_with_the_mean():
    X, y, idx = make_data()
    model = Tiny(vocab=20)
    scored = []

    def validate(m):
        scored.append(params_of(m))
        return -float(m.loss((X, y, idx)).value)

    trainer = Trainer(model, optim.AdaGrad(model.parameters(), 0.5), ArrayBatches(X, y, idx, batch_size=20),
                      epochs=3, validate=validate, mode="max", quiet=True, average=True)
    trainer.fit()
    best = trainer.best_epoch - 1
    assert_same(params_of(model), scored[best])
    assert trainer.averager.steps == 30
    assert_same(scored[-1], trainer.averager.mean())           # the mean is still that of the steps taken
    assert not np.allclose(scored[0]["W"], scored[-1]["W"])


def test_average_start_means_the_parameters_from_that_epoch_on():
    X, y, idx = make_data()
    model = Tiny(vocab=20)                                   # a sparse table too: its rows are summed lazily
    seen, scored, raw = [], [], []

    def loss_fn(m, b):                                       # call i sees the parameters after i steps
        seen.append(params_of(m))
        return m.loss(b)

    def validate(m):
        scored.append(params_of(m))
        return float(len(scored))                            # every epoch is the best so far

    trainer = Trainer(model, optim.AdaGrad(model.parameters(), 0.5), ArrayBatches(X, y, idx, batch_size=20),
                      epochs=3, validate=validate, mode="max", quiet=True, average=True, average_start=1,
                      loss_fn=loss_fn, callback=lambda t, rec: raw.append(params_of(t.model)))
    trainer.fit()
    assert len(seen) == 30 and trainer.averager.steps == 20
    seen.append(raw[-1])                                     # the parameters after the last step
    assert_same(scored[0], seen[10])                         # epoch 1 is scored on its own parameters
    for name in seen[0]:                                     # then the mean from the start of epoch 2 on
        for epoch, end in ((2, 20), (3, 30)):
            np.testing.assert_allclose(scored[epoch - 1][name], np.mean([s[name] for s in seen[10:end + 1]], axis=0),
                                       rtol=1e-12, atol=1e-15, err_msg=f"{name}, epoch {epoch}")
    assert_same(params_of(model), scored[2])
    with pytest.raises(ValueError, match="'average_start' must be"):
        Trainer(model, optim.AdaGrad(model.parameters(), 0.5), ArrayBatches(X, y, idx, batch_size=20),
                average=True, average_start=-1)


def test_resume_with_a_late_average_start_equals_uninterrupted(tmp_path):
    ref_model, ref = build(average=True, average_start=2)
    ref.fit()
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path, checkpoint_every=5, average=True, average_start=2)
    orig, calls = trainer.loss_fn, [0]

    def exploding(m, b):
        calls[0] += 1
        if calls[0] == 20:                                   # in epoch 2, before the mean restarts
            raise Boom()
        return orig(m, b)

    trainer.loss_fn = exploding
    with pytest.raises(Boom):
        trainer.fit()
    model2, trainer2 = build(checkpoint=path, average=True, average_start=2)
    trainer2.fit(resume=True)
    assert_same(params_of(model2), params_of(ref_model))
    assert [h["valid"] for h in trainer2.history] == [h["valid"] for h in ref.history]
    _, plain = build(average=True)
    plain.fit()
    assert [h["valid"] for h in plain.history][2:] != [h["valid"] for h in ref.history][2:]


def test_averaging_without_validation_ends_with_the_mean():
    X, y, idx = make_data()
    model = Tiny(vocab=20)
    last = {}
    trainer = Trainer(model, optim.AdaGrad(model.parameters(), 0.5), ArrayBatches(X, y, idx, batch_size=20),
                      epochs=2, quiet=True, average=True, callback=lambda t, rec: last.update(params_of(t.model)))
    trainer.fit()
    assert_same(params_of(model), trainer.averager.mean())
    assert not np.allclose(params_of(model)["E"], last["E"])


def test_ctrl_c_writes_checkpoint_and_resumes(tmp_path):
    ref_model, ref = build()
    ref.fit()
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path)
    calls = [0]
    orig = trainer.loss_fn

    def interrupting(m, b):
        calls[0] += 1
        if calls[0] == 30:
            os.kill(os.getpid(), signal.SIGINT)     # handled: the step finishes, then a checkpoint is written
        return orig(m, b)

    trainer.loss_fn = interrupting
    before = signal.getsignal(signal.SIGINT)      # default_int_handler; SIG_IGN in a shell's background job
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    state = io.load_checkpoint(path, Tiny(vocab=20, dropout=0.2))
    assert (state["epoch"], state["position"], state["step"]) == (2, 4, 30)
    assert signal.getsignal(signal.SIGINT) is before
    model2, trainer2 = build(checkpoint=path)
    trainer2.fit(resume=True)
    assert_same(params_of(model2), params_of(ref_model))


def _interrupt_at(trainer, step, times=1):
    """Send this process SIGINT `times` times during loss evaluation number `step` (1-based) of `trainer`."""
    calls, orig = [0], trainer.loss_fn

    def interrupting(m, b):
        calls[0] += 1
        if calls[0] == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return orig(m, b)

    trainer.loss_fn = interrupting


def test_ctrl_c_ends_the_run_with_the_best_epoch_so_the_work_can_be_saved():
    """The first Ctrl-C stops after the step and leaves the model as a run set to stop there would (the best epoch's
    parameters); a second one stops at once, with no claim about the parameters."""
    model, trainer = build()
    _interrupt_at(trainer, 30)                    # epoch 3 of 4 (13 batches each)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    st = info.value.trainer.state
    assert info.value.trainer is trainer and st.epoch == 2 and len(st.history) == 2
    assert st.best_epoch in (1, 2)
    assert_same(params_of(model), st.best_params)
    model, trainer = build()
    _interrupt_at(trainer, 30, times=2)
    with pytest.raises(KeyboardInterrupt) as info:
        trainer.fit()
    assert not isinstance(info.value, TrainingInterrupted)


def test_ctrl_c_message_says_what_happened_and_leaves_the_how_to_resume_to_the_caller(tmp_path, capsys):
    """The trainer printed "resume with fit(resume=True)" at the CLI too (whose resume is --resume): now the exception
    says it, in the words every Python front end shares (Trainer.fit and the recipes take resume=True), and a caller
    that catches it (the CLI) gives its own."""
    model, trainer = build(checkpoint=str(tmp_path / "ck.npz"))
    trainer.quiet = False
    _interrupt_at(trainer, 30)
    with pytest.raises(TrainingInterrupted, match=r"in epoch 3; checkpoint written to .*ck\.npz: resume=True with "
                                                  r"the same checkpoint continues the run") as info:
        trainer.fit()
    assert "resume" not in capsys.readouterr().err
    # a front end with other words for resuming (the CLI's --resume) reads the parts, not the Python text
    assert info.value.checkpoint == str(tmp_path / "ck.npz")
    assert info.value.message == f"training interrupted in epoch 3; checkpoint written to {tmp_path / 'ck.npz'}"
    model, trainer = build()
    _interrupt_at(trainer, 30)
    with pytest.raises(TrainingInterrupted, match=r"^training interrupted in epoch 3$"):     # nothing to resume from
        trainer.fit()


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from fastnn import io
    from tests.test_train import build
    mode, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    model, trainer = build(checkpoint=ckpt if mode != "plain" else None, checkpoint_every=3 if mode != "plain" else None)
    orig = trainer.loss_fn
    def loss_fn(m, b):
        if mode == "slow" and trainer.step == 20:    # epoch 2 of 4 (13 batches each), mid-way: wait to be killed
            print("step 20", flush=True)
            time.sleep(120)
        return orig(m, b)
    trainer.loss_fn = loss_fn
    trainer.fit(resume=(mode == "resume"))
    io.save_model(out, model)
""")


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(repo=REPO))
    ckpt, out_ref, out_res = (str(tmp_path / n) for n in ("run.ckpt", "ref.npz", "resumed.npz"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(script), "plain", "-", out_ref], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([sys.executable, str(script), "slow", ckpt, "-"], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "step 20"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = io.load_checkpoint(ckpt, Tiny(vocab=20, dropout=0.2))
    assert (state["epoch"], state["position"], state["step"]) == (1, 5, 18)   # the last good checkpoint, mid-epoch
    subprocess.run([sys.executable, str(script), "resume", ckpt, out_res], check=True, env=env, capture_output=True)
    ref = io.load_model(out_ref, Tiny)
    res = io.load_model(out_res, Tiny)
    assert_same(params_of(res), params_of(ref))


def test_resume_needs_checkpoint(tmp_path):
    _, trainer = build(checkpoint=str(tmp_path / "missing.ckpt"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        trainer.fit(resume=True)
    _, trainer = build()
    with pytest.raises(ValueError, match="'checkpoint' must be set to resume"):
        trainer.fit(resume=True)


# ---- non-finite values -------------------------------------------------------------------------------------------

def test_nonfinite_loss_raises_naming_the_step(tmp_path):
    path = str(tmp_path / "c.ckpt")
    model, trainer = build(checkpoint=path, checkpoint_every=2)
    orig, calls = trainer.loss_fn, [0]

    def bad(m, b):
        calls[0] += 1
        node = orig(m, b)
        return Node(np.asarray(np.nan), (), None, "nan") if calls[0] == 5 else node

    trainer.loss_fn = bad
    with pytest.raises(FloatingPointError, match=r"the loss \(nan\) must be finite; got a non-finite value at step 5 "
                                                 r"\(epoch 1, batch 5\)\. The last good checkpoint is"):
        trainer.fit()
    assert io.load_checkpoint(path, Tiny(vocab=20, dropout=0.2))["step"] == 4


@pytest.mark.filterwarnings("error::RuntimeWarning")     # numpy's own warnings would only precede the Trainer's
def test_nonfinite_gradient_names_param_or_skips():
    X, y, idx = make_data()
    X = X.copy()
    X[7, 2] = np.inf                                 # poisons W's gradient (and the loss) in one batch
    model = Tiny(vocab=20)

    def loss_fn(m, b):
        node = m.loss(b)
        node.value = np.asarray(np.nan_to_num(node.value))    # keep the loss finite: test the gradient check
        return node

    data = ArrayBatches(X, y, idx, batch_size=50, shuffle=False)
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), data, epochs=1, quiet=True, loss_fn=loss_fn)
    with pytest.raises(FloatingPointError, match="the gradient of 'W' must be finite; got a non-finite value at step 1"):
        trainer.fit()
    model = Tiny(vocab=20)
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), data, epochs=2, quiet=True, loss_fn=loss_fn,
                      on_nonfinite="skip")
    history = trainer.fit()
    assert trainer.skipped == 2 and history[-1]["step"] == 6
    assert all(np.isfinite(p.value).all() for p in model.parameters().values())


def test_trainer_errors():
    model = Tiny()
    opt = optim.SGD(model.parameters(), 0.1)
    data = ArrayBatches(np.zeros((4, 5)), np.zeros(4, int), batch_size=2)
    with pytest.raises(ValueError, match="'on_nonfinite' must be 'raise' or 'skip'; got 'ignore'"):
        Trainer(model, opt, data, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="'checkpoint' must be a path when checkpoint_every is set"):
        Trainer(model, opt, data, checkpoint_every=10)
    with pytest.raises(TypeError, match="'data' must have an epoch"):
        Trainer(model, opt, 42)
    with pytest.raises(TypeError, match="'model' must be a fastnn.graph.Module"):
        Trainer(object(), opt, data)


def test_validation_direction_is_never_guessed():
    model = Tiny()
    opt = optim.SGD(model.parameters(), 0.1)
    data = ArrayBatches(np.zeros((4, 5)), np.zeros(4, int), batch_size=2)
    with pytest.raises(ValueError, match="'mode' must be given with validate: 'max' when higher scores are better"):
        Trainer(model, opt, data, validate=lambda m: 1.0)
    with pytest.raises(ValueError, match="'mode' must be 'max'.*or 'min'.*; got 'up'"):
        Trainer(model, opt, data, validate=lambda m: 1.0, mode="up")
    with pytest.warns(DeprecationWarning, match="higher_is_better= is deprecated"):
        assert Trainer(model, opt, data, validate=lambda m: 1.0, higher_is_better=True).mode == "max"
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts higher_is_better"):
        Trainer(model, opt, data, validate=lambda m: 1.0, mode="min", higher_is_better=True)
    Trainer(model, opt, data)                         # no validation: no direction needed


@pytest.mark.parametrize("mode,best_epoch", [("max", 2), ("min", 3)])
def test_mode_picks_the_best_epoch_both_ways(mode, best_epoch):
    X, y, idx = make_data()
    model = Tiny(vocab=20)
    scores = iter([0.5, 0.9, 0.1, 0.6])
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=50),
                      epochs=4, validate=lambda m: next(scores), mode=mode, quiet=True)
    trainer.fit()
    assert trainer.best_epoch == best_epoch


def test_trainer_state_round_trips_through_a_dict():
    from fastnn.train import TrainState
    st = TrainState(epoch=2, position=3, step=29, best_score=0.5, best_epoch=1, history=[{"epoch": 1}],
                    best_params={"W": np.ones(2)}, loss_sum=1.5, loss_n=7)
    back = TrainState.from_dict(st.to_dict())
    assert back.to_dict().keys() == st.to_dict().keys()
    assert back.epoch == 2 and back.step == 29 and back.history == [{"epoch": 1}] and back.loss_n == 7
    np.testing.assert_array_equal(back.best_params["W"], np.ones(2))
    assert back.best_params["W"] is not st.best_params["W"]


def test_max_minutes_stops_before_an_epoch_that_would_end_past_the_budget():
    _, trainer = build(max_minutes=1e-9)              # any epoch is longer than the budget: stop after the first
    assert len(trainer.fit()) == 1 and trainer.stopped
    _, trainer = build(max_minutes=60.0)
    assert len(trainer.fit()) == 4
    with pytest.raises(ValueError, match="max_minutes"):
        build(max_minutes=-1.0)


# ---- overfit and progress ----------------------------------------------------------------------------------------

def test_overfit_reports_both_ways():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 10)), rng.integers(0, 3, 8)
    model = Tiny(d=10)
    before = params_of(model)
    res = overfit(model, (X, y))                      # default: SGD(lr=0.1, momentum=0.9)
    assert res.reached and res.final_loss < 0.01 < res.initial_loss and bool(res)
    assert_same(params_of(model), before)            # restored
    weak = Tiny(d=1)                                  # one feature cannot separate random labels
    res = overfit(weak, (X[:, :1], y), optimizer=optim.AdaGrad(weak.parameters(), lr=1.0), steps=300)
    assert not res.reached and res.steps == 300 and "does NOT reach" in repr(res)
    with pytest.raises(ValueError, match="'steps' must be >= 1"):
        overfit(weak, (X[:, :1], y), steps=0)


@pytest.fixture(params=["plain", "tqdm"])
def bar_kind(request, monkeypatch):
    """Run a progress test with the plain bar (tqdm made unimportable) and with tqdm (skipped when not installed)."""
    if request.param == "plain":
        monkeypatch.setitem(sys.modules, "tqdm", None)       # `from tqdm import tqdm` now raises ImportError
    else:
        pytest.importorskip("tqdm")
    return request.param


def test_progress_bar_and_quiet(capsys, bar_kind):
    model, trainer = build()
    buf = _io.StringIO()
    trainer.progress.stream, trainer.progress.enabled, trainer.progress.min_interval = buf, True, 0.0
    trainer.quiet = False
    trainer.fit()
    text = buf.getvalue()
    assert "ex/s" in text and "ETA" in text and "loss" in text
    if bar_kind == "tqdm":
        assert "52/52" in text                        # one bar over the whole run: 4 epochs x 13 batches
    assert "epoch 4/4" in capsys.readouterr().err
    _, quiet = build()
    quiet.fit()
    assert capsys.readouterr().err == ""
    assert quiet.progress.enabled is False            # not a terminal under pytest


def test_plain_bar_eta_covers_the_whole_run(monkeypatch):
    from fastnn import train
    monkeypatch.setitem(sys.modules, "tqdm", None)
    clock = iter(range(100))
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(clock)))
    buf = _io.StringIO()
    bar = train.Progress(True, stream=buf, min_interval=0.0)
    bar.start("epoch 2/4", 10, run_total=40, run_done=10)      # t = 0
    for i in range(1, 6):                                      # t = 1..5: one batch a second
        bar.update(i, 0.5, 8)
    # 5 batches in 5 s; 40 - 10 - 5 = 25 batches left in the run (not 5 in the epoch): 0:25
    assert buf.getvalue().rstrip().endswith("5/10 loss 0.5000 8 ex/s ETA 0:25")


def test_tqdm_bar_spans_the_run(monkeypatch):
    made = []

    class FakeTqdm:
        def __init__(self, **kw):
            self.kw, self.n, self.postfix, self.closed = kw, kw["initial"], None, False
            made.append(self)

        def update(self, k):
            self.n += k

        def set_postfix_str(self, s, refresh=True):
            self.postfix = s

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", type(sys)("tqdm"))
    sys.modules["tqdm"].tqdm = FakeTqdm
    model, trainer = build()
    trainer.progress.enabled, trainer.progress.min_interval = True, 0.0
    trainer.fit()
    assert [(b.kw["total"], b.kw["initial"], b.n) for b in made] == [(52, 0, 13), (52, 13, 26), (52, 26, 39),
                                                                       (52, 39, 52)]
    assert all(b.closed and "loss" in b.postfix and "ex/s" in b.postfix for b in made)
    assert made[0].kw["desc"] == "epoch 1/4" and "ETA {remaining}" in made[0].kw["bar_format"]
    made.clear()
    trainer.progress.use_tqdm = False                # forced plain: tqdm is not used
    trainer.progress.stream = _io.StringIO()
    trainer.progress.start("x", 3)
    assert made == []


@pytest.mark.parametrize("seed, err", [(None, TypeError), (True, TypeError), (1.5, TypeError), ("0", TypeError),
                                       (-1, ValueError)])
def test_the_seed_is_an_int_or_a_generator(seed, err):
    # None was a run seeded from the OS (not reproducible), True seed 1, 1.5 and "0" NumPy's SeedSequence errors
    model = Tiny(vocab=20)
    with pytest.raises(err, match="Trainer: 'seed' must be an int seed"):
        Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(*make_data(), batch_size=16), epochs=1,
                seed=seed)


def test_an_int_seed_and_a_generator_of_that_seed_give_the_same_run():
    runs = []
    for seed in (3, np.int64(3), np.random.default_rng(3)):
        model = Tiny(vocab=20, dropout=0.2, seed=0)
        Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(*make_data(), batch_size=16), epochs=2,
                quiet=True, seed=seed).fit()
        runs.append(params_of(model))
    assert_same(runs[0], runs[1])
    assert_same(runs[0], runs[2])


def test_resume_with_other_settings_is_refused_before_the_model_changes(tmp_path):
    """A resumed run took what it was given, silently: a new learning rate with the old schedule state, other data
    with the same shapes.  With `settings` (a recipe's Config and a digest of its data) a checkpoint records them and
    fit(resume=True) refuses another run's, naming the first difference, before anything is read into the model."""
    path = str(tmp_path / "run.ckpt")
    model, trainer = build(checkpoint=path, settings={"lr": 0.3, "train data": "200 rows", "layers": (1, 2)})
    trainer.epochs = 1
    trainer.fit()
    model2, trainer2 = build(checkpoint=path, settings={"lr": 0.5, "train data": "200 rows", "layers": [1, 2]})
    before = params_of(model2)
    with pytest.raises(ValueError, match=r"Trainer.load: .*run.ckpt was written by a run with 'lr' 0.3; this run has "
                                         r"0.5\. A resumed run must have the settings and data"):
        trainer2.fit(resume=True)
    assert_same(params_of(model2), before)
    _, trainer3 = build(checkpoint=path, settings={"lr": 0.3, "layers": [1, 2]})
    with pytest.raises(ValueError, match=r"'train data' '200 rows'; this run has none"):
        trainer3.fit(resume=True)
    # the same settings (a tuple read back as a list) resume, as does a run without settings or a checkpoint without
    build(checkpoint=path, settings={"lr": 0.3, "train data": "200 rows", "layers": [1, 2]})[1].fit(resume=True)
    build(checkpoint=path)[1].fit(resume=True)
    _, old = build(checkpoint=path)
    old.epochs = 1
    old.fit()
    build(checkpoint=path, settings={"lr": 0.3})[1].fit(resume=True)
    with pytest.raises(TypeError, match="'settings' must be JSON-serialisable"):
        build(settings={"rng": np.random.default_rng(0)})
    with pytest.raises(TypeError, match="'settings' must be a dict or None; got list"):
        build(settings=["lr", 0.3])
