"""`fastnn compare-optimizers`: L-BFGS and CG versus SGD, momentum and AdaGrad as the data grows.  The experiment,
its protocol and its settings (CompareConfig) live in fastnn.experiments.compare; this file only wires options."""
import sys

from fastnn.cli._common import (add_config_options, add_threads, check_import, check_writable, config_from_args,
                                existing_file, print_json)

PLOT = "compare-optimizers.png"   # written when matplotlib is there; an explicit --plot requires it


def register(sub):
    from fastnn.experiments import compare as experiment

    p = sub.add_parser("compare-optimizers", help="L-BFGS and CG versus SGD, momentum and AdaGrad as the data grows",
                       description=experiment.__doc__.split("\n\n")[0])
    p.add_argument("--data", metavar="FILE", help="a CoNLL file (word, POS columns) or a tagged Brown file (word/TAG); "
                                                   "default: the built-in synthetic teacher task")
    add_config_options(p, experiment.CompareConfig)
    add_threads(p, None, "fastnn's default, all CPUs; 1 is steadier on a machine shared with other jobs")
    p.add_argument("--json", action="store_true", help="print one JSON array instead of the markdown table")
    p.add_argument("--plot", default=PLOT, metavar="PNG",
                   help="where to write the plot (objective vs seconds; needs matplotlib, except that the default "
                        "is skipped without it) (default %(default)s; 'none' to skip)")
    p.add_argument("--traces", metavar="JSON", help="also write every run's trace (seconds, objective) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args):
    from fastnn.experiments import compare as experiment

    config = config_from_args(experiment.CompareConfig, args)
    path = existing_file(args.data) if args.data else None
    if args.plot and args.plot.lower() == "none":
        args.plot = None
    check_writable(args, "traces", "plot", inputs=("data",))
    if args.plot and args.plot != PLOT:
        check_import("matplotlib", "--plot", "plot")
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rows, traces, data = experiment.run(config, path, threads=args.threads, log=log)
    if args.json:
        print_json(rows)
    else:
        print(experiment.markdown_table(rows))
    if args.traces:
        experiment.save_traces(args.traces, traces)
    if args.plot:
        where = experiment.plot(traces, args.plot, title=f"{data.name}: objective vs seconds")
        if log:
            log(f"plot: {where}" if where else "plot: skipped (matplotlib is not installed)")
    return 0
