"""Word features of the window tagger, one string (or class) per token: Collobert et al.'s (2011) normalised word
(lowercase, digits -> 0) and capitalisation class, suffixes and prefixes, the word's shape, the characters the
character feature spells.
"""
import numbers

# Capitalisation feature values; CAPS_PAD is the padding symbol, N_CAPS the size of the feature's lookup table.
CAPS_LOWER, CAPS_FIRST, CAPS_ALL, CAPS_HAS, CAPS_NONE, CAPS_PAD = range(6)
N_CAPS = 6

_DIGITS = str.maketrans("0123456789", "0000000000")


def normalize_word(word):
    """Lowercase, every ASCII digit -> "0" (so "1996-08-22" -> "0000-00-00")."""
    try:
        return word.lower().translate(_DIGITS)
    except AttributeError:          # (None, a number: "'NoneType' object has no attribute 'lower'")
        raise TypeError(f"normalize_word: 'word' must be a str; got {type(word).__name__} {word!r}.") from None


def caps_feature(word):
    """Capitalisation class: CAPS_NONE (no letters), CAPS_LOWER, CAPS_ALL, CAPS_FIRST (only the first letter
    character is upper case, e.g. "Paris"), else CAPS_HAS (e.g. "McDonald", "iPod")."""
    if word.islower():
        return CAPS_LOWER
    if word.isupper():
        return CAPS_ALL
    if not any(c.isalpha() for c in word):
        return CAPS_NONE
    if word[0].isupper() and not any(c.isupper() for c in word[1:]):
        return CAPS_FIRST
    return CAPS_HAS


def normalize(word, lowercase=True):
    """The word feature: Collobert et al.'s lowercased word with digits -> "0" (normalize_word), or with
    lowercase=False only the digits replaced (case then also reaches the word vectors, besides the caps feature)."""
    return normalize_word(word) if lowercase else word.translate(_DIGITS)


def word_suffix(word, n):
    """The last n >= 1 letters of the normalised word (the whole word when shorter)."""
    if not n >= 1:                  # ([-n:] is the whole word for 0, and drops the first letters for n < 0)
        raise ValueError(f"word_suffix: 'n' must be >= 1; got {n!r}.")
    return normalize_word(word)[-n:]


def word_prefix(word, n):
    """The first n >= 1 letters of the normalised word (the whole word when shorter)."""
    if not n >= 1:                  # ([:n] is "" for 0, and drops the last letters for n < 0)
        raise ValueError(f"word_prefix: 'n' must be >= 1; got {n!r}.")
    return normalize_word(word)[:n]


def affix_lengths(value, name, where):
    """A suffix_len / prefix_len value (an int, 0 = none, or a sequence of ints >= 1) as a tuple of lengths."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{where}: '{name}' must be >= 0; got {value!r}.")
        return (int(value),) if value else ()
    try:
        lengths = tuple(value)
    except TypeError:
        lengths = None
    if lengths is None or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
                                  for n in lengths) or len(set(lengths)) != len(lengths):
        raise ValueError(f"{where}: '{name}' must be an int >= 0 or distinct ints >= 1; got {value!r}.")
    return tuple(int(n) for n in lengths)


MAX_CHARS = 20


def word_chars(word):
    """The characters the character feature reads: the word with digits -> "0", case kept; a word longer than
    MAX_CHARS keeps its first and last MAX_CHARS // 2 (its prefix and suffix carry the clues)."""
    w = normalize(word, lowercase=False)
    return w if len(w) <= MAX_CHARS else w[:MAX_CHARS // 2] + w[-(MAX_CHARS // 2):]


def word_shape(word):
    """The word's shape: upper-case letters -> "X", lower-case -> "x", digits -> "d", other characters kept, runs of
    one class collapsed ("age-defying" -> "x-x", "10-round" -> "d-x", "T.O'Gorman" -> "X.X'Xx", "1,874" -> "d,d")."""
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c or c not in "Xxd":
            out.append(c)
    return "".join(out)
