"""The Snake layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.exact_numbers import exact_initializer
from keras_adaptive_acts.ops.addons import snake
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_number


@register(activation=True)
class Snake(keras.layers.Layer):
    """Snake, a periodic activation with a trainable frequency (one scalar per layer).

    ```
    snake(x) = x + sin(f * x)**2 / f  =  x + (1 - cos(2 * f * x)) / (2 * f),   f = frequency
    ```

    Monotonic (its derivative `1 + sin(2 * frequency * x)` is never negative), with a periodic
    part that lets a network extrapolate periodic functions. The Keras 3 replacement of
    `tfa.layers.Snake` (the same weight and default initializer); with `trainable=False` it is
    `tfa.activations.snake` at the initial frequency.
    `activation_layer("snake")` and the package's tools know it as `"snake"`. The plain function
    is `keras_adaptive_acts.ops.snake` (`frequency = 0` gives its limit, `x`). `+-inf` gives `+-inf`;
    NaN stays NaN.

    Args:
        frequency: the initial frequency, a finite number (0 is the identity, its limit). Default 1.
        frequency_initializer: initializer of the scalar `frequency`, in place of `frequency` (for a
            random start); None (the default) starts at `frequency`, as tfa's default `"ones"` did.
        frequency_regularizer: optional regularizer of `frequency`.
        frequency_constraint: optional constraint of `frequency` (e.g. `"non_neg"`).
        **kwargs (Any): base layer keyword arguments, such as `name`, `dtype` and `trainable`.

    Call arguments:
        inputs: a floating tensor of any shape (integers are cast to the compute dtype).

    Examples:
        >>> import numpy as np
        >>> layer = Snake(frequency=2.0)
        >>> np.round(keras.ops.convert_to_numpy(layer(np.array([[-1.0, 0.0, 1.0]]))), 4).tolist()
        [[-0.5866, 0.0, 1.4134]]
        >>> [weight.name for weight in layer.weights]
        ['frequency']

    Reference:
        L. Ziyin, T. Hartwig, M. Ueda, "Neural Networks Fail to Learn Periodic Functions and How to
        Fix It", [arXiv:2006.08195](https://arxiv.org/abs/2006.08195).
    """

    def __init__(
        self,
        frequency: float = 1.0,
        frequency_initializer: str | dict | initializers.Initializer | None = None,
        frequency_regularizer: str | dict | regularizers.Regularizer | None = None,
        frequency_constraint: str | dict | constraints.Constraint | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.initial_frequency = check_number("frequency", frequency)
        if frequency_initializer is not None and self.initial_frequency != 1.0:
            raise ValueError(
                "Pass `frequency` or `frequency_initializer`, not both. Received: "
                f"frequency={frequency!r}, frequency_initializer={frequency_initializer!r}"
            )
        self.frequency_initializer = initializers.get(frequency_initializer)
        self.frequency_regularizer = regularizers.get(frequency_regularizer)
        self.frequency_constraint = constraints.get(frequency_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        self.frequency = self.add_weight(
            shape=(),
            name="frequency",
            initializer=exact_initializer(self.frequency_initializer or self.initial_frequency),
            regularizer=self.frequency_regularizer,
            constraint=self.frequency_constraint,
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return snake(x, ops.cast(self.frequency, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frequency": self.initial_frequency,
                "frequency_initializer": initializers.serialize(self.frequency_initializer),
                "frequency_regularizer": regularizers.serialize(self.frequency_regularizer),
                "frequency_constraint": constraints.serialize(self.frequency_constraint),
            }
        )
        return config
