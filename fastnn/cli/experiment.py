"""`fastnn experiment adding|gradients|clipping|digits`: why RNNs are hard to train, on the adding problem and on
handwritten digits read pixel by pixel (fastnn.experiments; the bench/rnn_*.py scripts run the same functions)."""
import sys

from fastnn.cli._common import CLIError, check_import, check_writable, print_json


def _positive(kind, name):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise CLIError(f"--{name} must be a positive {kind.__name__}; got {text!r}") from None
        if not v > 0:
            raise CLIError(f"--{name} must be > 0; got {text}")
        return v
    return parse


def _common(p, defaults, what):
    p.add_argument("--T", type=int, default=150, help="sequence length (default 150)")
    p.add_argument("--seed", type=int, default=0, help="seed for data and initialisation (default 0)")
    p.add_argument("--lr", default=defaults["lr"], help=f"SGD learning rate (default {defaults['lr']})")
    p.add_argument("--lr-end", default=defaults["lr_end"],
                   help=f"decay lr linearly to this over the steps; 'none' keeps it constant (default "
                        f"{defaults['lr_end']})")
    p.add_argument("--clip", default=defaults["clip"],
                   help=f"gradient-norm clipping threshold (default {defaults['clip']})")
    p.add_argument("--batch-size", default=defaults["batch_size"],
                   help=f"mini-batch size (default {defaults['batch_size']})")
    p.add_argument("--hidden", default=defaults["hidden"], help=f"hidden units (default {defaults['hidden']})")
    p.add_argument("--threads", type=int, default=1,
                   help="kernel and BLAS threads (default 1: a 100-unit RNN step is too small to share)")
    p.add_argument("--plot", metavar="PNG", help=f"write the {what} plot here (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def register(sub):
    from fastnn.experiments.adding import DEFAULTS, GRID_DEFAULTS, MODELS
    from fastnn.experiments.clipping import CLIP_DEFAULTS
    from fastnn.experiments.gradients import GRADIENT_MODELS

    p = sub.add_parser("experiment", help="RNN training experiments: the adding problem (adding, gradients, "
                                          "clipping) and pixel-by-pixel digits (digits)")
    ex = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    ex.required = True

    a = ex.add_parser("adding", help="train tanh, sigmoid, ReLU and IRNN networks on the adding problem; final test "
                                     "MSE per model")
    _common(a, DEFAULTS, "test-MSE-against-steps")
    a.add_argument("--steps", help=f"SGD steps per model (default {DEFAULTS['steps']})")
    a.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to train (default all)")
    a.add_argument("--eval-every", default=DEFAULTS["eval_every"],
                   help=f"steps between test evaluations (default {DEFAULTS['eval_every']})")
    a.add_argument("--grid", action="store_true",
                   help="Le et al.'s protocol (their Table 1): every model at each lr x clip of their grid, constant "
                        "lr, best per model on a validation set; --steps is then per grid point (default "
                        f"{GRID_DEFAULTS['steps']})")
    a.add_argument("--workers", type=int, default=GRID_DEFAULTS["workers"],
                   help=f"--grid: grid points trained at once in separate processes (default "
                        f"{GRID_DEFAULTS['workers']})")
    a.set_defaults(func=run_adding)

    g = ex.add_parser("gradients", help="norm of d loss / d h_t against the distance from the loss, before and after "
                                        "training")
    _common(g, DEFAULTS, "gradient-norm")
    g.add_argument("--train-steps", default=DEFAULTS["steps"],
                   help=f"SGD steps for the trained networks (default {DEFAULTS['steps']})")
    g.add_argument("--models", nargs="+", default=list(GRADIENT_MODELS), metavar="MODEL",
                   help=f"{', '.join(MODELS)}, or one with _x<gain> (W_hh times gain) (default: "
                        f"{' '.join(GRADIENT_MODELS)})")
    g.set_defaults(func=run_gradients)

    c = ex.add_parser("clipping", help="one exploding setup trained without clipping, with global-norm clipping, "
                                       "with Mikolov's element-wise clipping of the BPTT error and with element-wise "
                                       "clipping of the summed gradient; the threshold heuristic and a threshold "
                                       "sweep")
    _common(c, CLIP_DEFAULTS, "loss-curve")
    c.add_argument("--steps", default=CLIP_DEFAULTS["steps"],
                   help=f"SGD steps per run (default {CLIP_DEFAULTS['steps']})")
    c.add_argument("--model", choices=MODELS, default=CLIP_DEFAULTS["kind"],
                   help=f"network (default {CLIP_DEFAULTS['kind']})")
    c.add_argument("--thresholds", nargs="*", metavar="C", default=list(CLIP_DEFAULTS["thresholds"]),
                   help=f"norm-clipping thresholds of the sweep; none skips it (default "
                        f"{' '.join(map(str, CLIP_DEFAULTS['thresholds']))})")
    c.add_argument("--heuristic-steps", type=int, default=CLIP_DEFAULTS["heuristic_steps"],
                   help=f"unclipped steps whose mean gradient norm is the heuristic threshold; 0 skips it (default "
                        f"{CLIP_DEFAULTS['heuristic_steps']})")
    c.add_argument("--workers", default=CLIP_DEFAULTS["workers"],
                   help=f"runs trained at once, in separate processes (default {CLIP_DEFAULTS['workers']})")
    c.set_defaults(func=run_clipping)

    from fastnn.experiments import digits
    d = ex.add_parser("digits", help="classify 8x8 handwritten digits read one pixel per step (plain and permuted "
                                     "order) with IRNN, ReLU, tanh and LSTM networks; test error per model "
                                     "(needs scikit-learn)")
    dd = digits.DEFAULTS
    d.add_argument("--models", nargs="+", choices=digits.MODELS, default=list(digits.MODELS),
                   help="models to train (default all)")
    d.add_argument("--orders", nargs="+", choices=["plain", "permuted"], default=["plain", "permuted"],
                   help="pixel orders (default both)")
    d.add_argument("--epochs", default=dd["epochs"], help=f"epochs per run (default {dd['epochs']})")
    d.add_argument("--lr", nargs="+", metavar="LR", help=f"learning rates of the grid (default "
                   f"{' '.join(map(str, digits.GRID['lr']))}; IRNN "
                   f"{' '.join(map(str, digits.MODEL_GRID['irnn']['lr']))})")
    d.add_argument("--clip", nargs="+", metavar="C", help=f"gradient-norm clipping thresholds of the grid (default "
                   f"{' '.join(map(str, digits.GRID['clip']))})")
    d.add_argument("--long", action="store_true",
                   help=f"the longer grid: lr {' '.join(map(str, digits.LONG_GRID['lr']))} x clip "
                        f"{' '.join(map(str, digits.LONG_GRID['clip']))} (hours)")
    d.add_argument("--hidden", default=dd["hidden"], help=f"hidden units (default {dd['hidden']})")
    d.add_argument("--batch-size", default=dd["batch_size"], help=f"mini-batch size (default {dd['batch_size']})")
    d.add_argument("--workers", default=dd["workers"],
                   help=f"grid points trained at once, in separate processes (default {dd['workers']})")
    d.add_argument("--seed", type=int, default=0, help="seed for split, permutation and initialisation (default 0)")
    d.add_argument("--threads", type=int, default=1, help="kernel and BLAS threads per worker (default 1)")
    d.add_argument("--out", default="digits.json", metavar="JSON",
                   help="write every run (curves and grid included) here; 'none' to skip (default %(default)s)")
    d.add_argument("--plot", metavar="PNG",
                   help="learning-curves plot (default digits.png when matplotlib is installed; 'none' to skip)")
    d.add_argument("--json", action="store_true", help="print one JSON array (model, order, test_error, seconds) "
                                                       "instead of a table")
    d.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    d.set_defaults(func=run_digits)


def _settings(args, **extra):
    lr_end = None if str(args.lr_end).lower() == "none" else _positive(float, "lr-end")(args.lr_end)
    s = dict(lr=_positive(float, "lr")(args.lr), lr_end=lr_end, clip=_positive(float, "clip")(args.clip),
             batch_size=_positive(int, "batch-size")(args.batch_size), hidden=_positive(int, "hidden")(args.hidden))
    s.update(extra)
    if args.T < 2:
        raise CLIError(f"--T must be >= 2 (one marker in each half); got {args.T}")
    if args.threads == 0:
        raise CLIError("--threads must not be 0 (a positive count, or -1 for all CPUs)")
    if args.plot:                       # before the run, not after it
        check_writable(args, "plot")
        check_import("matplotlib", "--plot", "plot")
    return s


def _log(args):
    if args.quiet:
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def _plot(fn, results, args):
    if args.plot:
        path = fn(results, args.plot, log=_log(args) or (lambda m: print(m, file=sys.stderr)))
        if path and not args.quiet:
            print(f"wrote {path}", file=sys.stderr)


def run_adding(args):
    from fastnn.experiments import adding, plots
    if args.grid:
        return _run_adding_grid(args)
    steps = adding.DEFAULTS["steps"] if args.steps is None else args.steps
    s = _settings(args, steps=_positive(int, "steps")(steps),
                  eval_every=_positive(int, "eval-every")(args.eval_every))
    results = adding.run_adding(args.T, models=args.models, seed=args.seed, log=_log(args), n_threads=args.threads,
                                **s)
    if args.json:
        print_json(adding.summary(results))
    else:
        print(adding.format_table(results))
    _plot(plots.plot_adding, results, args)
    return 0


def _run_adding_grid(args):
    from fastnn.experiments import adding, jsonable, plots
    steps = adding.GRID_DEFAULTS["steps"] if args.steps is None else args.steps
    s = dict(steps=_positive(int, "steps")(steps), eval_every=_positive(int, "eval-every")(args.eval_every),
             batch_size=_positive(int, "batch-size")(args.batch_size), hidden=_positive(int, "hidden")(args.hidden),
             workers=_positive(int, "workers")(args.workers))
    if args.T < 2:
        raise CLIError(f"--T must be >= 2 (one marker in each half); got {args.T}")
    results = adding.run_adding_grid(args.T, models=args.models, seed=args.seed, log=_log(args),
                                     n_threads=args.threads, **s)
    if args.plot:   # the chosen runs' validation curves, drawn like experiment 1's test curves
        _plot(plots.plot_adding, [dict(r, test_mse=r["valid_curve"]) for r in results], args)
    if args.json:
        keys = ("model", "T", "lr", "clip", "steps", "valid_mse", "final_test_mse", "baseline_mse", "seconds")
        print_json(jsonable([{k: r[k] for k in keys} for r in results]))
    else:
        print(adding.format_grid_table(results))
    return 0


def run_gradients(args):
    from fastnn.experiments import gradients, jsonable, plots
    s = _settings(args)
    steps = _positive(int, "train-steps")(args.train_steps)
    for m in args.models:
        try:
            gradients.parse_spec(m)
        except ValueError as e:
            raise CLIError(str(e).replace("run_gradients: ", "--models: ")) from None
    results = gradients.run_gradients(args.T, models=args.models, seed=args.seed, log=_log(args),
                                      n_threads=args.threads, train_steps=steps, **s)
    if args.json:
        keys = ("model", "state", "T", "steps", "test_mse", "decay", "rate", "norms")
        print_json(jsonable([{k: r[k] for k in keys} for r in results]))
    else:
        print(gradients.format_table(results))
    _plot(plots.plot_gradients, results, args)
    return 0


def run_clipping(args):
    from fastnn.experiments import clipping, jsonable, plots
    if args.heuristic_steps < 0:
        raise CLIError(f"--heuristic-steps must be >= 0; got {args.heuristic_steps}")
    s = _settings(args, steps=_positive(int, "steps")(args.steps), kind=args.model,
                  thresholds=[_positive(float, "thresholds")(c) for c in args.thresholds],
                  heuristic_steps=args.heuristic_steps, workers=_positive(int, "workers")(args.workers))
    results = clipping.run_clipping(args.T, seed=args.seed, log=_log(args), n_threads=args.threads, **s)
    if args.json:
        keys = ("role", "clip", "label", "threshold", "kind", "lr", "T", "steps", "diverged", "n_over",
                "max_grad_norm", "final_test_mse", "active_units", "seconds")
        print_json(jsonable([{k: r[k] for k in keys} for r in results]))
    else:
        print(clipping.format_table(results))
    _plot(plots.plot_clipping, results, args)
    return 0


def _grid_values(values, name):
    return None if values is None else [_positive(float, name)(v) for v in values]


def run_digits(args):
    import importlib.util

    from fastnn.experiments import digits, plots, save_json
    check_import("sklearn", "fastnn experiment digits", "digits")   # the digits ship inside scikit-learn
    settings = dict(epochs=_positive(int, "epochs")(args.epochs), hidden=_positive(int, "hidden")(args.hidden),
                    batch_size=_positive(int, "batch-size")(args.batch_size),
                    workers=_positive(int, "workers")(args.workers))
    if args.threads == 0:
        raise CLIError("--threads must not be 0 (a positive count, or -1 for all CPUs)")
    grid = None    # the per-model default grids unless a grid option is given
    if args.long or args.lr is not None or args.clip is not None:
        grid = dict(digits.LONG_GRID if args.long else digits.GRID)
        for key, values in (("lr", args.lr), ("clip", args.clip)):
            if values is not None:
                grid[key] = _grid_values(values, key)
    out = None if str(args.out).lower() == "none" else args.out
    plot = args.plot
    if plot is None:       # the default plot only when matplotlib is there to draw it
        plot = "digits.png" if importlib.util.find_spec("matplotlib") is not None else None
    elif plot.lower() == "none":
        plot = None
    else:
        check_import("matplotlib", "--plot", "plot")
    args.out, args.plot = out, plot
    check_writable(args, "out", "plot")
    results = digits.run_digits(models=args.models, orders=args.orders, grid=grid, seed=args.seed, log=_log(args),
                                n_threads=args.threads, **settings)
    if out:
        save_json(out, results)
    if plot:
        path = plots.plot_digits(results, plot, log=_log(args))
        if path and not args.quiet:
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print_json(digits.summary(results))
    else:
        print(digits.format_table(results))
    return 0
