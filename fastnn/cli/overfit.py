"""`fastnn overfit`: the lecture's first check of a new model: can it drive the loss of a few examples to (near) zero?
Run on each rung of the simplification ladder (fastnn.models.ladder) with fastnn.train.overfit; exit 0 when every
rung asked for reaches the threshold, 1 when one does not."""
from fastnn.cli._common import CLIError, first_repeat, print_json


def register(sub):
    from fastnn.models.ladder import RUNGS
    p = sub.add_parser("overfit", help="train each rung of the simplification ladder (softmax only -> word vectors "
                                       "-> hidden layer -> bias -> two layers -> two softmaxes) on a few examples "
                                       "until the loss is near zero; exit 1 if one cannot")
    p.add_argument("--rung", nargs="+", metavar="RUNG", default=list(RUNGS),
                   help=f"rungs by number 1-{len(RUNGS)} or name ({', '.join(RUNGS)}) (default all)")
    p.add_argument("--examples", type=int, default=8, help="examples to memorise (random labels; default 8)")
    p.add_argument("--steps", type=int, default=1000, help="at most this many SGD steps (default 1000)")
    p.add_argument("--threshold", type=float, default=0.01, help="target training loss (default 0.01)")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate, momentum 0.9 (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the data and the initialisation (default 0)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON array of objects with keys rung, name, reached, initial_loss, final_loss, steps")
    p.set_defaults(func=run)


def _rung(text):
    from fastnn.models.ladder import RUNGS
    if text in RUNGS:
        return RUNGS.index(text) + 1
    try:
        r = int(text)
    except ValueError:
        r = 0
    if not 1 <= r <= len(RUNGS):
        raise CLIError(f"--rung must be 1-{len(RUNGS)} or one of {', '.join(RUNGS)}; got {text!r}")
    return r


def run(args):
    from fastnn import optim
    from fastnn.models.ladder import Ladder, toy_batch
    from fastnn.train import overfit

    rungs = [_rung(t) for t in args.rung]
    twice = first_repeat(args.rung, key=_rung)
    if twice is not None:           # (the same rung trained and printed twice)
        raise CLIError(f"--rung {twice}: rung {_rung(twice)} is given twice")
    if args.seed < 0:               # (was the ladder's "'rng' must be an int seed >= 0")
        raise CLIError(f"--seed must be >= 0; got {args.seed}")
    if args.examples < 1:
        raise CLIError(f"--examples must be >= 1; got {args.examples}")
    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1; got {args.steps}")
    for name in ("threshold", "lr"):
        if not getattr(args, name) > 0:
            raise CLIError(f"--{name} must be > 0; got {getattr(args, name)}")
    vocab = max(20, args.examples)          # toy_batch makes the windows distinct
    rows = []
    for r in rungs:
        model = Ladder(r, vocab_size=vocab, rng=args.seed)
        batch = toy_batch(args.examples, r, vocab_size=vocab, seed=args.seed)
        res = overfit(model, batch, optimizer=optim.SGD(model.trainable(), lr=args.lr, momentum=0.9),
                      steps=args.steps, threshold=args.threshold)
        rows.append(dict(rung=r, name=model.name, reached=bool(res.reached), initial_loss=res.initial_loss,
                         final_loss=res.final_loss, steps=res.steps))
        if not args.json:
            verdict = "overfits" if res.reached else "does NOT overfit"
            print(f"rung {r} {model.name:<14} {verdict}: loss {res.initial_loss:.4f} -> {res.final_loss:.4g} in "
                  f"{res.steps} steps (threshold {args.threshold:g}, {args.examples} examples)")
    if args.json:
        from fastnn.experiments import jsonable
        print_json(jsonable(rows))
    return 0 if all(r["reached"] for r in rows) else 1
