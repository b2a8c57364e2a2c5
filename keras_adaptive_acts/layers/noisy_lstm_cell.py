"""The NoisyLSTMCell layer, and the part it shares with NoisyGRUCell."""

from __future__ import annotations

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.layers.noisy_cell import NoisyCellMixin
from keras_adaptive_acts.registry import register


@register
class NoisyLSTMCell(NoisyCellMixin, keras.layers.LSTMCell):
    """An LSTM cell whose gates and tanh units are noisy activations (Gulcehre et al., 2016).

    Keras' `LSTMCell` with its activation functions replaced by noisy units, each its own sublayer
    with its own per-unit `p` and noise scale `c`: `NoisyHardSigmoid` for the gates, `NoisyHardTanh`
    for the candidate and the cell output (the paper's recurrent set-up). The weight layout
    (`kernel`, `recurrent_kernel`, `bias`, gates in the order i, f, c, o) and the step math
    (`implementation` 1 and 2, dropout masks) are Keras'; the noisy units' weights come after
    Keras' weights. Use it inside `keras.layers.RNN`:

    ```
    z = x W + h_prev U + b,  split into z_i, z_f, z_c, z_o
    i = s_i(z_i),  f = s_f(z_f),  o = s_o(z_o)                 s_* : NoisyHardSigmoid units
    c = f * c_prev + i * t_c(z_c)                               t_* : NoisyHardTanh units
    h = o * t_h(c)
    train:      each unit  alpha * h(x) + (1 - alpha) * u(x) + d * sigma(x) * eps   (noise drawn)
    inference:  each unit  alpha * h(x) + (1 - alpha) * u(x) + d * sigma(x) * E[eps] (deterministic)
    ```

    with the paper's `h(x) = clip(0.25 x + 0.5, 0, 1)` (gates) or `clip(x, -1, 1)` (tanh units);
    see `NoisyHardSigmoid` and `NoisyHardTanh` for `d`, `sigma` and the input-noise modes.
    `training` reaches every unit, so noise is drawn only in training (unless `noise_at_inference`).
    `load_keras_weights` copies a trained `keras.layers.LSTM`'s weights into the cell.
    `cell.noisy_units` lists the units, sublayers named `input_gate`, `forget_gate`,
    `candidate`, `output_gate` and `cell_output`.
    States: `[h, c, noise_step]`. The last, `(batch, 3)`, counts the steps (base-256 digits, zeros to
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
        units: positive int, the size of the output and of both states.
        gate_noise: noise mode of the three gates: "output" (default), "input", "input_saturated"
            or "input_learned".
        activation_noise: noise mode of the candidate and cell-output units; default "output".
        gate_alpha: `alpha` of the gates; None (default) for NoisyHardSigmoid's default, 1.1.
        activation_alpha: `alpha` of the tanh units; None for NoisyHardTanh's default, 1.15.
        gate_c: noise scale `c` of the gates; None for NoisyHardSigmoid's default for the mode.
        activation_c: `c` of the tanh units; None for NoisyHardTanh's default for the mode.
        use_bias: as in `keras.layers.LSTMCell`.
        kernel_initializer: as in `keras.layers.LSTMCell`.
        recurrent_initializer: as in `keras.layers.LSTMCell`.
        bias_initializer: as in `keras.layers.LSTMCell`.
        unit_forget_bias: as in `keras.layers.LSTMCell`.
        kernel_regularizer: as in `keras.layers.LSTMCell`.
        recurrent_regularizer: as in `keras.layers.LSTMCell`.
        bias_regularizer: as in `keras.layers.LSTMCell`.
        kernel_constraint: as in `keras.layers.LSTMCell`.
        recurrent_constraint: as in `keras.layers.LSTMCell`.
        bias_constraint: as in `keras.layers.LSTMCell`.
        dropout: as in `keras.layers.LSTMCell`.
        recurrent_dropout: as in `keras.layers.LSTMCell`.
        seed: int or None: seeds the dropout masks (as in Keras) and, as `seed + k`, noisy unit k
            (1 to 5: input gate, forget gate, candidate, output gate, cell output), so every unit
            draws its own noise.
        noise_at_inference: keep drawing noise when `training=False` (Monte Carlo). Default False.
        **kwargs (Any): `implementation` (1 or 2, as in Keras) and base layer keyword arguments,
            such as `name` and `dtype`. `activation` and `recurrent_activation` are refused: the
            noisy units replace them.

    Call arguments:
        inputs: a 2D tensor `(batch, features)`, one time step.
        states: `[h, c, noise_step]`: two `(batch, units)` tensors and the `(batch, 3)` step count.
        training: whether to draw noise and apply dropout (`RNN` passes it through; Keras sets it
            in `fit` and clears it in `predict`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
        >>> rnn = keras.layers.RNN(NoisyLSTMCell(4, seed=0), return_sequences=True)
        >>> tuple(rnn(x).shape)
        (2, 5, 4)
        >>> lstm = keras.layers.LSTM(4)  # stands for a trained Keras LSTM
        >>> _ = lstm(x)
        >>> rnn.cell.load_keras_weights(lstm)
        >>> kernel = keras.ops.convert_to_numpy(rnn.cell.kernel)
        >>> bool(np.array_equal(kernel, keras.ops.convert_to_numpy(lstm.cell.kernel)))
        True

    Reference:
        C. Gulcehre, M. Moczulski, M. Denil, Y. Bengio, "Noisy Activation Functions", ICML 2016,
        [arXiv:1603.00391](https://arxiv.org/abs/1603.00391).
    """

    KERAS_CELL = keras.layers.LSTMCell
    UNITS = (
        ("input_gate", "gate"),
        ("forget_gate", "gate"),
        ("candidate", "activation"),
        ("output_gate", "gate"),
        ("cell_output", "activation"),
    )
    STATE_NAMES = ("h", "c", "noise_step")

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
        unit_forget_bias: bool = True,
        kernel_regularizer: str | dict | regularizers.Regularizer | None = None,
        recurrent_regularizer: str | dict | regularizers.Regularizer | None = None,
        bias_regularizer: str | dict | regularizers.Regularizer | None = None,
        kernel_constraint: str | dict | constraints.Constraint | None = None,
        recurrent_constraint: str | dict | constraints.Constraint | None = None,
        bias_constraint: str | dict | constraints.Constraint | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        noise_at_inference: bool = False,
        **kwargs,
    ):
        self._check_cell_args(units, seed, kwargs)
        super().__init__(
            units,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
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

    def call(self, inputs, states, training=False):
        (h_tm1, c_tm1), noise_step = self._split_states(states)
        with self._step_noise(noise_step, training) as next_noise_step:
            h, c = self._keras_step(inputs, h_tm1, c_tm1, training)
        return h, [h, c, next_noise_step]

    def _keras_step(self, inputs, h_tm1, c_tm1, training):
        # Keras' LSTMCell.call, step for step, with the noisy units in place of its activations.
        units = self.units

        if self.implementation == 1:
            if training and 0.0 < self.dropout < 1.0:
                dp_mask = self.get_dropout_mask(inputs)
                inputs_i = inputs * dp_mask[0]
                inputs_f = inputs * dp_mask[1]
                inputs_c = inputs * dp_mask[2]
                inputs_o = inputs * dp_mask[3]
            else:
                inputs_i = inputs_f = inputs_c = inputs_o = inputs
            k_i, k_f, k_c, k_o = ops.split(self.kernel, 4, axis=1)
            x_i = ops.matmul(inputs_i, k_i)
            x_f = ops.matmul(inputs_f, k_f)
            x_c = ops.matmul(inputs_c, k_c)
            x_o = ops.matmul(inputs_o, k_o)
            if self.use_bias:
                b_i, b_f, b_c, b_o = ops.split(self.bias, 4, axis=0)
                x_i += b_i
                x_f += b_f
                x_c += b_c
                x_o += b_o

            if training and 0.0 < self.recurrent_dropout < 1.0:
                rec_dp_mask = self.get_recurrent_dropout_mask(h_tm1)
                h_tm1_i = h_tm1 * rec_dp_mask[0]
                h_tm1_f = h_tm1 * rec_dp_mask[1]
                h_tm1_c = h_tm1 * rec_dp_mask[2]
                h_tm1_o = h_tm1 * rec_dp_mask[3]
            else:
                h_tm1_i = h_tm1_f = h_tm1_c = h_tm1_o = h_tm1
            rk = self.recurrent_kernel
            z_i = x_i + ops.matmul(h_tm1_i, rk[:, :units])
            z_f = x_f + ops.matmul(h_tm1_f, rk[:, units : units * 2])
            z_c = x_c + ops.matmul(h_tm1_c, rk[:, units * 2 : units * 3])
            z_o = x_o + ops.matmul(h_tm1_o, rk[:, units * 3 :])
        else:
            if training and 0.0 < self.dropout < 1.0:
                dp_mask = self.get_dropout_mask(inputs)
                inputs = inputs * dp_mask

            z = ops.matmul(inputs, self.kernel)
            # `+`, not Keras' `ops.add`: on TensorFlow that takes a (0, 4 * units) tensor for a bias
            # and fails on an empty batch (Keras' own LSTMCell does).
            z = z + ops.matmul(h_tm1, self.recurrent_kernel)
            if self.use_bias:
                z = ops.add(z, self.bias)
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=1)

        i = self.input_gate(z_i, training=training)
        f = self.forget_gate(z_f, training=training)
        c = f * c_tm1 + i * self.candidate(z_c, training=training)
        o = self.output_gate(z_o, training=training)
        h = o * self.cell_output(c, training=training)
        return h, c

    def get_config(self):
        config = self._keras_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config
