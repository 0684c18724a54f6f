"""fastnn.recipes.lm: one Config per architecture holds its defaults; presets name their architecture; train()
builds and fits every architecture from a Config; the validation score is written once (mean_nll)."""
import dataclasses
import math

import numpy as np
import pytest

from fastnn.data.text import lm_stream
from fastnn.recipes import lm as recipe


def _sentences(n, seed):
    rng = np.random.default_rng(seed)
    words = ["the", "dog", "cat", "runs", "sees", "a", "bird"]
    return [[str(w) for w in rng.choice(words, size=int(rng.integers(2, 7)))] for _ in range(n)]


def test_each_architecture_has_its_own_defaults():
    assert (recipe.RNNConfig().epochs, recipe.NPLMConfig().epochs) == (30, 3)
    assert (recipe.NGramConfig().order, recipe.NPLMConfig().order) == (3, 5)
    for cls in recipe.CONFIGS.values():
        for f in dataclasses.fields(cls):
            assert f.metadata["help"], (cls, f.name)


def test_presets_carry_their_architecture(monkeypatch):
    monkeypatch.setitem(recipe.PRESETS, "small", {"arch": "rnn", "hidden": 8, "epochs": 2})
    c = recipe.from_preset("small", epochs=1)
    assert isinstance(c, recipe.RNNConfig) and (c.hidden, c.epochs) == (8, 1)
    with pytest.raises(ValueError, match="preset 'small' is for 'arch' rnn"):
        recipe.from_preset("small", "nplm")
    with pytest.raises(ValueError, match="'arch' must be given"):
        recipe.from_preset(None)
    with pytest.raises(ValueError, match="'arch' must be one of"):
        recipe.config_for("lstm2")


@pytest.mark.parametrize("cls, values, match", [
    (recipe.RNNConfig, dict(epochs=0), "'epochs' must be >= 1"),
    (recipe.NPLMConfig, dict(order=1), "'order' must be >= 2"),
    (recipe.RNNConfig, dict(dropout=1.5), "'dropout' must be in"),
    (recipe.NGramConfig, dict(smoothing="wb"), "'smoothing' must be one of kn, di"),
    (recipe.RNNConfig, dict(max_minutes=0.0), "'max_minutes' must be > 0"),
    (recipe.NPLMConfig, dict(hidden=0), "'hidden' must be >= 1 without 'direct'"),
    (recipe.RNNConfig, dict(hidden=0), "'hidden' must be >= 1"),
])
def test_bad_values_name_the_field(cls, values, match):
    with pytest.raises(ValueError, match=match):
        cls(**values)


@pytest.mark.parametrize("arch, values", [("ngram", {}), ("nplm", dict(epochs=2, dim=6, hidden=8, order=3)),
                                          # the model's "no hidden layer, direct connections only", which every
                                          # neural LM's hidden >= 1 refused from the recipe (and the CLI)
                                          ("nplm", dict(epochs=2, dim=6, hidden=0, direct=True, order=3)),
                                          ("rnn", dict(epochs=2, hidden=8, classes=2, bptt_block=5))])
def test_train_every_architecture(arch, values):
    config = recipe.config_for(arch, min_count=1, **values)
    vocab, streams = recipe.prepare(config, _sentences(60, 0), _sentences(10, 1))
    model, history = recipe.train(config, vocab, streams, quiet=True)
    ppl = recipe.perplexity(model, streams["valid"])
    assert math.isfinite(ppl) and 1 < ppl < len(vocab) * 2
    assert len(history) == values.get("epochs", 0)
    if history:         # the Trainer kept the epoch with the lowest mean NLL, the score it was given
        assert min(h["valid"] for h in history) == pytest.approx(recipe.mean_nll(model, streams["valid"]), rel=1e-6)


def test_a_min_count_no_word_reaches_is_refused_before_training():
    """Was: a vocabulary of <unk> and </s> alone, and an LM of perplexity 1.18 that had seen no word."""
    with pytest.raises(ValueError, match="'min_count' 1000000 leaves no word"):
        recipe.prepare(recipe.RNNConfig(min_count=1000000), _sentences(20, 0))


def test_neural_lm_needs_valid_text():
    config = recipe.RNNConfig(min_count=1, epochs=1)
    vocab, streams = recipe.prepare(config, _sentences(20, 0))
    with pytest.raises(ValueError, match="needs valid text"):
        recipe.train(config, vocab, streams, quiet=True)


@pytest.mark.parametrize("arch, values", [("rnn", {}), ("rnn", {"dropout": 0.2}), ("rnn", {"classes": 0}),
                                          ("lstm", {})])
def test_rnn_lm_trains_fused_exactly_with_classes_and_no_dropout(arch, values):
    model = recipe.build_model(recipe.config_for(arch, hidden=4, **values), 30, counts=np.arange(30, 0, -1))
    assert getattr(model, "trains_fused", False) == (arch == "rnn" and not values)


@pytest.mark.filterwarnings("ignore:KneserNey.fit")          # the discounts of a tiny corpus
@pytest.mark.parametrize("arch", ["ngram", "nplm", "rnn", "lstm"])
def test_every_trained_lm_scores_tokenised_sentences_as_their_stream(arch):
    """A user holding a trained LM and some sentences need not know about ids: text is encoded with the model's own
    words (unknown ones -> <unk>, </s> after each sentence), and equals scoring lm_stream's ids."""
    from fastnn.data import lm_stream
    config = recipe.config_for(arch, **({} if arch == "ngram" else dict(epochs=1, hidden=8)))
    vocab, streams = recipe.prepare(config, _sentences(60, 0), _sentences(10, 1))
    model, _ = recipe.train(config, vocab, streams, quiet=True)
    text = [["the", "dog", "runs"], [], ["a", "zebra", "sees", "a", "bird"]]       # "zebra": unknown
    ids = lm_stream(text, vocab)
    assert np.array_equal(model.token_logprobs(text), model.token_logprobs(ids))
    assert model.perplexity(text) == model.perplexity(ids) and recipe.mean_nll(model, text) > 0
    for bad in (["the", "dog"], "the dog"):                     # one sentence or two one-word ones?
        with pytest.raises(TypeError, match=r"tokenised sentences, a list of lists of tokens \(\[tokens\]"):
            model.perplexity(bad)
    model.words = None                                          # built by hand: no vocabulary to read text with
    with pytest.raises(TypeError, match="has no vocabulary"):
        model.perplexity(text)


def test_sentences_given_as_generators_or_numpy_arrays_read_like_lists():
    """prepare reads the training text twice (vocabulary, then ids) and scoring peeks at its argument to tell text
    from ids: a generator used to leave an empty training stream (a model trained on nothing) and to be a TypeError
    about dtype object when scored."""
    config = recipe.RNNConfig(epochs=1, hidden=8, min_count=1)
    train, valid = _sentences(20, 0), _sentences(5, 1)
    vocab, streams = recipe.prepare(config, train, valid)
    vocab2, streams2 = recipe.prepare(config, (s for s in train), map(list, valid))
    assert vocab2 == vocab and all(np.array_equal(streams[k], streams2[k]) for k in streams)
    model, _ = recipe.train(config, vocab, streams, quiet=True)
    text = [s for s in valid if len(s) == len(valid[0])]                      # equal lengths: a 2-d array too
    assert model.perplexity(iter(text)) == model.perplexity(text) == model.perplexity(np.array(text))
    # sentences as string arrays (str or object dtype, as pandas gives them) read as lists: were ids of dtype object
    for dtype in (str, object):
        assert model.perplexity([np.array(s, dtype=dtype) for s in valid]) == model.perplexity(valid)
        assert model.perplexity(np.array(text, dtype=dtype)) == model.perplexity(text)
    # empty sentences are each their </s> (as SRILM and KenLM score an empty line), as lm_stream makes them
    assert model.perplexity([[], []]) == model.perplexity(np.full(2, vocab.eos_id)) == \
        model.perplexity(lm_stream([[], []], vocab))


def test_empty_valid_or_test_is_refused_before_training_not_scored_as_nan():
    config = recipe.RNNConfig(epochs=1, hidden=8)
    with pytest.raises(ValueError, match="'train' must hold at least one token; got none in its 0 sentences"):
        recipe.prepare(config, [])
    for valid, test in (([], None), ([[], []], None), (None, [])):
        with pytest.raises(ValueError, match="must hold at least one token"):
            recipe.prepare(config, _sentences(20, 0), valid, test)
    vocab, streams = recipe.prepare(config, _sentences(20, 0), _sentences(5, 1))
    model, _ = recipe.train(config, vocab, streams, quiet=True)
    with pytest.raises(ValueError, match="mean_nll: 'stream' must hold at least one token"):
        recipe.mean_nll(model, np.zeros(0, dtype=np.int64))


@pytest.mark.parametrize("arch", ["ngram", "nplm", "rnn", "lstm"])
def test_perplexity_of_nothing_names_the_model(arch):
    """An empty list or array: the NPLM raised numpy's 'window shape cannot be larger than input array shape', the
    others metrics.perplexity's "'n_tokens' must be a positive int"; token_logprobs of nothing is empty."""
    config = recipe.CONFIGS[arch](min_count=1, **({} if arch == "ngram" else {"epochs": 1, "hidden": 8}))
    vocab, streams = recipe.prepare(config, _sentences(30, 0), _sentences(5, 1))
    model, _ = recipe.train(config, vocab, streams, quiet=True)
    for nothing in ([], np.zeros(0, dtype=np.int64)):
        assert model.token_logprobs(nothing).shape == (0,)
        with pytest.raises(ValueError, match=r"\.perplexity: the data must hold at least one token; got none"):
            model.perplexity(nothing)


def test_train_checks_its_streams_and_reads_sentences():
    # an id past the vocabulary was a kernel's IndexError ('idx' of gather_rows) deep in training, sentences a NumPy
    # error: both are the caller's streams, named as such; sentences are read as prepare would encode them
    config = recipe.RNNConfig(epochs=1, hidden=8, classes=0, min_count=1)
    train, valid = _sentences(30, 0), _sentences(10, 1)
    vocab, streams = recipe.prepare(config, train, valid)
    with pytest.raises(IndexError, match=r"train: streams\['train'\]: 'stream' must hold ids in \[0, "):
        recipe.train(config, vocab, dict(streams, train=np.array([0, 1, len(vocab)] * 100)), quiet=True)
    with pytest.raises(TypeError, match=r"train: streams\['valid'\]: 'stream' must be a 1-d array of integer"):
        recipe.train(config, vocab, dict(streams, valid=streams["valid"].astype(float)), quiet=True)
    for arch in ("ngram", "rnn"):
        c = recipe.config_for(arch, min_count=1) if arch == "ngram" else config
        with pytest.raises(IndexError, match=r"streams\['train'\]"):
            recipe.train(c, vocab, dict(streams, train=np.array([-1, 0])), quiet=True)
    _, ids = recipe.train(config, vocab, streams, quiet=True)
    _, text = recipe.train(config, vocab, {"train": train, "valid": valid}, quiet=True)
    assert [h["valid"] for h in text] == [h["valid"] for h in ids]


def test_config_misspelt_fields_and_presets_name_the_closest():
    with pytest.raises(TypeError, match="RNNConfig: 'hiden' is not a field; did you mean 'hidden'"):
        recipe.RNNConfig(hiden=10)
    with pytest.raises(TypeError, match="'epoch' is not a field; did you mean 'epochs'"):
        dataclasses.replace(recipe.NPLMConfig(), epoch=1)
    with pytest.raises(ValueError, match="got 'fsat'. Did you mean 'fast'"):
        recipe.from_preset("fsat")
    with pytest.raises(TypeError, match="'direct' must be True or False; got 'no'"):
        recipe.NPLMConfig(direct="no")


def test_train_refuses_what_prepare_did_not_make():
    # another recipe's Config, a list of words or of streams, a misspelt part were AttributeErrors or a KeyError
    # (or, for streams={"train", "val"}, "a neural LM needs valid text" about text the caller did give)
    from fastnn.recipes import tagger

    config = recipe.RNNConfig(epochs=1, hidden=8, classes=0, min_count=1)
    vocab, streams = recipe.prepare(config, _sentences(30, 0), _sentences(10, 1))
    with pytest.raises(TypeError, match="train: 'config' must be a NGramConfig or NPLMConfig or RNNConfig or "
                                        "LSTMConfig; got TaggerConfig"):
        recipe.train(tagger.TaggerConfig(), vocab, streams)
    with pytest.raises(TypeError, match="build_model: 'config' must be a NPLMConfig or RNNConfig or LSTMConfig; got "
                                        "NGramConfig"):
        recipe.build_model(recipe.NGramConfig(), 10)
    with pytest.raises(TypeError, match="prepare: 'config' must be a LMConfig; got TaggerConfig"):
        recipe.prepare(tagger.TaggerConfig(), _sentences(3, 0))
    with pytest.raises(TypeError, match="'vocab' must be a fastnn.data.Vocab"):
        recipe.train(config, vocab.words, streams)
    with pytest.raises(TypeError, match="'streams' must be a dict with 'train'"):
        recipe.train(config, vocab, [streams["train"], streams["valid"]])
    with pytest.raises(ValueError, match="got the keys 'train', 'val'"):
        recipe.train(config, vocab, {"train": streams["train"], "val": streams["valid"]})


@pytest.mark.filterwarnings("ignore:KneserNey.fit")           # (the tiny data's fallback discounts)
@pytest.mark.parametrize("arch", ["ngram", "nplm", "rnn", "lstm"])
def test_every_lm_reads_a_list_of_id_lists_as_sentences(arch):
    # one rule for the LM families: sentences of ids are the stream with </s> appended to each (the n-gram models
    # read them so; the neural ones said "'stream' must be a 1-d array"), and a bad sentence is named as such
    from fastnn.models.ngram import KneserNey
    sents, eos = [[2, 3], [4], [5, 3, 2]], 1
    stream = np.array([2, 3, eos, 4, eos, 5, 3, 2, eos])
    if arch == "ngram":
        model = KneserNey(2).fit(sents, 10, eos)
        np.testing.assert_array_equal(model._counts[2], KneserNey(2).fit(stream, 10, eos)._counts[2])
    else:
        model = recipe.build_model(recipe.config_for(arch, hidden=4, classes=0), 10, eos_id=eos)
    np.testing.assert_array_equal(model.token_logprobs(sents), model.token_logprobs(stream))
    name = "data" if arch == "ngram" else "stream"
    with pytest.raises(ValueError, match=rf"sentence {name}\[1\] must not contain eos_id=1 \(it is appended\)"):
        model.perplexity([[2], [3, 1]])
    with pytest.raises(TypeError, match=rf"sentence {name}\[0\] must be a sequence of integer word ids"):
        model.perplexity([[2, 3.5]])


def test_a_field_set_after_the_config_was_made_is_checked_by_train():
    # Configs check themselves when made; config.direct = "no" afterwards trained with direct connections
    config = recipe.NPLMConfig(epochs=1, hidden=4, dim=2, order=3, min_count=1)
    vocab, streams = recipe.prepare(config, _sentences(20, 0), _sentences(5, 1))
    config.direct = "no"
    with pytest.raises(TypeError, match="NPLMConfig: 'direct' must be True or False; got 'no'"):
        recipe.train(config, vocab, streams, quiet=True)
    config.direct, config.hidden = False, 0
    with pytest.raises(ValueError, match="NPLMConfig: 'hidden' must be >= 1"):
        recipe.build_model(config, 10)


def test_resume_needs_the_settings_and_data_of_the_run_it_continues(tmp_path):
    """A resumed LM run took new options (a learning rate with the old schedule state, another seed) and other
    data of the same vocabulary size silently; the checkpoint records the Config and a digest of the streams
    (config.run_settings) and a resume must match them, except how long it goes on (epochs, patience, max_minutes)."""
    train, valid = _sentences(60, 0), _sentences(15, 1)
    config = recipe.RNNConfig(epochs=1, hidden=6, classes=0, min_count=1, batch_size=4, bptt_block=5)
    vocab, streams = recipe.prepare(config, train, valid)
    ck = str(tmp_path / "ck.npz")
    recipe.train(config, vocab, streams, checkpoint=ck, quiet=True)
    for change, says in ((dict(lr=0.5), "'lr' 0.05; this run has 0.5"), (dict(seed=1), "'seed' 0; this run has 1")):
        with pytest.raises(ValueError, match=says):
            recipe.train(dataclasses.replace(config, epochs=2, **change), vocab, streams, checkpoint=ck, resume=True,
                         quiet=True)
    other = {**streams, "valid": streams["valid"][::-1].copy()}          # same words, same length, other text
    with pytest.raises(ValueError, match=r"'valid data' '[\d,]+ tokens, sha1 \w+'; this run has '[\d,]+ tokens"):
        recipe.train(dataclasses.replace(config, epochs=2), vocab, other, checkpoint=ck, resume=True, quiet=True)
    # NumPy numbers (a value from an array, a sweep) are the numbers they hold
    _, history = recipe.train(dataclasses.replace(config, epochs=2, patience=1, max_minutes=5.0, lr=np.float64(0.05),
                                                  hidden=np.int64(6)), vocab, streams, checkpoint=ck, resume=True,
                              quiet=True)
    assert len(history) == 2


def test_an_ngram_model_takes_no_checkpoint(tmp_path):
    """An n-gram model is counted, not trained in epochs: checkpoint and resume were ignored (no file written,
    nothing resumed), silently."""
    config = recipe.NGramConfig(min_count=1)
    vocab, streams = recipe.prepare(config, _sentences(30, 0))
    for kw in (dict(checkpoint=str(tmp_path / "ck.npz")), dict(resume=True)):
        with pytest.raises(ValueError, match="n-gram model is counted in one pass.*'checkpoint' and 'resume' do not "
                                             "apply"):
            recipe.train(config, vocab, streams, **kw)


@pytest.mark.parametrize("arch", ["ngram", "nplm", "rnn"])
def test_an_empty_stream_given_to_train_is_refused_before_training(arch):
    """An empty valid stream (built by hand, not by prepare) failed in mean_nll only once the first epoch had
    trained; None for valid or test was a TypeError about dtype object, where prepare reads None as "left out"."""
    config = recipe.config_for(arch, min_count=1, **({} if arch == "ngram" else dict(epochs=1, hidden=4)))
    vocab, streams = recipe.prepare(config, _sentences(40, 0), _sentences(10, 1))
    for name in ("valid", "train"):
        with pytest.raises(ValueError, match=rf"train: streams\['{name}'\] must hold at least one token; got none"):
            recipe.train(config, vocab, {**streams, name: np.zeros(0, dtype=np.int64)}, quiet=True)
    if arch == "ngram":
        recipe.train(config, vocab, {**streams, "valid": None, "test": None})
    else:
        with pytest.raises(ValueError, match="a neural LM needs valid text"):
            recipe.train(config, vocab, {**streams, "valid": None}, quiet=True)



@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_training_ends_once_the_rate_has_halved_out(arch, monkeypatch):
    # a run whose valid perplexity stalls without failing patience halved its rate down to nothing and trained all
    # its epochs (embed train's RNN objective: 16 epochs of 196.27 -> 196.26): it stops at the MAX_HALVINGS-th halving
    monkeypatch.setattr(recipe, "MAX_HALVINGS", 2)
    config = recipe.config_for(arch, min_count=1, epochs=40, hidden=8, classes=2, bptt_block=5, lr=0.5, patience=30)
    vocab, streams = recipe.prepare(config, _sentences(60, 0), _sentences(10, 1))
    model, history = recipe.train(config, vocab, streams, quiet=True)
    assert len(history) < 40
    assert history[-1]["lr"] == pytest.approx(0.5 / 4)


def test_embed_rnn_objective_ends_once_the_rate_has_halved_out(monkeypatch):
    from fastnn.recipes import embed as embed_recipe
    monkeypatch.setattr(recipe, "MAX_HALVINGS", 1)
    result = embed_recipe.pretrain("rnn", _sentences(80, 0), dim=4, hidden=6, classes=2, epochs=40, batch_size=4,
                                   lr=0.5, valid_fraction=0.2, quiet=True)
    assert result.history[-1]["lr"] == pytest.approx(0.5 / 2)


def test_a_field_added_later_keeps_older_checkpoints_resumable():
    """LSTMConfig.layers and NPLMConfig.output_precision came after checkpoints written without them: recorded only
    when set, so such a checkpoint resumes a run at the default (it was refused: "'layers' none; this run has 1")."""
    from fastnn.recipes.config import run_settings
    from fastnn.train import _same_settings
    from fastnn.recipes.tagger import TaggerConfig
    for cls, field, other in ((recipe.LSTMConfig, "layers", 2), (recipe.NPLMConfig, "output_precision", "bfloat16"),
                              (lambda **kw: TaggerConfig(tasks={"pos": 1}, context="bilstm", loss="sentence", **kw),
                               "lstm_layers", 2)):
        now = run_settings(cls())
        assert field not in now
        _same_settings({k: v for k, v in now.items()}, now, "ck.npz", "Trainer")   # a checkpoint from before
        if field == "output_precision":
            continue                                  # (bfloat16 needs AMX to build a Config: checked apart)
        changed = run_settings(cls(**{field: other}))
        assert changed[field] == other
        with pytest.raises(ValueError, match=f"'{field}' none; this run has {other}"):
            _same_settings(now, changed, "ck.npz", "Trainer")
