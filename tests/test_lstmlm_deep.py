"""Deep (stacked) LSTM LMs: LSTMConfig.layers.  One layer is the model as before (the same numbers, parameters and
model file); L layers train, carry every layer's (h, c) across batches, chunks and checkpoints, and save and load."""
import json

import numpy as np
import pytest
import threadpoolctl

from fastnn import io, kernels, nn, optim
from fastnn.gradcheck import run_case
from fastnn.models import lstmlm as L
from fastnn.models.rnnlm import BPTTBatches
from fastnn.recipes import lm as recipe
from fastnn.train import Trainer
from tests.conftest import run_cli, write_lines

# Float64 sums of every parameter, of the carried (h, c) and of token_logprobs after the run of _one_layer_run,
# recorded with the code before deep LSTMs (main at 36abb6a).  Compared with ==: the same bits, in practice.
BEFORE = {
    0: {"emb.W": -8.630518031306565, "lstm.W_ih": 10.622162906918675, "lstm.W_hh": -16.94478098489344,
        "lstm.b": 7.121123688295484, "out.W": -10.340746737085283, "out.b": -107.78143787384033,
        "state": [-1.0317568113096058, -1.0195094593800604], "logprobs": -159.69395411014557},
    3: {"emb.W": -0.8219661447219551, "lstm.W_ih": 3.6236021742224693, "lstm.W_hh": -9.24661974888295,
        "lstm.b": 6.151310659013689, "out.Wc": -1.9669279139488935, "out.bc": -3.4378750324249268,
        "out.W": -8.735425044316798, "out.b": -74.18206703662872,
        "state": [0.8709727628156543, 1.782735904911533], "logprobs": -161.99977606534958},
}


def _stream(n=600, V=30):
    r = np.random.default_rng(0)
    s = r.integers(2, V, n)
    s[::9] = 1
    return s


def _one_layer_run(classes, dropout, **layers):
    s = _stream()
    counts = np.bincount(s, minlength=30) + 1
    m = recipe.build_model(recipe.LSTMConfig(hidden=8, embed=6, classes=classes, dropout=dropout, seed=3,
                                             **layers), 30, counts=counts)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), BPTTBatches(s, batch_size=4, block=7, bptt=2, eos_id=1),
                epochs=2, quiet=True, seed=0, clip_norm=5.0).fit()
        lp = m.token_logprobs(s[:50])
    got = {n: float(p.value.astype(np.float64).sum()) for n, p in m.parameters().items()}
    got["state"] = [float(a.astype(np.float64).sum()) for a in m.state]
    got["logprobs"] = float(lp.sum())
    return m, got


@pytest.mark.parametrize("classes,dropout", [(0, 0.3), (3, 0.2)])
def test_one_layer_is_the_model_before_deep_lstms(tmp_path, classes, dropout):
    # the default (and an explicit layers=1): the same initialisation, dropout masks, training, carried state and
    # scores as before, and a model file without 'layers' (what readers before deep LSTMs expect)
    for layers in ({}, {"layers": 1}):
        m, got = _one_layer_run(classes, dropout, **layers)
        # recorded from the native AVX-512 build: another build or CPU (the portable wheel CI tests) runs other
        # float32 vector code, the same model up to rounding
        assert got.keys() == BEFORE[classes].keys()
        for name, value in BEFORE[classes].items():
            assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    assert "layers" not in m.config() and "layers" not in repr(m)
    io.save_model(tmp_path / "m.npz", m)
    header, _ = io.read_file(tmp_path / "m.npz")
    assert "layers" not in header["model_config"]
    assert io.load_model(tmp_path / "m.npz").layers == 1        # a file without the field: one layer


def _deep(rng, layers=2, classes=0, dropout=0.0, V=12):
    counts = rng.integers(1, 40, V)
    m = recipe.build_model(recipe.LSTMConfig(hidden=5, embed=4, classes=classes, layers=layers, dropout=dropout),
                           V, counts=counts, dtype=np.float64)
    for p in m.parameters().values():
        p.value[...] += rng.standard_normal(p.shape) * 0.3
    return m


def test_layers_stack_with_their_own_parameters(rng):
    m = _deep(rng, layers=3)
    names = list(m.parameters())
    assert names[:7] == ["emb.W", "lstm.W_ih", "lstm.W_hh", "lstm.b", "lstm2.W_ih", "lstm2.W_hh", "lstm2.b"]
    assert names[7:10] == ["lstm3.W_ih", "lstm3.W_hh", "lstm3.b"]
    assert m.lstm.W_ih.shape == (20, 4) and m.lstm2.W_ih.shape == m.lstm3.W_ih.shape == (20, 5)
    assert m.config()["layers"] == 3 and "layers=3" in repr(m)


def test_dropout_on_the_non_recurrent_connections(rng):
    # Zaremba et al. (2014): the embeddings (E = 4), between layers and below the output (K = 5); one mask each
    seen = []

    class Spy(nn.Dropout):
        def __call__(self, x):
            seen.append(x.value.shape)
            return super().__call__(x)
    m = _deep(rng, layers=3, dropout=0.5)
    m.drop = Spy(0.5, rng=0)
    m.loss(BPTTBatches(rng.integers(0, 12, 30), batch_size=2, block=5, eos_id=1)[0])
    assert seen == [(5, 2, 4), (5, 2, 5), (5, 2, 5), (5, 2, 5)]


@pytest.mark.parametrize("name", ["lstmlm.deep_full", "lstmlm.deep_classes", "lstmlm.deep3_dropout"])
def test_deep_gradcheck_cases(name):
    assert run_case(dict(L.gradcheck_cases())[name], seed=1).ok


def test_gradcheck_catches_a_broken_error_between_layers(monkeypatch):
    # layer 2's error at its input projection 1% off (what it hands down to layer 1 and its W_ih's gradient): W_ih
    # and every parameter below are caught wrong, the rest of layer 2 and the output stay right
    real = kernels.lstm_backward
    build = dict(L.gradcheck_cases())["lstmlm.deep_full"]
    top = {}

    def broken(*a, **kw):
        dX, dW, db, dh0, dc0 = real(*a, **kw)
        return (dX * 1.01 if a[4] is top["W_hh"].value else dX), dW, db, dh0, dc0

    def broken_build(rng):
        loss_fn, params, inputs = build(rng)
        top["W_hh"] = params["lstm2.W_hh"]            # (gradcheck swaps in its own float64 copy of .value)
        return loss_fn, params, inputs
    monkeypatch.setattr(kernels, "lstm_backward", broken)
    failed = {c.name for c in run_case(broken_build, seed=1).failures}
    assert failed == {"emb.W", "lstm.W_ih", "lstm.W_hh", "lstm.b", "lstm2.W_ih"}


@pytest.mark.parametrize("classes", [0, 3])
def test_state_is_carried_per_layer_across_chunks_and_segments(rng, classes):
    # evaluation in chunks, and training segments overlapping by bptt steps (state_at), score the tokens as one
    # pass over the stream: every layer's (h, c) is carried
    m = _deep(rng, classes=classes)
    s = rng.integers(0, 12, 40)
    lp = m.token_logprobs(s)
    np.testing.assert_allclose(m.token_logprobs(s, chunk=7), lp, rtol=1e-12)
    data = BPTTBatches(s, batch_size=1, block=8, bptt=3, eos_id=1)
    m.eval()
    total = sum(float(m.loss(data[i]).value) * len(data[i][1]) for i in range(len(data)))
    assert total == pytest.approx(-lp.sum(), rel=1e-12)
    assert len(m.state) == 4 and all(a.shape == (1, 5) for a in m.state)      # (h_1, c_1, h_2, c_2)


def test_prob_vector_matches_token_logprobs(rng):
    m = _deep(rng, classes=3)
    history = [4, 7, 1, 2, 9]
    p = m.prob_vector(history)
    assert p.shape == (12,) and p.sum() == pytest.approx(1.0)
    for w in (0, 5, 11):
        assert np.log(p[w]) == pytest.approx(m.token_logprobs(np.array(history + [w]))[-1], abs=1e-10)


@pytest.mark.parametrize("classes", [0, 4])
def test_two_layers_train_and_lower_the_loss(classes):
    s = np.tile(np.array([2, 3, 4, 5, 1, 6, 3]), 50)
    counts = np.bincount(s, minlength=7) + 1
    m = recipe.build_model(recipe.LSTMConfig(hidden=16, classes=classes, layers=2, dropout=0.1), 7, counts=counts)
    before = m.perplexity(s)
    history = Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), BPTTBatches(s, batch_size=5, block=10, eos_id=1),
                      epochs=20, quiet=True, seed=0, clip_norm=5.0).fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert before > 5 and m.perplexity(s) < 1.5


def test_resume_mid_epoch_is_bit_for_bit(tmp_path):
    # a checkpoint written mid-epoch holds both layers' carried (h, c) and the dropout stream: the resumed run ends
    # with the uninterrupted run's bits
    s = _stream(800)
    counts = np.bincount(s, minlength=30) + 1

    class Stop(Exception):
        pass

    def make():
        return recipe.build_model(recipe.LSTMConfig(hidden=6, classes=3, layers=2, dropout=0.2, seed=1), 30,
                                  counts=counts)

    def run(ck, stop_at=None, resume=False):
        m = make()

        def loss_fn(model, batch):
            if stop_at is not None and tr.state.step == stop_at:
                raise Stop
            return model.loss(batch)
        tr = Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), BPTTBatches(s, batch_size=4, block=6, bptt=2,
                                                                          eos_id=1),
                     epochs=2, quiet=True, seed=0, clip_norm=5.0, checkpoint=str(ck), checkpoint_every=5,
                     loss_fn=loss_fn)
        tr.fit(resume=resume)
        return m

    full = run(tmp_path / "full.npz")
    with pytest.raises(Stop):
        run(tmp_path / "ck.npz", stop_at=12)                 # the last checkpoint: step 10, mid-epoch 1
    st = io.load_checkpoint(tmp_path / "ck.npz", make())["model_extra"]
    assert np.shape(st["h"]) == np.shape(st["c"]) == (2, 4, 6)
    resumed = run(tmp_path / "ck.npz", resume=True)
    for name, p in full.parameters().items():
        np.testing.assert_array_equal(p.value, resumed.parameters()[name].value, err_msg=name)
    for a, b in zip(full.state, resumed.state):
        np.testing.assert_array_equal(a, b)


def test_save_load_astype_and_extra_state(tmp_path, rng):
    m = _deep(rng, layers=3, classes=3)
    s = rng.integers(0, 12, 30)
    m.loss(BPTTBatches(s, batch_size=2, block=5, eos_id=1)[0])
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    assert m2.layers == 3 and repr(m2) == repr(m)
    np.testing.assert_array_equal(m2.token_logprobs(s), m.token_logprobs(s))
    m2.load_extra_state(m.extra_state())
    assert len(m2.state) == 6 and all(np.array_equal(a, b) for a, b in zip(m2.state, m.state))
    m.astype(np.float32)
    assert len(m.state) == 6 and {a.dtype for a in m.state} == {np.dtype(np.float32)}
    with pytest.raises(ValueError, match=r"LSTMLM.load_extra_state: the carried state must hold \(h, c\) for each "
                                         r"of the 3 layers; got h \(2, 2, 5\)"):
        m.load_extra_state({"h": np.zeros((2, 2, 5)), "c": np.zeros((2, 2, 5))})


def test_layers_below_one_are_refused():
    with pytest.raises(ValueError, match="LSTMConfig: 'layers' must be >= 1; got 0"):
        recipe.LSTMConfig(layers=0)
    with pytest.raises(ValueError, match="LSTMLM: 'layers' must be an integer >= 1; got 0"):
        L.LSTMLM(10, hidden=3, embed=None, classes=0, forget_bias=1.0, dropout=0.0, clip=0.0, init_scale=0.1,
                 layers=0)
    with pytest.raises(TypeError, match="LSTMLM: 'layers' must be an integer >= 1; got 2.0"):
        L.LSTMLM(10, hidden=3, embed=None, classes=0, forget_bias=1.0, dropout=0.0, clip=0.0, init_scale=0.1,
                 layers=2.0)


def test_cli_layers(capsys, tmp_path):
    r = np.random.default_rng(0)
    lines = [" ".join(f"w{(j + 2 * k) % 20}" for k in range(6)) for j in r.integers(0, 20, 150)]
    train = write_lines(tmp_path / "train.txt", lines)
    out = tmp_path / "lstm2.npz"
    common = ("lm", "train", "--arch", "lstm", "--train", train, "--valid", train, "--epochs", "1", "--hidden", "6",
              "--classes", "3", "--batch-size", "4", "--bptt-block", "5", "--quiet", "--threads", "1")
    rc, so, err = run_cli(capsys, *common, "--layers", "2", "--out", out, "--json")
    assert rc == 0, err
    assert json.loads(so)["valid_perplexity"] > 1
    assert io.load_model(out).layers == 2
    rc, so, err = run_cli(capsys, *common, "--layers", "0", "--out", tmp_path / "x.npz")
    assert rc == 2 and err == "fastnn lm train: error: --layers must be >= 1; got 0.\n", err
    with pytest.raises(SystemExit):
        run_cli(capsys, "lm", "train", "--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "--layers LAYERS stacked LSTM layers" in out and "(lstm only; default 1)" in out
