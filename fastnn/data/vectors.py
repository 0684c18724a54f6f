"""Word vectors in word2vec's text format: a header line "n_words dim", then one "word v1 ... vd" line per word;
read also without the header line (GloVe's files).  Pretrained vectors for a model's word table: load_pretrained
normalises the file's words as the tagger's word feature, init_pretrained copies them into a table."""
import math

import numpy as np

from fastnn._validation import check_bool, check_float_array, check_path
from fastnn.data.features import normalize
from fastnn.data.text import open_text, atomic_write_text


def read_vectors(path):
    """(words, vectors) from a word2vec text file, with or without its header line; vectors is (n_words, dim) float32.

    The header "n_words dim" is recognised as a first line of exactly two integers; without it (GloVe's files) every
    line must have the first line's number of fields, a word and dim values.  Raises FileNotFoundError naming a
    missing file and ValueError naming the file and line for a malformed header, a line with the wrong number of
    values or a non-number, a duplicate word, or a word count that differs from the header's.
    """
    where = "read_vectors"
    path = check_path(path, where)
    with open_text(path, where) as f:
        # the first line, peeked at (not read) for the message below: opening the path again to read it failed for
        # stdin ("-") and read a pipe's remainder, and gave a gzip file's compressed bytes
        first = f.buffer.peek(256)[:256].split(b"\n", 1)[0]
        try:
            lines = f.read().split("\n")
        except ValueError as e:                         # not UTF-8 (open_text names the file and line)
            header = _fields(first.decode("ascii", "replace"))
            if len(header) != 2 or not all(_is_int(x) for x in header):
                raise
            raise ValueError(f"{e} It looks like word2vec's binary format (a header line, then raw floats), which "
                             f"is not read: write it as text, e.g. gensim's save_word2vec_format(path, "
                             f"binary=False).") from None
    head = _fields(lines[0])
    n = None
    if len(head) == 2 and all(_is_int(x) for x in head):
        n, dim = (int(x) for x in head)
        if n < 0 or dim < 1:
            raise ValueError(f"{where}: {path}, line 1: must be the header 'n_words dim' with n_words >= 0 and "
                             f"dim >= 1; got {lines[0][:80]!r}.")
        body, first = lines[1:], 2
    else:                                                  # no header (GloVe): the first line sets the dimension
        if len(head) < 2:
            raise ValueError(f"{where}: {path}, line 1: must be the header 'n_words dim' or a word and its values; "
                             f"got {lines[0][:80]!r}.")
        dim = len(head) - 1
        body, first = lines, 1
    words, index = [], {}
    vecs = np.empty((n if n is not None else 1024, dim), dtype=np.float32)   # grown by doubling without a header
    for lineno, line in enumerate(body, first):
        parts = _fields(line)
        if not parts:
            continue
        if len(words) == n:
            raise ValueError(f"{where}: {path}, line {lineno}: the header says {n} words; got more.")
        if len(parts) != dim + 1:
            like = "" if n is not None else " like line 1 (a file without a header line)"
            raise ValueError(f"{where}: {path}, line {lineno}: must have a word and {dim} values{like}; "
                             f"got {len(parts) - 1} values.")
        w = parts[0]
        if w in index:
            raise ValueError(f"{where}: {path}, line {lineno}: words must be distinct; got {w!r} again "
                             f"(first on line {index[w]}).")
        if len(words) == len(vecs):
            vecs = np.concatenate([vecs, np.empty_like(vecs)])
        try:
            with np.errstate(over="ignore"):        # (beyond float32: inf, named below as not finite, one line)
                vecs[len(words)] = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_float(p))
            raise ValueError(f"{where}: {path}, line {lineno}: values must be numbers; got {bad!r}.") from None
        index[w] = lineno
        words.append(w)
    bad = np.flatnonzero(~np.isfinite(vecs[:len(words)]).all(axis=1))
    if bad.size:                                        # would make every sentence with the word nan in training
        big = " (a value beyond float32's range, about 3.4e38, reads as inf)" if np.isinf(vecs[bad[0]]).any() else ""
        raise ValueError(f"{where}: {path}: values must be finite; got {vecs[bad[0]][~np.isfinite(vecs[bad[0]])][0]} "
                         f"for {words[bad[0]]!r} (line {index[words[bad[0]]]}; {bad.size} words in all){big}.")
    if n is not None and len(words) != n:
        raise ValueError(f"{where}: {path}: the header says {n} words; got {len(words)}.")
    return words, vecs[:len(words)].copy() if len(words) < len(vecs) else vecs


def _fields(line):
    return [p for p in line.replace("\t", " ").replace("\r", " ").split(" ") if p]     # word2vec's separators


def _is_int(s):
    try:
        int(s)
        return True
    except ValueError:
        return False


def _is_float(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def write_vectors(path, words, vectors):
    """Write words and an (n_words, dim) float matrix in word2vec text format, atomically.

    Values are written with 9 significant digits, so float32 vectors read back exactly.
    """
    where = "write_vectors"
    path = check_path(path, where)
    if isinstance(words, (str, bytes)):                 # (else one word per character, written without error)
        raise TypeError(f"{where}: 'words' must be a list of words; got the string {words!r}. Pass [{words!r}].")
    words = list(words)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or vectors.shape[1] < 1:
        raise ValueError(f"{where}: 'vectors' must have shape ({len(words)}, dim >= 1) to match 'words'; "
                         f"got {vectors.shape}.")
    if vectors.dtype.kind in "iu":                      # (integer vectors, [[1, 2], [3, 4]], were refused as not
        vectors = vectors.astype(np.float64)            # floats, though init_pretrained reads them)
    if vectors.dtype.kind != "f" or not np.isfinite(vectors).all():
        raise ValueError(f"{where}: 'vectors' must hold finite numbers; got dtype {vectors.dtype}"
                         f"{'' if vectors.dtype.kind != 'f' else ' with non-finite values'}.")
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or any(c in w for c in " \t\r\n"):
            raise ValueError(f"{where}: words must be non-empty strings without space, tab or newline; got {w!r} at "
                             f"position {i}.")
    if len(set(words)) != len(words):
        raise ValueError(f"{where}: words must be distinct; got a duplicate.")
    rows = vectors.astype(np.float32).tolist()
    out = [f"{len(words)} {vectors.shape[1]}\n"]
    out.extend(w + " " + " ".join(["%.9g" % v for v in row]) + "\n" for w, row in zip(words, rows))
    atomic_write_text(path, "".join(out))


def load_pretrained(path, lowercase=True):
    """(normalised words, vectors) from a word2vec text file: normalize_vectors(read_vectors(path))."""
    return normalize_vectors(*read_vectors(path), lowercase=lowercase)


def normalize_vectors(words, vecs, lowercase=True):
    """(normalised words, vectors): words normalised as the tagger's words (features.normalize(word, lowercase));
    when several words normalise alike, the first one's vector is kept."""
    check_bool(lowercase, "lowercase", "normalize_vectors")
    seen = {}
    for i, w in enumerate(words):
        seen.setdefault(normalize(w, lowercase), i)
    keep = np.fromiter(seen.values(), dtype=np.int64, count=len(seen))
    return list(seen), vecs[keep]


def init_pretrained(table, vocab, words, vectors, *, std="table"):
    """Copy pretrained `vectors` (rows for `words`) into `table` (len(vocab), dim), in place, at the row of every
    word of `vocab` they cover; returns how many rows were copied.  The dimensions must match (ValueError).

    std : the entry standard deviation the copied vectors are rescaled to (one factor for all of them, so their
        geometry is kept): "table" (default) = that of the table's own initial values, so pretrained rows start at
        the scale the model starts its other rows (and hidden layer) for; a number > 0; or None to copy them raw.
        Vectors from a language model are often 10-100x larger than a tagger's U(-0.01, 0.01) start, which saturates
        the hidden units of the words they cover (NER dev F1 84.9 raw against 89.0 rescaled, README).
    """
    where = "init_pretrained"
    check_float_array(table, "table", where, ndim=2, writeable=True, contiguous=False)
    if table.shape[0] != len(vocab):
        raise ValueError(f"{where}: 'table' must have one row per word of 'vocab', {len(vocab)}; got {table.shape[0]}.")
    if isinstance(words, (str, bytes)):
        raise TypeError(f"{where}: 'words' must be a list of words; got the string {words!r}.")
    words = list(words)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or vectors.dtype.kind not in "iuf":
        raise ValueError(f"{where}: 'vectors' must be a numeric ({len(words)}, dim) array, one row per word of "
                         f"'words'; got dtype {vectors.dtype}, shape {vectors.shape}.")
    if vectors.shape[1] != table.shape[1]:
        raise ValueError(f"{where}: the vectors must have the table's dimension {table.shape[1]}; got "
                         f"{vectors.shape[1]}. Build the model with embed_dim={vectors.shape[1]}.")
    if not (std is None or std == "table" or (isinstance(std, (int, float)) and math.isfinite(std) and std > 0)):
        raise ValueError(f"{where}: 'std' must be 'table', a number > 0 or None; got {std!r}.")
    index = {w: i for i, w in enumerate(words)}
    pairs = [(vocab.index(w), index[w]) for w in vocab.words if w in index]
    if pairs:
        rows, src = map(np.array, zip(*pairs))
        v = vectors[src].astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        if bad.size:                                    # (copied, it would make the first loss nan)
            raise ValueError(f"{where}: the vectors must be finite; got a non-finite value in the vector of "
                             f"{words[src[bad[0]]]!r}.")
        if std is not None:
            target = float(table.std()) if std == "table" else float(std)
            have = float(v.std())
            if have > 0:
                v *= target / have
        table[rows] = v
    return len(pairs)
