"""Training callbacks: schedules of the layers' hyper-parameters."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import keras

from keras_adaptive_acts.layers.noisy_activation import NoisyActivation
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_choice, check_number

SCHEDULES = ("linear", "exponential", "cosine")
UNITS = ("step", "epoch")


def _all_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every layer inside `model`, at any depth, each once (the model itself included).

    Keras 3.15 has no public recursive listing: `Model.layers` is one level deep and misses the
    layers a layer holds as attributes (an RNN's cell, the noisy gates inside a cell, the
    copies of a `Bidirectional`). `_flatten_layers` is the walk Keras itself uses for
    `model.weights`, so it sees exactly the layers whose variables the model trains.
    """
    return model._flatten_layers(include_self=True, recursive=True)


def _has_c(layer: NoisyActivation) -> bool:
    return isinstance(getattr(layer, "c", None), keras.Variable)


@register
class NoiseAnnealing(keras.callbacks.Callback):
    """Anneals the noise scale `c` of the noisy layers during training (Gulcehre et al., 2016).

    With `n` the number of training steps (`unit="step"`) or the epoch index (`unit="epoch"`)
    and `t = min(n / duration, 1)`, the layers' `c` during step or epoch `n` is

    ```
    linear:       c_start + (c_end - c_start) * t
    exponential:  c_start * (c_end / c_start) ** t              (geometric; c_start, c_end > 0)
    cosine:       c_end + (c_start - c_end) * (1 + cos(pi * t)) / 2
    ```

    so `c_start` at `n = 0` (set in `on_train_begin`: the first step already uses it) and `c_end`
    from `n = duration` on; to train the last step or epoch at `c_end`, choose `duration` one
    less than the number of steps or epochs. The annealed value stays in the layers after
    training (it is their `c` at inference and in saved models).

    The callback sets `c` with `layer.c.assign(value)` before each step (`"step"`) or epoch
    (`"epoch"`): `c` is a non-trainable variable, so a compiled (`jit_compile=True`) train step
    reads the new value without retracing. Under `steps_per_execution=k` the value changes once
    per `k` steps, the value of the first of them. It applies to every `NoisyActivation`
    (`NoisyHardTanh`, `NoisyHardSigmoid`, ...) found at any depth of the model: nested models,
    wrappers, RNN cells and layers held as attributes; or only to `layers`. A layer that is not
    built yet when training starts (a model without an `Input`, on TensorFlow) gets the schedule
    from the step after it is built, with a warning. On JAX, each change of `c` makes the trainer
    re-attach its state to the model's variables (what any callback reading `self.model` does).

    The value of the last step of each epoch is logged as `logs["noise_c"]` in `on_epoch_end`
    (so it is in `model.fit(...).history["noise_c"]`), and `history` lists `(n, value)` for each
    new value set during the latest `fit`. Counting starts at 0 in each `fit` for steps; for
    epochs it is Keras' epoch index, so `fit(initial_epoch=...)` resumes the schedule.

    Args:
        c_start: finite, >= 0: the noise scale at `n = 0`.
        c_end: finite, >= 0: the noise scale from `n = duration` on.
        duration: positive int: the number of steps or epochs from `c_start` to `c_end`.
        schedule: "linear" (default), "exponential" or "cosine".
        unit: "step" (default: counts training batches) or "epoch".
        layers: None (every noisy layer of the model), or a non-empty list of noisy layers of
            the model, or their names (a name must match one noisy layer: the gates of two
            recurrent cells share names, pass the layers then). `get_config` stores names.
            `fit` raises `ValueError` at its start when the model has no noisy layer or a listed
            one is not in it.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_adaptive_acts import NoisyHardTanh
        >>> annealing = NoiseAnnealing(30.0, 0.5, duration=10, schedule="exponential")
        >>> [round(annealing.value(n), 4) for n in (0, 5, 10, 20)]  # the paper's 30 -> 0.5
        [30.0, 3.873, 0.5, 0.5]
        >>> model = keras.Sequential(
        ...     [keras.Input((4,)), keras.layers.Dense(8), NoisyHardTanh(seed=0), keras.layers.Dense(1)]
        ... )
        >>> model.compile("sgd", "mse")
        >>> callback = NoiseAnnealing(1.0, 0.0, duration=2, unit="epoch")
        >>> x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
        >>> model.fit(x, y, epochs=3, verbose=0, callbacks=[callback]).history["noise_c"]
        [1.0, 0.5, 0.0]

    Reference:
        C. Gulcehre, M. Moczulski, M. Denil, Y. Bengio, "Noisy Activation Functions", ICML 2016,
        [arXiv:1603.00391](https://arxiv.org/abs/1603.00391): annealing `c` from 30 down to 0.5
        beat constant noise and curriculum learning on counting unique integers.
    """

    def __init__(
        self,
        c_start: float,
        c_end: float,
        duration: int,
        schedule: str = "linear",
        unit: str = "step",
        layers: Sequence[NoisyActivation | str] | None = None,
    ):
        super().__init__()
        check_choice("schedule", schedule, SCHEDULES)
        check_choice("unit", unit, UNITS)
        self.c_start = check_number("c_start", c_start, minimum=0)
        self.c_end = check_number("c_end", c_end, minimum=0)
        if isinstance(duration, bool) or not isinstance(duration, numbers.Integral) or duration <= 0:
            raise ValueError(
                f"`duration` must be a positive integer (a number of {unit}s). "
                f"Received: duration={duration!r}"
            )
        if schedule == "exponential" and (self.c_start == 0 or self.c_end == 0):
            raise ValueError(
                "The exponential schedule is geometric and needs c_start > 0 and c_end > 0; use "
                f"schedule='linear' or 'cosine' to anneal to or from 0. Received: c_start={c_start!r}, "
                f"c_end={c_end!r}"
            )
        self.duration = int(duration)
        self.schedule = schedule
        self.unit = unit
        self.layers = None if layers is None else self._check_layers(layers)
        self.noisy_layers: list[NoisyActivation] = []  # the layers annealed, found in on_train_begin
        self.history: list[tuple[int, float]] = []
        self._value: float | None = None
        self._pending = False  # some layer has not received self._value yet
        self._steps_done = 0  # training steps finished in this fit
        self._epoch_offset = 0  # training steps finished before the current epoch
        # The batch-end hook only counts steps: with unit="epoch" it does nothing, so it may run
        # asynchronously (Keras then keeps dispatching the other callbacks' batch ends in a thread).
        self.async_safe = unit == "epoch"

    @staticmethod
    def _check_layers(layers: Any) -> list[NoisyActivation | str]:
        if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(
                "`layers` must be None or a non-empty list of noisy layers (or their names). "
                f"Received: layers={layers!r}"
            )
        for i, item in enumerate(layers):
            if not isinstance(item, (str, NoisyActivation)):
                raise ValueError(
                    "`layers` must hold noisy layers (NoisyHardTanh, NoisyHardSigmoid, ...) or layer "
                    f"names. Received: layers[{i}]={item!r}"
                )
        return list(layers)

    def value(self, n: int) -> float:
        """The noise scale `c` of step or epoch `n` (0-based): `c_start` at 0, `c_end` from `duration` on."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
        if n == 0:
            return self.c_start  # exact ends, whatever the rounding of the formulas
        if n >= self.duration:
            return self.c_end
        t = n / self.duration
        if self.schedule == "linear":
            return self.c_start + (self.c_end - self.c_start) * t
        if self.schedule == "exponential":
            return self.c_start * (self.c_end / self.c_start) ** t
        return self.c_end + (self.c_start - self.c_end) * (1.0 + math.cos(math.pi * t)) / 2.0

    # ------------------------------------------------------------------------------------------
    # Keras hooks

    def on_train_begin(self, logs=None):
        self.noisy_layers = self._find_layers(self.model)
        unbuilt = [layer.name for layer in self.noisy_layers if not _has_c(layer)]
        if unbuilt:
            warnings.warn(
                f"NoiseAnnealing: the noisy layers {unbuilt} are not built yet, so the first training "
                "step uses their own `c`; the schedule applies from the step after they are built. "
                "Build the model before `fit` (e.g. start it with `keras.Input`) to anneal from the "
                "first step.",
                stacklevel=2,
            )
        self.history = []
        self._value = None
        self._steps_done = 0
        self._epoch_offset = 0
        self._set_position(0)
        self._apply()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_offset = self._steps_done
        if self.unit == "epoch":
            self._set_position(epoch)
        if self._pending:
            self._apply()

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            self._set_position(self._epoch_offset + batch)
        if self._pending:
            self._apply()

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of this execution (several with steps_per_execution > 1); Keras
        # reports a full execution even when the epoch's last one is cut short by the data.
        steps_per_epoch = (self.params or {}).get("steps")
        done = batch + 1 if not steps_per_epoch else min(batch + 1, steps_per_epoch)
        self._steps_done = self._epoch_offset + done

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["noise_c"] = self._value

    # ------------------------------------------------------------------------------------------

    def _find_layers(self, model: keras.layers.Layer) -> list[NoisyActivation]:
        noisy = [layer for layer in _all_layers(model) if isinstance(layer, NoisyActivation)]
        if self.layers is None:
            if not noisy:
                raise ValueError(
                    f"NoiseAnnealing found no noisy layer (NoisyHardTanh, NoisyHardSigmoid, ...) in the "
                    f"model {model.name!r}, so there is no noise scale `c` to anneal. Add noisy layers, "
                    "or remove the callback. A model that creates its layers in `build()` must be built "
                    "before `fit`."
                )
            return noisy
        chosen: list[NoisyActivation] = []
        for item in self.layers:
            if isinstance(item, str):
                matches = [layer for layer in noisy if layer.name == item]
                if len(matches) != 1:
                    problem = "no noisy layer" if not matches else f"{len(matches)} noisy layers"
                    raise ValueError(
                        f"NoiseAnnealing: the model {model.name!r} has {problem} named {item!r}. Its "
                        f"noisy layers: {[layer.name for layer in noisy]}. Received: layers={self.layers!r}"
                    )
                layer = matches[0]
            elif any(item is layer for layer in noisy):
                layer = item
            else:
                raise ValueError(
                    f"NoiseAnnealing: the layer {item.name!r} in `layers` is not part of the model "
                    f"{model.name!r} being trained (a copy, e.g. from `clone_model`, is a different "
                    f"layer). Its noisy layers: {[layer.name for layer in noisy]}."
                )
            if all(layer is not other for other in chosen):
                chosen.append(layer)
        return chosen

    def _set_position(self, n: int) -> None:
        value = self.value(n)
        if value != self._value:
            self._value = value
            self.history.append((n, value))
            self._pending = True

    def _apply(self) -> None:
        built = [layer for layer in self.noisy_layers if _has_c(layer)]
        if built:
            # With JAX, the trainer holds the variables' values outside them during an epoch;
            # syncing first makes the next step read this assignment (and not overwrite it).
            sync = getattr(self._model, "jax_state_sync", None)
            if sync is not None:
                sync()
            for layer in built:
                layer.c.assign(self._value)
        self._pending = len(built) < len(self.noisy_layers)

    # ------------------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        layers = None
        if self.layers is not None:
            layers = [item if isinstance(item, str) else item.name for item in self.layers]
        return {
            "c_start": self.c_start,
            "c_end": self.c_end,
            "duration": self.duration,
            "schedule": self.schedule,
            "unit": self.unit,
            "layers": layers,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseAnnealing:
        return cls(**config)
