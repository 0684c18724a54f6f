"""`fastnn embed train/neighbors` on small synthetic text: outputs, resume, CoNLL input, the tagger taking the vectors,
and one-line errors (exit code 2)."""
import json

import numpy as np
import pytest

from fastnn.data.vectors import read_vectors, write_vectors
from tests.conftest import run_cli


_run = run_cli


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    nouns = ["Dog", "cat", "Paris", "London", "idea"]
    lines = [" ".join([str(rng.choice(["The", "a"])), str(rng.choice(nouns)), str(rng.choice(["sees", "likes"])),
                       str(rng.choice(nouns)), str(rng.integers(1, 30)), "."]) for _ in range(150)]
    text = tmp_path / "t.txt"
    text.write_text("\n".join(lines) + "\n")
    conll = ["-DOCSTART- -X- -X- O", ""]
    for line in lines[:60]:
        for w in line.split():
            ner = "I-LOC" if w in ("Paris", "London") else "O"
            conll.append(f"{w} X I-NP {ner}")
        conll.append("")
    c = tmp_path / "c.conll"
    c.write_text("\n".join(conll) + "\n")
    return {"text": str(text), "conll": str(c), "dir": tmp_path}


SMALL = ["--dim", "6", "--window", "3", "--hidden", "8", "--batch-size", "32", "--epochs", "2"]


def test_train_writes_vectors_and_json(capsys, files):
    out = files["dir"] / "v.txt"
    rc, o, err = _run(capsys, "embed", "train", "--objective", "ranking", "--text", files["text"], files["conll"],
                      "--out", out, "--json", *SMALL)
    assert rc == 0, err
    res = json.loads(o)
    assert res["objective"] == "ranking" and res["epochs"] == 2 and res["dim"] == 6 and len(res["valid"]) == 2
    assert "t.txt: text, 150 sentences" in err and "c.conll: conll, 60 sentences" in err and "epoch 2/2" in err
    words, vecs = read_vectors(out)
    assert len(words) == res["words"] and vecs.shape == (len(words), 6)
    assert "dog" in words and "Dog" not in words and "paris" in words and "00" in words and "-DOCSTART-" not in words


@pytest.mark.parametrize("objective,opts", [("nplm", ["--order", "3"]), ("rnn", ["--classes", "3",
                                                                               "--bptt-block", "5"])])
def test_train_language_model_objectives(capsys, files, objective, opts):
    out = files["dir"] / "v.txt"
    rc, o, err = _run(capsys, "embed", "train", "--objective", objective, "--text", files["text"], "--out", out,
                      "--dim", "5", "--hidden", "6", "--epochs", "1", "--batch-size", "8", "--quiet", *opts)
    assert rc == 0, err
    assert o == "" and err == ""                     # --quiet
    words, vecs = read_vectors(out)
    assert vecs.shape[1] == 5 and "</s>" in words and "cat" in words


def test_resume_gives_the_same_vectors(capsys, files):
    d = files["dir"]
    base = ["embed", "train", "--objective", "ranking", "--text", files["text"], "--quiet", *SMALL[:-2]]
    assert _run(capsys, *base, "--epochs", "3", "--out", d / "full.txt")[0] == 0
    assert _run(capsys, *base, "--epochs", "1", "--out", d / "part.txt", "--checkpoint", d / "ck")[0] == 0
    rc, _, err = _run(capsys, *base, "--epochs", "3", "--out", d / "resumed.txt", "--checkpoint", d / "ck",
                      "--resume")
    assert rc == 0, err
    assert (d / "resumed.txt").read_text() == (d / "full.txt").read_text()
    # another text, another vocabulary: refused in one line
    rc, _, err = _run(capsys, "embed", "train", "--objective", "ranking", "--text", files["conll"], *SMALL,
                      "--out", d / "x.txt", "--checkpoint", d / "ck", "--resume", "--quiet")
    assert rc == 2 and err.count("\n") == 1 and "another vocabulary" in err
    # other options: the new one was taken with the old state, silently; now named
    rc, _, err = _run(capsys, *base, "--epochs", "3", "--out", d / "x.txt", "--checkpoint", d / "ck", "--resume",
                      "--lr", "0.3")
    assert rc == 2 and err.count("\n") == 1 and "a run with --lr" in err and "this run has 0.3" in err, err
    # --scale-std only rescales the result: it may change
    assert _run(capsys, *base, "--epochs", "3", "--out", d / "x.txt", "--checkpoint", d / "ck", "--resume",
                "--scale-std", "0.5")[0] == 0


def test_scale_std(capsys, files):
    out = files["dir"] / "v.txt"
    rc, o, err = _run(capsys, "embed", "train", "--objective", "ranking", "--text", files["text"], "--out", out,
                      "--scale-std", "0.1", "--json", *SMALL)
    assert rc == 0 and json.loads(o)["vector_std"] == pytest.approx(0.1, abs=1e-4)
    assert read_vectors(out)[1].std() == pytest.approx(0.1, rel=1e-4)


def test_tagger_trains_from_the_vectors(capsys, files):
    vec = files["dir"] / "v.txt"
    assert _run(capsys, "embed", "train", "--objective", "ranking", "--text", files["text"], "--out", vec,
                "--quiet", *SMALL)[0] == 0
    for freeze in ([], ["--freeze-embeddings"]):
        rc, _, err = _run(capsys, "tagger", "train", "--train", files["conll"], "--task", "ner=3", "--out",
                          files["dir"] / "m.npz", "--pretrained", vec, "--extend-vocab", "--epochs", "1",
                          "--hidden", "8", *freeze)
        assert rc == 0, err
        n, total = [int(x) for x in err.split("pretrained vectors for ")[1].split(" words")[0].split(" of ")]
        assert n == total                               # every word of the tagger's vocabulary has a vector


def _vectors(tmp_path):
    p = tmp_path / "hand.txt"
    write_vectors(p, ["france", "spain", "italy", "jesus", "god", "0000"],
                  np.array([[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.3, 0], [0, 0, 1], [0, 0.2, 1], [0, 1, 0]]))
    return p


def test_neighbors_table_and_json(capsys, tmp_path):
    p = _vectors(tmp_path)
    rc, out, err = _run(capsys, "embed", "neighbors", "--vectors", p, "France", "jesus", "-k", "2")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["France", "jesus"] and set(lines[1]) <= {"-", " "}
    assert lines[2].split()[0] == "spain" and lines[2].split()[2] == "god"
    assert lines[3].split()[0] == "italy"
    rc, out, _ = _run(capsys, "embed", "neighbors", "--vectors", p, "1996", "-k", "1", "--json")
    res = json.loads(out)
    assert list(res) == ["1996"] and res["1996"][0][0] == "italy"


@pytest.mark.parametrize("argv,msg", [
    (["train", "--objective", "ranking", "--text", "{dir}/nope.txt", "--out", "{dir}/v.txt"], "no such file"),
    (["train", "--objective", "ranking", "--text", "{text}", "--out", "{dir}/v.txt", "--window", "4"],
     "--window must be an odd number"),
    (["train", "--objective", "nplm", "--text", "{text}", "--out", "{dir}/v.txt", "--window", "5"],
     "--window does not apply to --objective nplm"),
    (["train", "--objective", "ranking", "--text", "{text}", "--out", "{dir}/v.txt", "--resume"],
     "--resume needs --checkpoint"),
    (["train", "--objective", "ranking", "--text", "{text}", "--out", "{dir}/v.txt", "--dim", "0"],
     "--dim must be >= 1"),
    (["train", "--objective", "ranking", "--text", "{empty}", "--out", "{dir}/v.txt"], "holds no token"),
    # (the corpus report came first: its counts are what --min-count is checked on, so it now waits for the check)
    (["train", "--objective", "rnn", "--text", "{text}", "--out", "{dir}/v.txt", "--min-count", "1000"],
     "--min-count 1000 leaves no word"),
    (["train", "--objective", "ranking", "--text", "{text}", "--out", "{dir}/no/such/dir/v.txt", "--epochs", "1",
      "--dim", "2", "--hidden", "2", "--quiet"], "no such directory"),
    (["neighbors", "--vectors", "{hand}", "xbox", "france"], "not in"),
    (["neighbors", "--vectors", "{bad}", "france"], "line 2"),
    (["neighbors", "--vectors", "{hand}", "france", "-k", "0"], "-k must be >= 1; got 0"),
])
def test_errors_are_one_line_exit_2(capsys, files, argv, msg):
    d = files["dir"]
    (d / "empty.txt").write_text("\n\n")
    (d / "bad.txt").write_text("2 3\nfrance 1 2\n")
    subs = {"dir": str(d), "text": files["text"], "empty": str(d / "empty.txt"), "hand": str(_vectors(d)),
            "bad": str(d / "bad.txt")}
    rc, out, err = _run(capsys, "embed", *[a.format(**subs) for a in argv])
    assert rc == 2 and err.count("\n") == 1 and msg in err, err
    assert "Traceback" not in err


def test_neighbors_reads_the_word_vectors_of_a_model_file(capsys, files):
    """embed neighbors read only text vectors: a tagger's model file (or embed train --save-model's) could not be
    looked into.  It takes a model file now (an ensemble's first member, said on stderr) and says which files have no
    word vectors."""
    from fastnn import io
    from fastnn.data.conll import read_conll
    from fastnn.embed import model_vectors, nearest_neighbors
    from fastnn.models.ngram import KneserNey
    from fastnn.recipes.tagger import TaggerConfig, build

    sents = read_conll(files["conll"])
    for k, name in ((1, "tagger.npz"), (2, "ensemble.model")):      # (a model file is told by its bytes too)
        tagger = build(TaggerConfig(tasks={"ner": 3}, embed_dim=6, hidden=8, ensemble=k), sents)
        io.save_model(files["dir"] / name, tagger)
        rc, out, err = _run(capsys, "embed", "neighbors", "--vectors", files["dir"] / name, "Paris", "-k", "2",
                            "--json")
        assert rc == 0, err
        first = tagger if k == 1 else tagger.members[0]
        words, vecs = model_vectors(first)
        assert words[:2] == ["<pad>", "<unk>"] and vecs.shape == (len(words), 6)
        want = nearest_neighbors(words, vecs, ["Paris"], k=2)["Paris"]
        assert json.loads(out) == {"Paris": [[w, round(s, 4)] for w, s in want]}
        assert ("ensemble of 2 taggers; the word vectors of its first member" in err) == (k == 2), err
    with pytest.raises(ValueError, match="pass one member, e.g. model_vectors\\(model.members\\[0\\]\\)"):
        model_vectors(tagger)
    with pytest.warns(RuntimeWarning, match="counts-of-counts"):          # (too little data for its discounts)
        kn = KneserNey(2, words=["<unk>", "</s>", "a"]).fit(np.array([2, 1, 2, 2, 1]), 3, 1)
    io.save_model(files["dir"] / "kn.npz", kn)
    rc, _, err = _run(capsys, "embed", "neighbors", "--vectors", files["dir"] / "kn.npz", "a")
    assert rc == 2 and "holds a KneserNey, which has no word vectors" in err and len(err.splitlines()) == 1, err
    np.savez(files["dir"] / "arrays.npz", x=np.zeros(3))
    rc, _, err = _run(capsys, "embed", "neighbors", "--vectors", files["dir"] / "arrays.npz", "a")
    assert rc == 2 and "must be a fastnn file" in err and len(err.splitlines()) == 1, err


def test_a_bad_k_is_refused_before_the_vectors_are_read(capsys, tmp_path, monkeypatch):
    """-k 0 was refused by nearest_neighbors, after the vectors file (a GloVe file: a minute) had been read."""
    import fastnn.data.vectors

    def reading(*a, **k):
        raise AssertionError("the vectors were read before -k was checked")
    monkeypatch.setattr(fastnn.data.vectors, "read_vectors", reading)
    vecs = tmp_path / "v.txt"
    vecs.write_text("a 1 2\nb 3 4\n")
    rc, out, err = _run(capsys, "embed", "neighbors", "--vectors", vecs, "-k", "0", "a")
    assert rc == 2 and "-k must be >= 1; got 0" in err, err


def test_checkpoint_every_without_a_checkpoint_is_refused(capsys, files):
    """--checkpoint-every N without --checkpoint was ignored (no checkpoint written), silently, as was pretrain's
    checkpoint_every without a checkpoint; a bad N was named as pretrain's argument, after the text was read."""
    from fastnn.recipes import embed as recipe
    d = files["dir"]
    base = ["embed", "train", "--objective", "ranking", "--text", files["text"], "--quiet", *SMALL, "--out",
            d / "v.txt"]
    rc, _, err = _run(capsys, *base, "--checkpoint-every", "5")
    assert rc == 2 and "--checkpoint-every needs --checkpoint PATH" in err, err
    rc, _, err = _run(capsys, *base, "--checkpoint-every", "0", "--checkpoint", d / "ck")
    assert rc == 2 and "--checkpoint-every must be >= 1; got 0" in err, err
    assert _run(capsys, *base, "--checkpoint", d / "ck")[0] == 0 and (d / "ck").exists()   # the default applies
    with pytest.raises(ValueError, match="'checkpoint_every' needs a 'checkpoint' path"):
        recipe.pretrain("ranking", [["a", "b", "c"]] * 20, checkpoint_every=5, quiet=True, epochs=1, window=3,
                        min_count=1)
