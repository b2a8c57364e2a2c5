"""Training callbacks: schedules of the layers' hyper-parameters, and monitors of their activations.

Schedules (`NoiseAnnealing`, `ActivationMixing`, `GammaUplift`) share one counting machinery: a
position `n` in training steps or epochs, the layers of a type found at any depth of the model,
and the JAX state sync. Monitors (`SparsityMonitor`, `CompetitionMonitor`) measure chosen layers
on a fixed sample of data every few epochs and write the values into the epoch's `logs`.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_adaptive_acts.layers.noisy_activation import NoisyActivation
from keras_adaptive_acts.measurement import (
    Batches,
    LayerTaps,
    all_layers,
    check_batch_size,
    check_data,
    check_layer_list,
    is_activation_layer,
    iterate_batches,
    match_layers,
    preserved_state,
    select_layers,
    zero_fractions,
)
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_choice, check_number

SCHEDULES = ("linear", "exponential", "cosine")
UNITS = ("step", "epoch")


def _has_variable(layer: keras.layers.Layer, name: str) -> bool:
    """Whether `layer` has its variable `name` yet (it is created in `build`)."""
    return isinstance(getattr(layer, name, None), keras.Variable)


def _jax_state_sync(model: keras.Model | None) -> None:
    """Puts the JAX trainer's state back into the model's variables (no-op on other backends).

    During an epoch the JAX trainer holds the variables' values outside them; syncing before a
    callback reads or assigns a variable makes it see the latest step and makes the next step
    read the assignment (and not overwrite it).
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def _check_positive_int(name: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer ({what}). Received: {name}={value!r}")
    return int(value)


def _check_position(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
    return int(n)


def _ramp(n: int, duration: int) -> float:
    """`min(n / duration, 1)`, exactly 1.0 from `n = duration` on."""
    return 1.0 if n >= duration else n / duration


# ----------------------------------------------------------------------------------------------
# Schedules


class _LayerSchedule(keras.callbacks.Callback):
    """The machinery of a schedule: its layers, found by type, and a position counted in steps or epochs.

    Subclasses set the class attributes, `_layer_types()`, `value(n)`, and the hooks `_begin(n)`
    (before step or epoch `n`; `n` is None before a step when counting epochs) and `_end(n)`
    (after `n` steps or epochs, counted from 1). `_value` is logged under `_LOG_KEY` at each epoch's
    end; `history` lists `(n, value)` for each new value of the latest `fit`.
    """

    _KIND = "layer"  # what `layers` may hold, for messages
    _DEFAULT_KIND = "layer"  # what the callback finds by default, for messages
    _PURPOSE = ""  # why it needs one, for messages
    _LOG_KEY = ""

    def __init__(self, duration: int, unit: str, layers: Sequence[Any] | None):
        super().__init__()
        check_choice("unit", unit, UNITS)
        self.duration = _check_positive_int("duration", duration, f"a number of {unit}s")
        self.unit = unit
        if layers is not None:
            check_layer_list(layers, self._layer_types(), self._KIND)
            layers = list(layers)
        self.layers = layers
        self.scheduled_layers: list[keras.layers.Layer] = []  # found in on_train_begin
        self.history: list[tuple[int, float]] = []
        self._value: float | None = None
        self._steps_done = 0  # training steps finished in this fit
        self._epoch_offset = 0  # training steps finished before the current epoch
        # With unit="epoch" the batch-end hook only counts steps, so it may run asynchronously
        # (Keras then keeps dispatching the other callbacks' batch ends in a thread); with
        # unit="step" it may act (GammaUplift projects there) and must run in order.
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

    def _record(self, n: int, value: float) -> bool:
        """Makes `value` current; True (and an entry in `history`) if it is new."""
        if value == self._value:
            return False
        self._value = value
        self.history.append((n, value))
        return True

    # ------------------------------------------------------------------------------------------
    # Keras hooks

    def on_train_begin(self, logs=None):
        self.scheduled_layers = self._find_layers(self.model)
        self.history = []
        self._value = None
        self._steps_done = 0
        self._epoch_offset = 0
        self._begin(0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_offset = self._steps_done
        self._begin(epoch if self.unit == "epoch" else None)

    def on_train_batch_begin(self, batch, logs=None):
        self._begin(self._epoch_offset + batch if self.unit == "step" else None)

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of this execution (several with steps_per_execution > 1); Keras
        # reports a full execution even when the epoch's last one is cut short by the data.
        steps_per_epoch = (self.params or {}).get("steps")
        done = batch + 1 if not steps_per_epoch else min(batch + 1, steps_per_epoch)
        self._steps_done = self._epoch_offset + done
        if self.unit == "step":
            self._end(self._steps_done)

    def on_epoch_end(self, epoch, logs=None):
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


class _VariableSchedule(_LayerSchedule):
    """A schedule that assigns `value(n)` to its layers' variable `_VARIABLE` before each step or epoch."""

    _VARIABLE = ""

    def __init__(self, duration: int, unit: str, layers: Sequence[Any] | None):
        super().__init__(duration, unit, layers)
        self._pending = False  # some layer has not received self._value yet

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # finds the layers, then _begin(0)
        unbuilt = [layer.name for layer in self.scheduled_layers if not _has_variable(layer, self._VARIABLE)]
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

    def _apply(self) -> None:
        built = [layer for layer in self.scheduled_layers if _has_variable(layer, self._VARIABLE)]
        if built:
            _jax_state_sync(self._model)
            for layer in built:
                getattr(layer, self._VARIABLE).assign(self._value)
        self._pending = len(built) < len(self.scheduled_layers)


@register
class NoiseAnnealing(_VariableSchedule):
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

    _KIND = "noisy layer"
    _DEFAULT_KIND = "noisy layer (NoisyHardTanh, NoisyHardSigmoid, ...)"
    _PURPOSE = "there is no noise scale `c` to anneal"
    _LOG_KEY = "noise_c"
    _VARIABLE = "c"

    def __init__(
        self,
        c_start: float,
        c_end: float,
        duration: int,
        schedule: str = "linear",
        unit: str = "step",
        layers: Sequence[NoisyActivation | str] | None = None,
    ):
        check_choice("schedule", schedule, SCHEDULES)
        self.c_start = check_number("c_start", c_start, minimum=0)
        self.c_end = check_number("c_end", c_end, minimum=0)
        super().__init__(duration, unit, layers)
        if schedule == "exponential" and (self.c_start == 0 or self.c_end == 0):
            raise ValueError(
                "The exponential schedule is geometric and needs c_start > 0 and c_end > 0; use "
                f"schedule='linear' or 'cosine' to anneal to or from 0. Received: c_start={c_start!r}, "
                f"c_end={c_end!r}"
            )
        self.schedule = schedule

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        return (NoisyActivation,)

    @property
    def noisy_layers(self) -> list[NoisyActivation]:
        """The layers annealed in the latest `fit` (found in `on_train_begin`)."""
        return self.scheduled_layers

    def value(self, n: int) -> float:
        """The noise scale `c` of step or epoch `n` (0-based): `c_start` at 0, `c_end` from `duration` on."""
        n = _check_position(n)
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

    def get_config(self) -> dict[str, Any]:
        return {
            "c_start": self.c_start,
            "c_end": self.c_end,
            "duration": self.duration,
            "schedule": self.schedule,
            "unit": self.unit,
            "layers": self._layer_names(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseAnnealing:
        return cls(**config)


@register
class ActivationMixing(_VariableSchedule):
    """Moves every `MixedActivation` from its start to its end activation: `t` from 0 to 1.

    With `n` the number of training steps (`unit="step"`) or the epoch index (`unit="epoch"`),
    the layers' mixing weight during step or epoch `n` is

    ```
    t = min(n / duration, 1)        # out = (1 - t) * start(x) + t * end(x)
    ```

    so the first step uses the start activation alone (`t = 0`, set in `on_train_begin`) and
    every step from `n = duration` on the end activation alone (`t == 1.0` exactly). This is
    the paper's recipe for fine-tuning a ReLU checkpoint into J-SquaredReLU
    (`MixedActivation("relu", "j_squared_relu")`; `T_mix` of 5 epochs for ViT, 3000 steps for
    T5). The last value stays in the layers after training: to finish training on the end
    activation, choose `duration` at most the number of steps (epochs) minus one.

    The callback sets `t` with `layer.t.assign(value)` before each step or epoch: `t` is a
    non-trainable variable, so a compiled (`jit_compile=True`) train step reads the new value
    without retracing. It applies to every `MixedActivation` at any depth of the model (nested
    models, wrappers, layers held as attributes), or only to `layers`. Counting, the handling of
    unbuilt layers, `steps_per_execution` and JAX are as in `NoiseAnnealing`. The value of the
    last step of each epoch is logged as `logs["mixing_t"]` (in `fit(...).history["mixing_t"]`),
    and `history` lists `(n, t)` for each new value set during the latest `fit`.

    Args:
        duration: positive int: the number of steps or epochs from `t = 0` to `t = 1`.
        unit: "step" (default: counts training batches) or "epoch".
        layers: None (every `MixedActivation` of the model), or a non-empty list of
            `MixedActivation` layers of the model, or their names. `get_config` stores names.
            `fit` raises `ValueError` at its start when the model has no `MixedActivation` or a
            listed one is not in it.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_adaptive_acts import MixedActivation
        >>> model = keras.Sequential(
        ...     [keras.Input((4,)), keras.layers.Dense(8), MixedActivation("relu", "j_squared_relu")]
        ... )
        >>> model.compile("sgd", "mse")
        >>> mixing = ActivationMixing(duration=2, unit="epoch")
        >>> x, y = np.ones((8, 4), "float32"), np.zeros((8, 8), "float32")
        >>> model.fit(x, y, epochs=3, verbose=0, callbacks=[mixing]).history["mixing_t"]
        [0.0, 0.5, 1.0]

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity through
        Flat Minima and Adversarial Robustness", [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    _KIND = "MixedActivation layer"
    _DEFAULT_KIND = "MixedActivation layer"
    _PURPOSE = "there is no mixing weight `t` to raise"
    _LOG_KEY = "mixing_t"
    _VARIABLE = "t"

    def __init__(
        self,
        duration: int,
        unit: str = "step",
        layers: Sequence[keras.layers.Layer | str] | None = None,
    ):
        super().__init__(duration, unit, layers)

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        from keras_adaptive_acts.layers.mixed_activation import MixedActivation

        return (MixedActivation,)

    def value(self, n: int) -> float:
        """The mixing weight `t` of step or epoch `n` (0-based): `min(n / duration, 1)`."""
        return _ramp(_check_position(n), self.duration)

    def get_config(self) -> dict[str, Any]:
        return {"duration": self.duration, "unit": self.unit, "layers": self._layer_names()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActivationMixing:
        return cls(**config)


def _uplift(gamma: Any, floor: float) -> Any:
    """`sign+(gamma) * max(|gamma|, floor)`, with `sign+(0) = +1` (also for -0.0)."""
    gamma = ops.convert_to_tensor(gamma)
    sign = ops.where(ops.greater_equal(gamma, 0), 1.0, -1.0)
    return ops.cast(sign, gamma.dtype) * ops.maximum(ops.abs(gamma), ops.cast(floor, gamma.dtype))


@register
class GammaUplift(_LayerSchedule):
    """Raises the LayerNorm scales `gamma` gradually to magnitude >= 1 while fine-tuning (Peng et al.).

    After the `n`-th training step (`unit="step"`) or epoch (`unit="epoch"`) of the fit,
    counted from 1, every scheduled layer's `gamma` is projected:

    ```
    floor = min(n / duration, 1)
    gamma <- sign+(gamma) * max(|gamma|, floor)        # sign+(g) = +1 for g >= 0 (0 included), else -1
    ```

    so each entry keeps its sign (a zero becomes `+floor`) and its magnitude if that is larger
    than the floor, and from `n = duration` on every `|gamma| >= 1`: the fine-tuning form of the
    paper's restricted LayerNorm (from scratch, `RestrictedLayerNormalization(mode="scratch")`
    enforces `gamma >= 1` by a constraint instead). The optimizer's next updates may lower
    `|gamma|` again until the next projection: after the last step (epoch) of `fit` the bound
    holds. `gamma` is assigned with `layer.gamma.assign(...)` (a compiled train step is not
    retraced); a projection that changes nothing costs an assignment all the same.

    By default the callback applies to every `RestrictedLayerNormalization` in mode
    `"finetune"` at any depth of the model; `layers` may name any `LayerNormalization` layers
    (with `scale=True`). The floor of the last projection of each epoch is logged as
    `logs["gamma_floor"]` (in `fit(...).history["gamma_floor"]`), and `history` lists `(n, floor)`
    for each new floor of the latest `fit`. Counting starts at 0 in each `fit` for steps; for
    epochs it is Keras' epoch index, so `fit(initial_epoch=...)` resumes the schedule.

    Args:
        duration: positive int: `T_up`, the number of steps or epochs until the floor is 1.
        unit: "step" (default: project after every training batch) or "epoch" (after every epoch).
        layers: None (every finetune `RestrictedLayerNormalization`), or a non-empty list of
            `LayerNormalization` layers of the model (`RestrictedLayerNormalization` in any mode
            included), or their names. `get_config` stores names. `fit` raises `ValueError` at
            its start when there is no such layer, a listed one is not in the model, or one has
            no `gamma` (`scale=False`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_adaptive_acts.layers.restricted_layer_normalization import (
        ...     RestrictedLayerNormalization,
        ... )
        >>> norm = RestrictedLayerNormalization(mode="finetune")
        >>> model = keras.Sequential([keras.Input((4,)), norm])
        >>> _ = norm.gamma.assign(np.array([-0.2, 0.0, 0.5, 3.0], "float32"))
        >>> model.compile(keras.optimizers.SGD(0.0), "mse")  # no update: only the uplift acts
        >>> uplift = GammaUplift(duration=4, unit="epoch")
        >>> x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
        >>> model.fit(x, x, epochs=2, verbose=0, callbacks=[uplift]).history["gamma_floor"]
        [0.25, 0.5]
        >>> np.asarray(norm.gamma).tolist()
        [-0.5, 0.5, 0.5, 3.0]

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity through
        Flat Minima and Adversarial Robustness", [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    _KIND = "LayerNormalization layer"
    _DEFAULT_KIND = "RestrictedLayerNormalization in mode 'finetune'"
    _PURPOSE = "there is no gamma to raise (pass `layers` to raise other LayerNormalization layers)"
    _LOG_KEY = "gamma_floor"

    def __init__(
        self,
        duration: int,
        unit: str = "step",
        layers: Sequence[keras.layers.LayerNormalization | str] | None = None,
    ):
        super().__init__(duration, unit, layers)

    @classmethod
    def _layer_types(cls) -> tuple[type, ...]:
        return (keras.layers.LayerNormalization,)

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization

        return isinstance(layer, RestrictedLayerNormalization) and layer.mode == "finetune"

    @property
    def uplifted_layers(self) -> list[keras.layers.LayerNormalization]:
        """The layers whose gamma the latest `fit` raises (found in `on_train_begin`)."""
        return self.scheduled_layers

    def value(self, n: int) -> float:
        """The floor of `|gamma|` after `n` steps or epochs: `min(n / duration, 1)`."""
        return _ramp(_check_position(n), self.duration)

    def _find_layers(self, model):
        layers = super()._find_layers(model)
        no_gamma = [layer.name for layer in layers if not getattr(layer, "scale", True)]
        if no_gamma:
            raise ValueError(
                f"GammaUplift: the LayerNormalization layers {no_gamma} have no gamma (scale=False). "
                f"Received: layers={self._layer_names()!r}"
            )
        return layers

    def _end(self, n: int) -> None:
        floor = self.value(n)
        self._record(n, floor)
        built = [layer for layer in self.scheduled_layers if _has_variable(layer, "gamma")]
        if floor > 0 and built:
            _jax_state_sync(self._model)
            for layer in built:
                layer.gamma.assign(_uplift(layer.gamma, floor))

    def get_config(self) -> dict[str, Any]:
        return {"duration": self.duration, "unit": self.unit, "layers": self._layer_names()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GammaUplift:
        return cls(**config)


# ----------------------------------------------------------------------------------------------
# Monitors


class _LayerMonitor(keras.callbacks.Callback):
    """The machinery of a monitor: a fixed sample, layers read from the model's graph, a measurement
    at the end of every `every`-th epoch written into the epoch's `logs`.

    Subclasses set `_KIND`, `_DEFAULT_KIND`, `_TAP` ("output" or "input"), `_layer_types()`,
    `_is_default(layer)` and `_measure()`, which returns `{log key: float}`.
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
        self.every = _check_positive_int("every", every, "a number of epochs")
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

    def measure(self) -> dict[str, float]:
        """Measures the model the callback is attached to now; returns what the logs receive."""
        model = self.model  # on JAX, reading it puts the trainer's state back into the variables
        if model is None:
            raise ValueError(
                f"{type(self).__name__} is not attached to a model: pass it to `fit(callbacks=[...])` "
                "or call `set_model(model)` first."
            )
        if self._taps is None or self._taps.model is not model:
            self._prepare(model)
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

    (the fractions of `measure_sparsity`: zero entries over all entries of the sample). The
    values land in `fit(...).history` (one entry per measured epoch) and in any callback placed
    **after** this one in the `callbacks` list, such as `keras.callbacks.TensorBoard` (which
    writes them as `epoch_zero_fraction/{name}`, ...): Keras calls the callbacks in list order,
    so a TensorBoard callback placed before it never sees them. `history` lists `(epoch, values)`.

    Measuring leaves the model and its training unchanged: the non-trainable state that a
    forward pass changes (BatchNormalization's moving statistics, the noise layers' seed states)
    is restored afterwards. The cost is two eager forward passes over `data` per measurement.
    The layers' outputs are read from the model's graph, as in `measure_sparsity`: the model
    must be Functional or Sequential. The callback holds data and has no config: it is not
    serialisable (create it again with its data).

    Args:
        data: the sample, as in `measure_sparsity`: an array (or dict / list of arrays), a
            tuple `(x, y)`, a `tf.data.Dataset` or another re-iterable of batches (a one-shot
            iterator is read once and kept). Must not be empty.
        layers: None (the model's activation layers, as in `measure_sparsity`), or a non-empty
            list of layers of the model or their names.
        every: positive int: measure every `every` epochs. Default 1.
        batch_size: the batch size for array data (default 32); not allowed with a dataset.
            In training mode, BatchNormalization uses each batch's statistics.

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
    ):
        super().__init__(data, layers, every, batch_size)

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        return is_activation_layer(layer)

    def _measure(self) -> dict[str, float]:
        inference = zero_fractions(self._taps, self.data, self.batch_size, training=False)
        training = zero_fractions(self._taps, self.data, self.batch_size, training=True)
        values = {}
        for name in inference:
            values[f"zero_fraction/{name}"] = inference[name]
            values[f"zero_fraction_train/{name}"] = training[name]
        return values


class CompetitionMonitor(_LayerMonitor):
    """Logs what the competition of each `CompetitiveReLU` looks like: `alpha`, `beta`, mean `p` and `s`.

    At the end of every `every`-th epoch (as `SparsityMonitor`) the callback runs the model in
    inference mode on `data` and, per monitored layer, computes from the layer's *input* (the
    second input, the source, when the layer is called as `layer([z, source])`)

    ```
    p = competition_share(input, competition, eps, axis)             # one value per slice
    s = competitive_scale(input, alpha, beta, competition, K, eps, axis)
    logs[f"competition/{name}/alpha"], logs[f"competition/{name}/beta"]   # the current weights
    logs[f"competition/{name}/p_mean"], logs[f"competition/{name}/s_mean"]  # means over all slices
    ```

    with the layer's own `competition`, `K`, `eps` and `axis`. It answers "is the competition
    degenerate?": after a BatchNormalization `p` sits near 0.5 for every sample (measure on the
    tensor before it with the two-input form). The values reach `history` and callbacks placed
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
        from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU

        return (CompetitiveReLU,)

    def _is_default(self, layer: keras.layers.Layer) -> bool:
        return isinstance(layer, self._layer_types())

    def _measure(self) -> dict[str, float]:
        from keras_adaptive_acts.ops.competitive import competition_share, competitive_scale

        layers = self.monitored_layers
        p_sums, s_sums, counts = np.zeros(len(layers)), np.zeros(len(layers)), np.zeros(len(layers))
        with preserved_state(self._taps.model):
            for x in iterate_batches(self.data, self.batch_size):
                for i, (layer, tensors) in enumerate(zip(layers, self._taps(x, training=False), strict=True)):
                    measured = ops.cast(tensors[-1], layer.compute_dtype)  # [z] or [z, source]
                    options = {"competition": layer.competition, "eps": layer.eps, "axis": layer.axis}
                    p = competition_share(measured, **options)
                    s = competitive_scale(measured, layer.alpha.value, layer.beta.value, K=layer.K, **options)
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
