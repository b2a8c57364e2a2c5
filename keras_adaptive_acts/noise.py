"""How the stochastic layers draw noise. Contains TensorFlow-only code, clearly marked.

- Seeds per replica: under `tf.distribute.MirroredStrategy` every replica reads the same
  `SeedGenerator` state, so a plain generator makes every replica draw identical noise.
  `ReplicaSeedGenerator` folds the replica's id into each seed it hands out. Outside a strategy
  (and on JAX/PyTorch) the id is 0 and the stream is that of `keras.random.SeedGenerator(seed)`.
- Saved position: Keras saves no `SeedGenerator` state, so a reloaded layer would replay its noise.
  `ReplicaSeedGenerator` saves its state with the layer's weights (`.keras`, `.weights.h5`, hence
  `keras.callbacks.BackupAndRestore`), and a reloaded layer draws what the saved one would have drawn
  next. Files without the entry (written before) load as before: the stream starts from `seed`.
- Fast draws under XLA: `keras.random` leaves TensorFlow's generator on `alg="auto_select"`, which
  XLA on CPU compiles about 30x slower than an explicit Philox when the seed is a tensor (see
  docs/benchmarks.md). `normal` and `uniform` name Philox: eagerly the values are exactly
  `keras.random`'s (auto_select is Philox there), under XLA they are fast.
"""

from __future__ import annotations

import keras

_REPLICA_STRIDE = 1_000_003  # a prime: replica streams start far apart in the seed space

try:  # the base of what Keras' saving library walks into; private, so optional
    from keras.src.saving.keras_saveable import KerasSaveable as _Saveable
except ImportError:  # pragma: no cover - a Keras without it: the position is not saved
    _Saveable = object


def replica_id():
    """The id of the current replica in its sync group: 0 outside a TensorFlow distribution strategy."""
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf  # TensorFlow-only

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return 0
    return tf.distribute.get_replica_context().replica_id_in_sync_group


class ReplicaSeedGenerator(keras.random.SeedGenerator, _Saveable):
    """A `keras.random.SeedGenerator` whose seeds differ between the replicas of a strategy.

    Its state, the position in the noise stream, is saved and loaded with the owning layer's weights.
    """

    __reduce__ = object.__reduce__  # pickling stays a plain SeedGenerator's (KerasSaveable's saves a model)

    def _obj_type(self):
        return "Operation"  # one of the types Keras' saving accepts; it only picks attributes to skip

    def save_own_variables(self, store):
        store["state"] = keras.ops.convert_to_numpy(self.state.value)

    def load_own_variables(self, store):
        if "state" in store:  # absent from files written before the state was saved
            self.state.assign(keras.ops.convert_to_tensor(store["state"], dtype=self.state.dtype))

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        replica = replica_id()
        if isinstance(replica, int) and replica == 0:
            return seed
        offset = keras.ops.cast(replica, seed.dtype) * _REPLICA_STRIDE
        return seed + keras.ops.stack([offset, keras.ops.zeros_like(offset)])


def normal(shape, dtype, seed_generator: keras.random.SeedGenerator):
    """Standard normal draws, like `keras.random.normal(shape, dtype=dtype, seed=seed_generator)`."""
    if keras.backend.backend() != "tensorflow":
        return keras.random.normal(shape, dtype=dtype, seed=seed_generator)
    import tensorflow as tf  # TensorFlow-only

    return tf.random.stateless_normal(shape, _tf_seed(seed_generator), dtype=dtype, alg="philox")


def uniform(shape, low, high, dtype, seed_generator: keras.random.SeedGenerator):
    """Uniform draws in [low, high), like `keras.random.uniform` with this seed generator."""
    if keras.backend.backend() != "tensorflow":
        return keras.random.uniform(shape, minval=low, maxval=high, dtype=dtype, seed=seed_generator)
    import tensorflow as tf  # TensorFlow-only

    seed = _tf_seed(seed_generator)
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, dtype=dtype, alg="philox")


def _tf_seed(seed_generator):
    """The generator's next seed as the int32 pair TF's stateless ops take, mapped as Keras maps it."""
    import tensorflow as tf  # TensorFlow-only

    seed = seed_generator.next()
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
