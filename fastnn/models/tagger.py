"""Window taggers, single-task and multitask (Collobert, Weston, Bottou, Karlen, Kavukcuoglu and Kuksa 2011).

Each token is tagged from a window of tokens centred on it.  Every token of the window contributes the vectors of
its features (the lowercased, digit-normalised word; a capitalisation class; optionally its suffixes and prefixes of
given lengths, its word shape, and the tags of other columns of the file such as POS or chunk tags), concatenated;
one hidden layer (hard tanh or tanh) maps the window to a hidden vector h; each task has its own affine output layer
on h giving one score per tag.

Losses (one per task, summed):
- "word": the word-level log-likelihood, a softmax per token (cross-entropy of each window's tag);
- "sentence": the sentence-level log-likelihood: a tag path's score is the sum of the tokens' tag scores plus learned
  transition scores A[i, j] between consecutive tags, plus start and end scores (Collobert et al. have start scores
  A[0, j]; the end scores are the usual CRF addition, useful with IOBES).  The loss is log sum over all paths of
  exp(score) minus the gold path's score, computed with the forward algorithm; decoding is Viterbi (fastnn.nn.crf).

Context (`context`): "window" is the network above; "bilstm" (Huang, Xu and Yu 2015) also runs a forward and a
backward LSTM (`lstm_hidden` units each) over the sentence's window vectors, and the hidden layer reads each token's
window vectors together with both LSTMs' outputs at the token, so a tag can depend on the whole sentence.  With
`lstm_layers` L > 1 the context is a deep bidirectional LSTM (Irsoy and Cardie 2014): layer k > 1 runs its own
forward and backward LSTM over the concatenated forward and backward outputs of layer k - 1 at each token, and the
hidden layer reads layer L's.  The LSTMs need whole sentences: the bilstm context requires the sentence-level loss,
and scores() works sentence by sentence.

The loss of a batch is the sum over tasks of the per-token (or per-sentence) losses divided by the number of tokens
labelled for the task, each task's term times its weight (1 unless set: a weight below 1 keeps an auxiliary task
from taking over the shared layers). In multitask training the word vectors and the hidden layer are shared and
every window carries the tags of every task, so one forward pass serves all tasks and the output layers' errors add
up on h (the graph sums them). Training sentences from another corpus may lack a task's column: their target for it
is -1 and they are left out of that task's loss (Collobert et al. trained their tasks on different data this way).

Tag encodings: chunk tasks are trained in `scheme` (IOBES by default) and predictions are converted back to the
encoding of the training file (IOB1 for CoNLL-2003 as distributed, IOB2 for CoNLL-2000), so that scoring compares
with the file's own tags exactly as conlleval does (fastnn.data.tags).  The word features are in
fastnn.data.features, pretrained vectors in fastnn.data.vectors, the training recipe (TaggerConfig, its
defaults and presets, build and fit) in fastnn.recipes.tagger.

>>> from fastnn.optim import AdaGrad
>>> from fastnn.train import Trainer
>>> sents = [[("John", "B-PER"), ("Smith", "I-PER"), ("visited", "O"), ("Paris", "B-LOC"), (".", "O")],
...          [("Mary", "B-PER"), ("saw", "O"), ("London", "B-LOC"), (".", "O")]] * 10   # or read_conll("eng.train")
>>> from fastnn.recipes.tagger import TaggerConfig, build
>>> tagger = build(TaggerConfig(tasks={"ner": 1}), sents)    # WindowTagger.build with the Config's settings
>>> data = tagger.batches(sents, batch_size=8)
>>> history = Trainer(tagger, AdaGrad(tagger.parameters(), lr=0.05), data, epochs=5, quiet=True,
...                   validate=lambda m: m.score(sents), mode="max").fit()   # keeps the epoch with the best score
>>> tagger.evaluate(sents)["ner"]["f1"]       # also precision, recall, accuracy, unseen gold tags
100.0
>>> tagger.predict([["John", "Smith", "visited", "Paris", "."]])
{'ner': [['B-PER', 'I-PER', 'O', 'B-LOC', 'O']]}
>>> bi = build(TaggerConfig(tasks={"ner": 1}, context="bilstm", lstm_hidden=8, window=1), sents)
>>> bi.lstm_fwd, bi.hidden.W.shape        # per direction over 55 window inputs; the hidden layer reads 55 + 2 x 8
(LSTM(55, 8, forget_bias=1.0, clip=0.0, dtype=float32), (300, 71))
>>> history = Trainer(bi, AdaGrad(bi.parameters(), lr=0.05), bi.batches(sents, batch_size=20), epochs=5,
...                   quiet=True).fit()
>>> bi.predict([["Mary", "visited", "London", "."]])
{'ner': [['B-PER', 'O', 'B-LOC', 'O']]}
"""
import functools
import math
import numbers
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from fastnn import kernels, nn
from fastnn._validation import check_bool, check_float_dtype, check_int, check_not_file, check_scalar, short_repr
from fastnn.data import conll
from fastnn.data import tags as tagging
from fastnn.data.features import N_CAPS, affix_lengths, normalize, word_chars, word_prefix, word_shape, word_suffix
from fastnn.data.tags import detect_scheme, is_chunk_tag, recode, well_formed
from fastnn.data.vocab import Vocab
from fastnn.graph import Module
from fastnn.metrics import conll_f1
from fastnn.nn.crf import Transitions, sentence_nll, viterbi
from fastnn.train import BatchPlan

__all__ = ["WindowTagger", "TaggerEnsemble", "TaggerBatch", "WindowBatches", "main_score", "gradcheck_cases"]

LOSSES = ("word", "sentence")
ACTIVATIONS = ("hardtanh", "tanh")
TRAIN_SCHEMES = ("iobes", "iob2", "file")
CONTEXTS = ("window", "bilstm")


def as_rows(sentences, where, tokens=True, name="sentences"):
    """conll.as_rows(sentences, where, tokens=tokens), after refusing a file (path or open file) in place of the
    sentences: the tagger's entry points read data, the readers read files (name None: `where` names them)."""
    check_not_file(sentences, name, where,
                   "fastnn.data.read_conll(path) (plain text: fastnn.data.read_sentences(path))")
    return conll.as_rows(sentences, where, tokens=tokens)


# ---- batches -----------------------------------------------------------------------------------------------------

class TaggerBatch(NamedTuple):
    """Windows of feature ids for N tokens, of a whole corpus (encode) or of a training batch (batch()): words, caps
    (N, window) int64; feats, a tuple with one (N, window) int64 array per optional feature slot of the model (one per
    suffix length, per prefix length, shape, feature column); targets (N, n_tasks) or None; offsets (S + 1,) sentence
    boundaries (a corpus, or a batch of whole sentences for the sentence-level loss) or None (independent windows).
    With the character feature, forms (N, window) index the distinct word forms of these windows and chars = (ids
    (F, T) char ids, 0 past each form's end; lengths (F,)) spells them; else both None."""
    words: np.ndarray
    caps: np.ndarray
    feats: tuple
    targets: np.ndarray
    offsets: np.ndarray
    forms: np.ndarray = None
    chars: tuple = None

    def batch(self, rows=None, sentences=None):
        """The TaggerBatch of token `rows` (offsets None), or of whole `sentences` (with their offsets)."""
        if sentences is not None:
            lo, hi = self.offsets[sentences], self.offsets[np.asarray(sentences) + 1]
            lengths = hi - lo
            offs = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offs[1:])
            rows = np.repeat(lo - offs[:-1], lengths) + np.arange(offs[-1])
        else:
            offs = None
        forms = chars = None
        if self.forms is not None:
            # only the forms this batch uses go through the character network
            used, forms = np.unique(self.forms[rows], return_inverse=True)
            forms = forms.reshape(-1, self.forms.shape[1])
            ids, lengths = self.chars
            chars = (ids[used, :lengths[used].max()], lengths[used])
        return TaggerBatch(self.words[rows], self.caps[rows], tuple(f[rows] for f in self.feats),
                           None if self.targets is None else self.targets[rows], offs, forms, chars)


class WindowBatches:
    """Training batches for the Trainer: shuffled every epoch.

    by="window": batches of `batch_size` random windows (word-level loss).  by="sentence": batches of whole shuffled
    sentences holding about `batch_size` tokens (at least one sentence), with offsets (sentence-level loss).
    bucket (by="sentence"): the shuffled sentences are taken `bucket` batches' worth at a time, sorted by length
    within that pool, cut into batches, and the batches of the epoch are shuffled; sentences of similar length then
    share a batch, so the forward algorithm pads less (0: no sorting).
    unk_replace: each occurrence of a word seen once in training is replaced by <unk> with this probability in each
    epoch (so the <unk> vector is trained on words like the unknown words of new text).
    """

    def __init__(self, encoded, *, batch_size, by="window", bucket=0, unk_replace=0.0, rare=None, unk_id=1):
        if by not in ("window", "sentence"):
            raise ValueError(f"WindowBatches: 'by' must be 'window' or 'sentence'; got {by!r}.")
        batch_size = check_int(batch_size, "batch_size", "WindowBatches")
        check_scalar(unk_replace, "unk_replace", "WindowBatches", low=0)      # (a string failed in the comparison)
        if not unk_replace < 1:
            raise ValueError(f"WindowBatches: 'unk_replace' must be in [0, 1); got {unk_replace!r}.")
        if encoded.targets is None:
            raise ValueError("WindowBatches: the corpus must have targets (encode it with targets=True).")
        bucket = check_int(bucket, "bucket", "WindowBatches", low=0)
        self.enc, self.batch_size, self.by, self.bucket = encoded, int(batch_size), by, int(bucket)
        self.unk_replace, self.rare, self.unk_id = float(unk_replace), rare, unk_id
        self.n_tokens = len(encoded.words)
        self.n_sentences = len(encoded.offsets) - 1

    def epoch(self, rng):
        seed = int(rng.integers(2**63))
        if self.by == "window":
            perm = rng.permutation(self.n_tokens)
            return BatchPlan.even(functools.partial(self._batch, seed), self.n_tokens, self.batch_size, perm)
        perm = rng.permutation(self.n_sentences)
        lengths = np.diff(self.enc.offsets)[perm]
        if self.bucket:
            pool = np.cumsum(lengths) // (self.batch_size * self.bucket)
            by_length = np.lexsort((lengths, pool))        # stable: by pool, then length
            perm, lengths = perm[by_length], lengths[by_length]
        # cut whenever the running token count passes a multiple of batch_size
        cum = np.cumsum(lengths)
        cuts = [0] + list(np.flatnonzero(np.diff(cum // self.batch_size) > 0) + 1)
        if cuts[-1] != len(perm):
            cuts.append(len(perm))
        order = rng.permutation(len(cuts) - 1) if self.bucket else None
        return BatchPlan(functools.partial(self._batch, seed), perm, cuts, order)

    def _batch(self, seed, i, sel):
        b = self.enc.batch(rows=sel) if self.by == "window" else self.enc.batch(sentences=sel)
        if self.unk_replace > 0 and self.rare is not None:
            rng = np.random.default_rng([seed, i])    # the same replacement when a run is resumed
            w = b.words
            hit = self.rare[w] & (rng.random(w.shape) < self.unk_replace)
            if hit.any():
                w = w.copy()
                w[hit] = self.unk_id
                b = b._replace(words=w)
        return b

    @staticmethod
    def n_examples(batch):
        return len(batch.words)

    def __len__(self):
        return -(-self.n_tokens // self.batch_size)

    def __repr__(self):
        return (f"WindowBatches({self.n_tokens} tokens, {self.n_sentences} sentences, batch_size={self.batch_size}, "
                f"by={self.by!r}, bucket={self.bucket}, unk_replace={self.unk_replace})")


# ---- the model ---------------------------------------------------------------------------------------------------

def _stored_lengths(lengths):
    """Config form of affix lengths: an int for none or one (as older model files have it), else a list."""
    return lengths[0] if len(lengths) == 1 else (0 if not lengths else list(lengths))


# What decoding adds to the transition score of an ill-formed chunk tag bigram (I-NP after O in IOBES): far below
# any path's own score, and finite, so that a tag set with no well-formed path (no O, no S-X) still decodes.
ILL_FORMED_SCORE = -1e9


def _well_formed_only(transitions, tags, scheme):
    """(A, start, end) with ILL_FORMED_SCORE added where `scheme` forbids the bigram, first or last tag.  Learned
    transitions score such paths low, not out: the chunk preset's single models wrote one in 18-29 of the 1,000 dev
    sentences, and forbidding them adds 0.02-0.07 F1 (bench/results/tagger_presets.md)."""
    follows, first, last = well_formed(tags, scheme)
    return tuple(np.where(ok, x, x + ILL_FORMED_SCORE).astype(x.dtype)
                 for ok, x in zip((np.array(follows), np.array(first), np.array(last)), transitions))


class _Tagging:
    """Decoding, predict, evaluate and score, shared by WindowTagger and TaggerEnsemble.  A subclass has `tasks`,
    `task_names`, `_tag_index` (per task, tag -> id), encode(sentences, targets), scores(enc) (per task, (N, K) tag
    scores) and transition_scores(k) ((A, start, end) arrays of task k, or None for the word-level loss)."""

    def predict_ids(self, enc):
        """Per task, (N,) predicted tag ids in the training encoding.  A tag task (POS): each token's argmax, or
        Viterbi for the sentence loss.  A chunk task: Viterbi over the tag paths its encoding can write
        (tags.well_formed), with the learned transitions for the sentence loss, and for the word loss the path of
        the highest sum of the tokens' log-probabilities (its argmax wherever that path is well-formed)."""
        self.check_encoded(enc, f"{type(self).__name__}.predict_ids")
        out = []
        for k, s in enumerate(self.scores(enc)):
            tr = self.transition_scores(k)
            task = self.tasks[k]
            if task["scheme"] is None:
                out.append(s.argmax(axis=1) if tr is None else viterbi(s, enc.offsets, *tr))
                continue
            if tr is None:
                s = kernels.log_softmax(np.ascontiguousarray(s))
                K = s.shape[1]
                tr = (np.zeros((K, K), s.dtype), np.zeros(K, s.dtype), np.zeros(K, s.dtype))
            out.append(viterbi(s, enc.offsets, *_well_formed_only(tr, task["tags"], task["scheme"])))
        return out

    def check_encoded(self, enc, where, name="enc"):
        """A TypeError unless `enc` is a corpus encoding (offsets set) of this model's kind: self.encode(sentences)'s
        TaggerBatch, a ValueError unless its window and feature slots are this model's (another model's encoding failed
        deep inside, as an AttributeError for sentences given instead)."""
        if not isinstance(enc, TaggerBatch) or enc.offsets is None:
            got = "a TaggerBatch of independent windows (a training batch)" if isinstance(enc, TaggerBatch) else \
                type(enc).__name__
            raise TypeError(f"{where}: {name!r} must be self.encode(sentences) (a TaggerBatch), the encoding of "
                            f"whole sentences; got {got}. For sentences, call predict(sentences).")
        mine = self.encode([], targets=False)
        width = enc.words.shape[1] if np.ndim(enc.words) == 2 else None
        if width != mine.words.shape[1] or len(enc.feats) != len(mine.feats) or \
                (enc.forms is None) != (mine.forms is None):
            raise ValueError(f"{where}: {name!r} must be this model's encoding; got one of another model (windows of "
                             f"{width} words, {len(enc.feats)} feature slots; this model's: {mine.words.shape[1]}, "
                             f"{len(mine.feats)}).")

    def predict(self, sentences, encoded=None):
        """{task: list (per sentence) of predicted tags}, in the encoding of the training file.

        sentences : tokenised sentences (a list of lists of strings, e.g. [["John", "Smith", "visited", "Paris",
            "."]]) or read_conll's rows (only the word column is used); conll.as_rows says what else is refused.
        encoded : self.encode(sentences) if already computed.
        """
        sentences = as_rows(sentences, "WindowTagger.predict")
        if not sentences or any(not s for s in sentences):     # an empty sentence has no tags: tag the others
            kept = [s for s in sentences if s]
            pred = self.predict(kept) if kept else {name: [] for name in self.task_names}
            return {name: _refill(p, sentences) for name, p in pred.items()}
        if encoded is not None:         # (another corpus's encoding: its tags returned for these sentences, silently)
            where = f"{type(self).__name__}.predict"
            self.check_encoded(encoded, where, "encoded")
            if not np.array_equal(np.diff(encoded.offsets), [len(s) for s in sentences]):
                raise ValueError(f"{where}: 'encoded' must be self.encode(sentences) of these {len(sentences)} "
                                 f"sentences; got the encoding of {len(encoded.offsets) - 1} sentences of other "
                                 f"lengths.")
        enc = encoded if encoded is not None else self.encode(sentences, targets=False)
        out = {}
        for t, ids in zip(self.tasks, self.predict_ids(enc)):
            names = np.asarray(t["tags"], dtype=object)[ids]
            sents = [list(names[enc.offsets[i]:enc.offsets[i + 1]]) for i in range(len(enc.offsets) - 1)]
            out[t["name"]] = recode(sents, t["scheme"], t["file_scheme"])
        return out

    def evaluate(self, sentences, encoded=None):
        """Per task, the scores of the predictions against the task's column of `sentences` (read_conll rows).

        Chunk tasks are scored with conlleval's rules on the file's own encoding; tasks whose tags are not chunk tags
        (POS) get token accuracy and None for precision / recall / F1.  Any gold tag is scored, also one the model
        was never trained on: such a token can only be wrong, and a chunk holding it can only be missed, exactly as
        conlleval counts them.  Returns {task: {"f1", "precision", "recall", "accuracy" (percent), "n_tokens",
        "n_chunks" (gold chunks; None for tag tasks), "unseen_tokens" (gold tokens whose tag no prediction of the
        model, put in the file's encoding, can hold: e.g. a type its training data never had), "unseen_chunks" (gold
        chunks holding such a token; None for tag tasks), "unseen_tags" (the file's tags at those tokens, as the
        file writes them, sorted)}}.
        `encoded`: self.encode(sentences) if already computed (validation every epoch).  A missing column is an
        IndexError, a chunk task's column holding tags that are not chunk tags a ValueError, as are sentences without
        a token (no score to give).
        """
        where = "WindowTagger.evaluate"
        sentences = as_rows(sentences, where, tokens=False)
        pred = self.predict(sentences, encoded)          # (checks the feature columns first)
        unseen = self.check_gold(sentences, where)
        out = {}
        for k, t in enumerate(self.tasks):
            gold = conll.column(sentences, t["column"])
            if t["file_scheme"] is None:
                g = [x for s in gold for x in s]
                p = [x for s in pred[t["name"]] for x in s]
                acc = 100.0 * np.mean(np.asarray(g, dtype=object) == np.asarray(p, dtype=object)) if g else 0.0
                res = {"f1": None, "precision": None, "recall": None, "accuracy": float(acc), "n_tokens": len(g),
                       "n_chunks": None}
            else:
                r = conll_f1(gold, pred[t["name"]])
                res = {key: float(r[key]) for key in ("f1", "precision", "recall", "accuracy")}
                res.update(n_tokens=r["n_tokens"], n_chunks=r["n_gold"])
            res.update(unseen[t["name"]])
            out[t["name"]] = res
        return out

    def check_gold(self, sentences, where="check_gold"):
        """The gold side of scoring `sentences` (read_conll rows), checked without tagging them: each task's column
        must exist (IndexError), a chunk task's must hold chunk tags and there must be a token (ValueError).  Returns {task:
        {"unseen_tokens", "unseen_chunks", "unseen_tags"}} as in evaluate(): the gold tags the model cannot produce
        (an official test set may have tags its training part never had), which are scored as errors."""
        sentences = as_rows(sentences, where, tokens=False)
        if not any(sentences):
            raise ValueError(f"{where}: the sentences to score must hold at least one token; got "
                             f"{len(sentences)} sentences and no token.")
        out = {}
        for k, t in enumerate(self.tasks):
            short = next((s for s in sentences if s and len(s[0]) <= t["column"]), None)
            if short is not None:
                raise IndexError(f"{where}: task {t['name']!r} reads column {t['column']}, but the data has "
                                 f"{len(short[0])} columns.")
            gold = conll.column(sentences, t["column"])
            if t["file_scheme"] is not None:
                self._check_chunk_tags(gold, t, where)
            out[t["name"]] = self._unseen(gold, k)
        return out

    @staticmethod
    def _check_chunk_tags(gold, task, where):
        bad = next(((x, k, i) for k, s in enumerate(gold) for i, x in enumerate(s) if not is_chunk_tag(x)), None)
        if bad is not None:
            bad, k, i = bad
            # detect_scheme says how '0' for 'O', 'b-per' or BILOU's U-/L- should be written; the appended B-X is the
            # training data's word that this column is chunk tags (a column of 0s alone would not be sure of it)
            detect_scheme(list(gold) + [["B-X"]], f"{where}: task {task['name']!r} (column {task['column']})",
                          column=task["column"])
            raise ValueError(f"{where}: task {task['name']!r} (column {task['column']}) must hold chunk tags like the "
                             f"training data ({task['file_scheme'].upper()}); got {bad!r} at sentence {k}, token "
                             f"{i}.")
        return gold

    def _unseen(self, gold, k):
        """{"unseen_tokens", "unseen_chunks", "unseen_tags"} of gold tag sentences of task k (see evaluate): the
        tokens whose tag, in the gold's own encoding, no prediction of the model (re-encoded into it, as scoring
        does) can hold, and the tags as the file writes them.  (A B-NP of an IOB2 file is not unseen for an IOBES
        model that never saw S-NP: its B-NP followed by O reads as that chunk.)"""
        t = self.tasks[k]
        scheme = None if t["file_scheme"] is None else (tagging.scheme_of(gold) or t["file_scheme"])
        can = tagging.producible(t["tags"], t["scheme"], scheme)
        tags, n_tokens, n_chunks = set(), 0, 0 if scheme is not None else None
        for s in gold:
            miss = [tag not in can for tag in s]
            if not any(miss):
                continue
            n_tokens += sum(miss)
            tags.update(tag for tag, m in zip(s, miss) if m)
            if n_chunks is not None:
                n_chunks += sum(any(miss[a:b]) for _, a, b in tagging.chunks(s, scheme))
        return {"unseen_tokens": n_tokens, "unseen_chunks": n_chunks, "unseen_tags": sorted(tags)}

    def unseen_features(self, sentences):
        """{feature: {"column", "n_tokens", "unseen_tokens", "unseen_values", "unseen_counts" ({value: tokens}),
        "values_of" (e.g. "task 'ner'" when the unseen values are all tags of another column the model knows, else
        None)}} for the feature columns the model reads (rows as read_conll's): the values the training data never
        had, which the model reads as <unk> without a word.  A few are normal (a rare tag); most of a column's
        tokens, or values all of another column, suggest a file without that column, whose column of that number
        holds something else (predicting needs no gold tags to catch it).  Chunk tags are looked up as the model
        reads them (in the training column's encoding) and named as the file writes them."""
        given = as_rows(sentences, "unseen_features", tokens=True)
        read = self._in_feature_encodings(given)
        # what the other columns the model knows hold, as files write them: a file without the chunk column whose
        # NER column stands in its place shows the NER task's tags there
        others = {f"task {t['name']!r}": tagging.producible(t["tags"], t["scheme"], t["file_scheme"])
                  for t in self.tasks}
        others.update({f"feature {c['name']!r}": set(c["values"][2:]) for c in self.columns})
        out = {}
        for c in self.columns:
            col, known = c["column"], set(c["values"])
            pairs = [(r[col], q[col]) for s, t in zip(given, read) for r, q in zip(s, t) if len(r) > col]
            unseen = Counter(v for v, v_read in pairs if v_read not in known)
            like = next((name for name, values in others.items() if name != f"feature {c['name']!r}" and unseen
                         and set(unseen) <= values), None)
            out[c["name"]] = {"column": col, "n_tokens": len(pairs), "unseen_tokens": sum(unseen.values()),
                              "unseen_values": sorted(unseen, key=lambda v: (-unseen[v], v)),
                              "unseen_counts": dict(unseen), "values_of": like}
        return out

    def _in_feature_encodings(self, sentences):
        """`sentences` (rows) with each feature column of chunk tags put in the encoding of the training data's
        column (tags.reencode; the chunks stay the same): read as they are, a CoNLL-2000 file's IOB2 chunk column
        given to a model of CoNLL-2003's IOB1 one had a B-X at every chunk start, which that model knows only as
        the rare start of a chunk right after another, or not at all (<unk>), silently.  Model files written before
        feature columns had a "scheme" read them as they are."""
        for c in self.columns:
            col, scheme = c["column"], c.get("scheme")
            if scheme is None:
                continue
            have = [k for k, s in enumerate(sentences) if s and len(s[0]) > col]
            tags = [[r[col] for r in sentences[k]] for k in have]
            src = tagging.scheme_of(tags)
            if src in (None, scheme):
                continue
            sentences = list(sentences)
            for k, new in zip(have, tagging.reencode(tags, scheme, src)[0]):
                sentences[k] = [tuple(r[:col]) + (t,) + tuple(r[col + 1:]) for r, t in zip(sentences[k], new)]
        return sentences

    def score(self, sentences, encoded=None):
        """One number for early stopping: the mean over tasks of F1 (chunk tasks) or accuracy (others)."""
        return main_score(self.evaluate(sentences, encoded))


def warn_unpaired_affix(where, kind, lengths, dim):
    """A UserWarning when the `kind` ("suffix" or "prefix") feature has its lengths without its vector size `dim`, or
    the size without lengths: the tagger is built without that feature (recipes.tagger.build warns so for a
    TaggerConfig; WindowTagger.build(suffix_len=2, suffix_dim=0) was silent).  A warning, as the recipe's: a preset
    with the feature turned off makes such settings on purpose."""
    if bool(lengths) != bool(dim):
        name, other = (f"{kind}_len", f"{kind}_dim") if lengths else (f"{kind}_dim", f"{kind}_len")
        warnings.warn(f"{where}: {name!r} has no effect without {other!r}; it is ignored.", UserWarning, stacklevel=3)


class WindowTagger(_Tagging, Module):
    """The window network of Collobert et al. (2011) with one output layer per task.

    Parameters
    ----------
    words : list of str, the word vocabulary (normalised words; "<pad>" id 0 and "<unk>" id 1 first).
    tasks : list of dicts {"name", "column", "tags" (list, in the training encoding), "scheme" (training encoding,
        or None for a non-chunk task like POS), "file_scheme" (the data's encoding, or None), optionally "weight"
        (> 0, default 1: the factor of its term in the loss)}.
    suffixes : list of str (with "<pad>", "<unk>" first): the suffixes of every length in suffix_len, or None for no
        suffix feature.  prefixes : likewise for prefix_len.  shapes : likewise for the word-shape feature
        (word_shape), or None.
    columns : feature columns, a list of dicts {"name", "column" (its index in the file), "values" (its tags, "<pad>"
        and "<unk>" first), "dim" (vector size), optionally "scheme" (the chunk encoding of the values, or None)}:
        every window position also gets the vector of its token's tag in that column (e.g. the POS column for a
        chunker), read from the same column of the data to be tagged (chunk tags put in `scheme` first).
    word_counts : training counts of `words` (for <unk> replacement of rare words), or None.
    window : odd window size.  embed_dim, caps_dim, suffix_dim, prefix_dim, shape_dim : feature vector sizes.
    suffix_len, prefix_len : letters of the suffix (prefix) feature, or several lengths (e.g. (1, 2, 3)): one slot
        per length, all looking up the one suffix (prefix) table.
    chars : list of characters (with "<pad>", "<unk>" first) for the character feature, or None for none: each
        token's word_chars go through a CharCNN (char_dim-sized character vectors, char_filters convolution filters
        over char_width characters, max over the word) giving char_filters more inputs per window position.
    hidden : hidden units.  activation : "hardtanh" or "tanh".  loss : "word" or "sentence".
    dropout : inverted dropout on the concatenated window vectors; hidden_dropout : on the hidden layer;
        lstm_dropout : on the bilstm context's outputs (the hidden layer's LSTM inputs, and with lstm_layers > 1
        each layer's inputs from the layer below; the first layer reads the window vectors after `dropout`).
    context : "window" or "bilstm".  lstm_hidden : LSTM units per direction.  lstm_layers : stacked bidirectional
        LSTM layers (>= 1).
    embed_scale : word (and feature) vectors start as U(-embed_scale, embed_scale).
    tag_counts : per task, the training count of each of its tags (or None): the task's output bias then starts at
        the log prior of its tags, the optimal bias while the weights are near zero (build() passes them; a
        construction-time choice, not stored, since trained biases replace it).
    freeze_embeddings : the word vectors are not trained (e.g. pretrained ones).
    lowercase : the word feature is lowercased (Collobert et al.); False keeps the case (digits are normalised).
    seed : int seed of the initialisation and of the dropout masks.  dtype : "float32" or "float64".
    """

    def __init__(self, words, tasks, *, window, embed_dim, caps_dim, suffix_len, suffix_dim, prefix_len, prefix_dim,
                 shape_dim, char_dim, char_filters, char_width, hidden, activation, loss, dropout, hidden_dropout,
                 embed_scale, freeze_embeddings, lowercase, seed, context, lstm_hidden, lstm_layers, lstm_dropout,
                 suffixes=None, prefixes=None, shapes=None, chars=None, columns=(), word_counts=None, dtype="float32",
                 tag_counts=None):
        where = "WindowTagger"
        if check_int(window, "window", where) % 2 == 0:
            raise ValueError(f"{where}: 'window' must be an odd integer >= 1; got {window!r}.")
        embed_dim, hidden = check_int(embed_dim, "embed_dim", where), check_int(hidden, "hidden", where)
        suffix_len = affix_lengths(suffix_len, "suffix_len", where)
        prefix_len = affix_lengths(prefix_len, "prefix_len", where)
        for name, v in (("caps_dim", caps_dim), ("suffix_dim", suffix_dim), ("prefix_dim", prefix_dim),
                        ("shape_dim", shape_dim), ("char_dim", char_dim)):
            check_int(v, name, where, low=0)
        for kind, lengths, dim in (("suffix", suffix_len, suffix_dim), ("prefix", prefix_len, prefix_dim)):
            warn_unpaired_affix(where, kind, lengths, dim)
        if activation not in ACTIVATIONS:
            raise ValueError(f"{where}: 'activation' must be one of {ACTIVATIONS}; got {activation!r}.")
        if loss not in LOSSES:
            raise ValueError(f"{where}: 'loss' must be one of {LOSSES}; got {loss!r}.")
        if context not in CONTEXTS:
            raise ValueError(f"{where}: 'context' must be one of {CONTEXTS}; got {context!r}.")
        lstm_layers = check_int(lstm_layers, "lstm_layers", where)
        if context == "bilstm":
            check_int(lstm_hidden, "lstm_hidden", where)
            if loss != "sentence":
                raise ValueError(f"{where}: context 'bilstm' needs the sentence-level loss (its batches are whole "
                                 f"sentences); got loss={loss!r}. Use loss='sentence' or context='window'.")
        if not tasks:
            raise ValueError(f"{where}: 'tasks' must name at least one task; got none.")
        if tag_counts is not None and len(tag_counts) != len(tasks):
            raise ValueError(f"{where}: 'tag_counts' must have one entry per task ({len(tasks)}); got "
                             f"{len(tag_counts)}.")
        for kind, vocab, lengths, dim in (("suffix", suffixes, suffix_len, suffix_dim),
                                          ("prefix", prefixes, prefix_len, prefix_dim)):
            if (vocab is None) != (not lengths or dim == 0):
                raise ValueError(f"{where}: '{kind}es' must be given exactly when {kind}_len and {kind}_dim are > 0; "
                                 f"got {kind}_len={list(lengths)}, {kind}_dim={dim}, {kind}es "
                                 f"{'None' if vocab is None else 'given'}.")
        if (shapes is None) != (shape_dim == 0):
            raise ValueError(f"{where}: 'shapes' must be given exactly when shape_dim > 0; got shape_dim={shape_dim}, "
                             f"shapes {'None' if shapes is None else 'given'}.")
        if (chars is None) != (char_dim == 0):
            raise ValueError(f"{where}: 'chars' must be given exactly when char_dim > 0; got char_dim={char_dim}, "
                             f"chars {'None' if chars is None else 'given'}.")
        if char_dim:
            check_int(char_filters, "char_filters", where)
        # "scheme" is optional: files written before it existed read their columns as they are (scheme None), and
        # must still compare equal to today's, e.g. as members of one ensemble
        columns = [dict(c, values=list(c.get("values", ())), scheme=c.get("scheme")) for c in columns]
        for c in columns:
            if not (isinstance(c.get("dim"), numbers.Integral) and c["dim"] >= 1 and isinstance(c.get("column"),
                    numbers.Integral) and c["column"] >= 1 and c["values"][:2] == [Vocab.PAD, Vocab.UNK]):
                raise ValueError(f"{where}: a feature column must be {{'name', 'column' >= 1, 'values' starting with "
                                 f"{Vocab.PAD!r}, {Vocab.UNK!r}, 'dim' >= 1}}; got {c!r}.")
        words = list(words)
        if words[:2] != [Vocab.PAD, Vocab.UNK]:
            raise ValueError(f"{where}: 'words' must start with {Vocab.PAD!r}, {Vocab.UNK!r}; got {words[:2]}.")
        self.tasks = [dict(t) for t in tasks]
        for t in self.tasks:
            t["tags"] = list(t["tags"])
            w = t.setdefault("weight", 1.0)
            if not (isinstance(w, numbers.Real) and math.isfinite(w) and w > 0):
                raise ValueError(f"{where}: the weight of task {t['name']!r} must be a finite number > 0; got {w!r}.")
            t["weight"] = float(w)
        self.vocab = Vocab(words, word_counts)
        self.suffix_vocab = Vocab(suffixes) if suffixes is not None else None
        self.prefix_vocab = Vocab(prefixes) if prefixes is not None else None
        self.shape_vocab = Vocab(shapes) if shapes is not None else None
        self.char_vocab = Vocab(chars) if chars is not None else None
        self._cfg = dict(window=int(window), embed_dim=int(embed_dim), caps_dim=int(caps_dim),
                         suffix_len=_stored_lengths(suffix_len), suffix_dim=int(suffix_dim),
                         prefix_len=_stored_lengths(prefix_len), prefix_dim=int(prefix_dim), shape_dim=int(shape_dim),
                         char_dim=int(char_dim), char_filters=int(char_filters), char_width=int(char_width),
                         hidden=int(hidden),
                         activation=activation, loss=loss, dropout=float(dropout),
                         hidden_dropout=float(hidden_dropout), embed_scale=float(embed_scale),
                         freeze_embeddings=check_bool(freeze_embeddings, "freeze_embeddings", "WindowTagger"),
                         lowercase=check_bool(lowercase, "lowercase", "WindowTagger"), seed=int(seed),
                         context=context, lstm_hidden=int(lstm_hidden), lstm_layers=lstm_layers,
                         lstm_dropout=float(lstm_dropout))
        dt = check_float_dtype(dtype, "WindowTagger")     # (config() reads the parameters' dtype: astype changes it)
        rng = np.random.default_rng(seed)
        self.embed = nn.Embedding(len(words), embed_dim, rng=rng, dtype=dt, scale=embed_scale)
        self.embed.W.trainable = not freeze_embeddings
        self.caps = nn.Embedding(N_CAPS, caps_dim, rng=rng, dtype=dt, scale=embed_scale) if caps_dim else None
        self.suffix = (nn.Embedding(len(suffixes), suffix_dim, rng=rng, dtype=dt, scale=embed_scale)
                       if suffixes is not None else None)
        self.prefix = (nn.Embedding(len(prefixes), prefix_dim, rng=rng, dtype=dt, scale=embed_scale)
                       if prefixes is not None else None)
        self.shape = (nn.Embedding(len(shapes), shape_dim, rng=rng, dtype=dt, scale=embed_scale)
                      if shapes is not None else None)
        # the optional per-token feature slots, in the order of TaggerBatch.feats: (vocab, column read,
        # cell -> string, table); the feature columns' slots are added below
        self._features = (
            [(self.suffix_vocab, 0, functools.partial(word_suffix, n=n), self.suffix) for n in suffix_len
             if self.suffix is not None]
            + [(self.prefix_vocab, 0, functools.partial(word_prefix, n=n), self.prefix) for n in prefix_len
               if self.prefix is not None]
            + [(self.shape_vocab, 0, word_shape, self.shape)] * (self.shape is not None))
        self.char_cnn = (nn.CharCNN(len(chars), char_dim, char_filters, char_width, rng=rng, dtype=dt,
                                    scale=embed_scale) if chars is not None else None)
        n_chars_out = char_filters if chars is not None else 0
        n_in = window * (embed_dim + caps_dim + sum(f[3].W.shape[1] for f in self._features) + n_chars_out
                         + sum(c["dim"] for c in columns))
        n_lstm = 2 * lstm_hidden if context == "bilstm" else 0
        self.hidden = nn.Linear(n_in + n_lstm, hidden, rng=rng, dtype=dt)
        # with the sentence loss too: while the transitions are zero the path score factorises per token
        self.heads = [nn.SoftmaxOutput(hidden, len(t["tags"]), rng=rng, dtype=dt,
                                       class_counts=None if tag_counts is None or tag_counts[k] is None
                                       else np.asarray(tag_counts[k], dtype=np.float64) + 1.0)
                      for k, t in enumerate(self.tasks)]
        self.transitions = ([Transitions(len(t["tags"]), dtype=dt) for t in self.tasks] if loss == "sentence"
                            else None)
        # one table per feature column, drawn last so that the other parameters start as in a model without them
        self.columns = columns
        self.column_tables = [nn.Embedding(len(c["values"]), c["dim"], rng=rng, dtype=dt, scale=embed_scale)
                              for c in columns]
        self._features += [(Vocab(c["values"]), c["column"], str, t) for c, t in zip(columns, self.column_tables)]
        self.drop_in = nn.Dropout(dropout, rng=np.random.default_rng([seed, 1]))
        self.drop_hidden = nn.Dropout(hidden_dropout, rng=np.random.default_rng([seed, 2]))
        # the context layer: one LSTM per direction over the (dropped-out) window vectors of a sentence, drawn from
        # a generator of their own so that the other parameters start as in a window model of the same sizes
        lstm_rng = np.random.default_rng([seed, 3])
        self.lstm_fwd, self.lstm_bwd = ((nn.LSTM(n_in, lstm_hidden, rng=lstm_rng, dtype=dt),
                                         nn.LSTM(n_in, lstm_hidden, rng=lstm_rng, dtype=dt))
                                        if context == "bilstm" else (None, None))
        # layers 2..L ("fwd2", "bwd2", ...), drawn after the first so that its start does not depend on L; empty for
        # one layer, whose parameters and model file are then those of a tagger from before the option
        self.lstm_upper = ({f"{d}{k}": nn.LSTM(2 * lstm_hidden, lstm_hidden, rng=lstm_rng, dtype=dt)
                            for k in range(2, lstm_layers + 1) for d in ("fwd", "bwd")}
                           if context == "bilstm" else {})
        self.drop_lstm = nn.Dropout(lstm_dropout, rng=np.random.default_rng([seed, 4]))
        self._tag_index = [{tag: i for i, tag in enumerate(t["tags"])} for t in self.tasks]

    # -- construction from data ----------------------------------------------------------------------------------
    @classmethod
    def build(cls, sentences, tasks, *, scheme, min_count, suffix_len, suffix_dim, prefix_len, prefix_dim, shape_dim,
              char_dim, feature_min_count=1, extra_words=(), task_weights=None, columns=None, prior_bias=True,
              **kwargs):
        """A tagger whose vocabularies and tag sets come from training `sentences` (read_conll rows).

        tasks : {name: column index or name}.  columns : {name: (column index or name, dim)}, feature columns whose
        tags are read as inputs (their values are those of the training data).  task_weights : {name: weight of its
        loss} (others 1).  scheme :
        training encoding of chunk tasks ("iobes", "iob2", or "file" to keep the file's).  min_count : words seen
        fewer times map to <unk>.  extra_words : normalised words to add to the vocabulary (e.g. those of pretrained
        vectors).  feature_min_count : suffixes and shapes seen fewer times map to <unk>.  prior_bias : each task's
        output bias starts at the log prior of its training tags (add-one smoothed; False: zeros).  Other keywords
        go to the constructor (which has no defaults for the settings a TaggerConfig holds:
        fastnn.recipes.tagger.build(config, sentences) makes the tagger a Config describes).
        """
        where = "WindowTagger.build"
        if scheme not in TRAIN_SCHEMES:
            raise ValueError(f"{where}: 'scheme' must be one of {TRAIN_SCHEMES}; got {scheme!r}.")
        for name, value in (("tasks", tasks), ("columns", columns or {})):
            if not isinstance(value, Mapping):
                example = "{'chunk': 2}" if name == "tasks" else "{'pos': (1, 10)}"
                raise TypeError(f"{where}: '{name}' must be a dict like {example}; got {short_repr(value)}.")
        if not tasks:
            raise ValueError(f"{where}: 'tasks' must name at least one task; got none.")
        for name, spec in (columns or {}).items():
            if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
                raise TypeError(f"{where}: feature {name!r} must be a (column, dim) pair, e.g. (1, 10); got "
                                f"{short_repr(spec)}.")
        task_weights = dict(task_weights or {})
        if set(task_weights) - set(tasks):
            raise ValueError(f"{where}: 'task_weights' must name tasks of the model ({', '.join(tasks)}); got "
                             f"{', '.join(sorted(set(task_weights) - set(tasks)))}.")
        sentences = as_rows(sentences, where, tokens=False)
        if not any(sentences):
            raise ValueError(f"{where}: the training data must hold at least one token; got {len(sentences)} empty "
                             f"sentences." if sentences else f"{where}: the training data must hold at least one "
                             f"sentence; got none.")
        given = sentences                              # (messages number sentences as given)
        sentences = [s for s in sentences if s]        # an empty sentence has no token to learn from (nor columns)
        n_cols = max(len(s[0]) for s in sentences)
        specs, counts = [], []
        for name, col in tasks.items():
            c = conll.column_index(col, where)
            if c == 0:
                raise ValueError(f"{where}: task {name!r} reads column 0, the words; its tags are in a later column "
                                 f"(CoNLL-2000: pos 1, chunk 2; CoNLL-2003: pos 1, chunk 2, ner 3).")
            if c >= n_cols:
                raise IndexError(f"{where}: task {name!r} reads column {c}, but the training data has {n_cols} "
                                 f"columns (0..{n_cols - 1}).")
            gold = _labelled_column(given, c)                                   # the sentences labelled for it
            file_scheme = detect_scheme(gold, f"{where}: task {name!r} (column {c})", column=c)
            train_scheme = None if file_scheme is None else (file_scheme if scheme == "file" else scheme)
            vocab = Vocab.build(recode(gold, file_scheme, train_scheme), specials=())
            specs.append({"name": name, "column": c, "tags": vocab.words, "scheme": train_scheme,
                          "file_scheme": file_scheme, "weight": task_weights.get(name, 1.0)})
            counts.append(vocab.counts)
        col_specs = []
        for name, (col, dim) in (columns or {}).items():
            c = conll.column_index(col, where)
            gold = [t["name"] for t in specs if t["column"] == c]
            if gold:
                raise ValueError(f"{where}: feature {name!r} reads column {c}, the gold tags of task {gold[0]!r}: the "
                                 f"model would learn to copy them, and files to tag do not have them.")
            if not 1 <= c < n_cols or any(len(s[0]) <= c for s in sentences):
                raise IndexError(f"{where}: feature {name!r} reads column {c}, which every training sentence must "
                                 f"have (and not the words, column 0); the training data has "
                                 f"{min(len(s[0]) for s in sentences)} to {n_cols} columns.")
            values = Vocab.build(conll.column(sentences, c), specials=(Vocab.PAD, Vocab.UNK)).words
            col_specs.append({"name": name, "column": c, "values": values, "dim": int(dim),
                              "scheme": tagging.scheme_of(conll.column(sentences, c))})
        lower = kwargs["lowercase"]
        norm = ([normalize(r[0], lower) for r in s] for s in sentences)
        wv = Vocab.build(norm, min_count=min_count, specials=(Vocab.PAD, Vocab.UNK))
        extra = [w for w in dict.fromkeys(extra_words) if w not in wv]
        if extra:
            wv = Vocab(wv.words + extra, np.concatenate([wv.counts, np.zeros(len(extra), np.int64)]))

        def feature_vocab(*fns):
            strings = ([fn(r[0]) for r in s for fn in fns] for s in sentences)
            return Vocab.build(strings, min_count=feature_min_count, specials=(Vocab.PAD, Vocab.UNK)).words

        suffix_len = affix_lengths(suffix_len, "suffix_len", where)
        prefix_len = affix_lengths(prefix_len, "prefix_len", where)
        for kind, lengths, dim in (("suffix", suffix_len, suffix_dim), ("prefix", prefix_len, prefix_dim)):
            warn_unpaired_affix(where, kind, lengths, check_int(dim, f"{kind}_dim", where, low=0))
        suffix_len = suffix_len if suffix_dim else ()
        prefix_len = prefix_len if prefix_dim else ()
        suffixes = feature_vocab(*(functools.partial(word_suffix, n=n) for n in suffix_len)) if suffix_len else None
        prefixes = feature_vocab(*(functools.partial(word_prefix, n=n) for n in prefix_len)) if prefix_len else None
        shapes = feature_vocab(word_shape) if shape_dim else None
        chars = (Vocab.build(([c for r in s for c in word_chars(r[0])] for s in sentences),
                             specials=(Vocab.PAD, Vocab.UNK)).words if char_dim else None)
        return cls(wv.words, specs, suffixes=suffixes, prefixes=prefixes, shapes=shapes, chars=chars,
                   columns=col_specs, word_counts=wv.counts.tolist(), suffix_len=suffix_len,
                   suffix_dim=suffix_dim if suffixes else 0, prefix_len=prefix_len,
                   prefix_dim=prefix_dim if prefixes else 0, shape_dim=shape_dim, char_dim=char_dim,
                   tag_counts=counts if prior_bias else None, **kwargs)

    @classmethod
    def from_config(cls, cfg):
        """The tagger config() describes; model files written before the context layer existed are window models,
        those without lstm_layers have one layer."""
        return super().from_config({"context": "window", "lstm_hidden": 0, "lstm_dropout": 0.0, "lstm_layers": 1,
                                    **cfg})

    def config(self):
        cfg = dict(self._cfg)
        if cfg["lstm_layers"] == 1:         # (left out: a 1-layer model's file says what it said before the option)
            del cfg["lstm_layers"]
        return dict(words=self.vocab.words, tasks=self.tasks,
                    suffixes=None if self.suffix_vocab is None else self.suffix_vocab.words,
                    prefixes=None if self.prefix_vocab is None else self.prefix_vocab.words,
                    shapes=None if self.shape_vocab is None else self.shape_vocab.words,
                    chars=None if self.char_vocab is None else self.char_vocab.words, columns=self.columns,
                    word_counts=None if self.vocab.counts is None else self.vocab.counts.tolist(), **cfg,
                    dtype=self.dtype.name)

    @property
    def loss_type(self):
        return self._cfg["loss"]

    @property
    def task_names(self):
        return [t["name"] for t in self.tasks]

    # -- data ----------------------------------------------------------------------------------------------------
    def encode(self, sentences, targets=True, partial=False):
        """Encoded windows of read_conll sentences (word column 0; tokenised sentences too when targets=False);
        targets=True also encodes every task's column in the training encoding, for training: a missing column is an
        IndexError, a tag the model does not know a ValueError (a model cannot learn a tag it has no output for;
        evaluate(), and with it a dev set that picks the epoch, scores any file, counting unseen tags as errors).
        partial=True
        (training data from several corpora): a sentence without a task's column gets target -1 (no label) for that
        task instead of an error."""
        where = "WindowTagger.encode"
        sentences = self._in_feature_encodings(as_rows(sentences, where, tokens=not targets))
        w = self._cfg["window"]
        lower = self._cfg["lowercase"]
        wid = [self.vocab.encode([normalize(r[0], lower) for r in s]) for s in sentences]
        cid = conll.encode_caps(sentences, col=0)
        words, caps, offsets = conll.windows(wid, cid, window=w, pad_word_id=0)
        for c in self.columns:
            short = next((i for i, s in enumerate(sentences) if s and len(s[0]) <= c["column"]), None)
            if short is not None:                    # numbered from 0 as every other sentence message; shown, since
                n = len(sentences[short][0])         # plain tokens (predict's other input) have no feature column
                raise IndexError(f"{where}: feature {c['name']!r} reads column {c['column']} as an input, but sentence "
                                 f"{short} has {n} column{'s' * (n != 1)}: "
                                 f"{short_repr(sentences[short])}. Give every token that column, as in the "
                                 f"training data.")
        feats = tuple(conll.windows([vocab.encode([fn(r[col]) for r in s]) for s in sentences], window=w,
                                    pad_word_id=0)[0] for vocab, col, fn, _ in self._features)
        forms = chars = None
        if self.char_cnn is not None:
            index = {None: 0}                          # form 0 stands for the window padding past sentence edges
            fid = [[index.setdefault(word_chars(r[0]), len(index)) for r in s] for s in sentences]
            forms = conll.windows(fid, window=w, pad_word_id=0)[0]
            # padding (and an empty token) is spelled with one pad character
            spelled = [[0]] + [list(self.char_vocab.encode(list(f))) or [0] for f in list(index)[1:]]
            lengths = np.array([len(c) for c in spelled], dtype=np.int64)
            ids = np.zeros((len(spelled), lengths.max()), dtype=np.int64)
            for i, c in enumerate(spelled):
                ids[i, :len(c)] = c
            chars = (ids, lengths)
        tgt = None
        if targets:
            tgt = np.full((offsets[-1], len(self.tasks)), -1, dtype=np.int64)
            for k, t in enumerate(self.tasks):
                # (an empty sentence has no token to label, nor columns to count)
                labelled = np.array([not s or len(s[0]) > t["column"] for s in sentences], dtype=bool)
                if not labelled.all() and not partial:
                    n_cols = min(len(s[0]) for s in sentences if s)
                    raise IndexError(f"{where}: task {t['name']!r} reads column {t['column']}, but the data has "
                                     f"{n_cols} columns.")
                raw = _labelled_column(sentences, t["column"])
                if t["file_scheme"] is not None:
                    self._check_chunk_tags(raw, t, where)
                gold = recode(raw, t["file_scheme"], t["scheme"])
                index = self._tag_index[k]
                flat = [tag for s in gold for tag in s]
                try:
                    tgt[np.repeat(labelled, np.diff(offsets)), k] = [index[tag] for tag in flat]
                except KeyError:
                    pos = next(i for i, tag in enumerate(flat) if tag not in index)
                    orig = [x for s in raw for x in s][pos]
                    at = _position(raw, pos)
                    shown = (repr(orig) if t["scheme"] in (None, t["file_scheme"])
                             else f"{orig!r} ({flat[pos]!r} in {t['scheme'].upper()})")
                    typ = tagging.split_tag(flat[pos])[1] if t["scheme"] is not None else None
                    same = [x for x in t["tags"] if typ and tagging.split_tag(x)[1] == typ]
                    known = (f"it knows {typ} only as {', '.join(same)}" if same else
                             f"known: {', '.join(t['tags'][:12])}{', ...' if len(t['tags']) > 12 else ''}")
                    raise ValueError(f"{where}: task {t['name']!r} (column {t['column']}) has the tag {shown}, "
                                     f"which the model was not trained on ({known}), at {at}. Training needs tags "
                                     f"the model can produce; evaluate() (`fastnn tagger eval`, a --dev file) scores "
                                     f"any file, counting such tags as errors.") from None
        return TaggerBatch(words, caps, feats, tgt, offsets, forms, chars)

    def batches(self, sentences_or_encoded, *, batch_size=128, bucket=0, unk_replace=0.0):
        """WindowBatches over training data: by window (word loss) or by sentence (sentence loss).  Sentences may
        lack some tasks' columns (encode(partial=True)); those labelled for no task are left out."""
        enc = sentences_or_encoded
        if not isinstance(enc, TaggerBatch):
            cols = [t["column"] for t in self.tasks]
            enc = self.encode([s for s in enc if s and len(s[0]) > min(cols)], partial=True)  # (an empty one: no tag)
        rare = None
        if unk_replace and self.vocab.counts is not None:
            rare = self.vocab.counts == 1
        return WindowBatches(enc, batch_size=batch_size, by="sentence" if self.loss_type == "sentence" else "window",
                             bucket=bucket, unk_replace=unk_replace, rare=rare, unk_id=self.vocab.unk_id)

    # -- the network ---------------------------------------------------------------------------------------------
    def hidden_layer(self, batch):
        """h (N, hidden) as a Node: concatenated window vectors -> dropout -> affine -> activation -> dropout; with
        the bilstm context the affine map reads the window vectors and both LSTMs' outputs at the token (of the top
        layer, after lstm_dropout)."""
        parts = [self.embed(batch.words)]
        if self.caps is not None:
            parts.append(self.caps(batch.caps))
        for (_, _, _, table), ids in zip(self._features, batch.feats):
            parts.append(table(ids))
        if self.char_cnn is not None:
            by_form = self.char_cnn(*batch.chars)                          # (distinct forms, char_filters)
            N, w = batch.forms.shape
            parts.append(nn.reshape(nn.take(by_form, batch.forms), (N, w * by_form.value.shape[1])))
        x = parts[0] if len(parts) == 1 else nn.concat(parts)
        x = self.drop_in(x)
        if self.lstm_fwd is not None:
            x = nn.concat([x] + [self.drop_lstm(o) for o in self._bilstm(x, batch.offsets)])
        z = self.hidden(x)
        h = nn.hardtanh(z) if self._cfg["activation"] == "hardtanh" else nn.tanh(z)
        return self.drop_hidden(h)

    def _bilstm(self, x, offsets):
        """[forward, backward] LSTM outputs of the top layer, each (N, lstm_hidden), over the token rows x (N, D) of
        the sentences of `offsets` (S + 1,).  Layer k > 1 reads, at each token, layer k - 1's forward and backward
        outputs concatenated (after lstm_dropout).

        Both directions run on all S sentences at once as (T, S, D) sequences (T the longest sentence), each sentence
        left-aligned: the forward one in order, the backward one reversed, so padding is always at the end of a
        sequence, where it cannot change the sentence's own steps; a padding step repeats a real row (no mask
        needed) and its output, never gathered back, gets zero gradient, so nothing flows from it.  Output row t * S
        + s of the (T * S, K) result is step t of sentence s.

        >>> offsets = np.array([0, 3, 5])            # sentences [0 1 2] and [3 4]
        >>> fwd, bwd, back_f, back_b = WindowTagger._bilstm_index(offsets)
        >>> fwd                                      # rows read at steps t (lines) of sentences s (columns)
        array([[0, 3],
               [1, 4],
               [2, 4]])
        >>> bwd
        array([[2, 4],
               [1, 3],
               [0, 3]])
        >>> back_f, back_b                           # where each token's output is, in the (T * S) rows
        (array([0, 2, 4, 1, 3]), array([4, 2, 0, 3, 1]))
        """
        if offsets is None:
            raise ValueError("WindowTagger: the bilstm context needs whole sentences (offsets); got a batch of "
                             "independent windows. Use model.batches(...) or encode(...).")
        fwd, bwd, back_f, back_b = self._bilstm_index(offsets)
        K = self.lstm_fwd.W_hh.shape[1]
        layers = [(self.lstm_fwd, self.lstm_bwd)] + [(self.lstm_upper[f"fwd{k}"], self.lstm_upper[f"bwd{k}"])
                                                    for k in range(2, self._cfg["lstm_layers"] + 1)]
        out = []
        for pair in layers:
            if out:                                 # layer k > 1: both directions of layer k - 1 at each token
                x = nn.concat([self.drop_lstm(o) for o in out])
            out = [nn.take(nn.reshape(lstm(nn.take(x, idx))[0], (-1, K)), back)
                   for lstm, idx, back in zip(pair, (fwd, bwd), (back_f, back_b))]
        return out

    @staticmethod
    def _bilstm_index(offsets):
        """(fwd, bwd) (T, S) token rows read at each step and (back_f, back_b) (N,) each token's flat output row."""
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        S, T = len(lengths), int(lengths.max(initial=0))
        t = np.arange(T)[:, None]
        last = np.maximum(lengths - 1, 0)
        fwd = offsets[:-1] + np.minimum(t, last)                    # padding repeats the last token
        bwd = offsets[:-1] + np.maximum(last - t, 0)                # padding repeats the first token
        pos = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)    # each token's place in its sentence
        sent = np.repeat(np.arange(S), lengths)
        return fwd, bwd, pos * S + sent, (np.repeat(lengths, lengths) - 1 - pos) * S + sent

    def loss(self, batch):
        """The weighted sum over tasks of the batch's loss per token (a scalar Node); one forward pass through h."""
        if not isinstance(batch, TaggerBatch):          # (else an AttributeError on .targets)
            raise TypeError(f"WindowTagger.loss: 'batch' must be a TaggerBatch (model.batches(...) or "
                            f"model.encode(...).batch()); got {type(batch).__name__}.")
        if batch.targets is None:
            raise ValueError("WindowTagger.loss: the batch must have targets; got None.")
        if self.transitions is not None and batch.offsets is None:
            raise ValueError("WindowTagger.loss: the sentence-level loss needs whole sentences (offsets); "
                             "got a batch of independent windows. Use model.batches(...).")
        h = self.hidden_layer(batch)
        total = None
        for k, head in enumerate(self.heads):
            y, hk, offsets = batch.targets[:, k], h, batch.offsets
            if y.min(initial=0) < 0:               # tokens without this task's label (-1) are left out of its loss
                keep = y >= 0
                if not keep.any():
                    continue
                rows = np.flatnonzero(keep)
                y, hk = y[rows], nn.take(h, rows)
                if offsets is not None:            # sentences are labelled whole: keep the labelled ones' lengths
                    per_sentence = np.diff(np.concatenate([[0], np.cumsum(keep)])[offsets])
                    offsets = np.concatenate([[0], np.cumsum(per_sentence[per_sentence > 0])])
            if self.transitions is None:
                lk = head.loss(hk, y)
            else:
                lk = sentence_nll(head(hk), y, offsets, self.transitions[k])
            if self.tasks[k]["weight"] != 1.0:
                lk = nn.scale(lk, self.tasks[k]["weight"])
            total = lk if total is None else nn.add(total, lk)
        if total is None:
            raise ValueError("WindowTagger.loss: no token of the batch is labelled for any task (all targets -1).")
        return total

    def scores(self, enc, chunk=8192):
        """Per task, the (N, K) tag scores of every window of an Encoded corpus (eval mode, no graph kept), computed
        `chunk` tokens at a time; with the bilstm context whole sentences at a time (about `chunk` tokens of
        sentences of similar lengths, so that little is padded)."""
        self.check_encoded(enc, "WindowTagger.scores")
        chunk = check_int(chunk, "chunk", "WindowTagger.scores")    # (below 1 no chunk ran: uninitialised scores)
        if self.lstm_fwd is None:
            pieces = [(np.arange(lo, min(lo + chunk, len(enc.words))), enc.batch(rows=slice(lo, lo + chunk)))
                      for lo in range(0, len(enc.words), chunk)]
        else:
            pieces = self._sentence_pieces(enc, chunk)
        out = [np.empty((len(enc.words), h.W.shape[0]), dtype=h.W.dtype) for h in self.heads]
        with self.evaluating():
            for rows, batch in pieces:
                hv = self.hidden_layer(batch).value
                for k, head in enumerate(self.heads):
                    s = hv @ head.W.value.T
                    s += head.b.value
                    out[k][rows] = s
        return out

    @staticmethod
    def _sentence_pieces(enc, chunk):
        """(token rows, TaggerBatch) of whole sentences, about `chunk` tokens each, sentences sorted by length."""
        lengths = np.diff(enc.offsets)
        order = np.argsort(lengths, kind="stable")
        cum = np.cumsum(lengths[order])
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(cum // chunk) > 0) + 1, [len(order)]])
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b > a:
                sel = order[a:b]
                rows = np.concatenate([np.arange(enc.offsets[i], enc.offsets[i + 1]) for i in sel])
                yield rows, enc.batch(sentences=sel)

    def transition_scores(self, k):
        """(A, start, end) transition scores of task k (arrays), or None for the word-level loss."""
        if self.transitions is None:
            return None
        tr = self.transitions[k]
        return tr.A.value, tr.start.value, tr.end.value

    def __repr__(self):
        c = self._cfg
        tasks = ", ".join(f"{t['name']}={t['column']}:{len(t['tags'])} tags"
                          + (f" x{t['weight']:g}" if t["weight"] != 1.0 else "") for t in self.tasks)
        sfx = f", suffix{c['suffix_len']}={c['suffix_dim']}" if self.suffix is not None else ""
        sfx += f", prefix{c['prefix_len']}={c['prefix_dim']}" if self.prefix is not None else ""
        sfx += f", shape={c['shape_dim']}" if self.shape is not None else ""
        sfx += "".join(f", {f['name']}=col{f['column']}:{f['dim']}" for f in self.columns)
        sfx += (f", chars={c['char_dim']}x{c['char_filters']}/{c['char_width']}" if self.char_cnn is not None
                else "")
        sfx += f", bilstm={c['lstm_hidden']}x2" if self.lstm_fwd is not None else ""
        sfx += f" in {c['lstm_layers']} layers" if self.lstm_fwd is not None and c["lstm_layers"] > 1 else ""
        return (f"WindowTagger(tasks=[{tasks}], vocab={len(self.vocab)}, window={c['window']}, "
                f"embed={c['embed_dim']}, caps={c['caps_dim']}{sfx}, hidden={c['hidden']} {c['activation']}, "
                f"loss={c['loss']!r}, dropout={c['dropout']}/{c['hidden_dropout']}, dtype={self.dtype})")


class TaggerEnsemble(_Tagging, Module):
    """K WindowTaggers trained apart (their own seeds) with the same settings on the same data, tagging together.

    Each token's tag scores are the mean of the members' scores, and with the sentence-level loss the transition,
    start and end scores are the members' means too, so Viterbi finds the tag path with the highest mean of the
    members' path scores (a path's score is a sum of tag and transition scores: its mean over members is the score of
    the path under the mean scores).  With the word-level loss the mean scores are decoded as one model's
    (predict_ids).

    members : WindowTaggers whose configurations differ only in their seeds (vocabularies, tag sets, feature
        columns and sizes equal), so that one encoding of the data serves all and their scores line up.  The model
        file (fastnn.io.save_model) holds the shared configuration once, the seeds and every member's parameters
        (members.0.embed.W, ...).  fastnn.recipes.tagger trains one with TaggerConfig(ensemble=K).
    """

    def __init__(self, members):
        where = "TaggerEnsemble"
        members = list(members)
        if not members or not all(isinstance(m, WindowTagger) for m in members):
            raise TypeError(f"{where}: 'members' must be a non-empty list of WindowTaggers; got "
                            f"{[type(m).__name__ for m in members] or 'none'}.")
        shared = self._shared_config(members[0])
        for i, m in enumerate(members[1:], 1):
            other = self._shared_config(m)
            if other != shared:
                diff = sorted(k for k in set(shared) | set(other) if shared.get(k) != other.get(k))
                raise ValueError(f"{where}: every member must have the first member's configuration apart from the "
                                 f"seed; member {i} differs in {diff}. Train the members from the same data and "
                                 f"settings.")
        self.members = members

    @staticmethod
    def _shared_config(m):
        return {k: v for k, v in m.config().items() if k != "seed"}

    @classmethod
    def from_config(cls, cfg):
        """The ensemble config() describes: {"member": a member's config without its seed, "seeds": [...]}."""
        return cls([WindowTagger.from_config(dict(cfg["member"], seed=s)) for s in cfg["seeds"]])

    def config(self):
        return {"member": self._shared_config(self.members[0]), "seeds": [m.config()["seed"] for m in self.members]}

    @property
    def tasks(self):
        return self.members[0].tasks

    @property
    def task_names(self):
        return self.members[0].task_names

    @property
    def columns(self):
        return self.members[0].columns

    @property
    def _tag_index(self):
        return self.members[0]._tag_index

    @property
    def loss_type(self):
        return self.members[0].loss_type

    def encode(self, sentences, targets=True, partial=False):
        """The members' common encoding (WindowTagger.encode)."""
        return self.members[0].encode(sentences, targets, partial)

    def scores(self, enc):
        """Per task, the mean over members of their (N, K) tag scores."""
        self.check_encoded(enc, "TaggerEnsemble.scores")
        total = None
        for m in self.members:
            s = m.scores(enc)
            total = s if total is None else [t + x for t, x in zip(total, s)]
        return [t / len(self.members) for t in total]

    def transition_scores(self, k):
        """Task k's (A, start, end), each the mean over members, or None for the word-level loss."""
        per = [m.transition_scores(k) for m in self.members]
        if per[0] is None:
            return None
        return tuple(np.mean([p[i] for p in per], axis=0).astype(per[0][i].dtype) for i in range(3))

    def __repr__(self):
        seeds = ", ".join(str(s) for s in self.config()["seeds"])
        return f"TaggerEnsemble({len(self.members)} members, seeds {seeds}, each {self.members[0]!r})"


def main_score(results):
    """The mean over tasks of F1 (chunk tasks) or accuracy (tag tasks) of an evaluate() result."""
    return float(np.mean([r["f1"] if r["f1"] is not None else r["accuracy"] for r in results.values()]))


def _labelled_column(sentences, col):
    """Column `col` of each sentence, [] for a sentence without it (partial data) or without a token: sentence k of
    the result is sentence k of the data, so that a message numbering the sentences of the column numbers them as
    given (counting the labelled ones only named another sentence)."""
    return [[r[col] for r in s] if s and len(s[0]) > col else [] for s in sentences]


def _position(sentences, pos):
    """'sentence k, token i' of the pos-th token of `sentences` (lists), counting from 0."""
    for k, s in enumerate(sentences):
        if pos < len(s):
            return f"sentence {k}, token {pos}"
        pos -= len(s)
    raise IndexError(pos)


def _refill(pred, sentences):
    """Per-sentence predictions of the non-empty `sentences`, with [] put back for the empty ones."""
    it = iter(pred)
    return [next(it) if s else [] for s in sentences]


# ---- gradient checks ---------------------------------------------------------------------------------------------

def _tiny_tagger(rng, loss, n_tasks, suffix, context="window", lstm_dropout=0.0, lstm_layers=1):
    seed = int(rng.integers(1 << 30))
    words = [Vocab.PAD, Vocab.UNK] + [f"w{i}" for i in range(8)]
    tasks = [{"name": f"t{k}", "column": k + 1, "tags": [f"T{j}" for j in range(3 + k)], "scheme": None,
              "file_scheme": None, "weight": 1.0 / (k + 1)} for k in range(n_tasks)]
    sfx = [Vocab.PAD, Vocab.UNK, "a", "b"] if suffix else None
    pfx = [Vocab.PAD, Vocab.UNK, "c"] if suffix else None
    shp = [Vocab.PAD, Vocab.UNK, "x", "Xx", "d"] if suffix else None
    chars = [Vocab.PAD, Vocab.UNK, "a", "b", "c"] if suffix else None
    cols = [{"name": "pos", "column": 1, "values": [Vocab.PAD, Vocab.UNK, "NN", "VB"], "dim": 2}] if suffix else ()
    m = WindowTagger(words, tasks, suffixes=sfx, prefixes=pfx, shapes=shp, chars=chars, columns=cols, window=3,
                     embed_dim=3, caps_dim=2, suffix_len=(1, 2) if suffix else 0, suffix_dim=2 if suffix else 0,
                     prefix_len=1 if suffix else 0, prefix_dim=1 if suffix else 0, shape_dim=2 if suffix else 0,
                     char_dim=2 if suffix else 0, char_filters=3, char_width=3, hidden=4, activation="tanh",
                     loss=loss, dropout=0.0, hidden_dropout=0.0, embed_scale=1.0, freeze_embeddings=False,
                     lowercase=True, seed=seed, context=context, lstm_hidden=3, lstm_layers=lstm_layers,
                     lstm_dropout=lstm_dropout, dtype="float64")
    for tr in m.transitions or []:
        for p in (tr.A, tr.start, tr.end):
            p.value[...] = rng.standard_normal(p.shape)
    for head in m.heads:
        head.b.value[...] = rng.standard_normal(head.b.shape) * 0.5
    m.hidden.b.value[...] = rng.standard_normal(m.hidden.b.shape) * 0.5
    lengths = [3, 1, 2]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    N = offsets[-1]
    targets = np.stack([rng.integers(0, len(t["tags"]), N) for t in tasks], axis=1)
    if n_tasks > 1:
        targets[offsets[-2]:, 1] = -1    # the last sentence has no label for task 1 (data from another corpus)
    forms = spelled = None
    if suffix:                       # 4 word forms, form 2 used twice
        forms = np.array([0, 1, 2, 3, 2, 0, 1, 2, 3, 0, 1, 2, 2, 3, 0, 1, 2, 3]).reshape(N, 3)
        spelled = (np.array([[0, 0, 0], [2, 3, 4], [4, 0, 0], [1, 2, 2]]), np.array([1, 3, 1, 3]))
    batch = TaggerBatch(rng.integers(0, len(words), (N, 3)), rng.integers(0, N_CAPS, (N, 3)),
                        (rng.integers(0, 4, (N, 3)), rng.integers(0, 4, (N, 3)), rng.integers(0, 3, (N, 3)),
                         rng.integers(0, 5, (N, 3)), rng.integers(0, 4, (N, 3))) if suffix else (), targets,
                        offsets if loss == "sentence" else None, forms, spelled)
    return m, batch


def _case(loss, n_tasks, suffix=False, context="window", lstm_dropout=0.0, lstm_layers=1):
    """suffix=True adds the suffix (two lengths, one shared table), prefix, shape, feature-column and character
    features; context="bilstm" the LSTM context layer (sentences of 3, 1 and 2 tokens: padding in both
    directions), of lstm_layers layers; lstm_dropout > 0 dropout on its outputs (and between its layers), the same
    masks in every pass."""
    def build(rng):
        m, batch = _tiny_tagger(rng, loss, n_tasks, suffix, context, lstm_dropout, lstm_layers)
        mask_seed = int(rng.integers(1 << 30))

        def loss_fn():
            m.drop_lstm.rng = np.random.default_rng(mask_seed)
            return m.loss(batch)
        return loss_fn, m.parameters()
    return build


def gradcheck_cases():
    """Word- and sentence-level losses, single task and multitask (shared embeddings and hidden layer), and the
    sentence-level loss with the bilstm context (and with dropout on its outputs), of one layer and of two."""
    return [("tagger.word", _case("word", 1)),
            ("tagger.word_multitask", _case("word", 2, suffix=True)),
            ("tagger.sentence", _case("sentence", 1)),
            ("tagger.sentence_multitask", _case("sentence", 2, suffix=True)),
            ("tagger.bilstm", _case("sentence", 1, context="bilstm")),
            ("tagger.bilstm_multitask", _case("sentence", 2, suffix=True, context="bilstm")),
            ("tagger.bilstm_dropout", _case("sentence", 1, context="bilstm", lstm_dropout=0.5)),
            ("tagger.bilstm2", _case("sentence", 1, context="bilstm", lstm_layers=2)),
            ("tagger.bilstm2_multitask", _case("sentence", 2, suffix=True, context="bilstm", lstm_layers=2)),
            ("tagger.bilstm2_dropout", _case("sentence", 1, context="bilstm", lstm_dropout=0.5, lstm_layers=2))]
