"""House rules that reading the code would otherwise have to check (../shared/DESIGN.md): no module outside nn/ and
graph.py uses a private name (_x) of another fastnn module, only kernels.py calls the compiled kernels (their
private functions in fastnn._ext are its to call; fastnn and fastnn._threads read the build facts of _ext._info), and
a model constructor writes no default of a setting its Config holds (the Config is that default's one home).

Private *modules* (fastnn._validation, fastnn._threads, fastnn.cli._common) are shared helpers of their package and
may be imported; what is checked is a module's private names: `from fastnn.x import _y` and `x._y` where x is
another fastnn module.
"""
import ast
import dataclasses
import importlib.util
import inspect
import os

import pytest

import fastnn

ROOT = os.path.dirname(os.path.abspath(fastnn.__file__))
# Modules that may use each other's private names: the graph and the node types written on its hooks.
TRUSTED = ("fastnn.graph", "fastnn.nn")
# The kernels' wrappers call the extension's private functions (../shared/STYLE.md B2).
EXTENSION = "fastnn._ext"


def _modules():
    for dirpath, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for f in sorted(files):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                yield ".".join(rel), os.path.join(dirpath, f)


MODULES = dict(_modules())


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(dotted):
    if dotted in MODULES:
        return True
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def _absolute(module, node):
    """The absolute module name of an ImportFrom inside `module` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    is_pkg = MODULES.get(module, "").endswith("__init__.py")
    base = parts[:len(parts) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(module, source):
    """[(line, text)] of the private names of other fastnn modules that `module`'s source uses."""
    tree = ast.parse(source)
    aliases = {}                               # local name -> fastnn module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fastnn"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            src = _absolute(module, node)
            if not src.startswith("fastnn"):
                continue
            for a in node.names:
                full = f"{src}.{a.name}"
                if _is_module(full):
                    aliases[a.asname or a.name] = full
                elif _private(a.name) and src != module:
                    found.append((node.lineno, f"from {src} import {a.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            target = _dotted(node.value, aliases)          # a fastnn module, or None
            if target and target != module and not _is_module(f"{target}.{node.attr}"):
                found.append((node.lineno, f"{target}.{node.attr}"))
    return sorted(set(found))


def _dotted(node, aliases):
    """The fastnn module an expression like `F` or `fastnn.optim` names (via the file's imports), else None."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base and _is_module(f"{base}.{node.attr}") else None
    return None


def test_no_private_names_across_modules():
    bad = []
    for module, path in MODULES.items():
        if module.startswith(TRUSTED):
            continue
        with open(path, encoding="utf-8") as f:
            for line, text in private_uses(module, f.read()):
                if module == "fastnn.kernels" and text.startswith(EXTENSION + "."):
                    continue
                bad.append(f"{os.path.relpath(path, os.path.dirname(ROOT))}:{line}: {text}")
    assert not bad, "private names of other modules used (make them public or move the code):\n" + "\n".join(bad)


# The benchmark scripts measure the library through its public API (bench_kernels, bench_lm: kernels.rnnlm_*).
BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
SCRIPTS = {f"bench.{f[:-3]}": os.path.join(BENCH, f) for f in sorted(os.listdir(BENCH)) if f.endswith(".py")} \
    if os.path.isdir(BENCH) else {}


def test_only_kernels_imports_the_extension():
    users = set()
    for module, path in {**MODULES, **SCRIPTS}.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = _absolute(module, node)
                names = [f"{src}.{a.name}" for a in node.names]
            else:
                continue
            if any(n.startswith(EXTENSION + ".") and n != EXTENSION + "._info" for n in names):
                users.add(module)
    assert users <= {"fastnn.kernels"}, sorted(users)


@pytest.mark.parametrize("source,found", [
    ("from fastnn.models.nplm import _posint\n", ["from fastnn.models.nplm import _posint"]),
    ("from fastnn.nn import functional as F\nF._acc(1)\n", ["fastnn.nn.functional._acc"]),
    ("import fastnn._threads\nfastnn._threads._default = 1\n", ["fastnn._threads._default"]),
    ("from fastnn import _threads\n_threads._default = 2\n", ["fastnn._threads._default"]),
    ("from fastnn._validation import check_int\nfrom fastnn.cli._common import flag\n", []),
    ("from fastnn import kernels\nkernels.__name__\n", []),
])
def test_the_checker_finds_what_it_should(source, found):
    assert [text for _, text in private_uses("fastnn.models.example", source)] == found


# ---- one home for each default -------------------------------------------------------------------------------------

def _model_configs():
    """[(model class, the Configs that build it)] (fastnn/recipes, the optimizer comparison's CompareConfig, and the
    RNN experiments' settings tables)."""
    from fastnn.experiments import adding, digits
    from fastnn.experiments.compare import CompareConfig
    from fastnn.models.classifiers import MLP, LogisticRegression
    from fastnn.models.lstmlm import LSTMLM
    from fastnn.models.ngram import DeletedInterpolation, KneserNey
    from fastnn.models.nplm import NPLM
    from fastnn.models.ranking import WindowRanker
    from fastnn.models.rnnlm import RNNLM
    from fastnn.models.tagger import WindowTagger
    from fastnn.recipes import embed, lm, tagger
    return [(NPLM, (lm.NPLMConfig, embed.NPLMEmbedConfig)), (RNNLM, (lm.RNNConfig, embed.RNNEmbedConfig)),
            (LSTMLM, (lm.LSTMConfig,)), (KneserNey, (lm.NGramConfig,)), (DeletedInterpolation, (lm.NGramConfig,)),
            (WindowRanker, (embed.RankingConfig,)), (LogisticRegression, (CompareConfig,)), (MLP, (CompareConfig,)),
            (WindowTagger, (tagger.TaggerConfig,)),
            (adding.AddingRNN, (("adding.DEFAULTS", adding.DEFAULTS),)),
            (digits.DigitRNN, (("digits.DEFAULTS", digits.DEFAULTS),))]


# Config fields that reach the model under another name
ALIASES = {"clip_value": "clip", "keep_case": "lowercase"}


def defaults_written_twice(model, configs):
    """["Model(name=default)"] for each constructor parameter named like a field of `configs` that has a default.
    A None default is allowed where the Config's default is not None: None then means "not this kind of input"
    (a classifier's window on dense features), it does not repeat the Config's value."""
    params = inspect.signature(model.__init__).parameters
    found, seen = [], set()
    for config in configs:
        if isinstance(config, tuple):                     # (label, {name: default}): an experiment's settings table
            label, fields = config[0], list(config[1].items())
        else:
            label, fields = config.__name__, [(f.name, f.default) for f in dataclasses.fields(config)]
        for name, default in fields:
            p = params.get(ALIASES.get(name, name))
            if p is None or p.default is inspect.Parameter.empty or p.name in seen:
                continue
            if p.default is None and default is not None:
                continue
            seen.add(p.name)
            found.append(f"{model.__name__}({p.name}={p.default!r}) vs {label}.{name}")
    return found


def test_model_constructors_leave_the_configs_defaults_to_the_configs():
    bad = [d for model, configs in _model_configs() for d in defaults_written_twice(model, configs)]
    assert not bad, ("a model constructor writes a default its Config holds (drop it: the caller passes the value, "
                     "recipes build the model from the Config):\n" + "\n".join(bad))


def test_the_defaults_check_finds_what_it_should():
    from fastnn.recipes.lm import RNNConfig

    class Model:
        def __init__(self, vocab_size, *, hidden=256, embed=None, clip=0.0, dtype="float32"):
            pass
    assert defaults_written_twice(Model, [RNNConfig]) == [
        "Model(hidden=256) vs RNNConfig.hidden", "Model(embed=None) vs RNNConfig.embed",
        "Model(clip=0.0) vs RNNConfig.clip_value"]
