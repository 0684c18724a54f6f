"""Word vectors pre-trained without labels, for the window tagger: the text and vector helpers around the training
recipe (fastnn.recipes.embed: the objectives, their Configs and pretrain()).

Every token is normalised exactly as the tagger's word feature (fastnn.data.conll.normalize_word: lowercase, digits
-> 0), so every vector's word is spelled the way the tagger looks it up.

>>> from fastnn.recipes.embed import pretrain
>>> sents = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]] * 20
>>> # or sents = read_corpus(["brown.txt", "eng.train"]): plain text or CoNLL columns (word column)
>>> res = pretrain("ranking", sents, dim=8, epochs=2, min_count=1, quiet=True)   # or dim=50, max_minutes=15
>>> res.vectors.shape, res.words[:3]           # write_vectors("vectors.txt", res.words, res.vectors) saves them
((9, 8), ['<pad>', '<unk>', 'the'])
>>> [len(pair) for pair in nearest_neighbors(res.words, res.vectors, ["dog"], k=2)["dog"]]   # (word, cosine)
[2, 2]
"""
import os

import numpy as np

from fastnn._validation import check_int, check_not_file, check_path, check_scalar, check_sentences
from fastnn.data.conll import detect_format as detect_lines, normalize_word, read_head, read_words
from fastnn.data.text import open_text
from fastnn.data.vocab import Vocab

__all__ = ["TEXT_FORMATS", "NORMALIZATION", "NORMALIZATIONS", "detect_format", "read_corpus", "normalize_sentences",
           "text_normalizer", "split_valid", "model_vectors", "is_model_file", "read_any_vectors", "scale_vectors",
           "nearest_neighbors", "check_resume"]

TEXT_FORMATS = ("auto", "text", "conll")

# The text normalisations a model's words may have been made with, by the name the model carries as
# `text_normalization` (fastnn.io keeps it in the model file): a reader of raw text spells its words so before looking
# them up.  A model without the record (every `lm train` model; files written before it) reads text as written.
NORMALIZATION = "normalize_word"          # pretrain's (normalize_sentences): lowercase, digits -> 0
NORMALIZATIONS = {NORMALIZATION: normalize_word}


# ---- text --------------------------------------------------------------------------------------------------------

def detect_format(path, probe=200):
    """"conll" when the first `probe` token lines of the file look like CoNLL columns, else "text": the rule of
    fastnn.data.conll.detect_format (that of `tagger predict`), so that a CoNLL file with a few malformed lines is
    read as CoNLL and the reader names the bad line (a rule of its own here read such a file as text, silently taking
    every tag for a word).  The lines looked at are read: a pipe or stdin is then short of them, so read_corpus
    decides with the file open (fastnn.data.conll.read_words) rather than calling this first."""
    with open_text(path, "detect_format") as f:
        return detect_lines(read_head(f, probe))


def read_corpus(paths, text_format="auto", *, report=None, where="read_corpus"):
    """Sentences (lists of raw tokens) of several files, in order; each file is opened once, so a pipe (bash's
    <(zcat corpus.gz), /dev/stdin) is read whole.

    text_format : "text" (one sentence per line, whitespace tokens), "conll" (CoNLL columns: the first column's
        words; blank lines end sentences; -DOCSTART- lines are skipped), or "auto" (detect_format per file).
    report : optional list that receives one (path, format, sentences, tokens) tuple per file ("stdin" for "-").
    where : the name messages start with (the CLI passes its option, "--text").

    Raises FileNotFoundError naming a missing file, ValueError for an empty file or corpus or a malformed CoNLL line.
    """
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"{where}: 'text_format' must be one of {TEXT_FORMATS}; got {text_format!r}.")
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    for p in paths:                     # (sentences given here failed in open() with a bare TypeError)
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise TypeError(f"{where}: 'paths' must be file paths; got {type(p).__name__} {p!r:.60}. Sentences in "
                            f"memory need no reading: pass them to pretrain (or normalize_sentences) directly.")
    seen = {}
    for p in paths:                     # (one file twice, by any name, counted its sentences twice, silently)
        key = _file_identity(p)
        if key in seen:
            raise ValueError(f"{where}: {os.fspath(p)} is given twice (as {os.fspath(seen[key])}): its sentences "
                             f"would count twice, and the held-out ones be trained on too; give each file once.")
        seen[key] = p
    out = []
    for p in paths:
        # (detect_format(p) then reading p opened a pipe twice: the reading got only what the look had left)
        sents, fmt = read_words(p, text_format, where=where)
        if not sents:
            raise ValueError(f"{where}: {os.fspath(p)} holds no token; every file must hold some text.")
        if report is not None:
            report.append(("stdin" if p == "-" else os.fspath(p), fmt, len(sents), sum(map(len, sents))))
        out.extend(sents)
    if not out:
        raise ValueError(f"{where}: the corpus must hold at least one token; got no files.")
    return out


def _file_identity(path):
    """What names one file: its device and inode (a link, or another spelling, is the same file), else its resolved
    path; stdin ("-") is its own (read once: a second reading gets nothing)."""
    if path == "-":
        return path
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return os.path.realpath(path)


def normalize_sentences(sentences):
    """Every token through normalize_word (the tagger's word feature: lowercase, digits -> 0)."""
    check_not_file(sentences, "sentences", "normalize_sentences", "fastnn.embed.read_corpus(paths)")
    cache = {}
    out = []
    for s in check_sentences(sentences, "normalize_sentences"):
        ns = []
        for t in s:
            n = cache.get(t)
            if n is None:
                n = cache[t] = normalize_word(t)
            ns.append(n)
        out.append(ns)
    return out


def text_normalizer(model, where="text_normalizer"):
    """The function (word -> word) spelling a word of raw text as `model`'s words are spelled (its
    `text_normalization`, NORMALIZATIONS), or None for a model that reads text as written (no record).  A name this
    fastnn does not know (a file of a later version) is a ValueError: guessing would score other words."""
    name = getattr(model, "text_normalization", None)
    if name is None:
        return None
    if name not in NORMALIZATIONS:
        raise ValueError(f"{where}: the model's words were made with the text normalisation {name!r}, which this "
                         f"fastnn does not know (it knows {', '.join(map(repr, NORMALIZATIONS))}); use the fastnn "
                         f"version that wrote the model.")
    return NORMALIZATIONS[name]


def split_valid(sentences, fraction, seed):
    """(train, valid): a random `fraction` of the sentences (at least one when fraction > 0 and there are >= 2
    sentences) held out for validation, chosen with default_rng(seed); order is kept within each part."""
    check_scalar(fraction, "fraction", "split_valid", low=0)
    if not fraction < 1:
        raise ValueError(f"split_valid: 'fraction' must be in [0, 1); got {fraction!r}.")
    check_int(seed, "seed", "split_valid", low=0)
    sentences = list(sentences)         # (a generator has no len, and is read twice below)
    n = len(sentences)
    k = 0 if fraction == 0 or n < 2 else max(1, int(round(fraction * n)))
    if k == 0:
        return list(sentences), []
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng([seed, 7]).choice(n, k, replace=False)] = True
    return [s for s, h in zip(sentences, held) if not h], [s for s, h in zip(sentences, held) if h]


# ---- models and vectors ----------------------------------------------------------------------------------------------------

def model_vectors(model):
    """(words, (V, dim) vectors) of a trained model that has word vectors: a WindowRanker's, the NPLM's features C,
    the RNN and LSTM LMs' input vectors, a WindowTagger's (its words normalised as it reads them).  A TaggerEnsemble
    has one table per member: a ValueError says to pick one (model.members[i]); a model without word vectors (an
    n-gram model, a classifier) is a TypeError."""
    from fastnn.models.neural_lm import RecurrentLM
    from fastnn.models.nplm import NPLM
    from fastnn.models.ranking import WindowRanker
    from fastnn.models.tagger import TaggerEnsemble, WindowTagger

    where = "model_vectors"
    if isinstance(model, WindowTagger):
        return list(model.vocab.words), model.embed.W.value.copy()
    if isinstance(model, TaggerEnsemble):
        raise ValueError(f"{where}: a TaggerEnsemble of {len(model.members)} taggers has one table of word vectors "
                         f"per member, trained apart; pass one member, e.g. model_vectors(model.members[0]).")
    if isinstance(model, WindowRanker):
        table = model.embed.W
    elif isinstance(model, NPLM):
        table = model.C.W
    elif isinstance(model, RecurrentLM):                 # the RNN and LSTM LMs
        table = model.emb.W
    else:
        raise TypeError(f"{where}: 'model' must be a model with word vectors (WindowRanker, NPLM, RNNLM, LSTMLM, "
                        f"WindowTagger); got {type(model).__name__}, which has none.")
    if model.words is None:
        raise ValueError(f"{where}: the {type(model).__name__} must carry its vocabulary (words=...); got "
                         f"None.")
    return list(model.words), table.value.copy()


def is_model_file(path):
    """Is `path` a fastnn model file (an .npz, a zip archive) rather than word vectors in text?  A pipe is told by its
    name only (reading its first bytes would take them from the text reader)."""
    path = check_path(path, "is_model_file")
    if path.endswith(".npz"):
        return True
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(2) == b"PK"


def read_any_vectors(path):
    """(words, (V, dim) vectors, note) of a word2vec / GloVe text file (fastnn.data.read_vectors) or of a fastnn model
    file with word vectors (model_vectors: a tagger's, an LM's, embed train --save-model's).  An ensemble of taggers
    gives its first member's vectors, and `note` says so; else note is None.  A model without word vectors is a
    TypeError naming the file."""
    from fastnn import io
    from fastnn.data.vectors import read_vectors
    from fastnn.models.tagger import TaggerEnsemble

    if not is_model_file(path):
        return (*read_vectors(path), None)
    model, note = io.load_model(path), None
    if isinstance(model, TaggerEnsemble):
        note = f"{path}: an ensemble of {len(model.members)} taggers; the word vectors of its first member"
        model = model.members[0]
    try:
        return (*model_vectors(model), note)
    except TypeError:
        raise TypeError(f"{path} holds a {type(model).__name__}, which has no word vectors; give a text vectors file "
                        f"or the model file of a tagger, a neural LM or embed train --save-model.") from None


def scale_vectors(vectors, std):
    """The vectors multiplied by one factor so that the standard deviation of all their entries is `std` (Turian et
    al. 2010 scale embeddings this way before using them as features)."""
    check_scalar(std, "std", "scale_vectors", low=0, low_open=True)
    v = np.asarray(vectors)
    if v.dtype.kind != "f":             # (integer vectors were scaled and cast back: all zeros)
        v = v.astype(np.float64)
    s = float(v.std())
    if not (std > 0 and s > 0):
        raise ValueError(f"scale_vectors: 'std' and the vectors' standard deviation must be > 0; got {std} and {s}.")
    return (v * (std / s)).astype(v.dtype)


def check_resume(checkpoint, model):
    """ValueError unless `checkpoint` was written for a model of the same class and vocabulary."""
    from fastnn import io
    header, _ = io.read_file(checkpoint, "resume")
    cls = io.model_class_name(model)
    if header.get("model_class") != cls:
        raise ValueError(f"{checkpoint} holds a {header.get('model_class')}, not a {cls}; resume with the "
                         f"objective it was started with.")
    words = header.get("model_config", {}).get("words")
    if words != model.words:
        words = words or []
        i = next((i for i, (a, b) in enumerate(zip(words, model.words)) if a != b), min(len(words), len(model.words)))
        at = lambda ws: repr(ws[i]) if i < len(ws) else "nothing"  # noqa: E731
        raise ValueError(f"{checkpoint} was trained with another vocabulary ({len(words)} words, {len(model.words)} "
                         f"here; word {i} is {at(words)} there, {at(model.words)} here); resume with the same text "
                         f"files, text format and min count.")


# ---- nearest neighbours ------------------------------------------------------------------------------------------

# Rows of a model's vector table that stand for no word: never listed as a neighbour (they can still be queried).
NOT_NEIGHBORS = (Vocab.PAD, Vocab.UNK)


def nearest_neighbors(words, vectors, queries, k=10):
    """{query: [(word, cosine similarity), ...]}: the k words closest to each query by cosine similarity, best
    first, the query itself and the vocabulary markers <pad> / <unk> excluded.  All similarities come from ONE
    matrix product (queries x vocabulary).

    `queries` is a list of words (one word: [word]; any iterable is read once).  A query is looked up as given, then
    normalised like the tagger's words (normalize_word); an unknown query raises KeyError naming it.  Zero vectors
    have similarity 0 to everything; a non-finite vector is a ValueError naming its word.
    """
    where = "nearest_neighbors"
    for name, value in (("words", words), ("queries", queries)):
        if isinstance(value, (str, bytes)):         # (else its characters would be the words or the queries)
            raise TypeError(f"{where}: '{name}' must be a list of words; got the string {value!r}. Pass [{value!r}].")
    words, queries = list(words), list(queries)
    try:
        V = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        dtype = f" of dtype {vectors.dtype}" if hasattr(vectors, "dtype") else ""
        raise TypeError(f"{where}: 'vectors' must be a (words, dim) array of real numbers; got "
                        f"{type(vectors).__name__}{dtype}.") from None
    if V.ndim != 2 or V.shape[0] != len(words):
        raise ValueError(f"{where}: 'vectors' must have shape ({len(words)}, dim); got {V.shape}.")
    bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
    if bad.size:                                    # (NaN similarities would sort anywhere, the query among them)
        more = f" and {bad.size - 1} more" if bad.size > 1 else ""
        raise ValueError(f"{where}: 'vectors' must be finite; got a non-finite value in the vector of "
                         f"{words[bad[0]]!r} (row {bad[0]}){more}. Were they trained with a diverging learning rate?")
    k = check_int(k, "k", where)
    index = {w: i for i, w in enumerate(words)}
    if len(index) != len(words):        # (a duplicate came back as its own twin's nearest neighbour, cosine 1)
        seen = set()
        dup = next(w for w in words if w in seen or seen.add(w))
        raise ValueError(f"{where}: 'words' must be distinct; got {dup!r} more than once.")
    rows = []
    for q in queries:
        if not isinstance(q, str):
            raise TypeError(f"{where}: every query must be a word (a string); got {type(q).__name__} {q!r}.")
        i = index.get(q, index.get(normalize_word(q)))
        if i is None:
            norm = "" if normalize_word(q) == q else f" (nor is {normalize_word(q)!r}, its normalised form)"
            raise KeyError(f"{where}: the query {q!r} is not in the vocabulary{norm}.")
        rows.append(i)
    V = V / np.maximum(np.abs(V).max(axis=1), np.finfo(np.float64).tiny)[:, None]   # (no overflow in the norms)
    norms = np.linalg.norm(V, axis=1)
    U = V / np.where(norms > 0, norms, 1.0)[:, None]
    S = U[rows] @ U.T                                   # (queries, V): the one matrix product
    S[np.arange(len(rows)), rows] = -np.inf             # never a word's own neighbour
    markers = [index[w] for w in NOT_NEIGHBORS if w in index]
    S[:, markers] = -np.inf                             # nor a vocabulary's <pad> / <unk> (a model's table has them)
    k = min(k, len(words) - 1)
    out = {}
    for q, i, s in zip(queries, rows, S):
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.lexsort((top, -s[top]))]           # best first; ties by vocabulary order
        out[q] = [(words[j], float(s[j])) for j in top[:k] if s[j] > -np.inf]
    return out
