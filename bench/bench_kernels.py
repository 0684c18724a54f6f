"""fastnn's kernels against NumPy and torch: one benchmark per kernel, size and implementation (issue 2).

    python -m pytest bench --benchmark-only --benchmark-json=/tmp/bench.json
    python bench/summarize.py /tmp/bench.json

Each benchmark sets benchmark.group = "<kernel>:<size>" and extra_info["impl"] to fastnn, numpy, torch,
torch_fused, roof or roof_chain, and records openmp_enabled, n_threads, blas_threads and cpu_model.

The roof of a group is its physical limit on the machine at hand, timed in the same run: for a BLAS-bound group
(output_layer, rnn_layer, lstm_layer) one float32 GEMM of the same FLOPs (square, F-ordered operands, through
scipy's BLAS, the one fastnn's kernels call); for a memory-bound group ("memory") one pass over as many bytes as the
kernel's own arrays, with the same mix of reads and writes (kernels.memory_pass, on the same threads): the bytes the
kernel only reads are read, those it updates in place are read and written back in place (x += 1), those it only
writes are written (with streaming stores when they exceed 16 MiB, as softmax_xent's gradient is).  Its work is
bytes read + bytes written, each in-place byte counting twice.  (It replaced a copy into a fresh buffer, whose
stores also read every line they write: that counted the in-place kernels' traffic wrong, and dense_adagrad ran at
"145-203 %" of it.)  The recurrent groups (rnn_layer, lstm_layer, rnnlm_segment) have a second roof, "roof_chain":
the BLAS products their recurrence must make, in the order it must make them (each time step's products one after
another, as they depend on the step before; the rest batched as the kernels batch them), each one sgemm call on the
run's threads (recurrent_chain, rnnlm_chain).  Per-step products of 32 or 128 rows run well below a square GEMM's
rate, so this chain is the limit of a recurrence built on BLAS: summarize.py prints the fraction of it beside the
fraction of the roof.  Every implementation records the group's work (extra_info["work"], in FLOP or bytes) and the
roof its own (extra_info["roof_work"]), so bench/summarize.py can print each implementation's fraction of the roof.
Everything is float32.  fastnn runs its default thread count, torch is set to the same count, NumPy uses its BLAS
default; FASTNN_BENCH_THREADS=n sets all of them to n.  torch is optional: its benchmarks are skipped when it is not
installed (fastnn never imports it).

Before timing, each implementation runs once outside the timed region and its result is compared (allclose) with
the NumPy reference; that call also creates lazily built state (torch's autograd buffers, optimizer state).

Buffers are allocated once per benchmark and reused: fresh large allocations page-fault heavily on small VMs.  The
in-place kernels (sparse and dense AdaGrad, sparse SGD) keep updating the same W and accumulators round after round
instead of copying hundreds of MB per round; each update is small, so the work per round does not change.  torch
allocates its own gradients and temporaries (grads are set to None before each call, as zero_grad() does); that is
part of its cost.  The sparse torch benchmarks time backward + step only: the embedding forward runs once and its
graph is kept (retain_graph=True), so all three implementations start from raw indices and (N, D) gradient rows.
"""
import functools
import os
import platform

import numpy as np
import pytest
import threadpoolctl
from scipy.linalg import blas as scipy_blas

import fastnn
from fastnn import kernels as K

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is only a benchmark baseline
    torch = None

# FASTNN_BENCH_THREADS=n runs every implementation (fastnn, torch and both BLAS libraries) on n threads; by default
# fastnn uses its default count, torch the same count, and the BLAS libraries their defaults.
_REQUESTED = os.environ.get("FASTNN_BENCH_THREADS")
if _REQUESTED:
    fastnn.set_num_threads(int(_REQUESTED))
    threadpoolctl.threadpool_limits(int(_REQUESTED), user_api="blas")
N_THREADS = fastnn.get_num_threads()
if torch is not None:
    torch.set_num_threads(N_THREADS)

F32 = np.float32
SEED = 0
RTOL = 1e-4  # float32 results against the float32 NumPy reference; atol is RTOL * max|reference|

# torch's sparse Adagrad builds its update tensors without invariant checks and says so on every step.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")

_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install torch==2.13.0)")
IMPLS = ["fastnn", "numpy", pytest.param("torch", marks=_torch), "roof"]


# ---- machine facts and bookkeeping -------------------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_threads():
    """Threads of each loaded BLAS, keyed by the package that ships it (numpy, scipy = fastnn.kernels.gemm, torch)."""
    out = {}
    for lib in threadpoolctl.threadpool_info():
        if lib["user_api"] == "blas":
            path = lib["filepath"]
            owner = next((p for p in ("numpy", "scipy", "torch") if f"{os.sep}{p}" in path), lib["prefix"])
            out[owner] = lib["num_threads"]
    return out


CPU_MODEL = _cpu_model()
BLAS_THREADS = _blas_threads()


def _impl_threads(impl):
    if impl in ("fastnn", "roof", "roof_chain"):
        return N_THREADS
    if impl == "numpy":
        return BLAS_THREADS.get("numpy", 1)
    return torch.get_num_threads()


def _label(benchmark, kernel, size, impl, work, **notes):
    """work: the group's ("gemm", FLOP), or ("memory", bytes read + written, (floats read only, floats updated in
    place, floats written only))."""
    benchmark.group = f"{kernel}:{size}"
    benchmark.extra_info.update(
        impl=impl, kernel=kernel, size=size, dtype="float32", openmp_enabled=fastnn.openmp_enabled(),
        n_threads=_impl_threads(impl), blas_threads=BLAS_THREADS, cpu_model=CPU_MODEL,
        torch_version=None if torch is None else torch.__version__, roof=work[0], work=float(work[1]), **notes)


def memory_work(read=0, update=0, write=0):
    """The work of a memory-bound group that reads `read` float32s, updates `update` in place and writes `write`."""
    return ("memory", 4.0 * (read + 2 * update + write), (int(read), int(update), int(write)))


# ---- roofs: the machine's limit for the same work, timed like the implementations --------------------------------

def gemm_roof(flops):
    """One float32 GEMM of ~`flops` FLOPs (n x n x n, F-ordered, scipy's BLAS); returns (fn, its exact FLOPs)."""
    n = max(1, round((flops / 2) ** (1 / 3)))
    rng = np.random.default_rng(SEED)
    a, b = (np.asfortranarray(rng.standard_normal((n, n), dtype=F32)) for _ in range(2))
    c = np.zeros((n, n), dtype=F32, order="F")

    def fn():
        scipy_blas.sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1)
    return fn, 2.0 * n ** 3


STREAM_BYTES = 16 << 20  # written-only arrays larger than this get streaming stores (as in csrc/_softmax.pyx)


def memory_roof(mix):
    """One pass over the same float32s as the kernel (read only, updated in place, written only; kernels.memory_pass
    on the benchmark's threads); returns (fn, its bytes read + written)."""
    read, update, write = mix
    src, upd, dst = _filled(read, 1.0), _filled(update, 1.0), _filled(write)

    def fn():
        K.memory_pass(src, upd, dst, stream=4 * write > STREAM_BYTES)
    return fn, 4.0 * (read + 2 * update + write)


def _run_roof(benchmark, kernel, size, work, **notes):
    fn, roof_work = gemm_roof(work[1]) if work[0] == "gemm" else memory_roof(work[2])
    fn()
    _label(benchmark, kernel, size, "roof", work, roof_work=roof_work, **notes)
    benchmark(fn)


# ---- the recurrent groups' second roof: the chain of BLAS products their recurrence must make ---------------------

def blas_product(a, b, c, trans_a=False, trans_b=False):
    """c = op(a) @ op(b) for row-major float32 arrays, as the one sgemm call fastnn's gemm_rm (csrc/_common.pxd)
    makes of it: BLAS is column-major, where a row-major matrix reads as its transpose, so it computes
    c^T = op(b)^T op(a)^T on the transposed views (F-ordered, so scipy copies nothing and writes c in place).
    Returns (a call without arguments, its FLOPs)."""
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    assert c.shape == (m, n) and all(x.flags.c_contiguous for x in (a, b, c)), "row-major operands of matching shape"
    call = functools.partial(scipy_blas.sgemm, 1.0, b.T, a.T, beta=0.0, c=c.T, trans_a=int(trans_b),
                             trans_b=int(trans_a), overwrite_c=1)
    return call, 2.0 * m * n * k


def chain_roof(products):
    """The products (blas_product's) made one after another, each one BLAS call on the run's BLAS threads; returns
    (fn, their FLOPs, the number of calls).  Only the products: the element-wise work between them is left out, as
    the square GEMM roof leaves it out.  The Python loop adds ~0.4 us per call (343 calls of a 1 x 1 product: 0.15
    ms on the Xeon, 2026-12-07), 1-4 % of the chains here."""
    calls = [call for call, _ in products]

    def fn():
        for call in calls:
            call()
    return fn, sum(flops for _, flops in products), len(calls)


def _run_chain_roof(benchmark, kernel, size, work, products, **notes):
    """Time the chain roof ("roof_chain") of a recurrent group: its BLAS products limited to the run's thread count
    (fastnn's), like the kernels' own calls."""
    fn, roof_work, n_calls = chain_roof(products)
    with threadpoolctl.threadpool_limits(N_THREADS, user_api="blas"):
        fn()
        _label(benchmark, kernel, size, "roof_chain", work, roof_work=roof_work, blas_calls=n_calls, **notes)
        benchmark(fn)


def _random(shape, rng):
    return rng.standard_normal(shape, dtype=F32)


def _np(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _check(impl, got, ref):
    """Assert each result equals the NumPy reference (per-row losses are compared through their mean)."""
    for name, r in ref.items():
        g = _np(got[name]).astype(np.float64)
        r = np.asarray(r, dtype=np.float64)
        if name == "loss":
            g, r = g.mean(), r.mean()
        assert g.shape == r.shape, f"{impl}: '{name}' has shape {g.shape}; the reference has {r.shape}"
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=RTOL * float(np.abs(r).max(initial=0.0)),
                                   err_msg=f"{impl}: '{name}' differs from the NumPy reference")


def _filled(shape, value=0.0):
    """An array with every page already touched (np.zeros maps pages lazily, so the first rounds would fault)."""
    a = np.empty(shape, dtype=F32)
    a.fill(value)
    return a


def zipf_indices(n, n_rows, a=1.1, seed=SEED):
    """n row indices in [0, n_rows) from a Zipf(a) law truncated at n_rows (draws past it are redrawn)."""
    rng = np.random.default_rng(seed)
    draws = rng.zipf(a, n)
    while True:
        bad = draws > n_rows
        if not bad.any():
            return (draws - 1).astype(np.intp)
        draws[bad] = rng.zipf(a, int(bad.sum()))


# ---- NumPy implementations (straightforward vectorised code, buffers passed in) ----------------------------------

def np_softmax_xent(logits, targets, scale, out, m, s):
    """Per-row loss logsumexp - logit[target], and scale * (softmax - onehot) written into out (may be logits)."""
    rows = np.arange(targets.shape[0])
    picked = logits[rows, targets]
    np.max(logits, axis=1, keepdims=True, out=m)
    np.subtract(logits, m, out=out)
    np.exp(out, out=out)
    np.sum(out, axis=1, keepdims=True, out=s)
    loss = np.log(s[:, 0]) + m[:, 0] - picked
    np.divide(scale, s, out=s)
    out *= s
    out[rows, targets] -= scale
    return loss, out


def np_sparse_adagrad(W, A, idx, G, lr, eps):
    """Sum the rows of G sharing an index, then one AdaGrad step per distinct row (eps after the sqrt, as torch)."""
    uniq, inv = np.unique(idx, return_inverse=True)
    g = np.zeros((uniq.shape[0], W.shape[1]), dtype=W.dtype)
    np.add.at(g, inv, G)
    a = A[uniq] + g * g
    A[uniq] = a
    W[uniq] -= lr * g / (np.sqrt(a) + eps)


def np_sparse_sgd(W, idx, G, lr):
    np.add.at(W, idx, G * -lr)


def np_adagrad(w, acc, g, lr, eps, tmp):
    np.multiply(g, g, out=tmp)
    acc += tmp
    np.sqrt(acc, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    w -= tmp


# ---- softmax + cross-entropy -------------------------------------------------------------------------------------

SOFTMAX_SIZES = {"B128xV10000": (128, 10_000), "B128xV100000": (128, 100_000)}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", list(SOFTMAX_SIZES))
def test_softmax_xent(benchmark, size, impl):
    """Loss and gradient of the mean loss wrt the logits (torch: F.cross_entropy forward + backward)."""
    B, V = SOFTMAX_SIZES[size]
    work = memory_work(read=B * V, write=B * V)  # read the logits, write the gradient
    if impl == "roof":
        return _run_roof(benchmark, "softmax_xent", size, work)
    rng = np.random.default_rng(SEED)
    logits = rng.standard_normal((B, V), dtype=F32) * 3
    targets = rng.integers(0, V, B).astype(np.intp)
    scale = 1.0 / B
    m, s = np.empty((B, 1), F32), np.empty((B, 1), F32)
    loss, grad = np_softmax_xent(logits, targets, scale, np.empty_like(logits), m, s)
    ref = dict(loss=loss, grad=grad.copy())

    if impl == "fastnn":
        gbuf = np.empty_like(logits)

        def fn():
            loss, g = K.softmax_xent(logits, targets, grad=gbuf, scale=scale)
            return dict(loss=loss, grad=g)
    elif impl == "numpy":
        gbuf = np.empty_like(logits)

        def fn():
            loss, g = np_softmax_xent(logits, targets, scale, gbuf, m, s)
            return dict(loss=loss, grad=g)
    else:
        x = torch.from_numpy(logits).requires_grad_()
        t = torch.from_numpy(targets.astype(np.int64))

        def fn():
            x.grad = None
            loss = F.cross_entropy(x, t)
            loss.backward()
            return dict(loss=loss, grad=x.grad)

    _check(impl, fn(), ref)
    _label(benchmark, "softmax_xent", size, impl, work)
    benchmark(fn)


# ---- affine output layer + softmax-xent + its three gradients ----------------------------------------------------

OUTPUT_SIZES = {"B128xH256xV10000": (128, 256, 10_000), "B128xH256xV100000": (128, 256, 100_000)}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", list(OUTPUT_SIZES))
def test_output_layer(benchmark, size, impl):
    """logits = h @ W.T + b, mean softmax cross-entropy, and dW, db, dh."""
    B, H, V = OUTPUT_SIZES[size]
    work = ("gemm", 3 * 2 * B * H * V)  # logits, dW, dh
    if impl == "roof":
        return _run_roof(benchmark, "output_layer", size, work)
    rng = np.random.default_rng(SEED)
    h = rng.standard_normal((B, H), dtype=F32)
    W = rng.standard_normal((V, H), dtype=F32) * 0.05
    b = rng.standard_normal(V, dtype=F32) * 0.1
    targets = rng.integers(0, V, B).astype(np.intp)
    scale = 1.0 / B
    m, s = np.empty((B, 1), F32), np.empty((B, 1), F32)
    logits, dW, db, dh = np.empty((B, V), F32), np.empty_like(W), np.empty_like(b), np.empty_like(h)

    def numpy_fn():
        np.matmul(h, W.T, out=logits)
        np.add(logits, b, out=logits)
        loss, g = np_softmax_xent(logits, targets, scale, logits, m, s)
        np.matmul(g.T, h, out=dW)
        np.sum(g, axis=0, out=db)
        np.matmul(g, W, out=dh)
        return dict(loss=loss, dW=dW, db=db, dh=dh)

    ref = {k: np.array(v) for k, v in numpy_fn().items()}

    if impl == "fastnn":
        buffers = K.OutputLayerWork()

        def fn():
            loss, dW, db, dh = K.output_layer(h, W, b, targets, scale=scale, work=buffers, reuse_grad_buffers=True)
            return dict(loss=loss, dW=dW, db=db, dh=dh)
    elif impl == "numpy":
        fn = numpy_fn
    else:
        ht, Wt, bt = (torch.from_numpy(a).requires_grad_() for a in (h, W, b))
        t = torch.from_numpy(targets.astype(np.int64))

        def fn():
            ht.grad = Wt.grad = bt.grad = None
            loss = F.cross_entropy(F.linear(ht, Wt, bt), t)
            loss.backward()
            return dict(loss=loss, dW=Wt.grad, db=bt.grad, dh=ht.grad)

    _check(impl, fn(), ref)
    _label(benchmark, "output_layer", size, impl, work)
    benchmark(fn)


# ---- sparse embedding updates from raw (repeated) indices --------------------------------------------------------

SPARSE_SIZE = "V1000000xD128xN8192"
SPARSE_V, SPARSE_D, SPARSE_N = 1_000_000, 128, 8192
SPARSE_LR, EPS = 0.1, 1e-10


def _sparse_case(rng):
    idx = zipf_indices(SPARSE_N, SPARSE_V)
    G = rng.standard_normal((SPARSE_N, SPARSE_D), dtype=F32)
    W = rng.random((SPARSE_V, SPARSE_D), dtype=F32)
    W -= 0.5
    return idx, G, W


def _sparse_work(touches_per_row):
    """Work of a sparse update: read G (N, D), and update `touches_per_row` arrays' rows per distinct row in place."""
    n_uniq = np.unique(zipf_indices(SPARSE_N, SPARSE_V)).shape[0]
    return memory_work(read=SPARSE_N * SPARSE_D, update=touches_per_row * n_uniq * SPARSE_D)


def _untouched_sample(rng, idx, k=1000):
    return np.sort(rng.choice(np.setdiff1d(np.arange(SPARSE_V), idx), k, replace=False))


def _sparse_notes(idx):
    _, counts = np.unique(idx, return_counts=True)
    return dict(distinct_rows=int(counts.shape[0]), top_row_share=round(float(counts.max()) / idx.shape[0], 4),
                in_place="same W (and accumulator) updated every round")


def _torch_sparse(W, idx, G, optimizer, **kw):
    """torch's step of the sparse benchmarks: a sparse Embedding sharing W's memory, updated by `optimizer`.
    Returns (fn, the optimizer, the embedding)."""
    emb = torch.nn.Embedding(SPARSE_V, SPARSE_D, sparse=True, _weight=torch.from_numpy(W))
    opt = optimizer(emb.parameters(), lr=SPARSE_LR, **kw)
    out, Gt = emb(torch.from_numpy(idx.astype(np.int64))), torch.from_numpy(G)

    def fn():
        emb.weight.grad = None
        out.backward(Gt, retain_graph=True)
        opt.step()
    return fn, opt, emb


@pytest.mark.parametrize("impl", IMPLS)
def test_sparse_adagrad(benchmark, impl):
    """Lazy AdaGrad on the rows a batch touched, repeated rows summed first (torch: sparse Embedding + Adagrad)."""
    work = _sparse_work(2)  # W and the accumulator
    if impl == "roof":
        return _run_roof(benchmark, "sparse_adagrad", SPARSE_SIZE, work)
    rng = np.random.default_rng(SEED)
    idx, G, W = _sparse_case(rng)
    if impl == "torch":
        fn, opt, emb = _torch_sparse(W, idx, G, torch.optim.Adagrad, eps=EPS)
        A = opt.state[emb.weight]["sum"].numpy()  # created (filled with 0) by the constructor
    else:
        A = _filled(W.shape)
        if impl == "fastnn":
            def fn():
                K.sparse_adagrad_grouped_(W, A, idx, G, lr=SPARSE_LR, eps=EPS)
        else:
            def fn():
                np_sparse_adagrad(W, A, idx, G, SPARSE_LR, EPS)

    uniq, inv = np.unique(idx, return_inverse=True)
    other = _untouched_sample(rng, idx)
    W_ref, A_ref, W_other = W[uniq], A[uniq], W[other]
    np_sparse_adagrad(W_ref, A_ref, inv, G, SPARSE_LR, EPS)
    fn()
    _check(impl, dict(W=W[uniq], A=A[uniq], W_other=W[other]), dict(W=W_ref, A=A_ref, W_other=W_other))
    _label(benchmark, "sparse_adagrad", SPARSE_SIZE, impl, work, **_sparse_notes(idx))
    benchmark(fn)


@pytest.mark.parametrize("impl", IMPLS)
def test_sparse_sgd(benchmark, impl):
    """W[idx[i]] -= lr * G[i] with repeated rows (NumPy: np.add.at; torch: sparse Embedding + SGD)."""
    work = _sparse_work(1)
    if impl == "roof":
        return _run_roof(benchmark, "sparse_sgd", SPARSE_SIZE, work)
    rng = np.random.default_rng(SEED)
    idx, G, W = _sparse_case(rng)
    if impl == "torch":
        fn = _torch_sparse(W, idx, G, torch.optim.SGD)[0]
    elif impl == "fastnn":
        def fn():
            K.scatter_add_(W, idx, G, alpha=-SPARSE_LR)
    else:
        def fn():
            np_sparse_sgd(W, idx, G, SPARSE_LR)

    uniq, inv = np.unique(idx, return_inverse=True)
    other = _untouched_sample(rng, idx)
    W_ref, W_other = W[uniq], W[other]
    np_sparse_sgd(W_ref, inv, G, SPARSE_LR)
    fn()
    _check(impl, dict(W=W[uniq], W_other=W[other]), dict(W=W_ref, W_other=W_other))
    _label(benchmark, "sparse_sgd", SPARSE_SIZE, impl, work, **_sparse_notes(idx))
    benchmark(fn)


# ---- dense AdaGrad -----------------------------------------------------------------------------------------------

DENSE_N = 10_000_000
DENSE_LR = 0.01


@pytest.mark.parametrize("impl", IMPLS + [pytest.param("torch_fused", marks=_torch)])
def test_dense_adagrad(benchmark, impl):
    """acc += g*g; w -= lr*g/(sqrt(acc)+eps) over 1e7 floats (torch: optim.Adagrad default, and fused=True)."""
    work = memory_work(read=DENSE_N, update=2 * DENSE_N)  # read g; update w and acc in place
    if impl == "roof":
        return _run_roof(benchmark, "dense_adagrad", f"N{DENSE_N}", work)
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal(DENSE_N, dtype=F32)
    g = rng.standard_normal(DENSE_N, dtype=F32) * 0.1
    notes = dict(in_place="same w and accumulator updated every round")
    if impl.startswith("torch"):
        p = torch.nn.Parameter(torch.from_numpy(w))
        p.grad = torch.from_numpy(g)
        fused = impl == "torch_fused"
        opt = torch.optim.Adagrad([p], lr=DENSE_LR, eps=EPS, fused=fused or None)
        acc = opt.state[p]["sum"].numpy()
        notes["torch_variant"] = "fused=True" if fused else "default (foreach=None, fused=None)"

        def fn():
            opt.step()
    else:
        acc = _filled(DENSE_N)
        if impl == "fastnn":
            def fn():
                K.adagrad_(w, acc, g, lr=DENSE_LR, eps=EPS)
        else:
            tmp = np.empty_like(w)

            def fn():
                np_adagrad(w, acc, g, DENSE_LR, EPS, tmp)

    w_ref, acc_ref = w.copy(), acc.copy()
    np_adagrad(w_ref, acc_ref, g, DENSE_LR, EPS, np.empty_like(w))
    fn()
    _check(impl, dict(w=w, acc=acc), dict(w=w_ref, acc=acc_ref))
    _label(benchmark, "dense_adagrad", f"N{DENSE_N}", impl, work, **notes)
    benchmark(fn)


# ---- Elman RNN layer: input projection, recurrence, BPTT ---------------------------------------------------------

RNN_SIZE = "B32xT35xH256"
RNN_B, RNN_T, RNN_H, RNN_E = 32, 35, 256, 256  # E: width of the embedded inputs


def _recurrent_data(gates):
    """The inputs of a recurrent-layer benchmark with `gates` blocks of H rows (RNN 1, LSTM 4): X (T, B, E), W_ih,
    W_hh, b, dL/dh_t (T, B, H), X2 = X as (T B, E), and the dW_ih, dx buffers."""
    T, B, H, E = RNN_T, RNN_B, RNN_H, RNN_E
    rng = np.random.default_rng(SEED)
    k = 1.0 / np.sqrt(H)
    X = rng.standard_normal((T, B, E), dtype=F32)
    W_ih = rng.uniform(-k, k, (gates * H, E)).astype(F32)
    W_hh = rng.uniform(-k, k, (gates * H, H)).astype(F32)
    b = rng.uniform(-k, k, gates * H).astype(F32)
    dH = rng.standard_normal((T, B, H), dtype=F32)
    return X, W_ih, W_hh, b, dH, X.reshape(T * B, E), np.empty((gates * H, E), F32), np.empty((T * B, E), F32)


def recurrent_chain(gates, T=RNN_T, B=RNN_B, H=RNN_H, E=RNN_E):
    """The BLAS products of a recurrent layer with `gates` blocks of H rows (rnn_layer 1, lstm_layer 4; G = gates H),
    in the order it must make them, on its own operands (row-major, as kernels.gemm and csrc/_rnn.pyx, _lstm.pyx
    hold them):

      1. the input projection, one product for all steps: (T B, E) @ W_ih^T (E, G);
      2. T dependent steps forward, h_{t-1} (B, H) @ W_hh^T (H, G) each (step t needs step t - 1's h);
      3. T dependent carries back, dL/da_t (B, G) @ W_hh (G, H) each (the last one into h_0, as rnn_backward and
         lstm_backward return dh0);
      4. after the sweep, one product each over all T B rows: dW_hh = dA^T (G, T B) @ H, dW_ih = dA^T @ X and
         dx = dA (T B, G) @ W_ih (G, E).

    2 T + 4 calls, 2 T B G (3 E + 3 H) FLOPs: the group's work.  A B = 32 recurrence cannot batch 2 and 3 over time,
    so they are 2 T products of 32 rows, which BLAS runs well below a square GEMM's rate: this is the limit such a
    kernel meets (fastnn's LSTM runs 2 and 3 in its own tiles instead of BLAS, so it may pass it)."""
    G = gates * H
    rng = np.random.default_rng(SEED)
    X2, W_ih, W_hh = _random((T * B, E), rng), _random((G, E), rng) * 0.05, _random((G, H), rng) * 0.05
    Hs, A, carry = _random((T + 1, B, H), rng), _filled((T, B, G)), _filled((B, H))
    A2 = A.reshape(T * B, G)
    products = [blas_product(X2, W_ih, A2, trans_b=True)]
    products += [blas_product(Hs[t], W_hh, A[t], trans_b=True) for t in range(T)]
    products += [blas_product(A[t], W_hh, carry) for t in reversed(range(T))]
    products += [blas_product(A2, Hs[:-1].reshape(T * B, H), _filled((G, H)), trans_a=True),
                 blas_product(A2, X2, _filled((G, E)), trans_a=True),
                 blas_product(A2, W_ih, _filled((T * B, E)))]
    return products


def _layer_grads(matmul, dZ2, Hs, X2, W_ih, dW_ih, dx, dW_hh, db):
    """The end of a recurrent layer's backward given dZ2 = dL/d(x W_ih^T) as (T B, gates H): the gradients of W_ih
    and x through `matmul(a, b, out, trans_a)`, and the dict every implementation returns."""
    matmul(dZ2, X2, dW_ih, True)
    matmul(dZ2, W_ih, dx, False)
    return dict(H=Hs[1:], dW_ih=dW_ih, dW_hh=dW_hh, db=db, dx=dx.reshape(Hs.shape[0] - 1, -1, X2.shape[1]))


def _numpy_grads(dZ2, Hs, X2, W_ih, dW_ih, dx):
    """_layer_grads in NumPy, dW_hh and db included."""
    dW_hh = dZ2.T @ Hs[:-1].reshape(dZ2.shape[0], -1)
    return _layer_grads(_np_matmul, dZ2, Hs, X2, W_ih, dW_ih, dx, dW_hh, dZ2.sum(axis=0))


def _np_matmul(a, b, out, trans_a):
    np.matmul(a.T if trans_a else a, b, out=out)


def _fastnn_matmul(a, b, out, trans_a):
    K.gemm(a, b, trans_a=trans_a, out=out)


def _torch_layer(module, W_ih, W_hh, b, X, state, dH):
    """torch's fn for a layer `module` (nn.RNN or nn.LSTM) holding these weights (b_hh = 0 so that b_ih plays b)."""
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(W_ih))
        module.weight_hh_l0.copy_(torch.from_numpy(W_hh))
        module.bias_ih_l0.copy_(torch.from_numpy(b))
        module.bias_hh_l0.zero_()
    x = torch.from_numpy(X).requires_grad_()
    dHt = torch.from_numpy(dH)

    def fn():
        module.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = module(x, state)
        out.backward(dHt)
        return dict(H=out, dW_ih=module.weight_ih_l0.grad, dW_hh=module.weight_hh_l0.grad,
                    db=module.bias_ih_l0.grad, dx=x.grad)
    return fn


@pytest.mark.parametrize("impl", IMPLS + ["roof_chain"])
def test_rnn_layer(benchmark, impl):
    """h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b) over T steps, then BPTT for dW_ih, dW_hh, db, dx given dL/dh_t
    for every t (torch: nn.RNN(tanh) forward + backward, b_hh = 0 so that b_ih plays b)."""
    T, B, H, E = RNN_T, RNN_B, RNN_H, RNN_E
    # x W_ih^T and h W_hh^T forward; the carry, dW_hh, dW_ih and dx backward
    work = ("gemm", 2 * T * B * H * (3 * E + 3 * H))
    if impl == "roof":
        return _run_roof(benchmark, "rnn_layer", RNN_SIZE, work, input_width=E)
    if impl == "roof_chain":
        return _run_chain_roof(benchmark, "rnn_layer", RNN_SIZE, work, recurrent_chain(1), input_width=E)
    X, W_ih, W_hh, b, dH, X2, dW_ih, dx = _recurrent_data(1)
    h0 = np.zeros((B, H), F32)
    Z = np.empty((T, B, H), F32)
    Z2 = Z.reshape(T * B, H)
    Hs = np.empty((T + 1, B, H), F32)

    def numpy_fn():
        np.matmul(X2, W_ih.T, out=Z2)
        Hs[0] = h0
        for t in range(T):
            np.matmul(Hs[t], W_hh.T, out=Hs[t + 1])
            Hs[t + 1] += Z[t]
            Hs[t + 1] += b
            np.tanh(Hs[t + 1], out=Hs[t + 1])
        carry = np.zeros((B, H), F32)
        dZ = Z  # the projection is no longer needed: reuse its buffer for dL/dz_t
        for t in reversed(range(T)):
            np.add(dH[t], carry, out=dZ[t])
            dZ[t] *= 1 - Hs[t + 1] * Hs[t + 1]
            np.matmul(dZ[t], W_hh, out=carry)
        return _numpy_grads(Z2, Hs, X2, W_ih, dW_ih, dx)

    ref = {key: np.array(v) for key, v in numpy_fn().items()}

    if impl == "fastnn":
        def fn():
            K.gemm(X2, W_ih, trans_b=True, out=Z2)
            K.rnn_forward(Z, W_hh, b, h0, out=Hs)
            dZ, dW_hh, db, _ = K.rnn_backward(dH, Hs, W_hh)
            return _layer_grads(_fastnn_matmul, dZ.reshape(T * B, H), Hs, X2, W_ih, dW_ih, dx, dW_hh, db)
    elif impl == "numpy":
        fn = numpy_fn
    else:
        fn = _torch_layer(torch.nn.RNN(E, H, nonlinearity="tanh"), W_ih, W_hh, b, X, torch.from_numpy(h0[None]), dH)

    _check(impl, fn(), ref)
    _label(benchmark, "rnn_layer", RNN_SIZE, impl, work, input_width=E)
    benchmark(fn)


# ---- LSTM layer: input projection, recurrence, BPTT --------------------------------------------------------------

def _sigmoid(x, out):
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)
    return out


@pytest.mark.parametrize("impl", IMPLS + ["roof_chain"])
def test_lstm_layer(benchmark, impl):
    """An LSTM (gates i, f, g, o as torch) over T steps, then BPTT for dW_ih, dW_hh, db, dx given dL/dh_t for every
    t (torch: nn.LSTM forward + backward, b_hh = 0 so that b_ih plays b).  Same shapes as rnn_layer."""
    T, B, H, E = RNN_T, RNN_B, RNN_H, RNN_E
    work = ("gemm", 2 * T * B * 4 * H * (3 * E + 3 * H))  # rnn_layer's six products, with 4H gate rows
    if impl == "roof":
        return _run_roof(benchmark, "lstm_layer", RNN_SIZE, work, input_width=E)
    if impl == "roof_chain":
        return _run_chain_roof(benchmark, "lstm_layer", RNN_SIZE, work, recurrent_chain(4), input_width=E)
    X, W_ih, W_hh, b, dH, X2, dW_ih, dx = _recurrent_data(4)
    h0, c0 = np.zeros((B, H), F32), np.zeros((B, H), F32)
    A, Z = np.empty((T, B, 4 * H), F32), np.empty((T, B, 4 * H), F32)
    A2, Z2 = A.reshape(T * B, 4 * H), Z.reshape(T * B, 4 * H)
    Hs, Cs = np.empty((T + 1, B, H), F32), np.empty((T + 1, B, H), F32)

    def numpy_fn():
        np.matmul(X2, W_ih.T, out=A2)
        np.add(A2, b, out=A2)
        Hs[0], Cs[0] = h0, c0
        tc = np.empty((B, H), F32)
        for t in range(T):
            a = A[t]
            a += Hs[t] @ W_hh.T
            g_pre = a[:, 2 * H:3 * H].copy()
            _sigmoid(a, out=a)  # i, f, o (and g, overwritten next)
            np.tanh(g_pre, out=a[:, 2 * H:3 * H])
            np.multiply(a[:, H:2 * H], Cs[t], out=Cs[t + 1])
            Cs[t + 1] += a[:, :H] * a[:, 2 * H:3 * H]
            np.tanh(Cs[t + 1], out=tc)
            np.multiply(a[:, 3 * H:], tc, out=Hs[t + 1])
        dA = np.empty_like(A)
        dh, dc = np.zeros((B, H), F32), np.zeros((B, H), F32)
        for t in reversed(range(T)):
            i, f, g, o = (A[t][:, q * H:(q + 1) * H] for q in range(4))
            tc = np.tanh(Cs[t + 1])
            d_h = dH[t] + dh
            dc += d_h * o * (1 - tc * tc)
            da = dA[t]
            da[:, :H] = dc * g * i * (1 - i)
            da[:, H:2 * H] = dc * Cs[t] * f * (1 - f)
            da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
            da[:, 3 * H:] = d_h * tc * o * (1 - o)
            dc *= f
            np.matmul(da, W_hh, out=dh)
        return _numpy_grads(dA.reshape(T * B, 4 * H), Hs, X2, W_ih, dW_ih, dx)

    ref = {key: np.array(v) for key, v in numpy_fn().items()}

    if impl == "fastnn":
        def fn():
            K.gemm(X2, W_ih, trans_b=True, out=Z2)
            K.lstm_forward(Z, W_hh, b, h0, c0, out=(Hs, Cs, A))
            dA, dW_hh, db, _, _ = K.lstm_backward(dH, Hs, Cs, A, W_hh)
            return _layer_grads(_fastnn_matmul, dA.reshape(T * B, 4 * H), Hs, X2, W_ih, dW_ih, dx, dW_hh, db)
    elif impl == "numpy":
        fn = numpy_fn
    else:
        state = (torch.from_numpy(h0[None]), torch.from_numpy(c0[None]))
        fn = _torch_layer(torch.nn.LSTM(E, H), W_ih, W_hh, b, X, state, dH)

    _check(impl, fn(), ref)
    _label(benchmark, "lstm_layer", RNN_SIZE, impl, work, input_width=E)
    benchmark(fn)


# ---- RNN LM segment: the fused forward + backward of `fastnn lm train --arch rnn --preset fast` ----------------------

RNNLM_SIZE = "B128xL20xH100"
# (128 streams: --preset fast's until 2026-12-07, kept so the group's history compares; the preset now trains 320)
RNNLM_B, RNNLM_L, RNNLM_H, RNNLM_V, RNNLM_C = 128, 20, 100, 14_000, 100  # Brown's ~14,000 words in 100 classes


def _rnnlm_case(dtype):
    """A --preset fast model (H = E = 100, 100 frequency classes) over a Zipf vocabulary of RNNLM_V words, its own
    initial weights, and one segment of RNNLM_L steps x RNNLM_B streams of Zipf tokens: (model, x, y, h0, args)."""
    from fastnn.recipes import lm as recipe
    counts = np.bincount(zipf_indices(200_000, RNNLM_V), minlength=RNNLM_V) + 1
    config = recipe.RNNConfig(hidden=RNNLM_H, classes=RNNLM_C, batch_size=RNNLM_B, seed=SEED)
    m = recipe.build_model(config, RNNLM_V, counts=counts, dtype=dtype)
    tokens = zipf_indices((RNNLM_L + 1) * RNNLM_B, RNNLM_V, seed=SEED + 1).reshape(RNNLM_L + 1, RNNLM_B)
    o, r = m.out, m.rnn
    args = (m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value, o.bc.value, o.W.value,
            o.b.value.reshape(-1), o.word_class, o.pos, o.start)
    return m, tokens[:-1], tokens[1:], np.zeros((RNNLM_B, RNNLM_H), dtype), args


def rnnlm_segment_flops(m, x, y):
    """The segment's matrix products as FLOPs, each weight's three (forward, the gradient back to its input, its own
    gradient): the input projection (one row per distinct input word), the recurrence, the class softmax and the
    within-class softmaxes (each token against its class's block of rows).  The recurrence carries its gradient
    back L - 1 times, not L: none goes into h_0, which the segment does not return (counted until 2026-12-07, 0.6 %
    of the work)."""
    H, E = m.hidden, m.embed
    L, B = x.shape
    U = np.unique(x).size
    sizes = np.diff(m.out.start)[np.asarray(m.out.word_class)[y.ravel()]]
    return 6 * (U * E * H + L * B * H * H + y.size * RNNLM_C * H + int(sizes.sum()) * H) - 2 * B * H * H


def rnnlm_chain(m, x, y):
    """The BLAS products of kernels.rnnlm_segment (csrc/_rnnlm.pyx's phases), in its order and batched as it batches
    them, on its operands' layouts (N = k B target tokens, Ho their states; W's rows sorted by class):

      1. the input projection, one product: emb[uniq] (U, E) @ W_ih^T (E, H);
      2. L dependent steps forward: h_{t-1} (B, H) @ W_hh^T (H, H) each;
      3. the class softmax, one product each way: Ho (N, H) @ Wc^T (H, C), then dL/dz (N, C) @ Wc (C, H);
      4. per class present (one task each in the kernel; independent of each other, but no one call can hold them:
         each has its own block of W and its own tokens), its m_c tokens' states against its S_c rows: logits
         (m_c, H) @ W_c^T (H, S_c), then dh = dL/dlogits (m_c, S_c) @ W_c and dW_c = dL/dlogits^T @ states;
      5. L - 1 dependent carries back: dL/dz_t (B, H) @ W_hh (H, H) each (none into h_0);
      6. the weight gradients, one product each: dW_hh = dZ^T (H, L B) @ Hs, dWc = dL/dz^T (C, N) @ Ho,
         dW_ih = S^T (H, U) @ emb[uniq] and d emb[uniq] = S (U, H) @ W_ih (H, E) (S: dZ summed per distinct input).

    2 L + 3 P + 6 calls for P classes present; their FLOPs are rnnlm_segment_flops.  This is the limit of a segment
    built on BLAS calls, not of the fused kernel, which passes it: BLAS runs each of 4.'s small products on one
    thread (they are below OpenBLAS's threshold for threads) and a Python loop cannot run two at once (scipy's
    wrappers hold the GIL), while the kernel runs the classes as parallel tasks (on the Xeon, 2026-12-07: 4.'s 297
    products took 1.4 ms of the chain's 4.2, at 45 GFLOP/s)."""
    H, E, C = m.hidden, m.embed, m.out.Wc.value.shape[0]
    L, B = x.shape
    N = y.size
    start = np.asarray(m.out.start)
    token_class = np.asarray(m.out.word_class)[y.ravel()]
    present, tokens = np.unique(token_class, return_counts=True)
    U = np.unique(x).size
    rng = np.random.default_rng(SEED)
    Eu, WihT, W_ih = _random((U, E), rng), _random((E, H), rng) * 0.1, _random((H, E), rng) * 0.1
    WhhT, Whh, Wc = _random((H, H), rng) * 0.1, _random((H, H), rng) * 0.1, _random((C, H), rng) * 0.1
    WcT, W = _random((H, C), rng) * 0.1, _random((start[-1], H), rng) * 0.1
    P, Hs, Z, dHo = _filled((U, H)), _random((L + 1, B, H), rng), _filled((N, C)), _filled((N, H))
    dZ, carry, S = _random((L, B, H), rng), _filled((B, H)), _random((U, H), rng)
    Ho, dW = Hs[1:].reshape(N, H), _filled(W.shape)
    products = [blas_product(Eu, WihT, P)]
    products += [blas_product(Hs[t], WhhT, Hs[t + 1]) for t in range(L)]
    products += [blas_product(Ho, WcT, Z), blas_product(Z, Wc, dHo)]
    for c, mc in zip(present, tokens):
        block, dW_c = W[start[c]:start[c + 1]], dW[start[c]:start[c + 1]]
        hc, z, dh = _random((mc, H), rng), _filled((mc, block.shape[0])), _filled((mc, H))
        products += [blas_product(hc, block, z, trans_b=True), blas_product(z, block, dh),
                     blas_product(z, hc, dW_c, trans_a=True)]
    products += [blas_product(dZ[t], Whh, carry) for t in reversed(range(1, L))]
    products += [blas_product(dZ.reshape(L * B, H), Hs[:-1].reshape(L * B, H), _filled((H, H)), trans_a=True),
                 blas_product(Z, Ho, _filled((C, H)), trans_a=True), blas_product(S, Eu, _filled((H, E)), trans_a=True),
                 blas_product(S, W_ih, _filled((U, E)))]
    return products


@pytest.mark.parametrize("impl", ["fastnn", "roof", "roof_chain"])
def test_rnnlm_segment(benchmark, impl):
    """kernels.rnnlm_segment (csrc/_rnnlm.pyx): one truncated-BPTT segment of the class-factorized Elman RNN LM,
    forward and backward with every gradient, on `--preset fast`'s shapes but B = 128; float32 (the output rows'
    gradient written, defer_out=False).  Its roof is one GEMM of the FLOPs of its products (rnnlm_segment_flops; its
    softmaxes, tanh and sums come on top, so fastnn stays below the roof).  No NumPy or torch version: the fused
    segment has no short equivalent there (the graph model, RNNLM(fused=False), is fastnn's own).  A build whose
    products lose their vector code shows here as a collapse against the roof (2026-12-06: 12x slower without
    AVX-512).  Its chain roof (rnnlm_chain) is the same products made as BLAS calls in the kernel's order."""
    m, x, y, h0, args = _rnnlm_case(F32)
    work = ("gemm", rnnlm_segment_flops(m, x, y))
    notes = dict(vocab=RNNLM_V, classes=RNNLM_C, embed=m.embed)
    if impl == "roof":
        return _run_roof(benchmark, "rnnlm_segment", RNNLM_SIZE, work, **notes)
    if impl == "roof_chain":
        return _run_chain_roof(benchmark, "rnnlm_segment", RNNLM_SIZE, work, rnnlm_chain(m, x, y), **notes)
    notes["vector_path"] = K.rnnlm_vector_path()
    notes["mm_layout"] = K.rnnlm_mm_layout()        # ymm on AMD Zen 4 (chosen by CPUID), zmm elsewhere

    def fn():
        loss, Hs, g = K.rnnlm_segment(x, y, h0, *args)
        return dict(loss=np.array([loss]), Hs=Hs, W_hh=g["W_hh"], Wc=g["Wc"], W_ih=g["W_ih"], b=g["b"])

    m64, _, _, _, args64 = _rnnlm_case(np.float64)          # the reference: the same segment in float64
    loss, Hs, g = K.rnnlm_segment(x, y, h0.astype(np.float64), *args64)
    _check(impl, fn(), dict(loss=np.array([loss]), Hs=Hs, W_hh=g["W_hh"], Wc=g["Wc"], W_ih=g["W_ih"], b=g["b"]))
    _label(benchmark, "rnnlm_segment", RNNLM_SIZE, impl, work, **notes)
    benchmark(fn)
