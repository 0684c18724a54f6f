"""Summarize a `pytest bench --benchmark-json=FILE` run: one markdown table per group with the targets of issue 2.

    python bench/summarize.py /tmp/bench.json [--stat min]

Per group ("<kernel>:<size>"): each implementation's median time (or --stat min, steadier on a busy machine), how
many times faster fastnn is than it (its time / fastnn's time), the target speed-up and whether it is met.
Exit code 0 even when targets are missed.
"""
import argparse
import json
import sys

# Minimum speed-up of fastnn over each baseline: by group, else by kernel (the part before ':').
TARGETS = {
    "softmax_xent:B128xV10000": {"torch": 2.0},
    "softmax_xent:B128xV100000": {"torch": 5.0, "numpy": 10.0},
    "output_layer": {"torch": 1.5},
    "sparse_adagrad": {"torch": 5.0},
    "sparse_sgd": {"numpy": 20.0, "torch": 1.2},
    "dense_adagrad": {"torch": 4.0, "torch_fused": 0.9},
    "rnn_layer": {"torch": 1.5},
}
ORDER = ["fastnn", "numpy", "torch", "torch_fused"]


def targets_for(group):
    return TARGETS.get(group, TARGETS.get(group.split(":", 1)[0], {}))


def load(path, stat="median"):
    """{group: {impl: seconds (the given statistic)}} and the machine facts recorded in extra_info."""
    with open(path) as f:
        data = json.load(f)
    groups, facts = {}, {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        impl = info.get("impl")
        if impl is None or bench.get("group") is None:
            continue
        groups.setdefault(bench["group"], {})[impl] = bench["stats"][stat]
        for key in ("cpu_model", "openmp_enabled", "blas_threads", "torch_version"):
            facts.setdefault(key, info.get(key))
        facts.setdefault("n_threads", {})[impl] = info.get("n_threads")
    return groups, facts


def summarize(groups, stat="median"):
    """Markdown lines for every group, and (met, total) over the targets that could be evaluated."""
    lines, met, total = [], 0, 0
    for group in sorted(groups):
        times = groups[group]
        want = targets_for(group)
        ours = times.get("fastnn")
        lines += [f"### {group}", "", f"| impl | {stat} ms | fastnn speed-up | target | met |", "|---|---|---|---|---|"]
        for impl in sorted(times, key=lambda i: (ORDER.index(i) if i in ORDER else len(ORDER), i)):
            ms = f"{times[impl] * 1e3:.3f}"
            if impl == "fastnn":
                lines.append(f"| {impl} | {ms} | — | — | — |")
                continue
            ratio = times[impl] / ours if ours else None
            target = want.get(impl)
            if ratio is None or target is None:
                ok = "—"
            else:
                total += 1
                met += ratio >= target
                ok = "yes" if ratio >= target else "no"
            shown = "—" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"| {impl} | {ms} | {shown} | {'—' if target is None else f'>= {target:g}x'} | {ok} |")
        missing = [impl for impl in want if impl not in times]
        if missing or ours is None:
            lines.append("")
            lines.append(f"Not run: {', '.join((['fastnn'] if ours is None else []) + missing)}.")
        lines.append("")
    return lines, met, total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    parser.add_argument("--stat", choices=["median", "min", "mean"], default="median",
                        help="timing statistic to compare (default: median)")
    args = parser.parse_args(argv)
    try:
        groups, facts = load(args.json, args.stat)
    except (OSError, ValueError, KeyError) as exc:
        print(f"summarize: cannot read {args.json}: {exc}", file=sys.stderr)
        return 2
    if not groups:
        print(f"summarize: {args.json} has no benchmarks with extra_info['impl'].", file=sys.stderr)
        return 2
    lines, met, total = summarize(groups, args.stat)
    print(f"CPU: {facts.get('cpu_model')}; OpenMP: {facts.get('openmp_enabled')}; threads: {facts.get('n_threads')}; "
          f"BLAS threads: {facts.get('blas_threads')}; torch: {facts.get('torch_version')}")
    print()
    print("\n".join(lines))
    print(f"Targets met: {met} of {total}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
