"""Public helpers called with the wrong kind of argument (found by calling each with None, a string, a float, an
empty list, a nested list): a TypeError/ValueError naming the function and the argument, never a bare 'not
subscriptable', 'cannot be interpreted as an integer', int() or sliding-window error, nor an id silently truncated or
wrapped around."""
import numpy as np
import pytest


def test_nplm_contexts():
    from fastnn.models.nplm import contexts
    assert contexts(np.array([], dtype=np.int64), 3, 0).shape == (0, 2)          # was a sliding-window error
    for stream in ([1.5, 2.0], ["a"], [[1, 2]], [2 ** 31 + 5]):                 # truncated / int() / wrapped
        with pytest.raises(ValueError, match="contexts: 'stream' must be a 1-d array of word ids"):
            contexts(stream, 3, 0)
    with pytest.raises(TypeError, match="contexts: 'order' must be an integer"):
        contexts([1, 2], None, 0)


def test_em_weight_and_context_bins_numbers():
    from fastnn.models.mixture import context_bins, em_weight
    with pytest.raises(TypeError, match="em_weight: 'max_iter' must be an integer"):
        em_weight([-1.0], [-2.0], max_iter=2.5)
    with pytest.raises(TypeError, match="context_bins: 'max_bucket' must be an integer"):
        context_bins([1, 2], [1, 2], pad_id=0, max_bucket="15")


def test_padded_stream_of_words_says_to_encode():
    from fastnn.models.ranking import padded_stream
    for sents in ([["the", "dog"]], [[1.5, 2.0]]):
        with pytest.raises(TypeError, match="padded_stream: sentence 0 must be a 1-d sequence of integer word ids"):
            padded_stream(sents, 3)


@pytest.mark.parametrize("batch", [None, [], (np.zeros((2, 2)),), 3])
def test_classifier_loss_needs_an_inputs_labels_pair(batch):
    from fastnn.models.classifiers import LogisticRegression
    with pytest.raises(TypeError, match=r"LogisticRegression.loss: 'batch' must be an \(inputs, labels\) pair"):
        LogisticRegression(3, n_features=2, seed=0).loss(batch)


@pytest.mark.parametrize("tokens", [None, 3, 2.5])
def test_vocab_encode_of_a_non_sequence(tokens):
    from fastnn.data import Vocab
    with pytest.raises(TypeError, match="Vocab.encode: 'tokens' must be a sequence of token strings"):
        Vocab.build([["a"]]).encode(tokens)


@pytest.mark.parametrize("make", ["ngram", "nplm", "ranker"])
def test_a_models_words_as_a_string(make):
    from fastnn.models.ngram import KneserNey
    from fastnn.models.ranking import WindowRanker
    from fastnn.recipes.lm import build_model, config_for
    build = {"ngram": lambda w: KneserNey(2, words=w),
             "nplm": lambda w: build_model(config_for("nplm", order=3, dim=2, hidden=2), 3, eos_id=0, words=w),
             "ranker": lambda w: WindowRanker(3, window=3, dim=2, hidden=2, init_scale=0.1, words=w)}[make]
    # 'abc' was the vocabulary ['a', 'b', 'c'], silently
    with pytest.raises(TypeError, match="'words' must be a list of words \\(vocab.words\\); got the string 'abc'"):
        build("abc")
    with pytest.raises(TypeError, match="'words' must be strings; got int 7 at position 1"):
        build(["a", 7, "c"])
    # a word twice: text was encoded to one of its ids, and a model file edited so loaded (its Vocab failed later)
    with pytest.raises(ValueError, match=r"'words' must be distinct \(one id per word\); got 'a' at positions 0 "
                                         r"and 2"):
        build(["a", "b", "a"])


def test_a_model_file_whose_words_repeat_one_is_refused_naming_the_file(tmp_path):
    import json

    from fastnn import io
    from fastnn.recipes.lm import build_model, config_for
    m = build_model(config_for("nplm", order=3, dim=2, hidden=2), 3, eos_id=1, words=["<unk>", "</s>", "a"])
    path = tmp_path / "m.npz"
    io.save_model(path, m)
    z = dict(np.load(path, allow_pickle=False))
    header = json.loads(str(z["__fastnn__"]))
    header["model_config"]["words"][2] = "<unk>"
    z["__fastnn__"] = np.array(json.dumps(header))
    np.savez(path, **z)
    with pytest.raises(ValueError, match=r"m.npz' has a configuration that does not build a NPLM: .*'words' must be "
                                         r"distinct"):
        io.load_model(path)


def test_lm_scores_a_torch_tensor_stream():
    torch = pytest.importorskip("torch")
    import warnings

    from fastnn.data import Vocab, lm_stream
    from fastnn.models.ngram import KneserNey
    from fastnn.recipes.lm import build_model, config_for
    sents = [["a", "b"], ["b", "c"]]
    vocab = Vocab.build(sents)
    stream = lm_stream(sents, vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kn = KneserNey(2).fit(torch.tensor(stream), len(vocab), vocab.eos_id)
    nplm = build_model(config_for("nplm", order=3, dim=2, hidden=2), len(vocab))
    # iterated, the tensor gave 0-d tensors: "sentence data[0] must be a sequence of integer word ids"
    for model in (kn, nplm):
        np.testing.assert_array_equal(model.token_logprobs(torch.tensor(stream)), model.token_logprobs(stream))


def test_lm_reads_an_array_like_of_sentences_as_sentences():
    import warnings

    from fastnn.data import Vocab, lm_stream
    from fastnn.models.ngram import KneserNey

    class SeriesLike:                   # a pandas Series of token lists: __array__ gives an object array
        def __init__(self, items):
            self.items = items

        def __array__(self, dtype=None, copy=None):
            a = np.empty(len(self.items), dtype=object)
            a[:] = self.items
            return a

        def __iter__(self):
            return iter(self.items)

        def __len__(self):
            return len(self.items)

    sents = [["a", "b"], ["b", "c"]]
    vocab = Vocab.build(sents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kn = KneserNey(2, words=vocab.words).fit(lm_stream(sents, vocab), len(vocab), vocab.eos_id)
    np.testing.assert_array_equal(kn.token_logprobs(SeriesLike(sents)), kn.token_logprobs(sents))


def test_model_switches_are_bools():
    from fastnn.models.nplm import NPLM
    with pytest.raises(TypeError, match="NPLM: 'direct' must be True or False; got 'no'"):
        NPLM(10, order=3, dim=4, hidden=5, direct="no", classes=0, dropout=0.0, init_scale=0.1)   # was direct=True


def test_window_batches_unk_replace_as_a_string():
    from fastnn.models.tagger import WindowBatches
    with pytest.raises(TypeError, match="WindowBatches: 'unk_replace' must be a real number; got '0.1'"):
        WindowBatches(None, batch_size=1, unk_replace="0.1")
