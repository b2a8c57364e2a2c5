"""The RestrictedLayerNormalization layer: the LayerNorm before an MLP, restricted for activation sparsity."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.ops.competitive import statistics_dtype
from keras_adaptive_acts.ops.dtype_preserving import maximum, mean
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_choice, check_number

MODES = ("scratch", "finetune")


@register
class GammaFloor(keras.constraints.Constraint):
    """Constraint `w <- max(inner(w), floor)`: an optional inner constraint first, then a lower bound.

    The constraint `RestrictedLayerNormalization(mode="scratch")` puts on its `gamma`
    (`floor=1`); usable on any weight.

    Args:
        floor: the lower bound, a finite number.
        inner: an optional constraint applied before the bound (a `keras.constraints`
            identifier or instance).

    Examples:
        >>> import numpy as np
        >>> w = np.array([-2.0, 0.5, 3.0], dtype="float32")
        >>> keras.ops.convert_to_numpy(GammaFloor(1.0)(w)).tolist()
        [1.0, 1.0, 3.0]
    """

    def __init__(self, floor: float = 1.0, inner: str | dict | constraints.Constraint | None = None):
        self.floor = check_number("floor", floor)
        self.inner = constraints.get(inner)

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        w = ops.convert_to_tensor(w)
        return maximum(w, ops.cast(self.floor, w.dtype))

    def get_config(self):
        return {"floor": self.floor, "inner": constraints.serialize(self.inner)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register
class RestrictedLayerNormalization(keras.layers.LayerNormalization):
    """LayerNormalization restricted as in the activation-sparsity paper: the norm before an MLP.

    ```
    x_hat  = (x - mean(x)) / sqrt(var(x) + epsilon)      # over `axis`, as LayerNormalization
    scratch:  out = gamma * x_hat,          gamma >= 1 after every optimizer update, no beta
    finetune: out = gamma * x_hat + beta,   beta frozen (non-trainable), gamma trainable
    ```

    `mode="scratch"` (training from scratch) drops the bias (`center=False`; asking for
    `center=True` is an error) and projects `gamma` to `max(gamma, 1)` after each update by
    a constraint (`GammaFloor`): a user `gamma_constraint` is applied first, then the floor.
    The floor is a Keras variable constraint, so it holds after every optimizer step, also
    inside a `jit_compile=True` train step; a value assigned by hand is not projected until
    the next update.

    `mode="finetune"` (starting from a trained LayerNorm, see `from_layer_normalization`)
    keeps the checkpoint's `beta` but frozen, and `gamma` trainable with no floor: the paper
    raises it gradually instead, `gamma <- sign+(gamma) * max(|gamma|, min(step / T_up, 1))`,
    which the `GammaUplift` callback does by assigning `layer.gamma` of every
    `RestrictedLayerNormalization` with `mode == "finetune"`.

    Args:
        mode: `"scratch"` or `"finetune"`.
        axis: the axis or axes to normalise over, as in `keras.layers.LayerNormalization`.
        epsilon: float >= 0 added to the variance; with 0 a constant slice gives NaN (0 / 0),
            as in `keras.layers.LayerNormalization`.
        center: whether the layer has a `beta`. `None` (default): False in scratch mode, True
            in finetune mode. Scratch mode rejects True.
        scale: must be True (gamma is what the restriction is about).
        beta_initializer: initializer of `beta` (finetune mode).
        gamma_initializer: initializer of `gamma`; ones by default (in scratch mode an
            initializer below 1 is projected to 1 only by the first update).
        beta_regularizer: optional regularizer of `beta`.
        gamma_regularizer: optional regularizer of `gamma`.
        beta_constraint: optional constraint of `beta` (it is frozen, so it never acts in fit).
        gamma_constraint: optional constraint of `gamma`, applied before the floor of 1.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor; the normalised axes must have a static size. Integer inputs are cast
            to the compute dtype (float32 by default) first.

    Attributes:
        mode: `"scratch"` or `"finetune"`.
        gamma: the scale variable (after `build`).
        beta: the frozen shift variable in finetune mode, else None.

    Examples:
        >>> import numpy as np
        >>> layer = RestrictedLayerNormalization(epsilon=0.0)
        >>> x = np.array([[1.0, 2.0, 3.0, 6.0]], dtype="float32")
        >>> np.round(keras.ops.convert_to_numpy(layer(x)), 4).tolist()  # (x - 3) / sqrt(3.5), no beta
        [[-1.069, -0.5345, 0.0, 1.6036]]
        >>> layer.beta is None, type(layer.gamma.constraint).__name__
        (True, 'GammaFloor')
        >>> ln = keras.layers.LayerNormalization()
        >>> _ = ln(x)
        >>> tuned = RestrictedLayerNormalization.from_layer_normalization(ln)
        >>> tuned.mode, [w.name for w in tuned.trainable_weights], tuned.beta.trainable
        ('finetune', ['gamma'], False)

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity
        through Flat Minima and Adversarial Robustness",
        [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    def __init__(
        self,
        mode: str = "scratch",
        axis: int | Sequence[int] = -1,
        epsilon: float = 1e-3,
        center: bool | None = None,
        scale: bool = True,
        beta_initializer: str | dict | initializers.Initializer = "zeros",
        gamma_initializer: str | dict | initializers.Initializer = "ones",
        beta_regularizer: str | dict | regularizers.Regularizer | None = None,
        gamma_regularizer: str | dict | regularizers.Regularizer | None = None,
        beta_constraint: str | dict | constraints.Constraint | None = None,
        gamma_constraint: str | dict | constraints.Constraint | None = None,
        **kwargs,
    ):
        check_choice("mode", mode, MODES)
        if kwargs.get("rms_scaling"):
            raise ValueError(
                "RestrictedLayerNormalization does not support `rms_scaling`. Received: rms_scaling=True"
            )
        if center is None:
            center = mode == "finetune"
        if mode == "scratch" and center:
            raise ValueError(
                "RestrictedLayerNormalization(mode='scratch') has no bias: `center` must be False "
                "(use mode='finetune' to keep a frozen beta). Received: center=True"
            )
        if not scale:
            raise ValueError(f"RestrictedLayerNormalization needs `scale=True`. Received: scale={scale!r}")
        check_number("epsilon", epsilon, minimum=0.0)
        user_gamma_constraint = constraints.get(gamma_constraint)
        if mode == "scratch":
            effective_constraint = GammaFloor(1.0, inner=user_gamma_constraint)
        else:
            effective_constraint = user_gamma_constraint
        super().__init__(
            axis=axis,
            epsilon=epsilon,
            center=bool(center),
            scale=True,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=effective_constraint,
            **kwargs,
        )
        self.mode = mode
        self.user_gamma_constraint = user_gamma_constraint

    def build(self, input_shape):
        # LayerNormalization.build, with beta created non-trainable in finetune mode (created
        # frozen rather than switched off afterwards, so `layer.trainable = True` keeps it frozen).
        ndim = len(input_shape)
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        if any(not -ndim <= axis < ndim for axis in axes):
            raise ValueError(
                f"`axis` is out of range for inputs of rank {ndim}. Received: axis={self.axis!r}, "
                f"input_shape={tuple(input_shape)}"
            )
        if isinstance(self.axis, (list, tuple)):
            self.axis = sorted(self.axis)
            shape = tuple(input_shape[dim] for dim in self.axis)
        else:
            shape = (input_shape[self.axis],)
            self.axis = [self.axis]
        self.gamma = self.add_weight(
            name="gamma",
            shape=shape,
            initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
            trainable=True,
            autocast=False,
        )
        self.beta = None
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=False,
                autocast=False,
            )

    def call(self, inputs):
        # Integers are normalised as floats (LayerNormalization would use integer arithmetic).
        inputs = ops.cast(inputs, self.compute_dtype)
        backend = keras.backend.backend()
        # Keras' own layer on PyTorch (see below), and in float64 on JAX, where its `ops.mean` sums
        # in float32 (`dtype_preserving`): written with `keras.ops` there.
        if backend == "torch" or (backend == "jax" and self.compute_dtype == "float64"):
            return self._normalize_with_ops(inputs)
        return super().call(inputs)

    def _normalize_with_ops(self, inputs):
        """Keras' layer normalization written with `keras.ops`, as Keras computes it on TensorFlow.

        Keras' PyTorch `layer_normalization` hands contiguous axes to `F.layer_norm`, which normalises
        the trailing axes whatever `axis` says, and computes the variance as E[x^2] - E[x]^2, NaN
        where x^2 overflows (|x| above about 1e19 in float32). Here the variance is E[(x - mean)^2].
        16-bit inputs are normalised in float32, float64 ones in float64 (Keras' own PyTorch
        `LayerNormalization` normalises float64 with float32's precision: see `dtype_preserving`).
        """
        x = ops.cast(inputs, statistics_dtype(inputs.dtype))
        shape = [1] * len(x.shape)
        for axis in self.axis:
            shape[axis] = x.shape[axis]
        average = mean(x, axis=self.axis, keepdims=True)
        variance = mean(ops.square(x - average), axis=self.axis, keepdims=True)
        scale = ops.rsqrt(variance + self.epsilon) * ops.reshape(ops.cast(self.gamma, x.dtype), shape)
        outputs = (x - average) * scale
        if self.beta is not None:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), shape)
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        config["gamma_constraint"] = constraints.serialize(self.user_gamma_constraint)
        config.pop("rms_scaling", None)
        return config

    @classmethod
    def from_layer_normalization(
        cls, layer: keras.layers.LayerNormalization, mode: str = "finetune", **kwargs
    ) -> RestrictedLayerNormalization:
        """A built `RestrictedLayerNormalization` with the axis, epsilon, gamma and beta of `layer`.

        For fine-tuning a checkpoint: `layer` is a built (trained) `keras.layers.LayerNormalization`.
        In finetune mode its `beta` is copied and frozen (a layer without `center` gives an RLN
        without beta). Scratch mode has no beta, so it accepts only a layer with `center=False`;
        gamma is copied as is (the floor of 1 acts from the next update on).

        Args:
            layer: the built LayerNormalization (or RestrictedLayerNormalization) to copy.
            mode: `"finetune"` (default) or `"scratch"`.
            **kwargs (Any): further constructor arguments, such as `name`.
        """
        check_choice("mode", mode, MODES)
        if not isinstance(layer, keras.layers.LayerNormalization):
            raise ValueError(
                f"`layer` must be a keras.layers.LayerNormalization. Received: layer={type(layer).__name__}"
            )
        if not layer.built:
            raise ValueError(f"`layer` must be built (called once) before it is copied: {layer.name!r}")
        if getattr(layer, "rms_scaling", False):
            raise ValueError("`layer` uses rms_scaling, which RestrictedLayerNormalization does not support.")
        if mode == "scratch" and layer.center:
            raise ValueError(
                "mode='scratch' has no beta, so copying a LayerNormalization with center=True would "
                f"change its function; use mode='finetune'. Received: layer.center={layer.center}"
            )
        new = cls(mode=mode, axis=layer.axis, epsilon=layer.epsilon, center=layer.center, **kwargs)
        new.build_from_config(layer.get_build_config())
        if layer.gamma is not None:
            new.gamma.assign(ops.cast(layer.gamma, new.gamma.dtype))
        if layer.beta is not None:
            new.beta.assign(ops.cast(layer.beta, new.beta.dtype))
        return new
