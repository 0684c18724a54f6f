"""fastnn.io: model files and checkpoints (atomic writes, allow_pickle=False, clear errors)."""
import json
import os
import zipfile

import numpy as np
import pytest

from fastnn import io, optim

from tests.test_train import Tiny


def test_model_roundtrip(tmp_path):
    path = str(tmp_path / "m.npz")
    model = Tiny(vocab=7, seed=3, dtype="float32")
    io.save_model(path, model)
    back = io.load_model(path, Tiny)
    assert back.config() == model.config()
    for n, p in model.parameters().items():
        q = back.parameters()[n]
        assert q.value.dtype == np.float32 and q.sparse == p.sparse
        np.testing.assert_array_equal(q.value, p.value)
    other = Tiny(vocab=7, seed=3, dtype="float32")
    other.W.value[...] = 0
    W = other.W.value
    io.load_params(path, other)
    assert other.W.value is W                       # loaded in place (optimizers keep their references)
    np.testing.assert_array_equal(W, model.W.value)


def test_model_file_with_extra_arrays(tmp_path):
    path = str(tmp_path / "m.npz")
    words = np.array(["<pad>", "<unk>", "the", "caf\u00e9"])
    io.save_model(path, Tiny(), extra={"words": words, "meta": {"lang": "en", "n": 4}})
    extra = io.load_extra(path)
    np.testing.assert_array_equal(extra["words"], words)
    assert extra["meta"] == {"lang": "en", "n": 4}
    assert io.load_model(path, Tiny).config() == Tiny().config()
    io.save_model(path, Tiny())
    assert io.load_extra(path) == {}


def test_file_is_plain_npz_without_pickles(tmp_path):
    path = str(tmp_path / "m.npz")
    io.save_model(path, Tiny())
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__fastnn__"]))
        assert all(z[k].dtype != object for k in z.files)
    assert header["format"] == "fastnn" and header["version"] == io.FORMAT_VERSION
    assert header["model_class"] == "tests.test_train:Tiny" and header["model_config"]["d"] == 5


def test_checkpoint_roundtrip_with_optimizer_and_state(tmp_path):
    path = str(tmp_path / "c.ckpt")
    model = Tiny(vocab=4)
    opt = optim.SGD(model.parameters(), lr=optim.HalveOnPlateau(0.1), momentum=0.9)
    for n, p in model.parameters().items():
        p.grad = np.ones_like(p.value) if not p.sparse else None
    opt.step()
    opt.observe(1.0, mode="min")
    opt.observe(2.0, mode="min")
    state = {"epoch": 3, "rng": json.dumps(np.random.default_rng(5).bit_generator.state),
             "best": {"W": np.arange(3.0)}, "hist": [{"a": 1.5, "b": None}], "big": 2 ** 100}
    io.save_checkpoint(path, model, opt, state)
    m2 = Tiny(vocab=4)
    m2.W.value[...] = 7
    o2 = optim.SGD(m2.parameters(), lr=optim.HalveOnPlateau(0.1), momentum=0.9)
    got = io.load_checkpoint(path, m2, o2)
    np.testing.assert_array_equal(got["best"]["W"], np.arange(3.0))
    assert got["epoch"] == 3 and got["hist"] == [{"a": 1.5, "b": None}] and got["big"] == 2 ** 100
    g = np.random.default_rng()
    g.bit_generator.state = json.loads(got["rng"])
    assert g.integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    assert o2.step_count == 1 and o2.lr == pytest.approx(0.05)
    np.testing.assert_array_equal(o2.state["W"]["v"], opt.state["W"]["v"])
    np.testing.assert_array_equal(m2.W.value, model.W.value)


def _saved(tmp_path):
    path = str(tmp_path / "m.npz")
    io.save_model(path, Tiny(vocab=50))
    return path


def test_truncated_file(tmp_path):
    path = _saved(tmp_path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="must be a readable fastnn .npz file; got a truncated or corrupted file"):
        io.load_model(path, Tiny)


def test_corrupted_bytes(tmp_path):
    path = _saved(tmp_path)
    with np.load(path) as z:
        n = z["param/E"].nbytes
    data = bytearray(open(path, "rb").read())
    i = data.find(np.asarray(Tiny(vocab=50).E.value).tobytes()[:16])    # inside E's array data
    assert i > 0 and n > 100
    data[i + 40] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupted file .*CRC"):
        io.load_model(path, Tiny)


def test_not_a_fastnn_file_and_missing(tmp_path):
    p = str(tmp_path / "x.npz")
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ValueError, match="must be a fastnn file .* got an .npz without one"):
        io.load_model(p, Tiny)
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_model(str(tmp_path / "nope.npz"), Tiny)
    with open(p, "w") as f:
        f.write("hello")
    with pytest.raises(ValueError, match="got a text file"):
        io.load_params(p, Tiny())


def _rewrite_header(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["__fastnn__"]))
    header.update(changes)
    arrays["__fastnn__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


def test_wrong_version(tmp_path):
    path = _saved(tmp_path)
    _rewrite_header(path, version=99)
    with pytest.raises(ValueError, match="has format version 99 but this fastnn reads version 1"):
        io.load_model(path, Tiny)


def test_damaged_header_fields_unknown_classes_and_configs(tmp_path):
    """Each was a KeyError / AttributeError / ModuleNotFoundError traceback (or a bare 'model_class' from the CLI)."""
    path = _saved(tmp_path)
    for changes, match in (({"model_class": None}, "'model_class' must be a JSON string"),
                           ({"params": [1]}, "'params' must be a JSON object"),
                           ({"model_config": "x"}, "'model_config' must be a JSON object"),
                           ({"model_class": "fastnn.nosuch:Model"}, "not a model class of this fastnn"),
                           ({"model_class": "fastnn.models.rnnlm:Nope"}, "not a model class of this fastnn"),
                           ({"model_class": "fastnn.io:save_model"}, "not a model class of this fastnn")):
        damaged = str(tmp_path / "d.npz")
        with open(path, "rb") as f, open(damaged, "wb") as g:
            g.write(f.read())
        _rewrite_header(damaged, **changes)
        with pytest.raises(ValueError, match=match):
            io.load_model(damaged)
    _rewrite_header(path, model_config={"nope": 1})
    with pytest.raises(ValueError, match="has a configuration that does not build a Tiny"):
        io.load_model(path, Tiny)
    arrays = {"__fastnn__": np.array(json.dumps([1, 2]))}
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="corrupted header"):
        io.load_model(path, Tiny)


def test_non_finite_parameters_are_refused(tmp_path):
    path = str(tmp_path / "m.npz")
    model = Tiny(vocab=50)
    model.E.value[3, 1] = np.nan                   # a damaged file: training never saves one (it stops first)
    io.save_model(path, model)
    with pytest.raises(ValueError, match="'E' in .* holds non-finite values"):
        io.load_model(path, Tiny)
    with pytest.raises(ValueError, match="non-finite"):
        io.load_params(path, Tiny(vocab=50))


def test_wrong_model_config_and_shapes(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match=r"'E' has shape \(50, 3\) in '.*' but \(40, 3\) in the model"):
        io.load_params(path, Tiny(vocab=40))
    with pytest.warns(UserWarning, match=r"config differs from the file's in \['seed'\]"):
        io.load_params(path, Tiny(vocab=50, seed=1))
    with pytest.raises(TypeError, match="'W' has dtype float64 in '.*' but float32 in the model"):
        io.load_params(path, Tiny(vocab=50, dtype="float32"))
    _rewrite_header(path, model_class="fastnn.models.nplm:NPLM")
    with pytest.raises(ValueError, match="holds a fastnn.models.nplm:NPLM but the model is a tests.test_train:Tiny"):
        io.load_params(path, Tiny(vocab=50))
    path2 = str(tmp_path / "o.npz")
    io.save_model(path2, Tiny())
    _rewrite_header(path2, model_class="mypkg.models:Thing")
    with pytest.raises(ValueError, match="outside fastnn; pass cls= to load it"):
        io.load_model(path2)


def test_checkpoint_kind_and_optimizer_checks(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="must be a checkpoint; got a model file"):
        io.load_checkpoint(path, Tiny(vocab=50))
    ck = str(tmp_path / "c.ckpt")
    model = Tiny(vocab=50)
    io.save_checkpoint(ck, model, optim.AdaGrad(model.parameters(), 0.1), {"epoch": 1})
    fresh = Tiny(vocab=50)
    fresh.W.value[...] = 3
    W = fresh.W.value.copy()
    with pytest.raises(ValueError, match="must come from a SGD; got 'AdaGrad'"):
        io.load_checkpoint(ck, fresh, optim.SGD(fresh.parameters(), 0.1))
    np.testing.assert_array_equal(fresh.W.value, W)          # nothing changed on failure


def test_a_checkpoint_is_not_a_model(tmp_path):
    """load_model built a model from a checkpoint: the last step's parameters, not the run's model (best epoch,
    average), scored without a word.  Now refused, naming the two ways on; load_params still takes them."""
    ck = str(tmp_path / "c.ckpt")
    model = Tiny(vocab=50)
    io.save_checkpoint(ck, model, optim.AdaGrad(model.parameters(), 0.1), {"epoch": 1})
    with pytest.raises(io.CheckpointGivenError, match=r"is a training checkpoint, not a model file: .* \(resume=True\)"
                                                      r" .* or load_params\("):
        io.load_model(ck)
    assert issubclass(io.CheckpointGivenError, ValueError)
    other = Tiny(vocab=50)
    io.load_params(ck, other)
    np.testing.assert_array_equal(other.W.value, model.W.value)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    before = open(path, "rb").read()

    def failing_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        io.save_model(path, Tiny(vocab=50, seed=8))
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.npz"]                  # the temp file was removed


def test_save_rejects_unstorable_state(tmp_path):
    with pytest.raises(TypeError, match="must be an array, number, string, list or dict; got object"):
        io.save_checkpoint(str(tmp_path / "c"), Tiny(), None, {"x": object()})
    with pytest.raises(TypeError, match="must be a numeric or string array; got dtype object"):
        io.save_checkpoint(str(tmp_path / "c"), Tiny(), None, {"x": np.array([None])})
    assert not os.listdir(tmp_path)
    assert zipfile  # (zip CRCs are what catch corrupted bytes)


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = tmp_path / "m.npz"
        io.atomic_write(p, lambda f: f.write(b"x"))
        assert (os.stat(p).st_mode & 0o777) == 0o644       # not the 0o600 of the temporary file
        assert [q.name for q in tmp_path.iterdir()] == ["m.npz"]
    finally:
        os.umask(old)


def test_a_failed_write_names_the_file_asked_for_not_the_temporary_one(tmp_path):
    model = Tiny(vocab=5)
    for path, error in ((tmp_path / "no" / "m.npz", FileNotFoundError), (tmp_path, IsADirectoryError)):
        with pytest.raises(error) as e:
            io.save_model(str(path), model)
        assert e.value.filename == str(path) and ".tmp" not in str(e.value)
    assert os.listdir(tmp_path) == []                  # no temporary file left behind


def test_models_pickle_and_deepcopy_to_equal_independent_models(tmp_path):
    # pickling is how an ensemble's members reach their worker processes, so every model family must round-trip:
    # the copy scores as the original and shares no parameter array with it (training it leaves the original alone)
    import copy
    import pickle

    from fastnn.models.classifiers import LogisticRegression
    from fastnn.recipes import lm
    from fastnn.recipes import tagger

    sents = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat"]] * 4
    c = lm.RNNConfig(epochs=1, hidden=4, classes=0, min_count=1, batch_size=2)
    vocab, streams = lm.prepare(c, sents, sents)
    rows = [[("John", "B-PER"), ("Smith", "I-PER"), ("ran", "O")]] * 3
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    cases = [(lm.train(c, vocab, streams, quiet=True)[0], lambda m: m.perplexity(sents)),
             (lm.train(lm.NGramConfig(min_count=1, order=2), vocab, streams)[0], lambda m: m.perplexity(sents)),
             (lm.build_model(lm.NPLMConfig(order=3, dim=2, hidden=3), len(vocab)), lambda m: m.perplexity(streams["valid"])),
             (tagger.build(tagger.TaggerConfig(tasks={"ner": 1}, hidden=3, embed_dim=2), rows),
              lambda m: m.predict([["John", "ran"]])),
             (LogisticRegression(2, n_features=3, seed=0), lambda m: m.scores(x).tolist())]
    for model, use in cases:
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert use(other) == use(model), type(model).__name__
            for name, p in getattr(model, "parameters", dict)().items():
                q = other.parameters()[name]
                assert not np.shares_memory(p.value, q.value), name
                q.value += 1
                assert not np.array_equal(p.value, q.value), name


def test_saving_something_else_than_a_model_is_a_type_error(tmp_path):
    # (the arguments swapped, or None) was an AttributeError: 'str' object has no attribute 'parameters'
    path = str(tmp_path / "m.npz")
    with pytest.raises(TypeError, match=r"save_model: 'model' must be a fastnn model .*; got str. The path comes "
                                        r"first: save_model\(path, model\)"):
        io.save_model(Tiny(), path)
    with pytest.raises(TypeError, match="save_checkpoint: 'model' must be a fastnn model .*; got NoneType.$"):
        io.save_checkpoint(path, None)
    assert not os.listdir(tmp_path)


def _write_bytes(make):
    def write(p):
        with open(p, "wb") as f:
            make(f)
    return write


@pytest.mark.parametrize("write,what", [
    (_write_bytes(lambda f: np.save(f, np.zeros(3))), r"a single NumPy array \(.npy"),
    (_write_bytes(lambda f: __import__("pickle").dump({"W": [1.0]}, f)), "a Python pickle, which fastnn never loads"),
    (_write_bytes(lambda f: f.write(b"the cat sat\n")), r"a text file \(first line 'the cat sat'\)"),
    (_write_bytes(lambda f: None), r"an empty file \(0 bytes\)"),
    (_write_bytes(lambda f: zipfile.ZipFile(f, "w").writestr("archive/data.pkl", b"x")), "a zip archive of other"),
])
def test_a_file_of_another_kind_is_named(tmp_path, write, what):
    """np.load's own errors called a text file or a pickle "pickled data" and failed in a `with` on a bare .npy."""
    p = str(tmp_path / "m.npz")
    write(p)
    with pytest.raises(ValueError, match="load_model: .* must be a readable fastnn .npz file .*; got " + what):
        io.load_model(p)


def test_a_gzipped_model_is_named_and_a_pipe_is_read(tmp_path):
    import gzip
    path = _saved(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    gz = tmp_path / "m.npz.gz"
    gz.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match=r"a gzip-compressed .npz: decompress it first \(gunzip -k\)"):
        io.load_model(gz, Tiny)
    if os.path.isdir("/proc/self/fd"):            # --model <(cat m.npz): read once, into memory
        r, w = os.pipe()
        import threading
        t = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
        t.start()
        try:
            m = io.load_model(f"/proc/self/fd/{r}", Tiny)
        finally:
            t.join()
            os.close(r)
        assert isinstance(m, Tiny)


def test_a_path_of_another_type_is_named_and_bytes_are_a_path(tmp_path):
    """A bytes path failed inside read_file as "'bytes' object has no attribute 'getvalue'", and None or an open file
    as os.fspath's message naming neither the call nor the argument; a pickled member was called "a truncated or
    corrupted file"."""
    model = Tiny()
    p = tmp_path / "m.npz"
    io.save_model(os.fsencode(p), model)
    assert io.load_model(os.fsencode(p), Tiny).config() == model.config()
    with open(p, "rb") as f:
        with pytest.raises(TypeError, match=r"load_model: 'path' must be a file path \(str or os.PathLike\); got "
                                            r"BufferedReader\. Pass the file's name: load_model\('.*m.npz', \.\.\.\)"):
            io.load_model(f, Tiny)
    for call in (lambda: io.load_model(None, Tiny), lambda: io.load_params(None, model),
                 lambda: io.save_model(None, model), lambda: io.save_checkpoint(3, model)):
        with pytest.raises(TypeError, match=r"(load_model|load_params|save_model|save_checkpoint): 'path' must be a "
                                            r"file path .* got (NoneType|int)"):
            call()
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["param/W"] = np.array([object()], dtype=object)
    np.savez(p, **arrays)
    with pytest.raises(ValueError, match=r"holding pickled Python objects .*\(allow_pickle=False"):
        io.load_model(p, Tiny)
