"""The MixedActivation layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import initializers, ops

from keras_adaptive_acts import registry
from keras_adaptive_acts.validation import check_number


@registry.register(activation=True)
class MixedActivation(keras.layers.Layer):
    """A blend that moves from one activation to another: `(1 - t) * start(x) + t * end(x)`.

    `t` is a non-trainable variable in [0, 1]: the `ActivationMixing` callback raises it from 0
    to 1 during training (the paper fine-tunes ReLU checkpoints into J-SquaredReLU this way),
    and a compiled train step sees each new value without retracing. At `t == 1` the output is
    exactly `end(x)` (for finite `start(x)`).

    Args:
        start: the activation at `t = 0`: a Keras activation name ("relu", "gelu", ...), the name
            of one of this package's layers ("j_squared_relu", ...), or a layer instance.
        end: the activation at `t = 1`, in the same forms. Default "j_squared_relu".
        t: the initial mixing weight, in [0, 1]. Default 0.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Examples:
        >>> import numpy as np
        >>> layer = MixedActivation("relu", "j_squared_relu", t=0.5)
        >>> np.asarray(layer(np.array([[-1.0, 2.0]]))).tolist()  # 0.5 * 2 + 0.5 * 4
        [[0.0, 3.0]]

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity through
        Flat Minima and Adversarial Robustness", [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    def __init__(self, start: Any = "relu", end: Any = "j_squared_relu", t: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_t = check_number("t", t, minimum=0)
        if self.initial_t > 1:
            raise ValueError(f"`t` must be in [0, 1]. Received: t={t!r}")
        self.start, self._start_spec = _resolve("start", start)
        self.end, self._end_spec = _resolve("end", end)
        self.supports_masking = True

    def build(self, input_shape):
        for part in (self.start, self.end):
            if isinstance(part, keras.layers.Layer) and not part.built:
                part.build(input_shape)
        self.t = self.add_weight(
            shape=(), name="t", initializer=initializers.Constant(self.initial_t), trainable=False
        )

    def call(self, inputs, training=False):
        x = ops.cast(inputs, self.compute_dtype)
        t = ops.cast(self.t, self.compute_dtype)
        return (1.0 - t) * self._apply(self.start, x, training) + t * self._apply(self.end, x, training)

    @staticmethod
    def _apply(part, x, training):
        if isinstance(part, keras.layers.Layer):
            return part(x, training=training)
        return part(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"start": self._start_spec, "end": self._end_spec, "t": self.initial_t})
        return config


def _resolve(name: str, spec: Any):
    """(callable or layer, its serialisable form) for a Keras activation name, a package name or a layer."""
    if isinstance(spec, keras.layers.Layer):
        return spec, keras.saving.serialize_keras_object(spec)
    if isinstance(spec, dict):
        layer = keras.saving.deserialize_keras_object(spec)
        return layer, spec
    if isinstance(spec, str):
        try:
            return keras.activations.get(spec), spec
        except ValueError:
            pass
        try:
            return registry.get(spec), spec
        except ValueError:
            pass
    raise ValueError(
        f"`{name}` must be a Keras activation name, the name of one of this package's layers, or a "
        f"layer. Received: {name}={spec!r}"
    )
