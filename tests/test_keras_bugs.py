"""Reproductions, with Keras alone, of the Keras bugs pinned in `tests/keras_bugs.py`."""

import keras
import numpy as np
import pytest
from keras_bugs import (
    MEAN_ROUNDS_FLOAT64,
    NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE,
    TORCH_DENSE_ROUNDS_FLOAT64,
    TORCH_MAXIMUM_ROUNDS_FLOAT64,
    rebuilt_model_keeps_recorded_training_false,
)


@NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE
def test_a_model_rebuilt_from_an_older_config_follows_the_training_argument():
    # On Keras 3.10 to 3.15 the pin does not run its probe: this is the check that they are not
    # affected. From 3.16 on, it reports (as an expected failure) whether this Keras is.
    assert not rebuilt_model_keeps_recorded_training_false(), (
        f"Keras {keras.__version__}: Dropout(0.5) rebuilt from a config that recorded training=False "
        "dropped nothing when the model was called with training=True"
    )


def float64_tensor(values):
    return keras.ops.convert_to_tensor(np.array(values, dtype="float64"), "float64")


@TORCH_MAXIMUM_ROUNDS_FLOAT64
@pytest.mark.parametrize("name", ["maximum", "minimum", "divide_no_nan"])
def test_the_maximum_minimum_and_quotient_of_two_float64_tensors_are_float64(name):
    # 1 + 2**-40 is not a float32: rounded, it becomes 1.
    x = float64_tensor([1.0 + 2.0**-40, -3.0])
    y = float64_tensor([1.0 + 2.0**-40, -3.0])
    result = getattr(keras.ops, name)(x, y)
    assert keras.backend.standardize_dtype(result.dtype) == "float64"
    expected = {
        "maximum": [1.0 + 2.0**-40, -3.0],
        "minimum": [1.0 + 2.0**-40, -3.0],
        "divide_no_nan": [1.0, 1.0],
    }
    assert keras.ops.convert_to_numpy(result).tolist() == expected[name]
    if name == "divide_no_nan":  # the quotient 1 is a float32 too: the dividend must keep its digit
        third = keras.ops.divide_no_nan(x, float64_tensor([3.0, 1.0]))
        assert keras.ops.convert_to_numpy(third)[0] == (1.0 + 2.0**-40) / 3.0


@MEAN_ROUNDS_FLOAT64
def test_the_mean_of_float64_tensors_keeps_float64_precision():
    # The mean of [1 + 2**-40, 1 + 2**-40] is 1 + 2**-40; a float32 sum gives 1.
    values = float64_tensor([1.0 + 2.0**-40, 1.0 + 2.0**-40])
    result = keras.ops.mean(values)
    assert keras.backend.standardize_dtype(result.dtype) == "float64"
    assert float(keras.ops.convert_to_numpy(result)) == 1.0 + 2.0**-40


@TORCH_DENSE_ROUNDS_FLOAT64
def test_a_float64_dense_layer_computes_in_float64():
    # 1 + 2**-40 is not a float32; neither is the product, 2**-40 + 2**-80 (float32 keeps 24 bits).
    layer = keras.layers.Dense(2, use_bias=False, dtype="float64")
    layer.build((None, 2))
    layer.set_weights([np.array([[1.0, 2.0**-40], [1.0, 2.0**-40]])])
    x = keras.ops.convert_to_tensor(np.array([[1.0 + 2.0**-40, -1.0]]), "float64")
    result = layer(x)
    assert keras.backend.standardize_dtype(result.dtype) == "float64"
    assert keras.ops.convert_to_numpy(result).tolist() == [[2.0**-40, 2.0**-80]]
