"""Drawing text from a language model: every model's prob_vector (the distribution its token_logprobs scores) and
recipes.lm.sample / `fastnn lm sample` on top of it."""
import json

import numpy as np
import pytest

from fastnn.recipes import lm as recipe
from tests.conftest import run_cli, write_lines

pytestmark = pytest.mark.filterwarnings("ignore:.*counts-of-counts")

SENTS = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]] * 5
KINDS = {"rnn": dict(hidden=8, classes=0), "rnn classes": dict(hidden=8, classes=3),
         "lstm classes": dict(hidden=8, classes=2), "nplm": dict(hidden=8, classes=0),
         "nplm classes": dict(hidden=8, classes=3), "ngram": {}}


@pytest.fixture(scope="module")
def models():
    out = {}
    for name, kw in KINDS.items():
        arch = name.split()[0]
        config = recipe.config_for(arch, min_count=1, **({} if arch == "ngram" else {"epochs": 2}), **kw)
        vocab, streams = recipe.prepare(config, SENTS, SENTS)
        out[name] = (recipe.train(config, vocab, streams, quiet=True)[0], vocab, streams["valid"])
    return out


@pytest.mark.parametrize("name", list(KINDS))
def test_prob_vector_is_the_distribution_token_logprobs_scores(models, name):
    model, vocab, stream = models[name]
    for history in ([], list(stream[:1]), list(stream[:9])):
        p = model.prob_vector(history)
        assert p.dtype == np.float64 and p.shape == (len(vocab),) and abs(p.sum() - 1) < 1e-12 and (p > 0).all()
        lp = [model.token_logprobs(np.array(history + [w], dtype=np.int64))[-1] for w in range(len(vocab))]
        np.testing.assert_allclose(np.log(p), lp, atol=2e-6)      # float32 models: rounding only
    words = [vocab.words[i] for i in stream[:5]]
    np.testing.assert_array_equal(model.prob_vector(words), model.prob_vector(list(stream[:5])))
    with pytest.raises(TypeError, match="split"):
        model.prob_vector("the dog")


def test_sample_is_reproducible_and_keeps_its_arguments(models):
    model, vocab, _ = models["rnn classes"]
    a = recipe.sample(model, sentences=4, prompt=["the", "cat"], max_len=6, seed=3)
    assert a == recipe.sample(model, sentences=4, prompt=["the", "cat"], max_len=6, seed=3)
    assert a != recipe.sample(model, sentences=4, prompt=["the", "cat"], max_len=6, seed=4)
    assert len(a) == 4 and a[0][:2] == ["the", "cat"] and all(1 <= len(s) <= 6 for s in a[:1])
    assert all(len(s) <= 6 and "</s>" not in s and all(w in vocab.words for w in s) for s in a)
    by_id = recipe.sample(model, sentences=4, prompt=[vocab.words.index(w) for w in ("the", "cat")], max_len=6, seed=3)
    assert by_id == a                               # a prompt of ids is the same prompt


def test_a_low_temperature_follows_the_most_likely_words(models):
    model, vocab, _ = models["ngram"]
    got = recipe.sample(model, sentences=1, prompt=["a"], temperature=1e-3, seed=0, max_len=8)[0]
    text = [vocab.words.index("a")]
    while len(text) < 8:
        w = int(model.prob_vector(text).argmax())
        if w == vocab.eos_id:
            break
        text.append(w)
    assert got == [vocab.words[i] for i in text]


def test_first_words_follow_the_models_distribution(models):
    # the n-gram model starts every sentence afresh (<s>), so each sentence's first word is a draw from prob_vector([])
    model, vocab, _ = models["ngram"]
    n = 3000
    firsts = [s[0] if s else "</s>" for s in recipe.sample(model, sentences=n, max_len=1, seed=0)]
    p = model.prob_vector([])
    for w in ("the", "a", "dog"):
        q = p[vocab.words.index(w)]
        assert abs(firsts.count(w) / n - q) < 4 * np.sqrt(q * (1 - q) / n), w


def test_bad_arguments_say_what_to_pass(models):
    model, _, _ = models["nplm"]
    with pytest.raises(TypeError, match="'model' must be a language model"):
        recipe.sample(SENTS)
    with pytest.raises(TypeError, match="split"):
        recipe.sample(model, prompt="the dog")
    with pytest.raises(ValueError, match="must not hold </s>"):
        recipe.sample(model, prompt=["the", "</s>"])
    with pytest.raises(IndexError, match=r"'prompt' must hold word ids in \[0, "):
        recipe.sample(model, prompt=[10 ** 6])
    for prompt in ([["the"]], [1.5]):                 # (1.5 was read as id 1)
        with pytest.raises(TypeError, match="'prompt' must be a list of words or of word ids"):
            recipe.sample(model, prompt=prompt)
    for kw in (dict(temperature=0), dict(temperature=float("nan")), dict(sentences=0), dict(max_len=0),
               dict(seed=-1)):
        with pytest.raises(ValueError):
            recipe.sample(model, **kw)


def test_cli_sample(capsys, tmp_path):
    train = write_lines(tmp_path / "train.txt", [" ".join(s) for s in SENTS])
    out = str(tmp_path / "m.npz")
    rc, _, err = run_cli(capsys, "lm", "train", "--arch", "ngram", "--train", train, "--out", out, "--min-count", "1",
                         "--quiet")
    assert rc == 0, err
    rc, so, err = run_cli(capsys, "lm", "sample", "--model", out, "--sentences", "3", "--prompt", "the zebra",
                          "--seed", "1")
    lines = so.splitlines()
    assert rc == 0 and len(lines) == 3 and lines[0].startswith("the <unk>"), (so, err)
    assert "'zebra' not in the model's vocabulary" in err
    rc, so2, _ = run_cli(capsys, "lm", "sample", "--model", out, "--sentences", "3", "--prompt", "the zebra",
                         "--seed", "1", "--json")
    assert rc == 0 and [" ".join(s) for s in json.loads(so2)["sentences"]] == lines
    for bad, match in ((["--temperature", "0"], "--temperature must be > 0"), (["--max-len", "0"], "--max-len must"),
                       (["--prompt", "</s>"], "--prompt must not hold </s>")):
        rc, _, err = run_cli(capsys, "lm", "sample", "--model", out, *bad)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and match in err, err


def test_a_model_without_words_samples_ids():
    model = recipe.build_model(recipe.RNNConfig(hidden=4, classes=0), 7)      # untrained, ids only
    got = recipe.sample(model, sentences=3, prompt=[2, 3], seed=0, max_len=5)
    assert got[0][:2] == [2, 3] and all(isinstance(i, int) and 0 <= i < 7 and i != 1 for s in got for i in s)
    with pytest.raises(TypeError, match="no vocabulary"):
        recipe.sample(model, prompt=["the"])
