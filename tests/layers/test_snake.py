"""Snake: the op and the layer against NumPy float64, finite differences, the harness, names."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import float64_tolerance, layer_vjp, numeric_vjp, run_layer_test, vjp

import keras_adaptive_acts as kaa
from keras_adaptive_acts.ops import snake
from keras_adaptive_acts.registry import activation_layer

X = np.random.default_rng(0).normal(size=(4, 6)) * 3


def numpy_snake(x, frequency=1.0):
    return x + (1.0 - np.cos(2.0 * frequency * x)) / (2.0 * frequency)  # tfa's documented form


@pytest.mark.parametrize("frequency", [1.0, 0.3, 2.5, -0.7])
def test_op_matches_numpy(frequency):
    np.testing.assert_allclose(
        ops.convert_to_numpy(snake(X, frequency)),
        numpy_snake(X, frequency),
        **float64_tolerance(1e-10, 1e-12),
    )


def test_op_matches_the_tfa_example_and_default():
    # tfa.activations.snake's documented example (frequency defaults to 1).
    out = ops.convert_to_numpy(snake(np.array([-1.0, 0.0, 1.0], "float32")))
    np.testing.assert_allclose(out, [-0.29192656, 0.0, 1.7080734], rtol=1e-6)


def test_op_gradients_match_finite_differences():
    upstream = np.random.default_rng(1).normal(size=X.shape)
    _, (dx, dfrequency) = vjp(snake, [X, np.float64(0.8)], upstream)
    expected_dx, expected_df = numeric_vjp(numpy_snake, [X, np.float64(0.8)], upstream)
    np.testing.assert_allclose(dx, expected_dx, **float64_tolerance(1e-6, 1e-9))
    np.testing.assert_allclose(dfrequency, expected_df, **float64_tolerance(1e-6, 1e-9))


def test_zero_frequency_is_the_identity_with_the_limit_gradient():
    out, (dx, dfrequency) = vjp(snake, [X, np.float64(0.0)], np.ones_like(X))
    np.testing.assert_array_equal(out, X)
    np.testing.assert_allclose(dx, np.ones_like(X))
    np.testing.assert_allclose(dfrequency, np.sum(X**2), **float64_tolerance(1e-10))  # d/df of f * x**2


def test_non_finite_inputs():
    out = ops.convert_to_numpy(snake(np.array([np.nan, np.inf, -np.inf, 1e30], "float32")))
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and np.isfinite(out[3])


def test_layer_frequency_gradient_matches_finite_differences():
    upstream = np.random.default_rng(2).normal(size=X.shape)
    layer = kaa.Snake(frequency=1.3, dtype="float64")
    out, dx, grads = layer_vjp(layer, X, upstream)
    frequency = ops.convert_to_numpy(layer.frequency)
    np.testing.assert_allclose(frequency, 1.3, rtol=1e-7)
    np.testing.assert_allclose(out, numpy_snake(X, frequency), **float64_tolerance(1e-10, 1e-12))
    expected_dx, expected_df = numeric_vjp(numpy_snake, [X, frequency], upstream)
    np.testing.assert_allclose(dx, expected_dx, **float64_tolerance(1e-6, 1e-9))
    np.testing.assert_allclose(grads[layer.frequency.path], expected_df, **float64_tolerance(1e-6, 1e-9))


def test_passes_the_layer_test_harness(tmp_path):
    result = run_layer_test(
        kaa.Snake,
        {"frequency": 0.5, "frequency_constraint": "non_neg"},
        input_shape=(8, 5),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )
    for restored in (result.clone, result.loaded_layer):
        assert type(restored.frequency_constraint).__name__ == "NonNeg" and restored.initial_frequency == 0.5
    assert result.layer.frequency.shape == ()


def test_defaults_name_and_mixed_precision():
    layer = activation_layer("snake")
    assert type(layer) is kaa.Snake
    layer.build((None, 3))
    assert float(ops.convert_to_numpy(layer.frequency)) == 1.0  # tfa's default initializer, "ones"
    mixed = kaa.Snake(dtype="mixed_float16")
    out = mixed(np.ones((2, 3), "float32"))
    assert mixed.frequency.dtype == "float32" and keras.backend.standardize_dtype(out.dtype) == "float16"
    frozen = activation_layer("snake", trainable=False)
    frozen.build((None, 3))
    assert frozen.trainable_weights == [] and len(frozen.weights) == 1


def test_an_initializer_in_place_of_the_frequency():
    layer = kaa.Snake(frequency_initializer=keras.initializers.RandomUniform(2.0, 3.0, seed=1))
    layer.build((None, 2))
    assert 2.0 <= float(ops.convert_to_numpy(layer.frequency)) <= 3.0
    clone = kaa.Snake.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frequency": float("nan")}, "frequency=nan"),
        ({"frequency": "1"}, "frequency='1'"),
        ({"frequency": 2.0, "frequency_initializer": "ones"}, "not both"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kaa.Snake(**kwargs)
