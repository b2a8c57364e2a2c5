"""The schedules: callbacks that change a hyper-parameter of chosen layers as training goes.

`NoiseAnnealing` (the noise scale `c` of the noisy layers), `ActivationMixing` (the mixing weight `t`
of `MixedActivation`) and `GammaUplift` (the LayerNorm scales `gamma`). Their shared machinery is in
`keras_adaptive_acts.callbacks.scheduling`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_adaptive_acts.callbacks.arguments import check_position
from keras_adaptive_acts.callbacks.scheduling import (
    LayerSchedule,
    VariableSchedule,
    has_variable,
    jax_state_sync,
    ramp,
)
from keras_adaptive_acts.layers.noisy_activation import NoisyActivation
from keras_adaptive_acts.ops.dtype_preserving import maximum
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_choice, check_number

__all__ = ["ActivationMixing", "GammaUplift", "NoiseAnnealing"]

SCHEDULES = ("linear", "exponential", "cosine")


@register
class NoiseAnnealing(VariableSchedule):
    """Anneals the noise scale `c` of the noisy layers during training (Gulcehre et al., 2016).

    With `n` the optimizer's step counter (`unit="step"`, see "Counting steps" below) or the
    epoch index (`unit="epoch"`) and `t = min(n / duration, 1)`, the layers' `c` during step or
    epoch `n` is

    ```
    linear:       c_start + (c_end - c_start) * t
    exponential:  c_start * (c_end / c_start) ** t              (geometric; c_start, c_end > 0)
    cosine:       c_end + (c_start - c_end) * (1 + cos(pi * t)) / 2
    ```

    so `c_start` at `n = 0` (the first step already uses it) and `c_end`
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
    new value set during the latest `fit`.

    Counting steps: `n` is `model.optimizer.iterations` read before each step (before each
    execution under `steps_per_execution`), the number of training batches the optimizer has
    processed since it was created, which is what Keras' learning-rate schedules count. So the
    schedule is exact under `steps_per_execution` whatever the size of the data; a second `fit`
    with the same optimizer carries on where the first stopped; and a run resumed by
    `keras.callbacks.BackupAndRestore` or from a checkpoint that holds the optimizer goes on from
    the restored counter, as an uninterrupted run would. With gradient accumulation
    (`gradient_accumulation_steps=k`) the counter, and `n`, count batches: `k` per weight update.
    To start the schedule over, compile with a new optimizer (or assign 0 to its `iterations`).
    Epochs are Keras' epoch index, so `fit(initial_epoch=...)` resumes an epoch schedule.

    Args:
        c_start: finite, >= 0: the noise scale at `n = 0`.
        c_end: finite, >= 0: the noise scale from `n = duration` on.
        duration: positive int: the number of steps or epochs from `c_start` to `c_end`.
        schedule: "linear" (default), "exponential" or "cosine".
        unit: "step" (default: counts the optimizer's steps) or "epoch".
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
        n = check_position(n)
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
class ActivationMixing(VariableSchedule):
    """Moves every `MixedActivation` from its start to its end activation: `t` from 0 to 1.

    With `n` the optimizer's step counter (`unit="step"`, counted as in `NoiseAnnealing`) or
    the epoch index (`unit="epoch"`), the layers' mixing weight during step or epoch `n` is

    ```
    t = min(n / duration, 1)        # out = (1 - t) * start(x) + t * end(x)
    ```

    so the first step uses the start activation alone (`t = 0`) and
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
        unit: "step" (default: counts the optimizer's steps) or "epoch".
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
        return ramp(check_position(n), self.duration)

    def get_config(self) -> dict[str, Any]:
        return {"duration": self.duration, "unit": self.unit, "layers": self._layer_names()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActivationMixing:
        return cls(**config)


def _uplift(gamma: Any, floor: float) -> Any:
    """`sign+(gamma) * max(|gamma|, floor)`, with `sign+(0) = +1` (also for -0.0)."""
    gamma = ops.convert_to_tensor(gamma)
    sign = ops.where(ops.greater_equal(gamma, 0), 1.0, -1.0)
    return ops.cast(sign, gamma.dtype) * maximum(ops.abs(gamma), ops.cast(floor, gamma.dtype))


@register
class GammaUplift(LayerSchedule):
    """Raises the LayerNorm scales `gamma` gradually to magnitude >= 1 while fine-tuning (Peng et al.).

    After every training step (`unit="step"`) or epoch (`unit="epoch"`), with `n` the steps the
    optimizer has taken so far (`model.optimizer.iterations`, counted as in `NoiseAnnealing`) or
    the epochs done (the epoch index + 1), every scheduled layer's `gamma` is projected:

    ```
    floor = min(n / duration, 1)
    gamma <- sign+(gamma) * max(|gamma|, floor)        # sign+(g) = +1 for g >= 0 (0 included), else -1
    ```

    so each entry keeps its sign (a zero becomes `+floor`) and its magnitude if that is larger
    than the floor, and from `n = duration` on every `|gamma| >= 1`: the fine-tuning form of the
    paper's restricted LayerNorm (from scratch, `RestrictedLayerNormalization(mode="scratch")`
    enforces `gamma >= 1` by a constraint instead). The optimizer's next updates may lower
    `|gamma|` again until the next projection: after the last step (epoch) of `fit` the bound
    holds. Because steps are counted by the optimizer, a second `fit`, or a run resumed by
    `BackupAndRestore`, goes on with the floor reached (once it is 1, `|gamma| >= 1` after every
    step); compile with a new optimizer to ramp again. `gamma` is assigned with
    `layer.gamma.assign(...)` (a compiled train step is not retraced); a projection that changes
    nothing costs an assignment all the same.

    By default the callback applies to every `RestrictedLayerNormalization` in mode
    `"finetune"` at any depth of the model; `layers` may name any `LayerNormalization` layers
    (with `scale=True`). The floor of the last projection of each epoch is logged as
    `logs["gamma_floor"]` (in `fit(...).history["gamma_floor"]`), and `history` lists `(n, floor)`
    for each new floor of the latest `fit`. Epochs are Keras' epoch index, so
    `fit(initial_epoch=...)` resumes an epoch schedule.

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
        >>> keras.ops.convert_to_numpy(norm.gamma).tolist()
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
        return ramp(check_position(n), self.duration)

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
        built = [layer for layer in self.scheduled_layers if has_variable(layer, "gamma")]
        if floor > 0 and built:
            jax_state_sync(self._model)
            for layer in built:
                layer.gamma.assign(_uplift(layer.gamma, floor))

    def get_config(self) -> dict[str, Any]:
        return {"duration": self.duration, "unit": self.unit, "layers": self._layer_names()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GammaUplift:
        return cls(**config)
