"""CoNLL column files (CoNLL-2000 chunking, CoNLL-2003 NER) and Collobert et al. (2011) window features.

A file holds one token per line with whitespace-separated columns, blank lines between sentences, and optional
"-DOCSTART-" lines between documents (skipped; they end the current sentence).  A sentence is a list of token rows,
each a tuple of column strings.

Preprocessing follows Collobert et al. 2011 (the features themselves are in fastnn.data.features): the word feature
is the lowercased word with every digit replaced by "0"; the capitalisation feature has five values; sentences are
padded at both edges with PAD symbols so that every token has a full window; unknown words map to <unk>.
"""
import re
from collections import Counter

import numpy as np

from fastnn._validation import check_int, check_path, check_sentences, is_string_array, short_repr

from fastnn.data.features import CAPS_PAD, caps_feature, normalize_word
from fastnn.data.text import atomic_write_text, check_fields, open_text, split_fields
from fastnn.data.vocab import Vocab

# Column indices by name; CoNLL-2003: word pos chunk ner; CoNLL-2000: word pos chunk.
COLUMNS = {"word": 0, "pos": 1, "chunk": 2, "ner": 3}
TASKS = {"conll2003": ("word", "pos", "chunk", "ner"), "conll2000": ("word", "pos", "chunk")}
DOCSTART = "-DOCSTART-"



def column_index(col, where="column_index"):
    """An int column index from an int or a name in COLUMNS."""
    if isinstance(col, str):
        try:
            return COLUMNS[col]
        except KeyError:
            raise ValueError(f"{where}: column name must be one of {sorted(COLUMNS)} or an int; got {col!r}.") from None
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool) and col >= 0:
        return int(col)
    raise ValueError(f"{where}: column must be a name in {sorted(COLUMNS)} or an int >= 0; got {col!r}.")


def read_conll(path, columns=None, *, task=None, starts=None):
    """Sentences of a CoNLL file, each a list of row tuples (all columns, or `columns` by index or name, in order).

    `task` ("conll2003" or "conll2000", optional) checks that the file has that task's columns (TASKS).  `starts`
    (optional, a list) receives the line number (from 1) of each sentence's first token line, for messages that name
    a sentence by its place in the file (token i of sentence k is on line starts[k] + i).

    Raises FileNotFoundError naming a missing file, and ValueError naming the file and line for a line whose number
    of columns differs from the first token line's, for a requested column the file does not have, or for a file
    without tokens.
    """
    path = check_path(path, "read_conll")
    with open_text(path, "read_conll") as f:
        return parse_conll(f, columns, task=task, name=path, where="read_conll", starts=starts)


def parse_conll(lines, columns=None, *, task=None, name="<input>", where="parse_conll", starts=None):
    """read_conll's sentences of an iterable of lines (e.g. a file whose first lines were already read to decide its
    format: a pipe cannot be opened twice); `name` names it in messages, `starts` as read_conll's."""
    _check_lines(lines, where)
    if isinstance(columns, (str, int, np.integer)):
        columns = [columns]
    cols = None if columns is None else [column_index(c, where) for c in columns]
    if task is not None and task not in TASKS:
        raise ValueError(f"{where}: 'task' must be None or one of {sorted(TASKS)}; got {task!r}.")
    return _sentences(lines, name, cols, columns, task, where, starts)


def _check_lines(lines, where):
    """TypeError for a path or a whole text given as the lines: read a character per line, they were a sentence of
    one-character words per character, silently."""
    import os
    if isinstance(lines, (str, bytes, os.PathLike)):
        text = not isinstance(lines, os.PathLike) and "\n" in os.fsdecode(lines)
        hint = "text? Pass text.splitlines()" if text else "a path? Read the file with read_conll(path)"
        raise TypeError(f"{where}: 'lines' must be an iterable of lines (an open file, a list of str); got a "
                        f"{type(lines).__name__} {short_repr(lines)}: {hint}.")


def _sentences(lines, path, cols, columns, task, where, starts=None):
    """read_conll's sentences of an iterable of lines."""
    sentences, cur, first, first_line = [], [], None, None
    for lineno, line in enumerate(lines, 1):
        fields = split_fields(line)
        if not fields or fields[0] == DOCSTART:
            if cur:
                sentences.append(cur)
                cur = []
            continue
        _check_line(fields, first, line, lineno, first_line, path, where)
        if first is None:
            first, n_cols, first_line = fields, len(fields), lineno
            if task is not None and n_cols != len(TASKS[task]):
                raise ValueError(f"{where}: {path}, line {lineno}: a {task} file must have {len(TASKS[task])} "
                                 f"columns ({' '.join(TASKS[task])}); got {n_cols}.")
            if cols is not None and max(cols, default=0) >= n_cols:
                raise ValueError(f"{where}: {path}: columns {columns} must exist in the file; it has {n_cols} "
                                 f"columns (line {lineno}).")
        if not cur and starts is not None:
            starts.append(lineno)
        cur.append(tuple(fields) if cols is None else tuple(fields[c] for c in cols))
    if cur:
        sentences.append(cur)
    if not sentences:
        raise ValueError(f"{where}: {path} is empty; it must contain at least one token line.")
    return sentences


# CoNLL-U (Universal Dependencies): ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC, "#" comment lines, token
# ranges ("3-4") and empty nodes ("8.1").  Its ID column would be read as the words, its comments as tokens.
_CONLLU_ID = re.compile(r"^[0-9]+([-.][0-9]+)?$")
CONLLU_TO_CONLL = """awk -F'\\t' '/^#/ || $1 ~ /[-.]/ {next} {print (NF ? $2 " " $4 " " $5 : "")}'"""


def _is_conllu(fields):
    return len(fields) == 10 and bool(_CONLLU_ID.match(fields[0]))


def _conllu_error(path, lineno, where):
    return ValueError(f"{where}: {path}, line {lineno}: looks like CoNLL-U (10 tab-separated columns starting with "
                      f"an ID, '#' comment lines, token ranges such as 3-4), which is not read: fastnn's CoNLL files "
                      f"have the word first and no comments. Convert it, e.g. to word UPOS XPOS columns: "
                      f"{CONLLU_TO_CONLL}{'' if path == 'stdin' else ' ' + path}")


def _check_line(fields, first, line, lineno, first_line, path, where):
    """read_conll's and read_document's check of a token line against the first one (`first`: its fields, None for
    the first line itself): the same number of columns, and no CoNLL-U."""
    if first is None:
        if _is_conllu(fields):
            raise _conllu_error(path, lineno, where)
    elif len(fields) != len(first):
        if _is_conllu(fields) or first[0].startswith("#"):
            raise _conllu_error(path, lineno, where)
        raise ValueError(f"{where}: {path}, line {lineno}: must have {len(first)} columns like line {first_line}; "
                         f"got {len(fields)}: {line.rstrip()!r}.")


def read_head(lines, probe=200):
    """The lines of `lines` (an open file) up to its `probe`-th token line: what detect_format looks at.  They are
    consumed, so a reader that goes on chains them back in front (a pipe cannot be opened again)."""
    head, n = [], 0
    for line in lines:
        head.append(line)
        n += bool(split_fields(line))
        if n >= probe:
            break
    return head


def read_words(path, fmt="auto", *, probe=200, where="read_words"):
    """(sentences of words, the format read) of a file of plain text (one sentence per line, whitespace tokens) or
    CoNLL columns (the first column's words); fmt "auto" decides by detect_format on the first `probe` token lines.

    The file is opened once and read from the start, the lines looked at to decide being kept and read again from
    memory: a pipe (bash's <(zcat corpus.gz)) or stdin ("-") cannot be opened twice, and opening it again read only
    what the first look had left, silently.  An empty text file gives no sentence (the caller decides).  A -DOCSTART-
    line is no sentence in either format (a file of nothing else is CoNLL to detect_format, and holds no sentence).
    """
    import itertools
    if fmt not in ("auto",) + FORMATS:
        raise ValueError(f"{where}: 'fmt' must be one of {('auto',) + FORMATS}; got {fmt!r}.")
    path = check_path(path, where)
    with open_text(path, where) as f:
        head = read_head(f, probe) if fmt == "auto" else []
        if fmt == "auto":
            fmt = detect_format(head)
        lines = itertools.chain(head, f)
        if fmt == "conll":
            return [[row[0] for row in s] for s in _sentences(lines, path, [0], [0], None, where)], fmt
        # (a -DOCSTART- line is a document marker in text too, as tagger predict reads it: not a sentence)
        return [toks for toks in map(split_fields, lines) if toks and toks[0] != DOCSTART], fmt


def column(sentences, col):
    """One column of every sentence: list of lists of strings (`col` by index or name)."""
    c = column_index(col, "column")
    return [[row[c] for row in s] for s in _check_rows(sentences, "column")]


def _check_rows(sentences, where):
    """`sentences` as a list, or a TypeError unless each is a list of rows (read_conll's form), checked at each
    sentence's first row: a tokenised sentence's words, or one sentence's rows given flat, were read a character per
    column (a vocabulary of first letters), silently.  (as_rows checks every row and converts other forms.)"""
    sentences = list(sentences)
    for k, s in enumerate(sentences):
        if isinstance(s, (str, bytes)) or (len(s) and not isinstance(s[0], (tuple, list, np.ndarray))):
            flat = " One sentence's rows given flat? Pass [rows]." if isinstance(s, tuple) else ""
            raise TypeError(f"{where}: sentence {k} must be a list of rows like read_conll's (tuples of column "
                            f"strings); got {short_repr(s)}.{flat} Tokenised sentences are made rows by "
                            f"as_rows(sentences).")
    return sentences


def write_conll(path, sentences, extra=()):
    """Write sentences back in CoNLL format, atomically, with extra columns appended to each row.

    `extra` is a sequence of columns, each a list (one per sentence) of per-token strings, e.g. `[predicted_tags]`.
    Sentences are separated by blank lines, as conlleval expects.  A field that would not read back as one (empty,
    or with whitespace in it) or an empty sentence is a ValueError before anything is written.  Sentences may be
    tokenised ([["John", "runs"]]: one column); a row of another width, and other forms, are a TypeError (as_rows).
    """
    # (a tokenised sentence's words were written a character per column, one sentence's rows given flat as
    # sentences of their columns, and an extra column's sentence as a string a character per token, silently)
    sentences = as_rows(sentences, "write_conll")
    extra = [check_sentences(e, f"write_conll: extra column {i}", item="tag") for i, e in enumerate(extra)]
    lines = []
    for k, s in enumerate(sentences):
        for e_i, e in enumerate(extra):
            if len(e) != len(sentences) or len(e[k]) != len(s):
                got = len(e) if len(e) != len(sentences) else len(e[k])
                want = len(sentences) if len(e) != len(sentences) else len(s)
                raise ValueError(f"write_conll: extra column {e_i} must match the sentences (sentence {k}); "
                                 f"got {got} items where {want} were expected.")
        if not s:
            raise ValueError(f"write_conll: sentence {k} must hold a token (an empty sentence does not read back).")
        for i, row in enumerate(s):
            fields = list(row) + [e[k][i] for e in extra]
            check_fields(fields, "write_conll", f"sentence {k}, token {i}")
            lines.append(" ".join(fields))
        lines.append("")
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))



def as_rows(sentences, where="as_rows", *, tokens=True):
    """`sentences` in read_conll's form: a list of sentences, each a list of rows (tuples of column strings).

    Accepts that form (rows may also be lists) and, when `tokens` is true, tokenised sentences: a list of lists of
    strings (e.g. [["John", "Smith", "visited", "Paris", "."]]), each token becoming a one-column row.  Anything
    ambiguous is a TypeError saying what was expected: a bare string, a flat list of strings (one sentence or many
    one-word ones?), a sentence mixing tokens and rows, sentences of both kinds, a row holding a non-string or
    nothing, rows of different widths.  An empty sentence stays empty.

    The rows of a sentence must have the same number of columns, as in a CoNLL file (sentences from different
    sources may differ).  Column-major sentences such as (tokens, tags) pairs are refused: they would read as two
    rows per sentence and the tagger would learn words as tags.  They show as every sentence having the same number
    of rows (two or more) while the widths differ between sentences: rows stand for tokens, so real row counts vary.
    """
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"{where}: 'sentences' must be a list of sentences (each a list of tokens or of column "
                        f"rows); got a {type(sentences).__name__}. Tokenise text first, e.g. [text.split()].")
    try:
        sentences = list(sentences)
    except TypeError:
        raise TypeError(f"{where}: 'sentences' must be a list of sentences; got {type(sentences).__name__}.") from None
    expected = "a list of rows like read_conll's" + (" or of token strings" if tokens else "")
    _refuse_flat_rows(sentences, where, tokens)
    out, kinds, widths, lengths = [], set(), {}, set()
    for k, s in enumerate(sentences):
        if is_string_array(s) and s.ndim in (1, 2):
            s = s.tolist()                   # tokens (1-d) or rows (2-d) as strings, e.g. from a DataFrame column
        if isinstance(s, (str, bytes)) or not isinstance(s, (list, tuple)):
            hint = (" A flat list of strings is ambiguous: for one tokenised sentence pass [tokens]."
                    if isinstance(s, str) else "")
            raise TypeError(f"{where}: sentence {k} must be {expected}; got {type(s).__name__} {short_repr(s)}.{hint}")
        is_tok = [isinstance(x, str) for x in s]
        if all(is_tok) and s:
            if not tokens:
                same = len(sentences) > 1 and all(isinstance(x, (list, tuple)) and len(x) == len(s) for x in sentences)
                flat = " One sentence's rows without the list of sentences? Pass [rows]." if same else ""
                raise TypeError(f"{where}: sentence {k} must be a list of column rows like read_conll's (the gold "
                                f"tags are needed); got token strings {short_repr(s)}.{flat}")
            kinds.add("tokens")
            out.append([(x,) for x in s])
            continue
        if any(is_tok):
            raise TypeError(f"{where}: sentence {k} must be {expected}, not both; got {short_repr(s)}.")
        for i, row in enumerate(s):
            if not isinstance(row, (tuple, list)):
                raise TypeError(f"{where}: sentence {k} must be {expected}; got {type(row).__name__} {short_repr(row)} "
                                f"at position {i}.")
            if not row or not all(isinstance(c, str) for c in row):
                raise TypeError(f"{where}: sentence {k}, row {i} must hold column strings (the word first); "
                                f"got {short_repr(row)}.")
            if len(row) != len(s[0]):
                raise TypeError(f"{where}: sentence {k} must have one row per token, each with the same columns; "
                                f"row {i} has {len(row)} columns, row 0 has {len(s[0])}.")
        if s:
            widths.setdefault(len(s[0]), k)
            lengths.add(len(s))
        if s:
            kinds.add("rows")
        out.append(s)
    if len(kinds) > 1:
        raise TypeError(f"{where}: the sentences must all be token lists or all column rows; got both kinds.")
    if len(widths) > 1 and len(lengths) == 1 and min(lengths) > 1:
        (a, ka), (b, kb) = list(widths.items())[:2]
        raise TypeError(f"{where}: every sentence has {lengths.pop()} rows but their widths differ (sentence {ka}: "
                        f"{a} columns, sentence {kb}: {b}): these look like column-major sentences such as "
                        f"(tokens, tags) pairs. Pass one row per token: list(zip(tokens, tags)).")
    return out


def _refuse_flat_rows(sentences, where, tokens):
    """TypeError for one sentence's rows given without the list of sentences ([("John", "B-PER"), ("runs", "O")]):
    read as sentences, each row would be a sentence of its columns as words.  Rows are tuples, as read_conll makes
    them (tokenised sentences are lists); it shows as every item being a tuple of strings of one width, two or more
    of them (one would be a one-row sentence or a tokenised one), or any number where tokens cannot be sentences."""
    rows = all(isinstance(s, tuple) and s and all(isinstance(x, str) for x in s) for s in sentences)
    if rows and sentences and len({len(s) for s in sentences}) == 1 and (len(sentences) > 1 or not tokens):
        raise TypeError(f"{where}: 'sentences' must be a list of sentences, each a list of rows; got a flat list of "
                        f"{len(sentences)} row tuple{'s' * (len(sentences) > 1)} such as {short_repr(sentences[0])}, "
                        f"each of which would be taken for a sentence. Pass a list of sentences: [rows] for one "
                        f"sentence (tokenised sentences are lists of strings).")


# ---- documents kept line for line (tagger predict) -------------------------------------------------------------

FORMATS = ("conll", "text")


def detect_format(lines):
    """"conll" or "text" for the first lines of an input (auto-detection of `fastnn tagger predict`).

    CoNLL: every token line has one common number of fields, and a -DOCSTART- line or a blank line after some token
    lines (a trailing one counts) separates them, with more than one token line in the second case.  A one-sentence
    file (no blank line) is CoNLL too when its token lines share one number >= 2 of fields and every field after the
    word looks like a tag (upper-case letters and punctuation: NNP, I-NP, B-PER, O, PRP$, -LRB-, ., ...), which text
    lines of equal lengths hardly do.  Otherwise text: one tokenised sentence per line.  A small input can be
    ambiguous (two lines of two words each, a one-token CoNLL file): give the format explicitly there.  An input of
    -DOCSTART- (and blank) lines only is CoNLL, of no sentence.  A CoNLL file
    with a few malformed lines (at least 90% of its token lines sharing one number >= 2 of fields) is CoNLL, so that
    reading it names the bad line: read as text, every column would be tagged as a word.
    """
    fields, blank_after_token, docstart = Counter(), False, False
    n_tokens, taglike, conllu = 0, True, False
    for line in lines:
        f = split_fields(line)
        if f and f[0] == DOCSTART:
            docstart = True
        elif not f:
            blank_after_token = blank_after_token or n_tokens > 0
        else:
            fields[len(f)] += 1
            n_tokens += 1
            conllu = conllu or _is_conllu(f)                # (read as CoNLL, whose reader says what it is)
            taglike = taglike and all(_TAGLIKE.match(x) for x in f[1:])
    width, n = fields.most_common(1)[0] if fields else (0, 0)
    columns = len(fields) == 1 or (width >= 2 and n >= 0.9 * n_tokens)
    one_sentence = len(fields) == 1 and width >= 2 and n_tokens > 1 and taglike
    if conllu or (docstart and not n_tokens):   # (only -DOCSTART- lines: a CoNLL file of no sentence, not a text
        return "conll"                           # whose sentence is "-DOCSTART- -X- -X- O")
    return "conll" if columns and (docstart or (blank_after_token and n_tokens > 1) or one_sentence) else "text"


# a POS, chunk or NER tag: upper-case letters, hyphens, punctuation ($ of PRP$, -LRB-, the tags of . , : `` '')
_TAGLIKE = re.compile(r"^[A-Z$.,:;()'`#\-]+$")


def read_document(lines, fmt, name="<input>", where="read_document"):
    """The items of an input in order, so that output can line up with it line for line: a sentence (a list of row
    tuples; for fmt="text" a line's tokens, each a one-column row) or, for a line that is no token line (blank, or a
    -DOCSTART- line), the str of that line without its newline.  A generator: lines are read as items are taken.

    CoNLL token lines must all have the number of columns of the first one (ValueError naming `name` and the line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"{where}: 'fmt' must be one of {FORMATS}; got {fmt!r}.")
    _check_lines(lines, where)
    cur, first, first_line = [], None, None
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        f = split_fields(line)
        if not f or f[0] == DOCSTART:
            if cur:
                yield cur
                cur = []
            yield line
            continue
        if fmt == "text":
            yield [(w,) for w in f]
            continue
        _check_line(f, first, line, lineno, first_line, name, where)
        if first is None:
            first, first_line = f, lineno
        cur.append(tuple(f))
    if cur:
        yield cur


# ---- Collobert et al. features as ids, and windows -----------------------------------------------------------

def word_vocab(sentences, *, col="word", min_count=1, extra_words=()):
    """Vocabulary of normalised training words: <pad> (id 0), <unk> (id 1), then words with count >= min_count by
    decreasing count, then `extra_words` not yet present (e.g. the words of pretrained vectors), in their order."""
    c = column_index(col, "word_vocab")
    norm = ([normalize_word(row[c]) for row in s] for s in _check_rows(sentences, "word_vocab"))
    v = Vocab.build(norm, min_count=min_count, specials=(Vocab.PAD, Vocab.UNK))
    extra = [w for w in dict.fromkeys(extra_words) if w not in v]
    if not extra:
        return v
    return Vocab(v.words + extra, np.concatenate([v.counts, np.zeros(len(extra), np.int64)]))


def tag_vocab(sentences, col):
    """Vocabulary of the tags in column `col`, sorted by decreasing count then name, without specials."""
    return Vocab.build(column(_check_rows(sentences, "tag_vocab"), col), specials=())


def encode_words(sentences, vocab, col="word"):
    """Per sentence, int64 ids of the normalised words (unknown -> <unk>)."""
    c = column_index(col, "encode_words")
    return [vocab.encode([normalize_word(row[c]) for row in s]) for s in _check_rows(sentences, "encode_words")]


def encode_caps(sentences, col="word"):
    """Per sentence, int64 capitalisation classes of the words."""
    c = column_index(col, "encode_caps")
    return [np.array([caps_feature(row[c]) for row in s], dtype=np.int64)
            for s in _check_rows(sentences, "encode_caps")]


def encode_tags(sentences, vocab, col):
    """Per sentence, int64 tag ids of column `col`; a tag missing from `vocab` raises KeyError (no <unk>)."""
    c = column_index(col, "encode_tags")
    return [vocab.encode([row[c] for row in s]) for s in _check_rows(sentences, "encode_tags")]


def windows(word_ids, caps_ids=None, *, window=5, pad_word_id=0, pad_caps_id=CAPS_PAD):
    """Windows of ids centred on every token of every sentence, padded at sentence edges.

    Parameters
    ----------
    word_ids, caps_ids : lists (one per sentence) of 1-d integer arrays of equal lengths; caps_ids may be None.
    window : odd int >= 1.

    Returns
    -------
    word_windows : (N, window) int64, N = total tokens; row t is the window centred on token t.
    caps_windows : (N, window) int64, or None when caps_ids is None.
    offsets : (n_sentences + 1,) int64; sentence k is rows offsets[k]:offsets[k+1].
    """
    where = "windows"
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"{where}: 'window' must be an odd int >= 1; got {window!r}.")
    for name, pad in (("pad_word_id", pad_word_id), ("pad_caps_id", pad_caps_id)):    # (True padded with id 1, and
        check_int(pad, name, where, low=0)                                             # -1 with an id no row has)
    word_ids = _id_sentences(word_ids, "word_ids", where)
    caps_ids = None if caps_ids is None else _id_sentences(caps_ids, "caps_ids", where)
    lengths = np.array([len(w) for w in word_ids], dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if caps_ids is not None:
        if len(caps_ids) != len(word_ids) or any(len(c) != n for c, n in zip(caps_ids, lengths)):
            raise ValueError(f"{where}: 'caps_ids' must have one array per sentence with the lengths of 'word_ids'.")
    h = window // 2
    # Index of each token in the padded concatenation (h pads on both sides of every sentence).
    sent = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(offsets[-1]) + (2 * h) * sent + h
    idx = pos[:, None] + np.arange(-h, h + 1)

    def gather(seqs, pad):
        padded = np.full(offsets[-1] + 2 * h * len(lengths), pad, dtype=np.int64)
        if len(lengths):
            flat = np.concatenate([s.astype(np.int64, copy=False) for s in seqs])
            padded[pos] = flat
        return padded[idx]

    return gather(word_ids, pad_word_id), None if caps_ids is None else gather(caps_ids, pad_caps_id), offsets


def _id_sentences(seqs, name, where):
    """`seqs` as a list of 1-d integer arrays, or a TypeError naming the sentence: float ids were truncated (1.7 ->
    1) and one sentence's ids given flat failed as 'numpy.int64 has no len()'."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 1 and seqs.dtype != object:
        raise TypeError(f"{where}: '{name}' must be a list of sentences, each a 1-d array of integer ids; got one "
                        f"1-d array {short_repr(seqs)}: for one sentence pass [ids].")
    out = []
    for k, s in enumerate(seqs):
        a = np.asarray(s)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise TypeError(f"{where}: '{name}' sentence {k} must be a 1-d array of integer ids; got "
                            f"{short_repr(s)} ({a.ndim}-d, dtype {a.dtype}).")
        out.append(a)
    return out
