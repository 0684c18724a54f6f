"""PNG plots of the RNN experiments.  matplotlib is optional (`pip install fastnn[plot]`): without it every function
returns None and says so through `log`."""
import io as _io
import math

import numpy as np

from fastnn import io


def _pyplot(log):
    try:
        import matplotlib
    except ImportError:
        if log:
            log("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return None
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, plt):
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    io.atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def _axes(ax, title, xlabel, *, ylabel=None, log="y", legend=None):
    """The house style of a panel: title, labels, log scale on the axes named in `log`, a light grid, and a legend
    of font size `legend` (None: no legend)."""
    for axis in log:
        getattr(ax, f"set_{axis}scale")("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend is not None:
        ax.legend(fontsize=legend)


def plot_adding(results, path, log=None):
    """Test MSE against steps, one panel per T, one line per model, with the baseline and 0.1 x baseline."""
    plt = _pyplot(log)
    if plt is None:
        return None
    Ts = sorted({r["T"] for r in results})
    fig, axes = plt.subplots(1, len(Ts), figsize=(4.2 * len(Ts), 3.6), squeeze=False)
    for ax, T in zip(axes[0], Ts):
        for r in (r for r in results if r["T"] == T):
            mse = np.asarray(r["test_mse"], dtype=float)
            ax.plot(r["eval_steps"], mse, label=r["model"])
        base = results[0]["baseline_mse"]
        ax.axhline(base, color="k", ls="--", lw=0.8, label="baseline 1/6")
        ax.axhline(0.1 * base, color="k", ls=":", lw=0.8, label="0.1 x baseline")
        _axes(ax, f"adding problem, T = {T}", "SGD steps")
    axes[0][0].set_ylabel("test MSE")
    axes[0][0].legend(fontsize=8, loc="lower left")
    return _save(fig, path, plt)


def plot_gradients(results, path, log=None):
    """||d loss / d h_t|| against the distance T - t from the loss (log scale), untrained (dashed) and trained."""
    plt = _pyplot(log)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {}
    for r in results:
        c = colors.setdefault(r["model"], f"C{len(colors)}")
        norms = np.asarray(r["norms"], dtype=float)
        ax.plot(np.arange(len(norms)), norms, color=c, ls="--" if r["state"] == "untrained" else "-",
                label=f"{r['model']} {r['state']}" + (f" ({r['steps']} steps)" if r["steps"] else ""))
    _axes(ax, f"gradient flow, adding problem T = {results[0]['T']}", "distance from the loss, T - t (steps)",
          ylabel="mean ||d loss / d h_t||", legend=8)
    return _save(fig, path, plt)


def _smooth(x, k):
    x = np.asarray(x, dtype=float)
    if len(x) < k or k < 2:
        return x
    c = np.cumsum(np.insert(np.where(np.isfinite(x), x, np.nan), 0, 0.0))
    return (c[k:] - c[:-k]) / k


def plot_clipping(results, path, log=None):
    """The compared modes: training loss (smoothed), test MSE and gradient norm against steps; then the sweep's
    final test MSE against the threshold, with the heuristic threshold marked."""
    plt = _pyplot(log)
    if plt is None:
        return None
    compare = [r for r in results if r.get("role", "compare") == "compare"]
    sweep = [r for r in results if r.get("role") == "sweep"]
    heur = [r for r in results if r.get("role") == "heuristic"]
    fig, axes = plt.subplots(1, 4 if sweep else 3, figsize=(18 if sweep else 13.5, 3.8))
    k = max(1, int(math.ceil(max(len(r["loss"]) for r in compare) / 200))) if compare else 1
    for i, r in enumerate(compare):
        c = f"C{i}"
        lab = f"{r['clip']}" + (" (diverged)" if r["diverged"] else "")
        loss = _smooth(r["loss"], k)
        axes[0].plot(np.arange(len(loss)) + k, loss, color=c, label=lab)
        axes[1].plot(r["eval_steps"], r["test_mse"], color=c, marker=".", label=lab)
        axes[2].plot(np.arange(1, len(r["grad_norm"]) + 1), r["grad_norm"], color=c, lw=0.5, alpha=0.7, label=lab)
        if r["diverged"]:
            axes[0].axvline(len(r["loss"]), color=c, ls=":", lw=0.8)
    base = results[0]["baseline_mse"]
    for ax in axes[:2]:
        ax.axhline(base, color="k", ls="--", lw=0.8)
    axes[2].axhline(results[0]["threshold"], color="k", ls="--", lw=0.8, label="threshold c")
    titles = (f"training loss (mean of {k} steps)", "test MSE", "gradient norm before clipping")
    for ax, t in zip(axes, titles):
        _axes(ax, t, "SGD steps")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    if sweep:
        ax = axes[3]
        for mode, mark in (("norm", "o"), ("temporal", "s")):
            rows = [r for r in sweep + [r for r in compare if r["clip"] == "temporal"] if r["clip"] == mode]
            rows.sort(key=lambda r: r["threshold"])
            mse = [math.nan if r["final_test_mse"] is None else r["final_test_mse"] for r in rows]
            if rows:
                ax.plot([r["threshold"] for r in rows], mse, marker=mark, label=f"{mode} clipping at c")
        for r in heur:
            ax.plot([r["threshold"]], [r["final_test_mse"]], marker="*", ms=12, ls="", color="C3",
                    label=f"heuristic c = {r['threshold']:.3g}")
        ax.axhline(base, color="k", ls="--", lw=0.8, label="baseline")
        _axes(ax, f"final test MSE after {sweep[0]['steps']} steps", "threshold c", log="xy", legend=8)
    fig.suptitle(f"clipping, {results[0]['kind']} on adding T = {results[0]['T']}, lr {results[0]['lr']}", y=1.03)
    return _save(fig, path, plt)


def plot_digits(results, path, log=None):
    """Validation error against epochs of each model's chosen run, one panel per pixel order, with chance (0.9)."""
    plt = _pyplot(log)
    if plt is None:
        return None
    orders = list(dict.fromkeys(r["order"] for r in results))
    fig, axes = plt.subplots(1, len(orders), figsize=(4.6 * len(orders), 3.6), squeeze=False)
    for ax, order in zip(axes[0], orders):
        for i, r in enumerate(r for r in results if r["order"] == order):
            curve = np.asarray(r["valid_curve"], dtype=float)
            ax.plot(np.arange(1, len(curve) + 1), curve, color=f"C{i}",
                    label=f"{r['model']} (lr {r['lr']:g}, clip {r['clip']:g}): test {r['test_error']:.3f}")
        ax.axhline(0.9, color="k", ls="--", lw=0.8, label="chance 0.9")
        ax.set_ylim(0, 1)
        _axes(ax, f"8x8 digits pixel by pixel, {order} order", "epoch", log="", legend=7)
    axes[0][0].set_ylabel("validation error")
    return _save(fig, path, plt)
