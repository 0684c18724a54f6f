"""The training loop as users handle its objects: a Trainer pickled or copied, a dropout held in a dict of layers."""
import copy
import pickle

import numpy as np
import pytest

from fastnn import graph, nn, optim
from fastnn.train import ArrayBatches, Trainer, model_generators


class Heads(graph.Module):
    """Two heads in a dict, each with its own dropout (a layout users write; fastnn's own models use attributes)."""

    def __init__(self, rng):
        self.heads = {"a": nn.Linear(3, 2, rng=rng), "b": nn.Linear(3, 2, rng=rng)}
        self.drops = {"a": nn.Dropout(0.5, rng=np.random.default_rng(1)),
                      "b": nn.Dropout(0.5, rng=np.random.default_rng(2))}

    def config(self):                        # (a checkpointed model says how it was built)
        return {}

    def loss(self, batch):
        x, y = batch
        a, b = (nn.softmax_cross_entropy(self.heads[k](self.drops[k](graph.constant(x))), y) for k in "ab")
        return nn.add(a, b)


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    return ArrayBatches(X, (X[:, 0] > 0).astype(np.int64), batch_size=8)


def test_a_dropout_in_a_dict_of_layers_is_checkpointed_and_resumes_bit_for_bit(tmp_path):
    model = Heads(np.random.default_rng(0))
    assert set(model_generators(model)) == {"drops.a.rng", "drops.b.rng"}    # (was {}: not checkpointed)
    assert [n for n, _ in model.named_modules()] == ["", "heads.a.", "heads.b.", "drops.a.", "drops.b."]

    def run(epochs, resume=False, ck=tmp_path / "ck.npz"):
        m = Heads(np.random.default_rng(0))
        t = Trainer(m, optim.SGD(m.parameters(), lr=0.1), _data(), epochs=epochs, checkpoint=str(ck), seed=0,
                    quiet=True)
        t.fit(resume=resume)
        return m

    full = run(3, ck=tmp_path / "full.npz")
    run(1)
    resumed = run(3, resume=True)
    for name, p in full.parameters().items():
        np.testing.assert_array_equal(p.value, resumed.parameters()[name].value)


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_trainer_cannot_be_pickled_or_copied_and_says_what_to_do(how):
    model = Heads(np.random.default_rng(0))
    t = Trainer(model, optim.SGD(model.parameters(), lr=0.1), _data(), epochs=1, quiet=True)
    with pytest.raises(TypeError, match="checkpoint=PATH and call fit\\(resume=True\\)"):
        how(t)
