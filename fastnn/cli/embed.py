"""`fastnn embed {train,neighbors}`: word vectors pre-trained on unlabeled text (fastnn.embed), for the tagger.

    fastnn embed train --objective ranking --text brown.txt eng.train --dim 50 --out vectors.txt
    fastnn tagger train --train eng.train --dev eng.testa --task ner=3 --pretrained vectors.txt --extend-vocab ...
    fastnn embed neighbors --vectors vectors.txt france jesus monday
    fastnn embed neighbors --vectors ner.npz france jesus monday        # a tagger's (or --save-model's) vectors
"""
import dataclasses
import os
import sys

from fastnn.cli._common import (NONFINITE, CLIError, add_config_options, add_run_options, add_threads, check_resume,
                                check_writable, checkpoint_given, checkpoint_steps, existing_file, flag,
                                interrupted_exit_code, interrupted_note, option_names, print_json, save_or_fallback,
                                set_threads, train_keeping_work)
from fastnn.recipes import embed as recipe


def register(sub):
    from fastnn.embed import TEXT_FORMATS

    p = sub.add_parser("embed", help="pre-train word vectors on unlabeled text (window ranking, NPLM, RNN LM); "
                                     "nearest neighbours")
    esub = p.add_subparsers(dest="embed_command", metavar="{train,neighbors}")
    esub.required = True

    t = esub.add_parser("train", help="train word vectors and write them in word2vec text format")
    t.add_argument("--objective", required=True, choices=recipe.OBJECTIVES,
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
    g = t.add_argument_group("model")
    o = t.add_argument_group("training")
    add_config_options(t, recipe.CONFIGS, groups={"model": g, "training": o})
    add_threads(o, 1)
    add_run_options(o, checkpoint_every=2000)
    t.set_defaults(func=run_train, configs=tuple(recipe.CONFIGS.values()))   # (warnings name their fields as options)

    n = esub.add_parser("neighbors", help="the closest words by cosine similarity (one matrix product)")
    n.add_argument("--vectors", required=True, metavar="FILE",
                   help="word2vec/GloVe text file, or a fastnn model file (.npz) with word vectors: a tagger's, or "
                        "embed train --save-model's (an ensemble's first member)")
    n.add_argument("words", nargs="+", metavar="WORD",
                   help="query words (looked up as given, then lowercased with digits -> 0)")
    n.add_argument("-k", type=int, default=10, help="neighbours per word (default %(default)s)")
    n.add_argument("--json", action="store_true", help='print {"word": [["neighbour", cosine], ...]}')
    n.set_defaults(func=run_neighbors)


def _threads(n):
    set_threads(n)


def _config(args):
    """The objective's Config from the options given (each must apply to the --objective)."""
    names = {f.name for cls in recipe.CONFIGS.values() for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    fields = {f.name for f in dataclasses.fields(recipe.CONFIGS[args.objective])}
    bad = [name for name in given if name not in fields]
    if bad:
        raise CLIError(f"{flag(bad[0])} does not apply to --objective {args.objective}")
    try:
        return recipe.config_for(args.objective, **given)
    except (ValueError, TypeError) as e:
        raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None


def _check(args):
    checkpoint_steps(args)
    check_resume(args)
    for path in args.text:
        existing_file(path)
    check_writable(args, "out", "save_model", "checkpoint", inputs=("text",))


def run_train(args):
    from fastnn.data.vectors import write_vectors

    config = _config(args)
    _check(args)
    _threads(args.threads)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    from fastnn.embed import read_corpus
    report = []
    try:            # (each file opened once: a pipe or stdin is read whole)
        sents = read_corpus(args.text, args.text_format, report=report, where="--text")
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    # The corpus report waits for pretrain's first line, which it says once its checks are done: --min-count is checked
    # on the corpus's counts (the vocabulary pretrain builds), so an error stays one line without a second pass.
    waiting = [f"{path}: {fmt}, {n_s:,} sentences, {n_t:,} tokens" for path, fmt, n_s, n_t in report]
    if args.resume:
        waiting.append(f"resuming from {args.checkpoint}")

    def say_checked(message):
        while waiting:
            say(waiting.pop(0))
        say(message)

    try:
        res, stop = train_keeping_work(args, lambda: recipe.pretrain(
            args.objective, sents, config=config, checkpoint=args.checkpoint, resume=args.resume,
            checkpoint_every=checkpoint_steps(args), quiet=args.quiet, say=say_checked,
            on_nonfinite=NONFINITE[args.on_nonfinite]), recipe.CONFIGS.values())
    except ValueError as e:                     # e.g. a --min-count no word reaches: name the option
        raise CLIError(option_names(str(e), *recipe.CONFIGS.values())) from None
    vectors = res.vectors
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
    if stop is not None:
        result["interrupted"] = True                    # as lm train's; the note on stderr says what to type
    if args.json:
        print_json(result)
    elif not args.quiet:
        best = f", best epoch {result['best_epoch']}" if result["best_epoch"] else ""
        rate = f", {result['examples_per_s']:,} examples/s" if result["examples_per_s"] else ""
        how = "interrupted after " if stop is not None else ""
        print(f"{result['words']:,} vectors of {result['dim']} written to {out} ({how}{result['epochs']} epochs in "
              f"{result['seconds']} s{rate}{best}; valid {args.objective} "
              f"{'hinge' if args.objective == 'ranking' else 'NLL'} {result['valid'][-1] if hist else None})")
    if stop is not None:
        print(f"fastnn embed train: {interrupted_note(stop, out)}", file=sys.stderr)
        return interrupted_exit_code()
    return 0 if out == args.out and saved == args.save_model else 1


def run_neighbors(args):
    from fastnn.embed import nearest_neighbors, read_any_vectors
    from fastnn.io import CheckpointGivenError

    if args.k < 1:              # (nearest_neighbors says so too, but only once a vectors file of any size is read)
        raise CLIError(f"-k must be >= 1; got {args.k}")
    existing_file(args.vectors)
    try:
        words, vecs, note = read_any_vectors(args.vectors)
    except CheckpointGivenError:
        raise checkpoint_given(args.vectors, "--vectors") from None
    except (ValueError, TypeError) as e:
        raise CLIError(f"--vectors {e}" if isinstance(e, TypeError) else str(e)) from None
    if note:
        print(f"--vectors {note}", file=sys.stderr)
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
