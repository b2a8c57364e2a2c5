"""`maximum`: `keras.ops.maximum` in its inputs' dtype on every backend.

Keras' PyTorch backend casts both inputs of `ops.maximum` to `keras.backend.result_type`, which
from Keras 3.12 on maps float64 to float32 outside TensorFlow (keras-team/keras#23223; still so in
3.15.1 and keras-nightly 3.16.0.dev2026102704); JAX's and TensorFlow's keep float64. A float64
layer built on it then returns float32, rounded. This module is the one place that works around
it; `tests/test_keras_bugs.py` reproduces the bug with Keras alone and fails once Keras fixes it,
so that the workaround can go.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["maximum"]


def maximum(x, y):
    """The elementwise maximum of two floating tensors of one dtype, NaN wherever either is NaN.

    `ops.maximum` itself, except for float64 on PyTorch, where it is written as a select (which
    keeps the dtype); there, at a tie the gradient goes to `x`.
    """
    if keras.backend.backend() != "torch" or keras.backend.standardize_dtype(x.dtype) != "float64":
        return ops.maximum(x, y)
    # x where it is the larger or NaN; else y, which is then the larger or NaN (x >= NaN is false).
    return ops.where(ops.logical_or(x >= y, ops.isnan(x)), x, y)
