"""The CLI's boundary: bad usage is one line on stderr and exit code 2, never a silent wrong run."""
import pytest

from tests.conftest import run_cli


@pytest.fixture
def conll(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.conll").write_text("the DT\ndog NN\n\na DT\ncat NN\n")
    return tmp_path


@pytest.mark.parametrize("spellings", [("--tra", "--train"), ("--train", "--tr"), ("--train=A", "--train"),
                                       ("--tra=A", "--tra=B")])
def test_a_list_option_given_twice_is_refused_in_every_spelling(capsys, conll, spellings):
    # `--tra a.conll --train b.conll` trained on b.conll alone, silently: the check read the exact option strings and
    # missed argparse's abbreviations
    argv = ["tagger", "train", "--task", "pos=1", "--out", conll / "m.npz", "--epochs", "1"]
    for spelling, path in zip(spellings, ("a", "b")):
        opt, _, given = spelling.partition("=")
        path = str(conll / f"{(given or path).lower()}.conll")
        argv += [f"{opt}={path}"] if given else [opt, path]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2 and "--train is given twice" in err and len(err.strip().splitlines()) == 1, err
    assert not (conll / "m.npz").exists()


@pytest.mark.parametrize("argv, says", [
    (["tagger", "train", "--train", "{d}/a.conll", "--task", "pos=1", "--out", "{d}/m.npz", "--hidden", "0"],
     "error: --hidden must be >= 1; got 0."),
    (["lm", "train", "--arch", "rnn", "--train", "{d}/t.txt", "--dev", "{d}/t.txt", "--out", "{d}/m.npz", "--hidden",
      "0"], "error: --hidden must be >= 1; got 0."),
    (["embed", "train", "--objective", "nplm", "--text", "{d}/t.txt", "--out", "{d}/v.txt", "--min-count", "0"],
     "error: --min-count must be >= 1; got 0.")])
def test_config_errors_speak_in_options_without_the_class_name(capsys, conll, argv, says):
    # "fastnn tagger train: error: TaggerConfig: --hidden must be >= 1": the Python class named on the command line
    (conll / "t.txt").write_text("the dog runs\na cat sees\n")
    rc, out, err = run_cli(capsys, *[a.format(d=conll) for a in argv])
    assert rc == 2 and says in err and "Config" not in err, err


def test_digits_long_with_both_grid_axes_is_refused(capsys, monkeypatch):
    # --long --lr 0.1 --clip 1 trained the grid of --lr and --clip alone, the long grid ignored, silently
    pytest.importorskip("sklearn")
    from fastnn.experiments import digits

    def trained(**kw):
        raise AssertionError(f"trained with grid {kw['grid']}")
    monkeypatch.setattr(digits, "run_digits", trained)
    rc, out, err = run_cli(capsys, "experiment", "digits", "--long", "--lr", "0.1", "--clip", "1", "--quiet",
                           "--out", "none", "--plot", "none")
    assert rc == 2 and "--long has no effect with both --lr and --clip" in err, err
    with pytest.raises(AssertionError, match=r"grid \{'lr': \[0.1\], 'clip': \(1.0, 10.0, 100.0\)\}"):
        run_cli(capsys, "experiment", "digits", "--long", "--lr", "0.1", "--quiet", "--out", "none", "--plot", "none")


def test_search_refuses_an_abbreviated_training_option(capsys, conll):
    # `-- --wind 7` with "window" in the space passed the check that an option is not in both places (it compares
    # names), and each trial's sampled --window, given after it, replaced it, silently
    (conll / "space.json").write_text('{"window": {"choice": [3]}}')
    rc, out, err = run_cli(capsys, "search", "tagger", "--space", conll / "space.json", "--trials", "1", "--log",
                           conll / "log.jsonl", "--workers", "1", "--", "--train", conll / "a.conll", "--dev",
                           conll / "b.conll", "--task", "pos=1", "--epochs", "1", "--hidden", "4", "--wind", "7")
    assert rc == 2 and "unrecognized arguments: --wind 7" in err, err
    assert not (conll / "log.jsonl").exists()


def test_a_presets_setting_made_ineffective_is_a_warning_in_option_names(capsys, conll):
    # --preset chunk --context window: the preset's lstm_hidden now has no effect (recipes.tagger.build warns); the
    # command says so in its own words
    (conll / "p.conll").write_text("the DT B-NP\ndog NN I-NP\nruns VB O\n\na DT B-NP\ncat NN I-NP\n")
    rc, out, err = run_cli(capsys, "tagger", "train", "--preset", "chunk", "--context", "window", "--train",
                           conll / "p.conll", "--task", "chunk=2", "--out", conll / "m.npz", "--epochs", "1",
                           "--hidden", "4", "--embed-dim", "4", "--ensemble", "1", "--workers", "1")
    assert rc == 0, err
    assert "fastnn tagger train: warning: build: --lstm-hidden has no effect without --context 'bilstm'" in err, err
