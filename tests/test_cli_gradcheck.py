"""`fastnn gradcheck`: table and JSON output, exit codes, and model modules plugging in via gradcheck_cases()."""
import json
import sys
import textwrap

import numpy as np
import pytest

from fastnn import gradcheck as G
from fastnn import nn
from fastnn.graph import Node
from tests.conftest import run_cli


def _run(capsys, *argv):
    return run_cli(capsys, "gradcheck", *argv)


def test_json_covers_every_node_case_and_passes(capsys):
    rc, out, _ = _run(capsys, "--json")
    rows = json.loads(out)
    assert rc == 0
    assert isinstance(rows, list) and rows
    assert all(set(r) == {"name", "param", "max_rel_err", "ok"} for r in rows)
    assert {r["name"] for r in rows} >= {n for n, _ in G.node_cases()}
    assert all(r["ok"] and r["max_rel_err"] < 1e-6 for r in rows)


def test_table_output(capsys):
    rc, out, _ = _run(capsys, "--only", "tanh", "--only", "maxout")
    lines = out.splitlines()
    assert rc == 0
    assert lines[0].split() == ["node/model", "parameter", "max", "rel", "err", "result"]
    assert any(line.startswith("maxout") and line.endswith("pass") for line in lines)
    assert "0 failed" in lines[-1]


def _broken_case(rng):
    lin = nn.Linear(2, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 2))

    def loss_fn():
        y = lin(x)
        wrong = Node(np.tanh(y.value), (y,), lambda g: y.add_grad(2 * g), "wrong_tanh")
        return nn.sum(wrong)
    return loss_fn, lin.parameters()


def _crashing_case(rng):
    raise RuntimeError("model exploded")


def test_a_failing_or_crashing_case_exits_1(capsys, monkeypatch):
    monkeypatch.setattr(G, "model_cases", lambda: [("broken", _broken_case), ("crashing", _crashing_case)])
    rc, out, err = _run(capsys, "--json", "--only", "broken", "--only", "crashing", "--only", "relu")
    rows = json.loads(out)
    assert rc == 1
    bad = {(r["name"], r["param"]) for r in rows if not r["ok"]}
    assert ("broken", "W") in bad and ("crashing", "(RuntimeError)") in bad
    assert all(r["ok"] for r in rows if r["name"] == "relu")
    assert "crashing: RuntimeError: model exploded" in err
    rc, out, _ = _run(capsys, "--only", "broken")
    assert rc == 1 and "FAIL" in out


def test_model_modules_plug_in(tmp_path, monkeypatch):
    pkg = tmp_path / "fakemodels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(textwrap.dedent("""
        import numpy as np
        from fastnn import nn

        def gradcheck_cases():
            def build(rng):
                lin = nn.Linear(3, 2, rng=rng, dtype=np.float64)
                x = rng.standard_normal((4, 3))
                return (lambda: nn.softmax_cross_entropy(lin(x), np.array([0, 1, 1, 0]))), lin.parameters()
            return [("tiny", build)]
    """))
    (pkg / "nocases.py").write_text("X = 1\n")
    (pkg / "broken.py").write_text("import nonexistent_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = dict(G.model_cases("fakemodels"))
    assert set(cases) == {"tiny", "fakemodels.broken"}
    assert G.run_case(cases["tiny"]).ok
    with pytest.raises(ModuleNotFoundError):
        cases["fakemodels.broken"](np.random.default_rng(0))
    assert G.model_cases("no_such_package_xyz") == []
    for mod in [m for m in sys.modules if m.split(".")[0] == "fakemodels"]:
        del sys.modules[mod]


def test_thread_setting_is_restored(capsys):
    import fastnn

    fastnn.set_num_threads(2)
    try:
        assert _run(capsys, "--only", "sum", "--threads", "1")[0] == 0
        assert fastnn.get_num_threads() == 2
    finally:
        fastnn.set_num_threads(None)


def test_list_and_bad_options(capsys):
    rc, out, _ = _run(capsys, "--list")
    assert rc == 0 and "softmax_output" in out.split()
    rc, _, err = _run(capsys, "--only", "no-such-case")
    assert rc == 2 and "no case name contains" in err
    rc, _, err = _run(capsys, "--eps", "0")
    assert rc == 2 and "'eps' must be > 0" in err
