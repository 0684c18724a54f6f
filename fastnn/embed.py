"""Word vectors pre-trained without labels, for the window tagger (Collobert et al. 2011, section 4).

Three objectives on plain text, all trained with fastnn.train.Trainer (progress bar, checkpoints, resume):

- "ranking": Collobert & Weston's window-ranking language model (fastnn.models.ranking): a true window must
  outscore the same window with its centre word replaced, by a margin of 1.  Its word vectors are the product.
- "nplm": Bengio et al.'s NPLM (fastnn.models.nplm); the product is its table of word features C.
- "rnn": the Elman RNN LM (fastnn.models.rnnlm, class-factorized output); the product is its input vectors.

Every token is normalised exactly as the tagger's word feature (fastnn.data.conll.normalize_word: lowercase, digits
-> 0), so every vector's word is spelled the way the tagger looks it up.  The vocabulary is every normalised type
seen at least `min_count` times in the training text, plus the specials of the model (<pad> and <unk> for the
ranking model, <unk> and </s> for the language models); vectors are exported for every vocabulary word.

    sents = read_corpus(["brown.txt", "eng.train"])            # plain text or CoNLL columns (word column)
    res = pretrain("ranking", sents, dim=50, max_minutes=15)
    write_vectors("vectors.txt", res.words, res.vectors)
    nearest_neighbors(res.words, res.vectors, ["france", "monday"], k=5)
"""
import os
import time
from typing import NamedTuple

import numpy as np

from fastnn.data.conll import DOCSTART, normalize_word
from fastnn.data.text import _open_text, _read_lines
from fastnn.data.vocab import Vocab

__all__ = ["OBJECTIVES", "TEXT_FORMATS", "DEFAULTS", "detect_format", "read_corpus", "normalize_sentences",
           "split_valid", "pretrain", "Pretrained", "model_vectors", "scale_vectors", "nearest_neighbors",
           "check_resume"]

OBJECTIVES = ("ranking", "nplm", "rnn")
TEXT_FORMATS = ("auto", "text", "conll")

# Per-objective defaults (None: not used).  ranking: Collobert & Weston's network with window 11 and 100 hidden units,
# cut to a budget of minutes on ~1.5M words; nplm / rnn: the `fastnn lm` defaults measured on Brown.
DEFAULTS = {
    "ranking": dict(dim=50, window=11, hidden=100, min_count=2, epochs=50, lr=0.05, batch_size=128,
                    optimizer="adagrad", negatives="uniform", init_scale=0.1, examples_per_epoch=None,
                    max_minutes=15.0, order=None, classes=None, bptt_block=None),
    "nplm": dict(dim=50, window=None, hidden=100, min_count=2, epochs=3, lr=0.04, batch_size=128,
                 optimizer="adagrad", negatives=None, init_scale=0.1, examples_per_epoch=None, max_minutes=15.0,
                 order=5, classes=None, bptt_block=None),
    "rnn": dict(dim=50, window=None, hidden=100, min_count=2, epochs=30, lr=0.05, batch_size=64,
                optimizer="adagrad", negatives=None, init_scale=0.1, examples_per_epoch=None, max_minutes=15.0,
                order=None, classes=100, bptt_block=20),
}


# ---- text --------------------------------------------------------------------------------------------------------

def detect_format(path, probe=200):
    """"conll" when the file looks like CoNLL columns (a -DOCSTART- line, or the first `probe` token lines all with
    the same number >= 2 of fields and at least one blank line among them), else "text"."""
    counts, blank = set(), False
    with _open_text(path, "detect_format") as f:
        n = 0
        for line in f:
            fields = line.split()
            if not fields:
                blank = blank or n > 0
                continue
            if fields[0] == DOCSTART:
                return "conll"
            counts.add(len(fields))
            n += 1
            if n >= probe:
                break
    return "conll" if blank and len(counts) == 1 and min(counts) >= 2 else "text"


def _read_one(path, fmt):
    where = "read_corpus"
    if fmt == "conll":
        from fastnn.data.conll import read_conll
        return [[row[0] for row in s] for s in read_conll(path, columns=[0])]
    return _read_lines(path, where)


def read_corpus(paths, text_format="auto", *, report=None):
    """Sentences (lists of raw tokens) of several files, in order.

    text_format : "text" (one sentence per line, whitespace tokens), "conll" (CoNLL columns: the first column's
        words; blank lines end sentences; -DOCSTART- lines are skipped), or "auto" (detect_format per file).
    report : optional list that receives one (path, format, sentences, tokens) tuple per file.

    Raises FileNotFoundError naming a missing file, ValueError for an empty file or corpus or a malformed CoNLL line.
    """
    where = "read_corpus"
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"{where}: 'text_format' must be one of {TEXT_FORMATS}; got {text_format!r}.")
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        fmt = detect_format(p) if text_format == "auto" else text_format
        sents = _read_one(os.fspath(p), fmt)
        if not sents:
            raise ValueError(f"{where}: {os.fspath(p)} holds no token; every --text file must hold some text.")
        if report is not None:
            report.append((os.fspath(p), fmt, len(sents), sum(map(len, sents))))
        out.extend(sents)
    if not out:
        raise ValueError(f"{where}: the corpus must hold at least one token; got no files.")
    return out


def normalize_sentences(sentences):
    """Every token through normalize_word (the tagger's word feature: lowercase, digits -> 0)."""
    cache = {}
    out = []
    for s in sentences:
        ns = []
        for t in s:
            n = cache.get(t)
            if n is None:
                n = cache[t] = normalize_word(t)
            ns.append(n)
        out.append(ns)
    return out


def split_valid(sentences, fraction, seed):
    """(train, valid): a random `fraction` of the sentences (at least one when fraction > 0 and there are >= 2
    sentences) held out for validation, chosen with default_rng(seed); order is kept within each part."""
    if not 0 <= fraction < 1:
        raise ValueError(f"split_valid: 'fraction' must be in [0, 1); got {fraction!r}.")
    n = len(sentences)
    k = 0 if fraction == 0 or n < 2 else max(1, int(round(fraction * n)))
    if k == 0:
        return list(sentences), []
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng([seed, 7]).choice(n, k, replace=False)] = True
    return [s for s, h in zip(sentences, held) if not h], [s for s, h in zip(sentences, held) if h]


# ---- training ----------------------------------------------------------------------------------------------------

class Pretrained(NamedTuple):
    """The result of pretrain(): the vocabulary's words, their (V, dim) vectors, the trained model, the trainer's
    history, the training wall time in seconds (steps and validation), the training tokens, and the training
    examples (windows or predicted tokens) of one epoch."""
    words: list
    vectors: np.ndarray
    model: object
    history: list
    seconds: float
    train_tokens: int
    epoch_examples: int


def model_vectors(model):
    """(words, (V, dim) vectors) of a trained WindowRanker, NPLM or RNNLM: the ranking model's word vectors, the
    NPLM's features C, the RNN LM's input vectors."""
    from fastnn.models.nplm import NPLM
    from fastnn.models.ranking import WindowRanker
    from fastnn.models.rnnlm import RNNLM

    if isinstance(model, WindowRanker):
        table = model.embed.W
    elif isinstance(model, NPLM):
        table = model.C.W
    elif isinstance(model, RNNLM):
        table = model.emb.W
    else:
        raise TypeError(f"model_vectors: 'model' must be a WindowRanker, NPLM or RNNLM; got {type(model).__name__}.")
    if model.words is None:
        raise ValueError(f"model_vectors: the {type(model).__name__} must carry its vocabulary (words=...); got "
                         f"None.")
    return list(model.words), table.value.copy()


def scale_vectors(vectors, std):
    """The vectors multiplied by one factor so that the standard deviation of all their entries is `std` (Turian et
    al. 2010 scale embeddings this way before using them as features)."""
    v = np.asarray(vectors)
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


def pretrain(objective, sentences, *, valid_fraction=0.01, seed=0, checkpoint=None, resume=False,
             checkpoint_every=None, quiet=False, say=None, on_nonfinite="raise", **options):
    """Train word vectors with `objective` ("ranking", "nplm" or "rnn") on `sentences` (raw tokens; normalised
    here).  Options (DEFAULTS[objective] for those not given): dim, min_count, epochs, lr, batch_size, optimizer
    ("adagrad" / "sgd"), init_scale, max_minutes (None: no budget); ranking: window, hidden, negatives ("uniform" /
    "unigram"), examples_per_epoch; nplm: order, hidden; rnn: hidden, classes, bptt_block.

    valid_fraction of the sentences (random, seeded) is held out: after every epoch the trainer scores it (ranking:
    mean hinge loss on fixed corruptions; LMs: mean NLL), keeps the best epoch's parameters and stops early on a
    plateau (LMs).  Returns a Pretrained.
    """
    where = "pretrain"
    if objective not in OBJECTIVES:
        raise ValueError(f"{where}: 'objective' must be one of {OBJECTIVES}; got {objective!r}.")
    known = {k for k, v in DEFAULTS[objective].items() if v is not None}
    if objective == "ranking":
        known.add("examples_per_epoch")
    unknown = {k for k, v in options.items() if v is not None} - known
    if unknown:
        raise ValueError(f"{where}: unknown options {sorted(unknown)} for {objective!r}; the options are "
                         f"{sorted(known)}.")
    # None means "the default", except for the two options where it means "no limit"
    opt = {**DEFAULTS[objective], **{k: v for k, v in options.items()
                                     if v is not None or k in ("max_minutes", "examples_per_epoch")}}
    say = say or (lambda m: None)
    norm = normalize_sentences(sentences)
    train, valid = split_valid(norm, valid_fraction, seed)
    if not train:
        raise ValueError(f"{where}: no training sentence is left after holding out {valid_fraction} of "
                         f"{len(norm)}; give more text or a smaller valid fraction.")
    build = {"ranking": _build_ranking, "nplm": _build_nplm, "rnn": _build_rnn}[objective]
    model, data, validate, higher, extra = build(train, valid, opt, seed)
    from fastnn import optim
    from fastnn.train import Trainer
    opt_obj = optim.by_name(opt["optimizer"], model.parameters(), extra.pop("lr", opt["lr"]), "pretrain")
    if resume:
        if checkpoint is None:
            raise ValueError(f"{where}: resume needs a checkpoint path; got None.")
        check_resume(checkpoint, model)
    trainer = Trainer(model, opt_obj, data, epochs=opt["epochs"], validate=validate, mode="max" if higher else "min",
                      patience=extra.get("patience"), clip_norm=extra.get("clip_norm"), checkpoint=checkpoint,
                      checkpoint_every=checkpoint_every if checkpoint else None, seed=seed, quiet=quiet,
                      max_minutes=opt["max_minutes"], on_nonfinite=on_nonfinite)
    say(f"{model!r}; {sum(map(len, train)):,} training tokens, {sum(map(len, valid)):,} held out")
    t0 = time.perf_counter()
    history = trainer.fit(resume=resume)
    seconds = time.perf_counter() - t0
    words, vectors = model_vectors(model)
    return Pretrained(words, vectors, model, history, seconds, sum(map(len, train)), extra["epoch_examples"])


def _build_ranking(train, valid, opt, seed):
    from fastnn.models.ranking import NegativeSampler, RankingBatches, WindowRanker, padded_stream

    vocab = Vocab.build(train, min_count=opt["min_count"], specials=(Vocab.PAD, Vocab.UNK))
    w = opt["window"]
    model = WindowRanker(len(vocab), window=w, dim=opt["dim"], hidden=opt["hidden"], pad_id=vocab.pad_id,
                         init_scale=opt["init_scale"], rng=seed, words=vocab.words)
    sampler = NegativeSampler(vocab.counts, opt["negatives"], pad_id=vocab.pad_id)
    padded, centres = padded_stream([vocab.encode(s) for s in train], w, vocab.pad_id)
    data = RankingBatches(padded, centres, window=w, batch_size=opt["batch_size"], sampler=sampler,
                          examples_per_epoch=opt["examples_per_epoch"])
    validate = None
    if valid:
        vp, vc = padded_stream([vocab.encode(s) for s in valid], w, vocab.pad_id)
        vdata = RankingBatches(vp, vc, window=w, batch_size=1, sampler=sampler)
        rng = np.random.default_rng([seed, 11])
        rows = rng.permutation(len(vc))[:20000]
        vw = vdata.windows(rows)
        vneg = sampler.draw(vw[:, w // 2], rng)
        validate = (lambda m: m.evaluate(vw, vneg)["hinge"])
    return model, data, validate, False, {"epoch_examples": data.n}


def _lm_vocab(train, opt):
    return Vocab.build(train, min_count=opt["min_count"], specials=(Vocab.UNK, Vocab.EOS))


def _lm_validate(valid, vocab):
    from fastnn.data.text import lm_stream
    if not valid:
        return None
    stream = lm_stream(valid, vocab)
    return lambda m: float(-np.mean(m.token_logprobs(stream)))


def _build_nplm(train, valid, opt, seed):
    from fastnn.data.text import lm_stream
    from fastnn.models.nplm import NPLM, contexts
    from fastnn.train import ArrayBatches

    vocab = _lm_vocab(train, opt)
    model = NPLM(len(vocab), order=opt["order"], dim=opt["dim"], hidden=opt["hidden"], direct=False,
                 eos_id=vocab.eos_id, rng=seed, counts=vocab.counts, words=vocab.words, init_scale=opt["init_scale"])
    s = lm_stream(train, vocab)
    data = ArrayBatches(contexts(s, opt["order"], vocab.eos_id), s, batch_size=opt["batch_size"])
    return model, data, _lm_validate(valid, vocab), False, {"epoch_examples": len(s)}


def _build_rnn(train, valid, opt, seed):
    from fastnn import optim
    from fastnn.data.text import lm_stream
    from fastnn.models.rnnlm import RNNLM, BPTTBatches

    vocab = _lm_vocab(train, opt)
    model = RNNLM(len(vocab), hidden=opt["hidden"], embed=opt["dim"], classes=opt["classes"], eos_id=vocab.eos_id,
                  rng=seed, counts=vocab.counts, words=vocab.words, init_scale=opt["init_scale"])
    data = BPTTBatches(lm_stream(train, vocab), batch_size=opt["batch_size"], block=opt["bptt_block"],
                       eos_id=vocab.eos_id)
    # as `fastnn lm`: the rate halves when valid improves by < 0.3 %, clip the gradient norm at 5, patience 3
    lr = optim.HalveOnPlateau(opt["lr"], threshold=0.003) if valid else opt["lr"]
    return model, data, _lm_validate(valid, vocab), False, {"lr": lr, "clip_norm": 5.0, "patience": 3,
                                                            "epoch_examples": data.n * data.batch_size}


# ---- nearest neighbours ------------------------------------------------------------------------------------------

def nearest_neighbors(words, vectors, queries, k=10):
    """{query: [(word, cosine similarity), ...]}: the k words closest to each query by cosine similarity, best
    first, the query itself excluded.  All similarities come from ONE matrix product (queries x vocabulary).

    A query is looked up as given, then normalised like the tagger's words (normalize_word); an unknown query
    raises KeyError naming it.  Zero vectors have similarity 0 to everything.
    """
    where = "nearest_neighbors"
    words = list(words)
    V = np.asarray(vectors, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] != len(words):
        raise ValueError(f"{where}: 'vectors' must have shape ({len(words)}, dim); got {V.shape}.")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"{where}: 'k' must be an int >= 1; got {k!r}.")
    index = {w: i for i, w in enumerate(words)}
    rows = []
    for q in queries:
        i = index.get(q, index.get(normalize_word(q)))
        if i is None:
            raise KeyError(q)
        rows.append(i)
    norms = np.linalg.norm(V, axis=1)
    U = V / np.where(norms > 0, norms, 1.0)[:, None]
    S = U[rows] @ U.T                                   # (queries, V): the one matrix product
    S[np.arange(len(rows)), rows] = -np.inf             # never a word's own neighbour
    k = min(k, len(words) - 1)
    out = {}
    for q, i, s in zip(queries, rows, S):
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.lexsort((top, -s[top]))]           # best first; ties by vocabulary order
        out[q] = [(words[j], float(s[j])) for j in top[:k]]
    return out
