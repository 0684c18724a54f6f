"""The window tagger's recipe: TaggerConfig (every default of a tagger run, in one place), PRESETS, and train().

>>> from fastnn.recipes import tagger as recipe
>>> sents = [[("John", "B-PER"), ("Smith", "I-PER"), ("visited", "O"), ("Paris", "B-LOC"), (".", "O")],
...          [("Mary", "B-PER"), ("saw", "O"), ("London", "B-LOC"), (".", "O")]] * 10   # or read_conll("eng.train")
>>> config = recipe.TaggerConfig(tasks={"ner": 1}, epochs=3)      # or recipe.from_preset("ner", tasks=...)
>>> model, trainer = recipe.train(config, sents, sents, quiet=True)   # train, dev
>>> trainer.best_score                                              # dev F1 of the kept epoch
100.0

`fit(model, train, dev, config)` trains a model built otherwise (e.g. WindowTagger.build with other options).
With `ensemble=K` (the chunk preset: 3, ner: 5), build() makes a TaggerEnsemble of K taggers of seeds
member_seeds(config) and fit() trains each as the single model of its seed (returning an EnsembleFit), `workers` of
them at once in worker processes (spawned, one thread each: the same models, in less wall time on several cores).
The model's constructor has no defaults for what a TaggerConfig holds: `build(config, train)` (or
`WindowTagger.build(train, tasks, **model_options(config))`) makes the tagger with the Config's values.
"""
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass

from fastnn._validation import check_scalar
from fastnn.recipes import config as recipe_config
from fastnn.recipes.config import CLIP_NORM_HELP, Config, check_fields, option, run_settings

__all__ = ["TaggerConfig", "PRESETS", "from_preset", "model_options", "member_seeds", "build", "check_dev", "fit",
           "train", "feature_notice", "needs_dev", "EnsembleFit", "MemberFit", "parse_lengths", "parse_std",
           "DEFAULT_EMBED_DIM"]

# Word vector size when neither embed_dim nor pretrained vectors give one.
DEFAULT_EMBED_DIM = 50


def parse_lengths(text):
    """'0' -> 0, '2' -> 2, '1,2,3' -> (1, 2, 3): the suffix_len / prefix_len values as text."""
    try:
        values = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        raise ValueError(f"must be a length or lengths separated by commas, like 2 or 1,2,3; got {text!r}") from None
    return values[0] if len(values) == 1 else values


def parse_std(text):
    """'init', 'raw' or a number (the pretrained_std values as text)."""
    if text in ("init", "raw"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"must be 'init', 'raw' or a number > 0; got {text!r}") from None


@dataclass
class TaggerConfig(Config):
    """A window tagger run.  The defaults are the settings of the NER run reported in the README (CoNLL-2003, dev F1
    on eng.testa).  tasks : {name: column}; features : {name: (column, dim)}; task_weights : {name: weight}."""
    # data-dependent fields, filled by the caller (the CLI parses them against the file's columns)
    tasks: dict = option({}, "task name -> column of its tags", cli=False)
    features: dict = option({}, "feature name -> (column, dim)", cli=False)
    task_weights: dict = option({}, "task name -> weight of its loss (others 1)", cli=False)
    # model
    window: int = option(5, "window size, odd", group="model")
    embed_dim: int = option(None, "word vector size", type=int, group="model",
                            default_text=f"{DEFAULT_EMBED_DIM}, or the --pretrained file's")
    caps_dim: int = option(5, "capitalisation feature vector size, 0 = none", group="model")
    feature_dim: int = option(10, "vector size of a --feature without :DIM", group="model")
    suffix_len: int = option(0, "suffix feature: the last N letters of the lowercased word; several lengths (1,2,3) "
                                "give one slot each, sharing one table; 0 = none", parse=parse_lengths,
                             metavar="N[,N...]", group="model", needs=("suffix_dim", None))
    suffix_dim: int = option(0, "suffix feature vector size", group="model", needs=("suffix_len", None))
    prefix_len: int = option(0, "prefix feature: the first N letters, as --suffix-len", parse=parse_lengths,
                             metavar="N[,N...]", group="model", needs=("prefix_dim", None))
    prefix_dim: int = option(0, "prefix feature vector size", group="model", needs=("prefix_len", None))
    shape_dim: int = option(0, "word-shape feature vector size, 0 = none; the shape maps upper/lower/digit runs to "
                               "X/x/d and keeps other characters, e.g. 10-round -> d-x", group="model")
    char_dim: int = option(0, "character feature: character vector size, 0 = none; a convolution over the word's "
                              "characters (case kept, digits -> 0) and a max over them give each word --char-filters "
                              "more inputs (dos Santos and Zadrozny 2014)", group="model")
    char_filters: int = option(50, "character feature: convolution filters", group="model", needs=("char_dim", None))
    char_width: int = option(3, "character feature: characters per convolution window, odd", group="model",
                             needs=("char_dim", None))
    hidden: int = option(300, "hidden units", group="model")
    activation: str = option("hardtanh", "hidden activation", choices=("hardtanh", "tanh"), group="model")
    loss: str = option("sentence", "word-level softmax or sentence-level log-likelihood with Viterbi",
                       choices=("word", "sentence"), group="model")
    context: str = option("window", "what each token's hidden layer reads besides its window: the window alone, or "
                                    "also a bidirectional LSTM over the sentence's window vectors (Huang, Xu and Yu "
                                    "2015; needs --loss sentence)", choices=("window", "bilstm"), group="model")
    lstm_hidden: int = option(100, "with --context bilstm: LSTM units per direction", group="model",
                              needs=("context", "bilstm"))
    lstm_layers: int = option(1, "with --context bilstm: stacked bidirectional LSTM layers; layer k > 1 reads layer "
                                 "k - 1's forward and backward outputs at each token (Irsoy and Cardie 2014)",
                              group="model", needs=("context", "bilstm"), added_later=True)
    lstm_dropout: float = option(0.0, "with --context bilstm: dropout on the LSTMs' outputs (the hidden layer's "
                                      "inputs from them, and with --lstm-layers > 1 each layer's inputs from the one "
                                      "below)", group="model", needs=("context", "bilstm"))
    scheme: str = option("iobes", "encoding chunk tags are trained in; predictions are converted back to the file's",
                         choices=("iobes", "iob2", "file"), group="model")
    dropout: float = option(0.0, "dropout on the window vectors", group="model")
    hidden_dropout: float = option(0.0, "dropout on the hidden layer", group="model")
    min_count: int = option(1, "training words seen fewer times become <unk>", group="model")
    embed_scale: float = option(0.01, "vectors start as U(-s, s)", group="model")
    keep_case: bool = option(False, "do not lowercase the word feature (digits are still normalised; the caps "
                                    "feature stays)", group="model")
    pretrained: str = option(None, "initialise word vectors from a word2vec/GloVe text file or a fastnn model file "
                                   "with word vectors (a tagger's, a neural LM's; words normalised like the "
                                   "training words: lowercased unless --keep-case, digits -> 0)", type=str,
                             metavar="VECTORS.txt|M.npz", group="model")
    pretrained_std: str = option("init", "with --pretrained: rescale the vectors (one factor) to entry standard "
                                         "deviation S; 'init' = that of the tagger's own starting vectors (U(-s, s), "
                                         "s = --embed-scale), so large language-model vectors do not saturate the "
                                         "hidden layer; 'raw' = as in the file", parse=parse_std, metavar="S|raw",
                                 group="model", needs=("pretrained", None))
    extend_vocab: bool = option(False, "with --pretrained: also add the file's words that are not in the training "
                                       "data", group="model")
    freeze_embeddings: bool = option(False, "do not train the word vectors", group="model")
    # training
    epochs: int = option(10, "passes over the data", group="training")
    lr: float = option(0.05, "learning rate", group="training")
    halve_lr: bool = option(False, "halve the learning rate after every epoch without a better dev score",
                            group="training")
    optimizer: str = option("adagrad", "adagrad (lazy sparse rows for the vectors) or sgd",
                            choices=("adagrad", "sgd"), group="training")
    batch_size: int = option(128, "windows per step (word loss) or about that many tokens of whole sentences "
                                  "(sentence loss)", group="training")
    bucket: int = option(0, "sentence loss: sort sentences by length within pools of N batches so batches pad less "
                            "(0 = plain shuffle)", group="training", needs=("loss", "sentence"))
    unk_replace: float = option(0.0, "probability of replacing a word seen once by <unk> in training",
                                group="training")
    clip_norm: float = option(0.0, CLIP_NORM_HELP, group="training")
    warmup: int = option(0, "raise the learning rate linearly from lr/N to lr over the first N steps (0: off)",
                         metavar="N", group="training")
    weight_decay: float = option(0.0, "L2 coefficient on weights and vectors (lazy for vector rows)",
                                 group="training")
    average: bool = option(False, "score and save the mean of the parameters over all steps (Polyak averaging) "
                                  "instead of the last ones", group="training")
    average_start: int = option(0, "with --average: epochs trained before the mean starts (0 = from the first step)",
                                metavar="N", group="training", needs=("average", None))
    ensemble: int = option(1, "train this many models (seeds S*K .. S*K+K-1 for --seed S) and tag with the mean of "
                              "their tag and transition scores; the model file holds them all", metavar="K",
                           group="training")
    workers: int = option(1, "with --ensemble K > 1: members trained at once, each in its own process with one "
                             "thread (the same models as one at a time); one model ignores it (see --threads)",
                          metavar="N", group="training")
    patience: int = option(None, "stop when more than this many epochs in a row bring no better dev score (none: "
                                 "never)", type=int,
                           group="training")
    seed: int = option(0, "seed of initialisation, order, dropout", group="training")

    def __post_init__(self):
        from fastnn.data.features import affix_lengths
        check_fields(self, ints=dict(window=1, embed_dim=1, caps_dim=0, feature_dim=1, suffix_dim=0, prefix_dim=0,
                                     shape_dim=0, char_dim=0, char_filters=1, char_width=1, hidden=1, lstm_hidden=1,
                                     lstm_layers=1, min_count=1, epochs=1, batch_size=1, bucket=0, average_start=0, ensemble=1,
                                     workers=1, patience=0, seed=0, warmup=0),
                     odd=("window", "char_width"), positive=("lr", "embed_scale"),
                     fractions=("dropout", "hidden_dropout", "lstm_dropout", "unk_replace"), nonneg=("clip_norm", "weight_decay"))
        where = type(self).__name__
        self.suffix_len = affix_lengths(self.suffix_len, "suffix_len", where)
        self.prefix_len = affix_lengths(self.prefix_len, "prefix_len", where)
        self.suffix_len = self.suffix_len[0] if len(self.suffix_len) == 1 else (self.suffix_len or 0)
        self.prefix_len = self.prefix_len[0] if len(self.prefix_len) == 1 else (self.prefix_len or 0)
        if self.pretrained_std not in ("init", "raw"):
            check_scalar(self.pretrained_std, "pretrained_std", where, low=0, low_open=True)
        if self.context == "bilstm" and self.loss != "sentence":
            raise ValueError(f"{where}: context 'bilstm' needs the sentence-level loss (its batches are whole "
                             f"sentences); got loss={self.loss!r}. Use --loss sentence or --context window.")
        if (self.extend_vocab or self.freeze_embeddings) and not self.pretrained:
            raise ValueError(f"{where}: 'extend_vocab' and 'freeze_embeddings' need 'pretrained' vectors.")
        for name, w in self.task_weights.items():
            if name not in self.tasks:
                raise ValueError(f"{where}: 'task_weights' must name tasks of the run ({', '.join(self.tasks)}); "
                                 f"got {name!r}.")
            check_scalar(w, f"task_weights[{name!r}]", where, low=0, low_open=True)


# Named settings: {name: {field: value}}, applied before explicit values (from_preset, the CLI's --preset).  Each is
# the best configuration found on the development sets only (CoNLL-2003 eng.testa; CoNLL-2000's last 1,000 training
# sentences, trained on the rest), for the CoNLL files' columns (word, POS, chunk[, NER]); the README's presets table
# gives every preset's dev score over three seeds, its training time and the command (bench/tagger_experiments.py
# --presets).  The tasks and feature columns are part of a preset: from the CLI, --task is still given and --feature
# replaces the preset's features when given.
_AFFIXES = dict(suffix_len=(1, 2, 3), suffix_dim=10, prefix_len=(1, 2), prefix_dim=10, shape_dim=10)
PRESETS: dict[str, dict] = {
    # POS trained on CoNLL-2000 (WSJ, gold tags): case-sensitive words, affixes, dropout, iterate averaging.  Dev
    # accuracy 98.37 ± 0.02 (seeds 0-2; NLTK's averaged perceptron on the same split: 97.54); with characters 98.34.
    "pos": dict(tasks={"pos": 1}, keep_case=True, suffix_len=(1, 2, 3, 4), suffix_dim=10, prefix_len=(1, 2, 3),
                prefix_dim=10, shape_dim=10, dropout=0.3, hidden_dropout=0.5, average=True),
    # chunking with the POS column as an input feature and a bidirectional LSTM context (window 3, 200 units per
    # direction, characters, batches of about 256 tokens in buckets, the global gradient norm clipped to 1), the
    # parameters averaged from the second epoch on (average_start=1), an ensemble of 3 models of 8 epochs: dev F1
    # 95.00 ± 0.09 (seeds 0-2), the 95.0 by a hair; with clipping at 5 and 6 epochs 94.97 ± 0.15, at 1 and 6
    # epochs 94.96 ± 0.05 (the tighter clipping narrows the spread of seeds, the longer training then adds a little:
    # both within the spread).  The other changes screened (lr, averaging start, dropouts, vector sizes, characters,
    # window, case, IOB2, weight decay, larger ensembles, posterior decoding, pre-trained vectors) did no better
    # (bench/results/tagger_presets.md).  workers=2: the members train two at a time (both presets of ensembles), the
    # same models in less wall time on 2 cores.
    "chunk": dict(tasks={"chunk": 2}, features={"pos": (1, 10)}, keep_case=True, **_AFFIXES, dropout=0.2,
                  hidden_dropout=0.3, average=True, average_start=1, epochs=8, ensemble=3, workers=2, context="bilstm",
                  window=3, lstm_hidden=200, char_dim=10, char_filters=50, batch_size=256, bucket=20, clip_norm=1.0),
    # NER (CoNLL-2003) with the POS and chunk columns as input features; lowercased words, as Collobert et al.; a
    # word seen once replaced by <unk> with probability 0.3, so that <unk> (6 % of eng.testa's tokens) is trained;
    # an ensemble of 5 models of 6 epochs: dev F1 on eng.testa 91.86 ± 0.05 (seeds 0-2); window 7, characters, more
    # dropout, cased words, pre-trained vectors, a later start of the averaging, IOB2, lr 0.02 or 0.1, batches of
    # 32, the word-level loss, window 3 and the bilstm context did not beat it (bench/results/tagger_presets.md).
    "ner": dict(tasks={"ner": 3}, features={"pos": (1, 10), "chunk": (2, 10)}, **_AFFIXES, dropout=0.2,
                hidden_dropout=0.3, unk_replace=0.3, average=True, epochs=6, ensemble=5, workers=2),
}


def from_preset(preset=None, **values):
    """TaggerConfig with PRESETS[preset]'s fields, then `values` on top."""
    return recipe_config.from_preset(TaggerConfig, PRESETS, preset, **values)


def model_options(config):
    """The keyword arguments of WindowTagger.build that `config` holds (the tasks, the data and pretrained vectors
    aside): WindowTagger.build(sentences, tasks, **model_options(TaggerConfig(hidden=100)))."""
    c = config
    return dict(task_weights=c.task_weights, columns=c.features, scheme=c.scheme, min_count=c.min_count,
                # (an affix's length without its size, or the other way round, is build's warning: not twice)
                suffix_len=c.suffix_len if c.suffix_dim else 0, suffix_dim=c.suffix_dim if c.suffix_len else 0,
                prefix_len=c.prefix_len if c.prefix_dim else 0, prefix_dim=c.prefix_dim if c.prefix_len else 0,
                shape_dim=c.shape_dim, char_dim=c.char_dim,
                char_filters=c.char_filters, char_width=c.char_width, window=c.window,
                embed_dim=c.embed_dim or DEFAULT_EMBED_DIM, caps_dim=c.caps_dim, hidden=c.hidden,
                activation=c.activation, loss=c.loss, context=c.context, lstm_hidden=c.lstm_hidden,
                lstm_layers=c.lstm_layers, lstm_dropout=c.lstm_dropout, dropout=c.dropout, hidden_dropout=c.hidden_dropout,
                embed_scale=c.embed_scale, freeze_embeddings=c.freeze_embeddings, lowercase=not c.keep_case,
                seed=c.seed)


def member_seeds(config):
    """The seeds of the config.ensemble models of a run: seed * K .. seed * K + K - 1 (K = 1: the seed itself), so
    ensembles of different seeds share no member, and member k is the single model of seed seed * K + k."""
    k = config.ensemble
    return [config.seed * k + i for i in range(k)]


def needs_dev(config):
    """The first field set in `config` that acts on the dev score (patience, halve_lr), or None: without dev
    sentences they were ignored, silently."""
    return "patience" if config.patience is not None else "halve_lr" if config.halve_lr else None


def _check_config(config, where):
    """A copy of `config` checked again, or a TypeError unless it is a TaggerConfig (a dict, or another recipe's
    Config, failed in dataclasses.replace or as an AttributeError from deep inside)."""
    if not isinstance(config, TaggerConfig):
        hint = (" Make one with TaggerConfig(**values) or from_preset(name, **values)." if isinstance(config, dict)
                else "")
        raise TypeError(f"{where}: 'config' must be a TaggerConfig; got {type(config).__name__}.{hint}")
    return dataclasses.replace(config)


def build(config, train, *, log=None):
    """The WindowTagger `config` describes, its vocabularies and tag sets from `train` (read_conll sentences), word
    vectors from config.pretrained when given; with config.ensemble = K > 1 a TaggerEnsemble of K such taggers, one
    per member_seeds(config).  log : callable taking one message line, or None."""
    from fastnn.models.tagger import TaggerEnsemble

    c = _check_config(config, "build")  # checked again: a field set after the Config was made was never checked
    _warn_ineffective(c, _BUILT, "build")
    if c.ensemble > 1:
        return TaggerEnsemble([_build_one(dataclasses.replace(c, seed=s, ensemble=1), train, log=log if i == 0
                                          else None) for i, s in enumerate(member_seeds(c))])
    return _build_one(c, train, log)


def _warn_ineffective(config, names, where):
    """A UserWarning for each of the fields `names` (those the caller reads) of `config` that is off its default yet
    has no effect in it (recipes.config.unmet_needs): TaggerConfig(suffix_len=2) without suffix_dim built a tagger
    without the suffix feature, silently.  A warning, not an error: a preset with one of its features turned off
    (from_preset("chunk", context="window")) or a search space crossing two options makes such Configs on purpose;
    the CLI refuses the options given on its command line."""
    import warnings

    for name, (other, value) in recipe_config.unmet_needs(config, names):
        want = repr(other) if value is None else f"{other}={value!r}"
        warnings.warn(f"{where}: {name!r} has no effect without {want}; it is ignored.", UserWarning, stacklevel=3)


def _build_one(c, train, log):
    """build() of one tagger (not an ensemble) from a checked Config."""
    from fastnn.data.vectors import init_pretrained, normalize_vectors
    from fastnn.embed import read_any_vectors
    from fastnn.models.tagger import WindowTagger

    pre_words = pre_vecs = None
    embed_dim = c.embed_dim
    if c.pretrained:
        try:
            pre_words, pre_vecs, note = read_any_vectors(c.pretrained)
        except ValueError as e:
            raise ValueError(f"TaggerConfig: 'pretrained' {c.pretrained}: {e}") from None
        except TypeError as e:                              # a model file without word vectors
            raise ValueError(f"TaggerConfig: 'pretrained': {e}") from None
        if note and log:
            log(note)
        pre_words, pre_vecs = normalize_vectors(pre_words, pre_vecs, lowercase=not c.keep_case)
        if embed_dim is None:
            embed_dim = pre_vecs.shape[1]
        elif embed_dim != pre_vecs.shape[1]:
            raise ValueError(f"TaggerConfig: 'embed_dim' {embed_dim} differs from the {pre_vecs.shape[1]}-dimensional "
                             f"vectors of {c.pretrained}; leave it unset or use matching vectors.")
    options = dict(model_options(c), embed_dim=embed_dim or DEFAULT_EMBED_DIM)
    model = WindowTagger.build(train, c.tasks, extra_words=pre_words if c.extend_vocab else (), **options)
    if pre_vecs is not None:
        std = {"init": "table", "raw": None}.get(c.pretrained_std, c.pretrained_std)
        n = init_pretrained(model.embed.W.value, model.vocab, pre_words, pre_vecs, std=std)
        if log:
            scaled = "" if std is None else f", rescaled to std {model.embed.W.value.std():.3g}"
            log(f"pretrained vectors for {n} of {len(model.vocab)} words from {c.pretrained}{scaled}")
    return model


# TaggerConfig's fields that build() reads and fit() does not, and those fit() reads
_BUILT = ("tasks", "features", "task_weights") + tuple(
    f.name for f in dataclasses.fields(TaggerConfig) if f.metadata.get("group") == "model")
_TRAINING = tuple(f.name for f in dataclasses.fields(TaggerConfig) if f.metadata.get("group") == "training")


def fit(model, train, dev=None, config=None, *, checkpoint=None, resume=False, quiet=False, callback=None,
        on_nonfinite="raise", **overrides):
    """Train `model` on read_conll sentences with fastnn.train.Trainer under `config` (TaggerConfig(), with
    `overrides` on top: fit(model, sents, epochs=3, lr=0.1)); returns the Trainer (its .history), or for a
    TaggerEnsemble (build with ensemble=K) an EnsembleFit after training each member as the single model of its seed.

    With `dev`, the model is scored after every epoch (main_score: mean of F1 / accuracy over tasks, higher is
    better), the best epoch's parameters are kept, and more than `patience` epochs in a row without improvement
    stop training.
    checkpoint / resume / on_nonfinite ("raise" or "skip"): see Trainer; a resumed run must have the Config (but
    epochs, patience, max_minutes and workers) and the sentences of the run that wrote the checkpoint.
    """
    from fastnn.models.tagger import TaggerBatch, TaggerEnsemble, WindowTagger, as_rows

    if not isinstance(model, (WindowTagger, TaggerEnsemble)):
        raise TypeError(f"fit: 'model' must be a WindowTagger or TaggerEnsemble (build's result); got "
                        f"{type(model).__name__}.")
    if config is not None and not isinstance(config, TaggerConfig):
        raise TypeError(f"fit: 'config' must be a TaggerConfig; got {type(config).__name__}.")
    # what the model was built with (its sizes, features, tasks) fit cannot change: such an override was ignored,
    # silently (fit(model, sents, hidden=500) trained the model's own hidden layer)
    built = [name for name in overrides if name in _BUILT]
    if built:
        raise TypeError(f"fit: {built[0]!r} is set when the model is built (build(config, train)), not by fit; "
                        f"fit's options are the training ones ({', '.join(_TRAINING)}).")
    # a model of K members is trained as K; without a config, as its own K (a loaded ensemble needed ensemble=K)
    k = len(model.members) if isinstance(model, TaggerEnsemble) else 1
    c = dataclasses.replace(config or TaggerConfig(ensemble=k), **overrides)
    _warn_ineffective(c, _TRAINING, "fit")
    if c.ensemble != k:         # (a single model given ensemble=3 trained one model, silently)
        raise ValueError(f"fit: 'ensemble' must be the model's number of members ({k}); got {c.ensemble}. The "
                         f"members are made by build(config, train) with the config's ensemble.")
    # read once: dev is scored every epoch and train read by every member of an ensemble, so a generator would be
    # empty from the second time on (no error, a nan loss)
    if not isinstance(train, TaggerBatch):
        train = as_rows(train, "fit: 'train'", tokens=False, name=None)
    if dev is not None:
        dev = as_rows(dev, "fit: 'dev'", tokens=False, name=None)
    elif needs_dev(c):
        raise ValueError(f"fit: {needs_dev(c)!r} acts on the dev score, and no dev sentences were given; pass dev, "
                         f"or leave it unset.")
    if isinstance(model, TaggerEnsemble):
        return _fit_ensemble(model, train, dev, c, checkpoint=checkpoint, resume=resume, quiet=quiet,
                             callback=callback, on_nonfinite=on_nonfinite)
    return _fit_one(model, train, dev, c, checkpoint=checkpoint, resume=resume, quiet=quiet, callback=callback,
                    on_nonfinite=on_nonfinite)


def _fit_one(model, train, dev, c, *, checkpoint, resume, quiet, callback, on_nonfinite):
    """fit() of one WindowTagger (an ensemble's member too) under the checked Config `c`, on rows of sentences."""
    from fastnn import optim
    from fastnn.train import Trainer, TrainingInterrupted

    lr = optim.Linear(c.lr / c.warmup, c.lr, c.warmup - 1) if c.warmup > 1 else c.lr
    lr = optim.HalveOnPlateau(lr) if c.halve_lr else lr     # the trainer reports dev scores
    opt = optim.by_name(c.optimizer, model.parameters(), lr, "fit", weight_decay=c.weight_decay)
    data = model.batches(train, batch_size=c.batch_size, bucket=c.bucket, unk_replace=c.unk_replace)
    validate = None
    kinds = {"F1" if t["scheme"] is not None else "accuracy" for t in model.tasks}
    metric = "dev " + (kinds.pop() if len(kinds) == 1 else "mean F1/accuracy")
    if dev is not None:
        dev_enc = model.encode(dev, targets=False)      # scoring needs the inputs; gold tags are read by evaluate
        validate = (lambda m: m.score(dev, dev_enc))
    # what a resumed run must share with the run that wrote the checkpoint: the Config (workers only schedules the
    # members) and the sentences, each token's columns as one string (an encoded TaggerBatch is not digested)
    parts = {"train": train, "dev": dev}
    settings = run_settings(c, after=("workers",), **{k: [["\t".join(row) for row in s] for s in v]
                                                        for k, v in parts.items() if isinstance(v, list)})
    trainer = Trainer(model, opt, data, epochs=c.epochs, validate=validate, mode="max", patience=c.patience,
                      clip_norm=c.clip_norm or None, checkpoint=checkpoint, seed=c.seed, quiet=quiet,
                      callback=callback, on_nonfinite=on_nonfinite, average=c.average,
                      average_start=c.average_start, metric=metric, settings=settings)
    try:
        trainer.fit(resume=resume)
    except TrainingInterrupted as stop:
        stop.result = trainer
        raise
    return trainer


class EnsembleFit:
    """What fit() returns for a TaggerEnsemble: the members' Trainers (with workers > 1, MemberFits: what a Trainer
    reports, its history, metric, best_score and best_epoch), their epochs in one history (each record with its
    "member"), the metric, and the ensemble's own dev score (best_score; None without dev).  best_epoch: the members'
    best epochs."""

    def __init__(self, trainers, history, metric, best_score):
        self.trainers, self.history, self.metric, self.best_score = trainers, history, metric, best_score
        self.best_epoch = [t.best_epoch for t in trainers]


class MemberFit:
    """A member trained in a worker process: its Trainer's history, metric, best_score and best_epoch."""

    def __init__(self, history, metric, best_score, best_epoch):
        self.history, self.metric, self.best_score, self.best_epoch = history, metric, best_score, best_epoch


def _fit_ensemble(model, train, dev, c, *, checkpoint, resume, quiet, callback, on_nonfinite):
    """Train the members, each exactly as the single model of its seed (initialisation, batch order, dropout): one
    after the other, or c.workers at a time in worker processes.  The first member checkpoints to `checkpoint`,
    member k > 0 to `checkpoint`.member<k>; resume resumes every member whose checkpoint exists (the first one's
    must) and starts the others."""

    from fastnn.train import Interrupted, TrainingInterrupted

    k = len(model.members)
    cks = [None if checkpoint is None else (f"{checkpoint}.member{i}" if i else checkpoint) for i in range(k)]
    resumes = [resume and (i == 0 or os.path.exists(ck)) for i, ck in enumerate(cks)]
    if c.workers > 1:
        if callback is not None:
            raise ValueError(f"fit: 'callback' cannot be called from the worker processes of workers > 1; got a "
                             f"callback with workers={c.workers}. Use workers=1.")
        if resume and not os.path.exists(cks[0]):
            raise ValueError(f"fit: 'checkpoint' {cks[0]} does not exist, so there is nothing to resume.")
        trainers = _fit_members_in_workers(model, train, dev, c, cks, resumes, quiet, on_nonfinite)
    else:
        trainers = []
        for i, m in enumerate(model.members):
            seed = m.config()["seed"]
            if not quiet:
                print(f"member {i + 1}/{k} (seed {seed})", file=sys.stderr)
            try:
                t = _fit_one(m, train, dev, dataclasses.replace(c, seed=seed, ensemble=1), checkpoint=cks[i],
                             resume=resumes[i], quiet=quiet, callback=callback, on_nonfinite=on_nonfinite)
            except TrainingInterrupted:          # the members after it are untrained: no model to keep
                raise Interrupted(f"in member {i + 1} of {k}: {_UNFINISHED}{_written(checkpoint)}",
                                  checkpoint) from None
            trainers.append(t)
    history = [dict(h, member=i) for i, t in enumerate(trainers) for h in t.history]
    score = None
    if dev is not None:
        score = model.score(dev)
        if not quiet:
            members = ", ".join(f"{t.best_score:.2f}" for t in trainers)
            print(f"ensemble of {len(trainers)}: {trainers[0].metric[0]} {score:.4f} (members {members})",
                  file=sys.stderr)
    return EnsembleFit(trainers, history, trainers[0].metric, score)


_UNFINISHED = "an ensemble is written only when all its members are trained"


def _written(checkpoint):
    """Where an interrupted ensemble's checkpoints are (how to go on from them is the Interrupted's caller's to say)."""
    return f"; checkpoints written to {checkpoint} and its .member<k> files" if checkpoint else ""


def _fit_members_in_workers(model, train, dev, c, cks, resumes, quiet, on_nonfinite):
    """MemberFits of the members trained c.workers at a time in "spawn" worker processes (a fork after OpenMP has
    started threads can hang the child), each with one kernel thread; the trained parameters and Generator states
    are copied back into model.members.  The workers are in their own process group, so a Ctrl-C reaches only this
    process, which then tells every busy worker to stop between two steps (writing its checkpoint) and raises
    KeyboardInterrupt; members not started yet are not started."""
    import concurrent.futures as cf
    import multiprocessing
    import threading

    from fastnn.train import Interrupted, model_generators

    k = len(model.members)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    done, error, interrupted = {}, None, False
    # Ctrl-C must reach cf.wait below as KeyboardInterrupt even where SIGINT came ignored (a shell's background job,
    # then `kill -INT`), as the Trainer's own handler does in the sequential path.
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        with cf.ProcessPoolExecutor(min(c.workers, k), mp_context=ctx, initializer=_init_member_worker,
                                    initargs=(stop,)) as pool:
            try:
                one = dataclasses.replace(c, workers=1)
                futures = {pool.submit(_fit_member, m, train, dev, one, cks[i], resumes[i], quiet, on_nonfinite, i,
                                       k): i for i, m in enumerate(model.members)}
                pending = set(futures)
                while pending:
                    try:
                        finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    except KeyboardInterrupt:        # the busy workers stop soon: wait for their checkpoints
                        interrupted = True
                        stop.set()
                        continue
                    for fut in finished:
                        try:
                            done[futures[fut]] = fut.result()
                        except Exception as e:       # the first failure stops the others (each keeps its checkpoint)
                            error = error or e
                            stop.set()
            except BaseException:                    # e.g. Ctrl-C while submitting: the pool's exit must not wait long
                stop.set()
                raise
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    for i, r in done.items():
        if r is not None:
            m = model.members[i]
            for name, p in m.parameters().items():
                p.value[...] = r["params"][name]
            for name, g in model_generators(m).items():
                g.bit_generator.state = r["rngs"][name]
    if isinstance(error, cf.process.BrokenProcessPool):
        raise RuntimeError(f"fit: a worker process of workers={c.workers} ended abruptly: killed, out of memory, or "
                           f"started from a script that trains at its top level (the workers are spawned, and each "
                           f"imports the main script again): put the script's training under "
                           f"`if __name__ == \"__main__\":`, or use workers=1.") from error
    if error is not None:
        raise error
    stopped = [i + 1 for i in range(k) if done.get(i) is None]
    if interrupted or stopped:
        raise Interrupted(f"in member{'s' if len(stopped) > 1 else ''} {', '.join(map(str, stopped))} of {k}: "
                          f"{_UNFINISHED}{_written(cks[0])}", cks[0])
    return [done[i]["fit"] for i in range(k)]


def _init_member_worker(stop):
    """Worker-process initializer: one thread, its own process group, Ctrl-C ignored between members, a thread that
    turns `stop` into one SIGINT for this process (the Trainer then stops between two steps), and the end of the
    process with its parent's (a busy worker first stops as on Ctrl-C, writing its member's checkpoint)."""
    import threading
    import time

    import fastnn
    from fastnn._workers import end_with_parent

    fastnn.threads(kernels=1, blas=1)
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        stop.wait()
        os.kill(os.getpid(), signal.SIGINT)

    def stop_member():
        # in their own process group the workers get no signal when the command is killed (kill, a job's time limit)
        if _init_member_worker.busy:
            os.kill(os.getpid(), signal.SIGINT)
        while _init_member_worker.busy:
            time.sleep(0.05)
    _init_member_worker.stop = stop
    _init_member_worker.busy = False        # a member is training (_fit_member)
    threading.Thread(target=watch, daemon=True).start()
    end_with_parent(stop_member)


def _fit_member(m, train, dev, c, checkpoint, resume, quiet, on_nonfinite, i, k):
    """In a worker: fit member i of k as in the sequential loop; its parameters, Generator states and MemberFit, or
    None when stopped before the end.  Its log lines go to stderr, each after "member i/k: "."""

    from fastnn.train import model_generators

    stderr = sys.stderr
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _init_member_worker.busy = True
    try:
        if _init_member_worker.stop.is_set():
            return None
        seed = m.config()["seed"]
        if not quiet:
            print(f"member {i + 1}/{k} (seed {seed})", file=_Prefixed(stderr, ""), flush=True)
            sys.stderr = _Prefixed(stderr, f"member {i + 1}/{k}: ")
        t = _fit_one(m, train, dev, dataclasses.replace(c, seed=seed, ensemble=1), checkpoint=checkpoint,
                     resume=resume, quiet=quiet, callback=None, on_nonfinite=on_nonfinite)
        return dict(params={n: p.value for n, p in m.parameters().items()},
                    rngs={n: g.bit_generator.state for n, g in model_generators(m).items()},
                    fit=MemberFit(t.history, t.metric, t.best_score, t.best_epoch))
    except KeyboardInterrupt:                    # a TrainingInterrupted included: its checkpoint is written
        return None
    finally:
        sys.stderr = stderr
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _init_member_worker.busy = False


class _Prefixed:
    """A text stream writing each line to `stream` after `prefix` (one write per line, so that the lines of several
    processes sharing stderr do not mix); not a terminal, so no progress bar.  When the reader of stderr goes away
    (`fastnn tagger train ... 2>&1 | head`) the member stops as on Ctrl-C, writing its checkpoint, as the command
    itself does (cli._common.StderrGuard); its BrokenPipeError ended the member without one."""

    def __init__(self, stream, prefix):
        self.stream, self.prefix, self.buf = stream, prefix, ""

    def write(self, text):
        *lines, self.buf = (self.buf + text).split("\n")
        for line in lines:
            self._call(self.stream.write, f"{self.prefix}{line}\n")
        return len(text)

    def flush(self):
        self._call(self.stream.flush)

    def _call(self, method, *args):
        try:
            method(*args)
        except BrokenPipeError:
            self.stream = open(os.devnull, "w")
            signal.raise_signal(signal.SIGINT)          # the Trainer's handler: stop after this step

    def isatty(self):
        return False


def check_dev(model, dev):
    """Check before training that `model` can score the `dev` sentences: the feature columns it reads (IndexError),
    each task's column holding tags of the task's kind (IndexError, ValueError).  Returns a one-line notice naming
    the dev tags the training data never had (scored as errors, as conlleval counts them) and the feature values it
    never had (see feature_notice), or None."""
    model.encode(dev, targets=False)
    unseen = model.check_gold(dev, "check_dev")
    parts = [f"{name}: {u['unseen_tokens']} tokens ({_some(u['unseen_tags'])})"
             for name, u in unseen.items() if u["unseen_tokens"]]
    notes = [f"dev tags the training data never had, scored as errors: {'; '.join(parts)}"] if parts else []
    notes += [feature_notice(model.unseen_features(dev))] if model.columns else []
    return "; ".join(n for n in notes if n) or None


def _some(values, n=8):
    return ", ".join(values[:n]) + (", ..." if len(values) > n else "")


def feature_notice(unseen):
    """One line on the feature values never seen in training (model.unseen_features(sentences)), or None: they are
    read as <unk>.  When they are most of a column's tokens, or all values of another column the model knows (a
    task's tags in the chunk column), the data's column of that number is likely another (e.g. a file without the
    POS column, whose chunk tags would be read as POS tags): the line asks."""
    parts, wrong = [], []
    for name, u in unseen.items():
        if u["unseen_tokens"]:
            of = f": values of {u['values_of']}" if u.get("values_of") else ""
            parts.append(f"{name} (column {u['column']}): {u['unseen_tokens']} of {u['n_tokens']} tokens "
                         f"({_some(u['unseen_values'])}{of})")
            if 2 * u["unseen_tokens"] > u["n_tokens"] or of:
                wrong.append(f"column {u['column']} the {name} column")
    if not parts:
        return None
    most = any(2 * u["unseen_tokens"] > u["n_tokens"] for u in unseen.values())
    ask = f";{' most are unseen:' if most else ''} is {' and '.join(wrong)}, as in the training data?" if wrong else ""
    return f"feature values the training data never had, read as <unk>: {'; '.join(parts)}{ask}"


def train(config, train, dev=None, *, checkpoint=None, resume=False, quiet=False, callback=None,
          on_nonfinite="raise"):
    """(model, trainer): build the model `config` describes from `train` and fit it (see build and fit)."""
    from fastnn.models.tagger import as_rows

    _check_config(config, "train")      # (before the data is read)
    log = None if quiet else (lambda m: print(m, file=sys.stderr))
    # each is read twice (build's vocabularies, then fit's batches; check_dev, then every epoch): a generator
    # would leave fit nothing to train on (a nan loss, no error)
    train = as_rows(train, "train: 'train'", tokens=False, name=None)
    dev = None if dev is None else as_rows(dev, "train: 'dev'", tokens=False, name=None)
    model = build(config, train, log=log)
    if dev is not None:
        notice = check_dev(model, dev)
        if notice and log:
            log(notice)
    if log:
        log(repr(model))
    trainer = fit(model, train, dev, config, checkpoint=checkpoint, resume=resume, quiet=quiet, callback=callback,
                  on_nonfinite=on_nonfinite)
    return model, trainer
