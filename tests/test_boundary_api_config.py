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
