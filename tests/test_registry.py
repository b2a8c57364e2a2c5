"""`register`, `get()` and `activation_layer()`: name resolution and Keras serialisation registration."""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

import keras_adaptive_acts as kaa
from keras_adaptive_acts import CompetitiveReLU, registry
from keras_adaptive_acts.registry import (
    activation_layer,
    activation_names,
    canonical_activation_name,
    is_registered_activation,
    register,
    registered_names,
)

X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], dtype="float32")
PACKAGE_ACTIVATIONS = [
    "competitive_relu",
    "j_squared_relu",
    "lisht",
    "mixed_activation",
    "noisy_hard_sigmoid",
    "noisy_hard_tanh",
    "rrelu",
    "snake",
    "tlu",
]


def output(layer, x=X):
    return ops.convert_to_numpy(layer(x))


# ----------------------------------------------------------------------------------------------
# get(): the package's registered objects


@pytest.mark.parametrize(
    "name", ["competitive_relu", "CompetitiveReLU", "COMPETITIVE_RELU", "keras_adaptive_acts>CompetitiveReLU"]
)
def test_names_resolve_to_a_new_default_instance(name):
    first, second = kaa.get(name), kaa.get(name)
    assert isinstance(first, CompetitiveReLU) and first is not second
    assert first.competition == "energy" and first.scale_bound == 2.0


def test_none_class_instance_and_config_dict():
    assert kaa.get(None) is None
    assert isinstance(kaa.get(CompetitiveReLU), CompetitiveReLU)
    layer = CompetitiveReLU(competition="count", axis=-1)
    assert kaa.get(layer) is layer
    for config in (
        keras.saving.serialize_keras_object(layer),
        {"class_name": "competitive_relu", "config": {"scale_bound": 4.0}},
    ):
        rebuilt = kaa.get(config)
        assert isinstance(rebuilt, CompetitiveReLU)
    assert kaa.get(keras.saving.serialize_keras_object(layer)).get_config() == layer.get_config()
    assert kaa.get({"class_name": "competitive_relu", "config": {"scale_bound": 4.0}}).scale_bound == 4.0


@pytest.mark.parametrize(
    "identifier", ["relu_competitive", {"class_name": "Nope"}, {"config": {}}, keras.layers.ReLU, 3.0]
)
def test_unknown_identifiers_raise_listing_known_names(identifier):
    with pytest.raises(ValueError) as error:
        kaa.get(identifier)
    message = str(error.value)
    assert "competitive_relu" in message or "class_name" in message
    if isinstance(identifier, str):
        assert repr(identifier) in message


def test_registration_with_keras():
    assert keras.saving.get_registered_name(CompetitiveReLU) == "keras_adaptive_acts>CompetitiveReLU"
    assert keras.saving.get_registered_object("keras_adaptive_acts>CompetitiveReLU") is CompetitiveReLU
    assert "CompetitiveReLU" in registered_names()


def _activation_functions():
    """The public ops that map a tensor to one of its shape with their other arguments at their
    defaults: what a user passes as `activation=`. Found by calling each, so a new one is not missed."""
    found = []
    for name in kaa.ops.__all__:
        function = getattr(kaa.ops, name)
        parameters = inspect.signature(function).parameters.values()
        if sum(parameter.default is inspect.Parameter.empty for parameter in parameters) != 1:
            continue
        if ops.convert_to_numpy(function(X)).shape == X.shape:
            found.append(name)
    return found


# The paper's hard sigmoid, clip(x / 4 + 1/2, 0, 1); Keras' function of that name is relu6(x + 3) / 6.
PAPER_HARD_SIGMOID = np.clip(X.astype("float64") / 4 + 0.5, 0.0, 1.0)


def test_every_activation_function_of_the_ops_saves_and_loads_as_itself(tmp_path):
    names = _activation_functions()
    assert {"hard_sigmoid", "hard_tanh", "j_squared_relu", "lisht", "snake", "tlu"} <= set(names)
    for name in names:
        function = getattr(kaa.ops, name)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(5, activation=function)])
        model.save(tmp_path / f"{name}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
        assert loaded.layers[0].activation is function, name
        np.testing.assert_array_equal(
            ops.convert_to_numpy(loaded(X)), ops.convert_to_numpy(model(X)), err_msg=name
        )
    # Not Keras' function of the same name: the paper's values, as the file records them.
    model = keras.Sequential([keras.Input((5,)), keras.layers.Activation(kaa.ops.hard_sigmoid)])
    model.save(tmp_path / "paper.keras")
    loaded = keras.saving.load_model(tmp_path / "paper.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(X)), PAPER_HARD_SIGMOID, rtol=1e-7)


def test_a_second_class_under_a_taken_name_is_refused():
    class CompetitiveRelu(keras.layers.Layer):  # same key once case and underscores are ignored
        pass

    with pytest.raises(ValueError, match="already registered"):
        register(CompetitiveRelu)
    assert kaa.get("competitive_relu").__class__ is CompetitiveReLU


@pytest.mark.parametrize(
    ("name", "cls_name"),
    [("noisy_hard_tanh", "NoisyHardTanh"), ("NoisyHardSigmoid", "NoisyHardSigmoid"), ("rrelu", "RReLU")],
)
def test_every_layer_resolves_by_name(name, cls_name):
    assert type(kaa.get(name)).__name__ == cls_name


def test_a_class_with_required_arguments_needs_a_config_not_a_name():
    with pytest.raises(ValueError, match="NoiseAnnealing has required arguments"):
        kaa.get("noise_annealing")
    assert "NoiseAnnealing" not in registered_names(keras.layers.Layer)
    assert "NoiseAnnealing" in registered_names()


def test_activation_layers_are_marked_as_such():
    assert activation_names(include_keras=False) == PACKAGE_ACTIVATIONS
    assert (
        is_registered_activation(kaa.NoisyHardTanh())
        and is_registered_activation(kaa.CompetitiveReLU)
        and not is_registered_activation(kaa.ZerothBias)
        and not is_registered_activation(keras.layers.ReLU)  # Keras' own: not one of the package's
    )
    assert not hasattr(registry, "is_activation")  # one name per idea: the former name is gone


# ----------------------------------------------------------------------------------------------
# Default names, given by each layer's own __init__


def test_relu_layers_get_readable_unique_default_names():
    keras.backend.clear_session()  # restarts the numbering, as for Keras' own layers
    names = [
        kaa.CompetitiveReLU().name,
        kaa.CompetitiveReLU().name,
        kaa.JSquaredReLU().name,
        kaa.RReLU().name,
        kaa.RReLU().name,
    ]
    assert names == ["competitive_relu", "competitive_relu_1", "j_squared_relu", "rrelu", "rrelu_1"]
    assert kaa.CompetitiveReLU(name="mine").name == "mine"
    layer = kaa.CompetitiveReLU(competition="l1")
    assert kaa.CompetitiveReLU.from_config(layer.get_config()).name == layer.name
    assert layer.get_config()["competition"] == "l1"  # the constructor's arguments are still recorded

    class Subclass(kaa.CompetitiveReLU):
        pass

    assert Subclass().name == "subclass"  # a user's subclass is named by Keras, from its own class


@pytest.mark.parametrize("layer_class", [kaa.CompetitiveReLU, kaa.JSquaredReLU, kaa.RReLU])
def test_no_class_has_its_init_replaced(layer_class):
    initialise = layer_class.__dict__["__init__"]
    assert initialise.__qualname__ == f"{layer_class.__name__}.__init__"
    assert not hasattr(initialise, "__wrapped__")  # not a wrapper made by functools.wraps
    assert inspect.getsourcefile(initialise) == inspect.getsourcefile(layer_class)


# ----------------------------------------------------------------------------------------------
# activation_layer(): the one resolver of activations


@pytest.mark.parametrize(
    "name", ["competitive_relu", "CompetitiveReLU", "Competitive_ReLU", "keras_adaptive_acts>CompetitiveReLU"]
)
def test_package_names_in_any_spelling_give_a_new_layer(name):
    first, second = activation_layer(name), activation_layer(name)
    assert type(first) is CompetitiveReLU and first is not second
    np.testing.assert_array_equal(output(first), np.maximum(X, 0))  # equal to ReLU at initialisation


def test_keras_names_give_keras_layers():
    relu, prelu = activation_layer("relu"), activation_layer("PReLU")
    assert type(relu) is keras.layers.ReLU and type(prelu) is keras.layers.PReLU
    np.testing.assert_array_equal(output(relu), np.maximum(X, 0))
    tanh = activation_layer("tanh")
    assert type(tanh) is keras.layers.Activation
    np.testing.assert_allclose(output(tanh), np.tanh(X), rtol=1e-6)
    # Keras' function (slope 0.2), not the LeakyReLU layer (0.3): the same as activation="leaky_relu".
    leaky = activation_layer("leaky_relu")
    np.testing.assert_allclose(output(leaky), np.where(X > 0, X, 0.2 * X), rtol=1e-6)
    gelu = activation_layer("gelu")
    assert gelu.get_config()["activation"] == "gelu"


def test_arguments_reach_the_constructor():
    assert activation_layer("competitive_relu", competition="l1", name="act").competition == "l1"
    leaky = activation_layer("relu", negative_slope=0.5)
    np.testing.assert_allclose(output(leaky), np.where(X > 0, X, 0.5 * X), rtol=1e-6)
    assert activation_layer("gelu", name="act", dtype="float16").dtype_policy.name == "float16"
    with pytest.raises(ValueError, match="colour"):
        activation_layer("competitive_relu", colour="red")


def test_classes_instances_and_configs():
    rrelu = activation_layer(kaa.RReLU, lower=0.1, upper=0.1)
    assert type(rrelu) is kaa.RReLU and activation_layer(kaa.RReLU) is not activation_layer(kaa.RReLU)
    np.testing.assert_allclose(output(rrelu), np.where(X > 0, X, 0.1 * X), rtol=1e-6)
    elu = activation_layer(keras.layers.ELU, alpha=0.5)
    np.testing.assert_allclose(output(elu), np.where(X > 0, X, 0.5 * np.expm1(X)), rtol=1e-6)

    instance = CompetitiveReLU(competition="count")
    assert activation_layer(instance) is instance
    with pytest.raises(ValueError, match="Arguments cannot be applied to a layer instance"):
        activation_layer(instance, competition="l1")

    config = keras.saving.serialize_keras_object(keras.layers.ReLU(negative_slope=0.25, name="leaky"))
    from_config = activation_layer(config)
    assert type(from_config) is keras.layers.ReLU and from_config.negative_slope == 0.25
    assert config["config"]["name"] == "leaky"  # the caller's dict is left as it was
    short = {"class_name": "competitive_relu", "config": {"competition": "count"}}
    assert activation_layer(short).competition == "count"
    assert activation_layer(short, competition="l1").competition == "l1"  # arguments replace entries
    assert short["config"] == {"competition": "count"}


def test_the_short_config_form_takes_every_name_a_string_takes():
    # Keras' own activations that are functions, not layers, have no class for Keras to locate.
    for name, config in [("gelu", {}), ("Tanh", None), ("leaky_relu", {"name": "leaky"})]:
        short = {"class_name": name} if config is None else {"class_name": name, "config": config}
        layer = activation_layer(short)
        assert type(layer) is keras.layers.Activation, name
        assert layer.get_config()["activation"] == name.lower()
    assert activation_layer({"class_name": "leaky_relu", "config": {"name": "leaky"}}).name == "leaky"
    x = np.array([[-2.0, -0.5, 0.0, 1.5]], "float32")
    gelu = activation_layer({"class_name": "gelu", "config": {}})
    np.testing.assert_allclose(ops.convert_to_numpy(gelu(x)), ops.convert_to_numpy(keras.activations.gelu(x)))
    with pytest.raises(ValueError, match="did you mean 'gelu'"):
        activation_layer({"class_name": "gelo", "config": {}})


def test_a_short_config_spelling_a_keras_layer_class_gives_that_layer_not_the_function():
    """Keras writes `{"class_name": "LeakyReLU", "config": {...}}` for its layer: the layer it is,
    with its own default slope (0.3; the `leaky_relu` function's is 0.2) and its own arguments."""
    x = np.array([[-2.0, -1.0, 0.5, 3.0]], "float32")
    leaky = activation_layer({"class_name": "LeakyReLU", "config": {}})
    assert type(leaky) is keras.layers.LeakyReLU
    np.testing.assert_allclose(ops.convert_to_numpy(leaky(x)), [[-0.6, -0.3, 0.5, 3.0]], rtol=1e-6)
    slope = activation_layer({"class_name": "LeakyReLU", "config": {"negative_slope": 0.1}})
    np.testing.assert_allclose(ops.convert_to_numpy(slope(x)), [[-0.2, -0.1, 0.5, 3.0]], rtol=1e-6)
    elu = activation_layer({"class_name": "ELU", "config": {"alpha": 0.5}})
    np.testing.assert_allclose(
        ops.convert_to_numpy(elu(x)), [[0.5 * np.expm1(-2), 0.5 * np.expm1(-1), 0.5, 3]], rtol=1e-6
    )
    assert activation_layer({"class_name": "Softmax", "config": {"axis": 0}}).axis == 0
    with pytest.raises(ValueError, match="LeakyReLU rejects its config"):
        activation_layer({"class_name": "LeakyReLU", "config": {"slope": 0.1}})
    # The package's own names still win, as does an activation function's snake-case name.
    assert (
        type(activation_layer({"class_name": "CompetitiveReLU", "config": {}})).__name__ == "CompetitiveReLU"
    )
    assert type(activation_layer({"class_name": "leaky_relu", "config": {}})) is keras.layers.Activation


def test_get_and_activation_layer_read_a_name_with_spaces_around_alike():
    assert type(kaa.get(" competitive_relu ")).__name__ == "CompetitiveReLU"
    assert type(activation_layer(" competitive_relu ")).__name__ == "CompetitiveReLU"


def test_a_config_keras_does_not_read_as_a_layer_is_refused():
    # Keras gives back a dict it cannot read (no "config"): a layer is promised, or an error.
    config = {"class_name": "Dense", "module": "keras.layers", "registered_name": None}
    with pytest.raises(ValueError, match="as an activation layer"):
        activation_layer(config)


@pytest.mark.parametrize("identifier", [3.0, None, ["relu"], int])
def test_what_is_not_an_activation_identifier_is_refused(identifier):
    with pytest.raises(ValueError, match="Cannot interpret"):
        activation_layer(identifier)


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [
        ("competitve_relu", "competitive_relu"),
        ("CompetitveReLU", "competitive_relu"),
        ("noisy_hard_tan", "noisy_hard_tanh"),
        ("swishy", "swish"),
    ],
)
def test_a_near_miss_suggests_the_nearest_name_and_lists_names_in_snake_case(typed, suggestion):
    with pytest.raises(ValueError) as error:
        activation_layer(typed)
    message = str(error.value)
    assert f"Unknown activation {typed!r}; did you mean {suggestion!r}?" in message
    for name in [*PACKAGE_ACTIVATIONS, "relu", "prelu", "gelu", "tanh"]:
        assert name in message
    assert "CompetitiveReLU" not in message and "NoisyHardTanh" not in message


def test_a_package_object_that_is_not_an_activation_says_so():
    for name in ("zeroth_bias", "NoiseAnnealing", "noisy_lstm_cell"):
        with pytest.raises(ValueError, match=f"Unknown activation {name!r}: .* not an activation layer"):
            activation_layer(name)
    with pytest.raises(ValueError, match="non-empty string"):
        canonical_activation_name(" ")


def test_canonical_names_and_the_listing():
    spellings = {
        "ReLU": "relu",
        "RRELU": "rrelu",
        "JSquaredReLU": "j_squared_relu",
        "LeakyReLU": "leaky_relu",
    }
    for typed, canonical in spellings.items():
        assert canonical_activation_name(typed) == canonical
    names = activation_names()
    assert names == sorted(names) and set(PACKAGE_ACTIVATIONS) <= set(names)
    assert {"relu", "prelu", "gelu", "tanh", "sigmoid", "leaky_relu"} <= set(names)
    assert all(name == name.lower() for name in names)
    for name in names:  # every name listed resolves to a working layer
        assert isinstance(activation_layer(name), keras.layers.Layer)


# ----------------------------------------------------------------------------------------------
# The same resolver behind every tool


def relu_model():
    dense = keras.layers.Dense(6, activation="relu", kernel_initializer="glorot_normal", name="hidden")
    layers = [keras.Input((5,)), dense, keras.layers.Dense(6), keras.layers.ReLU(), keras.layers.Dense(2)]
    return keras.Sequential(layers)


def test_one_typo_gets_one_suggestion_from_every_tool():
    from keras_adaptive_acts.compare import parse_activation
    from keras_adaptive_acts.surgery import swap_activations

    calls = {
        "compare spec": lambda: parse_activation("competitve_relu:competition=l1"),
        "MixedActivation": lambda: kaa.MixedActivation(end="competitve_relu"),
        "SparsifiedMLP": lambda: kaa.SparsifiedMLP(8, activation="competitve_relu"),
        "swap_activations": lambda: swap_activations(relu_model(), "competitve_relu"),
    }
    for tool, call in calls.items():
        with pytest.raises(ValueError, match=r"did you mean 'competitive_relu'\?") as error:
            call()
        assert "noisy_hard_tanh" in str(error.value), tool


@pytest.mark.parametrize(
    "replacement",
    [
        "competitive_relu",
        "CompetitiveReLU",
        {"class_name": "competitive_relu", "config": {"competition": "l1"}},
        CompetitiveReLU(competition="l1", name="template"),
    ],
    ids=["name", "class-spelling", "config", "instance"],
)
def test_swap_activations_takes_what_the_resolver_takes_with_a_fresh_layer_each(replacement):
    from keras_adaptive_acts.surgery import swap_activations

    model = relu_model()
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    new_model, report = swap_activations(model, replacement)
    new_layers = [layer for layer in new_model.layers if isinstance(layer, CompetitiveReLU)]
    assert len(new_layers) == len(report.replaced) == 2
    assert new_layers[0] is not new_layers[1] and new_layers[0].name != new_layers[1].name
    assert all(layer is not replacement for layer in new_layers)
    expected = "l1" if not isinstance(replacement, str) else "energy"
    assert [layer.competition for layer in new_layers] == [expected, expected]
    # CompetitiveReLU starts as ReLU exactly, so the copy computes what the original model does.
    np.testing.assert_allclose(ops.convert_to_numpy(new_model(x)), ops.convert_to_numpy(model(x)), atol=1e-6)
