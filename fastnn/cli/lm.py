"""`fastnn lm train|eval|sample`: n-gram, NPLM, RNN and LSTM language models on plain text (one sentence per line).

Protocol (Bengio et al. 2003; ../shared/data/README.md): the vocabulary is every training type seen more than 3
times (--min-count 4) plus <unk> and </s>; every sentence ends with </s>, which is predicted and counted; perplexity
= exp(mean NLL over all predicted tokens).  The defaults of `lm train` are the settings measured to reach the numbers
in the README on the Brown split, so `fastnn lm train --model rnn --train .. --valid .. --out m.npz` reproduces them.
"""
import dataclasses
import inspect
import sys
import time

import numpy as np

from fastnn.cli._common import (NONFINITE, CLIError, add_config_options, add_run_options, add_threads, check_resume,
                                check_stdin_once, check_writable, existing_file, flag, interrupted_exit_code,
                                interrupted_note, load_model_file, option_names, print_json, same_file,
                                save_or_fallback, set_threads, train_keeping_work)
from fastnn.metrics import perplexity_from_nll
from fastnn.recipes import lm as recipe


# --weight of `lm eval --mix` when none is given
MIX_WEIGHT = "0.5"


def register(sub):
    p = sub.add_parser("lm", help="train and evaluate language models (n-gram, Bengio NPLM, Elman RNN LM, LSTM LM)")
    lsub = p.add_subparsers(dest="lm_command", metavar="{train,eval,sample}")
    lsub.required = True

    t = lsub.add_parser("train", help="train a language model; prints valid (and test) perplexity")
    t.add_argument("--arch", "--model", dest="arch", choices=list(recipe.CONFIGS),
                   help="model type: ngram, nplm (Bengio et al. 2003), rnn (Elman) or lstm (both with a "
                        "class-factorized output); "
                        "--model is the old spelling (required unless --preset names one)")
    t.add_argument("--train", required=True, metavar="F", help="training text, one sentence per line")
    t.add_argument("--dev", "--valid", dest="dev", metavar="F",
                   help="validation text (model selection, early stopping); --valid is the old spelling")
    t.add_argument("--test", metavar="F", help="also report the test perplexity at the end")
    t.add_argument("--out", required=True, metavar="M.npz", help="model file to write")
    t.add_argument("--preset", metavar="NAME",
                   help=f"start from a named configuration ({', '.join(recipe.PRESETS) or 'none defined yet'}); "
                        "options given explicitly override its values")
    add_config_options(t, recipe.CONFIGS)
    add_threads(t, None, "recipes.lm.DEFAULT_THREADS: the kernels all CPUs, BLAS 1")
    t.add_argument("--kernel-threads", type=int, metavar="N",
                   help="OpenMP threads of fastnn's own kernels when they should differ from --threads (default: "
                        "--threads if given, else all CPUs)")
    add_run_options(t)
    t.set_defaults(func=run_train, configs=tuple(recipe.CONFIGS.values()))   # (warnings name their fields as options)

    e = lsub.add_parser("eval", help="perplexity of a model (optionally mixed with a second one) on a text")
    e.add_argument("--model", required=True, metavar="M.npz")
    e.add_argument("--data", required=True, metavar="F")
    e.add_argument("--mix", metavar="M2.npz", help="interpolate with this model (same vocabulary)")
    e.add_argument("--weight", help=f"weight of --model in the mixture: a number in [0, 1] or 'em' (default "
                                    f"{MIX_WEIGHT})")
    e.add_argument("--tune-on", metavar="VALID", help="text on which EM fits the weight (required with --weight em)")
    e.add_argument("--context-bins", metavar="TRAIN",
                   help="with --weight em: one weight per frequency bin of the context, floor(log2(1 + count)) of the "
                        "count in TRAIN of the 2 tokens before each word (Bengio et al. 2003, section 4.1)")
    add_threads(e, None, "recipes.lm.DEFAULT_THREADS: the kernels all CPUs, BLAS 1")
    e.add_argument("--kernel-threads", type=int, metavar="N",
                   help="OpenMP threads of fastnn's kernels when they should differ from --threads (default: "
                        "--threads if given, else all CPUs)")
    e.add_argument("--per-sentence", action="store_true",
                   help="score each line on its own (as if it were the whole text: n-best rescoring) and print one "
                        "line per sentence, 'logprob tokens perplexity sentence' (natural log; </s> counted); with "
                        "--json one JSON object per line")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    e.set_defaults(func=run_eval)

    defaults = {k: v.default for k, v in inspect.signature(recipe.sample).parameters.items()}   # (one place)
    g = lsub.add_parser("sample", help="sentences drawn from a model, word by word")
    g.add_argument("--model", required=True, metavar="M.npz")
    g.add_argument("--sentences", type=int, metavar="N", help=f"how many (default {defaults['sentences']})")
    g.add_argument("--prompt", metavar="WORDS", help="the words the first sentence starts with, e.g. 'the jury'")
    g.add_argument("--temperature", type=float, metavar="T",
                   help=f"scales the log-probabilities by 1/T: below 1 sharper (default {defaults['temperature']})")
    g.add_argument("--max-len", type=int, metavar="N",
                   help=f"words at most per sentence (default {defaults['max_len']})")
    g.add_argument("--seed", type=int, metavar="S", help=f"the same seed, the same sentences (default "
                                                         f"{defaults['seed']})")
    add_threads(g, None, "recipes.lm.DEFAULT_THREADS: the kernels all CPUs, BLAS 1")
    g.add_argument("--kernel-threads", type=int, metavar="N",
                   help="OpenMP threads of fastnn's kernels when they should differ from --threads (default: "
                        "--threads if given, else all CPUs)")
    g.add_argument("--json", action="store_true", help='print {"sentences": [[words], ...]} as one JSON object')
    g.set_defaults(func=run_sample)


# ---- files -------------------------------------------------------------------------------------------------------

def _read(path, option, quiet=False):
    """The sentences of a text file, one per line; a CoNLL column file (conll.detect_format) gives its words, and says
    so (read as text, its tags were words of the language model, silently)."""
    from fastnn.data.conll import read_words
    existing_file(path)
    try:
        sents, fmt = read_words(path, "auto", where=option)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if not sents:
        raise CLIError(f"{option} {path} is empty; it must contain at least one token")
    if fmt == "conll" and not quiet:
        print(f"{option} {path}: CoNLL columns: the words of its first column are read, one sentence per block",
              file=sys.stderr)
    return sents


def load_lm(path, option="--model"):
    """(model, words) from a fastnn model file written by `lm train` (or `embed train --save-model`: its words are
    normalised, and recipe.normalize_like spells text so), given as `option` (read through fastnn.io, as every command
    reads a model: a file of another kind is said to be one)."""
    try:
        model = load_model_file(path, option)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise CLIError(f"{option} {path}: {exc}") from None
    if not hasattr(model, "token_logprobs"):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a language model")
    words = getattr(model, "words", None)
    if words is None:
        raise CLIError(f"{path} holds no vocabulary; train it with `fastnn lm train`")
    from fastnn.embed import text_normalizer
    try:                        # (how its words were spelled: a name this fastnn does not know, said before any work)
        text_normalizer(model, f"{option} {path}")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return model, words


def _set_threads(args):
    """--threads N: kernels and BLAS; --kernel-threads: the kernels alone; left alone, recipes.lm.DEFAULT_THREADS."""
    blas = args.threads if args.threads is not None else recipe.DEFAULT_THREADS["blas"]
    kernels = next(n for n in (args.kernel_threads, args.threads, recipe.DEFAULT_THREADS["kernels"]) if n is not None)
    set_threads(blas, kernels=kernels, kernels_option="--kernel-threads" if args.kernel_threads is not None else None)


def _logprobs(model, stream):
    return np.asarray(model.token_logprobs(stream), dtype=np.float64)


# ---- train -------------------------------------------------------------------------------------------------------

def train_config(args):
    """The recipe Config of `lm train` (its parsed `args`): the preset's, then the options given (each must apply to
    the --arch); a CLIError naming the option otherwise.  `search lm` checks every sampled trial with it."""
    names = {f.name for cls in recipe.CONFIGS.values() for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    arch = args.arch or recipe.PRESETS.get(args.preset, {}).get("arch")
    if arch is None and args.preset is None:
        raise CLIError("--arch is required: ngram, nplm, rnn or lstm")
    if arch in recipe.CONFIGS:
        fields = {f.name for f in dataclasses.fields(recipe.CONFIGS[arch])}
        bad = [name for name in given if name not in fields]
        if bad:
            raise CLIError(f"{flag(bad[0])} does not apply to --arch {arch}")
    try:
        return recipe.from_preset(args.preset, args.arch, **given)
    except (ValueError, TypeError) as e:
        raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None


def run_train(args):
    from fastnn.data import count_oov

    config = train_config(args)
    if config.arch == "nplm":
        try:
            config.check_machine()
        except ValueError as e:                 # --output-precision bfloat16 without AMX: before reading the data
            raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None
    # (ignored: no checkpoint written, nothing resumed, no step to skip)
    if config.arch == "ngram" and (args.checkpoint or args.resume or args.on_nonfinite != "stop"):
        opt = "--checkpoint" if args.checkpoint else "--resume" if args.resume else "--on-nonfinite"
        raise CLIError(f"{opt} does not apply to --arch ngram: an n-gram model is counted in one pass, not trained "
                       f"in epochs")
    check_resume(args)
    check_writable(args, "out", "checkpoint", inputs=("train", "dev", "test"))
    _set_threads(args)
    if config.arch != "ngram" and args.dev is None:
        raise CLIError(f"--arch {config.arch} needs --dev F (model selection and early stopping)")
    if config.arch == "ngram" and config.smoothing == "di" and args.dev is None:
        raise CLIError("--smoothing di needs --dev F (EM fits the interpolation weights on it)")
    for opt, path, what in (("--train", args.train, "trained on"), ("--dev", args.dev, "selected on")):
        if same_file(path, args.test):      # (a test perplexity of text the model was fitted to: optimistic, silently)
            raise CLIError(f"--test {args.test} is the {opt} file: the model would be {what} the text it is tested "
                           f"on, and its perplexity would be optimistic; give held-out text")
    train_s = _read(args.train, "--train", args.quiet)
    valid_s = _read(args.dev, "--dev", args.quiet) if args.dev else None
    test_s = _read(args.test, "--test", args.quiet) if args.test else None
    try:
        vocab, streams = recipe.prepare(config, train_s, valid_s, test_s)
    except ValueError as e:                     # e.g. a --min-count no word reaches: name the option
        raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    unk = vocab.counts[vocab.unk_id] / max(1, int(vocab.counts.sum() - vocab.counts[vocab.eos_id]))
    say(f"vocabulary {len(vocab)} (types seen >= {config.min_count} times + <unk>, </s>); tokens "
        + ", ".join(f"{k} {len(v)}" for k, v in streams.items())
        # a --min-count that turns most words into <unk> gives a low perplexity that means little: say so
        + (f"; <unk> is {unk:.0%} of the training words: lower --min-count" if unk > 0.5 else ""))
    t0 = time.perf_counter()
    try:
        (model, history), stop = train_keeping_work(args, lambda: recipe.train(
            config, vocab, streams, checkpoint=args.checkpoint, resume=args.resume, quiet=args.quiet,
            on_nonfinite=NONFINITE[args.on_nonfinite], say=say), recipe.CONFIGS.values())
    except ValueError as e:                     # e.g. a --batch-size larger than the data: name the option
        raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None
    seconds = time.perf_counter() - t0
    out = save_or_fallback(args.out, model, "--out")
    result = {"model": config.arch, "out": out, "vocab": len(vocab), "train_tokens": int(len(streams["train"])),
              "seconds": round(seconds, 1)}
    if history:
        tr_seconds = sum(h["seconds"] for h in history)
        result["epochs"] = len(history)
        result["train_tokens_per_s"] = round(len(history) * len(streams["train"]) / max(tr_seconds, 1e-9))
    for split, sents in (("valid", valid_s), ("test", test_s)):
        if sents is not None:
            result[f"{split}_perplexity"] = round(recipe.perplexity(model, streams[split]), 3)
            result[f"{split}_oov_as_unk"] = count_oov(sents, vocab)
    if stop is not None:
        result["interrupted"] = True
    if args.json:
        print_json(result)
    else:
        print("  ".join(f"{k} {v}" for k, v in result.items()))
    if stop is not None:
        print(f"fastnn lm train: {interrupted_note(stop, out)}", file=sys.stderr)
        return interrupted_exit_code()
    return 0 if out == args.out else 1


# ---- eval --------------------------------------------------------------------------------------------------------

def _eval_weight(args):
    """The mixture weight option, checked before any work: 'em' or a float in [0, 1]; None without --mix, which the
    mixture's options then must not be given with (they were ignored: one model's perplexity, silently)."""
    if not args.mix:
        given = [opt for opt, v in (("--weight", args.weight), ("--tune-on", args.tune_on),
                                    ("--context-bins", args.context_bins)) if v is not None]
        if given:
            raise CLIError(f"{given[0]} is an option of the mixture: give --mix M2.npz (the second model), or leave "
                           f"{given[0]} out")
        return None
    weight = MIX_WEIGHT if args.weight is None else args.weight
    if weight == "em":
        if not args.tune_on:
            raise CLIError("--weight em needs --tune-on VALID (never tune on the evaluated data)")
        for path in (args.tune_on, args.context_bins):   # (found missing after the models and the data were read)
            if path:
                existing_file(path)
        # (weights fitted on, or bins counted in, the evaluated text: an optimistic perplexity, silently)
        for opt, path, what, give in (("--tune-on", args.tune_on, "EM would fit the weights on", "a validation"),
                                      ("--context-bins", args.context_bins, "the bins would count", "the training")):
            if same_file(path, args.data):
                raise CLIError(f"{opt} {path} is the --data file: {what} the evaluated text, and its perplexity "
                               f"would be optimistic; give {give} text")
        return "em"
    if args.context_bins:
        raise CLIError("--context-bins needs --weight em (the weights per bin are fitted by EM on --tune-on)")
    if args.tune_on:                # (a fixed weight is not fitted: the text was ignored)
        raise CLIError("--tune-on needs --weight em (EM fits the weight on it; a number is used as given)")
    try:
        w = float(weight)
    except ValueError:
        raise CLIError(f"--weight must be a number in [0, 1] or 'em'; got {weight!r}") from None
    if not 0 <= w <= 1:
        raise CLIError(f"--weight must be in [0, 1]; got {w}")
    return w


def run_eval(args):
    from fastnn.data import Vocab, count_oov, lm_stream
    from fastnn.models.mixture import context_bins, em_weight, em_weights, mix_logprobs

    check_stdin_once(args, "data", "tune_on", "context_bins")
    w = _eval_weight(args)
    existing_file(args.data)        # (a missing file was found after both models had been loaded)
    model, words = load_lm(args.model)
    if args.mix:
        model2, words2 = load_lm(args.mix, "--mix")
        if list(words2) != list(words):
            raise CLIError(f"{args.mix} has a different vocabulary from {args.model} ({len(words2)} vs {len(words)} "
                           "words); both models must be trained with the same vocabulary")
        norms = [getattr(m, "text_normalization", None) for m in (model, model2)]
        if norms[0] != norms[1]:        # (one text, read two ways: one of the models would be scored on other words)
            how = [f"as {n!r}" if n else "as written" for n in norms]
            raise CLIError(f"{args.model} reads text {how[0]} but {args.mix} {how[1]}; both models must read text "
                           f"alike (mix two models of embed train, or two of lm train)")
    _set_threads(args)
    vocab = Vocab(words)

    def read(path, option):
        # the words spelled as the model's are (an embed train model's lowercased, digits -> 0: raw text had its
        # capitalised words counted as <unk>)
        return recipe.normalize_like(model, _read(path, option))

    raw = _read(args.data, "--data")            # (--per-sentence prints each line as given)
    sents = recipe.normalize_like(model, raw)
    stream = lm_stream(sents, vocab)
    tune = lm_stream(read(args.tune_on, "--tune-on"), vocab) if args.mix and w == "em" else None
    counted = (lm_stream(read(args.context_bins, "--context-bins"), vocab) if tune is not None and args.context_bins
               else None)
    # what is scored: the text as one stream, or (--per-sentence) each sentence as a text of its own
    units = [lm_stream([s], vocab) for s in sents] if args.per_sentence else [stream]
    lps = [_logprobs(model, u) for u in units]
    result = {}
    if args.mix:
        lams = None
        if counted is not None:
            lams, _ = em_weights(_logprobs(model, tune), _logprobs(model2, tune),
                                 context_bins(tune, counted, pad_id=vocab.eos_id), n_bins=16)
            result["weights"] = [round(float(x), 4) for x in lams]
        else:
            if tune is not None:
                w, _ = em_weight(_logprobs(model, tune), _logprobs(model2, tune))
            result["weight"] = round(w, 6)
        lps = [mix_logprobs(lp, _logprobs(model2, u),
                            w if lams is None else lams[context_bins(u, counted, pad_id=vocab.eos_id)])
               for lp, u in zip(lps, units)]
    if args.per_sentence:
        for sent, lp in zip(raw, lps):
            row = {"logprob": round(float(lp.sum()), 4), "tokens": int(lp.size),
                   "perplexity": round(perplexity_from_nll(float(-lp.mean())), 4)}
            if args.json:
                print_json({**row, "sentence": " ".join(sent)})
            else:
                print(f"{row['logprob']}\t{row['tokens']}\t{row['perplexity']}\t{' '.join(sent)}")
        return 0
    lp = lps[0]
    nll = float(-lp.mean())
    result = {"perplexity": round(perplexity_from_nll(nll), 4), "tokens": int(lp.size),
              "oov_as_unk": count_oov(sents, vocab), **result}
    if args.json:
        print_json(result)
    else:
        print("  ".join(f"{k} {v}" for k, v in result.items()))
    return 0


# ---- sample ------------------------------------------------------------------------------------------------------

def run_sample(args):
    given = {name: getattr(args, name) for name in ("sentences", "temperature", "max_len", "seed")
             if getattr(args, name) is not None}
    model, words = load_lm(args.model)
    prompt = recipe.normalize_like(model, [args.prompt.split()])[0] if args.prompt else []   # (spelled as its words)
    unknown = sorted(set(prompt) - set(words))
    if unknown:
        print(f"fastnn lm sample: --prompt: {', '.join(map(repr, unknown))} not in the model's vocabulary "
              f"(read as <unk>)", file=sys.stderr)
    _set_threads(args)
    try:
        sents = recipe.sample(model, prompt=prompt, **given)
    except (ValueError, TypeError) as exc:          # a count or temperature out of range: said in option names
        message = str(exc).removeprefix("sample: ").replace(" or a numpy.random.Generator", "")
        raise CLIError(option_names(message, names=inspect.signature(recipe.sample).parameters)) from None
    if args.json:
        print_json({"sentences": sents})
    else:
        for sent in sents:
            print(" ".join(sent))
    return 0
