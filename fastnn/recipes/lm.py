"""Language-model recipes: one Config per architecture (NGramConfig, NPLMConfig, RNNConfig, LSTMConfig: each the only
place its defaults are written), PRESETS, and train().

The vocabulary protocol (Bengio et al. 2003; ../shared/data/README.md): every training type seen at least
`min_count` times (4: more than 3 times) plus <unk> and </s>; every sentence ends with </s>, which is predicted and
counted; perplexity = exp(mean NLL over all predicted tokens).  The defaults are the settings measured to reach the
README's numbers on the Brown split.

>>> from fastnn.recipes import lm as recipe
>>> sents = [s.split() for s in ["the dog runs", "the cat runs", "a dog sees the cat", "the bird sees a dog"]] * 5
>>> config = recipe.RNNConfig(epochs=2, hidden=8, classes=0, min_count=1)   # or recipe.from_preset("fast")
>>> vocab, streams = recipe.prepare(config, sents, sents)                    # train, valid
>>> model, history = recipe.train(config, vocab, streams, quiet=True)
>>> len(history), recipe.perplexity(model, streams["valid"]) < len(vocab)
(2, True)
"""
import dataclasses
import difflib
from dataclasses import dataclass

import numpy as np

from fastnn.metrics import perplexity_from_nll
from fastnn.recipes.config import CLIP_NORM_HELP, Config, check_fields, option, run_settings

__all__ = ["LMConfig", "NGramConfig", "NeuralConfig", "NPLMConfig", "RecurrentConfig", "RNNConfig", "LSTMConfig",
           "CONFIGS", "PRESETS", "DEFAULT_THREADS", "config_for", "from_preset", "prepare", "build_model", "build",
           "train", "mean_nll", "perplexity", "sentence_logprobs", "sample", "normalize_like"]

# help texts of the fields several architectures share (each architecture writes its own default)
_HELP = dict(
    order="n-gram order / NPLM n: the context is n-1 words", epochs="training epochs",
    lr="initial learning rate", optimizer="sgd or adagrad (lazy sparse rows for the vectors)",
    weight_decay="L2 on weights and embeddings (not biases)",
    batch_size="examples per update (NPLM) / parallel streams (RNN)", hidden="hidden units",
    dropout="dropout probability (0: none)", classes="frequency classes of the factorized output (0: full softmax)",
    clip_norm=CLIP_NORM_HELP,
    max_minutes="training-time budget: no epoch starts that would end past it (estimated from the longest epoch so "
                "far; none: no budget)",
    patience="stop when more than this many epochs in a row bring no better valid perplexity (the best epoch's "
             "parameters are kept; none: never)")


@dataclass
class LMConfig(Config):
    """What every language model shares: the vocabulary."""
    min_count: int = option(4, "keep training types seen at least this often (4: more than 3 times); the rest "
                               "become <unk>")

    arch = None
    # check_fields' arguments; a subclass adds its own with _more_checks
    _checks = dict(ints=dict(min_count=1))

    def __post_init__(self):
        check_fields(self, **self._checks)


def _more_checks(base, *, ints=(), **names):
    """base's checks (an LMConfig._checks) with more fields: ints a dict {name: low}, the others tuples of names."""
    out = {k: (dict(v) if k == "ints" else tuple(v)) for k, v in base.items()}
    out["ints"] = {**out.get("ints", {}), **dict(ints)}
    for kind, more in names.items():
        out[kind] = out.get(kind, ()) + tuple(more)
    return out


@dataclass
class NGramConfig(LMConfig):
    """A count-based n-gram model."""
    order: int = option(3, _HELP["order"])
    smoothing: str = option("kn", "kn = interpolated modified Kneser-Ney; di = deleted interpolation (Bengio et al. "
                                  "2003), weights per context-frequency class fitted by EM on the valid text",
                            choices=("kn", "di"))
    arch = "ngram"
    _checks = _more_checks(LMConfig._checks, ints=dict(order=1))


@dataclass
class NeuralConfig(LMConfig):
    """What the neural LMs share, where their defaults agree (each subclass adds classes, epochs, lr, batch_size,
    clip_norm, max_minutes and patience with its own defaults)."""
    # (not LMConfig's: an n-gram model is counted, and NGramConfig(seed=5) was ignored, silently)
    seed: int = option(0, "seed of initialisation, order, dropout")
    hidden: int = option(100, _HELP["hidden"])
    dropout: float = option(0.0, _HELP["dropout"])
    init_scale: float = option(0.1, "the word vectors start as U(-s, s)")
    optimizer: str = option("adagrad", _HELP["optimizer"], choices=("sgd", "adagrad"))
    weight_decay: float = option(0.0, _HELP["weight_decay"])
    _checks = _more_checks(LMConfig._checks, ints=dict(seed=0, hidden=1, classes=0, epochs=1, batch_size=1,
                                                       patience=0),
                           positive=("lr", "init_scale"), fractions=("dropout",), nonneg=("weight_decay", "clip_norm"),
                           positive_or_none=("max_minutes",))


@dataclass
class NPLMConfig(NeuralConfig):
    """Bengio et al. (2003)'s neural probabilistic LM."""
    order: int = option(5, _HELP["order"])
    dim: int = option(60, "NPLM word feature size m")
    direct: bool = option(False, "direct connections from the features to the output")
    classes: int = option(0, _HELP["classes"])
    epochs: int = option(3, _HELP["epochs"])
    lr: float = option(0.04, _HELP["lr"])
    lr_decay: float = option(0.0, "r in lr_t = lr / (1 + r t) (t = updates)")
    batch_size: int = option(128, _HELP["batch_size"])
    clip_norm: float = option(0.0, _HELP["clip_norm"])
    max_minutes: float = option(None, _HELP["max_minutes"], type=float)
    patience: int = option(None, _HELP["patience"], type=int)
    output_precision: str = option("float32", "the output layer's products in training: float32, or bfloat16 on AMX "
                                   "tiles (float32 sums; ~2x faster on an Intel Xeon Sapphire Rapids or later; "
                                   "evaluation stays float32)", choices=("float32", "bfloat16"),
                                   added_later=True)
    arch = "nplm"
    _checks = _more_checks(NeuralConfig._checks, ints=dict(order=2, dim=1, hidden=0), nonneg=("lr_decay",))

    def __post_init__(self):
        super().__post_init__()
        # (hidden 0 is the model's "only direct connections", which the check of every neural LM's hidden refused)
        if self.hidden == 0 and not self.direct:
            raise ValueError("NPLMConfig: 'hidden' must be >= 1 without 'direct' (0: no hidden layer, the output "
                             "sees the word features through the direct connections only); got 0.")
        if self.output_precision != "float32" and self.classes:
            raise ValueError(f"NPLMConfig: 'output_precision' {self.output_precision} is for the full softmax "
                             f"(classes 0); got classes {self.classes}.")

    def check_machine(self):
        """Refuse what this machine cannot run (before any work: bfloat16 products need AMX)."""
        from fastnn import kernels
        kernels.check_precision(self.output_precision, "NPLMConfig", "output_precision")


@dataclass
class RecurrentConfig(NeuralConfig):
    """What the recurrent LMs share (RNNConfig, LSTMConfig): an input embedding, truncated BPTT, the
    class-factorized output, and training to a plateau of valid perplexity."""
    embed: int = option(None, "input embedding size (none: --hidden)", type=int)
    classes: int = option(100, _HELP["classes"])
    epochs: int = option(30, _HELP["epochs"])
    lr: float = option(0.05, _HELP["lr"])
    batch_size: int = option(64, _HELP["batch_size"])
    bptt: int = option(0, "extra steps of BPTT before each block (Mikolov's -bptt)")
    bptt_block: int = option(20, "tokens per stream per update (truncated-BPTT segment)")
    clip_norm: float = option(5.0, _HELP["clip_norm"])
    clip_value: float = option(0.0, "clip the BPTT error element-wise (0: off)")
    max_minutes: float = option(30.0, _HELP["max_minutes"], type=float)
    patience: int = option(3, _HELP["patience"], type=int)
    _checks = _more_checks(NeuralConfig._checks, ints=dict(embed=1, bptt=0, bptt_block=1), nonneg=("clip_value",))


@dataclass
class RNNConfig(RecurrentConfig):
    """The Elman RNN LM (Mikolov et al. 2010) with a class-factorized output."""
    activation: str = option("tanh", "hidden activation", choices=("tanh", "sigmoid", "relu"))
    init: str = option("glorot", "W_hh initialisation (identity + relu = IRNN)", choices=("glorot", "identity"))
    arch = "rnn"


@dataclass
class LSTMConfig(RecurrentConfig):
    """The LSTM LM: the RNN LM's embedding, truncated BPTT and class-factorized output around an LSTM, or a stack of
    `layers` LSTMs (each reading the one below's outputs, with --dropout between them)."""
    forget_bias: float = option(1.0, "initial forget-gate bias (LSTM)")
    layers: int = option(1, "stacked LSTM layers (deep LSTM; --dropout also applies between layers)", added_later=True)
    arch = "lstm"
    _checks = _more_checks(RecurrentConfig._checks, ints=dict(layers=1))


CONFIGS = {"ngram": NGramConfig, "nplm": NPLMConfig, "rnn": RNNConfig, "lstm": LSTMConfig}

# Named settings: {name: {"arch": ..., field: value, ...}}, applied before explicit values (the CLI's --preset).
PRESETS: dict[str, dict] = {
    # the RNN LM for throughput (`--preset fast`): the default model through the fused kernel with 320 streams (6,400
    # tokens per update: the per-update costs, the AdaGrad pass over the ~14,000 output rows and Python, are paid a
    # fifth as often per token as at 64), at lr 0.03 (more streams, fewer updates: 0.05 then overshoots), stopping one
    # epoch sooner.  On Brown (2026-12-07): valid 127.19, test 116.65 (best epoch 5 of 8; seed 1: 127.20 / 116.41)
    # against the default's 128.53 / 117.94.  Screened (valid / test): 128 streams at 0.05 (the preset until then)
    # 129.64 / 117.80; 192 at 0.05 / 0.04: 131.50 / 120.82, 127.85 / 117.70; 256 at 0.05 / 0.04 / 0.03: 133.55 /
    # 122.21, 129.67 / 118.70, 127.74 / 117.05 (18 epochs); 320 at 0.035: 129.81 / 119.39; 384 at 0.03: 128.08 /
    # 117.18 (seed 1: 118.00; 12 epochs); 512 at 0.025: 129.05 / 118.31
    "fast": {"arch": "rnn", "patience": 2, "batch_size": 320, "lr": 0.03},
    # the NPLM for throughput (`--preset nplm-fast`): the default full-softmax model with 512 examples per update (the
    # output layer's three products run at ~225 GFLOP/s against ~175-195 at 128; a 2048^3 GEMM: ~335), at lr 0.07
    # decaying as 0.07 / (1 + 4e-4 t) (a constant 0.08 overfits in epoch 3: 132.36, 130.74, 135.93), for 2 epochs
    # (the third adds nothing: 129.22, 129.23).  On Brown (2026-12-07): valid 129.22, test 119.51 against the
    # default's 128.95 / 119.23; seeds 1, 2: 128.98 / 119.66, 128.81 / 119.35 against 128.46 / 118.42, 129.23 / 119.53
    # (means +0.12 valid, +0.45 test); epochs of 33-39 s against 39-44 s, the run 72-79 s of training against 131-132 s
    # (bench/results/nplm_speed.md).  Not the issue's < 30 s an epoch in float32 (at h = 100 the three products alone
    # take 30.5-33 s an epoch at any batch size here); with --output-precision bfloat16 (AMX CPUs only, hence not
    # in the preset) epochs of 18-20 s, valid 128.92 / test 119.40 over seeds 0-2.
    "nplm-fast": {"arch": "nplm", "batch_size": 512, "lr": 0.07, "lr_decay": 4e-4, "epochs": 2},
}


# Thread counts of `lm train` / `lm eval` when the command line gives none (fastnn.threads semantics; -1 = all CPUs).
# The kernels take the cores: the NPLM's output layer and the RNN LM's fused step are OpenMP kernels that run BLAS, if
# at all, single-threaded inside their own threads.  BLAS keeps one thread: what the LMs run through it directly is
# small (the NPLM's hidden layer, evaluation's input projections, the LSTM's weight products), and a 2-thread OpenBLAS
# beside the kernels cost 1.7-18x on 2 cores (2026-12-05, Xeon: NPLM training 10,200 against 17,600 tokens/s, the RNN
# LM's Brown validation 6.5 s against 0.45 s with other jobs running, the LSTM LM 5,816 against 105,092 tokens/s).
DEFAULT_THREADS = {"kernels": -1, "blas": 1}


def config_for(arch, **values):
    """CONFIGS[arch](**values), with a clear error for an unknown architecture."""
    if arch not in CONFIGS:
        raise ValueError(f"LMConfig: 'arch' must be one of {', '.join(CONFIGS)}; got {arch!r}.")
    return CONFIGS[arch](**values)


def from_preset(preset=None, arch=None, **values):
    """The Config of PRESETS[preset]'s architecture (or `arch`, which must agree) with the preset's fields, then
    `values` on top."""
    fields = dict(PRESETS[preset]) if preset is not None and preset in PRESETS else {}
    if preset is not None and preset not in PRESETS:
        close = difflib.get_close_matches(str(preset).lower(), list(PRESETS), n=1, cutoff=0.6)
        raise ValueError(f"LMConfig: 'preset' must be one of {', '.join(PRESETS) or '(none defined)'}; got "
                         f"{preset!r}." + (f" Did you mean {close[0]!r}?" if close else ""))
    preset_arch = fields.pop("arch", None)
    if arch is None:
        arch = preset_arch
    elif preset_arch is not None and arch != preset_arch:
        raise ValueError(f"LMConfig: preset {preset!r} is for 'arch' {preset_arch}; got {arch!r}.")
    if arch is None:
        raise ValueError("LMConfig: 'arch' must be given (ngram, nplm, rnn or lstm) unless the preset names it.")
    return config_for(arch, **{**fields, **values})


def normalize_like(model, stream):
    """`stream` with the words of its tokenised sentences spelled as `model`'s words are: lowercased with digits -> 0
    for a model of `embed train` (its text_normalization, fastnn.embed.text_normalizer), as given for a model that
    records none (lm train's, and older files).  Word ids (an array, sentences of ids) are returned as given.  Every
    function here that reads words applies it (raw text scored by an embed model had its capitalised words <unk>)."""
    from fastnn.embed import text_normalizer
    norm = text_normalizer(model, "normalize_like")
    if norm is None or isinstance(stream, (np.ndarray, str, bytes)) or not hasattr(stream, "__iter__"):
        return stream
    stream = list(stream)           # (read once: a generator of sentences)
    return [[norm(w) if isinstance(w, str) else w for w in s] if isinstance(s, (list, tuple)) else s for s in stream]


def mean_nll(model, stream):
    """Mean negative log-likelihood per predicted token of `stream` (perplexity = exp of it): the validation score of
    every language model (lower is better).  `stream`: ids or tokenised sentences (model.token_logprobs; words
    spelled as the model's are first, normalize_like)."""
    if not callable(getattr(model, "token_logprobs", None)):     # (the arguments swapped: an AttributeError)
        raise TypeError(f"mean_nll: 'model' must be a language model (with token_logprobs; train's first result); "
                        f"got {type(model).__name__}. The arguments are (model, stream).")
    lp = np.asarray(model.token_logprobs(normalize_like(model, stream)), dtype=np.float64)
    if lp.size == 0:
        raise ValueError("mean_nll: 'stream' must hold at least one token; got none (the mean of no token's NLL is "
                         "undefined).")
    return float(-lp.mean())


def perplexity(model, stream):
    return perplexity_from_nll(mean_nll(model, stream))


def sentence_logprobs(model, sentences):
    """log P(sentence) in nats of each sentence on its own, </s> included, as if it were the whole text (a recurrent
    model from its zero state, the NPLM's context from </s>, an n-gram from <s>): what rescoring candidates (an
    n-best list) needs, each independently of the others; perplexity() reads the sentences as one text instead.
    `sentences`: tokenised sentences (lists of words, spelled as the model's are first, normalize_like; unknown ones
    read as <unk>) or lists of word ids.  Returns (log-probabilities float64 (n,), predicted tokens int64 (n,): each
    sentence's words + 1)."""
    where = "sentence_logprobs"
    if not callable(getattr(model, "token_logprobs", None)):
        raise TypeError(f"{where}: 'model' must be a language model (with token_logprobs; train's first result); got "
                        f"{type(model).__name__}. The arguments are (model, sentences).")
    if not isinstance(sentences, (str, bytes)):
        sentences = list(sentences)                 # (read once: a generator would be empty after the check)
    if isinstance(sentences, (str, bytes)) or any(isinstance(sent, (str, bytes)) for sent in sentences):
        raise TypeError(f"{where}: 'sentences' must be a list of tokenised sentences (lists of words or of ids); got "
                        f"a string where a sentence belongs: split it, e.g. [line.split() for line in lines].")
    # (each sentence is its own text for token_logprobs, which checks its words or ids)
    sentences = normalize_like(model, [list(sent) for sent in sentences])
    lps = [np.asarray(model.token_logprobs([sent]), dtype=np.float64) for sent in sentences]
    return (np.array([lp.sum() for lp in lps], dtype=np.float64), np.array([lp.size for lp in lps], dtype=np.int64))


def sample(model, *, sentences=1, prompt=(), temperature=1.0, max_len=50, seed=0):
    """Sentences drawn from a language model word by word (ancestral sampling from its prob_vector): a list of
    `sentences` lists of words (of word ids for a model without its words), each ended by the model's </s> (not
    included) or cut after `max_len` words.  The first sentence starts with `prompt` (words, spelled as the model's
    are first, normalize_like, or ids; included in it); each later one continues the same text, so a recurrent model
    reads the sentences before it (the n-gram models and the NPLM see only their last words, as when scoring).
    `temperature` scales the log-probabilities, 1/T: below 1 sharper, 1 the model's own distribution.  The same seed
    gives the same sentences.  Each word costs one prob_vector, which for the recurrent models reads the whole text so
    far: time grows with its square."""
    from fastnn._validation import check_int, check_scalar
    from fastnn.data.text import word_ids
    from fastnn.init import as_rng
    where = "sample"
    if not callable(getattr(model, "prob_vector", None)):
        raise TypeError(f"{where}: 'model' must be a language model (with prob_vector: train's first result or "
                        f"fastnn.io.load_model's); got {type(model).__name__}.")
    sentences = check_int(sentences, "sentences", where, low=1)
    max_len = check_int(max_len, "max_len", where, low=1)
    check_scalar(temperature, "temperature", where, low=0, low_open=True)
    rng = as_rng(seed, where, "seed")
    if isinstance(prompt, str):
        raise TypeError(f"{where}: 'prompt' must be a list of words (or ids); got the string {prompt!r}: pass "
                        f"{prompt!r}.split().")
    prompt = list(prompt)
    if prompt and all(isinstance(w, str) for w in prompt):
        prompt = word_ids(normalize_like(model, [prompt])[0], model.words, "'prompt'", where)
    ids = np.asarray(prompt)
    if ids.size and (ids.ndim != 1 or ids.dtype.kind not in "iu"):   # (int() read 1.5 as 1, </s>)
        raise TypeError(f"{where}: 'prompt' must be a list of words or of word ids; got {prompt!r}.")
    prompt = [int(i) for i in ids]
    bad = [i for i in prompt if not 0 <= i < model.vocab_size]
    if bad:
        raise IndexError(f"{where}: 'prompt' must hold word ids in [0, {model.vocab_size}); got {bad[0]}.")
    if model.eos_id in prompt:
        raise ValueError(f"{where}: 'prompt' must not hold </s> (id {model.eos_id}): it is the start of a sentence.")
    text, out = list(prompt), []
    for k in range(sentences):
        sent = list(prompt) if k == 0 else []
        while len(sent) < max_len:
            lp = np.log(model.prob_vector(np.asarray(text, dtype=np.int64))) / temperature
            p = np.exp(lp - lp.max())
            c = np.cumsum(p)
            w = min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(c) - 1)
            if w == model.eos_id:
                break
            text.append(w)
            sent.append(w)
        text.append(model.eos_id)
        out.append(sent)
    words = getattr(model, "words", None)
    return [[words[i] for i in sent] for sent in out] if words is not None else out


def prepare(config, train, valid=None, test=None):
    """(vocab, {"train": ids, "valid": ..., "test": ...}) from sentences (lists of tokens), by the protocol above.
    Each is read once (any iterable of sentences will do).  valid and test are optional, but each part given must
    hold a token (an empty valid set would score every epoch as nan)."""
    from fastnn._validation import check_not_file, check_sentences
    from fastnn.data import Vocab, lm_stream
    _check_config(config, "prepare", (LMConfig,))
    if train is None:                   # (a KeyError 'train' otherwise: valid and test may be None, train not)
        raise TypeError("prepare: 'train' must be tokenised sentences, the training text; got None.")
    parts = {name: check_sentences(check_not_file(sents, name, "prepare", "fastnn.data.read_sentences(path)"),
                                   f"prepare: '{name}'")
             for name, sents in (("train", train), ("valid", valid), ("test", test)) if sents is not None}
    for name, sents in parts.items():
        if not any(len(s) for s in sents):
            extra = "" if name == "train" else " Pass None to leave it out."
            raise ValueError(f"prepare: '{name}' must hold at least one token; got none in its {len(sents)} "
                             f"sentences.{extra}")
    vocab = Vocab.build(parts["train"], min_count=config.min_count)
    return vocab, {name: lm_stream(sents, vocab) for name, sents in parts.items()}


class _LMProgress:
    """Progress bar whose title carries the latest valid perplexity (wraps fastnn.train.Progress)."""

    def __init__(self, inner):
        self.inner, self.valid = inner, None

    def start(self, title, total, **kw):
        extra = f" (valid ppl {self.valid:.2f})" if self.valid is not None else ""
        self.inner.start(title + extra, total, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def train(config, vocab, streams, *, checkpoint=None, resume=False, quiet=False, on_nonfinite="raise", say=None):
    """(model, history): the model `config` describes, trained on streams["train"] (n-gram: counted; neural: with
    fastnn.train.Trainer, scored by mean_nll on streams["valid"] after every epoch, lower is better, the best epoch
    kept).  say : callable taking one progress line, or None.  checkpoint / resume (neural LMs only): see
    fastnn.train.Trainer; a resumed run must have the Config (but its RESUMABLE fields: epochs, patience,
    max_minutes) and the streams of the run that wrote the checkpoint (recipes.config.run_settings)."""
    from fastnn.models.neural_lm import as_stream
    say = say or (lambda m: None)
    config = _check_config(config, "train", tuple(CONFIGS.values()))
    _check_vocab(vocab, "train")
    expected = "a dict with 'train' and optionally 'valid' and 'test' (prepare's second result)"
    if not isinstance(streams, dict):
        raise TypeError(f"train: 'streams' must be {expected}; got {type(streams).__name__}.")
    if "train" not in streams or set(streams) - {"train", "valid", "test"}:
        raise ValueError(f"train: 'streams' must be {expected}; got the keys {', '.join(map(repr, streams))}.")
    # checked here, where the caller's names are: an id past the vocabulary would otherwise surface deep in training
    # as a kernel's IndexError, and sentences as a NumPy error
    # valid or test None: left out, as prepare's
    streams = {name: s for name, s in streams.items() if s is not None or name == "train"}
    streams = {name: as_stream(s, len(vocab), f"train: streams[{name!r}]", eos_id=vocab.eos_id,
                               words=vocab.words)
               for name, s in streams.items()}
    for name, s in streams.items():     # (an empty valid stream failed in mean_nll after the first epoch's work)
        if not len(s):
            raise ValueError(f"train: streams[{name!r}] must hold at least one token; got none.")
    if config.arch == "ngram":
        from fastnn.models.ngram import DeletedInterpolation, KneserNey
        if checkpoint is not None or resume:    # (ignored: no checkpoint was written, and nothing was resumed)
            raise ValueError(f"NGramConfig: an n-gram model is counted in one pass, not trained in epochs: "
                             f"'checkpoint' and 'resume' do not apply; got checkpoint={checkpoint!r}, "
                             f"resume={resume!r}.")
        if config.smoothing == "di":
            if "valid" not in streams:
                raise ValueError("NGramConfig: 'smoothing' di needs valid text (EM fits the interpolation weights on "
                                 "it).")
            if np.array_equal(streams["valid"], streams["train"]):
                # (EM then gives the longest n-grams all the weight: Brown's test perplexity 2.4e8, silently)
                raise ValueError("NGramConfig: 'smoothing' di fits its interpolation weights by EM on held-out text; "
                                 "got the training text as the valid text. Give held-out valid text.")
            model = DeletedInterpolation(config.order, words=vocab.words).fit(
                streams["train"], len(vocab), vocab.eos_id, valid=streams["valid"])
        else:
            model = KneserNey(config.order, words=vocab.words).fit(streams["train"], len(vocab), vocab.eos_id)
        return model, []
    return _train_neural(config, vocab, streams, checkpoint, resume, quiet, on_nonfinite, say)


def _check_config(config, where, kinds):
    """`config` checked again (a field set after it was made, config.direct = "no", was never checked), or a TypeError
    unless it is one of the Config classes `kinds` (another recipe's Config lacks their fields: an AttributeError
    from deep inside otherwise)."""
    if not isinstance(config, kinds):
        raise TypeError(f"{where}: 'config' must be a {' or '.join(k.__name__ for k in kinds)}; got "
                        f"{type(config).__name__}.")
    return dataclasses.replace(config)


def _check_vocab(vocab, where):
    """A TypeError unless `vocab` is a fastnn.data.Vocab (an AttributeError on .eos_id from deep inside otherwise)."""
    from fastnn.data import Vocab
    if not isinstance(vocab, Vocab):
        raise TypeError(f"{where}: 'vocab' must be a fastnn.data.Vocab (prepare's first result); got "
                        f"{type(vocab).__name__}.")


def build_model(config, vocab_size, *, eos_id=1, counts=None, words=None, **options):
    """The neural LM `config` describes (NPLM, RNNLM or LSTMLM), over `vocab_size` words, initialised from
    config.seed; eos_id, counts (output bias, classes) and words come from the data (a Vocab), `options` are the
    model's own arguments that no Config holds (dtype, word_class, fused, ...).

    >>> model = build_model(RNNConfig(hidden=16, classes=0), 10)
    >>> model.hidden, model.embed, model.activation, model.dropout_p
    (16, 16, 'tanh', 0.0)
    """
    from fastnn.models.lstmlm import LSTMLM
    from fastnn.models.nplm import NPLM
    from fastnn.models.rnnlm import RNNLM

    config = _check_config(config, "build_model", (NPLMConfig, RNNConfig, LSTMConfig))
    c = config
    data = dict(eos_id=eos_id, rng=c.seed, counts=counts, words=words, **options)
    if c.arch == "nplm":
        return NPLM(vocab_size, order=c.order, dim=c.dim, hidden=c.hidden, direct=c.direct, classes=c.classes,
                    dropout=c.dropout, init_scale=c.init_scale, **data)
    shared = dict(hidden=c.hidden, embed=c.embed, classes=c.classes, dropout=c.dropout, clip=c.clip_value,
                  init_scale=c.init_scale, **data)
    if c.arch == "lstm":
        return LSTMLM(vocab_size, forget_bias=c.forget_bias, layers=c.layers, **shared)
    return RNNLM(vocab_size, activation=c.activation, init=c.init, **shared)


def build(config, vocab, stream):
    """(model, batches, learning rate or schedule) of a neural LM `config` over the training ids `stream` (or
    tokenised sentences, encoded with `vocab`, as train's streams)."""
    from fastnn import optim
    from fastnn.models.neural_lm import as_stream
    from fastnn.models.nplm import contexts
    from fastnn.models.rnnlm import BPTTBatches
    from fastnn.optim import InverseDecay
    from fastnn.train import ArrayBatches

    # checked here too: build is public (a list of sentences failed in NumPy, a vocabulary size as an AttributeError)
    c = _check_config(config, "build", (NPLMConfig, RNNConfig, LSTMConfig))
    _check_vocab(vocab, "build")
    eos = vocab.eos_id
    stream = as_stream(stream, len(vocab), "build", eos_id=eos, words=vocab.words)
    model = build_model(c, len(vocab), eos_id=eos, counts=vocab.counts, words=vocab.words)
    if c.arch == "nplm":
        c.check_machine()
        model.out.precision = c.output_precision
        data = ArrayBatches(contexts(stream, c.order, eos), stream, batch_size=c.batch_size)
        return model, data, InverseDecay(c.lr, c.lr_decay)
    data = BPTTBatches(stream, batch_size=c.batch_size, block=c.bptt_block, bptt=c.bptt, eos_id=eos)
    return model, data, optim.HalveOnPlateau(c.lr, threshold=0.003)


# The rate halves on each plateau of valid perplexity; after MAX_HALVINGS halvings (1/1024 of it) an epoch moves it by
# less than 0.01 (`embed train`'s RNN objective on 1.5 M words went on for 16 such epochs: 196.27 -> 196.26, half the
# run), so training ends there, as at a patience stop.  Brown's default RNN LM reaches it at its patience stop.
MAX_HALVINGS = 10


def halved_out(lr):
    """True once the learning rate `lr` (a HalveOnPlateau; any other schedule: never) has halved MAX_HALVINGS times."""
    return getattr(lr, "n_reductions", 0) >= MAX_HALVINGS


def _train_neural(config, vocab, streams, checkpoint, resume, quiet, on_nonfinite, say):
    from fastnn import optim
    from fastnn.train import Trainer, TrainingInterrupted

    c = config
    if "valid" not in streams:
        raise ValueError(f"{type(c).__name__}: a neural LM needs valid text (model selection and early stopping).")
    model, data, lr = build(c, vocab, streams["train"])
    opt = optim.by_name(c.optimizer, model.parameters(), lr, weight_decay=c.weight_decay)
    valid = streams["valid"]

    def callback(trainer, rec):
        prog.valid = perplexity_from_nll(rec["valid"]) if rec["valid"] is not None else None
        say(f"  valid ppl {prog.valid:.2f}, {len(streams['train']) / max(rec['seconds'], 1e-9):,.0f} tokens/s")
        return halved_out(lr)

    trainer = Trainer(model, opt, data, epochs=c.epochs, validate=lambda m: mean_nll(m, valid),
                      mode="min", patience=c.patience, clip_norm=c.clip_norm or None,
                      checkpoint=checkpoint, seed=c.seed, quiet=quiet, callback=callback, max_minutes=c.max_minutes,
                      on_nonfinite=on_nonfinite, metric=("valid ppl", perplexity_from_nll),
                      settings=run_settings(c, train=streams["train"], valid=valid))
    prog = _LMProgress(trainer.progress)
    trainer.progress = prog
    say(repr(model))
    try:
        history = trainer.fit(resume=resume)
    except TrainingInterrupted as stop:
        stop.result = (model, stop.result)
        raise
    return model, history
