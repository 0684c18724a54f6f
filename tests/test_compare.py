"""The classifiers used by the optimizer comparison, the experiment (fastnn.experiments.compare) and `fastnn
compare-optimizers` (small, fast runs)."""
import json
import os

import numpy as np
import pytest

from fastnn import io, optim
from fastnn.cli import main
from fastnn.experiments import compare as C
from fastnn.graph import RowGrad
from fastnn.models.classifiers import MLP, LogisticRegression


def test_classifier_input_errors():
    with pytest.raises(ValueError, match="give either 'n_features' .* or 'vocab_size' and 'window'"):
        LogisticRegression(3, seed=0)
    with pytest.raises(ValueError, match="give either"):
        MLP(3, n_features=4, vocab_size=10, window=3, hidden=32, seed=0)
    with pytest.raises(ValueError, match="window inputs need both 'vocab_size' and 'window'"):
        MLP(3, vocab_size=10, hidden=32, seed=0)
    with pytest.raises(ValueError, match="'n_features' must be an integer >= 1; got 0"):
        LogisticRegression(3, n_features=0, seed=0)
    m = LogisticRegression(3, vocab_size=10, window=3, seed=0)
    with pytest.raises(ValueError, match=r"inputs must be integer windows of shape \(B, 3\)"):
        m.predict(np.zeros((2, 3)))


def test_window_logreg_gradient_is_sparse_and_exact(rng):
    m = LogisticRegression(4, vocab_size=6, window=3, dtype="float64", seed=0)
    m.E.value[...] = rng.normal(size=m.E.value.shape)
    x = np.array([[1, 2, 2], [5, 0, 1]])
    y = np.array([3, 0])
    m.loss((x, y)).backward()
    assert isinstance(m.E.grad, RowGrad)
    rows = (x + np.arange(3) * 6).ravel()
    logits = m.E.value[rows].reshape(2, 3, 4).sum(1) + m.b.value
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(4)[y]) / 2
    want = np.zeros_like(m.E.value)
    np.add.at(want, rows, np.repeat(g, 3, axis=0))
    np.testing.assert_allclose(m.E.grad.to_dense(), want, atol=1e-12)
    np.testing.assert_array_equal(np.sort(m.E.grad.rows), np.unique(rows))


@pytest.mark.filterwarnings("ignore:minimize")
@pytest.mark.parametrize("make", [lambda: LogisticRegression(3, n_features=4, dtype="float64", seed=0),
                                  lambda: MLP(3, hidden=8, n_features=4, dtype="float64", seed=0),
                                  lambda: MLP(3, hidden=8, vocab_size=9, window=3, embed_dim=4, dtype="float64",
                                              seed=0)],
                         ids=["logreg", "mlp", "mlp-window"])
def test_classifier_trains_and_roundtrips(make, rng, tmp_path):
    m = make()
    if m.kind == "dense":
        x = rng.normal(size=(60, 4))
        y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    else:
        x = rng.integers(0, 9, size=(60, 3))
        y = x[:, 1] % 3
    before = m.objective(x, y, 1e-3)
    assert before == pytest.approx(float(m.loss((x, y)).value) + optim.weight_penalty(m, 1e-3))
    res = optim.minimize(m, (x, y), maxiter=200, weight_decay=1e-3)
    assert res.fun < before * 0.7
    assert m.objective(x, y, 1e-3) == pytest.approx(res.fun, rel=1e-9)
    assert m.accuracy(x, y) > 0.8
    assert m.predict(x).shape == (60,) and m.scores(x).shape == (60, 3)
    path = str(tmp_path / "m.npz")
    io.save_model(path, m)
    back = io.load_model(path)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
    assert repr(back) == repr(m)


def test_minimize_float32_and_history(rng):
    m = LogisticRegression(3, n_features=4, seed=0)          # float32 params, float64 inside scipy
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    with pytest.warns(RuntimeWarning, match="scipy did not report success"):
        res = optim.minimize(m, (x, y), "CG", maxiter=2)
    assert m.out.W.value.dtype == np.float32
    assert res.nfev == len(res.history["fun"]) and res.fun == min(res.history["fun"])
    res = optim.minimize(m, (x, y), max_evals=3)
    assert res.nfev == 3 and "max_evals" in res.message
    with pytest.raises(ValueError, match="'method' must be one of"):
        optim.minimize(m, (x, y), "BFGS")


def test_minimize_minibatch_decreases_objective(rng):
    from fastnn.train import ArrayBatches

    m = MLP(3, hidden=6, n_features=4, dtype="float64", seed=0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    before = m.objective(x, y)
    seen = []
    res = optim.minimize_minibatch(m, ArrayBatches(x, y, batch_size=200), epochs=2, maxiter=5,
                                   callback=lambda r: seen.append(r.nfev))
    assert len(seen) == 4 and m.objective(x, y) < before * 0.8
    assert res.success and len(res.history["fun"]) == res.nfev


def test_ravel_unravel_roundtrip(rng):
    m = MLP(3, hidden=5, vocab_size=7, window=2, embed_dim=3, seed=0)
    x = optim.ravel_params(m)
    assert x.dtype == np.float64 and x.size == sum(p.value.size for p in m.parameters().values())
    optim.unravel_params(x * 2, m)
    np.testing.assert_allclose(optim.ravel_params(m), x * 2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"'x' must have shape \(\d+,\)"):
        optim.unravel_params(x[:-1], m)


# ---- the comparison ----------------------------------------------------------------------------------------------

KEYS = ["n", "model", "method", "seconds_to_target", "final_objective", "heldout_accuracy"]


def test_compare_library_small():
    rows, traces = C.compare(C.CompareConfig(sizes=[500], seed=1, budget=0.3))
    assert [list(r) for r in rows] == [KEYS] * 10
    assert {r["method"] for r in rows} == set(C.METHODS)
    for n in (500,):
        for model in C.MODELS:
            group = [r for r in rows if r["n"] == n and r["model"] == model]
            best = min(min(traces[(n, model, r["method"])][1]) for r in group)
            reached = [r for r in group if r["seconds_to_target"] is not None]
            assert reached                                     # whoever found the best point reached the target
            for r in reached:
                ts, fs = traces[(n, model, r["method"])]
                assert min(f for t, f in zip(ts, fs) if t <= r["seconds_to_target"]) <= best * 1.01
            assert all(0.0 < r["heldout_accuracy"] <= 1.0 for r in group)


def test_cli_json(capsys, tmp_path):
    traces = str(tmp_path / "t.json")
    code = main(["compare-optimizers", "--sizes", "300", "--budget", "0.3", "--json", "--plot", "none", "--quiet",
                 "--models", "logreg", "--methods", "lbfgs,sgd", "--traces", traces])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [list(r) for r in out] == [KEYS] * 2
    assert [r["method"] for r in out] == ["lbfgs", "sgd"] and out[0]["n"] == 300
    tr = json.load(open(traces))
    assert [t["method"] for t in tr] == ["lbfgs", "sgd"] and len(tr[1]["seconds"]) == len(tr[1]["objective"]) > 1


def test_cli_table_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = str(tmp_path / "p.png")
    code = main(["compare-optimizers", "--sizes", "200,400", "--budget", "0.2", "--plot", png,
                 "--methods", "cg,adagrad"])
    assert code == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("| n | model | method | seconds to target |") and cap.out.count("\n") == 2 + 8
    assert os.path.getsize(png) > 1000 and "plot:" in cap.err


@pytest.mark.parametrize("argv,msg", [
    (["--sizes", "abc"], "--sizes: must be comma-separated integers"),
    (["--sizes", "5"], "--sizes must be integers >= 10"),
    (["--models", "svm"], "--models must be a comma-separated subset of logreg,mlp"),
    (["--methods", "adam"], "--methods must be a comma-separated subset"),
    (["--budget", "0"], "--budget must be > 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--window", "4"], "--window must be an odd number"),
    (["--data", "/nonexistent/file.txt"], "no such file"),
])
def test_cli_errors(capsys, argv, msg):
    assert main(["compare-optimizers", "--plot", "none", *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def _write_tagged(tmp_path, kind, n_sent=1100):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "runs", "sees", "a", "big", "red"]
    tags = {"the": "DT", "a": "DT", "cat": "NN", "dog": "NN", "runs": "VBZ", "sees": "VBZ", "big": "JJ", "red": "JJ"}
    path = tmp_path / f"data.{kind}"
    with open(path, "w") as f:
        for _ in range(n_sent):
            sent = [words[i] for i in rng.integers(0, len(words), 4)]
            if kind == "conll":
                f.write("".join(f"{w} {tags[w]} O\n" for w in sent) + "\n")
            else:
                f.write(" ".join(f"{w}/{tags[w]}" for w in sent) + "\n")
    return str(path)


@pytest.mark.parametrize("kind", ["conll", "brown"])
def test_tagging_data_from_files(tmp_path, kind):
    path = _write_tagged(tmp_path, kind)
    data = C.tagging(path, window=3)
    assert data.x.shape == (400, 3) and data.x_held.shape == (4000, 3)
    assert data.n_classes == 4 and data.spec["window"] == 3
    config = C.CompareConfig(sizes=[400], models=["logreg"], methods=["lbfgs"], budget=0.3)
    rows, _ = C.compare(config, data=data)
    assert rows[0]["heldout_accuracy"] > 0.95                  # the tag is a function of the centre word


def test_sizes_must_fit_the_file(tmp_path, capsys):
    path = _write_tagged(tmp_path, "brown")
    assert main(["compare-optimizers", "--data", path, "--sizes", "300,5000", "--plot", "none", "--quiet"]) == 2
    assert "'sizes' must be at most the 400 training examples of" in capsys.readouterr().err


def test_tagging_rejects_untagged_text(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_text("the cat runs\n" * 5)
    assert main(["compare-optimizers", "--data", str(p), "--plot", "none"]) == 2


def test_conll2000_windows_if_present():
    from tests.conftest import data_path

    data = C.tagging(data_path("conll2000", "train.txt"), window=5)
    assert len(data) > 150_000 and data.n_classes > 40


def test_read_tagged_reads_conll_and_brown_and_names_plain_text(tmp_path):
    read_tagged = C.read_tagged
    conll = tmp_path / "c.txt"
    conll.write_text("The DT B-NP\ndog NN I-NP\n\nIt PRP B-NP\n\n", encoding="utf-8-sig")     # with a BOM
    assert read_tagged(str(conll)) == [[("The", "DT"), ("dog", "NN")], [("It", "PRP")]]
    brown = tmp_path / "b.txt"
    brown.write_text("The/at dog/nn ./.\nIt/pps\n")
    assert read_tagged(str(brown)) == [[("The", "at"), ("dog", "nn"), (".", ".")], [("It", "pps")]]
    brown.write_text("The/at dog/nn\nIt pps\n")
    with pytest.raises(ValueError, match="line 2: every token must be word/TAG like line 1; got 'It'"):
        read_tagged(str(brown))
    text = tmp_path / "t.txt"
    text.write_text("The jury said it was fine .\nIt was .\n")
    with pytest.raises(ValueError, match="reads as plain text"):
        read_tagged(str(text))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc/self/fd")
@pytest.mark.parametrize("brown", [False, True])
def test_read_tagged_reads_a_pipe_once(brown):
    """compare-optimizers --data <(zcat tagged.gz): a second open of the pipe read only what the first look at its
    format had left (every sentence past the first 200 lines lost, silently)."""
    if brown:
        data = "".join(f"The/at cat/nn {i}/cd\n" for i in range(600))
    else:
        data = "".join(f"The DT\ncat NN\n{i} CD\n\n" for i in range(600))
    r, w = os.pipe()
    os.write(w, data.encode())                 # (less than the pipe's 64 KB buffer)
    os.close(w)
    try:
        sents = C.read_tagged(f"/proc/self/fd/{r}")
    finally:
        os.close(r)
    assert len(sents) == 600 and sents[-1] == [("The", "at" if brown else "DT"), ("cat", "nn" if brown else "NN"),
                                               ("599", "cd" if brown else "CD")]


def test_read_tagged_looks_at_token_lines_not_lines(tmp_path):
    """read_tagged probed the first 200 lines, not the first 200 token lines: a file opening with 200 blank (or
    -DOCSTART-) lines was 'has no tokens'; it uses conll.read_head now, as the other readers do."""
    f = tmp_path / "c.txt"
    f.write_text("\n" * 250 + "The DT\ndog NN\n\nIt PRP\n\n")
    assert C.read_tagged(str(f)) == [[("The", "DT"), ("dog", "NN")], [("It", "PRP")]]
    f.write_text("\n" * 250 + "The/at dog/nn\nIt/pps\n")
    assert C.read_tagged(str(f)) == [[("The", "at"), ("dog", "nn")], [("It", "pps")]]


def test_the_plot_is_written_atomically(tmp_path, monkeypatch):
    """fig.savefig(path) wrote the PNG in place: a failure while drawing (a full disk, Ctrl-C) left a torn file where
    the last good plot was.  Drawn into memory, then written as every output is (fastnn.io.atomic_write).  A stand-in
    matplotlib (the real one is an optional extra) whose savefig writes half a PNG, then fails."""
    import sys
    import types
    from unittest import mock

    def savefig(target, **kw):
        if hasattr(target, "write"):
            target.write(b"\x89PNG half")
        else:
            with open(target, "wb") as f:
                f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    fig = mock.MagicMock()
    fig.savefig.side_effect = savefig
    plt = types.SimpleNamespace(subplots=lambda *a, **k: (fig, [[mock.MagicMock()] * 4] * 4), close=lambda f: None)
    mpl = types.SimpleNamespace(use=lambda backend: None, pyplot=plt)
    monkeypatch.setitem(sys.modules, "matplotlib", mpl)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    png = tmp_path / "p.png"
    png.write_bytes(b"the last good plot")
    traces = {(100, "logreg", "sgd"): ([0.1, 0.2], [1.0, 0.5])}
    with pytest.raises(OSError, match="No space left"):
        C.plot(traces, str(png))
    assert png.read_bytes() == b"the last good plot"
    fig.savefig.side_effect = lambda target, **kw: target.write(b"\x89PNG whole")
    assert C.plot(traces, str(png)) == str(png) and png.read_bytes() == b"\x89PNG whole"
