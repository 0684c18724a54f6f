"""What the neural language models share (NPLM, RNNLM, LSTMLM): the checked token stream, frequency classes, the
output layer (full or class-factorized softmax) and its dropout, evaluation over a stream and perplexity; and, for
the recurrent models, the carried state, the truncated-BPTT batch and the loss of its predicted block.

Every model predicts every token of a `fastnn.data.lm_stream` (</s> included), the input before stream[0] being
</s>, so `token_logprobs(stream)[i]` lines up position by position across the models (fastnn.models.mixture).
"""
import numbers

import numpy as np

from fastnn import kernels, nn
from fastnn._validation import array_like, check_float_dtype, check_index, check_int, check_not_file, check_scalar, check_words
from fastnn.data.text import as_sequence, history_ids, id_sentences_stream, text_stream
from fastnn.graph import Module
from fastnn.models.ngram import READER
from fastnn.metrics import perplexity as _perplexity
from fastnn.nn import ClassSoftmaxOutput

__all__ = ["NeuralLM", "RecurrentLM", "as_stream", "word_classes", "output_logprobs"]


def as_stream(stream, vocab_size, where, *, eos_id, words=None):
    """A 1-d int64 array of ids in [0, vocab_size) (IndexError naming the first bad id): `stream` itself, or a list
    of sentences of ids each with </s> (`eos_id`) appended (fastnn.data.text.id_sentences_stream), or tokenised
    sentences encoded with `words` (fastnn.data.text.text_stream): what the n-gram models read too."""
    stream = as_sequence(array_like(check_not_file(stream, "stream", where, READER)), "stream", where)
    text = text_stream(stream, words, where)
    if text is not None:
        return text
    a = id_sentences_stream(stream, eos_id, "stream", where)
    if a is None:
        try:
            a = np.asarray(stream)
        except ValueError:              # ragged: e.g. ids and lists of ids mixed
            a = np.asarray(stream, dtype=object)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise TypeError(f"{where}: 'stream' must be a 1-d array of integer word ids or a list of sentences of ids; "
                        f"got dtype {a.dtype}, shape {a.shape}. Use fastnn.data.lm_stream(sentences, vocab).")
    a = a.astype(np.int64, copy=False)
    bad = np.flatnonzero((a < 0) | (a >= vocab_size))
    if bad.size:
        raise IndexError(f"{where}: 'stream' must hold ids in [0, {vocab_size}); got {a[bad[0]]} at position "
                         f"{bad[0]}. Encode the text with the model's vocabulary.")
    return a


def _check_scored(lp, where):
    """Perplexity needs at least one token (else metrics.perplexity's message names neither the model nor the data)."""
    if not lp.size:
        raise ValueError(f"{where}: the data must hold at least one token; got none (an empty list or array).")


def word_classes(counts, n_classes, *, method="sqrt"):
    """Class of every word (int64 (V,), classes 0..C-1 all non-empty, C <= n_classes) by frequency binning.

    Words are sorted by decreasing count (ties by id) and cut into consecutive bins of equal mass of p(w)
    ("uniform", Mikolov et al. 2011) or of sqrt(p(w)) ("sqrt", the RNNLM toolkit's default, which gives frequent
    words smaller classes less aggressively and balances the two softmaxes better).
    """
    where = "word_classes"
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"{where}: 'counts' must be a non-empty 1-d array of non-negative counts; got shape "
                         f"{c.shape}.")
    n_classes = check_int(n_classes, "n_classes", where)
    if method not in ("sqrt", "uniform"):
        raise ValueError(f"{where}: 'method' must be 'sqrt' or 'uniform'; got {method!r}.")
    order = np.lexsort((np.arange(c.size), -c))
    p = np.maximum(c[order], 0.5) / max(c.sum(), 1.0)      # unseen words still get a tiny mass
    m = np.sqrt(p) if method == "sqrt" else p
    cum = np.cumsum(m) / m.sum()
    # word i (in frequency order) goes to bin floor(C * mass before it), so each bin holds ~1/C of the mass
    before = np.concatenate([[0.0], cum[:-1]])
    cls = np.minimum((before * n_classes).astype(np.int64), n_classes - 1)
    _, cls = np.unique(cls, return_inverse=True)            # drop empty bins: classes 0..C'-1
    out = np.empty(c.size, dtype=np.int64)
    out[order] = cls.ravel()
    return out


def output_logprobs(out, h, targets):
    """log P(targets[i] | h[i]) under the output layer `out`, as float64 (N,), without gradients: a SoftmaxOutput
    through the fused kernel (loss only), a ClassSoftmaxOutput through its own token_logprobs."""
    if isinstance(out, ClassSoftmaxOutput):
        return out.token_logprobs(h, targets)
    work = out.__dict__.setdefault("_eval_work", kernels.OutputLayerWork())
    loss = kernels.output_layer(np.ascontiguousarray(h), out.W.value, out.b.value, targets, want_grad=False,
                                work=work)[0]
    return -loss.astype(np.float64)


class NeuralLM(Module):
    """Base of the neural LMs.  A subclass calls `_check_fields` first and `_head` after its own layers, and
    defines `_eval_hidden(stream, chunk)`, yielding (start, the output layer's inputs for the next tokens)."""

    def _check_fields(self, where, *, vocab_size, dropout, eos_id, init_scale, dtype, words, counts, classes,
                      word_class, class_method):
        """Check and set the fields every neural LM shares: |V|, dropout, </s>, init scale, dtype, the vocabulary's
        words, and the class-factorized output's word classes (formed from `counts` when not given).  Returns
        `counts` as float64 (or None) for the output bias init."""
        self.vocab_size = check_int(vocab_size, "vocab_size", where)
        self.dropout_p = float(check_scalar(dropout, "dropout", where, low=0, high=1))
        if self.dropout_p >= 1:
            raise ValueError(f"{where}: 'dropout' must be < 1; got {dropout}.")
        self.eos_id = check_int(eos_id, "eos_id", where, low=0)
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"{where}: 'eos_id' must be in [0, {self.vocab_size}); got {eos_id}.")
        self.init_scale = float(check_scalar(init_scale, "init_scale", where, low=0, low_open=True))
        self._dtype = check_float_dtype(dtype, where)
        self.words = check_words(words, where)
        if self.words is not None and len(self.words) != self.vocab_size:
            raise ValueError(f"{where}: 'words' must have {self.vocab_size} entries; got {len(self.words)}.")
        if self.words is not None and "</s>" in self.words and self.words.index("</s>") != self.eos_id:
            # (text is encoded with the words' </s>, the stream's start padded with eos_id: two ends of sentence)
            raise ValueError(f"{where}: 'eos_id' must be the id of '</s>' in 'words', {self.words.index('</s>')}; "
                             f"got {self.eos_id}. Pass vocab.eos_id.")
        if counts is not None:
            try:
                counts = np.asarray(counts, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"{where}: 'counts' must be numbers, one count per word (Vocab.counts); got "
                                f"{type(counts).__name__}.") from None
            if counts.shape != (self.vocab_size,):
                raise ValueError(f"{where}: 'counts' must have shape ({self.vocab_size},); got {counts.shape}.")
            bad = np.flatnonzero(~(counts >= 0) | ~np.isfinite(counts))
            if bad.size:                # (negative counts were clipped to 0.5: a uniform output bias, silently)
                raise ValueError(f"{where}: 'counts' must be finite and >= 0 (word frequencies); got {counts[bad[0]]} "
                                 f"for word {bad[0]}.")
        self.classes = check_int(classes, "classes", where, low=0)
        self.class_method = class_method
        if self.classes and word_class is None:
            if counts is None:
                raise ValueError(f"{where}: classes > 0 needs 'counts' (or 'word_class') to form frequency classes.")
            word_class = word_classes(counts, self.classes, method=class_method)
        self.word_class = None if not self.classes else [int(c) for c in np.asarray(word_class)]
        if self.word_class is not None and len(self.word_class) != self.vocab_size:
            raise ValueError(f"{where}: 'word_class' must have {self.vocab_size} entries; got "
                             f"{len(self.word_class)}.")
        return counts

    def _head(self, n_in, counts, rng):
        """The output layer over n_in inputs (class-factorized when classes > 0; biases at the log priors when
        `counts` is given) and the dropout (None without)."""
        dtype = self._dtype
        if self.classes:
            self.out = ClassSoftmaxOutput(n_in, np.asarray(self.word_class), rng=rng, dtype=dtype, counts=counts)
        else:
            self.out = nn.SoftmaxOutput(n_in, self.vocab_size, rng=rng, dtype=dtype,
                                        class_counts=None if counts is None else np.maximum(counts, 0.5))
        self.drop = nn.Dropout(self.dropout_p, rng=rng) if self.dropout_p else None

    def astype(self, dtype):
        """Cast every parameter to float32 or float64 (Module.astype), the model's own dtype with them: it stayed
        the old one, so the model file said float32 of float64 arrays (load_model refused it) and the fused RNN
        kernel got a state of the old dtype."""
        self._dtype = check_float_dtype(dtype, f"{type(self).__name__}.astype")
        return super().astype(self._dtype)

    def _vocab_config(self):
        """config() entries of the fields `_check_fields` sets."""
        return {"vocab_size": self.vocab_size, "classes": self.classes, "word_class": self.word_class,
                "class_method": self.class_method, "dropout": self.dropout_p, "eos_id": self.eos_id,
                "dtype": self._dtype.name, "init_scale": self.init_scale, "words": self.words}

    def token_logprobs(self, stream, *, chunk=512):
        """log P(stream[i] | everything before it) for every token of `stream` (float64), `chunk` tokens at a time
        (the result depends on it only by float rounding: BLAS may round a product of 7 rows and one of 512
        differently).  `stream`: word ids (fastnn.data.lm_stream), sentences of ids ([[2, 3], [4]]), or tokenised
        sentences ([["the", "cat", "sat"]]) encoded with the model's words, each sentence ending with </s>
        (appended).  The n-gram models read the same three."""
        where = f"{type(self).__name__}.token_logprobs"
        chunk = check_int(chunk, "chunk", where)        # (-1 returned the uninitialised output array)
        s = as_stream(stream, self.vocab_size, where, eos_id=self.eos_id, words=self.words)
        out = np.empty(len(s), dtype=np.float64)
        if not len(s):                                  # (the NPLM's context windows need one token)
            return out
        with self.evaluating():
            for i, h in self._eval_hidden(s, chunk):
                out[i:i + len(h)] = output_logprobs(self.out, h, s[i:i + len(h)])
        return out

    def prob_vector(self, history=()):
        """P(w | history) for every word w: a float64 (vocab_size,) array summing to 1, the distribution
        token_logprobs scores (prob_vector(h)[w] is exp(token_logprobs(h + [w])[-1]) up to float rounding), as the
        n-gram models' prob_vector.  `history`: the stream before the predicted word, from the start of the text
        (</s> before it; an empty history is that start), as word ids or, for a model with its words, as words
        (unknown ones read as <unk>); the recurrent models read all of it, the NPLM its last order - 1 tokens."""
        where = f"{type(self).__name__}.prob_vector"
        history = history_ids(history, self.words, where)
        h = np.asarray(array_like(history) if not isinstance(history, np.ndarray) else history)
        if h.size == 0:
            h = np.zeros(0, dtype=np.int64)
        if h.ndim != 1 or h.dtype.kind not in "iu":
            raise TypeError(f"{where}: 'history' must be a 1-d sequence of word ids (or words); got dtype {h.dtype}, "
                            f"shape {h.shape}.")
        s = np.append(as_stream(h, self.vocab_size, where, eos_id=self.eos_id), 0)    # 0: the predicted word's place
        with self.evaluating():
            *_, (_, H) = self._eval_hidden(s, len(s))
            lp = np.asarray(self.out.log_probs(np.ascontiguousarray(H[-1:])), dtype=np.float64).reshape(-1)
        p = np.exp(lp - lp.max())
        return p / p.sum()

    def perplexity(self, stream):
        """exp(mean NLL) over every token of `stream` (</s> and <unk> included); ids or tokenised sentences, as
        token_logprobs."""
        lp = self.token_logprobs(stream)
        _check_scored(lp, f"{type(self).__name__}.perplexity")
        return _perplexity(float(-lp.sum()), lp.size)


class RecurrentLM(NeuralLM):
    """Base of the recurrent LMs (RNNLM, LSTMLM): an embedding of the previous token, a recurrent layer (the
    subclass's `_recur(e, state, state_at)` -> (H Node (L, B, hidden), state after step state_at)), the output layer,
    and the state carried from one BPTTBatches batch to the next (`self.state`: None, or the layer's state).  Its
    `_settings()` are the recurrent layer's own constructor arguments (in config() and the repr)."""

    def _check_sizes(self, where, hidden, embed):
        self.hidden = check_int(hidden, "hidden", where)
        self.embed = self.hidden if embed is None else check_int(embed, "embed", where)

    def reset_state(self):
        self.state = None

    def astype(self, dtype):
        super().astype(dtype)
        if self.state is not None:                      # (h, or the LSTM's (h, c)) in the new dtype
            self.state = tuple(np.asarray(a, self._dtype) for a in self.state) if isinstance(self.state, tuple) \
                else np.asarray(self.state, self._dtype)
        return self

    def _hidden(self, x, state, state_at=None):
        e = self.emb(x, concat=False)                       # (L, B, E)
        if self.drop is not None:
            e = self.drop(e)
        return self._recur(e, state, state_at)

    def _unpack(self, batch):
        """(x, y, carry, the carried state or None for a fresh start) of a BPTTBatches batch, checked (its ids
        here, by the model, rather than by the kernel that reads them)."""
        where = f"{type(self).__name__}.loss"
        if not (isinstance(batch, (tuple, list)) and len(batch) == 4):
            raise TypeError(f"{where}: the batch must be a BPTTBatches batch (x (L, B), y (k, B), reset, carry); got "
                            f"{type(batch).__name__}{f' of {len(batch)} items' if hasattr(batch, '__len__') else ''}.")
        x, y, reset, carry = batch
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or y.ndim != 2:
            raise ValueError(f"{where}: the batch's x and y must be 2-d, (L, B) and (k, B); got {x.shape} and "
                             f"{y.shape}.")
        L, B = x.shape
        k = y.shape[0]
        if isinstance(carry, bool) or not isinstance(carry, numbers.Integral):
            raise TypeError(f"{where}: the batch's carry must be an integer in [-1, {L}); got {carry!r}.")
        if y.shape != (k, B) or not 0 < k <= L or not -1 <= carry < L:
            raise ValueError(f"{where}: the batch must be (x (L, B), y (k, B), reset, carry) with "
                             f"k <= L; got {x.shape}, {y.shape}, carry {carry}.")
        x = check_index(x, self.vocab_size, "x", where)
        y = check_index(y, self.vocab_size, "y", where)
        s = self.state
        rows = None if s is None else (s[0] if isinstance(s, tuple) else s).shape[0]   # LSTM: (h, c)
        return x, y, carry, None if (reset or rows != B) else s

    def loss(self, batch):
        """Mean cross-entropy of a BPTTBatches batch (x (L, B), y (k, B), reset, carry); the carried state becomes
        the state after input row `carry`."""
        x, y, carry, state = self._unpack(batch)
        H, self.state = self._hidden(x, state, state_at=carry)
        return self._out_loss(H, y)

    def _out_loss(self, H, y):
        """Mean cross-entropy of the last len(y) steps of H (the predicted block; earlier steps are BPTT history)."""
        k = y.shape[0]
        H = nn.narrow(H, 0, H.value.shape[0] - k, k)
        if self.drop is not None:
            H = self.drop(H)
        return self.out.loss(H, y)

    def _eval_hidden(self, s, chunk):
        # one stream from a zero state, </s> before stream[0], the state carried across chunks and sentences
        inp = np.concatenate([[self.eos_id], s[:-1]]) if len(s) else s
        state = None
        for i in range(0, len(s), chunk):
            H, state = self._hidden(inp[i:i + chunk, None], state)
            yield i, H.value.reshape(-1, self.hidden)

    def config(self):
        return {**self._vocab_config(), "hidden": self.hidden, "embed": self.embed, **self._settings(),
                "clip": self.clip}

    def __repr__(self):
        out = f"{self.classes} classes" if self.classes else "full softmax"
        own = "".join(f"{k}={v!r}, " for k, v in self._settings().items())   # the recurrent layer's settings
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, hidden={self.hidden}, embed={self.embed}, "
                f"{own}{out}, dropout={self.dropout_p}, clip={self.clip}, dtype={self._dtype.name})")
