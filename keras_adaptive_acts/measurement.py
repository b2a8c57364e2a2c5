"""Measuring activation sparsity: the per-layer fraction of exactly-zero outputs of a model.

`measure_sparsity` reads the outputs of chosen layers of a Functional or Sequential model over a
dataset. The machinery behind it (the layer taps, the batching of data) also serves
`keras_adaptive_acts.callbacks.SparsityMonitor` and `CompetitionMonitor`.
"""

from __future__ import annotations

import collections.abc
import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_adaptive_acts import registry

__all__ = ["measure_sparsity"]

DEFAULT_BATCH_SIZE = 32

# Layers whose `activation` is applied to their output, besides the activation layers themselves.
OUTPUT_ACTIVATION_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)
_KERAS_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU)


def measure_sparsity(
    model: keras.Model,
    data: Any,
    layers: Sequence[keras.layers.Layer | str] | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """The fraction of exactly-zero outputs of each activation layer of `model` over `data`.

    ```
    sparsity[layer] = (number of zero entries of the layer's output over all of data)
                      / (number of entries of the layer's output over all of data)
    ```

    The model runs in inference mode (`training=False`: no dropout, no activation noise,
    BatchNormalization with its moving statistics). Batches are weighted by their number of
    entries, so the result does not depend on how `data` is batched. NaN is not zero. Measuring
    leaves the model unchanged (its non-trainable state, e.g. noise-seed states, is restored).

    By default the monitored layers are the model's activation layers: `keras.layers.ReLU`,
    `LeakyReLU`, `PReLU`, `ELU`, `Activation` with a non-linear activation, this package's
    `CompetitiveReLU`, `RReLU`, `JSquaredReLU`, `MixedActivation`, `NoisyHardTanh` and
    `NoisyHardSigmoid`, and the Dense, EinsumDense and convolution layers with a non-linear
    `activation` (their output is an activation). Outputs of smooth activations (sigmoid,
    tanh, ...) are rarely exactly zero. Layers of nested Functional or Sequential models are
    included; layers inside other wrappers (`TimeDistributed`, RNN cells) are not reachable.

    The layers' outputs are read from the model's graph, so `model` must be a Functional or
    Sequential model (built: with a `keras.Input` or after a first call); a subclassed model
    raises `ValueError` (build the same network as a Functional model, or measure a tensor
    with `keras_adaptive_acts.ops.zero_fraction`). A layer must be called once in the model.

    Args:
        model: a built Functional or Sequential model.
        data: the inputs: an array (or dict / list of arrays for several inputs), a tuple
            `(x, y)` or `(x, y, sample_weight)` as for `fit` (only `x` is used), or an
            iterable of batches such as a `tf.data.Dataset` (each batch `x` or a tuple `(x, ...)`).
        layers: None (every activation layer, as above) or a non-empty list of layers of the
            model or their names (any layer with one output tensor).
        batch_size: the batch size for array data; default 32. Not allowed with a dataset,
            which is batched already.

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
    """
    chosen = select_layers(model, layers, "measure_sparsity", default=is_activation_layer)
    batch_size = check_batch_size(batch_size, data)
    check_data(data)
    taps = LayerTaps(model, chosen, "output", "measure_sparsity")
    return zero_fractions(taps, data, batch_size, training=False)


# ----------------------------------------------------------------------------------------------
# Which layers


def is_activation_layer(layer: keras.layers.Layer) -> bool:
    """Whether `layer`'s output is an activation (see `measure_sparsity` for the list)."""
    if registry.is_activation(layer) or isinstance(layer, _KERAS_ACTIVATION_LAYERS):
        return True
    if isinstance(layer, (keras.layers.Activation, *OUTPUT_ACTIVATION_LAYERS)):
        activation = getattr(layer, "activation", None)
        return activation is not None and activation is not keras.activations.linear
    return False


def all_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every layer inside `model`, at any depth, each once (the model itself included).

    Keras 3.15 has no public recursive listing: `Model.layers` is one level deep and misses the
    layers a layer holds as attributes (an RNN's cell, the noisy gates inside a cell, the
    copies of a `Bidirectional`). `_flatten_layers` is the walk Keras itself uses for
    `model.weights`, so it sees exactly the layers whose variables the model trains.
    """
    return model._flatten_layers(include_self=True, recursive=True)


def is_graph_model(layer: Any) -> bool:
    """Whether `layer` is a Functional or Sequential model with a graph (built)."""
    return (
        isinstance(layer, keras.Model)
        and getattr(layer, "inputs", None) is not None
        and getattr(layer, "outputs", None) is not None
    )


def check_graph_model(model: Any, owner: str) -> None:
    """Raises `ValueError` unless `model` is a built Functional or Sequential model."""
    if is_graph_model(model):
        return
    if isinstance(model, keras.Sequential):
        raise ValueError(
            f"{owner}: the Sequential model {model.name!r} is not built yet, so its layers have no "
            "outputs to read. Start it with `keras.Input(shape)`, or call it once on data first."
        )
    kind = type(model).__name__ if isinstance(model, keras.Model) else repr(model)
    raise ValueError(
        f"{owner} reads the layers' outputs from the model's graph, which a subclassed model "
        f"({kind}) does not have. Pass a Functional or Sequential model (build the same layers with "
        "`keras.Input` and `keras.Model(inputs, outputs)`), or measure tensors yourself with "
        "`keras_adaptive_acts.ops.zero_fraction`."
    )


def graph_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model`'s graph, with those of nested Functional/Sequential models, each once."""
    found: list[keras.layers.Layer] = []
    seen: set[int] = set()

    def walk(parent):
        for layer in parent.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            found.append(layer)
            if is_graph_model(layer):
                walk(layer)

    walk(model)
    return found


def select_layers(
    model: keras.Model,
    layers: Sequence[keras.layers.Layer | str] | None,
    owner: str,
    default,
    kind: str = "layer",
    accepts: tuple[type, ...] = (keras.layers.Layer,),
    default_kind: str = "activation layer",
) -> list[keras.layers.Layer]:
    """The layers of `model` to watch: those passing `default`, or `layers` (objects or names).

    Raises `ValueError` for a subclassed or unbuilt model, an empty selection, a name that does
    not match exactly one layer, a layer that is not in the model or not of the `accepts` types,
    and two chosen layers of one name (results are keyed by name).
    """
    check_graph_model(model, owner)
    candidates = graph_layers(model)
    if layers is None:
        chosen = [layer for layer in candidates if default(layer)]
        if not chosen:
            raise ValueError(
                f"{owner} found no {default_kind} in the model {model.name!r}. Pass `layers` (layers of the "
                "model or their names) to choose what to watch."
            )
    else:
        check_layer_list(layers, accepts, kind)
        hint = "layers inside wrappers or RNN cells cannot be read"
        chosen = match_layers(owner, model, candidates, layers, "layer", hint=hint)
        for layer in chosen:
            if not isinstance(layer, accepts):
                raise ValueError(
                    f"{owner}: the layer {layer.name!r} is a {type(layer).__name__}, not a {kind}. "
                    f"Received: layers={list(layers)!r}"
                )
    names = [layer.name for layer in chosen]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(
            f"{owner} keys its results by layer name, and several chosen layers are named "
            f"{duplicated}: give them distinct names (the `name` argument) or pass `layers`."
        )
    return chosen


def match_layers(
    owner: str,
    model: keras.layers.Layer,
    candidates: Sequence[keras.layers.Layer],
    requested: Sequence[keras.layers.Layer | str],
    kind: str,
    hint: str = "",
) -> list[keras.layers.Layer]:
    """The `candidates` that `requested` names or holds, in its order, each once.

    A name must match exactly one candidate; a layer must be one of them (the same object).
    """
    chosen: list[keras.layers.Layer] = []
    for item in requested:
        if isinstance(item, str):
            matches = [layer for layer in candidates if layer.name == item]
            if len(matches) != 1:
                problem = f"no {kind}" if not matches else f"{len(matches)} {kind}s"
                raise ValueError(
                    f"{owner}: the model {model.name!r} has {problem} named {item!r}. Its {kind}s: "
                    f"{[layer.name for layer in candidates]}. Received: layers={list(requested)!r}"
                )
            layer = matches[0]
        elif any(item is layer for layer in candidates):
            layer = item
        else:
            raise ValueError(
                f"{owner}: the layer {item.name!r} in `layers` is not part of the model {model.name!r} "
                f"(a copy, e.g. from `clone_model`, is a different layer{'; ' + hint if hint else ''}). "
                f"Its {kind}s: {[layer.name for layer in candidates]}."
            )
        if all(layer is not other for other in chosen):
            chosen.append(layer)
    return chosen


def check_layer_list(layers: Any, accepts: tuple[type, ...], kind: str) -> None:
    """Raises `ValueError` unless `layers` is a non-empty list of `accepts` layers or names."""
    if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(
            f"`layers` must be None or a non-empty list of {kind}s (or their names). "
            f"Received: layers={layers!r}"
        )
    for i, item in enumerate(layers):
        if not isinstance(item, (str, *accepts)):
            raise ValueError(f"`layers` must hold {kind}s or layer names. Received: layers[{i}]={item!r}")


# ----------------------------------------------------------------------------------------------
# Reading the layers' tensors


class LayerTaps:
    """A model that returns the outputs (or the inputs) of chosen layers of a graph model.

    `taps(x, training)` gives, for each layer, the list of its output tensors (`which="output"`)
    or of its input tensors (`which="input"`: `[z]`, or `[z, source]` for a two-input call),
    computed on `x` by one forward pass that shares the model's variables.
    """

    def __init__(self, model: keras.Model, layers: Sequence[keras.layers.Layer], which: str, owner: str):
        check_graph_model(model, owner)
        self.model = model
        self.layers = list(layers)
        self.which = which
        self._counts = []
        flat = []
        for layer in self.layers:
            tensors = _symbolic_tensors(model, layer, which, owner)
            self._counts.append(len(tensors))
            flat.extend(tensors)
        inputs = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
        self._probe = keras.Model(inputs, flat, name=f"{model.name}_taps")

    def __call__(self, x: Any, training: bool) -> list[list[Any]]:
        flat = self._probe(x, training=training)
        flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
        grouped, start = [], 0
        for count in self._counts:
            grouped.append(flat[start : start + count])
            start += count
        return grouped


def _symbolic_tensors(model, layer, which, owner):
    """The flat list of `layer`'s output (or input) tensors in the graph of `model`."""
    node = _own_node(model, layer, owner)
    if node is not None:
        return list(node.output_tensors if which == "output" else node.input_tensors)
    for sub in model.layers:
        if is_graph_model(sub) and any(layer is inner for inner in graph_layers(sub)):
            inner = _symbolic_tensors(sub, layer, which, owner)
            sub_node = _own_node(model, sub, owner)
            sub_inputs = sub.inputs[0] if isinstance(sub, keras.Sequential) else sub.input
            outputs = keras.Model(sub_inputs, inner)(sub_node.arguments.args[0])
            return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    raise ValueError(f"{owner}: the layer {layer.name!r} is not in the graph of the model {model.name!r}.")


def _own_node(model, layer, owner):
    """The node of `layer` in `model`'s own graph; None if the layer is not called there."""
    graph = model._functional if isinstance(model, keras.Sequential) else model
    keys = graph._nodes  # Keras' keys of the graph's nodes: f"{id(operation)}_ib-{node index}"
    nodes = [node for i, node in enumerate(layer._inbound_nodes) if f"{id(layer)}_ib-{i}" in keys]
    if len(nodes) > 1:
        raise ValueError(
            f"{owner}: the layer {layer.name!r} is called {len(nodes)} times in the model {model.name!r} "
            "(a shared layer), so it has no single output to measure. Measure a layer called once."
        )
    return nodes[0] if nodes else None


@contextlib.contextmanager
def preserved_state(model: keras.Model):
    """Restores the model's non-trainable variables (BatchNorm statistics, seed states) on exit.

    A forward pass in training mode updates BatchNormalization's moving statistics and every
    noise draw advances a seed state; measuring must not change the model or its noise stream.
    """
    variables = list(model.non_trainable_variables)
    saved = [ops.convert_to_numpy(variable) for variable in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


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
    """Raises `ValueError` for data with no samples (what can be checked without iterating)."""
    if data is None:
        raise ValueError("`data` must hold at least one sample. Received: data=None")
    if _is_batch_iterable(data):
        cardinality = getattr(data, "cardinality", None)  # tf.data.Dataset: 0 when known to be empty
        if isinstance(data, Batches) and not data:
            raise ValueError("`data` must hold at least one batch. Received: no batches")
        if callable(cardinality) and int(cardinality()) == 0:
            raise ValueError("`data` must hold at least one batch. Received: an empty dataset")
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
    """Per layer of `taps`: zero entries / entries of its (first) tapped tensor over `data`."""
    zeros = [0] * len(taps.layers)
    sizes = [0] * len(taps.layers)
    with preserved_state(taps.model):
        for x in iterate_batches(data, batch_size):
            for i, tensors in enumerate(taps(x, training=training)):
                if len(tensors) != 1:
                    raise ValueError(
                        f"The layer {taps.layers[i].name!r} has {len(tensors)} output tensors; the zero "
                        "fraction is defined for a layer with one output."
                    )
                tensor = tensors[0]
                zeros[i] += int(ops.convert_to_numpy(ops.sum(ops.cast(ops.equal(tensor, 0), "int32"))))
                sizes[i] += math.prod(int(d) for d in ops.shape(tensor))
    if not any(sizes):
        raise ValueError("`data` held no samples: there is nothing to measure.")
    return {layer.name: zeros[i] / sizes[i] if sizes[i] else math.nan for i, layer in enumerate(taps.layers)}
