"""The Python API's boundary: bad input is a clear exception (or, for a setting that is only ineffective, a warning)
naming what to pass, never an AttributeError from deep inside or a silent wrong answer."""
import os
import warnings

import numpy as np
import pytest

from fastnn.data import chunks, convert, features, read_conll, read_sentences, read_vectors
from fastnn.data.tags import well_formed
from fastnn.experiments import adding, clipping, digits, gradients
from fastnn.recipes import tagger as recipe

SENTS = [[("the", "DT"), ("dog", "NN"), ("runs", "VB")], [("a", "DT"), ("cat", "NN")]] * 3


@pytest.mark.parametrize("values, says", [
    (dict(suffix_len=2), "'suffix_len' has no effect without 'suffix_dim'"),
    (dict(prefix_dim=5), "'prefix_dim' has no effect without 'prefix_len'"),
    (dict(char_filters=7), "'char_filters' has no effect without 'char_dim'"),
    (dict(lstm_hidden=7), "'lstm_hidden' has no effect without context='bilstm'")])
def test_build_warns_of_a_model_setting_without_effect(values, says):
    # TaggerConfig(suffix_len=2) without suffix_dim built a tagger without the suffix feature, silently (only the CLI
    # refused it)
    config = recipe.TaggerConfig(tasks={"pos": 1}, hidden=4, embed_dim=4, **values)
    with pytest.warns(UserWarning, match=says):
        recipe.build(config, SENTS)


def test_fit_warns_of_a_training_setting_without_effect_once_per_ensemble():
    config = recipe.TaggerConfig(tasks={"pos": 1}, hidden=4, embed_dim=4, epochs=1, ensemble=2, average_start=1)
    model = recipe.build(config, SENTS)
    with pytest.warns(UserWarning, match="'average_start' has no effect without 'average'") as got:
        recipe.fit(model, SENTS, config=config, quiet=True)
    assert len([w for w in got if "no effect" in str(w.message)]) == 1


@pytest.mark.parametrize("preset", list(recipe.PRESETS))
def test_presets_and_defaults_build_without_such_warnings(preset):
    config = recipe.from_preset(preset, hidden=4, embed_dim=4, ensemble=1, workers=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*has no effect")
        recipe.build(config, [[(w, t, t, t) for w, t in s] for s in SENTS])
        recipe.build(recipe.TaggerConfig(tasks={"pos": 1}, hidden=4, embed_dim=4), SENTS)


@pytest.mark.parametrize("call, error, says", [
    (lambda: features.normalize_word(None), TypeError, "normalize_word: 'word' must be a str; got NoneType"),
    (lambda: features.word_suffix("hello", -1), ValueError, "word_suffix: 'n' must be >= 1; got -1"),
    (lambda: features.word_suffix("hello", 0), ValueError, "word_suffix: 'n' must be >= 1; got 0"),
    (lambda: features.word_prefix("hello", -2), ValueError, "word_prefix: 'n' must be >= 1; got -2")])
def test_word_features_refuse_what_they_cannot_take(call, error, says):
    # normalize_word(None) was an AttributeError ('NoneType' object has no attribute 'lower'); word_suffix("hello",
    # -1) returned "ello" and word_suffix("hello", 0) "hello", silently
    with pytest.raises(error, match=says):
        call()
    assert features.word_suffix("Hello1", 2) == "o0" and features.word_prefix("Hello1", 2) == "he"


@pytest.fixture(scope="module")
def taggers():
    small = dict(tasks={"pos": 1}, hidden=4, embed_dim=4)
    return (recipe.build(recipe.TaggerConfig(**small), SENTS),
            recipe.build(recipe.TaggerConfig(**small, window=3, suffix_len=2, suffix_dim=3), SENTS),
            recipe.build(recipe.TaggerConfig(**small, ensemble=2), SENTS))


@pytest.mark.parametrize("method", ["predict_ids", "scores"])
def test_tagger_methods_of_an_encoding_refuse_anything_else(taggers, method):
    # m.predict_ids(sentences) was an AttributeError ('list' object has no attribute 'words'); another model's
    # encoding a ValueError from nn.linear deep inside
    five, three, ensemble = taggers
    for m in (five, ensemble):
        with pytest.raises(TypeError, match=f"{method}: 'enc' must be self.encode\\(sentences\\)"):
            getattr(m, method)(SENTS)
        with pytest.raises(TypeError, match="a training batch"):
            getattr(m, method)(m.encode(SENTS).batch(rows=[0, 1]))
        with pytest.raises(ValueError, match="'enc' must be this model's encoding; got one of another model"):
            getattr(m, method)(three.encode(SENTS))
        assert len(getattr(m, method)(m.encode(SENTS))[0]) == sum(map(len, SENTS))


def test_load_model_with_the_class_of_another_kind_says_so(tmp_path, taggers):
    # load_model(tagger_file, NPLM) said "has a configuration that does not build a NPLM: TypeError: NPLM.__init__()
    # got an unexpected keyword argument 'tasks'"; cls="WindowTagger" was an AttributeError ('str' ... 'from_config')
    from fastnn import io
    from fastnn.models.nplm import NPLM
    from fastnn.models.tagger import WindowTagger
    path = tmp_path / "tagger.npz"
    io.save_model(path, taggers[0])
    with pytest.raises(ValueError, match="holds a fastnn.models.tagger:WindowTagger, not a fastnn.models.nplm:NPLM"):
        io.load_model(path, NPLM)
    with pytest.raises(TypeError, match="'cls' must be a model class \\(with from_config\\) or None; got str"):
        io.load_model(path, "WindowTagger")
    assert isinstance(io.load_model(path, WindowTagger), WindowTagger)


@pytest.mark.parametrize("call, error, says", [
    (lambda: adding.run_adding(T=5, models="tanh", steps=1), TypeError,
     "run_adding: 'models' must be a list; got the string 'tanh'. Pass \\['tanh'\\]"),
    (lambda: clipping.run_clipping(T=5, modes="norm", steps=1), TypeError, "run_clipping: 'modes' must be a list"),
    (lambda: gradients.run_gradients(T=5, models="tanh", train_steps=1, n=4), TypeError,
     "run_gradients: 'models' must be a list"),
    (lambda: digits.run_digits(models="irnn"), TypeError, "run_digits: 'models' must be a list"),
    (lambda: digits.run_digits(grid={"lr": 0.1, "clip": [1.0]}), TypeError,
     "run_digits: grid\\['lr'\\] must be a list of numbers > 0; got the number 0.1"),
    (lambda: adding.run_adding_grid(T=5, grid=[0.1, 1.0], models=["tanh"]), TypeError,
     "run_adding_grid: 'grid' must be a dict like")])
def test_experiments_refuse_a_string_or_number_for_a_list(call, error, says):
    # models="tanh" said "each model must be one of (...); got 't'" (its letters read as the models); a grid of
    # numbers or a list of them was "'float' object is not iterable" / "cannot convert dictionary update sequence"
    with pytest.raises(error, match=says):
        call()


@pytest.mark.parametrize("settings, says", [
    (dict(batch_size=0), "train: 'batch_size' must be an integer >= 1; got 0"),    # (nn.mse: no target)
    (dict(steps=0), "train: 'steps' must be an integer >= 1; got 0"),               # (Linear: 'steps')
    (dict(clip=-1), "train: 'max_norm' must be > 0; got -1"),                       # (clip_grad_norm)
    (dict(momentum=2), "train: 'momentum' must be in \\[0, 1\\); got 2"),            # (trained on, diverging)
    (dict(lr=float("nan")), "train: 'lr' must be finite"),                          # (Linear: 'start')
    (dict(n_test=0), "run_adding: 'n_test' must be an integer >= 1; got 0")])        # (a test MSE of nan)
def test_adding_experiment_settings_are_checked_where_every_experiment_trains(settings, says):
    with pytest.raises(ValueError, match=says):
        adding.run_adding(T=5, models=["tanh"], **dict(dict(steps=1), **settings))


def test_gradients_experiment_needs_sequences():
    with pytest.raises(ValueError, match="run_gradients: 'n' must be an integer >= 1; got 0"):
        gradients.run_gradients(T=5, models=["tanh"], train_steps=1, n=0)


def _no_return(params):
    params["x"] * 2


def test_a_search_objective_without_a_return_is_named_so():
    # the trial's error was "float() argument must be a string or a real number, not 'NoneType' at search.py:311"
    from fastnn import search
    rec, = search.random_search(_no_return, {"x": {"uniform": [0, 1]}}, 1, workers=1)
    assert rec["score"] is None and "must return a number" in rec["error"] and "no return statement" in rec["error"]


@pytest.mark.parametrize("call", [lambda p: read_sentences(p), lambda p: read_conll(p), lambda p: read_vectors(p)])
def test_readers_name_themselves_for_what_is_not_one_path(tmp_path, call):
    # read_conll(["a.conll"]) and read_sentences([...]) were os.fspath's bare "expected str, bytes or os.PathLike
    # object, not list"; the check lives in one place now (_validation.check_path: io, vectors, every text reader)
    path = tmp_path / "a.txt"
    path.write_text("the DT\n")
    with pytest.raises(TypeError, match=r"^read_\w+: 'path' must be a file path \(str or os.PathLike\); got list \[.*"
                                        r"One file per call"):
        call([str(path)])
    with pytest.raises(TypeError, match=r"^read_\w+: 'path' must be a file path .*; got NoneType"):
        call(None)


@pytest.mark.parametrize("call", [lambda t: chunks(t), lambda t: convert(t, "iob2", "iobes"),
                                  lambda t: well_formed(t, "iob2")])
def test_tag_functions_refuse_a_string_for_the_tags(call):
    # chunks("O") gave [] and chunks("OO") read two tags, silently; chunks("B-NP") said "got 'B'"
    for tags in ("O", "B-NP"):
        with pytest.raises(TypeError, match=f"'tags' must be a list of one sentence's tags; got the string '{tags}'"):
            call(tags)
    assert chunks(["B-NP", "I-NP", "O"]) == [("NP", 0, 2)]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (a directory where no file can be made)")
def test_a_checkpoint_where_no_file_can_be_made_is_refused_before_training():
    # Trainer(checkpoint="/proc/x.npz") passed os.access (as root), trained an epoch and lost it to FileNotFoundError
    # at the first save; the CLI's own check (a file made and removed) is now io.cannot_create, shared
    from fastnn import optim
    from fastnn.models.classifiers import LogisticRegression
    from fastnn.train import ArrayBatches, Trainer
    X = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    model = LogisticRegression(2, n_features=3, seed=0)
    with pytest.raises(PermissionError, match="Trainer: 'checkpoint' must be in a directory where files can be made; "
                                              "/proc"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), ArrayBatches(X, (X[:, 0] > 0).astype(int),
                                                                           batch_size=4),
                quiet=True, checkpoint="/proc/x.npz")


@pytest.mark.parametrize("call, where", [
    (lambda: __import__("fastnn.data", fromlist=["brown"]).brown(None), "brown"),
    (lambda: __import__("fastnn.embed", fromlist=["x"]).read_any_vectors(None), "is_model_file"),
    (lambda: __import__("fastnn.experiments.compare", fromlist=["x"]).read_tagged(None), "read_tagged")])
def test_other_path_takers_name_themselves(call, where):
    # each was os.fspath's bare "expected str, bytes or os.PathLike object, not NoneType"
    with pytest.raises(TypeError, match=f"^{where}: 'path' must be a file path"):
        call()
