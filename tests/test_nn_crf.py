"""The linear-chain CRF of the sentence-level log-likelihood (fastnn.nn.crf): log Z, marginals, expected transition
counts and Viterbi paths against brute-force enumeration; the loss value; argument errors.  Its gradients are checked
by the `sentence_nll` case of `fastnn gradcheck` (tests/test_gradcheck.py)."""
import itertools

import numpy as np
import pytest

from fastnn import nn
from fastnn.nn import crf

def _brute(E, A, s, e):
    """(log Z, node marginals (L, K), best path) of one sentence by enumerating all K^L paths."""
    L, K = E.shape
    paths = list(itertools.product(range(K), repeat=L))
    sc = np.array([s[p[0]] + e[p[-1]] + sum(E[t, p[t]] for t in range(L))
                   + sum(A[p[t - 1], p[t]] for t in range(1, L)) for p in paths])
    logZ = np.logaddexp.reduce(sc)
    marg = np.zeros((L, K))
    for p, v in zip(paths, sc):
        marg[np.arange(L), p] += np.exp(v - logZ)
    return logZ, marg, np.array(paths[int(np.argmax(sc))])


@pytest.mark.parametrize("scale", [1.0, 30.0])   # large scores: the scaled recursions must not overflow
def test_forward_backward_and_viterbi_match_brute_force(rng, scale):
    K, lengths = 3, [4, 1, 2, 5]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    E = rng.standard_normal((offsets[-1], K)) * scale
    A, s, e = (rng.standard_normal(sh) * scale for sh in ((K, K), K, K))
    logZ, marg, trans, _, _ = crf._forward_backward(E, A, s, e, offsets)
    path = nn.viterbi(E, offsets, A, s, e)
    expected_trans = np.zeros((K, K))
    for k in range(len(lengths)):
        sl = slice(offsets[k], offsets[k + 1])
        bz, bm, bp = _brute(E[sl], A, s, e)
        np.testing.assert_allclose(logZ[k], bz, rtol=1e-12)
        np.testing.assert_allclose(marg[sl], bm, atol=1e-10)
        np.testing.assert_array_equal(path[sl], bp)
    # expected transition counts: d log Z / dA by central differences of the brute-force log Z
    h = 1e-6
    for i, j in [(0, 1), (2, 2)]:
        Ap, Am = A.copy(), A.copy()
        Ap[i, j] += h
        Am[i, j] -= h
        num = sum(_brute(E[offsets[k]:offsets[k + 1]], Ap, s, e)[0] - _brute(E[offsets[k]:offsets[k + 1]], Am, s, e)[0]
                  for k in range(len(lengths))) / (2 * h)
        expected_trans[i, j] = num
        np.testing.assert_allclose(trans[i, j], num, rtol=1e-5, atol=1e-7)


def test_viterbi_in_length_sorted_blocks_matches_one_call(rng):
    lengths = rng.integers(1, 12, 60)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    E = rng.standard_normal((offsets[-1], 5))
    A, s, e = rng.standard_normal((5, 5)), rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(nn.viterbi(E, offsets, A, s, e, block_tokens=37),
                                  nn.viterbi(E, offsets, A, s, e, block_tokens=None))


def test_sentence_nll_value_is_logZ_minus_gold_score(rng):
    K = 4
    offsets = np.array([0, 3, 5])                 # two sentences, of 3 and 2 tokens
    E = rng.standard_normal((5, K))
    tr = nn.Transitions(K, dtype=np.float64)
    for p in (tr.A, tr.start, tr.end):
        p.value[...] = rng.standard_normal(p.shape)
    y = rng.integers(0, K, 5)
    loss = nn.sentence_nll(E, y, offsets, tr, reduction="sum")
    A, s, e = tr.A.value, tr.start.value, tr.end.value
    want = 0.0
    for k in range(2):
        sl = slice(offsets[k], offsets[k + 1])
        Es, ys = E[sl], y[sl]
        gold = s[ys[0]] + e[ys[-1]] + Es[np.arange(len(ys)), ys].sum() + sum(A[ys[t - 1], ys[t]]
                                                                             for t in range(1, len(ys)))
        want += _brute(Es, A, s, e)[0] - gold
    assert float(loss.value) == pytest.approx(want, rel=1e-12)
    assert float(nn.sentence_nll(E, y, offsets, tr).value) == pytest.approx(want / 5, rel=1e-12)


def test_sentence_nll_rejects_bad_offsets_and_tags(rng):
    tr = nn.Transitions(3, dtype=np.float64)
    E = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="offsets"):
        nn.sentence_nll(E, [0, 1, 2, 0], [0, 2, 2, 4], tr)
    with pytest.raises(ValueError, match="tags"):
        nn.sentence_nll(E, [0, 1, 3, 0], [0, 4], tr)


def test_gradcheck_case_passes_and_catches_a_broken_backward(monkeypatch):
    from fastnn.gradcheck import node_cases, run_case
    build = dict(node_cases())["sentence_nll"]
    report = run_case(build)
    assert report.ok and {c.name for c in report} >= {"A", "start", "end", "scores"}, str(report)
    real = crf._forward_backward

    def wrong_pairs(*args):                       # expected transition counts off by 1 %
        logZ, marg, trans, first, last = real(*args)
        return logZ, marg, trans * 1.01, first, last
    monkeypatch.setattr(crf, "_forward_backward", wrong_pairs)
    report = run_case(build)
    assert not report.ok and [c.name for c in report.failures] == ["A"]
