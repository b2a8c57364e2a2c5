"""The ZerothBias layer: a learnable per-position bias of a doubly-biased MLP."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import keras
from keras import ops

from keras_adaptive_acts._keras_internals import upstream_operations, variable_is_detached
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_number

# An argument up to version 0.1.0, recorded in the config but never used; saved configs that carry it load.
REMOVED_POSITION_ARGUMENT = "position"


class _Reference:
    """Holds the referenced norm layer without Keras tracking it (it is not a sublayer)."""

    __slots__ = ("layer",)

    def __init__(self, layer=None):
        self.layer = layer


class _ZerothBiasClip(keras.constraints.Constraint):
    """`b0 <- clip(b0, -bound, bound)`, bound = `clip * |gamma|` (read at call time) or `clip`.

    Not serialised: the owning `ZerothBias` creates it in `build`; it reads the referenced norm
    layer's gamma variable through the layer, so a compiled train step sees the current gamma
    (see `ZerothBias._clip_bound` for a frozen gamma on JAX).
    """

    def __init__(self, owner: ZerothBias):
        self._owner = weakref.ref(owner)

    def __call__(self, w):
        owner = self._owner()
        w = ops.convert_to_tensor(w)
        bound = owner._clip_bound(w.dtype)
        return ops.clip(w, -bound, bound)

    def get_config(self):
        return {}


@register
class ZerothBias(keras.layers.Layer):
    """Zeroth bias of a doubly-biased MLP: a learnable bias per token position, clipped.

    ```
    out[:, l, :] = inputs[:, l, :] + b0[l, :]           for l < L (the input's length)
    after every optimizer update:
        b0 <- clip(b0, -clip * |gamma|, clip * |gamma|)  with reference_norm (gamma: (d_model,))
        b0 <- clip(b0, -clip, clip)                      without
    ```

    `b0` has shape `(max_len, d_model)`, is zero-initialised (the layer starts as the identity)
    and inputs shorter than `max_len` use its first `L` rows. The layer only adds; where it
    sits is the caller's choice, made by where the layer is called: the paper's
    `mlp(ZerothBias()(LN(x)))` or after the MLP, as the official code. `SparsifiedMLP` assembles
    the whole block and chooses with its `zeroth_bias_position`. (Up to version 0.1.0 the layer
    took a `position` argument that it only recorded: `position=` now warns and is ignored, and
    saved configs that carry it load.)

    The clip is a Keras variable constraint on `b0`, so it holds after every optimizer step,
    also in a `jit_compile=True` train step; the constraint reads the referenced
    LayerNormalization's `gamma` variable when it runs, so it follows a gamma that is trained,
    frozen (`trainable=False`) or raised by `GammaUplift` (all constraints run after all of the
    step's updates), on every backend. (On JAX the optimizer step cannot read a frozen variable,
    which Keras' trainer holds outside the model during `fit`: for a frozen gamma the clip uses
    the value the layer's call read in the same step, which is the same, as a frozen gamma only
    changes between steps.)
    A value assigned by hand is not clipped until the next update.

    Serialisation of the reference: `get_config` stores the referenced layer's name as
    `reference_norm_name`. When a model is rebuilt from its config (`.keras` loading,
    `keras.models.clone_model`), the layer links itself, on being called on the model's
    symbolic inputs, to the layer of that name among its ancestors in the graph (LN ->
    ZerothBias -> ..., or LN -> MLP -> ZerothBias), searching nested models too. A reference
    that is not an ancestor must be linked by hand with `link_reference_norm(model)`; an
    unlinked reference raises an error at the first optimizer step. `SparsifiedMLP` owns both
    layers and needs none of this.

    Dynamic lengths: a length known when the layer is built or called that exceeds `max_len`
    raises `ValueError`; a length only known at run time (a `tf.function` with a `None` axis)
    cannot be checked in Python: the slice then fails at run time with TensorFlow's
    `InvalidArgumentError` (it is never silently clipped).

    Args:
        max_len: the longest sequence, the first dimension of `b0`; an int >= 1, or None to
            take the (static) sequence length of the input the layer is built on.
        clip: the clip factor, a finite number >= 0 (`|b0| <= clip * |gamma|`, or `<= clip`
            without a reference).
        reference_norm: the `keras.layers.LayerNormalization` (or `RestrictedLayerNormalization`)
            before the MLP, whose `gamma` (shape `(d_model,)`) scales the clip. Not a sublayer:
            its weights belong to its own layer.
        reference_norm_name: the name of that layer, for a layer rebuilt from a config (see
            above); set from `reference_norm` when that is given.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a tensor of shape `(batch, L, d_model)` with `L <= max_len`; integers are cast
            to the compute dtype (float32 by default).

    Examples:
        >>> import numpy as np
        >>> layer = ZerothBias(max_len=4, clip=0.5)
        >>> x = np.ones((2, 3, 2), dtype="float32")
        >>> bool(np.array_equal(keras.ops.convert_to_numpy(layer(x)), x))  # zero at initialisation
        True
        >>> _ = layer.b0.assign(np.arange(8, dtype="float32").reshape(4, 2) / 4)
        >>> keras.ops.convert_to_numpy(layer(x))[0].tolist()  # rows 0..2 of b0 are added
        [[1.0, 1.25], [1.5, 1.75], [2.0, 2.25]]
        >>> float(keras.ops.max(layer.b0.constraint(layer.b0)))  # the clip applied after each update
        0.5

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity
        through Flat Minima and Adversarial Robustness",
        [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    def __init__(
        self,
        max_len: int | None = None,
        clip: float = 0.1,
        reference_norm: keras.layers.LayerNormalization | None = None,
        reference_norm_name: str | None = None,
        **kwargs,
    ):
        _drop_removed_position(kwargs)
        super().__init__(**kwargs)
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"`max_len` must be an int >= 1 or None. Received: max_len={max_len!r}")
        self.max_len = max_len
        self.clip = check_number("clip", clip, minimum=0.0)
        if reference_norm is not None:
            self._check_norm(reference_norm)
            if reference_norm_name is not None and reference_norm_name != reference_norm.name:
                raise ValueError(
                    "`reference_norm_name` must be the name of `reference_norm` when both are given. "
                    f"Received: reference_norm_name={reference_norm_name!r}, "
                    f"reference_norm.name={reference_norm.name!r}"
                )
            reference_norm_name = reference_norm.name
        elif reference_norm_name is not None and not isinstance(reference_norm_name, str):
            raise ValueError(
                f"`reference_norm_name` must be a string or None. Received: "
                f"reference_norm_name={reference_norm_name!r}"
            )
        self.reference_norm_name = reference_norm_name
        self._reference = _Reference(reference_norm)
        # The reference's gamma as the latest call read it, for the clip when the optimizer step
        # cannot read the variable itself (see `_clip_bound`). Not state: never saved.
        self._gamma_of_latest_call = None
        self.supports_masking = True

    @property
    def reference_norm(self) -> keras.layers.LayerNormalization | None:
        """The linked LayerNormalization whose gamma scales the clip (None if absolute or unlinked)."""
        return self._reference.layer

    def link_reference_norm(self, layer_or_model: keras.layers.Layer) -> None:
        """Links the reference: a LayerNormalization, or a model holding the layer `reference_norm_name`.

        Needed only for a layer rebuilt from a config whose referenced layer is not one of its
        ancestors in the model graph (else linking is automatic).
        """
        if isinstance(layer_or_model, keras.layers.LayerNormalization):
            norm = layer_or_model
            if self.reference_norm_name is not None and norm.name != self.reference_norm_name:
                raise ValueError(
                    f"This ZerothBias references the layer {self.reference_norm_name!r}. "
                    f"Received: a layer named {norm.name!r}"
                )
        else:
            if self.reference_norm_name is None:
                raise ValueError(
                    "This ZerothBias has no reference (absolute clip): there is nothing to link."
                )
            norm = _find_layer(layer_or_model, self.reference_norm_name)
            if norm is None:
                raise ValueError(
                    f"No layer named {self.reference_norm_name!r} in {layer_or_model.name!r} (searched "
                    "nested models too)."
                )
        self._check_norm(norm)
        self.reference_norm_name = norm.name
        self._reference.layer = norm

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                "ZerothBias expects inputs of shape (batch, length, d_model). "
                f"Received: input_shape={input_shape}"
            )
        length, d_model = input_shape[1], input_shape[2]
        if d_model is None:
            raise ValueError(f"The last axis (d_model) must be known. Received: input_shape={input_shape}")
        if self.max_len is None:
            if length is None:
                raise ValueError(
                    "`max_len=None` takes the input's sequence length, which is not known here: pass "
                    f"`max_len`. Received: input_shape={input_shape}"
                )
            self.max_len = max(int(length), 1)  # an empty sequence still gets one valid row
        self._check_length(length)
        self.b0 = self.add_weight(
            shape=(self.max_len, d_model),
            name="b0",
            initializer="zeros",
            constraint=_ZerothBiasClip(self),
        )

    def call(self, inputs):
        norm = self._reference.layer
        if norm is not None and getattr(norm, "gamma", None) is not None:
            # Read whether the norm is frozen or not: what Keras counts as trainable also depends
            # on the layers above it (a flag set before the build, a frozen parent).
            self._gamma_of_latest_call = norm.gamma.value
        inputs = ops.cast(inputs, self.compute_dtype)  # integers too: b0 would be truncated to them
        length = ops.shape(inputs)[1]
        self._check_length(length)
        # A variable is converted first: JAX refuses to trace one passed straight to `slice`.
        bias = ops.slice(ops.convert_to_tensor(self.b0), [0, 0], [length, self.b0.shape[1]])
        return inputs + ops.cast(bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        # Keras calls this with the symbolic inputs whenever the layer joins a graph (a Functional
        # model being built, or rebuilt from its config by `.keras` loading or `clone_model`):
        # the moment to link the referenced LayerNormalization from among the inputs' ancestors.
        if self._reference.layer is None and self.reference_norm_name is not None:
            norm = _find_ancestor(inputs, self.reference_norm_name)
            if norm is not None:
                self.link_reference_norm(norm)
        return super().compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_len": self.max_len,
                "clip": self.clip,
                "reference_norm_name": self.reference_norm_name,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ZerothBias:
        # Configs and `.keras` files written up to version 0.1.0 carry `position`: it never changed what
        # the layer computes, so it is dropped without a warning (whoever loads a file cannot change how
        # it was written).
        config = {key: value for key, value in config.items() if key != REMOVED_POSITION_ARGUMENT}
        return super().from_config(config)

    def _check_length(self, length):
        if isinstance(length, int) and length > self.max_len:
            raise ValueError(
                f"The input sequence (length {length}) is longer than `max_len`={self.max_len} of "
                f"ZerothBias {self.name!r}."
            )

    def _clip_bound(self, dtype):
        """The clip bound in `dtype`: a scalar, or `clip * |gamma|` of shape (d_model,)."""
        if self.reference_norm_name is None:
            return ops.cast(self.clip, dtype)
        norm = self._reference.layer
        if norm is None:
            raise ValueError(
                f"ZerothBias {self.name!r} references the layer {self.reference_norm_name!r}, which is not "
                "linked (it was not found among the layer's ancestors when the model was rebuilt): call "
                "`link_reference_norm(model)` before training."
            )
        gamma = norm.gamma
        if gamma is None or tuple(gamma.shape) != (self.b0.shape[1],):
            raise ValueError(
                f"The gamma of {norm.name!r} must have shape (d_model,) = ({self.b0.shape[1]},). "
                f"Received: {None if gamma is None else tuple(gamma.shape)}"
            )
        if variable_is_detached(gamma):
            # A frozen gamma inside the optimizer step of a JAX `fit`: the JAX trainer hands the
            # optimizer only the trainable variables, so the variable has no value here. A frozen
            # gamma does not change during a step, so the value the step's forward pass read (a
            # value of the same traced step) is its value now; callbacks such as GammaUplift change
            # it only between steps, and the next forward pass reads the new value.
            gamma = self._gamma_of_latest_call
            if gamma is None:
                raise ValueError(
                    f"ZerothBias {self.name!r} cannot read the frozen gamma of {norm.name!r} in this "
                    "optimizer step: on JAX the clip of a frozen reference uses the value read by the "
                    "layer's call in the same training step, and the layer was not called."
                )
        return ops.abs(ops.cast(gamma, dtype)) * ops.cast(self.clip, dtype)

    @staticmethod
    def _check_norm(norm):
        if not isinstance(norm, keras.layers.LayerNormalization):
            raise ValueError(
                "`reference_norm` must be a keras.layers.LayerNormalization (or a "
                f"RestrictedLayerNormalization). Received: {type(norm).__name__}"
            )
        if not norm.scale:
            raise ValueError(f"`reference_norm` must have a gamma (scale=True). Received: {norm.name!r}")


def _drop_removed_position(kwargs: dict[str, Any]) -> None:
    """Takes the removed `position` argument out of `kwargs`, with a `DeprecationWarning`.

    A warning rather than an error: `position` never changed the computation, so code that passes it
    still builds the same layer; the warning says that the placement is decided where the layer is called.
    """
    if REMOVED_POSITION_ARGUMENT not in kwargs:
        return
    position = kwargs.pop(REMOVED_POSITION_ARGUMENT)
    warnings.warn(
        "ZerothBias(position=...) is deprecated and ignored: the layer only adds its bias, and where it sits "
        "is decided by where you call it (SparsifiedMLP chooses with `zeroth_bias_position`). The argument "
        f"was only recorded, never used; remove it. Received: position={position!r}",
        DeprecationWarning,
        stacklevel=3,
    )


def _find_layer(model, name):
    """The layer called `name` in `model` or its nested models, depth first; None if absent."""
    for layer in getattr(model, "layers", ()):
        if layer.name == name:
            return layer
        found = _find_layer(layer, name)
        if found is not None:
            return found
    return None


def _find_ancestor(inputs, name):
    """The LayerNormalization called `name` that produced `inputs` or one of their ancestors in a
    Keras graph (searching inside nested models too); None for eager tensors or when there is none.
    """
    for operation in upstream_operations(inputs):
        if operation.name == name and isinstance(operation, keras.layers.LayerNormalization):
            return operation
        found = _find_layer(operation, name)
        if isinstance(found, keras.layers.LayerNormalization):
            return found
    return None
