"""How the noisy layers draw noise, and when. Contains TensorFlow-only code, clearly marked.

- One owner of the inference mode: a noisy layer or cell draws noise while training, and at
  inference only if built with `noise_at_inference=True`, unless the `inference_noise(draw)`
  context says otherwise for everything traced or called inside it (export's expectation and
  Monte Carlo signatures). Layers and cells ask `draws_noise`; nothing writes their attributes.
- The stream position is a variable of the layer: `NoiseStream` keeps the seed pair that the next
  draw uses in a non-trainable weight of its layer, so Keras saves and loads it with the layer's
  other weights (`.keras`, `.weights.h5`, hence `keras.callbacks.BackupAndRestore`) on every Keras
  version, and a reloaded layer draws what the saved one would have drawn next. The seed pair and
  its advance are those of `keras.random.SeedGenerator(seed)`, so the stream is Keras' own.
- Seeds per replica: under `tf.distribute.MirroredStrategy` every replica reads the same state, and
  PyTorch's `DistributedDataParallel` copies rank 0's state to every process, so a plain generator
  makes every replica draw identical noise. `NoiseStream` folds the replica's id (the process's rank
  on PyTorch) into each seed it hands out. Outside a strategy or process group (and on JAX, whose
  `keras.distribution` draws for the global batch) the id is 0.
- Noise inside a loop: a stream cannot advance inside JAX's `lax.scan` (the update would leak out
  of the trace). The caller takes one seed with `next()` before the loop, and `loop_key` folds into
  it a step count that the loop carries.
- Fast draws under XLA: `keras.random` leaves TensorFlow's generator on `alg="auto_select"`, which
  XLA on CPU compiles about 30x slower than an explicit Philox when the seed is a tensor (see
  docs/benchmarks.md). `normal` and `uniform` name Philox: eagerly the values are exactly
  `keras.random`'s (auto_select is Philox there), under XLA they are fast.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator

import keras
import numpy as np

__all__ = ["NoiseStream", "draws_noise", "inference_noise", "loop_key", "normal", "uniform"]

_REPLICA_STRIDE = 1_000_003  # a prime: replica streams start far apart in the seed space

# The dtype of a seed pair per backend: what `keras.random.SeedGenerator` uses (TensorFlow's
# stateless ops take int32/int64, JAX keys are uint32, PyTorch has no uint32), so that the values
# and their wrap-around are those of Keras' own stream.
_SEED_DTYPES = {"tensorflow": "int64", "jax": "uint32", "torch": "int32", "numpy": "uint32"}

POSITION_NAME = "noise_stream_position"
_TF_PHILOX = 1  # tf.random.Algorithm.PHILOX: `RngReadAndSkip` needs its 3-number state
_PHILOX_SKIP = 256  # how far `RngReadAndSkip` moves the Philox counter per draw

# ----------------------------------------------------------------------------------------------
# When noise is drawn

_mode = threading.local()  # per thread, as tracing happens in the thread that calls the model


def inference_noise(draw: bool) -> contextlib.AbstractContextManager[None]:
    """Within: every noisy layer and cell draws noise at inference iff `draw`.

    Overrides each layer's `noise_at_inference` for what is called or traced inside the context
    (training always draws). `keras_adaptive_acts.export` traces its expectation signature under
    `inference_noise(False)` and its Monte Carlo signature under `inference_noise(True)`; a user can
    do the same around `model(x)` to sample a model built for the expectation. A graph traced
    inside keeps the mode it was traced with.

    Example:
        >>> import numpy as np
        >>> from keras_adaptive_acts import RReLU
        >>> layer = RReLU(seed=0)
        >>> x = -np.ones((1, 4), dtype="float32")
        >>> with inference_noise(True):
        ...     sampled = keras.ops.convert_to_numpy(layer(x))
        >>> # the mean slope outside the context
        >>> bool(np.all(sampled != keras.ops.convert_to_numpy(layer(x))))
        True
    """
    if not isinstance(draw, bool):  # checked here, not on entering: the error points at the call
        raise ValueError(f"`draw` must be True or False. Received: draw={draw!r}")
    return _forced_inference_noise(draw)


@contextlib.contextmanager
def _forced_inference_noise(draw: bool) -> Iterator[None]:
    previous = getattr(_mode, "draw", None)
    _mode.draw = draw
    try:
        yield
    finally:
        _mode.draw = previous


def draws_noise(training, noise_at_inference: bool) -> bool:
    """Whether a call draws noise: in training, else as `inference_noise` or the layer's setting says."""
    if training:
        return True
    forced = getattr(_mode, "draw", None)
    return noise_at_inference if forced is None else forced


# ----------------------------------------------------------------------------------------------
# Where in the stream


def replica_id():
    """The id of the current replica: its id in its sync group under a TensorFlow distribution
    strategy, the process's rank under PyTorch's `torch.distributed` (as `DistributedDataParallel`
    runs it), else 0."""
    backend = keras.backend.backend()
    if backend == "torch":
        # DDP copies rank 0's weights, stream positions included, to every process: without the rank,
        # every process would draw rank 0's noise.
        import torch.distributed  # PyTorch-only

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank()
        return 0
    if backend != "tensorflow":
        return 0
    import tensorflow as tf  # TensorFlow-only

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return 0
    return tf.distribute.get_replica_context().replica_id_in_sync_group


class NoiseStream:
    """A layer's noise stream; its position is a non-trainable weight of the layer.

    `next()` returns the seed of the next draw and advances the position, as
    `keras.random.SeedGenerator(seed).next()` does: the seed pairs are `[seed, 0]`, `[seed, 1]`, ...
    Seeds differ between the replicas of a distribution strategy. `seed=None` picks a seed with
    Python's `random` module, as Keras does, so `keras.utils.set_random_seed` makes it reproducible.

    Calls running at once never share a seed. On TensorFlow, threads calling one `tf.function` (TF
    Serving's concurrent requests) run its ops interleaved, so a read followed by an assignment can
    hand two calls the same seed. There the position is kept as TensorFlow's Philox state
    `[256 * draws, 0, seed]` and advanced by `RngReadAndSkip`, which reads and advances it in one
    locked step (the op behind `tf.random.Generator`). JAX and PyTorch keep `SeedGenerator`'s
    `[seed, draws]`. Files always hold `[seed, draws]` (`pair()` and `set_pair()` convert), so a
    file moves between backends and is the same on every Keras version.
    """

    def __init__(self, layer: keras.layers.Layer, seed: int | None):
        if seed is None:
            seed = random.randint(1, int(1e9))
        backend = keras.backend.backend()
        self._philox = backend == "tensorflow"
        dtype = _SEED_DTYPES.get(backend, "uint32")
        initial = self._stored([seed, 0])
        self.position = layer.add_weight(
            shape=initial.shape,
            dtype=dtype,
            initializer=lambda shape, dtype=None: keras.ops.convert_to_tensor(initial, dtype=dtype),
            trainable=False,
            name=POSITION_NAME,
        )

    def next(self):
        if self._philox:
            return self._for_replica(self._read_and_skip())
        # A copy: the assignment below must not change it. Not `value * 1`, which torch.compile turns
        # into an alias of the variable: each compiled step then drew with the next step's seed.
        seed = keras.ops.copy(self.position.value)
        increment = keras.ops.convert_to_tensor(np.array([0, 1]), dtype=self.position.dtype)
        self.position.assign(keras.ops.add(seed, increment))
        return self._for_replica(seed)

    def _read_and_skip(self):
        """TensorFlow: the seed pair `[seed, draws]`, the position advanced past it, in one locked op."""
        import tensorflow as tf  # TensorFlow-only

        variable = self.position.value  # the tf.Variable (or the local copy of a replicated one)
        if isinstance(variable, tf.distribute.DistributedValues) and (
            not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context()
        ):
            # A replicated variable called outside its replicas (a call in `strategy.scope()` or after
            # it, not through `fit` or `strategy.run`): it has no one handle, and advancing the first
            # copy alone would leave the others a draw behind. One cross-replica assignment advances
            # every copy. Eager code, not a served graph: no other call runs between read and write.
            state = variable.read_value()
            variable.assign_add(tf.constant([_PHILOX_SKIP, 0, 0], variable.dtype))
        elif isinstance(variable, tf.Variable):
            # A read first, though its value is not used: it records the variable as one the traced
            # function uses (a bare `handle` does not), so a SavedModel restores it for the function;
            # without it TF Serving and `saved_model_cli` find the resource uninitialised.
            variable.read_value()
            state = tf.raw_ops.RngReadAndSkip(
                resource=variable.handle,
                alg=tf.constant(_TF_PHILOX, tf.int32),
                delta=tf.constant(1, tf.uint64),
            )
        else:  # a value inside a stateless scope (`Layer.stateless_call`): nothing shared to race on
            state = variable * 1
            self.position.assign(state + tf.constant([_PHILOX_SKIP, 0, 0], state.dtype))
        return tf.stack([state[2], state[0] // _PHILOX_SKIP])

    def _stored(self, pair) -> np.ndarray:
        """The position weight's value for the seed pair `[seed, draws]` on this backend."""
        seed, draws = (int(value) for value in pair)
        if self._philox:
            return np.array([draws * _PHILOX_SKIP, 0, seed], dtype="int64")
        return np.array([seed, draws])

    def pair(self) -> np.ndarray:
        """The seed pair of the next draw, `[seed, draws]` (int64), as files hold it."""
        value = np.asarray(keras.ops.convert_to_numpy(self.position.value)).astype("int64")
        if self._philox:
            return np.array([value[2], value[0] // _PHILOX_SKIP], dtype="int64")
        return value

    def set_pair(self, pair) -> None:
        """Moves the stream to the seed pair `[seed, draws]` (a file's value)."""
        pair = np.asarray(pair).reshape(-1)
        if pair.shape != (2,):
            raise ValueError(f"A noise-stream position is a pair [seed, draws]. Received: {pair.tolist()}")
        self.position.assign(self._stored(pair))

    def _for_replica(self, seed):
        replica = replica_id()
        if isinstance(replica, int) and replica == 0:
            return seed
        offset = keras.ops.cast(replica, seed.dtype) * _REPLICA_STRIDE
        return seed + keras.ops.stack([offset, keras.ops.zeros_like(offset)])


# ----------------------------------------------------------------------------------------------
# Drawing


def normal(shape, dtype, seed):
    """Standard normal draws, like `keras.random.normal(shape, dtype=dtype, seed=seed)`.

    `seed` is a `NoiseStream` or `keras.random.SeedGenerator` (advanced), or a key from `loop_key`.
    """
    if keras.backend.backend() != "tensorflow":
        return keras.random.normal(shape, dtype=dtype, seed=_keras_seed(seed))
    import tensorflow as tf  # TensorFlow-only

    return tf.random.stateless_normal(shape, _tf_seed(seed), dtype=dtype, alg="philox")


def uniform(shape, low, high, dtype, seed):
    """Uniform draws in [low, high), like `keras.random.uniform`; `seed` as in `normal`."""
    if keras.backend.backend() != "tensorflow":
        return keras.random.uniform(shape, minval=low, maxval=high, dtype=dtype, seed=_keras_seed(seed))
    import tensorflow as tf  # TensorFlow-only

    return tf.random.stateless_uniform(
        shape, _tf_seed(seed), minval=low, maxval=high, dtype=dtype, alg="philox"
    )


def loop_key(seed, step):
    """A key for step `step` (an int32 scalar tensor) of a loop, for `normal` and `uniform`.

    `seed` is what the stream's `next()` returned once, before the loop (a stream cannot advance
    inside JAX's `lax.scan`); folding in `step` gives every step independent noise. Taking the seed
    before the loop, not reading the stream in it and advancing after, is what keeps two calls
    running at once from drawing the same noise: each call advances the stream as it starts.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # TensorFlow-only

        step = tf.cast(step, tf.int32)
        return tf.random.experimental.stateless_fold_in(_tf_seed(seed), step, alg="philox")
    if backend == "jax":
        import jax  # JAX-only

        return jax.random.fold_in(seed.astype("uint32"), step)
    # PyTorch runs its loops eagerly: hash the values on the host into the int seed Keras takes.
    entropy = [int(value) % 2**32 for value in keras.ops.convert_to_numpy(seed)]
    entropy.append(int(keras.ops.convert_to_numpy(step)) % 2**32)
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _keras_seed(seed):
    """A seed `keras.random` takes on JAX and PyTorch, for the same values as a SeedGenerator's.

    JAX takes the seed pair itself as its key. PyTorch takes an int: Keras seeds its generator
    with the sum of the pair, so the int is that sum. Keys from `loop_key` pass through.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, NoiseStream):
        seed = seed.next()
    if keras.backend.backend() == "torch" and not isinstance(seed, int):
        first, second = (int(value) for value in keras.ops.convert_to_numpy(seed))
        return first + second
    return seed


def _tf_seed(seed):
    """A stream's next seed, or a given seed, as the int32 pair TF's stateless ops take.

    Other integer seeds are mapped into int32 as Keras maps them.
    """
    import tensorflow as tf  # TensorFlow-only

    if isinstance(seed, (NoiseStream, keras.random.SeedGenerator)):
        seed = seed.next()
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
