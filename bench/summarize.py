"""Summarize a `pytest bench --benchmark-json=FILE` run: one markdown table per group with the targets of issues 2
and 19, or (--compact) one table with a row per group.

    python bench/summarize.py /tmp/bench.json [--stat min] [--compact]

Per group ("<kernel>:<size>"): each implementation's median time (or --stat min, steadier on a busy machine), how
many times faster fastnn is than it (its time / fastnn's time), the target speed-up and whether it is met, and its
fraction of the roof: the group's work per second over the roof's (the roof is the machine's limit for that work,
timed in the same run with extra_info["impl"] = "roof": one GEMM of the same FLOPs, or one pass over the same bytes
with the same mix of reads and writes).
fastnn's fraction has a target too (ROOF_TARGETS).  The recurrent groups have a second roof, "roof_chain": the BLAS
products their recurrence must make, in order (the per-step products one after another), timed in the same run; each
implementation's fraction of it is printed beside its fraction of the roof.  When the chain itself runs below
fastnn's floor of the roof, no recurrence made of those BLAS calls can meet that floor: a miss is shown as "above the
roof: chain at X % of GEMM" and not counted; so is a missed speed-up that would need fastnn to beat the roof (a fast
peer's time / the target below the roof's time: "above the roof: needs X ms, roof Y").  Exit code 0 even when
targets are missed.
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
    "lstm_layer": {"torch": 1.3},
}
# Minimum fraction of the roof for fastnn, by the roof's kind.
ROOF_TARGETS = {"gemm": 0.85, "memory": 0.75, "copy": 0.75}  # "copy": the memory roof of runs before 2026-12-05
ROOFS = ("roof", "roof_chain")  # implementations that are a limit, timed in the same run
ORDER = ["fastnn", "numpy", "torch", "torch_fused", *ROOFS]


def targets_for(group):
    return TARGETS.get(group, TARGETS.get(group.split(":", 1)[0], {}))


def load(path, stat="median"):
    """({group: {impl: seconds}}, {group: {roof impl: roof facts}}, machine facts) from a pytest-benchmark JSON file.

    Roof facts of each roof implementation (ROOFS): kind ("gemm" or "memory"; "copy" in older files), work (the
    group's FLOPs or bytes) and roof_work (the roof's own).
    """
    with open(path) as f:
        data = json.load(f)
    groups, roofs, facts = {}, {}, {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        impl = info.get("impl")
        if impl is None or bench.get("group") is None:
            continue
        groups.setdefault(bench["group"], {})[impl] = bench["stats"][stat]
        if impl in ROOFS and info.get("work") and info.get("roof_work"):
            roofs.setdefault(bench["group"], {})[impl] = dict(kind=info.get("roof"), work=info["work"],
                                                             roof_work=info["roof_work"])
        for key in ("cpu_model", "openmp_enabled", "blas_threads", "torch_version"):
            facts.setdefault(key, info.get(key))
        facts.setdefault("n_threads", {})[impl] = info.get("n_threads")
    return groups, roofs, facts


def roof_fraction(times, roofs, impl, of="roof"):
    """impl's rate for the group's work over the rate of the roof `of` ("roof" or "roof_chain"), or None without
    it.  roofs: the group's {roof impl: roof facts}."""
    roof = (roofs or {}).get(of)
    if roof is None or of not in times or not times.get(impl):
        return None
    return (roof["work"] / times[impl]) / (roof["roof_work"] / times[of])


def roof_time(times, roofs):
    """Seconds the roof takes for the group's own work (its time scaled by work / roof_work), or None without it."""
    roof = (roofs or {}).get("roof")
    if roof is None or "roof" not in times:
        return None
    return times["roof"] * roof["work"] / roof["roof_work"]


def chain_below_floor(times, roofs):
    """The chain roof's fraction of the roof when it is below fastnn's floor of that roof (ROOF_TARGETS), else None:
    then the floor is above what the recurrence's own products reach through BLAS."""
    kind = (roofs or {}).get("roof", {}).get("kind")
    chain = roof_fraction(times, roofs, "roof_chain")
    floor = ROOF_TARGETS.get(kind)
    return chain if chain is not None and floor is not None and chain < floor else None


def _pct(x):
    return "—" if x is None else f"{100 * x:.0f} %"


def _sorted_impls(times):
    return sorted(times, key=lambda i: (ORDER.index(i) if i in ORDER else len(ORDER), i))


def summarize(groups, roofs=None, stat="median"):
    """Markdown lines for every group, (met, total) over the targets that could be evaluated, and the number of
    missed targets above the roof (not in total): a floor the chain roof itself misses (chain_below_floor), or a
    speed-up that would need fastnn faster than the roof (the peer's time / the target < roof_time)."""
    roofs = roofs or {}
    lines, met, total, above = [], 0, 0, 0
    for group in sorted(groups):
        times, roof = groups[group], roofs.get(group, {})
        want = targets_for(group)
        ours = times.get("fastnn")
        chained = "roof_chain" in roof          # a recurrent group: one more column, its chain roof's fractions
        lines += [f"### {group}", "",
                  f"| impl | {stat} ms | fastnn speed-up | target | met | of roof |" + (" of chain roof |" * chained),
                  "|---|---|---|---|---|---|" + "---|" * chained]
        for impl in _sorted_impls(times):
            ms = f"{times[impl] * 1e3:.3f}"
            frac = roof_fraction(times, roof, impl) if impl != "roof" else 1.0
            of_chain = f" {_pct(roof_fraction(times, roof, impl, of='roof_chain'))} |" if chained else ""
            if impl in ROOFS:
                kind = roof.get(impl, {}).get("kind", "?")
                name = "roof_chain (BLAS chain)" if impl == "roof_chain" else f"roof ({kind})"
                lines.append(f"| {name} | {ms} | — | — | — | {_pct(frac)} |{of_chain}")
                continue
            if impl == "fastnn":
                floor = ROOF_TARGETS.get(roof["roof"]["kind"]) if "roof" in roof else None
                chain = chain_below_floor(times, roof)
                if frac is None or floor is None:
                    target, ok = "—", "—"
                elif chain is not None and frac < floor:    # missed, as would any BLAS chain of its products
                    above += 1
                    target, ok = f">= {100 * floor:.0f} % of roof", f"above the roof: chain at {_pct(chain)} of GEMM"
                else:
                    total += 1
                    met += frac >= floor
                    target, ok = f">= {100 * floor:.0f} % of roof", "yes" if frac >= floor else "no"
                lines.append(f"| {impl} | {ms} | — | {target} | {ok} | {_pct(frac)} |{of_chain}")
                continue
            ratio = times[impl] / ours if ours else None
            target = want.get(impl)
            needed = times[impl] / target if target else None     # the time fastnn would need
            at_roof = roof_time(times, roof)
            if ratio is None or target is None:
                ok = "—"
            elif ratio < target and at_roof is not None and needed < at_roof:   # missed, as would the roof itself
                above += 1
                ok = f"above the roof: needs {needed * 1e3:.3f} ms, roof {at_roof * 1e3:.3f}"
            else:
                total += 1
                met += ratio >= target
                ok = "yes" if ratio >= target else "no"
            shown = "—" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"| {impl} | {ms} | {shown} | {'—' if target is None else f'>= {target:g}x'} | {ok} "
                         f"| {_pct(frac)} |{of_chain}")
        missing = [impl for impl in want if impl not in times]
        if missing or ours is None:
            lines.append("")
            lines.append(f"Not run: {', '.join((['fastnn'] if ours is None else []) + missing)}.")
        lines.append("")
    return lines, met, total, above


def compact(groups, roofs=None, stat="median"):
    """One markdown table, a row per group: times, fastnn's speed-ups, fastnn's and torch's fractions of roof, and for
    the recurrent groups the chain roof (with its own fraction of roof) and fastnn's fraction of it."""
    roofs = roofs or {}
    lines = ["| group | fastnn ms | NumPy ms | torch ms | roof ms | vs NumPy | vs torch | fastnn of roof "
             "| torch of roof | chain roof ms | fastnn of chain roof |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for group in sorted(groups):
        times, roof = groups[group], roofs.get(group, {})
        ours = times.get("fastnn")

        def ms(impl):
            return f"{times[impl] * 1e3:.3f}" if impl in times else "—"

        def ratio(impl):
            return f"{times[impl] / ours:.2f}x" if impl in times and ours else "—"
        kind = f" ({roof['roof']['kind']})" if "roof" in roof else ""
        chain = roof_fraction(times, roof, "roof_chain")
        chain_ms = ms("roof_chain") + ("" if chain is None else f" ({_pct(chain)} of roof)")
        lines.append(f"| {group} | {ms('fastnn')} | {ms('numpy')} | {ms('torch')} | {ms('roof')}{kind} "
                     f"| {ratio('numpy')} | {ratio('torch')} | {_pct(roof_fraction(times, roof, 'fastnn'))} "
                     f"| {_pct(roof_fraction(times, roof, 'torch'))} | {chain_ms} "
                     f"| {_pct(roof_fraction(times, roof, 'fastnn', of='roof_chain'))} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    parser.add_argument("--stat", choices=["median", "min", "mean"], default="median",
                        help="timing statistic to compare (default: median)")
    parser.add_argument("--compact", action="store_true", help="one table with a row per group (README)")
    args = parser.parse_args(argv)
    try:
        groups, roofs, facts = load(args.json, args.stat)
    except (OSError, ValueError, KeyError) as exc:
        print(f"summarize: cannot read {args.json}: {exc}", file=sys.stderr)
        return 2
    if not groups:
        print(f"summarize: {args.json} has no benchmarks with extra_info['impl'].", file=sys.stderr)
        return 2
    print(f"CPU: {facts.get('cpu_model')}; OpenMP: {facts.get('openmp_enabled')}; threads: {facts.get('n_threads')}; "
          f"BLAS threads: {facts.get('blas_threads')}; torch: {facts.get('torch_version')}")
    print()
    if args.compact:
        print("\n".join(compact(groups, roofs, args.stat)))
        return 0
    lines, met, total, above = summarize(groups, roofs, args.stat)
    print("\n".join(lines))
    print(f"Targets met: {met} of {total}." + (f" Above the roof (not counted): {above}." if above else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
