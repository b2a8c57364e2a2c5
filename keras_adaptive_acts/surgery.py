"""Model surgery: swap the activations of an existing Sequential or Functional model, weights kept."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras

from keras_adaptive_acts import registry
from keras_adaptive_acts.model_graph import OUTPUT_ACTIVATION_LAYERS, is_functional

# What a user calls, and the report it returns; the rest (the classification of activations, the
# rebuilding) is how `swap_activations` works, not API.
__all__ = ["SwapReport", "swap_activations"]

TARGETS = ("relu", "relu6", "tanh", "sigmoid")

# What `swap_activations` takes as `replacement` (see its docstring).
Replacement = type[keras.layers.Layer] | Callable[[str], keras.layers.Layer] | str | dict | keras.layers.Layer


@dataclasses.dataclass
class SwapReport:
    """What `swap_activations` changed: one `(layer path, how, activation)` per replaced activation and one
    `(layer path, reason)` per activation it saw and left alone."""

    replaced: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    left_alone: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Replaced {len(self.replaced)} activation(s):"]
        lines += [f"  {path}: {how} ({activation})" for path, how, activation in self.replaced]
        if self.left_alone:
            lines.append(f"Left alone {len(self.left_alone)}:")
            lines += [f"  {path}: {reason}" for path, reason in self.left_alone]
        return "\n".join(lines)


def _activation_name(function) -> str | None:
    try:
        name = keras.activations.serialize(function)
    except (ValueError, TypeError):
        return None
    return name if isinstance(name, str) else None


CAPPED = "a capped ReLU, not a plain ReLU (add 'relu6' to `targets` to replace it too)"


def _by_name(name: str | None, targets: Sequence[str], action: str) -> tuple[str, str] | None:
    if name in targets:
        return (action, name)
    if name == "relu6" and "relu" in targets:
        return ("skip", CAPPED)
    return None


def _classify(layer, targets: Sequence[str]) -> tuple[str, str] | None:
    """`("replace" | "split", activation)` for a targeted activation, `("skip", reason)` for a near miss."""
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            relu_like = {"relu", "relu6"} & set(targets)
            return ("skip", "a leaky or thresholded ReLU layer, not a plain ReLU") if relu_like else None
        return _by_name("relu" if layer.max_value is None else "relu6", targets, "replace")
    if isinstance(layer, keras.layers.Activation):
        return _by_name(_activation_name(layer.activation), targets, "replace")
    if isinstance(layer, OUTPUT_ACTIVATION_LAYERS):
        return _by_name(_activation_name(layer.activation), targets, "split")
    if isinstance(layer, keras.layers.RNN) or hasattr(layer, "cell"):
        names = {
            _activation_name(getattr(layer, attr, None)) for attr in ("activation", "recurrent_activation")
        }
        if names & set(targets):
            return (
                "skip",
                "the activations inside a recurrent cell (use NoisyLSTMCell or NoisyGRUCell there)",
            )
    return None


class _Surgeon:
    def __init__(self, make: Callable[[str], keras.layers.Layer], targets: Sequence[str]):
        self.make = make
        self.targets = tuple(targets)
        self.report = SwapReport()
        self.copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []  # (new, old): weights to copy
        self.appended: dict[int, keras.layers.Layer] = {}  # id(new layer) -> activation layer after it

    def new_activation(self, activation: str) -> keras.layers.Layer:
        layer = self.make(activation)
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"The replacement must build a keras Layer. It returned {layer!r} for {activation!r}."
            )
        return layer

    def clone_layer(self, layer: keras.layers.Layer, prefix: str) -> list[keras.layers.Layer]:
        """The layers that stand in for `layer` (one, or two when an activation is split off)."""
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            return [self.swap(layer, prefix=f"{path}/")]
        verdict = _classify(layer, self.targets)
        if verdict is not None and verdict[0] == "replace":
            self.report.replaced.append((path, f"{type(layer).__name__} layer replaced", verdict[1]))
            return [self.new_activation(verdict[1])]
        config = layer.get_config()
        if verdict is not None and verdict[0] == "split":
            config["activation"] = "linear"
            self.report.replaced.append((path, f"activation of {type(layer).__name__} split off", verdict[1]))
        elif verdict is not None:
            self.report.left_alone.append((path, verdict[1]))
        clone = type(layer).from_config(config)
        if getattr(layer, "weights", None):  # graph operations such as `-x` have none
            self.copies.append((clone, layer))
        if verdict is not None and verdict[0] == "split":
            return [clone, self.new_activation(verdict[1])]
        return [clone]

    def swap(self, model: keras.Model, prefix: str = "") -> keras.Model:
        if isinstance(model, keras.Sequential):
            layers = [new for layer in model.layers for new in self.clone_layer(layer, prefix)]
            inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
            return keras.Sequential([inputs, *layers], name=model.name)
        if not is_functional(model):
            raise TypeError(
                f"swap_activations works on Sequential and Functional models; {type(model).__name__} is a "
                "subclassed model, whose call() Keras cannot rewrite. Swap the activations where the model "
                "creates its layers (e.g. `CompetitiveReLU()` in `__init__`), or apply swap_activations to "
                "the Sequential or Functional parts it holds."
            )

        def clone_function(layer):
            replacements = self.clone_layer(layer, prefix)
            if len(replacements) == 2:
                self.appended[id(replacements[0])] = replacements[1]
            return replacements[0]

        def call_function(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            after = self.appended.get(id(layer))
            return outputs if after is None else after(outputs)

        return keras.models.clone_model(model, clone_function=clone_function, call_function=call_function)


def swap_activations(
    model: keras.Model,
    replacement: type[keras.layers.Layer]
    | Callable[[str], keras.layers.Layer]
    | str
    | dict
    | keras.layers.Layer,
    targets: Sequence[str] = ("relu",),
) -> tuple[keras.Model, SwapReport]:
    """Returns a copy of `model` whose chosen activations are replaced by new layers, and a report.

    Replaced: `ReLU()` layers, `Activation(...)` layers, and the `activation=` of Dense, EinsumDense and
    convolution layers (split off: the layer is rebuilt with a linear activation and the new layer
    follows it). Nested Sequential and Functional models are rebuilt the same way; a shared layer stays
    shared. Every other layer is rebuilt from its config and keeps its weights. Capped ReLUs
    (`ReLU(max_value=...)`, `"relu6"`) are not plain ReLUs: they are replaced only when `"relu6"` is
    among the targets, and otherwise listed in the report as left alone, as are leaky or thresholded
    `ReLU` layers and the activations inside recurrent cells.

    Args:
        model: a built Sequential or Functional model. It is not changed.
        replacement: what each replaced activation becomes, a new layer each time: a Layer class
            (instantiated with no arguments), an activation name such as `"competitive_relu"` or
            `"gelu"` (resolved as `keras_adaptive_acts.registry.activation_layer` resolves it), a config
            dict, a layer used as a template (rebuilt from its config, without its weights), or a
            factory called with the replaced activation's name (one of the `targets`) that returns a new
            layer.
        targets: which activations to replace, among `"relu"`, `"relu6"` (every capped ReLU), `"tanh"`
            and `"sigmoid"`.

    Returns:
        `(new_model, report)`; `print(report)` lists every change.

    Examples:

    >>> from keras_adaptive_acts import CompetitiveReLU
    >>> layers = [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    >>> model = keras.Sequential(layers)
    >>> new_model, report = swap_activations(model, CompetitiveReLU)
    >>> " -> ".join(type(layer).__name__ for layer in new_model.layers)
    'Dense -> CompetitiveReLU -> Dense'
    >>> len(report.replaced)
    1
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model: swap_activations works on Sequential and Functional models. "
            f"Received: model={model!r}"
        )
    if isinstance(targets, str):
        targets = (targets,)
    unknown = [target for target in targets if target not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"`targets` must name some of {TARGETS}. Received: targets={tuple(targets)!r}")
    # `replacement` is anything the package's one activation resolver takes, or a factory.
    kinds = "a Layer class or a factory, an activation name, a config dict or a layer"
    template = replacement
    if isinstance(replacement, type) and not issubclass(replacement, keras.layers.Layer):
        raise TypeError(f"`replacement` must be {kinds}. Received: replacement={replacement!r}")
    if isinstance(replacement, (dict, keras.layers.Layer)):
        # A template: each replaced activation gets a new layer from its config, without its name (Keras
        # names each one, as layer names must be unique) or its build shape (positions differ in width).
        config = replacement
        if isinstance(replacement, keras.layers.Layer):
            config = keras.saving.serialize_keras_object(replacement)
        inner = {key: value for key, value in (config.get("config") or {}).items() if key != "name"}
        template = {key: value for key, value in config.items() if key != "build_config"}
        template["config"] = inner
    if isinstance(template, str):
        registry.canonical_activation_name(template)  # an unknown name fails before the model is copied
    if isinstance(template, (str, dict, type)):

        def make(activation: str) -> keras.layers.Layer:
            return registry.activation_layer(template)

    elif callable(replacement):
        make = replacement
    else:
        raise TypeError(f"`replacement` must be {kinds}. Received: replacement={replacement!r}")
    if not model.built:
        raise ValueError("swap_activations needs a built model: call it on data or build it first.")
    surgeon = _Surgeon(make, targets)
    new_model = surgeon.swap(model)
    for new, old in surgeon.copies:
        new.set_weights(old.get_weights())
    return new_model, surgeon.report
