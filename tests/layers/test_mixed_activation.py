"""JSquaredReLU and MixedActivation."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import assert_config_round_trip, run_layer_test

from keras_adaptive_acts import JSquaredReLU, MixedActivation, NoisyHardTanh


def jsrelu(x):
    return np.maximum(x, 0) + 0.5 * np.maximum(x, 0) ** 2


X = np.random.default_rng(0).normal(size=(6, 5)).astype("float32") * 2


def test_j_squared_relu_layer():
    np.testing.assert_allclose(ops.convert_to_numpy(JSquaredReLU()(X)), jsrelu(X), rtol=1e-6)


def test_j_squared_relu_passes_the_layer_test_harness(tmp_path):
    run_layer_test(
        JSquaredReLU,
        {},
        input_shape=(8, 6),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize(
    ("start", "end", "stochastic", "trainable", "non_trainable"),
    [
        ("relu", "j_squared_relu", False, 0, 1),  # t
        # alpha, beta and p; t, c and the noise stream position
        ("competitive_relu", "noisy_hard_tanh", True, 3, 3),
    ],
    ids=["relu_to_j_squared_relu", "competitive_relu_to_noisy_hard_tanh"],
)
def test_mixed_activation_passes_the_layer_test_harness(
    start, end, stochastic, trainable, non_trainable, tmp_path
):
    run_layer_test(
        MixedActivation,
        {"start": start, "end": end, "t": 0.4},
        input_shape=(8, 6),
        stochastic=stochastic,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_mixing_formula(t):
    layer = MixedActivation("relu", "j_squared_relu", t=t)
    expected = (1 - t) * np.maximum(X, 0) + t * jsrelu(X)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(X)), expected, rtol=1e-6, atol=1e-7)
    assert [w.name for w in layer.non_trainable_weights] == ["t"] and not layer.trainable_weights


def test_at_t_one_the_output_is_exactly_the_end_activation():
    layer = MixedActivation("relu", "j_squared_relu")
    layer.build(X.shape)
    layer.t.assign(1.0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(X)), ops.convert_to_numpy(JSquaredReLU()(X)))


def test_layers_as_ends_get_the_training_flag_and_serialise():
    layer = MixedActivation(keras.layers.ReLU(), NoisyHardTanh(seed=0, p_initializer="ones"), t=1.0)
    assert not np.array_equal(ops.convert_to_numpy(layer(X, training=True)), ops.convert_to_numpy(layer(X)))
    clone = assert_config_round_trip(layer)
    assert isinstance(clone.end, NoisyHardTanh)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t": 1.5}, "t=1.5"),
        ({"t": -0.1}, "t=-0.1"),
        ({"start": "nope"}, "start='nope'"),
        ({"start": "competitve_relu"}, "did you mean 'competitive_relu'.*start='competitve_relu'"),
        ({"end": "zeroth_bias"}, "not an activation layer.*end='zeroth_bias'"),
        ({"end": 3}, "end=3"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixedActivation(**kwargs)


@pytest.mark.parametrize(
    ("start", "reference"),
    [
        ("ReLU", lambda x: np.maximum(x, 0)),  # Keras' ReLU layer, by its class's spelling
        ("tanh", np.tanh),  # any Keras activation by name
        (keras.layers.ELU, lambda x: np.where(x > 0, x, np.expm1(x))),  # a layer class
        ({"class_name": "competitive_relu", "config": {"init": "relu"}}, lambda x: np.maximum(x, 0)),
    ],
    ids=["name", "keras-function", "class", "short-config"],
)
def test_every_identifier_the_resolver_takes_is_a_start(start, reference):
    layer = MixedActivation(start, "j_squared_relu", t=0.25)
    expected = 0.75 * reference(X) + 0.25 * jsrelu(X)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(X)), expected, rtol=1e-5, atol=1e-6)
    clone = assert_config_round_trip(layer)
    np.testing.assert_allclose(ops.convert_to_numpy(clone(X)), expected, rtol=1e-5, atol=1e-6)


def test_parts_given_by_name_or_class_follow_the_blend_dtype_policy():
    layer = MixedActivation("gelu", JSquaredReLU, dtype="mixed_bfloat16")
    assert layer.start.dtype_policy.name == layer.end.dtype_policy.name == "mixed_bfloat16"
    assert isinstance(layer.start, keras.layers.Activation) and isinstance(layer.end, JSquaredReLU)
