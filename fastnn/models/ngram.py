"""Count-based n-gram language models on integer word ids: interpolated modified Kneser-Ney and deleted interpolation.

Both models read the same data as the neural LMs: word ids in ``[0, vocab_size)`` where every sentence ends with
``eos_id`` (``</s>``), which is predicted and counted like any word.  Data is either a 1-d integer *stream* of
sentences each terminated by ``eos_id`` (what ``fastnn.data.lm_stream`` returns), or a list of sentences (sequences of
ids *without* ``eos_id``; the model appends it).  Each model predicts every token of the stream, so
``token_logprobs(stream)[i]`` lines up with position ``i`` and can be mixed token by token with a neural LM.

Sentence starts (``bos=True``, the default, as KenLM): each sentence is preceded by a begin-of-sentence symbol
``<s>`` (internal id ``vocab_size``) that is a context but is never predicted; a history never reaches back past it,
so the first word is predicted from ``<s>``, the second from ``<s> w1``, and so on.  With ``bos=False`` the stream is
one continuous text: the history crosses sentence boundaries (``</s>`` of the previous sentence is a context) and only
the first tokens of the stream have a shortened history.

Implementation: the k-grams are numbered by order.  A k-gram is (id of its (k-1)-word prefix, last word), encoded as
the int64 key ``prefix_id * (vocab_size + 1) + word``; the sorted unique keys of the training data are the k-gram
table and a k-gram's id is its position in it.  Building is ``np.unique`` per order, scoring is ``np.searchsorted``
per order, so keys never overflow whatever the order and nothing loops over tokens in Python.
"""
import numbers
import os
import warnings

import numpy as np

from fastnn import io
from fastnn._validation import array_like, check_int, check_not_file, check_words
from fastnn.data.text import as_sequence, history_ids, id_sentences_stream, text_stream, word_ids
from fastnn.graph import Module
from fastnn.metrics import perplexity as _perplexity

__all__ = ["KneserNey", "DeletedInterpolation", "load"]

# what reads a corpus file into data these models take (named when given a file)
READER = "fastnn.data.read_sentences(path) (tokenised sentences; or lm_stream(read_sentences(path), vocab))"

# KenLM's --discount_fallback values, used when count-of-counts cannot give valid discounts (tiny corpora).
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def _as_ids(seq, name, where, vocab_size):
    """A 1-d int64 array of ids in [0, vocab_size) from an integer array or a sequence of ints."""
    if isinstance(seq, (str, bytes)):
        raise TypeError(f"{where}: '{name}' must hold integer word ids; got a string. Encode words with a Vocab first.")
    a = np.asarray(seq)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype.kind not in "iu":
        hint = " Encode words with a Vocab first." if a.dtype.kind in "USO" else ""
        raise TypeError(f"{where}: '{name}' must hold integer word ids; got dtype {a.dtype}.{hint}")
    if a.ndim != 1:
        raise ValueError(f"{where}: '{name}' must be 1-dimensional; got shape {a.shape}.")
    bad = np.flatnonzero((a < 0) | (a >= vocab_size))
    if bad.size:
        raise IndexError(f"{where}: '{name}' must hold ids in [0, {vocab_size}); got {a[bad[0]]} at position "
                         f"{bad[0]}.")
    return a.astype(np.int64, copy=False)


class _NGramLM(Module):
    """Shared machinery: data layout, k-gram tables, lookups, scoring API, storage.  Subclasses add the estimator.

    A Module without parameters: its count tables are `buffers()`, so fastnn.io saves and loads it like any model
    (`io.save_model` / `io.load_model`).  `words` (optional) is the vocabulary, kept in the config for the CLI.
    """

    def __init__(self, order, *, bos=True, words=None):
        where = type(self).__name__
        self.order = check_int(order, "order", where, low=1)
        if not isinstance(bos, bool):
            raise TypeError(f"{where}: 'bos' must be a bool; got {type(bos).__name__} {bos!r}.")
        self.bos = bos
        self.words = check_words(words, where)
        self.vocab_size = None
        self.eos_id = None
        self._keys = None   # _keys[k] for k >= 2: sorted unique int64 keys of the training k-grams

    # ---- data layout ------------------------------------------------------------------------------------------

    @property
    def _base(self):
        return self.vocab_size + 1          # ids 0..V-1 are words, V is <s>

    def _check_fitted(self, where):
        if self._keys is None:
            raise ValueError(f"{where}: the model must be fitted first; got an unfitted {type(self).__name__}. "
                             f"Call fit(...) or load(...).")

    def _stream(self, data, name, where, complete=False):
        """The int64 stream of `data` (a stream of sentences each ending with eos, or a list of sentences without
        eos, or tokenised sentences encoded with the model's words).  `complete`: the stream must end with eos (training
        data); scoring accepts a truncated last sentence."""
        V, eos = self.vocab_size, self.eos_id
        data = as_sequence(array_like(check_not_file(data, name, where, READER)), name, where)
        text = text_stream(data, self.words, where)
        if text is not None:
            return text
        sentences = id_sentences_stream(data, eos, name, where)
        if sentences is not None:
            return _as_ids(sentences, name, where, V)
        if isinstance(data, np.ndarray) or (isinstance(data, (list, tuple)) and data
                                            and all(isinstance(x, numbers.Integral) for x in data[:1])):
            s = _as_ids(data, name, where, V)
            if complete and s.size and s[-1] != eos:
                raise ValueError(f"{where}: '{name}' as a stream must end with eos_id={eos} (every sentence ends "
                                 f"with </s>); got last id {s[-1]}. Pass a list of sentences to have </s> added.")
            return s
        raise TypeError(f"{where}: '{name}' must be a 1-d integer array (stream) or a list of sentences of ids; "
                        f"got {type(data).__name__}.")

    def _layout(self, stream):
        """(tokens, hist, pred): tokens with <s> inserted (bos mode), the number of tokens before each position that
        its history may use, and the mask of predicted positions (all but <s>)."""
        n = len(stream)
        if not self.bos:
            return stream, np.arange(n, dtype=np.int64), np.ones(n, dtype=bool)
        starts = np.concatenate([[0], np.flatnonzero(stream[:-1] == self.eos_id) + 1]) if n else np.zeros(0, int)
        tokens = np.insert(stream, starts, self.vocab_size)
        bos_pos = starts + np.arange(len(starts))                  # positions of <s> in `tokens`
        sent = np.cumsum(tokens == self.vocab_size) - 1           # sentence index of each position
        hist = np.arange(len(tokens), dtype=np.int64) - bos_pos[sent]
        return tokens, hist, tokens != self.vocab_size

    def _build_tables(self, tokens, hist):
        """Sorted unique keys per order and the k-gram id at each position (-1 where the history is too short)."""
        B, n = self._base, len(tokens)
        keys, ids = [None, None], [None, tokens]
        for k in range(2, self.order + 1):
            idx = np.flatnonzero(hist >= k - 1)
            if (len(keys[k - 1]) if k > 2 else B) * B >= 2 ** 62:
                raise ValueError(f"{type(self).__name__}.fit: too many {k - 1}-grams to encode {k}-gram keys in int64.")
            uniq, inv = np.unique(ids[k - 1][idx - 1] * B + tokens[idx], return_inverse=True)
            g = np.full(n, -1, dtype=np.int64)
            g[idx] = inv.ravel()
            keys.append(uniq)
            ids.append(g)
        return keys, ids

    def _lookup(self, tokens, hist):
        """(ids, ctx): ids[k] = id of the training k-gram ending at each position, ctx[k] = id of the (k-1)-gram
        history of each position; -1 when absent from training or beyond the usable history."""
        B, n = self._base, len(tokens)
        ids, ctx = [None, tokens], [None, None]
        for k in range(2, self.order + 1):
            h = np.full(n, -1, dtype=np.int64)
            idx = np.flatnonzero(hist >= k - 1)
            h[idx] = ids[k - 1][idx - 1]
            ctx.append(h)
            idx = idx[h[idx] >= 0]
            g = np.full(n, -1, dtype=np.int64)
            keys = self._keys[k]
            if idx.size and keys.size:
                key = h[idx] * B + tokens[idx]
                pos = np.minimum(np.searchsorted(keys, key), keys.size - 1)
                hit = keys[pos] == key
                g[idx[hit]] = pos[hit]
            ids.append(g)
        return ids, ctx

    def _history_tokens(self, history, where):
        """(tokens, hist) for one query position after `history` (stream tokens before it, ids or words; in bos mode
        only those after the last eos count).  The queried word is a placeholder 0 at the end."""
        h = _as_ids(history_ids(history, self.words, where), "history", where, self.vocab_size)
        if self.bos:
            ends = np.flatnonzero(h == self.eos_id)
            if ends.size:
                h = h[ends[-1] + 1:]
        keep = self.order - 1
        h = h[len(h) - keep:] if keep and len(h) >= keep else (h if keep else h[:0])
        if self.bos and len(h) < keep:
            h = np.concatenate([[self.vocab_size], h])
        tokens = np.concatenate([h, [0]]).astype(np.int64)
        return tokens, np.arange(len(tokens), dtype=np.int64)

    def _children(self, k, h):
        """(words, slice) of the training k-grams whose (k-1)-gram prefix has id h (contiguous in the sorted keys)."""
        B, keys = self._base, self._keys[k]
        lo, hi = np.searchsorted(keys, [h * B, (h + 1) * B])
        return keys[lo:hi] % B, slice(lo, hi)

    def _prefix(self, k):
        return self._keys[k] // self._base

    def _size(self, k):
        """Number of ids of order k (order 1: the V words and <s>)."""
        return self._base if k == 1 else len(self._keys[k])

    # ---- public API ---------------------------------------------------------------------------------------------

    def _fit_common(self, data, vocab_size, eos_id, where):
        self._keys = None                   # a fit that fails leaves an unfitted model, never a mixed one
        self.vocab_size = check_int(vocab_size, "vocab_size", where, low=1)
        self.eos_id = check_int(eos_id, "eos_id", where, low=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"{where}: 'eos_id' must be in [0, {self.vocab_size}); got {self.eos_id}.")
        if self.words is not None and len(self.words) != self.vocab_size:
            raise ValueError(f"{where}: the model's 'words' must have vocab_size={self.vocab_size} entries; got "
                             f"{len(self.words)}.")
        if self.words is not None and "</s>" in self.words and self.words.index("</s>") != self.eos_id:
            # (text is encoded with the words' </s>: sentences would end at another id than the model's, silently)
            raise ValueError(f"{where}: 'eos_id' must be the id of '</s>' in the model's words, "
                             f"{self.words.index('</s>')}; got {self.eos_id}. Pass vocab.eos_id.")
        stream = self._stream(data, "data", where, complete=True)
        if stream.size == 0:
            raise ValueError(f"{where}: 'data' must contain at least one sentence; got none.")
        tokens, hist, pred = self._layout(stream)
        keys, ids = self._build_tables(tokens, hist)
        return tokens, hist, pred, keys, ids

    def token_logprobs(self, data):
        """Natural-log probability of every predicted token of `data` (one per stream position, </s> included)."""
        where = f"{type(self).__name__}.token_logprobs"
        self._check_fitted(where)
        stream = self._stream(data, "data", where)
        tokens, hist, pred = self._layout(stream)
        with np.errstate(divide="ignore"):
            return np.log(self._token_probs(tokens, hist, pred))

    def score(self, data):
        """(total negative log-likelihood in nats, number of predicted tokens) of `data`."""
        lp = self.token_logprobs(data)
        return float(-lp.sum()), int(lp.size)

    def perplexity(self, data):
        """exp(mean NLL per predicted token) of `data` (</s> and <unk> included)."""
        total, n = self.score(data)
        if not n:                   # (metrics.perplexity's message would name neither the model nor the data)
            raise ValueError(f"{type(self).__name__}.perplexity: the data must hold at least one token; got none "
                             f"(an empty list or array).")
        return _perplexity(total, n)

    def prob_vector(self, history=()):
        """P(w | history) for every word w, a float64 (vocab_size,) array summing to 1.

        `history` is the stream before the predicted word, as ids or, for a model with its words, as words (["the",
        "jury"]; unknown ones read as <unk>); in bos mode only the part after its last eos, i.e. the current sentence,
        is used; an empty history is a sentence start.
        """
        where = f"{type(self).__name__}.prob_vector"
        self._check_fitted(where)
        tokens, hist = self._history_tokens(history, where)
        ids, ctx = self._lookup(tokens, hist)
        return self._prob_vector(tokens, hist, [None, None] + [int(c[-1]) for c in ctx[2:]])

    def logprob(self, word, history=()):
        """log P(word | history) in nats; `word` an id or, for a model with its words, a word; `history` as in
        `prob_vector`."""
        where = f"{type(self).__name__}.logprob"
        self._check_fitted(where)
        if isinstance(word, str):
            word = int(word_ids([word], self.words, "'word'", where)[0])
        w = check_int(word, "word", where, low=0)
        if w >= self.vocab_size:
            raise IndexError(f"{where}: 'word' must be in [0, {self.vocab_size}); got {w}.")
        tokens, hist = self._history_tokens(history, where)
        tokens[-1] = w
        with np.errstate(divide="ignore"):
            return float(np.log(self._token_probs(tokens, hist, np.arange(len(tokens)) == len(tokens) - 1)[0]))

    # ---- storage ------------------------------------------------------------------------------------------------

    def config(self):
        """The constructor's arguments (fastnn.io stores them; the fitted tables are `buffers()`)."""
        return {"order": self.order, "bos": self.bos, "words": self.words}

    def buffers(self):
        """The fitted tables as a flat dict of arrays and numbers (fastnn.io saves them beside the config)."""
        self._check_fitted(f"{type(self).__name__}.buffers")
        out = {"vocab_size": self.vocab_size, "eos_id": self.eos_id}
        for k in range(2, self.order + 1):
            out[f"keys_{k}"] = self._keys[k]
        out.update(self._state_arrays())
        return out

    def load_buffers(self, arrays):
        """Restore the tables saved by `buffers()`, checking them (ValueError naming what is corrupt)."""
        where = f"{type(self).__name__}.load_buffers"
        self._keys = None
        try:
            self._restore(arrays, where)
        except (KeyError, TypeError, IndexError) as e:
            self._keys = None
            raise ValueError(f"{where}: not a consistent n-gram model file ({type(e).__name__}: {e}).") from None
        except BaseException:
            self._keys = None
            raise
        return self

    def save(self, path):
        """Write the model to an .npz file atomically through fastnn.io (no pickle)."""
        self._check_fitted(f"{type(self).__name__}.save")
        io.save_model(path, self)

    @classmethod
    def load(cls, path):
        """A model saved by `save`; ValueError for a file that is not one (or not of this class)."""
        model = load(path)
        if cls is not _NGramLM and not isinstance(model, cls):
            raise ValueError(f"{cls.__name__}.load: {os.fspath(path)} must hold a {cls.__name__}; got a "
                             f"{type(model).__name__}. Use fastnn.models.ngram.load to load any n-gram model.")
        return model

    def _restore(self, arrays, where):
        for name in ("vocab_size", "eos_id"):
            if name not in arrays:
                raise ValueError(f"{where}: the file must contain {name!r}; it is missing. The file is corrupt.")
        self.vocab_size = check_int(arrays["vocab_size"], "vocab_size", where, low=1)
        self.eos_id = check_int(arrays["eos_id"], "eos_id", where, low=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"{where}: 'eos_id' must be in [0, {self.vocab_size}); got {self.eos_id}. "
                             f"The file is corrupt.")
        if self.words is not None and len(self.words) != self.vocab_size:
            raise ValueError(f"{where}: 'words' must have {self.vocab_size} entries; got {len(self.words)}. "
                             f"The file is corrupt.")
        B = self._base
        keys = [None, None]
        for k in range(2, self.order + 1):
            key = _get(arrays, f"keys_{k}", where, np.int64, 1)
            prev = B if k == 2 else len(keys[k - 1])
            if key.size and (np.any(np.diff(key) <= 0) or key[0] < 0 or key[-1] >= prev * B
                             or np.any(key % B >= self.vocab_size)):
                raise ValueError(f"{where}: 'keys_{k}' must be strictly increasing valid {k}-gram keys; got "
                                 f"unsorted or out-of-range values. The file is corrupt.")
            keys.append(key)
        self._keys = keys
        self._restore_state(arrays, where)

    def __repr__(self):
        if self._keys is None:
            return f"{type(self).__name__}(order={self.order}, bos={self.bos}, unfitted)"
        sizes = [self.vocab_size] + [len(self._keys[k]) for k in range(2, self.order + 1)]
        return (f"{type(self).__name__}(order={self.order}, bos={self.bos}, vocab_size={self.vocab_size}, "
                f"eos_id={self.eos_id}, ngrams={sizes})")

    def _restore_counts(self, arrays, where):
        """The n-gram count arrays of a model file, checked (shared by the subclasses' _restore_state)."""
        counts = [None]
        for k in range(1, self.order + 1):
            c = _get(arrays, f"counts_{k}", where, np.int64, 1)
            _check_len(c, self._size(k), f"counts_{k}", where)
            if c.size and c.min() < 0:
                raise ValueError(f"{where}: 'counts_{k}' must be >= 0; got {c.min()}. The file is corrupt.")
            counts.append(c)
        if counts[1][:self.vocab_size].sum() <= 0:
            raise ValueError(f"{where}: 'counts_1' must have a positive total; got 0. The file is corrupt.")
        self._counts = counts


def _take(table, ids, absent):
    """table[ids] as float64, `absent` where an id is -1 (no such k-gram or history).  An order beyond the training
    data's longest sentence has empty tables and only -1 ids, which plain indexing (table[-1]) refuses."""
    out = np.full(len(ids), absent, dtype=np.float64)
    ok = ids >= 0
    out[ok] = table[ids[ok]]
    return out


def _get(arrays, name, where, dtype, ndim):
    if name not in arrays:
        raise ValueError(f"{where}: the file must contain array {name!r}; it is missing. The file is corrupt or was "
                         f"not written by this version.")
    a = arrays[name]
    if a.dtype != dtype or a.ndim != ndim:
        raise ValueError(f"{where}: {name!r} must be a {ndim}-d {np.dtype(dtype)} array; got {a.dtype} with shape "
                         f"{a.shape}. The file is corrupt.")
    return a


def _check_len(a, n, name, where):
    if len(a) != n:
        raise ValueError(f"{where}: {name!r} must have length {n}; got {len(a)}. The file is corrupt.")


def load(path):
    """Load a KneserNey or DeletedInterpolation model saved with `save` (a fastnn.io model file; ValueError for a
    file that holds anything else)."""
    model = io.load_model(path)
    if not isinstance(model, _NGramLM):
        raise ValueError(f"ngram.load: {os.fspath(path)} must hold an n-gram model; got a {type(model).__name__}. "
                         f"Use fastnn.io.load_model for other models.")
    return model


# =====================================================================================================================


class KneserNey(_NGramLM):
    """Interpolated modified Kneser-Ney n-gram LM (Chen & Goodman 1998, as built by KenLM's lmplz).

    Parameters
    ----------
    order : int >= 1, the n of the n-gram (3 = trigram).
    discounts : None, or (D1, D2, D3+) for every order, or an (order, 3) array (row k-1 for order k).  None (default)
        estimates three discounts per order from the counts-of-counts n1..n4 of that order's (adjusted) counts:
        ``Y = n1/(n1+2 n2)``, ``D_j = j - (j+1) Y n_{j+1}/n_j`` for j = 1, 2, 3 (Chen & Goodman eq. 26).  When the
        counts cannot give valid discounts (a count-of-count is zero or a D_j falls outside [0, j], as on tiny
        corpora), that order uses FALLBACK_DISCOUNTS (0.5, 1, 1.5) with a RuntimeWarning.
    bos : bool, sentence-start handling (module docstring): True = each sentence is conditioned on ``<s>``.

    Model: highest order uses raw counts, every lower order the continuation count (number of distinct words seen
    before it), except k-grams starting with <s>, which keep their raw count (nothing can precede <s>; as KenLM).
    ``p_k(w|h) = max(a(hw) - D_k(a(hw)), 0) / a(h.) + gamma_k(h) p_{k-1}(w|h')`` with
    ``gamma_k(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / a(h.)``; a history unseen in training gives
    ``p_k = p_{k-1}``.  Unigrams are interpolated with the uniform distribution over the vocabulary_size words, so
    every P(w|h) > 0 and sums to 1 over the vocabulary exactly (to rounding).

    Examples
    --------
    >>> from fastnn.data import Vocab, lm_stream
    >>> train = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]]
    >>> vocab = Vocab.build(train)
    >>> lm = KneserNey(order=2).fit(lm_stream(train, vocab), vocab_size=len(vocab), eos_id=vocab.eos_id)
    >>> round(lm.perplexity(lm_stream([["the", "dog", "sees", "a", "cat"]], vocab)), 2)
    6.33
    """

    def __init__(self, order, *, discounts=None, bos=True, words=None):
        super().__init__(order, bos=bos, words=words)
        self._discount_arg = None if discounts is None else self._check_discounts(discounts, "KneserNey")
        self.discounts = None     # (order, 4) float64 after fit: [0, D1, D2, D3+] per order

    def _check_discounts(self, d, where):
        d = np.asarray(d, dtype=np.float64)
        if d.shape == (3,):
            d = np.tile(d, (self.order, 1))
        if d.shape != (self.order, 3):
            raise ValueError(f"{where}: 'discounts' must have shape (3,) or ({self.order}, 3); got {d.shape}.")
        if not np.all(np.isfinite(d)) or np.any(d < 0) or np.any(d > np.array([1.0, 2.0, 3.0])):
            raise ValueError(f"{where}: 'discounts' must satisfy 0 <= D1 <= 1, 0 <= D2 <= 2, 0 <= D3+ <= 3; got "
                             f"{d.tolist()}.")
        return d

    @staticmethod
    def estimate_discounts(counts):
        """(D1, D2, D3+) from an array of positive counts (Chen & Goodman eq. 26), or None if not estimable."""
        n = np.bincount(np.minimum(counts[counts > 0], 5), minlength=6)[1:5].astype(np.float64)
        if np.any(n[:3] == 0):
            return None
        y = n[0] / (n[0] + 2.0 * n[1])
        d = np.array([j - (j + 1) * y * n[j] / n[j - 1] for j in (1, 2, 3)])
        return d if np.all(d >= 0) and np.all(d <= [1.0, 2.0, 3.0]) else None

    def fit(self, data, vocab_size, eos_id):
        """Count the training data and estimate the model; returns self.

        `data` is a stream of ids with every sentence ending in `eos_id`, or a list of sentences without it;
        `vocab_size` is the number of predicted words (ids 0..vocab_size-1, </s> and <unk> included).
        """
        where = "KneserNey.fit"
        tokens, hist, pred, keys, ids = self._fit_common(data, vocab_size, eos_id, where)
        self._keys = keys
        n, V = self.order, self.vocab_size
        counts = [None] * (n + 1)
        counts[n] = np.bincount(ids[n][ids[n] >= 0], minlength=self._size(n)) if n > 1 else \
            np.bincount(tokens[pred], minlength=self._base)
        for k in range(n - 1, 0, -1):
            # Continuation count: number of distinct (k+1)-grams whose k-word suffix is this k-gram.
            pos = np.flatnonzero(ids[k + 1] >= 0)
            suffix = np.empty(self._size(k + 1), dtype=np.int64)
            suffix[ids[k + 1][pos]] = ids[k][pos]
            a = np.bincount(suffix, minlength=self._size(k))
            if self.bos and k > 1:
                # k-grams starting with <s> keep their raw count.
                start = np.flatnonzero(hist == k - 1)
                raw = np.bincount(ids[k][ids[k] >= 0], minlength=self._size(k))
                a[ids[k][start]] = raw[ids[k][start]]
            counts[k] = a
        counts[1][V:] = 0                                  # <s> is never predicted
        self._counts = counts
        if self._discount_arg is not None:
            d = self._discount_arg
        else:
            d = np.empty((n, 3))
            for k in range(1, n + 1):
                est = self.estimate_discounts(counts[k][:V] if k == 1 else counts[k])
                if est is None:
                    warnings.warn(f"KneserNey.fit: the {k}-gram counts-of-counts cannot give modified Kneser-Ney "
                                  f"discounts (too little data?); using {FALLBACK_DISCOUNTS}.", RuntimeWarning,
                                  stacklevel=2)
                    est = np.array(FALLBACK_DISCOUNTS)
                d[k - 1] = est
        self.discounts = np.hstack([np.zeros((n, 1)), d])
        self._finalize()
        return self

    def _finalize(self):
        """Probability tables from counts and discounts: _p1 (V,), _u[k] per k-gram, _gamma[k] per history."""
        n, V = self.order, self.vocab_size
        c1 = self._counts[1][:V]
        D = self.discounts[0][np.minimum(c1, 3)]
        total = c1.sum()
        self._p1 = (c1 - D) / total + D.sum() / total / V
        self._u, self._gamma = [None, None], [None, None]
        for k in range(2, n + 1):
            a = self._counts[k]
            prefix = self._prefix(k)
            D = self.discounts[k - 1][np.minimum(a, 3)]
            denom = np.bincount(prefix, weights=a, minlength=self._size(k - 1))
            mass = np.bincount(prefix, weights=D, minlength=self._size(k - 1))
            seen = denom > 0
            gamma = np.ones_like(denom)                      # unseen history: p_k = p_{k-1}
            gamma[seen] = mass[seen] / denom[seen]
            d = denom[prefix]
            u = np.zeros(len(a))
            np.divide(a - D, d, out=u, where=d > 0)
            self._u.append(u)
            self._gamma.append(gamma)

    def _token_probs(self, tokens, hist, pred):
        ids, ctx = self._lookup(tokens, hist)
        p = self._p1[tokens[pred]]
        for k in range(2, self.order + 1):
            g, h = ids[k][pred], ctx[k][pred]
            u = _take(self._u[k], g, 0.0)
            gamma = _take(self._gamma[k], h, 1.0)
            p = u + gamma * p
        return p

    def _prob_vector(self, tokens, hist, ctx):
        p = self._p1.copy()
        for k in range(2, self.order + 1):
            h = ctx[k]
            if h < 0:
                continue
            p *= self._gamma[k][h]
            words, sl = self._children(k, h)
            p[words] += self._u[k][sl]
        return p

    # ---- storage ----

    def config(self):
        cfg = super().config()
        cfg["discounts"] = None if self._discount_arg is None else self._discount_arg.tolist()
        return cfg

    def _state_arrays(self):
        d = {f"counts_{k}": self._counts[k] for k in range(1, self.order + 1)}
        d["discounts"] = self.discounts
        return d

    def _restore_state(self, arrays, where):
        self._restore_counts(arrays, where)
        d = _get(arrays, "discounts", where, np.float64, 2)
        if d.shape != (self.order, 4):
            raise ValueError(f"{where}: 'discounts' must have shape ({self.order}, 4); got {d.shape}.")
        self.discounts = np.hstack([np.zeros((self.order, 1)), self._check_discounts(d[:, 1:], where)])
        self._finalize()


# =====================================================================================================================


class DeletedInterpolation(_NGramLM):
    """Deleted-interpolation (Jelinek-Mercer) n-gram LM as in Bengio et al. (2003), section 4.

    ``P(w|h) = a_0(c) / V + sum_{k=1..n} a_k(c) p_k(w | last k-1 words)`` where p_k are maximum-likelihood
    estimates from the training counts and the mixture weights a(c) (non-negative, summing to 1) depend on the
    frequency class c of the context, ``bucket(count) = min(floor(log2(1 + count)), max_bucket)``.  The weights are
    fitted by EM on held-out data (`valid` in `fit`).

    When the order-k history is not available (sentence start) or was never seen in training, p_k falls back to
    p_{k-1} (the same as padding the history with <s> symbols), so every component, and the mixture, is a normalised
    distribution over the V words.

    Parameters
    ----------
    order : int >= 1.
    classes : "history" (default, Bengio et al.): c = bucket(training count of the (n-1)-word history; at a sentence
        start, of the longest history available).  "longest_seen": c = (order k of the longest history seen in
        training, bucket(its count)), order * (max_bucket + 1) classes; better for n > 3, where most full histories
        are unseen and "history" lumps them all into class 0.
    max_bucket : int >= 0, the highest count bucket.
    max_iter, tol : EM stops after `max_iter` iterations or when the held-out log-likelihood improves by less than
        ``tol * |log-likelihood|``.
    bos : bool, sentence-start handling (module docstring).

    Attributes after fit: ``weights`` (number of classes, order+1), ``em_loglik`` (held-out log-likelihood in nats,
    before EM and after each iteration; non-decreasing), ``class_counts`` (held-out tokens per class; classes without
    any get the weights pooled over all held-out tokens; not saved).
    """

    def __init__(self, order, *, classes="history", max_bucket=15, max_iter=200, tol=1e-7, bos=True, words=None):
        super().__init__(order, bos=bos, words=words)
        if classes not in ("history", "longest_seen"):
            raise ValueError(f"DeletedInterpolation: 'classes' must be 'history' or 'longest_seen'; got {classes!r}.")
        self.classes = classes
        self.max_bucket = check_int(max_bucket, "max_bucket", "DeletedInterpolation", low=0)
        self.max_iter = check_int(max_iter, "max_iter", "DeletedInterpolation", low=0)
        if not (isinstance(tol, numbers.Real) and tol >= 0):
            raise ValueError(f"DeletedInterpolation: 'tol' must be a real >= 0; got {tol!r}.")
        self.tol = float(tol)
        self.weights = None
        self.em_loglik = None
        self.class_counts = None

    def fit(self, data, vocab_size, eos_id, *, valid):
        """Count `data`, then fit the mixture weights by EM on `valid` (same formats as `data`); returns self."""
        where = "DeletedInterpolation.fit"
        if valid is None:
            raise ValueError(f"{where}: 'valid' must be held-out data for the EM mixture weights; got None.")
        tokens, hist, pred, keys, ids = self._fit_common(data, vocab_size, eos_id, where)
        self._keys = keys
        counts = [None, np.bincount(tokens[pred], minlength=self._base)]
        for k in range(2, self.order + 1):
            counts.append(np.bincount(ids[k][ids[k] >= 0], minlength=self._size(k)))
        self._counts = counts
        self._finalize()
        self.weights = np.full((self._n_classes, self.order + 1), 1.0 / (self.order + 1))
        try:
            self.tune(valid)
        except BaseException:
            self._keys = None
            raise
        return self

    def _finalize(self):
        V = self.vocab_size
        c1 = self._counts[1][:V]
        self._p1 = c1 / c1.sum()
        self._ml, self._ctx = [None, None], [None, c1.sum()]
        for k in range(2, self.order + 1):
            c = self._counts[k]
            prefix = self._prefix(k)
            ctx = np.bincount(prefix, weights=c, minlength=self._size(k - 1))
            self._ml.append(c / ctx[prefix] if c.size else np.zeros(0))
            self._ctx.append(ctx)

    @property
    def _n_classes(self):
        return (self.max_bucket + 1) * (self.order if self.classes == "longest_seen" else 1)

    def _bucket(self, count):
        return np.minimum(np.floor(np.log2(1.0 + count)), self.max_bucket).astype(np.int64)

    def _components(self, tokens, hist, pred):
        """(Q, cls): Q[i, k] = p_k(w_i | history) for k = 0..n (p_0 uniform), and each token's context class."""
        ids, ctx = self._lookup(tokens, hist)
        w = tokens[pred]
        Q = np.empty((len(w), self.order + 1))
        Q[:, 0] = 1.0 / self.vocab_size
        Q[:, 1] = self._p1[w]
        n_hist = np.full(len(w), float(self._ctx[1]))     # count of the longest available history
        n_seen = n_hist.copy()                             # count of the longest history seen in training
        level = np.zeros(len(w), dtype=np.int64)           # its length
        for k in range(2, self.order + 1):
            g, h = ids[k][pred], ctx[k][pred]
            count = _take(self._ctx[k], h, 0.0)
            seen = count > 0
            ml = _take(self._ml[k], g, 0.0)
            Q[:, k] = np.where(seen, ml, Q[:, k - 1])
            n_hist = np.where(hist[pred] >= k - 1, count, n_hist)
            n_seen = np.where(seen, count, n_seen)
            level = np.where(seen, k - 1, level)
        if self.classes == "history":
            return Q, self._bucket(n_hist)
        return Q, level * (self.max_bucket + 1) + self._bucket(n_seen)

    def tune(self, valid):
        """Re-fit the mixture weights by EM on held-out `valid`; returns self."""
        where = "DeletedInterpolation.tune"
        self._check_fitted(where)
        stream = self._stream(valid, "valid", where)
        if stream.size == 0:
            raise ValueError(f"{where}: 'valid' must contain at least one sentence; got none.")
        Q, b = self._components(*self._layout(stream))
        nb = self._n_classes
        n_in = np.bincount(b, minlength=nb).astype(np.float64)
        W = self.weights
        loglik = []
        for it in range(self.max_iter + 1):
            M = W[b] * Q
            s = M.sum(axis=1)
            loglik.append(float(np.log(s).sum()))
            if it == self.max_iter or (it > 0 and loglik[-1] - loglik[-2] <= self.tol * abs(loglik[-1])):
                break
            R = M / s[:, None]
            num = np.stack([np.bincount(b, weights=R[:, j], minlength=nb) for j in range(Q.shape[1])], axis=1)
            pooled = R.mean(axis=0)                        # classes with no held-out token get the pooled weights
            W = np.where(n_in[:, None] > 0, num / np.maximum(n_in, 1.0)[:, None], pooled[None, :])
        self.weights = W
        self.em_loglik = np.array(loglik)
        self.class_counts = n_in.astype(np.int64)
        return self

    def _token_probs(self, tokens, hist, pred):
        Q, b = self._components(tokens, hist, pred)
        return np.einsum("ij,ij->i", self.weights[b], Q)

    def _prob_vector(self, tokens, hist, ctx):
        V = self.vocab_size
        comp = [np.full(V, 1.0 / V), self._p1]
        for k in range(2, self.order + 1):
            h = ctx[k]
            if h >= 0 and self._ctx[k][h] > 0:
                q = np.zeros(V)
                words, sl = self._children(k, h)
                q[words] = self._ml[k][sl]
                comp.append(q)
            else:
                comp.append(comp[-1])
        _, cls = self._components(tokens, hist, np.arange(len(tokens)) == len(tokens) - 1)
        a = self.weights[cls[0]]
        return sum(a[k] * comp[k] for k in range(self.order + 1))

    # ---- storage ----

    def config(self):
        cfg = super().config()
        cfg.update(classes=self.classes, max_bucket=self.max_bucket, max_iter=self.max_iter, tol=self.tol)
        return cfg

    def _state_arrays(self):
        d = {f"counts_{k}": self._counts[k] for k in range(1, self.order + 1)}
        d["weights"] = self.weights
        if self.em_loglik is not None:
            d["em_loglik"] = self.em_loglik
        return d

    def _restore_state(self, arrays, where):
        self._restore_counts(arrays, where)
        W = _get(arrays, "weights", where, np.float64, 2)
        if W.shape != (self._n_classes, self.order + 1) or np.any(W < 0) or \
                not np.allclose(W.sum(axis=1), 1.0, atol=1e-9):
            raise ValueError(f"{where}: 'weights' must be a ({self._n_classes}, {self.order + 1}) array of "
                             f"mixture weights (rows >= 0 summing to 1); got shape {W.shape}. The file is corrupt.")
        self.weights = W
        self.em_loglik = arrays.get("em_loglik")
        self._finalize()
