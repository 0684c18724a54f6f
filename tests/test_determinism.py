"""The same seed gives bit-identical parameters after training, whatever fastnn's OpenMP thread count.

The sizes are large enough that the kernels really split their work at 2 threads (softmax rows over a 3,000-word
vocabulary, sparse row updates, the class-block kernel); BLAS stays on one thread so only fastnn's threads vary.
"""
import numpy as np
import pytest
import threadpoolctl

import fastnn
from fastnn import optim
from fastnn.models import nplm as N
from fastnn.models import rnnlm as R
from fastnn.recipes import lm as recipe
from fastnn.train import ArrayBatches, Trainer

V = 3000


def _stream():
    r = np.random.default_rng(0)
    s = np.minimum(r.zipf(1.2, 6000), V - 1).astype(np.int64)
    s[s < 2] = 2
    s[::40] = 1                                            # </s>
    return s


def _train(make, data, n_threads):
    fastnn.set_num_threads(n_threads)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            m = make()
            Trainer(m, optim.AdaGrad(m.parameters(), lr=0.1), data, epochs=2, quiet=True, seed=0,
                    clip_norm=5.0).fit()
    finally:
        fastnn.set_num_threads(None)
    return {k: p.value.copy() for k, p in m.parameters().items()}


@pytest.mark.parametrize("model", ["nplm", "rnn_full", "rnn_classes"])
def test_parameters_bit_identical_with_1_and_2_threads(model):
    s = _stream()
    counts = np.bincount(s, minlength=V) + 1
    if model == "nplm":
        make = (lambda: recipe.build_model(recipe.NPLMConfig(order=3, dim=16, hidden=32, direct=True), V))
        data = ArrayBatches(N.contexts(s, 3, 1), s, batch_size=256)
    else:
        classes = 0 if model == "rnn_full" else 30
        make = (lambda: recipe.build_model(recipe.RNNConfig(hidden=32, embed=16, classes=classes), V, counts=counts))
        data = R.BPTTBatches(s, batch_size=32, block=10, eos_id=1)
    one, two = _train(make, data, 1), _train(make, data, 2)
    assert one.keys() == two.keys()
    for k in one:
        assert one[k].tobytes() == two[k].tobytes(), f"{model}: {k} differs between 1 and 2 threads"
