"""Chunk tag encodings: IOB1 (CoNLL-2003 as distributed), IOB2 (CoNLL-2000), IOBES; detection of a column's
encoding, chunk extraction and conversion.

A tag is "O" or "<prefix>-<TYPE>" (the type is everything after the first hyphen, as in conlleval).
- iob1:  I-X inside a chunk; B-X only at the start of a chunk that directly follows a chunk of the same type.
- iob2:  B-X at every chunk start, I-X inside.
- iobes: S-X single-token chunk; B-X, I-X..., E-X longer ones.
Chunks are (type, start, end) with `end` exclusive.  Reading is lenient in the way conlleval is: "I-X" after "O"
or after another type starts a chunk, a type change ends one; for iobes an unmatched "I-X"/"E-X" starts a new chunk.
"""

import functools
import itertools

from fastnn._validation import check_sentences

SCHEMES = ("iob1", "iob2", "iobes")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "iobes": "BIES"}


def split_tag(tag):
    """("O", "") for "O"; ("B", "PER") for "B-PER"; the type is everything after the first hyphen (conlleval)."""
    prefix, _, typ = tag.partition("-")
    return prefix, typ


def end_of_chunk(prev_tag, tag, prev_type, type_):
    """conlleval's rule: did a chunk end between the previous and the current token?  (tags are bare prefixes)"""
    if prev_tag in ("B", "I") and tag in ("B", "O"):
        return True
    if prev_tag == "E" and tag in ("E", "I", "O"):
        return True
    if prev_tag not in ("O", ".") and prev_type != type_:
        return True
    return prev_tag in ("[", "]")                      # bracket representations: chunks of length one


def start_of_chunk(prev_tag, tag, prev_type, type_):
    """conlleval's rule: did a chunk start at the current token?  (tags are bare prefixes)"""
    if tag == "B" and prev_tag in ("B", "I", "O"):
        return True
    if tag == "I" and prev_tag in ("O", "E"):
        return True
    if tag == "E" and prev_tag in ("E", "O"):
        return True
    if tag not in ("O", ".") and prev_type != type_:
        return True
    return tag in ("[", "]")


def _check_scheme(scheme, where):
    if scheme not in SCHEMES:
        raise ValueError(f"{where}: 'scheme' must be one of {SCHEMES}; got {scheme!r}.")


def _parse(tags, scheme, where):
    """[(prefix, type)] with every tag checked against the scheme."""
    allowed = _PREFIXES[scheme]
    if isinstance(tags, (str, bytes)):      # (its letters were read as the tags: chunks("O") gave [], silently)
        raise TypeError(f"{where}: 'tags' must be a list of one sentence's tags; got the string {tags!r}. Pass "
                        f"[{tags!r}], or tags.split() for tags separated by spaces.")
    out = []
    for i, t in enumerate(tags):
        if not isinstance(t, str):
            raise TypeError(f"{where}: tags must be strings; got {type(t).__name__} {t!r} at position {i}.")
        p, typ = split_tag(t)
        if t != "O" and (len(p) != 1 or p not in allowed or not typ):
            raise ValueError(f"{where}: tag at position {i} must be 'O' or one of "
                             f"{', '.join(c + '-TYPE' for c in allowed)} for scheme {scheme!r}; got {t!r}.")
        out.append((p, typ))
    return out


def chunks(tags, scheme="iob2"):
    """The chunks of one sentence's tag sequence, as a list of (type, start, end) with `end` exclusive."""
    where = "chunks"
    _check_scheme(scheme, where)
    parsed = _parse(tags, scheme, where)
    out = []
    if scheme == "iobes":
        start, cur = None, None
        for i, (p, typ) in enumerate(parsed):
            if start is not None and (p in "OBS" or typ != cur):
                out.append((cur, start, i))
                start = None
            if p == "O":
                continue
            if start is None:
                start, cur = i, typ
            if p in "SE":
                out.append((cur, start, i + 1))
                start = None
        if start is not None:
            out.append((cur, start, len(parsed)))
        return out
    # iob1 and iob2 are read with conlleval's start/end rules, which accept both
    start, prev, prev_type = None, "O", ""
    for i, (p, typ) in enumerate(parsed):
        if start is not None and end_of_chunk(prev, p, prev_type, typ):
            out.append((prev_type, start, i))
            start = None
        if start_of_chunk(prev, p, prev_type, typ):
            start = i
        prev, prev_type = p, typ
    if start is not None:
        out.append((prev_type, start, len(parsed)))
    return out


def from_chunks(chunk_list, length, scheme="iob2"):
    """Tags of a sentence of `length` tokens holding the (type, start, end) chunks (sorted, non-overlapping)."""
    where = "from_chunks"
    _check_scheme(scheme, where)
    tags = ["O"] * length
    prev_end, prev_type = -1, None
    for typ, s, e in sorted(chunk_list, key=lambda c: c[1]):
        if not (0 <= s < e <= length) or s < prev_end:
            raise ValueError(f"{where}: chunks must be non-overlapping with 0 <= start < end <= {length}; "
                             f"got ({typ!r}, {s}, {e}).")
        if scheme == "iobes" and e - s == 1:
            tags[s] = "S-" + typ
        else:
            for k in range(s, e):
                tags[k] = "I-" + typ
            if scheme == "iob2" or scheme == "iobes" or (s == prev_end and typ == prev_type):
                tags[s] = "B-" + typ
            if scheme == "iobes":
                tags[e - 1] = "E-" + typ
        prev_end, prev_type = e, typ
    return tags


def convert(tags, src, dst):
    """Re-encode one sentence's tags from scheme `src` to scheme `dst` (ill-formed input is read leniently)."""
    return from_chunks(chunks(tags, src), len(tags), dst)


def well_formed(tags, scheme):
    """Which tag bigrams a well-formed sequence of `scheme` can hold: (follows, first, last), lists of booleans:
    follows[i][j] (may tags[j] come right after tags[i]?), first[i] / last[i] (may a sentence start / end with
    tags[i]?).  A sequence is well-formed when from_chunks could have written it: e.g. in iobes an I-X or E-X only
    after B-X or I-X, and B-X / I-X never last; in iob2 an I-X only after B-X or I-X; in iob1 a B-X only right after
    a chunk of type X.  Decoding uses it to keep chunk predictions well-formed.

    >>> follows, first, last = well_formed(["O", "B-NP", "I-NP"], "iob2")
    >>> follows[0], first, last
    ([True, True, False], [True, True, False], [True, True, True])
    """
    _check_scheme(scheme, "well_formed")
    parsed = _parse(tags, scheme, "well_formed")

    def may_follow(prev, cur):
        (p, x), (q, y) = prev, cur
        inside = p in "BI" if scheme == "iobes" else p in "BI" and x == y     # prev leaves a chunk of type x open
        if scheme == "iobes" and inside:
            return q in "IE" and y == x
        if q in ("I", "E") and scheme != "iob1":
            return inside and (q == "I" or scheme == "iobes")
        if q == "B" and scheme == "iob1":
            return inside
        return True

    follows = [[may_follow(a, b) for b in parsed] for a in parsed]
    first = [p in ("O", "I") if scheme == "iob1" else p in "OBS" for p, _ in parsed]
    last = [p in "OES" if scheme == "iobes" else True for p, _ in parsed]
    return follows, first, last


def is_chunk_tag(tag):
    """Is `tag` "O" or "<B|I|E|S>-<TYPE>" (a chunk tag of some scheme), not e.g. a POS tag?"""
    p, typ = split_tag(tag)
    return tag == "O" or (len(p) == 1 and p in "BIES" and bool(typ))


def detect_scheme(tag_sentences, where="detect_scheme", *, column=None):
    """The chunk encoding of a column: "iob1", "iob2", "iobes", or None when the tags are not chunk tags (POS).

    S-/E- prefixes mean IOBES; an I-X that starts a chunk (after O or another type) only occurs in IOB1; otherwise
    IOB2 (which B-X at every chunk start also satisfies).

    A column that is chunk tags written another way is a ValueError saying how, not plain tags (which would train and
    score it by token accuracy, silently): "0" (the digit) for "O", lower-case prefixes ("b-per"), BILOU's U-/L-.
    `column` (0-based, optional) is the file column the tags came from, for the fix the message shows.
    """
    # (a flat list of tags was read as sentences of one-letter tags: not chunk tags, None, silently)
    tag_sentences = check_sentences(tag_sentences, where, item="tag")
    seen_iob1 = seen_b = seen_iobes = prefixed = False
    odd = None                                   # (tag, sentence, token) of the first near-chunk tag
    for k, s in enumerate(tag_sentences):
        prev, prev_typ = "O", ""
        for i, t in enumerate(s):
            if not is_chunk_tag(t):
                if not _near_chunk_tag(t):
                    return None
                odd = odd or (t, k, i)
                prefixed = prefixed or t not in ("0", "o")
                continue
            p, typ = split_tag(t)
            prefixed = prefixed or t != "O"
            seen_iobes = seen_iobes or p in "SE"
            if p == "I" and (prev == "O" or prev_typ != typ):
                seen_iob1 = True
            seen_b = seen_b or p == "B"
            prev, prev_typ = p, typ
    if odd is not None:
        if not prefixed:                         # a column of 0s (and Os): no chunk tag to be sure of
            return None
        _chunk_tags_written_otherwise(*odd, where, column)
    if seen_iobes:
        return "iobes"
    if seen_iob1:
        return "iob1"
    return "iob2" if seen_b else "iob1"


def _near_chunk_tag(tag):
    """A chunk tag written in a way fastnn does not read: "0" for "O", a lower-case prefix, BILOU's U-/L-."""
    p, typ = split_tag(tag)
    return tag in ("0", "o") or (len(p) == 1 and p.upper() in "BIESLU" and bool(typ))


def _chunk_tags_written_otherwise(tag, k, i, where, column):
    p, _ = split_tag(tag)
    # awk numbers fields from 1; without the column, the last one (where CoNLL files keep the task's tags)
    field = "$NF" if column is None else f"${column + 1}"
    which = "last column" if column is None else f"column {column} = awk's {field}"
    at = f"{where}: the tags look like chunk tags but sentence {k}, token {i} has {tag!r}"
    if tag == "0":
        raise ValueError(f"{at}: outside a chunk must be 'O' (the letter), not '0' (the digit). Replace the zeros in "
                         f"that column, e.g. awk '{field}==\"0\"{{{field}=\"O\"}}1' ({which}).")
    if p.upper() in "LU" and p.isupper():
        raise ValueError(f"{at}: BILOU tags (U-, L-) must be IOBES (S-, E-: the same chunks) to be read. Rename the "
                         f"prefixes, e.g. sed -E 's/ U-/ S-/; s/ L-/ E-/'.")
    raise ValueError(f"{at}: chunk tags must be 'O' or an upper-case prefix (B-, I-, E-, S-) and a type, as in "
                     f"'B-PER'; got a lower-case one. Upper-case the prefixes (types may keep their case).")


def recode(tag_sentences, src, dst):
    """Sentences of tags re-encoded from scheme `src` to `dst` (new lists); unchanged copies when `src` is None (not
    chunk tags) or equals `dst`.  Tags with prefixes `src` does not have (S-/E- for an IOB scheme: an IOBES test file
    scored by a model of IOB1 data) are read in their own scheme (detect_scheme), not refused.  (reencode's first
    item.)"""
    tag_sentences = check_sentences(tag_sentences, "recode", item="tag")
    if src is None or src == dst:
        return [list(s) for s in tag_sentences]
    return reencode(tag_sentences, dst, src)[0]


def producible(tags, src, dst):
    """The tags of scheme `dst` that some sentence of `tags` (a model's tag set, of scheme `src`) holds once
    re-encoded into `dst` (read leniently, as reencode reads predictions): what a model trained in `src` can be
    scored right on in a file written in `dst`.  A frozenset; `tags` itself when no conversion happens (a scheme is
    None, or src == dst).

    >>> sorted(producible(["B-NP", "E-NP", "S-VP", "O"], "iobes", "iob2"))     # VP chunks of one token only
    ['B-NP', 'B-VP', 'I-NP', 'O']
    >>> sorted(producible(["I-MISC", "O"], "iob1", "iob2"))
    ['B-MISC', 'I-MISC', 'O']
    """
    tags = frozenset(tags)
    if src is None or dst is None or src == dst:
        return tags
    return _producible(tags, src, dst)


@functools.lru_cache(maxsize=64)
def _producible(tags, src, dst):
    # A tag's prefix depends only on its chunk's length and on whether a chunk of its type ends right before it, both
    # shown by sequences of at most four tags of one type (and O): a chunk of three tokens, or two chunks side by side.
    by_type = {}
    for t in tags:
        if t != "O" and is_chunk_tag(t):
            by_type.setdefault(split_tag(t)[1], []).append(t)
    out = set(tags & {"O"})
    for of_type in by_type.values():
        alphabet = sorted(of_type) + sorted(tags & {"O"})
        for n in range(1, 5):
            for seq in itertools.product(alphabet, repeat=n):
                out.update(convert(list(seq), src, dst))
    return frozenset(out)


def scheme_of(tag_sentences):
    """detect_scheme's answer, or None also for tags written in a way the schemes do not read ("0" for "O", "b-per",
    BILOU), where detect_scheme raises: the encoding to re-encode into, when there is one (see reencode)."""
    try:
        return detect_scheme(tag_sentences)
    except ValueError:
        return None


def reencode(tag_sentences, dst, src="detect", *, ill_formed="convert"):
    """(sentences, encoding): chunk-tag sentences re-encoded into scheme `dst` (new lists), and the encoding they are
    then in; the one place where tags are put into another chunk encoding (recode, the scoring of predictions in the
    gold's encoding, `tagger predict`'s output in its input's).

    src : their scheme; "detect" (default) finds it (detect_scheme).  Tags with prefixes `src` does not have (S-/E-
        for an IOB scheme) are read in the scheme they show.
    dst : the scheme wanted, e.g. scheme_of(gold); None: none to go to.
    ill_formed : "convert" reads sentences that are ill-formed in their own scheme leniently (conlleval's rules) and
        converts them; "keep" leaves all the sentences as they are then (encoding None): scoring compares such
        predictions as they are.

    The sentences come back unchanged, with encoding None, when `dst` is None or they are not chunk tags of a scheme
    (POS tags; "0" for "O"), and with encoding `dst` when they are already in it.

    >>> reencode([["I-PER", "I-PER", "O", "I-LOC"]], "iob2")          # IOB1 (detected) to IOB2
    ([['B-PER', 'I-PER', 'O', 'B-LOC']], 'iob2')
    >>> reencode([["B-NP", "I-NP", "B-NP"]], "iobes", "iob2")
    ([['B-NP', 'E-NP', 'S-NP']], 'iobes')
    >>> reencode([["O", "E-NP"]], "iob2", ill_formed="keep")          # an E- without its B-: left as it is
    ([['O', 'E-NP']], None)
    >>> reencode([["NN", "VBZ"]], "iob2")
    ([['NN', 'VBZ']], None)
    """
    if ill_formed not in ("convert", "keep"):
        raise ValueError(f"reencode: 'ill_formed' must be 'convert' or 'keep'; got {ill_formed!r}.")
    tag_sentences = [list(s) for s in check_sentences(tag_sentences, "reencode", item="tag")]
    if src == "detect":
        src = scheme_of(tag_sentences)
    else:
        _check_scheme(src, "reencode")
        allowed = _PREFIXES[src]
        if any(split_tag(t)[0] not in allowed for s in tag_sentences for t in s if isinstance(t, str) and t != "O"):
            src = detect_scheme(tag_sentences, "reencode") or src   # (not chunk tags: convert names the first)
    if dst is None or src is None:
        return tag_sentences, None
    _check_scheme(dst, "reencode")
    if src == dst:
        return tag_sentences, dst
    if ill_formed == "keep" and any(convert(s, src, src) != s for s in tag_sentences):
        return tag_sentences, None
    return [convert(s, src, dst) for s in tag_sentences], dst
