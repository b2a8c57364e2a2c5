"""Names: one `register` decorator for every public object, and the one resolver of names to objects.

`get` resolves this package's registered objects (layers, regularizers, callbacks) and
`activation_layer` resolves activations, Keras' as well as this package's; both read the same
tables, compare names the same way (case and underscores ignored) and suggest the nearest known
name for a typo.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import re
from typing import Any

import keras

from keras_adaptive_acts.ops.serializable import PACKAGE

__all__ = [
    "PACKAGE",
    "activation_layer",
    "activation_names",
    "canonical_activation_name",
    "default_name",
    "get",
    "is_registered_activation",
    "lookup",
    "register",
    "registered_names",
    "with_default_name",
]


_REGISTERED: dict[str, type] = {}
_ACTIVATIONS: set[type] = set()

# Keras layers that a Keras activation name stands for. Every other Keras activation name becomes
# `keras.layers.Activation(name)`. "relu" is the ReLU layer (the baseline `kaa compare`, the tuner and
# surgery build, and one that takes arguments such as `negative_slope`); PReLU has no function form.
# "leaky_relu" stays Keras' function: the LeakyReLU layer has another default slope (0.3, not 0.2).
_KERAS_ACTIVATION_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "relu": keras.layers.ReLU,
    "prelu": keras.layers.PReLU,
}

# Public functions of `keras.activations` that are not activations.
_KERAS_HELPERS = ("deserialize", "get", "serialize")


def _key(name: str) -> str:
    """Lookup key: case and underscores are ignored ("competitive_relu" == "CompetitiveReLU")."""
    return name.split(">")[-1].strip().replace("_", "").lower()


# A name as written: words of letters and digits joined by single underscores, optionally after the
# prefix Keras records for this package's objects ("keras_adaptive_acts>CompetitiveReLU"). `_key` drops
# the prefix and the underscores, so without this check "junk>relu" and "_gelu" passed for "relu" and
# "gelu" (and `kaa compare` drew the label "_gelu" nowhere: matplotlib hides labels that start with "_").
_WORDS = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")


def _spelling_problem(name: str) -> str | None:
    """Why `name` (whitespace around it aside) cannot be a name as written, or None if it can."""
    prefix, separator, bare = name.strip().rpartition(">")
    if separator and prefix != PACKAGE:
        return f"the only prefix a name takes is {PACKAGE + '>'!r}, as Keras writes this package's names"
    if not _WORDS.fullmatch(bare):
        return "a name is words of letters and digits joined by single underscores, such as competitive_relu"
    return None


def register(cls: type | None = None, *, activation: bool = False):
    """Registers a class for Keras serialisation (package "keras_adaptive_acts") and for `get()`.

    Use as `@register`, or `@register(activation=True)` for a layer that is an activation
    function (what `activation_layer`, `kaa compare`, `measure_sparsity` and the tuner offer and
    look for).
    """

    def decorate(cls: type) -> type:
        key = _key(cls.__name__)
        if key in _REGISTERED and _REGISTERED[key] is not cls:
            raise ValueError(f"A different object is already registered as {cls.__name__!r}.")
        _REGISTERED[key] = cls
        if activation:
            _ACTIVATIONS.add(cls)
        return keras.saving.register_keras_serializable(package=PACKAGE)(cls)

    return decorate if cls is None else decorate(cls)


# ----------------------------------------------------------------------------------------------
# Default layer names


def default_name(class_name: str) -> str:
    """A class name in snake case with "ReLU" and "LiSHT" kept whole, where Keras' default splits them.

    Examples:
        >>> ", ".join(default_name(name) for name in ("CompetitiveReLU", "JSquaredReLU", "RReLU", "LiSHT"))
        'competitive_relu, j_squared_relu, rrelu, lisht'
    """
    words = re.sub(r"R?ReLU|LiSHT", lambda match: match.group(0).capitalize(), class_name)
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", words)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()


def with_default_name(layer: keras.layers.Layer, owner: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with a readable `name` filled in, for a layer class whose Keras default would split "ReLU".

    Keras names a layer after its class in snake case, which makes "CompetitiveReLU" into
    "competitive_re_lu". A layer's `__init__` passes its keyword arguments through this before
    `super().__init__`: when no `name` is given and `layer` is exactly an `owner` (a user's
    subclass keeps Keras' naming), the name is `default_name(owner.__name__)`, then `..._1`,
    `..._2`, numbered as Keras numbers its own (restarted by `keras.backend.clear_session()`).

    Examples:
        >>> import keras
        >>> class PlainReLU(keras.layers.Layer):
        ...     def __init__(self, **kwargs):
        ...         super().__init__(**with_default_name(self, PlainReLU, kwargs))
        >>> keras.backend.clear_session()
        >>> [PlainReLU().name, PlainReLU().name, PlainReLU(name="mine").name]
        ['plain_relu', 'plain_relu_1', 'mine']
    """
    if kwargs.get("name") is not None or type(layer) is not owner:
        return kwargs
    prefix = default_name(owner.__name__)
    count = keras.backend.get_uid(prefix)  # 1, 2, ... per prefix
    return {**kwargs, "name": prefix if count == 1 else f"{prefix}_{count - 1}"}


# ----------------------------------------------------------------------------------------------
# Listing and telling apart


def registered_names(base: type | None = None) -> list[str]:
    """The class names `get()` resolves, sorted; only subclasses of `base` if given."""
    return sorted(cls.__name__ for cls in _REGISTERED.values() if base is None or issubclass(cls, base))


def is_registered_activation(obj: Any) -> bool:
    """Whether `obj` (a class or an instance) is one of this package's registered activation layers.

    Keras' own activation layers are not (see `measurement.is_activation_layer` for a test that
    counts them too).
    """
    cls = obj if isinstance(obj, type) else type(obj)
    return any(issubclass(cls, activation) for activation in _ACTIVATIONS)


def activation_names(include_keras: bool = True) -> list[str]:
    """The activation names `activation_layer` accepts, in snake case and sorted.

    Args:
        include_keras: whether to list Keras' activations too, besides this package's.

    Examples:
        >>> activation_names(include_keras=False)[:2]
        ['competitive_relu', 'j_squared_relu']
        >>> {"relu", "prelu", "gelu"} <= set(activation_names())
        True
    """
    names = {default_name(cls.__name__) for cls in _ACTIVATIONS}
    if include_keras:
        names.update(_KERAS_ACTIVATION_LAYERS, _keras_activation_functions())
    return sorted(names)


@functools.cache
def _keras_activation_functions() -> tuple[str, ...]:
    """The names of `keras.activations` that work as `keras.layers.Activation(name)`.

    Read from the installed Keras, so a newer Keras's additions are known; functions that need more
    than their input (such as `threshold`) are left out.
    """
    names = []
    for name in dir(keras.activations):
        function = getattr(keras.activations, name)
        if name.startswith("_") or name in _KERAS_HELPERS or not inspect.isfunction(function):
            continue
        parameters = list(inspect.signature(function).parameters.values())[1:]
        if all(parameter.default is not parameter.empty for parameter in parameters):
            names.append(name)
    return tuple(names)


def _activation_classes() -> dict[str, type[keras.layers.Layer]]:
    """Snake-case name -> layer class, for the names that stand for a class of their own."""
    return {**_KERAS_ACTIVATION_LAYERS, **{default_name(cls.__name__): cls for cls in _ACTIVATIONS}}


# ----------------------------------------------------------------------------------------------
# Errors that name what is known


def _did_you_mean(name: str, known: list[str]) -> str:
    typed = default_name(name.split(">")[-1].strip()).lower()
    close = difflib.get_close_matches(typed, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else "."


def _known_activations() -> str:
    package = ", ".join(activation_names(include_keras=False))
    keras_names = sorted({*_KERAS_ACTIVATION_LAYERS, *_keras_activation_functions()})
    return (
        f"Known activation names: this package's {package}; Keras' {', '.join(keras_names)} "
        "(case and underscores are ignored)."
    )


def _known_objects() -> str:
    names = ", ".join(sorted(default_name(name) for name in registered_names()))
    return f"Known names: {names} (case and underscores are ignored)."


# ----------------------------------------------------------------------------------------------
# Resolving


def lookup(name: str) -> type:
    """The registered class of a name (case and underscores ignored); `ValueError` if unknown."""
    problem = _spelling_problem(name)
    cls = None if problem else _REGISTERED.get(_key(name))
    if cls is None:
        known = [default_name(name) for name in registered_names()]
        why = f": {problem}" if problem else ""
        raise ValueError(f"Unknown name {name!r}{why}{_did_you_mean(name, known)} {_known_objects()}")
    return cls


def get(identifier: Any) -> Any:
    """Resolves an identifier to an instance of one of the package's objects.

    Accepts None (returns None), a name (`"competitive_relu"`, `"CompetitiveReLU"` or the
    registered `"keras_adaptive_acts>CompetitiveReLU"`; a new instance with default arguments),
    a config dict (`{"class_name": ..., "config": {...}}`, as `keras.saving.serialize_keras_object`
    writes it), a registered class (instantiated with defaults) or an instance (returned as is).
    For activations, Keras' included, see `activation_layer`.

    Examples:
        >>> import keras_adaptive_acts as kaa
        >>> type(kaa.get("competitive_relu")).__name__
        'CompetitiveReLU'
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return _construct(lookup(identifier), {})
    if isinstance(identifier, dict):
        name = identifier.get("registered_name") or identifier.get("class_name")
        if not isinstance(name, str):
            raise ValueError(f"A config dict needs a 'class_name'. Received: identifier={identifier!r}")
        return lookup(name).from_config(identifier.get("config") or {})
    if isinstance(identifier, type):
        if identifier in _REGISTERED.values():
            return _construct(identifier, {})
        raise ValueError(f"{identifier.__name__} is not one of this package's objects. {_known_objects()}")
    if type(identifier) in _REGISTERED.values():
        return identifier
    raise ValueError(f"Cannot interpret {identifier!r} as an object of this package. {_known_objects()}")


def canonical_activation_name(name: str) -> str:
    """The snake-case name of an activation, as `activation_names()` lists it.

    Case and the underscores between words are ignored, and the registered
    `"keras_adaptive_acts>..."` form is accepted. `ValueError` for anything else (another prefix, a
    leading, trailing or doubled underscore, other characters), with the nearest known name and the
    list of them.

    Examples:
        >>> canonical_activation_name("CompetitiveReLU"), canonical_activation_name("ReLU")
        ('competitive_relu', 'relu')
        >>> canonical_activation_name("competitve_relu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown activation 'competitve_relu'; did you mean 'competitive_relu'? Known ...
        >>> canonical_activation_name("_gelu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown activation '_gelu': a name is words of letters and digits joined by single ...
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"An activation name must be a non-empty string. {_known_activations()}")
    problem = _spelling_problem(name)
    if problem:
        raise ValueError(
            f"Unknown activation {name!r}: {problem}{_did_you_mean(name, activation_names())} "
            f"{_known_activations()}"
        )
    names = activation_names()
    by_key = {_key(known): known for known in names}
    # This package's names win over Keras' where both spell the same key.
    by_key.update({_key(known): known for known in activation_names(include_keras=False)})
    canonical = by_key.get(_key(name.strip()))
    if canonical is not None:
        return canonical
    registered = _REGISTERED.get(_key(name))
    if registered is not None:
        raise ValueError(
            f"Unknown activation {name!r}: {registered.__name__} is one of this package's objects, but "
            f"not an activation layer. {_known_activations()}"
        )
    raise ValueError(f"Unknown activation {name!r}{_did_you_mean(name, names)} {_known_activations()}")


def activation_layer(identifier: Any, /, **kwargs: Any) -> keras.layers.Layer:
    """Resolves an activation identifier to a layer: the one resolver of the package's tools.

    `kaa compare`, `MixedActivation`, `SparsifiedMLP`, the tuner and `swap_activations` all read
    activations through this function.

    - A name: this package's activations (`"competitive_relu"`, `"CompetitiveReLU"`,
      `"keras_adaptive_acts>CompetitiveReLU"`; case and underscores ignored), `"relu"` (Keras'
      `ReLU` layer), `"prelu"` (`PReLU`), or any other Keras activation (`"gelu"`, `"tanh"`,
      `"leaky_relu"`, ...: a `keras.layers.Activation`). A new layer each call.
    - A layer class: instantiated (a new layer each call).
    - A config dict, as `keras.saving.serialize_keras_object` writes it, or the short form
      `{"class_name": "competitive_relu", "config": {...}}`: a new layer each call. In the short
      form, a name spelled exactly as a Keras layer class (`"LeakyReLU"`, `"ELU"`, `"Softmax"`)
      gives that layer, with its config; an activation's name (`"leaky_relu"`) gives the function.
    - A layer instance: returned as is.

    A near miss (`"competitve_relu"`) raises `ValueError` with the nearest known name and the
    list of known names (`activation_names()`).

    Args:
        identifier: the activation, in one of the forms above.
        **kwargs: constructor arguments of the new layer (for a config dict, they replace entries
            of its config), e.g. `competition="l1"`, `name`, `dtype`. Not allowed with an instance.

    Returns:
        A Keras layer.

    Examples:
        >>> type(activation_layer("competitive_relu", competition="l1")).__name__
        'CompetitiveReLU'
        >>> layer = activation_layer("gelu")
        >>> type(layer).__name__, layer.get_config()["activation"]
        ('Activation', 'gelu')
    """
    if isinstance(identifier, keras.layers.Layer):
        if kwargs:
            raise ValueError(
                f"Arguments cannot be applied to a layer instance; pass its class or name instead. "
                f"Received: identifier={identifier!r} with {kwargs!r}"
            )
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, keras.layers.Layer):
        return _construct(identifier, kwargs)
    if isinstance(identifier, dict):
        return _from_config(identifier, kwargs)
    if isinstance(identifier, str):
        name = canonical_activation_name(identifier)
        layer_class = _activation_classes().get(name)
        if layer_class is None:
            return _construct(keras.layers.Activation, kwargs, name)
        return _construct(layer_class, kwargs)
    raise ValueError(
        f"Cannot interpret {identifier!r} as an activation: give an activation name, a layer class, a "
        f"layer or its config dict. {_known_activations()}"
    )


def _from_config(config: dict[str, Any], kwargs: dict[str, Any]) -> keras.layers.Layer:
    """A new layer from a config dict; `kwargs` replace entries of its inner config."""
    config = copy.deepcopy(config)  # deserialisation must not change the caller's dict
    if kwargs:
        config["config"] = {**(config.get("config") or {}), **kwargs}
    name = config.get("class_name")
    is_short_form = config.get("module") is None and config.get("registered_name") is None
    unknown = None  # why a short form's name is no activation name
    keras_class = _keras_layer_class(name) if is_short_form else None
    if keras_class is not None:
        # `{"class_name": "LeakyReLU", "config": {"negative_slope": 0.1}}` is the layer config Keras
        # writes without its module: the layer, not the function of the same name (`leaky_relu`,
        # whose slope differs and which takes no `negative_slope`).
        try:
            return keras_class.from_config(config.get("config") or {})
        except TypeError as error:  # an argument the class does not take
            raise ValueError(f"{name} rejects its config {config.get('config')!r}: {error}") from None
    if is_short_form and isinstance(name, str):
        # `{"class_name": "competitive_relu", ...}` or `{"class_name": "gelu", ...}`: Keras cannot
        # locate a class by an activation's name, so the name is resolved here as a string would be.
        try:
            canonical = canonical_activation_name(name)
        except ValueError as error:
            canonical, unknown = None, error  # maybe a class name such as "Activation", for Keras
        if canonical is not None:
            layer_class = _activation_classes().get(canonical)
            if layer_class is not None:
                return layer_class.from_config(config.get("config") or {})
            return _construct(keras.layers.Activation, config.get("config") or {}, canonical)
    try:
        layer = keras.saving.deserialize_keras_object(config)
    except TypeError:  # "Could not locate class": for a short form, say which names there are
        if unknown is None:
            raise
        raise unknown from None
    if not isinstance(layer, keras.layers.Layer):  # Keras returns a dict it cannot read as it came
        raise ValueError(
            f"Cannot interpret the config {config!r} as an activation layer: give a config dict as "
            f"keras.saving.serialize_keras_object writes it, or the short form "
            f'{{"class_name": <activation name>, "config": {{...}}}}. {_known_activations()}'
        )
    return layer


def _keras_layer_class(name: Any) -> type[keras.layers.Layer] | None:
    """Keras' layer class spelled exactly `name` (`"LeakyReLU"`, `"Softmax"`), unless this package has
    an activation of that name; None otherwise."""
    if not isinstance(name, str) or _key(name) in {_key(known) for known in activation_names(False)}:
        return None
    found = getattr(keras.layers, name, None)
    return found if isinstance(found, type) and issubclass(found, keras.layers.Layer) else None


def _construct(cls: type, kwargs: dict[str, Any], *args: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except TypeError as error:  # a missing or unexpected argument of a constructor without **kwargs
        if kwargs:
            raise ValueError(f"{cls.__name__} rejects the arguments {kwargs!r}: {error}") from None
        raise ValueError(
            f"{cls.__name__} has required arguments ({error}): pass a config dict or an instance instead."
        ) from None
