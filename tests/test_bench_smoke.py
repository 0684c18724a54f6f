"""Smoke tests for bench/: `pytest bench` collects and runs bench_kernels.py, and bench/summarize.py reads its JSON."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

BENCH = os.path.join(REPO, "bench")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summarize():
    return _load("summarize")


def _fake_run(path, times, infos=None):
    infos = infos or {}
    benches = [dict(group=g, extra_info=dict(impl=i, n_threads=2, cpu_model="test CPU", **infos.get((g, i), {})),
                    stats=dict(median=t)) for (g, i), t in times.items()]
    with open(path, "w") as f:
        json.dump(dict(benchmarks=benches), f)


def test_summarize_ratios_and_targets(summarize, tmp_path, capsys):
    path = tmp_path / "bench.json"
    _fake_run(path, {("softmax_xent:B128xV100000", "fastnn"): 0.001, ("softmax_xent:B128xV100000", "numpy"): 0.020,
                     ("softmax_xent:B128xV100000", "torch"): 0.004,
                     ("dense_adagrad:N10000000", "fastnn"): 0.010, ("dense_adagrad:N10000000", "torch_fused"): 0.0095})
    assert summarize.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| numpy | 20.000 | 20.00x | >= 10x | yes |" in out
    assert "| torch | 4.000 | 4.00x | >= 5x | no |" in out
    assert "| torch_fused | 9.500 | 0.95x | >= 0.9x | yes |" in out
    assert "Not run: torch." in out  # dense_adagrad's plain torch baseline is missing
    assert "Targets met: 2 of 3." in out


def test_summarize_roof_fractions(summarize, tmp_path, capsys):
    """fraction of roof = (work / time) / (roof_work / roof time), with fastnn's floor by the roof's kind."""
    path = tmp_path / "bench.json"
    g = "output_layer:B128xH256xV10000"
    _fake_run(path, {(g, "fastnn"): 0.010, (g, "torch"): 0.020, (g, "roof"): 0.004},
              {(g, "roof"): dict(roof="gemm", work=1e9, roof_work=0.5e9)})
    assert summarize.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| fastnn | 10.000 | — | >= 85 % of roof | no | 80 % |" in out     # 1e11 FLOP/s of 1.25e11
    assert "| torch | 20.000 | 2.00x | >= 1.5x | yes | 40 % |" in out
    assert "| roof (gemm) | 4.000 |" in out
    assert summarize.main([str(path), "--compact"]) == 0
    assert f"| {g} | 10.000 | — | 20.000 | 4.000 (gemm) | — | 2.00x | 80 % | 40 % |" in capsys.readouterr().out


def test_summarize_speed_up_above_the_roof(summarize, tmp_path, capsys):
    """A missed speed-up that would need fastnn faster than the roof (the peer's time / the target below the roof's
    time for the group's work) is "above the roof", not counted; one the roof allows stays a miss."""
    path = tmp_path / "bench.json"
    g = "output_layer:B128xH256xV10000"
    # roof: 0.004 s for half the work, 0.008 s for it; torch 1.3x: 1.5x needs 0.0087 s (the roof allows), then
    # torch 1.2x: 1.5x would need 0.0080 - 1e-4 s, below the roof's 0.008
    _fake_run(path, {(g, "fastnn"): 0.010, (g, "torch"): 0.013, (g, "roof"): 0.004},
              {(g, "roof"): dict(roof="gemm", work=1e9, roof_work=0.5e9)})
    summarize.main([str(path)])
    out = capsys.readouterr().out
    assert "| torch | 13.000 | 1.30x | >= 1.5x | no |" in out and "Targets met: 0 of 2." in out
    _fake_run(path, {(g, "fastnn"): 0.010, (g, "torch"): 0.0118, (g, "roof"): 0.004},
              {(g, "roof"): dict(roof="gemm", work=1e9, roof_work=0.5e9)})
    summarize.main([str(path)])
    out = capsys.readouterr().out
    assert "| torch | 11.800 | 1.18x | >= 1.5x | above the roof: needs 7.867 ms, roof 8.000 |" in out
    assert "Targets met: 0 of 1. Above the roof (not counted): 1." in out


def _chained_run(path, fastnn, chain, roof=0.004, work=1e9):
    """A fake recurrent group whose products (work FLOPs) fastnn, the chain roof and the GEMM roof (half as many
    FLOPs) take these times."""
    g = "rnn_layer:B32xT35xH256"
    _fake_run(path, {(g, "fastnn"): fastnn, (g, "torch"): 0.020, (g, "roof"): roof, (g, "roof_chain"): chain},
              {(g, "roof"): dict(roof="gemm", work=work, roof_work=work / 2),
               (g, "roof_chain"): dict(roof="gemm", work=work, roof_work=work)})
    return g


def test_summarize_chain_roof_column_and_verdict(summarize, tmp_path, capsys):
    """A recurrent group's chain roof: every implementation's fraction of it beside its fraction of the GEMM roof;
    a chain below the 85 % floor turns fastnn's miss into "above the roof", not counted."""
    path = tmp_path / "bench.json"
    g = _chained_run(path, fastnn=0.010, chain=0.0125)        # chain: 1e9 / 0.0125 = 8e10 of the roof's 1.25e11
    assert summarize.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "| impl | median ms | fastnn speed-up | target | met | of roof | of chain roof |" in out
    assert "| fastnn | 10.000 | — | >= 85 % of roof | above the roof: chain at 64 % of GEMM | 80 % | 125 % |" in out
    assert "| torch | 20.000 | 2.00x | >= 1.5x | yes | 40 % | 62 % |" in out
    assert "| roof (gemm) | 4.000 | — | — | — | 100 % | 312 % |" in out
    assert "| roof_chain (BLAS chain) | 12.500 | — | — | — | 64 % | 100 % |" in out
    assert "Targets met: 1 of 1. Above the roof (not counted): 1." in out
    assert summarize.main([str(path), "--compact"]) == 0
    assert (f"| {g} | 10.000 | — | 20.000 | 4.000 (gemm) | — | 2.00x | 80 % | 40 % | 12.500 (64 % of roof) "
            f"| 125 % |") in capsys.readouterr().out


def test_summarize_chain_roof_above_the_floor_keeps_the_target(summarize, tmp_path, capsys):
    """A chain at or above the floor leaves the target as it is (a miss is a miss); fastnn past the floor meets it
    whatever the chain."""
    path = tmp_path / "bench.json"
    _chained_run(path, fastnn=0.010, chain=0.009)              # chain at 89 % of the roof, fastnn at 80 %
    summarize.main([str(path)])
    assert "| fastnn | 10.000 | — | >= 85 % of roof | no | 80 % | 90 % |" in capsys.readouterr().out
    _chained_run(path, fastnn=0.009, chain=0.0125)             # fastnn at 89 %, the chain at 64 %
    summarize.main([str(path)])
    out = capsys.readouterr().out
    assert "| fastnn | 9.000 | — | >= 85 % of roof | yes | 89 % | 139 % |" in out
    assert "Targets met: 2 of 2." in out


def test_chain_roofs_make_the_kernels_products(bench):
    """Each chain's FLOPs are its group's work, in the calls the docstrings count; blas_product writes op(a) @ op(b)
    into c itself (no copy by scipy) for every transposition."""
    T, B, H, E = bench.RNN_T, bench.RNN_B, bench.RNN_H, bench.RNN_E
    for gates in (1, 4):
        _, flops, calls = bench.chain_roof(bench.recurrent_chain(gates))
        assert (flops, calls) == (2 * T * B * gates * H * (3 * E + 3 * H), 2 * T + 4)
    m, x, y, _, _ = bench._rnnlm_case(np.float32)
    present = np.unique(np.asarray(m.out.word_class)[y.ravel()]).size
    _, flops, calls = bench.chain_roof(bench.rnnlm_chain(m, x, y))
    assert (flops, calls) == (bench.rnnlm_segment_flops(m, x, y), 2 * x.shape[0] + 3 * present + 6)
    rng = np.random.default_rng(0)
    for trans_a in (False, True):
        for trans_b in (False, True):
            a = rng.standard_normal((5, 3) if trans_a else (3, 5), dtype=np.float32)
            b = rng.standard_normal((4, 5) if trans_b else (5, 4), dtype=np.float32)
            c = np.zeros((3, 4), dtype=np.float32)
            call, flops = bench.blas_product(a, b, c, trans_a, trans_b)
            call()
            np.testing.assert_allclose(c, (a.T if trans_a else a) @ (b.T if trans_b else b), rtol=1e-5, atol=1e-5)
            assert flops == 2 * 3 * 4 * 5


def test_summarize_target_lookup(summarize):
    assert summarize.targets_for("softmax_xent:B128xV10000") == {"torch": 2.0}
    assert summarize.targets_for("output_layer:B128xH256xV100000") == {"torch": 1.5}
    assert summarize.targets_for("unknown:X") == {}


def test_summarize_rejects_empty_file(summarize, tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert summarize.main([str(path)]) == 2
    assert "no benchmarks" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bench():
    return _load("bench_kernels")


def test_zipf_indices_match_the_spec(bench):
    idx = bench.zipf_indices(8192, 1_000_000)
    _, counts = np.unique(idx, return_counts=True)
    assert idx.min() >= 0 and idx.max() < 1_000_000
    assert 2500 <= counts.shape[0] <= 3500            # ~3,000 distinct rows
    assert 0.10 <= counts.max() / idx.shape[0] <= 0.14  # most frequent row ~12%
    np.testing.assert_array_equal(idx, bench.zipf_indices(8192, 1_000_000))  # fixed seed


def test_pytest_bench_collects_and_checks():
    """`pytest bench` (not only the file path) finds bench_kernels.py; the softmax cases pass their NumPy checks."""
    cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-disable", "-q", "-p", "no:cacheprovider",
           "-k", "softmax_xent and not torch"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "6 passed" in proc.stdout  # fastnn, numpy and roof at both sizes


def test_pytest_bench_runs_the_chain_roofs():
    """The three recurrent groups' roof_chain benchmarks run (once each, untimed)."""
    cmd = [sys.executable, "-m", "pytest", "bench/bench_kernels.py", "--benchmark-disable", "-q", "-p",
           "no:cacheprovider", "-k", "roof_chain"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout


def test_tagger_screens_table_reads_the_screens_log(tmp_path, capsys):
    """`tagger_experiments.py --table tagger_screens.jsonl` failed with KeyError 'name' (it read only the runs log's
    records); a --screen log now gives one row per label: the score per seed, their mean ± sd."""
    experiments = _load("tagger_experiments")
    dev = lambda f1: {"chunk": {"f1": f1, "accuracy": 96.0}}      # noqa: E731
    log = tmp_path / "screens.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"label": "c-x", "corpus": "conll2000", "seed": 0, "flags": "--preset chunk --lr 0.03", "dev": dev(94.5)},
        {"label": "c-x", "corpus": "conll2000", "seed": 1, "flags": "--preset chunk --lr 0.03", "dev": dev(94.7)},
        {"label": "c-y", "cmd": "failed", "rc": 1, "wall_s": 3},
        {"label": "c-x-ens3", "corpus": "conll2000", "seed": 0, "combined_from": ["a", "b", "c"], "dev": dev(95.0)},
    ]) + "\n")
    assert experiments.main(["--table", str(log)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2] == "| c-x | conll2000 | `--preset chunk --lr 0.03` | f1 0: 94.50, 1: 94.70 | 94.60 ± 0.14 |"
    assert rows[3].startswith("| c-x-ens3 | conll2000 | `ensembles of 3 saved single models (--combine 3)` | f1 0: 95.00")
    assert len(rows) == 4
