"""Word-vector pre-training recipes (Collobert et al. 2011, section 4): one Config per objective (RankingConfig,
NPLMEmbedConfig, RNNEmbedConfig, sharing EmbedConfig's fields; each the only place its defaults are written), PRESETS,
and pretrain().

- "ranking": Collobert & Weston's window-ranking language model (fastnn.models.ranking): a true window must
  outscore the same window with its centre word replaced, by a margin of 1.  Its word vectors are the product.
- "nplm": Bengio et al.'s NPLM (fastnn.models.nplm); the product is its table of word features C.
- "rnn": the Elman RNN LM (fastnn.models.rnnlm, class-factorized output); the product is its input vectors.

Every token is normalised as the tagger's word feature (fastnn.embed.normalize_sentences), the vocabulary is every
normalised type seen at least `min_count` times plus the model's specials, and vectors are exported for every
vocabulary word.  The model records it (text_normalization = fastnn.embed.NORMALIZATION, kept in its model file), so
that `lm eval` and recipes.lm read raw text as the LM objectives' models were trained on it.  Text reading, vector
scaling and nearest neighbours are in fastnn.embed.

>>> sents = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]] * 20
>>> res = pretrain("ranking", sents, dim=8, epochs=2, min_count=1, quiet=True)   # or read_corpus([...]), dim=50
>>> res.vectors.shape                          # write_vectors("vectors.txt", res.words, res.vectors) saves them
(9, 8)
"""
import dataclasses
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastnn._validation import check_int, check_not_file
from fastnn.data.vocab import Vocab
from fastnn.metrics import perplexity_from_nll
from fastnn.recipes import lm as lm_recipe
from fastnn.recipes.config import Config, check_fields, option, run_settings

__all__ = ["EmbedConfig", "RankingConfig", "NPLMEmbedConfig", "RNNEmbedConfig", "CONFIGS", "PRESETS", "OBJECTIVES",
           "Pretrained", "pretrain", "parse_minutes"]


def parse_minutes(text):
    """A --max-minutes value as text: a number of minutes, 0 = no budget (None)."""
    value = float(text)
    return None if value == 0 else value


_HELP = dict(epochs="passes over the text", lr="learning rate", batch_size="windows / contexts / streams per step")


@dataclass
class EmbedConfig(Config):
    """What every objective shares."""
    dim: int = option(50, "vector size", group="model")
    hidden: int = option(100, "hidden units", group="model")
    min_count: int = option(2, "keep normalised words seen at least this often; rarer ones become <unk>",
                            group="model")
    init_scale: float = option(0.1, "vectors start as U(-s, s)", group="model")
    optimizer: str = option("adagrad", "adagrad (lazy sparse rows for the vectors) or sgd", choices=("adagrad", "sgd"),
                            group="training")
    max_minutes: float = option(15.0, "training budget: no epoch starts that would end past it; 0 = none",
                                parse=parse_minutes, group="training")
    valid_fraction: float = option(0.01, "random fraction of the sentences held out to score every epoch (best "
                                         "epoch kept)", group="training")
    scale_std: float = option(None, "multiply the vectors by one factor so that their entries have this standard "
                                    "deviation (none: as trained)", type=float, group="training")
    seed: int = option(0, "seed of initialisation, order, corruptions, held-out part", group="training")

    objective = None
    _ints = dict(dim=1, hidden=1, min_count=1, seed=0)

    def __post_init__(self):
        check_fields(self, ints=dict(self._ints, epochs=1, batch_size=1), positive=("lr", "init_scale"),
                     positive_or_none=("max_minutes", "scale_std"), fractions=("valid_fraction",))


@dataclass
class RankingConfig(EmbedConfig):
    """Collobert & Weston's network with window 11 and 100 hidden units, cut to a budget of minutes (~1.5M words)."""
    window: int = option(11, "window size, odd", group="model")
    negatives: str = option("uniform", "the corrupting centre word is drawn uniformly over the vocabulary "
                                       "(Collobert & Weston) or with p ~ count^0.75", choices=("uniform", "unigram"),
                            group="model")
    epochs: int = option(50, _HELP["epochs"], group="training")
    lr: float = option(0.05, _HELP["lr"], group="training")
    batch_size: int = option(128, _HELP["batch_size"], group="training")
    examples_per_epoch: int = option(None, "windows per epoch (a random subset each epoch; none: every token)",
                                     type=int, group="training")
    objective = "ranking"
    _ints = dict(EmbedConfig._ints, window=1, examples_per_epoch=1)

    def __post_init__(self):
        super().__post_init__()
        check_fields(self, odd=("window",))


@dataclass
class NPLMEmbedConfig(EmbedConfig):
    """The NPLM with `fastnn lm`'s training settings."""
    order: int = option(5, "n: the context is n-1 words", group="model")
    epochs: int = option(3, _HELP["epochs"], group="training")
    lr: float = option(0.04, _HELP["lr"], group="training")
    batch_size: int = option(128, _HELP["batch_size"], group="training")
    objective = "nplm"
    _ints = dict(EmbedConfig._ints, order=2)


@dataclass
class RNNEmbedConfig(EmbedConfig):
    """The RNN LM with `fastnn lm`'s training settings (rate halved on a plateau, its clipping and patience)."""
    classes: int = option(100, "frequency classes of the output", group="model")
    bptt_block: int = option(20, "tokens per stream per update", group="model")
    epochs: int = option(30, _HELP["epochs"], group="training")
    lr: float = option(0.05, _HELP["lr"], group="training")
    batch_size: int = option(64, _HELP["batch_size"], group="training")
    objective = "rnn"
    _ints = dict(EmbedConfig._ints, classes=0, bptt_block=1)


CONFIGS = {"ranking": RankingConfig, "nplm": NPLMEmbedConfig, "rnn": RNNEmbedConfig}
OBJECTIVES = tuple(CONFIGS)

# Named settings: {name: {"objective": ..., field: value, ...}}.
PRESETS: dict[str, dict] = {}


class Pretrained(NamedTuple):
    """The result of pretrain(): the vocabulary's words, their (V, dim) vectors (rescaled when config.scale_std is
    set), the trained model, the trainer's
    history, the training wall time in seconds (steps and validation), the training tokens, and the training
    examples (windows or predicted tokens) of one epoch."""
    words: list
    vectors: np.ndarray
    model: object
    history: list
    seconds: float
    train_tokens: int
    epoch_examples: int


def config_for(objective, config=None, **options):
    """The Config of `objective` (`config`, else its defaults) with `options` on top; an option the objective does not
    have is the Config's TypeError naming the closest field (fastnn.recipes.config.Config), as in every recipe."""
    where = "pretrain"
    if objective not in CONFIGS:
        raise ValueError(f"{where}: 'objective' must be one of {OBJECTIVES}; got {objective!r}.")
    cls = CONFIGS[objective]
    if config is not None and not isinstance(config, cls):     # (another objective's fields would be missing)
        raise TypeError(f"{where}: 'config' must be a {cls.__name__} for objective {objective!r}; got "
                        f"{type(config).__name__}.")
    return dataclasses.replace(config, **options) if config is not None else cls(**options)


def pretrain(objective, sentences, *, config=None, checkpoint=None, resume=False, checkpoint_every=None, quiet=False,
             say=None, on_nonfinite="raise", **options):
    """Train word vectors with `objective` ("ranking", "nplm" or "rnn") on `sentences` (raw tokens; normalised here)
    under `config` (CONFIGS[objective]() when None) with `options` (its fields) on top.  Returns a Pretrained.

    config.valid_fraction of the sentences (random, seeded) is held out: after every epoch the trainer scores it
    (ranking: mean hinge loss on fixed corruptions, lower is better; LMs: mean NLL), keeps the best epoch's
    parameters and stops early on a plateau (RNN).  checkpoint / resume / on_nonfinite: see fastnn.train.Trainer; a
    resumed run must have the config (but its RESUMABLE fields: epochs, patience, max_minutes, and scale_std, applied
    to the result only) and the sentences of the run that wrote the checkpoint (recipes.config.run_settings).
    """
    from fastnn import optim
    from fastnn.embed import NORMALIZATION, check_resume, model_vectors, normalize_sentences, scale_vectors, split_valid
    from fastnn.train import Trainer, TrainingInterrupted

    where = "pretrain"
    c = config_for(objective, config, **options)
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", where)
        if checkpoint is None:          # (ignored: no checkpoint was written)
            raise ValueError(f"{where}: 'checkpoint_every' needs a 'checkpoint' path (it says how often that file is "
                             f"written); got checkpoint=None.")
    say = say or (lambda m: None)
    check_not_file(sentences, "sentences", where, "fastnn.embed.read_corpus(paths)")
    norm = normalize_sentences(sentences)
    if not any(norm):               # (else a message about the held-out fraction, or the sampler's counts)
        raise ValueError(f"{where}: 'sentences' must hold at least one token; got {len(norm)} sentences and no token.")
    train, valid = split_valid(norm, c.valid_fraction, c.seed)
    if not train:
        raise ValueError(f"{where}: no training sentence is left after holding out {c.valid_fraction} of "
                         f"{len(norm)}; give more text or a smaller valid fraction.")
    build = {"ranking": _build_ranking, "nplm": _build_nplm, "rnn": _build_rnn}[objective]
    model, data, validate, metric, extra = build(train, valid, c)
    model.text_normalization = NORMALIZATION    # (its words are normalised: raw text scored as is had capitals <unk>)
    opt_obj = optim.by_name(c.optimizer, model.parameters(), extra.pop("lr", c.lr), where)
    if resume:
        if checkpoint is None:
            raise ValueError(f"{where}: resume needs a checkpoint path; got None.")
        check_resume(checkpoint, model)
    trainer = Trainer(model, opt_obj, data, epochs=c.epochs, validate=validate, mode="min",
                      patience=extra.get("patience"), clip_norm=extra.get("clip_norm"), checkpoint=checkpoint,
                      checkpoint_every=checkpoint_every, seed=c.seed, quiet=quiet, callback=extra.get("callback"),
                      max_minutes=c.max_minutes, on_nonfinite=on_nonfinite, metric=metric,
                      settings=run_settings(c, after=("scale_std",), train=train, valid=valid))
    say(f"{model!r}; {sum(map(len, train)):,} training tokens, {sum(map(len, valid)):,} held out")
    t0 = time.perf_counter()

    def result(history):
        words, vectors = model_vectors(model)
        if c.scale_std is not None:
            vectors = scale_vectors(vectors, c.scale_std)
        return Pretrained(words, vectors, model, history, time.perf_counter() - t0, sum(map(len, train)),
                          extra["epoch_examples"])

    try:
        return result(trainer.fit(resume=resume))
    except TrainingInterrupted as stop:
        stop.result = result(stop.result)
        raise


def _build_ranking(train, valid, c):
    from fastnn.models.ranking import NegativeSampler, RankingBatches, WindowRanker, padded_stream

    vocab = Vocab.build(train, min_count=c.min_count, specials=(Vocab.PAD, Vocab.UNK))
    w = c.window
    model = WindowRanker(len(vocab), window=w, dim=c.dim, hidden=c.hidden, pad_id=vocab.pad_id,
                         init_scale=c.init_scale, rng=c.seed, words=vocab.words)
    sampler = NegativeSampler(vocab.counts, c.negatives, pad_id=vocab.pad_id)
    padded, centres = padded_stream([vocab.encode(s) for s in train], w, vocab.pad_id)
    data = RankingBatches(padded, centres, window=w, batch_size=c.batch_size, sampler=sampler,
                          examples_per_epoch=c.examples_per_epoch)
    validate = None
    if valid:
        vp, vc = padded_stream([vocab.encode(s) for s in valid], w, vocab.pad_id)
        vdata = RankingBatches(vp, vc, window=w, batch_size=1, sampler=sampler)
        rng = np.random.default_rng([c.seed, 11])
        rows = rng.permutation(len(vc))[:20000]
        vw = vdata.windows(rows)
        vneg = sampler.draw(vw[:, w // 2], rng)
        validate = (lambda m: m.evaluate(vw, vneg)["hinge"])
    return model, data, validate, "valid hinge", {"epoch_examples": data.n}


def _lm_vocab(train, c):
    return Vocab.build(train, min_count=c.min_count, specials=(Vocab.UNK, Vocab.EOS))


def _lm_validate(valid, vocab):
    from fastnn.data.text import lm_stream
    if not valid:
        return None
    stream = lm_stream(valid, vocab)
    return lambda m: lm_recipe.mean_nll(m, stream)


def _build_nplm(train, valid, c):
    from fastnn.data.text import lm_stream
    from fastnn.models.nplm import contexts
    from fastnn.train import ArrayBatches

    vocab = _lm_vocab(train, c)
    # the settings this objective does not choose are `fastnn lm`'s
    lm = lm_recipe.NPLMConfig(order=c.order, dim=c.dim, hidden=c.hidden, init_scale=c.init_scale, seed=c.seed)
    model = lm_recipe.build_model(lm, len(vocab), eos_id=vocab.eos_id, counts=vocab.counts, words=vocab.words)
    s = lm_stream(train, vocab)
    data = ArrayBatches(contexts(s, c.order, vocab.eos_id), s, batch_size=c.batch_size)
    return model, data, _lm_validate(valid, vocab), ("valid ppl", perplexity_from_nll), {
        "epoch_examples": len(s)}


def _build_rnn(train, valid, c):
    from fastnn import optim
    from fastnn.data.text import lm_stream
    from fastnn.models.rnnlm import BPTTBatches

    vocab = _lm_vocab(train, c)
    # the settings this objective does not choose (and its training's clipping and patience) are `fastnn lm`'s
    lm = lm_recipe.RNNConfig(hidden=c.hidden, embed=c.dim, classes=c.classes, init_scale=c.init_scale, seed=c.seed)
    model = lm_recipe.build_model(lm, len(vocab), eos_id=vocab.eos_id, counts=vocab.counts, words=vocab.words)
    stream = lm_stream(train, vocab)
    if len(stream) < c.batch_size:      # (BPTTBatches' own message names its argument, not pretrain's options)
        held = f", after valid_fraction={c.valid_fraction} held out {len(valid)} sentences" if valid else ""
        raise ValueError(f"pretrain: the 'rnn' objective reads batch_size={c.batch_size} parallel streams of the "
                         f"training text, so it must hold at least {c.batch_size} tokens (</s> ending each sentence "
                         f"counted); got {len(stream)} in {len(train)} sentences{held}. Give more text or a smaller "
                         f"'batch_size'.")
    data = BPTTBatches(stream, batch_size=c.batch_size, block=c.bptt_block, eos_id=vocab.eos_id)
    # as `fastnn lm`: the rate halves when valid improves by < 0.3 %, and training ends at its MAX_HALVINGS-th halving
    lr = optim.HalveOnPlateau(c.lr, threshold=0.003) if valid else c.lr
    return model, data, _lm_validate(valid, vocab), ("valid ppl", perplexity_from_nll), {
        "lr": lr, "clip_norm": lm.clip_norm, "patience": lm.patience, "epoch_examples": data.n * data.batch_size,
        "callback": lambda trainer, rec: lm_recipe.halved_out(lr)}
