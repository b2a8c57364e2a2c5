"""What every schedule shares: its layers, found by type at any depth of the model, a position
counted in training steps (the optimizer's step counter) or epochs, the assignment of a variable,
and the JAX state sync.

The schedules themselves (`NoiseAnnealing`, `ActivationMixing`, `GammaUplift`) are in
`keras_adaptive_acts.callbacks.schedules`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_adaptive_acts.callbacks.arguments import check_positive_int
from keras_adaptive_acts.model_graph import all_layers, check_layer_list, match_layers
from keras_adaptive_acts.validation import check_choice

__all__ = ["LayerSchedule", "VariableSchedule", "has_variable", "jax_state_sync", "ramp"]

UNITS = ("step", "epoch")


def has_variable(layer: keras.layers.Layer, name: str) -> bool:
    """Whether `layer` has its variable `name` yet (it is created in `build`)."""
    return isinstance(getattr(layer, name, None), keras.Variable)


def jax_state_sync(model: keras.Model | None) -> None:
    """Puts the JAX trainer's state back into the model's variables (no-op on other backends).

    During an epoch the JAX trainer holds the variables' values outside them; syncing before a
    callback reads or assigns a variable makes it see the latest step and makes the next step
    read the assignment (and not overwrite it).
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def ramp(n: int, duration: int) -> float:
    """`min(n / duration, 1)`, exactly 1.0 from `n = duration` on."""
    return 1.0 if n >= duration else n / duration


class LayerSchedule(keras.callbacks.Callback):
    """The machinery of a schedule: its layers, found by type, and a position counted in steps or epochs.

    The position `n` of a step is the optimizer's step counter, `model.optimizer.iterations`, read
    before the step (the training batches the optimizer has processed since it was created), as
    Keras' own learning-rate schedules count: it is exact under `steps_per_execution` whatever
    the data's size, carries on across `fit` calls, and is restored with the optimizer by
    `BackupAndRestore` and checkpoints. The position of an epoch is Keras' epoch index.

    Subclasses set the class attributes, `_layer_types()`, `value(n)`, and the hooks `_begin(n)`
    (before step or epoch `n`; `n` is None before a step when counting epochs) and `_end(n)`
    (after step or epoch `n - 1`: `n` steps or epochs are done). `_value` is logged under
    `_LOG_KEY` at each epoch's end; `history` lists `(n, value)` for each new value of the latest `fit`.
    """

    _KIND = "layer"  # what `layers` may hold, for messages
    _DEFAULT_KIND = "layer"  # what the callback finds by default, for messages
    _PURPOSE = ""  # why it needs one, for messages
    _LOG_KEY = ""

    def __init__(self, duration: int, unit: str, layers: Sequence[Any] | None):
        super().__init__()
        check_choice("unit", unit, UNITS)
        self.duration = check_positive_int("duration", duration, f"a number of {unit}s")
        self.unit = unit
        if layers is not None:
            check_layer_list(layers, self._layer_types(), self._KIND)
            layers = list(layers)
        self.layers = layers
        self.scheduled_layers: list[keras.layers.Layer] = []  # found in on_train_begin
        self.history: list[tuple[int, float]] = []
        self._value: float | None = None
        # (len(history), value) before the latest execution's value was set, until the execution
        # ends: Keras begins an execution that finds the data exhausted (data of unknown size).
        self._unfinished: tuple[int, float | None] | None = None
        # With unit="epoch" the batch hooks do nothing, so they may run asynchronously (Keras then
        # keeps dispatching the other callbacks' batch ends in a thread); with unit="step" they
        # read the optimizer's step counter and act (GammaUplift projects), so they run in order.
        self.async_safe = unit == "epoch"

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        """The layer classes `layers` may hold (and that names are looked up among)."""
        raise NotImplementedError

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        """Whether a layer of `_layer_types()` is scheduled when `layers` is None."""
        return True

    def _begin(self, n: int | None) -> None:
        pass

    def _end(self, n: int) -> None:
        pass

    def _restore(self, value: float | None) -> None:
        """Makes `value`, the value before the latest `_begin`, current again."""
        self._value = value

    def _record(self, n: int, value: float) -> bool:
        """Makes `value` current; True (and an entry in `history`) if it is new."""
        if value == self._value:
            return False
        self._value = value
        self.history.append((n, value))
        return True

    def _optimizer_step(self) -> int:
        """The optimizer's step counter now: the training batches it has processed so far."""
        model = self.model  # on JAX, reading it puts the trainer's state back into the variables
        return int(ops.convert_to_numpy(model.optimizer.iterations))

    # ------------------------------------------------------------------------------------------
    # Keras hooks

    def on_train_begin(self, logs=None):
        if self.unit == "step" and getattr(self.model, "optimizer", None) is None:
            raise ValueError(
                f"{type(self).__name__}(unit='step') counts the optimizer's steps "
                "(`model.optimizer.iterations`), and the model has no optimizer: compile it with one, "
                "or use unit='epoch'."
            )
        self.scheduled_layers = self._find_layers(self.model)
        self.history = []
        self._value = None
        self._unfinished = None
        # No value is set here: the first step (unit="step") or epoch (unit="epoch") sets its own,
        # after callbacks such as BackupAndRestore have restored the optimizer and the epoch.

    def on_epoch_begin(self, epoch, logs=None):
        self._begin(epoch if self.unit == "epoch" else None)

    def on_train_batch_begin(self, batch, logs=None):
        # Before an execution of `steps_per_execution` steps: the value of its first step.
        if self.unit == "step":
            self._unfinished = (len(self.history), self._value)
            self._begin(self._optimizer_step())
        else:
            self._begin(None)

    def on_train_batch_end(self, batch, logs=None):
        if self.unit == "step":
            self._unfinished = None
            self._end(self._optimizer_step())  # the steps done, a short last execution included

    def on_epoch_end(self, epoch, logs=None):
        if self._unfinished is not None:
            # On data of unknown size Keras begins one more execution, which finds the data
            # exhausted: no step ran with the value it set, so the last step's value comes back
            # (the layers keep the value they were trained with, as on data of known size).
            length, value = self._unfinished
            self._unfinished = None
            if value != self._value:
                del self.history[length:]
                self._restore(value)
        if self.unit == "epoch":
            self._end(epoch + 1)
        if logs is not None:
            logs[self._LOG_KEY] = self._value

    # ------------------------------------------------------------------------------------------

    def _find_layers(self, model: keras.layers.Layer) -> list[keras.layers.Layer]:
        candidates = [layer for layer in all_layers(model) if isinstance(layer, self._layer_types())]
        name = type(self).__name__
        if self.layers is None:
            found = [layer for layer in candidates if self._is_default(layer)]
            if not found:
                raise ValueError(
                    f"{name} found no {self._DEFAULT_KIND} in the model {model.name!r}, so {self._PURPOSE}. "
                    f"Add such layers, pass `layers`, or remove the callback. A model that creates its "
                    "layers in `build()` must be built before `fit`."
                )
            return found
        return match_layers(name, model, candidates, self.layers, self._KIND)

    def _layer_names(self) -> list[str] | None:
        if self.layers is None:
            return None
        return [item if isinstance(item, str) else item.name for item in self.layers]


class VariableSchedule(LayerSchedule):
    """A schedule that assigns `value(n)` to its layers' variable `_VARIABLE` before each step or epoch."""

    _VARIABLE = ""

    def __init__(self, duration: int, unit: str, layers: Sequence[Any] | None):
        super().__init__(duration, unit, layers)
        self._pending = False  # some layer has not received self._value yet

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # finds the layers
        unbuilt = [layer.name for layer in self.scheduled_layers if not has_variable(layer, self._VARIABLE)]
        if unbuilt:
            warnings.warn(
                f"{type(self).__name__}: the layers {unbuilt} are not built yet, so the first training "
                f"step uses their own `{self._VARIABLE}`; the schedule applies from the step after they "
                "are built. Build the model before `fit` (e.g. start it with `keras.Input`) to "
                "schedule from the first step.",
                stacklevel=2,
            )

    def _begin(self, n: int | None) -> None:
        if n is not None and self._record(n, self.value(n)):
            self._pending = True
        if self._pending:
            self._apply()

    def _restore(self, value: float | None) -> None:
        super()._restore(value)
        if value is not None:
            self._pending = True
            self._apply()

    def _apply(self) -> None:
        built = [layer for layer in self.scheduled_layers if has_variable(layer, self._VARIABLE)]
        if built:
            jax_state_sync(self._model)
            for layer in built:
                getattr(layer, self._VARIABLE).assign(self._value)
        self._pending = len(built) < len(self.scheduled_layers)
