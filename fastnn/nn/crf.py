"""The sentence-level log-likelihood of Collobert et al. (2011, section 3.4.2), a linear-chain CRF over a network's
tag scores: the Transitions module (learned tag-transition, start and end scores), its loss `sentence_nll` (a scalar
Node: log-sum over all tag paths by the forward algorithm minus the gold path's score; the gradient from the
forward-backward marginals) and `viterbi` decoding.
"""
import numpy as np

from fastnn._validation import check_int
from fastnn.graph import Module, Node, Param
from fastnn.nn.functional import as_node

__all__ = ["Transitions", "sentence_nll", "viterbi"]


class Transitions(Module):
    """Tag-transition scores of the sentence-level log-likelihood: A (K, K) (A[i, j]: tag i followed by tag j), start
    (K,) and end (K,) scores, all starting at zero and without weight decay."""

    def __init__(self, n_tags, *, dtype=np.float32):
        self.A = Param("A", np.zeros((n_tags, n_tags), dtype=dtype), decay=False)
        self.start = Param("start", np.zeros(n_tags, dtype=dtype), decay=False)
        self.end = Param("end", np.zeros(n_tags, dtype=dtype), decay=False)

    def __repr__(self):
        return f"Transitions({self.A.shape[0]} tags, dtype={self.A.dtype})"


def _padded(offsets):
    """(S, T, flat index of each token in the (S*T,) padded layout, mask (S, T), lengths)."""
    lengths = np.diff(offsets)
    S = len(lengths)
    T = int(lengths.max()) if S else 0
    sent = np.repeat(np.arange(S), lengths)
    t = np.arange(offsets[-1] - offsets[0]) - (offsets[:-1] - offsets[0])[sent]
    mask = np.arange(T)[None, :] < lengths[:, None]
    return S, T, sent * T + t, mask, lengths


def _check_offsets(offsets, n, where):
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 1):
        raise ValueError(f"{where}: 'offsets' must be increasing sentence boundaries from 0 to {n} (every sentence "
                         f"non-empty); got {offsets[:6]}{'...' if len(offsets) > 6 else ''}.")
    return offsets


def _forward_backward(E, A, start, end, offsets):
    """Scaled forward-backward in float64 over a batch of sentences.

    E (N, K) emission scores of the tokens (sentences concatenated, boundaries `offsets`).  Returns (logZ (S,),
    node marginals (N, K), expected transition counts (K, K), start marginals (K,), end marginals (K,)).
    The recursions run in probability space, with each token's scores shifted by their max and alpha renormalised at
    every step (the shifts and scales are added back into log Z), so nothing overflows.
    """
    N, K = E.shape
    S, T, flat, mask, lengths = _padded(offsets)
    shift = E.max(axis=1)
    P = np.zeros((S * T, K))
    P[flat] = np.exp(E - shift[:, None])
    P = P.reshape(S, T, K)                                # exp(E - max) per token, zero at padding
    a_max = A.max()
    expA = np.exp(A - a_max)
    last = offsets[1:] - 1
    alpha = np.zeros((S, T, K))
    logc = np.zeros((S, T))
    a = np.exp(start - start.max())[None, :] * P[:, 0]
    c = a.sum(axis=1)
    alpha[:, 0] = a / c[:, None]
    logc[:, 0] = np.log(c)
    for t in range(1, T):
        a = (alpha[:, t - 1] @ expA) * P[:, t]
        c = a.sum(axis=1)
        live = mask[:, t]
        c = np.where(live, c, 1.0)
        alpha[:, t] = np.where(live[:, None], a / c[:, None], alpha[:, t - 1])
        logc[:, t] = np.log(c)
    idx = np.arange(S)
    expEnd = np.exp(end - end.max())
    a_last = alpha[idx, lengths - 1]
    zend = a_last @ expEnd
    # log Z = shifts + transition shifts + log of the scaled sums
    sent_shift = np.add.reduceat(shift, offsets[:-1]) if N else np.zeros(0)
    logZ = (logc.sum(axis=1) + np.log(zend) + sent_shift + (lengths - 1) * a_max + start.max() + end.max())
    # beta, scaled with the same constants as alpha: beta_t = expA @ (P_{t+1} * beta_{t+1}) / c_{t+1}
    beta = np.zeros((S, T, K))
    beta[idx, lengths - 1] = expEnd[None, :] / zend[:, None]
    c_all = np.exp(logc)
    for t in range(T - 2, -1, -1):
        live = mask[:, t + 1]
        b = (P[:, t + 1] * beta[:, t + 1]) @ expA.T / c_all[:, t + 1][:, None]
        beta[:, t] = np.where(live[:, None], b, beta[:, t])
    # node marginals: alpha_t * beta_t (normalised by construction)
    marg = (alpha * beta).reshape(S * T, K)[flat]
    # pairwise: alpha_{t-1}[i] expA[i, j] P_t[j] beta_t[j] / c_t, summed over live t >= 1
    if T > 1:
        w = (P[:, 1:] * beta[:, 1:]) / c_all[:, 1:, None]
        w *= mask[:, 1:, None]
        trans = np.einsum("sti,stj->ij", alpha[:, :-1], w) * expA
    else:
        trans = np.zeros((K, K))
    return logZ, marg, trans, marg[offsets[:-1]], marg[last]


def sentence_nll(scores, tags, offsets, transitions, reduction="tokens"):
    """The sentence-level negative log-likelihood (Collobert et al. 2011, section 3.4.2): a scalar Node.

    Parameters
    ----------
    scores : Node or array (N, K): the network's tag scores for N tokens, sentences concatenated.
    tags : (N,) int gold tags.  offsets : (S + 1,) sentence boundaries (0 ... N).
    transitions : a Transitions module (its A, start, end receive gradients).
    reduction : "tokens" (sum over sentences / N, the default), "sentences" (mean per sentence) or "sum".

    The forward-backward runs in float64 whatever the parameters' dtype; gradients are cast back.
    """
    where = "sentence_nll"
    scores = as_node(scores)
    E = scores.value
    if E.ndim != 2:
        raise ValueError(f"{where}: 'scores' must be 2-D (tokens, tags); got shape {E.shape}.")
    N, K = E.shape
    if transitions.A.shape != (K, K):
        raise ValueError(f"{where}: the transitions must be for {K} tags; got {transitions.A.shape[0]}.")
    y = np.asarray(tags, dtype=np.int64).ravel()
    if y.shape != (N,) or (N and (y.min() < 0 or y.max() >= K)):
        raise ValueError(f"{where}: 'tags' must be {N} ints in [0, {K}); got shape {y.shape}.")
    offsets = _check_offsets(offsets, N, where)
    denom = {"tokens": N, "sentences": len(offsets) - 1, "sum": 1}.get(reduction)
    if denom is None:
        raise ValueError(f"{where}: 'reduction' must be 'tokens', 'sentences' or 'sum'; got {reduction!r}.")
    A, st, en = transitions.A, transitions.start, transitions.end
    E64 = np.asarray(E, dtype=np.float64)
    A64, s64, e64 = (np.asarray(p.value, dtype=np.float64) for p in (A, st, en))
    logZ, marg, trans, m_first, m_last = _forward_backward(E64, A64, s64, e64, offsets)
    first, last = offsets[:-1], offsets[1:] - 1
    inner = np.ones(N, dtype=bool)
    inner[first] = False                                  # tokens with a predecessor in their sentence
    gold = (E64[np.arange(N), y].sum() + A64[y[:-1][inner[1:]], y[1:][inner[1:]]].sum()
            + s64[y[first]].sum() + e64[y[last]].sum())
    value = np.asarray((logZ.sum() - gold) / denom, dtype=E.dtype)
    dt = A.dtype

    def backward(g):
        c = float(g) / denom
        if scores.requires_grad:
            dE = marg.copy()
            dE[np.arange(N), y] -= 1.0
            scores.add_grad((dE * c).astype(E.dtype, copy=False))
        if A.trainable:
            dA = trans.copy()
            np.add.at(dA, (y[:-1][inner[1:]], y[1:][inner[1:]]), -1.0)
            A.add_grad((dA * c).astype(dt))
        if st.trainable:
            ds = m_first.sum(axis=0)
            np.add.at(ds, y[first], -1.0)
            st.add_grad((ds * c).astype(dt))
        if en.trainable:
            de = m_last.sum(axis=0)
            np.add.at(de, y[last], -1.0)
            en.add_grad((de * c).astype(dt))

    return Node(value, (scores,), backward, "sentence_nll", requires_grad=True)


def viterbi(scores, offsets, A, start, end, *, block_tokens=20000):
    """The best tag path of every sentence under the sentence-level score: (N,) int64 tags.

    scores (N, K) tag scores (sentences concatenated, boundaries `offsets`); A (K, K), start (K,), end (K,) arrays.
    The sentences are decoded in blocks of about `block_tokens` tokens (None: all at once), sorted by length so that
    the padding to each block's longest sentence stays small; the paths do not depend on the blocks.
    """
    E = np.asarray(scores, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"viterbi: 'scores' must be 2-D (tokens, tags); got shape {E.shape}.")
    offsets = _check_offsets(offsets, len(E), "viterbi")
    A, start, end = (np.asarray(x, dtype=np.float64) for x in (A, start, end))
    K = E.shape[1]                          # (a mismatch died in numpy's broadcasting, deep in the decoder)
    for name, x, shape in (("A", A, (K, K)), ("start", start, (K,)), ("end", end, (K,))):
        if x.shape != shape:
            raise ValueError(f"viterbi: '{name}' must have shape {shape} for scores of {K} tags; got {x.shape}.")
    if block_tokens is not None:            # (below 1 no block took a sentence: numpy's concatenate error)
        check_int(block_tokens, "block_tokens", "viterbi")
    if block_tokens is None:
        return _viterbi_padded(E, offsets, A, start, end)
    out = np.empty(len(E), dtype=np.int64)
    lengths = np.diff(offsets)
    order = np.argsort(lengths, kind="stable")
    i = 0
    while i < len(order):
        j = i
        n = 0
        while j < len(order) and n < block_tokens:
            n += lengths[order[j]]
            j += 1
        sel = order[i:j]
        rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in sel])
        offs = np.zeros(len(sel) + 1, dtype=np.int64)
        np.cumsum(lengths[sel], out=offs[1:])
        out[rows] = _viterbi_padded(E[rows], offs, A, start, end)
        i = j
    return out


def _viterbi_padded(E, offsets, A, start, end):
    """viterbi() of float64 scores E over one block of sentences, padded to the longest."""
    K = E.shape[1]
    S, T, flat, mask, lengths = _padded(offsets)
    Ep = np.zeros((S * T, K))
    Ep[flat] = E
    Ep = Ep.reshape(S, T, K)
    delta = start[None, :] + Ep[:, 0]
    back = np.zeros((S, T, K), dtype=np.int64)
    for t in range(1, T):
        cand = delta[:, :, None] + A[None]                # (S, from, to)
        arg = cand.argmax(axis=1)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0] + Ep[:, t]
        live = mask[:, t]
        back[:, t] = arg
        delta = np.where(live[:, None], best, delta)
    path = np.zeros((S, T), dtype=np.int64)
    cur = (delta + np.asarray(end, dtype=np.float64)[None, :]).argmax(axis=1)
    idx = np.arange(S)
    for t in range(T - 1, -1, -1):
        live = t < lengths
        path[:, t] = np.where(live, cur, 0)
        if t > 0:
            # step back only where position t is inside the sentence (its backpointer is real)
            cur = np.where(live, back[idx, t, cur], cur)
    return path.reshape(S * T)[flat]
