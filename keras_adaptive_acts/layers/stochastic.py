"""The base of the package's layers that draw noise while training (not a public layer)."""

from __future__ import annotations

import warnings

import keras
from keras import ops

from keras_adaptive_acts.layers import noise
from keras_adaptive_acts.layers.noise import NoiseStream


class StochasticLayer(keras.layers.Layer):
    """Seeded, replica-aware noise that is on in training and, on request, at inference.

    Subclasses call `self.noise_active(training)` and draw with `self.standard_normal(x)` /
    `self.uniform(x, low, high)`: noise in the compute dtype, reproducible under `seed`, different
    on every replica of a `tf.distribute` strategy. The stream's position is a weight of the layer
    (saved with it). A recurrent cell sets `loop_key` (a key from `noise.loop_key`) for the
    duration of one step: the draws then use it, and the stream is not advanced.
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
        self._noise_at_inference = noise_at_inference
        self.noise_stream = NoiseStream(self, seed)
        self.loop_key = None
        self.supports_masking = True

    @property
    def noise_at_inference(self) -> bool:
        """The constructor's setting (read-only): `inference_noise(...)` overrides it for a while."""
        return self._noise_at_inference

    def noise_active(self, training) -> bool:
        """True when this call draws noise: in training, or at inference as `noise.draws_noise` says."""
        return noise.draws_noise(training, self._noise_at_inference)

    def standard_normal(self, like):
        return noise.normal(ops.shape(like), self.compute_dtype, self._seed())

    def uniform(self, like, low, high):
        return noise.uniform(ops.shape(like), low, high, self.compute_dtype, self._seed())

    def _seed(self):
        return self.noise_stream if self.loop_key is None else self.loop_key

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_own_variables(self, store):
        # As Keras saves a layer's variables, but the position as the pair [seed, draws] that every
        # backend reads (TensorFlow keeps it in another form, see `noise.NoiseStream`).
        for index, weight in enumerate(self.weights):  # no sublayers: its own variables, Keras' order
            if weight is self.noise_stream.position:
                store[f"{index}"] = self.noise_stream.pair()
            else:
                store[f"{index}"] = weight

    def load_own_variables(self, store):
        weights = self.weights
        position = self.noise_stream.position
        if len(store.keys()) == len(weights) - 1:
            # Files written before the stream position was a weight of the layer hold one variable
            # fewer (the position was saved elsewhere, where this layer cannot read it): load the
            # others in their order and say that the stream restarts from `seed`.
            others = [weight for weight in weights if weight is not position]
            for index, weight in enumerate(others):
                weight.assign(store[f"{index}"])
            warnings.warn(
                f"The file holds no noise-stream position for the layer {self.name!r} (written by an "
                "earlier version): its noise starts again from `seed`.",
                stacklevel=2,
            )
            return
        if len(store.keys()) != len(weights):
            return super().load_own_variables(store)  # Keras' own error for a mismatched file
        for index, weight in enumerate(weights):
            if weight is position:
                self.noise_stream.set_pair(store[f"{index}"])
            else:
                weight.assign(store[f"{index}"])

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "noise_at_inference": self._noise_at_inference})
        return config
