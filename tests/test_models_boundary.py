"""The neural LMs' public methods given what a user gives them: contexts of the wrong width or dtype, ids out of
range, a chunk of 0 or -1.  Errors name the model's method, never a kernel (gather_rows) or a layer (nn.linear); no
call returns uninitialised memory."""
import numpy as np
import pytest

from fastnn.recipes.lm import build_model, config_for


@pytest.fixture(scope="module")
def nplm():
    return build_model(config_for("nplm", order=3, dim=4, hidden=5), 10)


@pytest.mark.parametrize("ctx, err, msg", [([[1, 12]], IndexError, r"'contexts' must be in \[0, 10\); got 12"),
                                           ([[1, -1]], IndexError, r"'contexts' must be in \[0, 10\); got -1"),
                                           ([[1.0, 2.0]], TypeError, "'contexts' must have an integer dtype"),
                                           ([["a", "b"]], TypeError, "'contexts' must have an integer dtype"),
                                           ([[1, 2, 3]], ValueError, r"'contexts' must have shape \(B, 2\)"),
                                           ([1, 2], ValueError, r"'contexts' must have shape \(B, 2\)")])
def test_nplm_predict_names_itself(nplm, ctx, err, msg):
    with pytest.raises(err, match=f"^NPLM.predict: {msg}"):
        nplm.predict(ctx)


def test_nplm_predict_takes_lists_and_any_integer_dtype(nplm):
    ref = nplm.predict(np.array([[1, 2]]))
    for ctx in ([[1, 2]], np.array([[1, 2]], np.int32), np.array([[1, 2]], np.uint8)):
        np.testing.assert_array_equal(nplm.predict(ctx), ref)
    assert nplm.predict(np.zeros((0, 2), int)).shape == (0, 10)


def test_nplm_loss_names_its_targets(nplm):
    with pytest.raises(IndexError, match=r"^NPLM.loss: 'targets' must be in \[0, 10\); got 30"):
        nplm.loss(([[1, 2]], [30]))
    with pytest.raises(IndexError, match=r"^NPLM.loss: 'contexts' must be in \[0, 10\)"):
        nplm.loss(([[1, 20]], [3]))


@pytest.mark.parametrize("arch", ["nplm", "rnn", "lstm"])
@pytest.mark.parametrize("chunk, err", [(0, ValueError), (-1, ValueError), (2.5, TypeError)])
def test_token_logprobs_chunk_is_checked(arch, chunk, err):
    # chunk=-1 returned np.empty's contents (e.g. 5e-324) as log-probabilities
    model = build_model(config_for(arch, hidden=5, **({"order": 3, "dim": 4} if arch == "nplm" else {"classes": 0})),
                        10)
    with pytest.raises(err, match=r"token_logprobs: 'chunk' must be an integer >= 1"):
        model.token_logprobs([1, 2, 3], chunk=chunk)
