"""Boundary defects left between modules: a pipe read whole by every reader, vectors files that read back, tag
scheme messages, empty sentences in language-model text, pretrain's data-size message."""
import os
import sys

import pytest


def _pipe(text):
    """A path naming the read end of a pipe holding `text` (as bash's <(zcat corpus.gz) or /dev/stdin give)."""
    r, w = os.pipe()
    data = text.encode()
    assert len(data) < 60000                        # (the pipe's buffer holds it: no writer thread needed)
    os.write(w, data)
    os.close(w)
    return f"/dev/fd/{r}", r


pipes = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/fd/N reopens a pipe on Linux")


def _lines(n=600):
    return "".join(" ".join(f"w{j}" for j in range(i % 7 + 1)) + "\n" for i in range(n))


@pipes
@pytest.mark.parametrize("fmt", ["auto", "text"])
def test_read_corpus_reads_a_pipe_whole(fmt):
    """detect_format opened the path, then the reader opened it again: a pipe gave only what the look had left."""
    from fastnn.embed import read_corpus
    path, r = _pipe(_lines())
    try:
        report = []
        sents = read_corpus([path], fmt, report=report)
    finally:
        os.close(r)
    assert len(sents) == 600 and sents[0] == ["w0"] and sents[-1] == [f"w{j}" for j in range(599 % 7 + 1)]
    assert report[0][1:3] == ("text", 600)


@pytest.mark.parametrize("tag, says", [("0", r"not '0' \(the digit\)"), ("b-PER", "got a lower-case one"),
                                       ("U-PER", "BILOU tags"), ("NN", r"must hold chunk tags like the training data")])
def test_tagger_eval_says_how_chunk_tags_are_written(tag, says):
    """An eval file writing '0' for 'O' (or 'b-per', BILOU) got "must hold chunk tags like the training data (IOB1);
    got '0'", not detect_scheme's explanation of what to change."""
    from fastnn.models import tagger as T
    from fastnn.recipes import tagger as recipe
    train = [[("Paris", "I-LOC"), ("sleeps", "O")], [("Smith", "I-PER"), ("runs", "O")]]
    model = T.WindowTagger.build(train, {"ner": 1}, **recipe.model_options(recipe.TaggerConfig()))
    dev = [[("Paris", "I-LOC"), ("runs", "O")], [("Smith", tag), ("sleeps", "0" if tag == "0" else "O")]]
    for call in (model.check_gold, model.evaluate):
        with pytest.raises(ValueError, match=r"task 'ner' \(column 1\)") as e:
            call(dev)
        assert e.match(says)
    if tag == "0":      # a column of 0s alone: no tag says chunk, but the model does
        with pytest.raises(ValueError, match=r"sentence 0, token 0 has '0': outside a chunk must be 'O'"):
            model.check_gold([[("Paris", "0"), ("runs", "0")]])


def test_lm_stream_names_a_vocab_that_is_not_one():
    from fastnn.data.text import lm_stream
    for bad in (None, ["a", "</s>"]):
        with pytest.raises(TypeError, match="lm_stream: 'vocab' must be a fastnn.data.Vocab"):
            lm_stream([["a"]], bad)


@pytest.mark.filterwarnings("ignore:KneserNey.fit")         # (too little data for its discounts)
def test_an_empty_sentence_is_scored_as_its_end_of_sentence():
    """lm_stream and the ids' reader make [[]] the stream [</s>], as SRILM and KenLM score an empty line; text of
    empty sentences alone was refused as "at least one token"."""
    import numpy as np
    from fastnn.data.vocab import Vocab
    from fastnn.models.ngram import KneserNey
    from fastnn.data.text import lm_stream
    v = Vocab.build([["a", "b"], ["b", "a", "a"]], min_count=1)
    train = lm_stream([["a", "b"], ["b", "a", "a"]] * 3, v)
    m = KneserNey(2, words=v.words).fit(train, len(v), v.eos_id)
    eos2 = np.full(2, v.eos_id)
    assert np.array_equal(lm_stream([[], []], v), eos2)
    assert m.perplexity([[]]) == m.perplexity(eos2[:1]) > 1
    assert m.perplexity([[], []]) == m.perplexity(eos2)
    assert m.perplexity([["a"], []]) == m.perplexity(lm_stream([["a"], []], v))


def test_pretrain_rnn_on_too_little_text_names_its_option():
    """BPTTBatches' "at least batch_size=64 tokens" named no pretrain option nor how much text there was."""
    from fastnn.recipes.embed import pretrain
    with pytest.raises(ValueError, match=r"pretrain: the 'rnn' objective reads batch_size=64 parallel streams .* at "
                                         r"least 64 tokens .*; got 2 in 1 sentences\. .* smaller 'batch_size'"):
        pretrain("rnn", [["a"]], min_count=1, quiet=True)
    with pytest.raises(ValueError, match=r"got 12 in 4 sentences, after valid_fraction=0.2 held out 1 sentences"):
        pretrain("rnn", [["a", "b"]] * 5, min_count=1, quiet=True, valid_fraction=0.2, batch_size=13)
    res = pretrain("rnn", [["a", "b"]] * 5, min_count=1, quiet=True, valid_fraction=0.2, batch_size=4, epochs=1,
                   dim=4, hidden=4)
    assert res.vectors.shape == (4, 4)


def _word2vec_binary():
    import numpy as np
    rows = [(b"a", [0.5, -1.7, 3.1e-7]), (b"bb", [9e9, -0.3, 0.77])]
    return b"2 3\n" + b"".join(w + b" " + np.array(v, dtype="<f4").tobytes() + b"\n" for w, v in rows)


@pipes
def test_read_vectors_names_word2vec_binary_on_stdin_and_pipes(monkeypatch):
    """The hint re-opened the path to read its header: "-" (stdin) was a bare FileNotFoundError '-', and a pipe
    gave its remainder (no header, no hint)."""
    import io
    from fastnn.data.vectors import read_vectors
    says = r"must be UTF-8 text.* It looks like word2vec's binary format"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_word2vec_binary())))
    with pytest.raises(ValueError, match=r"read_vectors: stdin " + says):
        read_vectors("-")
    r, w = os.pipe()
    os.write(w, _word2vec_binary())
    os.close(w)
    try:
        with pytest.raises(ValueError, match=says):
            read_vectors(f"/dev/fd/{r}")
    finally:
        os.close(r)
