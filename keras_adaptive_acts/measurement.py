"""Measuring activation sparsity: the per-layer fraction of exactly-zero outputs of a model, or of
exactly-zero activation derivatives.

`measure_sparsity` reads the outputs (or the inputs) of chosen layers of a Functional or
Sequential model over a dataset. The batching of data and the counting also serve
`keras_adaptive_acts.callbacks.SparsityMonitor`; the layer taps live in `model_graph`, the
derivatives in `activation_derivatives`.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_adaptive_acts.activation_derivatives import activation_derivative, derivative_unsupported_reason
from keras_adaptive_acts.model_graph import (  # noqa: F401 (re-exported while callers move to model_graph)
    LayerTaps,
    all_layers,
    check_graph_model,
    check_layer_list,
    graph_layers,
    is_activation_layer,
    is_graph_model,
    match_layers,
    preserved_state,
    select_layers,
)

__all__ = ["measure_sparsity"]

DEFAULT_BATCH_SIZE = 32
# `tf.data.INFINITE_CARDINALITY`, the cardinality of a dataset that repeats forever; a number
# rather than the constant so that this module does not import TensorFlow.
INFINITE_CARDINALITY = -1


def measure_sparsity(
    model: keras.Model,
    data: Any,
    layers: Sequence[keras.layers.Layer | str] | None = None,
    batch_size: int | None = None,
    derivative: bool = False,
) -> dict[str, float]:
    """The fraction of exactly-zero outputs of each activation layer of `model` over `data`, or
    with `derivative=True` the fraction of exactly-zero activation derivatives.

    ```
    sparsity[layer] = (number of zero entries of the layer's outputs over all of data)
                      / (number of entries of the layer's outputs over all of data)

    derivative=True:  f'(z) instead of the outputs, where z is what the activation f is applied to
    ```

    **Derivative sparsity** (Peng et al., arXiv 2605.25612) counts the entries whose activation
    derivative is zero: those whose gradient the backward pass could skip. For ReLU it equals
    the zero fraction (up to entries exactly at 0: ReLU's derivative there is 0, its output
    too); for hard-tanh, `NoisyHardTanh`, `TLU`, ReLU6 and other clipped activations it is
    larger (a saturated entry is not zero, but its derivative is). The derivative is the one
    the backend's backward pass computes for the layer (its custom gradient, the value it picks
    at a kink, underflow in the compute dtype), taken with respect to the tensor the activation
    is applied to: an activation layer's input, or, for a Dense, EinsumDense or Conv1D/2D/3D
    layer with a fused `activation`, its pre-activation, recomputed from the layer's input and
    weights and checked against the layer's output. For `CompetitiveReLU` it is the derivative of
    each output entry with respect to its own input entry (`CompetitiveReLU.input_derivative`),
    also where another layer holds it (a fused `activation=`, a part of `MixedActivation`).
    It is not defined for activations that mix entries (softmax, log-softmax, sparsemax, GLU,
    a `Softmax` layer given as an activation)
    nor for the other fused layers (transposed, separable and depthwise convolutions, quantized
    layers): by default those layers are left out, and choosing one raises `ValueError`.

    The model runs in inference mode (`training=False`: no dropout, no activation noise,
    BatchNormalization with its moving statistics). Batches are weighted by their number of
    entries, so the result does not depend on how `data` is batched. NaN is not zero. Measuring
    leaves the model unchanged (its non-trainable state, e.g. noise-seed states, is restored).

    Masked entries are not counted, as Keras' losses and metrics leave them out: behind
    `Embedding(mask_zero=True)` or `Masking`, the padded time steps of a layer's output (its
    Keras mask) are in neither count, so padding does not look like sparsity. A layer whose
    every entry is masked gets NaN. A layer called several times (a layer shared between
    branches, the layers of a nested model called twice, as in a Siamese network) counts the
    outputs of all its calls.

    By default the monitored layers are the model's activation layers: `keras.layers.ReLU`,
    `LeakyReLU`, `PReLU`, `ELU`, `Activation` with a non-linear activation, this package's
    `CompetitiveReLU`, `RReLU`, `JSquaredReLU`, `MixedActivation`, `NoisyHardTanh` and
    `NoisyHardSigmoid`, and the Dense, EinsumDense and convolution layers with a non-linear
    `activation` (their output is an activation). Outputs of smooth activations (sigmoid,
    tanh, ...) are rarely exactly zero. Layers of nested Functional or Sequential models are
    included. This package's activation layers inside custom layers (a KerasHub
    `TransformerEncoder` after `swap_activations`, a `SparsifiedMLP`'s `act`) are reached by
    tracing their owner's call, and are included when their name is unique in the model; any
    layer inside a custom layer can be passed in `layers` (by object, or by a unique name).
    Layers inside `TimeDistributed`, `Bidirectional` and RNN cells are not reachable.

    The layers' outputs are read from the model's graph, so `model` must be a Functional or
    Sequential model (built: with a `keras.Input` or after a first call); a subclassed model
    raises `ValueError` (build the same network as a Functional model, or measure a tensor
    with `keras_adaptive_acts.ops.zero_fraction`).

    Args:
        model: a built Functional or Sequential model.
        data: the inputs: an array (or dict / list of arrays for several inputs), a tuple
            `(x, y)` or `(x, y, sample_weight)` as for `fit` (only `x` is used), or a finite
            iterable of batches such as a `tf.data.Dataset` (each batch `x` or a tuple `(x, ...)`),
            read to its end. A dataset known to repeat forever (`.repeat()` without a count)
            raises `ValueError`: pass `dataset.take(number_of_batches)`. (An endless Python
            iterable, or a dataset of unknown size that never ends, cannot be told apart
            beforehand.)
        layers: None (every activation layer, as above) or a non-empty list of layers of the
            model or their names (any layer with one output tensor).
        batch_size: the batch size for array data; default 32. Not allowed with a dataset,
            which is batched already.
        derivative: bool. False (default): the fraction of zero outputs. True: the fraction of
            zero activation derivatives (derivative sparsity).

    Returns:
        A dict `{layer name: fraction of zeros}` in the order of the layers.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> model = keras.Sequential([
        ...     keras.Input((2,)),
        ...     keras.layers.Dense(2, kernel_initializer="identity"),  # no activation: not measured
        ...     keras.layers.ReLU(name="relu"),
        ... ])
        >>> measure_sparsity(model, np.array([[1.0, -1.0], [-1.0, -2.0]], "float32"))
        {'relu': 0.75}
        >>> clipped = keras.Sequential([keras.Input((3,)), keras.layers.ReLU(max_value=1.0, name="relu6ish")])
        >>> x = np.array([[-1.0, 0.5, 2.0]], "float32")
        >>> measure_sparsity(clipped, x), measure_sparsity(clipped, x, derivative=True)  # 2.0 saturates
        ({'relu6ish': 0.3333333333333333}, {'relu6ish': 0.6666666666666666})
    """
    if not isinstance(derivative, bool):
        raise ValueError(f"`derivative` must be True or False. Received: derivative={derivative!r}")
    default = has_activation_derivative if derivative else is_activation_layer
    chosen = select_layers(model, layers, "measure_sparsity", default=default)
    batch_size = check_batch_size(batch_size, data)
    check_data(data)
    if derivative:
        check_derivative_layers(chosen, "measure_sparsity")
        taps = derivative_taps(model, chosen, "measure_sparsity")
        return derivative_zero_fractions(taps, data, batch_size, training=False)
    taps = LayerTaps(model, chosen, "output", "measure_sparsity")
    return zero_fractions(taps, data, batch_size, training=False)


def has_activation_derivative(layer: keras.layers.Layer) -> bool:
    """Whether `layer` is an activation layer with a derivative sparsity (see `measure_sparsity`)."""
    return derivative_unsupported_reason(layer) is None


def check_derivative_layers(layers: Sequence[keras.layers.Layer], owner: str) -> None:
    """Raises `ValueError` naming the first layer whose derivative sparsity is not defined, and why."""
    for layer in layers:
        reason = derivative_unsupported_reason(layer)
        if reason is not None:
            raise ValueError(
                f"{owner}: the derivative sparsity of the layer {layer.name!r} is not defined: {reason}."
            )


# ----------------------------------------------------------------------------------------------
# Data


class Batches(list):
    """A list of batches (as opposed to a list of arrays, which is the inputs of a multi-input model)."""


def check_batch_size(batch_size: Any, data: Any) -> int:
    """The batch size for array data (default 32); `ValueError` if invalid or given with a dataset."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    if _is_batch_iterable(data):
        raise ValueError(
            "`batch_size` is for array data: a dataset or iterable of batches is batched already. "
            f"Received: batch_size={batch_size!r} with data of type {type(data).__name__}"
        )
    return int(batch_size)


def check_data(data: Any) -> None:
    """Raises `ValueError` for data with no samples, or endless (what can be checked without iterating)."""
    if data is None:
        raise ValueError("`data` must hold at least one sample. Received: data=None")
    if _is_batch_iterable(data):
        cardinality = getattr(data, "cardinality", None)  # tf.data.Dataset: 0 when known to be empty
        if isinstance(data, Batches) and not data:
            raise ValueError("`data` must hold at least one batch. Received: no batches")
        if callable(cardinality):
            batches = int(cardinality())
            if batches == 0:
                raise ValueError("`data` must hold at least one batch. Received: an empty dataset")
            if batches == INFINITE_CARDINALITY:
                # Measuring reads the data to its end: an endless dataset would never return.
                raise ValueError(
                    "`data` must be finite: it is read to its end, and this dataset repeats forever "
                    "(a `.repeat()` without a count). Pass a finite sample, such as "
                    f"`dataset.take(number_of_batches)`. Received: data={data!r} with cardinality "
                    f"{batches} (tf.data.INFINITE_CARDINALITY)"
                )
        return
    if _num_samples(_inputs_of(data)) == 0:
        raise ValueError("`data` must hold at least one sample. Received: 0 samples")


def iterate_batches(data: Any, batch_size: int) -> Iterator[Any]:
    """Yields the model inputs `x` of each batch of `data` (see `measure_sparsity`)."""
    if _is_batch_iterable(data):
        for batch in data:
            yield _inputs_of(batch)
        return
    x = _inputs_of(data)
    n = _num_samples(x)
    for start in range(0, n, batch_size):
        yield keras.tree.map_structure(lambda a, start=start: a[start : start + batch_size], x)


def _inputs_of(data):
    """`x` of `data`: the first element of a tuple `(x, y[, sample_weight])`, else `data` itself."""
    if isinstance(data, tuple):
        if not data:
            raise ValueError("`data` must not be an empty tuple; pass x or (x, y).")
        return data[0]
    return data


def _is_batch_iterable(data):
    if isinstance(data, Batches):
        return True
    if isinstance(data, (tuple, list, dict, str, bytes, np.ndarray)) or _is_array(data):
        return False
    return isinstance(data, collections.abc.Iterable)


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _num_samples(x):
    leaves = keras.tree.flatten(x)
    if not leaves or not all(_is_array(leaf) for leaf in leaves):
        raise ValueError(
            "`data` must be an array (or a dict / list of arrays), a tuple (x, y) or an iterable of "
            f"batches such as a tf.data.Dataset. Received: data of type {type(x).__name__}"
        )
    sizes = {int(leaf.shape[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"The inputs in `data` have different numbers of samples: {sorted(sizes)}")
    return sizes.pop()


# ----------------------------------------------------------------------------------------------
# Counting


def zero_fractions(taps: LayerTaps, data: Any, batch_size: int, training: bool) -> dict[str, float]:
    """Per layer of `taps`: zero entries / entries of its output over `data` and all its calls.

    Masked entries (padding behind `Embedding(mask_zero=True)` or `Masking`) are left out of both
    counts, as Keras leaves them out of losses and metrics; a layer whose every entry is masked
    gets NaN.
    """
    zeros = [0] * len(taps.layers)
    sizes = [0] * len(taps.layers)
    entries = 0  # masked ones included: to tell data without samples from data that is all padding
    with preserved_state(taps.model):
        for x in iterate_batches(data, batch_size):
            for i, calls in enumerate(taps(x, training=training)):
                for call in calls:
                    if len(call.tensors) != 1:
                        raise ValueError(
                            f"The layer {taps.layers[i].name!r} has {len(call.tensors)} output tensors; the "
                            "zero fraction is defined for a layer with one output."
                        )
                    layer_zeros, layer_size = _masked_counts(call.tensors[0], call.masks[0], taps.layers[i])
                    zeros[i] += layer_zeros
                    sizes[i] += layer_size
                    entries += math.prod(int(d) for d in ops.shape(call.tensors[0]))
    if not entries:
        raise ValueError("`data` held no samples: there is nothing to measure.")
    return {layer.name: zeros[i] / sizes[i] if sizes[i] else math.nan for i, layer in enumerate(taps.layers)}


def derivative_taps(
    model: keras.Model, layers: Sequence[keras.layers.Layer], owner: str
) -> tuple[LayerTaps, LayerTaps]:
    """The taps `derivative_zero_fractions` reads: the layers' inputs, and their outputs (for the masks)."""
    return LayerTaps(model, layers, "input", owner), LayerTaps(model, layers, "output", owner)


def derivative_zero_fractions(
    taps: tuple[LayerTaps, LayerTaps], data: Any, batch_size: int, training: bool
) -> dict[str, float]:
    """Per layer: entries whose activation derivative is zero / entries, over `data` and all its calls.

    `taps` come from `derivative_taps`: the inputs are read by one forward pass and the masks by
    another (a layer's output carries the mask of its input); masked entries are left out as in
    `zero_fractions`.
    """
    inputs_taps, outputs_taps = taps
    model, layers = inputs_taps.model, inputs_taps.layers
    zeros = [0] * len(layers)
    sizes = [0] * len(layers)
    entries = 0
    with preserved_state(model):
        for x in iterate_batches(data, batch_size):
            inputs_calls = inputs_taps(x, training=training)
            outputs_calls = outputs_taps(x, training=training)
            for i, layer in enumerate(layers):
                for inputs_call, outputs_call in zip(inputs_calls[i], outputs_calls[i], strict=True):
                    derivative = activation_derivative(layer, inputs_call.tensors, training)
                    layer_zeros, layer_size = _masked_counts(derivative, outputs_call.masks[0], layer)
                    zeros[i] += layer_zeros
                    sizes[i] += layer_size
                    entries += math.prod(int(d) for d in ops.shape(derivative))
    if not entries:
        raise ValueError("`data` held no samples: there is nothing to measure.")
    return {layer.name: zeros[i] / sizes[i] if sizes[i] else math.nan for i, layer in enumerate(layers)}


def _masked_counts(tensor, mask, layer) -> tuple[int, int]:
    """(zero entries, entries) of `tensor` where `mask` (a prefix of its shape, batch first) is True."""
    shape, mask_shape = tuple(ops.shape(tensor)), tuple(ops.shape(mask))
    if shape[: len(mask_shape)] != mask_shape:
        raise ValueError(
            f"The mask of the output of the layer {layer.name!r} has the shape {mask_shape}, which does not "
            f"match the output's shape {shape} (the mask of a layer's output must have the output's leading "
            "shape): the layer, or one before it, passes on a mask it does not apply to."
        )
    valid = ops.broadcast_to(ops.reshape(mask, mask_shape + (1,) * (len(shape) - len(mask_shape))), shape)
    is_zero = ops.logical_and(ops.equal(tensor, 0), valid)
    return (
        int(ops.convert_to_numpy(ops.sum(ops.cast(is_zero, "int32")))),
        int(ops.convert_to_numpy(ops.sum(ops.cast(valid, "int32")))),
    )
