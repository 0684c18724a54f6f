"""Is it true that "on large datasets SGD wins, on smaller ones L-BFGS or CG win"?  (`fastnn compare-optimizers`,
bench/compare_lbfgs_sgd.py.)

The same model (multinomial logistic regression, and a one-hidden-layer tanh network) is trained on datasets of
increasing size n by L-BFGS, nonlinear CG, plain mini-batch SGD, SGD + momentum and AdaGrad.  Every method
minimises the same objective, the mean training cross-entropy plus weight_decay/2 * ||w||^2 (weights, not biases),
from the same initial parameters (weight_decay 1e-4 on the synthetic task; 0 on word windows, because the
optimizers' weight decay on sparse embedding rows is lazy, so only 0 makes it the same objective).  Each run gets a
wall-time budget (growing with n); the objective over the whole training set is recorded against the method's own
wall time (for SGD-type methods it is evaluated at roughly geometric time intervals with the clock stopped; L-BFGS
and CG compute it exactly at every evaluation anyway).
For each n and model the target is "within 1% of the best objective any method reached"; we report the seconds each
method needed to get there (None if never), its final objective, and its held-out accuracy.

Data: by default a built-in generator (fastnn.data.synthetic.teacher, a fixed random tanh teacher network; 50
features, 10 classes, 5% label noise), so it runs on a fresh machine with no downloads.  A CoNLL file (word and POS
columns) or a tagged Brown file (word/TAG tokens) gives the task of predicting the centre word's tag from a window of
word ids; the last 1000 sentences are held out.

>>> rows, traces = compare(CompareConfig(sizes=(300,), budget=0.2))    # print(markdown_table(rows)): the table
>>> sorted({r["method"] for r in rows})
['adagrad', 'cg', 'lbfgs', 'momentum', 'sgd']

`run(CompareConfig(), "train.txt", threads=1)` loads a file first and returns (rows, traces, data).
"""
import io as _io
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from fastnn.io import atomic_write
from fastnn.recipes.config import Config, check_fields, option

__all__ = ["CompareConfig", "METHODS", "MODELS", "DEFAULT_SIZES", "TARGET_TOL", "Dataset", "synthetic", "tagging",
           "read_tagged", "sizes_for", "compare", "run", "markdown_table", "plot", "save_traces"]

METHODS = ("lbfgs", "cg", "sgd", "momentum", "adagrad")
MODELS = ("logreg", "mlp")
DEFAULT_SIZES = (1000, 10000, 100000, 1000000)
TARGET_TOL = 0.01                 # within 1% of the best objective


def parse_sizes(text):
    """'1000,1e5' -> (1000, 100000)."""
    try:
        values = tuple(int(float(s)) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"must be comma-separated integers like 1000,100000; got {text!r}") from None
    return values


def parse_names(text):
    """'lbfgs, sgd' -> ('lbfgs', 'sgd') (checked against the allowed names by CompareConfig)."""
    return tuple(s.strip() for s in str(text).split(",") if s.strip())


@dataclass
class CompareConfig(Config):
    """One comparison: which sizes, models and methods, and every setting of the runs.  The learning rates were
    picked by short sweeps (training objective after a fixed number of epochs at n = 1e4 .. 1e5, seed 0; the
    synthetic task with weight decay 1e-4, CoNLL-2000 windows without) on each kind of data ("synthetic" dense
    features, "tagging" word windows); lr[(kind, model)][method], hidden[kind]."""
    sizes: tuple = option(None, "training-set sizes, comma-separated", parse=parse_sizes, metavar="N[,N...]",
                          default_text=f"{','.join(map(str, DEFAULT_SIZES))}; with --data the sizes that fit, plus "
                                       "all of it")
    models: tuple = option(MODELS, "comma-separated subset of " + ",".join(MODELS), parse=parse_names)
    methods: tuple = option(METHODS, "comma-separated subset of " + ",".join(METHODS), parse=parse_names)
    seed: int = option(0, "seed of the data, the initial parameters and batch order")
    budget: float = option(15.0, "seconds per run for the largest size; smaller sizes get (n/n_max)^(1/3) of it")
    batch_size: int = option(100, "mini-batch size")
    weight_decay: float = option(None, "L2 coefficient in the objective, weights only", type=float,
                                 default_text="1e-4 on the synthetic task, 0 on word windows: the optimizers' weight "
                                              "decay on embedding rows is lazy, so only 0 gives every method the "
                                              "same objective there")
    default_weight_decay: dict = option({"synthetic": 1e-4, "tagging": 0.0}, "weight_decay per kind of data",
                                        cli=False)
    lr: dict = option({  # sgd and momentum decay as O(1/t) after `tau` steps
        ("synthetic", "logreg"): {"sgd": 0.2, "momentum": 0.02, "adagrad": 0.1},
        ("synthetic", "mlp"): {"sgd": 0.5, "momentum": 0.05, "adagrad": 0.1},
        ("tagging", "logreg"): {"sgd": 20.0, "momentum": 2.0, "adagrad": 1.0},   # one-hot rows: tiny gradients
        ("tagging", "mlp"): {"sgd": 2.0, "momentum": 0.2, "adagrad": 0.1},
    }, "learning rate per (kind of data, model) and method", cli=False)
    momentum: float = option(0.9, "momentum of the momentum method", needs=("methods", "momentum"))
    tau: int = option(2000, "sgd and momentum: lr_t = lr * tau / max(t, tau), O(1/t) after tau steps")
    hidden: dict = option({"synthetic": 32, "tagging": 100}, "hidden units of the mlp per kind of data", cli=False)
    embed_dim: int = option(50, "word vector size of the mlp on word windows", needs=("data", None))
    window: int = option(5, "window size on word windows, odd", needs=("data", None))   # (the CLI's --data)
    prior_bias: bool = option(True, "output bias starts at the log class priors of the training set")

    def __post_init__(self):
        check_fields(self, ints=dict(seed=0, batch_size=1, tau=1, embed_dim=1, window=1), odd=("window",),
                     positive=("budget",), nonneg=("momentum",))
        where = type(self).__name__
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"{where}: 'weight_decay' must be >= 0; got {self.weight_decay!r}.")
        for name, allowed in (("models", MODELS), ("methods", METHODS)):
            values = tuple(getattr(self, name))
            if not values or any(v not in allowed for v in values):
                raise ValueError(f"{where}: '{name}' must be a comma-separated subset of {','.join(allowed)}; "
                                 f"got {','.join(map(str, values))!r}.")
            setattr(self, name, values)
        if self.sizes is not None:
            self.sizes = tuple(self.sizes)
            if not self.sizes or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 10
                                     for n in self.sizes):
                raise ValueError(f"{where}: 'sizes' must be integers >= 10; got {self.sizes!r}.")

    def run_budget(self, n, n_max):
        return self.budget * (n / n_max) ** (1.0 / 3.0)

    def weight_decay_for(self, kind):
        return self.default_weight_decay[kind] if self.weight_decay is None else self.weight_decay


# ---- data --------------------------------------------------------------------------------------------------------

class Dataset:
    """Training pool (x, y) (the first n rows are the size-n training set), held-out set, and model input spec."""

    def __init__(self, name, x, y, x_held, y_held, n_classes, spec):
        self.name, self.x, self.y, self.x_held, self.y_held = name, x, y, x_held, y_held
        self.n_classes, self.spec = n_classes, spec

    def __len__(self):
        return len(self.y)


def synthetic(n_max, seed, n_held=20000):
    """The built-in task: a fixed random teacher network (fastnn.data.synthetic.teacher)."""
    from fastnn.data.synthetic import teacher

    x, y = teacher(n_max, seed=seed)
    xh, yh = teacher(n_held, seed=seed + 1_000_003)
    return Dataset("synthetic", x, y, xh, yh, int(max(y.max(), yh.max()) + 1), {"n_features": x.shape[1]})


def read_tagged(path):
    """Sentences of (word, tag) pairs from a CoNLL file (columns 0 and 1) or a tagged Brown file (word/TAG).

    The file is opened once (a pipe such as bash's <(zcat tagged.gz) cannot be opened again: a second open reads only
    what the first left), its lines up to the 200th token line looked at to decide the format (conll.read_head) and
    then read again from memory."""
    import itertools

    from fastnn._validation import check_path
    from fastnn.data.conll import detect_format, parse_conll, read_head
    from fastnn.data.text import open_text, split_fields

    path = check_path(path, "read_tagged")
    with open_text(path, "read_tagged") as f:
        head = read_head(f)
        lines = itertools.chain(head, f)
        first = next((split_fields(line) for line in head if split_fields(line)), [])
        if not first:
            raise ValueError(f"{path} has no tokens")
        if all("/" in tok[1:] for tok in first):                          # Brown: one sentence per line
            sents = []
            for i, line in enumerate(lines, 1):
                toks = [t.rsplit("/", 1) for t in split_fields(line)]
                bad = next((t[0] for t in toks if len(t) != 2 or not t[0]), None)
                if bad is not None:
                    raise ValueError(f"{path}, line {i}: every token must be word/TAG like line 1; got {bad!r}")
                if toks:
                    sents.append([(w, t) for w, t in toks])
            return sents
        if len(first) < 2 or detect_format(head) == "text":
            raise ValueError(f"{path}: tagging needs a word and a tag per token, as CoNLL columns (one token per line, "
                             f"blank lines between sentences) or word/TAG tokens; it reads as plain text (line 1: "
                             f"{' '.join(first[:6])}{' ...' if len(first) > 6 else ''}; the shared Brown LM split has "
                             f"no tags)")
        return parse_conll(lines, [0, 1], name=path, where="read_tagged")


def tagging(path, window, n_held_sentences=1000, min_count=2):
    """Windows of word ids centred on each token, labelled with its tag; the last sentences are held out."""
    from fastnn.data.conll import encode_tags, encode_words, tag_vocab, windows, word_vocab

    sents = read_tagged(path)
    if len(sents) <= n_held_sentences:
        raise ValueError(f"{path} has {len(sents)} sentences; need more than {n_held_sentences} (the held-out part)")
    train, held = sents[:-n_held_sentences], sents[-n_held_sentences:]
    wv = word_vocab(train, col=0, min_count=min_count)
    tv = tag_vocab(sents, 1)
    x, _, _ = windows(encode_words(train, wv, col=0), window=window)
    xh, _, _ = windows(encode_words(held, wv, col=0), window=window)
    y = np.concatenate(encode_tags(train, tv, 1))
    yh = np.concatenate(encode_tags(held, tv, 1))
    name = os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    return Dataset(name, x, y, xh, yh, len(tv), {"vocab_size": len(wv), "window": window})


# ---- models and methods ------------------------------------------------------------------------------------------

def subset(data, n):
    """The first n training examples and the held-out inputs, with the model spec.  For word windows the vocabulary
    is cut down to the words of those n examples (the others map to <unk>, id 1; <pad> is id 0), so a model trained
    on a small set has only the parameters that set can inform (what L-BFGS pays for per iteration)."""
    x, y = data.x[:n], data.y[:n]
    if data_kind(data.spec) != "tagging":
        return x, y, data.x_held, data.spec
    keep = np.zeros(data.spec["vocab_size"], bool)
    keep[:2] = True
    keep[np.unique(x)] = True
    new_id = np.cumsum(keep) - 1
    new_id[~keep] = 1
    return new_id[x], y, new_id[data.x_held], {**data.spec, "vocab_size": int(keep.sum())}


def data_kind(spec):
    return "synthetic" if spec.get("n_features") is not None else "tagging"


def make_model(name, n_classes, spec, config, y=None):
    from fastnn.models.classifiers import MLP, LogisticRegression

    counts = np.bincount(y, minlength=n_classes) if config.prior_bias and y is not None else None
    if name == "logreg":
        return LogisticRegression(n_classes, seed=config.seed, class_counts=counts, **spec)
    kind = data_kind(spec)
    extra = {"embed_dim": config.embed_dim} if kind == "tagging" else {}
    return MLP(n_classes, hidden=config.hidden[kind], seed=config.seed, class_counts=counts, **spec, **extra)


def make_optimizer(method, model_name, model, config, wd):
    from fastnn import optim

    ps = model.parameters()
    lr = config.lr[(data_kind(model.config()), model_name)][method]
    if method == "sgd":
        return optim.SGD(ps, optim.InverseTime(lr, config.tau), weight_decay=wd)
    if method == "momentum":
        return optim.SGD(ps, optim.InverseTime(lr, config.tau), momentum=config.momentum, weight_decay=wd)
    if method == "adagrad":
        return optim.AdaGrad(ps, lr, weight_decay=wd)
    raise ValueError(f"make_optimizer: 'method' must be one of sgd, momentum, adagrad; got {method!r}.")


def run_batch_method(method, model, x, y, wd, budget):
    """L-BFGS-B or CG on the whole training set: trace of (seconds, objective) from every evaluation."""
    import warnings

    from fastnn import optim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # "iteration limit" etc.: the trace says enough
        scipy_method = "L-BFGS-B" if method == "lbfgs" else "CG"
        opts = {"gtol": 1e-6} if method == "cg" else {"gtol": 1e-6, "ftol": 1e-12}
        res = optim.minimize(model, (x, y), scipy_method, maxiter=100_000, weight_decay=wd,
                             max_seconds=budget, options=opts)
    h = res.history
    return list(h["seconds"]), list(h["fun"]), res.message


def run_sgd_method(method, model_name, model, x, y, config, wd, budget):
    """Mini-batch SGD / momentum / AdaGrad for `budget` seconds of optimizer time; the full objective is evaluated
    (clock stopped) at geometrically spaced times, and the run stops early once it has stopped improving."""
    opt = make_optimizer(method, model_name, model, config, wd)
    rng = np.random.default_rng(config.seed)
    n, B = len(y), config.batch_size
    times, objs = [0.0], [model.objective(x, y, wd)]
    clock, next_eval = 0.0, budget / 500.0
    stop = None
    model.train()
    while stop is None:
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for s in range(0, n, B):
            idx = perm[s:s + B]
            opt.zero_grad()
            model.loss((x[idx], y[idx])).backward()
            opt.step()
            elapsed = clock + time.perf_counter() - t0
            if elapsed >= next_eval or elapsed >= budget:
                clock = elapsed
                f = model.objective(x, y, wd)          # not charged to the method
                times.append(clock)
                objs.append(f)
                next_eval = clock * 1.25
                if not math.isfinite(f):
                    stop = "diverged (non-finite objective)"
                elif clock >= budget:
                    stop = f"budget of {budget:.1f} s used"
                elif len(objs) > 12 and min(objs[-12:]) > min(objs[:-12]) * (1 - 1e-4):
                    stop = "no improvement over the last 12 evaluations"
                if stop is not None:
                    break
                t0 = time.perf_counter()
        else:
            clock += time.perf_counter() - t0          # the rest of the epoch
    return times, objs, stop


def seconds_to(times, objs, target):
    """First time at which the objective is <= target (None if never)."""
    for t, f in zip(times, objs):
        if f <= target:
            return float(t)
    return None


def sizes_for(config, data=None):
    """The sorted training-set sizes of a run: config.sizes, else DEFAULT_SIZES (on a file's data, those below its
    size plus all of it).  Every size must fit the data."""
    if config.sizes is None:
        sizes = list(DEFAULT_SIZES) if data is None else [n for n in DEFAULT_SIZES if n < len(data)] + [len(data)]
    else:
        sizes = list(config.sizes)
    sizes = sorted(set(int(n) for n in sizes))
    if data is not None and max(sizes) > len(data):
        raise ValueError(f"compare: 'sizes' must be at most the {len(data)} training examples of {data.name}; got "
                         f"{[n for n in sizes if n > len(data)]}.")
    return sizes


def compare(config=None, *, data=None, log=None):
    """Run the comparison `config` (CompareConfig()) describes on `data` (a Dataset; default: the synthetic task,
    as large as the largest size).  Returns (rows, traces): rows as in `fastnn compare-optimizers --json`;
    traces[(n, model, method)] = (seconds list, objective list).  log : callable taking one progress line, or None."""
    config = config or CompareConfig()
    if data is None:
        data = synthetic(max(sizes_for(config)), config.seed)
    sizes = sizes_for(config, data)
    wd = config.weight_decay_for(data_kind(data.spec))
    rows, traces = [], {}
    for n in sizes:
        x, y, x_held, spec = subset(data, n)
        budget = config.run_budget(n, max(sizes))
        for model_name in config.models:
            group = []
            for method in config.methods:
                model = make_model(model_name, data.n_classes, spec, config, y)
                t = time.perf_counter()
                if method in ("lbfgs", "cg"):
                    times, objs, note = run_batch_method(method, model, x, y, wd, budget)
                else:
                    times, objs, note = run_sgd_method(method, model_name, model, x, y, config, wd, budget)
                wall = time.perf_counter() - t
                final = model.objective(x, y, wd)
                acc = model.accuracy(x_held, data.y_held)
                traces[(n, model_name, method)] = (times, objs)
                group.append({"n": n, "model": model_name, "method": method, "seconds_to_target": None,
                              "final_objective": final, "heldout_accuracy": acc})
                if log:
                    log(f"n={n} {model_name} {method}: objective {final:.4f}, held-out accuracy {acc:.4f}, "
                        f"{times[-1] if times else 0:.2f} s optimizer time ({wall:.1f} s wall; {note})")
            finite = [f for m in config.methods for f in traces[(n, model_name, m)][1] if math.isfinite(f)]
            best = min(finite) if finite else float("nan")
            target = best + TARGET_TOL * abs(best)
            for row in group:
                row["seconds_to_target"] = seconds_to(*traces[(n, model_name, row["method"])], target)
            rows.extend(group)
    return rows, traces


def run(config=None, path=None, *, threads=None, log=None):
    """The whole experiment as `fastnn compare-optimizers` runs it: the data (the tagged file at `path`, else the
    synthetic task), then compare() with `threads` kernel threads (None: fastnn's default) and BLAS limited to the
    same count.  Returns (rows, traces, data)."""
    import fastnn

    config = config or CompareConfig()
    data = tagging(path, config.window) if path else None
    sizes = sizes_for(config, data)
    with fastnn.threads(kernels=threads):
        n_threads = fastnn.get_num_threads()
        with fastnn.threads(blas=n_threads):
            if data is None:
                data = synthetic(max(sizes), config.seed)
            if log:
                log(f"compare-optimizers: {data.name} data, sizes {sizes}, models {list(config.models)}, methods "
                    f"{list(config.methods)}, {n_threads} thread(s)")
            rows, traces = compare(config, data=data, log=log)
    return rows, traces, data


# ---- output ------------------------------------------------------------------------------------------------------

def markdown_table(rows):
    """The rows as a markdown table, fastest method per (n, model) in bold."""
    lines = ["| n | model | method | seconds to target | final objective | held-out accuracy |",
             "|---:|---|---|---:|---:|---:|"]
    fastest = {}
    for r in rows:
        key = (r["n"], r["model"])
        if r["seconds_to_target"] is not None and (key not in fastest or r["seconds_to_target"] < fastest[key]):
            fastest[key] = r["seconds_to_target"]
    for r in rows:
        s = r["seconds_to_target"]
        cell = "never" if s is None else f"{s:.3g}"
        if s is not None and s == fastest.get((r["n"], r["model"])):
            cell = f"**{cell}**"
        lines.append(f"| {r['n']:,} | {r['model']} | {r['method']} | {cell} | {r['final_objective']:.4f} | "
                     f"{r['heldout_accuracy']:.4f} |")
    return "\n".join(lines)


def plot(traces, path, title=""):
    """Objective against seconds (log axis), one panel per (model, n), one curve per method, written to `path`
    atomically.  Returns the path, or None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = sorted({k[0] for k in traces})
    models = [m for m in MODELS if any(k[1] == m for k in traces)]
    fig, axes = plt.subplots(len(models), len(sizes), figsize=(3.6 * len(sizes), 3.0 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        for j, n in enumerate(sizes):
            ax = axes[i][j]
            finite = [f for (nn, mm, _), (_, fs) in traces.items() if nn == n and mm == model
                      for f in fs if math.isfinite(f)]
            if not finite:
                continue
            best = min(finite)
            for method in METHODS:
                if (n, model, method) not in traces:
                    continue
                ts, fs = traces[(n, model, method)]
                ts = np.maximum(np.asarray(ts), 1e-3)
                ax.plot(ts, np.minimum.accumulate(np.asarray(fs, dtype=float)), label=method, lw=1.4)
            ax.axhline(best * (1 + TARGET_TOL), color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_yscale("log")                  # objectives may approach 0 (unregularised, separable data)
            start = [fs[0] for (nn, mm, _), (_, fs) in traces.items() if nn == n and mm == model and fs]
            ax.set_ylim(max(best, 1e-6) / 1.1, max(start) * 1.1)
            ax.set_title(f"{model}, n={n:,}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == len(models) - 1:
                ax.set_xlabel("seconds", fontsize=8)
            if j == 0:
                ax.set_ylabel("training objective (best so far)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buf = _io.BytesIO()                 # (savefig(path) wrote in place: a failure left a torn file over the old one)
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def save_traces(path, traces):
    """Every run's trace (seconds, objective) as a JSON list, written atomically."""
    doc = [{"n": n, "model": m, "method": k, "seconds": ts, "objective": fs} for (n, m, k), (ts, fs) in traces.items()]
    atomic_write(path, lambda f: f.write(json.dumps(doc).encode()))
