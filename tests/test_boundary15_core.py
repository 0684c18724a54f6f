"""The core API's boundary: bad input or a diverging run gets a clear exception and keeps the work done."""
import numpy as np
import pytest

from fastnn import io, optim
from fastnn.graph import Node
from fastnn.train import ArrayBatches, Trainer
from tests.conftest import run_cli


# ---- divergence keeps the best epoch, as Ctrl-C does --------------------------------------------------------------

def _diverging_trainer(nan_from_step, **kw):
    """A Tiny model whose loss turns NaN from step `nan_from_step` (5 steps an epoch), validated by its loss."""
    from tests.test_train import Tiny, make_data
    X, y, idx = make_data(100)
    model = Tiny(vocab=20)
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=20), epochs=4,
                      validate=lambda m: float(m.loss((X, y, idx)).value), mode="min", quiet=True,
                      loss_fn=lambda m, b: (Node(np.asarray(np.nan), (), None, "nan")
                                            if trainer.state.step + 1 >= nan_from_step else m.loss(b)), **kw)
    return model, trainer


def test_divergence_restores_the_best_epoch_and_says_so():
    # a NaN in epoch 3 left the model with the parameters of that step and lost epochs 1-2's best, silently
    model, trainer = _diverging_trainer(nan_from_step=13)
    seen = []
    trainer.callback = lambda t, rec: seen.append({n: p.value.copy() for n, p in t.model.parameters().items()})
    with pytest.raises(FloatingPointError, match=r"step 13 \(epoch 3, batch 3\).*The model holds the parameters of "
                                                 r"its best epoch \(2\)\.") as e:
        trainer.fit()
    assert e.value.best_epoch == 2 and e.value.trainer is trainer
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p.value, seen[1][name])      # the end of epoch 2, bit for bit


def test_divergence_before_any_epoch_and_skip_are_unchanged():
    model, trainer = _diverging_trainer(nan_from_step=3)
    with pytest.raises(FloatingPointError) as e:
        trainer.fit()
    assert e.value.best_epoch is None and "best epoch" not in str(e.value)
    model, trainer = _diverging_trainer(nan_from_step=13, on_nonfinite="skip")
    history = trainer.fit()
    assert trainer.skipped == 8 and len(history) == 4


def test_divergence_message_names_the_clip_option_for_each_caller(capsys, tmp_path):
    # "clip gradients (clip_norm=)" reached the command line in Python's words
    model, trainer = _diverging_trainer(nan_from_step=1)
    with pytest.raises(FloatingPointError, match=r"clip gradients \(clip_norm=5\)"):
        trainer.fit()
    model, trainer = _diverging_trainer(nan_from_step=1, clip_norm=1.0)
    with pytest.raises(FloatingPointError, match=r"lower clip_norm=1.0"):
        trainer.fit()
    (tmp_path / "t.txt").write_text("the dog runs fast\na cat sees the dog\n" * 40)
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "rnn", "--train", tmp_path / "t.txt", "--dev",
                           tmp_path / "t.txt", "--out", tmp_path / "m.npz", "--lr", "1e38", "--epochs", "2",
                           "--quiet", "--hidden", "8", "--embed", "8", "--min-count", "1")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "--clip-norm" in err and "clip_norm" not in err and "--on-nonfinite skip" in err, err
    assert not (tmp_path / "m.npz").exists()          # no epoch finished: nothing to keep


def test_cli_writes_the_best_epoch_of_a_diverged_run(capsys, tmp_path, monkeypatch):
    # `fastnn tagger train` without --checkpoint that diverged in epoch 2 lost epoch 1's model
    from fastnn.models.tagger import WindowTagger
    (tmp_path / "a.conll").write_text("the DT\ndog NN\nruns VBZ\n\na DT\ncat NN\nsees VBZ\n\n" * 10)
    epochs_done, loss, end_epoch = [0], WindowTagger.loss, Trainer._end_epoch

    def counted(self):
        end_epoch(self)
        epochs_done[0] += 1

    def diverges_in_epoch_2(self, batch):
        return Node(np.asarray(np.inf), (), None, "inf") if epochs_done[0] else loss(self, batch)
    monkeypatch.setattr(Trainer, "_end_epoch", counted)
    monkeypatch.setattr(WindowTagger, "loss", diverges_in_epoch_2)
    out = tmp_path / "m.npz"
    rc, _, err = run_cli(capsys, "tagger", "train", "--train", tmp_path / "a.conll", "--dev", tmp_path / "a.conll",
                         "--task", "pos=1", "--out", out, "--epochs", "3", "--batch-size", "20", "--quiet")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "stopped: Trainer: the loss (inf) must be finite" in err and "epoch 2" in err, err
    assert f"The model of its best epoch (1) was written to {out}." in err, err
    model = io.load_model(str(out))
    assert isinstance(model, WindowTagger) and all(np.isfinite(p.value).all() for p in model.parameters().values())


# ---- a model cast with astype is a model of its new dtype ----------------------------------------------------------

def _models():
    """One small float32 model of every kind that saves with io.save_model (the neural LMs have their own tests)."""
    from fastnn.models import classifiers, ranking, tagger
    rng = np.random.default_rng(0)

    def tagger32(context="window", loss="word"):
        m, batch = tagger._tiny_tagger(rng, loss, 2, True, context)
        return tagger.WindowTagger.from_config(dict(m.config(), dtype="float32")), batch

    tag, tag_batch = tagger32()
    crf, crf_batch = tagger32("bilstm", "sentence")
    members = [tagger.WindowTagger.from_config(dict(tag.config(), seed=s)) for s in (1, 2)]
    dense_x, win_x, y = rng.normal(size=(6, 4)), rng.integers(0, 7, (6, 3)), rng.integers(0, 3, 6)
    return {
        "WindowRanker": (ranking.WindowRanker(9, window=3, dim=3, hidden=4, init_scale=0.5, rng=0),
                         (rng.integers(0, 9, (5, 3)), rng.integers(1, 9, 5))),
        "WindowTagger": (tag, tag_batch),
        "WindowTagger.crf_bilstm": (crf, crf_batch),
        "TaggerEnsemble": (tagger.TaggerEnsemble(members), None),
        "LogisticRegression": (classifiers.LogisticRegression(3, n_features=4, seed=0), (dense_x, y)),
        "LogisticRegression.window": (classifiers.LogisticRegression(3, vocab_size=7, window=3, seed=0), (win_x, y)),
        "MLP": (classifiers.MLP(3, n_features=4, hidden=5, seed=0), (dense_x, y)),
        "MLP.window": (classifiers.MLP(3, vocab_size=7, window=3, hidden=5, embed_dim=2, seed=0), (win_x, y)),
    }


@pytest.mark.parametrize("kind", ["WindowRanker", "WindowTagger", "WindowTagger.crf_bilstm", "TaggerEnsemble",
                                  "LogisticRegression", "LogisticRegression.window", "MLP", "MLP.window"])
def test_astype_makes_a_model_of_the_new_dtype(kind, tmp_path):
    # WindowRanker(...).astype(np.float64): the parameters were cast but the model kept saying float32, so
    # save_model wrote a file load_model refused, and training the cast model failed in a kernel
    model, batch = _models()[kind]
    model.astype(np.float64)
    if batch is not None:                                    # the cast model trains
        opt = optim.SGD(model.parameters(), 0.1)
        model.loss(batch).backward()
        opt.step()
    path = str(tmp_path / "m.npz")
    io.save_model(path, model)
    back = io.load_model(path)                               # bit for bit, in float64
    assert type(back) is type(model) and back.dtype == np.float64
    for (name, p), (name2, q) in zip(model.parameters().items(), back.parameters().items()):
        assert name == name2 and q.dtype == np.float64
        np.testing.assert_array_equal(p.value, q.value)
    assert model.dtype == np.float64 and {p.dtype for p in model.parameters().values()} == {np.dtype(np.float64)}
    assert np.dtype((model.config().get("member") or model.config())["dtype"]) == np.float64
    model.astype("float32")
    assert model.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float16, np.int64, "bfloat16", "int"])
def test_astype_refuses_a_dtype_parameters_cannot_have(dtype):
    # astype(np.float16) or astype(int) cast the parameters anyway (Param refuses those dtypes when built), and the
    # first kernel call failed, far from the cause
    from fastnn.models.ranking import WindowRanker
    model = WindowRanker(9, window=3, dim=3, hidden=4, init_scale=0.5, rng=0)
    with pytest.raises(TypeError, match="float32 or float64"):
        model.astype(dtype)
    assert {p.dtype for p in model.parameters().values()} == {np.dtype(np.float32)}


# ---- optimizers, the Trainer and the ops refuse what they would get silently wrong ---------------------------------

def test_an_optimizer_refuses_a_param_listed_twice():
    # SGD({"a": W, "b": W}, 0.1) updated W twice a step (twice the learning rate), silently
    from fastnn import nn
    W = nn.Linear(3, 2, rng=0).W
    for cls in (optim.SGD, optim.AdaGrad):
        with pytest.raises(ValueError, match="'a' and 'b' are the same Param"):
            cls({"a": W, "b": W}, 0.1)


def test_trainer_refuses_patience_without_validate():
    # patience=2 without validate never stopped anything (no score, no bad epoch), silently
    from tests.test_train import Tiny, make_data
    X, y, idx = make_data(100)
    model = Tiny(vocab=20)
    with pytest.raises(ValueError, match="'patience' needs 'validate'"):
        Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=20), epochs=3,
                patience=2, quiet=True)


@pytest.mark.parametrize("loss", [lambda m, b: 1.0, lambda m, b: m.loss(b).value,
                                  lambda m, b: Node(np.ones(2), (), None, "two")])
def test_trainer_names_a_loss_that_is_not_a_scalar_node(loss):
    # a loss_fn returning a float died in the trainer with "'float' object has no attribute 'value'"
    from tests.test_train import Tiny, make_data
    X, y, idx = make_data(100)
    model = Tiny(vocab=20)
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=20), epochs=1,
                      quiet=True, loss_fn=loss)
    with pytest.raises(TypeError, match=r"Trainer: the loss .* must be a scalar Node; got"):
        trainer.fit()


def test_dropout_needs_a_generator_and_linear_a_bias_of_its_width():
    # nn.dropout(x, 0.5, 0) died in "'int' object has no attribute 'random'"; nn.linear with a bias of the wrong
    # width raised numpy's broadcast error, or with one entry added it to every output, silently
    from fastnn import nn
    from fastnn.graph import Param
    for rng in (0, None):
        with pytest.raises(TypeError, match="nn.dropout: 'rng' must be a np.random.Generator"):
            nn.dropout(np.ones(4), 0.5, rng)
    W = Param("W", np.ones((2, 3)))
    for b in (np.ones(3), np.ones(1)):
        with pytest.raises(ValueError, match=r"the bias 'b' must have shape \(2,\)"):
            nn.linear(np.ones((4, 3)), W, Param("b", b))


def test_a_param_of_a_read_only_or_0d_array_trains():
    # Param("W", read_only) kept the read-only array: the first optimizer step failed in the kernel ("sgd_: 'w' must
    # be writeable"); Param("t", np.float32(2)) became shape (1,), so every loss using it was 1-d
    from fastnn import nn
    from fastnn.graph import Param
    frozen = np.ones((2, 3), np.float32)
    frozen.flags.writeable = False
    W, t = Param("W", frozen), Param("t", np.float32(2.0))
    assert t.shape == () and W.value.flags.writeable
    loss = nn.sum(nn.scale(nn.mul(nn.linear(np.ones((1, 3), np.float32), W), nn.param(t)), 1.0))
    assert loss.value.shape == ()
    loss.backward()
    optim.SGD({"W": W, "t": t}, 0.1).step()
    assert (W.value < 1).all() and (frozen == 1).all()


def test_halve_on_plateau_never_raises_the_rate_and_names_a_bad_score():
    # HalveOnPlateau(0.1, min_scale=2) doubled the learning rate on the first plateau (max(0.5, 2)), silently;
    # observe(None) died in float() with Python's message
    with pytest.raises(ValueError, match="'min_scale' must be <= 1; got 2"):
        optim.HalveOnPlateau(0.1, min_scale=2)
    lr = optim.HalveOnPlateau(0.1, min_scale=1)
    lr.observe(1.0, mode="min")
    lr.observe(2.0, mode="min")
    assert lr(0) == 0.1
    with pytest.raises(TypeError, match="HalveOnPlateau.observe: 'score' must be a number; got None"):
        lr.observe(None, mode="min")
    lr.observe(float("nan"), mode="min")        # a non-finite score is no improvement, as before
    assert lr(0) == 0.1


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_chunked_scoring_refuses_a_chunk_below_one(size):
    # WindowRanker.scores(w, batch_size=-1) and WindowTagger.scores(enc, chunk=-1) ran no chunk and returned the
    # uninitialised output array (e.g. [3.9e+73, -5.8e+41]); batch_size=0 died in range()
    from fastnn.models import ranking, tagger
    r = ranking.WindowRanker(9, window=3, dim=3, hidden=4, init_scale=0.5, rng=0)
    with pytest.raises((TypeError, ValueError), match="WindowRanker.scores: 'batch_size' must be an integer >= 1"):
        r.scores([[1, 2, 3], [2, 3, 4]], batch_size=size)
    for context in ("window", "bilstm"):
        m, _ = tagger._tiny_tagger(np.random.default_rng(0), "sentence", 1, False, context)
        enc = m.encode([[("w1", "T0"), ("w2", "T1")], [("w3", "T2")]])
        with pytest.raises((TypeError, ValueError), match="WindowTagger.scores: 'chunk' must be an integer >= 1"):
            m.scores(enc, chunk=size)


def test_classifiers_name_their_seed():
    # LogisticRegression(3, n_features=4, seed=None) said "'rng' must be an int seed", an argument it does not have
    from fastnn.models import classifiers
    for cls in (classifiers.LogisticRegression, classifiers.MLP):
        with pytest.raises(TypeError, match=f"{cls.__name__}: 'seed' must be an int seed"):
            cls(3, n_features=4, seed=None, **({"hidden": 3} if cls is classifiers.MLP else {}))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_elementwise_ops_name_shapes_that_do_not_broadcast(op):
    # nn.add(np.ones(2), np.ones(3)) raised numpy's "operands could not be broadcast together", naming no op
    from fastnn import nn
    with pytest.raises(ValueError, match=rf"nn.{op}: the operands' shapes must broadcast together; got \(2,\) and "
                                         r"\(3,\)"):
        getattr(nn, op)(np.ones(2), np.ones(3))
    assert getattr(nn, op)(np.ones((2, 3)), np.ones(3)).value.shape == (2, 3)


def test_a_divergence_crosses_a_process_as_a_floating_point_error():
    # an ensemble member diverging in a worker process: the exception is pickled back to the parent
    import pickle
    model, trainer = _diverging_trainer(nan_from_step=13)
    with pytest.raises(FloatingPointError) as e:
        trainer.fit()
    back = pickle.loads(pickle.dumps(e.value))
    assert type(back) is FloatingPointError and str(back) == str(e.value)


@pytest.mark.parametrize("clip", [lambda ps: optim.clip_grad_norm(ps, 1.0), lambda ps: optim.clip_grad_value(ps, 0.1),
                                  optim.global_grad_norm])
def test_clipping_refuses_a_param_listed_twice(clip):
    # clip_grad_norm([W, W], 1.0) counted W's gradient twice in the norm and scaled it twice, silently
    from fastnn import nn
    lin = nn.Linear(3, 2, rng=0)
    nn.sum(lin(np.ones((1, 3), np.float32))).backward()
    with pytest.raises(ValueError, match="'W' and 'W' are the same Param"):
        clip([lin.W, lin.W])


def test_split_refuses_an_axis_the_array_does_not_have():
    # nn.split(np.ones(4), 2, axis=3) split along axis 0 (3 % 1), silently
    from fastnn import nn
    with pytest.raises(ValueError, match=r"nn.split: 'axis' must be an int in \[-1, 1\); got 3"):
        nn.split(np.ones(4), 2, axis=3)
    assert [p.value.shape for p in nn.split(np.ones((2, 4)), np.int64(2), axis=-1)] == [(2, 2), (2, 2)]


def test_viterbi_names_transitions_of_another_tag_count_and_a_bad_block():
    # scores of 4 tags with transitions of 3 died in numpy's broadcasting inside the decoder; block_tokens=0 in
    # np.concatenate
    from fastnn import nn
    tr = nn.Transitions(3)
    A, start, end = tr.A.value, tr.start.value, tr.end.value
    with pytest.raises(ValueError, match=r"viterbi: 'A' must have shape \(4, 4\) for scores of 4 tags; got \(3, 3\)"):
        nn.viterbi(np.zeros((3, 4)), np.array([0, 3]), A, start, end)
    with pytest.raises(ValueError, match="viterbi: 'block_tokens' must be an integer >= 1; got 0"):
        nn.viterbi(np.zeros((3, 3)), np.array([0, 3]), A, start, end, block_tokens=0)
    assert nn.viterbi(np.eye(3), np.array([0, 3]), A, start, end).tolist() == [0, 1, 2]


@pytest.mark.parametrize("batch", [(1, 2), None, [np.zeros((2, 3), int)]])
def test_tagger_loss_names_a_batch_it_cannot_read(batch):
    # WindowTagger.loss((1, 2)) died in "'tuple' object has no attribute 'targets'"
    from fastnn.models import tagger
    m, good = tagger._tiny_tagger(np.random.default_rng(0), "word", 1, False)
    with pytest.raises(TypeError, match="WindowTagger.loss: 'batch' must be a TaggerBatch"):
        m.loss(batch)
    assert np.isfinite(m.loss(good).value)
