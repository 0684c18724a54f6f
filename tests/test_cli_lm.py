import json
import os

import numpy as np
import pytest

from fastnn import io
from tests.conftest import run_cli, write_lines

pytestmark = pytest.mark.filterwarnings("ignore:.*counts-of-counts")


def _write(path, rng, n, V=30):
    words = [f"w{i}" for i in range(V)]
    lines = []
    for _ in range(n):
        k = int(rng.integers(3, 9))
        start = int(rng.integers(0, V))
        # a drifting walk: a model with context beats a unigram
        ids = [(start + 2 * j + int(rng.integers(0, 2))) % V for j in range(k)]
        lines.append(" ".join(words[i] for i in ids))
    return write_lines(path, lines)


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    return {s: _write(tmp_path / f"{s}.txt", rng, n) for s, n in (("train", 300), ("valid", 60), ("test", 60))}


_run = run_cli


def _train(capsys, corpus, tmp_path, model, *extra):
    out = str(tmp_path / f"{model}.npz")
    rc, so, err = _run(capsys, "lm", "train", "--model", model, "--train", corpus["train"], "--valid",
                       corpus["valid"], "--test", corpus["test"], "--out", out, "--json", "--quiet", "--threads", "1",
                       *extra)
    assert rc == 0, err
    return out, json.loads(so)


def test_train_eval_and_mix(capsys, corpus, tmp_path):
    ng, r_ng = _train(capsys, corpus, tmp_path, "ngram")
    nplm, r_nplm = _train(capsys, corpus, tmp_path, "nplm", "--epochs", "2", "--hidden", "8", "--dim", "4",
                          "--order", "3", "--batch-size", "32", "--lr", "0.3")
    rnn, r_rnn = _train(capsys, corpus, tmp_path, "rnn", "--epochs", "2", "--hidden", "8", "--classes", "4",
                        "--batch-size", "4", "--bptt-block", "5", "--bptt", "2", "--optimizer", "adagrad",
                        "--lr", "0.1")
    di, r_di = _train(capsys, corpus, tmp_path, "ngram", "--smoothing", "di")
    lstm, r_lstm = _train(capsys, corpus, tmp_path, "lstm", "--epochs", "2", "--hidden", "8", "--classes", "4",
                          "--batch-size", "4", "--bptt-block", "5", "--lr", "0.1")
    rc, so, _ = _run(capsys, "lm", "eval", "--model", lstm, "--data", corpus["test"], "--json")
    assert rc == 0 and json.loads(so)["perplexity"] == pytest.approx(r_lstm["test_perplexity"], abs=1e-3)
    for r in (r_ng, r_nplm, r_rnn, r_di, r_lstm):
        assert r["vocab"] == 32 and 1 < r["test_perplexity"] < 32
    assert r_di["test_perplexity"] != r_ng["test_perplexity"]
    rc, so, _ = _run(capsys, "lm", "eval", "--model", di, "--data", corpus["test"], "--json")
    assert rc == 0 and json.loads(so)["perplexity"] == pytest.approx(r_di["test_perplexity"], abs=1e-3)
    rc, so, _ = _run(capsys, "lm", "eval", "--model", rnn, "--data", corpus["test"], "--json")
    ev = json.loads(so)
    assert rc == 0 and ev["perplexity"] == pytest.approx(r_rnn["test_perplexity"], abs=1e-3)
    assert ev["tokens"] == 60 + sum(len(line.split()) for line in open(corpus["test"])) and ev["oov_as_unk"] == 0
    rc, so, _ = _run(capsys, "lm", "eval", "--model", nplm, "--data", corpus["test"], "--mix", ng, "--weight", "em",
                     "--tune-on", corpus["valid"], "--json")
    mix = json.loads(so)
    assert rc == 0 and 0 <= mix["weight"] <= 1 and mix["perplexity"] > 1
    rc, so, _ = _run(capsys, "lm", "eval", "--model", rnn, "--data", corpus["test"], "--mix", ng, "--weight", "em",
                     "--tune-on", corpus["valid"], "--context-bins", corpus["train"], "--json")
    binned = json.loads(so)
    assert rc == 0 and len(binned["weights"]) == 16 and "weight" not in binned
    assert all(0 <= w <= 1 for w in binned["weights"]) and binned["perplexity"] > 1
    rc, so, _ = _run(capsys, "lm", "eval", "--model", nplm, "--data", corpus["test"], "--mix", ng, "--weight", "1",
                     "--json")
    assert json.loads(so)["perplexity"] == pytest.approx(r_nplm["test_perplexity"], abs=1e-3)


def test_eval_per_sentence_scores_each_line_on_its_own(capsys, corpus, tmp_path):
    """`lm eval --per-sentence` (n-best rescoring): each line a text of its own, one result line per sentence."""
    from fastnn import io
    from fastnn.recipes import lm as recipe
    ng, _ = _train(capsys, corpus, tmp_path, "ngram")
    rnn, _ = _train(capsys, corpus, tmp_path, "rnn", "--epochs", "1", "--hidden", "8", "--classes", "4",
                    "--batch-size", "4", "--bptt-block", "5")
    sents = [line.split() for line in open(corpus["test"])]
    for path in (ng, rnn):
        model = io.load_model(path)
        lp, n = recipe.sentence_logprobs(model, sents)
        np.testing.assert_array_equal(recipe.sentence_logprobs(model, (s for s in sents))[0], lp)   # read once
        assert lp[2] == pytest.approx(model.token_logprobs([sents[2]]).sum())   # alone, not after sentences 0-1
        np.testing.assert_array_equal(n, [len(s) + 1 for s in sents])
        rc, so, err = _run(capsys, "lm", "eval", "--model", path, "--data", corpus["test"], "--per-sentence")
        rows = [line.split("\t") for line in so.splitlines()]
        assert rc == 0 and len(rows) == len(sents), err
        assert [r[3].split() for r in rows] == sents and [int(r[1]) for r in rows] == list(n)
        np.testing.assert_allclose([float(r[0]) for r in rows], lp, atol=1e-4)
    # the n-gram model starts every sentence afresh anyway: the per-sentence scores add up to the text's
    lp_ng = recipe.sentence_logprobs(io.load_model(ng), sents)[0]
    assert lp_ng.sum() == pytest.approx(io.load_model(ng).token_logprobs(sents).sum(), rel=1e-12)
    # a mixture of weight 1 is the first model alone, line by line; JSON lines parse
    rc, so, _ = _run(capsys, "lm", "eval", "--model", ng, "--mix", rnn, "--weight", "1", "--data", corpus["test"],
                     "--per-sentence", "--json")
    got = [json.loads(line) for line in so.splitlines()]
    assert rc == 0 and [g["sentence"].split() for g in got] == sents
    np.testing.assert_allclose([g["logprob"] for g in got], lp_ng, atol=1e-4)
    rc, so, err = _run(capsys, "lm", "eval", "--model", rnn, "--mix", ng, "--weight", "em", "--tune-on",
                       corpus["valid"], "--context-bins", corpus["train"], "--data", corpus["test"], "--per-sentence")
    assert rc == 0 and len(so.splitlines()) == len(sents), err
    with pytest.raises(TypeError, match="split it"):
        recipe.sentence_logprobs(io.load_model(ng), ["a b c"])
    with pytest.raises(TypeError, match="arguments are"):
        recipe.sentence_logprobs(sents, io.load_model(ng))


def test_resume_gives_the_same_model(capsys, corpus, tmp_path):
    args = ["--epochs", "2", "--hidden", "6", "--batch-size", "4", "--bptt-block", "6", "--dropout", "0.2"]
    full, _ = _train(capsys, corpus, tmp_path, "rnn", *args)
    ck = str(tmp_path / "ck.npz")
    a = str(tmp_path / "a.npz")
    rc, _, err = _run(capsys, "lm", "train", "--model", "rnn", "--train", corpus["train"], "--valid",
                      corpus["valid"], "--out", a, "--quiet", "--checkpoint", ck, *args[:1], "1", *args[2:])
    assert rc == 0, err
    rc, _, err = _run(capsys, "lm", "train", "--model", "rnn", "--train", corpus["train"], "--valid",
                      corpus["valid"], "--out", a, "--quiet", "--checkpoint", ck, "--resume", *args)
    assert rc == 0, err
    m1, m2 = io.load_model(full), io.load_model(a)
    for (n, p), q in zip(m1.parameters().items(), m2.parameters().values()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)


def test_errors(capsys, corpus, tmp_path):
    ng, _ = _train(capsys, corpus, tmp_path, "ngram")
    base = ["lm", "train", "--train", corpus["train"], "--out", str(tmp_path / "x.npz"), "--quiet"]
    cases = [
        (["lm", "train", "--model", "ngram", "--train", str(tmp_path / "nope.txt"), "--out", "x.npz"], "no such file"),
        (base + ["--model", "nplm"], "needs --dev"),
        (base + ["--model", "ngram", "--smoothing", "di"], "--smoothing di needs --dev"),
        (base + ["--model", "nplm", "--valid", corpus["valid"], "--order", "1"], "--order must be >= 2"),
        (base + ["--model", "rnn", "--valid", corpus["valid"], "--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["lm", "eval", "--model", ng, "--data", corpus["test"], "--mix", ng, "--weight", "em"], "needs --tune-on"),
        (["lm", "eval", "--model", ng, "--data", corpus["test"], "--mix", ng, "--weight", "2"], "--weight must be"),
        (["lm", "eval", "--model", ng, "--data", corpus["test"], "--mix", ng, "--context-bins", corpus["train"]],
         "--context-bins needs --weight em"),
        (["lm", "eval", "--model", corpus["test"], "--data", corpus["test"]], "got a text file (first line"),
        # the options are checked before any file is read or any model scores a word
        (["lm", "eval", "--model", str(tmp_path / "nope.npz"), "--data", "nope.txt", "--mix", ng, "--weight", "2"],
         "--weight must be"),
        (["lm", "eval", "--model", ng, "--data", corpus["test"], "--mix", ng, "--weight", "em", "--tune-on",
          str(tmp_path / "nope.txt")], "no such file"),
    ]
    for argv, msg in cases:
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and msg in err and err.count("\n") == 1, (argv, err)
    # a model trained on another vocabulary cannot be mixed
    other = tmp_path / "other.txt"
    other.write_text("a b c\n" * 10)
    o = str(tmp_path / "o.npz")
    assert _run(capsys, "lm", "train", "--model", "ngram", "--train", str(other), "--out", o, "--quiet")[0] == 0
    rc, _, err = _run(capsys, "lm", "eval", "--model", ng, "--data", corpus["test"], "--mix", o)
    assert rc == 2 and "different vocabulary" in err


@pytest.mark.parametrize("threads, kernel_threads, want", [(None, None, (-1, 1)), (1, None, (1, 1)), (None, 1, (1, 1)),
                                                           (2, 1, (1, 2))])
def test_thread_options_and_defaults(threads, kernel_threads, want):
    """Left alone, the kernels take every CPU and BLAS one thread (recipes.lm.DEFAULT_THREADS); --threads sets both,
    --kernel-threads the kernels alone."""
    import argparse

    import fastnn
    from threadpoolctl import threadpool_info

    from fastnn._threads import effective_n_threads
    from fastnn.cli.lm import _set_threads

    with fastnn.threads(kernels=3, blas=3):                  # restored on exit
        _set_threads(argparse.Namespace(threads=threads, kernel_threads=kernel_threads))
        blas = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
        assert fastnn.get_num_threads() == effective_n_threads(want[0]) and blas == {want[1]}


def test_a_min_count_that_leaves_most_words_unk_is_pointed_out(capsys, tmp_path):
    """The perplexity of a model that predicts mostly <unk> looks good and means little: the vocabulary line says so."""
    path = write_lines(tmp_path / "t.txt", ["a b c d", "a e f g", "a h i j"])
    rc, out, err = _run(capsys, "lm", "train", "--arch", "ngram", "--train", path, "--min-count", "3",
                        "--out", tmp_path / "m.npz")
    assert rc == 0 and "<unk> is 75% of the training words: lower --min-count" in err, err
    rc, out, err = _run(capsys, "lm", "train", "--arch", "ngram", "--train", path, "--min-count", "1",
                        "--out", tmp_path / "m.npz")
    assert rc == 0 and "<unk> is" not in err, err


@pytest.mark.parametrize("arch", ["ngram", "rnn"])
def test_a_test_file_that_is_the_train_or_dev_file_is_refused(capsys, corpus, tmp_path, arch):
    """`lm train --test` given the --dev (or --train) file reported the perplexity of the text the model was selected
    (or trained) on as its test perplexity, silently; a link to it is the same file."""
    os.symlink(corpus["valid"], tmp_path / "link.txt")
    for opt, path in (("--dev", corpus["valid"]), ("--dev", tmp_path / "link.txt"), ("--train", corpus["train"])):
        args = {"--train": corpus["train"], "--dev": corpus["valid"]}
        rc, out, err = _run(capsys, "lm", "train", "--arch", arch, "--train", args["--train"], "--dev", args["--dev"],
                            "--test", path, "--out", tmp_path / "m.npz", "--quiet")
        assert rc == 2 and len(err.strip().splitlines()) == 1 and f"is the {opt} file" in err, err
        assert not os.path.exists(tmp_path / "m.npz")


def test_resume_with_other_options_or_data_is_one_line_naming_them(capsys, corpus, tmp_path):
    """`lm train --resume` with another --lr (or other --dev text) continued the checkpoint's run with the new value,
    silently; now it names the option (or the data) and stops, exit 2.  --checkpoint / --resume with --arch ngram
    (nothing to checkpoint) were ignored: now refused before any work."""
    ck, out = str(tmp_path / "ck.npz"), str(tmp_path / "m.npz")
    base = ["lm", "train", "--arch", "rnn", "--train", corpus["train"], "--out", out, "--quiet", "--hidden", "6",
            "--batch-size", "4", "--checkpoint", ck]
    assert _run(capsys, *base, "--dev", corpus["valid"], "--epochs", "1")[0] == 0
    rc, _, err = _run(capsys, *base, "--dev", corpus["valid"], "--epochs", "2", "--resume", "--lr", "0.5")
    assert rc == 2 and err.count("\n") == 1 and "was written by a run with --lr 0.05; this run has 0.5" in err, err
    rc, _, err = _run(capsys, *base, "--dev", corpus["test"], "--epochs", "2", "--resume")
    assert rc == 2 and "'valid data'" in err, err
    assert _run(capsys, *base, "--dev", corpus["valid"], "--epochs", "2", "--resume")[0] == 0
    for extra in (["--checkpoint", ck], ["--resume"]):
        rc, _, err = _run(capsys, "lm", "train", "--arch", "ngram", "--train", corpus["train"], "--out", out, *extra)
        assert rc == 2 and f"{extra[0]} does not apply to --arch ngram" in err, err


@pytest.mark.parametrize("options, says", [
    (["--kernel-threads", "-1", "--threads", "0"], "--threads must not be 0; give a positive count"),
    (["--kernel-threads", "0", "--threads", "1"], "--kernel-threads must not be 0; give a positive count"),
    (["--threads", "0"], "--threads must not be 0; give a positive count, or -1 for all CPUs."),
    (["--threads", "100000"], "--threads must be <= ")])
def test_a_bad_thread_count_names_its_own_option(capsys, corpus, tmp_path, options, says):
    """With --kernel-threads given, a bad --threads was reported as --kernel-threads' ("--kernel-threads: blas must
    not be 0"), and the remedy offered Python's None."""
    import fastnn
    ng, _ = _train(capsys, corpus, tmp_path, "ngram")
    with fastnn.threads(kernels=1, blas=1):                  # restored on exit
        rc, _, err = _run(capsys, "lm", "eval", "--model", ng, "--data", corpus["test"], *options)
    assert rc == 2 and says in err and "None" not in err and err.count("\n") == 1, err


def test_em_on_the_evaluated_text_is_refused(capsys, corpus, tmp_path):
    """--weight em --tune-on with the --data file (or a link to it) fitted the mixture weight on the evaluated text
    and printed its optimistic perplexity, silently, although the command's own rule is "never tune on the evaluated
    data"; --context-bins counted the bins there.  Both are one line, exit 2, before any work."""
    import os
    ng, _ = _train(capsys, corpus, tmp_path, "ngram")
    ng2, _ = _train(capsys, corpus, tmp_path, "ngram", "--order", "2")
    link = tmp_path / "same.txt"
    os.symlink(corpus["test"], link)
    base = ["lm", "eval", "--model", ng, "--mix", ng2, "--data", corpus["test"], "--weight", "em"]
    for extra, says in ((["--tune-on", link], "--tune-on"),
                        (["--tune-on", corpus["valid"], "--context-bins", corpus["test"]], "--context-bins")):
        rc, out, err = _run(capsys, *base, *extra)
        assert rc == 2 and out == "" and f"{says} " in err and "is the --data file" in err, err
    assert _run(capsys, *base, "--tune-on", corpus["valid"], "--context-bins", corpus["train"])[0] == 0


def test_the_mixtures_options_without_a_mixture_are_refused(capsys, corpus, tmp_path):
    """lm eval --weight 0.3 (or --tune-on, --context-bins) without --mix printed the one model's perplexity, the
    option ignored; a number --weight with --tune-on ignored the text; a missing --tune-on file was found only after
    both models and the data had been read.  Each is one line, exit 2, before any work."""
    ng, _ = _train(capsys, corpus, tmp_path, "ngram")
    ng2, _ = _train(capsys, corpus, tmp_path, "ngram", "--order", "2")
    base = ["lm", "eval", "--model", ng, "--data", corpus["test"]]
    for extra, says in ((["--weight", "0.3"], "--weight is an option of the mixture: give --mix"),
                        (["--weight", "em", "--tune-on", corpus["valid"]], "--weight is an option of the mixture"),
                        (["--tune-on", corpus["valid"]], "--tune-on is an option of the mixture"),
                        (["--context-bins", corpus["train"]], "--context-bins is an option of the mixture"),
                        (["--mix", ng2, "--weight", "0.3", "--tune-on", corpus["valid"]],
                         "--tune-on needs --weight em"),
                        (["--mix", ng2, "--weight", "em", "--tune-on", str(tmp_path / "nope.txt")], "no such file")):
        rc, out, err = _run(capsys, *base, *extra)
        assert rc == 2 and out == "" and says in err and err.count("\n") == 1, (extra, err)
    rc, out, err = _run(capsys, *base, "--mix", ng2, "--json")            # --weight's default with --mix
    assert rc == 0 and json.loads(out)["weight"] == 0.5, err


def test_messages_name_the_dev_option_as_it_is_spelt(capsys, corpus, tmp_path, monkeypatch):
    """lm train's --dev was kept as 'valid' (its old spelling), so a clash said "--valid" to a user who typed
    --dev."""
    import io as _io
    monkeypatch.setattr("sys.stdin", _io.TextIOWrapper(_io.BytesIO(b"the dog runs\n")))
    rc, _, err = _run(capsys, "lm", "train", "--arch", "rnn", "--train", "-", "--dev", "-", "--out",
                      str(tmp_path / "m.npz"))
    assert rc == 2 and "--train and --dev: standard input" in err, err
    rc, _, err = _run(capsys, "lm", "train", "--arch", "rnn", "--train", corpus["train"], "--valid", corpus["valid"],
                      "--out", corpus["valid"])
    assert rc == 2 and "is also the --dev file" in err, err


def test_eval_checks_its_data_file_before_loading_the_models(capsys, tmp_path, monkeypatch):
    """A missing --data was found only after --model and --mix had been loaded."""
    def loading(*a, **k):
        raise AssertionError("a model was loaded before --data was checked")
    monkeypatch.setattr("fastnn.cli.lm.load_model_file", loading)
    rc, out, err = _run(capsys, "lm", "eval", "--model", tmp_path / "m.npz", "--data", tmp_path / "missing.txt")
    assert rc == 2 and "no such file" in err and "missing.txt" in err, err
