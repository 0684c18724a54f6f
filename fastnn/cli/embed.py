"""`fastnn embed {train,neighbors}`: word vectors pre-trained on unlabeled text (fastnn.embed), for the tagger.

    fastnn embed train --objective ranking --text brown.txt eng.train --dim 50 --out vectors.txt
    fastnn tagger train --train eng.train --dev eng.testa --task ner=3 --pretrained vectors.txt --extend-vocab ...
    fastnn embed neighbors --vectors vectors.txt france jesus monday
"""
import math
import os
import sys

from fastnn.cli._common import (NONFINITE, CLIError, add_on_nonfinite, add_threads, check_resume, check_writable,
                                existing_file, print_json, save_or_fallback, set_threads)


def register(sub):
    from fastnn.embed import DEFAULTS, OBJECTIVES, TEXT_FORMATS
    from fastnn.models.ranking import NEGATIVES

    p = sub.add_parser("embed", help="pre-train word vectors on unlabeled text (window ranking, NPLM, RNN LM); "
                                     "nearest neighbours")
    esub = p.add_subparsers(dest="embed_command", metavar="{train,neighbors}")
    esub.required = True
    r = DEFAULTS["ranking"]

    t = esub.add_parser("train", help="train word vectors and write them in word2vec text format")
    t.add_argument("--objective", required=True, choices=OBJECTIVES,
                   help="ranking: Collobert & Weston's window-ranking LM; nplm: Bengio's NPLM (its features C); "
                        "rnn: the RNN LM (its input vectors)")
    t.add_argument("--text", required=True, nargs="+", metavar="FILE",
                   help="unlabeled text files, any number: one sentence per line (whitespace tokens), or CoNLL "
                        "column files (their first column)")
    t.add_argument("--text-format", choices=TEXT_FORMATS, default="auto",
                   help="auto (default): a file with -DOCSTART- lines, or whose first lines all have the same number "
                        ">= 2 of columns with blank lines between sentences, is read as CoNLL; else as text")
    t.add_argument("--out", required=True, metavar="VECTORS.txt", help="word2vec text file to write")
    t.add_argument("--save-model", metavar="M.npz", help="also write the trained model (fastnn model file)")
    g = t.add_argument_group("model (defaults per objective in brackets: ranking / nplm / rnn)")
    d = {k: [DEFAULTS[o][k] for o in OBJECTIVES] for k in r}
    fmt = (lambda k: " / ".join("-" if v is None else str(v) for v in d[k]))
    g.add_argument("--dim", type=int, help=f"vector size [{fmt('dim')}]")
    g.add_argument("--min-count", type=int,
                   help=f"keep normalised words seen at least this often; rarer ones become <unk> [{fmt('min_count')}]")
    g.add_argument("--window", type=int, help=f"ranking: window size, odd [{fmt('window')}]")
    g.add_argument("--order", type=int, help=f"nplm: n, the context is n-1 words [{fmt('order')}]")
    g.add_argument("--hidden", type=int, help=f"hidden units [{fmt('hidden')}]")
    g.add_argument("--negatives", choices=NEGATIVES,
                   help="ranking: the corrupting centre word is drawn uniformly over the vocabulary (Collobert & "
                        "Weston) or with p ~ count^0.75 [uniform]")
    g.add_argument("--classes", type=int, help=f"rnn: frequency classes of the output [{fmt('classes')}]")
    g.add_argument("--bptt-block", type=int, help=f"rnn: tokens per stream per update [{fmt('bptt_block')}]")
    g.add_argument("--init-scale", type=float, help=f"vectors start as U(-s, s) [{fmt('init_scale')}]")
    o = t.add_argument_group("training")
    o.add_argument("--epochs", type=int, help=f"passes over the text [{fmt('epochs')}]")
    o.add_argument("--examples-per-epoch", type=int,
                   help="ranking: windows per epoch (a random subset each epoch; default: every token)")
    o.add_argument("--lr", type=float, help=f"learning rate [{fmt('lr')}]")
    o.add_argument("--optimizer", choices=["adagrad", "sgd"], help="[adagrad] (lazy sparse rows for the vectors)")
    o.add_argument("--batch-size", type=int, help=f"windows / contexts / streams per step [{fmt('batch_size')}]")
    o.add_argument("--max-minutes", type=float,
                   help=f"training budget: no epoch starts that would end past it [{fmt('max_minutes')}]; 0 = none")
    o.add_argument("--valid-fraction", type=float, default=0.01,
                   help="random fraction of the sentences held out to score every epoch (best epoch kept) "
                        "(default %(default)s)")
    o.add_argument("--scale-std", type=float,
                   help="multiply the written vectors by one factor so that their entries have this standard "
                        "deviation (default: write them as trained)")
    o.add_argument("--seed", type=int, default=0, help="seed of initialisation, order, corruptions, held-out part")
    add_threads(o, 1)
    o.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint written every epoch, every --checkpoint-every steps and on Ctrl-C")
    o.add_argument("--checkpoint-every", type=int, default=2000, help="steps (default %(default)s)")
    o.add_argument("--resume", action="store_true", help="continue from --checkpoint (same text and options)")
    add_on_nonfinite(o)
    o.add_argument("--quiet", action="store_true", help="print nothing")
    o.add_argument("--json", action="store_true", help="print the result as one JSON object")
    t.set_defaults(func=run_train)

    n = esub.add_parser("neighbors", help="the closest words by cosine similarity (one matrix product)")
    n.add_argument("--vectors", required=True, metavar="VECTORS.txt", help="word2vec text file")
    n.add_argument("words", nargs="+", metavar="WORD",
                   help="query words (looked up as given, then lowercased with digits -> 0)")
    n.add_argument("-k", type=int, default=10, help="neighbours per word (default %(default)s)")
    n.add_argument("--json", action="store_true", help='print {"word": [["neighbour", cosine], ...]}')
    n.set_defaults(func=run_neighbors)


def _threads(n):
    set_threads(n)


def _check(args):
    ints = [("--dim", args.dim, 1), ("--min-count", args.min_count, 1), ("--window", args.window, 1),
            ("--order", args.order, 2), ("--hidden", args.hidden, 1), ("--classes", args.classes, 0),
            ("--bptt-block", args.bptt_block, 1), ("--epochs", args.epochs, 0),
            ("--examples-per-epoch", args.examples_per_epoch, 1), ("--batch-size", args.batch_size, 1),
            ("--checkpoint-every", args.checkpoint_every, 1)]
    for name, v, low in ints:
        if v is not None and v < low:
            raise CLIError(f"{name} must be >= {low}; got {v}")
    if args.window is not None and args.window % 2 == 0:
        raise CLIError(f"--window must be odd (the centre word is the one replaced); got {args.window}")
    for name, v in (("--lr", args.lr), ("--init-scale", args.init_scale), ("--scale-std", args.scale_std)):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise CLIError(f"{name} must be a finite number > 0; got {v}")
    if args.max_minutes is not None and not (args.max_minutes >= 0 and math.isfinite(args.max_minutes)):
        raise CLIError(f"--max-minutes must be a finite number >= 0; got {args.max_minutes}")
    if not 0 <= args.valid_fraction < 1:
        raise CLIError(f"--valid-fraction must be in [0, 1); got {args.valid_fraction}")
    not_for = {"ranking": ("order", "classes", "bptt_block"), "nplm": ("window", "negatives", "classes", "bptt_block",
                                                                        "examples_per_epoch"),
               "rnn": ("window", "order", "negatives", "examples_per_epoch")}[args.objective]
    for k in not_for:
        if getattr(args, k) is not None:
            raise CLIError(f"--{k.replace('_', '-')} does not apply to --objective {args.objective}")
    check_resume(args)
    for path in args.text:
        existing_file(path)
    check_writable(args, "out", "save_model", "checkpoint")


def run_train(args):
    from fastnn import embed
    from fastnn.data.vectors import write_vectors

    _check(args)
    _threads(args.threads)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    report = []
    try:
        sents = embed.read_corpus(args.text, args.text_format, report=report)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    for path, fmt, n_s, n_t in report:
        say(f"{path}: {fmt}, {n_s:,} sentences, {n_t:,} tokens")
    opts = {k: getattr(args, k) for k in embed.DEFAULTS[args.objective] if getattr(args, k, None) is not None}
    if args.max_minutes == 0:
        opts["max_minutes"] = None
    if args.resume:
        say(f"resuming from {args.checkpoint}")
    try:
        res = embed.pretrain(args.objective, sents, valid_fraction=args.valid_fraction, seed=args.seed,
                             checkpoint=args.checkpoint, resume=args.resume, checkpoint_every=args.checkpoint_every,
                             quiet=args.quiet, say=say,
                             on_nonfinite=NONFINITE[args.on_nonfinite], **opts)
    except (ValueError, TypeError) as e:
        if args.resume:
            raise CLIError(f"--resume {args.checkpoint}: {e}") from None
        raise CLIError(str(e)) from None
    vectors = res.vectors if args.scale_std is None else embed.scale_vectors(res.vectors, args.scale_std)
    out = save_or_fallback(args.out, None, "--out", save=lambda p, _: write_vectors(p, res.words, vectors))
    saved = save_or_fallback(args.save_model, res.model, "--save-model") if args.save_model else None
    hist = res.history
    train_secs = sum(h["seconds"] for h in hist)
    n_ex = res.epoch_examples * len(hist)
    result = {"objective": args.objective, "out": out, "words": len(res.words), "dim": int(vectors.shape[1]),
              "train_tokens": res.train_tokens, "epochs": len(hist), "seconds": round(res.seconds, 1),
              "train_seconds": round(train_secs, 1),
              "examples_per_s": round(n_ex / train_secs) if train_secs > 0 else None,
              "best_epoch": next((h["epoch"] for h in reversed(hist) if h["best"]), None),
              "valid": [None if h["valid"] is None else round(h["valid"], 4) for h in hist],
              "vector_std": round(float(vectors.std()), 4)}
    if args.json:
        print_json(result)
    elif not args.quiet:
        best = f", best epoch {result['best_epoch']}" if result["best_epoch"] else ""
        rate = f", {result['examples_per_s']:,} examples/s" if result["examples_per_s"] else ""
        print(f"{result['words']:,} vectors of {result['dim']} written to {out} ({result['epochs']} epochs in "
              f"{result['seconds']} s{rate}{best}; valid {args.objective} "
              f"{'hinge' if args.objective == 'ranking' else 'NLL'} {result['valid'][-1] if hist else None})")
    return 0 if out == args.out and saved == args.save_model else 1


def run_neighbors(args):
    from fastnn.data.vectors import read_vectors
    from fastnn.embed import nearest_neighbors

    if args.k < 1:
        raise CLIError(f"-k must be >= 1; got {args.k}")
    existing_file(args.vectors)
    try:
        words, vecs = read_vectors(args.vectors)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if len(words) < 2:
        raise CLIError(f"{args.vectors} must hold at least 2 words; got {len(words)}")
    unknown = []
    found = []
    index = set(words)
    from fastnn.data.conll import normalize_word
    for w in args.words:
        (found if (w in index or normalize_word(w) in index) else unknown).append(w)
    if unknown:
        raise CLIError(f"not in {args.vectors} ({len(words):,} words): {' '.join(unknown)}")
    res = nearest_neighbors(words, vecs, found, k=args.k)
    if args.json:
        print_json({q: [[w, round(s, 4)] for w, s in nb] for q, nb in res.items()})
        return 0
    _print_columns(res)
    return 0


def _print_columns(res):
    """The papers' table: one column per query word, its neighbours below, best first, with cosines."""
    cols = [[q] + [f"{w} {s:.2f}" for w, s in nb] for q, nb in res.items()]
    widths = [max(map(len, c)) for c in cols]
    n = max(map(len, cols))
    out = sys.stdout
    try:
        for i in range(n):
            row = [(c[i] if i < len(c) else "").ljust(wd) for c, wd in zip(cols, widths)]
            out.write("  ".join(row).rstrip() + "\n")
            if i == 0:
                out.write("  ".join("-" * wd for wd in widths) + "\n")
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


__all__ = ["register", "run_train", "run_neighbors"]
