"""`fastnn lm train|eval`: n-gram, NPLM and RNN language models on plain text (one sentence per line).

Protocol (Bengio et al. 2003; ../shared/data/README.md): the vocabulary is every training type seen more than 3
times (--min-count 4) plus <unk> and </s>; every sentence ends with </s>, which is predicted and counted; perplexity
= exp(mean NLL over all predicted tokens).  The defaults of `lm train` are the settings measured to reach the numbers
in the README on the Brown split, so `fastnn lm train --model rnn --train .. --valid .. --out m.npz` reproduces them.
"""
import math
import sys
import time

import numpy as np

from fastnn.cli._common import NONFINITE, CLIError, add_on_nonfinite, check_resume, existing_file, print_json

# Per-model defaults (None: not used by that model).  Chosen on Brown valid; see README.md, "Language models".
DEFAULTS = {
    "ngram": dict(order=3, smoothing="kn"),
    "nplm": dict(order=5, dim=60, hidden=100, direct=False, epochs=3, lr=0.04, lr_decay=0.0, weight_decay=0.0,
                 batch_size=128, dropout=0.0, optimizer="adagrad", max_minutes=None),
    "rnn": dict(hidden=100, embed=None, classes=100, epochs=30, lr=0.05, weight_decay=0.0, batch_size=64, bptt=0,
                bptt_block=20, dropout=0.0, activation="tanh", init="glorot", clip_norm=5.0, clip_value=0.0,
                optimizer="adagrad", max_minutes=30.0, patience=3),
}


def register(sub):
    p = sub.add_parser("lm", help="train and evaluate language models (n-gram, Bengio NPLM, Elman RNN LM)")
    lsub = p.add_subparsers(dest="lm_command", metavar="{train,eval}")
    lsub.required = True

    t = lsub.add_parser("train", help="train a language model; prints valid (and test) perplexity")
    t.add_argument("--model", required=True, choices=["ngram", "nplm", "rnn"])
    t.add_argument("--train", required=True, metavar="F", help="training text, one sentence per line")
    t.add_argument("--valid", metavar="F", help="validation text (model selection, early stopping)")
    t.add_argument("--test", metavar="F", help="also report the test perplexity at the end")
    t.add_argument("--out", required=True, metavar="M.npz", help="model file to write")
    t.add_argument("--min-count", type=int, default=4, help="keep training types seen at least this often (default 4"
                                                           ", i.e. more than 3 times); the rest become <unk>")
    t.add_argument("--order", type=int, help="n-gram order (default 3) / NPLM n: context n-1 words (default 5)")
    t.add_argument("--smoothing", choices=["kn", "di"],
                   help="n-gram: kn = interpolated modified Kneser-Ney (default); di = deleted interpolation (Bengio "
                        "et al. 2003), weights per context-frequency class fitted by EM on --valid")
    t.add_argument("--epochs", type=int, help="training epochs (neural models)")
    t.add_argument("--lr", type=float, help="initial learning rate")
    t.add_argument("--lr-decay", type=float, help="NPLM: r in lr_t = lr / (1 + r t) (t = updates)")
    t.add_argument("--optimizer", choices=["sgd", "adagrad"], help="sgd (default) or adagrad")
    t.add_argument("--weight-decay", type=float, help="L2 on weights and embeddings (not biases)")
    t.add_argument("--batch-size", type=int, help="examples per update (NPLM) / parallel streams (RNN)")
    t.add_argument("--hidden", type=int, help="hidden units")
    t.add_argument("--dim", type=int, help="NPLM word feature size m")
    t.add_argument("--embed", type=int, help="RNN input embedding size (default: --hidden)")
    t.add_argument("--direct", dest="direct", action="store_true", default=None,
                   help="NPLM direct connections from the features to the output")
    t.add_argument("--no-direct", dest="direct", action="store_false")
    t.add_argument("--dropout", type=float, help="dropout probability (0: none)")
    t.add_argument("--bptt", type=int, help="RNN: extra steps of BPTT before each block (Mikolov's -bptt)")
    t.add_argument("--bptt-block", type=int, help="RNN: tokens per stream per update (truncated-BPTT segment)")
    t.add_argument("--classes", type=int, help="RNN: frequency classes of the factorized output (0: full softmax)")
    t.add_argument("--activation", choices=["tanh", "sigmoid", "relu"], help="RNN activation")
    t.add_argument("--init", choices=["glorot", "identity"], help="RNN W_hh init (identity + relu = IRNN)")
    t.add_argument("--clip-norm", type=float, help="clip the global gradient norm (0: off)")
    t.add_argument("--clip-value", type=float, help="RNN: clip the BPTT error element-wise (0: off)")
    t.add_argument("--max-minutes", type=float, help="training-time budget: no epoch starts that would end past it "
                                                    "(estimated from the longest epoch so far; RNN default 30)")
    t.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a better valid (RNN default 3; the best epoch's "
                        "parameters are kept)")
    t.add_argument("--threads", type=int, help="BLAS threads (default: the BLAS library's default)")
    t.add_argument("--kernel-threads", type=int, default=1,
                   help="OpenMP threads of fastnn's own kernels (default 1: they are memory-bound here, and idle "
                        "OpenMP threads spin and slow the BLAS calls down unless OMP_WAIT_POLICY=PASSIVE)")
    t.add_argument("--seed", type=int, default=0)
    add_on_nonfinite(t)
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--json", action="store_true", help="print the result as one JSON object")
    t.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (every epoch and on Ctrl-C)")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    t.set_defaults(func=run_train)

    e = lsub.add_parser("eval", help="perplexity of a model (optionally mixed with a second one) on a text")
    e.add_argument("--model", required=True, metavar="M.npz")
    e.add_argument("--data", required=True, metavar="F")
    e.add_argument("--mix", metavar="M2.npz", help="interpolate with this model (same vocabulary)")
    e.add_argument("--weight", default="0.5", help="weight of --model in the mixture: a number in [0, 1] or 'em'")
    e.add_argument("--tune-on", metavar="VALID", help="text on which EM fits the weight (required with --weight em)")
    e.add_argument("--threads", type=int, help="BLAS threads")
    e.add_argument("--kernel-threads", type=int, default=1, help="OpenMP threads of fastnn's kernels (default 1)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_eval)


# ---- files -------------------------------------------------------------------------------------------------------

def _read(path):
    from fastnn.data import read_sentences
    existing_file(path)
    try:
        return read_sentences(path)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None


def load_lm(path):
    """(model, words) from a fastnn model file written by `lm train`."""
    from fastnn import io
    existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            words = z["lm_words"].tolist() if "lm_words" in files else None
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the same user error)
        raise CLIError(f"{path} is not a readable .npz model file ({type(exc).__name__}: {exc})") from None
    try:
        if io.HEADER not in files:
            raise CLIError(f"{path} is not a fastnn model file")
        model = io.load_model(path)
        words = getattr(model, "words", None)
    except (ValueError, TypeError, KeyError) as exc:
        raise CLIError(f"{path}: {exc}") from None
    if words is None:
        raise CLIError(f"{path} holds no vocabulary; train it with `fastnn lm train`")
    return model, words


def _set_threads(blas, kernels):
    """--threads: the BLAS pool (through threadpoolctl); --kernel-threads: fastnn's OpenMP kernels.
    On a 2-core machine a busy 2-thread OpenBLAS plus 2 spinning OpenMP threads run the output layer 2-3x slower
    than BLAS alone with single-threaded kernels (bench/bench_lm.py)."""
    import fastnn
    for name, n in (("--threads", blas), ("--kernel-threads", kernels)):
        if n is not None and n == 0:
            raise CLIError(f"{name} must not be 0 (a positive count, or -1 for all CPUs)")
    if kernels is not None:
        fastnn.set_num_threads(kernels)
    if blas is not None:
        from fastnn._threads import limit_blas_threads
        limit_blas_threads(blas)


def _logprobs(model, stream):
    return np.asarray(model.token_logprobs(stream), dtype=np.float64)


# ---- train -------------------------------------------------------------------------------------------------------

def _opt(args, model, key):
    v = getattr(args, key)
    if v is None:
        v = DEFAULTS[model].get(key)
    return v


class _LMProgress:
    """Progress bar whose title carries the latest valid perplexity (wraps fastnn.train.Progress)."""

    def __init__(self, inner):
        self.inner, self.valid = inner, None

    def start(self, title, total, **kw):
        extra = f" (valid ppl {self.valid:.2f})" if self.valid is not None else ""
        self.inner.start(title + extra, total, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_train(args):
    from fastnn.data import Vocab, count_oov, lm_stream

    _set_threads(args.threads, args.kernel_threads)
    if args.min_count < 1:
        raise CLIError(f"--min-count must be >= 1; got {args.min_count}")
    check_resume(args)
    train_s = _read(args.train)
    valid_s = _read(args.valid) if args.valid else None
    test_s = _read(args.test) if args.test else None
    vocab = Vocab.build(train_s, min_count=args.min_count)
    streams = {"train": lm_stream(train_s, vocab)}
    if valid_s is not None:
        streams["valid"] = lm_stream(valid_s, vocab)
    if test_s is not None:
        streams["test"] = lm_stream(test_s, vocab)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"vocabulary {len(vocab)} (types seen >= {args.min_count} times + <unk>, </s>); tokens "
        + ", ".join(f"{k} {len(v)}" for k, v in streams.items()))
    t0 = time.perf_counter()
    if args.model == "ngram":
        from fastnn import io
        from fastnn.models.ngram import DeletedInterpolation, KneserNey
        order = _opt(args, "ngram", "order")
        if order < 1:
            raise CLIError(f"--order must be >= 1; got {order}")
        if _opt(args, "ngram", "smoothing") == "di":
            if "valid" not in streams:
                raise CLIError("--smoothing di needs --valid F (EM fits the interpolation weights on it)")
            model = DeletedInterpolation(order, words=vocab.words).fit(streams["train"], len(vocab), vocab.eos_id,
                                                                       valid=streams["valid"])
        else:
            model = KneserNey(order, words=vocab.words).fit(streams["train"], len(vocab), vocab.eos_id)
        io.save_model(args.out, model)
        history = []
    else:
        model, history = _train_neural(args, vocab, streams, say)
    seconds = time.perf_counter() - t0
    result = {"model": args.model, "out": args.out, "vocab": len(vocab), "train_tokens": int(len(streams["train"])),
              "seconds": round(seconds, 1)}
    if history:
        tr_seconds = sum(h["seconds"] for h in history)
        result["epochs"] = len(history)
        result["train_tokens_per_s"] = round(len(history) * len(streams["train"]) / max(tr_seconds, 1e-9))
    for split, sents in (("valid", valid_s), ("test", test_s)):
        if sents is not None:
            lp = _logprobs(model, streams[split])
            result[f"{split}_perplexity"] = round(float(math.exp(-lp.mean())), 3)
            result[f"{split}_oov_as_unk"] = count_oov(sents, vocab)
    if args.json:
        print_json(result)
    else:
        print("  ".join(f"{k} {v}" for k, v in result.items()))
    return 0


def _train_neural(args, vocab, streams, say):
    from fastnn import io, optim
    from fastnn.models.nplm import NPLM, InverseDecay, contexts
    from fastnn.models.rnnlm import RNNLM, BPTTBatches
    from fastnn.train import ArrayBatches, Trainer

    kind = args.model
    g = lambda key: _opt(args, kind, key)  # noqa: E731
    for key in ("epochs", "batch_size", "hidden"):
        if g(key) is None or g(key) < (0 if key == "epochs" else 1):
            raise CLIError(f"--{key.replace('_', '-')} must be a positive integer; got {g(key)}")
    for key in ("lr", "weight_decay", "dropout", "clip_norm", "clip_value", "lr_decay"):
        v = g(key)
        if v is not None and not (v >= 0 and math.isfinite(v)):
            raise CLIError(f"--{key.replace('_', '-')} must be a finite number >= 0; got {v}")
    if g("dropout") is not None and g("dropout") >= 1:
        raise CLIError(f"--dropout must be < 1; got {g('dropout')}")
    if "valid" not in streams:
        raise CLIError(f"--model {kind} needs --valid F (model selection and early stopping)")
    V, eos = len(vocab), vocab.eos_id
    counts = vocab.counts
    try:
        if kind == "nplm":
            order = g("order")
            if order < 2:
                raise CLIError(f"--order must be >= 2 for the NPLM; got {order}")
            model = NPLM(V, order=order, dim=g("dim"), hidden=g("hidden"), direct=g("direct"), dropout=g("dropout"),
                         eos_id=eos, rng=args.seed, counts=counts, words=vocab.words)
            s = streams["train"]
            data = ArrayBatches(contexts(s, order, eos), s, batch_size=g("batch_size"))
            lr = InverseDecay(g("lr"), g("lr_decay"))
        else:
            classes = g("classes")
            if classes < 0:
                raise CLIError(f"--classes must be >= 0; got {classes}")
            if g("bptt") < 0 or g("bptt_block") < 1:
                raise CLIError(f"--bptt must be >= 0 and --bptt-block >= 1; got {g('bptt')} and {g('bptt_block')}")
            model = RNNLM(V, hidden=g("hidden"), embed=g("embed"), activation=g("activation"), init=g("init"),
                          classes=classes, dropout=g("dropout"), clip=g("clip_value"), eos_id=eos, rng=args.seed,
                          counts=counts, words=vocab.words)
            data = BPTTBatches(streams["train"], batch_size=g("batch_size"), block=g("bptt_block"), bptt=g("bptt"),
                               eos_id=eos)
            lr = optim.HalveOnPlateau(g("lr"), threshold=0.003)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    opt = optim.by_name(g("optimizer"), model.parameters(), lr, weight_decay=g("weight_decay"))
    valid = streams["valid"]

    def callback(trainer, rec):
        prog.valid = math.exp(rec["valid"]) if rec["valid"] is not None else None
        say(f"  valid perplexity {prog.valid:.2f}, {len(streams['train']) / max(rec['seconds'], 1e-9):,.0f} "
            f"tokens/s")

    def validate(m):
        return float(-np.mean(m.token_logprobs(valid)))              # mean NLL; perplexity = exp

    clip = g("clip_norm")
    trainer = Trainer(model, opt, data, epochs=g("epochs"), validate=validate, mode="min",
                      patience=g("patience"), clip_norm=clip if clip else None, checkpoint=args.checkpoint,
                      seed=args.seed, quiet=args.quiet, callback=callback, max_minutes=g("max_minutes"),
                      on_nonfinite=NONFINITE[args.on_nonfinite])
    prog = _LMProgress(trainer.progress)
    trainer.progress = prog
    say(repr(model))
    try:
        history = trainer.fit(resume=args.resume)
    except (ValueError, TypeError) as exc:
        if args.resume:
            raise CLIError(f"cannot resume from {args.checkpoint}: {exc}") from None
        raise
    io.save_model(args.out, model)
    return model, history


# ---- eval --------------------------------------------------------------------------------------------------------

def run_eval(args):
    from fastnn.data import Vocab, count_oov, lm_stream
    from fastnn.models.mixture import em_weight, mix_logprobs

    _set_threads(args.threads, args.kernel_threads)
    model, words = load_lm(args.model)
    vocab = Vocab(words)
    sents = _read(args.data)
    stream = lm_stream(sents, vocab)
    lp = _logprobs(model, stream)
    result = {}
    if args.mix:
        model2, words2 = load_lm(args.mix)
        if list(words2) != list(words):
            raise CLIError(f"{args.mix} has a different vocabulary from {args.model} ({len(words2)} vs {len(words)} "
                           "words); both models must be trained with the same vocabulary")
        lp2 = _logprobs(model2, stream)
        if args.weight == "em":
            if not args.tune_on:
                raise CLIError("--weight em needs --tune-on VALID (never tune on the evaluated data)")
            tune = lm_stream(_read(args.tune_on), vocab)
            w, _ = em_weight(_logprobs(model, tune), _logprobs(model2, tune))
        else:
            try:
                w = float(args.weight)
            except ValueError:
                raise CLIError(f"--weight must be a number in [0, 1] or 'em'; got {args.weight!r}") from None
            if not 0 <= w <= 1:
                raise CLIError(f"--weight must be in [0, 1]; got {w}")
        lp = mix_logprobs(lp, lp2, w)
        result["weight"] = round(w, 6)
    nll = float(-lp.mean())
    result = {"perplexity": round(math.exp(nll), 4), "tokens": int(lp.size), "oov_as_unk": count_oov(sents, vocab),
              **result}
    if args.json:
        print_json(result)
    else:
        print("  ".join(f"{k} {v}" for k, v in result.items()))
    return 0
