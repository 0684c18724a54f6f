"""The CLI's words at the boundary: errors name the options the user typed."""
from tests.conftest import run_cli, write_lines


def test_bptt_error_names_batch_size(capsys, tmp_path):
    text = write_lines(tmp_path / "t.txt", ["the cat sat", "the dog ran"])
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "rnn", "--train", text, "--dev", text, "--out",
                           tmp_path / "m.npz", "--min-count", "1", "--quiet", "--epochs", "1")
    assert rc == 2 and "--batch-size 64" in err and "batch_size" not in err, err


def test_option_names_rewrites_keyword_values():
    from fastnn.cli._common import option_names
    from fastnn.recipes.lm import CONFIGS
    msg = option_names("at least batch_size=64 tokens; 'batch_size' or max_batch_size=3", *CONFIGS.values())
    assert msg == "at least --batch-size 64 tokens; --batch-size or max_batch_size=3"


def test_library_warnings_are_one_line_and_quiet_means_none(capsys, tmp_path):
    text = write_lines(tmp_path / "t.txt", ["the cat sat", "the dog ran"] * 3)
    argv = ["lm", "train", "--arch", "ngram", "--train", text, "--out", tmp_path / "m.npz", "--min-count", "1"]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    warned = [line for line in err.splitlines() if "Kneser-Ney" in line]
    assert warned and all(line.startswith("fastnn lm train: warning: KneserNey.fit: ") for line in warned), err
    assert "RuntimeWarning" not in err and "model = KneserNey" not in err        # Python's file:line and source line
    rc, out, err = run_cli(capsys, *argv, "--quiet")
    assert rc == 0 and err == "", err
