"""The CompetitiveReLU layer (CAReLU)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.exact_numbers import exact_initializer
from keras_adaptive_acts.ops.competitive import (
    axis_tuple,
    check_competition_args,
    check_same_shape,
    reduction_axes,
    relu_identity_beta,
    statistics_dtype,
    unchecked_competitive_relu,
    unchecked_input_derivative,
    unchecked_statistics,
)
from keras_adaptive_acts.registry import register, with_default_name

__all__ = ["CompetitiveReLU"]

INIT_PRESETS = ("relu", "competition")
DEFAULT_SCALE_BOUND = 2.0
FORMER_SCALE_BOUND_NAME = "K"  # the argument's name up to version 0.1.0, still read from saved configs


@register(activation=True)
class CompetitiveReLU(keras.layers.Layer):
    """Competition-based adaptive ReLU: the positives and negatives of a sample compete.

    ```
    p   = share of the slice won by its positive entries    # competition=
    s   = K * tanh(alpha * p + beta)                        # one scalar per slice, in (-K, K)
    out = relu(s * z)
    ```

    with `K = scale_bound` and, over the reduction axes `A` (`axis`; default every non-batch axis,
    i.e. per sample):

    ```
    energy: p = sum_A(relu(z)**2) / (sum_A(z**2) + eps)     # the paper's CAReLU_E (default)
    l1:     p = sum_A(relu(z))    / (sum_A(|z|) + eps)
    count:  p = mean_A(z > 0)                               # no gradient flows through p
    ```

    `alpha` and `beta` are two trainable scalars. While `s > 0` the layer is a ReLU scaled by `s`;
    when `s < 0` the negative entries win and pass as `|s| * relu(-z)`. The layer has no training
    mode: training and inference compute the same function. `competition_statistics(inputs)` returns
    the `p` and `s` of each slice, as the forward pass computes them.

    Decisions of ours where the paper is silent (see the docs page): the `l1` and `count`
    readings of p; `eps=1e-6`; `K=2` (`scale_bound`); the default initialisation `alpha=0, beta=atanh(1/K)`
    (`init="relu"`), which makes the layer equal to ReLU to the last bit, so it can replace the
    ReLU of a trained network; the `init="competition"` preset `alpha=2, beta=-1` (tanh of a
    smoothed `2p - 1`); the reduction axes; the optional second input.

    Numerics: the statistics are computed in float32 under float16/bfloat16 compute dtypes.
    Integer inputs are cast to the compute dtype. An all-zero slice gives zeros and zero, finite
    gradients. Slices are independent: a NaN or +Inf in one sample makes that sample's
    output NaN (for `energy` and `l1`) and the gradients of `alpha`/`beta` NaN, but leaves the
    other samples' outputs and input gradients untouched; a -Inf only loses (it makes `p` 0).
    Finite slices never overflow in the statistics (a slice with entries above 1 is divided by its
    largest before its sums), and an empty slice has `p = 0` and zero gradients. Masks are passed
    through unchanged; masked entries still take part in the competition of their slice (use
    `axis=-1` for per-timestep competition).

    Args:
        competition: how `p` is measured: `"energy"`, `"l1"` or `"count"`.
        scale_bound: `K`, the bound of the scale, `|s| < K`; a fixed positive constant.
            `init="relu"` needs `scale_bound > 1`. (Named `K` up to version 0.1.0: `K=` still
            works, with a `DeprecationWarning`, and saved configs with `"K"` load.)
        eps: positive constant added to the denominator of `p`.
        axis: the axes `p` is measured over: None (every non-batch axis), an int or a tuple of
            ints such as `-1` (per position / token) or `(1, 2)` (per channel of an NHWC image).
            Never the batch axis.
        init: `"relu"` (`alpha=0, beta=atanh(1/scale_bound)`: identical to ReLU) or `"competition"`
            (`alpha=2, beta=-1`). Explicit initializers below take precedence.
        alpha_initializer: initializer of `alpha`; default from `init`.
        beta_initializer: initializer of `beta`; default from `init`.
        alpha_regularizer: optional regularizer of `alpha`.
        beta_regularizer: optional regularizer of `beta`.
        alpha_constraint: optional constraint on `alpha`.
        beta_constraint: optional constraint on `beta`.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor of rank >= 2, or a list `[z, source]` of two tensors of the same shape:
            `p` is then measured on `source` (e.g. the tensor before a BatchNormalization, where
            the competition is not flattened to p ~ 0.5) and `z` is scaled.

    Examples:
        >>> import numpy as np
        >>> layer = CompetitiveReLU()
        >>> x = np.array([[-1.0, 0.5, 2.0]], dtype="float32")
        >>> keras.ops.convert_to_numpy(layer(x)).tolist()  # identical to ReLU at initialisation
        [[0.0, 0.5, 2.0]]
        >>> layer = CompetitiveReLU(init="competition")  # s = 2 tanh(2p - 1), p = 4.25 / 5.25
        >>> np.round(keras.ops.convert_to_numpy(layer(x)), 4).tolist()
        [[0.0, 0.5505, 2.2019]]

    Reference:
        J. Chen, Z. Pan, "Competition-based Adaptive ReLU for Deep Neural Networks",
        [arXiv:2407.19441](https://arxiv.org/abs/2407.19441).
    """

    def __init__(
        self,
        competition: str = "energy",
        scale_bound: float = DEFAULT_SCALE_BOUND,
        eps: float = 1e-6,
        axis: int | Sequence[int] | None = None,
        init: str = "relu",
        alpha_initializer: str | dict | initializers.Initializer | None = None,
        beta_initializer: str | dict | initializers.Initializer | None = None,
        alpha_regularizer: str | dict | regularizers.Regularizer | None = None,
        beta_regularizer: str | dict | regularizers.Regularizer | None = None,
        alpha_constraint: str | dict | constraints.Constraint | None = None,
        beta_constraint: str | dict | constraints.Constraint | None = None,
        **kwargs,
    ):
        scale_bound = _scale_bound_from_former_name(scale_bound, kwargs)
        super().__init__(**with_default_name(self, CompetitiveReLU, kwargs))
        check_competition_args(competition, eps, scale_bound)
        if init not in INIT_PRESETS:
            raise ValueError(f"`init` must be one of {INIT_PRESETS}. Received: init={init!r}")
        if init == "relu" and scale_bound <= 1 and beta_initializer is None:
            raise ValueError(
                "init='relu' needs scale_bound > 1: s = scale_bound * tanh(.) can only equal 1 when "
                f"scale_bound > 1. Received: scale_bound={scale_bound!r}"
            )
        axis_tuple(axis)  # the rank-dependent checks happen in build()
        preset_alpha, preset_beta = (0.0, relu_identity_beta(scale_bound)) if init == "relu" else (2.0, -1.0)
        self.competition = competition
        self.scale_bound = float(scale_bound)
        self.eps = float(eps)
        self.axis = tuple(axis) if isinstance(axis, list) else axis
        self.init = init
        self.alpha_initializer = initializers.get(alpha_initializer or initializers.Constant(preset_alpha))
        self.beta_initializer = initializers.get(beta_initializer or initializers.Constant(preset_beta))
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        self.beta_constraint = constraints.get(beta_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        z_shape = self._check_input_shapes(input_shape)
        self._axes = reduction_axes(len(z_shape), self.axis)
        # The reduction axes hold for this rank only: a call on another one is refused by Keras, as
        # for its PReLU, where it would compete over other axes (or fail inside the backend).
        spec = keras.layers.InputSpec(ndim=len(z_shape))
        self.input_spec = [spec, spec] if _is_list_of_shapes(input_shape) else spec
        for name in ("alpha", "beta"):
            weight = self.add_weight(
                shape=(),
                name=name,
                initializer=exact_initializer(getattr(self, f"{name}_initializer")),
                regularizer=getattr(self, f"{name}_regularizer"),
                constraint=getattr(self, f"{name}_constraint"),
                autocast=False,  # kept in float32 under mixed precision, like the statistics
            )
            setattr(self, name, weight)

    def call(self, inputs):
        # The arguments were checked in __init__ and build: the op's unchecked path checks nothing again.
        return unchecked_competitive_relu(*self._operands(inputs), **self._options())

    def competition_statistics(self, inputs: Any) -> tuple[Any, Any]:
        """The share `p` and the scale `s` of each slice of `inputs`, as the forward pass computes them.

        One code path with `call` (same casts, same dtypes, same formulas), with the current
        `alpha` and `beta`. Builds the layer first if needed. Differentiable.

        Args:
            inputs: what the layer is called on: a tensor of rank >= 2, or a list `[z, source]`
                (`p` is then measured on `source`).

        Returns:
            `(p, s)`: two tensors of the input's rank, of size 1 along the reduction axes, in
            float32 under a float16/bfloat16 compute dtype (else in the compute dtype).

        Examples:
            >>> import numpy as np
            >>> layer = CompetitiveReLU(init="competition")  # s = 2 tanh(2p - 1)
            >>> p, s = layer.competition_statistics(np.array([[-1.0, 0.5, 2.0]], "float32"))
            >>> p, s = keras.ops.convert_to_numpy(p), keras.ops.convert_to_numpy(s)
            >>> np.round(p, 4).tolist(), np.round(s, 4).tolist()
            ([[0.8095]], [[1.101]])
        """
        z, alpha, beta, source = self._built_operands(inputs)
        return unchecked_statistics(z, alpha, beta, source, **self._options())

    def input_derivative(self, inputs: Any) -> Any:
        """`d output[i] / d inputs[i]` for every entry: the diagonal of the layer's Jacobian.

        The derivative the backward pass gives each entry through its own output (with the
        current `alpha` and `beta`): `[s * x > 0] * (s + x * ds/dx)`, where `ds/dx` is the
        entry's pull on its slice's scale (zero for the count, or when `p` is measured on a
        second input). It is zero exactly where the entry lost the competition or was cut by the
        ReLU: `measure_sparsity(..., derivative=True)` counts those zeros. The competition also
        couples the entries of a slice, so the full gradient has off-diagonal terms; they are
        one dense per-slice term and carry no per-entry sparsity. Builds the layer first if needed.

        Args:
            inputs: what the layer is called on: a tensor of rank >= 2, or a list `[z, source]`.

        Returns:
            A tensor of the shape of `z`, in the compute dtype.

        Examples:
            >>> import numpy as np
            >>> layer = CompetitiveReLU(competition="count")  # s == 1: the derivative of ReLU
            >>> derivative = layer.input_derivative(np.array([[-1.0, 0.0, 2.0]], "float32"))
            >>> keras.ops.convert_to_numpy(derivative).tolist()
            [[0.0, 0.0, 1.0]]
        """
        z, alpha, beta, source = self._built_operands(inputs)
        return unchecked_input_derivative(z, alpha, beta, source, **self._options())

    def _built_operands(self, inputs):
        """`_operands(inputs)`, building the layer first on the inputs' shapes if it is not built."""
        if not self.built:
            tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            shapes = [tuple(ops.shape(tensor)) for tensor in tensors]
            self.build(shapes if isinstance(inputs, (list, tuple)) else shapes[0])
        return self._operands(inputs)

    def _operands(self, inputs):
        """`(z, alpha, beta, source)` for the op: inputs in the compute dtype, weights in the statistics'.

        The weights are not autocast under mixed precision: they stay float32, like the statistics.
        """
        source = None
        if isinstance(inputs, (list, tuple)):
            inputs, source = inputs
            source = ops.cast(source, self.compute_dtype)
        inputs = ops.cast(inputs, self.compute_dtype)
        stats = statistics_dtype(self.compute_dtype)
        return inputs, ops.cast(self.alpha, stats), ops.cast(self.beta, stats), source

    def _options(self) -> dict[str, Any]:
        return {
            "competition": self.competition,
            "scale_bound": self.scale_bound,
            "eps": self.eps,
            "axes": self._axes,
        }

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape):
        return self._check_input_shapes(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "competition": self.competition,
                "scale_bound": self.scale_bound,
                "eps": self.eps,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
                "init": self.init,
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "beta_constraint": constraints.serialize(self.beta_constraint),
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CompetitiveReLU:
        # Configs saved up to version 0.1.0 name `scale_bound` "K": they load, without a warning
        # (the user who loads a file cannot change how it was written).
        if FORMER_SCALE_BOUND_NAME in config and "scale_bound" not in config:
            config = dict(config)
            config["scale_bound"] = config.pop(FORMER_SCALE_BOUND_NAME)
        return super().from_config(config)

    @staticmethod
    def _check_input_shapes(input_shape):
        """The shape of `z`; for two inputs, checks that they have one shape."""
        if _is_list_of_shapes(input_shape):
            if len(input_shape) != 2:
                raise ValueError(
                    "CompetitiveReLU takes one tensor or a list [z, source] of two. "
                    f"Received: {len(input_shape)} inputs"
                )
            check_same_shape(input_shape[0], input_shape[1])
            return tuple(input_shape[0])
        return tuple(input_shape)


def _is_list_of_shapes(input_shape) -> bool:
    # A list of shapes, not one shape (which may itself be a list after a JSON round trip).
    return bool(input_shape) and all(isinstance(shape, (list, tuple)) for shape in input_shape)


def _scale_bound_from_former_name(scale_bound: float, kwargs: dict[str, Any]) -> float:
    """Takes `K`, the former name of `scale_bound`, out of `kwargs`; warns that it is deprecated."""
    if FORMER_SCALE_BOUND_NAME not in kwargs:
        return scale_bound
    former = kwargs.pop(FORMER_SCALE_BOUND_NAME)
    if scale_bound != DEFAULT_SCALE_BOUND:
        raise ValueError(
            "`K` is the former name of `scale_bound`: pass `scale_bound` only. "
            f"Received: K={former!r} and scale_bound={scale_bound!r}"
        )
    warnings.warn(
        "CompetitiveReLU(K=...) is deprecated: the argument is named `scale_bound` now (K stays the "
        f"symbol of the formula). Pass `scale_bound={former!r}`. Received: K={former!r}",
        DeprecationWarning,
        stacklevel=3,
    )
    return former
