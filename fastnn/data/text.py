"""Plain text corpora: one sentence per line, tokens separated by whitespace."""
import gzip
import io
import numbers
import os
import re
import sys
import zlib

import numpy as np

from fastnn._validation import check_bool, check_ordered, check_path, check_sentences, is_string_array, short_repr
from fastnn.data.vocab import Vocab
from fastnn.io import atomic_write


# Only ASCII whitespace separates tokens and columns: str.split() also splits at a no-break space (U+00A0, which
# keeps "10\u00a0000" or "New\u00a0York" one token), U+2009, U+3000 ... and would add a token or a column.
_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v\x1c-\x1f]+")


def split_fields(line):
    """The tokens (columns) of a line: the parts between ASCII whitespace, any other character kept."""
    if line.isascii():
        return line.split()                              # the same, faster
    return [f for f in _ASCII_SPACE.split(line) if f]


def check_fields(fields, where, at):
    """Before writing: every field (token, tag) reads back as one (split_fields): a str, not empty, without ASCII
    whitespace (a space, tab or newline in it would make two tokens or columns, or a line break).  `at` names the
    place, e.g. "sentence 3"."""
    for i, x in enumerate(fields):
        if not isinstance(x, str) or not x or split_fields(x) != [x]:
            what = f"a {type(x).__name__}" if not isinstance(x, str) else ("empty" if not x else "has whitespace")
            raise ValueError(f"{where}: {at}, field {i} must be a string without spaces, tabs or line breaks, which "
                             f"would not read back as one; got {x!r} ({what}). Replace them, e.g. with '_'.")


# Text is read as UTF-8; a byte-order mark (some Windows editors write one) is dropped, not read into the first word.
READ_ENCODING = "utf-8-sig"


def open_text(path, where):
    """Open `path` for reading as UTF-8 with a FileNotFoundError that names it; "-" reads standard input.  A gzip
    file (found by its magic bytes, whatever its name) is decompressed as it is read.  A pipe such as bash's
    <(zcat corpus.gz), or stdin, is read once, from the start: the magic bytes are peeked at, never read twice.  A
    directory is an IsADirectoryError."""
    path = check_path(path, where)
    stdin = path == "-"
    if stdin:
        binary, path = sys.stdin.buffer, "stdin"
    else:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{where}: {path} is a directory; a file is needed")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{where}: no such file: {path}")
        binary = open(path, "rb")
    if not hasattr(binary, "peek"):                     # (a stdin replaced by a BytesIO, in tests)
        binary = io.BufferedReader(binary)
    reopen = None if stdin else open
    if binary.peek(2)[:2] == b"\x1f\x8b":
        binary, reopen = io.BufferedReader(_Gunzip(binary, f"{where}: {path}")), reopen and gzip.open
    wide = _utf16_or_32(binary.peek(512)[:512])
    if wide:
        binary.close()
        raise ValueError(f"{where}: {path} must be UTF-8 text; got {wide} text. Convert it first: "
                         f"{iconv_command(wide, path)}")
    return TextReader(binary, where, path, reopen)


def _utf16_or_32(head):
    """"UTF-16" / "UTF-32" (with a byte-order mark), "UTF-16LE" / "UTF-16BE" (without: every other byte NUL, as
    ASCII text in UTF-16 has), or None.  Read as UTF-8, BOM-less UTF-16 is valid and silently gives "J\0o\0h\0n"."""
    if head.startswith((b"\xff\xfe\0\0", b"\0\0\xfe\xff")):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    even, odd = head[0::2], head[1::2]
    if len(head) >= 4 and b"\0" in head:
        if odd.count(0) >= 0.9 * len(odd) and even.count(0) == 0:
            return "UTF-16LE"
        if even.count(0) >= 0.9 * len(even) and odd.count(0) == 0:
            return "UTF-16BE"
    return None


def iconv_command(encoding, path):
    """The command line that converts `path` (a file, or "stdin") from `encoding` to UTF-8."""
    import shlex
    if path == "stdin":
        return f"iconv -f {encoding} -t UTF-8, then pipe that into fastnn"
    return f"iconv -f {encoding} -t UTF-8 {shlex.quote(path)} > {shlex.quote(path + '.utf8')}"


class TextReader(io.TextIOWrapper):
    """UTF-8 text (a byte-order mark dropped) whose undecodable bytes are a ValueError naming the file, whichever
    reader meets them (the codec's own message names neither file nor line).  `reopen(path, "rb")` reads the file
    again to find the line (None for a pipe such as stdin)."""

    def __init__(self, binary, where, path, reopen):
        super().__init__(binary, encoding=READ_ENCODING)
        self._where, self._path, self._reopen = where, path, reopen

    def _not_utf8(self, e):
        at, bad_bytes = f"{e.reason} at byte {e.start} of a chunk", e.object
        binary = b"\0" in e.object
        if self._reopen and os.path.isfile(self._path):     # name the line (decoding runs in chunks ahead of the lines)
            with self._reopen(self._path, "rb") as f:
                binary = b"\0" in f.read(4096)             # text has no NUL bytes; model files, archives do
                f.seek(0)
                for i, line in enumerate(f, 1):
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError as bad:
                        at, bad_bytes = f"{bad.reason} in line {i} (byte {line[bad.start:bad.start + 1]!r})", line
                        break
        if binary:
            fix = "It looks like a binary file (a model file, an archive?), not text."
        else:       # Windows' CP1252 puts its quotes and dashes at 0x80-0x9f, which ISO-8859-1 leaves to controls
            enc = "CP1252" if any(0x80 <= b <= 0x9F for b in bad_bytes) else "ISO-8859-1"
            fix = f"If it is {enc} text, convert it first: {iconv_command(enc, self._path)}"
        return ValueError(f"{self._where}: {self._path} must be UTF-8 text; got {at}. {fix}")

    def __next__(self):
        try:
            return super().__next__()
        except UnicodeDecodeError as e:
            raise self._not_utf8(e) from None

    def readline(self, size=-1):
        try:
            return super().readline(size)
        except UnicodeDecodeError as e:
            raise self._not_utf8(e) from None

    def read(self, size=-1):
        try:
            return super().read(size)
        except UnicodeDecodeError as e:
            raise self._not_utf8(e) from None


class _Gunzip(io.RawIOBase):
    """The decompressed bytes of the gzip stream `binary` (closed with it), a damaged or truncated one being a
    ValueError that names it (gzip's own EOFError / zlib.error would surface as a traceback from whichever reader met
    it)."""

    def __init__(self, binary, name):
        super().__init__()
        self._binary, self._name = binary, name
        self._gz = gzip.GzipFile(fileobj=binary, mode="rb")

    def readable(self):
        return True

    def readinto(self, buf):
        try:
            return self._gz.readinto(buf)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{self._name} is a damaged or truncated gzip file ({e}).") from None

    def close(self):
        self._gz.close()
        self._binary.close()
        super().close()


def read_lines(path, where, lower=False):
    """The sentences of a text file, none for an empty one: one per non-blank line, split on whitespace (optionally
    lowercased).  FileNotFoundError naming a missing path, ValueError for text that is not UTF-8."""
    sentences = []
    with open_text(path, where) as f:
        for line in f:
            toks = split_fields(line.lower() if lower else line)
            if toks:
                sentences.append(toks)
    return sentences


def read_sentences(path, *, lower=False):
    """Sentences of a text file: one per non-blank line, split on whitespace (optionally lowercased).

    Raises FileNotFoundError naming the path when it is missing, and ValueError when it holds no token or is not UTF-8.
    """
    where = "read_sentences"
    sentences = read_lines(path, where, check_bool(lower, "lower", where))
    if not sentences:
        raise ValueError(f"{where}: {os.fspath(path)} is empty; it must contain at least one token.")
    return sentences


def read_sentences_many(paths, lower=False):
    """The sentences of several files, concatenated in the given order."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        out.extend(read_sentences(p, lower=lower))
    return out


def lm_stream(sentences, vocab):
    """int64 ids of all sentences concatenated, each followed by </s> (an empty one is just </s>); unknown words become
    <unk>.

    This is the token stream a language model predicts: every id, </s> included, is one predicted token.
    """
    if not isinstance(vocab, Vocab):                    # (None was a bare AttributeError on .eos_id)
        raise TypeError(f"lm_stream: 'vocab' must be a fastnn.data.Vocab (e.g. Vocab.build(train_sentences)); got "
                        f"{short_repr(vocab)}.")
    if vocab.eos_id is None:
        raise ValueError(f"lm_stream: 'vocab' must contain {Vocab.EOS!r}; got a vocabulary without it. "
                         f"Build it with specials=({Vocab.UNK!r}, {Vocab.EOS!r}).")
    eos = Vocab.EOS
    flat = []
    for s in check_sentences(sentences, "lm_stream"):
        flat.extend(s)
        flat.append(eos)
    return vocab.encode(flat)


def as_sequence(data, name="data", where="as_sequence"):
    """`data` itself when it is a string, list, tuple or array; else (a generator, a map) the list of its items, so
    that it can be looked at and then read (a scoring call that peeks at a generator to tell text from ids would
    otherwise read what remains of it).  A set is a TypeError (check_ordered) naming `name` and `where`."""
    if isinstance(data, (str, bytes, list, tuple, np.ndarray)) or not hasattr(data, "__iter__"):
        return data
    return list(check_ordered(data, name, where))


def text_stream(data, words, where):
    """The stream of `data` when it is text, else None (ids, which the caller checks).

    Text is tokenised sentences (a list of lists of token strings, e.g. [["the", "cat", "sat"]]), encoded with
    `words` (a language model's vocabulary) as lm_stream does: unknown words become <unk>, every sentence ends with
    </s> (an empty one is just </s>).  A string or a flat list of strings is a TypeError (one sentence or many one-word ones?), as is text for a
    model without words (None: built by hand, not by a recipe).
    """
    if is_string_array(data) and data.ndim == 2:
        data = data.tolist()                            # equal-length sentences as rows of strings
    if (isinstance(data, (str, bytes)) or is_string_array(data)
            or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str))):
        raise TypeError(f"{where}: text must be tokenised sentences, a list of lists of tokens ([tokens] for one "
                        f"sentence, [line.split() for line in lines] for lines); got {short_repr(data)}.")
    if not isinstance(data, (list, tuple)):
        return None
    data = [s.tolist() if is_string_array(s) and s.ndim == 1 else s for s in data]   # sentences as string arrays
    first = next((s for s in data if isinstance(s, (list, tuple)) and len(s)), None)
    # (only empty sentences: text or ids alike, each is its </s>, as SRILM and KenLM score an empty line; the ids'
    # reader, id_sentences_stream, gives that stream without needing words)
    if first is None or not isinstance(first[0], str):
        return None
    if words is None:
        # (true at fit time too: the vocabulary is that of the training data, whether or not it is trained yet)
        raise TypeError(f"{where}: the model has no vocabulary ('words' is None), so it cannot read text; encode it "
                        f"with fastnn.data.lm_stream(sentences, vocab), vocab being the Vocab of the model's training "
                        f"data, or make the model with words=vocab.words.")
    return lm_stream(data, Vocab(words))


def word_ids(tokens, words, what, where):
    """The ids of `tokens` (strings) in a model's vocabulary `words`, unknown ones as <unk> (as text_stream reads
    text), for a model's single queries (an NPLM's contexts, an n-gram's history); a model without words (None) is a
    TypeError saying `what` must then be ids."""
    if words is None:
        raise TypeError(f"{where}: the model has no vocabulary ('words' is None), so {what} must be word ids; got "
                        f"words. Encode them with the Vocab of the model's training data.")
    return np.asarray(Vocab(words).encode(list(tokens)), dtype=np.int64)


def history_ids(history, words, where):
    """A language model's query `history` (the words or ids before a predicted word) with words made ids in `words`
    (word_ids; unknown ones <unk>): the n-gram's and the neural LMs' prob_vector read it so.  A string is a TypeError
    (its letters would read as words)."""
    if isinstance(history, str):
        raise TypeError(f"{where}: 'history' must be a list of the words (or ids) before the predicted word; got "
                        f"the string {history!r}: pass {history!r}.split().")
    if isinstance(history, (list, tuple)) and history and all(isinstance(w, str) for w in history):
        return word_ids(history, words, "'history'", where)
    return history


def id_sentences_stream(data, eos_id, name, where):
    """The stream of `data` when it is a list of sentences of word ids ([[2, 3], [4]]), each without `eos_id`, which
    is appended to each as lm_stream does; else None (a stream or text, which the caller reads).  An empty list is an
    empty stream.  The ids' range is the caller's to check (on the stream)."""
    if not isinstance(data, (list, tuple)):
        return None
    if not data:
        return np.zeros(0, dtype=np.int64)
    if isinstance(data[0], (numbers.Integral, str, bytes)):     # a flat stream as a list (text: text_stream's)
        return None
    parts = []
    for i, sent in enumerate(data):
        a = np.asarray(sent)
        if a.size == 0:
            a = np.zeros(0, dtype=np.int64)
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise TypeError(f"{where}: sentence {name}[{i}] must be a sequence of integer word ids (a list of sentences "
                            f"of ids; else one 1-d stream of ids, or tokenised text); got {short_repr(sent)}.")
        if np.any(a == eos_id):
            raise ValueError(f"{where}: sentence {name}[{i}] must not contain eos_id={eos_id} (it is appended); "
                             f"got it at position {int(np.flatnonzero(a == eos_id)[0])}. Pass sentences without "
                             f"</s>, or one flat stream.")
        parts.append(a.astype(np.int64, copy=False))
        parts.append(np.array([eos_id], dtype=np.int64))
    return np.concatenate(parts)


def count_oov(sentences, vocab):
    """Number of tokens in `sentences` that are not in `vocab` (the ones that become <unk>)."""
    return sum(1 for s in check_sentences(sentences, "count_oov") for t in s if t not in vocab)


def write_sentences(path, sentences):
    """Write one sentence per line, tokens joined by single spaces, atomically.  A token that would not read back as
    one (empty, or with whitespace in it), or an empty sentence (an empty line, which readers skip), is a ValueError
    before anything is written."""
    lines = []
    for k, s in enumerate(sentences):
        if isinstance(s, str) or not s:
            raise ValueError(f"write_sentences: sentence {k} must be a non-empty list of tokens (an empty line would "
                             f"not read back); got {short_repr(s)}.")
        check_fields(s, "write_sentences", f"sentence {k}")
        lines.append(" ".join(s) + "\n")
    atomic_write_text(path, "".join(lines))


def default_data_dir():
    """The shared data folder: $FASTNN_DATA if set, else ../shared/data next to the repository holding fastnn."""
    env = os.environ.get("FASTNN_DATA")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.normpath(os.path.join(repo, "..", "shared", "data"))


def atomic_write_text(path, text):
    """Write `text` (UTF-8) to `path` atomically (fastnn.io.atomic_write)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
