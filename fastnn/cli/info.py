"""`fastnn info`: build and runtime configuration."""
import fastnn
from fastnn.cli._common import print_json


def register(sub):
    p = sub.add_parser("info", help="print version, OpenMP, threads and BLAS")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args):
    cfg = fastnn.show_config()
    if args.json:
        print_json(cfg)
    else:
        for k, v in cfg.items():
            print(f"{k:12s} {v}")
