"""`swap_activations`: Sequential, Functional and nested models, Keras applications, bad input."""

import keras
import numpy as np
import pytest

from keras_adaptive_acts import CompetitiveReLU, NoisyHardTanh
from keras_adaptive_acts.model_graph import all_layers
from keras_adaptive_acts.surgery import swap_activations

X = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")


def relu_count(model):
    """Plain-ReLU activations of a model, counted independently of the code under test."""
    count = 0
    for layer in all_layers(model)[1:]:  # every layer at any depth, the model itself left out
        plain_relu_layer = isinstance(layer, keras.layers.ReLU) and layer.max_value is None
        if plain_relu_layer or getattr(layer, "activation", None) is keras.activations.relu:
            count += 1
    return count


def mixed_model():
    inner = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8, activation="relu", name="dense"),
            keras.layers.ReLU(max_value=6.0, name="re_lu"),
        ],
        name="inner",
    )
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="first")(inputs)
    hidden = keras.layers.Activation("tanh", name="squash")(hidden)
    hidden = inner(hidden)
    shared = keras.layers.ReLU(name="shared")
    hidden = shared(hidden) + shared(-hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)
    return keras.Model(inputs, outputs)


def test_functional_with_nested_sequential_keeps_outputs_weights_and_reports():
    model = mixed_model()
    new_model, report = swap_activations(model, CompetitiveReLU)
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))
    paths = [path for path, _, _ in report.replaced]
    assert paths == ["first", "inner/dense", "shared"]
    assert [path for path, _ in report.left_alone] == ["inner/re_lu"]
    assert "capped ReLU" in report.left_alone[0][1] and "'relu6'" in report.left_alone[0][1]
    assert relu_count(new_model) == 0 and relu_count(model) == 3  # the shared ReLU is one layer
    np.testing.assert_array_equal(
        new_model.get_layer("first").get_weights()[0], model.get_layer("first").get_weights()[0]
    )
    assert model.get_layer("first").activation is keras.activations.relu  # the original is untouched
    assert "Replaced 3 activation(s)" in str(report)


def test_targets_and_factories_choose_the_replacement_per_activation():
    seen = []

    def factory(activation):
        seen.append(activation)
        return NoisyHardTanh() if activation == "tanh" else CompetitiveReLU()

    new_model, report = swap_activations(mixed_model(), factory, targets=("tanh", "sigmoid"))
    assert sorted(seen) == ["sigmoid", "tanh"]
    kinds = {activation for _, _, activation in report.replaced}
    assert kinds == {"tanh", "sigmoid"}
    assert sum(isinstance(layer, NoisyHardTanh) for layer in new_model.layers) == 1


def test_sequential_model_round_trips_through_a_keras_file_and_trains(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.ReLU(),
            keras.layers.Dense(1),
        ]
    )
    new_model, _ = swap_activations(model, CompetitiveReLU)
    assert [type(layer).__name__ for layer in new_model.layers] == [
        "Dense",
        "CompetitiveReLU",
        "CompetitiveReLU",
        "Dense",
    ]
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))
    new_model.compile(optimizer="adam", loss="mse")
    before = new_model.get_weights()
    new_model.fit(X, X[:, :1], epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, new_model.get_weights(), strict=True))
    new_model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), new_model.predict(X, verbose=0), rtol=1e-6)


@pytest.mark.slow  # about 90 s: the README's run has it; the version matrix and backend jobs leave it out
@pytest.mark.parametrize("application", ["ResNet50", "DenseNet121"])
def test_keras_applications_are_swapped_completely_and_exactly(application, tmp_path):
    model = getattr(keras.applications, application)(weights=None, input_shape=(32, 32, 3), classes=10)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    new_model, report = swap_activations(model, CompetitiveReLU)
    assert relu_count(model) > 10 and relu_count(new_model) == 0
    assert len(report.replaced) == relu_count(model)
    np.testing.assert_array_equal(new_model.predict(images, verbose=0), model.predict(images, verbose=0))
    new_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss = new_model.train_on_batch(images, np.array([1, 2]))
    assert np.isfinite(loss)
    new_model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), new_model.predict(images, verbose=0), rtol=1e-5
    )


def test_capped_relus_are_replaced_only_when_asked():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4, activation="relu6", name="d"),
            keras.layers.ReLU(6.0, name="r"),
        ]
    )
    _, report = swap_activations(model, CompetitiveReLU)
    assert report.replaced == [] and [path for path, _ in report.left_alone] == ["d", "r"]
    seen = []
    new_model, report = swap_activations(
        model, lambda name: seen.append(name) or CompetitiveReLU(), ("relu6",)
    )
    assert seen == ["relu6", "relu6"] and len(report.replaced) == 2
    assert [type(layer).__name__ for layer in new_model.layers] == [
        "Dense",
        "CompetitiveReLU",
        "CompetitiveReLU",
    ]
    leaky = keras.Sequential([keras.Input((6,)), keras.layers.ReLU(negative_slope=0.1, name="leaky")])
    _, report = swap_activations(leaky, CompetitiveReLU, ("relu", "relu6"))
    assert report.replaced == [] and "leaky" in report.left_alone[0][1]


def test_recurrent_cells_and_capped_activations_are_reported_not_replaced():
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.LSTM(4, name="lstm"),
            keras.layers.Dense(2, activation="relu6", name="dense"),
        ]
    )
    _, report = swap_activations(model, CompetitiveReLU, targets=("relu", "tanh"))
    assert report.replaced == []
    reasons = dict(report.left_alone)
    assert "recurrent cell" in reasons["lstm"] and "capped" in reasons["dense"]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2, activation="relu")

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize(
    ("model", "replacement", "targets", "error", "match"),
    [
        (None, CompetitiveReLU, ("gelu",), ValueError, "targets"),
        (None, CompetitiveReLU, (), ValueError, "targets"),
        (None, int, ("relu",), TypeError, "Layer class or a factory"),
        (None, 3, ("relu",), TypeError, "Layer class or a factory"),
        (None, "competitve_relu", ("relu",), ValueError, "did you mean 'competitive_relu'"),
        (None, lambda name: "relu", ("relu",), TypeError, "must build a keras Layer"),
    ],
)
def test_bad_arguments(model, replacement, targets, error, match):
    with pytest.raises(error, match=match):
        swap_activations(mixed_model(), replacement, targets)


@pytest.mark.parametrize("model", ["model", keras.layers.ReLU(), None], ids=["str", "layer", "none"])
def test_something_other_than_a_model_is_a_type_error(model):
    with pytest.raises(
        TypeError, match=r"`model` must be a keras\.Model: swap_activations works on Sequential"
    ):
        swap_activations(model, CompetitiveReLU)


def test_subclassed_and_unbuilt_models_get_a_clear_error():
    subclassed = Subclassed()
    subclassed(X)
    with pytest.raises(TypeError, match="subclassed model"):
        swap_activations(subclassed, CompetitiveReLU)
    with pytest.raises(ValueError, match="built model"):
        swap_activations(keras.Sequential([keras.layers.Dense(2, activation="relu")]), CompetitiveReLU)


def test_all_is_the_public_api():
    import keras_adaptive_acts.surgery as surgery

    namespace = {}
    exec("from keras_adaptive_acts.surgery import *", namespace)
    assert set(surgery.__all__) == {"SwapReport", "swap_activations"} == set(namespace) - {"__builtins__"}
