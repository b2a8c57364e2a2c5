"""JSquaredReLU and MixedActivation."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import assert_config_round_trip

from keras_adaptive_acts import JSquaredReLU, MixedActivation, NoisyHardTanh


def jsrelu(x):
    return np.maximum(x, 0) + 0.5 * np.maximum(x, 0) ** 2


X = np.random.default_rng(0).normal(size=(6, 5)).astype("float32") * 2


def test_j_squared_relu_layer():
    np.testing.assert_allclose(ops.convert_to_numpy(JSquaredReLU()(X)), jsrelu(X), rtol=1e-6)
    out = JSquaredReLU(dtype="mixed_bfloat16")(X)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


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
        ({"end": 3}, "end=3"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixedActivation(**kwargs)
