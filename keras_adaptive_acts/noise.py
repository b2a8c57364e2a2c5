"""How the stochastic layers draw noise. Contains TensorFlow-only code, clearly marked.

- Seeds per replica: under `tf.distribute.MirroredStrategy` every replica reads the same
  `SeedGenerator` state, so a plain generator makes every replica draw identical noise.
  `ReplicaSeedGenerator` folds the replica's id into each seed it hands out. Outside a strategy
  (and on JAX/PyTorch) the id is 0 and the stream is that of `keras.random.SeedGenerator(seed)`.
- Saved position: Keras saves no `SeedGenerator` state, so a reloaded layer would replay its noise.
  `ReplicaSeedGenerator` saves its state with the layer's weights (`.keras`, `.weights.h5`, hence
  `keras.callbacks.BackupAndRestore`), and a reloaded layer draws what the saved one would have drawn
  next. Files without the entry (written before) load as before: the stream starts from `seed`.
- Noise inside a loop: a `SeedGenerator` cannot advance inside JAX's `lax.scan` (the update would
  leak out of the trace). `loop_key` reads a generator without advancing it and folds in a step
  count that the loop carries; the caller advances the generator once, after the loop.
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
        return self._for_replica(super().next(ordered=ordered))

    def peek(self):
        """The seed `next()` would return, without advancing: readable inside `lax.scan`."""
        return self._for_replica(self.state.value * 1)

    def _for_replica(self, seed):
        replica = replica_id()
        if isinstance(replica, int) and replica == 0:
            return seed
        offset = keras.ops.cast(replica, seed.dtype) * _REPLICA_STRIDE
        return seed + keras.ops.stack([offset, keras.ops.zeros_like(offset)])


def normal(shape, dtype, seed):
    """Standard normal draws, like `keras.random.normal(shape, dtype=dtype, seed=seed)`.

    `seed` is a `keras.random.SeedGenerator` (advanced) or a key from `loop_key`.
    """
    if keras.backend.backend() != "tensorflow":
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    import tensorflow as tf  # TensorFlow-only

    return tf.random.stateless_normal(shape, _tf_seed(seed), dtype=dtype, alg="philox")


def uniform(shape, low, high, dtype, seed):
    """Uniform draws in [low, high), like `keras.random.uniform`; `seed` as in `normal`."""
    if keras.backend.backend() != "tensorflow":
        return keras.random.uniform(shape, minval=low, maxval=high, dtype=dtype, seed=seed)
    import tensorflow as tf  # TensorFlow-only

    return tf.random.stateless_uniform(
        shape, _tf_seed(seed), minval=low, maxval=high, dtype=dtype, alg="philox"
    )


def loop_key(seed_generator: ReplicaSeedGenerator, step):
    """A key for step `step` (an int32 scalar tensor) of a loop, for `normal` and `uniform`.

    The generator's next seed, read without advancing it, with `step` folded in: distinct steps
    give independent noise. Advance the generator (`next()`) once after the loop, so that the
    next loop draws afresh.
    """
    seed = seed_generator.peek()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # TensorFlow-only

        step = tf.cast(step, tf.int32)
        return tf.random.experimental.stateless_fold_in(_tf_seed(seed), step, alg="philox")
    if backend == "jax":
        import jax  # JAX-only

        return jax.random.fold_in(seed.astype("uint32"), step)
    # PyTorch runs its loops eagerly: hash the values on the host into the int seed Keras takes.
    import numpy as np

    entropy = [int(value) % 2**32 for value in keras.ops.convert_to_numpy(seed)]
    entropy.append(int(keras.ops.convert_to_numpy(step)) % 2**32)
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _tf_seed(seed):
    """A generator's next seed, or a given seed, as the int32 pair TF's stateless ops take.

    Other integer seeds are mapped into int32 as Keras maps them.
    """
    import tensorflow as tf  # TensorFlow-only

    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
