"""One `register` decorator for every public object, and `get()` to resolve names."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import keras

PACKAGE = "keras_adaptive_acts"

_REGISTERED: dict[str, type] = {}
_ACTIVATIONS: set[type] = set()


def _key(name: str) -> str:
    """Lookup key: case and underscores are ignored ("competitive_relu" == "CompetitiveReLU")."""
    return name.split(">")[-1].replace("_", "").lower()


def register(cls: type | None = None, *, activation: bool = False):
    """Registers a class for Keras serialisation (package "keras_adaptive_acts") and for `get()`.

    Use as `@register`, or `@register(activation=True)` for a layer that is an activation
    function (what `kaa compare`, `measure_sparsity` and the tuner offer and look for). A layer
    whose Keras default name would split "ReLU" gets a readable one (see `default_name`).
    """

    def decorate(cls: type) -> type:
        key = _key(cls.__name__)
        if key in _REGISTERED and _REGISTERED[key] is not cls:
            raise ValueError(f"A different object is already registered as {cls.__name__!r}.")
        _REGISTERED[key] = cls
        if activation:
            _ACTIVATIONS.add(cls)
        if issubclass(cls, keras.layers.Layer) and "ReLU" in cls.__name__:
            _name_by_default(cls)
        return keras.saving.register_keras_serializable(package=PACKAGE)(cls)

    return decorate if cls is None else decorate(cls)


def default_name(class_name: str) -> str:
    """A class name in snake case with "ReLU" kept whole, where Keras' own default would split it.

    Examples:
        >>> ", ".join(default_name(name) for name in ("CompetitiveReLU", "JSquaredReLU", "RReLU"))
        'competitive_relu, j_squared_relu, rrelu'
    """
    words = re.sub(r"R?ReLU", lambda match: match.group(0).capitalize(), class_name)
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", words)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()


def _name_by_default(cls: type) -> None:
    """Instances made without a `name` get `default_name(...)`, then `..._1`, ..., as Keras numbers them."""
    initialise = cls.__init__
    prefix = default_name(cls.__name__)

    @functools.wraps(initialise)
    def __init__(self, *args, **kwargs):
        if kwargs.get("name") is None and type(self) is cls:
            count = keras.backend.get_uid(prefix)  # 1, 2, ... per prefix, reset by clear_session()
            kwargs["name"] = prefix if count == 1 else f"{prefix}_{count - 1}"
        initialise(self, *args, **kwargs)

    # Keras reads the constructor's arguments from its signature (for get_config): keep the original.
    __init__.__signature__ = inspect.signature(initialise)
    cls.__init__ = __init__


def activation_names() -> list[str]:
    """The class names of the registered activation layers, sorted."""
    return sorted(cls.__name__ for cls in _ACTIVATIONS)


def is_activation(obj: Any) -> bool:
    """Whether `obj` (a class or an instance) is one of the package's activation layers."""
    cls = obj if isinstance(obj, type) else type(obj)
    return any(issubclass(cls, activation) for activation in _ACTIVATIONS)


def registered_names(base: type | None = None) -> list[str]:
    """The class names `get()` resolves, sorted; only subclasses of `base` if given."""
    return sorted(cls.__name__ for cls in _REGISTERED.values() if base is None or issubclass(cls, base))


def get(identifier: Any) -> Any:
    """Resolves an identifier to an instance of one of the package's objects.

    Accepts None (returns None), a name (`"competitive_relu"`, `"CompetitiveReLU"` or the
    registered `"keras_adaptive_acts>CompetitiveReLU"`; a new instance with default arguments),
    a config dict (`{"class_name": ..., "config": {...}}`, as `keras.saving.serialize_keras_object`
    writes it), a registered class (instantiated with defaults) or an instance (returned as is).

    Examples:
        >>> import keras_adaptive_acts as kaa
        >>> type(kaa.get("competitive_relu")).__name__
        'CompetitiveReLU'
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return _instantiate(lookup(identifier))
    if isinstance(identifier, dict):
        name = identifier.get("registered_name") or identifier.get("class_name")
        if not isinstance(name, str):
            raise ValueError(f"A config dict needs a 'class_name'. Received: identifier={identifier!r}")
        return lookup(name).from_config(identifier.get("config") or {})
    if isinstance(identifier, type):
        if identifier in _REGISTERED.values():
            return _instantiate(identifier)
        raise ValueError(f"{identifier.__name__} is not one of this package's objects. {_known()}")
    if type(identifier) in _REGISTERED.values():
        return identifier
    raise ValueError(f"Cannot interpret {identifier!r} as an object of this package. {_known()}")


def _instantiate(cls: type) -> Any:
    try:
        return cls()
    except TypeError as error:
        raise ValueError(
            f"{cls.__name__} has required arguments ({error}): "
            "pass a config dict or an instance instead of a name."
        ) from None


def lookup(name: str) -> type:
    """The registered class of a name (case and underscores ignored); `ValueError` if unknown."""
    cls = _REGISTERED.get(_key(name))
    if cls is None:
        raise ValueError(f"Unknown name {name!r}. {_known()}")
    return cls


def _known() -> str:
    return (
        f"Known names: {', '.join(registered_names())} "
        "(case and underscores are ignored, e.g. 'competitive_relu')."
    )
