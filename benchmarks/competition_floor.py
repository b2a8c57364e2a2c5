"""The floor of CompetitiveReLU's cost: the least work any exact competition does, as a Keras layer.

Shared by `activation_speed.py` (TensorFlow and JAX on the CPU) and `device_speed.py` (JAX on the
lent GPU machine), so that both judge the op against the same floor. Backend-neutral: it imports
Keras, so the importing script chooses the backend first.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_adaptive_acts.ops.competitive_paths import masked_product_sums, sums_over_slices

__all__ = ["FLOOR", "FLOOR_PER_CHANNEL", "FloorActivation", "floor_activation"]

FLOOR = "floor: one statistic each way"
FLOOR_PER_CHANNEL = "floor: one statistic each way, axis=(1, 2)"


def floor_activation(z, scale_hint, axes=None):
    """The least an exact competition reads and writes, with the least arithmetic.

    Forward: one statistic of each slice of the input (`sum(|z|)`, as l1's denominator), then the
    output `relu(s * z)`. Backward: one statistic of the upstream gradient over the entries that
    passed (`sum(g * z)` where `s * z > 0`), then `dz`. Any exact CompetitiveReLU does at least
    this (its share needs a statistic of the input, its derivative one of the gradient); the
    constants only keep XLA from dropping the statistics as dead code. The sums and their terms
    are written as the op writes its own (`competitive_paths.sums_over_slices` and
    `masked_product_sums`), so that the floor has every layout the op found faster on this
    compiler: written with plain reductions it cost more than the op's l1 and count variants, a
    reference rather than a floor. `axes`: the slices' axes, every non-batch axis by default (per
    sample).
    """
    axes = tuple(range(1, len(z.shape))) if axes is None else axes

    @ops.custom_gradient
    def floor(z, scale_hint):
        s = 1.0 + ops.tanh(1e-9 * sums_over_slices(ops.abs(z), axes)) * scale_hint
        out = ops.relu(s * z)

        def grad(*upstream_args, upstream=None):
            g = upstream_args[0] if upstream is None else upstream
            winners = s * z > 0
            pull = 1e-9 * masked_product_sums(winners, g, z, axes)
            return ops.where(winners, g * s, 0.0) + pull * z, ops.sum(pull)

        return out, grad

    return floor(z, scale_hint)


class FloorActivation(keras.layers.Layer):
    """`floor_activation` as a layer with one trainable weight, timed like the others."""

    def __init__(self, axes=None, **kwargs):
        super().__init__(**kwargs)
        self.axes = axes

    def build(self, input_shape):
        self.scale_hint = self.add_weight(shape=(), name="scale_hint", initializer="zeros")

    def call(self, inputs):
        return floor_activation(inputs, ops.cast(self.scale_hint, inputs.dtype), self.axes)
