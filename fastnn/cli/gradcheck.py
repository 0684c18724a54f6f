"""`fastnn gradcheck`: finite-difference checks of every node type and every model (fastnn.gradcheck.all_cases)."""
import sys
import time

import fastnn
from fastnn.cli._common import CLIError, print_json


def register(sub):
    from fastnn import gradcheck as G

    p = sub.add_parser("gradcheck", help="check analytic gradients of every node type and model against finite "
                                         "differences (float64); exit 1 on any failure")
    p.add_argument("--json", action="store_true",
                   help="print one JSON array of objects with keys name, param, max_rel_err, ok")
    p.add_argument("--only", metavar="SUBSTR", action="append",
                   help="run only the cases whose name contains SUBSTR (repeatable)")
    p.add_argument("--list", action="store_true", help="list the case names and exit")
    p.add_argument("--eps", type=float, default=G.EPS, help=f"finite-difference step (default {G.EPS:g})")
    p.add_argument("--tol", type=float, default=G.TOL, help=f"pass threshold on the relative error (default {G.TOL:g})")
    p.add_argument("--max-entries", type=int, default=G.MAX_ENTRIES,
                   help=f"entries checked per parameter (default {G.MAX_ENTRIES})")
    p.add_argument("--seed", type=int, default=0, help="seed for the cases' data and the entry sample (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="kernel threads (default 1: the cases are tiny and threads only add overhead)")
    p.add_argument("--nondet", action="store_true",
                   help="also demand bitwise-identical gradients with 1 and 2 kernel threads")
    p.set_defaults(func=run)


def run(args):
    from fastnn import gradcheck as G

    G.check_options(eps=args.eps, tol=args.tol, max_entries=args.max_entries)   # once, before any case
    with fastnn.threads(kernels=args.threads):  # checks the count; in-process callers (tests) keep their setting
        return _check(args, G)


def _check(args, G):
    cases = G.all_cases()
    if args.only:
        cases = [(n, b) for n, b in cases if any(s in n for s in args.only)]
        if not cases:
            raise CLIError(f"no case name contains {' or '.join(map(repr, args.only))}; see `fastnn gradcheck --list`")
    if args.list:
        for name, _ in cases:
            print(name)
        return 0
    rows = []
    t0 = time.perf_counter()
    for name, build in cases:
        try:
            report = G.run_case(build, seed=args.seed, eps=args.eps, tol=args.tol, max_entries=args.max_entries,
                                nondet=args.nondet)
            rows.extend(report.rows(name))
        except Exception as e:  # noqa: BLE001 (a crashing case is a failing case; keep checking the rest)
            print(f"fastnn gradcheck: {name}: {type(e).__name__}: {e}", file=sys.stderr)
            rows.append({"name": name, "param": f"({type(e).__name__})", "max_rel_err": None, "ok": False})
    elapsed = time.perf_counter() - t0
    n_bad = sum(not r["ok"] for r in rows)
    if args.json:
        print_json(rows)
    else:
        w = max([len("node/model")] + [len(r["name"]) for r in rows])
        wp = max([len("parameter")] + [len(r["param"]) for r in rows])
        print(f"{'node/model':{w}s}  {'parameter':{wp}s}  {'max rel err':>11s}  result")
        for r in rows:
            err = "-" if r["max_rel_err"] is None else f"{r['max_rel_err']:.2e}"
            print(f"{r['name']:{w}s}  {r['param']:{wp}s}  {err:>11s}  {'pass' if r['ok'] else 'FAIL'}")
        print(f"{len(cases)} cases, {len(rows)} checks, {n_bad} failed (eps {args.eps:g}, tol {args.tol:g}, "
              f"float64, {elapsed:.1f} s)")
    return 1 if n_bad else 0
