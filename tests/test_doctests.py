"""Every docstring example in fastnn runs as shown: doctest over every module (examples that need data files are
marked `# doctest: +SKIP`, and say which file)."""
import doctest
import importlib
import pkgutil
import warnings

import pytest

import fastnn


def _modules():
    names = ["fastnn"]
    for info in pkgutil.walk_packages(fastnn.__path__, "fastnn."):
        if not info.name.startswith("fastnn._ext") and not info.name.endswith("__main__"):   # __main__ runs the CLI
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # tiny example data makes some estimators warn
        res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True,
                              raise_on_error=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples of {name} failed (printed above)"


def test_doctests_are_collected():
    """A guard against the walk finding nothing (e.g. a packaging change hiding the modules)."""
    found = [t for n in _modules() for t in doctest.DocTestFinder().find(importlib.import_module(n))]
    assert len(_modules()) > 30 and sum(len(t.examples) for t in found) > 30
