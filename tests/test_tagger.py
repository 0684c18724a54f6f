"""Window taggers (fastnn.models.tagger): SLL against brute force, gradients, multitask sharing, data handling,
training on a synthetic task, save/load, pretrained vectors; one slow test on CoNLL-2003."""
import functools

import numpy as np
import pytest

from fastnn import graph, io, nn
from fastnn.data import conll
from fastnn.data.features import CAPS_ALL, CAPS_FIRST
from fastnn.data.tags import convert, recode
from fastnn.data.vectors import init_pretrained, load_pretrained, write_vectors
from fastnn.gradcheck import run_case
from fastnn.models import tagger as T
from fastnn.optim import AdaGrad
from fastnn.recipes import tagger as recipe
from tests.conftest import data_path

# ---- the sentence-level log-likelihood -----------------------------------------------------------------------------
@pytest.mark.parametrize("name_build", T.gradcheck_cases(), ids=lambda c: c[0])
def test_gradcheck_cases_pass(name_build):
    report = run_case(name_build[1], seed=0)
    assert report.ok, str(report)
    names = {c.name for c in report}
    assert "hidden.W" in names and "embed.W" in names


# ---- multitask sharing ---------------------------------------------------------------------------------------------


def test_multitask_loss_is_the_weighted_sum_of_task_losses_on_one_hidden_vector(rng):
    model, batch = T._tiny_tagger(np.random.default_rng(3), "sentence", 2, True)   # sentence-level, two tasks
    w = [t["weight"] for t in model.tasks]
    assert w == [1.0, 0.5]
    offs = batch.offsets
    assert (batch.targets[offs[-2]:, 1] == -1).all() and (batch.targets[:offs[-2], 1] >= 0).all()

    def part(k, h):
        """Task k's loss alone; task 1 only on the sentences labelled for it (all but the last)."""
        if k == 0:
            return nn.sentence_nll(model.heads[0](h), batch.targets[:, 0], offs, model.transitions[0])
        rows = np.arange(offs[-2])
        return nn.sentence_nll(model.heads[1](nn.take(h, rows)), batch.targets[rows, 1], offs[:-1],
                              model.transitions[1])

    total = model.loss(batch)
    h = model.hidden_layer(batch)
    parts = [part(k, h) for k in range(2)]
    assert float(total.value) == pytest.approx(sum(wk * float(p.value) for wk, p in zip(w, parts)), rel=1e-12)
    # the shared hidden layer's gradient is the sum of the tasks' gradients
    grads = []
    for k in range(2):
        model.zero_grad()
        part(k, model.hidden_layer(batch)).backward()
        grads.append(model.hidden.W.grad.copy())
    model.zero_grad()
    model.loss(batch).backward()
    np.testing.assert_allclose(model.hidden.W.grad, grads[0] + 0.5 * grads[1], rtol=1e-10, atol=1e-12)
    assert [n for n in model.parameters() if n.startswith("heads")] == ["heads.0.W", "heads.0.b", "heads.1.W",
                                                                       "heads.1.b"]


# ---- tag encodings and data ----------------------------------------------------------------------------------------


def _corpus():
    """A small CoNLL-2003-like corpus: word pos chunk ner (IOB1)."""
    rows = [
        [("Peter", "NNP", "I-NP", "I-PER"), ("Blackburn", "NNP", "I-NP", "I-PER"), ("said", "VBD", "I-VP", "O")],
        [("EU", "NNP", "I-NP", "I-ORG"), ("rejects", "VBZ", "I-VP", "O"), ("German", "JJ", "I-NP", "I-MISC"),
         ("lamb", "NN", "I-NP", "O"), ("in", "IN", "I-PP", "O"), ("1996", "CD", "I-NP", "O"),
         ("Paris", "NNP", "I-NP", "I-LOC"), ("London", "NNP", "I-NP", "B-LOC")],
        [(".", ".", "O", "O")],
    ]
    return rows


def test_build_encodes_features_and_trains_in_iobes_but_predicts_in_the_file_encoding():
    sents = _corpus()
    m = _build(sents, {"ner": 3, "pos": "pos"}, loss="word", suffix_len=2, suffix_dim=3, hidden=8)
    ner, pos = m.tasks
    assert ner["file_scheme"] == "iob1" and ner["scheme"] == "iobes" and pos["scheme"] is None
    assert "S-LOC" in ner["tags"] and "B-PER" in ner["tags"] and "E-PER" in ner["tags"]
    enc = m.encode(sents)
    assert enc.words.shape == (12, 5) and enc.targets.shape == (12, 2) and list(enc.offsets) == [0, 3, 11, 12]
    assert enc.words[0, :2].tolist() == [0, 0]                       # padding left of the first token
    assert m.vocab.words[enc.words[8, 2]] == "0000"                  # digits normalised, lowercased
    assert enc.caps[0, 2] == CAPS_FIRST and enc.caps[3, 2] == CAPS_ALL
    assert m.suffix_vocab.words[enc.feats[0][1, 2]] == "rn" and len(enc.feats) == 1
    # gold ids decoded and converted back reproduce the file's IOB1 column exactly
    ids = enc.targets[:, 0]
    names = [ner["tags"][i] for i in ids]
    back = recode([names[0:3], names[3:11], names[11:12]], "iobes", "iob1")
    assert back == conll.column(sents, 3)
    assert m.encode(sents)._fields == T.TaggerBatch._fields


def test_word_shape_and_suffix_features():
    cased = _build(_corpus(), {"ner": 3}, loss="word", hidden=4, lowercase=False)
    assert "Paris" in cased.vocab and "paris" not in cased.vocab and cased.config()["lowercase"] is False
    m = _build(_corpus(), {"ner": 3}, loss="word", suffix_len=3, suffix_dim=2, shape_dim=3, hidden=4)
    enc = m.encode(_corpus())
    assert len(enc.feats) == 2 and m.shape_vocab.words[enc.feats[1][1, 2]] == "Xx"
    assert m.hidden.W.shape == (4, 5 * (50 + 5 + 2 + 3))
    assert {"suffix.W", "shape.W"} <= set(m.parameters())
    assert "shape=3" in repr(m)
    several = _build(_corpus(), {"ner": 3}, loss="word", suffix_len=(1, 3), suffix_dim=2,
                                   prefix_len=2, prefix_dim=1, hidden=4)
    assert several.config()["suffix_len"] == [1, 3]
    enc = several.encode(_corpus())
    row = enc.words[1, 2]                                          # a window's centre word and its three slots
    word = several.vocab.words[row]
    assert [several.suffix_vocab.words[enc.feats[0][1, 2]], several.suffix_vocab.words[enc.feats[1][1, 2]],
            several.prefix_vocab.words[enc.feats[2][1, 2]]] == [word[-1:], word[-3:], word[:2]]
    assert several.hidden.W.shape == (4, 5 * (50 + 5 + 2 + 2 + 1))
    with pytest.raises(ValueError, match="'suffix_len' must be an int >= 0 or distinct ints >= 1"):
        _build(_corpus(), {"ner": 3}, suffix_len=(2, 2), suffix_dim=2)


def test_character_feature_spells_each_window_word_and_learns_from_spelling_alone(tmp_path):
    m = _build(_corpus(), {"pos": 1}, loss="word", char_dim=3, char_filters=4, hidden=4)
    assert m.hidden.W.shape == (4, 5 * (50 + 5 + 4)) and "chars=3x4/3" in repr(m)
    assert {"char_cnn.chars.W", "char_cnn.conv.W", "char_cnn.conv.b"} <= set(m.parameters())
    new = [[("Lüis", "NNP"), ("said", "VBD")]]                    # "ü" was never seen: <unk> character
    b = m.encode(new).batch(rows=np.arange(2))
    ids, lengths = b.chars
    spelled = ["".join(m.char_vocab.words[c] if c > 1 else "?" for c in ids[f, :n]) for f, n in zip(
        b.forms[:, 2], lengths[b.forms[:, 2]])]
    assert spelled == ["L?is", "said"]
    assert lengths[b.forms[0, 0]] == 1 and ids[b.forms[0, 0], 0] == 0       # window padding: one pad character
    assert ids.shape[1] == lengths.max()                                     # columns trimmed to the batch
    # a task only the spelling can solve: every test word is unseen, tagged by its last letter
    rng = np.random.default_rng(0)

    def corpus(n):
        out = []
        for _ in range(n):
            ws = ["".join(rng.choice(list("abcdefgh"), rng.integers(3, 7))) for _ in range(rng.integers(2, 6))]
            out.append([(w, "V" if w[-1] in "abcd" else "N") for w in ws])
        return out
    train, dev = corpus(300), corpus(60)
    kw = dict(loss="word", hidden=16, embed_dim=8, window=1, min_count=2, caps_dim=0, seed=0)
    chars = _build(train, {"pos": 1}, char_dim=4, char_filters=8, **kw)
    plain = _build(train, {"pos": 1}, **kw)
    for m in (chars, plain):
        recipe.fit(m, train, None, epochs=8, lr=0.1, batch_size=16, quiet=True)
    assert chars.evaluate(dev)["pos"]["accuracy"] > 95 > plain.evaluate(dev)["pos"]["accuracy"] + 20
    io.save_model(tmp_path / "c.npz", chars)
    again = io.load_model(tmp_path / "c.npz")
    assert repr(again) == repr(chars) and again.predict(dev) == chars.predict(dev)
    with pytest.raises(ValueError, match="'chars' must be given exactly when char_dim > 0"):
        _new(chars.vocab.words, chars.tasks, char_dim=2)
    with pytest.raises(ValueError, match="'width' must be an odd positive integer"):
        _build(train, {"pos": 1}, char_dim=2, char_width=2)


def test_sentences_without_a_tasks_column_train_only_the_other_tasks():
    wsj = [[("Oslo", "NNP", "I-NP"), ("sings", "VBZ", "I-VP")], [("Rain", "NN", "I-NP")]]   # no NER column
    mixed = _corpus() + wsj
    m = _build(mixed, {"ner": 3, "pos": 1}, loss="sentence", hidden=4)
    enc = m.encode(mixed, partial=True)
    n_own = sum(len(s) for s in _corpus())
    assert (enc.targets[n_own:, 0] == -1).all() and (enc.targets[:n_own] >= 0).all()
    assert (enc.targets[n_own:, 1] >= 0).all() and "VBZ" in m.tasks[1]["tags"]
    with pytest.raises(IndexError, match="task 'ner' reads column 3, but the data has 3 columns"):
        m.encode(mixed)                                  # dev / eval data must have every column
    # the loss of a batch of only unlabelled NER sentences is the POS loss alone
    only_wsj = m.encode(wsj, partial=True).batch(sentences=np.arange(2))
    alone = nn.sentence_nll(m.heads[1](m.hidden_layer(only_wsj)), only_wsj.targets[:, 1], only_wsj.offsets,
                           m.transitions[1])
    m.eval()
    assert float(m.loss(only_wsj).value) == pytest.approx(float(alone.value))
    assert len(m.batches(mixed + [[("x",)]]).enc.offsets) - 1 == len(mixed)     # a words-only sentence is left out
    with pytest.raises(ValueError, match="no token of the batch is labelled for any task"):
        m.loss(only_wsj._replace(targets=np.full_like(only_wsj.targets, -1)))
    recipe.fit(m, mixed, _corpus(), epochs=1, quiet=True)


def test_encode_errors_name_the_task_and_tag():
    sents = _corpus()
    m = _build(sents, {"ner": 3}, loss="word", hidden=4)
    bad = [[("x", "NN", "I-NP", "I-WEIRD")]]
    with pytest.raises(ValueError, match="'ner'.*'I-WEIRD'"):
        m.encode(bad)
    with pytest.raises(IndexError, match="column 3"):
        m.encode([[("x", "NN", "I-NP")]])
    with pytest.raises(IndexError, match="column 5"):
        _build(sents, {"ner": 5})
    pred = m.predict([[("unseen",), ("Words",)]])       # prediction needs only the word column
    assert len(pred["ner"][0]) == 2 and all(t == "O" or t[:2] in ("I-", "B-") for t in pred["ner"][0])


def test_feature_column_is_an_input_read_from_the_same_column_and_saved(tmp_path):
    # the target copies column 1 shifted by one token: learnable from the column's feature alone (words are noise)
    rng = np.random.default_rng(3)

    def corpus(n):
        out = []
        for _ in range(n):
            cue = rng.choice(["A", "B", "C"], size=int(rng.integers(2, 7)))
            words = rng.choice([f"w{i}" for i in range(40)], size=len(cue))
            tags = ["X"] + [f"T{c}" for c in cue[:-1]]
            out.append(list(zip(words, cue, tags)))
        return out

    train, dev = corpus(300), corpus(60)
    for columns in ({"cue": (1, 3)}, None):
        m = _build(train, {"tag": 2}, columns=columns, loss="word", hidden=16, window=3, embed_dim=4,
                                 embed_scale=0.1)
        recipe.fit(m, train, None, epochs=4, lr=0.3, quiet=True)
        acc = m.evaluate(dev)["tag"]["accuracy"]
        assert (acc > 98) if columns else (acc < 60), acc
    assert m.columns == [] and "cue" in repr(_build(train, {"tag": 2}, columns={"cue": ("pos", 3)}))
    m = _build(train, {"tag": 2}, columns={"cue": (1, 3)}, loss="word", hidden=16, window=3)
    assert m.columns[0]["values"] == ["<pad>", "<unk>", "A", "B", "C"] and m.column_tables[0].W.shape == (5, 3)
    assert m.hidden.W.shape[1] == 3 * (50 + 5 + 3)
    enc = m.encode([[("w1", "B", "X"), ("w2", "Z", "TB")]])
    assert enc.feats[0].tolist() == [[0, 3, 1], [3, 1, 0]]       # B, then the unseen Z as <unk>, <pad> at the edges
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    assert m2.columns == m.columns and m2.predict(dev) == m.predict(dev)
    with pytest.raises(IndexError, match=r"feature 'cue' reads column 1 as an input, but sentence 1 has 1 "
                                         r"column: \[\('w2',\)\]\. Give every token that column"):
        m2.predict([[("w1", "A")], [("w2",)]])                 # numbered from 0 (was 2), as every sentence message
    with pytest.raises(IndexError, match="sentence 0 has 1 column"):
        m2.predict([["w1", "w2"]])                               # plain tokens, as from_preset("chunk") users pass
    assert m2.encode([[], [("w1", "A")]], targets=False) is not None     # an empty sentence has no columns to miss
    with pytest.raises(IndexError, match="feature 'cue' reads column 4"):
        _build(train, {"tag": 2}, columns={"cue": (4, 3)})



def _build(sents, tasks, **kw):
    """WindowTagger.build with TaggerConfig's values for what `kw` leaves out (the model writes no defaults)."""
    return T.WindowTagger.build(sents, tasks, **{**recipe.model_options(recipe.TaggerConfig()), **kw})


def _new(words, tasks, **kw):
    """WindowTagger(words, tasks) with TaggerConfig's values for what `kw` leaves out."""
    options = recipe.model_options(recipe.TaggerConfig())
    for build_only in ("task_weights", "columns", "scheme", "min_count"):
        del options[build_only]
    return T.WindowTagger(words, tasks, **{**options, **kw})

@pytest.mark.parametrize("by_sentence", [False, True])
def test_batches_cover_every_token_once_and_are_reproducible(by_sentence):
    rng = np.random.default_rng(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    sents = [[("x" + letters[rng.integers(26)] + letters[rng.integers(26)], "NN", "O", str(rng.choice(["O", "I-PER"])))
              for _ in range(rng.integers(1, 9))] for _ in range(40)]
    m = _build(sents, {"ner": 3}, loss="sentence" if by_sentence else "word", hidden=4)
    data = m.batches(sents, batch_size=7, unk_replace=0.5)
    plain = m.batches(sents, batch_size=7)
    plan, clean = data.epoch(np.random.default_rng(1)), plain.epoch(np.random.default_rng(1))
    seen = 0
    rare = m.vocab.counts == 1
    n_replaced = 0
    for i in range(len(plan)):
        b, c = plan[i], clean[i]
        if by_sentence:
            assert b.offsets[0] == 0 and b.offsets[-1] == len(b.words)
            assert np.all(b.words[b.offsets[:-1], 1] == 0)     # whole sentences: padding left of each first token
        np.testing.assert_array_equal(b.targets, c.targets)
        changed = b.words != c.words
        assert np.all(b.words[changed] == m.vocab.unk_id) and np.all(rare[c.words[changed]])
        n_replaced += changed.sum()
        seen += len(b.words)
    assert seen == sum(len(s) for s in sents)
    assert n_replaced > 0
    np.testing.assert_array_equal(data.epoch(np.random.default_rng(1))[2].words, plan[2].words)


def test_bucketed_sentence_batches_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 400)
    sents = [[("w", "NN", "O", "O")] * int(n) for n in lengths]
    m = _build(sents, {"ner": 3}, loss="sentence", hidden=4)
    enc = m.encode(sents)

    def spread(bucket):
        plan = m.batches(enc, batch_size=60, bucket=bucket).epoch(np.random.default_rng(0))
        spans = [np.ptp(np.diff(plan[i].offsets)) for i in range(len(plan))]
        assert sum(len(plan[i].words) for i in range(len(plan))) == lengths.sum()
        return np.mean(spans)

    assert spread(20) < 0.5 * spread(0)


# ---- training ------------------------------------------------------------------------------------------------------


def _synthetic(rng, n_sent, n_words=30):
    """Tags determined by the word and its left neighbour: a window tagger can learn them exactly."""
    out = []
    for _ in range(n_sent):
        ws = rng.integers(0, n_words, rng.integers(2, 10))
        rows = []
        for i, w in enumerate(ws):
            prev = ws[i - 1] if i else -1
            ner = "I-X" if w % 3 == 0 else ("I-Y" if prev % 3 == 0 and w % 2 == 0 else "O")
            word = "w" + chr(97 + w // 26) + chr(97 + w % 26)          # letters: digits would be normalised
            rows.append((word if w % 5 else word.upper(), f"P{w % 4}", "O", ner))
        out.append(rows)
    return out


@pytest.mark.parametrize("loss", ["word", "sentence"])
def test_training_learns_a_synthetic_multitask_problem(loss):
    rng = np.random.default_rng(0)
    train, dev = _synthetic(rng, 300), _synthetic(rng, 60)
    m = _build(train, {"ner": 3, "pos": 1}, loss=loss, hidden=32, embed_dim=10, window=3, seed=0)
    trainer = recipe.fit(m, train, dev, epochs=6, lr=0.1, batch_size=16, quiet=True)
    res = m.evaluate(dev)
    assert res["ner"]["f1"] > 97 and res["pos"]["accuracy"] > 99
    assert trainer.best_score == pytest.approx(T.main_score(res))
    assert [h["epoch"] for h in trainer.history] == list(range(1, 7))


def test_save_load_round_trip_predicts_the_same(tmp_path):
    rng = np.random.default_rng(1)
    train = _synthetic(rng, 50)
    m = _build(train, {"ner": 3}, loss="sentence", hidden=8, suffix_len=2, suffix_dim=2)
    recipe.fit(m, train, None, epochs=1, quiet=True)
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    assert isinstance(m2, T.WindowTagger) and repr(m2) == repr(m)
    assert m2.predict(train) == m.predict(train)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert "param/transitions.0.A" in z.files


def test_frozen_embeddings_do_not_move_and_pretrained_vectors_are_copied(tmp_path):
    rng = np.random.default_rng(2)
    train = _synthetic(rng, 40)
    words = ["cat", "Dog", "CAT", "zzz", "2024"]            # "CAT" normalises like "cat": the first one is kept
    vecs = rng.standard_normal((5, 6)).astype(np.float32)
    write_vectors(tmp_path / "v.txt", words, vecs)
    pw, pv = load_pretrained(tmp_path / "v.txt")
    assert pw == ["cat", "dog", "zzz", "0000"]
    np.testing.assert_array_equal(pv[0], vecs[0])
    m = _build(train, {"ner": 3}, embed_dim=6, hidden=8, freeze_embeddings=True,
                             extra_words=pw)
    assert "zzz" in m.vocab and "0000" in m.vocab
    n = init_pretrained(m.embed.W.value, m.vocab, pw, pv, std=None)
    assert n == 4
    np.testing.assert_array_equal(m.embed.W.value[m.vocab.index("dog")], vecs[1])
    before = m.embed.W.value.copy()
    recipe.fit(m, train, None, epochs=1, quiet=True)
    np.testing.assert_array_equal(m.embed.W.value, before)
    assert not np.array_equal(m.hidden.W.value, T.WindowTagger.from_config(m.config()).hidden.W.value)
    small = _build(train, {"ner": 3}, embed_dim=5, hidden=4)
    with pytest.raises(ValueError, match="dimension 5; got 6. Build the model with embed_dim=6"):
        init_pretrained(small.embed.W.value, small.vocab, pw, pv)


def test_pretrained_vectors_are_rescaled_to_the_tables_starting_scale_by_default():
    rng = np.random.default_rng(3)
    train = _synthetic(rng, 20)
    pw = ["w1", "w2", "w3", "zzz"]
    pv = (rng.standard_normal((4, 6)) * 2.0).astype(np.float32)       # language-model vectors: far larger entries
    m = _build(train, {"ner": 3}, embed_dim=6, hidden=8, extra_words=pw, embed_scale=0.01)
    start = m.embed.W.value.std()
    assert abs(start - 0.01 / np.sqrt(3)) < 0.002                        # U(-s, s) has std s / sqrt(3)
    init_pretrained(m.embed.W.value, m.vocab, pw, pv)
    rows = np.stack([m.embed.W.value[m.vocab.index(w)] for w in pw])
    np.testing.assert_allclose(rows.std(), start, rtol=1e-5)
    np.testing.assert_allclose(rows, pv * (start / pv.std()), rtol=1e-5)     # one factor for all of them
    init_pretrained(m.embed.W.value, m.vocab, pw, pv, std=0.5)
    np.testing.assert_allclose(np.stack([m.embed.W.value[m.vocab.index(w)] for w in pw]).std(), 0.5, rtol=1e-5)
    for bad in (0, -1.0, "big", float("nan")):
        with pytest.raises(ValueError, match="'std' must be"):
            init_pretrained(m.embed.W.value, m.vocab, pw, pv, std=bad)


def test_output_biases_start_at_the_log_prior_of_the_training_tags():
    sents = _corpus()
    for loss in ("word", "sentence"):
        m = _build(sents, {"ner": 3, "pos": 1}, loss=loss, hidden=8)
        for t, head in zip(m.tasks, m.heads):
            gold = recode(conll.column(sents, t["column"]), t["file_scheme"], t["scheme"])
            counts = np.array([sum(x == tag for s in gold for x in s) for tag in t["tags"]], dtype=np.float64) + 1
            np.testing.assert_allclose(head.b.value, np.log(counts / counts.sum()), rtol=1e-5)
        # the other parameters start as without it (same draws), and prior_bias=False gives zeros
        z = _build(sents, {"ner": 3, "pos": 1}, loss=loss, hidden=8, prior_bias=False)
        assert all(not h.b.value.any() for h in z.heads)
        np.testing.assert_array_equal(z.hidden.W.value, m.hidden.W.value)
        np.testing.assert_array_equal(z.heads[1].W.value, m.heads[1].W.value)
    # the most frequent tag wins on a window the weights say nothing about
    m = _build(sents, {"ner": 3}, loss="word", hidden=8)
    assert m.tasks[0]["tags"][int(np.argmax(m.heads[0].b.value))] == "O"
    with pytest.raises(ValueError, match="one entry per task"):
        _new(m.vocab.words, m.tasks, tag_counts=[[1], [2]])


def test_constructor_validates_arguments():
    words = ["<pad>", "<unk>", "a"]
    tasks = [{"name": "t", "column": 1, "tags": ["A", "B"], "scheme": None, "file_scheme": None}]
    with pytest.raises(ValueError, match="window"):
        _new(words, tasks, window=4)
    with pytest.raises(ValueError, match="loss"):
        _new(words, tasks, loss="crf")
    with pytest.raises(ValueError, match="<pad>"):
        _new(["a", "b"], tasks)
    m = _new(words, tasks, hidden=3, loss="word")
    with pytest.raises(ValueError, match="targets"):
        m.loss(T.TaggerBatch(np.zeros((1, 5), int), np.zeros((1, 5), int), (), None, None))
    assert "WindowTagger(tasks=[t=1:2 tags]" in repr(m)


def test_embedding_gradients_stay_sparse():
    model, batch = T._tiny_tagger(np.random.default_rng(0), "word", 1, True)
    model.loss(batch).backward()
    assert isinstance(model.embed.W.grad, graph.RowGrad)
    assert len(model.embed.W.grad.rows) <= len(np.unique(batch.words))
    untouched = np.setdiff1d(np.arange(len(model.vocab)), batch.words)
    before = model.embed.W.value.copy()
    AdaGrad(model.parameters(), 0.1).step()            # lazy sparse update: untouched rows stay as they were
    np.testing.assert_array_equal(model.embed.W.value[untouched], before[untouched])
    assert not np.array_equal(model.embed.W.value[batch.words[0, 0]], before[batch.words[0, 0]])


# ---- real data -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_conll2003_ner_one_epoch_reaches_80_f1():
    train = conll.read_conll(data_path("conll2003", "eng.train"))
    dev = conll.read_conll(data_path("conll2003", "eng.testa"))
    m = _build(train, {"ner": 3}, loss="word")
    recipe.fit(m, train, None, epochs=1, quiet=True)
    assert m.evaluate(dev)["ner"]["f1"] > 80


def test_task_weights_from_build_and_their_errors():
    sents = _corpus()
    m = _build(sents, {"ner": 3, "pos": 1}, hidden=6, task_weights={"pos": 0.25})
    assert [t["weight"] for t in m.tasks] == [1.0, 0.25] and "x0.25" in repr(m)
    assert [t["weight"] for t in T.WindowTagger.from_config(m.config()).tasks] == [1.0, 0.25]
    with pytest.raises(ValueError, match="'task_weights' must name tasks of the model"):
        _build(sents, {"ner": 3}, task_weights={"pos": 0.5})
    with pytest.raises(ValueError, match="weight of task 'pos' must be a finite number > 0"):
        _build(sents, {"ner": 3, "pos": 1}, task_weights={"pos": 0.0})


def test_build_refuses_what_would_train_a_wrong_model():
    """Mistakes in the task and feature columns that used to train anyway (a tagger copying its gold tags from a
    feature, the words as tags) or failed on an unrelated line (an AttributeError for a list of tasks, an empty
    max() for no data)."""
    sents = _corpus()
    with pytest.raises(ValueError, match="feature 'c' reads column 2, the gold tags of task 'chunk'"):
        _build(sents, {"chunk": 2}, columns={"c": (2, 10)})
    with pytest.raises(ValueError, match="task 'pos' reads column 0, the words"):
        _build(sents, {"pos": "word"})
    with pytest.raises(TypeError, match=r"'tasks' must be a dict like \{'chunk': 2\}; got \['chunk'\]"):
        _build(sents, ["chunk"])
    with pytest.raises(TypeError, match=r"feature 'pos' must be a \(column, dim\) pair"):
        _build(sents, {"chunk": 2}, columns={"pos": 1})
    for empty, what in (([], "at least one sentence; got none"), ([[], []], "at least one token; got 2 empty")):
        with pytest.raises(ValueError, match=f"training data must hold {what}"):
            _build(empty, {"chunk": 2})
    m = _build(sents, {"chunk": 2}, hidden=4)
    with pytest.raises(ValueError, match="sentences to score must hold at least one token"):
        m.evaluate([])                                  # was F1 0.0, as if a file had been tagged all wrong


# ---- scoring any file; what predict accepts ------------------------------------------------------------------------


def _wsj(rng, n, test=False):
    """CoNLL-2000-like sentences (word pos chunk, IOB2).  Training: list markers are single-token chunks (B-LST) and
    parentheses are tagged ( ); test (test=True): two-token list markers (B-LST I-LST), parentheses -LRB- -RRB- as in
    the treebank, and a chunk type (UCP) the training part never has."""
    out = []
    for _ in range(n):
        s = []
        if rng.random() < 0.3:
            s.append(("1", "LS", "B-LST"))
            if test:
                s.append((")", "-RRB-", "I-LST"))
        for _ in range(int(rng.integers(1, 3))):
            s += [(str(rng.choice(["the", "a"])), "DT", "B-NP"), (str(rng.choice(NOUNS)), "NN", "I-NP")]
            s.append((str(rng.choice(["runs", "sees"])), "VBZ", "B-VP"))
        if rng.random() < 0.3:
            s += [("(", "-LRB-" if test else "(", "O"), ("dog", "NN", "B-NP"), (")", "-RRB-" if test else ")", "O")]
        if test and rng.random() < 0.2:
            s += [("and", "CC", "B-UCP"), ("or", "CC", "I-UCP")]
        s.append((".", ".", "O"))
        out.append(s)
    return out


NOUNS = ["dog", "cat", "idea", "car", "bank", "tree"]


@pytest.fixture(scope="module")
def wsj_model():
    rng = np.random.default_rng(0)
    train = _wsj(rng, 200)
    m = _build(train, {"pos": 1, "chunk": 2}, loss="sentence", hidden=16, embed_dim=8, seed=0)
    recipe.fit(m, train, None, epochs=3, lr=0.1, batch_size=32, quiet=True)
    return m, _wsj(rng, 80, test=True)


def _conlleval_lines(sentences, gold_col, pred):
    """conlleval's input: word, gold tag, predicted tag; blank lines between sentences."""
    lines = []
    for s, p in zip(sentences, pred):
        lines += [f"{row[0]} {row[gold_col]} {tag}" for row, tag in zip(s, p)] + [""]
    return lines


def test_sentence_loss_decoding_writes_only_well_formed_chunk_sequences(wsj_model):
    """Transitions that favour I-X after O (ill-formed in the IOBES training encoding) must not get through."""
    m, test = wsj_model
    k = m.task_names.index("chunk")
    task = m.tasks[k]
    assert task["scheme"] == "iobes"
    saved = [p.value.copy() for p in (m.transitions[k].A, m.transitions[k].start)]
    try:
        inside = np.array([t[:2] in ("I-", "E-") for t in task["tags"]])
        m.transitions[k].A.value[:, inside] += 50.0          # every path's best next tag is now an I-/E- tag
        m.transitions[k].start.value[inside] += 50.0
        enc = m.encode(test, targets=False)
        ids = m.predict_ids(enc)[k]
        for lo, hi in zip(enc.offsets[:-1], enc.offsets[1:]):
            tags = [task["tags"][i] for i in ids[lo:hi]]
            assert convert(tags, "iobes", "iobes") == tags, tags
    finally:
        m.transitions[k].A.value[...], m.transitions[k].start.value[...] = saved


def test_word_loss_decoding_writes_only_well_formed_chunk_sequences_and_keeps_well_formed_argmaxes():
    rng = np.random.default_rng(3)
    train = _wsj(rng, 60)
    m = _build(train, {"chunk": 2}, loss="word", hidden=8, embed_dim=4, seed=0)
    tags = m.tasks[0]["tags"]
    enc = m.encode(train, targets=False)
    plain = m.scores(enc)[0].argmax(axis=1)
    ids = m.predict_ids(enc)[0]
    sentences = list(zip(enc.offsets[:-1], enc.offsets[1:]))
    for lo, hi in sentences:
        path = [tags[i] for i in ids[lo:hi]]
        assert convert(path, "iobes", "iobes") == path, path
        argmax = [tags[i] for i in plain[lo:hi]]
        if convert(argmax, "iobes", "iobes") == argmax:
            assert path == argmax
    inside = np.array([t[:2] in ("I-", "E-") for t in tags])
    m.heads[0].b.value[inside] += 50.0                  # every token's argmax is now an I-/E- tag: ill-formed
    ids = m.predict_ids(enc)[0]
    for lo, hi in sentences:
        path = [tags[i] for i in ids[lo:hi]]
        assert convert(path, "iobes", "iobes") == path, path


def test_evaluate_scores_gold_tags_the_model_never_saw_as_conlleval_does(wsj_model):
    from tests.conlleval import conlleval
    m, test = wsj_model
    with pytest.raises(ValueError, match="'pos' .* has the tag '-LRB-', which the model was not trained on.*evaluate"):
        m.encode(test)                                    # training targets stay strict
    with pytest.raises(ValueError, match="'B-LST' \\('B-LST' in IOBES\\), which the model was not trained "
                                         "on \\(it knows LST only as S-LST\\)"):
        m.encode([[r[:1] + ("LS",) + r[2:] for r in s] for s in test])
    res = m.evaluate(test)
    pred = m.predict(test)
    chunk, pos = res["chunk"], res["pos"]
    oracle = conlleval(_conlleval_lines(test, 2, pred["chunk"]))
    assert 0 < chunk["f1"] < 100
    for key in ("f1", "precision", "recall", "accuracy"):
        assert chunk[key] == pytest.approx(oracle[key], abs=1e-9), key
    assert chunk["n_chunks"] == oracle["found_correct"] and chunk["n_tokens"] == oracle["tokens"]
    assert pos["accuracy"] == pytest.approx(conlleval(_conlleval_lines(test, 1, pred["pos"]))["accuracy"])
    # what the model cannot produce: the second token of two-token list markers (it knows LST only as S-LST, whose
    # B-LST it can write), UCP chunks (a type it never saw), the treebank's parentheses; each such gold token is
    # wrong, each such chunk missed
    gold = conll.column(test, 2)
    n_lst = sum(s.count("I-LST") for s in gold)
    n_ucp = sum(s.count("B-UCP") for s in gold)
    n_paren = sum(t in ("-LRB-", "-RRB-", "CC") for s in conll.column(test, 1) for t in s)
    assert n_lst and n_ucp and n_paren
    assert (chunk["unseen_tokens"], chunk["unseen_chunks"]) == (n_lst + 2 * n_ucp, n_lst + n_ucp)
    assert chunk["unseen_tags"] == ["B-UCP", "I-LST", "I-UCP"]     # the file's IOB2 names; B-LST is no longer one
    assert (pos["unseen_tokens"], pos["unseen_chunks"], pos["unseen_tags"]) == (n_paren, None, ["-LRB-", "-RRB-", "CC"])
    assert "UCP" not in {t.split("-", 1)[-1] for s in pred["chunk"] for t in s}
    seen = m.evaluate([s for s in test if not any(r[2].endswith("UCP") or r[2] == "I-LST" or r[1].startswith("-")
                                                  for r in s)])
    assert (seen["chunk"]["unseen_tokens"], seen["chunk"]["unseen_chunks"], seen["pos"]["unseen_tags"]) == (0, 0, [])


def test_evaluate_f1_matches_seqeval(wsj_model):
    metrics = pytest.importorskip("seqeval.metrics", reason="seqeval (an independent conlleval implementation) is "
                                                            "not installed: pip install seqeval")
    m, test = wsj_model
    res = m.evaluate(test)["chunk"]
    gold, pred = conll.column(test, 2), m.predict(test)["chunk"]
    assert res["f1"] == pytest.approx(100 * metrics.f1_score(gold, pred), abs=1e-9)
    assert res["precision"] == pytest.approx(100 * metrics.precision_score(gold, pred), abs=1e-9)
    assert res["recall"] == pytest.approx(100 * metrics.recall_score(gold, pred), abs=1e-9)


def test_evaluate_still_refuses_a_wrong_column(wsj_model):
    m, test = wsj_model
    swapped = [[(r[0], r[2], r[1]) for r in s] for s in test]    # POS tags where the chunk tags should be
    with pytest.raises(ValueError, match="'chunk' \\(column 2\\) must hold chunk tags like the training data"):
        m.evaluate(swapped)
    with pytest.raises(IndexError, match="task 'chunk' reads column 2, but the data has 2 columns"):
        m.evaluate([[r[:2] for r in s] for s in test])
    with pytest.raises(TypeError, match="gold tags are needed"):
        m.evaluate([[r[0] for r in s] for s in test])


def test_predict_takes_token_lists_and_rows_and_refuses_ambiguous_input(wsj_model):
    m, test = wsj_model
    tokens = [[r[0] for r in s] for s in test]
    by_rows = m.predict(test)
    assert m.predict(tokens) == by_rows == m.predict([[(w,) for w in s] for s in tokens])
    assert m.predict([[list(r) for r in s] for s in test]) == by_rows
    assert m.predict(iter(tokens[:3])) == {k: v[:3] for k, v in by_rows.items()}
    assert m.predict([tokens[0], [], tokens[1]]) == {k: [v[0], [], v[1]] for k, v in by_rows.items()}
    assert m.predict([]) == {"pos": [], "chunk": []}
    # NumPy arrays of strings (a DataFrame column's values): tokens 1-d, rows 2-d
    assert m.predict([np.array(s) for s in tokens]) == by_rows == m.predict([np.array(s) for s in test])
    # ... and of dtype object holding strings (pandas' own, or np.array(tokens, dtype=object)): was a TypeError
    assert m.predict([np.array(s, dtype=object) for s in tokens]) == by_rows
    for bad, match in [("the dog runs", "got a str. Tokenise text first"),
                       (["the", "dog"], "sentence 0 must be .* got str 'the'. A flat list of strings is ambiguous"),
                       ([["the", ("dog", "NN")]], "not both"),
                       ([["the"], [("dog",)]], "must all be token lists or all column rows"),
                       ([[("dog", 1)]], "row 0 must hold column strings"),
                       ([[()]], "row 0 must hold column strings"),
                       ([[1, 2]], "got int 1 at position 0"),
                       (3, "must be a list of sentences")]:
        with pytest.raises(TypeError, match=match):
            m.predict(bad)


# ---- ensembles -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wsj_ensemble():
    """An ensemble of 3 sentence-loss chunk + POS taggers (recipe, ensemble=3, seed 1: members of seeds 3, 4, 5),
    the training sentences, and test sentences with tags the training part never had."""
    rng = np.random.default_rng(0)
    train = _wsj(rng, 200)
    config = recipe.TaggerConfig(tasks={"pos": 1, "chunk": 2}, hidden=16, embed_dim=8, epochs=2, lr=0.1,
                                 batch_size=32, ensemble=3, seed=1)
    model, fitted = recipe.train(config, train, None, quiet=True)
    return model, fitted, train, _wsj(rng, 80, test=True)


def _path_score(scores, A, start, end, path):
    return start[path[0]] + scores[np.arange(len(path)), path].sum() + A[path[:-1], path[1:]].sum() + end[path[-1]]


def test_ensemble_viterbi_maximises_the_mean_of_the_members_path_scores(wsj_ensemble):
    import itertools
    ens, _, train, _ = wsj_ensemble
    assert [m.config()["seed"] for m in ens.members] == recipe.member_seeds(recipe.TaggerConfig(ensemble=3, seed=1))
    short = [s[:n] for n, s in zip([1, 2, 3] * 4, train)]             # short enough to try every tag path
    enc = ens.encode(train[:30] + short, targets=False)
    per = [m.scores(enc) for m in ens.members]
    for k in range(len(ens.tasks)):
        mean = np.mean([p[k] for p in per], axis=0)
        np.testing.assert_allclose(ens.scores(enc)[k], mean, rtol=1e-6, atol=1e-6)
        trs = [m.transition_scores(k) for m in ens.members]
        for i in range(3):
            np.testing.assert_allclose(ens.transition_scores(k)[i], np.mean([t[i] for t in trs], axis=0), rtol=1e-6)
        assert not np.allclose(trs[0][0], trs[1][0])                      # the members differ
        ids = ens.predict_ids(enc)[k]
        task = ens.tasks[k]

        def writable(path):               # a chunk task's paths are those its encoding can write (tags.well_formed)
            tags = [task["tags"][i] for i in path]
            return task["scheme"] is None or convert(tags, task["scheme"], task["scheme"]) == tags
        # brute force on short sentences: no writable path has a higher mean (over members) of the members' path
        # scores
        tried = 0
        for s in range(30, len(enc.offsets) - 1):
            lo, hi = enc.offsets[s], enc.offsets[s + 1]
            n_tags = mean.shape[1]

            def member_mean(path):
                return np.mean([_path_score(p[k][lo:hi].astype(np.float64), *[x.astype(np.float64) for x in t],
                                            np.asarray(path)) for p, t in zip(per, trs)])
            paths = [p for p in itertools.product(range(n_tags), repeat=hi - lo) if writable(p)]
            best = max(paths, key=member_mean)
            assert writable(ids[lo:hi])
            assert member_mean(ids[lo:hi]) == pytest.approx(member_mean(best), abs=1e-4)
            tried += 1
        assert tried == 12


def test_ensemble_members_are_the_single_models_of_their_seeds(wsj_ensemble):
    ens, fitted, train, _ = wsj_ensemble
    config = recipe.TaggerConfig(tasks={"pos": 1, "chunk": 2}, hidden=16, embed_dim=8, epochs=2, lr=0.1,
                                 batch_size=32, seed=4)
    single, _ = recipe.train(config, train, None, quiet=True)
    for (n, p), (n2, q) in zip(single.parameters().items(), ens.members[1].parameters().items()):
        assert n == n2
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)
    assert isinstance(fitted, recipe.EnsembleFit) and len(fitted.trainers) == 3
    assert [h["member"] for h in fitted.history] == [0, 0, 1, 1, 2, 2] and fitted.best_score is None


def test_ensemble_save_load_round_trip_and_eval_of_unseen_tags(wsj_ensemble, tmp_path):
    ens, _, train, test = wsj_ensemble
    io.save_model(tmp_path / "e.npz", ens)
    loaded = io.load_model(tmp_path / "e.npz")
    assert isinstance(loaded, T.TaggerEnsemble) and repr(loaded) == repr(ens)
    assert loaded.config()["seeds"] == [3, 4, 5] and "seed" not in loaded.config()["member"]
    assert loaded.predict(test) == ens.predict(test)
    with np.load(tmp_path / "e.npz", allow_pickle=False) as z:
        assert {"param/members.0.embed.W", "param/members.2.transitions.1.A"} <= set(z.files)
    res = loaded.evaluate(test)                           # gold tags no member was trained on are scored as errors
    assert res["chunk"]["unseen_tags"] == ["B-UCP", "I-LST", "I-UCP"] and 0 < res["chunk"]["f1"] < 100
    assert res["pos"]["unseen_tags"] == ["-LRB-", "-RRB-", "CC"]
    assert loaded.score(train) == pytest.approx(T.main_score(ens.evaluate(train)))


def test_a_feature_column_saved_without_a_scheme_reads_as_none_and_joins_an_ensemble_of_todays_files():
    """Model files written before feature columns had a "scheme" held the column without it: such a member differed
    from today's in ['columns'] and --combine refused them."""
    rng = np.random.default_rng(1)
    train = _synthetic(rng, 30)
    today = _build(train, {"ner": 3}, columns={"pos": (1, 3)}, hidden=8, seed=0)
    cfg = today.config()
    assert cfg["columns"][0]["scheme"] is None
    older = dict(cfg, seed=1, columns=[{k: v for k, v in c.items() if k != "scheme"} for c in cfg["columns"]])
    old = T.WindowTagger.from_config(older)
    assert old.columns == today.columns
    assert len(T.TaggerEnsemble([today, old]).members) == 2


def test_ensemble_members_must_share_their_configuration():
    rng = np.random.default_rng(1)
    train = _synthetic(rng, 30)
    a = _build(train, {"ner": 3}, hidden=8, seed=0)
    with pytest.raises(ValueError, match="member 1 differs in \\['hidden'\\]"):
        T.TaggerEnsemble([a, _build(train, {"ner": 3}, hidden=9, seed=1)])
    with pytest.raises(TypeError, match="non-empty list of WindowTaggers"):
        T.TaggerEnsemble([])
    word = T.TaggerEnsemble([_build(train, {"ner": 3}, hidden=8, loss="word", seed=s) for s in (0, 1)])
    enc = word.encode(train)
    mean = (word.members[0].scores(enc)[0] + word.members[1].scores(enc)[0]) / 2
    assert word.transition_scores(0) is None
    np.testing.assert_array_equal(word.predict_ids(enc)[0], mean.argmax(axis=1))


# ---- the bilstm context ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bilstm_model():
    """A sentence-loss tagger with the bilstm context, trained briefly on the synthetic problem, and dev data."""
    rng = np.random.default_rng(5)
    train, dev = _synthetic(rng, 200), _synthetic(rng, 40)
    m = _build(train, {"ner": 3}, loss="sentence", context="bilstm", lstm_hidden=6, hidden=16, embed_dim=8, window=1,
               seed=0)
    recipe.fit(m, train, None, epochs=4, lr=0.1, batch_size=64, bucket=4, quiet=True)
    return m, train, dev


def test_bilstm_runs_each_sentence_alone_in_both_directions():
    m, batch = T._tiny_tagger(np.random.default_rng(0), "sentence", 1, False, context="bilstm")
    x = np.random.default_rng(1).standard_normal((len(batch.words), m.lstm_fwd.W_ih.shape[1]))
    fwd, bwd = (o.value for o in m._bilstm(x, batch.offsets))
    for lo, hi in zip(batch.offsets[:-1], batch.offsets[1:]):         # lengths 3, 1, 2: padding in both directions
        alone_f = m.lstm_fwd(x[lo:hi, None])[0].value[:, 0]
        alone_b = m.lstm_bwd(x[lo:hi][::-1, None])[0].value[::-1, 0]
        np.testing.assert_allclose(fwd[lo:hi], alone_f, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bwd[lo:hi], alone_b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(fwd, bwd)


def test_bilstm_learns_and_scores_in_whole_sentences(bilstm_model):
    m, train, dev = bilstm_model
    assert "bilstm=6x2" in repr(m) and m.hidden.W.shape[1] == (8 + 5) + 2 * 6
    assert m.evaluate(dev)["ner"]["f1"] > 90
    enc = m.encode(dev)
    whole = m.scores(enc, chunk=10**6)
    for chunk in (1, 7, 50):                         # pieces of sentences of similar length, cut at sentence ends
        pieces = list(m._sentence_pieces(enc, chunk))
        rows = np.concatenate([r for r, _ in pieces])
        assert sorted(rows.tolist()) == list(range(len(enc.words)))
        assert len(pieces) > (len(dev) // 3 if chunk == 1 else 1)
        np.testing.assert_allclose(m.scores(enc, chunk=chunk)[0], whole[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs whole sentences"):
        m.hidden_layer(enc.batch(rows=np.arange(5)))


def test_bilstm_scores_do_not_depend_on_the_thread_count(bilstm_model):
    import fastnn
    m, _, dev = bilstm_model
    enc = m.encode(dev)
    out = []
    for n in (1, 2):
        with fastnn.threads(kernels=n, blas=1):
            out.append(m.scores(enc)[0])
    np.testing.assert_array_equal(out[0], out[1])


def test_bilstm_save_load_round_trip_and_older_files_are_window_models(bilstm_model, tmp_path):
    m, _, dev = bilstm_model
    io.save_model(tmp_path / "b.npz", m)
    m2 = io.load_model(tmp_path / "b.npz")
    assert m2.config()["context"] == "bilstm" and repr(m2) == repr(m)
    assert m2.predict(dev) == m.predict(dev)
    with np.load(tmp_path / "b.npz", allow_pickle=False) as z:
        assert {"param/lstm_fwd.W_ih", "param/lstm_bwd.W_hh"} <= set(z.files)
    cfg = _build(dev, {"ner": 3}, hidden=4).config()
    del cfg["context"], cfg["lstm_hidden"]                   # a model file from before the context layer
    old = T.WindowTagger.from_config(cfg)
    assert old.config()["context"] == "window" and old.lstm_fwd is None


def concat_inputs(m, batch):
    """The inputs of every nn.concat the model's hidden layer makes on `batch`, in training, then in evaluation."""
    seen = []
    real = nn.concat
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn, "concat", lambda parts: seen.append([p.value.copy() for p in parts]) or real(parts))
        m.hidden_layer(batch)
        with m.evaluating():
            m.hidden_layer(batch)
    return seen


def test_lstm_dropout_drops_the_lstm_outputs_in_training_only():
    m, batch = T._tiny_tagger(np.random.default_rng(0), "sentence", 1, False, context="bilstm", lstm_dropout=0.5)
    assert m.config()["lstm_dropout"] == 0.5 and m.drop_lstm.p == 0.5
    n_win = m.lstm_fwd.W_ih.shape[1]
    seen = concat_inputs(m, batch)
    (x, f, b), (x_e, f_e, b_e) = [parts for parts in seen if len(parts) == 3]     # window, forward, backward
    assert x.shape[1] == n_win
    np.testing.assert_array_equal(x, x_e)                 # no dropout on the window vectors (dropout=0)
    for drop, full in ((f, f_e), (b, b_e)):               # the same LSTM outputs, half of them dropped, others x2
        kept = drop != 0
        assert 0.2 < kept.mean() < 0.8
        np.testing.assert_allclose(drop[kept], 2 * full[kept], rtol=1e-12)
    with pytest.raises(ValueError, match="'lstm_dropout' must be in"):
        recipe.TaggerConfig(context="bilstm", lstm_dropout=1.0)
    cfg = m.config()
    del cfg["lstm_dropout"]                               # a model file from before the option
    assert T.WindowTagger.from_config(cfg).drop_lstm.p == 0.0


def test_bilstm_ensemble_means_its_members_scores(tmp_path):
    rng = np.random.default_rng(6)
    train = _synthetic(rng, 60)
    config = recipe.TaggerConfig(tasks={"ner": 3}, context="bilstm", lstm_hidden=4, hidden=8, embed_dim=6, window=1,
                                 epochs=1, batch_size=64, ensemble=2)
    ens, _ = recipe.train(config, train, None, quiet=True)
    assert isinstance(ens, T.TaggerEnsemble) and all(m.lstm_fwd is not None for m in ens.members)
    enc = ens.encode(train)
    mean = (ens.members[0].scores(enc)[0] + ens.members[1].scores(enc)[0]) / 2
    np.testing.assert_allclose(ens.scores(enc)[0], mean, rtol=1e-6)
    io.save_model(tmp_path / "e.npz", ens)
    assert io.load_model(tmp_path / "e.npz").predict(train) == ens.predict(train)


def test_bilstm_refuses_the_word_level_loss():
    train = _synthetic(np.random.default_rng(7), 10)
    with pytest.raises(ValueError, match="context 'bilstm' needs the sentence-level loss .* got loss='word'"):
        _build(train, {"ner": 3}, loss="word", context="bilstm")
    with pytest.raises(ValueError, match="TaggerConfig: context 'bilstm' needs the sentence-level loss"):
        recipe.TaggerConfig(context="bilstm", loss="word")
    with pytest.raises(ValueError, match="'context' must be one of"):
        _build(train, {"ner": 3}, context="lstm")


def test_the_bilstm_gradcheck_case_catches_a_backward_that_forgets_to_unreverse_time(monkeypatch):
    from fastnn import kernels
    real = kernels.lstm_backward

    def flipped(dH, H, C, A, W, **kw):         # each step's input gradient handed to the mirrored step
        dX, dW, db, dh0, dc0 = real(dH, H, C, A, W, **kw)
        return np.ascontiguousarray(dX[::-1]), dW, db, dh0, dc0

    build = dict(T.gradcheck_cases())["tagger.bilstm"]
    assert run_case(build, seed=0).ok
    monkeypatch.setattr(kernels, "lstm_backward", flipped)
    report = run_case(build, seed=0)
    assert not report.ok and not report["lstm_bwd.W_ih"].ok and not report["embed.W"].ok
    assert report["lstm_fwd.W_hh"].ok and report["heads.0.W"].ok


def test_unseen_tags_are_only_those_no_prediction_can_hold():
    """A gold B-NP of one token was 'unseen' for an IOBES model that never saw S-NP (the message named B-NP, a tag
    the training file had): the model's B-NP then O reads as that chunk.  Unseen now means no prediction of the
    model, in the file's encoding, can hold the tag; the tags are named as the file writes them."""
    from fastnn.recipes.tagger import TaggerConfig, build

    train = [[("the", "B-NP"), ("dog", "I-NP"), ("runs", "B-VP"), (".", "O")],
             [("a", "B-NP"), ("cat", "I-NP"), ("sat", "B-VP")]] * 5          # NP always two tokens, VP always one
    gold = [[("it", "B-NP"), ("runs", "B-VP")], [("the", "B-NP"), ("dog", "I-NP"), ("ran", "B-VP"), ("off", "I-VP")],
            [("go", "B-PP")]]
    for scheme in ("iobes", "iob2", "file"):
        m = build(TaggerConfig(tasks={"chunk": 1}, scheme=scheme), train)
        r = m.evaluate(gold)["chunk"]
        assert (r["unseen_tokens"], r["unseen_chunks"], r["unseen_tags"]) == (2, 2, ["B-PP", "I-VP"]), (scheme, r)
    iob1 = [[("it", "I-NP"), ("runs", "I-VP")], [("the", "I-NP"), ("dog", "I-NP"), ("a", "B-NP"), ("b", "I-VP")]]
    r = m.evaluate(iob1)["chunk"]                  # the same file in IOB1: B-NP (after an NP) can be produced
    assert (r["unseen_tokens"], r["unseen_tags"]) == (0, [])


def test_a_flat_list_of_rows_is_refused_by_every_entry_point():
    """model.predict([("John", "B-PER"), ("runs", "O")]), one sentence's rows without the list of sentences, was
    read as two sentences of two words ('John B-PER', 'runs O') and tagged, silently; evaluate, encode, build and the
    recipe's train refused it with a message that did not say what was wrong."""
    from fastnn.embed import normalize_sentences
    from fastnn.recipes.tagger import TaggerConfig, build, train

    sents = [[("John", "B-PER"), ("runs", "O")], [("Mary", "B-PER"), ("sees", "O")]] * 3
    m = build(TaggerConfig(tasks={"ner": 1}), sents)
    flat = [("John", "B-PER"), ("runs", "O")]
    msg = "must be a list of sentences, each a list of rows; got a flat list of 2 row tuples such as"
    for call in (m.predict, m.evaluate, m.encode, functools.partial(m.encode, targets=False), m.unseen_features,
                 m.check_gold, lambda s: build(TaggerConfig(tasks={"ner": 1}), s),
                 lambda s: train(TaggerConfig(tasks={"ner": 1}, epochs=1), s, quiet=True)):
        with pytest.raises(TypeError, match=msg):
            call(flat)
    with pytest.raises(TypeError, match="flat list of 1 row tuple such as"):
        m.evaluate(flat[:1])
    with pytest.raises(TypeError, match=r"got token strings \['John', 'B-PER'\]. One sentence's rows without the "
                                        r"list of sentences\? Pass \[rows\]"):
        m.evaluate([list(r) for r in flat])                 # rows as lists: a hint where tokens cannot be
    # tokenised sentences (lists) and a one-row sentence given as a tuple of tokens stay as they were
    assert m.predict([["John", "runs"], ["Mary"]])["ner"][1] in (["B-PER"], ["O"])
    assert len(m.predict([("John", "runs")])["ner"][0]) == 2
    assert m.evaluate([flat])["ner"]["n_tokens"] == 2
    with pytest.raises(TypeError, match=r"got str 'the'. A flat list of tokens: for one sentence pass \[tokens\]"):
        normalize_sentences(["the", "cat"])                 # embed's pretrain (a flat list of tokens)
    with pytest.raises(TypeError, match="Tokenise first"):
        normalize_sentences(["the cat sat", "a dog"])        # lines


def test_messages_number_sentences_as_given_with_partial_data():
    """Messages numbered the sentences of a task's column counting only the sentences labelled for it (training data
    from corpora some of which lack the column), and build also skipped empty sentences: 'sentence 3' was the 7th."""
    from fastnn.recipes.tagger import TaggerConfig, build

    a = [[("John", "NNP", "B-PER"), ("runs", "VBZ", "O")], [("Mary", "NNP", "B-PER")]]
    b = [[("The", "DT"), ("dog", "NN")], [], [("A", "DT")]]
    with pytest.raises(ValueError, match="sentence 6, token 1 has 'b-per'"):
        build(TaggerConfig(tasks={"ner": 2, "pos": 1}), a + b + [[("Ann", "NNP", "B-PER")],
                                                                 [("Bob", "NNP", "O"), ("Ray", "NNP", "b-per")]])
    m = build(TaggerConfig(tasks={"ner": 2, "pos": 1}), a + b + [[("Ann", "NNP", "B-PER")]])
    for bad, match in (("b-per", "sentence 6, token 1 has 'b-per'"), ("PER", "got 'PER' at sentence 6, token 1"),
                       ("B-LOC", r"\('S-LOC' in IOBES\), which the model was not trained on \(known: .*\), at "
                                 r"sentence 6, token 1")):
        with pytest.raises(ValueError, match=match):
            m.encode(a + b + [[("Ann", "NNP", "B-PER")], [("Bob", "NNP", "O"), ("Ray", "NNP", bad)]], partial=True)


def test_a_chunk_feature_column_is_read_in_the_training_columns_encoding():
    """A NER model reading CoNLL-2003's IOB1 chunk column, given a file whose chunk column is IOB2 (CoNLL-2000's):
    every B-X there was read as IOB1's rare B-X (a chunk right after another) or as <unk>, silently.  The column is
    put in the training column's encoding first (the same chunks); unseen values are named as the file writes them."""
    from fastnn.recipes.tagger import TaggerConfig, build

    train = [[("John", "NNP", "I-NP", "I-PER"), ("saw", "VBD", "I-VP", "O"), ("it", "PRP", "I-NP", "O"),
              ("quickly", "RB", "I-ADVP", "O")], [("Mary", "NNP", "I-NP", "I-PER"), ("ran", "VBD", "I-VP", "O")]] * 3
    m = build(TaggerConfig(tasks={"ner": 3}, features={"chunk": (2, 4)}), train)
    assert m.columns[0]["scheme"] == "iob1"
    iob1 = [[("Bob", "NNP", "I-NP", "I-PER"), ("saw", "VBD", "I-VP", "O"), ("a", "DT", "I-NP", "O"),
             ("b", "NN", "B-NP", "O"), ("now", "RB", "I-ADVP", "O")]]
    iob2 = [[("Bob", "NNP", "B-NP", "B-PER"), ("saw", "VBD", "B-VP", "O"), ("a", "DT", "B-NP", "O"),
             ("b", "NN", "B-NP", "O"), ("now", "RB", "B-ADVP", "O")]]
    np.testing.assert_array_equal(m.encode(iob2, targets=False).feats[0], m.encode(iob1, targets=False).feats[0])
    assert m.predict(iob2) == m.predict(iob1) and m.evaluate(iob2)["ner"]["f1"] == m.evaluate(iob1)["ner"]["f1"]
    u = m.unseen_features(iob2)["chunk"]
    assert (u["unseen_tokens"], u["unseen_values"], u["unseen_counts"]) == (1, ["B-NP"], {"B-NP": 1})  # as written
    assert m.unseen_features(iob1)["chunk"]["unseen_values"] == ["B-NP"]
    # a model file without the column's scheme (written before) reads the column as it is
    old = T.WindowTagger.from_config(dict(m.config(), columns=[{k: v for k, v in c.items() if k != "scheme"}
                                                               for c in m.columns]))
    assert m.unseen_features(iob2)["chunk"]["unseen_tokens"] < old.unseen_features(iob2)["chunk"]["unseen_tokens"]
