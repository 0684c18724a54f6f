"""The window-ranking language model of Collobert & Weston (2008) (Collobert et al. 2011, section 4.1).

A window of `window` words (padded with <pad> at sentence edges, as the tagger pads) gets one scalar score

    s(x) = u . hardtanh(W [e(x_1); ..; e(x_w)] + b)

and training pushes the score of every window of real text above the score of the same window with its centre word
replaced by another word w~, by a margin of 1:

    loss = mean over the batch of max(0, 1 - s(x) + s(x~)).

No probabilities are computed, so the cost per window does not grow with the vocabulary: this is what made training
on Wikipedia possible.  The word vectors e (an nn.Embedding: gather_rows forward, RowGrad rows backward, lazy sparse
AdaGrad / SGD updates through the kernels) are the product; fastnn.embed exports them for the tagger.

The corrupting word is drawn by a `NegativeSampler`: "uniform" over the vocabulary (Collobert & Weston) or
"unigram" proportional to count**0.75 (word2vec's smoothed unigram); <pad> is never drawn, and a draw equal to the
true centre word is drawn again (such a pair has no gradient).

    model = WindowRanker(len(vocab), window=11, dim=50, hidden=100, init_scale=0.1, rng=0)  # RankingConfig's
    data = RankingBatches(padded, centres, window=11, batch_size=256, sampler=NegativeSampler(counts))
    Trainer(model, AdaGrad(model.parameters(), lr=0.05), data, epochs=5).fit()
"""
import functools
import numbers

import numpy as np

from fastnn import init as _init
from fastnn import nn
from fastnn._validation import check_float_dtype, check_index, check_int, check_words
from fastnn.graph import Module
from fastnn.train import BatchPlan

__all__ = ["WindowRanker", "NegativeSampler", "RankingBatches", "padded_stream", "gradcheck_cases",
           "NEGATIVES", "ACTIVATIONS"]

NEGATIVES = ("uniform", "unigram")
ACTIVATIONS = ("hardtanh", "tanh")
UNIGRAM_POWER = 0.75


# ---- data --------------------------------------------------------------------------------------------------------

def padded_stream(sentences_ids, window, pad_id=0):
    """(padded, centres): the sentences' ids concatenated with window//2 pads before and after every sentence
    (int32), and the position in `padded` of every real token (int64).  The window of token k is
    padded[centres[k] - h : centres[k] + h + 1], h = window // 2: windows never cross a sentence boundary."""
    where = "padded_stream"
    window = check_int(window, "window", where)
    if window % 2 == 0:
        raise ValueError(f"{where}: 'window' must be odd; got {window}.")
    pad_id = check_int(pad_id, "pad_id", where, low=0)  # (True padded with id 1, -1 with an id no row has)
    h = window // 2
    if isinstance(sentences_ids, (str, bytes)) or not hasattr(sentences_ids, "__iter__"):
        raise TypeError(f"{where}: 'sentences_ids' must be a list of sentences of word ids; got "
                        f"{type(sentences_ids).__name__}.")
    sentences_ids = [np.asarray(s) for s in sentences_ids]
    for i, s in enumerate(sentences_ids):           # (strings failed in int(), floats were truncated)
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise TypeError(f"{where}: sentence {i} must be a 1-d sequence of integer word ids; got dtype {s.dtype}, "
                            f"shape {s.shape}. Encode words with Vocab.encode first.")
    lengths = np.array([len(s) for s in sentences_ids], dtype=np.int64)
    n_sent = len(lengths)
    padded = np.full(int(lengths.sum()) + 2 * h * n_sent, pad_id, dtype=np.int32)
    sent = np.repeat(np.arange(n_sent), lengths)
    centres = np.arange(int(lengths.sum()), dtype=np.int64) + 2 * h * sent + h
    if n_sent:
        padded[centres] = np.concatenate([s.astype(np.int32) for s in sentences_ids])
    return padded, centres


class NegativeSampler:
    """Draws corrupting centre words: "uniform" over every id but `pad_id`, or "unigram" with p(w) proportional to
    counts[w]**0.75 (0 for pad_id).  A draw equal to the true centre word is drawn again."""

    def __init__(self, counts, kind="uniform", *, pad_id=0):
        where = "NegativeSampler"
        if kind not in NEGATIVES:
            raise ValueError(f"{where}: 'kind' must be one of {NEGATIVES}; got {kind!r}.")
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 1 or c.size < 3 or np.any(c < 0) or not np.all(np.isfinite(c)):
            raise ValueError(f"{where}: 'counts' must be a 1-d array of >= 3 non-negative counts (one per word); got "
                             f"shape {c.shape}.")
        if pad_id is not None:
            pad_id = check_int(pad_id, "pad_id", where, low=0)
            if pad_id >= c.size:
                raise ValueError(f"{where}: 'pad_id' must be an id in [0, {c.size}) or None; got {pad_id}.")
        self.kind, self.pad_id, self.vocab_size = kind, pad_id, c.size
        if kind == "uniform":
            p = np.ones(c.size)
        else:
            p = c ** UNIGRAM_POWER
        if pad_id is not None:
            p[pad_id] = 0.0
        if not p.sum() > 0:
            raise ValueError(f"{where}: the counts must give some word a positive probability; got all zero.")
        self.cdf = np.cumsum(p / p.sum())
        self.cdf[-1] = 1.0

    def draw(self, centre, rng):
        """(B,) int64 corrupting words for the (B,) true centre words."""
        centre = np.asarray(centre)
        out = np.searchsorted(self.cdf, rng.random(centre.shape), side="right").astype(np.int64)
        for _ in range(100):
            same = out == centre
            if not same.any():
                break
            out[same] = np.searchsorted(self.cdf, rng.random(int(same.sum())), side="right")
        return np.minimum(out, self.vocab_size - 1)

    def __repr__(self):
        return f"NegativeSampler({self.vocab_size} words, {self.kind!r})"


class RankingBatches:
    """Training batches for the Trainer: (windows (B, window) int, corrupting centre words (B,)) over every token
    of a padded stream, in a new random order each epoch.  The corrupting words of batch i are drawn from a Generator
    seeded by (the epoch's seed, i), so a resumed run draws the same ones.

    examples_per_epoch : cut each epoch to this many windows (a random subset, different every epoch); None = all.
    """

    def __init__(self, padded, centres, *, window, batch_size, sampler, examples_per_epoch=None):
        where = "RankingBatches"
        self.window = check_int(window, "window", where)
        self.batch_size = check_int(batch_size, "batch_size", where)
        self.padded = np.asarray(padded)
        self.centres = np.asarray(centres, dtype=np.int64)
        if self.centres.size == 0:
            raise ValueError(f"{where}: the text must hold at least one token; got none.")
        h = self.window // 2
        if self.centres.min() < h or self.centres.max() + h >= len(self.padded):
            raise ValueError(f"{where}: 'centres' must lie {h} positions inside 'padded'; build both with "
                             f"padded_stream(..., window={self.window}).")
        self.offsets = np.arange(-h, h + 1)
        if not callable(getattr(sampler, "draw", None)):    # (else an AttributeError in the first batch of training)
            raise TypeError(f"{where}: 'sampler' must have a draw(centres, rng) method, e.g. NegativeSampler(counts); "
                            f"got {type(sampler).__name__}.")
        self.sampler = sampler
        n = len(self.centres)
        self.n = n if examples_per_epoch is None else min(n, check_int(examples_per_epoch, "examples_per_epoch", where))

    def windows(self, rows):
        """(len(rows), window) int64 windows of the tokens `rows`."""
        return self.padded[self.centres[rows][:, None] + self.offsets].astype(np.int64)

    def __len__(self):
        return -(-self.n // self.batch_size)

    def epoch(self, rng):
        perm = rng.permutation(len(self.centres))[:self.n]
        return BatchPlan.even(functools.partial(self._batch, int(rng.integers(2**63))), self.n, self.batch_size, perm)

    def _batch(self, seed, i, rows):
        w = self.windows(rows)
        return w, self.sampler.draw(w[:, self.window // 2], np.random.default_rng([seed, i]))

    @staticmethod
    def n_examples(batch):
        return len(batch[0])

    def __repr__(self):
        return (f"RankingBatches({len(self.centres)} windows of {self.window}, {self.n} per epoch, "
                f"batch_size={self.batch_size}, {self.sampler})")


# ---- the model ---------------------------------------------------------------------------------------------------

class WindowRanker(Module):
    """Collobert & Weston's window-ranking language model (see the module docstring).

    Parameters
    ----------
    vocab_size : |V| (ids 0..V-1; pad_id pads windows at sentence edges).
    window : odd window size (Collobert & Weston: 11).  dim : word vector size.  hidden : hidden units (100).
    activation : "hardtanh" (Collobert et al. 2011) or "tanh".
    init_scale : the word vectors start as U(-init_scale, init_scale); the layers are Glorot-initialised.
    margin : the hinge margin (1).
    words : optional list of the vocabulary's words, kept in the config (the vectors' labels).
    """

    def __init__(self, vocab_size, *, window, dim, hidden, init_scale, activation="hardtanh", pad_id=0, margin=1.0,
                 rng=0, dtype=np.float32, words=None):
        where = "WindowRanker"
        self.vocab_size = check_int(vocab_size, "vocab_size", where, low=2)
        self.window = check_int(window, "window", where)
        if self.window % 2 == 0:
            raise ValueError(f"{where}: 'window' must be odd (the corrupted word is the centre); got {window}.")
        self.dim = check_int(dim, "dim", where)
        self.n_hidden = check_int(hidden, "hidden", where)
        if activation not in ACTIVATIONS:
            raise ValueError(f"{where}: 'activation' must be one of {ACTIVATIONS}; got {activation!r}.")
        self.activation = activation
        self.pad_id = check_int(pad_id, "pad_id", where, low=0)
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"{where}: 'pad_id' must be in [0, {self.vocab_size}); got {pad_id}.")
        if not (isinstance(init_scale, numbers.Real) and init_scale > 0):
            raise ValueError(f"{where}: 'init_scale' must be > 0; got {init_scale!r}.")
        if not (isinstance(margin, numbers.Real) and margin > 0):
            raise ValueError(f"{where}: 'margin' must be > 0; got {margin!r}.")
        self.init_scale, self.margin = float(init_scale), float(margin)
        self.words = check_words(words, where)
        if self.words is not None and len(self.words) != self.vocab_size:
            raise ValueError(f"{where}: 'words' must have {self.vocab_size} entries; got {len(self.words)}.")
        rng, dtype = _init.as_rng(rng, where), check_float_dtype(dtype, where)
        self.embed = nn.Embedding(self.vocab_size, self.dim, rng=rng, dtype=dtype, scale=self.init_scale)
        self.hidden = nn.Linear(self.window * self.dim, self.n_hidden, rng=rng, dtype=dtype)
        self.out = nn.Linear(self.n_hidden, 1, rng=rng, dtype=dtype, bias=False)   # a bias cancels in s(x) - s(x~)

    # -- graph -------------------------------------------------------------------------------------------------
    def _check_windows(self, windows, where):
        w = np.asarray(windows)
        if w.ndim != 2 or w.shape[1] != self.window or (w.size and w.dtype.kind not in "iu"):
            raise ValueError(f"{where}: 'windows' must be an integer array of shape (B, {self.window}); got dtype "
                             f"{w.dtype}, shape {w.shape}.")
        return check_index(w, self.vocab_size, "windows", where)    # (else named by the embedding's gather_rows)

    def _check_negatives(self, negatives, n, where):
        neg = np.asarray(negatives)
        if neg.shape != (n,) or n == 0:
            raise ValueError(f"{where}: 'negatives' must have shape (B,) = ({n},) with B >= 1; got {neg.shape}.")
        return check_index(neg, self.vocab_size, "negatives", where)

    def score_node(self, windows):
        """s(x) for windows (B, window): a (B, 1) Node."""
        z = self.hidden(self.embed(windows))
        h = nn.hardtanh(z) if self.activation == "hardtanh" else nn.tanh(z)
        return self.out(h)

    def loss(self, batch):
        """mean max(0, margin - s(x) + s(x~)) over a batch (windows (B, window), corrupting centre words (B,)):
        a scalar Node.  True and corrupted windows go through the network as one (2B, window) batch."""
        where = "WindowRanker.loss"
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"{where}: 'batch' must be a (windows, negatives) pair; got {type(batch).__name__}.")
        w = self._check_windows(batch[0], where)
        neg = self._check_negatives(batch[1], w.shape[0], where)
        corrupt = w.copy()
        corrupt[:, self.window // 2] = neg
        pos, negs = nn.split(self.score_node(np.concatenate([w, corrupt])), 2)
        return nn.hinge(pos, negs, margin=self.margin)

    # -- evaluation --------------------------------------------------------------------------------------------
    def scores(self, windows, *, batch_size=4096):
        """s(x) of every window (B, window) as a float64 (B,) array (no graph)."""
        w = self._check_windows(windows, "WindowRanker.scores")
        batch_size = check_int(batch_size, "batch_size", "WindowRanker.scores")   # (below 1: uninitialised scores)
        out = np.empty(len(w), dtype=np.float64)
        with self.evaluating():
            for i in range(0, len(w), batch_size):
                out[i:i + batch_size] = self.score_node(w[i:i + batch_size]).value[:, 0]
        return out

    def evaluate(self, windows, negatives):
        """{"hinge": mean hinge loss, "error": fraction of pairs with s(x~) >= s(x)} on fixed corruptions."""
        w = self._check_windows(windows, "WindowRanker.evaluate")
        corrupt = w.copy()        # (negatives of another length broadcast, or failed in NumPy's assignment)
        corrupt[:, self.window // 2] = self._check_negatives(negatives, w.shape[0], "WindowRanker.evaluate")
        d = self.scores(w) - self.scores(corrupt)
        return {"hinge": float(np.maximum(0.0, self.margin - d).mean()), "error": float((d <= 0).mean())}

    @property
    def vectors(self):
        """The (V, dim) word vectors (the embedding table itself, not a copy)."""
        return self.embed.W.value

    # -- protocol ----------------------------------------------------------------------------------------------
    def config(self):
        return {"vocab_size": self.vocab_size, "window": self.window, "dim": self.dim, "hidden": self.n_hidden,
                "activation": self.activation, "pad_id": self.pad_id, "init_scale": self.init_scale,
                "margin": self.margin, "dtype": self.dtype.name, "words": self.words}

    def __repr__(self):
        return (f"WindowRanker(vocab_size={self.vocab_size}, window={self.window}, dim={self.dim}, "
                f"hidden={self.n_hidden} {self.activation}, margin={self.margin:g}, dtype={self.dtype.name})")


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 rankers (hard tanh and tanh) on a batch with repeated words, repeated windows and a corrupting
    word that also occurs elsewhere in the batch; values are redrawn until no hidden unit sits within 0.05 of a hard
    tanh kink and no pair within 0.05 of the hinge's, so central differences are valid."""
    def case(activation):
        def build(rng):
            V, w = 9, 3
            m = WindowRanker(V, window=w, dim=3, hidden=5, activation=activation, rng=rng, dtype=np.float64,
                             init_scale=1.0)
            windows = rng.integers(0, V, (6, w))
            windows[1] = windows[0]                                  # a repeated window
            neg = rng.integers(1, V, 6)
            neg[2] = windows[3, 0]                                   # a corrupting word used elsewhere
            for _ in range(1000):
                for p in m.parameters().values():
                    p.value[...] = rng.standard_normal(p.shape) * (0.6 if p.sparse else 0.5)
                corrupt = windows.copy()
                corrupt[:, w // 2] = neg
                both = np.concatenate([windows, corrupt])
                z = m.hidden(m.embed(both)).value
                s = m.scores(both)
                margin = 1.0 - s[:6] + s[6:]
                if (activation != "hardtanh" or np.abs(np.abs(z) - 1).min() > 0.05) and np.abs(margin).min() > 0.05 \
                        and (margin > 0).sum() >= 4:
                    break
            return (lambda: m.loss((windows, neg))), m.parameters(), {}
        return build
    return [("ranking.hardtanh", case("hardtanh")), ("ranking.tanh", case("tanh"))]
