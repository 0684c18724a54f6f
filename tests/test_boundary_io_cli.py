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


def test_lm_reads_the_words_of_a_conll_file_and_says_so(capsys, tmp_path):
    """A CoNLL column file given to lm train was read as text: its tags became words of the language model."""
    conll = write_lines(tmp_path / "c.txt", ["EU NNP I-NP I-ORG", "rejects VBZ I-VP O", "", "Peter NNP I-NP I-PER", ""])
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", conll, "--out", tmp_path / "m.npz",
                           "--min-count", "1", "--order", "2", "--json")
    assert rc == 0, err
    assert f"--train {conll}: CoNLL columns: the words of its first column are read" in err
    import json
    assert json.loads(out)["vocab"] == 5                # EU rejects Peter <unk> </s>: no NNP, I-NP, O
