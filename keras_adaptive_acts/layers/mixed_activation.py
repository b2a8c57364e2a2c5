"""The MixedActivation layer."""

from __future__ import annotations

import copy
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
    and a compiled train step sees each new value without retracing. At `t == 0` the output is
    exactly `start(x)` and at `t == 1` exactly `end(x)`, even where the other activation
    overflows (`0 * inf` would be NaN). Parts named by a string follow the layer's dtype policy.

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
        self.start, start_spec = _resolve("start", start, self.dtype_policy)
        self.end, end_spec = _resolve("end", end, self.dtype_policy)
        self._specs = _Untracked({"start": start_spec, "end": end_spec})
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
        start = self._apply(self.start, x, training)
        end = self._apply(self.end, x, training)
        blend = (1.0 - t) * start + t * end
        return ops.where(t == 0, start, ops.where(t == 1, end, blend))

    @staticmethod
    def _apply(part, x, training):
        if isinstance(part, keras.layers.Layer):
            # A layer instance may have another dtype policy than the blend.
            return ops.cast(part(x, training=training), x.dtype)
        return part(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({**copy.deepcopy(self._specs.value), "t": self.initial_t})
        return config


class _Untracked:
    """Holds a value out of Keras' attribute tracking, which would turn dicts into TrackedDicts
    that refer to the layer (a config holding one cannot be deep-copied)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _resolve(name: str, spec: Any, dtype_policy):
    """(callable or layer, its serialisable form) for a Keras activation name, a package name or a layer.

    A package layer given by name follows `dtype_policy`, the blend's.
    """
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
            part = registry.get(spec)
        except ValueError:
            pass
        else:
            if isinstance(part, keras.layers.Layer):
                part = type(part)(dtype=dtype_policy)
            return part, spec
    raise ValueError(
        f"`{name}` must be a Keras activation name, the name of one of this package's layers, or a "
        f"layer. Received: {name}={spec!r}"
    )
