"""The Brown corpus split for language modelling, rebuilt byte for byte from NLTK's distribution.

Algorithm (../shared/data/README.md): take the 500 files ca01..cr09 of NLTK's `corpora/brown` in sorted name order;
every non-blank line is a sentence of whitespace-separated `word/tag` items, of which the text before the last "/"
is kept (an item without "/" is kept whole); walking the sentences in order with the running word count n before
each sentence, n < 800,000 goes to train, 800,000 <= n < 1,000,000 to valid, the rest to test.
"""
import hashlib
import os
import re
import zipfile

from fastnn._validation import check_path
from fastnn.data.text import default_data_dir, read_sentences, write_sentences

SPLITS = ("train", "valid", "test")
THRESHOLDS = (800_000, 1_000_000)
N_FILES = 500
# Shipped files (../shared/data/README.md): sentences, words, sha256 prefix.
EXPECTED = {"train": (35_523, 800_001, "112988ffb24f"),
            "valid": (11_690, 200_021, "b0087632465d"),
            "test": (10_127, 161_170, "a3b638f40c8f")}
_NAME = re.compile(r"^c[a-r]\d\d$")


def _corpus_files(path):
    """[(name, bytes)] of the corpus files (ca01 ...) in sorted name order, from a folder or a zip file."""
    where = "brown"
    path = check_path(path, where)
    found = {}
    if os.path.isdir(path):
        for root, _, names in os.walk(path):
            for n in names:
                if _NAME.match(n):
                    found.setdefault(n, []).append(os.path.join(root, n))
        read = lambda p: open(p, "rb").read()  # noqa: E731
    elif os.path.isfile(path):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{where}: {path} must be NLTK's brown folder or zip file; got a file that is not a zip.")
        zf = zipfile.ZipFile(path)
        for info in zf.infolist():
            n = info.filename.rstrip("/").rsplit("/", 1)[-1]
            if not info.is_dir() and _NAME.match(n):
                found.setdefault(n, []).append(info.filename)
        read = zf.read
    else:
        raise FileNotFoundError(f"{where}: no such file or folder: {path}")
    dup = sorted(n for n, ps in found.items() if len(ps) > 1)
    if dup:
        raise ValueError(f"{where}: {path} must hold one copy of each corpus file; got {dup[0]} at "
                         f"{found[dup[0]]}.")
    return [(n, read(found[n][0])) for n in sorted(found)]


def brown(path_or_zip, out_dir=None, *, thresholds=THRESHOLDS, n_files=N_FILES):
    """Rebuild the train/valid/test split from NLTK's Brown corpus (a `brown` folder or `brown.zip`).

    Parameters
    ----------
    path_or_zip : folder containing the files ca01..cr09 (at any depth), or a zip holding them.
    out_dir : if given, the splits are also written there with `write_splits`.
    thresholds : running word counts at which valid and test begin.
    n_files : number of corpus files required (500 for the real corpus; None accepts any number >= 1).

    Returns
    -------
    dict "train"/"valid"/"test" -> list of sentences (lists of words).
    """
    where = "brown"
    files = _corpus_files(path_or_zip)
    if not files or (n_files is not None and len(files) != n_files):
        raise ValueError(f"{where}: {os.fspath(path_or_zip)} must hold {n_files or 'some'} corpus files named like "
                         f"ca01..cr09; got {len(files)}. Pass the folder or zip of NLTK's corpora/brown.")
    splits = {s: [] for s in SPLITS}
    n = 0
    for name, data in files:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: {name} must be UTF-8 (ASCII) text; got byte {data[e.start]:#x} "
                             f"at offset {e.start}.") from None
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):  # as text-mode reading
            items = line.split()
            if not items:
                continue
            words = [it.rsplit("/", 1)[0] for it in items]
            split = "train" if n < thresholds[0] else "valid" if n < thresholds[1] else "test"
            splits[split].append(words)
            n += len(words)
    if out_dir is not None:
        write_splits(splits, out_dir)
    return splits


def write_splits(splits, out_dir, *, prefix="brown"):
    """Write {prefix}.{train,valid,test}.txt into `out_dir` (created if needed), one sentence per line, atomically.

    Returns {split: path}.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for s in SPLITS:
        paths[s] = os.path.join(out_dir, f"{prefix}.{s}.txt")
        write_sentences(paths[s], splits[s])
    return paths


def _find_dir(data_dir):
    for d in (data_dir, os.path.join(data_dir, "brown")):
        if os.path.isfile(os.path.join(d, "brown.train.txt")):
            return d
    raise FileNotFoundError(f"brown_splits: no brown.train.txt in {data_dir} or {os.path.join(data_dir, 'brown')}. "
                            f"Pass the folder that holds brown.{{train,valid,test}}.txt.")


def brown_splits(data_dir=None, *, lower=False):
    """Load brown.{train,valid,test}.txt from `data_dir` (or its brown/ subfolder; default: the shared data folder).

    Returns dict "train"/"valid"/"test" -> list of sentences.
    """
    d = _find_dir(default_data_dir() if data_dir is None else os.fspath(data_dir))
    return {s: read_sentences(os.path.join(d, f"brown.{s}.txt"), lower=lower) for s in SPLITS}


def sha256_file(path):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
