"""Evaluation metrics: tag accuracy, CoNLL chunk precision/recall/F1 (conlleval's rules), perplexity."""
import math

import numpy as np

from fastnn._validation import check_sentences, short_repr
from fastnn.data.tags import convert, end_of_chunk, reencode, scheme_of, split_tag, start_of_chunk


def accuracy(gold, pred):
    """Fraction (in [0, 1]) of positions where `pred` equals `gold`.

    Both are arrays of the same shape, or equally shaped nested lists (e.g. sentences of tags).
    """
    (g, g_lens), (p, p_lens) = _flatten(gold, "gold"), _flatten(pred, "pred")
    if len(g) != len(p):
        raise ValueError(f"accuracy: 'gold' and 'pred' must have the same length; got {len(g)} and {len(p)}.")
    if len(g) == 0:
        raise ValueError("accuracy: 'gold' must not be empty; got 0 items.")
    # sentences of other lengths with the same total were compared shifted, silently
    if g_lens is not None and p_lens is not None and g_lens != p_lens:
        k = next(k for k, (a, b) in enumerate(zip(g_lens, p_lens)) if a != b) if len(g_lens) == len(p_lens) else None
        raise ValueError("accuracy: 'gold' and 'pred' must have the same sentences; got " + (
            f"{len(g_lens)} and {len(p_lens)} sentences." if k is None else
            f"{g_lens[k]} gold and {p_lens[k]} predicted labels in sentence {k}."))
    return float(np.mean(np.asarray(g) == np.asarray(p)))


def _flatten(x, name):
    """(the labels of `x` in one sequence, its sentences' lengths or None when `x` is flat or an array)."""
    if isinstance(x, (str, bytes)):       # (compared character by character)
        raise TypeError(f"accuracy: '{name}' must be a sequence of labels, or of sentences of labels; got a "
                        f"{type(x).__name__} {short_repr(x)}.")
    if isinstance(x, np.ndarray):
        return x.ravel(), None
    try:
        x = list(x)
    except TypeError:
        raise TypeError(f"accuracy: '{name}' must be a sequence of labels, or of sentences of labels; got "
                        f"{type(x).__name__} {short_repr(x)}.") from None
    if x and isinstance(x[0], (list, tuple, np.ndarray)):
        return [t for s in x for t in s], [len(s) for s in x]
    return x, None


def conll_f1(gold_sentences, pred_sentences, *, scheme=None):
    """Chunk precision, recall and F1 exactly as the CoNLL shared tasks' conlleval script computes them.

    Parameters
    ----------
    gold_sentences, pred_sentences : lists of sentences, each a list of tag strings ("O", "B-PER", "I-NP", ...);
        sentence i of both must have the same length.  IOB1 and IOB2 are scored as they are (conlleval's rules
        read both).  Sentence boundaries end chunks, as blank lines do for conlleval.
    scheme : None, or "iobes" to convert both sides to IOB2 first (conlleval does not know S- tags; with None, a
        side written in IOBES is found and converted all the same).

    Scored in gold's own encoding: predictions written consistently in another one (a model trained on IOB1 data
    scored on an IOB2 file) are re-encoded into gold's first.  Chunk scores do not change (conlleval's rules read
    both), but token accuracy would count every B-X/I-X that differs only in encoding as wrong; conlleval itself
    compares the raw tags.  Predictions that are ill-formed in their own encoding are compared as they are.

    Returns
    -------
    dict with "precision", "recall", "f1" and "accuracy" in PERCENT (as conlleval prints them, unrounded;
    0.0 when undefined), the counts "n_tokens", "n_gold", "n_pred", "n_correct" (chunks), and "per_type": a dict
    type -> {"precision", "recall", "f1", "n_gold", "n_pred", "n_correct"} over every type in either side.
    conlleval also counts -DOCSTART- lines as tokens when they are in its input; here there are none, so
    "accuracy" may differ from its output in the last digits while the chunk scores are identical.
    """
    where = "conll_f1"
    # a flat list of tags (one sentence, as sklearn's metrics take them) was scored as sentences of characters
    gold_sentences = check_sentences(gold_sentences, f"{where}: 'gold_sentences'", item="tag")
    pred_sentences = check_sentences(pred_sentences, f"{where}: 'pred_sentences'", item="tag")
    if len(gold_sentences) != len(pred_sentences):
        raise ValueError(f"{where}: 'gold_sentences' and 'pred_sentences' must have the same number of sentences; "
                         f"got {len(gold_sentences)} and {len(pred_sentences)}.")
    if scheme not in (None, "iobes"):
        raise ValueError(f"{where}: 'scheme' must be None (IOB1/IOB2 as is) or 'iobes'; got {scheme!r}.")
    # predictions well-formed in another encoding than gold's are scored in gold's
    pred_sentences, found = reencode(pred_sentences, scheme_of(gold_sentences), ill_formed="keep")
    if found == "iobes":
        scheme = "iobes"
    n_tokens = n_correct_tags = 0
    n_correct = n_gold = n_pred = 0
    correct_t, gold_t, pred_t = {}, {}, {}
    # The state machine of conlleval, fed one sentence at a time followed by a boundary ("O" on both sides).
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    for k, (gs, ps) in enumerate(zip(gold_sentences, pred_sentences)):
        gs, ps = list(gs), list(ps)
        if len(gs) != len(ps):
            raise ValueError(f"{where}: sentence {k} must have as many predicted as gold tags; "
                             f"got {len(ps)} predicted and {len(gs)} gold.")
        n_correct_tags += sum(a == b for a, b in zip(gs, ps))      # in gold's encoding, before any conversion
        n_tokens += len(gs)
        if scheme == "iobes":
            gs, ps = convert(gs, "iobes", "iob2"), convert(ps, "iobes", "iob2")
        for i in range(len(gs) + 1):
            boundary = i == len(gs)
            c, ct = ("O", "") if boundary else split_tag(gs[i])
            g, gt = ("O", "") if boundary else split_tag(ps[i])
            end_c = end_of_chunk(last_c, c, last_ct, ct)
            end_g = end_of_chunk(last_g, g, last_gt, gt)
            if in_correct:
                if end_c and end_g and last_gt == last_ct:
                    in_correct = False
                    n_correct += 1
                    correct_t[last_ct] = correct_t.get(last_ct, 0) + 1
                elif end_c != end_g or gt != ct:
                    in_correct = False
            start_c = start_of_chunk(last_c, c, last_ct, ct)
            start_g = start_of_chunk(last_g, g, last_gt, gt)
            if start_c and start_g and gt == ct:
                in_correct = True
            if start_c:
                n_gold += 1
                gold_t[ct] = gold_t.get(ct, 0) + 1
            if start_g:
                n_pred += 1
                pred_t[gt] = pred_t.get(gt, 0) + 1
            last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:  # unreachable after a boundary; kept for parity with the script
        n_correct += 1
        correct_t[last_ct] = correct_t.get(last_ct, 0) + 1

    per_type = {}
    for t in sorted(set(gold_t) | set(pred_t)):
        per_type[t] = dict(_prf(correct_t.get(t, 0), gold_t.get(t, 0), pred_t.get(t, 0)),
                           n_gold=gold_t.get(t, 0), n_pred=pred_t.get(t, 0), n_correct=correct_t.get(t, 0))
    out = _prf(n_correct, n_gold, n_pred)
    out.update(accuracy=100.0 * n_correct_tags / n_tokens if n_tokens else 0.0, n_tokens=n_tokens,
               n_gold=n_gold, n_pred=n_pred, n_correct=n_correct, per_type=per_type)
    return out


def _prf(correct, gold, pred):
    p = 100.0 * correct / pred if pred else 0.0
    r = 100.0 * correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f}


def format_conlleval(result):
    """conlleval's text report for a `conll_f1` result."""
    r = result
    lines = [f"processed {r['n_tokens']} tokens with {r['n_gold']} phrases; found: {r['n_pred']} phrases; "
             f"correct: {r['n_correct']}."]
    if r["n_tokens"]:
        lines.append(f"accuracy: {r['accuracy']:6.2f}%; precision: {r['precision']:6.2f}%; "
                     f"recall: {r['recall']:6.2f}%; FB1: {r['f1']:6.2f}")
    for t, s in r["per_type"].items():
        lines.append(f"{t:>17s}: precision: {s['precision']:6.2f}%; recall: {s['recall']:6.2f}%; "
                     f"FB1: {s['f1']:6.2f}  {s['n_pred']}")
    return "\n".join(lines)


def perplexity(total_nll, n_tokens):
    """exp(total_nll / n_tokens): perplexity from a summed natural-log negative log-likelihood.

    Returns inf when the mean NLL overflows exp; raises FloatingPointError for a non-finite `total_nll`.
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens <= 0:   # (True was 1)
        raise ValueError(f"perplexity: 'n_tokens' must be a positive int; got {n_tokens!r}.")
    total_nll = float(total_nll)
    if not math.isfinite(total_nll):
        raise FloatingPointError(f"perplexity: 'total_nll' must be finite; got {total_nll}. "
                                 f"The model produced a non-finite loss.")
    if total_nll < 0:
        raise ValueError(f"perplexity: 'total_nll' must be >= 0 (a sum of negative log-probabilities); "
                         f"got {total_nll}.")
    return perplexity_from_nll(total_nll / n_tokens)


def perplexity_from_nll(mean_nll):
    """exp(mean_nll), the perplexity of a mean natural-log NLL: inf past the float range (math.exp raised
    OverflowError for a diverged model's NLL above ~709, losing its run at the end of an epoch); nan stays nan."""
    mean_nll = float(mean_nll)
    return math.exp(mean_nll) if mean_nll < 709.0 or math.isnan(mean_nll) else math.inf
