"""What every command shares: --version, one-line errors (exit 2) for usage and library errors, a closed stdout pipe
ends quietly, output paths checked before training, a model never lost to a failed write at the end."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.models.ngram
import fastnn.train
from fastnn.cli import main
from tests.conftest import REPO, run_cli, signal_with_workers, workers_left


_run = run_cli


def _one_line(capsys, *argv, match, rc=2):
    got, out, err = _run(capsys, *argv)
    assert got == rc, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


@pytest.fixture
def texts(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "dog", "cat", "runs", "sees", "a", "bird"]
    paths = {}
    for name, n in (("train", 80), ("valid", 15)):
        p = tmp_path / f"{name}.txt"
        p.write_text("\n".join(" ".join(rng.choice(words, size=int(rng.integers(2, 7)))) for _ in range(n)) + "\n")
        paths[name] = str(p)
    conll = tmp_path / "train.conll"
    conll.write_text("\n\n".join("\n".join(f"{w} {'NN' if w in ('dog', 'cat', 'bird') else 'X'}" for w in
                                           rng.choice(words, size=int(rng.integers(2, 7)))) for _ in range(40)) + "\n")
    paths["conll"] = str(conll)
    paths["dir"] = tmp_path
    return paths


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__}"


def test_usage_errors_are_one_line(capsys):
    _one_line(capsys, "tagger", "train", "--window", "x", match="--window: invalid int value")
    _one_line(capsys, "nosuchcommand", match="invalid choice")
    # an unknown option is named by its subcommand (argparse's top-level parser said "fastnn: error: ... fastnn -h")
    _one_line(capsys, "experiment", "digits", "--steps", "1", match="fastnn experiment digits: error: unrecognized "
              "arguments: --steps 1 (see fastnn experiment digits -h)")
    _one_line(capsys, "lm", "train", "--arch", "rnn", "--train", "t", "--out", "o", "--dim", "5",
              match="--dim does not apply to --arch rnn")


def _train_commands(texts, out, *extra):
    return {
        "tagger": ["tagger", "train", "--train", texts["conll"], "--task", "pos=1", "--out", out, "--epochs", "1",
                   "--hidden", "4", "--embed-dim", "4", *extra],
        "lm ngram": ["lm", "train", "--arch", "ngram", "--train", texts["train"], "--out", out, *extra],
        "lm rnn": ["lm", "train", "--arch", "rnn", "--train", texts["train"], "--dev", texts["valid"], "--out", out,
                   "--epochs", "1", "--hidden", "4", "--classes", "2", *extra],
        "embed": ["embed", "train", "--objective", "ranking", "--text", texts["train"], "--out", out,
                  "--epochs", "1", *extra],
    }


@pytest.mark.parametrize("command", ["tagger", "lm ngram", "lm rnn", "embed"])
@pytest.mark.parametrize("bad", ["missing_dir", "directory", "empty"])
def test_bad_out_fails_before_training(capsys, texts, command, bad, monkeypatch):
    # "empty": `--out "$OUT"` with OUT unset trained, then wrote a fallback file under another name (every option
    # refuses an empty value: test_an_empty_value_is_refused)
    out = {"missing_dir": texts["dir"] / "no" / "m.npz", "directory": texts["dir"], "empty": ""}[bad]
    argv = _train_commands(texts, out)[command]
    # "before training" is checked by training itself refusing to start (not by the clock, which a loaded machine
    # stretches): the neural commands train through Trainer.fit, the n-gram LM through KneserNey.fit
    def training_started(*args, **kwargs):
        raise AssertionError("training started before the output path was checked")
    monkeypatch.setattr(fastnn.train.Trainer, "fit", training_started)
    monkeypatch.setattr(fastnn.models.ngram.KneserNey, "fit", training_started)
    _one_line(capsys, *argv, match={"missing_dir": "no such directory", "directory": "is a directory",
                                    "empty": "--out: an empty value"}[bad])


@pytest.mark.parametrize("command", ["tagger", "lm rnn"])
def test_bad_checkpoint_fails_before_training(capsys, texts, command):
    argv = _train_commands(texts, texts["dir"] / "m.npz", "--checkpoint", texts["dir"] / "no" / "ck.npz")[command]
    _one_line(capsys, *argv, match="--checkpoint")


@pytest.mark.parametrize("command", ["tagger", "lm ngram", "lm rnn", "embed"])
@pytest.mark.parametrize("clash", ["input", "link to input", "checkpoint"])
def test_an_output_that_is_an_input_or_another_output_is_refused(capsys, texts, command, clash):
    """`--out train.txt` used to overwrite the training data (and --checkpoint = --out the checkpoint)."""
    data = texts["conll"] if command == "tagger" else texts["train"]
    before = open(data, "rb").read()
    out = data
    if clash == "link to input":
        out = texts["dir"] / "link.txt"
        os.symlink(data, out)
    extra = ["--checkpoint", texts["dir"] / "m.npz"] if clash == "checkpoint" else []
    argv = _train_commands(texts, texts["dir"] / "m.npz" if extra else out, *extra)[command]
    # (an n-gram model takes no checkpoint at all)
    _one_line(capsys, *argv, match="--checkpoint does not apply" if extra and command == "lm ngram" else
              "would destroy it")
    assert open(data, "rb").read() == before


def test_out_of_memory_is_one_line(capsys, texts, monkeypatch):
    """--hidden 100000000: numpy's MemoryError was a traceback (exit 1)."""
    import fastnn.models.tagger

    def too_big(*a, **k):
        raise MemoryError("Unable to allocate 205. GiB for an array with shape (100000000, 275) and data type "
                          "float64")                # numpy's message
    monkeypatch.setattr(fastnn.models.tagger.WindowTagger, "build", too_big)
    argv = _train_commands(texts, texts["dir"] / "m.npz")["tagger"]
    _one_line(capsys, *argv, match="out of memory: Unable to allocate 205. GiB")


@pytest.mark.parametrize("command", ["tagger", "lm rnn", "lm ngram"])
def test_epochs_zero_is_an_error(capsys, texts, command):
    argv = _train_commands(texts, texts["dir"] / "m.npz")[command]
    if command == "lm ngram":
        _one_line(capsys, *argv, "--epochs", "0", match="--epochs does not apply to --arch ngram")
    else:
        _one_line(capsys, *argv, "--epochs", "0", match="--epochs must be >= 1")


def test_a_failed_final_write_keeps_the_model(capsys, texts, monkeypatch, tmp_path):
    from fastnn import io
    real = io.save_model
    target = str(tmp_path / "m.npz")

    def flaky(path, model):          # the disk fills up at the end of the run
        if os.fspath(path) == target:
            raise OSError(28, "No space left on device")
        return real(path, model)

    monkeypatch.setattr(io, "save_model", flaky)
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(capsys, *_train_commands(texts, target)["lm ngram"])
    assert rc == 1 and "No space left on device" in err and "written to" in err
    fallback = err.strip().split("written to ")[1].split()[0]
    assert os.path.dirname(fallback) == str(tmp_path) and io.load_model(fallback) is not None


@pytest.mark.parametrize("sig, code, how", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "interrupted by SIGTERM")], ids=["int", "term"])
@pytest.mark.parametrize("command", ["tagger", "lm rnn", "embed"])
def test_ctrl_c_after_an_epoch_writes_the_model_before_one_nothing(capsys, texts, monkeypatch, command, sig, code,
                                                                   how):
    """An hour of training is not lost to Ctrl-C: the model the run would have ended with is written (exit 130).
    SIGTERM (kill, timeout, a job's time limit) does the same, exit 143: it killed the command, losing the steps since
    the last checkpoint."""
    from fastnn import io
    from fastnn.train import Trainer
    real, calls = Trainer._train_step, [0]

    def step(self, batch):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), sig)                    # handled by the trainer: this step finishes first
        return real(self, batch)

    def unhandled(signum, frame):                        # (Python's default would end pytest)
        raise AssertionError("the command left SIGTERM to Python's default: killed without its checkpoint")

    old = signal.signal(signal.SIGTERM, unhandled)
    monkeypatch.setattr(Trainer, "_train_step", step)
    out, ck = texts["dir"] / "m.npz", texts["dir"] / "ck.npz"
    argv = _train_commands(texts, out, "--epochs", "3", "--checkpoint", ck)[command]
    hint = f"; to go on: --checkpoint {ck} --resume"   # the CLI's words, not the trainer's fit(resume=True)
    try:
        at = 1                                         # in the first epoch: nothing worth writing yet
        rc, _, err = _run(capsys, *argv)
        assert rc == code and f"{how} (no epoch finished: no model written{hint})" in err and not out.exists(), err
        assert "resume=True" not in err, err
        os.remove(ck)
        calls[0], at = 0, 10 ** 9
        _run(capsys, *argv)
        per_epoch = calls[0] // 3
        os.remove(ck)
        calls[0], at = 0, per_epoch + 1                # the first step of epoch 2
        rc, stdout, err = _run(capsys, *argv)
        assert rc == code and f"{how} in epoch 2: the model " in err and f"written to {out}{hint}" in err, err
        assert "resume=True" not in err and "trained" not in err, err      # was: "trained 1 epochs ..." and the note
        assert command == "tagger" or "interrupted" in stdout               # lm's and embed's result lines say so
        from fastnn.data.vectors import read_vectors
        assert (read_vectors(out) if command == "embed" else io.load_model(out)) is not None   # embed writes vectors
        rc, stdout, err = _run(capsys, *argv, "--resume", "--quiet")        # the hint works: the run goes on to its end
        assert rc == 0, err
        assert signal.getsignal(signal.SIGTERM) is unhandled               # main put the caller's handler back
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
@pytest.mark.filterwarnings("ignore:KneserNey.fit")                 # the discounts of a tiny corpus
def test_input_files_may_be_pipes_but_not_directories(capsys, texts, tmp_path):
    """bash's <(zcat corpus.gz) is a pipe, not a regular file: it reads like one (was "no such file")."""
    import threading
    fifo = str(tmp_path / "train.fifo")
    os.mkfifo(fifo)
    text = open(texts["train"]).read()

    def feed():
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    rc, out, err = _run(capsys, "lm", "train", "--arch", "ngram", "--train", fifo, "--out", tmp_path / "m.npz",
                        "--json", "--quiet")
    writer.join()
    assert rc == 0 and '"train_tokens"' in out, err
    _one_line(capsys, "lm", "train", "--arch", "ngram", "--train", tmp_path, "--out", tmp_path / "m.npz",
              match="is a directory; a file is needed")


def test_old_spellings_still_work(capsys, texts):
    out = texts["dir"] / "m.npz"
    rc, _, err = _run(capsys, "lm", "train", "--model", "rnn", "--train", texts["train"], "--valid", texts["valid"],
                      "--out", out, "--epochs", "1", "--hidden", "4", "--classes", "2", "--quiet", "--json")
    assert rc == 0, err
    _one_line(capsys, "lm", "train", "--model", "rnn", "--train", texts["train"], "--out", out, match="needs --dev")


def test_threads_zero_is_one_line(capsys, texts):
    argv = _train_commands(texts, texts["dir"] / "m.npz", "--threads", "0")["tagger"]
    _one_line(capsys, *argv, match="--threads")


@pytest.mark.parametrize("argv, lines", [(["gradcheck", "--list"], 1), (["gradcheck"], 2)])
def test_closed_stdout_pipe_ends_quietly(argv, lines):
    p = subprocess.Popen([sys.executable, "-m", "fastnn", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(lines):
        p.stdout.readline()
    p.stdout.close()                  # as `| head -N` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_closed_stderr_stops_training_as_ctrl_c_does_keeping_the_work(texts):
    """`fastnn tagger train ... 2>&1 | head -3`: the progress line after the reader left raised BrokenPipeError, which
    ended the command as a closed stdout does, quietly with exit 0: no model, no checkpoint, the run lost."""
    out, ck = texts["dir"] / "m.npz", texts["dir"] / "ck.npz"
    argv = _train_commands(texts, out, "--epochs", "1000000", "--checkpoint", ck)["tagger"]
    p = subprocess.Popen([sys.executable, "-m", "fastnn", *map(str, argv)], stderr=subprocess.PIPE, text=True,
                         cwd=texts["dir"], env={**os.environ, "PYTHONPATH": REPO})
    try:
        while not p.stderr.readline().startswith("epoch 2/"):
            assert p.poll() is None
        p.stderr.close()                                 # as `| head` does
        assert p.wait(timeout=60) == 141                 # 128 + SIGPIPE, as a shell reports a writer the pipe ended
    finally:
        p.kill()
    from fastnn import io
    assert io.load_model(out) is not None and ck.exists()


def test_epoch_lines_name_their_metric(capsys, texts):
    rc, _, err = _run(capsys, *_train_commands(texts, texts["dir"] / "m.npz", "--dev", texts["conll"])["tagger"])
    assert rc == 0 and "dev accuracy " in err, err                    # a POS task: token accuracy
    rc, _, err = _run(capsys, *_train_commands(texts, texts["dir"] / "m.npz")["lm rnn"])
    assert rc == 0 and "valid ppl " in err, err


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the worker processes through Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_an_experiments_workers_end_with_the_command(tmp_path, sig):
    """The experiments' pool (experiment adding --grid, clipping) as the search's (tests/test_cli_search.py): killed,
    the command left its workers running; SIGTERM waited for the runs under way (hours) before it exited."""
    rc, err, alive = signal_with_workers(
        [sys.executable, "-m", "fastnn", "experiment", "clipping", "--steps", "10000000", "--workers", "2", "--T", "10",
         "--hidden", "8", "--heuristic-steps", "0", "--thresholds", "1", "10"], sig, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": REPO})
    assert not workers_left(alive, 20), "the experiment's workers ran on after it was killed"
    if sig == signal.SIGTERM:
        assert rc == 143, err
        assert err.strip().endswith("fastnn experiment clipping: interrupted by SIGTERM"), err


def test_print_json_writes_strict_json(capsys):
    """A diverged model's perplexity (inf) or a nan score is null: json.dumps wrote Infinity / NaN, which strict
    readers (jq, JSON.parse) refuse."""
    import json

    from fastnn.cli._common import print_json
    print_json({"valid_perplexity": float("inf"), "scores": [1.5, float("nan")], "n": 3, "ok": True})
    out = capsys.readouterr().out
    assert out.strip() == '{"valid_perplexity": null, "scores": [1.5, null], "n": 3, "ok": true}'
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


@pytest.mark.parametrize("argv", [
    ["lm", "train", "--arch", "ngram", "--train", "T", "--test", ""],        # was: no test perplexity, exit 0
    ["lm", "train", "--arch", "rnn", "--train", "T", "--dev=", "--out", "m.npz"],
    ["tagger", "train", "--train", "T", "--task", "pos=1", "--out", "m.npz", "--checkpoint", ""],
    ["embed", "train", "--objective", "ranking", "--text", "T", ""],          # a list option's empty item
    ["lm", "eval", "--model", "", "--data", "T"],
    ["gradcheck", "--only", "linear", "--only", ""],                        # a repeatable option: ran every case
])
def test_an_empty_value_is_refused(capsys, texts, argv):
    """An empty option value is most often an unset shell variable: refused as a usage error before any work."""
    argv = [str(texts["train"]) if a == "T" else a for a in argv]
    if argv[:2] == ["tagger", "train"]:
        argv[argv.index("--train") + 1] = str(texts["conll"])
    _one_line(capsys, *argv, match="an empty value")
