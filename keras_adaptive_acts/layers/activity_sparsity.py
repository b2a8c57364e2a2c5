"""The ActivitySparsity layer."""

from __future__ import annotations

import keras

from keras_adaptive_acts.registry import register
from keras_adaptive_acts.regularizers import ActivityPenalty


@register
class ActivitySparsity(keras.layers.Layer):
    """Adds a sparsity penalty on the activations passing through; returns them unchanged.

    The layer form of the package's regularizers: place it after any activation, e.g.
    `Dense(256) -> ReLU() -> ActivitySparsity(HoyerSquare(1e-4))`. It adds exactly
    `regularizer.penalty(inputs)` to the model's losses, whatever the Keras version, in training
    and in evaluation alike (as `activity_regularizer` does).

    Args:
        regularizer: an `ActivationL1`, `HoyerSquare` or `KLSparsity` instance, or its config.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Examples:
        >>> import numpy as np
        >>> from keras_adaptive_acts.regularizers import ActivationL1
        >>> layer = ActivitySparsity(ActivationL1(0.1))
        >>> out = layer(np.array([[1.0, -2.0]]))
        >>> [round(float(v), 4) for v in layer.losses]
        [0.3]
    """

    def __init__(self, regularizer: ActivityPenalty | dict, **kwargs):
        super().__init__(**kwargs)
        if isinstance(regularizer, dict):
            regularizer = keras.saving.deserialize_keras_object(regularizer)
        if not isinstance(regularizer, ActivityPenalty):
            raise ValueError(
                "`regularizer` must be one of the package's activity regularizers (ActivationL1, "
                f"HoyerSquare, KLSparsity). Received: regularizer={regularizer!r}"
            )
        self.regularizer = regularizer
        self.supports_masking = True

    def call(self, inputs):
        self.add_loss(self.regularizer.penalty(inputs))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["regularizer"] = keras.saving.serialize_keras_object(self.regularizer)
        return config
