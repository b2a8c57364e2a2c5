"""Initial values given as Python numbers, stored exactly in float64 weights on every backend.

TensorFlow turns a Python float into a float32 tensor before any cast (`keras.ops.cast`,
`keras.ops.convert_to_tensor` without a dtype, Keras' `Constant` initializer): a float64 tensor or
weight made from it holds the float32 rounding of the number. CompetitiveReLU's preset
`beta = atanh(1/2)` then sits 1e-8 off the point where the layer is ReLU, and it is no longer ReLU to
the last bit. A NumPy float64 converts exactly and is rounded once, to the nearest value of the
target dtype, as a Python float is for float32: float32 and mixed precision are unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["exact_initializer"]


def exact_initializer(initializer: Any) -> Any:
    """What to pass to `add_weight` for `initializer` (a number, or any Keras initializer).

    A Python number (not a bool), or a `Constant` holding one, becomes a `Constant` of a NumPy
    float64; anything else is returned as it is. Use it in `build` only: a layer's config keeps its
    initializer as given, in plain Python numbers.
    """
    value = initializer.value if type(initializer) is keras.initializers.Constant else initializer
    if isinstance(value, int | float) and not isinstance(value, bool):
        return keras.initializers.Constant(np.float64(value))
    return initializer
