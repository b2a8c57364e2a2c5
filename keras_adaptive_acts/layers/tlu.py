"""The TLU layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.exact_numbers import exact_initializer
from keras_adaptive_acts.ops.addons import tlu
from keras_adaptive_acts.registry import register


def _check_axis(axis: Any) -> int | tuple[int, ...]:
    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if is_int(axis):
        return axis
    ints = isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis)
    if ints and axis and len(set(axis)) == len(axis):
        return tuple(axis)
    raise ValueError(f"`axis` must be an int or a non-empty list of distinct ints. Received: axis={axis!r}")


@register(activation=True)
class TLU(keras.layers.Layer):
    """TLU, the thresholded linear unit: a ReLU with a learned threshold per channel.

    ```
    plain:   y = max(x, tau)
    affine:  y = max(x, alpha * x + tau)      # TLU-affine
    ```

    The activation that follows Filter Response Normalization in its paper, where `tau` (and
    `alpha`) are learned per channel. Both start at zero, where the layer is a ReLU. The Keras 3
    replacement of `tfa.layers.TLU`, with its arguments; `activation_layer("tlu")` and the
    package's tools know it as `"tlu"`. tfa's layer learned a threshold for every entry of
    `input_shape[1:]`; pass `axis=[1, ..., rank - 1]` for that. The plain function is
    `keras_adaptive_acts.ops.tlu`. NaN stays NaN; `+-inf` gives the limit, never NaN.

    Args:
        affine: whether to learn the slope `alpha` too (TLU-affine). Default False.
        axis: the axis, or list of axes, with a parameter per entry; the others share them. Default
            -1 (the channels of a channels-last input). The batch axis (0) cannot be one.
        tau_initializer: initializer of `tau`. Default `"zeros"`.
        tau_regularizer: optional regularizer of `tau`.
        tau_constraint: optional constraint of `tau`.
        alpha_initializer: initializer of `alpha` (affine only). Default `"zeros"`.
        alpha_regularizer: optional regularizer of `alpha` (affine only).
        alpha_constraint: optional constraint of `alpha` (affine only).
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a floating tensor of rank >= 2 (integers are cast to the compute dtype).

    Examples:
        >>> import numpy as np
        >>> layer = TLU(tau_initializer=keras.initializers.Constant(-1.0))
        >>> keras.ops.convert_to_numpy(layer(np.array([[-3.0, -0.5, 2.0]]))).tolist()
        [[-1.0, -0.5, 2.0]]
        >>> layer = TLU(affine=True)
        >>> _ = layer(np.zeros((2, 4, 3)))  # channels last: 3 channels
        >>> [(weight.name, tuple(weight.shape)) for weight in layer.weights]
        [('tau', (3,)), ('alpha', (3,))]

    Reference:
        S. Singh, S. Krishnan, "Filter Response Normalization Layer: Eliminating Batch Dependence in
        the Training of Deep Neural Networks", [arXiv:1911.09737](https://arxiv.org/abs/1911.09737).
    """

    def __init__(
        self,
        affine: bool = False,
        axis: int | Sequence[int] = -1,
        tau_initializer: str | dict | initializers.Initializer = "zeros",
        tau_regularizer: str | dict | regularizers.Regularizer | None = None,
        tau_constraint: str | dict | constraints.Constraint | None = None,
        alpha_initializer: str | dict | initializers.Initializer = "zeros",
        alpha_regularizer: str | dict | regularizers.Regularizer | None = None,
        alpha_constraint: str | dict | constraints.Constraint | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(affine, bool):
            raise ValueError(f"`affine` must be True or False. Received: affine={affine!r}")
        self.affine = affine
        self.axis = _check_axis(axis)
        self.tau_initializer = initializers.get(tau_initializer)
        self.tau_regularizer = regularizers.get(tau_regularizer)
        self.tau_constraint = constraints.get(tau_constraint)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        self.alpha = None
        self.supports_masking = True

    def _axes(self, rank: int) -> list[int]:
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        if rank < 2 or any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) < len(axes):
            raise ValueError(
                f"`axis` is out of range, or repeats an axis, for inputs of rank {rank} (rank >= 2). "
                f"Received: axis={self.axis!r}"
            )
        axes = sorted(a % rank for a in axes)
        if axes[0] == 0:
            raise ValueError(f"`axis` cannot include the batch axis 0. Received: axis={self.axis!r}")
        return axes

    def build(self, input_shape):
        rank = len(input_shape)
        axes = self._axes(rank)
        if any(input_shape[a] is None for a in axes):
            raise ValueError(
                f"The axes with parameters need a known size. Received: input_shape={input_shape}, "
                f"axis={self.axis!r}"
            )
        shape = tuple(input_shape[a] for a in axes)
        # The parameters broadcast over the other axes.
        self._broadcast_shape = tuple(input_shape[a] if a in axes else 1 for a in range(rank))
        # As Keras' PReLU: the parameters' shape holds for this rank and these sizes only (another
        # rank would broadcast against it into a wrong shape).
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={a: input_shape[a] for a in axes})
        self.tau = self.add_weight(
            shape=shape,
            name="tau",
            initializer=exact_initializer(self.tau_initializer),
            regularizer=self.tau_regularizer,
            constraint=self.tau_constraint,
        )
        if self.affine:
            self.alpha = self.add_weight(
                shape=shape,
                name="alpha",
                initializer=exact_initializer(self.alpha_initializer),
                regularizer=self.alpha_regularizer,
                constraint=self.alpha_constraint,
            )

    def _parameter(self, weight, dtype):
        return ops.reshape(ops.cast(weight, dtype), self._broadcast_shape)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        tau = self._parameter(self.tau, x.dtype)
        alpha = self._parameter(self.alpha, x.dtype) if self.affine else None
        return tlu(x, tau, alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "affine": self.affine,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
                "tau_initializer": initializers.serialize(self.tau_initializer),
                "tau_regularizer": regularizers.serialize(self.tau_regularizer),
                "tau_constraint": constraints.serialize(self.tau_constraint),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
            }
        )
        return config
