"""The language-model and embedding side's boundary: bad input is a clear exception (from the CLI: one line naming
the option, exit code 2, before any work), never a traceback from deep inside, a silent wrong answer or lost work."""
import warnings

import pytest

from tests.conftest import run_cli, write_lines

pytestmark = pytest.mark.filterwarnings("ignore:.*counts-of-counts")


@pytest.fixture
def text(tmp_path):
    lines = ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"] * 10
    return {name: write_lines(tmp_path / f"{name}.txt", lines) for name in ("train", "dev")}


def _warning_naming(field):
    """A recipe call that first warns about Config field `field` (as a library warning says it), then runs."""
    def wrap(real):
        def call(*args, **kw):
            warnings.warn(f"recipe: {field!r} has no effect here; {field}=3 is ignored.", UserWarning)
            return real(*args, **kw)
        return call
    return wrap


def test_lm_and_embed_train_warnings_name_options(capsys, monkeypatch, text, tmp_path):
    # the tagger's warnings said --lstm-hidden; lm train's and embed train's said the Python field ('bptt_block')
    from fastnn.recipes import embed as embed_recipe
    from fastnn.recipes import lm as lm_recipe
    monkeypatch.setattr(lm_recipe, "train", _warning_naming("bptt_block")(lm_recipe.train))
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", text["train"], "--out",
                           tmp_path / "m.npz", "--min-count", "1")
    assert rc == 0, err
    assert "fastnn lm train: warning: recipe: --bptt-block has no effect here; --bptt-block 3 is ignored." in err, err
    monkeypatch.setattr(embed_recipe, "pretrain", _warning_naming("valid_fraction")(embed_recipe.pretrain))
    rc, out, err = run_cli(capsys, "embed", "train", "--objective", "ranking", "--text", text["train"], "--out",
                           tmp_path / "v.txt", "--min-count", "1", "--epochs", "1", "--dim", "4", "--hidden", "4",
                           "--window", "3")
    assert rc == 0, err
    assert "fastnn embed train: warning: recipe: --valid-fraction has no effect here" in err, err


SENTS = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]] * 5


def test_build_checks_its_arguments_as_train_does():
    # build(config, vocab, sentences) failed inside NumPy ("inhomogeneous shape"), build(config, 9, ids) with
    # AttributeError 'int' object has no attribute 'eos_id'
    from fastnn.recipes import lm as recipe
    config = recipe.RNNConfig(hidden=4, classes=0, min_count=1, batch_size=2)
    vocab, streams = recipe.prepare(config, SENTS)
    model, batches, _ = recipe.build(config, vocab, SENTS)          # sentences are encoded, as train's streams
    assert batches.n * batches.batch_size == len(streams["train"])
    with pytest.raises(TypeError, match=r"build: 'vocab' must be a fastnn.data.Vocab"):
        recipe.build(config, len(vocab), streams["train"])
    with pytest.raises(IndexError, match=r"build: 'stream' must hold ids in \[0, 9\); got 9 at position 0"):
        recipe.build(config, vocab, streams["train"] + 7)
    with pytest.raises(TypeError, match=r"build: 'config' must be a NPLMConfig or RNNConfig or LSTMConfig; got "
                                        r"NGramConfig"):
        recipe.build(recipe.NGramConfig(), vocab, streams["train"])


def test_an_ngram_model_has_no_seed(capsys, text, tmp_path):
    # lm train --arch ngram --seed 5 (and NGramConfig(seed=5)) counted the same model as seed 0, the option ignored,
    # silently: the seed is the neural LMs' (initialisation, order, dropout)
    from fastnn.recipes import lm as recipe
    with pytest.raises(TypeError, match="NGramConfig: 'seed' is not a field"):
        recipe.NGramConfig(seed=5)
    assert recipe.RNNConfig(seed=5).seed == 5
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", text["train"], "--out",
                           tmp_path / "m.npz", "--min-count", "1", "--seed", "5")
    assert rc == 2 and "fastnn lm train: error: --seed does not apply to --arch ngram" in err, err
    assert not (tmp_path / "m.npz").exists()


def test_ngram_refuses_on_nonfinite(capsys, text, tmp_path):
    # --on-nonfinite skip with --arch ngram was ignored, silently (counting takes no step to skip)
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", text["train"], "--out",
                           tmp_path / "m.npz", "--min-count", "1", "--on-nonfinite", "skip")
    assert rc == 2 and "error: --on-nonfinite does not apply to --arch ngram" in err, err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("arch", ["nplm", "rnn", "lstm"])
def test_astype_casts_the_model_its_file_and_its_state(tmp_path, arch):
    # model.astype(np.float64) cast the parameters but left the model's dtype float32: save_model wrote a file that
    # load_model refused ("'emb.W' has dtype float64 in the file but float32 in the model"), and the RNN LM's fused
    # kernel failed in training ("'h0' must have dtype float64")
    import numpy as np

    from fastnn import io, optim
    from fastnn.recipes import lm as recipe
    from fastnn.train import Trainer
    config = recipe.config_for(arch, epochs=1, hidden=4, min_count=1, batch_size=4,
                               **({"dim": 3, "order": 3} if arch == "nplm" else {"classes": 2}))
    vocab, streams = recipe.prepare(config, SENTS, SENTS)
    model, batches, lr = recipe.build(config, vocab, streams["train"])
    assert model.astype(np.float64) is model and "dtype=float64" in repr(model)
    Trainer(model, optim.by_name(config.optimizer, model.parameters(), lr), batches, epochs=1, quiet=True).fit()
    if arch != "nplm":                  # the carried state (h, or the LSTM's (h, c)) follows
        model.astype(np.float32)
        state = model.state if isinstance(model.state, tuple) else (model.state,)
        assert {a.dtype for a in state} == {np.dtype(np.float32)}
        model.astype(np.float64)
    io.save_model(tmp_path / "m.npz", model)
    loaded = io.load_model(tmp_path / "m.npz")
    assert {p.value.dtype for p in loaded.parameters().values()} == {np.dtype(np.float64)}
    np.testing.assert_array_equal(loaded.token_logprobs(streams["valid"]), model.token_logprobs(streams["valid"]))
    with pytest.raises(TypeError, match=r"\.astype: 'dtype' must be float32 or float64; got int64"):
        model.astype(np.int64)


def test_perplexity_with_its_arguments_swapped_is_a_type_error():
    # perplexity(stream, model), the arguments swapped: AttributeError 'numpy.ndarray' object has no attribute
    # 'token_logprobs'
    from fastnn.recipes import lm as recipe
    config = recipe.NGramConfig(min_count=1)
    vocab, streams = recipe.prepare(config, SENTS)
    model, _ = recipe.train(config, vocab, streams)
    with pytest.raises(TypeError, match=r"mean_nll: 'model' must be a language model .*; got ndarray. The arguments "
                                        r"are \(model, stream\)"):
        recipe.perplexity(streams["train"], model)
    assert recipe.perplexity(model, streams["train"]) > 1


def test_a_diverged_models_perplexity_is_inf_not_an_overflow(capsys, text, tmp_path):
    # a valid NLL above ~709 (here 3.9e30, from lr 1e30) made math.exp raise OverflowError in the recipe's epoch
    # callback: a traceback at the end of the first epoch, no model written; perplexity() and lm eval raised it too
    import math

    from fastnn.metrics import perplexity_from_nll
    from fastnn.recipes import lm as recipe
    # (such a run is a divergence, tests/test_boundary16.py; kept going with on_nonfinite="skip" here)
    config = recipe.RNNConfig(hidden=4, classes=2, lr=1e30, epochs=1, min_count=1, batch_size=2)
    vocab, streams = recipe.prepare(config, SENTS, SENTS)
    with pytest.warns(RuntimeWarning, match="'validate' gave valid ppl inf"):
        model, history = recipe.train(config, vocab, streams, quiet=True, on_nonfinite="skip")
    assert history[-1]["valid"] > 709 and recipe.perplexity(model, streams["valid"]) == math.inf
    assert perplexity_from_nll(1.0) == math.e and perplexity_from_nll(1e30) == math.inf
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "rnn", "--train", text["train"], "--dev", text["dev"],
                           "--out", tmp_path / "m.npz", "--min-count", "1", "--hidden", "4", "--classes", "2",
                           "--lr", "1e30", "--epochs", "1", "--batch-size", "2", "--on-nonfinite", "skip")
    assert rc == 0 and "valid_perplexity inf" in out, err
    rc, out, err = run_cli(capsys, "lm", "eval", "--model", tmp_path / "m.npz", "--data", text["dev"])
    assert rc == 0 and out.startswith("perplexity inf"), err


def test_a_text_file_given_twice_is_refused(capsys, text, tmp_path):
    # embed train --text a.txt link-to-a.txt trained on the text twice, silently: every word reached --min-count 2,
    # and the held-out sentences were also training sentences (an optimistic valid score)
    from fastnn.embed import read_corpus
    link = tmp_path / "link.txt"
    link.symlink_to(text["train"])
    with pytest.raises(ValueError, match=r"read_corpus: .*link.txt is given twice \(as .*train.txt\): its sentences "
                                         r"would count twice"):
        read_corpus([text["train"], link])
    assert len(read_corpus([text["train"], text["dev"]])) == 80
    rc, out, err = run_cli(capsys, "embed", "train", "--objective", "nplm", "--text", text["train"], link, "--out",
                           tmp_path / "v.txt", "--epochs", "1", "--dim", "4", "--hidden", "4", "--min-count", "1")
    assert rc == 2 and "error: --text: " in err and "link.txt is given twice" in err, err
    assert not (tmp_path / "v.txt").exists()


def test_deleted_interpolation_refuses_its_training_text_as_valid(capsys, text, tmp_path):
    # lm train --smoothing di --dev TRAIN fitted the weights on the text the counts came from: all weight to the
    # longest n-grams, a test perplexity of 2.4e8 on 300 Brown lines, silently
    from fastnn.recipes import lm as recipe
    config = recipe.NGramConfig(min_count=1, smoothing="di")
    vocab, streams = recipe.prepare(config, SENTS, SENTS)
    with pytest.raises(ValueError, match="NGramConfig: 'smoothing' di fits its interpolation weights by EM on "
                                         "held-out text; got the training text as the valid text"):
        recipe.train(config, vocab, streams)
    recipe.train(config, *recipe.prepare(config, SENTS, SENTS[:7]))
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--smoothing", "di", "--train", text["train"],
                           "--dev", text["dev"], "--out", tmp_path / "m.npz", "--min-count", "1")
    assert rc == 2 and "error: --smoothing di fits its interpolation weights by EM on held-out text" in err, err
    assert not (tmp_path / "m.npz").exists()


def test_prepare_without_training_text_is_a_type_error():
    # prepare(config, None) raised a bare KeyError 'train'
    from fastnn.recipes import lm as recipe
    with pytest.raises(TypeError, match="prepare: 'train' must be tokenised sentences, the training text; got None"):
        recipe.prepare(recipe.RNNConfig(), None, SENTS)
