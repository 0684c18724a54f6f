"""Linear interpolation of two language models, token by token: P(w) = lam P_a(w) + (1 - lam) P_b(w).

Both models must score the SAME token stream position by position (`token_logprobs(stream)[i]` of each is the log
probability of stream[i]); fastnn's n-gram, NPLM and RNN LMs all predict every token of a `fastnn.data.lm_stream`,
</s> included, so their arrays line up.  The weight is fixed (0.5 in Bengio et al. 2003's first mixture) or fitted by
EM on validation log-probabilities (then evaluate on test with that weight).

Bengio et al. (2003, section 4.1) also make the weight depend on the frequency of the context, "the same rule as the
deleted interpolation trigram": `context_bins` puts each token in the bin floor(log2(1 + count)) of the training
count of the tokens before it, `em_weights` fits one weight per bin by EM on validation, and `mix_logprobs` takes
the per-token weights `lams[bins]`.
"""
import numpy as np

from fastnn._validation import check_int, check_scalar

__all__ = ["mix_logprobs", "em_weight", "em_weights", "context_bins"]


def _pair(lp_a, lp_b, where):
    try:
        a = np.asarray(lp_a, dtype=np.float64)
        b = np.asarray(lp_b, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: the log-probabilities must be arrays of numbers (each model's token_logprobs); "
                        f"got {type(lp_a).__name__} and {type(lp_b).__name__}.") from None
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{where}: both log-probability arrays must be 1-d of one length (the same token stream); "
                         f"got shapes {a.shape} and {b.shape}.")
    if a.size == 0:
        raise ValueError(f"{where}: the log-probability arrays must not be empty; got 0 tokens.")
    if np.any(a > 1e-9) or np.any(b > 1e-9) or np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"{where}: log-probabilities must be <= 0 and not NaN; got max {max(a.max(), b.max())}.")
    return a, b


def mix_logprobs(lp_a, lp_b, weight):
    """log(weight * exp(lp_a) + (1 - weight) * exp(lp_b)) per token (float64).  weight: a number, or one per token
    (an array of the tokens' shape, e.g. em_weights' lams[context_bins(...)])."""
    where = "mix_logprobs"
    a, b = _pair(lp_a, lp_b, where)
    if np.ndim(weight):
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != a.shape:
            raise ValueError(f"{where}: per-token 'weight' must be an array of shape {a.shape} in [0, 1]; got shape "
                             f"{w.shape}.")
        bad = np.flatnonzero(~(w >= 0) | (w > 1))
        if bad.size:                    # (the message said "got shape (5,)" for a NaN weight of the right shape)
            raise ValueError(f"{where}: per-token 'weight' must be an array of shape {a.shape} in [0, 1]; got "
                             f"{w[bad[0]]} at position {bad[0]}.")
        with np.errstate(divide="ignore"):
            return np.logaddexp(np.log(w) + a, np.log1p(-w) + b)
    check_scalar(weight, "weight", where, low=0, high=1)
    w = float(weight)
    if w == 0.0:
        return b.copy()
    if w == 1.0:
        return a.copy()
    return np.logaddexp(np.log(w) + a, np.log1p(-w) + b)


def em_weight(lp_a, lp_b, *, init=0.5, max_iter=200, tol=1e-9):
    """The weight lam of model a maximising the mean log-likelihood of the mixture on these tokens, by EM.

    E-step: r_i = lam P_a / (lam P_a + (1 - lam) P_b); M-step: lam = mean(r_i).  Each step cannot lower the
    likelihood; stops when it improves by less than `tol` nats per token.  Returns (lam, mean log-likelihood).
    """
    where = "em_weight"
    check_scalar(init, "init", where, low=0, high=1, low_open=True)
    if init >= 1:
        raise ValueError(f"{where}: 'init' must be in (0, 1); got {init}.")
    check_int(max_iter, "max_iter", where, low=0)
    check_scalar(tol, "tol", where, low=0)
    a, b = _pair(lp_a, lp_b, where)
    both = np.flatnonzero(np.isneginf(a) & np.isneginf(b))
    if both.size:                   # (the E-step's ratio is nan there: the message was about a nan 'weight')
        raise ValueError(f"{where}: token {both[0]} has probability 0 under both models ({both.size} such tokens), so "
                         f"the mixture's likelihood is 0 whatever the weight; smooth the models or leave those tokens "
                         f"out.")
    lam, prev = float(init), -np.inf
    for _ in range(max_iter):
        la = np.log(lam) + a                       # log(lam P_a); z = log(lam P_a + (1 - lam) P_b)
        z = np.logaddexp(la, np.log1p(-lam) + b)
        r = np.exp(la - z)                         # model a's share (0 where P_a = 0: no -inf + inf)
        ll = float(np.mean(z))
        lam_new = float(np.clip(r.mean(), 1e-12, 1 - 1e-12))
        if ll - prev < tol:
            break
        lam, prev = lam_new, ll
    return lam, float(np.mean(mix_logprobs(a, b, lam)))


def em_weights(lp_a, lp_b, bins, *, n_bins=None, init=0.5, max_iter=200, tol=1e-9):
    """One weight of model a per bin (bins: a non-negative int per token), by EM on these tokens; each bin's weight
    is em_weight over its own tokens, and a bin without tokens gets the weight fitted on all of them.
    Returns (lams (n_bins,) float64, mean log-likelihood of the mixture over all tokens)."""
    where = "em_weights"
    a, b = _pair(lp_a, lp_b, where)
    bins = np.asarray(bins)
    if bins.shape != a.shape or (bins.size and (bins.dtype.kind not in "iu" or bins.min() < 0)):
        raise ValueError(f"{where}: 'bins' must be non-negative integers, one per token (shape {a.shape}); got dtype "
                         f"{bins.dtype}, shape {bins.shape}.")
    n = int(bins.max()) + 1 if n_bins is None else check_int(n_bins, "n_bins", where)
    if bins.max() >= n:
        raise ValueError(f"{where}: 'bins' must be < n_bins={n}; got {bins.max()}.")
    pooled, _ = em_weight(a, b, init=init, max_iter=max_iter, tol=tol)
    lams = np.full(n, pooled)
    for k in np.unique(bins):
        sel = bins == k
        lams[k] = em_weight(a[sel], b[sel], init=init, max_iter=max_iter, tol=tol)[0]
    return lams, float(np.mean(mix_logprobs(a, b, lams[bins])))


def context_bins(stream, train, *, context=2, pad_id, max_bucket=15):
    """Frequency bin of every token's context: min(floor(log2(1 + count)), max_bucket), count = how often the
    `context` tokens before it (the stream padded with pad_id, </s>, as the NPLM's contexts) occur in a row in the
    `train` stream (padded the same way).  int64 (len(stream),), values in [0, max_bucket]."""
    where = "context_bins"
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
        raise ValueError(f"{where}: 'context' must be an integer >= 1; got {context!r}.")
    pad_id = check_int(pad_id, "pad_id", where, low=0)
    max_bucket = check_int(max_bucket, "max_bucket", where, low=0)
    s, t = (np.asarray(x) for x in (stream, train))
    for name, x in (("stream", s), ("train", t)):     # (float ids were truncated to ints, a string failed in int())
        if x.ndim != 1 or (x.size and (x.dtype.kind not in "iu" or x.min() < 0)):
            raise ValueError(f"{where}: '{name}' must be a 1-d array of word ids (integers >= 0); got dtype "
                             f"{x.dtype}, shape {x.shape}.")
    s, t = s.astype(np.int64), t.astype(np.int64)
    base = int(max(s.max(initial=0), t.max(initial=0), pad_id)) + 1
    if context * np.log2(base) >= 62:
        raise ValueError(f"{where}: {context}-token contexts over {base} ids do not fit int64 keys; use a shorter "
                         f"'context'.")

    def keys(x):                       # key of the `context` tokens before each position
        p = np.concatenate([np.full(context, pad_id, dtype=np.int64), x])
        k = np.zeros(len(x), dtype=np.int64)
        for j in range(context):
            k = k * base + p[j:j + len(x)]
        return k

    uniq, cnt = np.unique(keys(t), return_counts=True)
    k = keys(s)
    pos = np.minimum(np.searchsorted(uniq, k), max(len(uniq) - 1, 0))
    count = np.where(uniq[pos] == k, cnt[pos], 0) if len(uniq) else np.zeros(len(k), dtype=np.int64)
    return np.minimum(np.floor(np.log2(1.0 + count)), max_bucket).astype(np.int64)
