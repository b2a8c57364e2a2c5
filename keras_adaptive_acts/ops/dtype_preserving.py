"""Keras ops that keep float64 on every backend: `maximum`, `minimum`, `divide_no_nan`, `mean`.

Keras' `result_type` maps float64 to float32 outside TensorFlow from Keras 3.12 on (still so in
3.15.1 and keras-nightly 3.16.0.dev2026102704), and some ops compute in that type:
- on PyTorch, `ops.maximum`, `ops.minimum` and `ops.divide_no_nan` return float32
  (keras-team/keras#23223), and `ops.mean` sums in float32 and casts back, so its float64 result
  carries float32's precision;
- on JAX (with 64-bit types enabled), `ops.mean` does the same; the other three keep float64.

A float64 layer built on them returns rounded values, with no error. This module is the one place
that works around it: for float64 inputs outside TensorFlow each function is written with ops that
keep the dtype (a select, a division, a sum), elsewhere it is Keras' op itself. `tests/keras_bugs.py`
pins each bug with a reproduction by Keras alone, which fails once Keras fixes it, so that the
workaround can go. Other float64 roundings that this package leaves to Keras (`matmul` on PyTorch,
hence `Dense` and the recurrent cells; `tanh` on JAX) are listed in docs/guides/backends.md.
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["divide_no_nan", "maximum", "mean", "minimum"]


def _keeps_float64(x) -> bool:
    """Whether Keras' own op is exact for `x`: any dtype but float64, or float64 on TensorFlow."""
    return keras.backend.backend() == "tensorflow" or keras.backend.standardize_dtype(x.dtype) != "float64"


def _like(x, y):
    """`y` (a tensor or a Python number) as a tensor of `x`'s dtype."""
    return ops.cast(y, x.dtype) if hasattr(y, "dtype") else ops.convert_to_tensor(y, x.dtype)


def maximum(x, y):
    """The elementwise maximum of a floating tensor `x` and `y` (a tensor of its dtype or a number),
    NaN wherever either is NaN, in `x`'s dtype.

    `ops.maximum` itself, except for float64 outside TensorFlow, where it is a select; there, at a tie
    the gradient goes to `x`.
    """
    if _keeps_float64(x):
        return ops.maximum(x, y)
    y = _like(x, y)
    # x where it is the larger or NaN; else y, which is then the larger or NaN (x >= NaN is false).
    return ops.where(ops.logical_or(x >= y, ops.isnan(x)), x, y)


def minimum(x, y):
    """The elementwise minimum, as `maximum` is the maximum (NaN wherever either is NaN)."""
    if _keeps_float64(x):
        return ops.minimum(x, y)
    y = _like(x, y)
    return ops.where(ops.logical_or(x <= y, ops.isnan(x)), x, y)


def divide_no_nan(x, y):
    """`x / y`, and 0 wherever `y` is 0 (whatever `x` is), in `x`'s dtype: `ops.divide_no_nan`."""
    if _keeps_float64(x):
        return ops.divide_no_nan(x, y)
    y = _like(x, y)
    zero = y == 0
    quotient = x / ops.where(zero, ops.ones_like(y), y)  # no 0 / 0 in the branch not taken: its gradient
    return ops.where(zero, ops.zeros_like(quotient), quotient)


def mean(x, axis=None, keepdims=False):
    """The mean of a floating tensor over `axis` (an int, a tuple, or None for all), as `ops.mean`.

    Outside TensorFlow, float64 is summed in float64 and divided by the number of entries.
    """
    if _keeps_float64(x):
        return ops.mean(x, axis=axis, keepdims=keepdims)
    axes = range(len(x.shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    count = math.prod(x.shape[a] for a in axes)  # static: JAX and PyTorch shapes are known here
    return ops.sum(x, axis=axis, keepdims=keepdims) / ops.convert_to_tensor(count, x.dtype)
