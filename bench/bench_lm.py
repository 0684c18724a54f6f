"""Training speed of the neural LMs: fastnn vs the same models written with torch (same shapes, batch, full softmax,
plain SGD), and the matrix-product roof (the output layer's three products alone, through the same BLAS).

    pytest bench/bench_lm.py --benchmark-only                  # pytest-benchmark, one training step per round
    python bench/bench_lm.py [--rounds 20] [--threads 2]       # a table of training tokens/s (README numbers)
    python bench/bench_lm.py --brown [default fast] --threads 2 # whole `fastnn lm train` runs of the RNN LM on Brown:
                                                               # tokens/s and valid perplexity per epoch, test ppl
    python bench/bench_lm.py --brown default --epochs 2 --threads 1   # the training speed alone, in a short run

Cases: the NPLM of the issue (V=14,115, n=5, m=60, h=100, batch 128, with and without direct connections), the
RNN LM (V=10k, H=256, B=32, T=35, tanh, full softmax) and, fastnn only, the class-factorized NPLM (nplm_class100,
100 frequency classes) and RNN LM at H=100 (V=14,115, 100 frequency classes from a Zipf unigram, B=32, T=10).  Data
are random ids (Zipf-distributed), the same for both implementations.  Run it alone on the machine.
OMP_WAIT_POLICY=PASSIVE is set (see below) unless the environment sets it.
"""
import argparse
import contextlib
import os
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# Idle OpenMP threads must sleep, not spin: the kernels' OpenMP pool and OpenBLAS's pthreads share the cores, and
# GNU OpenMP's default busy-wait after each parallel region slows the next BLAS call several times.  It has to be
# set before libgomp is loaded (import fastnn).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import fastnn  # noqa: E402
from fastnn import kernels, optim  # noqa: E402
from fastnn.recipes.lm import NPLMConfig, RNNConfig, build_model  # noqa: E402

CASES = {
    "nplm_direct": dict(kind="nplm", V=14115, n=5, m=60, h=100, direct=True, B=128),
    "nplm": dict(kind="nplm", V=14115, n=5, m=60, h=100, direct=False, B=128),
    "nplm_class100": dict(kind="nplm", V=14115, n=5, m=60, h=100, direct=False, B=128, classes=100),
    "rnn": dict(kind="rnn", V=10000, H=256, B=32, T=35, classes=0),
    "rnn_class100": dict(kind="rnn", V=14115, H=100, B=32, T=10, classes=100),
}
TORCH_REFERENCE = {"nplm_direct": 2100, "rnn": 4300}      # tokens/s the issue measured for torch on this machine


def build_facts():
    """Which code produced the figures: the build (native or portable), the vector path the RNN LM segment's
    products take (a portable build picks one at run time; FASTNN_VECTOR_PATH forces one) and their register layout
    on the AVX-512 path (ymm on AMD Zen 4, zmm elsewhere; FASTNN_MM_LAYOUT forces one, also in --brown's runs; the
    same bits)."""
    return {"build": fastnn.show_config()["build"], "vector_path": kernels.rnnlm_vector_path(),
            "mm_layout": kernels.rnnlm_mm_layout()}


def _zipf_ids(rng, V, shape):
    p = 1.0 / np.arange(1, V + 1)
    return rng.choice(V, size=shape, p=p / p.sum())


def _counts(V):
    return (1e6 / np.arange(1, V + 1)).astype(np.int64) + 1


# ---- fastnn ------------------------------------------------------------------------------------------------------

def fastnn_step(case, rng):
    """A closure doing one SGD training step; returns (step, tokens per step)."""
    c = CASES[case]
    if c["kind"] == "nplm":
        config = NPLMConfig(order=c["n"], dim=c["m"], hidden=c["h"], direct=c["direct"], classes=c.get("classes", 0))
        m = build_model(config, c["V"], counts=_counts(c["V"]))
        for p in (m.out.W,):
            p.value[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.01
        batch = (_zipf_ids(rng, c["V"], (c["B"], c["n"] - 1)), _zipf_ids(rng, c["V"], c["B"]))
        n_tok = c["B"]
    else:
        m = build_model(RNNConfig(hidden=c["H"], classes=c["classes"]), c["V"], counts=_counts(c["V"]))
        x = _zipf_ids(rng, c["V"], (c["T"], c["B"]))
        batch = (x, _zipf_ids(rng, c["V"], (c["T"], c["B"])), False, c["T"] - 1)
        n_tok = c["T"] * c["B"]
    opt = optim.SGD(m.parameters(), lr=0.01)
    params = opt.params

    def step():
        opt.zero_grad()
        m.loss(batch).backward()
        if c["kind"] == "rnn":
            optim.clip_grad_norm(params, 5.0)
        opt.step()
    return step, n_tok


def roof_step(case, rng):
    """The output layer's three matrix products (logits, dW, dh) alone: the time no implementation can beat."""
    c = CASES[case]
    from fastnn import kernels
    if c["kind"] == "nplm":
        N, K = c["B"], c["h"] + (c["n"] - 1) * c["m"] * c["direct"]
    else:
        N, K = c["B"] * c["T"], c["H"]
    h = rng.standard_normal((N, K)).astype(np.float32)
    W = rng.standard_normal((c["V"], K)).astype(np.float32)
    g = np.empty((N, c["V"]), np.float32)
    dW = np.empty_like(W)

    def step():
        kernels.gemm(h, W, trans_b=True, out=g)
        kernels.gemm(g, h, trans_a=True, out=dW)
        kernels.gemm(g, W)
    return step, N


# ---- torch -------------------------------------------------------------------------------------------------------

def torch_step(case, rng):
    import torch
    c = CASES[case]
    if c.get("classes"):
        return None, 0
    torch.manual_seed(0)
    if c["kind"] == "nplm":
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.C = torch.nn.Embedding(c["V"], c["m"], sparse=True)
                self.H = torch.nn.Linear((c["n"] - 1) * c["m"], c["h"])
                self.out = torch.nn.Linear(c["h"] + (c["n"] - 1) * c["m"] * c["direct"], c["V"])

            def forward(self, ctx, t):
                x = self.C(ctx).reshape(ctx.shape[0], -1)
                h = torch.tanh(self.H(x))
                z = torch.cat([h, x], dim=1) if c["direct"] else h
                return torch.nn.functional.cross_entropy(self.out(z), t)
        net = Net()
        ctx = torch.from_numpy(_zipf_ids(rng, c["V"], (c["B"], c["n"] - 1)))
        t = torch.from_numpy(_zipf_ids(rng, c["V"], c["B"]))
        args, n_tok, clip = (ctx, t), c["B"], None
    else:
        if c["classes"]:
            return None, 0
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(c["V"], c["H"], sparse=True)
                self.rnn = torch.nn.RNN(c["H"], c["H"], nonlinearity="tanh")
                self.out = torch.nn.Linear(c["H"], c["V"])

            def forward(self, x, y, h0):
                H, _ = self.rnn(self.emb(x), h0)
                return torch.nn.functional.cross_entropy(self.out(H).reshape(-1, c["V"]), y.reshape(-1))
        net = Net()
        x = torch.from_numpy(_zipf_ids(rng, c["V"], (c["T"], c["B"])))
        y = torch.from_numpy(_zipf_ids(rng, c["V"], (c["T"], c["B"])))
        args, n_tok, clip = (x, y, torch.zeros(1, c["B"], c["H"])), c["T"] * c["B"], 5.0
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        net(*args).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if not p.grad.is_sparse], clip)
        opt.step()
    return step, n_tok


IMPLS = {"fastnn": fastnn_step, "torch": torch_step, "roof": roof_step}


# ---- pytest-benchmark --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_train_step(benchmark, case, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    step, n_tok = IMPLS[impl](case, np.random.default_rng(0))
    if step is None:
        pytest.skip(f"no {impl} version of {case}")
    benchmark.group = f"lm_train_step:{case}"
    benchmark.extra_info.update(impl=impl, tokens=n_tok, n_threads=fastnn.get_num_threads(), **build_facts())
    with fastnn.threads(blas=1) if impl == "fastnn" else contextlib.nullcontext():   # as `fastnn lm` runs it
        benchmark.pedantic(step, rounds=5, warmup_rounds=1)


# ---- whole runs on Brown ------------------------------------------------------------------------------------------

BROWN = os.path.join(REPO, "..", "shared", "data", "brown")
BROWN_RUNS = {"default": [], "fast": ["--preset", "fast"]}      # `fastnn lm train --arch rnn` options


def brown_run(name, threads, data=BROWN, epochs=None):
    """One `fastnn lm train --arch rnn` run: (command, [(epoch, valid ppl, train tokens/s)], JSON result); `epochs`
    caps the run (a speed figure only: the perplexity is then not the recipe's)."""
    import json
    import re
    import subprocess
    import tempfile
    p = {s: os.path.join(data, f"brown.{s}.txt") for s in ("train", "valid", "test")}
    with tempfile.TemporaryDirectory() as tmp:
        cap = ["--epochs", str(epochs)] if epochs else []
        cmd = ["lm", "train", "--arch", "rnn", *BROWN_RUNS[name], *cap, "--threads", str(threads),
               "--train", p["train"], "--dev", p["valid"], "--test", p["test"], "--out", os.path.join(tmp, "m.npz"),
               "--json"]
        res = subprocess.run([sys.executable, "-m", "fastnn", *cmd], capture_output=True, text=True, cwd=REPO,
                             env=dict(os.environ), check=True)
    # the recipe's line after each epoch: "  valid ppl 136.10, 123,456 tokens/s"
    per_epoch = [(i + 1, float(v), int(t.replace(",", ""))) for i, (v, t) in
                 enumerate(re.findall(r"valid ppl ([\d.]+), ([\d,]+) tokens/s", res.stderr))]
    shown = " ".join(["fastnn lm train --arch rnn", *BROWN_RUNS[name], *cap, "--threads", str(threads), "--train",
                      "brown.train.txt --dev brown.valid.txt --test brown.test.txt --json"])
    return shown, per_epoch, json.loads(res.stdout.splitlines()[-1])


def brown_main(names, threads, epochs=None):
    for name in names:
        cmd, epochs_seen, out = brown_run(name, threads, epochs=epochs)
        print(f"{name}: `{cmd}`: test perplexity {out.get('test_perplexity')}, {out.get('train_tokens_per_s'):,} "
              f"tokens/s over {out.get('epochs')} epochs (training time only)")
        print("| epoch | valid ppl | train tokens/s |\n|---|---|---|")
        for e, v, t in epochs_seen:
            print(f"| {e} | {v:.2f} | {t:,} |")
        print(flush=True)
    return 0


# ---- script ------------------------------------------------------------------------------------------------------

def measure(step, rounds, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="threads for fastnn, BLAS and torch (default 2)")
    ap.add_argument("--kernel-threads", type=int, default=None,
                    help="OpenMP threads of fastnn's own kernels (default --threads); fastnn's own BLAS calls run on "
                         "one thread, as `fastnn lm` runs them (recipes.lm.DEFAULT_THREADS); the roof's and torch's "
                         "on --threads")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--brown", nargs="*", choices=list(BROWN_RUNS), metavar="RUN",
                    help=f"whole RNN LM trainings on Brown instead ({', '.join(BROWN_RUNS)}; none given: all)")
    ap.add_argument("--epochs", type=int, help="with --brown: stop after this many epochs (a speed figure only)")
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    args = ap.parse_args(argv)
    if args.brown is not None:
        return brown_main(args.brown or list(BROWN_RUNS), args.threads, args.epochs)
    kernel_threads = args.threads if args.kernel_threads is None else args.kernel_threads
    fastnn.set_num_threads(kernel_threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads, user_api="blas")
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    facts = build_facts()
    print(f"threads {args.threads} (fastnn: kernels {fastnn.get_num_threads()}, BLAS 1), OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; build {facts['build']}, RNN LM products on {facts['vector_path']} "
          f"({facts['mm_layout']} layout); "
          f"median of {args.rounds} training steps; tokens/s = tokens per step / median")
    print("| case | fastnn tok/s | torch tok/s | fastnn / torch | roof tok/s | fastnn / roof |")
    print("|---|---|---|---|---|---|")
    for case in args.cases:
        res = {}
        for impl, make in IMPLS.items():
            if impl not in args.impls or (impl == "torch" and torch is None):
                continue
            step, n_tok = make(case, np.random.default_rng(0))
            if step is not None:
                with fastnn.threads(blas=1) if impl == "fastnn" else contextlib.nullcontext():
                    res[impl] = n_tok / measure(step, args.rounds)
        f, t, r = res.get("fastnn"), res.get("torch"), res.get("roof")
        cell = lambda x: f"{x:,.0f}" if x else "-"  # noqa: E731
        ratio = lambda x, y: f"{x / y:.2f}x" if x and y else "-"  # noqa: E731
        print(f"| {case} | {cell(f)} | {cell(t)} | {ratio(f, t)} | {cell(r)} | {ratio(f, r)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
