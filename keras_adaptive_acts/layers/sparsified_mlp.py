"""The SparsifiedMLP block: a transformer MLP with the activation-sparsity modifications."""

from __future__ import annotations

import keras
from keras import ops

from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization
from keras_adaptive_acts.layers.zeroth_bias import ZerothBias
from keras_adaptive_acts.registry import activation_layer, register
from keras_adaptive_acts.validation import check_choice, check_number

NORMS = ("restricted", "layer")
# Where the block adds its zeroth bias: its own choice, made in `call` (the ZerothBias layer only adds).
ZEROTH_BIAS_POSITIONS = ("input", "output")


def _activation_layer(activation: str, name: str, dtype) -> keras.layers.Layer:
    """A new layer for the activation name `activation` (see `registry.activation_layer`)."""
    if not isinstance(activation, str) or not activation:
        raise ValueError(f"`activation` must be a name (a string). Received: activation={activation!r}")
    try:
        return activation_layer(activation, name=name, dtype=dtype)
    except ValueError as error:
        raise ValueError(
            "`activation` must name one of this package's activation layers (such as 'j_squared_relu') "
            f"or a Keras activation (such as 'relu'). {error} Received: activation={activation!r}"
        ) from None


@register
class SparsifiedMLP(keras.layers.Layer):
    """A transformer MLP block with the activation-sparsity modifications of Peng et al.

    ```
    h   = norm(x)                         # RestrictedLayerNormalization (scratch) or LayerNormalization
    h   = h + b0[:L]                      # ZerothBias, zeroth_bias_position="input" (the paper)
    h   = dropout(act(fc1(h)))            # act: J-SquaredReLU by default
    h   = fc2(h)                          # back to d_model
    h   = h + b0[:L]                      # ZerothBias, zeroth_bias_position="output" (official code)
    out = x + dropout(h)                  # residual=True;  out = dropout(h) otherwise
    ```

    The zeroth bias is clipped to `|b0| <= clip * |gamma|` of the block's own norm after every
    update, and with `norm="restricted"` gamma stays >= 1 (both are Keras variable constraints,
    so they hold in `jit_compile=True` training). The block owns its norm and zeroth bias, so it
    serialises with no linking by name (unlike a free-standing `ZerothBias`).

    Args:
        hidden_units: width of the hidden layer, an int >= 1.
        activation: name of the activation, resolved by `keras_adaptive_acts.registry.activation_layer`:
            one of this package's activation layers (`"j_squared_relu"`, `"competitive_relu"`, ...;
            instantiated with default arguments) or a Keras activation (`"relu"`, the ReLU layer;
            `"gelu"`, ...: a `keras.layers.Activation`).
        norm: `"restricted"` (a `RestrictedLayerNormalization` in scratch mode) or `"layer"`
            (a plain `keras.layers.LayerNormalization`).
        zeroth_bias: whether the block has a `ZerothBias`.
        zeroth_bias_position: `"input"` (added to the normalised input of `fc1`) or `"output"`
            (added to the output of `fc2`).
        max_len: the longest sequence of the zeroth bias (int >= 1); None takes the static
            sequence length of the input the block is built on.
        clip: the zeroth bias's clip factor (finite, >= 0).
        residual: whether the block returns `x + mlp(x)` (as in a transformer) or `mlp(x)`.
        dropout: dropout rate in [0, 1), after the activation and on the block's output.
        epsilon: the norm's epsilon, >= 0 (0 gives NaN for a constant slice).
        seed: optional seed of the dropout.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor `(batch, L, d_model)`, or `(batch, d_model)` without zeroth bias;
            integers are cast to the compute dtype (float32 by default).
        training: whether dropout is active.

    Attributes:
        norm, zeroth_bias (None without), fc1, act, fc2 (created in `build`), drop: the sublayers,
            named after the block (`f"{name}_norm"`, `_zeroth_bias`, `_fc1`, `_act`, `_fc2`,
            `_dropout`), so that the sublayers of several blocks have distinct names: pass
            `layers=[block.act for block in blocks]` to `measure_sparsity` or `SparsityMonitor`,
            whose results are keyed by name (e.g. `"mlp0_act"`).

    Examples:
        >>> import numpy as np
        >>> block = SparsifiedMLP(hidden_units=8, max_len=5)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
        >>> tuple(block(x).shape)
        (2, 5, 4)
        >>> type(block.norm).__name__, type(block.act).__name__, block.zeroth_bias_position
        ('RestrictedLayerNormalization', 'JSquaredReLU', 'input')
        >>> SparsifiedMLP(hidden_units=8, name="mlp0").act.name  # named after the block
        'mlp0_act'

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity
        through Flat Minima and Adversarial Robustness",
        [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    def __init__(
        self,
        hidden_units: int,
        activation: str = "j_squared_relu",
        norm: str = "restricted",
        zeroth_bias: bool = True,
        zeroth_bias_position: str = "input",
        max_len: int | None = None,
        clip: float = 0.1,
        residual: bool = True,
        dropout: float = 0.0,
        epsilon: float = 1e-6,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1:
            raise ValueError(f"`hidden_units` must be an int >= 1. Received: hidden_units={hidden_units!r}")
        check_choice("norm", norm, NORMS)
        check_choice("zeroth_bias_position", zeroth_bias_position, ZEROTH_BIAS_POSITIONS)
        for flag_name, flag in (("zeroth_bias", zeroth_bias), ("residual", residual)):
            if not isinstance(flag, bool):
                raise ValueError(f"`{flag_name}` must be True or False. Received: {flag_name}={flag!r}")
        dropout = check_number("dropout", dropout, minimum=0.0)
        if dropout >= 1:
            raise ValueError(f"`dropout` must be < 1. Received: dropout={dropout!r}")
        check_number("epsilon", epsilon, minimum=0.0)
        self.hidden_units = hidden_units
        self.activation = activation
        self.norm_type = norm
        self.use_zeroth_bias = zeroth_bias
        self.zeroth_bias_position = zeroth_bias_position
        self.max_len = max_len
        self.clip = check_number("clip", clip, minimum=0.0)
        self.residual = residual
        self.dropout = dropout
        self.epsilon = float(epsilon)
        self.seed = seed

        policy = self.dtype_policy  # the sublayers follow the block's dtype policy
        # The sublayers are named after the block ("mlp0_act", ...): names unique in a model with
        # several blocks, which is what measure_sparsity and SparsityMonitor key their results by.
        names = {
            role: f"{self.name}_{role}" for role in ("norm", "zeroth_bias", "fc1", "act", "fc2", "dropout")
        }
        if norm == "restricted":
            self.norm = RestrictedLayerNormalization(
                mode="scratch", epsilon=epsilon, name=names["norm"], dtype=policy
            )
        else:
            self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name=names["norm"], dtype=policy)
        self.zeroth_bias = None
        if zeroth_bias:
            self.zeroth_bias = ZerothBias(
                max_len=max_len,
                clip=clip,
                reference_norm=self.norm,
                name=names["zeroth_bias"],
                dtype=policy,
            )
        self.fc1 = keras.layers.Dense(hidden_units, name=names["fc1"], dtype=policy)
        # The policy's name, not the object: a layer whose config Keras records from its constructor's
        # arguments (JSquaredReLU) cannot serialise a policy object.
        self.act = _activation_layer(activation, name=names["act"], dtype=policy.name)
        self.fc2 = None  # its width is the input's d_model: created in build
        self.drop = keras.layers.Dropout(dropout, seed=seed, name=names["dropout"], dtype=policy)
        self.supports_masking = True

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        ranks = (3,) if self.use_zeroth_bias else (2, 3)
        if len(input_shape) not in ranks:
            expected = (
                "(batch, L, d_model)" if self.use_zeroth_bias else "(batch, d_model) or (batch, L, d_model)"
            )
            raise ValueError(
                f"SparsifiedMLP expects inputs of shape {expected}. Received: input_shape={input_shape}"
            )
        d_model = input_shape[-1]
        if d_model is None:
            raise ValueError(f"The last axis (d_model) must be known. Received: input_shape={input_shape}")
        hidden_shape = (*input_shape[:-1], self.hidden_units)
        self.norm.build(input_shape)
        if self.zeroth_bias is not None and self.zeroth_bias_position == "input":
            self.zeroth_bias.build(input_shape)
        self.fc1.build(input_shape)
        self.act.build(hidden_shape)
        self.fc2 = keras.layers.Dense(d_model, name=f"{self.name}_fc2", dtype=self.dtype_policy)
        self.fc2.build(hidden_shape)
        if self.zeroth_bias is not None and self.zeroth_bias_position == "output":
            self.zeroth_bias.build(input_shape)

    def call(self, inputs, training=False):
        inputs = ops.cast(inputs, self.compute_dtype)  # integers too: the residual adds a float output
        hidden = self.norm(inputs)
        if self.zeroth_bias is not None and self.zeroth_bias_position == "input":
            hidden = self.zeroth_bias(hidden)
        hidden = self.drop(self.act(self.fc1(hidden)), training=training)
        hidden = self.fc2(hidden)
        if self.zeroth_bias is not None and self.zeroth_bias_position == "output":
            hidden = self.zeroth_bias(hidden)
        hidden = self.drop(hidden, training=training)
        if self.residual:
            return inputs + hidden
        return hidden

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        max_len = self.max_len
        if self.zeroth_bias is not None and self.zeroth_bias.max_len is not None:
            max_len = self.zeroth_bias.max_len  # the length taken from the input when max_len=None
        config.update(
            {
                "hidden_units": self.hidden_units,
                "activation": self.activation,
                "norm": self.norm_type,
                "zeroth_bias": self.use_zeroth_bias,
                "zeroth_bias_position": self.zeroth_bias_position,
                "max_len": max_len,
                "clip": self.clip,
                "residual": self.residual,
                "dropout": self.dropout,
                "epsilon": self.epsilon,
                "seed": self.seed,
            }
        )
        return config
