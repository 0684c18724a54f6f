"""The Python API used as a scikit-learn or PyTorch user would: seeds given as int / Generator / None, object
protocols (pickle, deepcopy, ==, repr), and "wrong but reasonable" inputs (NumPy scalars, bools, NaN, iterators,
read-only or Fortran-ordered arrays)."""
import numpy as np
import pytest

from fastnn.data import digits, synthetic
from fastnn.data.adding import adding
from fastnn.experiments import adding as adding_exp
from fastnn.experiments import clipping, gradients
from fastnn.experiments import digits as digits_exp
from fastnn.models.ladder import toy_batch

# ---- seeds: an int or a Generator where one stream is drawn; an int where several are derived ([seed, k]) -------

DRAWS = {"adding": lambda seed: adding(2, 4, seed)[0],
         "teacher": lambda seed: synthetic.teacher(3, seed=seed)[0],
         "toy_batch": lambda seed: toy_batch(3, 2, seed=seed)[0]}
DERIVES = {"pixel_order": lambda seed: digits.pixel_order("permuted", seed),
           "split_indices": lambda seed: digits.split_indices(10, seed)[0],
           "teacher_labels": lambda seed: synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=seed),
           "make_model": lambda seed: adding_exp.make_model("tanh", adding_exp.DEFAULTS, seed),
           "time_step": lambda seed: adding_exp.time_step(T=3, batch_size=2, hidden=2, repeats=1, seed=seed),
           "run_adding": lambda seed: adding_exp.run_adding(T=3, steps=1, models=("tanh",), hidden=2, n_test=2,
                                                            seed=seed),
           "run_adding_grid": lambda seed: adding_exp.run_adding_grid(T=3, grid=dict(lr=[0.1], clip=[1.0]),
                                                                      models=("tanh",), hidden=2, n_test=2, steps=1,
                                                                      workers=1, seed=seed),
           "run_clipping": lambda seed: clipping.run_clipping(T=3, steps=1, hidden=2, n_test=2, workers=1, seed=seed),
           "run_gradients": lambda seed: gradients.run_gradients(T=3, train_steps=1, hidden=2, n=2, n_test=2,
                                                                 seed=seed),
           "train_one": lambda seed: digits_exp.train_one("tanh", "plain", 0.1, 1.0, data={}, seed=seed),
           "run_digits": lambda seed: digits_exp.run_digits(models=("nope",), seed=seed)}


@pytest.mark.parametrize("name", sorted(DRAWS))
@pytest.mark.parametrize("seed, error", [(None, TypeError), (True, TypeError), (1.5, TypeError), ("3", TypeError),
                                         (-1, ValueError)])
def test_a_data_seed_is_an_int_or_a_generator_never_none(name, seed, error):
    # adding(2, 4, None) and teacher(3, seed=None) drew a set no one could draw again, silently (and seed=True was
    # seed 1); -1 was NumPy's "expected non-negative integer", 1.5 "SeedSequence expects int or sequence of ints"
    with pytest.raises(error, match=f"{name}: 'seed' must be an int seed( >= 0)? or a numpy.random.Generator; "
                                    f"got {seed!r}"):
        DRAWS[name](seed)
    np.testing.assert_array_equal(DRAWS[name](np.int64(3)), DRAWS[name](np.random.default_rng(3)))
    np.testing.assert_array_equal(DRAWS[name](3), DRAWS[name](3))


@pytest.mark.parametrize("name", sorted(DERIVES))
@pytest.mark.parametrize("seed, error", [(None, TypeError), (np.random.default_rng(0), TypeError), (True, TypeError),
                                         (-1, ValueError)])
def test_a_seed_that_derives_several_streams_is_an_int(name, seed, error):
    # pixel_order("permuted", None), split_indices(10, Generator) and every experiment's run_*(seed=None or a
    # Generator) failed with "object of type 'NoneType' has no len()" (NumPy, from default_rng([seed, k])); seed=True
    # ran as seed 1; -1 was "expected non-negative integer"
    says = "teacher_seed" if name == "teacher_labels" else "seed"
    with pytest.raises(error, match=f"{name}: '{says}' must be an int seed >= 0; got "):
        DERIVES[name](seed)


def test_a_numpy_int_seed_is_the_same_seed():
    np.testing.assert_array_equal(digits.pixel_order("permuted", np.int64(3)), digits.pixel_order("permuted", 3))
    np.testing.assert_array_equal(synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=np.int32(4)),
                                  synthetic.teacher_labels(np.ones((2, 50)), teacher_seed=4))
