"""Elman recurrent language model (the lecture's RNN LM; Mikolov et al. 2010/2011).

    h_t = f(W_hh h_{t-1} + W_hx x_t + b),  y_t = softmax(W_s h_t + b_s),  f in {sigmoid, tanh, relu}

x_t is the previous token; W_hx x_t is an embedding lookup (a sparse Param, E = `embed` columns) followed by the
RNN layer's input matrix (fastnn.nn.RNN, through kernels.rnn_forward / rnn_backward).  relu with init="identity"
is Le et al. (2015)'s IRNN.  The output is a full softmax over V (the fused output kernel) or, with `classes` > 0,
Mikolov et al. (2011)'s class-factorized layer P(w | h) = P(c(w) | h) P(w | c(w), h) (`ClassSoftmaxOutput`), whose
cost per token is O(H (C + |c(w)|)) instead of O(H V).

Training (`BPTTBatches`): the token stream is cut into B parallel streams; each batch predicts the next `block`
tokens of every stream and back-propagates through them plus `bptt` earlier steps (Mikolov's -bptt / -bptt-block:
a token at position j of the block gets j + bptt steps of BPTT); the hidden state is carried from batch to batch
(reset at each epoch start) and `clip` clips the back-propagated error element-wise.  Evaluation runs one stream
through the whole text, carrying the state across sentences.

With the class-factorized output and no dropout, training runs each batch through one fused kernel
(kernels.rnnlm_segment: forward, BPTT and every gradient in one call, no per-step graph); `fused=False` keeps the
graph of layers, the reference it is gradient-checked against.

Alignment with the n-gram models: the input before stream[0] is </s> ("a sentence just ended"), every token of the
stream is predicted (</s> included), so `token_logprobs(stream)[i]` lines up with the n-gram's (fastnn.models.mixture).
"""
import numpy as np

from fastnn import init as _init
from fastnn import kernels, nn
from fastnn._validation import check_bool, check_int, check_scalar
from fastnn.graph import Node, RowGrad
from fastnn.models.neural_lm import RecurrentLM, word_classes
from fastnn.nn import ClassSoftmaxOutput

__all__ = ["RNNLM", "ClassSoftmaxOutput", "BPTTBatches", "OutRowGrad", "word_classes", "gradcheck_cases"]


# ---- batches -----------------------------------------------------------------------------------------------------

class BPTTBatches:
    """Truncated-BPTT batches over B parallel streams (for `Trainer`).

    The stream is cut into B contiguous streams of n = len // B tokens (the rest is dropped).  Batch i predicts the
    tokens at positions [s, s + block) of every stream (s = i * block) from inputs reaching back `bptt` more steps:
    a batch is (x (L, B) inputs, y (k, B) targets, reset, carry) with L = k + min(bptt, s); the model starts from its
    carried state (zeros when reset, at the start of each epoch) and keeps the state after input row `carry` (-1:
    the starting state) for the next batch.  Inputs are the previous tokens, with </s> before the first one.
    """

    def __init__(self, stream, *, batch_size, block, bptt=0, eos_id):
        where = "BPTTBatches"
        s = np.asarray(stream)
        # the ids are cast to int64 below: a float id would be truncated to another word in silence
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise TypeError(f"{where}: 'stream' must be a 1-d array of integer word ids; got dtype {s.dtype}, shape "
                            f"{s.shape}. Use fastnn.data.lm_stream(sentences, vocab).")
        bad = np.flatnonzero(s < 0) if s.dtype.kind == "i" else ()
        if len(bad):
            raise IndexError(f"{where}: 'stream' must hold ids >= 0; got {s[bad[0]]} at position {bad[0]}.")
        eos_id = check_int(eos_id, "eos_id", where, low=0)
        self.batch_size = check_int(batch_size, "batch_size", where)
        self.block = check_int(block, "block", where)
        self.bptt = check_int(bptt, "bptt", where, low=0)
        n = len(s) // self.batch_size
        if n < 1:
            raise ValueError(f"{where}: the stream must hold at least batch_size={self.batch_size} tokens; got "
                             f"{len(s)}.")
        inp = np.concatenate([[eos_id], s[:-1]]).astype(np.int64)
        self.x = np.ascontiguousarray(inp[:n * self.batch_size].reshape(self.batch_size, n).T)
        self.y = np.ascontiguousarray(s[:n * self.batch_size].astype(np.int64).reshape(self.batch_size, n).T)
        self.n = n

    def __len__(self):
        return -(-self.n // self.block)

    def epoch(self, rng):
        return self

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"BPTTBatches: batch index must be in [0, {len(self)}); got {i}.")
        s = i * self.block
        e = min(s + self.block, self.n)
        w0 = max(0, s - self.bptt)
        nxt = max(0, e - self.bptt)                    # where the next batch's window starts
        return self.x[w0:e], self.y[s:e], i == 0, nxt - 1 - w0

    def n_examples(self, batch):
        return batch[1].size

    def __repr__(self):
        return f"BPTTBatches({self.n} x {self.batch_size} tokens, block={self.block}, bptt={self.bptt})"


# ---- the output rows' gradient, kept as factors ------------------------------------------------------------------

class OutRowGrad(RowGrad):
    """The RowGrad of the class-factorized output rows from the fused kernel (kernels.OutRows inside): the same
    rows and, on first reading of `values`, the same bits as the array the kernel would have written, but what
    training asks of it is answered without that (R, H) array:

    - sq_norm() (clipping, the trainer's norm): from the blocks' norms, summed in float64;
    - scale_(a) (clipping): kept as a factor until the values are read or the update applied;
    - adagrad_(W, A, lr=, eps=, l2=) (optim.AdaGrad): each class block's gradient is made in a tile and applied
      while in cache: one pass over the block's rows of W and of the accumulator instead of writing the gradient
      and reading it twice more (norm, update).  Gives the bits of AdaGrad on `values`.

    Anything else (SGD, adding two gradients, to_dense, clip_grad_value) reads `values`, which builds the array once.
    """

    __slots__ = ("_out", "_scale", "_made")

    def __init__(self, rows, out, n_rows):                      # no RowGrad.__init__: `values` is made on demand
        self.rows, self.n_rows = rows, n_rows
        self._out, self._scale, self._made = out, None, None

    @property
    def values(self):
        if self._made is None:
            self._made = self._out.grad(self._scale)
        return self._made

    def scale_(self, a):
        if self._made is None and self._scale is None:
            self._scale = self._out.dtype.type(a)
        else:
            self.values *= self._out.dtype.type(a)
        return self

    def sq_norm(self):
        """The squared L2 norm (a Python float)."""
        if self._made is not None:
            a = self._made.reshape(-1).astype(np.float64)
            return float(np.dot(a, a))
        s = 1.0 if self._scale is None else float(self._scale)
        return self._out.sq_norm * s * s

    def adagrad_(self, W, A, *, lr, eps, l2=0.0):
        """Lazy AdaGrad on the rows in place (see optim.AdaGrad); False (nothing done) once `values` exists: then
        the caller updates from it."""
        if self._made is not None:
            return False
        self._out.adagrad_(W, A, lr=lr, eps=eps, l2=l2, scale=self._scale)
        return True

    def __repr__(self):
        return f"OutRowGrad({len(self.rows)} of {self.n_rows} rows, dim {self._out.shape[1]})"


# ---- the model ---------------------------------------------------------------------------------------------------

class RNNLM(RecurrentLM):
    """Elman RNN language model.

    Parameters
    ----------
    vocab_size : |V|.
    hidden : H, recurrent units.  embed : E, the input embedding size (None: H).
    activation : "tanh", "sigmoid" or "relu"; init : "glorot" or "identity" (W_hh = I: the IRNN, with relu).
    classes : 0 for the full softmax, else the number of frequency classes of the factorized output (needs
        `counts`, or an explicit `word_class`).
    dropout : dropout on the embeddings and on the hidden layer below the output (Zaremba et al. 2014; 0 = none).
    clip : element-wise clip of the back-propagated error inside BPTT (Mikolov's trick; 0 = none).
    init_scale : the embeddings start as U(-init_scale, init_scale).
    eos_id : the </s> id (input before the first token).
    counts : word counts (output bias init; classes).  words : the vocabulary's words, kept for the CLI.
    fused : train the class-factorized model without dropout through kernels.rnnlm_segment (one call per batch:
        forward, BPTT and every gradient; no per-step graph).  False keeps the graph of layers (the reference the
        fused path is gradient-checked against).  Not part of the model file: it changes speed, not the model.

    The settings have no defaults here: their one home is fastnn.recipes.lm.RNNConfig, and
    `recipes.lm.build_model` makes the model a Config describes:

    >>> from fastnn.recipes.lm import RNNConfig, build_model
    >>> model = build_model(RNNConfig(classes=0), 1000)
    >>> model.hidden, model.embed, model.activation, model.init
    (100, 100, 'tanh', 'glorot')
    """

    def __init__(self, vocab_size, *, hidden, embed, activation, init, classes, dropout, clip, init_scale,
                 word_class=None, class_method="sqrt", eos_id=1, rng=0, dtype=np.float32, counts=None, words=None,
                 fused=True):
        where = "RNNLM"
        self.fused = check_bool(fused, "fused", where)
        counts = self._check_fields(where, vocab_size=vocab_size, dropout=dropout, eos_id=eos_id,
                                    init_scale=init_scale, dtype=dtype, words=words, counts=counts, classes=classes,
                                    word_class=word_class, class_method=class_method)
        self._check_sizes(where, hidden, embed)
        self.activation, self.init = activation, init
        self.clip = float(check_scalar(clip, "clip", where, low=0))
        rng = _init.as_rng(rng, where)
        self.emb = nn.Embedding(self.vocab_size, self.embed, rng=rng, dtype=dtype, scale=self.init_scale)
        self.rnn = nn.RNN(self.embed, self.hidden, rng=rng, activation=activation, init=init, dtype=dtype,
                          clip=self.clip)
        self._head(self.hidden, counts, rng)
        self.state = None                                   # (B, H) carried between training batches

    # -- state ---------------------------------------------------------------------------------------------------
    def extra_state(self):
        """The carried hidden state (for checkpoints: a resumed run continues from the same state)."""
        return {"state": None if self.state is None else self.state.copy()}

    def load_extra_state(self, st):
        self.state = None if st["state"] is None else np.array(st["state"], dtype=self._dtype)

    # -- graph ---------------------------------------------------------------------------------------------------
    def _recur(self, e, h0, state_at):
        H, h_last = self.rnn(e, h0)
        if state_at is None:
            return H, h_last
        if state_at >= 0:
            return H, H.value[state_at].copy()
        return H, (np.zeros((e.value.shape[1], self.hidden), self._dtype) if h0 is None else h0.copy())

    @property
    def trains_fused(self):
        """Whether training runs through kernels.rnnlm_segment: the class-factorized output without dropout, unless
        fused=False."""
        return bool(self.fused and self.classes and self.drop is None)

    def loss(self, batch):
        if self.training and self.trains_fused:
            x, y, carry, h0 = self._unpack(batch)
            return self._fused_loss(x, y, h0, carry)
        return super().loss(batch)

    def _fused_loss(self, x, y, h0, carry):
        """loss() in one kernel call: the gradients are computed with the loss and handed over by backward()."""
        out, rnn = self.out, self.rnn
        if h0 is None:
            h0 = np.zeros((x.shape[1], self.hidden), self._dtype)
        loss, Hs, g = kernels.rnnlm_segment(
            x, y, h0, self.emb.W.value, rnn.W_ih.value, rnn.W_hh.value, rnn.b.value, out.Wc.value, out.bc.value,
            out.W.value, out.b.value.reshape(-1), out.word_class, out.pos, out.start, activation=self.activation,
            clip=self.clip, defer_out=True)
        deferred = g.pop("W_deferred", None)
        self.state = Hs[carry + 1].copy()
        dense = ((rnn.W_ih, "W_ih"), (rnn.W_hh, "W_hh"), (rnn.b, "b"), (out.Wc, "Wc"), (out.bc, "bc"))
        sparse = ((self.emb.W, "emb"), (out.W, "W"), (out.b, "bo"))

        def backward(gr):
            c = self._dtype.type(gr)
            for p, name in dense:
                v = g[name] if c == 1 else g[name] * c
                p.add_grad(v, owned=True)
            for p, name in sparse:
                rows, v = g[name]
                if not p.trainable:
                    continue
                if v is None:                               # the output rows, kept as factors (OutRowGrad)
                    rg = OutRowGrad(rows, deferred, p.shape[0])
                    if c != 1:
                        rg.scale_(c)
                else:
                    rg = RowGrad(rows, (v if c == 1 else v * c).reshape(len(rows), -1), p.shape[0])
                p.grad = rg if p.grad is None else p.grad + rg

        return Node(np.asarray(loss, dtype=self._dtype).reshape(()), (), backward, "rnnlm_segment",
                    requires_grad=True)

    def _settings(self):
        return {"activation": self.activation, "init": self.init}


# ---- gradient checks ---------------------------------------------------------------------------------------------

def gradcheck_cases():
    """Small float64 RNN LMs: full softmax (tanh, sigmoid, IRNN relu), the class-factorized output, and a batch with
    bptt history beyond the predicted block and a carried state."""
    def case(activation="tanh", init="glorot", classes=0, bptt=0):
        def build(rng):
            V = 13
            counts = rng.integers(1, 50, V)
            m = RNNLM(V, hidden=4, embed=3, activation=activation, init=init, classes=classes, dropout=0.0, clip=0.0,
                      counts=counts, rng=rng, dtype=np.float64, init_scale=1.0)
            for name, p in m.parameters().items():
                if not p.sparse and name != "rnn.W_hh":
                    p.value[...] = rng.standard_normal(p.shape) * 0.5
            if activation == "relu":
                m.rnn.b.value[...] = 0.3 + 0.2 * rng.random(4)          # away from the kink
            stream = rng.integers(0, V, 40)
            data = BPTTBatches(stream, batch_size=3, block=4, bptt=bptt, eos_id=1)
            batch = data[2]
            state = rng.standard_normal((3, 4)) * 0.3

            def loss_fn():
                m.state = state.copy()
                return m.loss(batch)
            return loss_fn, m.parameters(), {}
        return build
    return [("rnnlm.tanh", case()), ("rnnlm.sigmoid", case("sigmoid")), ("rnnlm.irnn", case("relu", "identity")),
            ("rnnlm.classes", case(classes=4)), ("rnnlm.bptt_extra", case(bptt=3)),
            ("rnnlm.classes_bptt", case(classes=3, bptt=2))]
