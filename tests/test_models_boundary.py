"""The neural LMs' public methods given what a user gives them: contexts of the wrong width or dtype, ids out of
range, a chunk of 0 or -1.  Errors name the model's method, never a kernel (gather_rows) or a layer (nn.linear); no
call returns uninitialised memory."""
import numpy as np
import pytest

from fastnn.recipes.lm import build_model, config_for


@pytest.fixture(scope="module")
def nplm():
    return build_model(config_for("nplm", order=3, dim=4, hidden=5), 10)


@pytest.mark.parametrize("ctx, err, msg", [([[1, 12]], IndexError, r"'contexts' must be in \[0, 10\); got 12"),
                                           ([[1, -1]], IndexError, r"'contexts' must be in \[0, 10\); got -1"),
                                           ([[1.0, 2.0]], TypeError, "'contexts' must have an integer dtype"),
                                           ([["a", "b"]], TypeError, r"the model has no vocabulary \('words' is "
                                                                     r"None\), so its contexts must be word ids"),
                                           ([[1, 2, 3]], ValueError, r"'contexts' must have shape \(B, 2\)"),
                                           ([1, 2], ValueError, r"'contexts' must have shape \(B, 2\)"),
                                           ([[1, 2], [3]], ValueError, r"'contexts' must have shape \(B, 2\), .*got "
                                                                       r"rows of lengths \[1, 2\]")])
def test_nplm_predict_names_itself(nplm, ctx, err, msg):
    with pytest.raises(err, match=f"^NPLM.predict: {msg}"):
        nplm.predict(ctx)


def test_nplm_predict_takes_lists_and_any_integer_dtype(nplm):
    ref = nplm.predict(np.array([[1, 2]]))
    for ctx in ([[1, 2]], np.array([[1, 2]], np.int32), np.array([[1, 2]], np.uint8)):
        np.testing.assert_array_equal(nplm.predict(ctx), ref)
    assert nplm.predict(np.zeros((0, 2), int)).shape == (0, 10)


def test_nplm_predict_reads_words_as_token_logprobs_reads_text():
    """predict took word ids only ("'contexts' must have an integer dtype; got <U4") where token_logprobs of the same
    model reads tokenised text; rows of different lengths were NumPy's "inhomogeneous shape", and a number among
    words became the string "2", read as <unk>."""
    words = ["<unk>", "</s>", "the", "jury", "said"]
    m = build_model(config_for("nplm", order=3, dim=4, hidden=5), 5, eos_id=1, words=words)
    np.testing.assert_array_equal(m.predict([["the", "jury"], ["jury", "zzz"]]), m.predict([[2, 3], [3, 0]]))
    np.testing.assert_array_equal(m.predict(np.array([["the", "jury"]])), m.predict([[2, 3]]))
    with pytest.raises(TypeError, match="^NPLM.predict: 'contexts' must be all word ids or all words; got both"):
        m.predict([["the", 3]])
    with pytest.raises(ValueError, match=r"^NPLM.predict: 'contexts' must have shape \(B, 2\), the 2 words"):
        m.predict(["the", "jury"])


def test_nplm_loss_names_its_targets(nplm):
    with pytest.raises(IndexError, match=r"^NPLM.loss: 'targets' must be in \[0, 10\); got 30"):
        nplm.loss(([[1, 2]], [30]))
    with pytest.raises(IndexError, match=r"^NPLM.loss: 'contexts' must be in \[0, 10\)"):
        nplm.loss(([[1, 20]], [3]))


@pytest.mark.parametrize("arch", ["nplm", "rnn", "lstm"])
@pytest.mark.parametrize("chunk, err", [(0, ValueError), (-1, ValueError), (2.5, TypeError)])
def test_token_logprobs_chunk_is_checked(arch, chunk, err):
    # chunk=-1 returned np.empty's contents (e.g. 5e-324) as log-probabilities
    model = build_model(config_for(arch, hidden=5, **({"order": 3, "dim": 4} if arch == "nplm" else {"classes": 0})),
                        10)
    with pytest.raises(err, match=r"token_logprobs: 'chunk' must be an integer >= 1"):
        model.token_logprobs([1, 2, 3], chunk=chunk)


# ---- mixtures of two LMs -------------------------------------------------------------------------------------------

def test_em_weight_with_a_token_impossible_under_both_models():
    from fastnn.models.mixture import em_weight
    a, b = np.array([-np.inf, -1.0, -2.0]), np.array([-np.inf, -1.5, -1.0])
    # was "mix_logprobs: 'weight' must be finite; got nan", about a weight the user never gave
    with pytest.raises(ValueError, match="em_weight: token 0 has probability 0 under both models"):
        em_weight(a, b)
    with pytest.raises(TypeError, match="em_weight: the log-probabilities must be arrays of numbers"):
        em_weight(["a"], ["b"])


def test_em_weight_with_a_token_impossible_under_one_model():
    from fastnn.models.mixture import em_weight
    with np.errstate(all="raise"):                  # (its EM step computed -inf + inf = nan on the way)
        lam, ll = em_weight(np.array([-np.inf, -1.0]), np.array([-1.0, -1.0]))
    assert lam < 1e-6 and ll == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("stream, pad_id, err, msg", [([1.5, 2.0], 0, ValueError, "'stream' must be a 1-d array of word ids"),
                                                      ("ab", 0, ValueError, "'stream' must be a 1-d array of word ids"),
                                                      ([1, 2], -1, ValueError, "'pad_id' must be an integer >= 0")])
def test_context_bins_checks_its_ids(stream, pad_id, err, msg):
    from fastnn.models.mixture import context_bins
    # float ids were truncated (1.5 -> 1) and counted, silently
    with pytest.raises(err, match=f"context_bins: {msg}"):
        context_bins(stream, [1, 2, 3], pad_id=pad_id)


def test_em_weights_n_bins_is_an_integer():
    from fastnn.models.mixture import em_weights
    a, b = np.log(np.full(4, 0.2)), np.log(np.full(4, 0.1))
    with pytest.raises(TypeError, match="em_weights: 'n_bins' must be an integer"):
        em_weights(a, b, np.array([0, 1, 2, 0]), n_bins="3")


# ---- the window-ranking LM -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ranker():
    from fastnn.models.ranking import WindowRanker
    return WindowRanker(10, window=3, dim=2, hidden=3, init_scale=0.1)


def test_ranker_evaluate_needs_one_negative_per_window(ranker):
    w = np.array([[1, 2, 3], [4, 5, 6]])
    # a single negative was broadcast to every window: a score of other corruptions than asked, silently
    for neg in ([7], 7):
        with pytest.raises(ValueError, match=r"WindowRanker.evaluate: 'negatives' must have shape \(B,\) = \(2,\)"):
            ranker.evaluate(w, neg)


@pytest.mark.parametrize("call, name", [(lambda m, w: m.loss((w, [7, 18])), "loss: 'negatives'"),
                                        (lambda m, w: m.loss((w + 10, [7, 8])), "loss: 'windows'"),
                                        (lambda m, w: m.scores(w - 5), "scores: 'windows'"),
                                        (lambda m, w: m.evaluate(w, [7, 80]), "evaluate: 'negatives'")])
def test_ranker_ids_out_of_range_are_named_by_the_model(ranker, call, name):
    with pytest.raises(IndexError, match=rf"^WindowRanker.{name} must be in \[0, 10\)"):
        call(ranker, np.array([[1, 2, 3], [4, 5, 6]]))


def test_negative_sampler_pad_id_in_range():
    from fastnn.models.ranking import NegativeSampler
    with pytest.raises(ValueError, match=r"NegativeSampler: 'pad_id' must be an id in \[0, 5\) or None; got 9"):
        NegativeSampler(np.ones(5), pad_id=9)


# ---- the recurrent LMs' training batch ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["rnn", "lstm"])
@pytest.mark.parametrize("batch, err, msg", [
    (lambda X: (X, X), TypeError, "the batch must be a BPTTBatches batch .*; got tuple of 2 items"),
    (lambda X: (X + 8, X, True, -1), IndexError, r"'x' must be in \[0, 10\); got 10"),
    (lambda X: (X, X + 8, True, -1), IndexError, r"'y' must be in \[0, 10\); got 10"),
    (lambda X: (X.astype(float), X, True, -1), TypeError, "'x' must have an integer dtype"),
    (lambda X: (X[0], X[0], True, -1), ValueError, "the batch's x and y must be 2-d"),
    (lambda X: (X, X, True, 0.5), TypeError, "the batch's carry must be an integer")])
def test_recurrent_loss_names_what_is_wrong_with_its_batch(arch, batch, err, msg):
    # errors came from tuple unpacking, the kernels (rnnlm_segment, gather_rows) or NumPy indexing
    model = build_model(config_for(arch, hidden=5, classes=3), 10, counts=np.arange(1, 11))
    name = {"rnn": "RNNLM", "lstm": "LSTMLM"}[arch]
    with pytest.raises(err, match=f"^{name}.loss: {msg}"):
        model.loss(batch(np.array([[1, 2], [3, 4]])))


def test_mix_logprobs_names_a_bad_per_token_weight():
    from fastnn.models.mixture import mix_logprobs
    a, b = np.log(np.full(3, 0.2)), np.log(np.full(3, 0.1))
    with pytest.raises(ValueError, match=r"per-token 'weight' must be an array of shape \(3,\) in \[0, 1\]; got nan at position 1"):
        mix_logprobs(a, b, np.array([0.5, np.nan, 0.5]))



@pytest.mark.parametrize("arch", ["nplm", "rnn"])
def test_neural_lm_counts_and_init_scale(arch):
    from fastnn.models.nplm import NPLM
    from fastnn.models.rnnlm import RNNLM
    shared = dict(hidden=5, classes=0, dropout=0.0)
    if arch == "nplm":
        make = lambda **kw: NPLM(10, order=3, dim=4, direct=False, **shared, **kw)             # noqa: E731
    else:
        make = lambda **kw: RNNLM(10, embed=None, activation="tanh", init="glorot", clip=0.0, **shared, **kw)  # noqa
    counts = np.arange(1.0, 11.0)
    # negative counts were clipped to 0.5 (a uniform output bias), NaN ones failed in an init helper
    for bad, at in ((-counts, "-1.0 for word 0"), (np.where(np.arange(10) == 2, np.nan, counts), "nan for word 2")):
        with pytest.raises(ValueError, match=f"'counts' must be finite and >= 0 .*; got {at}"):
            make(counts=bad, init_scale=0.1)
    with pytest.raises(ValueError, match="'init_scale' must be finite"):       # (NaN weights: a nan first loss)
        make(counts=counts, init_scale=float("nan"))


# ---- the tagger ----------------------------------------------------------------------------------------------------

def test_tagger_predict_refuses_the_encoding_of_other_sentences():
    from fastnn.recipes import tagger
    sents = [s.split() for s in ["John lives in Paris", "the cat runs"]] * 3
    rows = [[(w, "NNP" if w[0].isupper() else "NN") for w in s] for s in sents]
    model, _ = tagger.train(tagger.TaggerConfig(tasks={"pos": 1}, epochs=1, hidden=4, embed_dim=4), rows, quiet=True)
    assert model.predict(rows[:2], model.encode(rows[:2], targets=False)) == model.predict(rows[:2])
    # another corpus's encoding gave its tags for these sentences (and evaluate scored them), silently
    for other in (rows[1:3], rows[2:5]):
        with pytest.raises(ValueError, match="'encoded' must be self.encode\\(sentences\\) of these 2 sentences"):
            model.evaluate(rows[:2], model.encode(other, targets=False))
    with pytest.raises(TypeError, match="'encoded' must be self.encode\\(sentences\\) \\(a TaggerBatch\\)"):
        model.predict(rows[:2], "x")


def test_neural_lm_eos_id_must_be_the_words_eos():
    words = ["<unk>", "</s>", "a", "b"]
    with pytest.raises(ValueError, match=r"NPLM: 'eos_id' must be the id of '</s>' in 'words', 1; got 0"):
        build_model(config_for("nplm", order=3, dim=4, hidden=5), 4, eos_id=0, words=words)
