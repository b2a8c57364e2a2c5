"""One process of tests/test_distribution.py: `python distribution_worker.py MODE OUT_DIR [EXIT_AT]`.

Each mode writes OUT_DIR/result.json (and checkpoints beside it):

- `mirrored`: two logical CPU devices. The deterministic model with every layer trained by `fit` on one
  device and under `MirroredStrategy`; checkpoints; noise per replica; a noisy layer called outside
  the replicas; `BackupAndRestore` in process.
- `worker`: one worker of a `MultiWorkerMirroredStrategy` (TF_CONFIG from the environment), trained by
  a custom loop: Keras 3.15's `fit` fails under this strategy (`fit_error` records how).
- `guide`: runs the MirroredStrategy example of docs/guides/distribution.md, and keeps what it prints.
- `backup`: the noisy model trained by `fit` with `BackupAndRestore`. With EXIT_AT, the process ends
  (`os._exit(17)`) in the middle of that epoch, as a preemption would. Without, it trains the model
  uninterrupted (the reference), then rewinds it to its initial state and resumes from the backup.

TensorFlow is imported inside the functions: pytest imports this module on every backend.
"""

import contextlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from every_layer_model import CLASSES, FEATURES, STEPS, functional_model

import keras_adaptive_acts as kaa

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "distribution.md"
ROWS, BATCH, EPOCHS = 32, 8, 3  # 4 steps an epoch; each of 2 replicas gets 4 rows of a global batch of 8
START = time.monotonic()


def progress(message):
    """A line on stderr with the seconds since the start (and of CPU): the test shows it on failure."""
    elapsed, cpu = time.monotonic() - START, time.process_time()
    print(f"[{elapsed:6.1f} s, CPU {cpu:6.1f} s] {message}", file=sys.stderr, flush=True)


def build(deterministic=True, weights=None):
    """The compiled model with every layer; `weights` (a `get_weights()` list) makes every copy start alike.

    Deterministic by default: each layer's noise is off by its own arguments (`c=0`, `lower == upper`),
    so a replica computes on its rows what one device computes on them.
    """
    model = functional_model(deterministic=deterministic)
    if weights is not None:
        model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def initial_weights(deterministic=True):
    keras.utils.set_random_seed(0)
    return build(deterministic).get_weights()


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, STEPS, FEATURES)).astype("float32")
    return x, rng.integers(0, CLASSES, size=ROWS)


def noisy_layers():
    """Each noisy layer alone, for a per-layer check of the noise on each replica."""
    return {
        "NoisyHardTanh": kaa.NoisyHardTanh(seed=5, p_initializer="ones"),
        "NoisyHardSigmoid": kaa.NoisyHardSigmoid(seed=6, p_initializer="ones"),
        "RReLU": kaa.RReLU(seed=7),
        "NoisyLSTMCell": keras.layers.RNN(kaa.NoisyLSTMCell(4, seed=8)),
        "NoisyGRUCell": keras.layers.RNN(kaa.NoisyGRUCell(4, seed=9)),
        "control: RReLU with Keras' SeedGenerator": PlainSeedRReLU(seed=7),
    }


class PlainSeedRReLU(kaa.RReLU):
    """The control: RReLU drawing with Keras' own SeedGenerator, whose state the replicas share."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, inputs, training=False):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if not training:
            return super().call(inputs, training=False)
        shape, dtype = keras.ops.shape(x), self.compute_dtype
        slopes = keras.random.uniform(shape, self.lower, self.upper, dtype=dtype, seed=self.seed_generator)
        return kaa.ops.rrelu(x, slopes)


# The variables that hold a noise stream's position: the package's layers keep it in a weight of
# this name; Keras' SeedGenerator (the control) in its state variable.
POSITION_VARIABLES = ("noise_stream_position", "seed_generator_state")


def seed_states(model):
    """The positions of the noise streams of the model, one [seed, draws] pair per stream.

    TensorFlow keeps the package's positions as Philox's `[256 * draws, 0, seed]`.
    """
    pairs = []
    for variable in model.variables:
        if any(name in variable.path for name in POSITION_VARIABLES):
            value = np.asarray(variable).astype("int64")
            pairs.append([int(value[2]), int(value[0] // 256)] if value.shape == (3,) else value.tolist())
    return pairs


def as_lists(arrays):
    return [np.asarray(a).tolist() for a in arrays]


class Recorder(keras.callbacks.Callback):
    """Records the running loss after every step and the epochs begun."""

    def __init__(self):
        super().__init__()
        self.losses, self.epochs = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


class Interrupt(keras.callbacks.Callback):
    """Stops training after the second step of `epoch`: `os._exit` (a killed process) or an exception."""

    def __init__(self, epoch, hard):
        super().__init__()
        self.epoch, self.hard, self.current = epoch, hard, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            progress(f"interrupted in epoch {self.epoch}")
            if self.hard:
                os._exit(17)
            raise RuntimeError("interrupted")


class EventLog(keras.callbacks.Callback):
    """Appends each epoch's begin and end, with the noise stream positions, to a JSON-lines file."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def write(self, **record):
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")

    def on_epoch_begin(self, epoch, logs=None):
        self.write(event="begin", epoch=epoch, seeds=seed_states(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.write(event="end", epoch=epoch, seeds=seed_states(self.model))


def fit(model, epochs=EPOCHS, callbacks=()):
    recorder = Recorder()
    x, y = data()
    model.fit(
        x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[*callbacks, recorder]
    )
    return recorder


def snapshot(model):
    """Every variable of the model and of its optimizer (built now), for `rewind`: a fresh model's
    state without a fresh model, whose train step would be traced again (seconds per trace)."""
    model.optimizer.build(model.trainable_variables)
    variables = model.variables + model.optimizer.variables
    return variables, [np.asarray(v) for v in variables]


def rewind(saved):
    for variable, value in zip(*saved, strict=True):
        variable.assign(value)


def replica_outputs(strategy, layer, x):
    """`layer(x, training=True)` on each replica of this process, every replica given the same `x`."""
    import tensorflow as tf

    out = strategy.run(lambda v: layer(v, training=True), args=(tf.constant(x),))  # eager: no tracing
    return [np.asarray(t).tolist() for t in strategy.experimental_local_results(out)]


def noise_on_replicas(strategy, x):
    """The noisy model's and each noisy layer's output on every replica of this process."""
    with strategy.scope():
        noisy = build(deterministic=False, weights=initial_weights(deterministic=False))
        layers = noisy_layers()
    outputs = {"model": replica_outputs(strategy, noisy, x)}
    for name, layer in layers.items():
        outputs[name] = replica_outputs(strategy, layer, 3.0 * x)  # saturating inputs: the noise shows
    return outputs


def cross_replica_calls(strategy, x):
    """A noisy layer built in the strategy's scope, called outside `strategy.run`: once in the scope,
    once after it. Its two outputs, what one device draws from the same seed, and the position of
    each replica's copy of its stream afterwards."""
    with strategy.scope():
        layer = kaa.RReLU(seed=7)
        outputs = [np.asarray(layer(x, training=True)).tolist()]
    outputs.append(np.asarray(layer(x, training=True)).tolist())
    one_device = kaa.RReLU(seed=7)
    expected = [np.asarray(one_device(x, training=True)).tolist() for _ in range(2)]
    (position,) = [v for v in layer.weights if "noise_stream_position" in v.path]
    copies = [np.asarray(copy).astype("int64") for copy in position.value.values]  # one per replica
    return {
        "outputs": outputs,
        "one_device": expected,
        "positions": [[int(state[2]), int(state[0] // 256)] for state in copies],
    }


def mirrored(out_dir):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    start = initial_weights()
    single = build(weights=start)
    result["single"] = {"losses": fit(single).losses, "weights": as_lists(single.get_weights())}
    progress("trained on one device")
    with strategy.scope():
        model = build(weights=start)
        initial = snapshot(model)
    result["mirrored"] = {"losses": fit(model).losses, "weights": as_lists(model.get_weights())}
    progress("trained under MirroredStrategy")

    # Checkpoints written under the strategy, reloaded under it (the test reloads them on one device).
    x_test = data()[0][:5]
    model.save_weights(os.path.join(out_dir, "mirrored.weights.h5"))
    model.save(os.path.join(out_dir, "mirrored.keras"))
    result.update(seeds=seed_states(model), predictions=np.asarray(model(x_test)).tolist())
    with strategy.scope():
        from_weights = build()
        from_weights.optimizer.build(from_weights.trainable_variables)  # to load its state too
        from_weights.load_weights(os.path.join(out_dir, "mirrored.weights.h5"))
        from_file = keras.saving.load_model(os.path.join(out_dir, "mirrored.keras"))
    result["reloaded"] = [
        {
            "weights": as_lists(m.get_weights()),
            "seeds": seed_states(m),
            "predictions": np.asarray(m(x_test)).tolist(),
        }
        for m in (from_weights, from_file)
    ]
    result["deterministic_on_replicas"] = replica_outputs(strategy, model, x_test)
    result["noise"] = noise_on_replicas(strategy, x_test)
    result["cross_replica"] = cross_replica_calls(strategy, 3.0 * x_test)
    progress("checkpoints reloaded, noise drawn")

    # BackupAndRestore: interrupted (an exception) in epoch 1, resumed from the backup by the model
    # rewound to its initial state, as a new process would build it.
    backup_dir = os.path.join(out_dir, "backup")
    rewind(initial)
    try:
        fit(model, callbacks=[keras.callbacks.BackupAndRestore(backup_dir), Interrupt(1, hard=False)])
        interrupted = False
    except RuntimeError:
        interrupted = True
    rewind(initial)
    recorder = fit(model, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)])
    progress("resumed by BackupAndRestore")
    result["backup"] = {
        "interrupted": interrupted,
        "epochs": recorder.epochs,
        "losses": recorder.losses,
        "weights": as_lists(model.get_weights()),
        "seeds": seed_states(model),
    }
    return result


def train_loop(strategy, model, epochs=EPOCHS):
    """A custom training loop: `fit`'s step run by `strategy.run`. Returns each global batch's loss."""
    import tensorflow as tf

    def step(x, y):  # on each replica, its share of the global batch
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            # scaled by 1 / replicas: the replicas' losses add up to the global batch's loss
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        gradients = tape.gradient(loss, model.trainable_variables)
        # under a strategy, apply_gradients sums the gradients of the replicas
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def distributed_step(x, y):
        return strategy.reduce("SUM", strategy.run(step, args=(x, y)), axis=None)

    # Endless, for a fixed number of steps: at the end of a finite dataset a worker sometimes sat idle
    # for 20 to 100 s.
    dataset = tf.data.Dataset.from_tensor_slices(data()).batch(BATCH, drop_remainder=True).repeat()
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    return [float(distributed_step(*next(batches))) for _ in range(epochs * ROWS // BATCH)]


def fit_error(strategy):
    """What `fit` of a plain Dense model raises under `strategy`, or None."""
    with strategy.scope():
        dense = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
        dense.compile(optimizer="sgd", loss="mse")
    try:
        dense.fit(np.ones((BATCH, FEATURES), "float32"), np.ones((BATCH, 1), "float32"), verbose=0)
    except ValueError as error:
        return str(error).splitlines()[0]
    return None


def worker(out_dir):
    """One worker of a MultiWorkerMirroredStrategy: TF_CONFIG names the cluster and this task."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    chief = json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0
    result = {"replicas": strategy.num_replicas_in_sync, "fit_error": fit_error(strategy)}
    start = initial_weights()
    with strategy.scope():
        model = build(weights=start)
    result["losses"] = train_loop(strategy, model)
    result.update(weights=as_lists(model.get_weights()), seeds=seed_states(model))
    progress("trained under MultiWorkerMirroredStrategy")
    x_test = data()[0][:5]
    result["noise"] = noise_on_replicas(strategy, x_test)
    if chief:  # the chief writes the checkpoints
        model.save_weights(os.path.join(out_dir, "chief.weights.h5"))
        model.save(os.path.join(out_dir, "chief.keras"))
        result["predictions"] = np.asarray(model(x_test)).tolist()
    progress("done")
    return result


def backup(out_dir, exit_at=None):
    model = build(deterministic=False, weights=initial_weights(deterministic=False))
    initial = snapshot(model)
    callbacks = [keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup"))]
    callbacks.append(EventLog(os.path.join(out_dir, "events.jsonl")))
    if exit_at is not None:
        fit(model, callbacks=[*callbacks, Interrupt(exit_at, hard=True)])
        raise AssertionError("not interrupted")
    result = {"reference": {"epochs": fit(model).epochs, "weights": as_lists(model.get_weights())}}
    result["reference"]["seeds"] = seed_states(model)
    progress("trained uninterrupted")
    rewind(initial)  # as the interrupted process built it
    recorder = fit(model, callbacks=callbacks)
    result.update(epochs=recorder.epochs, weights=as_lists(model.get_weights()), seeds=seed_states(model))
    progress("resumed by BackupAndRestore")
    result["epochs_of_the_next_fit"] = fit(model).epochs  # BackupAndRestore left model._initial_epoch set
    progress("done")
    return result


def guide_blocks():
    """The Python code blocks of the distribution guide."""
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def guide(out_dir):
    (example,) = [block for block in guide_blocks() if "tf.distribute.MirroredStrategy(" in block]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, str(GUIDE), "exec"), {"__name__": "__main__"})
    progress("done")
    return {"printed": printed.getvalue()}


def main():
    mode, out_dir = sys.argv[1], sys.argv[2]
    if mode == "backup":
        result = backup(out_dir, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        result = {"mirrored": mirrored, "worker": worker, "guide": guide}[mode](out_dir)
    with open(os.path.join(out_dir, "result.json"), "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
