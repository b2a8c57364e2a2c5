"""measure_sparsity: the sanity value, NumPy references, batching, layer choice, model kinds, errors."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import tensorflow_or_skip

from keras_adaptive_acts import (
    CompetitiveReLU,
    JSquaredReLU,
    MixedActivation,
    NoisyHardSigmoid,
    NoisyHardTanh,
    RReLU,
)
from keras_adaptive_acts.measurement import measure_sparsity


def centred(n, features, seed=0):
    return np.random.default_rng(seed).normal(size=(n, features)).astype("float32")


def numpy_zero_fraction(a):
    a = ops.convert_to_numpy(a)
    return np.count_nonzero(a == 0) / a.size


def relu_mlp(features=32, width=256, seed=0):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(width, activation="relu", kernel_initializer=init, name="hidden_1"),
            keras.layers.Dense(width, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)),
            keras.layers.ReLU(name="relu_2"),
            keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(seed + 2)),
        ]
    )


def test_a_fresh_relu_mlp_on_centred_inputs_has_about_half_zeros_as_numpy_computes():
    model = relu_mlp()
    x = centred(600, 32)
    result = measure_sparsity(model, x)
    assert list(result) == ["hidden_1", "relu_2"]  # the linear Dense layers are not activations
    for value in result.values():
        assert abs(value - 0.5) < 0.05  # the spec's sanity value

    # NumPy forward pass in float64 from the weights (independent of Keras' ops).
    w1, b1, w2, b2 = (ops.convert_to_numpy(v).astype("float64") for v in model.weights[:4])
    h1 = np.maximum(x.astype("float64") @ w1 + b1, 0.0)
    h2 = np.maximum(h1 @ w2 + b2, 0.0)
    # 150k entries each: a rounding difference can flip only entries within ~1e-7 of zero.
    np.testing.assert_allclose(result["hidden_1"], numpy_zero_fraction(h1), atol=1e-4)
    np.testing.assert_allclose(result["relu_2"], numpy_zero_fraction(h2), atol=1e-4)

    # Layer by layer with Keras: exactly the same fractions.
    a1 = model.layers[0](x)
    a2 = model.layers[2](model.layers[1](a1))
    assert result == {"hidden_1": numpy_zero_fraction(a1), "relu_2": numpy_zero_fraction(a2)}


def test_batches_are_weighted_by_their_number_of_entries():
    tf = tensorflow_or_skip()
    model = relu_mlp(features=8, width=16)
    x = centred(100, 8, seed=1)
    y = np.zeros((100, 10), "float32")
    whole = measure_sparsity(model, x, batch_size=100)
    # 100 = 3 * 32 + 4 and 100 = 14 * 7 + 2: uneven last batches must not get the weight of a full one.
    assert measure_sparsity(model, x) == whole
    assert measure_sparsity(model, (x, y), batch_size=7) == whole
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    assert measure_sparsity(model, dataset) == whole
    assert measure_sparsity(model, tf.data.Dataset.from_tensor_slices(x).batch(33)) == whole
    assert measure_sparsity(model, (x[i : i + 9] for i in range(0, 100, 9))) == whole  # a generator
    # A mean of per-batch fractions would differ here: the last batch has a very different sparsity.
    skewed = np.concatenate([x[:96], -np.abs(x[96:]) * 100.0])
    per_batch = measure_sparsity(model, skewed, batch_size=96)
    assert measure_sparsity(model, skewed, batch_size=100) == per_batch


def test_inference_mode_and_the_model_state_is_untouched():
    layer = RReLU(seed=3, noise_at_inference=True, name="rrelu")
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, name="dense"),
            keras.layers.Dropout(0.9, seed=1),
            keras.layers.ReLU(name="relu"),
            layer,
        ]
    )
    x = centred(64, 16)
    reference = numpy_zero_fraction(model.layers[2](model.layers[0](x)))  # no dropout at inference
    before = [ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    result = measure_sparsity(model, x, layers=["relu", layer])
    assert result == {"relu": reference, "rrelu": reference}  # RReLU keeps the zeros of its input
    after = [ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)  # the seed states did not advance


def test_default_layers_are_the_activation_layers():
    inputs = keras.Input((6, 4))
    x = keras.layers.Conv1D(4, 3, padding="same", activation="relu", name="conv_relu")(inputs)
    x = keras.layers.Conv1D(4, 3, padding="same", name="conv_linear")(x)
    x = keras.layers.Dense(4, activation="tanh", name="dense_tanh")(x)
    x = keras.layers.Dense(4, activation="linear", name="dense_linear")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="act_relu")(x)
    x = keras.layers.Activation("linear", name="act_linear")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    for layer in (
        keras.layers.LeakyReLU(name="leaky"),
        keras.layers.PReLU(name="prelu"),
        keras.layers.ELU(name="elu"),
        CompetitiveReLU(name="carelu"),
        RReLU(name="rrelu"),
        JSquaredReLU(name="jsrelu"),
        MixedActivation(name="mixed"),
        NoisyHardTanh(name="noisy_tanh"),
        NoisyHardSigmoid(name="noisy_sigmoid"),
    ):
        x = layer(x)
    model = keras.Model(inputs, keras.layers.Flatten(name="flatten")(x))
    data = centred(8, 24).reshape(8, 6, 4)
    result = measure_sparsity(model, data)
    expected = ["conv_relu", "dense_tanh", "act_relu", "leaky", "prelu", "elu", "carelu", "rrelu"]
    expected += ["jsrelu", "mixed", "noisy_tanh", "noisy_sigmoid"]
    assert list(result) == expected
    assert all(0.0 <= value <= 1.0 for value in result.values())
    outputs = keras.Model(inputs, [model.get_layer(name).output for name in expected])(data)
    for name, output in zip(expected, outputs, strict=True):  # eval mode: no noise, so one pass agrees
        assert result[name] == numpy_zero_fraction(output), name
    assert result["act_relu"] > 0  # measures something: ReLU zeroes part of its input


def test_layers_of_a_nested_model_and_a_dict_input_model():
    block = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, name="block_dense"), keras.layers.ReLU(name="block_relu")],
        name="block",
    )
    a, b = keras.Input((5,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(8, name="merge")(keras.layers.Concatenate()([a, b]))
    out = keras.layers.ReLU(name="top_relu")(block(h))
    model = keras.Model({"a": a, "b": b}, out)
    x = {"a": centred(40, 5, seed=2), "b": centred(40, 3, seed=3)}
    result = measure_sparsity(model, x, batch_size=16)
    assert list(result) == ["block_relu", "top_relu"]
    merged = model.get_layer("merge")(np.concatenate([x["a"], x["b"]], axis=1))
    inner = block.get_layer("block_relu")(block.get_layer("block_dense")(merged))
    assert result["block_relu"] == numpy_zero_fraction(inner)
    assert result["top_relu"] == result["block_relu"]  # relu of a relu output: the same zeros
    chosen = measure_sparsity(model, (x, np.zeros((40, 8))), layers=["merge", block.get_layer("block_relu")])
    assert chosen == {"merge": numpy_zero_fraction(merged), "block_relu": result["block_relu"]}


# ----------------------------------------------------------------------------------------------
# Errors


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4)
        self.relu = keras.layers.ReLU()

    def call(self, inputs):
        return self.relu(self.dense(inputs))


def test_a_subclassed_or_unbuilt_model_is_refused_with_advice():
    model = Subclassed()
    model(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"subclassed model.*Functional or Sequential"):
        measure_sparsity(model, np.ones((2, 3), "float32"))
    unbuilt = keras.Sequential([keras.layers.Dense(2), keras.layers.ReLU()])
    with pytest.raises(ValueError, match=r"not built yet.*keras.Input"):
        measure_sparsity(unbuilt, np.ones((2, 3), "float32"))


def test_bad_layers_data_and_batch_size_raise():
    tf = tensorflow_or_skip()
    model = relu_mlp(features=4, width=8)
    x = centred(8, 4)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        measure_sparsity(model, x, layers=["nope"])
    with pytest.raises(ValueError, match="not part of the model"):
        measure_sparsity(model, x, layers=[keras.layers.ReLU(name="elsewhere")])
    with pytest.raises(ValueError, match=r"Received: layers=\[\]"):
        measure_sparsity(model, x, layers=[])
    with pytest.raises(ValueError, match="0 samples"):
        measure_sparsity(model, np.zeros((0, 4), "float32"))
    with pytest.raises(ValueError, match="empty dataset"):
        measure_sparsity(model, tf.data.Dataset.from_tensor_slices(x).batch(4).take(0))
    with pytest.raises(ValueError, match="no samples"):
        measure_sparsity(model, iter([]))
    with pytest.raises(ValueError, match="batched already"):
        measure_sparsity(model, tf.data.Dataset.from_tensor_slices(x).batch(4), batch_size=4)
    with pytest.raises(ValueError, match="batch_size=0"):
        measure_sparsity(model, x, batch_size=0)
    with pytest.raises(ValueError, match="found no activation layer"):
        measure_sparsity(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), x)


def test_a_shared_layer_counts_the_outputs_of_every_call():
    relu = keras.layers.ReLU(name="shared")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Add()([relu(inputs), relu(inputs - 1.0)]))
    x = centred(6, 4)
    expected = (np.count_nonzero(x <= 0) + np.count_nonzero(x - 1.0 <= 0)) / (2 * x.size)
    assert measure_sparsity(model, x) == {"shared": expected}


def test_the_layers_of_a_nested_model_called_twice_count_both_calls():
    # A Siamese network: one encoder (a Sequential) applied to two inputs.
    encoder = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, activation="relu", name="encode")], name="encoder"
    )
    left, right = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([left, right], keras.layers.Subtract()([encoder(left), encoder(right)]))
    x_left, x_right = centred(10, 4, seed=1), centred(10, 4, seed=2) + 0.5
    dense = encoder.get_layer("encode")
    kernel, bias = (ops.convert_to_numpy(w).astype("float64") for w in (dense.kernel, dense.bias))
    hidden = [np.maximum(x.astype("float64") @ kernel + bias, 0.0) for x in (x_left, x_right)]
    expected = sum(np.count_nonzero(h == 0) for h in hidden) / sum(h.size for h in hidden)
    np.testing.assert_allclose(measure_sparsity(model, [x_left, x_right], batch_size=3)["encode"], expected)


def padded_tokens():
    """Token ids with padding (0) behind 2 to 6 real tokens, and the number of real tokens per row."""
    lengths = np.array([2, 6, 3, 5])
    tokens = np.random.default_rng(0).integers(1, 9, size=(4, 6))
    tokens[np.arange(6) >= lengths[:, None]] = 0
    return tokens, lengths


# Keras warns that the nested Sequential drops the mask of its output; its own layers do receive it.
@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")
def test_padding_behind_an_embedding_mask_is_not_counted():
    tokens, lengths = padded_tokens()
    inputs = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(9, 5, mask_zero=True, name="embed")(inputs)
    # Through a nested Sequential too: its layers receive the mask of its input.
    block = keras.Sequential(
        [keras.layers.Dense(5, name="inner_dense"), keras.layers.ReLU(name="inner_relu")]
    )
    outputs = block(keras.layers.ReLU(name="relu")(embedded))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(outputs))
    # Weights of NumPy's drawing, not the initializers': the same on every backend and in any test
    # order (under pytest-xdist an unseeded draw once made the two fractions below equal, 0.6). The
    # padding token's row is positive, so its steps would add no zeros after the first ReLU.
    rng = np.random.default_rng(3)
    embedding_rows = rng.normal(size=(9, 5))
    embedding_rows[0] = 1.0
    model.get_layer("embed").set_weights([embedding_rows])
    block.get_layer("inner_dense").set_weights([rng.normal(size=(5, 5)), rng.normal(size=5)])
    result = measure_sparsity(model, tokens, batch_size=3)

    table = ops.convert_to_numpy(model.get_layer("embed").embeddings).astype("float64")
    relu = np.maximum(table[tokens], 0.0)
    dense = block.get_layer("inner_dense")
    kernel, bias = (ops.convert_to_numpy(w).astype("float64") for w in (dense.kernel, dense.bias))
    inner = np.maximum(relu @ kernel + bias, 0.0)
    real = np.arange(6)[None, :] < lengths[:, None]  # (4, 6): the unpadded steps
    for name, values in (("relu", relu), ("inner_relu", inner)):
        # The padded rows of the embedding table are not zero: counting them would change the value.
        expected = np.count_nonzero(values[real] == 0) / values[real].size
        assert result[name] == pytest.approx(expected), name
        assert result[name] != pytest.approx(np.count_nonzero(values == 0) / values.size), name


def test_time_steps_hidden_by_a_masking_layer_are_not_counted():
    x = centred(5 * 4, 3).reshape(5, 4, 3)
    x[:, 3:] = 0.0  # the last step of every sequence is padding: its ReLU output is all zero
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(keras.layers.Masking(0.0)(inputs)))
    expected = np.count_nonzero(x[:, :3] <= 0) / x[:, :3].size
    assert measure_sparsity(model, x) == {"relu": pytest.approx(expected)}
    # Every step masked: nothing to measure.
    assert np.isnan(measure_sparsity(model, np.zeros_like(x))["relu"])


def test_a_layer_inside_a_subclassed_layer_is_read_and_one_inside_a_wrapper_named_as_out_of_reach():
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.ReLU(name="inner_relu")

        def call(self, inputs):
            return self.inner(inputs - 0.5)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Block(name="block")(inputs))
    x = centred(64, 4)
    # Read by tracing the block's call (tests/test_surgery_sublayers.py has more).
    assert measure_sparsity(model, x, layers=["inner_relu"]) == {
        "inner_relu": pytest.approx(np.count_nonzero(x - 0.5 <= 0) / x.size)
    }
    sequences = keras.Input((3, 4))
    wrapped = keras.layers.TimeDistributed(keras.layers.ReLU(name="wrapped_relu"))(sequences)
    with pytest.raises(
        ValueError, match=r"no layer named 'wrapped_relu' it can read \(layers inside wrappers"
    ):
        measure_sparsity(keras.Model(sequences, wrapped), x[:, None, :], layers=["wrapped_relu"])


def test_an_infinite_dataset_is_refused_before_any_batch_is_read():
    tf = tensorflow_or_skip()
    from keras_adaptive_acts.callbacks import SparsityMonitor

    model = keras.Sequential([keras.Input((3,)), keras.layers.ReLU(name="relu")])
    dataset = tf.data.Dataset.from_tensor_slices(centred(16, 3)).batch(8)
    endless = dataset.repeat()
    assert int(endless.cardinality()) == tf.data.INFINITE_CARDINALITY
    with pytest.raises(ValueError, match=r"must be finite.*dataset.take\(.*Received: data=<.*cardinality -1"):
        measure_sparsity(model, endless)
    with pytest.raises(ValueError, match=r"must be finite.*Received: data=<"):
        SparsityMonitor(endless)
    # A finite sample of it is measured: the same batches as the dataset itself.
    x = np.concatenate(list(dataset.as_numpy_iterator()))
    expected = {"relu": numpy_zero_fraction(np.maximum(x.astype("float64"), 0.0))}
    assert measure_sparsity(model, endless.take(2)) == expected
