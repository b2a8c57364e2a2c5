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
from keras_adaptive_acts.validation import check_integer

# KerasTuner itself, or tensorboard, which it imports undeclared: either missing names the extra.
keras_tuner = require("keras_tuner", "tuner", "keras_adaptive_acts.tuning")

__all__ = [
    "DEFAULT_CHOICES",
    "SEARCH_SPACES",
    "ActivationHyperModel",
    "SearchSpace",
    "choose_activation",
    "fix_activation",
    "search_activations",
]

HyperParameters = keras_tuner.HyperParameters
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
    with the same choice (one shared choice); with different names the choices are independent.

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
            repeated or empty choices, a `default` not among them, or a fixed argument that is searched
            or that one of the choices rejects; all before anything is declared on `hp`.

    Examples:
        >>> import keras_tuner
        >>> hp = keras_tuner.HyperParameters()
        >>> layer = choose_activation(hp, ["competitive_relu", "relu"])
        >>> type(layer).__name__, layer.competition, layer.scale_bound
        ('CompetitiveReLU', 'energy', 2.0)
        >>> ", ".join(name.removeprefix("activation/") for name in hp.values)
        'activation, competitive_relu/competition, competitive_relu/scale_bound, competitive_relu/init'
    """
    if not isinstance(hp, HyperParameters):
        raise ValueError(f"`hp` must be a keras_tuner.HyperParameters. Received: hp={hp!r}")
    if not isinstance(hp_name, str) or not hp_name:
        raise ValueError(f"`hp_name` must be a non-empty string. Received: hp_name={hp_name!r}")
    values = _choice_values(choices)
    default_value = values[0] if default is None else _choice_value(default)
    if default_value not in values:
        raise ValueError(f"`default` must be one of the choices {values}. Received: default={default!r}")

    for value in values:
        _check_fixed_arguments(value, layer_kwargs)

    chosen = hp.Choice(hp_name, values, default=default_value)
    kwargs: dict[str, Any] = {}
    for value in values:
        with hp.conditional_scope(hp_name, [value]):
            arguments = SEARCH_SPACES[value].arguments(hp, f"{hp_name}/{value}")
        if value == chosen:
            kwargs = arguments
    return SEARCH_SPACES[chosen].layer(**kwargs, **layer_kwargs)


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
        **arguments: values of the activation's searched arguments, e.g. `competition="l1"`.

    Returns:
        `hp`, with the fixed hyper-parameters declared.

    Raises:
        ValueError: for an unknown activation, an argument that is not searched for it, or a value
            its layer rejects; nothing is declared then.

    Examples:
        >>> import keras_tuner
        >>> hp = fix_activation(keras_tuner.HyperParameters(), "competitive_relu", competition="l1")
        >>> layer = choose_activation(hp, ["relu", "competitive_relu"])
        >>> type(layer).__name__, layer.competition
        ('CompetitiveReLU', 'l1')
    """
    if not isinstance(hp, HyperParameters):
        raise ValueError(f"`hp` must be a keras_tuner.HyperParameters. Received: hp={hp!r}")
    value = _choice_value(activation)
    space = SEARCH_SPACES[value]
    defaults = space.arguments(HyperParameters(), "check")
    unknown = sorted(set(arguments) - set(defaults))
    if unknown:
        searched = ", ".join(defaults) or "none"
        raise ValueError(f"{unknown} are not searched for {value!r} (its searched arguments: {searched}).")
    try:
        space.layer(**{**defaults, **arguments})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{value!r} rejects {arguments!r}: {error}") from None
    hp.Fixed(hp_name, value)
    with hp.conditional_scope(hp_name, [value]):
        for argument, fixed in arguments.items():
            hp.Fixed(f"{hp_name}/{value}/{argument}", fixed)
    return hp


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
        seed: the search's seed (KerasTuner reads 0 as no seed, so it must be >= 1).
        directory: where KerasTuner keeps the trials (project `kaa_tune`).
        overwrite: start afresh instead of resuming.
        verbose: Keras' `fit` verbosity in each trial.

    Returns:
        `(tuner, rows)`: the tuner (`tuner.get_best_models(1)`) and one row per finished trial,
        best first: `trial`, `activation`, `arguments` (the choice's searched values, by argument
        name) and `val_accuracy`.
    """
    for name, value, minimum in (("max_trials", max_trials, 1), ("epochs", epochs, 1), ("seed", seed, 1)):
        check_integer(name, value, minimum=minimum)
    check_integer("batch_size", batch_size, minimum=1)
    x_train, y_train, _, y_test = data
    train = split(np.asarray(x_train), np.asarray(y_train))
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1

    def build(hp: HyperParameters, activation: Callable[..., keras.layers.Layer]) -> keras.Model:
        return build_model(train.x_train.shape[1], n_classes, activation)

    tuner = keras_tuner.RandomSearch(
        ActivationHyperModel(build, choices=choices),
        objective="val_accuracy",
        max_trials=max_trials,
        seed=seed,
        directory=directory,
        project_name="kaa_tune",
        overwrite=overwrite,
    )
    tuner.search(
        train.x_train,
        train.y_train,
        validation_data=(train.x_test, train.y_test),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
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
