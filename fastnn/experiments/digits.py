"""Experiment 4: handwritten digits read one pixel per step (Le, Jaitly & Hinton 2015, section 4.2 and Table 2).

Each 8x8 digit of scikit-learn's bundled set (fastnn.data.digits) is a 64-step sequence of one pixel each, in row
order ("plain") or under one fixed random permutation ("permuted"); the network reads it and classifies the digit
from its last hidden state with a softmax.  Models (100 hidden units each, as in the paper):

- irnn: ReLU, W_hh = I, b = 0 (Le et al.);
- relu: ReLU, W_hh Glorot uniform;
- tanh: tanh, W_hh Glorot uniform;
- lstm: nn.LSTM (forget-gate bias 1).

Each (model, order) is trained by mini-batch SGD with global-norm clipping for each point of a small grid (learning
rate x clipping threshold); the point with the lowest validation error is kept, at its best epoch, and its test error
reported.  The paper's MNIST sequences are 784 steps long; these are 64, so the gap between the models is expected to
be smaller.

    results = run_digits(seed=0)          # one dict per (model, order)
    print(format_table(results))
"""
import itertools
import math
import numbers
import time

import numpy as np

from fastnn import init as _init
from fastnn import nn, optim, threads
from fastnn.data.digits import DIGIT_CLASSES, ORDERS, digit_sequences
from fastnn.experiments import check_grid, check_list, jsonable, map_jobs
from fastnn.experiments.adding import time_major
from fastnn.graph import Module
from fastnn.init import check_seed
from fastnn.train import ArrayBatches, Trainer

MODELS = ("irnn", "relu", "tanh", "lstm")

MODEL_INIT = {
    "irnn": "ReLU, W_hh = I, b = 0 (Le et al. 2015)",
    "relu": "ReLU, W_hh Glorot uniform",
    "tanh": "tanh, W_hh Glorot uniform",
    "lstm": "LSTM (i, f, g, o gates Glorot per gate, forget bias 1)",
}

# Defaults of `fastnn experiment digits` and bench/rnn_digits.py: with them the whole run (4 models x 2 orders x the
# grid) takes under 15 minutes on 2 cores (README).  GRID is the default grid, MODEL_GRID its per-model exceptions
# (as Le et al., each model gets its own range), LONG_GRID the one behind --long.  The ranges come from short probes
# of each model (plain order): lr 0.01-0.03 suits the ReLU and tanh RNNs, 0.1-0.3 the LSTM, 0.001-0.01 the IRNN (its
# gradient at W_hh = I is hundreds of times the others').  center: subtract the training set's mean pixel, so that
# the IRNN's ReLUs act from the start (on [0, 1] pixels with b = 0 every unit either never fires or never leaves
# the linear side: a bank of integrators of the total ink).  workers=2 trains two grid points at once, one per core.
DEFAULTS = dict(hidden=100, batch_size=16, epochs=30, momentum=0.9, patience=None, center=True, workers=2)
GRID = dict(lr=(0.01, 0.03, 0.1), clip=(1.0, 10.0))
MODEL_GRID = {"irnn": dict(lr=(0.001, 0.003, 0.01), clip=(1.0, 10.0))}
LONG_GRID = dict(lr=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3), clip=(1.0, 10.0, 100.0))


class DigitRNN(Module):
    """A recurrent classifier of pixel sequences: softmax(W h_T + b) over the 10 digits.

    Parameters
    ----------
    kind : "irnn" | "relu" | "tanh" | "lstm" (see MODEL_INIT).
    hidden : number of recurrent units.
    rng : int seed or np.random.Generator.
    class_counts : training-set class counts: the output bias starts at the log priors (optimal bias init).
    dtype : float32 or float64.
    """

    def __init__(self, kind, hidden, *, rng, class_counts=None, dtype=np.float32):
        where = "DigitRNN"
        if kind not in MODELS:
            raise ValueError(f"{where}: 'kind' must be one of {MODELS}; got {kind!r}.")
        rng = _init.as_rng(rng, where)
        self.kind, self.hidden = kind, int(hidden)
        if kind == "lstm":
            self.rnn = nn.LSTM(1, hidden, rng=rng, dtype=dtype)
        else:
            self.rnn = nn.RNN(1, hidden, activation="tanh" if kind == "tanh" else "relu",
                              init="identity" if kind == "irnn" else "glorot", rng=rng, dtype=dtype)
        self.out = nn.SoftmaxOutput(hidden, DIGIT_CLASSES, rng=rng, dtype=dtype, class_counts=class_counts)

    def last_state(self, X):
        """X (B, T, 1) -> h_T, a Node (B, hidden)."""
        H, _ = self.rnn(time_major(np.asarray(X, dtype=self.out.W.dtype)))
        T, B, K = H.value.shape
        return nn.reshape(nn.narrow(H, 0, T - 1, 1), (B, K))

    def loss(self, batch):
        """Mean cross-entropy of a batch (X (B, T, 1), y (B,)): a scalar Node."""
        X, y = batch
        return self.out.loss(self.last_state(X), np.asarray(y))

    def predict(self, X, batch_size=64):
        """Predicted classes (n,) without building a graph, `batch_size` sequences at a time (the recurrence's
        buffers then stay in cache: a whole split at once ran the LSTM at half the speed per sequence)."""
        with self.frozen():
            out = [self.out.log_probs(self.last_state(X[i:i + batch_size]).value).argmax(1)
                   for i in range(0, len(X), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def error(self, X, y):
        """Fraction of the sequences misclassified."""
        return float(np.mean(self.predict(X) != np.asarray(y))) if len(y) else math.nan

    def __repr__(self):
        return f"DigitRNN({self.kind!r}, hidden={self.hidden})"


def _check_settings(settings, where):
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    s = dict(DEFAULTS, **settings)
    for name in ("hidden", "batch_size", "epochs", "workers"):
        v = s[name]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{where}: '{name}' must be an int >= 1; got {v!r}.")
    return s


def train_one(kind, order, lr, clip, *, seed=0, data=None, n_threads=1, **settings):
    """Train one model on one pixel order with one grid point; return a dict: model, order, lr, clip, diverged,
    valid_error (best epoch), best_epoch, test_error (at the best epoch), epochs (run), valid_curve and train_loss
    (per epoch), seconds (training and validation).

    A non-finite loss or gradient stops the run (diverged=True); the best parameters before it are kept.
    data : the digit_sequences(order, seed=seed) dict, to avoid reading it again.
    """
    s = _check_settings(settings, "train_one")
    seed = check_seed(seed, "train_one")
    if data is None:
        data = digit_sequences(order, seed=seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data["train"], data["valid"], data["test"]
    if s["center"]:
        mean = Xtr.dtype.type(Xtr.mean())
        Xtr, Xva, Xte = Xtr - mean, Xva - mean, Xte - mean
    model = DigitRNN(kind, s["hidden"], rng=np.random.default_rng([seed, 7]),
                     class_counts=np.bincount(ytr, minlength=DIGIT_CLASSES))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=s["momentum"])
    trainer = Trainer(model, opt, ArrayBatches(Xtr, ytr, batch_size=s["batch_size"]), epochs=s["epochs"],
                      validate=lambda m: m.error(Xva, yva), mode="min", patience=s["patience"], clip_norm=clip,
                      seed=np.random.default_rng([seed, 8]), quiet=True, progress=False)
    t0 = time.perf_counter()
    diverged = False
    with threads(kernels=n_threads, blas=n_threads):
        try:
            trainer.fit()
        except FloatingPointError:
            diverged = True
            if trainer.best_params is not None:   # keep the best epoch before the blow-up
                for name, p in model.parameters().items():
                    p.value[...] = trainer.best_params[name]
        test_error = model.error(Xte, yte)
    hist = trainer.history
    curve = [h["valid"] for h in hist]
    best = int(np.argmin(curve)) if curve else -1
    return dict(model=kind, order=order, lr=lr, clip=clip, diverged=diverged,
                valid_error=curve[best] if curve else math.nan, best_epoch=best + 1, test_error=test_error,
                epochs=len(hist), valid_curve=curve, train_loss=[h["train_loss"] for h in hist],
                seconds=round(time.perf_counter() - t0, 2))


def _job(args):
    kind, order, lr, clip, seed, n_threads, settings = args
    return train_one(kind, order, lr, clip, seed=seed, n_threads=n_threads, **settings)


def run_digits(*, models=MODELS, orders=ORDERS, grid=None, seed=0, log=None, n_threads=1, **settings):
    """Every (model, order) trained on each grid point; the point with the lowest validation error is kept.

    grid : {"lr": [...], "clip": [...]} for every model, or None: GRID, with MODEL_GRID's exceptions (LONG_GRID is
        the longer one).
    settings : DEFAULTS keys (hidden, batch_size, epochs, momentum, patience, center, workers).  workers > 1 trains that
        many grid points at once in separate processes (spawned), each with n_threads threads.

    Returns one dict per (model, order), in that order: model, order, test_error, valid_error, lr, clip (chosen),
    best_epoch, seconds (the whole grid of that pair, summed over its runs), valid_curve and train_loss (chosen
    run), grid (every run: lr, clip, valid_error, test_error, diverged, seconds), settings.
    """
    where = "run_digits"
    s = _check_settings(settings, where)
    seed = check_seed(seed, where)
    models, orders = check_list(models, "models", where), check_list(orders, "orders", where)
    for m in models:
        if m not in MODELS:
            raise ValueError(f"{where}: each model must be one of {MODELS}; got {m!r}.")
    for o in orders:
        if o not in ORDERS:
            raise ValueError(f"{where}: each order must be one of {ORDERS}; got {o!r}.")
    grids = {m: check_grid(where, MODEL_GRID.get(m, GRID) if grid is None else grid) for m in models}
    train_settings = {k: v for k, v in s.items() if k != "workers"}
    jobs = [(kind, order, lr, clip, seed, n_threads, train_settings)
            for kind, order in itertools.product(models, orders)
            for lr, clip in itertools.product(grids[kind]["lr"], grids[kind]["clip"])]
    runs = map_jobs(_job, jobs, s["workers"], lambda r: _say(log, r))
    out = []
    for kind, order in itertools.product(models, orders):
        mine = [r for r in runs if r["model"] == kind and r["order"] == order]
        best = min(mine, key=lambda r: (r["valid_error"] if np.isfinite(r["valid_error"]) else math.inf))
        out.append(dict(model=kind, order=order, test_error=best["test_error"], valid_error=best["valid_error"],
                        lr=best["lr"], clip=best["clip"], best_epoch=best["best_epoch"],
                        seconds=round(sum(r["seconds"] for r in mine), 2), valid_curve=best["valid_curve"],
                        train_loss=best["train_loss"],
                        grid=[{k: r[k] for k in ("lr", "clip", "valid_error", "test_error", "diverged", "seconds")}
                              for r in mine],
                        settings=dict(train_settings, seed=seed, grid=grids[kind])))
        if log:
            log(f"{kind:>5} {order:>8}: chose lr {best['lr']:g}, clip {best['clip']:g}: valid error "
                f"{best['valid_error']:.3f}, test error {best['test_error']:.3f}")
    return out


def _say(log, r):
    if log:
        log(f"{r['model']:>5} {r['order']:>8} lr {r['lr']:<6g} clip {r['clip']:<5g}: valid error "
            f"{r['valid_error']:.3f} (epoch {r['best_epoch']}/{r['epochs']}){' diverged' if r['diverged'] else ''}, "
            f"{r['seconds']:.0f} s")


def summary(results):
    """The objects of `fastnn experiment digits --json`: model, order, test_error, seconds."""
    return jsonable([{k: r[k] for k in ("model", "order", "test_error", "seconds")} for r in results])


def format_table(results):
    """Markdown: model, order, chosen lr and clip, valid error, test error, seconds (whole grid)."""
    lines = ["| model | order | lr | clip | best epoch | valid error | test error | seconds (grid) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['order']} | {r['lr']:g} | {r['clip']:g} | {r['best_epoch']} | "
                     f"{r['valid_error']:.3f} | {r['test_error']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)
