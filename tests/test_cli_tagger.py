"""`fastnn tagger train/eval/predict` on small synthetic CoNLL files: outputs, checkpoint/resume, pretrained vectors,
and one-line errors (exit code 2) for bad files, columns, tags and options."""
import json
import os

import numpy as np
import pytest

from fastnn import io
from fastnn.data.conll import read_conll
from fastnn.data.vectors import write_vectors
from tests.conlleval import conlleval
from tests.conftest import run_cli, spawned_workers, workers_left, write_lines

NOUNS = ["dog", "cat", "idea", "car", "bank", "Paris", "London", "Smith", "Jones"]


def _conll(path, rng, n):
    """word pos chunk ner, CoNLL-2003 style (IOB1 chunks and names)."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(n):
        for _ in range(int(rng.integers(1, 4))):
            lines.append(f"{rng.choice(['the', 'a'])} DT I-NP O")
            for _ in range(int(rng.integers(1, 3))):
                w = str(rng.choice(NOUNS))
                ner = "I-LOC" if w in ("Paris", "London") else ("I-PER" if w in ("Smith", "Jones") else "O")
                lines.append(f"{w} {'NNP' if w[0].isupper() else 'NN'} I-NP {ner}")
            lines.append(f"{rng.choice(['runs', 'sees'])} VBZ I-VP O")
        lines.append(". . O O")
        lines.append("")
    return write_lines(path, lines)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    return {"train": _conll(tmp_path / "train.txt", rng, 60), "dev": _conll(tmp_path / "dev.txt", rng, 15),
            "dir": tmp_path}


_run = run_cli


SMALL = ["--epochs", "3", "--embed-dim", "8", "--hidden", "16", "--batch-size", "16", "--lr", "0.1"]


def test_train_eval_predict_multitask(capsys, files):
    model = files["dir"] / "m.npz"
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--dev", files["dev"], "--task", "ner=3",
                        "--task", "pos=pos", "--out", model, *SMALL)
    assert rc == 0, err
    assert "epoch 3/3" in err and "windows/s" in err
    rc, out, err = _run(capsys, "tagger", "eval", "--model", model, "--data", files["dev"], "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert set(res) == {"ner", "pos"}
    assert set(res["ner"]) == {"f1", "precision", "recall", "accuracy", "n_tokens", "n_chunks", "unseen_tokens",
                               "unseen_chunks", "unseen_tags"}
    assert res["ner"]["f1"] > 90 and res["pos"]["accuracy"] > 90 and res["pos"]["f1"] is None
    rc, table, err = _run(capsys, "tagger", "eval", "--model", model, "--data", files["dev"])
    assert rc == 0 and table.splitlines()[0].split() == ["task", "precision", "recall", "F1", "accuracy"]
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", files["dev"])
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    src = [line.split() for line in open(files["dev"]).read().splitlines()]
    assert len(rows) == len(src) and all(r[:len(s)] == s for r, s in zip(rows, src))   # line for line
    assert rows[0] == ["-DOCSTART-", "-X-", "-X-", "O", "O", "O"] and rows[1] == []
    rows = [r for r in rows if r]
    assert all(len(r) == 6 for r in rows)               # one predicted column per task: ner, then pos
    assert {r[4] for r in rows} <= {"O", "I-LOC", "I-PER", "B-LOC", "B-PER"}   # NER back in the file's IOB1
    pred = files["dir"] / "pred.txt"
    assert _run(capsys, "tagger", "predict", "--model", model, "--data", files["dev"], "--out", pred)[0] == 0
    assert [line.split() for line in pred.read_text().splitlines() if line] == rows
    # the output is conlleval's input: its score is the one eval reports
    scored = [" ".join(r[:4] + r[4:5]) if len(r) > 1 else "" for r in (line.split() for line in out.splitlines())]
    assert conlleval(scored)["f1"] == pytest.approx(res["ner"]["f1"], abs=1e-9)


def test_several_training_files_are_one_corpus_and_may_lack_some_tasks(capsys, files):
    three = files["dir"] / "three.txt"                   # a CoNLL-2000-like file: word pos chunk, no NER column
    three.write_text("Oslo NNP I-NP\nsings VBZ I-VP\n. . O\n")
    model = files["dir"] / "two.npz"
    rc, _, err = _run(capsys, "tagger", "train", "--train", files["train"], three, "--task", "pos=1", "--task", "ner=3",
                      "--out", model, *SMALL)
    assert rc == 0, err
    assert "three.txt (3 columns) has no labels for ner: its sentences train the other tasks" in err
    m = io.load_model(model)
    assert "oslo" in m.vocab.words                       # the words of both files were trained on
    rc, _, err = _run(capsys, "tagger", "train", "--train", files["train"], three, "--task", "ner=3", "--out", model,
                      *SMALL)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "three.txt has 3 columns: no column of any" in err
    rc, _, err = _run(capsys, "tagger", "train", "--train", three, files["train"], "--task", "ner=3", "--out", model,
                      *SMALL)
    assert rc == 2 and "three.txt has 3 columns (0..2)" in err   # the first file sets the columns


def test_word_loss_and_options(capsys, files):
    model = files["dir"] / "w.npz"
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "chunk=2", "--out", model,
                        "--loss", "word", "--activation", "tanh", "--window", "3", "--suffix-len", "2",
                        "--suffix-dim", "3", "--dropout", "0.1", "--scheme", "iob2", "--optimizer", "sgd",
                        "--quiet", *SMALL)
    assert rc == 0 and out == "" and err == ""
    m = io.load_model(model)
    c = m.config()
    assert (c["loss"], c["activation"], c["window"], c["suffix_len"], c["dropout"]) == ("word", "tanh", 3, 2, 0.1)
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "pos=1", "--out", model,
                        "--suffix-len", "1,2,3", "--suffix-dim", "3", "--prefix-len", "1,2", "--prefix-dim", "2",
                        "--shape-dim", "2", "--average", "--task", "chunk=2", "--task-weight", "chunk=0.5", "--quiet",
                        "--char-dim", "2", "--char-filters", "3", *SMALL)
    assert rc == 0, err
    pos = io.load_model(model)
    assert (pos.config()["suffix_len"], pos.config()["prefix_len"]) == ([1, 2, 3], [1, 2])
    assert (pos.config()["char_dim"], pos.config()["char_filters"], pos.config()["char_width"]) == (2, 3, 3)
    dev = read_conll(files["dev"])
    assert len(pos.encode(dev).feats) == 6                       # 3 suffix slots, 2 prefix slots, the shape
    assert pos.evaluate(dev)["pos"]["accuracy"] > 90 and [t["weight"] for t in pos.tasks] == [1.0, 0.5]
    assert m.tasks[0]["scheme"] == "iob2" and m.tasks[0]["file_scheme"] == "iob1"


@pytest.mark.parametrize("dev", [False, True])
@pytest.mark.parametrize("average", [False, True])
def test_checkpoint_resume_gives_the_same_model(capsys, files, dev, average):
    d = files["dir"]
    base = ["tagger", "train", "--train", files["train"], "--task", "ner=3", "--quiet", "--embed-dim", "8",
            "--hidden", "16", "--batch-size", "16", "--dropout", "0.2", "--unk-replace", "0.3"]
    base[6:6] = (["--dev", files["dev"]] if dev else []) + (["--average"] if average else [])
    assert _run(capsys, *base, "--epochs", "4", "--out", d / "full.npz")[0] == 0
    assert _run(capsys, *base, "--epochs", "2", "--out", d / "half.npz", "--checkpoint", d / "ck.npz")[0] == 0
    rc, out, err = _run(capsys, *base, "--epochs", "4", "--out", d / "resumed.npz", "--checkpoint", d / "ck.npz",
                        "--resume")
    assert rc == 0, err
    full, resumed, half = (io.load_model(d / f) for f in ("full.npz", "resumed.npz", "half.npz"))
    for name, p in full.parameters().items():
        np.testing.assert_array_equal(p.value, resumed.parameters()[name].value, err_msg=name)
    if not dev:         # (with --dev both may keep the same early best epoch: the tiny data is learnt in 1-2)
        assert not np.array_equal(full.hidden.W.value, half.hidden.W.value)
    # resuming with different hyper-parameters is refused in one line
    rc, out, err = _run(capsys, *base[:-4], "--epochs", "4", "--hidden", "8", "--out", d / "x.npz",
                        "--checkpoint", d / "ck.npz", "--resume")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "resume" in err


def test_resume_with_another_lr_or_other_data_is_one_line_naming_it(capsys, files):
    """`tagger train --resume` with another --lr (same shapes) or other training sentences continued the checkpoint's
    run with them, silently (the LM commands refused it already)."""
    d = files["dir"]
    base = ["tagger", "train", "--task", "ner=3", "--quiet", "--embed-dim", "8", "--hidden", "16",
            "--checkpoint", d / "ck.npz"]
    assert _run(capsys, *base, "--train", files["train"], "--epochs", "1", "--out", d / "one.npz")[0] == 0
    rc, out, err = _run(capsys, *base, "--train", files["train"], "--epochs", "2", "--lr", "0.07",
                        "--out", d / "x.npz", "--resume")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "'lr' 0.05" in err and "0.07" in err, err
    other = d / "other.conll"
    sents = open(files["train"]).read().rstrip("\n").split("\n\n")
    other.write_text("\n\n".join(sents[:-2] + sents[:-3:-1]) + "\n")        # the last two sentences swapped
    rc, out, err = _run(capsys, *base, "--train", other, "--epochs", "2", "--out", d / "x.npz", "--resume")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "'train data'" in err, err
    assert not os.path.exists(d / "x.npz")
    rc, out, err = _run(capsys, *base, "--train", files["train"], "--epochs", "2", "--out", d / "x.npz", "--resume")
    assert rc == 0, err                                                 # more epochs of the same run: resumed


@pytest.mark.parametrize("workers", [1, 2])
def test_ensemble_trains_evaluates_predicts_and_resumes(capfd, files, workers):
    capsys = capfd                                  # (the workers' lines are written by other processes)
    d = files["dir"]
    base = ["tagger", "train", "--train", files["train"], "--dev", files["dev"], "--task", "ner=3", "--embed-dim", "8",
            "--hidden", "16", "--batch-size", "16", "--ensemble", "2", "--seed", "1", "--workers", str(workers)]
    rc, out, err = _run(capsys, *base, "--epochs", "2", "--out", d / "e.npz", "--checkpoint", d / "ck.npz")
    assert rc == 0, err
    assert "member 2/2 (seed 3)" in err and "ensemble of 2: dev F1" in err and "members' best epochs" in err
    assert ("member 2/2: epoch 2/2" in err) == (workers > 1)          # each worker's lines say whose they are
    ens = io.load_model(d / "e.npz")
    assert type(ens).__name__ == "TaggerEnsemble" and [m.config()["seed"] for m in ens.members] == [2, 3]
    rc, out, err = _run(capsys, "tagger", "eval", "--model", d / "e.npz", "--data", files["dev"], "--json")
    assert rc == 0, err
    assert json.loads(out)["ner"]["f1"] == pytest.approx(ens.score(read_conll(files["dev"])))
    rc, out, err = _run(capsys, "tagger", "predict", "--model", d / "e.npz", "--data", files["dev"])
    assert rc == 0 and [line.split()[-1] for line in out.splitlines() if line.strip()][1:] == [
        t for s in ens.predict(read_conll(files["dev"]))["ner"] for t in s]
    # resuming goes on with each member from its own checkpoint: the same as training 3 epochs at once
    assert (d / "ck.npz").exists() and (d / "ck.npz.member1").exists()
    assert _run(capsys, *base, "--epochs", "3", "--out", d / "full.npz", "--quiet")[0] == 0
    rc, out, err = _run(capsys, *base, "--epochs", "3", "--out", d / "resumed.npz", "--checkpoint", d / "ck.npz",
                        "--resume", "--quiet")
    assert rc == 0, err
    full, resumed = io.load_model(d / "full.npz"), io.load_model(d / "resumed.npz")
    for name, p in full.parameters().items():
        np.testing.assert_array_equal(p.value, resumed.parameters()[name].value, err_msg=name)


def test_ctrl_c_stops_the_workers_which_keep_their_checkpoints(files):
    """Ctrl-C reaches only the command (the workers are in their own process group): it stops the busy workers
    between two steps, each writing its checkpoint, starts no other member and writes no model; --resume then goes
    on with each member from its checkpoint and ends with the models of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    d = files["dir"]
    base = [sys.executable, "-m", "fastnn", "tagger", "train", "--train", files["train"], "--task", "ner=3",
            "--embed-dim", "8", "--hidden", "16", "--batch-size", "16", "--ensemble", "3", "--workers", "2"]
    # started with SIGINT ignored, as a shell's background job (CI's, say) starts it: `kill -INT` must still stop it
    # (the command waited for the workers for ever, the signal ignored)
    p = subprocess.Popen([*base, "--epochs", "100000", "--out", d / "e.npz", "--checkpoint", d / "ck.npz"],
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = []
    while not all(any(line.startswith(f"member {i}/3: epoch 2/") for line in lines) for i in (1, 2)):
        lines.append(p.stderr.readline())
        assert lines[-1], "".join(lines)
    p.send_signal(signal.SIGINT)
    err = "".join(lines) + p.communicate(timeout=120)[1]
    assert p.returncode == 130, err
    assert (f"interrupted (in members 1, 2, 3 of 3: an ensemble is written only when all its members are trained; "
            f"checkpoints written to {d / 'ck.npz'} and its .member<k> files; to go on: --checkpoint {d / 'ck.npz'} "
            f"--resume)") in err, err                      # the resume in the CLI's words (not the Trainer's Python)
    assert "resume=True" not in err, err
    assert "member 3/3" not in err and not (d / "e.npz").exists() and "Traceback" not in err, err
    assert (d / "ck.npz").exists() and (d / "ck.npz.member1").exists() and not (d / "ck.npz.member2").exists()
    epochs = max(int(line.split("epoch ")[1].split("/")[0]) for line in err.splitlines() if ": epoch " in line) + 2
    for out, extra in (("resumed.npz", ["--checkpoint", d / "ck.npz", "--resume"]), ("full.npz", [])):
        done = subprocess.run([*base, "--epochs", str(epochs), "--out", d / out, "--quiet", *extra],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    full, resumed = io.load_model(d / "full.npz"), io.load_model(d / "resumed.npz")
    for name, p in full.parameters().items():
        np.testing.assert_array_equal(p.value, resumed.parameters()[name].value, err_msg=name)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the worker processes through Linux's /proc")
def test_workers_stop_when_the_command_is_killed(files):
    """The workers run in their own process group, so a kill of the command (a job's time limit, `kill -9`) reached
    none of them: they trained on for nobody.  They now stop as on Ctrl-C, each writing its member's checkpoint."""
    import subprocess
    import sys
    import threading
    d = files["dir"]
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "tagger", "train", "--train", files["train"], "--task",
                          "ner=3", "--embed-dim", "8", "--hidden", "16", "--batch-size", "16", "--ensemble", "2",
                          "--workers", "2", "--epochs", "100000", "--out", d / "e.npz", "--checkpoint", d / "ck.npz"],
                         stderr=subprocess.PIPE, text=True)
    lines = []
    while not all(any(line.startswith(f"member {i}/2: epoch 2/") for line in lines) for i in (1, 2)):
        lines.append(p.stderr.readline())
        assert lines[-1], "".join(lines)

    alive = spawned_workers(p.pid)
    assert len(alive) == 2, alive
    p.kill()
    p.wait()
    threading.Thread(target=p.stderr.read, daemon=True).start()     # the workers' last lines (a full pipe blocks)
    assert not workers_left(alive), "the workers trained on after the command was killed"
    assert (d / "ck.npz").exists() and (d / "ck.npz.member1").exists()


def test_pretrained_vectors(capsys, files):
    d = files["dir"]
    words = ["dog", "CAT", "zebra", "Paris"]
    vecs = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    write_vectors(d / "v.txt", words, vecs)
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", d / "p.npz",
                        "--pretrained", d / "v.txt", "--freeze-embeddings", "--extend-vocab", "--epochs", "1",
                        "--hidden", "8", "--pretrained-std", "raw")
    assert rc == 0, err
    assert "pretrained vectors for 4 of" in err and "rescaled" not in err
    m = io.load_model(d / "p.npz")
    assert m.embed.W.shape[1] == 6 and "zebra" in m.vocab and not m.embed.W.trainable
    for w, v in zip(["dog", "cat", "zebra", "paris"], vecs):
        np.testing.assert_array_equal(m.embed.W.value[m.vocab.index(w)], v)
    # by default the vectors are rescaled (one factor) to the entry std of the tagger's own U(-0.01, 0.01) start
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", d / "s.npz",
                        "--pretrained", d / "v.txt", "--freeze-embeddings", "--extend-vocab", "--epochs", "1",
                        "--hidden", "8")
    assert rc == 0 and "rescaled to std" in err, err
    got = np.stack([io.load_model(d / "s.npz").embed.W.value[m.vocab.index(w)] for w in ["dog", "cat", "zebra", "paris"]])
    np.testing.assert_allclose(got, vecs * (0.01 / np.sqrt(3) / vecs.std()), rtol=0.1)
    np.testing.assert_allclose(got / got[0, 0], vecs / vecs[0, 0], rtol=1e-5)      # one factor: geometry kept
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", d / "q.npz",
                        "--pretrained", d / "v.txt", "--embed-dim", "5")
    assert rc == 2 and "--embed-dim 5" in err
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", d / "q.npz",
                        "--pretrained", d / "v.txt", "--pretrained-std", "big")
    assert rc == 2 and "--pretrained-std" in err and len(err.strip().splitlines()) == 1


def test_pretrained_vectors_from_a_model_file(capsys, files, tmp_path):
    """--pretrained read text vectors only ("binary file") where embed neighbors --vectors takes a model file: a
    tagger's or a neural LM's .npz (lm train writes no text vectors) starts a tagger's words too."""
    d = files["dir"]
    base = ["tagger", "train", "--train", files["train"], "--task", "ner=3", "--epochs", "1", "--hidden", "8"]
    assert _run(capsys, *base, "--embed-dim", "6", "--out", d / "first.npz", "--quiet")[0] == 0
    first = io.load_model(d / "first.npz")
    rc, out, err = _run(capsys, *base, "--pretrained", d / "first.npz", "--pretrained-std", "raw",
                        "--freeze-embeddings", "--out", d / "second.npz")
    assert rc == 0 and f"pretrained vectors for {len(first.vocab)} of {len(first.vocab)} words" in err, err
    second = io.load_model(d / "second.npz")
    np.testing.assert_array_equal(second.embed.W.value, first.embed.W.value)   # the same words, frozen and raw
    lm = tmp_path / "lm.txt"
    lm.write_text("\n".join(" ".join(s) for s in [["london", "sees", "a", "dog"], ["the", "cat", "runs"]] * 20) + "\n")
    assert _run(capsys, "lm", "train", "--arch", "rnn", "--train", lm, "--dev", lm, "--out", d / "lm.npz", "--epochs",
                "1", "--hidden", "4", "--classes", "2", "--quiet")[0] == 0
    rc, out, err = _run(capsys, *base, "--pretrained", d / "lm.npz", "--out", d / "third.npz")
    assert rc == 0 and "pretrained vectors for" in err and "from " + str(d / "lm.npz") in err, err
    assert _run(capsys, "lm", "train", "--arch", "ngram", "--train", lm, "--out", d / "kn.npz", "--quiet")[0] == 0
    rc, out, err = _run(capsys, *base, "--pretrained", d / "kn.npz", "--out", d / "x.npz")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "has no word vectors" in err, err


def test_feature_columns_are_read_by_train_eval_and_predict(capsys, files, monkeypatch):
    d, train, dev = files["dir"], files["train"], files["dev"]
    model = d / "f.npz"
    rc, out, err = _run(capsys, "tagger", "train", "--train", train, "--dev", dev, "--task", "ner=3", "--feature",
                        "pos=pos", "--feature", "chunk=2:3", "--feature-dim", "4", "--out", model, *SMALL)
    assert rc == 0, err
    assert "pos=col1:4, chunk=col2:3" in err
    assert [c["name"] for c in io.load_model(model).columns] == ["pos", "chunk"]
    rc, out, err = _run(capsys, "tagger", "eval", "--model", model, "--data", dev, "--json")
    assert rc == 0 and json.loads(out)["ner"]["f1"] > 90, err
    words = d / "words.txt"
    words.write_text("the\ndog\n\n")
    for cmd in ("eval", "predict"):
        _one_line_error(capsys, "tagger", cmd, "--model", model, "--data", words,
                        match=f"feature 'pos' reads column 1 as an input, but line 1 of {words} (its sentence 0) "
                              f"has 1 column")
    # a file whose POS column holds values never seen (or which lacks it: its chunk column in its place) is tagged,
    # the unseen values read as <unk>, and said on stderr (was: silently)
    assert "never had" not in err
    lines = [x.split() for x in open(dev).read().splitlines()]
    odd = d / "odd.txt"
    odd.write_text("\n".join(" ".join([x[0], "ZZ", *x[2:]]) if i == 2 else " ".join(x) for i, x in enumerate(lines)))
    for cmd in ("eval", "predict"):
        rc, out, err = _run(capsys, "tagger", cmd, "--model", model, "--data", odd)
        assert rc == 0 and "feature values the training data never had, read as <unk>: pos (column 1): 1 of " in err
        assert "(ZZ)" in err and "most are unseen" not in err, err
    # read in blocks, predict says what eval says (its values were in order of first sight, not most frequent first)
    multi = d / "multi.txt"
    multi.write_text("the AA B-NP O\n\nthe BB B-NP O\n\nthe BB B-NP O\n")
    monkeypatch.setattr("fastnn.cli.tagger.PREDICT_BLOCK", 1)
    got = []
    for cmd in ("eval", "predict"):
        rc, out, err = _run(capsys, "tagger", cmd, "--model", model, "--data", multi)
        got.append([line for line in err.splitlines() if "never had" in line])
    assert got[0] == got[1] and "pos (column 1): 3 of 3 tokens (BB, AA)" in got[0][0], got
    lack = d / "lack.txt"
    lack.write_text("\n".join(" ".join([x[0], *x[2:]]) if x else "" for x in lines) + "\n")   # no POS: chunk there
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", lack)
    assert rc == 0 and "pos (column 1): " in err and "most are unseen: is column 1 the pos column" in err, err
    # one CoNLL sentence without its closing blank line is CoNLL to auto-detection (its second column holds tags)
    columns = d / "one-sentence.txt"
    columns.write_text("the DT\ndog NN\nsees VBZ\n")
    _one_line_error(capsys, "tagger", "predict", "--model", model, "--data", columns,
                    match=f"feature 'chunk' reads column 2 as an input, but line 1 of {columns} (its sentence 0) "
                          f"has 2 columns")
    words2 = d / "two-words.txt"                     # text lines of two words each: read as text, and said so
    words2.write_text("the dog\na cat\n")
    _one_line_error(capsys, "tagger", "predict", "--model", model, "--data", words2,
                    match="(read as text, one sentence per line, by auto-detection: give --format conll")
    tr = ["tagger", "train", "--train", train, "--task", "ner=3", "--out", model, "--epochs", "1"]
    _one_line_error(capsys, *tr, "--feature", "pos=7", match="column 7 is not a tag column")
    _one_line_error(capsys, *tr, "--feature", "pos=1:x", match="NAME=COL[:DIM]")
    _one_line_error(capsys, *tr, "--feature", "pos=ner", match="--task predicts")
    _one_line_error(capsys, *tr, "--feature", "pos=1:0", match="dimension must be >= 1")
    _one_line_error(capsys, *tr, "--feature", "pos=1", "--feature", "pos=2", match="a new NAME")
    _one_line_error(capsys, *tr, "--feature", "pos=1", "--dev", words, match="--dev")


def _one_line_error(capsys, *argv, match):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]


def test_a_dev_file_with_tags_the_training_part_never_had_is_scored_not_refused(capsys, files):
    """Official dev/test files carry tags their training part lacks (CoNLL-2000's LST chunks): training picks its
    epoch on them anyway, the unseen tags counted as errors as conlleval does, and says so before training."""
    d = files["dir"]
    dev = write_lines(d / "dev_org.txt", ["Smith NNP I-NP I-ORG", "runs VBZ I-VP O", "", "Paris NNP I-NP I-LOC", ""])
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--dev", dev, "--task", "ner=3",
                        "--out", d / "m.npz", *SMALL)
    assert rc == 0, err
    assert "dev tags the training data never had, scored as errors: ner: 1 tokens (I-ORG)" in err
    rc, out, err = _run(capsys, "tagger", "eval", "--model", d / "m.npz", "--data", dev, "--json")
    res = json.loads(out)["ner"]
    assert rc == 0 and res["unseen_tags"] == ["I-ORG"] and res["recall"] <= 50.0


def test_one_line_errors(capsys, files):
    d, train, dev = files["dir"], files["train"], files["dev"]
    out = d / "m.npz"
    chunk = d / "chunk.txt"
    chunk.write_text("He PRP B-NP\nruns VBZ B-VP\n\n")
    bad = d / "bad.txt"
    bad.write_text("a DT I-NP O\nb NN I-NP\n")
    tags = d / "tags.txt"
    tags.write_text("Smith NNP I-NP I-ORG\n\n")
    brown = d / "brown.txt"
    brown.write_text("The Fulton County Grand Jury said Friday\nan investigation\n")
    tr = ["tagger", "train", "--out", out, "--epochs", "1", "--hidden", "4"]
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=7", match="column 7 is out of range")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner", match="NAME=COLUMN")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=shape", match="column name")
    _one_line_error(capsys, *tr, "--train", d / "none.txt", "--task", "ner=3", match="no such file")
    _one_line_error(capsys, *tr, "--train", bad, "--task", "ner=3", match="line 2")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--dev", chunk, match="--dev")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--dev", brown, match="line 2")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--window", "4", match="--window")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--char-dim", "2", "--char-width", "2",
                    match="--char-width")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--char-filters", "0", match="--char-filters")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--suffix-len", "2,x", match="like 2 or 1,2,3")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--prefix-len", "1,1", match="distinct")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--task-weight", "pos=0.5", match="NAME=W")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--task-weight", "ner=-1", match="> 0")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--resume", match="--checkpoint")
    _one_line_error(capsys, *tr, "--train", train, "--task", "ner=3", "--freeze-embeddings", match="--pretrained")
    assert _run(capsys, *tr, "--train", train, "--task", "ner=3", "--quiet")[0] == 0
    _one_line_error(capsys, "tagger", "eval", "--model", out, "--data", chunk, match="column 3")
    rc, table, err = _run(capsys, "tagger", "eval", "--model", out, "--data", tags)   # scored: a missed chunk
    assert rc == 0 and "have tags the model cannot produce (I-ORG)" in table, err
    _one_line_error(capsys, "tagger", "eval", "--model", d / "none.npz", "--data", dev, match="no such file")
    _one_line_error(capsys, "tagger", "eval", "--model", train, "--data", dev, match="fastnn")
    assert _run(capsys, "tagger", "predict", "--model", out, "--data", chunk)[0] == 0   # words are enough
    _one_line_error(capsys, "tagger", "predict", "--model", out, "--data", bad, "--format", "conll", match="line 2")
    _one_line_error(capsys, "tagger", "predict", "--model", out, "--data", dev, "--out", d / "no" / "p.txt",
                    match=f"--out {d / 'no' / 'p.txt'}: no such directory: {d / 'no'}")
    latin = d / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    _one_line_error(capsys, "tagger", "predict", "--model", out, "--data", latin, match="UTF-8")


def test_diverging_training_stops_with_one_line_or_skips(capsys, files):
    ckpt = files["dir"] / "run.ckpt"
    argv = ["tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", files["dir"] / "m.npz",
            *SMALL, "--optimizer", "sgd", "--lr", "1e30", "--checkpoint", ckpt, "--quiet"]
    rc, out, err = _run(capsys, *argv)
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "non-finite value at step" in err and str(ckpt) in err and "--on-nonfinite skip" in err
    rc, out, err = _run(capsys, *argv, "--on-nonfinite", "skip")
    assert rc == 0, err


def test_eval_scores_a_file_with_tags_the_model_never_saw(capsys, files):
    model = files["dir"] / "m.npz"
    assert _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", model, "--quiet",
                *SMALL)[0] == 0
    test = files["dir"] / "test.txt"                      # a MISC name: a type never in training
    test.write_text("-DOCSTART- -X- -X- O\n\nParis NNP I-NP I-LOC\nLondon NNP I-NP B-LOC\nsees VBZ I-VP O\n"
                    "Linux NNP I-NP I-MISC\n. . O O\n\nthe DT I-NP O\nSmith NNP I-NP I-PER\nruns VBZ I-VP O\n\n")
    rc, out, err = _run(capsys, "tagger", "eval", "--model", model, "--data", test, "--json")
    assert rc == 0, err
    res = json.loads(out)["ner"]
    assert (res["n_tokens"], res["n_chunks"], res["unseen_tokens"], res["unseen_chunks"]) == (8, 4, 1, 1)
    assert res["unseen_tags"] == ["I-MISC"]                # as the file writes it (IOB1), not the model's S-MISC
    rc, pred, err = _run(capsys, "tagger", "predict", "--model", model, "--data", test)
    assert rc == 0, err
    assert conlleval(pred.splitlines())["f1"] == pytest.approx(res["f1"], abs=1e-9)
    assert res["recall"] <= 75.0                          # the chunk it cannot produce is a miss
    rc, table, err = _run(capsys, "tagger", "eval", "--model", model, "--data", test)
    assert rc == 0 and "ner: 1 of 8 gold tokens (1 of 4 gold chunks) have tags the model cannot produce " \
        "(I-MISC); they are scored as errors" in table


def test_predict_reads_text_or_conll_from_a_file_or_stdin_line_for_line(capsys, files, monkeypatch):
    import io as _io
    model = files["dir"] / "m.npz"
    assert _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--task", "pos=1", "--out",
                model, "--quiet", *SMALL)[0] == 0
    text = "the dog sees Paris .\n\nSmith runs\n-DOCSTART-\na cat  sees London .\n"
    monkeypatch.setattr("sys.stdin", _io.TextIOWrapper(_io.BytesIO(text.encode())))
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", "-")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 5 and lines[1] == "" and lines[3] == "-DOCSTART-"
    assert [t.split("/")[0] for t in lines[4].split()] == ["a", "cat", "sees", "London", "."]
    m = io.load_model(model)
    pred = m.predict([["the", "dog", "sees", "Paris", "."]])          # word/NER/POS: the tasks in order
    assert [t.split("/") for t in lines[0].split()] == [list(x) for x in zip(["the", "dog", "sees", "Paris", "."],
                                                                             pred["ner"][0], pred["pos"][0])]
    # the same words as CoNLL columns get the same tags
    conll_in = files["dir"] / "c.txt"
    conll_in.write_text("".join(f"{w}\n" for w in "the dog sees Paris .".split()) + "\n")
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", conll_in)
    assert [line.split()[1:] for line in out.splitlines() if line] == \
        [t.split("/")[1:] for t in lines[0].split()] and out.endswith("\n\n")
    rc, forced, err = _run(capsys, "tagger", "predict", "--model", model, "--data", conll_in, "--format", "text")
    assert len(forced.splitlines()) == 6 and forced.splitlines()[0].startswith("the/")   # one-word sentences


def test_workers_without_an_ensemble_is_a_notice_only_when_asked_for(capsys, files):
    """--workers splits an ensemble: given with one model it says so (it was silently ignored); the chunk preset's
    workers=2 with --ensemble 1 stays silent (the user did not ask for workers)."""
    d = files["dir"]
    tiny = ["--train", files["train"], "--epochs", "1", "--embed-dim", "4", "--hidden", "4", "--batch-size", "32"]
    rc, out, err = _run(capsys, "tagger", "train", *tiny, "--task", "ner=3", "--workers", "2", "--out", d / "a.npz")
    assert rc == 0, err
    assert "--workers 2 applies to ensembles only (--ensemble K > 1)" in err
    rc, out, err = _run(capsys, "tagger", "train", *tiny, "--preset", "chunk", "--task", "chunk=2", "--ensemble", "1",
                        "--lstm-hidden", "4", "--char-dim", "0", "--out", d / "b.npz")
    assert rc == 0, err
    assert "--workers" not in err
    assert type(io.load_model(d / "b.npz")).__name__ == "WindowTagger"


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds the worker processes through Linux's /proc")
def test_a_closed_stderr_stops_the_workers_keeping_their_checkpoints(files):
    """`fastnn tagger train --ensemble 2 --workers 2 ... 2>&1 | head`: a worker's next progress line raised
    BrokenPipeError, which ended its member without a checkpoint and the command with exit 0.  Each member now stops
    as on Ctrl-C, writing its checkpoint, and the command says it was interrupted (exit >= 128, as the sequential run)."""
    import subprocess
    import sys
    d = files["dir"]
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "tagger", "train", "--train", files["train"], "--task",
                          "ner=3", "--embed-dim", "8", "--hidden", "16", "--batch-size", "16", "--ensemble", "2",
                          "--workers", "2", "--epochs", "100000", "--out", d / "e.npz", "--checkpoint", d / "ck.npz"],
                         stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not all(any(line.startswith(f"member {i}/2: epoch 2/") for line in lines) for i in (1, 2)):
            lines.append(p.stderr.readline())
            assert lines[-1], "".join(lines)
        alive = spawned_workers(p.pid)
        (d / "ck.npz").unlink()
        (d / "ck.npz.member1").unlink()
        p.stderr.close()                                 # as `| head` does
        assert p.wait(timeout=120) >= 128
    finally:
        p.kill()
    assert not workers_left(alive)
    assert (d / "ck.npz").exists() and (d / "ck.npz.member1").exists()     # written again at the stop


def test_tag_errors_name_the_line_and_the_sentence_of_their_file(capsys, tmp_path):
    """With several --train files, some without a task's column, a bad tag was named by its number among the
    sentences labelled for the task (sentence 3: neither the corpus's 6th nor the file's 1st); it is named by its
    file, line and sentence there now, as is a bad tag of --dev."""
    a = write_lines(tmp_path / "a.txt", ["John NNP B-PER", "runs VBZ O", "", "Mary NNP B-PER", ". . O", ""])
    b = write_lines(tmp_path / "b.txt", ["The DT", "dog NN", "", "A DT", "", "B DT", ""])
    c = write_lines(tmp_path / "c.txt", ["-DOCSTART- -X- O", "", "Ann NNP B-PER", "", "Bob NNP O", "Ray NNP b-per",
                                         ""])
    argv = ["tagger", "train", "--task", "ner=2", "--task", "pos=1", "--out", tmp_path / "m.npz", "--epochs", "1",
            "--quiet"]
    rc, _, err = _run(capsys, *argv, "--train", a, b, c)
    assert rc == 2 and f"line 6 of {c} (its sentence 1, token 1) has 'b-per'" in err, err
    c2 = write_lines(tmp_path / "c2.txt", ["Ann NNP B-PER", "", "Bob NNP O", "Ray NNP PER", ""])
    rc, _, err = _run(capsys, *argv, "--train", a, "--dev", c2)
    assert rc == 2 and f"got 'PER' at line 4 of {c2} (its sentence 1, token 1)" in err, err
    assert _run(capsys, *argv, "--train", a)[0] == 0
    rc, _, err = _run(capsys, "tagger", "eval", "--model", tmp_path / "m.npz", "--data", c2)
    assert rc == 2 and f"got 'PER' at line 4 of {c2} (its sentence 1, token 1)" in err, err


def test_in_files_places_sentences_in_their_files():
    from fastnn.cli.tagger import in_files
    files = [("a", [1, 4]), ("b", [3, 9, 12])]
    assert in_files("x: sentence 3, token 2 has 'q'; sentence 0 too", files) == \
        "x: line 11 of b (its sentence 1, token 2) has 'q'; line 1 of a (its sentence 0) too"
    assert in_files("sentence 5", files) == "sentence 5"            # past the files: left as it is
    assert in_files("sentence 0, token 1", files, first=3) == "line 10 of b (its sentence 1, token 1)"   # a block


def test_predict_detects_the_format_on_token_lines_not_lines(capsys, files):
    """predict's auto-detection looked at the first 1000 lines: a CoNLL file opening with more blank (or
    -DOCSTART-) lines than that was read as text, each token line tagged as a sentence of its columns.  It reads up
    to the 1000th token line now (conll.read_head, as the other readers)."""
    model = files["dir"] / "m.npz"
    assert _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", model, "--quiet",
                *SMALL)[0] == 0
    data = files["dir"] / "lead.txt"
    data.write_text("\n" * 1100 + "Paris NNP I-NP I-LOC\nsees VBZ I-VP O\n\n")
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", data)
    assert rc == 0 and "read as text" not in err, err
    lines = out.splitlines()
    assert len(lines) == 1103 and [len(x.split()) for x in lines[1100:1102]] == [5, 5], lines[1100:]


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- -X- O\n\n", "-DOCSTART-\n"])
def test_predict_on_an_input_without_a_token_line_is_one_line_exit_2_and_writes_nothing(capsys, files, text):
    """An input of no token line (empty, or only blank and -DOCSTART- lines: a wrong file, an empty pipe) was echoed,
    exit 0, and conlleval scored the echo as nothing; `tagger eval` refuses such a file, and so does predict: one
    line, exit 2, no output, an existing --out left as it was."""
    model = files["dir"] / "m.npz"
    assert _run(capsys, "tagger", "train", "--train", files["train"], "--task", "ner=3", "--out", model, "--quiet",
                "--epochs", "1", "--embed-dim", "8", "--hidden", "8")[0] == 0
    data = files["dir"] / "nothing.txt"
    data.write_text(text)
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", data)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "token line" in err and str(data) in err, err
    kept = files["dir"] / "kept.txt"
    kept.write_text("old\n")
    rc, out, err = _run(capsys, "tagger", "predict", "--model", model, "--data", data, "--out", kept)
    assert rc == 2 and kept.read_text() == "old\n"
    assert [p.name for p in files["dir"].iterdir() if p.name.startswith(".kept")] == []


@pytest.mark.parametrize("extra, says", [
    (["--task", "ner=3", "--task", "names=ner"], "already the column of --task ner"),
    (["--task", "ner=3", "--task-weight", "ner=2", "--task-weight", "ner=0.5"], "'ner' is given twice"),
    (["--task", "ner=3", "--feature", "pos=1", "--feature", "tags=pos:5"], "already the column of --feature pos")])
def test_an_option_that_says_the_same_thing_twice_is_refused(capsys, files, extra, says):
    """Two tasks on one column trained two heads on the same tags (the task counted twice), two features on one
    column read the same tags twice, and a second --task-weight of a task silently replaced the first: each is one
    line and exit 2 before any work, as a task name given twice already was."""
    rc, out, err = _run(capsys, "tagger", "train", "--train", files["train"], "--out", files["dir"] / "m.npz", *extra,
                        *SMALL)
    assert rc == 2 and says in err and len(err.splitlines()) == 1, err
    assert not (files["dir"] / "m.npz").exists()


@pytest.mark.parametrize("command, extra, says", [
    ("predict", ["--data", "{d}/missing.txt"], "no such file"),
    ("predict", ["--data", "{train}", "--out", "{d}/no/p.txt"], "no such directory"),
    ("eval", ["--data", "{d}/missing.txt"], "no such file")])
def test_predict_and_eval_check_their_files_before_loading_the_model(capsys, files, monkeypatch, command, extra, says):
    """A missing --data, or an --out in no directory, was found only after the model (an ensemble, maybe large) had
    been loaded."""
    import fastnn.cli._common

    def loading(*a, **k):
        raise AssertionError("the model was loaded before the files were checked")
    monkeypatch.setattr(fastnn.cli._common, "load_model_file", loading)
    monkeypatch.setattr("fastnn.cli.tagger.load_model_file", loading)
    argv = [a.replace("{d}", str(files["dir"])).replace("{train}", str(files["train"])) for a in extra]
    rc, out, err = _run(capsys, "tagger", command, "--model", files["dir"] / "m.npz", *argv)
    assert rc == 2 and says in err, err
