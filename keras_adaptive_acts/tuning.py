"""KerasTuner search spaces over the activation layers.

`choose_activation(hp)` picks an activation and its own hyper-parameters; `ActivationHyperModel`
wraps a `build(hp, activation)` function into a KerasTuner `HyperModel`. KerasTuner is an optional
extra (`pip install "keras-adaptive-acts[tuner]"`), imported when this module is.

The hyper-parameters of a choice live under `hp.conditional_scope`, so a trial only records, and an
oracle only searches, the ones of the activation it picked. Their names are
`"{hp_name}/{activation}/{argument}"`, e.g. `"activation/competitive_relu/scale_bound"`. To take some out of
the search, pass the tuner `hyperparameters=fix_activation(HyperParameters(), ...)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts import registry
from keras_adaptive_acts.compare.datasets import split
from keras_adaptive_acts.compare.experiment import build_model
from keras_adaptive_acts.extras import require
from keras_adaptive_acts.layers import (
    TLU,
    CompetitiveReLU,
    JSquaredReLU,
    LiSHT,
    NoisyHardSigmoid,
    NoisyHardTanh,
    RReLU,
    Snake,
)
from keras_adaptive_acts.layers.competitive_relu import INIT_PRESETS
from keras_adaptive_acts.ops.competitive import COMPETITIONS
from keras_adaptive_acts.validation import check_callbacks, check_integer

# KerasTuner itself, or tensorboard, which it imports undeclared: either missing names the extra.
keras_tuner = require("keras_tuner", "tuner", "keras_adaptive_acts.tuning")

__all__ = [
    "DEFAULT_CHOICES",
    "PROJECT_NAME",
    "SEARCH_SPACES",
    "ActivationHyperModel",
    "SearchSpace",
    "StoredSearchMismatch",
    "choose_activation",
    "fix_activation",
    "search_activations",
]

HyperParameters = keras_tuner.HyperParameters
# The classes of declared values, to tell a declared Choice from a Fixed: `keras_tuner.engine.hyperparameters`
# is one of KerasTuner's exported paths (its `keras_tuner_export` names them there), not its `src` package.
_CHOICE = keras_tuner.engine.hyperparameters.Choice
_FIXED = keras_tuner.engine.hyperparameters.Fixed
Arguments = Callable[[HyperParameters, str], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The search space of one activation: its layer class and a function that declares its
    hyper-parameters, `arguments(hp, prefix) -> constructor kwargs`."""

    layer: type[keras.layers.Layer]
    arguments: Arguments


def _no_arguments(hp: HyperParameters, prefix: str) -> dict[str, Any]:
    return {}


def _competitive_relu(hp: HyperParameters, prefix: str) -> dict[str, Any]:
    return {
        "competition": hp.Choice(f"{prefix}/competition", list(COMPETITIONS), default="energy"),
        # init="relu" needs scale_bound > 1
        "scale_bound": hp.Float(f"{prefix}/scale_bound", 1.25, 4.0, default=2.0),
        "init": hp.Choice(f"{prefix}/init", list(INIT_PRESETS), default="relu"),
    }


def _noisy(layer: type[NoisyHardTanh] | type[NoisyHardSigmoid]) -> Arguments:
    def arguments(hp: HyperParameters, prefix: str) -> dict[str, Any]:
        return {
            "alpha": hp.Float(f"{prefix}/alpha", 1.0, 1.5, default=layer.DEFAULT_ALPHA),
            "c": hp.Float(f"{prefix}/c", 0.05, 1.0, sampling="log", default=layer.DEFAULT_OUTPUT_C),
            "half_normal": hp.Boolean(f"{prefix}/half_normal", default=layer.DEFAULT_HALF_NORMAL),
        }

    return arguments


def _rrelu(hp: HyperParameters, prefix: str) -> dict[str, Any]:
    # Disjoint ranges, so every sample satisfies lower <= upper; the defaults are the paper's 1/8, 1/3.
    return {
        "lower": hp.Float(f"{prefix}/lower", 0.05, 0.2, default=1.0 / 8.0),
        "upper": hp.Float(f"{prefix}/upper", 0.2, 0.5, default=1.0 / 3.0),
    }


def _snake(hp: HyperParameters, prefix: str) -> dict[str, Any]:
    # The initial frequency (trained from there), two decades around tensorflow-addons' default of 1.
    return {"frequency": hp.Float(f"{prefix}/frequency", 0.1, 10.0, sampling="log", default=1.0)}


def _tlu(hp: HyperParameters, prefix: str) -> dict[str, Any]:
    return {"affine": hp.Boolean(f"{prefix}/affine", default=False)}


SEARCH_SPACES: dict[str, SearchSpace] = {
    "relu": SearchSpace(keras.layers.ReLU, _no_arguments),
    "prelu": SearchSpace(keras.layers.PReLU, _no_arguments),
    "competitive_relu": SearchSpace(CompetitiveReLU, _competitive_relu),
    "noisy_hard_tanh": SearchSpace(NoisyHardTanh, _noisy(NoisyHardTanh)),
    "noisy_hard_sigmoid": SearchSpace(NoisyHardSigmoid, _noisy(NoisyHardSigmoid)),
    "rrelu": SearchSpace(RReLU, _rrelu),
    "j_squared_relu": SearchSpace(JSquaredReLU, _no_arguments),
    "lisht": SearchSpace(LiSHT, _no_arguments),
    "snake": SearchSpace(Snake, _snake),
    "tlu": SearchSpace(TLU, _tlu),
}
"""Every activation `choose_activation` can offer, by its choice value."""

DEFAULT_CHOICES = (
    "relu",
    "competitive_relu",
    "noisy_hard_tanh",
    "noisy_hard_sigmoid",
    "rrelu",
    "j_squared_relu",
)
"""The choices when none are given: the ReLU baseline and the package's activation layers.
PReLU is on offer but not a default: on a convolution it learns one slope per input entry. Nor are
the ports of tensorflow-addons' activations (LiSHT, Snake, TLU): name them in `choices`."""

NOT_SEARCHABLE = {
    "mixed_activation": "it is a transition between two activations, driven by the ActivationMixing callback"
}
"""The package's activations that are not choices, by name, with the reason."""


def _choice_value(name: Any) -> str:
    """The canonical choice value (a `SEARCH_SPACES` key) of a name such as "CompetitiveReLU"."""
    if not isinstance(name, str):
        raise ValueError(f"Activation choices are names (strings). Received: {name!r}")
    value = registry.canonical_activation_name(name)  # the one resolver: a typo gets "did you mean"
    if value in SEARCH_SPACES:
        return value
    reason = NOT_SEARCHABLE.get(value, "it has no search space")
    raise ValueError(f"{value!r} cannot be a tuning choice: {reason}. Received: {name!r}")


def _choice_values(choices: Sequence[str] | None) -> list[str]:
    if choices is None:
        return list(DEFAULT_CHOICES)
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise ValueError(f"`choices` must be a list of activation names. Received: choices={choices!r}")
    values = [_choice_value(choice) for choice in choices]
    if not values:
        raise ValueError("`choices` is empty: give at least one activation name.")
    if len(set(values)) != len(values):
        raise ValueError(f"`choices` names an activation twice. Received: choices={list(choices)!r}")
    return values


def choose_activation(
    hp: HyperParameters,
    choices: Sequence[str] | None = None,
    hp_name: str = "activation",
    default: str | None = None,
    **layer_kwargs: Any,
) -> keras.layers.Layer:
    """A new activation layer, chosen by KerasTuner among `choices`, with its own hyper-parameters.

    Declares `hp.Choice(hp_name, choices)` and, inside `hp.conditional_scope(hp_name, [choice])`, the
    hyper-parameters of each choice (e.g. `competition`, `scale_bound` and `init` for CompetitiveReLU;
    `alpha`, `c` and `half_normal` for the noisy layers), then builds the chosen layer. The ranges
    and defaults are in the search-space table of the tuning guide; the defaults are the layers'
    own. Call it once per activation position: with the same `hp_name` every call returns a new layer
    with the same choice (one shared choice), so every value that name can hold must be among the
    choices of each call; with different names the choices are independent.

    Args:
        hp: the trial's `keras_tuner.HyperParameters`.
        choices: activation names (strings, resolved by
            `keras_adaptive_acts.registry.canonical_activation_name`; case and underscores
            ignored): any of `SEARCH_SPACES`. Default `DEFAULT_CHOICES`.
        hp_name: the name of the choice; its conditional hyper-parameters are named
            `"{hp_name}/{activation}/{argument}"`.
        default: the choice used when the tuner has not sampled one (e.g. `build(HyperParameters())`);
            default the first choice.
        **layer_kwargs: fixed constructor arguments of the layer (e.g. `name`, `dtype`, or `axis`
            when every choice takes one); they may not be searched arguments (see `fix_activation`).

    Returns:
        A new layer, not yet built.

    Raises:
        ValueError: for a name that is not an activation, an activation without a search space,
            repeated or empty choices, a `default` not among them, a fixed argument that is searched
            or that one of the choices rejects, or an `hp_name` (or one of its argument names)
            already declared as something that can hold another value (a user's `hp.Choice` of
            other names, an `hp.Int`, a choice of other activations, a stored search's choice); all
            before anything is declared on `hp`.

    Examples:
        >>> import keras_tuner
        >>> hp = keras_tuner.HyperParameters()
        >>> layer = choose_activation(hp, ["competitive_relu", "relu"])
        >>> type(layer).__name__, layer.competition, layer.scale_bound
        ('CompetitiveReLU', 'energy', 2.0)
        >>> ", ".join(name.removeprefix("activation/") for name in hp.values)
        'activation, competitive_relu/competition, competitive_relu/scale_bound, competitive_relu/init'
    """
    _check_hp(hp)
    _check_hp_name(hp_name)
    values = _choice_values(choices)
    default_value = values[0] if default is None else _choice_value(default)
    if default_value not in values:
        raise ValueError(f"`default` must be one of the choices {values}. Received: default={default!r}")

    for value in values:
        _check_fixed_arguments(value, layer_kwargs)
    # KerasTuner's `hp.Choice` returns the value already held under a name and ignores the new list, so
    # a clash would build a layer outside `choices`, or with arguments the trial does not record.
    _check_declared_choice(hp, hp_name, values)
    for value in values:
        _check_declared_arguments(hp, hp_name, value)

    chosen = hp.Choice(hp_name, values, default=default_value)
    if chosen is None:  # KerasTuner's answer for a hyper-parameter whose conditions are not met
        raise ValueError(
            f"The choice {hp_name!r} is inactive in this trial (its conditional scope's condition is not "
            "met): call `choose_activation` only where the model uses the activation."
        )
    if chosen not in values:  # a declaration the checks above could not see (e.g. under a name scope)
        raise ValueError(
            _clash_message(hp_name, f"holds the value {chosen!r}, which is not among the choices {values}")
        )
    kwargs: dict[str, Any] = {}
    for value in values:
        with hp.conditional_scope(hp_name, [value]):
            arguments = SEARCH_SPACES[value].arguments(hp, f"{hp_name}/{value}")
        if value == chosen:
            kwargs = arguments
    return SEARCH_SPACES[chosen].layer(**kwargs, **layer_kwargs)


def _check_hp(hp: Any) -> None:
    if not isinstance(hp, HyperParameters):
        raise ValueError(f"`hp` must be a keras_tuner.HyperParameters. Received: hp={hp!r}")


def _check_hp_name(hp_name: Any) -> None:
    if not isinstance(hp_name, str) or not hp_name:
        raise ValueError(f"`hp_name` must be a non-empty string. Received: hp_name={hp_name!r}")


def _declared(hp: HyperParameters, name: str) -> list[Any]:
    """The hyper-parameters declared on `hp` under `name`, in any conditional scope: KerasTuner keeps
    one value per name, so a declaration in another scope shares the value all the same."""
    return [declared for declared in hp.space if declared.name == name]


def _describe(declared: Any) -> str:
    """A declared hyper-parameter in words, e.g. "a Choice of ['tanh', 'gelu']" or "a Fixed 'relu'"."""
    kind = type(declared).__name__
    if isinstance(declared, _CHOICE):
        return f"a Choice of {list(declared.values)}"
    if isinstance(declared, _FIXED):
        return f"a Fixed {declared.value!r}"
    config = _range(declared)
    return f"an {kind} {config}" if kind[0] in "AEIOU" else f"a {kind} {config}"


def _clash_message(hp_name: str, problem: str) -> str:
    return (
        f"The hyper-parameter {hp_name!r} already {problem}: pass `hp_name=` to give the activation a "
        "name of its own (calls that share a name share the choice of the first one)."
    )


def _check_declared_choice(hp: HyperParameters, hp_name: str, values: list[str]) -> None:
    """Refuses a declaration under `hp_name` that could give a value outside `values`.

    Allowed: the same choice declared by an earlier call (or by the user, as a Choice of some of
    `values`, which narrows the search) and a value fixed with `fix_activation` among `values`.
    """
    for declared in _declared(hp, hp_name):
        if isinstance(declared, _FIXED):
            possible = [declared.value]
        elif isinstance(declared, _CHOICE):
            possible = list(declared.values)
        else:
            possible = None  # an Int, Float or Boolean of the user's: never an activation name
        if possible is None or not set(possible) <= set(values):
            raise ValueError(
                _clash_message(
                    hp_name,
                    f"exists, as {_describe(declared)}, which can take values outside the choices {values}",
                )
            )
    if hp_name in hp.values and hp.values[hp_name] not in values:  # a value set without a declaration
        raise ValueError(
            _clash_message(
                hp_name, f"holds the value {hp.values[hp_name]!r}, which is not among the choices {values}"
            )
        )


def _check_declared_arguments(hp: HyperParameters, hp_name: str, value: str) -> None:
    """Refuses a hyper-parameter already declared under one of `value`'s argument names unless it is
    the one this space declares (same kind and range) or a value fixed with `fix_activation`."""
    reference = HyperParameters()
    SEARCH_SPACES[value].arguments(reference, f"{hp_name}/{value}")
    for expected in reference.space:
        for declared in _declared(hp, expected.name):
            if isinstance(declared, _FIXED):
                continue  # fix_activation checked it against the layer
            if type(declared) is not type(expected) or _range(declared) != _range(expected):
                raise ValueError(
                    f"The hyper-parameter {expected.name!r} already exists, as {_describe(declared)}, "
                    f"not as {_describe(expected)}, which {value!r} searches: pass `hp_name=` to give "
                    "the activation a name of its own."
                )


def _range(declared: Any) -> dict[str, Any]:
    """A declared hyper-parameter's config without its name, conditions and default."""
    return {
        key: value
        for key, value in declared.get_config().items()
        if key not in ("name", "conditions", "default")
    }


def _check_fixed_arguments(value: str, layer_kwargs: dict[str, Any]) -> None:
    """Refuses fixed arguments that are searched, or that the layer of `value` rejects, before any trial."""
    space = SEARCH_SPACES[value]
    defaults = space.arguments(HyperParameters(), "check")
    searched = sorted(set(defaults) & set(layer_kwargs))
    if searched:
        raise ValueError(
            f"{searched} are searched for {value!r}: fix them with `fix_activation` in the tuner's "
            f"`hyperparameters=` instead of passing them. Received: {layer_kwargs!r}"
        )
    try:
        space.layer(**defaults, **layer_kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"The fixed arguments {layer_kwargs!r} do not suit {value!r}: {error}") from None


def fix_activation(
    hp: HyperParameters, activation: str, hp_name: str = "activation", **arguments: Any
) -> HyperParameters:
    """Fixes the choice `hp_name` to `activation`, and any of its searched arguments to given values.

    Pass the result as the tuner's `hyperparameters=`: the fixed values are used in every trial and
    the rest of the space is still searched. The arguments are fixed inside the choice's
    conditional scope, where `choose_activation` declares them (a plain `hp.Fixed` outside that scope
    would be a different hyper-parameter and would not take them out of the search).

    Args:
        hp: the `keras_tuner.HyperParameters` to declare them on.
        activation: the activation name, as for `choose_activation`.
        hp_name: the name of the choice, as for `choose_activation`.
        **arguments: values of the activation's searched arguments, e.g. `competition="l1"`: ints,
            floats, strings or bools (NumPy scalars are converted), as KerasTuner records them.

    Returns:
        `hp`, with the fixed hyper-parameters declared.

    Raises:
        ValueError: for an unknown activation, a bad `hp_name`, an argument that is not searched for
            it, a value of another type, a value its layer rejects (beside the default, or beside
            either end of the range of another argument still searched: RReLU's `lower=0.3` against
            `upper` searched from 0.2), or a name already declared on `hp` as a searched choice or
            with another fixed value; nothing is declared then.

    Examples:
        >>> import keras_tuner
        >>> hp = fix_activation(keras_tuner.HyperParameters(), "competitive_relu", competition="l1")
        >>> layer = choose_activation(hp, ["relu", "competitive_relu"])
        >>> type(layer).__name__, layer.competition
        ('CompetitiveReLU', 'l1')
    """
    _check_hp(hp)
    _check_hp_name(hp_name)
    value = _choice_value(activation)
    space = SEARCH_SPACES[value]
    reference = HyperParameters()
    space.arguments(reference, "check")
    searched = {declared.name.removeprefix("check/"): declared for declared in reference.space}
    unknown = sorted(set(arguments) - set(searched))
    if unknown:
        names = ", ".join(searched) or "none"
        raise ValueError(f"{unknown} are not searched for {value!r} (its searched arguments: {names}).")
    arguments = {argument: _fixed_value(value, argument, fixed) for argument, fixed in arguments.items()}
    _check_with_searched_bounds(value, arguments, {k: v for k, v in searched.items() if k not in arguments})
    # Everything is checked before the first declaration, so a refused call leaves `hp` as it was.
    fixed_values = {hp_name: value, **{f"{hp_name}/{value}/{k}": v for k, v in arguments.items()}}
    for name, fixed in fixed_values.items():
        _check_not_declared_otherwise(hp, name, fixed)
    hp.Fixed(hp_name, value)
    with hp.conditional_scope(hp_name, [value]):
        for argument, fixed in arguments.items():
            hp.Fixed(f"{hp_name}/{value}/{argument}", fixed)
    return hp


def _fixed_value(value: str, argument: str, fixed: Any) -> int | float | str | bool:
    """`fixed` as KerasTuner's `Fixed` takes it (int, float, str or bool), NumPy scalars converted."""
    if isinstance(fixed, np.generic):
        fixed = fixed.item()
    if not isinstance(fixed, (int, float, str, bool)):
        raise ValueError(
            f"A fixed value must be an int, float, str or bool (what KerasTuner records). "
            f"Received: {argument}={fixed!r} for {value!r}"
        )
    return fixed


def _bounds(declared: Any) -> list[Any]:
    """The values of a searched hyper-parameter that a constraint between arguments could trip on:
    the ends of a numeric range, every value of a choice or a boolean."""
    config = declared.get_config()
    if "values" in config:
        return list(config["values"])
    if "min_value" in config:
        return [config["min_value"], config["max_value"]]
    return [False, True]  # Boolean


def _check_with_searched_bounds(value: str, arguments: dict[str, Any], searched: dict[str, Any]) -> None:
    """Builds the layer with the fixed values, first beside the defaults of the arguments still searched,
    then beside every combination of their range's ends: a fixed value that some trial's sample would
    make invalid (RReLU's `lower=0.3` against an `upper` searched from 0.2) is refused now, not in trials."""
    layer = SEARCH_SPACES[value].layer
    try:
        layer(**{name: declared.default for name, declared in searched.items()}, **arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{value!r} rejects {arguments!r}: {error}") from None
    names = list(searched)
    for combination in itertools.product(*(_bounds(searched[name]) for name in names)):
        others = dict(zip(names, combination, strict=True))
        try:
            layer(**others, **arguments)
        except (TypeError, ValueError) as error:
            shown = ", ".join(f"{name}={bound!r}" for name, bound in others.items())
            ranges = "; ".join(f"{name}: {_range_text(searched[name])}" for name in names)
            raise ValueError(
                f"{value!r} rejects {arguments!r} with {shown}, which the search can sample ({ranges}): "
                f"{error}. Fix those arguments too, or choose values that suit their whole range."
            ) from None


def _range_text(declared: Any) -> str:
    config = declared.get_config()
    if "min_value" in config:
        return f"{config['min_value']:g} to {config['max_value']:g}"
    return " or ".join(repr(bound) for bound in _bounds(declared))


def _check_not_declared_otherwise(hp: HyperParameters, name: str, fixed: Any) -> None:
    """Refuses to fix a name that `hp` already searches, or has fixed to another value: KerasTuner
    would keep the earlier declaration and silently ignore the new one."""
    for declared in _declared(hp, name):
        if isinstance(declared, _FIXED) and declared.value == fixed:
            continue  # the same value again: nothing changes
        raise ValueError(
            f"The hyper-parameter {name!r} is already declared, as {_describe(declared)}: it cannot be "
            f"fixed to {fixed!r} as well (KerasTuner keeps the first declaration). Start from a new "
            "HyperParameters, or fix an argument of a searched choice with `hp.Fixed` in its conditional "
            "scope (see the tuning guide)."
        )


class ActivationHyperModel(keras_tuner.HyperModel):
    """A KerasTuner `HyperModel` from a `build(hp, activation)` function, the activation being searched.

    `activation` is a function that returns a new layer of the trial's choice each time it is called
    (one shared choice for the whole model: see `choose_activation` for per-layer choices); keyword
    arguments it gets go to the layer's constructor. `build` may declare hyper-parameters of its own.

    Args:
        build: `build(hp, activation) -> keras.Model`, returning a compiled model.
        choices: activation names, as for `choose_activation`.
        hp_name: the name of the choice, as for `choose_activation`.
        default: the choice when none was sampled, as for `choose_activation`.
        tunable: passed to `keras_tuner.HyperModel`.

    Examples:
        >>> import keras, keras_tuner
        >>> def build(hp, activation):
        ...     layers = [keras.Input((4,)), keras.layers.Dense(8), activation(), keras.layers.Dense(1)]
        ...     model = keras.Sequential(layers)
        ...     model.compile(optimizer="adam", loss="mse")
        ...     return model
        >>> hypermodel = ActivationHyperModel(build, choices=["relu", "rrelu"])
        >>> type(hypermodel.build(keras_tuner.HyperParameters()).layers[1]).__name__
        'ReLU'
    """

    def __init__(
        self,
        build: Callable[[HyperParameters, Callable[..., keras.layers.Layer]], keras.Model],
        choices: Sequence[str] | None = None,
        hp_name: str = "activation",
        default: str | None = None,
        tunable: bool = True,
    ):
        if not callable(build):
            raise ValueError(f"`build` must be a function build(hp, activation). Received: build={build!r}")
        _check_hp_name(hp_name)  # now rather than in the first trial
        self.choices = _choice_values(choices)  # checked now rather than in the first trial
        if default is not None and _choice_value(default) not in self.choices:
            raise ValueError(
                f"`default` must be one of the choices {self.choices}. Received: default={default!r}"
            )
        super().__init__(tunable=tunable)
        self.build_function = build
        self.hp_name = hp_name
        self.default = default

    def build(self, hp: HyperParameters) -> keras.Model:
        def activation(**layer_kwargs: Any) -> keras.layers.Layer:
            return choose_activation(hp, self.choices, self.hp_name, self.default, **layer_kwargs)

        return self.build_function(hp, activation)


PROJECT_NAME = "kaa_tune"
"""The KerasTuner project that `search_activations` (and `kaa tune`) keeps in its `directory`."""


class StoredSearchMismatch(ValueError):
    """The search kept in a directory was made with other choices, data or training settings than the
    ones given to resume it."""


def _trial_seed(seed: int, trial_id: str) -> int:
    """The seed of one trial, from the search's seed and the trial's number: independent streams for
    different trials and different search seeds (`seed + trial` would give seed 1's trial 1 to seed
    2's trial 0)."""
    return int(np.random.SeedSequence([seed, int(trial_id)]).generate_state(1)[0])


class _SeededRandomSearch(keras_tuner.RandomSearch):
    """A `RandomSearch` that seeds Python, NumPy and the backend (`keras.utils.set_random_seed`) with
    the trial's own seed before the trial builds and trains its model: its initial weights, noise and
    shuffling depend on the search's seed and the trial alone, so the same search run again, in
    another process or after an interruption, gives the same scores."""

    def run_trial(self, trial, *args, **kwargs):
        keras.utils.set_random_seed(_trial_seed(self.oracle.seed, trial.trial_id))
        return super().run_trial(trial, *args, **kwargs)


def _check_stored_choices(tuner: keras_tuner.Tuner, values: list[str], directory: str) -> None:
    """Refuses to resume a search whose stored choices differ from `values`.

    A resumed KerasTuner search keeps the search space it stored: its oracle would go on sampling the
    old choices, whatever the new ones.
    """
    stored = _declared(tuner.oracle.hyperparameters, "activation")
    if not stored:  # a new search, or one interrupted before its space was declared
        return
    stored_values = [stored[0].value] if isinstance(stored[0], _FIXED) else list(stored[0].values)
    if set(stored_values) != set(values):
        raise StoredSearchMismatch(
            f"The search kept in {os.path.join(str(directory), PROJECT_NAME)!r} was made with the "
            f"choices {stored_values}, not {values}: start afresh (overwrite=True, `kaa tune "
            "--overwrite`) or keep the new search in another directory."
        )


# The settings `search_activations` keeps beside KerasTuner's files: the oracle stores only the
# search space, so a resumed search would mix trials trained on other data or for other epochs.
SETTINGS_FILE = "kaa_search_settings.json"


def _data_fingerprint(arrays: Sequence[Any]) -> str:
    """A SHA-256 of the arrays' dtypes, shapes and bytes: equal for the same data, in any process."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_stored_settings(directory: str, settings: dict[str, Any]) -> None:
    """Refuses to resume a search made with other `settings`; keeps them with a new search.

    A search kept without them (a project made before they were kept) resumes unchecked.
    """
    project = os.path.join(str(directory), PROJECT_NAME)
    path = os.path.join(project, SETTINGS_FILE)
    if not os.path.isfile(path):
        os.makedirs(project, exist_ok=True)
        # Written whole and then renamed: the processes of a distributed search start together, and
        # one must never read another's half-written file.
        partial = f"{path}.{os.getpid()}.partial"
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=1)
        os.replace(partial, path)
        return
    with open(path, encoding="utf-8") as handle:
        stored = json.load(handle)
    differing = [name for name in settings if stored.get(name) != settings[name]]
    if differing:
        shown = ", ".join(
            "other data" if name == "data" else f"{name}={stored.get(name)!r}, not {settings[name]!r}"
            for name in differing
        )
        raise StoredSearchMismatch(
            f"The search kept in {project!r} was made with {shown}: its trials would be mixed with "
            "these. Start afresh (overwrite=True, `kaa tune --overwrite`) or keep the new search in "
            "another directory."
        )


def search_activations(
    data: Sequence[Any],
    choices: Sequence[str] | None = None,
    max_trials: int = 10,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 1,
    directory: str = "kaa-tuning",
    overwrite: bool = False,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras_tuner.Tuner, list[dict[str, Any]]]:
    """A `RandomSearch` over the activation space for `kaa compare`'s MLP: the search behind `kaa tune`.

    The training set is split once more (75/25, stratified, fixed seed) into the data the trials
    train on and the data they are scored on (`val_accuracy`); the test set is left for the best
    model. With `overwrite=False` an interrupted search in `directory` resumes.

    Args:
        data: `(x_train, y_train, x_test, y_test)`, e.g. from `keras_adaptive_acts.compare.load_dataset`.
        choices: activation names, as for `choose_activation`.
        max_trials: number of trials.
        epochs: training epochs per trial.
        batch_size: training batch size.
        seed: the search's seed (KerasTuner reads 0 as no seed, so it must be >= 1). It fixes the
            sampled values and, through a seed per trial derived from it and the trial's number
            (`keras.utils.set_random_seed` before the trial builds its model), each trial's initial
            weights, noise and batch order: the same search run again, in a fresh process, gives the
            same trials, scores and best model (same data, backend, versions and hardware).
        directory: where KerasTuner keeps the trials (project `kaa_tune`).
        overwrite: start afresh instead of resuming. A search kept in `directory` resumes only with
            the same choices, data, `epochs`, `batch_size` and `seed` (kept beside KerasTuner's files,
            in `kaa_search_settings.json`).
        verbose: Keras' `fit` verbosity in each trial.
        callbacks: Keras callbacks for each trial's `fit`; KerasTuner passes each trial a deep copy.
            `kaa tune` passes `compare.stop_on_interrupt()`'s check, so that Ctrl-C stops the
            search at the next batch: the finished trials stay in `directory`, and the same call
            resumes with the trial that was interrupted.

    Returns:
        `(tuner, rows)`: the tuner (`tuner.get_best_models(1)`) and one row per finished trial,
        best first: `trial`, `activation`, `arguments` (the choice's searched values, by argument
        name) and `val_accuracy`.

    Raises:
        ValueError: for bad arguments or choices.
        StoredSearchMismatch: (a `ValueError`) `overwrite=False` and the search kept in `directory`
            has other choices, data, `epochs`, `batch_size` or `seed`; raised before any trial.
    """
    for name, value, minimum in (("max_trials", max_trials, 1), ("epochs", epochs, 1), ("seed", seed, 1)):
        check_integer(name, value, minimum=minimum)
    check_integer("batch_size", batch_size, minimum=1)
    callbacks = check_callbacks(callbacks)
    values = _choice_values(choices)
    x_train, y_train, _, y_test = data
    train = split(np.asarray(x_train), np.asarray(y_train))
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1

    def build(hp: HyperParameters, activation: Callable[..., keras.layers.Layer]) -> keras.Model:
        return build_model(train.x_train.shape[1], n_classes, activation)

    tuner = _SeededRandomSearch(
        ActivationHyperModel(build, choices=values),
        objective="val_accuracy",
        max_trials=max_trials,
        seed=seed,
        directory=directory,
        project_name=PROJECT_NAME,
        overwrite=overwrite,
    )
    _check_stored_choices(tuner, values, directory)
    settings = {"data": _data_fingerprint(data), "epochs": epochs, "batch_size": batch_size, "seed": seed}
    _check_stored_settings(directory, settings)
    tuner.search(
        train.x_train,
        train.y_train,
        validation_data=(train.x_test, train.y_test),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
        callbacks=callbacks,
    )
    rows = []
    for trial in tuner.oracle.get_best_trials(max_trials):
        values = trial.hyperparameters.values
        prefix = f"activation/{values['activation']}/"
        arguments = {
            name.removeprefix(prefix): value for name, value in values.items() if name.startswith(prefix)
        }
        rows.append(
            {
                "trial": trial.trial_id,
                "activation": values["activation"],
                "arguments": arguments,
                "val_accuracy": trial.score,
            }
        )
    return tuner, rows
