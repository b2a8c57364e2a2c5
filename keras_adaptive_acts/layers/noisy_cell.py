"""The shared body of NoisyLSTMCell and NoisyGRUCell (not a public layer)."""

from __future__ import annotations

import contextlib
from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts._keras_internals import call_context_training
from keras_adaptive_acts.layers import noise
from keras_adaptive_acts.layers.noisy_hard_sigmoid import NoisyHardSigmoid
from keras_adaptive_acts.layers.noisy_hard_tanh import NoisyHardTanh
from keras_adaptive_acts.ops.noisy import NOISE_MODES
from keras_adaptive_acts.validation import check_choice, check_number

# The noise-step state counts a cell's steps in base 256, one digit per column: the digits are exact
# in float16 and bfloat16, the dtypes Keras' RNN casts states to under mixed precision.
NOISE_STEP_DIGITS = 3
_DIGIT_BASE = 256


class NoisyCellMixin:
    """What NoisyLSTMCell and NoisyGRUCell share (not a public class).

    Argument checks, the noisy units (one sublayer per gate / tanh, each with its own per-unit `p`,
    its own `c` and its own seed), their config, and copying Keras' weights in. A subclass sets
    `KERAS_CELL` (the Keras cell class it extends) and `UNITS`: `(attribute name, kind)` pairs in the
    order of their seed offsets, kind "gate" (NoisyHardSigmoid) or "activation" (NoisyHardTanh), and
    `STATE_NAMES`: Keras' states (each `units` wide), then "noise_step".

    Noise per step: a unit's noise stream cannot advance inside JAX's `lax.scan`, so the cell
    carries a last state, the noise step (`NOISE_STEP_DIGITS` columns, zeros initially), and each
    unit draws with one seed per sequence folded with the step count summed over the batch
    (which grows at every step where any row is unmasked). `keras.layers.RNN` calls
    `get_dropout_mask` before its loop and `reset_dropout_mask` after it: the first takes each
    unit's seed from its stream (advancing it) if the call draws noise, the second forgets them.
    A cell called on its own takes its seeds as it draws.
    """

    KERAS_CELL: type
    UNITS: tuple[tuple[str, str], ...]
    STATE_NAMES: tuple[str, ...]

    @classmethod
    def _check_cell_args(cls, units: Any, seed: Any, kwargs: dict) -> None:
        for name in ("activation", "recurrent_activation"):
            if name in kwargs:
                raise ValueError(
                    f"{cls.__name__} does not take `{name}`: its gates are NoisyHardSigmoid units and "
                    "its tanh units NoisyHardTanh, configured with `gate_noise`, `gate_alpha`, "
                    f"`gate_c`, `activation_noise`, ... Received: {name}={kwargs[name]!r}"
                )
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
        implementation = kwargs.get("implementation", 2)
        if isinstance(implementation, bool) or implementation not in (1, 2):
            raise ValueError(f"`implementation` must be 1 or 2. Received: implementation={implementation!r}")

    def _init_noisy_units(
        self,
        gate_noise: str,
        activation_noise: str,
        gate_alpha: float | None,
        activation_alpha: float | None,
        gate_c: float | None,
        activation_c: float | None,
        noise_at_inference: bool,
    ) -> None:
        """Validates the noisy-unit arguments and creates the (unbuilt) units; after `super().__init__`."""
        check_choice("gate_noise", gate_noise, NOISE_MODES)
        check_choice("activation_noise", activation_noise, NOISE_MODES)
        # As plain floats (a NumPy scalar given here would otherwise reach the config).
        gate_alpha, activation_alpha, gate_c, activation_c = (
            None if value is None else check_number(name, value, minimum=0, strict=strict)
            for name, value, strict in (
                ("gate_alpha", gate_alpha, True),
                ("activation_alpha", activation_alpha, True),
                ("gate_c", gate_c, False),
                ("activation_c", activation_c, False),
            )
        )
        if not isinstance(noise_at_inference, bool):
            value = noise_at_inference
            raise ValueError(
                f"`noise_at_inference` must be True or False. Received: noise_at_inference={value!r}"
            )
        self.gate_noise = gate_noise
        self.activation_noise = activation_noise
        self.gate_alpha = gate_alpha
        self.activation_alpha = activation_alpha
        self.gate_c = gate_c
        self.activation_c = activation_c
        # The noisy units replace Keras' activation functions; None so that nothing uses those by mistake.
        self.activation = None
        self.recurrent_activation = None
        settings = {
            "gate": (NoisyHardSigmoid, gate_noise, gate_alpha, gate_c),
            "activation": (NoisyHardTanh, activation_noise, activation_alpha, activation_c),
        }
        for offset, (name, kind) in enumerate(self.UNITS, start=1):
            layer_class, noise, alpha, c = settings[kind]
            unit = layer_class(
                noise=noise,
                alpha=alpha,
                c=c,
                seed=None if self.seed is None else self.seed + offset,
                noise_at_inference=noise_at_inference,
                dtype=self.dtype_policy,
                name=name,
            )
            setattr(self, name, unit)
        self.state_size = [self.units] * (len(self.STATE_NAMES) - 1) + [NOISE_STEP_DIGITS]
        # Between RNN's get_dropout_mask and reset_dropout_mask: each unit's seed for the sequence
        # ([] for a call that draws no noise); None outside, where each step takes its own.
        self._loop_seeds = None
        self._inside_step = False

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def get_dropout_mask(self, step_input):
        if not self._inside_step:  # RNN setting up, before its loop
            # Each unit's seed for the whole sequence, taken (and its stream advanced) now: a call
            # that read the streams in its loop and advanced them after would share its noise with
            # any call running meanwhile. Only a call that draws takes seeds, so an inference graph
            # holds no variable update. Taken at every call, whatever a call before left: RNN
            # resets them after its loop, but not after a loop that raised, whose seeds a traced
            # training step would otherwise hold as constants (the same noise at every step).
            if self._call_draws_noise():
                self._loop_seeds = [unit.noise_stream.next() for unit in self.noisy_units]
            else:
                self._loop_seeds = []
        return super().get_dropout_mask(step_input)

    def reset_dropout_mask(self):
        super().reset_dropout_mask()
        self._loop_seeds = None

    def _call_draws_noise(self) -> bool:
        """Whether the call now running draws noise (what `training` its call context holds)."""
        training = call_context_training()
        if training is not None and not isinstance(training, bool):
            return True  # a tensor: decided at run time, so be ready to draw
        return self.noisy_units[0].noise_active(training)  # the units own the mode; they agree

    @property
    def noise_at_inference(self) -> bool:
        """The constructor's setting, which the units own (the cell keeps no copy)."""
        return self.noisy_units[0].noise_at_inference

    def _split_states(self, states) -> tuple[list, Any]:
        """The Keras cell's states and the noise step; a clear error if the noise step is missing."""
        states = list(states) if keras.tree.is_nested(states) else [states]
        if len(states) != len(self.state_size):
            names = ", ".join(self.STATE_NAMES)
            raise ValueError(
                f"{type(self).__name__} takes {len(self.state_size)} states, [{names}]: the last "
                "counts the steps so that every step draws fresh noise (zeros to start, or the state "
                "a previous call returned; `cell.get_initial_state(batch_size)` gives all of them). "
                f"Received {len(states)} state(s)."
            )
        return states[:-1], states[-1]

    @contextlib.contextmanager
    def _step_noise(self, noise_step, training):
        """Within: every unit draws this step's noise. Yields the next noise step."""
        self._inside_step = True
        drawing = self.noisy_units[0].noise_active(training)  # the units own the mode; they agree
        try:
            if not drawing:
                yield noise_step
                return
            seeds = self._loop_seeds
            if not seeds:  # a cell called on its own: this call's seeds, taken now
                seeds = [unit.noise_stream.next() for unit in self.noisy_units]
            step = ops.sum(_step_counts(noise_step))
            for unit, seed in zip(self.noisy_units, seeds, strict=True):
                unit.loop_key = noise.loop_key(seed, step)
            yield _next_noise_step(noise_step)
        finally:
            self._inside_step = False
            for unit in self.noisy_units:
                unit.loop_key = None

    @property
    def noisy_units(self) -> list[keras.layers.Layer]:
        """The cell's noisy units (sublayers), in seed-offset order."""
        return [getattr(self, name) for name, _ in self.UNITS]

    def _build_noisy_units(self, input_shape) -> None:
        for unit in self.noisy_units:
            unit.build((input_shape[0], self.units))

    def _keras_config(self) -> dict:
        """The base layer's config and the Keras cell arguments both cells take."""
        config = keras.layers.Layer.get_config(self)
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "implementation": self.implementation,
                "seed": self.seed,
                "gate_noise": self.gate_noise,
                "activation_noise": self.activation_noise,
                "gate_alpha": self.gate_alpha,
                "activation_alpha": self.activation_alpha,
                "gate_c": self.gate_c,
                "activation_c": self.activation_c,
                "noise_at_inference": self.noise_at_inference,
            }
        )
        return config

    def _check_compatible(self, source) -> None:
        """Subclass hook: extra checks of the source cell (GRU: `reset_after`)."""

    def load_keras_weights(self, source: keras.layers.Layer) -> None:
        """Copies `kernel`, `recurrent_kernel` and `bias` from a Keras layer or cell of the same kind.

        `source` is a built `keras.layers.LSTM` / `GRU` layer, an `RNN` layer around such a cell, or
        the cell itself (a noisy cell too: only Keras' weights are copied, never `p` or `c`). The
        weight layouts are identical, so the values are copied as they are. Builds this cell from
        the source's input size if it is not built yet. The noisy units' `p` and `c` keep their
        values; the activations differ (hard and noisy instead of tanh and sigmoid), so the outputs
        differ from the source's: the loaded network is a warm start, not a copy.

        Raises:
            ValueError: if `source` is of another kind, not built, or has a different `units`,
                `use_bias`, input size (or `reset_after` for a GRU).
        """
        keras_name = self.KERAS_CELL.__name__
        cell = source.cell if isinstance(source, keras.layers.RNN) else source
        if not isinstance(cell, self.KERAS_CELL):
            raise ValueError(
                f"`source` must be a keras.layers.{keras_name[:-4]} layer, a keras.layers.{keras_name} "
                f"or a keras.layers.RNN layer around one. Received: source={source!r}"
            )
        if not cell.built or getattr(cell, "kernel", None) is None:
            raise ValueError(
                f"`source` is not built yet: call or fit it first, so that it has weights. "
                f"Received: source={source!r}"
            )
        for name in ("units", "use_bias"):
            if getattr(cell, name) != getattr(self, name):
                raise ValueError(
                    f"`source` has {name}={getattr(cell, name)!r} but this cell has "
                    f"{name}={getattr(self, name)!r}: the weights are not compatible."
                )
        self._check_compatible(cell)
        input_dim = cell.kernel.shape[0]
        if not self.built:
            self.build((None, input_dim))
        names = ["kernel", "recurrent_kernel"] + (["bias"] if self.use_bias else [])
        for name in names:
            target, value = getattr(self, name), getattr(cell, name)
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(
                    f"`source.{name}` has shape {tuple(value.shape)} but this cell's has shape "
                    f"{tuple(target.shape)} (a different input size?)."
                )
        for name in names:
            getattr(self, name).assign(ops.convert_to_tensor(getattr(cell, name)))


def _step_counts(noise_step):
    """The step count of every row, int32, from its base-256 digits."""
    digits = ops.cast(noise_step, "int32")
    return sum(digits[:, k] * _DIGIT_BASE**k for k in range(NOISE_STEP_DIGITS))


def _next_noise_step(noise_step):
    """Every row's count plus one, in the state's dtype (wraps after 256**NOISE_STEP_DIGITS)."""
    carry = ops.ones_like(noise_step[:, :1])
    digits = []
    for k in range(NOISE_STEP_DIGITS):
        digit = noise_step[:, k : k + 1] + carry
        carry = ops.cast(digit >= _DIGIT_BASE, noise_step.dtype)
        digits.append(digit - carry * _DIGIT_BASE)
    return ops.concatenate(digits, axis=-1)
