"""The core API's boundary: bad input or a diverging run gets a clear exception and keeps the work done."""
import numpy as np
import pytest

from fastnn import io, optim
from fastnn.graph import Node
from fastnn.train import ArrayBatches, Trainer
from tests.conftest import run_cli


# ---- divergence keeps the best epoch, as Ctrl-C does --------------------------------------------------------------

def _diverging_trainer(nan_from_step, **kw):
    """A Tiny model whose loss turns NaN from step `nan_from_step` (5 steps an epoch), validated by its loss."""
    from tests.test_train import Tiny, make_data
    X, y, idx = make_data(100)
    model = Tiny(vocab=20)
    trainer = Trainer(model, optim.SGD(model.parameters(), 0.1), ArrayBatches(X, y, idx, batch_size=20), epochs=4,
                      validate=lambda m: float(m.loss((X, y, idx)).value), mode="min", quiet=True,
                      loss_fn=lambda m, b: (Node(np.asarray(np.nan), (), None, "nan")
                                            if trainer.state.step + 1 >= nan_from_step else m.loss(b)), **kw)
    return model, trainer


def test_divergence_restores_the_best_epoch_and_says_so():
    # a NaN in epoch 3 left the model with the parameters of that step and lost epochs 1-2's best, silently
    model, trainer = _diverging_trainer(nan_from_step=13)
    seen = []
    trainer.callback = lambda t, rec: seen.append({n: p.value.copy() for n, p in t.model.parameters().items()})
    with pytest.raises(FloatingPointError, match=r"step 13 \(epoch 3, batch 3\).*The model holds the parameters of "
                                                 r"its best epoch \(2\)\.") as e:
        trainer.fit()
    assert e.value.best_epoch == 2 and e.value.trainer is trainer
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p.value, seen[1][name])      # the end of epoch 2, bit for bit


def test_divergence_before_any_epoch_and_skip_are_unchanged():
    model, trainer = _diverging_trainer(nan_from_step=3)
    with pytest.raises(FloatingPointError) as e:
        trainer.fit()
    assert e.value.best_epoch is None and "best epoch" not in str(e.value)
    model, trainer = _diverging_trainer(nan_from_step=13, on_nonfinite="skip")
    history = trainer.fit()
    assert trainer.skipped == 8 and len(history) == 4


def test_divergence_message_names_the_clip_option_for_each_caller(capsys, tmp_path):
    # "clip gradients (clip_norm=)" reached the command line in Python's words
    model, trainer = _diverging_trainer(nan_from_step=1)
    with pytest.raises(FloatingPointError, match=r"clip gradients \(clip_norm=5\)"):
        trainer.fit()
    model, trainer = _diverging_trainer(nan_from_step=1, clip_norm=1.0)
    with pytest.raises(FloatingPointError, match=r"lower clip_norm=1.0"):
        trainer.fit()
    (tmp_path / "t.txt").write_text("the dog runs fast\na cat sees the dog\n" * 40)
    rc, out, err = run_cli(capsys, "lm", "train", "--arch", "rnn", "--train", tmp_path / "t.txt", "--dev",
                           tmp_path / "t.txt", "--out", tmp_path / "m.npz", "--lr", "1e38", "--epochs", "2",
                           "--quiet", "--hidden", "8", "--embed", "8", "--min-count", "1")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "--clip-norm" in err and "clip_norm" not in err and "--on-nonfinite skip" in err, err
    assert not (tmp_path / "m.npz").exists()          # no epoch finished: nothing to keep


def test_cli_writes_the_best_epoch_of_a_diverged_run(capsys, tmp_path, monkeypatch):
    # `fastnn tagger train` without --checkpoint that diverged in epoch 2 lost epoch 1's model
    from fastnn.models.tagger import WindowTagger
    (tmp_path / "a.conll").write_text("the DT\ndog NN\nruns VBZ\n\na DT\ncat NN\nsees VBZ\n\n" * 10)
    epochs_done, loss, end_epoch = [0], WindowTagger.loss, Trainer._end_epoch

    def counted(self):
        end_epoch(self)
        epochs_done[0] += 1

    def diverges_in_epoch_2(self, batch):
        return Node(np.asarray(np.inf), (), None, "inf") if epochs_done[0] else loss(self, batch)
    monkeypatch.setattr(Trainer, "_end_epoch", counted)
    monkeypatch.setattr(WindowTagger, "loss", diverges_in_epoch_2)
    out = tmp_path / "m.npz"
    rc, _, err = run_cli(capsys, "tagger", "train", "--train", tmp_path / "a.conll", "--dev", tmp_path / "a.conll",
                         "--task", "pos=1", "--out", out, "--epochs", "3", "--batch-size", "20", "--quiet")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "stopped: Trainer: the loss (inf) must be finite" in err and "epoch 2" in err, err
    assert f"The model of its best epoch (1) was written to {out}." in err, err
    model = io.load_model(str(out))
    assert isinstance(model, WindowTagger) and all(np.isfinite(p.value).all() for p in model.parameters().values())

