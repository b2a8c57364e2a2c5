"""`swap_activations`: Sequential, Functional and nested models, wrappers, recurrent and custom layers,
mixed precision, Lambda layers, Keras applications, the report, bad input."""

import collections

import keras
import numpy as np
import pytest

from keras_adaptive_acts import CompetitiveReLU, NoisyHardTanh
from keras_adaptive_acts.model_graph import all_layers
from keras_adaptive_acts.surgery import swap_activations

X = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
SEQUENCES = np.random.default_rng(2).standard_normal((3, 5, 6)).astype("float32")


def relu_count(model):
    """Plain-ReLU activations of a model, counted independently of the code under test."""
    count = 0
    for layer in all_layers(model)[1:]:  # every layer at any depth, the model itself left out
        plain_relu_layer = isinstance(layer, keras.layers.ReLU) and layer.max_value is None
        if plain_relu_layer or getattr(layer, "activation", None) is keras.activations.relu:
            count += 1
    return count


# The activation layers of Keras and of this package the tests build, by the kind the report gives.
ACTIVATION_LAYER_KINDS = {
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.PReLU: "prelu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
    CompetitiveReLU: "competitive_relu",
    NoisyHardTanh: "noisy_hard_tanh",
}


def activations_of(model):
    """Every activation of `model`, counted by kind, found by walking it with public Keras API only
    (independently of the walk under test): nested models' `layers`, wrappers' `layer`, Bidirectional's
    two copies, recurrent cells, the layers a custom layer holds as attributes."""
    counts = collections.Counter()
    visited = set()

    def count_function(function):
        if not callable(function):  # None, or a setting such as the name "relu"
            return
        name = function.__name__
        if getattr(keras.activations, name, None) is function:
            name = keras.activations.serialize(function)
        if name != "linear":
            counts[name] += 1

    def walk(layer):
        if id(layer) in visited:
            return
        visited.add(id(layer))
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                walk(inner)
        elif isinstance(layer, keras.layers.Wrapper):
            walk(layer.layer)
        elif isinstance(layer, keras.layers.Bidirectional):
            walk(layer.forward_layer)
            walk(layer.backward_layer)
        elif isinstance(layer, keras.layers.RNN):
            cells = getattr(layer.cell, "cells", [layer.cell])  # StackedRNNCells holds several
            for cell in cells:
                count_function(getattr(cell, "activation", None))
                count_function(getattr(cell, "recurrent_activation", None))
        elif isinstance(layer, keras.layers.ReLU):
            if layer.negative_slope:
                counts["leaky_relu"] += 1
            elif layer.threshold:
                counts["thresholded_relu"] += 1
            else:
                counts["relu" if layer.max_value is None else "relu6"] += 1
        elif isinstance(layer, keras.layers.Activation):
            count_function(layer.activation)
        elif type(layer) in ACTIVATION_LAYER_KINDS:
            counts[ACTIVATION_LAYER_KINDS[type(layer)]] += 1
        else:
            count_function(getattr(layer, "activation", None))
            values = list(vars(layer).values())
            if keras.backend.backend() == "torch":  # a torch.nn.Module keeps its sublayers out of vars()
                values += [child for _, child in layer.named_children()]
            for value in values:  # the sublayers of a custom layer
                if isinstance(value, keras.layers.Layer):
                    walk(value)

    walk(model)
    return counts


def swap(model, *args, **kwargs):
    """`swap_activations`, with the promise every test checks: its report accounts for every
    activation of the original model, each replaced, left alone (with a reason) or not targeted."""
    new_model, report = swap_activations(model, *args, **kwargs)
    expected = activations_of(model)
    assert report.seen == expected
    listed = len(report.replaced) + len(report.left_alone) + len(report.not_targeted)
    assert listed == sum(expected.values())
    assert all(reason for _, reason in report.left_alone)
    return new_model, report


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
    new_model, report = swap(model, CompetitiveReLU)
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


def shared_at_two_ranks():
    """A Dense(relu) and a ReLU each called on a rank-2 and a rank-3 tensor."""
    flat, sequence = keras.Input((4,)), keras.Input((3, 4))
    dense = keras.layers.Dense(5, activation="relu", name="dense")
    relu = keras.layers.ReLU(name="relu")
    outputs = [relu(dense(flat)), relu(dense(sequence))]
    return keras.Model([flat, sequence], [keras.layers.Identity()(output) for output in outputs])


def test_a_shared_activation_one_replacement_cannot_serve_at_every_shape_is_left_alone():
    """CompetitiveReLU fixes its reduction axes when built: one shared instance cannot take rank 2 and
    rank 3. The two activations stay, with why; the model computes what it did."""
    model = shared_at_two_ranks()
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 4)).astype("float32"), rng.normal(size=(2, 3, 4)).astype("float32")]
    new_model, report = swap(model, CompetitiveReLU)
    assert report.replaced == []
    assert [path for path, _ in report.left_alone] == ["dense", "relu"]
    for _, reason in report.left_alone:
        assert "a shared layer, called on outputs of shapes (None, 5), (None, 3, 5)" in reason
        assert "one CompetitiveReLU cannot serve them all" in reason and "expected ndim=" in reason
    for new, old in zip(new_model(inputs), model(inputs), strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(new), keras.ops.convert_to_numpy(old))
    # An elementwise replacement takes any shape: both are replaced, each by one shared layer.
    new_model, report = swap(model, "rrelu")
    assert [path for path, _, _ in report.replaced] == ["dense", "relu"] and report.left_alone == []
    assert sum(type(layer).__name__ == "RReLU" for layer in new_model.layers) == 2


def test_targets_and_factories_choose_the_replacement_per_activation():
    seen = []

    def factory(activation):
        seen.append(activation)
        return NoisyHardTanh() if activation == "tanh" else CompetitiveReLU()

    new_model, report = swap(mixed_model(), factory, targets=("tanh", "sigmoid"))
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
    new_model, _ = swap(model, CompetitiveReLU)
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


# Keras Applications' models are large: building one takes most of these tests' time. What they check,
# the rewriting of a large functional graph and its report, does not depend on the backend, and the
# smaller models of this file check the swap on every backend; so CI runs them on TensorFlow only, and
# its JAX and PyTorch jobs deselect the marker (`-k "not keras_applications"`).
@pytest.mark.slow  # about 45 s: the README's run has it; the version matrix and backend jobs leave it out
@pytest.mark.keras_applications
@pytest.mark.parametrize("application", ["ResNet50", "DenseNet121"])
def test_keras_applications_are_swapped_completely_and_exactly(application, tmp_path):
    model = getattr(keras.applications, application)(weights=None, input_shape=(32, 32, 3), classes=10)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    new_model, report = swap(model, CompetitiveReLU)
    assert relu_count(model) > 10 and relu_count(new_model) == 0
    assert len(report.replaced) == relu_count(model)
    # Called directly, not through `predict`: tracing a step for each of three models of hundreds of
    # layers was most of this test's time, and the comparison needs no compiled step.
    np.testing.assert_array_equal(inference_outputs(new_model, images), inference_outputs(model, images))
    new_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss = new_model.train_on_batch(images, np.array([1, 2]))
    assert np.isfinite(loss)
    new_model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        inference_outputs(loaded, images), inference_outputs(new_model, images), rtol=1e-5
    )


def inference_outputs(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


@pytest.mark.slow  # about 10 s on TensorFlow, 40 s on JAX
@pytest.mark.keras_applications
def test_a_report_says_what_it_saw_when_nothing_is_targeted():
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10)
    _, report = swap(model, CompetitiveReLU)
    assert report.replaced == [] and report.left_alone == []
    assert str(report).splitlines() == [
        "Saw 66 activation(s): 49 silu (not targeted), 16 sigmoid (not targeted), 1 softmax (not targeted).",
        "Replaced 0 activation(s).",
    ]
    same_sigmoid = lambda kind: keras.layers.Activation(kind)  # noqa: E731
    new_model, report = swap(model, same_sigmoid, targets=("sigmoid",))
    assert len(report.replaced) == 16 and len(report.not_targeted) == 50
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(new_model.predict(images, verbose=0), model.predict(images, verbose=0))


def test_capped_relus_are_replaced_only_when_asked():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4, activation="relu6", name="d"),
            keras.layers.ReLU(6.0, name="r"),
        ]
    )
    _, report = swap(model, CompetitiveReLU)
    assert report.replaced == [] and [path for path, _ in report.left_alone] == ["d", "r"]
    seen = []
    new_model, report = swap(model, lambda name: seen.append(name) or CompetitiveReLU(), ("relu6",))
    assert seen == ["relu6", "relu6"] and len(report.replaced) == 2
    assert [type(layer).__name__ for layer in new_model.layers] == [
        "Dense",
        "CompetitiveReLU",
        "CompetitiveReLU",
    ]
    leaky = keras.Sequential([keras.Input((6,)), keras.layers.ReLU(negative_slope=0.1, name="leaky")])
    _, report = swap(leaky, CompetitiveReLU, ("relu", "relu6"))
    assert report.replaced == [] and "leaky" in report.left_alone[0][1]


def test_recurrent_cells_and_capped_activations_are_reported_not_replaced():
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.LSTM(4, name="lstm"),
            keras.layers.Dense(2, activation="relu6", name="dense"),
        ]
    )
    _, report = swap(model, CompetitiveReLU, targets=("relu", "tanh"))
    assert report.replaced == []
    reasons = dict(report.left_alone)
    assert "recurrent cell" in reasons["lstm"] and "capped" in reasons["dense"]
    assert report.not_targeted == [("lstm", "sigmoid")]  # the LSTM's gates: its recurrent_activation


def test_the_report_says_what_it_saw_by_kind():
    _, report = swap(mixed_model(), CompetitiveReLU)
    assert str(report).splitlines()[0] == (
        "Saw 6 activation(s): 3 relu (replaced), 1 relu6 (left alone), 1 sigmoid (not targeted), "
        "1 tanh (not targeted)."
    )
    assert report.not_targeted == [("squash", "tanh"), ("out", "sigmoid")]
    assert report.seen == {"relu": 3, "relu6": 1, "tanh": 1, "sigmoid": 1}
    model = keras.Sequential(
        [keras.Input((5, 6)), keras.layers.SimpleRNN(3, activation="relu"), keras.layers.Dense(2, "relu")]
    )
    _, report = swap(model, CompetitiveReLU)
    assert str(report).startswith("Saw 2 activation(s): 2 relu (1 replaced, 1 left alone).\nReplaced 1")
    _, report = swap(keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)]), CompetitiveReLU)
    assert str(report) == "Saw 0 activation(s).\nReplaced 0 activation(s)."


def test_wrapped_layers_are_swapped_and_wrapped_recurrent_cells_reported():
    model = keras.Sequential(
        [
            keras.Input((5, 6)),
            keras.layers.TimeDistributed(keras.layers.Dense(4, activation="relu", name="hidden"), name="td"),
            keras.layers.TimeDistributed(keras.layers.ReLU(name="inner_relu"), name="td_relu"),
            keras.layers.Bidirectional(
                keras.layers.SimpleRNN(3, activation="relu", return_sequences=True, name="recurrent"),
                name="bi",
            ),
            keras.layers.SimpleRNN(2, activation="relu", name="rnn"),
            keras.layers.SpectralNormalization(
                keras.layers.Dense(2, activation="relu", name="projection"), name="sn"
            ),
        ]
    )
    new_model, report = swap(model, CompetitiveReLU)
    np.testing.assert_array_equal(
        new_model.predict(SEQUENCES, verbose=0), model.predict(SEQUENCES, verbose=0)
    )
    assert [path for path, _, _ in report.replaced] == ["td/hidden", "td_relu/inner_relu", "sn/projection"]
    assert [path for path, _ in report.left_alone] == ["bi/forward_recurrent", "bi/backward_recurrent", "rnn"]
    assert all("recurrent cell" in reason for _, reason in report.left_alone)
    assert [type(layer).__name__ for layer in new_model.layers] == [
        "TimeDistributed",
        "CompetitiveReLU",
        "CompetitiveReLU",  # the wrapped ReLU's stand-in, on the whole sequence
        "Bidirectional",
        "SimpleRNN",
        "SpectralNormalization",
        "CompetitiveReLU",
    ]
    assert new_model.get_layer("td").layer.activation is keras.activations.linear
    assert activations_of(new_model) == {"relu": 3, "competitive_relu": 3}  # the recurrent cells' stay
    # The spectral normalization's own vector (drawn at random in each copy) is copied too.
    for new, old in zip(new_model.get_layer("sn").weights, model.get_layer("sn").weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(new), keras.ops.convert_to_numpy(old))


def test_a_wrapped_activation_in_a_functional_model_is_replaced_wrapper_and_all():
    # The wrapper's node holds its own call arguments (TimeDistributed's `mask=None`), which an
    # activation layer does not take: the swap raised TypeError in a Functional model. (No mask flows
    # here: whether TimeDistributed passes one on differs between Keras versions; keras-nightly drops it.)
    inputs = keras.Input((5, 6))
    hidden = keras.layers.TimeDistributed(keras.layers.ReLU(name="inner_relu"), name="td_relu")(inputs)
    outputs = keras.layers.LSTM(3)(hidden)
    model = keras.Model(inputs, outputs)
    new_model, report = swap(model, CompetitiveReLU)
    assert [path for path, _, _ in report.replaced] == ["td_relu/inner_relu"]
    assert [type(layer).__name__ for layer in new_model.layers] == ["InputLayer", "CompetitiveReLU", "LSTM"]
    np.testing.assert_array_equal(
        new_model.predict(SEQUENCES, verbose=0), model.predict(SEQUENCES, verbose=0)
    )


def penalty(model, inputs):
    """The sum of the activity regularizers' losses of one call, as Keras counts them."""
    model(inputs, training=True)
    return float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))


def test_an_activity_regularizer_keeps_penalising_the_activations_output():
    # ActivationL1 is the package's sparsity penalty, written for exactly this place: a Dense's
    # output after its ReLU. Split off the Dense, it must follow the activation: on the linear Dense
    # it would penalise the pre-activations, negative ones included.
    from keras_adaptive_acts.regularizers import ActivationL1

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", activity_regularizer=ActivationL1(0.1), name="hidden")(
        inputs
    )
    projection = keras.layers.Dense(8, activation="relu", activity_regularizer=keras.regularizers.L1(0.01))
    hidden = keras.layers.SpectralNormalization(projection, name="sn")(hidden)
    outputs = keras.layers.Dense(2)(hidden)
    model = keras.Model(inputs, outputs)
    new_model, report = swap(model, CompetitiveReLU)
    assert [how for _, how, _ in report.replaced] == [
        "activation of Dense split off, its activity_regularizer with it"
    ] * 2
    assert new_model.get_layer("hidden").activity_regularizer is None  # the Dense, now linear
    moved = [layer for layer in new_model.layers if isinstance(layer, CompetitiveReLU)]
    assert [type(layer.activity_regularizer).__name__ for layer in moved] == ["ActivationL1", "L1"]
    # The same penalty as Keras counts for the original model (on the pre-activations it was more).
    original = penalty(model, X)
    assert original > 0.0
    np.testing.assert_allclose(penalty(new_model, X), original, rtol=1e-6)
    # Saved and loaded, the regularizer is still where it acts.
    assert (
        type(keras.layers.deserialize(keras.layers.serialize(moved[0])).activity_regularizer) is ActivationL1
    )


def test_an_activity_regularizer_inside_time_distributed_counts_as_in_the_original():
    # Keras' TimeDistributed runs the wrapped layer's call(), without its activity regularizer. The
    # swap leaves it where it was: the two models must count the same penalty (0 as Keras is now).
    inner = keras.layers.Dense(4, activation="relu", activity_regularizer=keras.regularizers.L1(0.5))
    model = keras.Sequential([keras.Input((5, 6)), keras.layers.TimeDistributed(inner, name="td")])
    new_model, _ = swap(model, CompetitiveReLU)
    assert penalty(new_model, SEQUENCES) == penalty(model, SEQUENCES)


def test_a_replacement_with_an_activity_regularizer_of_its_own_is_refused():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(3, activation="relu", activity_regularizer="l2")]
    )
    regularized = CompetitiveReLU(activity_regularizer="l1")
    with pytest.raises(ValueError, match="has one of its own"):
        swap_activations(model, regularized)
    plain, _ = swap(model, CompetitiveReLU)  # the default replacement takes the Dense's
    assert type(plain.layers[1].activity_regularizer).__name__ == "L2"


def test_outputs_keep_their_names_and_the_sequential_input_its_name():
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(5, name="out_a_preactivation")(inputs)  # the name the stand-in would take
    out_a = keras.layers.Dense(3, activation="relu", name="out_a")(hidden)
    out_b = keras.layers.ReLU(name="out_b")(hidden)
    model = keras.Model(inputs, [out_a, out_b])
    new_model, _ = swap(model, CompetitiveReLU)
    assert new_model.output_names == ["out_a", "out_b"]
    assert [type(new_model.get_layer(name)).__name__ for name in ("out_a", "out_b")] == [
        "CompetitiveReLU"
    ] * 2
    stand_in = new_model.get_layer("out_a_preactivation_1")
    for new, old in zip(stand_in.get_weights(), model.get_layer("out_a").get_weights(), strict=True):
        np.testing.assert_array_equal(new, old)
    for new, old in zip(new_model.predict(X, verbose=0), model.predict(X, verbose=0), strict=True):
        np.testing.assert_array_equal(new, old)
    # Code written for the original model's outputs works on the new one.
    new_model.compile("sgd", loss={"out_a": "mse", "out_b": "mse"})
    targets = {"out_a": np.zeros((4, 3)), "out_b": np.zeros((4, 5))}
    assert np.isfinite(new_model.fit(X, targets, epochs=1, verbose=0).history["loss"][0])

    sequential = keras.Sequential(
        [keras.Input((6,), name="features"), keras.layers.Dense(2, activation="relu")]
    )
    new_sequential, _ = swap(sequential, CompetitiveReLU)
    assert new_sequential.inputs[0].name == "features"


def test_nested_models_at_any_depth_are_swapped_shared_and_kept_frozen():
    deep_inputs = keras.Input((4,))
    deep = keras.layers.Dense(4, activation="relu", name="deep")(deep_inputs)
    innermost = keras.Model(deep_inputs, keras.layers.ReLU(name="deep_relu")(deep), name="innermost")
    middle = keras.Sequential(
        [keras.Input((4,)), innermost, keras.layers.Dense(4, activation="tanh", name="middle_dense")],
        name="middle",
    )
    frozen = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="frozen_dense")], name="frozen"
    )
    frozen.trainable = False  # as for fine-tuning a pre-trained base
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(frozen(middle(middle(inputs))))  # `middle` is called twice
    model = keras.Model(inputs, outputs)
    new_model, report = swap(model, CompetitiveReLU)
    np.testing.assert_array_equal(new_model.predict(X[:, :4], verbose=0), model.predict(X[:, :4], verbose=0))
    assert [path for path, _, _ in report.replaced] == [
        "middle/innermost/deep",
        "middle/innermost/deep_relu",
        "frozen/frozen_dense",
    ]
    assert [layer.name for layer in new_model.layers].count("middle") == 1  # still one model, called twice
    new_frozen = new_model.get_layer("frozen")
    assert not new_frozen.trainable and new_frozen.trainable_weights == []
    assert [(type(layer).__name__, layer.trainable) for layer in new_frozen.layers] == [
        ("Dense", False),
        ("CompetitiveReLU", False),  # frozen with the model it is in
    ]
    assert report.not_targeted == [("middle/middle_dense", "tanh")]
    # A nested model inside a wrapper is rewritten too.
    sequence_model = keras.Sequential([keras.Input((5, 4)), keras.layers.TimeDistributed(middle, name="td")])
    new_model, report = swap(sequence_model, CompetitiveReLU)
    assert [path for path, _, _ in report.replaced] == [
        "td/middle/innermost/deep",
        "td/middle/innermost/deep_relu",
    ]
    sequences = SEQUENCES[:, :, :4]
    np.testing.assert_array_equal(
        new_model.predict(sequences, verbose=0), sequence_model.predict(sequences, verbose=0)
    )


def test_frozen_layers_stay_frozen_with_the_activations_that_replace_theirs():
    """The fine-tuning recipe: freeze the first layers, swap, train. Neither the frozen layers nor
    the new activations split off them (or put in place of a frozen ReLU) move; the rest trains."""
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="relu", name="frozen_dense"),
            keras.layers.ReLU(name="frozen_relu"),
            keras.layers.Dense(4, name="trained_dense"),
            keras.layers.ReLU(name="trained_relu"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    for layer in model.layers[:2]:
        layer.trainable = False
    new_model, _ = swap(model, CompetitiveReLU)
    assert [(type(layer).__name__, layer.trainable) for layer in new_model.layers] == [
        ("Dense", False),
        ("CompetitiveReLU", False),  # split off the frozen Dense
        ("CompetitiveReLU", False),  # in place of the frozen ReLU
        ("Dense", True),
        ("CompetitiveReLU", True),
        ("Dense", True),
    ]
    before = [[np.array(w) for w in layer.weights] for layer in new_model.layers]
    new_model.compile(keras.optimizers.SGD(0.1), "mse")
    new_model.fit(X, np.ones((4, 1)), epochs=2, verbose=0)
    moved = [
        any(not np.array_equal(w, old) for w, old in zip(layer.weights, weights, strict=True))
        for layer, weights in zip(new_model.layers, before, strict=True)
    ]
    assert moved == [False, False, False, True, True, True]


@pytest.mark.parametrize("kind", ["Sequential", "Functional"])
def test_a_compiled_model_comes_back_compiled_with_a_new_optimizer_as_clone_model_does(kind):
    layers = [keras.layers.Dense(5, activation="relu"), keras.layers.Dense(1)]
    if kind == "Sequential":
        model = keras.Sequential([keras.Input((6,)), *layers])
    else:
        inputs = keras.Input((6,))
        model = keras.Model(inputs, layers[1](layers[0](inputs)))
    model.compile(keras.optimizers.Adam(0.01), "mse", metrics=["mae"])
    model.fit(X, np.ones((4, 1)), epochs=2, verbose=0)
    new_model, _ = swap(model, CompetitiveReLU)
    assert new_model.compiled and new_model.optimizer is not model.optimizer
    # The same class (on PyTorch, Keras' Adam is a backend subclass of `keras.optimizers.Adam`).
    assert type(new_model.optimizer) is type(model.optimizer)
    assert isinstance(new_model.optimizer, keras.optimizers.Adam)
    assert float(new_model.optimizer.learning_rate) == pytest.approx(0.01)
    assert int(new_model.optimizer.iterations) == 0  # its state is new: the variables are new
    history = new_model.fit(X, np.ones((4, 1)), epochs=1, verbose=0)  # no compile needed
    assert set(history.history) == {"loss", "mae"}
    uncompiled = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu")])
    assert not swap(uncompiled, CompetitiveReLU)[0].compiled


@keras.saving.register_keras_serializable(package="test_surgery")
class GatedBlock(keras.layers.Layer):
    """A custom layer that applies two activations in its own call."""

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation  # a setting (a name), not the function applied
        self.inner = keras.layers.Dense(6, activation=activation, name="inner")
        self.gate = keras.layers.Activation("sigmoid", name="gate")

    def call(self, inputs):
        return inputs + self.gate(self.inner(inputs))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


def test_activations_inside_custom_layers_are_replaced_through_their_arguments_or_reported():
    model = keras.Sequential([keras.Input((6,)), GatedBlock(name="block"), keras.layers.Dense(1)])
    new_model, report = swap(model, CompetitiveReLU, targets=("relu", "sigmoid"))
    # The inner Dense's relu is GatedBlock's `activation` argument: the block is rebuilt with it (more
    # in tests/test_surgery_sublayers.py). The gate's sigmoid is set by GatedBlock's code: a
    # replacement would not survive loading, so it stays, with the reason.
    assert [(path, kind) for path, _, kind in report.replaced] == [("block/inner", "relu")]
    assert [path for path, _ in report.left_alone] == ["block/gate"]
    assert "not by an argument of its config" in report.left_alone[0][1]
    assert isinstance(new_model.get_layer("block").inner.activation, CompetitiveReLU)
    # CompetitiveReLU starts as an exact ReLU, and the block's weights are kept.
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))


@pytest.fixture
def mixed_precision():
    """Builds under `mixed_float16`, then resets the global policy to float32 (and restores it)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


def test_new_layers_take_the_dtype_policy_of_the_layers_they_replace(mixed_precision):
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation="relu"), keras.layers.ReLU()], name="inner"
    )
    inputs = keras.Input((5, 6))
    hidden = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="relu"))(inputs)
    hidden = keras.layers.Flatten()(keras.layers.TimeDistributed(inner)(hidden))
    outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model(inputs, outputs)
    keras.config.set_dtype_policy("float32")  # the model is swapped later, under another global policy

    def same_activation(kind):
        return CompetitiveReLU() if kind == "relu" else keras.layers.Activation(kind)

    new_model, report = swap(model, same_activation, targets=("relu", "sigmoid"))
    policies = {
        layer.name: layer.dtype_policy.name
        for layer in all_layers(new_model)
        if not isinstance(layer, keras.layers.InputLayer)  # an input's policy computes nothing
    }
    assert set(policies.values()) == {"mixed_float16"}, policies
    assert {layer.dtype_policy.name for layer in all_layers(model)} == {"mixed_float16"}
    assert len(report.replaced) == 4
    expected = model.predict(SEQUENCES, verbose=0)
    assert expected.dtype == "float16"
    np.testing.assert_array_equal(new_model.predict(SEQUENCES, verbose=0), expected)
    # A replacement made with a policy of its own (a float32 output, as the mixed-precision guide
    # advises) keeps it.
    keras.config.set_dtype_policy("mixed_float16")
    new_model, _ = swap(model, lambda kind: keras.layers.Activation(kind, dtype="float32"), ("sigmoid",))
    assert new_model.layers[-1].dtype_policy.name == "float32"
    assert new_model.predict(SEQUENCES, verbose=0).dtype == "float32"


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2, activation="relu")

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize(
    ("model", "replacement", "targets", "error", "match"),
    [
        (None, CompetitiveReLU, ("softmax",), ValueError, "targets"),
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


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have a `quantize` method")  # Keras, harmless
def test_a_quantized_layers_activation_takes_the_policy_it_computes_in(mixed_precision):
    keras.config.set_dtype_policy("mixed_bfloat16")  # Keras quantizes to int8 from bfloat16, not float16
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.quantize("int8")
    keras.config.set_dtype_policy("float32")
    new_model, _ = swap(model, CompetitiveReLU)
    assert [layer.dtype_policy.name for layer in new_model.layers] == [
        "int8_from_mixed_bfloat16",
        "mixed_bfloat16",  # an activation has no kernel to quantize
        "int8_from_mixed_bfloat16",
    ]
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))


SCALE = 3.0


def double(inputs):
    return 2 * inputs


def same_shape(input_shape):
    return input_shape


def lambda_model():
    scaled = keras.layers.Lambda(lambda inputs: keras.ops.tanh(inputs) * SCALE, name="scaled")
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), scaled])


def test_a_python_lambda_needs_safe_mode_false_and_bad_input_leaves_the_model_as_it_was():
    model = lambda_model()
    expected, config = model.predict(X, verbose=0), model.get_config()
    with pytest.raises(ValueError, match=r"Python lambdas: \['scaled'\].*pass `safe_mode=False` to swap_act"):
        swap_activations(model, CompetitiveReLU)
    with pytest.raises(TypeError, match="`safe_mode` must be True or False"):
        swap_activations(model, CompetitiveReLU, safe_mode="no")
    assert model.get_config() == config
    assert model.get_layer("scaled").output is model.outputs[0]  # called nowhere else
    np.testing.assert_array_equal(model.predict(X, verbose=0), expected)
    # Opted in: the copy calls the same function, which reads its module's globals (`keras`, `SCALE`).
    new_model, report = swap(model, CompetitiveReLU, safe_mode=False)
    assert len(report.replaced) == 1
    assert new_model.layers[-1] is not model.layers[-1]
    assert new_model.layers[-1].function is model.layers[-1].function
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), expected)
    # A named function is no Python lambda: safe mode copies it, registered or not.
    named = keras.Sequential(
        [keras.Input((6,)), keras.layers.Lambda(double, output_shape=same_shape), keras.layers.ReLU()]
    )
    new_model, _ = swap(named, CompetitiveReLU)
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), named.predict(X, verbose=0))
    assert new_model.layers[0].compute_output_shape((None, 6)) == (None, 6)


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
