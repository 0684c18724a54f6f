import numpy as np
import pytest

from fastnn import io, optim
from fastnn.gradcheck import run_case
from fastnn.graph import RowGrad
from fastnn.models import rnnlm as R
from fastnn.recipes import lm as recipe
from fastnn.train import Trainer


def _stream(rng, V=15, n=200, eos=1):
    s = rng.integers(2, V, n)
    s[rng.random(n) < 0.15] = eos
    s[-1] = eos
    return s


def _randomize(m, rng, scale=0.4):
    for name, p in m.parameters().items():
        p.value[...] = rng.standard_normal(p.shape) * scale


@pytest.mark.parametrize("name,build", R.gradcheck_cases())
def test_gradcheck_cases(name, build):
    assert run_case(build, seed=2).ok


def test_word_classes_frequency_bins():
    counts = np.array([1000, 5, 500, 1, 1, 250, 2, 3, 60, 40])
    for method in ("sqrt", "uniform"):
        wc = R.word_classes(counts, 4, method=method)
        C = wc.max() + 1
        assert set(wc.tolist()) == set(range(C)) and C <= 4
        order = np.argsort(-counts, kind="stable")
        assert np.all(np.diff(wc[order]) >= 0)        # classes follow decreasing frequency
        assert wc[0] == 0 and wc[3] == C - 1
    with pytest.raises(ValueError, match="'method' must be"):
        R.word_classes(counts, 3, method="x")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_softmax_is_a_distribution(rng, dtype):
    wc = np.array([0, 1, 1, 2, 0, 2, 2, 1, 3])
    out = R.ClassSoftmaxOutput(5, wc, rng=0, dtype=dtype, counts=np.arange(1, 10))
    _randomize(out, rng)
    h = rng.standard_normal((7, 5)).astype(dtype)
    full = out.log_probs(h)
    np.testing.assert_allclose(np.logaddexp.reduce(full.astype(np.float64), axis=1), 0, atol=1e-5)
    t = rng.integers(0, 9, 7)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.token_logprobs(h, t), full[np.arange(7), t], rtol=tol, atol=tol)
    loss = out.loss(h, t)
    assert float(loss.value) == pytest.approx(-full[np.arange(7), t].mean(), rel=tol)


def test_class_softmax_grad_rows_are_blocks_of_present_classes(rng):
    wc = np.array([0, 1, 1, 2, 0, 2, 2, 1, 3])
    out = R.ClassSoftmaxOutput(3, wc, rng=0, dtype=np.float64)
    h = np.array(rng.standard_normal((2, 3)))
    out.loss(h, np.array([1, 5])).backward()          # classes 1 and 2
    g = out.W.grad
    assert isinstance(g, RowGrad)
    assert sorted(out.order[g.rows].tolist()) == [1, 2, 3, 5, 6, 7]


def test_counts_init_gives_unigram():
    counts = np.array([40, 10, 20, 5, 25])
    wc = R.word_classes(counts, 2)
    out = R.ClassSoftmaxOutput(3, wc, rng=0, counts=counts)
    for p in (out.Wc, out.W):
        p.value[...] = 0
    lp = out.log_probs(np.zeros((1, 3), np.float32))[0]
    np.testing.assert_allclose(np.exp(lp), counts / counts.sum(), rtol=1e-5)


def test_bptt_batches_windows_and_carry():
    s = np.arange(2, 26)                                       # 24 tokens, 2 streams of 12
    d = R.BPTTBatches(s, batch_size=2, block=5, bptt=3, eos_id=1)
    assert len(d) == 3
    x, y, reset, carry = d[0]
    assert reset and x.shape == (5, 2) and y[:, 0].tolist() == [2, 3, 4, 5, 6]
    assert x[:, 0].tolist() == [1, 2, 3, 4, 5] and carry == 1   # next window starts at position 2
    x, y, reset, carry = d[1]
    assert not reset and x.shape == (8, 2) and x[:, 1].tolist() == list(range(15, 23))
    assert y[:, 1].tolist() == list(range(19, 24)) and carry == 4
    x, y, _, _ = d[2]
    assert y.shape == (2, 2) and x.shape == (5, 2)
    ys = np.concatenate([d[i][1] for i in range(len(d))])
    np.testing.assert_array_equal(ys.T.ravel(), s)


@pytest.mark.parametrize("bptt,classes", [(0, 0), (3, 0), (2, 3)])
def test_batches_carry_state_like_one_stream(rng, bptt, classes):
    """With one stream, the per-batch losses (eval mode) add up to the NLL of evaluating the whole text at once:
    the carried state and the windows are exact, and the input before the first token is </s>."""
    V = 15
    s = _stream(rng, V, 61)
    m = recipe.build_model(recipe.RNNConfig(hidden=6, embed=4, classes=classes), V,
                           counts=np.bincount(s, minlength=V) + 1, dtype=np.float64)
    _randomize(m, rng)
    d = R.BPTTBatches(s, batch_size=1, block=7, bptt=bptt, eos_id=1)
    m.eval()
    total = sum(float(m.loss(d[i]).value) * d[i][1].size for i in range(len(d)))
    lp = m.token_logprobs(s, chunk=10)
    assert total == pytest.approx(-lp.sum(), rel=1e-10)
    np.testing.assert_allclose(m.token_logprobs(s, chunk=1000), lp, rtol=1e-12)


def test_training_learns_a_cycle():
    s = np.tile(np.array([2, 3, 4, 5, 6, 1]), 100)
    for classes in (0, 3):
        m = recipe.build_model(recipe.RNNConfig(hidden=16, classes=classes), 7, counts=np.bincount(s, minlength=7) + 1)
        before = m.perplexity(s)
        d = R.BPTTBatches(s, batch_size=4, block=10, eos_id=1)
        Trainer(m, optim.AdaGrad(m.parameters(), lr=0.2), d, epochs=20, quiet=True, clip_norm=5.0).fit()
        assert before > 4 and m.perplexity(s) < 1.3, classes


def test_save_load_and_extra_state(tmp_path, rng):
    s = _stream(rng)
    config = recipe.RNNConfig(hidden=5, classes=4, activation="relu", init="identity", dropout=0.1, seed=1)
    m = recipe.build_model(config, 15, counts=np.bincount(s, minlength=15) + 1)
    io.save_model(tmp_path / "m.npz", m)
    m2 = io.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(m.token_logprobs(s), m2.token_logprobs(s))
    m.state = np.ones((3, 5), np.float32)
    m2.load_extra_state(m.extra_state())
    np.testing.assert_array_equal(m2.state, m.state)


def test_errors():
    with pytest.raises(ValueError, match="classes > 0 needs 'counts'"):
        recipe.build_model(recipe.RNNConfig(hidden=3, classes=2), 10)
    with pytest.raises(ValueError, match="must use every class"):
        R.ClassSoftmaxOutput(3, np.array([0, 2, 2]), rng=0)
    with pytest.raises(ValueError, match="at least batch_size"):
        R.BPTTBatches(np.arange(3), batch_size=4, block=2, eos_id=1)
    with pytest.raises(IndexError, match="must hold ids"):
        recipe.build_model(recipe.RNNConfig(hidden=3, classes=0), 10).token_logprobs(np.array([1, 10]))


# ---- the fused segment kernel (kernels.rnnlm_segment) -------------------------------------------------------------

def test_bptt_batches_reject_what_is_not_a_stream_of_ids():
    """Non-integer ids were truncated in silence (2.5 became word 2, an eos_id of 1.7 word 1); a 2-d array or
    strings failed inside NumPy with a message naming neither BPTTBatches nor the argument."""
    s = np.arange(2, 30)
    for bad in (s + 0.5, s.astype(float), s.reshape(2, -1), np.array(["a", "b", "c", "d"])):
        with pytest.raises(TypeError, match=r"BPTTBatches: 'stream' must be a 1-d array of integer word ids"):
            R.BPTTBatches(bad, batch_size=2, block=3, eos_id=1)
    with pytest.raises(IndexError, match=r"BPTTBatches: 'stream' must hold ids >= 0; got -4 at position 3"):
        R.BPTTBatches(np.array([2, 3, 4, -4, 5]), batch_size=2, block=3, eos_id=1)
    for bad in (1.7, None, "1"):
        with pytest.raises(TypeError, match="BPTTBatches: 'eos_id' must be an integer >= 0"):
            R.BPTTBatches(s, batch_size=2, block=3, eos_id=bad)
    with pytest.raises(ValueError, match="BPTTBatches: 'eos_id' must be an integer >= 0; got -1"):
        R.BPTTBatches(s, batch_size=2, block=3, eos_id=-1)
    d = R.BPTTBatches(list(s), batch_size=2, block=3, eos_id=np.int64(1))     # a list and a NumPy integer are fine
    assert d[0][0][0, 0] == 1 and d[0][0].dtype == np.int64


def _fused_pair(dtype, activation="tanh", clip=0.0, H=37, B=21, V=40, seed=1):
    counts = np.random.default_rng(seed).integers(1, 50, V)
    config = recipe.RNNConfig(hidden=H, embed=11, classes=5, activation=activation, clip_value=clip, seed=seed)
    return [recipe.build_model(config, V, counts=counts, dtype=dtype, fused=f) for f in (True, False)]


def _loss_and_grads(m, batch, state):
    m.state = state.astype(m.emb.W.dtype)
    m.zero_grad()
    loss = m.loss(batch)
    loss.backward()
    grads = {n: (p.grad.to_dense() if isinstance(p.grad, RowGrad) else p.grad) for n, p in m.parameters().items()}
    return float(loss.value), grads, m.state.copy()


@pytest.mark.parametrize("activation,clip,bptt", [("tanh", 0.0, 0), ("sigmoid", 0.0, 3), ("relu", 0.0, 2),
                                                  ("tanh", 0.05, 3)])
@pytest.mark.parametrize("H,B", [(37, 21), (8, 3), (50, 40)])
def test_fused_segment_matches_the_graph(rng, activation, clip, bptt, H, B):
    """float64: the fused kernel's loss, every gradient (sparse rows included) and the carried state equal the
    graph model's (multiple stream chunks, hidden sizes below / across the 16- and 32-column blocks)."""
    fused, graph = _fused_pair(np.float64, activation, clip, H=H, B=B)
    data = R.BPTTBatches(rng.integers(0, 40, 40 * B), batch_size=B, block=5, bptt=bptt, eos_id=1)
    state = rng.standard_normal((B, H)) * 0.3
    lf, gf, sf = _loss_and_grads(fused, data[3], state)
    lg, gg, sg = _loss_and_grads(graph, data[3], state)
    assert lf == pytest.approx(lg, rel=1e-12)
    np.testing.assert_allclose(sf, sg, rtol=1e-12, atol=1e-13)
    assert set(gf) == set(gg)
    for name in gf:
        np.testing.assert_allclose(gf[name], gg[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("H", [16, 37, 50, 100])
def test_fused_segment_float32_close_to_float64(rng, H):
    """The float32 path (vector kernels: 32-, 16-column and overlapping tail blocks) against float64."""
    m32, _ = _fused_pair(np.float32, H=H)
    m64, _ = _fused_pair(np.float64, H=H)
    data = R.BPTTBatches(rng.integers(0, 40, 900), batch_size=21, block=6, bptt=2, eos_id=1)
    state = rng.standard_normal((21, H)) * 0.3
    l32, g32, _ = _loss_and_grads(m32, data[2], state)
    l64, g64, _ = _loss_and_grads(m64, data[2], state)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for name in g32:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("V,H,E,C,B,block", [(40, 37, 11, 5, 50, 8),
                                             # big enough that every phase of the kernel runs >= 2 threads (each
                                             # starts one thread per ~32k units of work: see threads_for)
                                             (2000, 64, 96, 40, 128, 8)])
def test_fused_training_same_bits_for_any_thread_count(rng, V, H, E, C, B, block):
    """Two AdaGrad steps (clipped) through the fused kernel, kernels and BLAS at 1, 2 and 3 threads: the loss, the
    carried state and every parameter are bitwise the same."""
    import fastnn
    from fastnn import optim
    counts = np.random.default_rng(1).integers(1, 500, V)
    data = R.BPTTBatches(rng.integers(0, V, B * block * 3), batch_size=B, block=block, bptt=2, eos_id=1)
    runs = []
    for t in (1, 2, 3, 1):
        m = recipe.build_model(recipe.RNNConfig(hidden=H, embed=E, classes=C, seed=1), V, counts=counts)
        opt = optim.AdaGrad(m.parameters(), lr=0.1)
        losses = []
        with fastnn.threads(kernels=t, blas=t):
            for i in range(2):
                opt.zero_grad()
                loss = m.loss(data[i])
                loss.backward()
                optim.clip_grad_norm(opt.params, 0.5)
                opt.step()
                losses.append(float(loss.value))
        runs.append((losses, m.state.copy(), {n: p.value.copy() for n, p in m.parameters().items()}))
    for losses, st, params in runs[1:]:
        assert losses == runs[0][0]
        assert np.array_equal(st, runs[0][1])
        for name in params:
            assert np.array_equal(params[name], runs[0][2][name]), name


def _segment_on_path(path, H, E, C, V, B, defer):
    """Every output of one fused segment (float32, the model's own initial weights) with the float32 products on vector
    path `path` (csrc/fnn_math.h): the loss, the states, every gradient, the deferred output rows made and applied by
    AdaGrad (both run the products too, so they are made while the path is set)."""
    from fastnn import kernels
    from fastnn._ext import _rnnlm
    rng = np.random.default_rng(0)
    counts = np.random.default_rng(1).integers(1, 50, V)
    m = recipe.build_model(recipe.RNNConfig(hidden=H, embed=E, classes=C, seed=1), V, counts=counts)
    o, r = m.out, m.rnn
    args = (m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value, o.bc.value, o.W.value,
            o.b.value.reshape(-1), o.word_class, o.pos, o.start)
    x, y, _, _ = R.BPTTBatches(rng.integers(0, V, 40 * B), batch_size=B, block=6, bptt=2, eos_id=1)[2]
    h0 = (rng.standard_normal((B, H)) * 0.3).astype(np.float32)
    before = _rnnlm._vector_path()
    _rnnlm._set_vector_path(path)
    try:
        loss, Hs, g = kernels.rnnlm_segment(x, y, h0, *args, defer_out=defer)
        out = {"loss": np.array(loss), "Hs": Hs}
        for name, v in g.items():
            if name == "W_deferred":
                W, A = o.W.value.copy(), np.full_like(o.W.value, 0.1)
                v.adagrad_(W, A, lr=0.1)
                out.update(W=v.grad(), sq=np.array(v.sq_norm), W_adagrad=W, A_adagrad=A)
            elif isinstance(v, tuple):
                if v[1] is not None:
                    out[name] = v[1]
            else:
                out[name] = v
    finally:
        _rnnlm._set_vector_path(before)
    return out


# H = 13: rows narrower than AVX-512's 16 floats (plain loops there) but not AVX2's 8; H = 37: overlapping tail
# vectors; H = 100 with big classes: the deferred output rows and the Gram products of their norm; 1,100 classes: class
# softmax rows longer than one piece of the exps' sum (FNN_BLOCK = 1,024)
SEGMENT_PATH_CASES = [(13, 9, 5, 40, 21, False), (37, 11, 5, 40, 21, False), (100, 100, 5, 600, 21, True),
                      (100, 100, 30, 600, 64, True), (16, 8, 1100, 1300, 5, True)]


@pytest.mark.parametrize("H,E,C,V,B,defer", SEGMENT_PATH_CASES)
def test_fused_segment_same_bits_on_avx2_and_avx512(H, E, C, V, B, defer):
    """A portable build compiles the segment's float32 products for AVX2 + FMA and AVX-512 and picks one at run time
    (FASTNN_VECTOR_PATH forces one): every element of every product is one FMA chain over k in order whatever the
    vector width and register blocking, so both paths give the same bits for every output.  (A native build has only
    its own path: nothing to compare.)"""
    from fastnn._ext import _rnnlm
    fma = [p for p in _rnnlm._vector_paths() if p in ("avx2", "avx512")]
    if len(fma) < 2:
        pytest.skip(f"this build runs one FMA vector path here ({_rnnlm._vector_paths()})")
    a, b = (_segment_on_path(p, H, E, C, V, B, defer) for p in fma)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("H,E,C,V,B,defer", SEGMENT_PATH_CASES + [(8, 8, 5, 40, 21, False)])
def test_fused_segment_same_bits_in_both_avx512_layouts(H, E, C, V, B, defer):
    """The AVX-512 path's products have two register layouts, zmm (16-float vectors) and ymm (8-float vectors in the
    32 registers of AVX-512VL, the default on AMD Zen 4); each element is the same FMA chain over k in both, so every
    output of the segment (forward, class softmax, within-class softmaxes, BPTT, weight gradients, the deferred
    output rows) has the same bits.  (H or E = 8, 9: one vector and an overlapping second; H = 100: panels of 3
    vectors and a last of 4; B = 21: 8-row blocks and the rows left over.)"""
    from fastnn._ext import _rnnlm
    if "avx512" not in _rnnlm._vector_paths() or len(_rnnlm._mm_layouts()) < 2:
        pytest.skip(f"no AVX-512 path with both layouts here ({_rnnlm._vector_paths()}, {_rnnlm._mm_layouts()})")
    before = _rnnlm._mm_layout()
    got = {}
    try:
        for layout in ("zmm", "ymm"):
            _rnnlm._set_mm_layout(layout)
            assert _rnnlm._mm_layout() == layout
            got[layout] = _segment_on_path("avx512", H, E, C, V, B, defer)
    finally:
        _rnnlm._set_mm_layout(before)
    a, b = got["zmm"], got["ymm"]
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_mm_layout_names():
    from fastnn._ext import _rnnlm
    before = _rnnlm._mm_layout()
    assert before in _rnnlm._mm_layouts()
    with pytest.raises(ValueError, match=r"_set_mm_layout: 'name' must be one of \['zmm'"):
        _rnnlm._set_mm_layout("xmm")
    _rnnlm._set_mm_layout(None)                     # the default for this CPU
    assert _rnnlm._mm_layout() == before


@pytest.mark.parametrize("N,C,seed", [(0, 4, 0), (1, 3, 1), (50, 7, 2), (300, 40, 3), (2560, 100, 4)])
def test_class_plan_matches_grouping(N, C, seed):
    """_rnnlm._class_plan (the within-class softmaxes' plan in one pass) gives what the NumPy steps it replaced gave:
    kernels.group_rows' stable order and classes present, the blocks' offsets and the maxima, absent classes
    skipped."""
    from fastnn import kernels
    from fastnn._ext import _rnnlm
    rng = np.random.default_rng(seed)
    sizes_all = rng.integers(1, 9, C)
    start = np.concatenate([[0], np.cumsum(sizes_all)]).astype(np.intp)
    tc = rng.integers(0, C, N).astype(np.intp)
    if N > 10:
        tc[tc == C // 2] = 0                             # an absent class
    order, present, seg = kernels.group_rows(tc, C)
    sizes = start[present + 1] - start[present]
    counts = np.diff(seg)
    for cells in (0, 1):
        o = np.empty(N, dtype=np.intp)
        plan = np.full((4, C + 1), -7, dtype=np.intp)
        P, max_size, max_tokens, max_cells = _rnnlm._class_plan(tc, start, o, *plan, cells)
        assert P == present.size
        assert np.array_equal(o, order)
        assert np.array_equal(plan[0, :P], present) and np.array_equal(plan[1, :P + 1], seg)
        assert np.array_equal(plan[2, :P + 1], np.concatenate([[0], np.cumsum(sizes)]))
        want_cells = np.concatenate([[0], np.cumsum(counts * sizes)]) if cells else np.zeros(P + 1)
        assert np.array_equal(plan[3, :P + 1], want_cells)
        assert (max_size, max_tokens, max_cells) == ((sizes.max(), counts.max(), (counts * sizes).max()) if P else
                                                     (1, 1, 1))


def test_mm_layout_environment_variable():
    """FASTNN_MM_LAYOUT forces the layout at import (benchmarks of whole `fastnn lm train` runs in both layouts); a
    name not among _mm_layouts() warns once and leaves the CPU's default."""
    import os
    import subprocess
    import sys
    from fastnn._ext import _rnnlm
    code = ("import warnings; from fastnn._ext import _rnnlm; _rnnlm._set_mm_layout(None); "
            "print(_rnnlm._mm_layout())")

    def run(value):
        proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, FASTNN_MM_LAYOUT=value))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip(), proc.stderr
    default = run("")[0]
    for layout in _rnnlm._mm_layouts():
        assert run(layout) == (layout, "")
    got, err = run("xmm")
    assert got == default
    assert err.count("FASTNN_MM_LAYOUT='xmm' ignored: it must be one of") == 1, err


@pytest.mark.parametrize("H,E,C,V,B,defer", SEGMENT_PATH_CASES)
def test_fused_segment_baseline_path_within_rounding_of_fma(H, E, C, V, B, defer):
    """The baseline path (SSE2 in a portable x86 build: no FMA) rounds each product and each sum apart, so a product
    of depth K differs from the FMA paths' by at most 2 gamma_K sum_k |a_k b_k| (gamma_K = K u / (1 - K u),
    u = 2^-24); through the segment (recurrence, softmaxes, BPTT) every output stays within 4e-6 of its array's
    largest value of the FMA paths' (measured: <= 1.0e-6 at these sizes, the loss within 1e-8 relative)."""
    from fastnn._ext import _rnnlm
    paths = _rnnlm._vector_paths()
    fma = [p for p in paths if p in ("avx2", "avx512")]
    if paths[-1] in fma or not fma:
        pytest.skip(f"no baseline path without FMA beside an FMA path here ({paths})")
    ref, got = _segment_on_path(fma[0], H, E, C, V, B, defer), _segment_on_path(paths[-1], H, E, C, V, B, defer)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-7)
    for name in ref:
        r = ref[name].astype(np.float64)
        assert np.abs(got[name] - r).max() <= 4e-6 * np.abs(r).max(), name


def test_fused_segment_rejects_bad_input(rng):
    from fastnn import kernels
    m, _ = _fused_pair(np.float32)
    o, r = m.out, m.rnn
    args = (m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value, o.bc.value, o.W.value,
            o.b.value.reshape(-1), o.word_class, o.pos, o.start)
    x = rng.integers(0, 40, (6, 4))
    h0 = np.zeros((4, 37), np.float32)
    with pytest.raises(IndexError, match="'x'"):
        kernels.rnnlm_segment(x + 40, x[:3], h0, *args)
    with pytest.raises(ValueError, match="0 < k <= L"):
        kernels.rnnlm_segment(x, x[:, :2], h0, *args)
    with pytest.raises(TypeError, match="'h0'"):
        kernels.rnnlm_segment(x, x[:3], h0.astype(np.float64), *args)
    # a word whose row lies outside its class's block: the kernel indexed the block out of bounds (a segfault)
    wrong = np.asarray(o.word_class).copy()
    w = int(x[0, 0])
    wrong[w] = (wrong[w] + 1) % (len(o.start) - 1)
    with pytest.raises(ValueError, match="'pos' must lie in their class's block"):
        kernels.rnnlm_segment(x, x[:3], h0, *args[:-3], wrong, *args[-2:])
    loss, Hs, g = kernels.rnnlm_segment(x, x[:3], h0, *args, want_grad=False)
    assert g is None and Hs.shape == (7, 4, 37) and np.isfinite(loss)


def _segment_outputs(rng_seed, dtype, L, k, B, H, E, C, V, want, defer, n_threads):
    """Every output of one kernels.rnnlm_segment call (random weights and ids from rng_seed) as a dict of arrays."""
    from fastnn import kernels
    rng = np.random.default_rng(rng_seed)
    counts = rng.integers(1, 300, V)
    m = recipe.build_model(recipe.RNNConfig(hidden=H, embed=E, classes=C, seed=1), V, counts=counts, dtype=dtype)
    o, r = m.out, m.rnn
    for p in (r.W_hh, r.b, o.bc, o.b):
        p.value[...] = rng.standard_normal(p.shape) * 0.3
    x, y = rng.integers(0, V, (L, B)), rng.integers(0, V, (k, B))
    h0 = (rng.standard_normal((B, H)) * 0.3).astype(dtype)
    loss, Hs, g = kernels.rnnlm_segment(x, y, h0, m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value,
                                        o.bc.value, o.W.value, o.b.value.reshape(-1), o.word_class, o.pos, o.start,
                                        clip=0.5 if rng_seed % 2 else 0.0, want_grad=want, defer_out=defer,
                                        n_threads=n_threads)
    out = {"loss": np.array(loss), "Hs": Hs}
    for name, v in (g or {}).items():
        if name == "W_deferred":
            out.update(W=v.grad(), sq=np.array(v.sq_norm))
        elif isinstance(v, tuple):
            out[name + ".rows"] = v[0]
            if v[1] is not None:
                out[name] = v[1]
        else:
            out[name] = v
    return out


def test_fused_segment_same_bits_over_many_odd_segments():
    """The segment's phases run in one parallel region, separated by the kernel's own barrier (csrc/fnn_barrier.h)
    and shared out by thread (static) or by an atomic counter (dynamic): a phase that started before the one it reads
    had finished, or a task run twice or never, would show as a difference between thread counts.  Many segments of
    odd sizes (B, U, N not multiples of the 16-row tasks and chunks; fewer tasks than threads in some phases; more
    threads than CPUs), float32 (deferred output rows or not) and float64, with and without gradients: every output
    bitwise the same for 1, 2, 3 and 5 threads."""
    cases = [  # L, k, B, H, E, C, V
        (7, 5, 37, 37, 11, 5, 90), (3, 3, 131, 50, 23, 7, 300), (9, 2, 41, 100, 100, 30, 600),
        (5, 5, 53, 16, 9, 11, 120), (11, 4, 29, 64, 33, 3, 61), (4, 2, 97, 41, 41, 13, 260),
        (6, 6, 19, 100, 17, 2, 45), (8, 3, 71, 24, 7, 50, 700)]
    n = 0
    for i, (L, k, B, H, E, C, V) in enumerate(cases):
        for dtype, want, defer in ((np.float32, True, True), (np.float32, True, False), (np.float64, True, False),
                                   (np.float32, False, False)):
            if dtype == np.float64 and i % 2:
                continue
            ref = _segment_outputs(i, dtype, L, k, B, H, E, C, V, want, defer, 1)
            for t in (2, 3, 5):
                out = _segment_outputs(i, dtype, L, k, B, H, E, C, V, want, defer, t)
                assert out.keys() == ref.keys()
                for name in ref:
                    assert np.array_equal(out[name], ref[name]), (i, dtype, want, defer, t, name)
                n += 1
    assert n == 84


def test_fast_preset_is_an_rnn_config():
    from fastnn.recipes import lm as recipe
    c = recipe.from_preset("fast")
    assert isinstance(c, recipe.RNNConfig) and c.patience == 2 and c.classes > 0 and c.dropout == 0
    # 320 streams at lr 0.03 (recipes/lm.py: on Brown 1.3x the tokens/s of 128 at 0.05, test 116.65 against 117.80)
    assert c.batch_size == 320 and c.lr == 0.03
    assert recipe.from_preset("fast", patience=5).patience == 5                # explicit values win


# ---- the output rows' gradient kept as factors (defer_out, OutRowGrad) ---------------------------------------------

def _segment_both_ways(rng, H=37, B=21, V=40):
    from fastnn import kernels
    m, _ = _fused_pair(np.float32, H=H, B=B, V=V)
    _randomize(m, rng, 0.3)
    o, r = m.out, m.rnn
    args = (m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value, o.bc.value, o.W.value,
            o.b.value.reshape(-1), o.word_class, o.pos, o.start)
    data = R.BPTTBatches(rng.integers(0, V, 40 * B), batch_size=B, block=6, bptt=2, eos_id=1)
    x, y, _, _ = data[2]
    h0 = (rng.standard_normal((B, H)) * 0.3).astype(np.float32)
    direct = kernels.rnnlm_segment(x, y, h0, *args)
    deferred = kernels.rnnlm_segment(x, y, h0, *args, defer_out=True)
    return m, direct, deferred


@pytest.mark.parametrize("H", [16, 37, 100])
def test_deferred_output_rows_give_the_same_bits(rng, H):
    """defer_out=True: the loss, the states and every other gradient are unchanged; the output rows' gradient made
    from the factors is the array the kernel writes otherwise, bit for bit (scaled too), and its norm is the
    array's."""
    m, (l1, Hs1, g1), (l2, Hs2, g2) = _segment_both_ways(rng, H=H)
    assert l1 == l2 and np.array_equal(Hs1, Hs2)
    out = g2.pop("W_deferred")
    assert g2["W"][1] is None and np.array_equal(g2["W"][0], g1["W"][0])
    for name in g1:
        if name != "W":
            a, b = (g1[name], g2[name]) if not isinstance(g1[name], tuple) else (g1[name][1], g2[name][1])
            assert np.array_equal(a, b), name
    dW = g1["W"][1]
    assert np.array_equal(out.grad(), dW)
    assert np.array_equal(out.grad(0.3), dW * np.float32(0.3))
    assert out.sq_norm == pytest.approx(float(np.dot(dW.ravel().astype(np.float64), dW.ravel())), rel=1e-5)


@pytest.mark.parametrize("H,B", [(37, 21), (100, 5)])
def test_deferred_norm_of_big_blocks_through_gram_products(rng, H, B):
    """Blocks of >= 16 rows with few tokens each: the norm comes from the tokens' Gram matrices (16 token rows at a
    time, so more than one step for B = 21) and equals the made array's up to rounding, for any thread count."""
    import fastnn
    from fastnn import kernels
    m, (_, _, g1), (_, _, g2) = _segment_both_ways(rng, H=H, B=B, V=600)
    sizes = np.diff(m.out.start)
    assert sizes.min() >= 16
    dW = g1["W"][1]
    want = float(np.dot(dW.ravel().astype(np.float64), dW.ravel()))
    assert g2["W_deferred"].sq_norm == pytest.approx(want, rel=1e-5)
    o, r = m.out, m.rnn
    args = (m.emb.W.value, r.W_ih.value, r.W_hh.value, r.b.value, o.Wc.value, o.bc.value, o.W.value,
            o.b.value.reshape(-1), o.word_class, o.pos, o.start)
    data = R.BPTTBatches(rng.integers(0, 600, 40 * B), batch_size=B, block=6, bptt=2, eos_id=1)
    x, y, _, _ = data[2]
    h0 = np.zeros((B, H), np.float32)
    norms = set()
    for t in (1, 2, 3):
        with fastnn.threads(kernels=t):
            norms.add(kernels.rnnlm_segment(x, y, h0, *args, defer_out=True)[2]["W_deferred"].sq_norm)
    assert len(norms) == 1


@pytest.mark.parametrize("scale,l2", [(None, 0.0), (0.3, 0.0), (None, 0.01)])
def test_deferred_adagrad_same_bits_as_sparse_adagrad(rng, scale, l2):
    """OutRows.adagrad_ (each block made in a tile and applied) = kernels.sparse_adagrad_ on the made array, for W and
    for the accumulator, any thread count; rows of absent classes are left alone."""
    import fastnn
    from fastnn import kernels
    m, (_, _, g1), (_, _, g2) = _segment_both_ways(rng)
    out = g2["W_deferred"]
    rows, dW = g1["W"]
    if scale is not None:
        dW = dW * np.float32(scale)
    W0 = m.out.W.value.copy()
    A0 = (rng.random(W0.shape) * 0.1).astype(np.float32)
    Wa, Aa = W0.copy(), A0.copy()
    kernels.sparse_adagrad_(Wa, Aa, rows, dW, lr=0.05, eps=1e-10, l2=l2)
    for t in (1, 2, 3):
        Wb, Ab = W0.copy(), A0.copy()
        with fastnn.threads(kernels=t):
            out.adagrad_(Wb, Ab, lr=0.05, eps=1e-10, l2=l2, scale=scale)
        assert np.array_equal(Wa, Wb) and np.array_equal(Aa, Ab)
    untouched = np.setdiff1d(np.arange(W0.shape[0]), rows)
    assert np.array_equal(Wb[untouched], W0[untouched])
    with pytest.raises(ValueError, match="'W' must be the output matrix"):
        out.adagrad_(Wb[:3], Ab, lr=0.05)


def test_out_row_grad_through_clip_and_optimizers(rng):
    """The model's OutRowGrad: clip_grad_norm reads its norm and keeps the factor; AdaGrad applies it through the
    hook; SGD, to_dense and adding read `values`, which is the scaled array."""
    from fastnn.optim.clip import grad_sq_norms
    m, _ = _fused_pair(np.float32, H=37)
    data = R.BPTTBatches(rng.integers(0, 40, 900), batch_size=21, block=6, bptt=2, eos_id=1)

    def grads():
        m.state = None
        m.zero_grad()
        m.loss(data[1]).backward()
        return m.out.W.grad

    g = grads()
    assert isinstance(g, R.OutRowGrad)
    dense = g.to_dense()                                   # builds values
    norm = np.sqrt(sum(grad_sq_norms(m.parameters()).values()))
    g = grads()
    coef = 0.5 * 1e-3
    assert optim.clip_grad_norm(m.parameters(), coef * norm) == pytest.approx(norm, rel=1e-5)
    c = np.float32(min(1.0, coef * norm / (norm + 1e-6)))
    W0, acc = m.out.W.value.copy(), np.zeros_like(m.out.W.value)
    opt = optim.AdaGrad({"out.W": m.out.W}, lr=0.1)
    opt.step()                                             # through OutRows.adagrad_, the factor applied
    ref = W0.copy()
    from fastnn import kernels
    kernels.sparse_adagrad_(ref, acc, g.rows, (dense[g.rows] * c).astype(np.float32), lr=0.1)
    np.testing.assert_allclose(m.out.W.value, ref, rtol=1e-6, atol=1e-7)
    plain = grads().values.copy()                          # W has moved: a new gradient
    g = grads()
    g.scale_(2.0)
    np.testing.assert_array_equal(g.values, plain * np.float32(2.0))
    assert "OutRowGrad" in repr(g)
