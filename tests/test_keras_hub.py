"""`swap_activations` on small, randomly initialised KerasHub backbones (nothing downloaded): every
feed-forward activation of a BERT and of a ViT-style CLIP vision encoder becomes a registered activation,
one per feed-forward block, the rest is reported, the weights are kept, the model trains and round-trips
through a `.keras` file; `measure_sparsity` and `SparsityMonitor` read the new activations. KerasHub is
the optional `keras-hub` extra (docs/guides/keras-hub-sparse-mlps.md): without it these tests skip."""

import keras
import numpy as np
import pytest
from keras import ops

keras_hub = pytest.importorskip(
    "keras_hub",
    reason="KerasHub is not installed (the `keras-hub` extra: docs/guides/keras-hub-sparse-mlps.md)",
)

from keras_adaptive_acts import CompetitiveReLU, JSquaredReLU  # noqa: E402
from keras_adaptive_acts.callbacks import SparsityMonitor  # noqa: E402
from keras_adaptive_acts.measurement import measure_sparsity  # noqa: E402
from keras_adaptive_acts.model_graph import LayerTaps  # noqa: E402
from keras_adaptive_acts.surgery import swap_activations  # noqa: E402

NUM_LAYERS = 2
SEQUENCE = 12


def bert():
    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=NUM_LAYERS,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=SEQUENCE,
    )


def tokens(batch=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(1, 50, (batch, SEQUENCE)).astype("int32"),
        "segment_ids": np.zeros((batch, SEQUENCE), "int32"),
        "padding_mask": np.ones((batch, SEQUENCE), "int32"),  # no padding: every token counts
    }


def encoders(model):
    """The feed-forward blocks, found independently of the code under test: KerasHub's encoder layers."""
    return [layer for layer in model.layers if isinstance(layer, keras_hub.layers.TransformerEncoder)]


def numpy_of(tensor):
    return np.asarray(ops.convert_to_numpy(tensor), "float64")


def test_every_bert_feed_forward_activation_is_replaced_and_the_rest_reported():
    backbone = bert()
    new_model, report = swap_activations(backbone, "j_squared_relu", targets=("gelu",))
    assert len(encoders(backbone)) == NUM_LAYERS
    assert [(path, kind) for path, _, kind in report.replaced] == [
        (f"transformer_layer_{i}/feedforward_intermediate_dense", "gelu_approximate")
        for i in range(NUM_LAYERS)
    ]
    assert report.left_alone == []
    # The rest: each encoder's attention softmax and the pooler's tanh.
    assert sorted(kind for _, kind in report.not_targeted) == ["softmax"] * NUM_LAYERS + ["tanh"]
    assert ("pooled_dense", "tanh") in report.not_targeted
    assert report.seen == {"gelu_approximate": NUM_LAYERS, "softmax": NUM_LAYERS, "tanh": 1}
    for encoder in encoders(new_model):
        assert isinstance(encoder.activation, JSquaredReLU)
        assert encoder.get_config()["activation"]["class_name"] == "JSquaredReLU"  # what a .keras file keeps
    names = {encoder.activation.name for encoder in encoders(new_model)}
    assert len(names) == NUM_LAYERS  # one new layer per block, each named apart
    # The weights are kept, layer by layer.
    for old, new in zip(backbone.layers, new_model.layers, strict=True):
        assert old.name == new.name
        for old_weight, new_weight in zip(old.weights, new.weights, strict=True):
            np.testing.assert_array_equal(numpy_of(new_weight), numpy_of(old_weight))


def test_a_replacement_that_computes_the_same_function_gives_the_same_outputs():
    # KerasHub's own gelu_approximate, as a layer: nothing but the activation's form changes.
    gelu_approximate = keras.saving.get_registered_object("keras_hub>gelu_approximate")
    backbone = bert()
    new_model, report = swap_activations(
        backbone, lambda kind: keras.layers.Activation(gelu_approximate), targets=("gelu",)
    )
    assert len(report.replaced) == NUM_LAYERS
    expected = backbone.predict(tokens(), verbose=0)
    outputs = new_model.predict(tokens(), verbose=0)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-6, atol=1e-6)


def test_measure_sparsity_and_the_monitor_read_the_new_feed_forward_activations():
    new_model, _ = swap_activations(bert(), "j_squared_relu", targets=("gelu",))
    blocks = encoders(new_model)
    activations = [block.activation for block in blocks]
    data = tokens()
    result = measure_sparsity(new_model, data)
    assert list(result) == [layer.name for layer in activations] + ["pooled_dense"]
    # Independently: each block's feed-forward input (the input of its Dense, tapped), its
    # pre-activation in float64 from the Dense's weights, and the zeros of J-SquaredReLU (z <= 0).
    denses = [block._feedforward_intermediate_dense for block in blocks]  # KerasHub's attribute
    dense_inputs = LayerTaps(new_model, denses, "input", "test")(data, training=False)
    for dense, calls, activation in zip(denses, dense_inputs, activations, strict=True):
        z = numpy_of(calls[0].tensors[0]) @ numpy_of(dense.kernel) + numpy_of(dense.bias)
        assert result[activation.name] == pytest.approx(np.count_nonzero(z <= 0) / z.size)
        (pre_activation,) = LayerTaps(new_model, [activation], "input", "test")(data, training=False)
        np.testing.assert_allclose(numpy_of(pre_activation[0].tensors[0]), z, rtol=1e-4, atol=1e-5)
    assert 0.2 < result[activations[0].name] < 0.8  # a fresh network: about half the entries
    model = keras.Model(new_model.input, keras.layers.Dense(2)(new_model.output["pooled_output"]))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = SparsityMonitor(data)
    history = model.fit(data, np.zeros((16, 2)), verbose=0, callbacks=[monitor]).history
    for activation in activations:
        assert history[f"zero_fraction/{activation.name}"] == [pytest.approx(result[activation.name])]


@pytest.mark.slow  # about 3 s each on 2 cores: a save, a load and a fit
@pytest.mark.parametrize("replacement", ["j_squared_relu", CompetitiveReLU])
def test_a_swapped_bert_round_trips_through_a_keras_file_and_trains(replacement, tmp_path):
    backbone = bert()
    new_model, _ = swap_activations(backbone, replacement, targets=("gelu",))
    if replacement is CompetitiveReLU:  # the new activations' weights are saved and loaded too
        encoders(new_model)[1].activation.alpha.assign(0.5)
    data = tokens()
    expected = new_model.predict(data, verbose=0)
    assert not np.allclose(expected["sequence_output"], backbone.predict(data, verbose=0)["sequence_output"])
    new_model.save(tmp_path / "bert.keras")
    loaded = keras.saving.load_model(tmp_path / "bert.keras")  # safe mode, KerasHub imported
    outputs = loaded.predict(data, verbose=0)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(outputs[key], expected[key])
    for new, old in zip(loaded.weights, new_model.weights, strict=True):
        np.testing.assert_array_equal(numpy_of(new), numpy_of(old))
    assert all(
        type(block.activation) is type(encoders(new_model)[0].activation) for block in encoders(loaded)
    )
    if replacement is CompetitiveReLU:
        assert float(numpy_of(encoders(loaded)[1].activation.alpha)) == 0.5
    # A train step: a classifier head on the pooled output.
    model = keras.Model(loaded.input, keras.layers.Dense(2)(loaded.output["pooled_output"]))
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel = numpy_of(encoders(loaded)[0]._feedforward_intermediate_dense.kernel)
    loss = model.fit(data, np.arange(16) % 2, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert not np.array_equal(numpy_of(encoders(loaded)[0]._feedforward_intermediate_dense.kernel), kernel)


def clip_encoder():
    keras.utils.set_random_seed(1)
    return keras_hub.models.CLIPVisionEncoder(
        patch_size=4,
        hidden_dim=8,
        num_layers=NUM_LAYERS,
        num_heads=2,
        intermediate_dim=16,
        image_shape=(16, 16, 3),
    )


def images(batch=4):
    return {"images": np.random.default_rng(2).standard_normal((batch, 16, 16, 3)).astype("float32")}


@pytest.mark.slow  # about 2 s on 2 cores: a save and a load
def test_a_vit_style_clip_encoder_swaps_its_activation_layers_and_round_trips(tmp_path):
    encoder = clip_encoder()
    blocks = [layer for layer in encoder.layers if type(layer).__name__ == "CLIPEncoderLayer"]
    assert len(blocks) == NUM_LAYERS
    new_model, report = swap_activations(encoder, CompetitiveReLU, targets=("gelu",))
    # CLIP's feed-forward activation is an Activation layer of quick_gelu that each block holds.
    assert [(path, kind) for path, _, kind in report.replaced] == [
        (f"encoder_block_{i}/activation", "quick_gelu") for i in range(NUM_LAYERS)
    ]
    assert report.seen == {"quick_gelu": NUM_LAYERS, "softmax": NUM_LAYERS}
    new_blocks = [new_model.get_layer(block.name) for block in blocks]
    assert all(isinstance(block.activation.activation, CompetitiveReLU) for block in new_blocks)
    data = images()
    expected = new_model.predict(data, verbose=0)
    assert not np.allclose(expected, encoder.predict(data, verbose=0))
    result = measure_sparsity(new_model, data)
    assert list(result) == [block.activation.activation.name for block in new_blocks]
    new_model.save(tmp_path / "clip.keras")
    loaded = keras.saving.load_model(tmp_path / "clip.keras")
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), expected)
    assert measure_sparsity(loaded, data) == result


def test_kerashub_vit_sets_its_gelu_in_code_and_keeps_it_with_the_reason():
    vit = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=NUM_LAYERS, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    # KerasHub's ViT MLP writes `Dense(..., activation="gelu")` in its build: no argument of any
    # config sets it, so a replacement would be lost on loading. (The whole ViTBackbone cannot be
    # copied layer by layer: KerasHub's ViTPatchingAndEmbedding does not come back from its own
    # config; its encoder alone can.)
    tokens_in = keras.Input((17, 8))
    model = keras.Model(tokens_in, vit.get_layer("vit_encoder")(tokens_in))
    _, report = swap_activations(model, "j_squared_relu", targets=("gelu",))
    assert report.replaced == []
    assert report.seen["gelu"] == NUM_LAYERS
    assert len(report.left_alone) == NUM_LAYERS
    assert all("not by an argument of its config" in reason for _, reason in report.left_alone)
    try:
        swap_activations(vit, "j_squared_relu", targets=("gelu",))
    except ValueError as error:  # as of KerasHub 0.32
        assert "ViTPatchingAndEmbedding" in str(error) and "does not come back from its own config" in str(
            error
        )
