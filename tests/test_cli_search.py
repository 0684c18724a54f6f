import json
import os
import re
import signal
import sys

import numpy as np
import pytest

from fastnn import search
from tests.conftest import run_cli, signal_with_workers, workers_left, write_lines

pytestmark = pytest.mark.filterwarnings("ignore:.*counts-of-counts")


def _conll(path, rng, n):
    """A chunking toy: determiners start NPs, nouns continue them, verbs are VPs."""
    det, noun, verb = ["the", "a", "this"], ["dog", "cat", "idea", "car", "Bank"], ["runs", "sees", "is"]
    lines = []
    for _ in range(n):
        for _ in range(int(rng.integers(1, 4))):
            lines.append(f"{rng.choice(det)} DT B-NP")
            for _ in range(int(rng.integers(1, 3))):
                lines.append(f"{rng.choice(noun)} NN I-NP")
            lines.append(f"{rng.choice(verb)} VBZ B-VP")
        lines.append(". . O")
        lines.append("")
    return write_lines(path, lines)


def _text(path, rng, n, V=20):
    lines = []
    for _ in range(n):
        start = int(rng.integers(0, V))
        k = int(rng.integers(3, 8))
        lines.append(" ".join(f"w{(start + 2 * j + int(rng.integers(0, 2))) % V}" for j in range(k)))
    return write_lines(path, lines)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    return {"train": _conll(tmp_path / "train.conll", rng, 40), "dev": _conll(tmp_path / "dev.conll", rng, 10),
            "ltrain": _text(tmp_path / "train.txt", rng, 150), "lvalid": _text(tmp_path / "valid.txt", rng, 30)}


def _space(tmp_path, space):
    p = tmp_path / "space.json"
    p.write_text(json.dumps(space))
    return str(p)


_run = run_cli


TAGGER_SPACE = {"lr": {"loguniform": [0.01, 0.3]}, "hidden": {"choice": [8, 16]}, "window": {"choice": [1, 3]}}


def _tagger_args(files):
    return ["--train", files["train"], "--dev", files["dev"], "--task", "chunk=2", "--epochs", "1",
            "--embed-dim", "4", "--caps-dim", "2", "--batch-size", "16"]


def test_search_tagger_resumes_and_prints_the_table(capsys, files, tmp_path):
    space = _space(tmp_path, TAGGER_SPACE)
    log = str(tmp_path / "runs.jsonl")
    rc, out, err = _run(capsys, "search", "tagger", "--space", space, "--trials", "2", "--log", log, "--workers", "1",
                        *_tagger_args(files))
    assert rc == 0, err
    recs = search.read_log(log)
    assert [r["trial"] for r in recs] == [0, 1]
    for r in recs:
        assert r["params"] == search.sample(TAGGER_SPACE, 0, r["trial"])
        assert 0 <= r["score"] <= 100 and r["info"]["task"] == "chunk" and r["info"]["metric"] == "f1"
        assert r["info"]["dev"]["chunk"]["f1"] == r["score"] and r["seconds"] > 0
    assert "dev F1 (chunk) (higher is better)" in out and "2 trials, 0 failed" in out
    assert "trial 0:" in err and "trial 1:" in err
    # a larger N runs only the new trial, here in a process pool
    models = tmp_path / "models"
    rc, out, err = _run(capsys, "search", "tagger", "--space", space, "--trials", "3", "--log", log, "--workers", "2",
                        "--models", str(models), *_tagger_args(files))
    assert rc == 0, err
    assert "2 of 3 trials already logged" in err and "trial 2:" in err and "trial 0:" not in err
    recs = search.read_log(log)
    assert [r["trial"] for r in recs] == [0, 1, 2] and "3 trials, 0 failed" in out
    assert recs[2]["info"]["model"].startswith(str(models)) and len(list(models.iterdir())) == 1


def test_search_lm(capsys, files, tmp_path):
    space = _space(tmp_path, {"lr": {"loguniform": [0.05, 0.5]}, "hidden": {"int": [4, 8]}, "direct": {"choice":
                              [True, False]}, "no_direct": {"choice": [True, False, None]}})
    log = str(tmp_path / "runs.jsonl")
    rc, out, err = _run(capsys, "search", "lm", "--space", space, "--trials", "2", "--log", log, "--workers", "1",
                        "--model", "nplm", "--train", files["ltrain"], "--valid", files["lvalid"], "--epochs", "1",
                        "--dim", "4", "--order", "3", "--batch-size", "32")
    assert rc == 0, err
    recs = search.read_log(log)
    assert len(recs) == 2 and all(1 < r["score"] < 30 and r["info"]["metric"] == "perplexity" for r in recs)
    assert "valid perplexity (lower is better)" in out
    assert out.splitlines()[1].split()[1] == str(search.best(recs, maximize=False)[0]["trial"])


def test_search_lm_on_a_dask_scheduler(capsys, files, tmp_path):
    distributed = pytest.importorskip("distributed")
    space = _space(tmp_path, {"lr": {"loguniform": [0.05, 0.5]}})
    log = str(tmp_path / "runs.jsonl")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        rc, out, err = _run(capsys, "search", "lm", "--space", space, "--trials", "2", "--log", log, "--scheduler",
                            cl.scheduler_address, "--model", "ngram", "--train", files["ltrain"], "--valid",
                            files["lvalid"], "--order", "2")
    assert rc == 0, err
    recs = search.read_log(log)
    assert len(recs) == 2 and recs[0]["score"] == recs[1]["score"] > 1   # the n-gram ignores --lr


def test_failing_trials_exit_code(capsys, files, tmp_path):
    # a --min-count no word of the data reaches passes every check made before the trials (it needs the data): every
    # trial fails and is logged
    space = _space(tmp_path, {"min_count": {"choice": [100000, 200000]}})
    log = str(tmp_path / "runs.jsonl")
    rc, out, err = _run(capsys, "search", "tagger", "--space", space, "--trials", "2", "--log", log, "--workers", "1",
                        *_tagger_args(files))
    assert rc == 1 and "2 trials, 2 failed" in out and "--retry-failed" in err
    recs = search.read_log(log)
    assert all(r["score"] is None and "leaves no word" in r["error"] for r in recs), recs


@pytest.mark.parametrize("space, extra, msg", [
    ({"window": {"choice": [2, 4]}}, [], r"trial 0 \(window=\d\): --window must be an odd number"),
    ({"dropout": {"uniform": [1, 2]}}, [], r"trial 0 \(dropout=1.\d+\): --dropout must be in \[0, 1\)"),
    ({"lr": {"uniform": [0.1, 1]}}, ["--top", "-1"], r"--top: best: 'k' must be an integer >= 0; got -1"),
])
def test_what_a_trial_or_the_summary_would_refuse_stops_before_any_trial(capsys, files, tmp_path, space, extra, msg):
    """A sampled value the training command's Config refuses (an even window, a dropout of 1.5) failed in its trial,
    and a space of such values failed every trial, one after another; a --top < 0 failed in the summary, after every
    trial.  Each is now one line and exit 2 before any trial, no log written."""
    log = tmp_path / "runs.jsonl"
    rc, out, err = _run(capsys, "search", "tagger", "--space", _space(tmp_path, space), "--trials", "3", "--log",
                        str(log), "--workers", "1", *_tagger_args(files), *extra)
    assert rc == 2 and re.search(msg, err) and err.count("\n") == 1, err
    assert not log.exists()


def test_an_lm_option_the_arch_does_not_take_stops_before_any_trial(capsys, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the dog runs\na cat sees the dog\n" * 10)
    log = tmp_path / "runs.jsonl"
    rc, out, err = _run(capsys, "search", "lm", "--space", _space(tmp_path, {"lr": {"uniform": [0.1, 1]}}), "--trials",
                        "2", "--log", str(log), "--workers", "1", "--arch", "ngram", "--train", text, "--dev", text)
    assert rc == 2 and "trial 0 (lr=" in err and "--lr does not apply to --arch ngram" in err, err
    assert not log.exists()


@pytest.mark.parametrize("space, extra, msg", [
    ({"learning_rate": {"uniform": [0, 1]}}, [], "'learning_rate' is not an option of `fastnn tagger train`"),
    ({"out": {"choice": ["a"]}}, [], "--out cannot be searched"),
    ({"lr": {"uniform": [0.1, 1]}}, ["--lr", "0.1"], "--lr is both in"),
    ({"hidden": {"uniform": [10, 20]}}, [], "trial 0 .*argument --hidden: invalid int value"),
    ({"loss": {"choice": ["word", "hinge"]}}, [], "argument --loss: invalid choice: 'hinge'"),
    ({"freeze_embeddings": {"choice": [1, 0]}}, [], "is a flag: its values in the search space must be true or false"),
    ({"lr": {"loguniform": [0, 1]}}, [], "bounds must be > 0"),
    ({"lr": {"uniform": [0.1, 1]}}, ["--checkpoint", "c.npz"], "--checkpoint cannot be given to a search"),
    ({"lr": {"uniform": [0.1, 1]}}, ["--no-such-option", "1"], "unrecognized arguments: --no-such-option"),
])
def test_cli_errors_exit_2(capsys, files, tmp_path, space, extra, msg):
    log = tmp_path / "runs.jsonl"
    rc, out, err = _run(capsys, "search", "tagger", "--space", _space(tmp_path, space), "--trials", "3", "--log",
                        str(log), *_tagger_args(files), *extra)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastnn search tagger: error: ") and re.search(msg, err), err
    assert not log.exists()


def test_cli_setup_errors_exit_2(capsys, files, tmp_path):
    space = _space(tmp_path, TAGGER_SPACE)
    log = str(tmp_path / "runs.jsonl")
    base = ["search", "tagger", "--space", space, "--log", log]
    cases = [([*base, "--trials", "-1", *_tagger_args(files)], "'n_trials' must be an integer >= 0"),
             ([*base, "--trials", "2", "--workers", "0", *_tagger_args(files)], "'workers' must be an integer >= 1"),
             (["search", "tagger", "--space", str(tmp_path / "none.json"), "--log", log, "--trials", "1",
               *_tagger_args(files)], "no such file"),
             ([*base, "--trials", "1", "--train", files["train"], "--task", "chunk=2"], "needs --dev FILE"),
             ([*base, "--trials", "1", *_tagger_args(files)[:1], str(tmp_path / "missing"), *_tagger_args(files)[2:]],
              "--train: no such file"),
             ([*base, "--trials", "1", *_tagger_args(files)[:2], str(tmp_path / "second"), *_tagger_args(files)[2:]],
              "--train: no such file: " + str(tmp_path / "second")),
             ([*base, "--trials", "1", "--dev", files["dev"]], "required: --train, --task")]
    for argv, msg in cases:
        rc, out, err = _run(capsys, *argv)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (msg, err)
    with open(log, "w") as f:
        f.write('{"trial": 0, "params": {}}\n{bad\n{"trial": 1, "params": {}}\n')
    rc, out, err = _run(capsys, *base, "--trials", "2", *_tagger_args(files))
    assert rc == 2 and "runs.jsonl:2: malformed log line" in err
    with open(log, "w") as f:
        f.write(json.dumps({"trial": 0, "params": {"lr": 0.5}, "score": 1.0, "seconds": 1}) + "\n")
    rc, out, err = _run(capsys, *base, "--trials", "2", *_tagger_args(files))
    assert rc == 2 and "trial 0 was logged with params" in err


def test_ctrl_c_stops_the_search_without_logging_the_trial_under_way(capsys, files, tmp_path, monkeypatch):
    """With --workers 1 a trial's training took the Ctrl-C as its own: it wrote its model, the trial was logged with
    the score of the epochs it had and the search went on with the next trial.  Later it still wrote its model to
    the search's temporary directory, deleted right after, and said "written to" that file."""
    from fastnn.train import Trainer
    real, calls = Trainer._train_step, [0]

    def step(self, batch):
        if self.state.epoch == 1 and not calls[0]:      # the first step of epoch 2 of 3: a model to write
            calls[0] += 1
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", step)
    log = tmp_path / "runs.jsonl"
    rc, out, err = _run(capsys, "search", "tagger", "--space", _space(tmp_path, TAGGER_SPACE), "--trials", "2",
                        "--log", log, "--workers", "1", *_tagger_args(files), "--epochs", "3")
    assert rc == 130 and f"fastnn search tagger: interrupted (0 of 2 trials logged in {log}; the same command runs " \
                         "the rest)" in err, err
    assert search.read_log(str(log)) == [] and "trial 0" not in err and calls[0] == 1, err
    assert "written to" not in err and err.count("\n") == 1, err


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the worker processes through Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_the_workers_end_with_the_command(files, tmp_path, sig):
    """Killing the search (kill PID, a job's time limit) left its pool's workers running: training their trials for
    nobody, then waiting for work for ever.  SIGTERM is an interruption (exit 143, the log kept); after SIGKILL the
    workers see their parent gone."""
    cmd = [sys.executable, "-m", "fastnn", "search", "tagger", "--space", _space(tmp_path, TAGGER_SPACE), "--trials",
           "4", "--log", tmp_path / "runs.jsonl", "--workers", "2", *_tagger_args(files), "--epochs", "100000"]
    rc, err, alive = signal_with_workers(cmd, sig)
    assert not workers_left(alive, 20), "the search's workers ran on after it was killed"
    if sig == signal.SIGTERM:
        assert rc == 143 and "interrupted by SIGTERM (0 of 4 trials logged in" in err, err


def test_a_space_may_cross_an_option_with_the_one_it_needs(capsys, files, tmp_path):
    """`tagger train --lstm-hidden 8` without --context bilstm is refused (it was ignored); a search space that
    samples both (--lstm-hidden ignored in the trials of --context window) is not, nor is a base option whose
    enabler is sampled; a base option that no trial enables is refused before any trial."""
    rc, _, err = _run(capsys, "tagger", "train", *_tagger_args(files), "--lstm-hidden", "8", "--out",
                      tmp_path / "m.npz")
    assert rc == 2 and "--lstm-hidden has no effect without --context bilstm: give --context bilstm too" in err, err
    space = _space(tmp_path, {"context": {"choice": ["window", "bilstm"]}, "lstm_hidden": {"choice": [4, 6]}})
    rc, out, err = _run(capsys, "search", "tagger", "--space", space, "--trials", "2", "--log", tmp_path / "a.jsonl",
                        "--workers", "1", *_tagger_args(files))
    assert rc == 0 and "2 trials, 0 failed" in out, err
    space = _space(tmp_path, {"lr": {"choice": [0.05, 0.1]}})
    rc, out, err = _run(capsys, "search", "tagger", "--space", space, "--trials", "2", "--log", tmp_path / "b.jsonl",
                        "--workers", "1", *_tagger_args(files), "--lstm-dropout", "0.2")
    assert rc == 2 and "trial 0 (lr=" in err and "--lstm-dropout has no effect without --context bilstm" in err, err
    assert not (tmp_path / "b.jsonl").exists()
