"""`keras_adaptive_acts.ops.dtype_preserving`: Keras ops that keep float64 on every backend.

The reference is NumPy, in the inputs' dtype. 1 + 2**-40 is not a float32 number: a result computed
in float32 (Keras' `ops.maximum`, `minimum`, `divide_no_nan` on PyTorch, `ops.mean` on PyTorch and
JAX; tests/keras_bugs.py) loses it.
"""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import vjp

from keras_adaptive_acts.ops.dtype_preserving import divide_no_nan, maximum, mean, minimum

X = np.array([1.0 + 2.0**-40, -3.0, np.nan, 2.0, -np.inf, 0.5, 7.0], dtype="float64")
Y = np.array([0.5, -4.0, 1.0, np.nan, -np.inf, 0.5, 0.0], dtype="float64")
DTYPES = ["float16", "float32", "float64"]


def tensor(values, dtype):
    return ops.convert_to_tensor(np.asarray(values, dtype), dtype)


def check(result, expected, dtype):
    assert keras.backend.standardize_dtype(result.dtype) == dtype
    np.testing.assert_array_equal(ops.convert_to_numpy(result), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("function", "reference"), [(maximum, np.maximum), (minimum, np.minimum)])
def test_the_maximum_and_minimum_are_numpys_in_the_inputs_dtype(function, reference, dtype):
    x, y = X.astype(dtype), Y.astype(dtype)
    # NaN wherever either input is NaN, as NumPy; 1 + 2**-40 kept in float64.
    check(function(tensor(x, dtype), tensor(y, dtype)), reference(x, y), dtype)
    # A Python number as the second argument, as `ops.maximum` takes it.
    check(function(tensor(x, dtype), 0.75), reference(x, np.asarray(0.75, dtype)), dtype)


def test_the_maximum_broadcasts_as_ops_maximum():
    x = tensor([[1.0, -2.0], [3.0, -4.0]], "float64")
    floor = tensor(0.0, "float64")
    np.testing.assert_array_equal(ops.convert_to_numpy(maximum(x, floor)), [[1.0, 0.0], [3.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_divide_no_nan_is_the_quotient_and_zero_where_the_divisor_is_zero(dtype):
    x = np.array([1.0 + 2.0**-40, 1.0, np.nan, np.inf, 0.0, 6.0], dtype)
    y = np.array([3.0, 0.0, 0.0, 0.0, 0.0, -2.0], dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(y == 0, np.zeros_like(x), x / y)
    check(divide_no_nan(tensor(x, dtype), tensor(y, dtype)), expected, dtype)


def test_divide_no_nan_sends_no_nan_into_the_gradient_where_the_divisor_is_zero():
    x, y, upstream = np.array([2.0, 1.0]), np.array([4.0, 0.0]), np.ones(2)
    _, (gradient, _) = vjp(divide_no_nan, [x, y], upstream)
    np.testing.assert_array_equal(gradient, [0.25, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("axis", "keepdims"), [(None, False), (1, True), ((0, 2), False), (-1, True)])
def test_the_mean_is_numpys_in_the_inputs_dtype(axis, keepdims, dtype):
    values = np.random.default_rng(0).normal(1e4, 1.0, size=(3, 4, 5)).astype(dtype)
    values[0, 0, 0] += 2.0**-30  # a digit that only a float64 sum keeps
    expected = np.mean(values.astype("float64"), axis=axis, keepdims=keepdims)
    result = mean(tensor(values, dtype), axis=axis, keepdims=keepdims)
    assert keras.backend.standardize_dtype(result.dtype) == dtype
    # float64: to its rounding (a sum of 60 numbers near 1e4); float32: Keras' own op, to float32's.
    rtol = 1e-15 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(ops.convert_to_numpy(result), expected, rtol=rtol)
