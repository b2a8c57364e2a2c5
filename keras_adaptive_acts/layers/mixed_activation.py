"""The MixedActivation layer."""

from __future__ import annotations

import copy
from typing import Any

import keras
from keras import ops

from keras_adaptive_acts import registry
from keras_adaptive_acts.exact_numbers import exact_initializer
from keras_adaptive_acts.validation import check_number


@registry.register(activation=True)
class MixedActivation(keras.layers.Layer):
    """A blend that moves from one activation to another: `(1 - t) * start(x) + t * end(x)`.

    `t` is a non-trainable variable in [0, 1]: the `ActivationMixing` callback raises it from 0
    to 1 during training (the paper fine-tunes ReLU checkpoints into J-SquaredReLU this way),
    and a compiled train step sees each new value without retracing. At `t == 0` the output is
    exactly `start(x)` and at `t == 1` exactly `end(x)`, even where the other activation
    overflows (`0 * inf` would be NaN). Parts given by a name or a class follow the layer's dtype
    policy.

    Args:
        start: the activation at `t = 0`, in any form `keras_adaptive_acts.registry.activation_layer`
            accepts: a Keras activation name ("relu", "gelu", ...), the name of one of this package's
            activations ("j_squared_relu", ...), a layer class, a layer instance or a config dict.
        end: the activation at `t = 1`, in the same forms. Default "j_squared_relu".
        t: the initial mixing weight, in [0, 1]. Default 0.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Examples:
        >>> import numpy as np
        >>> layer = MixedActivation("relu", "j_squared_relu", t=0.5)
        >>> keras.ops.convert_to_numpy(layer(np.array([[-1.0, 2.0]]))).tolist()  # 0.5 * 2 + 0.5 * 4
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
        # The policy's name, not the object: a layer whose config Keras records from its constructor's
        # arguments (JSquaredReLU, ELU) cannot serialise a policy object.
        self.start, start_spec = _resolve("start", start, self.dtype_policy.name)
        self.end, end_spec = _resolve("end", end, self.dtype_policy.name)
        self._specs = _Untracked({"start": start_spec, "end": end_spec})
        self.supports_masking = True

    def build(self, input_shape):
        for part in (self.start, self.end):
            if not part.built:
                part.build(input_shape)
        self.t = self.add_weight(
            shape=(), name="t", initializer=exact_initializer(self.initial_t), trainable=False
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
        # A layer instance may have another dtype policy than the blend.
        return ops.cast(part(x, training=training), x.dtype)

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


def _resolve(argument: str, spec: Any, dtype_policy: str) -> tuple[keras.layers.Layer, Any]:
    """(layer, its serialisable form) for an activation identifier (see `registry.activation_layer`).

    A layer made from a name or a class follows `dtype_policy`, the blend's; a name and a config dict
    are stored as given, a class or an instance as the layer's config.
    """
    if isinstance(spec, dict):
        # Deserialised as given. A short form's unknown name is a ValueError with the known names;
        # Keras' own error (TypeError) tells of a full config's class it cannot locate.
        return registry.activation_layer(spec), spec
    makes_a_layer = isinstance(spec, str) or (isinstance(spec, type) and issubclass(spec, keras.layers.Layer))
    try:
        layer = registry.activation_layer(spec, **({"dtype": dtype_policy} if makes_a_layer else {}))
    except ValueError as error:
        raise ValueError(
            f"`{argument}` must be a Keras activation name, the name of one of this package's layers, "
            f"or a layer (or its class or config). {error} Received: {argument}={spec!r}"
        ) from None
    return layer, spec if isinstance(spec, str) else keras.saving.serialize_keras_object(layer)
