"""fastnn.recipes.tagger: the Config is the one home of the tagger's defaults (the model's constructor has none of
its own, the CLI's help shows them), presets apply under explicit values, bad values fail naming the field."""
import copy
import dataclasses
import inspect
import os
import pickle

import numpy as np
import pytest

import fastnn
from fastnn.cli import build_parser, main
from fastnn.models.tagger import WindowTagger
from fastnn.recipes import tagger as recipe


def _sentences(n=30, seed=0):
    rng = np.random.default_rng(seed)
    words = [("the", "DT", "B-NP"), ("dog", "NN", "I-NP"), ("runs", "VBZ", "B-VP"), ("Paris", "NNP", "B-NP")]
    return [[words[i] for i in rng.integers(0, 4, size=int(rng.integers(2, 6)))] for _ in range(n)]


def test_a_min_count_no_word_reaches_is_refused():
    with pytest.raises(ValueError, match="'min_count' 1000 leaves no word"):     # was: a tagger of <pad> and <unk>
        recipe.build(recipe.TaggerConfig(tasks={"chunk": 2}, min_count=1000), _sentences())


def test_the_chunk_preset_from_python_with_plain_tokens_and_unseen_pos_tags():
    """from_preset("chunk") reads the POS column as an input: plain token lists are an IndexError saying which column
    is missing (was "sentence 1 ... has 1 columns", numbered from 1 unlike every other message); POS tags never seen
    in training are read as <unk> and counted, and check_dev says so."""
    config = recipe.from_preset("chunk", epochs=1, ensemble=2, workers=1, lstm_hidden=4, hidden=4, char_dim=0)
    train = _sentences()
    model, _ = recipe.train(config, train, quiet=True)
    with pytest.raises(IndexError, match=r"feature 'pos' reads column 1 as an input, but sentence 0 has 1 "
                                         r"column: \[\('The',\), \('dog',\)\]\. Give every token that column"):
        model.predict([["The", "dog"]])
    odd = [[("the", "DT", "B-NP"), ("dog", "XX", "I-NP"), ("runs", "YY", "B-VP")]]
    assert model.unseen_features(odd) == {"pos": {"column": 1, "n_tokens": 3, "unseen_tokens": 2,
                                                  "unseen_values": ["XX", "YY"], "unseen_counts": {"XX": 1, "YY": 1},
                                                  "values_of": None}}
    assert model.predict(odd)["chunk"][0][0] in ("B-NP", "I-NP", "B-VP")
    notice = recipe.check_dev(model, odd)
    assert "pos (column 1): 2 of 3 tokens (XX, YY); most are unseen: is column 1 the pos column" in notice, notice
    assert recipe.check_dev(model, train) is None


def test_an_interrupted_ensemble_says_where_its_checkpoints_are(tmp_path, monkeypatch):
    """Its members' trainers are quiet about resuming (each caller says it its way): the ensemble's message names the
    checkpoints and resume=True (a member's "resume with fit(resume=True)" was the only word on it)."""
    import signal

    from fastnn.train import Trainer
    real = Trainer._train_step

    def step(self, batch):
        os.kill(os.getpid(), signal.SIGINT)          # handled by the trainer: this step finishes first
        return real(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", step)
    config = recipe.TaggerConfig(tasks={"chunk": 2}, ensemble=2, workers=1, epochs=1, hidden=4, embed_dim=4)
    ck = str(tmp_path / "ck.npz")
    with pytest.raises(KeyboardInterrupt, match=r"in member 1 of 2: an ensemble is written only when all its members "
                                                rf"are trained; checkpoints written to {ck} and its \.member<k> "
                                                r"files: resume=True with the same checkpoint continues the "
                                                r"run") as info:
        recipe.train(config, _sentences(), checkpoint=ck, quiet=True)
    assert os.path.exists(ck)
    assert info.value.checkpoint == ck and info.value.message.endswith(f"checkpoints written to {ck} and its "
                                                                       ".member<k> files")    # for the CLI's words


def test_the_constructor_leaves_the_defaults_to_the_config():
    sig = inspect.signature(WindowTagger.__init__).parameters
    shared = [f.name for f in dataclasses.fields(recipe.TaggerConfig) if f.name in sig]
    assert len(shared) >= 15 and all(sig[name].default is inspect.Parameter.empty for name in shared)
    model = recipe.build(recipe.TaggerConfig(tasks={"chunk": 2}), _sentences())
    assert {k: model.config()[k] for k in ("window", "embed_dim", "hidden", "loss", "lowercase")} == dict(
        window=5, embed_dim=recipe.DEFAULT_EMBED_DIM, hidden=300, loss="sentence", lowercase=True)


def test_every_field_has_help_and_the_cli_shows_its_default(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["tagger", "train", "-h"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(recipe.TaggerConfig):
        assert f.metadata["help"]
        if f.metadata.get("cli", True):
            assert "--" + f.name.replace("_", "-") in text, f.name
    assert "--hidden HIDDEN hidden units (default 300)" in text
    assert "--lr LR learning rate (default 0.05)" in text
    assert "--clip-norm CLIP_NORM clip the global gradient norm (0: off) (default 0.0)" in text     # the LM's words


def test_preset_then_explicit_values(monkeypatch):
    monkeypatch.setitem(recipe.PRESETS, "tiny", {"hidden": 7, "epochs": 2})
    c = recipe.from_preset("tiny", epochs=3)
    assert (c.hidden, c.epochs, c.lr) == (7, 3, recipe.TaggerConfig().lr)
    with pytest.raises(ValueError, match="'preset' must be one of .*tiny.*; got 'nope'\\.$"):
        recipe.from_preset("nope")
    for typo, meant in (("chnk", "chunk"), ("CHUNK", "chunk"), ("tiny ", "tiny")):     # was: no hint
        with pytest.raises(ValueError, match=f"got {typo!r}. Did you mean '{meant}'"):
            recipe.from_preset(typo)


@pytest.mark.parametrize("values, match", [
    (dict(epochs=0), "'epochs' must be >= 1"), (dict(window=4), "'window' must be an odd"),
    (dict(lr=0.0), "'lr' must be > 0"), (dict(dropout=1.0), r"'dropout' must be in \[0, 1\)"),
    (dict(loss="crf"), "'loss' must be one of word, sentence"), (dict(freeze_embeddings=True), "'pretrained'"),
    (dict(prefix_len=(1, 1)), "distinct"), (dict(clip_norm=-1.0), "'clip_norm' must be >= 0"),
    (dict(warmup=-2), "'warmup' must be >= 0"), (dict(tasks={"ner": 3}, task_weights={"pos": 1.0}), "'task_weights'"),
    (dict(workers=0), "'workers' must be >= 1"),
])
def test_bad_values_name_the_field(values, match):
    with pytest.raises(ValueError, match=match):
        recipe.TaggerConfig(**values)
    with pytest.raises(TypeError, match="'hidden' must be an integer"):
        recipe.TaggerConfig(hidden=2.5)
    with pytest.raises(TypeError, match="'workers' must be an integer"):
        recipe.TaggerConfig(workers=1.5)


def _ensemble_config(**values):
    return recipe.TaggerConfig(tasks={"chunk": 2}, epochs=2, hidden=8, embed_dim=6, batch_size=16, lr=0.1,
                               ensemble=2, seed=1, **values)


def test_workers_train_the_members_of_one_at_a_time():
    """Each member is seeded alone and trained with one kernel thread in its worker: workers=2 gives the very models
    (parameters, dropout Generators, predictions, histories) of workers=1."""
    from fastnn.train import model_generators
    train, dev = _sentences(), _sentences(10, seed=1)
    (one, fit1), (two, fit2) = (recipe.train(_ensemble_config(workers=w, dropout=0.2), train, dev, quiet=True)
                                for w in (1, 2))
    for (n, p), (n2, q) in zip(one.parameters().items(), two.parameters().items()):
        assert n == n2
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)
    for a, b in zip(one.members, two.members):
        gens = model_generators(b)
        assert gens and all(g.bit_generator.state == gens[k].bit_generator.state
                            for k, g in model_generators(a).items())
    assert one.predict(dev) == two.predict(dev) and fit1.best_score == fit2.best_score
    assert isinstance(fit2.trainers[0], recipe.MemberFit) and fit2.best_epoch == fit1.best_epoch
    drop = (lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h])
    assert drop(fit1.history) == drop(fit2.history) and [r["member"] for r in fit2.history] == [0, 0, 1, 1]


def test_workers_refuse_a_callback_and_pass_on_a_member_failure(tmp_path):
    train = _sentences()
    model = recipe.build(_ensemble_config(), train)
    with pytest.raises(ValueError, match="'callback' cannot be called from the worker processes"):
        recipe.fit(model, train, None, _ensemble_config(workers=2), callback=lambda t, r: None)
    with pytest.raises(ValueError, match="nothing to resume"):
        recipe.fit(model, train, None, _ensemble_config(workers=2), checkpoint=tmp_path / "none.npz", resume=True)
    with pytest.raises(OSError):                    # raised in a worker (a checkpoint it cannot write), then here
        recipe.fit(model, train, None, _ensemble_config(workers=2), checkpoint=tmp_path / "no" / "ck.npz")


def test_workers_from_an_unguarded_script_say_what_to_do(tmp_path):
    # Spawned workers import the main script again: one that trains at its top level breaks the pool, which must
    # come back as an error naming the `if __name__ == "__main__":` guard (was BrokenProcessPool, "terminated
    # abruptly").
    import subprocess
    import sys
    script = tmp_path / "unguarded.py"
    script.write_text("from fastnn.recipes import tagger as recipe\n"
                      "sents = [[('John', 'B-PER'), ('lives', 'O'), ('in', 'O'), ('Paris', 'B-LOC')]] * 10\n"
                      "config = recipe.TaggerConfig(tasks={'ner': 1}, epochs=1, ensemble=2, workers=2, hidden=4, "
                      "embed_dim=4)\n"
                      "recipe.train(config, sents, quiet=True)\n")
    home = os.path.dirname(os.path.dirname(fastnn.__file__))       # the fastnn under test, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [home, os.environ.get("PYTHONPATH")] if p))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert "RuntimeError: fit: a worker process of workers=2 ended abruptly" in done.stderr, done.stderr
    assert 'if __name__ == "__main__":' in done.stderr


def test_train_builds_and_fits_from_the_config():
    train, dev = _sentences(), _sentences(10, seed=1)
    config = recipe.TaggerConfig(tasks={"chunk": 2}, epochs=2, hidden=8, embed_dim=6, batch_size=16, lr=0.1)
    model, trainer = recipe.train(config, train, dev, quiet=True)
    assert 8 in model.hidden.W.value.shape and model.embed.W.value.shape[1] == 6
    assert len(trainer.history) == 2 and trainer.best_score is not None
    again, _ = recipe.train(config, train, dev, quiet=True)       # seeded: the same run twice
    for (n, p), (_, q) in zip(model.parameters().items(), again.parameters().items()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)


def test_clip_norm_and_warmup_reach_the_trainer():
    train = _sentences()
    config = recipe.TaggerConfig(tasks={"chunk": 2}, epochs=1, hidden=8, embed_dim=6, batch_size=16, lr=0.1)
    plain, t0 = recipe.train(config, train, quiet=True)
    assert t0.clip_norm is None and t0.optimizer.lr == 0.1            # both off by default
    clipped, t1 = recipe.train(dataclasses.replace(config, clip_norm=1e-3), train, quiet=True)
    assert t1.clip_norm == 1e-3
    warm, t2 = recipe.train(dataclasses.replace(config, warmup=4), train, quiet=True)
    lr = t2.optimizer.hyper("lr")
    np.testing.assert_allclose([lr(s) for s in range(6)], [0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    for other in (clipped, warm):               # the same seed, data and order: only the steps differ
        assert not np.array_equal(plain.hidden.W.value, other.hidden.W.value)


def test_check_dev_names_unseen_tags_and_refuses_what_cannot_be_scored():
    train = _sentences()
    config = recipe.TaggerConfig(tasks={"chunk": 2}, features={"pos": (1, 4)}, epochs=1, hidden=8, embed_dim=6)
    model = recipe.build(config, train)
    assert recipe.check_dev(model, train) is None
    dev = [[("the", "DT", "B-NP"), ("list", "LS", "B-LST")]] + _sentences(5, seed=1)
    assert recipe.check_dev(model, dev) == ("dev tags the training data never had, scored as errors: chunk: 1 tokens "
                                            "(B-LST); feature values the training data never had, read as <unk>: "
                                            "pos (column 1): 1 of 19 tokens (LS)")
    trained, trainer = recipe.train(config, train, dev, quiet=True)          # picks its epoch on such a file
    assert trainer.best_score == trained.score(dev) < 100.0
    with pytest.raises(IndexError, match="feature 'pos' reads column 1"):
        recipe.check_dev(model, [[("the",)]])
    with pytest.raises(IndexError, match="task 'chunk' reads column 2"):
        recipe.check_dev(model, [[("the", "DT")]])
    with pytest.raises(ValueError, match="must hold chunk tags"):
        recipe.check_dev(model, [[("the", "DT", "NP")]])


def test_halve_lr_halves_after_each_epoch_without_a_better_dev_score():
    train, dev = _sentences(), _sentences(10, seed=1)
    config = recipe.TaggerConfig(tasks={"chunk": 2}, epochs=4, hidden=8, embed_dim=6, batch_size=16, lr=0.1,
                                 halve_lr=True)
    _, trainer = recipe.train(config, train, dev, quiet=True)
    stalls = np.cumsum([not h["best"] for h in trainer.history])
    assert stalls[-1] >= 1                  # this data is learnt at once, so some later epoch does not improve
    np.testing.assert_allclose([h["lr"] for h in trainer.history], 0.1 * 0.5 ** stalls)
    _, plain = recipe.train(dataclasses.replace(config, halve_lr=False), train, dev, quiet=True)
    assert [h["lr"] for h in plain.history] == [0.1] * 4


def test_cli_preset_is_overridden_by_flags(tmp_path, capsys, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text("\n\n".join("\n".join(" ".join(r) for r in s) for s in _sentences()) + "\n")
    monkeypatch.setitem(recipe.PRESETS, "tiny", {"hidden": 7, "epochs": 5, "embed_dim": 4})
    rc = main(["tagger", "train", "--train", str(path), "--task", "chunk=2", "--out", str(tmp_path / "m.npz"),
               "--preset", "tiny", "--epochs", "1", "--quiet"])
    assert rc == 0
    from fastnn import io
    m = io.load_model(str(tmp_path / "m.npz"))
    assert m.embed.W.value.shape[1] == 4
    rc = main(["tagger", "train", "--train", str(path), "--task", "chunk=2", "--out", str(tmp_path / "m.npz"),
               "--preset", "nope"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--preset must be one of" in err and "tiny" in err
    rc = main(["tagger", "train", "--train", str(path), "--task", "chunk=2", "--out", str(tmp_path / "m.npz"),
               "--preset", "chnk"])
    assert rc == 2 and "--preset must be one of pos, chunk, ner, tiny; got 'chnk'. Did you mean 'chunk'?" in \
        capsys.readouterr().err


@pytest.mark.parametrize("name, task, features", [("pos", {"pos": 1}, set()), ("chunk", {"chunk": 2}, {"pos"}),
                                                  ("ner", {"ner": 3}, {"pos", "chunk"})])
def test_task_presets_are_valid_configs_with_their_columns(name, task, features):
    c = recipe.from_preset(name)
    assert c.tasks == task and set(c.features) == features
    assert c != recipe.TaggerConfig() and recipe.from_preset(name, hidden=7).hidden == 7
    for col, dim in c.features.values():
        assert 1 <= col < min(task.values()) + 2 and dim >= 1


def test_the_plain_default_is_not_a_preset():
    assert recipe.TaggerConfig().features == {} and recipe.TaggerConfig().tasks == {}
    assert not recipe.TaggerConfig().average and not recipe.TaggerConfig().keep_case


def test_cli_preset_features_unless_feature_is_given(tmp_path, monkeypatch):
    from fastnn import io
    path = tmp_path / "t.txt"
    path.write_text("\n\n".join("\n".join(" ".join(r) for r in s) for s in _sentences()) + "\n")
    monkeypatch.setitem(recipe.PRESETS, "tiny", {"tasks": {"chunk": 2}, "features": {"pos": (1, 3)}, "hidden": 7,
                                                 "embed_dim": 4, "epochs": 1})
    base = ["tagger", "train", "--train", str(path), "--task", "chunk=2", "--preset", "tiny", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "a.npz")]) == 0
    cols = io.load_model(str(tmp_path / "a.npz")).columns
    assert [(c["name"], c["column"], c["dim"]) for c in cols] == [("pos", 1, 3)]
    assert main(base + ["--out", str(tmp_path / "b.npz"), "--feature", "tag=1:2"]) == 0
    cols = io.load_model(str(tmp_path / "b.npz")).columns
    assert [(c["name"], c["column"], c["dim"]) for c in cols] == [("tag", 1, 2)]


def test_train_and_fit_read_generators_once_and_skip_empty_sentences():
    # build's vocabularies and fit's batches both read `train`, and dev is scored every epoch: a generator used to
    # leave fit nothing (a nan loss, no error) and dev empty; an empty sentence was an IndexError from a list
    train, dev = _sentences(), _sentences(10, seed=1)
    config = recipe.TaggerConfig(tasks={"chunk": 2}, epochs=2, hidden=8, embed_dim=6, batch_size=16, seed=3)
    model, trainer = recipe.train(config, train, dev, quiet=True)
    g_model, g_trainer = recipe.train(config, (s for s in train), iter([[]] + dev), quiet=True)
    assert [h["train_loss"] for h in g_trainer.history] == [h["train_loss"] for h in trainer.history]
    assert [h["valid"] for h in g_trainer.history] == [h["valid"] for h in trainer.history]
    e_model, e_trainer = recipe.train(config, [[]] + train + [[]], dev, quiet=True)
    for (n, p), (_, q) in zip(model.parameters().items(), e_model.parameters().items()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)
    fitted = recipe.fit(recipe.build(config, train), iter(train), iter(dev), config, quiet=True)
    assert [h["valid"] for h in fitted.history] == [h["valid"] for h in trainer.history]


def test_config_misspelt_or_mistyped_fields_say_so():
    for make in (lambda: recipe.TaggerConfig(epoch=3), lambda: recipe.from_preset("ner", epoch=3),
                 lambda: dataclasses.replace(recipe.TaggerConfig(), epoch=3)):
        with pytest.raises(TypeError, match="'epoch' is not a field; did you mean 'epochs'"):
            make()
    with pytest.raises(TypeError, match="'zzz' is not a field. The fields are tasks, features"):
        recipe.TaggerConfig(zzz=1)
    # a switch given a string was read by its truth: keep_case="no" kept the case
    with pytest.raises(TypeError, match="'keep_case' must be True or False; got 'no'"):
        recipe.TaggerConfig(keep_case="no")
    assert recipe.TaggerConfig(average=np.bool_(True)).average is True
    with pytest.raises(TypeError, match="'weight_decay' must be a real number"):
        recipe.TaggerConfig(weight_decay="1e-4")
    from fastnn.recipes import lm
    model = recipe.build(recipe.TaggerConfig(tasks={"chunk": 2}, hidden=4), _sentences())
    with pytest.raises(TypeError, match="'config' must be a TaggerConfig; got RNNConfig"):
        recipe.fit(model, _sentences(), None, lm.RNNConfig())
    with pytest.raises(TypeError, match="'model' must be a WindowTagger or TaggerEnsemble .*; got RNNLM"):
        recipe.fit(lm.build_model(lm.RNNConfig(hidden=4, classes=0), 10), _sentences())
    config = recipe.TaggerConfig(tasks={"chunk": 2})
    assert copy.deepcopy(config) == config == pickle.loads(pickle.dumps(config))


def test_a_field_set_after_the_config_was_made_is_checked_by_build():
    config = recipe.TaggerConfig(tasks={"chunk": 2}, hidden=4)
    config.keep_case = "no"                         # build read it by its truth: the case kept (fit checked it)
    for make in (lambda: recipe.build(config, _sentences()), lambda: recipe.train(config, _sentences(), quiet=True)):
        with pytest.raises(TypeError, match="TaggerConfig: 'keep_case' must be True or False; got 'no'"):
            make()


def test_cli_a_switch_a_preset_turns_on_can_be_turned_off(tmp_path, monkeypatch):
    """Every switch of a Config is --name / --no-name: the chunk preset's keep_case had no way off from the command
    line (store_true only), so 'explicit flags override a preset' held for every option but the switches."""
    path = tmp_path / "t.txt"
    path.write_text("\n\n".join("\n".join(" ".join(r) for r in s) for s in _sentences()) + "\n")
    monkeypatch.setitem(recipe.PRESETS, "tiny", {"hidden": 7, "epochs": 1, "embed_dim": 4, "keep_case": True})
    from fastnn import io
    for flag, lowercase in (("--no-keep-case", True), ("--keep-case", False)):
        rc = main(["tagger", "train", "--train", str(path), "--task", "chunk=2", "--out", str(tmp_path / "m.npz"),
                   "--preset", "tiny", flag, "--quiet"])
        assert rc == 0
        assert io.load_model(str(tmp_path / "m.npz")).config()["lowercase"] is lowercase, flag


def test_a_feature_column_holding_another_columns_tags_is_named():
    """A NER model reading the POS and chunk columns, given a file without the chunk column (word POS NER): the NER
    tags stood in the chunk column, read as <unk> chunk tags on a fifth of the tokens (the Os are chunk tags too),
    under the 'most are unseen' bar: predict said only that a few values were unseen.  The notice now says they are
    the NER task's tags and asks whether column 2 is the chunk column."""
    rows = [[("John", "NNP", "I-NP", "I-PER"), ("saw", "VBD", "I-VP", "O"), ("the", "DT", "I-NP", "O"),
             ("big", "JJ", "I-NP", "O"), ("red", "JJ", "I-NP", "O"), ("dog", "NN", "I-NP", "O"),
             (".", ".", "O", "O")]] * 4
    model = recipe.build(recipe.TaggerConfig(tasks={"ner": 3}, features={"pos": (1, 3), "chunk": (2, 3)}), rows)
    no_chunk = [[(w, p, n) for w, p, _, n in s] for s in rows]
    u = model.unseen_features(no_chunk)
    assert (u["chunk"]["unseen_values"], u["chunk"]["values_of"], u["pos"]["values_of"]) == (["I-PER"], "task 'ner'",
                                                                                            None)
    notice = recipe.feature_notice(u)
    assert "chunk (column 2): 4 of 28 tokens (I-PER: values of task 'ner'); is column 2 the chunk column" in notice, \
        notice
    assert recipe.feature_notice(model.unseen_features(rows)) is None


def test_fit_refuses_an_override_of_what_the_model_was_built_with():
    """fit(model, sents, hidden=500) trained the model's own 4 hidden units, and tasks=, keep_case=, dropout= ...
    were ignored the same way, silently: they are build()'s; the training options still work."""
    model = recipe.build(recipe.TaggerConfig(tasks={"chunk": 2}, hidden=4), _sentences())
    for name, value in (("hidden", 500), ("tasks", {"pos": 1}), ("keep_case", True), ("dropout", 0.5)):
        with pytest.raises(TypeError, match=f"fit: '{name}' is set when the model is built .*; fit's options are "
                                            f"the training ones \\(epochs, lr, "):
            recipe.fit(model, _sentences(), quiet=True, **{name: value})
    assert len(recipe.fit(model, _sentences(), epochs=2, lr=0.1, quiet=True).history) == 2


def test_fit_trains_as_many_models_as_the_model_has():
    """A single model given ensemble=3 (or a preset's config of 3) trained one model, silently; a saved ensemble
    loaded and trained on without a config was refused ('ensemble' must be ... (2); got 1): it trains as its own 2."""
    config = recipe.TaggerConfig(tasks={"chunk": 2}, hidden=4, epochs=1)
    single = recipe.build(config, _sentences())
    with pytest.raises(ValueError, match=r"'ensemble' must be the model's number of members \(1\); got 3"):
        recipe.fit(single, _sentences(), quiet=True, ensemble=3)
    with pytest.raises(ValueError, match=r"'ensemble' must be the model's number of members \(1\); got 3"):
        recipe.fit(single, _sentences(), None, dataclasses.replace(config, ensemble=3), quiet=True)
    pair = recipe.build(dataclasses.replace(config, ensemble=2), _sentences())
    with pytest.raises(ValueError, match=r"'ensemble' must be the model's number of members \(2\); got 1"):
        recipe.fit(pair, _sentences(), None, config, quiet=True)
    fitted = recipe.fit(pair, _sentences(), _sentences(5, seed=1), epochs=1, quiet=True)
    assert len(fitted.trainers) == 2


def test_dev_score_options_without_dev_are_refused():
    """patience and halve_lr act on the dev score: without dev sentences both were ignored, silently (no early stop,
    a constant rate); fit says so, and `tagger train` before reading its data (one line naming the option)."""
    model = recipe.build(recipe.TaggerConfig(tasks={"chunk": 2}, hidden=4), _sentences())
    for name, value in (("patience", 0), ("halve_lr", True)):
        with pytest.raises(ValueError, match=f"fit: '{name}' acts on the dev score, and no dev sentences were given"):
            recipe.fit(model, _sentences(), quiet=True, **{name: value})
    assert len(recipe.fit(model, _sentences(), _sentences(5, seed=1), epochs=3, patience=0, halve_lr=True,
                          quiet=True).history) >= 1
