"""n-gram models given what a user gives them: an order beyond the longest training sentence (the CLI's --order 7 on
short sentences), an order < 1, an empty corpus, a plain string instead of tokens."""
import warnings

import numpy as np
import pytest

from fastnn.data import Vocab, lm_stream
from fastnn.models.ngram import DeletedInterpolation, KneserNey

SHORT = [["a", "b"], ["b"], ["a"]]          # with <s> and </s>: at most 4-grams


def _fit(model, data, vocab):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # (fallback discounts on a tiny corpus)
        if isinstance(model, DeletedInterpolation):
            return model.fit(data, len(vocab), vocab.eos_id, valid=data)
        return model.fit(data, len(vocab), vocab.eos_id)


@pytest.mark.parametrize("make", [lambda o, b: KneserNey(o, bos=b),
                                  lambda o, b: DeletedInterpolation(o, bos=b),
                                  lambda o, b: DeletedInterpolation(o, bos=b, classes="longest_seen")],
                         ids=["kn", "di", "di-longest"])
@pytest.mark.parametrize("bos", [True, False])
def test_order_beyond_the_longest_sentence(make, bos):
    # orders with no training k-gram have empty tables; scoring indexed them with -1 (IndexError)
    vocab = Vocab.build(SHORT)
    stream = lm_stream(SHORT, vocab)
    m = _fit(make(7, bos), stream, vocab)
    ppl = m.perplexity(stream)
    assert np.isfinite(ppl) and ppl > 1
    for history in ([], [2], [2, 3, 2, 3, 2, 3]):
        p = m.prob_vector(history)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert m.logprob(2, history) == pytest.approx(np.log(p[2]), abs=1e-12)
    lp = m.token_logprobs(stream)
    assert lp.shape == stream.shape and np.all(np.isfinite(lp))


@pytest.mark.parametrize("order, err", [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("3", TypeError)])
def test_order_below_one_or_not_an_integer(order, err):
    with pytest.raises(err, match=r"KneserNey: 'order' must be an integer >= 1"):
        KneserNey(order)


def test_empty_corpus_and_plain_strings():
    vocab = Vocab.build(SHORT)
    with pytest.raises(ValueError, match="at least one sentence"):
        KneserNey(2).fit([], len(vocab), vocab.eos_id)
    for text in ("a b", ["a", "b"]):            # a string, or one sentence without its list: say how to tokenise
        with pytest.raises(TypeError, match="must be tokenised sentences"):
            KneserNey(2, words=vocab.words).fit(text, len(vocab), vocab.eos_id)


def test_eos_id_must_be_the_words_eos():
    vocab = Vocab.build(SHORT)
    # text is encoded with the words' </s> (id 1): eos_id=3 made the model end sentences at another word, silently
    with pytest.raises(ValueError, match=r"KneserNey.fit: 'eos_id' must be the id of '</s>' in the model's words, 1; "
                                         r"got 3"):
        KneserNey(2, words=vocab.words).fit(SHORT, len(vocab), 3)
