"""Model surgery: swap the activations of an existing Sequential or Functional model, weights kept."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence

import keras
from keras import ops

from keras_adaptive_acts import registry
from keras_adaptive_acts._keras_internals import graph_nodes, lambda_output_shape
from keras_adaptive_acts.activation_arguments import activation_arguments, argument_kind, rebuild
from keras_adaptive_acts.activation_census import function_kind, held_activations, layer_kind
from keras_adaptive_acts.model_graph import OUTPUT_ACTIVATION_LAYERS, all_layers, is_functional

# What a user calls, and the report it returns; the rest (the classification of activations, the
# rebuilding) is how `swap_activations` works, not API.
__all__ = ["SwapReport", "swap_activations"]

TARGETS = ("relu", "relu6", "tanh", "sigmoid", "gelu", "silu")

# The kinds that the target "gelu" covers: Keras' GELU and the approximations of it that transformer
# code applies as functions of its own (KerasHub's `gelu_approximate`, tanh-based; CLIP's
# `quick_gelu`, x * sigmoid(1.702 x)). The report names each by its own kind.
GELU_KINDS = ("gelu", "gelu_approximate", "quick_gelu")

# What `swap_activations` takes as `replacement` (see its docstring).
Replacement = type[keras.layers.Layer] | Callable[[str], keras.layers.Layer] | str | dict | keras.layers.Layer


@dataclasses.dataclass
class SwapReport:
    """What `swap_activations` saw and changed: each activation of the model is in exactly one list.

    An activation is an activation layer (`ReLU`, `Activation`, `LeakyReLU`, `PReLU`, `ELU`, `Softmax`,
    this package's activation layers) or a function a layer holds as its `activation` or
    `recurrent_activation`, at any depth (nested models, wrappers, recurrent cells, the sublayers of
    custom layers); `linear` is none. Its kind is Keras' name for it (`"relu"`, `"silu"` for swish,
    `"relu6"` for every capped ReLU, `"competitive_relu"`, ...), or the name of a function of its own
    (KerasHub's `"gelu_approximate"`).

    Attributes:
        replaced: one `(layer path, how, activation)` per replaced activation.
        left_alone: one `(layer path, reason)` per activation of a targeted kind (or a near miss, such
            as a capped ReLU when `"relu"` is targeted) that was kept, with why.
        not_targeted: one `(layer path, activation)` per activation of a kind not among `targets`.
        seen: how many activations of each kind the model holds (a `collections.Counter`), the three
            lists together.

    `print(report)` starts with what was seen by kind (`Saw 66 activation(s): 49 silu (not targeted),
    ...`), then lists what was replaced and what was left alone, path by path.
    """

    replaced: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    left_alone: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    not_targeted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seen: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def __str__(self) -> str:
        lines = [self._summary()]
        lines.append(f"Replaced {len(self.replaced)} activation(s)" + (":" if self.replaced else "."))
        lines += [f"  {path}: {how} ({activation})" for path, how, activation in self.replaced]
        if self.left_alone:
            lines.append(f"Left alone {len(self.left_alone)}:")
            lines += [f"  {path}: {reason}" for path, reason in self.left_alone]
        return "\n".join(lines)

    def _summary(self) -> str:
        """One line: the activations seen, by kind, most frequent first, with what became of them."""
        replaced = collections.Counter(activation for _, _, activation in self.replaced)
        not_targeted = collections.Counter(activation for _, activation in self.not_targeted)
        parts = []
        for kind, count in sorted(self.seen.items(), key=lambda item: (-item[1], item[0])):
            outcomes = {"replaced": replaced[kind], "not targeted": not_targeted[kind]}
            outcomes["left alone"] = count - sum(outcomes.values())
            present = [(outcome, number) for outcome, number in outcomes.items() if number]
            if len(present) == 1:
                parts.append(f"{count} {kind} ({present[0][0]})")
            else:
                parts.append(f"{count} {kind} ({', '.join(f'{n} {outcome}' for outcome, n in present)})")
        total = sum(self.seen.values())
        return f"Saw {total} activation(s)" + (f": {', '.join(parts)}." if parts else ".")


CAPPED = "a capped ReLU, not a plain ReLU (add 'relu6' to `targets` to replace it too)"
LEAKY = "a leaky or thresholded ReLU layer, not a plain ReLU"
SET_BY_CODE = (
    "set by the code of {owner} (or of a layer it holds), not by an argument of its config: a .keras "
    "file rebuilds {owner} from its config, so a replacement would be lost on loading (give {owner} an "
    "activation argument, as KerasHub's TransformerEncoder has one)"
)
# A decision that is no reason: the activation's kind is not among the targets.
NOT_TARGETED = "not targeted"

# Wrappers whose output is their inner layer's output, so that an activation split off the inner
# layer can follow the wrapper instead; every other wrapper is copied whole, like a custom layer.
# TimeDistributed calls its inner layer once per time step: the new activation sees the whole
# sequence at once, which is the same for an elementwise activation and draws noise (for the noisy
# layers) from one stream per call.
REWRITTEN_WRAPPERS = (keras.layers.TimeDistributed, keras.layers.SpectralNormalization)


class _Surgeon:
    def __init__(self, make: Callable[[str], keras.layers.Layer], targets: Sequence[str]):
        self.make = make
        self.targets = tuple(targets)
        self.report = SwapReport()
        self.copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []  # (new, old): weights to copy
        # (new, old) wrappers whose own weights (not those of the layer they wrap) are to be copied.
        self.wrapper_copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
        self.appended: dict[int, keras.layers.Layer] = {}  # id(new layer) -> activation layer after it
        # ids of the new layers that take a whole replaced layer's place (an activation layer, or a
        # wrapper around one): called on its input alone (see `swap`).
        self.in_place_of_a_layer: set[int] = set()
        # id(layer) -> (args, kwargs) of its first call in the graph being rebuilt, symbolic tensors: what
        # the custom layers' new activations are built on.
        self.call_arguments: dict[int, tuple[tuple, dict]] = {}
        # id(layer) -> the shape of its output at each of its calls in the graph being rebuilt: what
        # one shared new activation would be called on.
        self.output_shapes: dict[int, list[tuple]] = {}

    # -- the report

    def decide(self, kind: str, layer: keras.layers.Layer | None = None) -> str | None:
        """None to replace an activation of this kind, else why it stays (or NOT_TARGETED)."""
        if _target_of(kind) in self.targets:
            return None
        if kind == "relu6" and "relu" in self.targets:
            return CAPPED
        leaky = kind in ("leaky_relu", "thresholded_relu") and isinstance(layer, keras.layers.ReLU)
        if leaky and {"relu", "relu6"} & set(self.targets):
            return LEAKY
        return NOT_TARGETED

    def sharing_reason(self, kind: str, layer: keras.layers.Layer) -> str | None:
        """Why one new activation cannot serve every call of `layer`, or None.

        A layer called at several places stays one shared layer, so its new activation is shared too.
        A replacement that fixes its input's rank or size when built (CompetitiveReLU's reduction axes,
        TLU's per-entry weights) cannot take calls of other shapes: one is tried on each call's shape.
        """
        shapes = self.output_shapes.get(id(layer), [])
        if len({shape[1:] for shape in shapes}) < 2:
            return None
        trial = self.new_layer(kind, layer)
        try:
            for shape in shapes:
                trial(keras.KerasTensor(shape, dtype=trial.compute_dtype))
        except ValueError as error:
            reason = str(error).split("\n")[0]
            return (
                f"a shared layer, called on outputs of shapes {', '.join(map(str, shapes))}, and one "
                f"{type(trial).__name__} cannot serve them all ({reason})"
            )
        return None

    def keep(self, path: str, kind: str, reason: str) -> None:
        self.report.seen[kind] += 1
        if reason == NOT_TARGETED:
            self.report.not_targeted.append((path, kind))
        else:
            self.report.left_alone.append((path, reason))

    def replace(self, path: str, how: str, kind: str, replaced: keras.layers.Layer) -> keras.layers.Layer:
        """The new layer for an activation of `replaced`, which computed it (in its dtype policy)."""
        self.report.seen[kind] += 1
        self.report.replaced.append((path, how, kind))
        return self.new_layer(kind, replaced)

    def new_layer(self, kind: str, replaced: keras.layers.Layer) -> keras.layers.Layer:
        """A new layer from the replacement, for an activation of this kind that `replaced` computes."""
        target = _target_of(kind)
        layer = self.make(target)
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"The replacement must build a keras Layer. It returned {layer!r} for {target!r}."
            )
        # The new layer computes where the old one did, in its precision: a layer made with the
        # global policy (the default) takes the replaced layer's; one made with another policy was
        # given it on purpose (e.g. float32 for an output under mixed precision) and keeps it.
        if layer.dtype_policy.name == keras.config.dtype_policy().name:
            layer.dtype_policy = _unquantized(replaced.dtype_policy)
        # A layer frozen for fine-tuning (`layer.trainable = False`) stays frozen, the activation
        # that takes its place or is split off it included: `fit` must not move what the user froze.
        if not replaced.trainable:
            layer.trainable = False
        return layer

    # -- the copies

    def clone_layer(
        self, layer, prefix: str, *, regularizer_follows: bool = True
    ) -> tuple[keras.layers.Layer | None, keras.layers.Layer | None]:
        """`(stand-in, activation after it)` for `layer`; a stand-in of None for an activation layer that
        is replaced (the new layer takes its place), an `after` of None when nothing is split off.

        An `activity_regularizer` of a layer whose activation is split off penalised the activation's
        output: it moves to the new layer, which computes that output now, unless
        `regularizer_follows` is False (see `clone_wrapper`)."""
        path = f"{prefix}{layer.name}"
        if not isinstance(layer, keras.layers.Layer):  # a graph operation such as `-x`: no activation
            return type(layer).from_config(layer.get_config()), None
        if isinstance(layer, keras.Model):
            return self.swap(layer, prefix=f"{path}/"), None
        if isinstance(layer, REWRITTEN_WRAPPERS):
            return self.clone_wrapper(layer, path)
        kind = layer_kind(layer)
        if kind is not None:
            reason = self.decide(kind, layer) or self.sharing_reason(kind, layer)
            if reason is None:
                return None, self.replace(path, f"{type(layer).__name__} layer replaced", kind, layer)
            self.keep(path, kind, reason)
            return self.copy(layer), None
        if isinstance(layer, OUTPUT_ACTIVATION_LAYERS):
            kind = function_kind(layer.activation)
            reason = NOT_TARGETED if kind is None else self.decide(kind) or self.sharing_reason(kind, layer)
            if reason is None:
                config = layer.get_config()
                config["activation"] = "linear"
                moves = regularizer_follows and layer.activity_regularizer is not None
                if moves:
                    config["activity_regularizer"] = None
                clone = type(layer).from_config(config)
                self.copies.append((clone, layer))
                how = f"activation of {type(layer).__name__} split off"
                if moves:
                    how += ", its activity_regularizer with it"
                after = self.replace(path, how, kind, layer)
                if moves:
                    _take_activity_regularizer(after, layer, path)
                return clone, after
            if kind is not None:
                self.keep(path, kind, reason)
            return self.copy(layer), None
        if isinstance(layer, keras.layers.Lambda):
            return _copy_lambda(layer), None
        if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional, keras.layers.Wrapper)):
            for inner_path, kind, why in held_activations(layer, path):
                self.keep(inner_path, kind, why if self.decide(kind) is None else NOT_TARGETED)
            return self.copy(layer), None
        return self.clone_custom(layer, path), None

    def clone_custom(self, layer: keras.layers.Layer, path: str) -> keras.layers.Layer:
        """A copy of a custom layer, rebuilt through the activation arguments of its config where they
        set targeted activations (see `activation_arguments`); the rest of its activations reported."""
        current, replaced, reasons = layer, [], {}
        targeted = {kind for _, kind, _ in held_activations(layer, path) if self.decide(kind) is None}
        for key in activation_arguments(layer.get_config()) if targeted else []:
            kind = argument_kind(current.get_config()[key])
            if kind is None or self.decide(kind) is not None:
                continue
            activation = self.new_layer(kind, layer)
            name = layer_kind(activation) or type(activation).__name__
            result = rebuild(current, path, key, activation, targeted, self.call_arguments.get(id(layer)))
            if isinstance(result, str):
                reasons[kind] = f"{type(layer).__name__}'s `{key}` argument cannot take {name}: {result}"
                continue
            # The weights of the layer it was rebuilt from, now: the original's, or those of the rebuild
            # for an argument before this one (the earlier new activation's among them).
            for target, source in zip(result.own_weights, current.weights, strict=True):
                target.assign(ops.convert_to_numpy(source))
            current = result.layer
            how = f"{type(layer).__name__} rebuilt with {key}={name}"
            replaced += [(inner_path, how, inner_kind) for inner_path, inner_kind in result.replaced]
        left = list(held_activations(layer, path))
        for inner_path, how, kind in replaced:
            # The same path in the original layer, or else one of its kind (Keras names some sublayers anew).
            same = [entry for entry in left if entry[:2] == (inner_path, kind)] or [
                entry for entry in left if entry[1] == kind
            ]
            left.remove(same[0])
            self.report.seen[kind] += 1
            self.report.replaced.append((inner_path, how, kind))
        owner = type(layer).__name__
        for inner_path, kind, _ in left:
            if self.decide(kind) is not None:
                self.keep(inner_path, kind, NOT_TARGETED)
            else:
                self.keep(inner_path, kind, reasons.get(kind) or SET_BY_CODE.format(owner=owner))
        return self.copy(layer) if current is layer else current

    def clone_wrapper(
        self, wrapper, path: str
    ) -> tuple[keras.layers.Layer | None, keras.layers.Layer | None]:
        # Keras' TimeDistributed runs the wrapped layer's `call()`, which applies no activity
        # regularizer: moved after the wrapper, one would start to count. It stays on the wrapped
        # layer, as inert as in the original (a test compares the two models' losses).
        follows = not isinstance(wrapper, keras.layers.TimeDistributed)
        inner, after = self.clone_layer(wrapper.layer, f"{path}/", regularizer_follows=follows)
        if inner is None:  # the wrapped layer was an activation: the new layer takes the wrapper's place
            return None, after
        config = wrapper.get_config()
        del config["layer"]
        clone = type(wrapper)(inner, **config)  # what `Wrapper.from_config` does with the inner layer's copy
        self.wrapper_copies.append((clone, wrapper))
        return clone, after

    def copy(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        try:
            clone = type(layer).from_config(layer.get_config())
        except Exception as error:  # whatever the layer's constructor raises on its own config
            raise ValueError(
                f"swap_activations copies each layer from its config, and the layer {layer.name!r} "
                f"({type(layer).__name__}) does not come back from its own config: {error}"
            ) from error
        if layer.weights:
            self.copies.append((clone, layer))
        return clone

    def remember_calls(self, model: keras.Model) -> None:
        """Keeps the arguments of each layer's first call in `model`'s graph (see `call_arguments`)."""
        for layer in model.layers:
            nodes = graph_nodes(model, layer)
            if nodes:
                arguments = nodes[0].arguments
                self.call_arguments[id(layer)] = (tuple(arguments.args), dict(arguments.kwargs))
                self.output_shapes[id(layer)] = [tuple(node.output_tensors[0].shape) for node in nodes]

    def swap(self, model: keras.Model, prefix: str = "") -> keras.Model:
        if isinstance(model, keras.Sequential) or is_functional(model):
            self.remember_calls(model)
        if isinstance(model, keras.Sequential):
            layers = [
                new for layer in model.layers for new in self.clone_layer(layer, prefix) if new is not None
            ]
            first = model.inputs[0]  # its name is the input's name in an exported signature
            inputs = keras.Input(batch_shape=first.shape, dtype=first.dtype, name=first.name)
            new_model = keras.Sequential([inputs, *layers], name=model.name)
        elif is_functional(model):
            # A Functional model names its outputs after the layers that compute them (the keys of
            # `compile`'s loss dict, of `fit`'s targets, of a SavedModel's outputs): where a new
            # activation computes an output now, it takes that name.
            output_names = set(model.output_names)
            names = {layer.name for layer in model.layers}

            def clone_function(layer):
                stand_in, after = self.clone_layer(layer, prefix)
                if after is not None and layer.name in output_names:
                    _pass_name(layer.name, stand_in, after, names)
                if stand_in is None:
                    self.in_place_of_a_layer.add(id(after))
                    return after
                if after is not None:
                    self.appended[id(stand_in)] = after
                return stand_in

            def call_function(layer, *args, **kwargs):
                if id(layer) in self.in_place_of_a_layer:
                    # The replaced layer's call arguments may be a wrapper's (TimeDistributed's `mask`);
                    # an activation takes its input, and Keras passes the mask and training flag on.
                    return layer(args[0])
                outputs = layer(*args, **kwargs)
                after = self.appended.get(id(layer))
                return outputs if after is None else after(outputs)

            new_model = keras.models.clone_model(
                model, clone_function=clone_function, call_function=call_function
            )
        else:
            raise TypeError(
                f"swap_activations works on Sequential and Functional models; {type(model).__name__} is a "
                "subclassed model, whose call() Keras cannot rewrite. Swap the activations where the model "
                "creates its layers (e.g. `CompetitiveReLU()` in `__init__`), or apply swap_activations to "
                "the Sequential or Functional parts it holds."
            )
        # Keras rebuilds a model under the global policy and trainable: keep the original's, so that a
        # model frozen for fine-tuning (`base.trainable = False`) stays frozen, new activations included.
        new_model.dtype_policy = model.dtype_policy
        if not model.trainable:
            new_model.trainable = False
        # As keras.models.clone_model does for both kinds (our Sequential is built here, not by it):
        # a compiled model's copy is compiled from its compile config, with a new optimizer.
        if model.compiled and not new_model.compiled:
            new_model.compile_from_config(model.get_compile_config())
        return new_model

    def copy_weights(self) -> None:
        """Copies the weights into the new model, once it is built."""
        for new, old in self.copies:
            new.set_weights(old.get_weights())
        for new, old in self.wrapper_copies:
            for target, source in zip(_own_weights(new), _own_weights(old), strict=True):
                target.assign(source.numpy())


def _take_activity_regularizer(new: keras.layers.Layer, old: keras.layers.Layer, path: str) -> None:
    """Gives `new` a copy of `old`'s activity regularizer (from its config, as layers are copied)."""
    if new.activity_regularizer is not None:
        raise ValueError(
            f"The layer {path!r} has an activity regularizer on its activation's output, and the new "
            f"activation layer, which computes that output now, has one of its own "
            f"({new.activity_regularizer!r}); a layer holds one. Give the replacement no "
            "activity_regularizer, or remove the one of the model's layer first."
        )
    regularizer = old.activity_regularizer
    new.activity_regularizer = type(regularizer).from_config(regularizer.get_config())


def _pass_name(name: str, stand_in: keras.layers.Layer | None, after: keras.layers.Layer, names: set) -> None:
    """`after` computes the output of the layer called `name` now, and takes its name; the stand-in
    that computes its input (the layer with its activation split off) becomes `name_preactivation`."""
    if stand_in is not None:
        new_name, number = f"{name}_preactivation", 1
        while new_name in names:
            new_name, number = f"{name}_preactivation_{number}", number + 1
        names.add(new_name)
        stand_in.name = new_name
    after.name = name


def _target_of(kind: str) -> str:
    """The target that covers activations of this kind (`"gelu"` for every GELU)."""
    return "gelu" if kind in GELU_KINDS else kind


def _unquantized(policy: keras.DTypePolicy) -> keras.DTypePolicy:
    """The policy a quantized layer computes in (`"float32"` for `"int8_from_float32"`).

    Quantization is of a layer's kernel; an activation layer has none, and Keras fails to call a
    layer of a quantized policy that does not implement the quantized call.
    """
    if policy.quantization_mode is None:
        return policy
    return keras.DTypePolicy(policy.name.split("_from_", 1)[-1])


def _own_weights(wrapper: keras.layers.Layer) -> list:
    """A wrapper's weights less those of the layer it wraps (copied with that layer)."""
    inner = {id(weight) for weight in wrapper.layer.weights}
    return [weight for weight in wrapper.weights if id(weight) not in inner]


def _copy_lambda(layer: keras.layers.Lambda) -> keras.layers.Lambda:
    """A new Lambda layer around the same function objects.

    Not `from_config`: Keras rebuilds a Python lambda from its bytecode there, without the globals of
    the module that defined it (it fails when called, e.g. with "name 'keras' is not defined"), and a
    named function only if it is registered. The function is already in this process; call it.
    """
    config = layer.get_config()
    config.update(function=layer.function, arguments=dict(layer.arguments))
    config["output_shape"] = lambda_output_shape(layer)
    config["mask"] = layer.mask
    return type(layer)(**config)


def _python_lambdas(model: keras.Model) -> list[str]:
    """The names of the Lambda layers, at any depth, whose function (or output shape, or mask) is a
    Python lambda: those that Keras copies and loads only outside safe mode."""
    names = []
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Lambda):
            config = layer.get_config()
            entries = (config.get("function"), config.get("output_shape"), config.get("mask"))
            if any(isinstance(entry, dict) and entry.get("class_name") == "__lambda__" for entry in entries):
                names.append(layer.name)
    return names


def swap_activations(
    model: keras.Model,
    replacement: Replacement,
    targets: Sequence[str] = ("relu",),
    *,
    safe_mode: bool = True,
) -> tuple[keras.Model, SwapReport]:
    """Returns a copy of `model` whose chosen activations are replaced by new layers, and a report.

    Replaced: `ReLU()` layers, `Activation(...)` layers, and the `activation=` of Dense, EinsumDense and
    convolution layers (split off: the layer is rebuilt with a linear activation and the new layer
    follows it), also inside `TimeDistributed` and `SpectralNormalization` (the new layer follows the
    wrapper; a wrapped activation layer is replaced, wrapper and all). The `activity_regularizer`
    of a layer whose activation is split off moves to the new layer, whose output it penalised
    (except inside `TimeDistributed`, which applies none). A Functional model's outputs keep their
    names: a new activation that computes one takes its name, and the layer it was split off
    becomes `<name>_preactivation`. Nested Sequential and Functional
    models are rebuilt the same way; a shared layer stays shared, and is left alone (and reported) where
    one new activation cannot take every call's shape (CompetitiveReLU, TLU: their input's rank and
    size are fixed when built). Every other layer is rebuilt from its
    config and keeps its weights. Capped ReLUs (`ReLU(max_value=...)`, `"relu6"`) are not plain ReLUs:
    they are replaced only when `"relu6"` is among the targets, and otherwise listed in the report as
    left alone, as are leaky or thresholded `ReLU` layers and the targeted activations inside
    recurrent cells (also within `Bidirectional`).

    Inside a custom layer (a KerasHub `TransformerEncoder`, a layer of your own), an activation that
    the layer takes as an argument of its config (`activation`, `intermediate_activation`: any
    argument named after an activation) is replaced by rebuilding the layer from its config with that
    argument set to the new layer, which the layer's own code then puts where it put the old
    activation (a `Dense(activation=...)` or an activation layer it holds). That is what a `.keras`
    file records, so the new model saves and loads with the new activations; the layer's weights are
    kept. Before it is used, the rebuilt layer is checked: only targeted activations went, only the
    new kind came, its config and build give it back (activations and weight shapes) as loading
    will, and its weights line up with the original's. An activation set by the layer's code (a
    `Dense(..., activation="gelu")` written in its `build`, as in KerasHub's ViT) has no argument, and
    a change to it would be lost on loading: it is left alone, with the reason, as is one whose
    rebuild fails a check. `keras_adaptive_acts.measurement.measure_sparsity` and `SparsityMonitor`
    find the new activations inside custom layers by default.

    Each new layer takes the dtype policy of the layer whose activation it replaces (the `Dense` whose
    activation is split off, the replaced `ReLU`), so a mixed-precision model stays mixed whatever the
    global policy is now; a replacement made with a policy other than the global one keeps it. After a
    quantized layer, the new one takes the policy the layer computes in (`"float32"` for
    `"int8_from_float32"`). Rebuilt models keep their dtype policy, and a frozen one
    (`trainable = False`) stays frozen; so does a frozen layer, and the new layer that replaces its
    activation (or the activation layer) is frozen with it. A compiled model's copy is compiled as
    `keras.models.clone_model` compiles one: the same loss, metrics and optimizer settings, from the
    model's compile config, with a new optimizer. The optimizer's state (its step count, Adam's
    moments) is not copied: the new model's variables are not the old ones.

    Args:
        model: a built Sequential or Functional model. It is not changed.
        replacement: what each replaced activation becomes, a new layer each time: a Layer class
            (instantiated with no arguments), an activation name such as `"competitive_relu"` or
            `"gelu"` (resolved as `keras_adaptive_acts.registry.activation_layer` resolves it), a config
            dict, a layer used as a template (rebuilt from its config, without its weights), or a
            factory called with the replaced activation's name (one of the `targets`) that returns a new
            layer.
        targets: which activations to replace, among `"relu"`, `"relu6"` (every capped ReLU), `"tanh"`,
            `"sigmoid"`, `"gelu"` (also the approximations transformer code applies: KerasHub's
            `gelu_approximate`, CLIP's `quick_gelu`) and `"silu"` (swish).
        safe_mode: as in `keras.saving.load_model`: whether to refuse a model with a `Lambda` layer
            that runs a Python lambda, which Keras copies and loads only with `safe_mode=False`. Pass
            False for a model you trust: the new model's Lambda layers call the same functions.

    Returns:
        `(new_model, report)`; `print(report)` gives the activations seen, by kind, and lists every
        change. The report accounts for every activation of the model (see `SwapReport`).

    Raises:
        TypeError: for a `model` that is not a Sequential or Functional model (or holds a subclassed
            one), a `replacement` that is not one of the forms above (or builds no layer), or a
            `safe_mode` that is not True or False.
        ValueError: for unknown `targets`, an unknown activation name, a model that is not built, one
            with a Python lambda in a `Lambda` layer while `safe_mode` is True, or one with a layer
            that its own config does not rebuild. The model is left as it was.

    Examples:

    >>> from keras_adaptive_acts import CompetitiveReLU
    >>> layers = [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    >>> model = keras.Sequential(layers)
    >>> new_model, report = swap_activations(model, CompetitiveReLU)
    >>> " -> ".join(type(layer).__name__ for layer in new_model.layers)
    'Dense -> CompetitiveReLU -> Dense'
    >>> len(report.replaced)
    1
    >>> _, report = swap_activations(model, CompetitiveReLU, targets=("tanh",))
    >>> print(report)
    Saw 1 activation(s): 1 relu (not targeted).
    Replaced 0 activation(s).
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
    if not isinstance(safe_mode, bool):
        raise TypeError(f"`safe_mode` must be True or False. Received: safe_mode={safe_mode!r}")
    make = _replacement_factory(replacement)
    if not model.built:
        raise ValueError("swap_activations needs a built model: call it on data or build it first.")
    lambdas = _python_lambdas(model) if safe_mode else []
    if lambdas:
        raise ValueError(
            f"The model holds Lambda layers that run Python lambdas: {lambdas}. Keras copies and loads "
            "these only outside safe mode, as their code could be anyone's. If you trust this model, pass "
            "`safe_mode=False` to swap_activations: the new model's Lambda layers call the same functions "
            "(and, like the original, it loads from a .keras file only with `safe_mode=False`). To keep "
            "safe mode, give the model a registered layer in place of each Lambda."
        )
    surgeon = _Surgeon(make, targets)
    new_model = surgeon.swap(model)
    surgeon.copy_weights()
    return new_model, surgeon.report


def _replacement_factory(replacement: Replacement) -> Callable[[str], keras.layers.Layer]:
    """A function from the replaced activation's name to a new layer, for any form of `replacement`."""
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

        return make
    if callable(replacement):
        return replacement
    raise TypeError(f"`replacement` must be {kinds}. Received: replacement={replacement!r}")
