"""Linear interpolation of two language models, token by token: P(w) = lam P_a(w) + (1 - lam) P_b(w).

Both models must score the SAME token stream position by position (`token_logprobs(stream)[i]` of each is the log
probability of stream[i]); fastnn's n-gram, NPLM and RNN LMs all predict every token of a `fastnn.data.lm_stream`,
</s> included, so their arrays line up.  The weight is fixed (0.5 in Bengio et al. 2003's first mixture) or fitted by
EM on validation log-probabilities (then evaluate on test with that weight).
"""
import numpy as np

from fastnn._validation import check_scalar

__all__ = ["mix_logprobs", "em_weight"]


def _pair(lp_a, lp_b, where):
    a = np.asarray(lp_a, dtype=np.float64)
    b = np.asarray(lp_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{where}: both log-probability arrays must be 1-d of one length (the same token stream); "
                         f"got shapes {a.shape} and {b.shape}.")
    if a.size == 0:
        raise ValueError(f"{where}: the log-probability arrays must not be empty; got 0 tokens.")
    if np.any(a > 1e-9) or np.any(b > 1e-9) or np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"{where}: log-probabilities must be <= 0 and not NaN; got max {max(a.max(), b.max())}.")
    return a, b


def mix_logprobs(lp_a, lp_b, weight):
    """log(weight * exp(lp_a) + (1 - weight) * exp(lp_b)) per token (float64)."""
    where = "mix_logprobs"
    check_scalar(weight, "weight", where, low=0, high=1)
    a, b = _pair(lp_a, lp_b, where)
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
    a, b = _pair(lp_a, lp_b, where)
    lam, prev = float(init), -np.inf
    d = b - a                                      # log(P_b / P_a)
    for _ in range(max_iter):
        # r = lam / (lam + (1 - lam) exp(d)), computed stably
        z = np.logaddexp(np.log(lam), np.log1p(-lam) + d)
        r = np.exp(np.log(lam) - z)
        ll = float(np.mean(a + z))
        lam_new = float(np.clip(r.mean(), 1e-12, 1 - 1e-12))
        if ll - prev < tol:
            break
        lam, prev = lam_new, ll
    return lam, float(np.mean(mix_logprobs(a, b, lam)))
