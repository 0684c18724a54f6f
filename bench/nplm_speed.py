"""Where the NPLM's training time goes, by batch size (bench/results/nplm_speed.md).

    python bench/nplm_speed.py [B ...]         # default 128 256 512 1024: ms per training step on Brown batches
    python bench/nplm_speed.py --precision bfloat16 [B ...]   # the same with the output layer's AMX products
    python bench/nplm_speed.py --roof          # the output layer's three products alone, by batch and hidden size

Steps: the default NPLM (recipes.lm.NPLMConfig, AdaGrad) at batch B, as `fastnn lm train` runs it (kernels on 2
threads, BLAS on 1), split into loss + backward + gradient norm (the Trainer's) and the optimizer step; mean over
max(20, 40,000 / B) steps after 10 warm-up steps.  Roof: logits = h W^T, dW = g^T h, dh = g W (V = 14,115) through
OpenBLAS on 2 threads, the time no implementation of the full softmax can beat; GFLOP/s = 6 B h V / time.  Run it
alone on the machine.
"""
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # (as bench_lm.py: idle OpenMP threads must not spin)

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn import kernels, optim  # noqa: E402
from fastnn.recipes import lm as recipe  # noqa: E402

BROWN = next((d for d in (os.path.join(REPO, "..", "shared", "data", "brown"),      # (as bench_lm.py; a worktree's
                          os.path.join(REPO, "..", "..", "shared", "data", "brown"))   # is one level deeper)
              if os.path.isdir(d)), None)
V, N_BROWN = 14115, 835524


def products(B, K, rounds=15):
    """Seconds for the three products at batch B, hidden K (mean of `rounds` after 3 warm-ups)."""
    rng = np.random.default_rng(0)
    h, W = rng.standard_normal((B, K)).astype(np.float32), rng.standard_normal((V, K)).astype(np.float32)
    g, dW = np.empty((B, V), np.float32), np.empty((V, K), np.float32)

    def once():
        kernels.gemm(h, W, trans_b=True, out=g)
        kernels.gemm(g, h, trans_a=True, out=dW)
        kernels.gemm(g, W)
    for _ in range(3):
        once()
    t0 = time.perf_counter()
    for _ in range(rounds):
        once()
    return (time.perf_counter() - t0) / rounds


def roof():
    fastnn.threads(blas=2, kernels=2)
    for B in (128, 512, 1024):
        for K in (64, 80, 96, 100, 112, 128):
            t = products(B, K)
            print(f"B={B:5d} h={K:3d}: {t * 1e3:6.2f} ms  {6 * B * K * V / t / 1e9:6.1f} GFLOP/s  "
                  f"{N_BROWN / B * t:5.1f} s/epoch", flush=True)


def steps(sizes, precision="float32"):
    from fastnn.data import read_sentences
    fastnn.threads(kernels=2, blas=1)
    vocab, streams = recipe.prepare(recipe.NPLMConfig(), read_sentences(os.path.join(BROWN, "brown.train.txt")))
    n = len(streams["train"])
    for B in sizes:
        model, data, lr = recipe.build(recipe.NPLMConfig(batch_size=B, output_precision=precision), vocab,
                                       streams["train"])
        opt = optim.by_name("adagrad", model.parameters(), lr)
        batches = iter(data.epoch(np.random.default_rng(0)))
        n_steps, fwd, upd = max(20, 40000 // B), 0.0, 0.0
        for i in range(n_steps + 10):
            b = next(batches)
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = model.loss(b)
            float(loss.value)
            loss.backward()
            optim.grad_sq_norms(opt.params)
            t1 = time.perf_counter()
            opt.step()
            t2 = time.perf_counter()
            if i >= 10:
                fwd, upd = fwd + t1 - t0, upd + t2 - t1
        fastnn.threads(blas=2)
        r = products(B, recipe.NPLMConfig().hidden)
        fastnn.threads(blas=1)
        step = (fwd + upd) / n_steps
        print(f"B={B:5d}: loss+backward {fwd / n_steps * 1e3:6.2f} ms, optimizer {upd / n_steps * 1e3:5.2f} ms, step "
              f"{step * 1e3:6.2f} ms = {B / step:7,.0f} tokens/s = {n / B * step:5.1f} s/epoch; products alone "
              f"{r * 1e3:6.2f} ms ({n / B * r:4.1f} s/epoch, {6 * B * 100 * V / r / 1e9:5.1f} GFLOP/s) = "
              f"{r / step:.2f} of the step", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--roof"]:
        roof()
    else:
        args = sys.argv[1:]
        precision = args[args.index("--precision") + 1] if "--precision" in args else "float32"
        if "--precision" in args:
            del args[args.index("--precision"):args.index("--precision") + 2]
        steps([int(a) for a in args] or [128, 256, 512, 1024], precision)
