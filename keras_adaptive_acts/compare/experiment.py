"""The experiment of `kaa compare`: the same small network trained with each activation and seed.

Every activation is trained in the same multilayer perceptron, with the same seeds, the same data
split and the same budget; only the activation layers differ. With a given seed the Dense layers
start from the same weights for every activation, so the runs are paired: `build_model` creates the
Dense layers, whose initializers take their seeds when created, before it calls the activation
factory, so an activation that draws random numbers (a noisy layer's or RReLU's noise stream) cannot
shift the Dense layers' seeds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts.compare.datasets import Dataset, check_lengths, checked_labels
from keras_adaptive_acts.compare.specs import parse_activation
from keras_adaptive_acts.measurement import measure_sparsity
from keras_adaptive_acts.validation import check_callbacks, check_integer

__all__ = ["DEFAULT_ACTIVATIONS", "build_model", "compare_activations", "parameter_count"]

DEFAULT_ACTIVATIONS = (
    "relu",
    "competitive_relu",
    "competitive_relu:competition=l1",
    "competitive_relu:competition=count",
    "noisy_hard_tanh",
    "j_squared_relu",
)
"""The activations `kaa compare` runs when none are given."""


def build_model(
    n_features: int,
    n_classes: int,
    make_activation: Callable[[], keras.layers.Layer],
    width: int = 64,
    depth: int = 2,
) -> keras.Model:
    """A compiled multilayer perceptron: `Input -> [Dense(width) -> activation] * depth -> Dense(n_classes)`.

    The last layer returns logits; the model is compiled with Adam(1e-3), sparse categorical
    cross-entropy on logits and accuracy. All the Dense layers are created before the first call of
    `make_activation`: after `keras.utils.set_random_seed(seed)` their initial weights are the same
    whatever the activation, even one that draws random numbers when it is created.

    Args:
        n_features: number of input features.
        n_classes: number of classes.
        make_activation: function of no arguments returning a new activation layer.
        width: units of each hidden Dense layer.
        depth: number of hidden layers.
    """
    # Keras' random initializers draw their seed from Python's `random` when they are created, and so
    # does a noise stream created without a seed: the Dense layers take theirs first, in a fixed order.
    hidden = [keras.layers.Dense(width) for _ in range(depth)]
    output = keras.layers.Dense(n_classes)
    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,))]
    for dense in hidden:
        layers += [dense, make_activation()]
    layers.append(output)
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class _StepTimer(keras.callbacks.Callback):
    """Seconds per training step of each epoch, timed from the epoch's start to its validation.

    The time between `on_epoch_begin` and the validation's `on_test_begin` (or `on_epoch_end`
    without validation) covers the epoch's training steps only.
    """

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.step_seconds: list[float] = []
        self._start: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _stop(self):
        if self._start is not None:
            self.step_seconds.append((time.perf_counter() - self._start) / self.steps_per_epoch)
            self._start = None

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()


def _check_data(data: Sequence[np.ndarray]) -> Dataset:
    if len(data) != 4:
        raise ValueError(f"`data` must be (x_train, y_train, x_test, y_test). Received {len(data)} items")
    data = Dataset(*(np.asarray(a) for a in data))
    if data.x_train.ndim != 2 or data.x_test.ndim != 2 or data.x_train.shape[1] != data.x_test.shape[1]:
        raise ValueError(
            "x_train and x_test must have shape (samples, features) with the same number of features. "
            f"Received: {data.x_train.shape} and {data.x_test.shape}"
        )
    # The checks `load_dataset` runs on a file's labels, so that arrays passed directly get the same
    # clear error up front instead of a backend error in the middle of training.
    y_train = checked_labels(data.y_train, "y_train", "`data`")
    y_test = checked_labels(data.y_test, "y_test", "`data`")
    check_lengths(data.x_train, y_train, "x_train", "y_train", "`data`")
    check_lengths(data.x_test, y_test, "x_test", "y_test", "`data`")
    return Dataset(data.x_train, y_train.astype("int64"), data.x_test, y_test.astype("int64"))


def parameter_count(model: keras.Model) -> int:
    """The number of floating-point values in the model's weights, trainable or not.

    Unlike `model.count_params()`, it leaves out integer bookkeeping such as a noisy layer's
    noise-stream position (a seed pair), which is no parameter of the function the model computes.
    """
    return sum(
        math.prod(weight.shape)
        for weight in model.weights
        if "float" in keras.backend.standardize_dtype(weight.dtype)
    )


def compare_activations(
    data: Sequence[np.ndarray],
    specs: Iterable[str] = DEFAULT_ACTIVATIONS,
    epochs: int = 20,
    seeds: int = 3,
    batch_size: int = 64,
    verbose: int = 0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> list[dict[str, Any]]:
    """Trains the same MLP with each activation and each seed, and measures it on the test set.

    For each activation and seed `0 .. seeds - 1`: `keras.utils.set_random_seed(seed)`, build the
    model (`build_model`), fit it for `epochs` on the training set (the test set is the validation
    data, for the learning curves) and evaluate it on the test set.

    Args:
        data: `(x_train, y_train, x_test, y_test)`, e.g. from `load_dataset`; the labels must be
            class indices 0, 1, 2, ..., checked before training starts.
        specs: a list of activation specs (see `parse_activation`), not one string; all are
            validated before training starts.
        epochs: training epochs per run.
        seeds: number of seeds per activation.
        batch_size: training batch size.
        verbose: Keras' `fit` verbosity.
        on_result: called with each record as soon as its run is finished (`kaa compare` writes its
            files there, so that an interrupted comparison keeps the finished runs).
        callbacks: Keras callbacks passed to every run's `fit`, besides the step timer; the same
            objects in every run. `kaa compare` passes the `InterruptCheck` of `stop_on_interrupt`,
            so that Ctrl-C stops it even when Python drops the first `KeyboardInterrupt`.

    Returns:
        One record (dict) per run: `activation` (the label), `seed`, `test_accuracy`, `test_loss`,
        `zero_fraction` (the fraction of exactly-zero outputs of the hidden activations on the test
        set, from `measure_sparsity`), `step_seconds` (median seconds per training step over the
        epochs after the first, which includes tracing; None when `epochs == 1`), `train_seconds`
        (wall time of `fit`), `params`, `params_added` (parameters beyond the same model with
        ReLU; see `parameter_count`), `epochs`, `batch_size` and
        `history` (per-epoch `loss`, `accuracy`, `val_loss`, `val_accuracy`).

    Raises:
        ValueError: for bad arguments, specs or data (shapes, labels), before any training.
    """
    for name, value in (("epochs", epochs), ("seeds", seeds), ("batch_size", batch_size)):
        check_integer(name, value, minimum=1)
    if isinstance(specs, str):  # iterating it would read each letter as an activation
        raise ValueError(
            f"`specs` must be a list of activation specs, not one string: write [{specs!r}]. "
            f"Received: specs={specs!r}"
        )
    specs = list(specs)
    if not specs:
        raise ValueError("No activations to compare.")
    callbacks = check_callbacks(callbacks)
    parsed = [parse_activation(spec) for spec in specs]
    labels = [label for label, _ in parsed]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"Activations given more than once: {', '.join(duplicates)}")

    x_train, y_train, x_test, y_test = _check_data(data)
    n_features = x_train.shape[1]
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    baseline_params = parameter_count(build_model(n_features, n_classes, keras.layers.ReLU))

    records = []
    for label, factory in parsed:
        for seed in range(seeds):
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            model = build_model(n_features, n_classes, factory)
            timer = _StepTimer(steps_per_epoch)
            start = time.perf_counter()
            history = model.fit(
                x_train,
                y_train,
                batch_size=batch_size,
                epochs=epochs,
                validation_data=(x_test, y_test),
                callbacks=[timer, *callbacks],
                verbose=verbose,
            )
            train_seconds = time.perf_counter() - start
            scores = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
            # Every hidden activation has the same width, so the mean over layers is the fraction
            # of zeros over all their outputs.
            zero_fraction = float(np.mean(list(measure_sparsity(model, x_test, batch_size=256).values())))
            timed = timer.step_seconds[1:]
            params = parameter_count(model)
            record = {
                "activation": label,
                "seed": seed,
                "test_accuracy": float(scores["accuracy"]),
                "test_loss": float(scores["loss"]),
                "zero_fraction": zero_fraction,
                "step_seconds": float(statistics.median(timed)) if timed else None,
                "train_seconds": train_seconds,
                "params": int(params),
                "params_added": int(params - baseline_params),
                "epochs": epochs,
                "batch_size": batch_size,
                "history": {key: [float(v) for v in values] for key, values in history.history.items()},
            }
            records.append(record)
            if on_result is not None:
                on_result(record)
    return records
