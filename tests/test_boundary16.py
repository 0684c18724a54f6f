"""Four defects left open: a diverged validation score kept as the best epoch, an embed-trained LM's text
normalisation lost on the way to `lm eval`, a bfloat16 output layer cast to float64, and a tagger's affix length
ignored without its vector size.  Each was silent; each test fails on the code before its fix."""
import math
import warnings

import numpy as np
import pytest

from fastnn import optim
from fastnn.metrics import perplexity_from_nll
from fastnn.models.classifiers import LogisticRegression
from fastnn.train import ArrayBatches, Trainer, TrainingDiverged
from tests.conftest import run_cli, write_lines

pytestmark = pytest.mark.filterwarnings("ignore:.*counts-of-counts")


# ---- 1. a validation score that is not finite, or whose perplexity overflowed, is a divergence ----------------------

def _trainer(scores, **kw):
    """A Trainer of a tiny classifier whose validation returns `scores` one epoch after the other."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 3, size=20)
    model = LogisticRegression(3, n_features=4, seed=0)
    it = iter(scores)
    kw.setdefault("mode", "min")
    return Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(X, y, batch_size=5),
                   epochs=len(scores), quiet=True, validate=lambda m: next(it), **kw)


def test_a_perplexity_that_overflowed_is_a_divergence_keeping_the_best_epoch():
    # `lm train --arch rnn --lr 1e30`: a mean NLL of 3.9e30 is finite, its perplexity inf; it was kept as the best
    # epoch ('valid ppl inf *'), written, exit 0
    trainer = _trainer([2.0, 1.5, 3.9e30], metric=("valid ppl", perplexity_from_nll))
    kept = {}
    trainer.callback = lambda t, rec: kept.setdefault(rec["epoch"], {n: p.value.copy() for n, p in
                                                                     t.model.parameters().items()}) and False
    with pytest.raises(TrainingDiverged, match=r"Trainer: the validation score must be finite; got valid ppl inf "
                                               r"\('validate' returned 3\.9e\+30\) after epoch 3: the model diverged"
                       ) as e:
        trainer.fit()
    assert e.value.best_epoch == 2 and trainer.best_score == 1.5
    assert "The model holds the parameters of its best epoch (2)" in str(e.value)
    for name, p in trainer.model.parameters().items():
        np.testing.assert_array_equal(p.value, kept[2][name])


@pytest.mark.parametrize("score", [math.nan, math.inf])
def test_a_non_finite_validation_score_is_a_divergence(score):
    # (it was a warning, and the run went on to end with its last parameters)
    with pytest.raises(TrainingDiverged, match=f"got {score} after epoch 1: the model diverged .*or pass "
                                               "on_nonfinite='skip'") as e:
        _trainer([score, 1.0]).fit()
    assert e.value.best_epoch is None


def test_an_overflowing_metric_function_is_a_divergence_not_an_overflow_error():
    # the docstring's own example, metric=("valid ppl", math.exp), raised OverflowError on an NLL above ~709 while
    # writing the epoch line: the run was lost, its best epoch with it
    with pytest.raises(TrainingDiverged, match=r"got valid ppl inf \('validate' returned 1e\+04\) after epoch 2") as e:
        _trainer([2.0, 1e4], metric=("valid ppl", math.exp)).fit()
    assert e.value.best_epoch == 1


def test_with_skip_an_overflowed_score_warns_and_is_never_the_best():
    trainer = _trainer([3.9e30, 2.0, 1e31], metric=("valid ppl", perplexity_from_nll), on_nonfinite="skip")
    with pytest.warns(RuntimeWarning) as caught:
        history = trainer.fit()
    said = [str(w.message) for w in caught]
    assert len(said) == 2 and all(
        m.startswith(f"Trainer: 'validate' gave valid ppl inf ('validate' returned {s}) after epoch {e};")
        for m, s, e in zip(said, ("3.9e+30", "1e+31"), (1, 3)))
    assert "a non-finite score never counts as an improvement" in str(caught[0].message)
    assert [h["best"] for h in history] == [False, True, False] and trainer.best_epoch == 2


def test_lm_train_that_diverges_stops_with_one_line_exit_1(capsys, tmp_path):
    lines = ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"] * 10
    train = write_lines(tmp_path / "train.txt", lines)
    dev = write_lines(tmp_path / "dev.txt", lines[:8])
    out = tmp_path / "m.npz"
    rc, stdout, err = run_cli(capsys, "lm", "train", "--arch", "rnn", "--lr", "1e30", "--train", train, "--dev", dev,
                              "--out", out, "--epochs", "2", "--hidden", "8", "--classes", "0", "--min-count", "1",
                              "--batch-size", "2", "--quiet")
    assert rc == 1, (stdout, err)
    assert "valid_perplexity inf" not in stdout
    line, = err.strip().splitlines()
    assert line.startswith("fastnn lm train: stopped: Trainer: the validation score must be finite; got valid ppl "
                           "inf"), err
    assert "--on-nonfinite skip" in line and not out.exists()


# ---- 3. a bfloat16 output layer cast to float64 trains (in float64), and gets its bfloat16 products back -----------

amx = pytest.mark.skipif(not __import__("fastnn.kernels", fromlist=["amx_bf16"]).amx_bf16(),
                         reason="this CPU (or build, or OS) cannot run AMX-BF16 tiles")


def _grads(out, h, t):
    out.zero_grad()
    loss = out.loss(h, t)
    loss.backward()
    return float(loss.value), out.W.grad.copy(), out.b.grad.copy()


@amx
def test_a_bfloat16_output_layer_cast_to_float64_trains_and_casts_back():
    from fastnn import nn
    rng = np.random.default_rng(0)
    h = rng.normal(size=(16, 32)).astype(np.float32)
    t = rng.integers(0, 40, size=16)
    out = nn.SoftmaxOutput(32, 40, rng=np.random.default_rng(1), precision="bfloat16")
    plain = nn.SoftmaxOutput(32, 40, rng=np.random.default_rng(1))
    bf16 = _grads(out, h, t)
    out.astype(np.float64)                   # (the next step was a TypeError: bfloat16 with float64 parameters)
    plain.astype(np.float64)
    for a, b in zip(_grads(out, h.astype(np.float64), t), _grads(plain, h.astype(np.float64), t)):
        np.testing.assert_array_equal(a, b)  # the float64 layer's own products
    assert out.precision == "bfloat16"
    out.astype(np.float32)                   # back: the bfloat16 products again, as before the cast
    for a, b in zip(_grads(out, h, t), bf16):
        np.testing.assert_array_equal(a, b)
    plain.astype(np.float32)
    assert not np.array_equal(_grads(plain, h, t)[1], bf16[1])    # (they are not float32's)
    with pytest.raises(TypeError, match=r"precision='bfloat16' needs float32 parameters; got float64"):
        plain.astype(np.float64).precision = "bfloat16"


@amx
def test_an_nplm_with_bfloat16_output_trains_after_astype_float64():
    from fastnn.models.nplm import contexts
    from fastnn.recipes import lm as recipe
    config = recipe.NPLMConfig(order=3, dim=4, hidden=8, classes=0, output_precision="bfloat16", epochs=1,
                               batch_size=8, min_count=1)
    sents = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat"]] * 4
    vocab, streams = recipe.prepare(config, sents)
    model, data, lr = recipe.build(config, vocab, streams["train"])
    model.astype(np.float64)
    s = streams["train"]
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(contexts(s, 3, vocab.eos_id), s,
                                                                                 batch_size=8), epochs=1, quiet=True)
    trainer.fit()
    assert model.out.W.value.dtype == np.float64 and trainer.step > 0


# ---- 4. the tagger's own builder says when an affix length (or size) is ignored ----------------------------------

_ROWS = [[("John", "NNP", "B-NP", "B-PER"), ("runs", "VBZ", "B-VP", "O")],
         [("Mary", "NNP", "B-NP", "B-PER"), ("walks", "VBZ", "B-VP", "O")]] * 3


def _build(**options):
    from fastnn.models.tagger import WindowTagger
    from fastnn.recipes.tagger import TaggerConfig, model_options
    return WindowTagger.build(_ROWS, {"ner": 3}, **{**model_options(TaggerConfig(tasks={"ner": 3}, hidden=8,
                                                                                   embed_dim=4)), **options})


@pytest.mark.parametrize("options, name, other", [
    (dict(suffix_len=2, suffix_dim=0), "suffix_len", "suffix_dim"),
    (dict(suffix_len=0, suffix_dim=10), "suffix_dim", "suffix_len"),
    (dict(prefix_len=(1, 2), prefix_dim=0), "prefix_len", "prefix_dim"),
    (dict(prefix_len=0, prefix_dim=10), "prefix_dim", "prefix_len")])
def test_window_tagger_build_says_an_affix_setting_is_ignored(options, name, other):
    # (the tagger was built without the feature, silently; recipes.tagger.build warned only for a TaggerConfig)
    with pytest.warns(UserWarning, match=f"WindowTagger.build: '{name}' has no effect without '{other}'; it is "
                                         f"ignored.") as caught:
        model = _build(**options)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert model.suffix is None and model.prefix is None


def test_window_tagger_build_with_both_or_neither_affix_setting_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _build(suffix_len=(1, 2), suffix_dim=3, prefix_len=1, prefix_dim=2).suffix is not None
        assert _build().suffix is None
    with pytest.raises(ValueError, match="'suffix_len' must be an int >= 0 or distinct ints >= 1; got 'x'"):
        _build(suffix_len="x", suffix_dim=0)      # (not read at all without a size: accepted, silently)


def test_the_recipe_warns_once_and_presets_build_quietly():
    from fastnn.recipes.tagger import PRESETS, TaggerConfig, build, from_preset
    with pytest.warns(UserWarning) as caught:
        build(TaggerConfig(tasks={"ner": 3}, suffix_len=2, hidden=8, embed_dim=4), _ROWS)
    assert [str(w.message) for w in caught] == ["build: 'suffix_len' has no effect without 'suffix_dim'; it is "
                                                "ignored."]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in PRESETS:
            model = build(from_preset(name, hidden=8, embed_dim=4, ensemble=1), _ROWS)
            assert model.suffix is not None and model.prefix is not None


def test_the_constructor_says_so_too():
    from fastnn.models.tagger import WindowTagger
    cfg = dict(_build().config(), suffix_len=2)
    with pytest.warns(UserWarning, match="WindowTagger: 'suffix_len' has no effect without 'suffix_dim'"):
        assert WindowTagger.from_config(cfg).suffix is None


# ---- 2. an embed-trained LM records its text normalisation; lm eval (and recipes.lm) read raw text with it ----------

_RAW = ["The dog runs in 1999", "The cat runs", "A dog sees the Cat", "the bird sees a dog", "Paris has 12 dogs"] * 8


@pytest.fixture(scope="module")
def embed_lm(tmp_path_factory):
    """(path of an `embed train --objective rnn --save-model` file, raw text path, normalised text path)."""
    from fastnn.cli import main
    d = tmp_path_factory.mktemp("embed_lm")
    raw = write_lines(d / "raw.txt", _RAW)
    norm = write_lines(d / "norm.txt", [" ".join(w.lower().replace("1", "0").replace("2", "0").replace("9", "0")
                                                 for w in line.split()) for line in _RAW])
    model = d / "e.npz"
    assert main(["embed", "train", "--objective", "rnn", "--text", raw, "--out", str(d / "v.txt"), "--save-model",
                 str(model), "--epochs", "1", "--dim", "4", "--hidden", "4", "--classes", "0", "--min-count", "1",
                 "--batch-size", "2", "--quiet"]) == 0
    return str(model), raw, norm


def _eval(capsys, *argv):
    rc, out, err = run_cli(capsys, "lm", "eval", *argv)
    assert rc == 0, err
    return out


def test_lm_eval_reads_raw_text_as_an_embed_model_was_trained_on_it(capsys, embed_lm):
    # raw text had 'The', 'Paris', '1999' counted as <unk>: a perplexity of other words, silently
    model, raw, norm = embed_lm
    assert _eval(capsys, "--model", model, "--data", raw) == _eval(capsys, "--model", model, "--data", norm)
    assert " oov_as_unk 0" in _eval(capsys, "--model", model, "--data", raw)
    lines = _eval(capsys, "--model", model, "--data", raw, "--per-sentence").splitlines()
    assert [line.split("\t")[3] for line in lines] == _RAW      # each line printed as given, scored normalised
    assert [line.split("\t")[:3] for line in lines] == [
        line.split("\t")[:3] for line in _eval(capsys, "--model", model, "--data", norm, "--per-sentence").splitlines()]


def test_the_record_is_in_the_model_file_and_survives_a_python_save(embed_lm, tmp_path):
    from fastnn import io
    from fastnn.embed import NORMALIZATION, text_normalizer
    model = io.load_model(embed_lm[0])
    assert model.text_normalization == NORMALIZATION == "normalize_word"
    assert text_normalizer(model)("Paris1999") == "paris0000"
    io.save_model(tmp_path / "again.npz", model)
    assert io.read_file(tmp_path / "again.npz")[0]["text_normalization"] == "normalize_word"
    assert io.load_model(tmp_path / "again.npz").text_normalization == "normalize_word"


def test_pretrain_records_it_for_every_objective():
    from fastnn.recipes.embed import OBJECTIVES, pretrain
    sents = [s.split() for s in _RAW]
    for objective in OBJECTIVES:
        extra = {"ranking": dict(window=3), "rnn": dict(classes=0, batch_size=2)}.get(objective, {})
        res = pretrain(objective, sents, dim=4, hidden=4, epochs=1, min_count=1, quiet=True, **extra)
        assert res.model.text_normalization == "normalize_word", objective


def test_recipes_lm_read_words_as_the_model_spells_them(embed_lm):
    from fastnn import io
    from fastnn.recipes import lm as recipe
    model = io.load_model(embed_lm[0])
    raw = [s.split() for s in _RAW]
    norm = [[w.lower() for w in s] for s in raw]
    norm = [[w.replace("1", "0").replace("2", "0").replace("9", "0") for w in s] for s in norm]
    assert recipe.perplexity(model, raw) == recipe.perplexity(model, norm)
    assert recipe.perplexity(model, iter(raw)) == recipe.perplexity(model, norm)      # a generator, read once
    for a, b in zip(recipe.sentence_logprobs(model, raw), recipe.sentence_logprobs(model, norm)):
        np.testing.assert_array_equal(a, b)
    assert recipe.sample(model, prompt=["The", "Cat"], max_len=3)[0][:2] == ["the", "cat"]
    assert recipe.normalize_like(model, np.array([2, 3])).tolist() == [2, 3]             # ids as given


def test_a_file_without_the_record_reads_text_as_written(capsys, embed_lm, tmp_path):
    # older embed train files, and every lm train model: no record, words looked up as written (as before)
    from fastnn import io
    from fastnn.recipes import lm as recipe
    model = io.load_model(embed_lm[0])
    del model.text_normalization
    old = tmp_path / "old.npz"
    io.save_model(old, model)
    assert "text_normalization" not in io.read_file(old)[0]
    assert not hasattr(io.load_model(old), "text_normalization")
    raw = [s.split() for s in _RAW]
    assert recipe.normalize_like(model, raw) is raw
    out = _eval(capsys, "--model", old, "--data", embed_lm[1])
    assert out != _eval(capsys, "--model", old, "--data", embed_lm[2]) and " oov_as_unk 0" not in out


def test_mixing_models_that_read_text_differently_is_refused(capsys, embed_lm, tmp_path):
    from fastnn import io
    model = io.load_model(embed_lm[0])
    del model.text_normalization
    io.save_model(tmp_path / "as_written.npz", model)
    rc, out, err = run_cli(capsys, "lm", "eval", "--model", embed_lm[0], "--mix", tmp_path / "as_written.npz",
                           "--data", embed_lm[1])
    assert rc == 2 and err.strip().endswith("reads text as 'normalize_word' but " + str(tmp_path / "as_written.npz")
                                            + " as written; both models must read text alike (mix two models of "
                                              "embed train, or two of lm train)"), err


def test_a_normalisation_this_fastnn_does_not_know_is_one_line(capsys, embed_lm, tmp_path):
    from fastnn import io
    from fastnn.recipes import lm as recipe
    model = io.load_model(embed_lm[0])
    model.text_normalization = "stem_porter"
    io.save_model(tmp_path / "later.npz", model)
    rc, out, err = run_cli(capsys, "lm", "eval", "--model", tmp_path / "later.npz", "--data", embed_lm[1])
    assert rc == 2 and "the model's words were made with the text normalisation 'stem_porter', which this fastnn " \
                       "does not know" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="normalize_like: the model's words were made with the text normalisation "
                                         "'stem_porter'"):
        recipe.perplexity(model, [["the"]])
    model.text_normalization = 3
    with pytest.raises(TypeError, match="save_model: the model's 'text_normalization' must be the name of a "
                                        "normalisation"):
        io.save_model(tmp_path / "bad.npz", model)


def test_lm_sample_spells_the_prompt_as_the_model(capsys, embed_lm):
    rc, out, err = run_cli(capsys, "lm", "sample", "--model", embed_lm[0], "--prompt", "The Cat", "--max-len", "3")
    assert rc == 0 and out.startswith("the cat") and "not in the model's vocabulary" not in err, (out, err)
