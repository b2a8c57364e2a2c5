"""The monitors: callbacks that measure chosen layers on a fixed sample of data every few epochs
and write the values into the epoch's `logs`.

`SparsityMonitor` (each layer's fraction of zero outputs) and `CompetitionMonitor` (the statistics
of each `CompetitiveReLU`, which the layer computes itself through `competition_statistics`).
"""

from __future__ import annotations

import collections.abc
import copy
import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_adaptive_acts.callbacks.arguments import check_positive_int
from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU
from keras_adaptive_acts.measurement import (
    Batches,
    check_batch_size,
    check_data,
    check_derivative_layers,
    derivative_taps,
    derivative_zero_fractions,
    has_activation_derivative,
    iterate_batches,
    zero_fractions,
)
from keras_adaptive_acts.model_graph import (
    LayerTaps,
    check_layer_list,
    is_activation_layer,
    preserved_state,
    select_layers,
)

__all__ = ["CompetitionMonitor", "SparsityMonitor"]


class _LayerMonitor(keras.callbacks.Callback):
    """The machinery of a monitor: a fixed sample, layers read from the model's graph, a measurement
    at the end of every `every`-th epoch written into the epoch's `logs`.

    Subclasses set `_KIND`, `_DEFAULT_KIND`, `_TAP` ("output" or "input"), `_layer_types()`,
    `_is_default(layer)`, `_measure()`, which returns `{log key: float}`, and `_log_keys()`, the
    keys `_measure()` returns (written with NaN on the epochs that are not measured).
    """

    _KIND = "layer"  # what `layers` may hold, for messages
    _DEFAULT_KIND = "layer"  # what the callback finds by default, for messages
    _TAP = "output"

    def __init__(self, data: Any, layers: Sequence[Any] | None, every: int, batch_size: int | None):
        super().__init__()
        if isinstance(data, collections.abc.Iterator):
            data = Batches(data)  # a one-shot iterator (a generator) is read once, and kept
        self.batch_size = check_batch_size(batch_size, data)
        check_data(data)
        self.data = data
        self.every = check_positive_int("every", every, "a number of epochs")
        if layers is not None:
            check_layer_list(layers, self._layer_types(), self._KIND)
            layers = list(layers)
        self.layers = layers
        self.monitored_layers: list[keras.layers.Layer] = []
        self.history: list[tuple[int, dict[str, float]]] = []
        self._taps: LayerTaps | None = None

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        return (keras.layers.Layer,)

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        raise NotImplementedError

    def _measure(self) -> dict[str, float]:
        raise NotImplementedError

    def _log_keys(self) -> list[str]:
        raise NotImplementedError

    def __deepcopy__(self, memo: dict[int, Any]) -> _LayerMonitor:
        # KerasTuner deep-copies the callbacks of every trial. The sample is only read, never
        # changed, so the copy shares it: a tf.data.Dataset (which holds a graph) cannot be copied.
        memo[id(self.data)] = self.data
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def _ensure_prepared(self) -> keras.Model:
        model = self.model  # on JAX, reading it puts the trainer's state back into the variables
        if model is None:
            raise ValueError(
                f"{type(self).__name__} is not attached to a model: pass it to `fit(callbacks=[...])` "
                "or call `set_model(model)` first."
            )
        if self._taps is None or self._taps.model is not model:
            self._prepare(model)
        return model

    def measure(self) -> dict[str, float]:
        """Measures the model the callback is attached to now; returns what the logs receive."""
        self._ensure_prepared()
        return self._measure()

    def _prepare(self, model: keras.Model) -> None:
        owner = type(self).__name__
        self.monitored_layers = select_layers(
            model,
            self.layers,
            owner,
            default=self._is_default,
            kind=self._KIND,
            accepts=self._layer_types(),
            default_kind=self._DEFAULT_KIND,
        )
        self._taps = LayerTaps(model, self.monitored_layers, self._TAP, owner)

    def on_train_begin(self, logs=None):
        self.history = []
        self._taps = None
        model = self.model
        if not isinstance(model, keras.Sequential) or model.built:
            self._prepare(model)  # fails fast on a subclassed model or a wrong layer
        # else: a Sequential model without an Input, built by the first step; prepared at the first measure.

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            # Not measured: the same keys with NaN, so that every epoch's logs have the same keys
            # (CSVLogger fixes its columns at the first epoch; History's lists stay aligned).
            if logs is not None:
                self._ensure_prepared()  # a Sequential model without Input is built by now
                logs.update(dict.fromkeys(self._log_keys(), math.nan))
            return
        values = self.measure()
        if logs is not None:
            logs.update(values)
        self.history.append((epoch, values))

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"{type(self).__name__} holds its data sample and is not serialisable: create it again "
            "with the data."
        )


class SparsityMonitor(_LayerMonitor):
    """Logs each monitored layer's fraction of exactly-zero outputs, in inference and in training mode.

    At the end of every `every`-th epoch (epochs `every - 1`, `2 * every - 1`, ... counted from
    0, as `fit`'s `validation_freq`) the callback runs the model on `data`, a small fixed sample,
    and writes per monitored layer

    ```
    logs[f"zero_fraction/{name}"]        fraction of zero outputs, training=False (inference)
    logs[f"zero_fraction_train/{name}"]  the same with training=True: dropout and activation noise
                                         on, BatchNormalization on the batch's statistics
    ```

    and with `derivative=True`, beside them, the derivative sparsity of `measure_sparsity(...,
    derivative=True)`: the fraction of entries whose activation derivative is zero

    ```
    logs[f"derivative_zero_fraction/{name}"]        training=False
    logs[f"derivative_zero_fraction_train/{name}"]  training=True (a fresh noise draw)
    ```

    for each monitored layer where it is defined (not for a softmax head, which is monitored by
    default for its zero fraction; a layer in `layers` without one raises `ValueError` at the
    start of training).

    (the fractions of `measure_sparsity`: zero entries over all entries of the sample, masked
    entries left out, every call of a shared layer counted). The
    values land in `fit(...).history` and in any callback placed **after** this one in the
    `callbacks` list, such as `keras.callbacks.CSVLogger` or `keras.callbacks.TensorBoard`
    (which writes them as `epoch_zero_fraction/{name}`, ...): Keras calls the callbacks in list
    order, so a callback placed before it never sees them. With `every > 1` the epochs that are
    not measured get the same keys with the value NaN, so that every epoch's logs have the same
    keys: `fit(...).history` has one entry per epoch (`pandas.DataFrame(history.history)` lines
    up), CSVLogger writes the columns (it fixes them at the first epoch) with `nan` in the rows
    not measured, and TensorBoard receives NaN there. (An `EarlyStopping` or `ReduceLROnPlateau`
    watching one of these keys needs `every=1`.) The callback's own `history` lists
    `(epoch, values)` of the measured epochs only.

    A `tf.data.Dataset` (or any other) sample is shared, not copied, by `copy.deepcopy`, which
    KerasTuner applies to the callbacks of each trial; an infinite dataset (`.repeat()`) is
    refused (`ValueError`): pass a finite sample, such as `dataset.take(n)`.

    Measuring leaves the model and its training unchanged: the non-trainable state that a
    forward pass changes (BatchNormalization's moving statistics, the noise layers' seed states)
    is restored afterwards. The cost is two eager forward passes over `data` per measurement,
    six with `derivative=True` (inputs and masks in each mode, plus a backward pass per layer).
    The layers' outputs are read from the model's graph, as in `measure_sparsity`: the model
    must be Functional or Sequential. The callback holds data and has no config: it is not
    serialisable (create it again with its data).

    Args:
        data: the sample, as in `measure_sparsity`: an array (or dict / list of arrays), a
            tuple `(x, y)`, a `tf.data.Dataset` or another re-iterable of batches (a one-shot
            iterator is read once and kept). Must not be empty nor infinite.
        layers: None (the model's activation layers, as in `measure_sparsity`), or a non-empty
            list of layers of the model or their names.
        every: positive int: measure every `every` epochs. Default 1.
        batch_size: the batch size for array data (default 32); not allowed with a dataset.
            In training mode, BatchNormalization uses each batch's statistics.
        derivative: bool. Also log the derivative sparsity. Default False.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> model = keras.Sequential([
        ...     keras.Input((2,)),
        ...     keras.layers.Dense(2, kernel_initializer="identity"),
        ...     keras.layers.Dropout(0.5),
        ...     keras.layers.ReLU(name="relu"),
        ... ])
        >>> model.compile(keras.optimizers.SGD(0.0), "mse")
        >>> x = np.array([[1.0, -1.0], [-1.0, -2.0]], "float32")
        >>> monitor = SparsityMonitor(x)
        >>> history = model.fit(x, x, epochs=2, verbose=0, callbacks=[monitor]).history
        >>> history["zero_fraction/relu"]
        [0.75, 0.75]
        >>> all(value >= 0.75 for value in history["zero_fraction_train/relu"])  # dropout zeros more
        True
    """

    _DEFAULT_KIND = "activation layer"

    def __init__(
        self,
        data: Any,
        layers: Sequence[keras.layers.Layer | str] | None = None,
        every: int = 1,
        batch_size: int | None = None,
        derivative: bool = False,
    ):
        if not isinstance(derivative, bool):
            raise ValueError(f"`derivative` must be True or False. Received: derivative={derivative!r}")
        super().__init__(data, layers, every, batch_size)
        self.derivative = derivative
        self._derivative_taps = None

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        return is_activation_layer(layer)

    def _prepare(self, model: keras.Model) -> None:
        super()._prepare(model)
        self._derivative_taps = None
        if not self.derivative:
            return
        owner = type(self).__name__
        if self.layers is not None:
            check_derivative_layers(self.monitored_layers, owner)
        # By default: every monitored layer whose derivative is defined (not a softmax head).
        layers = [layer for layer in self.monitored_layers if has_activation_derivative(layer)]
        if layers:
            self._derivative_taps = derivative_taps(model, layers, owner)

    def _log_keys(self) -> list[str]:
        names = [layer.name for layer in self.monitored_layers]
        derivative_names = (
            [] if self._derivative_taps is None else [layer.name for layer in self._derivative_taps[0].layers]
        )
        keys = []
        for suffix in ("", "_train"):  # in the order of `_measure`
            keys += [f"zero_fraction{suffix}/{name}" for name in names]
            keys += [f"derivative_zero_fraction{suffix}/{name}" for name in derivative_names]
        return keys

    def _measure(self) -> dict[str, float]:
        values = {}
        for suffix, training in (("", False), ("_train", True)):
            for name, value in zero_fractions(self._taps, self.data, self.batch_size, training).items():
                values[f"zero_fraction{suffix}/{name}"] = value
            if self._derivative_taps is not None:
                fractions = derivative_zero_fractions(
                    self._derivative_taps, self.data, self.batch_size, training
                )
                for name, value in fractions.items():
                    values[f"derivative_zero_fraction{suffix}/{name}"] = value
        return values


class CompetitionMonitor(_LayerMonitor):
    """Logs what the competition of each `CompetitiveReLU` looks like: `alpha`, `beta`, mean `p` and `s`.

    At the end of every `every`-th epoch (as `SparsityMonitor`) the callback runs the model in
    inference mode on `data` and, per monitored layer, asks the layer for the statistics of its
    *input* (`p` is measured on the second input, the source, when the layer is called as
    `layer([z, source])`)

    ```
    p, s = layer.competition_statistics(input)                          # one value of each per slice
    logs[f"competition/{name}/alpha"], logs[f"competition/{name}/beta"]   # the current weights
    logs[f"competition/{name}/p_mean"], logs[f"competition/{name}/s_mean"]  # means over all slices
    ```

    so the values are those the layer's forward pass computes; a layer called several times (a
    shared layer) is measured at every call. Masks play no part: `p` and `s` are per slice. With
    `every > 1`, the epochs not measured get the same keys with NaN, as for `SparsityMonitor`. It
    answers "is the competition degenerate?": after a BatchNormalization `p` sits near 0.5 for
    every sample (measure on the tensor before it with the two-input form). The values reach
    `history` and callbacks placed
    after this one (TensorBoard) as for `SparsityMonitor`; the model is left unchanged; the
    model must be Functional or Sequential; the callback is not serialisable.

    Args:
        data: the sample, as for `SparsityMonitor`. Must not be empty.
        layers: None (every `CompetitiveReLU` of the model's graph), or a non-empty list of
            `CompetitiveReLU` layers of the model or their names.
        every: positive int: measure every `every` epochs. Default 1.
        batch_size: the batch size for array data (default 32); not allowed with a dataset.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_adaptive_acts import CompetitiveReLU
        >>> model = keras.Sequential([keras.Input((3,)), CompetitiveReLU(name="carelu")])
        >>> model.compile(keras.optimizers.SGD(0.0), "mse")
        >>> x = np.array([[-1.0, 0.5, 2.0]], "float32")  # p = 4.25 / 5.25
        >>> history = model.fit(x, x, verbose=0, callbacks=[CompetitionMonitor(x)]).history
        >>> {key: round(values[0], 4) for key, values in history.items() if key != "loss"}
        {'competition/carelu/alpha': 0.0, 'competition/carelu/beta': 0.5493,
         'competition/carelu/p_mean': 0.8095, 'competition/carelu/s_mean': 1.0}
    """

    _KIND = "CompetitiveReLU layer"
    _DEFAULT_KIND = "CompetitiveReLU layer"
    _TAP = "input"

    def __init__(
        self,
        data: Any,
        layers: Sequence[keras.layers.Layer | str] | None = None,
        every: int = 1,
        batch_size: int | None = None,
    ):
        super().__init__(data, layers, every, batch_size)

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        return (CompetitiveReLU,)

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        return isinstance(layer, self._layer_types())

    def _log_keys(self) -> list[str]:
        statistics = ("alpha", "beta", "p_mean", "s_mean")
        return [
            f"competition/{layer.name}/{statistic}"
            for layer in self.monitored_layers
            for statistic in statistics
        ]

    def _measure(self) -> dict[str, float]:
        layers = self.monitored_layers
        p_sums, s_sums, counts = np.zeros(len(layers)), np.zeros(len(layers)), np.zeros(len(layers))
        with preserved_state(self._taps.model):
            for x in iterate_batches(self.data, self.batch_size):
                for i, (layer, calls) in enumerate(zip(layers, self._taps(x, training=False), strict=True)):
                    for call in calls:  # every call of a shared layer
                        # What the layer was called with: [z], or [z, source] for the two-input form.
                        tensors = call.tensors
                        p, s = layer.competition_statistics(tensors if len(tensors) > 1 else tensors[0])
                        p_sums[i] += float(ops.convert_to_numpy(ops.sum(ops.cast(p, "float64"))))
                        s_sums[i] += float(ops.convert_to_numpy(ops.sum(ops.cast(s, "float64"))))
                        counts[i] += math.prod(int(d) for d in ops.shape(p))
        values = {}
        for i, layer in enumerate(layers):
            prefix = f"competition/{layer.name}/"
            values[prefix + "alpha"] = float(ops.convert_to_numpy(layer.alpha))
            values[prefix + "beta"] = float(ops.convert_to_numpy(layer.beta))
            values[prefix + "p_mean"] = float(p_sums[i] / counts[i]) if counts[i] else math.nan
            values[prefix + "s_mean"] = float(s_sums[i] / counts[i]) if counts[i] else math.nan
        return values
