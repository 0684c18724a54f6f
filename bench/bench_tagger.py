"""Training speed of the window tagger: fastnn vs the same network written with torch.

    pytest bench/bench_tagger.py --benchmark-only      # pytest-benchmark: median time of one training step each
    python bench/bench_tagger.py --loss sentence --threads 1 --json

Both implementations train the same network (word vectors 50 + caps 5 per window position, window 5, hidden 300
hard tanh, one output layer; word-level softmax or sentence-level log-likelihood with learned transitions) with
AdaGrad (sparse lazy rows for the lookup tables: torch's `nn.Embedding(sparse=True)` + `optim.Adagrad`), on the
same batches in the same order, from CoNLL-2003 eng.train (NER column).  Reported: training windows per second over
`--steps` steps after `--warmup` steps, the best of `--repeats` runs (the machine is shared, so the best run is the
one least disturbed), with kernel/BLAS/torch threads set to `--threads`.  Both report their first and last
losses, a check that they compute and train the same thing.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data", "conll2003", "eng.train")
# torch's sparse Adagrad builds its update tensors without invariant checks and says so on every step.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")


def fastnn_run(model, plan, steps, warmup, lr):
    from fastnn.optim import AdaGrad

    opt = AdaGrad(model.parameters(), lr)
    model.train()
    first = loss = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
            n = 0
        b = plan[i % len(plan)]
        opt.zero_grad()
        loss = model.loss(b)
        loss.backward()
        opt.step()
        first = float(loss.value) if first is None else first
        if i >= warmup:
            n += len(b.words)
    return n / (time.perf_counter() - t0), first, float(loss.value)


def torch_model(model, sentence_loss):
    """The torch twin of `model` (same shapes, same initial values)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            W = model.embed.W.value
            self.embed = nn.Embedding(*W.shape, sparse=True)
            self.caps = nn.Embedding(*model.caps.W.shape, sparse=True)
            self.hidden = nn.Linear(model.hidden.W.shape[1], model.hidden.W.shape[0])
            self.out = nn.Linear(model.heads[0].W.shape[1], model.heads[0].W.shape[0])
            with torch.no_grad():
                for mod, src in ((self.embed, model.embed), (self.caps, model.caps)):
                    mod.weight.copy_(torch.from_numpy(src.W.value))
                for mod, src in ((self.hidden, model.hidden), (self.out, model.heads[0])):
                    mod.weight.copy_(torch.from_numpy(src.W.value))
                    mod.bias.copy_(torch.from_numpy(src.b.value))
            K = model.heads[0].W.shape[0]
            if sentence_loss:
                self.A = nn.Parameter(torch.zeros(K, K))
                self.start = nn.Parameter(torch.zeros(K))
                self.end = nn.Parameter(torch.zeros(K))

        def scores(self, words, caps):
            x = torch.cat([self.embed(words).flatten(1), self.caps(caps).flatten(1)], dim=1)
            return self.out(torch.nn.functional.hardtanh(self.hidden(x)))

        def crf_nll(self, E, y, offsets):
            """Forward algorithm over padded sentences (the usual batched torch CRF), mean over tokens."""
            lengths = offsets[1:] - offsets[:-1]
            S, T, K = len(lengths), int(lengths.max()), E.shape[1]
            sent = torch.repeat_interleave(torch.arange(S), lengths)
            pos = torch.arange(len(E)) - offsets[:-1][sent]
            Ep = E.new_zeros(S, T, K).index_put((sent, pos), E)
            mask = torch.arange(T)[None, :] < lengths[:, None]
            alpha = self.start + Ep[:, 0]
            for t in range(1, T):
                nxt = torch.logsumexp(alpha[:, :, None] + self.A[None], dim=1) + Ep[:, t]
                alpha = torch.where(mask[:, t, None], nxt, alpha)
            logZ = torch.logsumexp(alpha + self.end, dim=1)
            first, last = offsets[:-1], offsets[1:] - 1
            inner = torch.ones(len(E), dtype=torch.bool)
            inner[first] = False
            idx = torch.nonzero(inner).squeeze(1)
            gold = (E.gather(1, y[:, None]).sum() + self.A[y[idx - 1], y[idx]].sum() + self.start[y[first]].sum()
                    + self.end[y[last]].sum())
            return (logZ.sum() - gold) / len(E)

    return Net()


def torch_run(net, plan, steps, warmup, lr, sentence_loss):
    import torch

    opt = torch.optim.Adagrad(net.parameters(), lr=lr)
    batches = []
    for i in range(min(len(plan), warmup + steps)):
        b = plan[i]
        batches.append((torch.from_numpy(b.words), torch.from_numpy(b.caps), torch.from_numpy(b.targets[:, 0]),
                        None if b.offsets is None else torch.from_numpy(b.offsets)))
    first = loss = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
            n = 0
        w, c, y, offs = batches[i % len(batches)]
        opt.zero_grad()
        E = net.scores(w, c)
        loss = net.crf_nll(E, y, offs) if sentence_loss else torch.nn.functional.cross_entropy(E, y)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        if i >= warmup:
            n += len(w)
    return n / (time.perf_counter() - t0), first, float(loss.detach())


# ---- pytest-benchmark --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner_plan():
    """The NER model (CLI defaults, sentence-level loss) and its first 200 training batches of 128 tokens."""
    if not os.path.exists(DATA):
        pytest.skip(f"needs {os.path.normpath(DATA)} (../shared/data is not present)")
    from fastnn.data.conll import read_conll
    from fastnn.recipes.tagger import TaggerConfig, build

    sents = read_conll(DATA)
    model = build(TaggerConfig(tasks={"ner": 3}, loss="sentence", seed=0), sents)
    plan = model.batches(sents, batch_size=128).epoch(np.random.default_rng(0))
    return model, [plan[i] for i in range(200)], {k: p.value.copy() for k, p in model.parameters().items()}


@pytest.mark.parametrize("impl", ["fastnn", "torch"])
def test_tagger_train_step(benchmark, impl, ner_plan):
    """One AdaGrad step (forward, sentence-level loss, backward, update) on the next batch, one thread each."""
    import fastnn
    from threadpoolctl import threadpool_limits

    model, plan, init = ner_plan
    for k, p in model.parameters().items():
        p.value[...] = init[k]
    fastnn.set_num_threads(1)
    it = iter(range(10**9))
    if impl == "fastnn":
        from fastnn.optim import AdaGrad
        opt = AdaGrad(model.parameters(), 0.05)
        model.train()

        def step():
            b = plan[next(it) % len(plan)]
            opt.zero_grad()
            model.loss(b).backward()
            opt.step()
    else:
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)
        net = torch_model(model, True)
        topt = torch.optim.Adagrad(net.parameters(), lr=0.05)
        batches = [(torch.from_numpy(b.words), torch.from_numpy(b.caps), torch.from_numpy(b.targets[:, 0]),
                    torch.from_numpy(b.offsets)) for b in plan]

        def step():
            w, c, y, offs = batches[next(it) % len(batches)]
            topt.zero_grad()
            net.crf_nll(net.scores(w, c), y, offs).backward()
            topt.step()
    benchmark.group = "tagger_train_step:ner_sentence_B128"
    benchmark.extra_info.update(impl=impl, windows=float(np.mean([len(b.words) for b in plan])), n_threads=1)
    try:
        with threadpool_limits(1, user_api="blas"):
            benchmark.pedantic(step, rounds=200, warmup_rounds=20)
    finally:
        fastnn.set_num_threads(None)


# ---- script ------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DATA, help="CoNLL-2003 training file (default ../shared/data)")
    ap.add_argument("--loss", choices=["word", "sentence"], default="sentence")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import fastnn
    from threadpoolctl import threadpool_limits

    from fastnn.data.conll import read_conll
    from fastnn.recipes.tagger import TaggerConfig, build

    fastnn.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if not os.path.exists(args.data):
        print(f"bench_tagger: needs {args.data}", file=sys.stderr)
        return 2
    sents = read_conll(args.data)
    model = build(TaggerConfig(tasks={"ner": 3}, loss=args.loss, seed=0), sents)
    plan = model.batches(sents, batch_size=args.batch_size).epoch(np.random.default_rng(0))
    init = {k: p.value.copy() for k, p in model.parameters().items()}

    res = {"loss": args.loss, "batch_size": args.batch_size, "threads": args.threads, "steps": args.steps,
           "fastnn": fastnn.show_config()}
    best = 0.0
    for _ in range(args.repeats):
        for k, p in model.parameters().items():
            p.value[...] = init[k]
        wps, first, last = fastnn_run(model, plan, args.steps, args.warmup, args.lr)
        best = max(best, wps)
    res["fastnn_windows_per_s"], res["fastnn_first_loss"], res["fastnn_last_loss"] = round(best), first, last
    if not args.skip_torch:
        import warnings

        import torch
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        torch.set_num_threads(args.threads)
        for k, p in model.parameters().items():
            p.value[...] = init[k]
        best = 0.0
        for _ in range(args.repeats):
            net = torch_model(model, args.loss == "sentence")
            wps, first, last = torch_run(net, plan, args.steps, args.warmup, args.lr, args.loss == "sentence")
            best = max(best, wps)
        res["torch_windows_per_s"], res["torch_first_loss"], res["torch_last_loss"] = round(best), first, last
        res["torch_version"] = torch.__version__
        res["speedup"] = round(res["fastnn_windows_per_s"] / res["torch_windows_per_s"], 2)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
