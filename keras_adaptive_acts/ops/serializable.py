"""Registration of the ops that serve as a Keras `activation=` function.

A Dense(activation=f) records `f` by its registered name when saved. Unregistered, it is recorded by
its bare name, which Keras resolves to its own function of that name where there is one: the paper's
`hard_sigmoid` would come back as Keras' different `relu6(x + 3) / 6`, with no warning.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

__all__ = ["PACKAGE", "activation_function"]

PACKAGE = "keras_adaptive_acts"  # the package name Keras files record (`registry.PACKAGE` is this one)


def activation_function(function: Callable) -> Callable:
    """Registers `function` with Keras' serialisation as `keras_adaptive_acts>{its name}`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(function)
