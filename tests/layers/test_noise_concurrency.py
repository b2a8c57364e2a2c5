"""Calls running at the same time never share noise: threads calling one `tf.function` at once.

TensorFlow runs the calls of a `tf.function` from several Python threads concurrently (as TF
Serving does with requests), all reading and advancing the same noise-stream variables. Every call
must draw its own noise, however the calls interleave.

Keras' own seeded dropout is not held up as the reference here: its `SeedGenerator.next` reads the
seed state and then assigns the next one in two steps, so two concurrent calls can occasionally
draw the same mask (it happened once in CI, Keras 3.10 on TensorFlow 2.19, and not in the runs
before). The noise streams here advance with one atomic op (`RngReadAndSkip`), so every interleaving
must give distinct noise, and the tests below ask for exactly that.
"""

from __future__ import annotations

import itertools
import threading

import keras
import numpy as np
import pytest

import keras_adaptive_acts as kaa

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="concurrent calls of one tf.function are TensorFlow's; JAX and PyTorch calls take no shared graph",
)

THREADS, CALLS = 4, 8


def outputs_of_concurrent_calls(model: keras.Model, x: np.ndarray, training: bool = True) -> list[np.ndarray]:
    """THREADS threads, each calling one tf.function of `model` CALLS times; every output."""
    import tensorflow as tf

    return outputs_of_concurrent_runs(tf.function(lambda inputs: model(inputs, training=training)), x)


def outputs_of_concurrent_runs(function, x: np.ndarray) -> list[np.ndarray]:
    """THREADS threads, each calling `function(x)` CALLS times once they all started; every output."""
    function(x)  # traced once, before the threads start
    outputs: list[np.ndarray] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work():
        start.wait()
        for _ in range(CALLS):
            value = np.asarray(function(x))
            with lock:
                outputs.append(value)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == THREADS * CALLS
    return outputs


def repeats(outputs: list[np.ndarray]) -> int:
    """How many pairs of calls gave exactly the same output (the same noise on the same input)."""
    return sum(np.array_equal(a, b) for a, b in itertools.combinations(outputs, 2))


def sequence_model(layer: keras.layers.Layer) -> keras.Model:
    return keras.Sequential([keras.Input((6, 4)), layer])


SEQUENCE = np.random.default_rng(0).normal(size=(32, 6, 4)).astype("float32")
FLAT = np.random.default_rng(1).normal(size=(32, 8)).astype("float32") * 3.0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_noisy_cells_draw_fresh_noise_in_every_concurrent_call(cell):
    cell_class = {"gru": kaa.NoisyGRUCell, "lstm": kaa.NoisyLSTMCell}[cell]
    model = sequence_model(keras.layers.RNN(cell_class(8, seed=1)))
    for _ in range(3):  # a few rounds: the interleaving differs from run to run
        assert repeats(outputs_of_concurrent_calls(model, SEQUENCE)) == 0


@pytest.mark.parametrize(
    "layer",
    [
        lambda: kaa.NoisyHardTanh(seed=1),
        lambda: kaa.NoisyHardSigmoid(seed=1, noise="input"),
        lambda: kaa.RReLU(seed=1),
    ],
    ids=["noisy_hard_tanh", "noisy_hard_sigmoid", "rrelu"],
)
def test_noisy_layers_draw_fresh_noise_in_every_concurrent_call(layer):
    model = keras.Sequential([keras.Input((8,)), layer()])
    for _ in range(3):
        assert repeats(outputs_of_concurrent_calls(model, FLAT)) == 0


def test_monte_carlo_inference_draws_fresh_noise_in_every_concurrent_call():
    # The serving case: concurrent requests to a model sampled at inference.
    model = sequence_model(keras.layers.RNN(kaa.NoisyGRUCell(8, seed=1, noise_at_inference=True)))
    assert repeats(outputs_of_concurrent_calls(model, SEQUENCE, training=False)) == 0


def test_a_served_monte_carlo_signature_draws_fresh_noise_for_every_concurrent_request(tmp_path):
    # The SavedModel as TF Serving runs it: its `monte_carlo` signature called from threads.
    import tensorflow as tf

    from keras_adaptive_acts.export import MONTE_CARLO_SIGNATURE, export_for_serving

    inputs = keras.Input((6, 4), name="sequence")
    model = keras.Model(inputs, keras.layers.RNN(kaa.NoisyLSTMCell(8, seed=1))(inputs))
    loaded = tf.saved_model.load(str(export_for_serving(model, tmp_path / "model" / "1", monte_carlo=True)))
    serve = loaded.signatures[MONTE_CARLO_SIGNATURE]
    outputs = outputs_of_concurrent_runs(lambda x: next(iter(serve(sequence=x).values())).numpy(), SEQUENCE)
    assert repeats(outputs) == 0
