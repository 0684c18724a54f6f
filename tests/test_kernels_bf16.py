"""output_layer's bfloat16 products on AMX tiles (csrc/fnn_amx.h): against a float64 reference whose operands are
rounded to bfloat16 as the kernel rounds them, thread-count invariance, and the refusals where a machine cannot run
them (tested everywhere by pretending the machine lacks AMX)."""
import numpy as np
import pytest

from fastnn import kernels as K
from fastnn import nn
from tests.conftest import run_cli

amx = pytest.mark.skipif(not K.amx_bf16(), reason="this CPU (or build, or OS) cannot run AMX-BF16 tiles")


def bf16(x):
    """x rounded to bfloat16 (to nearest, ties to even), as float64."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def ref_bf16(h, W, b, t, scale):
    """loss, dW, db, dh with the products' operands in bfloat16 (h, W, and the gradient tile G) and exact sums."""
    hb, Wb = bf16(h), bf16(W)
    z = hb @ Wb.T + b
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    g = np.exp(z - lse[:, None]) * scale
    g[np.arange(len(t)), t] -= scale
    gb = bf16(g)
    return lse - z[np.arange(len(t)), t], gb.T @ hb, g.sum(0), gb @ Wb


def case(rng, B, H, V):
    h = (rng.standard_normal((B, H)) * 0.5).astype(np.float32)
    W = (rng.standard_normal((V, H)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(V) * 0.1).astype(np.float32)
    return h, W, b, rng.integers(0, V, B)


# one block; B, H not multiples of 16 or 32 (padding); many blocks, V cut unevenly; the NPLM's shape; B = 1
@amx
@pytest.mark.parametrize("B,H,V", [(7, 5, 11), (1, 1, 1), (33, 100, 1000), (130, 33, 5003), (512, 100, 3001),
                                   (5, 3, 40_000), (300, 17, 777)])
def test_bfloat16_output_layer_matches_rounded_operands(B, H, V, rng):
    h, W, b, t = case(rng, B, H, V)
    got = K.output_layer(h, W, b, t, scale=1 / B, precision="bfloat16")
    want = ref_bf16(h, W, b, t, 1 / B)
    exact = K.output_layer(h, W, b, t, scale=1 / B)
    for name, x, r, f in zip(["loss", "dW", "db", "dh"], got, want, exact):
        assert x.dtype == np.float32 and x.shape == r.shape, name
        # float32 sums of exact bfloat16 products: float32 rounding, and a G entry rounded to the other bfloat16
        # neighbour where float32 and float64 disagree on a tie
        np.testing.assert_allclose(x, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
    # and the loss is the rounded operands' loss, not the float32 one (else the test above proves nothing)
    assert np.abs(got[0] - want[0]).max() < np.abs(exact[0] - want[0]).max() / 10 or H < 4


@amx
def test_bfloat16_output_layer_is_the_same_bits_for_any_thread_count(rng):
    h, W, b, t = case(rng, 67, 19, 30_011)
    first = K.output_layer(h, W, b, t, scale=0.3, precision="bfloat16", n_threads=1)
    work = K.OutputLayerWork()
    for n in (2, 3, 1):
        got = K.output_layer(h, W, b, t, scale=0.3, precision="bfloat16", work=work, reuse_grad_buffers=True,
                             n_threads=n)
        for x, y in zip(first, got):
            np.testing.assert_array_equal(x, y)
    loss_only = K.output_layer(h, W, b, t, want_grad=False, precision="bfloat16")
    np.testing.assert_array_equal(loss_only[0], first[0])
    assert loss_only[1:] == (None, None, None)


@amx
def test_softmax_output_trains_in_bfloat16_and_evaluates_in_float32(rng):
    h, W, b, t = case(rng, 40, 24, 300)
    out = nn.SoftmaxOutput(24, 300, rng=0, precision="bfloat16")
    out.W.value[...] = W
    loss = out.loss(h, t)
    loss.backward()
    want = ref_bf16(h, W, out.b.value, t, 1 / 40)
    np.testing.assert_allclose(out.W.grad, want[1], rtol=1e-4, atol=1e-4 * np.abs(want[1]).max())
    with out.evaluating():
        ev = float(out.loss(h, t).value)
    assert ev == pytest.approx(float(K.output_layer(h, W, out.b.value, t)[0].mean()), rel=1e-6)


def test_bfloat16_is_refused_where_the_machine_cannot_run_it(monkeypatch, rng):
    h, W, b, t = case(rng, 20, 8, 50)
    with pytest.raises(ValueError, match="'precision' must be one of"):
        K.output_layer(h, W, b, t, precision="bf16")
    if K.amx_bf16():
        with pytest.raises(TypeError, match="float32"):
            K.output_layer(h.astype(np.float64), W.astype(np.float64), b.astype(np.float64), t, precision="bfloat16")
        with pytest.raises(TypeError, match="float32"):
            nn.SoftmaxOutput(8, 50, rng=0, dtype=np.float64, precision="bfloat16")
    monkeypatch.setattr(K, "amx_bf16", lambda: False)
    with pytest.raises(ValueError, match="AMX"):
        K.output_layer(h, W, b, t, precision="bfloat16")
    with pytest.raises(ValueError, match="AMX"):
        nn.SoftmaxOutput(8, 50, rng=0, precision="bfloat16")
    np.testing.assert_array_equal(K.output_layer(h, W, b, t)[0], K.output_layer(h, W, b, t, precision="float32")[0])


def test_nplm_config_refuses_bfloat16_where_it_cannot_run(monkeypatch, tmp_path, capsys):
    from fastnn.recipes.lm import NPLMConfig
    with pytest.raises(ValueError, match="full softmax"):
        NPLMConfig(output_precision="bfloat16", classes=10)
    monkeypatch.setattr(K, "amx_bf16", lambda: False)
    config = NPLMConfig(output_precision="bfloat16")     # a Config read from a model file needs no AMX
    with pytest.raises(ValueError, match="AMX"):
        config.check_machine()
    # the command line: one line, exit 2, before it reads the data (the training file does not exist)
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "nplm", "--output-precision", "bfloat16", "--train",
                           tmp_path / "missing.txt", "--dev", tmp_path / "missing.txt", "--out", tmp_path / "m.npz")
    assert rc == 2 and "AMX" in err and "--output-precision" in err and len(err.strip().splitlines()) == 1, err
    assert "missing.txt" not in err


@amx
def test_an_nplm_trained_in_bfloat16_is_as_good_as_in_float32():
    from fastnn.recipes import lm
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    # a text with structure: each word mostly followed by one of two others
    nxt = rng.integers(0, 60, (60, 2))
    sents, w = [], 0
    for _ in range(400):
        s = []
        for _ in range(12):
            w = int(nxt[w, rng.integers(0, 2)]) if rng.random() < 0.9 else int(rng.integers(0, 60))
            s.append(words[w])
        sents.append(s)
    ppl = {}
    for precision in ("float32", "bfloat16"):
        config = lm.NPLMConfig(hidden=32, dim=16, epochs=3, batch_size=64, lr=0.1, min_count=1, seed=1,
                               output_precision=precision)
        vocab, streams = lm.prepare(config, sents[:350], sents[350:])
        model, _ = lm.train(config, vocab, streams, quiet=True)
        assert model.out.precision == precision
        ppl[precision] = lm.perplexity(model, streams["valid"])
    assert ppl["bfloat16"] == pytest.approx(ppl["float32"], rel=0.02), ppl
    assert ppl["float32"] < 20             # it learnt the structure (60 words: 60 for a uniform guess)


def test_info_says_whether_bfloat16_products_can_run(capsys, monkeypatch):
    import json
    for can in (True, False):
        monkeypatch.setattr(K, "amx_bf16", lambda: can)
        rc, out, err = run_cli(capsys, "info", "--json")
        assert rc == 0 and json.loads(out)["amx_bf16"] == ("yes" if can else "no")


def test_a_cpu_with_amx_gets_the_tile_code():
    """setup.py leaves the tile code out where its probe does not compile: on an AMX CPU with a toolchain that has it
    (gcc >= 11 or clang >= 12), a probe gone stale (e.g. naming a routine the header no longer has) would drop the
    bfloat16 path silently, and every other test here would skip."""
    import re

    import fastnn
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    info = fastnn.build_info()
    m = re.search(r"(gcc|clang)[^0-9]*.*?(\d+)\.\d+", info.get("compiler", ""))
    if not {"amx_bf16", "amx_tile", "avx512_bf16"} <= flags or m is None:
        pytest.skip("not an AMX CPU, or the compiler is not named")
    if int(m.group(2)) < (12 if m.group(1) == "clang" else 11):
        pytest.skip(f"{info['compiler']} predates AMX")
    assert info["amx_tiles"] == "compiled"
    assert K.amx_bf16()
