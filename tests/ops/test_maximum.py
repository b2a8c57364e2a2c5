"""`keras_adaptive_acts.ops.maximum`: `ops.maximum` that keeps float64 on PyTorch too."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_adaptive_acts.ops.maximum import maximum

X = np.array([1.0 + 2.0**-40, -3.0, np.nan, 2.0, -np.inf, 0.5], dtype="float64")
Y = np.array([0.5, -4.0, 1.0, np.nan, -np.inf, 0.5], dtype="float64")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_the_maximum_is_numpys_in_the_inputs_dtype(dtype):
    x, y = X.astype(dtype), Y.astype(dtype)
    result = maximum(ops.convert_to_tensor(x, dtype), ops.convert_to_tensor(y, dtype))
    assert keras.backend.standardize_dtype(result.dtype) == dtype
    # NaN wherever either input is NaN, as np.maximum; 1 + 2**-40 kept in float64.
    np.testing.assert_array_equal(ops.convert_to_numpy(result), np.maximum(x, y))


def test_it_broadcasts_as_ops_maximum():
    x = ops.convert_to_tensor(np.array([[1.0, -2.0], [3.0, -4.0]]), "float64")
    floor = ops.convert_to_tensor(np.array(0.0), "float64")
    np.testing.assert_array_equal(ops.convert_to_numpy(maximum(x, floor)), [[1.0, 0.0], [3.0, 0.0]])
