"""The Python API's boundary: bad input is a clear exception (or, for a setting that is only ineffective, a warning)
naming what to pass, never an AttributeError from deep inside or a silent wrong answer."""
import warnings

import pytest

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
