"""The deep bidirectional LSTM context of the window tagger (lstm_layers, Irsoy and Cardie 2014): one layer trains
as before the option, layer k > 1 reads both directions of layer k - 1, gradients (and a broken one caught), training,
scoring, model files, and the options refused from Python and the command line."""
import hashlib
import json

import numpy as np
import pytest

import fastnn
from fastnn import io, nn
from fastnn.gradcheck import run_case
from fastnn.models import tagger as T
from fastnn.recipes import tagger as recipe
from tests.conftest import run_cli, write_lines
from tests.test_tagger import _synthetic, concat_inputs   # (_synthetic: tags set by a word and its left neighbour)


def _config(**kw):
    return recipe.TaggerConfig(**{**dict(tasks={"ner": 3}, hidden=8, embed_dim=6, window=3, context="bilstm",
                                         lstm_hidden=5), **kw})


# ---- one layer: the model of before the option ---------------------------------------------------------------------

# Recorded with main's code (commit 36abb6a, before lstm_layers): each parameter's sum weighted by cos(0, 1, 2, ...)
# over its flat entries, after 2 epochs (about 16 steps) of the run below; and the sha256 of the float64 model's
# config() as JSON.  Any change to the first layer's draws, the dropout streams or the graph moves these by far more
# than the tolerance, which only absorbs another CPU's or BLAS's rounding.
MAIN_FINGERPRINTS = {
    "float64": {"embed.W": -1.4855136638637136, "caps.W": 0.16726606659881835, "hidden.W": 1.565249872092073,
                "hidden.b": 0.07669545493217793, "heads.0.W": -2.398516499880013, "heads.0.b": 3.1267819783928603,
                "transitions.0.A": -0.28426999794659175, "transitions.0.start": 0.15308081782595057,
                "transitions.0.end": 0.07327725034808018, "lstm_fwd.W_ih": 5.316034669874684,
                "lstm_fwd.W_hh": -2.5314681907044445, "lstm_fwd.b": 0.5448699243613612,
                "lstm_bwd.W_ih": 0.2280289130171198, "lstm_bwd.W_hh": -0.3163836463979584,
                "lstm_bwd.b": 0.9336265834595252},
    "float32": {"embed.W": -0.8795131153858581, "caps.W": -0.008150742778518433, "hidden.W": 2.708999769572957,
                "hidden.b": 0.04703515050827985, "heads.0.W": -2.7640299179304018, "heads.0.b": 3.173353846635761,
                "transitions.0.A": -0.2361390920194964, "transitions.0.start": 0.2101152273269061,
                "transitions.0.end": 0.10019348474328069, "lstm_fwd.W_ih": 2.2549075210389176,
                "lstm_fwd.W_hh": -3.0807009037949755, "lstm_fwd.b": 0.9020844945873948,
                "lstm_bwd.W_ih": 3.8503371288366077, "lstm_bwd.W_hh": -1.55327463163448,
                "lstm_bwd.b": 0.8418842425349722}}
MAIN_CONFIG_SHA256 = "42764bfe11a6d621c8189b7fae85cc3ed21c5c2b14dcf7b42dbd105c2ba93693"


def _fingerprint(value):
    v = value.astype(np.float64).ravel()
    return float(np.sum(v * np.cos(np.arange(v.size))))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_layer_trains_as_main_did(dtype):
    train = _synthetic(np.random.default_rng(11), 60)
    config = _config(lstm_dropout=0.3, dropout=0.2, epochs=2, batch_size=40, seed=3)     # lstm_layers: the default
    m = recipe.build(config, train)
    m.astype(dtype)
    with fastnn.threads(kernels=1, blas=1):
        recipe.fit(m, train, None, config, quiet=True)
    got = {k: _fingerprint(p.value) for k, p in m.parameters().items()}
    want = MAIN_FINGERPRINTS[dtype]
    assert list(got) == list(want)                           # no new parameter, same order (the optimizer's)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9 if dtype == "float64" else 1e-5, abs=1e-9), k
    if dtype == "float64":                                   # the model file's configuration, as main wrote it
        assert "lstm_layers" not in m.config()
        assert hashlib.sha256(json.dumps(m.config(), sort_keys=True).encode()).hexdigest() == MAIN_CONFIG_SHA256


# ---- two layers ----------------------------------------------------------------------------------------------------

def _tiny(layers, lstm_dropout=0.0):
    return T._tiny_tagger(np.random.default_rng(0), "sentence", 1, False, context="bilstm", lstm_layers=layers,
                          lstm_dropout=lstm_dropout)


def test_layer_two_reads_both_directions_of_layer_one():
    """The top forward LSTM sees the words after a token (through layer 1's backward one) only with two layers; each
    sentence is still run alone (padding changes nothing)."""
    for layers in (1, 2):
        m, batch = _tiny(layers)
        x = np.random.default_rng(1).standard_normal((len(batch.words), m.lstm_fwd.W_ih.shape[1]))
        fwd, bwd = (o.value for o in m._bilstm(x, batch.offsets))
        x2 = x.copy()
        x2[2] += 1.0                                         # the last token of sentence 0 (tokens 0-2)
        fwd2, bwd2 = (o.value for o in m._bilstm(x2, batch.offsets))
        assert (not np.allclose(fwd2[0], fwd[0])) == (layers == 2)
        assert not np.allclose(bwd2[0], bwd[0])
        np.testing.assert_array_equal(fwd2[3:], fwd[3:])     # other sentences untouched
        for lo, hi in zip(batch.offsets[:-1], batch.offsets[1:]):
            alone = [o.value for o in m._bilstm(x[lo:hi], np.array([0, hi - lo]))]
            np.testing.assert_allclose(fwd[lo:hi], alone[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(bwd[lo:hi], alone[1], rtol=1e-12, atol=1e-12)
    K = m.lstm_fwd.W_hh.shape[1]
    assert m.lstm_upper["fwd2"].W_ih.shape == m.lstm_upper["bwd2"].W_ih.shape == (4 * K, 2 * K)
    assert [k for k in m.parameters() if k.startswith("lstm_upper.")] == [
        f"lstm_upper.{d}2.{p}" for d in ("fwd", "bwd") for p in ("W_ih", "W_hh", "b")]


def test_the_first_layer_starts_as_in_a_one_layer_model():
    one, _ = _tiny(1)
    two, _ = _tiny(2)
    for name, p in one.parameters().items():
        np.testing.assert_array_equal(two.parameters()[name].value, p.value)


def test_lstm_dropout_drops_between_the_layers_in_training_only():
    m, batch = _tiny(2, lstm_dropout=0.5)
    K = m.lstm_fwd.W_hh.shape[1]
    seen = concat_inputs(m, batch)
    between = [parts for parts in seen if len(parts) == 2 and all(p.shape[1] == K for p in parts)]
    (f, b), (f_e, b_e) = between                             # layer 2's input, in training and in evaluation
    for drop, full in ((f, f_e), (b, b_e)):
        kept = drop != 0
        assert 0.2 < kept.mean() < 0.8
        np.testing.assert_allclose(drop[kept], 2 * full[kept], rtol=1e-12)


def test_gradcheck_has_two_layer_cases_and_catches_a_broken_one(monkeypatch):
    cases = dict(T.gradcheck_cases())
    assert {"tagger.bilstm2", "tagger.bilstm2_multitask", "tagger.bilstm2_dropout"} <= set(cases)
    report = run_case(cases["tagger.bilstm2"])
    assert report.ok and "lstm_upper.fwd2.W_ih" in {c.name for c in report}
    real = nn.concat
    K = 3                                                    # _tiny_tagger's lstm_hidden

    def broken(parts):                                       # layer 2's input passes 1.01 x the gradient back
        out = real(parts)
        if len(parts) == 2 and all(p.value.shape[1] == K for p in parts):
            fn = out.backward_fn
            out.backward_fn = lambda g: fn(g * 1.01)
        return out
    monkeypatch.setattr(nn, "concat", broken)
    report = run_case(cases["tagger.bilstm2"])
    bad = {c.name for c in report if not c.ok}
    assert "lstm_fwd.W_ih" in bad and "lstm_bwd.W_ih" in bad
    assert not any(name.startswith(("lstm_upper.", "hidden.", "heads.")) for name in bad)


@pytest.fixture(scope="module")
def deep_model():
    """A two-layer bilstm tagger trained briefly on the synthetic problem, and dev data."""
    rng = np.random.default_rng(5)
    train, dev = _synthetic(rng, 200), _synthetic(rng, 40)
    config = _config(lstm_layers=2, lstm_hidden=6, hidden=16, embed_dim=8, window=1, epochs=4, lr=0.1,
                     batch_size=64, bucket=4, seed=0)
    m, _ = recipe.train(config, train, None, quiet=True)
    return m, train, dev


def test_two_layers_learn_and_score_in_whole_sentences(deep_model):
    m, _, dev = deep_model
    assert "bilstm=6x2 in 2 layers" in repr(m) and m.config()["lstm_layers"] == 2
    assert m.hidden.W.shape[1] == (8 + 5) + 2 * 6              # the top layer's outputs only
    assert m.evaluate(dev)["ner"]["f1"] > 90
    enc = m.encode(dev)
    whole = m.scores(enc, chunk=10**6)
    np.testing.assert_allclose(m.scores(enc, chunk=7)[0], whole[0], rtol=1e-5, atol=1e-5)


def test_two_layers_save_load_predict_round_trip(deep_model, tmp_path):
    m, _, dev = deep_model
    io.save_model(tmp_path / "d.npz", m)
    m2 = io.load_model(tmp_path / "d.npz")
    assert m2.config() == m.config() and repr(m2) == repr(m)
    assert m2.predict(dev) == m.predict(dev)
    np.testing.assert_array_equal(m2.scores(m2.encode(dev))[0], m.scores(m.encode(dev))[0])
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert {"param/lstm_fwd.W_ih", "param/lstm_upper.fwd2.W_ih", "param/lstm_upper.bwd2.b"} <= set(z.files)
    cfg = m.config()
    del cfg["lstm_layers"]                                   # a model file from before the option: one layer
    old = T.WindowTagger.from_config(cfg)
    assert old.config().get("lstm_layers", 1) == 1 and old.lstm_upper == {}


# ---- refused settings ----------------------------------------------------------------------------------------------

def test_zero_layers_and_layers_without_bilstm_are_refused_from_python():
    with pytest.raises(ValueError, match="TaggerConfig: 'lstm_layers' must be >= 1; got 0"):
        recipe.TaggerConfig(context="bilstm", lstm_layers=0)
    options = dict(recipe.model_options(_config()), lstm_layers=0)
    with pytest.raises(ValueError, match="WindowTagger: 'lstm_layers' must be an integer >= 1; got 0"):
        T.WindowTagger.build(_synthetic(np.random.default_rng(0), 5), {"ner": 3}, **options)
    with pytest.warns(UserWarning, match="'lstm_layers' has no effect without context='bilstm'"):
        recipe.build(recipe.TaggerConfig(tasks={"ner": 3}, hidden=4, embed_dim=4, lstm_layers=2),
                     _synthetic(np.random.default_rng(0), 5))


@pytest.fixture
def conll(tmp_path):
    lines = []
    for s in _synthetic(np.random.default_rng(3), 40):
        lines += [" ".join(r) for r in s] + [""]
    return write_lines(tmp_path / "train.txt", lines)


def test_cli_trains_two_layers_and_refuses_what_it_should(capsys, conll, tmp_path):
    base = ["tagger", "train", "--train", conll, "--task", "ner=3", "--epochs", "1", "--embed-dim", "4",
            "--hidden", "8", "--lstm-hidden", "4"]
    rc, _, err = run_cli(capsys, *base[:-2], "--lstm-layers", "2", "--out", tmp_path / "w.npz")
    assert rc == 2 and "--lstm-layers has no effect without --context bilstm: give --context bilstm too" in err, err
    rc, _, err = run_cli(capsys, *base, "--context", "bilstm", "--lstm-layers", "0", "--out", tmp_path / "z.npz")
    assert rc == 2 and err.strip() == "fastnn tagger train: error: --lstm-layers must be >= 1; got 0.", err
    model = tmp_path / "m.npz"
    rc, _, err = run_cli(capsys, *base, "--context", "bilstm", "--loss", "sentence", "--lstm-layers", "2",
                         "--lstm-dropout", "0.2", "--out", model)
    assert rc == 0 and "in 2 layers" in err, err
    m = io.load_model(model)
    assert m.config()["lstm_layers"] == 2 and m.drop_lstm.p == 0.2
    rc, out, err = run_cli(capsys, "tagger", "eval", "--model", model, "--data", conll, "--json")
    assert rc == 0 and "ner" in json.loads(out), err
