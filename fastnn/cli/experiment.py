"""`fastnn experiment adding|gradients|clipping|digits`: why RNNs are hard to train, on the adding problem and on
handwritten digits read pixel by pixel (fastnn.experiments; the bench/rnn_*.py scripts run the same functions)."""
import sys

from fastnn.cli._common import CLIError, check_import, check_writable, first_repeat, print_json, set_threads


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


def _option(p, flag, defaults, help, *, key=None, **kw):
    """--flag with its default from an experiment's table (defaults[key], key from the flag: its one home), shown at
    the end of the help."""
    value = defaults[key or flag[2:].replace("-", "_")]
    shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    p.add_argument(flag, default=list(value) if isinstance(value, tuple) else value, help=f"{help} (default {shown})",
                   **kw)


def _common(p, defaults, what):
    p.add_argument("--T", type=int, default=150, help="sequence length (default 150)")
    p.add_argument("--seed", type=int, default=0, help="seed for data and initialisation (default 0)")
    _option(p, "--lr", defaults, "SGD learning rate")
    _option(p, "--lr-end", defaults, "decay lr linearly to this over the steps; 'none' keeps it constant")
    _option(p, "--clip", defaults, "gradient-norm clipping threshold")
    _option(p, "--batch-size", defaults, "mini-batch size")
    _option(p, "--hidden", defaults, "hidden units")
    p.add_argument("--threads", type=int, default=1,
                   help="kernel and BLAS threads (default 1: a 100-unit RNN step is too small to share)")
    p.add_argument("--plot", metavar="PNG", help=f"write the {what} plot here (needs matplotlib)")
    p.add_argument("--out", metavar="JSON", help="write every result (curves included) here")
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
    _option(a, "--eval-every", DEFAULTS, "steps between test evaluations")
    a.add_argument("--grid", action="store_true",
                   help="Le et al.'s protocol (their Table 1): every model at each lr x clip of their grid, constant "
                        "lr, best per model on a validation set; --steps is then per grid point (default "
                        f"{GRID_DEFAULTS['steps']})")
    a.add_argument("--workers", type=int, help="--grid: grid points trained at once in separate processes (default "
                                                f"{GRID_DEFAULTS['workers']})")
    a.set_defaults(func=run_adding)

    g = ex.add_parser("gradients", help="norm of d loss / d h_t against the distance from the loss, before and after "
                                        "training")
    _common(g, DEFAULTS, "gradient-norm")
    _option(g, "--train-steps", DEFAULTS, "SGD steps for the trained networks", key="steps")
    g.add_argument("--models", nargs="+", default=list(GRADIENT_MODELS), metavar="MODEL",
                   help=f"{', '.join(MODELS)}, or one with _x<gain> (W_hh times gain) (default: "
                        f"{' '.join(GRADIENT_MODELS)})")
    g.set_defaults(func=run_gradients)

    c = ex.add_parser("clipping", help="one exploding setup trained without clipping, with global-norm clipping, "
                                       "with Mikolov's element-wise clipping of the BPTT error and with element-wise "
                                       "clipping of the summed gradient; the threshold heuristic and a threshold "
                                       "sweep")
    _common(c, CLIP_DEFAULTS, "loss-curve")
    _option(c, "--steps", CLIP_DEFAULTS, "SGD steps per run")
    _option(c, "--model", CLIP_DEFAULTS, "network", key="kind", choices=MODELS)
    _option(c, "--thresholds", CLIP_DEFAULTS, "norm-clipping thresholds of the sweep; none skips it", nargs="*",
            metavar="C")
    _option(c, "--heuristic-steps", CLIP_DEFAULTS, "unclipped steps whose means are the heuristic thresholds (norm "
            "and temporal clipping); 0 skips them", type=int)
    _option(c, "--workers", CLIP_DEFAULTS, "runs trained at once, in separate processes", type=int)
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
    _option(d, "--epochs", dd, "epochs per run", type=int)
    for flag, what, metavar in (("--lr", "learning rates", "LR"), ("--clip", "gradient-norm clipping thresholds", "C")):
        d.add_argument(flag, type=float, nargs="+", metavar=metavar, help=f"{what} of the grid, every model (default "
                       f"{' '.join(map(str, digits.GRID[flag[2:]]))}; IRNN "
                       f"{' '.join(map(str, digits.MODEL_GRID['irnn'][flag[2:]]))})")
    d.add_argument("--long", action="store_true",
                   help=f"the longer grid: lr {' '.join(map(str, digits.LONG_GRID['lr']))} x clip "
                        f"{' '.join(map(str, digits.LONG_GRID['clip']))} (hours)")
    _option(d, "--hidden", dd, "hidden units", type=int)
    _option(d, "--batch-size", dd, "mini-batch size", type=int)
    _option(d, "--workers", dd, "grid points trained at once, in separate processes", type=int)
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
    _check_run(args)
    return s


def _once(args):
    """A model, pixel order or threshold given twice was trained (and reported) twice: a CLIError naming it."""
    for name in ("models", "orders", "thresholds"):
        twice = first_repeat(getattr(args, name, None) or [])
        if twice is not None:
            raise CLIError(f"--{name} {twice} is given twice")


def _check_run(args):
    """Before the run: each model once, the threads, and the plot's path and matplotlib (T is checked by
    fastnn.data.adding, the first thing every experiment calls)."""
    _once(args)
    set_threads(args.threads)
    check_writable(args, "out", "plot")
    if args.plot:
        check_import("matplotlib", "--plot", "plot")


def _log(args):
    if args.quiet:
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def _plot(fn, results, args):
    if args.plot:
        path = fn(results, args.plot, log=_log(args) or (lambda m: print(m, file=sys.stderr)))
        if path and not args.quiet:
            print(f"wrote {path}", file=sys.stderr)


def _fields(*keys):
    """A summary of results for --json: the given keys of each."""
    from fastnn.experiments import jsonable
    return lambda results: jsonable([{k: r[k] for k in keys} for r in results])


def _report(args, results, summary, format_table, plot=None):
    """Save the results (--out), print them (--json: summary(results), else the experiment's table) and draw
    plot(results, path)."""
    if args.out:
        from fastnn.experiments import save_json
        save_json(args.out, results)
    if args.json:
        print_json(summary(results))
    else:
        print(format_table(results))
    if plot is not None:
        _plot(plot, results, args)
    return 0


def run_adding(args):
    from fastnn.experiments import adding, plots
    if args.grid:
        return _run_adding_grid(args)
    if args.workers is not None:        # (ignored before: the plain run trains its models one after the other)
        raise CLIError("--workers applies to --grid only (without it the models train one after the other)")
    steps = adding.DEFAULTS["steps"] if args.steps is None else args.steps
    s = _settings(args, steps=_positive(int, "steps")(steps),
                  eval_every=_positive(int, "eval-every")(args.eval_every))
    results = adding.run_adding(args.T, models=args.models, seed=args.seed, log=_log(args), n_threads=args.threads,
                                **s)
    return _report(args, results, adding.summary, adding.format_table, plots.plot_adding)


def _run_adding_grid(args):
    from fastnn.experiments import adding, plots
    # the grid trains at each lr x clip of its own at a constant rate: these were ignored, silently (argparse keeps
    # the default object itself when an option is not given)
    given = [k for k in ("lr", "lr_end", "clip") if getattr(args, k) is not adding.DEFAULTS[k]]
    if given:
        raise CLIError(f"--{given[0].replace('_', '-')} has no effect with --grid, which trains every model at each "
                       f"lr x clip of its grid at a constant rate: leave it out, or run without --grid")
    steps = adding.GRID_DEFAULTS["steps"] if args.steps is None else args.steps
    s = dict(steps=_positive(int, "steps")(steps), eval_every=_positive(int, "eval-every")(args.eval_every),
             batch_size=_positive(int, "batch-size")(args.batch_size), hidden=_positive(int, "hidden")(args.hidden),
             workers=adding.GRID_DEFAULTS["workers"] if args.workers is None else args.workers)   # (checked there)
    _check_run(args)
    results = adding.run_adding_grid(args.T, models=args.models, seed=args.seed, log=_log(args),
                                     n_threads=args.threads, **s)
    if args.plot:   # the chosen runs' validation curves, drawn like experiment 1's test curves
        _plot(plots.plot_adding, [dict(r, test_mse=r["valid_curve"]) for r in results], args)
    summary = _fields("model", "T", "lr", "clip", "steps", "valid_mse", "final_test_mse", "baseline_mse", "seconds")
    return _report(args, results, summary, adding.format_grid_table)


def run_gradients(args):
    from fastnn.experiments import gradients, plots
    s = _settings(args)
    steps = _positive(int, "train-steps")(args.train_steps)
    for m in args.models:
        try:
            gradients.parse_spec(m)
        except ValueError as e:
            raise CLIError(str(e).replace("run_gradients: ", "--models: ")) from None
    results = gradients.run_gradients(args.T, models=args.models, seed=args.seed, log=_log(args),
                                      n_threads=args.threads, train_steps=steps, **s)
    summary = _fields("model", "state", "T", "steps", "test_mse", "decay", "rate", "norms")
    return _report(args, results, summary, gradients.format_table, plots.plot_gradients)


def run_clipping(args):
    from fastnn.experiments import clipping, plots
    if args.heuristic_steps < 0:
        raise CLIError(f"--heuristic-steps must be >= 0; got {args.heuristic_steps}")
    s = _settings(args, steps=_positive(int, "steps")(args.steps), kind=args.model,
                  thresholds=[_positive(float, "thresholds")(c) for c in args.thresholds],
                  heuristic_steps=args.heuristic_steps, workers=_positive(int, "workers")(args.workers))
    results = clipping.run_clipping(args.T, seed=args.seed, log=_log(args), n_threads=args.threads, **s)
    summary = _fields("role", "clip", "label", "threshold", "kind", "lr", "T", "steps", "diverged", "n_over",
                      "max_grad_norm", "final_test_mse", "active_units", "seconds")
    return _report(args, results, summary, clipping.format_table, plots.plot_clipping)


def run_digits(args):
    import importlib.util

    from fastnn.experiments import digits, plots, save_json
    check_import("sklearn", "fastnn experiment digits", "digits")   # the digits ship inside scikit-learn
    _once(args)
    # run_digits checks the settings, the grid and the threads before any training
    settings = dict(epochs=args.epochs, hidden=args.hidden, batch_size=args.batch_size, workers=args.workers)
    grid = None    # the per-model default grids unless a grid option is given
    if args.long and args.lr is not None and args.clip is not None:     # (both axes replaced: --long was ignored)
        raise CLIError("--long has no effect with both --lr and --clip: they give the whole grid; leave --long out, "
                       "or give one of them to replace that axis of the long grid")
    if args.long or args.lr is not None or args.clip is not None:
        grid = dict(digits.LONG_GRID if args.long else digits.GRID)
        for key in ("lr", "clip"):
            if getattr(args, key) is not None:
                grid[key] = getattr(args, key)
    set_threads(args.threads)
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
    return _report(args, results, digits.summary, digits.format_table)
