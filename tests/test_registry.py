"""`register` and `get()`: name resolution and Keras serialisation registration."""

import keras
import pytest

import keras_adaptive_acts as kaa
from keras_adaptive_acts import CompetitiveReLU
from keras_adaptive_acts.registry import register, registered_names


@pytest.mark.parametrize(
    "name", ["competitive_relu", "CompetitiveReLU", "COMPETITIVE_RELU", "keras_adaptive_acts>CompetitiveReLU"]
)
def test_names_resolve_to_a_new_default_instance(name):
    first, second = kaa.get(name), kaa.get(name)
    assert isinstance(first, CompetitiveReLU) and first is not second
    assert first.competition == "energy" and first.K == 2.0


def test_none_class_instance_and_config_dict():
    assert kaa.get(None) is None
    assert isinstance(kaa.get(CompetitiveReLU), CompetitiveReLU)
    layer = CompetitiveReLU(competition="count", axis=-1)
    assert kaa.get(layer) is layer
    for config in (
        keras.saving.serialize_keras_object(layer),
        {"class_name": "competitive_relu", "config": {"K": 4.0}},
    ):
        rebuilt = kaa.get(config)
        assert isinstance(rebuilt, CompetitiveReLU)
    assert kaa.get(keras.saving.serialize_keras_object(layer)).get_config() == layer.get_config()
    assert kaa.get({"class_name": "competitive_relu", "config": {"K": 4.0}}).K == 4.0


@pytest.mark.parametrize(
    "identifier", ["relu_competitive", {"class_name": "Nope"}, {"config": {}}, keras.layers.ReLU, 3.0]
)
def test_unknown_identifiers_raise_listing_known_names(identifier):
    with pytest.raises(ValueError) as error:
        kaa.get(identifier)
    message = str(error.value)
    assert "CompetitiveReLU" in message or "class_name" in message
    if isinstance(identifier, str):
        assert repr(identifier) in message


def test_registration_with_keras():
    assert keras.saving.get_registered_name(CompetitiveReLU) == "keras_adaptive_acts>CompetitiveReLU"
    assert keras.saving.get_registered_object("keras_adaptive_acts>CompetitiveReLU") is CompetitiveReLU
    assert "CompetitiveReLU" in registered_names()


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
    from keras_adaptive_acts.registry import activation_names, is_activation

    expected = [
        "CompetitiveReLU",
        "JSquaredReLU",
        "MixedActivation",
        "NoisyHardSigmoid",
        "NoisyHardTanh",
        "RReLU",
    ]
    assert activation_names() == expected
    assert (
        is_activation(kaa.NoisyHardTanh())
        and not is_activation(kaa.ZerothBias)
        and not is_activation(keras.layers.ReLU)
    )


def test_relu_layers_get_readable_unique_default_names():
    keras.backend.clear_session()  # restarts the numbering, as for Keras' own layers
    names = [
        kaa.CompetitiveReLU().name,
        kaa.CompetitiveReLU().name,
        kaa.JSquaredReLU().name,
        kaa.RReLU().name,
    ]
    assert names == ["competitive_relu", "competitive_relu_1", "j_squared_relu", "rrelu"]
    assert kaa.CompetitiveReLU(name="mine").name == "mine"
    layer = kaa.CompetitiveReLU(competition="l1")
    assert kaa.CompetitiveReLU.from_config(layer.get_config()).name == layer.name
    assert layer.get_config()["competition"] == "l1"  # the constructor's arguments are still recorded

    class Subclass(kaa.CompetitiveReLU):
        pass

    assert Subclass().name == "subclass"  # a user's subclass is named by Keras, from its own class
