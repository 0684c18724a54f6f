"""The simplification ladder (fastnn.models.ladder) and `fastnn overfit`."""
import json

import numpy as np
import pytest

from fastnn.cli import main
from fastnn.gradcheck import all_cases, run_case
from fastnn.models.ladder import RUNGS, Ladder, gradcheck_cases, toy_batch
from fastnn.train import overfit


def test_each_rung_adds_one_piece():
    names = [sorted(Ladder(r).trainable()) for r in range(1, 7)]
    assert names[0] == ["out.W"]                                         # softmax on fixed vectors
    assert names[1] == ["embed.W", "out.W"]                              # + word vectors
    assert names[2] == ["embed.W", "layers.0.W", "out.W"]                # + hidden layer
    assert set(names[3]) - set(names[2]) == {"layers.0.b", "out.b"}      # + biases
    assert set(names[4]) - set(names[3]) == {"layers.1.W", "layers.1.b"}  # + second layer
    assert set(names[5]) - set(names[4]) == {"out2.W", "out2.b"}         # + second softmax
    assert Ladder("bias").rung == 4 and repr(Ladder(6)) == "Ladder(6: two_softmaxes)"
    for bad in (0, 7, "three", True):
        with pytest.raises(ValueError, match="'rung' must be 1..6"):
            Ladder(bad)


def test_ladder_cases_pass_and_are_listed():
    names = [n for n, _ in all_cases() if n.startswith("ladder.")]
    assert names == [f"ladder.{i}_{r}" for i, r in enumerate(RUNGS, 1)]
    for name, build in gradcheck_cases():
        assert run_case(build).ok, name


def test_ladder_case_catches_a_broken_backward(monkeypatch):
    """A wrong gradient in one piece (the bias of the hidden layer, rung 4) fails that rung's check."""
    from fastnn.nn import functional as F
    real = F.tanh

    def broken_tanh(a):
        out = real(a)
        fn = out.backward_fn

        def backward(g):
            fn(g * 1.01)
        out.backward_fn = backward
        return out
    build = dict(gradcheck_cases())["ladder.4_bias"]
    monkeypatch.setattr("fastnn.models.ladder.nn.tanh", broken_tanh)
    assert not run_case(build).ok


@pytest.mark.parametrize("rung", range(1, 7))
def test_every_rung_overfits_a_few_examples(rung):
    model = Ladder(rung, rng=0)
    res = overfit(model, toy_batch(8, rung), steps=1000, threshold=0.01)
    assert res.reached and res.final_loss < 0.01 < res.initial_loss


def test_cli_overfit_exit_codes(capsys):
    assert main(["overfit", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rung"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(r["reached"] for r in rows)
    assert main(["overfit", "--rung", "hidden", "--steps", "3"]) == 1      # too few steps: does not overfit
    assert "rung 3 hidden" in capsys.readouterr().out
    assert main(["overfit", "--rung", "0"]) == 2
    err = capsys.readouterr().err
    assert "--rung must be 1-6" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, says", [(["--rung", "1", "softmax"], "--rung softmax: rung 1 is given twice"),
                                        (["--seed", "-1"], "--seed must be >= 0; got -1")])
def test_cli_overfit_refuses_a_rung_twice_and_names_the_seed(capsys, argv, says):
    """--rung 1 softmax trained and printed rung 1 twice; --seed -1 was the ladder's "'rng' must be an int seed"."""
    assert main(["overfit", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and says in err and len(err.strip().splitlines()) == 1, err


def test_toy_batch_windows_are_distinct():
    idx, y = toy_batch(8, 3)
    assert len({tuple(r) for r in idx}) == 8 and y.shape == (8,)
    assert toy_batch(5, 6)[1].shape == (5, 2) and np.all(toy_batch(5, 6)[1] < 4)
