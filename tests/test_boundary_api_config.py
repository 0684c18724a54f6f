"""Recipe Configs given the wrong type for a table or a path: a TypeError naming the field when the Config is made,
not an AttributeError ('list' object has no attribute 'items') or open()'s bare TypeError later."""
import pathlib

import pytest

from fastnn.recipes.tagger import TaggerConfig


@pytest.mark.parametrize("name, value", [("tasks", "pos"), ("tasks", ["pos"]), ("features", ["x"]),
                                         ("task_weights", [1.0])])
def test_a_table_must_be_a_dict(name, value):
    with pytest.raises(TypeError, match=rf"TaggerConfig: '{name}' must be a dict .*; got {type(value).__name__}"):
        TaggerConfig(**{name: value})


def test_a_path_must_be_a_string():
    with pytest.raises(TypeError, match="TaggerConfig: 'pretrained' must be a string \\(a path\\) or None; got int"):
        TaggerConfig(pretrained=3)
    assert TaggerConfig(pretrained=pathlib.Path("v.txt")).pretrained == "v.txt"     # JSON-able in a model file


@pytest.mark.parametrize("name", ["objective", "on_result"])
def test_random_search_checks_its_callables_before_any_trial(tmp_path, name):
    from fastnn.search import Uniform, random_search
    log = tmp_path / "runs.jsonl"
    kw = {"objective": lambda p: p["lr"], "on_result": None, name: 3}
    # a non-callable objective was logged as failed trials (counted as done by a rerun with the same log)
    with pytest.raises(TypeError, match=rf"random_search: '{name}' must be callable, taking \(.*\); got int"):
        random_search(kw["objective"], {"lr": Uniform(0, 1)}, 2, workers=1, log=log, on_result=kw["on_result"])
    assert not log.exists() or log.read_text() == ""


@pytest.mark.parametrize("config", [{"tasks": {"pos": 1}}, None, "pos"])
@pytest.mark.parametrize("entry", ["build", "train"])
def test_tagger_recipe_needs_a_tagger_config(entry, config):
    # a dict failed in dataclasses.replace ("should be called on dataclass instances"), another recipe's Config with
    # an AttributeError
    from fastnn.recipes import lm, tagger
    rows = [[("John", "NNP"), ("runs", "VBZ")]] * 3
    with pytest.raises(TypeError, match=f"^{entry}: 'config' must be a TaggerConfig; got "):
        getattr(tagger, entry)(config, rows)
    with pytest.raises(TypeError, match="'config' must be a TaggerConfig; got NGramConfig"):
        getattr(tagger, entry)(lm.config_for("ngram"), rows)


def test_random_search_objective_must_take_the_params(tmp_path):
    from fastnn.search import Uniform, random_search
    log = tmp_path / "runs.jsonl"
    # every trial failed ("takes 2 positional arguments") and was logged as done
    with pytest.raises(TypeError, match=r"random_search: 'objective' must take \(params\)"):
        random_search(lambda lr, hidden: lr, {"lr": Uniform(0, 1)}, 2, workers=1, log=log)
    assert not log.exists() or log.read_text() == ""


def test_best_checks_k_and_maximize():
    from fastnn.search import best
    records = [{"trial": t, "score": s} for t, s in enumerate([0.3, 0.9, 0.5])]
    with pytest.raises(ValueError, match="best: 'k' must be an integer >= 0; got -1"):
        best(records, -1)               # was every record but the worst
    with pytest.raises(TypeError, match="best: 'maximize' must be True or False; got 'no'"):
        best(records, maximize="no")    # was maximize=True
    assert [r["trial"] for r in best(records, 2, maximize=False)] == [0, 2]


@pytest.mark.parametrize("score", ["0.5", True])
def test_random_search_score_must_be_a_number(score):
    from fastnn.search import Uniform, random_search
    rec = random_search(lambda p: score, {"lr": Uniform(0, 1)}, 1, workers=1)[0]     # was a score of 0.5 / 1.0
    assert rec["score"] is None and "the objective must return a number" in rec["error"]
