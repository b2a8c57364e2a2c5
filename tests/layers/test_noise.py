"""The noise streams and the one owner of the inference-noise mode (`keras_adaptive_acts.layers.noise`)."""

import json
import threading
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import keras_adaptive_acts as kaa
from keras_adaptive_acts.layers import noise
from keras_adaptive_acts.model_graph import all_layers

DATA = Path(__file__).resolve().parents[1] / "data"
SATURATED = -3.0 * np.ones((2, 5), "float32")  # RReLU's slope shows in every entry


def as_numpy(tensor):
    return np.asarray(ops.convert_to_numpy(tensor))


def seed_pair(layer):
    """A layer's stream position as `[seed, draws]`, read from its weight (not through the package).

    TensorFlow keeps it as Philox's `[256 * draws, 0, seed]`; the other backends as Keras'
    SeedGenerator does, `[seed, draws]`.
    """
    value = as_numpy(layer.noise_stream.position).astype("int64")
    if keras.backend.backend() == "tensorflow":
        assert value.shape == (3,) and value[0] % 256 == 0 and value[1] == 0, value
        return [int(value[2]), int(value[0] // 256)]
    return value.tolist()


# ----------------------------------------------------------------------------------------------
# The stream


def test_the_stream_is_keras_own_and_its_position_is_a_weight_of_the_layer():
    layer = kaa.RReLU(seed=11)
    position = layer.noise_stream.position
    assert position.name == "noise_stream_position" and not position.trainable
    assert any(weight is position for weight in layer.non_trainable_weights)
    assert seed_pair(layer) == [11, 0]
    reference = keras.random.SeedGenerator(11)
    for draw in range(3):
        got = noise.normal((3, 4), "float32", layer.noise_stream)
        expected = keras.random.normal((3, 4), seed=reference)
        np.testing.assert_array_equal(as_numpy(got), as_numpy(expected))
        assert seed_pair(layer) == [11, draw + 1]


def test_next_returns_the_seed_it_read_and_advances_past_it():
    layer = kaa.NoisyHardTanh(seed=4)
    assert as_numpy(layer.noise_stream.next()).tolist() == [4, 0]
    assert as_numpy(layer.noise_stream.next()).tolist() == [4, 1]
    assert seed_pair(layer) == [4, 2]
    assert layer.noise_stream.pair().tolist() == [4, 2]
    layer.noise_stream.set_pair([9, 5])
    assert seed_pair(layer) == [9, 5]
    with pytest.raises(ValueError, match=r"a pair \[seed, draws\]"):
        layer.noise_stream.set_pair([1, 2, 3])


def test_an_unseeded_stream_follows_keras_global_seed():
    keras.utils.set_random_seed(123)
    first = seed_pair(kaa.RReLU())
    keras.utils.set_random_seed(123)
    second = seed_pair(kaa.RReLU())
    assert first == second and first[0] != 0 and first[1] == 0


def test_the_position_survives_a_keras_file_and_training_continues_the_stream(tmp_path):
    model = keras.Sequential([keras.Input((5,)), kaa.RReLU(seed=3)])
    for _ in range(4):
        model(SATURATED, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert seed_pair(loaded.layers[-1]) == [3, 4]
    np.testing.assert_array_equal(
        as_numpy(loaded(SATURATED, training=True)), as_numpy(model(SATURATED, training=True))
    )


def test_files_hold_the_position_as_seed_and_draws_on_every_backend(tmp_path):
    # Read with h5py, not Keras: the file is the same whatever backend wrote it, so it moves between them.
    import h5py

    layer = kaa.NoisyHardTanh(seed=6)
    model = keras.Sequential([keras.Input((5,)), layer])
    for _ in range(3):
        model(SATURATED, training=True)
    model.save_weights(tmp_path / "model.weights.h5")
    with h5py.File(tmp_path / "model.weights.h5", "r") as file:
        stored = []
        file.visititems(
            lambda name, item: (
                stored.append(item[()].tolist())
                if isinstance(item, h5py.Dataset) and "int" in str(item.dtype)
                else None
            )
        )
    assert stored == [[6, 3]]
    copy = keras.Sequential([keras.Input((5,)), kaa.NoisyHardTanh(seed=0)])
    copy.load_weights(tmp_path / "model.weights.h5")
    assert seed_pair(copy.layers[-1]) == [6, 3]
    np.testing.assert_array_equal(
        as_numpy(copy(SATURATED, training=True)), as_numpy(model(SATURATED, training=True))
    )


def keras_version_that_wrote(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))["keras_version"]


def version_tuple(version):
    return tuple(int(part) for part in version.split(".")[:2])


LEGACY_FILE = DATA / "noisy_layers_before_noise_stream.keras"


@pytest.mark.skipif(
    version_tuple(keras.__version__) < version_tuple(keras_version_that_wrote(LEGACY_FILE)),
    reason=(
        f"the file was written by Keras {keras_version_that_wrote(LEGACY_FILE)} (the package's code of the "
        f"time could not save noisy layers on older Keras), and Keras {keras.__version__} is older: Keras "
        "only promises to load files from older versions"
    ),
)
def test_a_file_written_before_the_position_was_a_weight_loads_with_a_warning():
    # Written by this package before the change (the position was saved in a separate entry, by a
    # private Keras saving class): every weight loads, and the streams restart from their seeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(LEGACY_FILE, safe_mode=True)
    messages = [str(warning.message) for warning in caught if "noise-stream position" in str(warning.message)]
    noisy = [layer for layer in all_layers(model) if hasattr(layer, "noise_stream")]
    assert len(noisy) == 5  # RReLU, NoisyHardTanh, and the GRU cell's three units
    assert len(messages) == len(noisy), messages
    inputs = np.load(DATA / "noisy_layers_before_noise_stream_input.npy")
    expected = np.load(DATA / "noisy_layers_before_noise_stream_expectation.npy")
    np.testing.assert_allclose(as_numpy(model(inputs, training=False)), expected, rtol=1e-6, atol=1e-6)
    seeds = sorted(seed_pair(layer)[0] for layer in noisy)
    assert seeds == [1, 2, 6, 7, 8]  # each stream at its seed again (the cell's units: seed + 1, 2, 3)
    assert all(seed_pair(layer)[1] == 0 for layer in noisy)


# ----------------------------------------------------------------------------------------------
# The mode


def rrelu_expectation(x, lower=1.0 / 8.0, upper=1.0 / 3.0):
    return np.where(x >= 0, x, x * (lower + upper) / 2.0)


def test_inference_noise_samples_a_layer_built_for_the_expectation():
    layer = kaa.RReLU(seed=0)
    expected = rrelu_expectation(SATURATED.astype("float64"))
    np.testing.assert_allclose(as_numpy(layer(SATURATED)), expected, rtol=1e-6)
    with kaa.inference_noise(True):
        first, second = as_numpy(layer(SATURATED)), as_numpy(layer(SATURATED))
    assert not np.allclose(first, expected) and not np.array_equal(first, second)
    slopes = first / SATURATED
    assert np.all((slopes >= 1.0 / 8.0) & (slopes <= 1.0 / 3.0))
    np.testing.assert_allclose(as_numpy(layer(SATURATED)), expected, rtol=1e-6)  # the mode ended


def test_inference_noise_false_gives_the_expectation_of_a_monte_carlo_layer():
    layer = kaa.RReLU(seed=0, noise_at_inference=True)
    assert not np.allclose(as_numpy(layer(SATURATED)), rrelu_expectation(SATURATED))
    with kaa.inference_noise(False):
        np.testing.assert_allclose(as_numpy(layer(SATURATED)), rrelu_expectation(SATURATED), rtol=1e-6)
        assert not np.allclose(as_numpy(layer(SATURATED, training=True)), rrelu_expectation(SATURATED))


def test_the_mode_reaches_the_units_of_a_noisy_cell_at_every_step():
    cell = kaa.NoisyGRUCell(4, seed=2, gate_c=1.0, activation_c=1.0)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.random.default_rng(0).normal(size=(3, 6, 2)).astype("float32") * 4.0
    expectation = as_numpy(rnn(x))
    np.testing.assert_array_equal(as_numpy(rnn(x)), expectation)
    with kaa.inference_noise(True):
        first, second = as_numpy(rnn(x)), as_numpy(rnn(x))
    assert not np.array_equal(first, second)
    # Noise at every step, not only at the first (the per-step keys, as in training).
    assert all(not np.allclose(first[:, step], expectation[:, step]) for step in range(6))
    np.testing.assert_array_equal(as_numpy(rnn(x)), expectation)


def test_the_mode_restores_on_exit_nests_and_stays_in_its_thread():
    layer = kaa.RReLU(seed=5)
    expected = rrelu_expectation(SATURATED)
    seen_in_other_thread = []
    with pytest.raises(RuntimeError), kaa.inference_noise(True):
        raise RuntimeError("inside")
    np.testing.assert_allclose(as_numpy(layer(SATURATED)), expected, rtol=1e-6)
    with kaa.inference_noise(True):
        with kaa.inference_noise(False):
            np.testing.assert_allclose(as_numpy(layer(SATURATED)), expected, rtol=1e-6)
        assert not np.allclose(as_numpy(layer(SATURATED)), expected)
        thread = threading.Thread(target=lambda: seen_in_other_thread.append(noise.draws_noise(False, False)))
        thread.start()
        thread.join()
    assert seen_in_other_thread == [False]


def test_noise_at_inference_has_one_owner_and_is_read_only():
    layer = kaa.NoisyHardTanh(noise_at_inference=True)
    with pytest.raises(AttributeError):
        layer.noise_at_inference = False
    cell = kaa.NoisyLSTMCell(3, noise_at_inference=True)
    assert all(unit.noise_at_inference for unit in cell.noisy_units)
    assert cell.noise_at_inference and cell.get_config()["noise_at_inference"] is True
    with pytest.raises(AttributeError):
        cell.noise_at_inference = False
    assert "noise_at_inference" not in vars(cell)  # the cell keeps no copy of its units' setting


def test_stateless_call_draws_what_a_call_would_and_returns_the_advanced_position():
    # Keras' functional API: the variables' values go in and come out; the layer's own are untouched.
    layer = kaa.RReLU(seed=3)
    layer.build((None, 5))
    trainable = [as_numpy(v) for v in layer.trainable_variables]
    non_trainable = [as_numpy(v) for v in layer.non_trainable_variables]
    output, (position,) = layer.stateless_call(trainable, non_trainable, SATURATED, training=True)
    assert seed_pair(layer) == [3, 0]
    np.testing.assert_array_equal(as_numpy(output), as_numpy(layer(SATURATED, training=True)))
    assert seed_pair(layer) == [3, 1]
    np.testing.assert_array_equal(as_numpy(position), as_numpy(layer.noise_stream.position))


def test_a_compiled_call_draws_what_an_eager_call_draws():
    """Each draw uses the seed read before the stream advances, in a compiled function too (torch.compile
    once made the copy of the position an alias of it, and every compiled draw took the next seed)."""
    backend = keras.backend.backend()
    if backend == "jax":
        pytest.skip("JAX compiles stateless functions: the stateless_call test above covers it")
    eager, compiled_layer = kaa.RReLU(seed=1), kaa.RReLU(seed=1)
    if backend == "torch":
        import torch

        compiled = torch.compile(lambda values: compiled_layer(values, training=True))
    else:
        import tensorflow as tf

        # A graph, not XLA: XLA's Philox kernel gives other values for the same seed (by design).
        compiled = tf.function(lambda values: compiled_layer(values, training=True))
    x = ops.convert_to_tensor(SATURATED)
    for draw in range(3):
        np.testing.assert_array_equal(
            as_numpy(compiled(x)), as_numpy(eager(x, training=True)), f"draw {draw}"
        )
    assert seed_pair(compiled_layer) == [1, 3]
