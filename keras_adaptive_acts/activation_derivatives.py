"""The derivative of a layer's activation, entry by entry, where the model evaluates it: what
derivative sparsity counts.

Derivative sparsity (Peng et al., arXiv 2605.25612) is the fraction of entries whose activation
derivative is zero: the entries whose gradient the backward pass could skip. For ReLU it equals
activation sparsity; for hard-tanh, clipped and thresholded activations it does not (their
saturated entries are not zero, but their derivative is).

The derivative is taken with respect to the pre-activation `z`, the tensor the activation is
applied to:
- an activation layer (`ReLU`, `Activation("gelu")`, this package's activations): its input,
  and the derivative is the backend's autodiff of the layer itself (the same derivative its
  backward pass uses, custom gradients and noise included);
- `CompetitiveReLU`, whose slice statistics couple the entries: its own `input_derivative`, also
  where another layer holds it (a Dense's `activation=`, a part of `MixedActivation`);
- a Dense, EinsumDense or convolution layer with a fused `activation`: `z` is recomputed from the
  layer's input and weights, checked against the layer's own output, then differentiated.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_adaptive_acts.autodiff import elementwise_derivative
from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU
from keras_adaptive_acts.layers.mixed_activation import MixedActivation
from keras_adaptive_acts.model_graph import OUTPUT_ACTIVATION_LAYERS, is_activation_layer

__all__ = ["activation_derivative", "derivative_unsupported_reason"]

# Keras activations whose output entries depend on other entries (or whose shape differs from
# the input's): a per-entry derivative of them is not defined.
_MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")

# The layers whose pre-activation this module can recompute, with the op each one applies.
_RECOMPUTABLE = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
)
_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def derivative_unsupported_reason(layer: keras.layers.Layer) -> str | None:
    """None if derivative sparsity is defined for `layer`; otherwise why not, for an error message."""
    if not is_activation_layer(layer):
        return "its output is not an activation"
    if isinstance(layer, OUTPUT_ACTIVATION_LAYERS):
        # Subclasses (Conv1DTranspose is not a Conv1D; Keras' own subclasses of these are named too).
        if type(layer) not in _RECOMPUTABLE:
            return (
                f"its pre-activation cannot be read: a {type(layer).__name__} applies its activation "
                "inside its call (Dense, EinsumDense and Conv1D/2D/3D are supported)"
            )
        if getattr(layer, "quantization_mode", None):
            return f"its pre-activation cannot be read: the layer is quantized ({layer.quantization_mode})"
    return _mixing_reason(layer)


def _mixing_reason(activation: Any) -> str | None:
    """Why `activation` (a function or layer, or a layer holding one) has no derivative per entry,
    or None. The activations that a layer holds (a fused `activation=`, `Activation`'s function, the
    two parts of `MixedActivation`) are asked in turn: one that mixes entries is found at any depth."""
    if isinstance(activation, (keras.layers.Activation, *OUTPUT_ACTIVATION_LAYERS)):
        return _mixing_reason(activation.activation)
    if isinstance(activation, MixedActivation):
        if any(_mixing_reason(part) for part in (activation.start, activation.end)):
            return "one of its two activations mixes entries"
        return None
    if isinstance(activation, keras.layers.Softmax):
        return "its activation, a Softmax layer, mixes entries, so no entry has a derivative of its own"
    name = getattr(activation, "__name__", "")
    if name in _MIXING_ACTIVATIONS:
        return f"its activation {name!r} mixes entries, so no entry has a derivative of its own"
    return None


def activation_derivative(layer: keras.layers.Layer, inputs: list[Any], training: bool) -> Any:
    """`d activation(z)[i] / d z[i]` for every entry of one call of `layer` on `inputs` (its input tensors).

    `layer` must pass `derivative_unsupported_reason`. For a fused activation, raises
    `ValueError` if the recomputed pre-activation does not give the layer's own output.
    """
    if isinstance(layer, CompetitiveReLU):
        return layer.input_derivative(inputs if len(inputs) > 1 else inputs[0])
    if isinstance(layer, OUTPUT_ACTIVATION_LAYERS):
        pre_activation = _pre_activation(layer, inputs[0])
        _check_pre_activation(layer, inputs[0], pre_activation)
        return _derivative(layer.activation, pre_activation, training)
    return _derivative(layer, inputs[0], training)


def _derivative(activation: Any, z: Any, training: bool) -> Any:
    """The per-entry derivative of `activation` (a function or an activation layer) at `z`.

    Autodiff's gradient of `sum(activation(z))` is the derivative of each entry only where no entry
    depends on another. A CompetitiveReLU couples the entries of a slice, wherever it is held (as a
    layer of its own, a Dense's `activation=`, a part of MixedActivation): its `input_derivative`
    is the Jacobian's diagonal. MixedActivation is linear in its parts, so its derivative is the
    same blend of theirs, with the same exact ends (the other part may overflow there).
    """
    if isinstance(activation, keras.layers.Activation) and isinstance(
        activation.activation, keras.layers.Layer
    ):
        activation = activation.activation  # `Activation(CompetitiveReLU())` applies the layer it holds
    if isinstance(activation, CompetitiveReLU):
        return activation.input_derivative(z)
    if isinstance(activation, MixedActivation):
        z = ops.cast(z, activation.compute_dtype)
        t = ops.cast(activation.t, activation.compute_dtype)
        start, end = (
            ops.cast(_derivative(part, z, training), z.dtype) for part in (activation.start, activation.end)
        )
        return ops.where(t == 0, start, ops.where(t == 1, end, (1.0 - t) * start + t * end))
    if isinstance(activation, keras.layers.Layer):
        # A layer held as a fused activation is called by its owner without `training`; Keras'
        # call context passes the flag on, as here.
        return elementwise_derivative(lambda values: activation(values, training=training), z)
    return elementwise_derivative(activation, z)


def _pre_activation(layer, inputs):
    """What `layer` (Dense, EinsumDense, Conv1D/2D/3D) applies its activation to, from its input.

    The same ops as the layers' `call` (Keras 3.10 to 3.16), in the layer's compute dtype.
    """
    dtype = layer.compute_dtype
    x = ops.cast(inputs, dtype)
    kernel = ops.cast(layer.kernel, dtype)  # with a LoRA update added, where enabled
    if isinstance(layer, keras.layers.Dense):
        z = ops.matmul(x, kernel)
    elif isinstance(layer, keras.layers.EinsumDense):
        z = ops.einsum(layer.equation, x, kernel)
    else:
        padding = layer.padding
        if padding == "causal":  # Conv1D only: pad the past, then a valid convolution
            time_axis = 1 if layer.data_format == "channels_last" else 2
            pad = [[0, 0], [0, 0], [0, 0]]
            pad[time_axis] = [layer.dilation_rate[0] * (layer.kernel_size[0] - 1), 0]
            x, padding = ops.pad(x, pad), "valid"
        z = ops.conv(
            x,
            kernel,
            strides=list(layer.strides),
            padding=padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    bias = getattr(layer, "bias", None)
    if bias is None:
        return z
    bias = ops.cast(bias, dtype)
    if isinstance(layer, _CONVOLUTIONS):
        rank = len(layer.kernel_size)
        shape = (1,) * (rank + 1) + (-1,) if layer.data_format == "channels_last" else (1, -1) + (1,) * rank
        bias = ops.reshape(bias, shape)
    return z + bias


def _check_pre_activation(layer, inputs, pre_activation):
    """Raises `ValueError` unless `activation(pre_activation)` is the layer's own output on `inputs`.

    Guards the recomputation against a layer that computes differently (a Keras version, a
    subclass): counting the zeros of a wrong tensor would be silently wrong.
    """
    expected = ops.convert_to_numpy(layer(inputs)).astype("float64")
    recomputed = ops.convert_to_numpy(layer.activation(pre_activation)).astype("float64")
    finite = np.isfinite(expected)
    tolerance = 1e-4 if layer.compute_dtype in ("float32", "float64") else 2e-2
    scale = 1.0 + np.max(np.abs(expected[finite]), initial=0.0)
    if expected.shape != recomputed.shape or not (
        np.array_equal(finite, np.isfinite(recomputed))
        and np.all(np.abs(expected[finite] - recomputed[finite]) <= tolerance * scale)
    ):
        raise ValueError(
            f"The derivative sparsity of the layer {layer.name!r} needs its pre-activation, and recomputing "
            "it from the layer's input and weights did not give the layer's output (a "
            f"{type(layer).__name__} that computes differently). Apply the activation in a separate layer "
            "(e.g. `keras.layers.Activation`) to measure it."
        )
