"""The base of the package's layers that draw noise while training (not a public layer)."""

from __future__ import annotations

import keras
from keras import ops

from keras_adaptive_acts import noise
from keras_adaptive_acts.noise import ReplicaSeedGenerator


class StochasticLayer(keras.layers.Layer):
    """Seeded, replica-aware noise that is on in training and, on request, at inference.

    Subclasses call `self.noise_active(training)` and draw with `self.standard_normal(x)` /
    `self.uniform(x, low, high)`: noise in the compute dtype, reproducible under `seed`, different
    on every replica of a `tf.distribute` strategy. A recurrent cell sets `loop_key` (a key from
    `noise.loop_key`) for the duration of one step: the draws then use it, and the generator is
    not advanced.
    """

    def __init__(self, seed: int | None = None, noise_at_inference: bool = False, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
        if not isinstance(noise_at_inference, bool):
            value = noise_at_inference
            raise ValueError(
                f"`noise_at_inference` must be True or False. Received: noise_at_inference={value!r}"
            )
        self.seed = seed
        self.noise_at_inference = noise_at_inference
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.loop_key = None
        self.supports_masking = True

    def noise_active(self, training) -> bool:
        """True when this call draws noise: in training, or at inference if `noise_at_inference`."""
        return bool(training) or self.noise_at_inference

    def standard_normal(self, like):
        return noise.normal(ops.shape(like), self.compute_dtype, self._seed())

    def uniform(self, like, low, high):
        return noise.uniform(ops.shape(like), low, high, self.compute_dtype, self._seed())

    def _seed(self):
        return self.seed_generator if self.loop_key is None else self.loop_key

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "noise_at_inference": self.noise_at_inference})
        return config
