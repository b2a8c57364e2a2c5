"""The NoisyGRUCell layer."""

from __future__ import annotations

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.layers.noisy_cell import NoisyCellMixin
from keras_adaptive_acts.registry import register


@register
class NoisyGRUCell(NoisyCellMixin, keras.layers.GRUCell):
    """A GRU cell whose gates and candidate are noisy activations (Gulcehre et al., 2016).

    Keras' `GRUCell` with its activation functions replaced by noisy units, each its own sublayer
    with its own per-unit `p` and noise scale `c`: `NoisyHardSigmoid` for the update and reset
    gates, `NoisyHardTanh` for the candidate (the paper's recurrent set-up). The weight layout
    (`kernel`, `recurrent_kernel`, `bias` of shape `(2, 3 * units)` with `reset_after=True`, gates in
    the order z, r, h) and the step math (`implementation` 1 and 2, dropout masks, both
    `reset_after` conventions) are Keras'; the noisy units' weights come after Keras' weights.
    Use it inside `keras.layers.RNN`:

    ```
    z = s_z(x W_z + b_z + h_prev U_z + b'_z)                   s_* : NoisyHardSigmoid units
    r = s_r(x W_r + b_r + h_prev U_r + b'_r)                   b'  : recurrent bias (0 if not reset_after)
    g = t_g(x W_h + b_h + r * (h_prev U_h + b'_h))             reset_after=True (default)
    g = t_g(x W_h + b_h + (r * h_prev) U_h)                    reset_after=False
    h = z * h_prev + (1 - z) * g                                t_g : NoisyHardTanh unit
    train:      each unit  alpha * h(x) + (1 - alpha) * u(x) + d * sigma(x) * eps   (noise drawn)
    inference:  each unit  alpha * h(x) + (1 - alpha) * u(x) + d * sigma(x) * E[eps] (deterministic)
    ```

    with the paper's `h(x) = clip(0.25 x + 0.5, 0, 1)` (gates) or `clip(x, -1, 1)` (candidate);
    see `NoisyHardSigmoid` and `NoisyHardTanh` for `d`, `sigma` and the input-noise modes.
    `training` reaches every unit, so noise is drawn only in training (unless `noise_at_inference`).
    `load_keras_weights` copies a trained `keras.layers.GRU`'s weights into the cell.
    `cell.noisy_units` lists the units, sublayers named `update_gate`, `reset_gate`
    and `candidate`.
    States: `[h, noise_step]`. The last, `(batch, 3)`, counts the steps (base-256 digits, zeros to
    start) so that every step draws fresh noise inside any loop, JAX's `lax.scan` included, with
    or without `unroll`. `RNN(..., return_state=True)` returns it too (an `activity_regularizer`
    of that RNN then counts it with the other outputs: a constant without gradient, but in the
    reported loss; regularize `h` in a layer after the RNN instead), and an `initial_state` must
    include it (`cell.get_initial_state(batch_size)` gives zeros for every state). Inference
    neither draws nor counts. Under `Bidirectional`, give the backward layer its own seed (an
    identical config draws identical noise).
    Numerics: with `alpha != 1` (the defaults) an output-noise unit is linear, hence unbounded,
    where saturated (see `NoisyHardTanh`), and the cell multiplies units, so large inputs (about
    1e30 in float32, far less in float16) can overflow the state to Inf and the next step to NaN.
    `gate_alpha=1` and `activation_alpha=1`, or input noise, keep every unit in its hard range and
    the outputs bounded.

    Args:
        units: positive int, the size of the output and of the state.
        gate_noise: noise mode of the two gates: "output" (default), "input", "input_saturated"
            or "input_learned".
        activation_noise: noise mode of the candidate; default "output".
        gate_alpha: `alpha` of the gates; None (default) for NoisyHardSigmoid's default, 1.1.
        activation_alpha: `alpha` of the candidate; None for NoisyHardTanh's default, 1.15.
        gate_c: noise scale `c` of the gates; None for NoisyHardSigmoid's default for the mode.
        activation_c: `c` of the candidate; None for NoisyHardTanh's default for the mode.
        use_bias: as in `keras.layers.GRUCell`.
        kernel_initializer: as in `keras.layers.GRUCell`.
        recurrent_initializer: as in `keras.layers.GRUCell`.
        bias_initializer: as in `keras.layers.GRUCell`.
        kernel_regularizer: as in `keras.layers.GRUCell`.
        recurrent_regularizer: as in `keras.layers.GRUCell`.
        bias_regularizer: as in `keras.layers.GRUCell`.
        kernel_constraint: as in `keras.layers.GRUCell`.
        recurrent_constraint: as in `keras.layers.GRUCell`.
        bias_constraint: as in `keras.layers.GRUCell`.
        dropout: as in `keras.layers.GRUCell`.
        recurrent_dropout: as in `keras.layers.GRUCell`.
        reset_after: as in `keras.layers.GRUCell`.
        seed: int or None: seeds the dropout masks (as in Keras) and, as `seed + k`, noisy unit k
            (1 to 3: update gate, reset gate, candidate), so every unit draws its own noise.
        noise_at_inference: keep drawing noise when `training=False` (Monte Carlo). Default False.
        **kwargs (Any): `implementation` (1 or 2, as in Keras) and base layer keyword arguments,
            such as `name` and `dtype`. `activation` and `recurrent_activation` are refused: the
            noisy units replace them.

    Call arguments:
        inputs: a 2D tensor `(batch, features)`, one time step.
        states: `[h, noise_step]`: a `(batch, units)` tensor and the `(batch, 3)` step count.
        training: whether to draw noise and apply dropout (`RNN` passes it through; Keras sets it
            in `fit` and clears it in `predict`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
        >>> rnn = keras.layers.RNN(NoisyGRUCell(4, seed=0))
        >>> tuple(rnn(x).shape)
        (2, 4)
        >>> gru = keras.layers.GRU(4)  # stands for a trained Keras GRU
        >>> _ = gru(x)
        >>> rnn.cell.load_keras_weights(gru)
        >>> bias = keras.ops.convert_to_numpy(rnn.cell.bias)
        >>> bool(np.array_equal(bias, keras.ops.convert_to_numpy(gru.cell.bias)))
        True

    Reference:
        C. Gulcehre, M. Moczulski, M. Denil, Y. Bengio, "Noisy Activation Functions", ICML 2016,
        [arXiv:1603.00391](https://arxiv.org/abs/1603.00391).
    """

    KERAS_CELL = keras.layers.GRUCell
    UNITS = (("update_gate", "gate"), ("reset_gate", "gate"), ("candidate", "activation"))
    STATE_NAMES = ("h", "noise_step")

    def __init__(
        self,
        units: int,
        gate_noise: str = "output",
        activation_noise: str = "output",
        gate_alpha: float | None = None,
        activation_alpha: float | None = None,
        gate_c: float | None = None,
        activation_c: float | None = None,
        use_bias: bool = True,
        kernel_initializer: str | dict | initializers.Initializer = "glorot_uniform",
        recurrent_initializer: str | dict | initializers.Initializer = "orthogonal",
        bias_initializer: str | dict | initializers.Initializer = "zeros",
        kernel_regularizer: str | dict | regularizers.Regularizer | None = None,
        recurrent_regularizer: str | dict | regularizers.Regularizer | None = None,
        bias_regularizer: str | dict | regularizers.Regularizer | None = None,
        kernel_constraint: str | dict | constraints.Constraint | None = None,
        recurrent_constraint: str | dict | constraints.Constraint | None = None,
        bias_constraint: str | dict | constraints.Constraint | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
        seed: int | None = None,
        noise_at_inference: bool = False,
        **kwargs,
    ):
        self._check_cell_args(units, seed, kwargs)
        if not isinstance(reset_after, bool):
            raise ValueError(f"`reset_after` must be True or False. Received: reset_after={reset_after!r}")
        super().__init__(
            units,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            **kwargs,
        )
        self._init_noisy_units(
            gate_noise,
            activation_noise,
            gate_alpha,
            activation_alpha,
            gate_c,
            activation_c,
            noise_at_inference,
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_noisy_units(input_shape)

    def _check_compatible(self, source) -> None:
        if source.reset_after != self.reset_after:
            raise ValueError(
                f"`source` has reset_after={source.reset_after!r} but this cell has "
                f"reset_after={self.reset_after!r}: the bias layouts differ."
            )

    def call(self, inputs, states, training=False):
        (h_tm1,), noise_step = self._split_states(states)
        with self._step_noise(noise_step, training) as next_noise_step:
            h = self._keras_step(inputs, h_tm1, training)
        return h, [h, next_noise_step]

    def _keras_step(self, inputs, h_tm1, training):
        # Keras' GRUCell.call, step for step, with the noisy units in place of its activations.
        units = self.units

        if self.use_bias:
            if not self.reset_after:
                input_bias, recurrent_bias = self.bias, None
            else:
                input_bias, recurrent_bias = (
                    ops.squeeze(e, axis=0) for e in ops.split(self.bias, self.bias.shape[0], axis=0)
                )

        if self.implementation == 1:
            if training and 0.0 < self.dropout < 1.0:
                dp_mask = self.get_dropout_mask(inputs)
                inputs_z = inputs * dp_mask[0]
                inputs_r = inputs * dp_mask[1]
                inputs_h = inputs * dp_mask[2]
            else:
                inputs_z = inputs_r = inputs_h = inputs

            x_z = ops.matmul(inputs_z, self.kernel[:, :units])
            x_r = ops.matmul(inputs_r, self.kernel[:, units : units * 2])
            x_h = ops.matmul(inputs_h, self.kernel[:, units * 2 :])

            if self.use_bias:
                x_z += input_bias[:units]
                x_r += input_bias[units : units * 2]
                x_h += input_bias[units * 2 :]

            if training and 0.0 < self.recurrent_dropout < 1.0:
                rec_dp_mask = self.get_recurrent_dropout_mask(h_tm1)
                h_tm1_z = h_tm1 * rec_dp_mask[0]
                h_tm1_r = h_tm1 * rec_dp_mask[1]
                h_tm1_h = h_tm1 * rec_dp_mask[2]
            else:
                h_tm1_z = h_tm1_r = h_tm1_h = h_tm1

            recurrent_z = ops.matmul(h_tm1_z, self.recurrent_kernel[:, :units])
            recurrent_r = ops.matmul(h_tm1_r, self.recurrent_kernel[:, units : units * 2])
            if self.reset_after and self.use_bias:
                recurrent_z += recurrent_bias[:units]
                recurrent_r += recurrent_bias[units : units * 2]

            z = self.update_gate(x_z + recurrent_z, training=training)
            r = self.reset_gate(x_r + recurrent_r, training=training)

            # reset gate applied after/before matrix multiplication
            if self.reset_after:
                recurrent_h = ops.matmul(h_tm1_h, self.recurrent_kernel[:, units * 2 :])
                if self.use_bias:
                    recurrent_h += recurrent_bias[units * 2 :]
                recurrent_h = r * recurrent_h
            else:
                recurrent_h = ops.matmul(r * h_tm1_h, self.recurrent_kernel[:, units * 2 :])
        else:
            if training and 0.0 < self.dropout < 1.0:
                dp_mask = self.get_dropout_mask(inputs)
                inputs = inputs * dp_mask

            # inputs projected by all gate matrices at once
            matrix_x = ops.matmul(inputs, self.kernel)
            if self.use_bias:
                matrix_x = ops.add(matrix_x, input_bias)
            x_z, x_r, x_h = ops.split(matrix_x, 3, axis=-1)

            if self.reset_after:
                # hidden state projected by all gate matrices at once
                matrix_inner = ops.matmul(h_tm1, self.recurrent_kernel)
                if self.use_bias:
                    matrix_inner += recurrent_bias
            else:
                # hidden state projected separately for update/reset and new
                matrix_inner = ops.matmul(h_tm1, self.recurrent_kernel[:, : 2 * units])

            recurrent_z = matrix_inner[:, :units]
            recurrent_r = matrix_inner[:, units : units * 2]
            recurrent_h = matrix_inner[:, units * 2 :]

            z = self.update_gate(x_z + recurrent_z, training=training)
            r = self.reset_gate(x_r + recurrent_r, training=training)

            if self.reset_after:
                recurrent_h = r * recurrent_h
            else:
                recurrent_h = ops.matmul(r * h_tm1, self.recurrent_kernel[:, 2 * units :])

        hh = self.candidate(x_h + recurrent_h, training=training)

        # previous and candidate state mixed by update gate
        return z * h_tm1 + (1 - z) * hh

    def get_config(self):
        config = self._keras_config()
        config["reset_after"] = self.reset_after
        return config
