"""Experiment 2: how d loss / d h_t shrinks or grows with the distance from the loss (Bengio et al. 1994; Pascanu,
Mikolov & Bengio 2013), for untrained and trained sigmoid, tanh and IRNN networks on the adding problem, plus a tanh
network with W_hh doubled (chaotic, so its gradients explode).

The loss reads only h_T, so d loss / d h_t = (d loss / d h_T) J_T J_{T-1} ... J_{t+1} with J_s = d h_s / d h_{s-1}
= diag(f'(z_s)) W_hh: a product of T - t Jacobians.  Its norm decays exponentially when they contract (vanishing)
and grows exponentially when they expand (exploding).

>>> curves = run_gradients(T=10, train_steps=20, hidden=8, n=16, seed=0)    # README: T=150, train_steps=30000
>>> sorted({(c["model"], c["state"]) for c in curves})[:2]
[('irnn', 'trained'), ('irnn', 'untrained')]
"""
import numpy as np

from fastnn import graph, kernels, nn, threads
from fastnn._validation import check_int
from fastnn.data.adding import adding
from fastnn.experiments import check_list
from fastnn.experiments.adding import DEFAULTS, MODELS, make_model, train
from fastnn.init import check_seed

GRADIENT_MODELS = ("sigmoid", "tanh", "tanh_x2", "irnn")


def parse_spec(spec):
    """(kind, gain) from a model spec: an AddingRNN kind ("tanh", gain 1) or kind + "_x" + gain ("tanh_x2": W_hh
    multiplied by 2 after initialisation, which puts a tanh network in the chaotic regime where gradients explode)."""
    kind, sep, gain = str(spec).partition("_x")
    try:
        g = float(gain) if sep else 1.0
    except ValueError:
        g = None
    if kind not in MODELS or g is None or not g > 0:
        raise ValueError(f"run_gradients: a model must be one of {MODELS}, optionally followed by _x<gain> with a "
                         f"positive gain (e.g. tanh_x2); got {spec!r}.")
    return kind, g


def build(spec, settings, seed):
    """The AddingRNN for a model spec (see parse_spec), built as in experiment 1."""
    kind, gain = parse_spec(spec)
    model = make_model(kind, settings, seed)
    if gain != 1.0:
        model.rnn.W_hh.value *= gain
    return model


def hidden_state_grads(model, X, y):
    """d loss_i / d h_t for every example i (loss_i its squared error) and step t = 1..T.

    Returns an array (T, B, hidden): row t - 1 is the gradient wrt h_t, so the last row is at distance 0 from the
    loss.  The graph's backward gives only the gradient flowing into H from outside the recurrence (here only into
    h_T); the total one adds what reaches h_t from step t + 1: d loss / d h_t = dH_t + (d loss / d z_{t+1}) W_hh, with
    d loss / d z from kernels.rnn_backward (no clipping).
    """
    rnn = model.rnn
    H, pred = model.forward(X)
    loss = nn.mse(pred, np.asarray(y, dtype=pred.dtype).reshape(-1, 1))
    graph.backward(loss, keep_grads=True)
    dH = H.grad if H.grad is not None else np.zeros_like(H.value)
    model.zero_grad()
    T, B, K = H.value.shape
    Hf = np.concatenate([np.zeros((1, B, K), dtype=H.value.dtype), H.value])
    W = rnn.W_hh.value
    dZ = kernels.rnn_backward(np.ascontiguousarray(dH), Hf, W, activation=rnn.activation)[0]
    dh = np.array(dH, dtype=np.float64)
    dh[:-1] += dZ[1:].reshape(-1, K).astype(np.float64).dot(W.astype(np.float64)).reshape(T - 1, B, K)
    return dh * B  # the mean over the batch divided each example's gradient by B


def grad_norm_profile(model, X, y):
    """Mean over the examples of ||d loss_i / d h_t||, ordered by distance 0 .. T-1 from the loss."""
    g = hidden_state_grads(model, X, y)
    return np.linalg.norm(g, axis=2).mean(axis=1)[::-1]


def run_gradients(T=150, *, models=GRADIENT_MODELS, train_steps=None, n=256, seed=0, log=None, n_threads=1,
                  **settings):
    """Gradient-norm profiles of untrained and trained networks.

    Each model in `models` (specs for `build`) is built as in experiment 1, measured on n adding sequences of length
    T, trained for train_steps (default: the adding experiment's steps) with the adding defaults (overridable by
    **settings), and measured again.

    Returns a list of dicts: model, state ("untrained" | "trained"), T, steps, test_mse, norms (list, distance
    0 .. T-1), decay (the norm at distance T-1 over the norm at distance 0), rate (the geometric-mean factor
    per step, decay ** (1 / (T - 1)): < 1 vanishing, > 1 exploding).
    """
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"run_gradients: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    check_int(n, "n", "run_gradients")
    seed = check_seed(seed, "run_gradients")     # (n=0 failed in nn.mse: "the mean needs at least one target")
    models = check_list(models, "models", "run_gradients")
    for m in models:
        parse_spec(m)  # fail before any training
    s = dict(DEFAULTS, **settings)
    train_steps = s["steps"] if train_steps is None else train_steps
    X, y = adding(n, T, np.random.default_rng([seed, 4]))
    test = adding(s["n_test"], T, np.random.default_rng([seed, 1]))
    out = []
    with threads(kernels=n_threads, blas=n_threads):
        for kind in models:
            model = build(kind, s, seed)
            for state in ("untrained", "trained"):
                h = None
                if state == "trained":
                    h = train(model, T=T, steps=train_steps, lr=s["lr"], lr_end=s["lr_end"], momentum=s["momentum"],
                              batch_size=s["batch_size"], max_norm=s["clip"], seed=[seed, 3], test=None,
                              eval_every=0)
                norms = grad_norm_profile(model, X, y)
                decay = float(norms[-1] / norms[0]) if norms[0] > 0 else float("nan")
                rate = decay ** (1.0 / max(T - 1, 1)) if np.isfinite(decay) else float("nan")
                r = dict(model=kind, state=state, T=T, steps=0 if h is None else h["steps"],
                         test_mse=model.mse(*test), norms=norms.tolist(), decay=decay, rate=rate)
                out.append(r)
                if log:
                    log(f"{kind:>8} {state:>9}: test MSE {r['test_mse']:.4f}, |dL/dh| at distance 0 "
                        f"{norms[0]:.3g}, at {T - 1} {norms[-1]:.3g} (x{rate:.4f} per step)")
    return out


def format_table(results):
    """Markdown: model, state, steps, test MSE, norm at distance 0 and T-1, per-step factor."""
    lines = ["| model | state | steps | test MSE | norm at 0 | norm at T-1 | factor per step |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        n = r["norms"]
        lines.append(f"| {r['model']} | {r['state']} | {r['steps']} | {r['test_mse']:.4f} | {n[0]:.3g} | "
                     f"{n[-1]:.3g} | {r['rate']:.4f} |")
    return "\n".join(lines)
