"""RReLU: mean slope at inference, uniform random slopes in training, serialisation, bad input."""

import numpy as np
import pytest
from keras import ops
from layer_testing import run_layer_test

from keras_adaptive_acts import RReLU


def test_inference_uses_the_mean_slope():
    x = np.linspace(-5, 5, 41, dtype="float32")[None]
    out = ops.convert_to_numpy(RReLU()(x))
    np.testing.assert_allclose(out, np.where(x >= 0, x, (1 / 8 + 1 / 3) / 2 * x), rtol=1e-6)


def test_training_slopes_are_uniform_per_element():
    x = -np.ones((200, 500), dtype="float32")
    slopes = -ops.convert_to_numpy(RReLU(lower=0.1, upper=0.4, seed=0)(x, training=True)).ravel()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.4
    assert abs(slopes.mean() - 0.25) < 5 * 0.3 / np.sqrt(12) / np.sqrt(slopes.size)
    np.testing.assert_allclose(slopes.std(), 0.3 / np.sqrt(12), rtol=0.02)
    assert len(np.unique(slopes)) > slopes.size * 0.9  # one slope per element
    positive = np.abs(np.random.default_rng(0).normal(size=(4, 9))).astype("float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(RReLU(seed=0)(positive, training=True)), positive)


def test_seed_reproduces_the_slopes_and_noise_at_inference_opts_in():
    x = -np.ones((3, 7), dtype="float32")
    a = ops.convert_to_numpy(RReLU(seed=4)(x, training=True))
    b = ops.convert_to_numpy(RReLU(seed=4)(x, training=True))
    np.testing.assert_array_equal(a, b)
    monte_carlo = RReLU(seed=4, noise_at_inference=True)
    assert not np.array_equal(ops.convert_to_numpy(monte_carlo(x)), ops.convert_to_numpy(monte_carlo(x)))


def test_equal_bounds_make_a_leaky_relu():
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    out = ops.convert_to_numpy(RReLU(lower=0.2, upper=0.2, seed=0)(x, training=True))
    np.testing.assert_allclose(out, np.where(x >= 0, x, np.float32(0.2) * x), rtol=1e-6)


def test_passes_the_layer_test_harness(tmp_path):
    result = run_layer_test(
        RReLU,
        {"lower": 0.05, "upper": 0.5, "seed": 3, "name": "rrelu"},
        input_shape=(8, 6),
        stochastic=True,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=1,  # the noise stream position
        supports_masking=True,
        tmp_path=tmp_path,
    )
    for restored in (result.clone, result.loaded_layer):
        assert (restored.lower, restored.upper, restored.seed) == (0.05, 0.5, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lower": 0.5, "upper": 0.1}, "lower=0.5, upper=0.1"),
        ({"lower": -0.1}, "lower=-0.1"),
        ({"upper": float("nan")}, "upper=nan"),
        ({"lower": float("inf")}, "lower=inf"),
        ({"seed": "0"}, "seed='0'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RReLU(**kwargs)


def test_non_finite_inputs():
    out = ops.convert_to_numpy(RReLU()(np.array([[np.nan, np.inf, -np.inf]], dtype="float32")))
    assert np.isnan(out[0, 0]) and out[0, 1] == np.inf and out[0, 2] == -np.inf
