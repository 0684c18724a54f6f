"""Word vocabularies: words <-> integer ids, with counts, stored in npz files without pickle."""
import numbers
from collections import Counter

import numpy as np

from fastnn._validation import check_int, check_not_file, check_sentences, short_repr


class Vocab:
    """An ordered list of distinct words; a word's id is its position.

    Parameters
    ----------
    words : sequence of str, distinct (a duplicate raises ValueError).
    counts : optional sequence of non-negative ints, one per word (kept as an int64 array).

    Special symbols are ordinary words with reserved spellings: ``Vocab.UNK`` ("<unk>"), ``Vocab.EOS`` ("</s>") and
    ``Vocab.PAD`` ("<pad>").  ``unk_id``/``eos_id``/``pad_id`` are their ids, or None when absent.  When the vocabulary
    has <unk>, unknown words map to it (``index``, ``encode``); otherwise they raise KeyError.

    It reads as the list of its words: ``vocab[i]`` is the word of id i, ``len(vocab)`` their number, ``word in
    vocab`` whether a word has an id of its own; ``vocab.index(word)`` is a word's id (``vocab[word]`` is a TypeError
    saying so, not a guess between the two directions).
    """

    UNK = "<unk>"
    EOS = "</s>"
    PAD = "<pad>"

    def __init__(self, words, counts=None):
        if isinstance(words, (str, bytes)):             # (else a vocabulary of its characters)
            raise TypeError(f"Vocab: 'words' must be a sequence of word strings; got a {type(words).__name__} "
                            f"{short_repr(words)}. Pass [word] for one word.")
        words = list(words)
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise TypeError(f"Vocab: 'words' must be strings; got {type(w).__name__} {w!r} at position {i}.")
        self._index = {w: i for i, w in enumerate(words)}
        if len(self._index) != len(words):
            seen = set()
            dup = next(w for w in words if w in seen or seen.add(w))
            raise ValueError(f"Vocab: 'words' must be distinct; got {dup!r} more than once.")
        self.words = words
        if counts is not None:
            counts = np.asarray(counts)
            if counts.shape != (len(words),):
                raise ValueError(f"Vocab: 'counts' must have shape ({len(words)},) (one per word); got {counts.shape}.")
            if counts.size and (counts.dtype.kind not in "iu" or counts.min() < 0):
                raise ValueError(f"Vocab: 'counts' must be non-negative integers; got dtype {counts.dtype}"
                                 f" with minimum {counts.min()}.")
            counts = counts.astype(np.int64)
        self.counts = counts
        self.unk_id = self._index.get(self.UNK)
        self.eos_id = self._index.get(self.EOS)
        self.pad_id = self._index.get(self.PAD)

    @classmethod
    def build(cls, sentences, *, min_count=1, specials=(UNK, EOS), max_size=None):
        """A vocabulary from tokenised sentences: `specials` first, then words with count >= `min_count`.

        Words are sorted by decreasing count, ties by the word (code-point order), so the result is deterministic.
        `max_size` keeps at most that many words besides the specials.  Counts of the specials are the number of
        tokens that map to them in `sentences`: <unk> gets every dropped word, </s> one per sentence (its role in a
        language-model stream), <pad> 0; a token spelled like a special counts for it.  A `min_count` that no word
        reaches is a ValueError (as scikit-learn's CountVectorizer: "no terms remain"), not a vocabulary of specials.
        """
        check_int(min_count, "min_count", "Vocab.build")
        if max_size is not None:
            check_int(max_size, "max_size", "Vocab.build", low=0)
        if isinstance(specials, (str, bytes)):          # (else its characters would be the specials)
            raise TypeError(f"Vocab.build: 'specials' must be a sequence of strings; got {short_repr(specials)}. "
                            f"Pass ({specials!r},) for one special.")
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"Vocab.build: 'specials' must be distinct; got {specials}.")
        check_not_file(sentences, "sentences", "Vocab.build", "fastnn.data.read_sentences(path)")
        counter = Counter()
        n_sentences = 0
        for s in check_sentences(sentences, "Vocab.build"):
            counter.update(s)
            n_sentences += 1
        special_counts = {w: counter.pop(w, 0) for w in specials}
        kept = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], w))
        if counter and not kept:
            # every word would become <unk>: a model trains on nothing (an LM of <unk> and </s> scores perplexity ~1)
            top = max(counter.values())
            raise ValueError(f"Vocab.build: 'min_count' {min_count} leaves no word besides the specials; the most "
                             f"frequent of the {len(counter):,} word types is seen {top:,} time{'s' * (top > 1)}. "
                             f"Lower 'min_count' (to {top} or less).")
        if max_size is not None:
            kept = kept[:max_size]
        if cls.UNK in special_counts:
            special_counts[cls.UNK] += sum(counter.values()) - sum(counter[w] for w in kept)
        if cls.EOS in special_counts:
            special_counts[cls.EOS] += n_sentences
        words = specials + kept
        counts = [special_counts[w] for w in specials] + [counter[w] for w in kept]
        return cls(words, np.array(counts, dtype=np.int64))

    # ---- lookups ------------------------------------------------------------------------------------------------

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return isinstance(word, str) and word in self._index      # (a sentence is not a word: False, not unhashable)

    def __iter__(self):
        return iter(self.words)

    def __getitem__(self, i):
        """The word of id `i` (a slice gives a list of words; decode(ids) the words of many ids)."""
        if isinstance(i, slice):
            return self.words[i]
        if isinstance(i, str):
            raise TypeError(f"Vocab[...]: the key must be an integer id, and gives that id's word; got the word "
                            f"{short_repr(i)}. Use vocab.index({short_repr(i)}) for a word's id.")
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            more = " Use vocab.decode(ids) for the words of many ids." if hasattr(i, "__len__") else ""
            raise TypeError(f"Vocab[...]: the key must be an integer id; got {type(i).__name__} {short_repr(i)}.{more}")
        if not 0 <= i < len(self.words):               # (-1, a common "no id" marker, is not the last word)
            raise IndexError(f"Vocab[...]: the id must be in [0, {len(self.words)}); got {i}.")
        return self.words[i]

    def index(self, word):
        """The id of `word`; an unknown word gives `unk_id`, or KeyError when the vocabulary has no <unk>."""
        if not isinstance(word, str):                  # (a number or a sentence would silently become <unk>)
            more = " Use encode(tokens) for the ids of many words." if isinstance(word, (list, tuple)) else ""
            raise TypeError(f"Vocab.index: 'word' must be a string; got {type(word).__name__} "
                            f"{short_repr(word)}.{more}")
        i = self._index.get(word, self.unk_id)
        if i is None:
            raise KeyError(f"Vocab.index: {word!r} is not in the vocabulary, which has no {self.UNK!r} "
                           f"to map it to. Build the vocabulary with {self.UNK!r} among its specials.")
        return i

    def encode(self, tokens):
        """int64 array of the ids of `tokens`, a sequence of token strings (unknown -> <unk>; KeyError without
        <unk>).  A string is a TypeError, not the ids of its characters (index(word) gives one word's), as is a token
        that is not a string (a number or a sentence would silently become <unk>)."""
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"Vocab.encode: 'tokens' must be a sequence of token strings; got a {type(tokens).__name__}"
                            f" {short_repr(tokens)}, which would be read as its characters. Pass [word] or use "
                            f"index(word).")
        if not isinstance(tokens, (list, tuple, np.ndarray)):
            if not hasattr(tokens, "__iter__"):
                raise TypeError(f"Vocab.encode: 'tokens' must be a sequence of token strings; got "
                                f"{type(tokens).__name__} {short_repr(tokens)}.")
            tokens = list(tokens)
        get = self._index.get
        unk = self.unk_id
        try:
            ids = [get(t, unk) for t in tokens]
        except TypeError:                               # an unhashable token, e.g. a sentence in a list of sentences
            ids = [unk] * len(tokens)
        missing = [k for k, i in enumerate(ids) if i is None] if unk is None else np.flatnonzero(np.array(ids) == unk)
        for pos in missing:                             # the tokens that were not found: only strings may be unknown
            if not isinstance(tokens[pos], str):
                raise TypeError(f"Vocab.encode: token {pos} must be a string; got {type(tokens[pos]).__name__} "
                                f"{short_repr(tokens[pos])}. Encode one sentence at a time (or all with lm_stream).")
            if unk is None:
                raise KeyError(f"Vocab.encode: token {tokens[pos]!r} at position {pos} is not in the "
                               f"vocabulary, which has no {self.UNK!r}. Build the vocabulary with {self.UNK!r}.")
        return np.array(ids, dtype=np.int64)

    def decode(self, ids):
        """The words of integer `ids` (IndexError for ids outside [0, len)): a list for one sequence (or one id), a
        list of lists for a 2-d batch of sequences (one per row)."""
        ids = np.asarray(ids)
        if ids.ndim > 1 and ids.size:                   # (was flattened: the rows' words in one list, silently)
            return [self.decode(row) for row in ids]
        if ids.size == 0:
            return []
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Vocab.decode: 'ids' must be integers; got dtype {ids.dtype}.")
        ids = ids.ravel()
        bad = np.flatnonzero((ids < 0) | (ids >= len(self.words)))
        if bad.size:
            raise IndexError(f"Vocab.decode: 'ids' must be in [0, {len(self.words)}); "
                             f"got {ids[bad[0]]} at position {bad[0]}.")
        w = self.words
        return [w[i] for i in ids.tolist()]

    # ---- storage ------------------------------------------------------------------------------------------------

    def to_arrays(self, prefix=""):
        """{prefix+"words": unicode array, prefix+"counts": int64 array (only when counts exist)} for np.savez."""
        d = {prefix + "words": np.array(self.words, dtype=np.str_) if self.words else np.zeros(0, dtype="<U1")}
        if self.counts is not None:
            d[prefix + "counts"] = self.counts
        return d

    @classmethod
    def from_arrays(cls, d, prefix=""):
        """Inverse of `to_arrays`; `d` is a dict or an NpzFile opened with allow_pickle=False."""
        key = prefix + "words"
        if not hasattr(d, "keys"):                      # (an array or a list: "'list' object has no attribute")
            raise TypeError(f"Vocab.from_arrays: 'd' must be a dict or an NpzFile of arrays (to_arrays' result); got "
                            f"{type(d).__name__}.")
        if key not in d:
            raise KeyError(f"Vocab.from_arrays: missing {key!r}; got keys {sorted(d.keys())}.")
        words = np.asarray(d[key])
        if words.dtype.kind != "U" or words.ndim != 1:
            raise ValueError(f"Vocab.from_arrays: {key!r} must be a 1-d unicode array; got dtype {words.dtype}, "
                             f"shape {words.shape}.")
        counts = d[prefix + "counts"] if prefix + "counts" in d else None
        return cls(words.tolist(), counts)

    def __eq__(self, other):
        if not isinstance(other, Vocab):
            return NotImplemented
        if self.words != other.words or (self.counts is None) != (other.counts is None):
            return False
        return self.counts is None or bool(np.array_equal(self.counts, other.counts))

    __hash__ = None

    def __repr__(self):
        head = ", ".join(repr(w) for w in self.words[:5])
        more = ", ..." if len(self.words) > 5 else ""
        return f"Vocab({len(self.words)} words: [{head}{more}], counts={'yes' if self.counts is not None else 'no'})"
