"""NoiseAnnealing: schedules against NumPy, a compiled fit, no retracing, layer choice, errors, config."""

import functools
import math
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import JIT_COMPILE, TraceCounter

import keras_adaptive_acts as kaa
from keras_adaptive_acts import NoisyHardSigmoid, NoisyHardTanh
from keras_adaptive_acts.callbacks import NoiseAnnealing

SCHEDULES = ("linear", "exponential", "cosine")


def numpy_schedule(schedule, c_start, c_end, duration, n):
    """Reference values, written differently from the callback's formulas."""
    n = np.asarray(n, "float64")
    if schedule == "linear":
        return np.interp(n, [0.0, duration], [c_start, c_end])  # clamps to c_end past duration
    t = np.minimum(n / duration, 1.0)
    if schedule == "exponential":
        return np.exp((1.0 - t) * np.log(c_start) + t * np.log(c_end))  # log-linear interpolation
    return c_end + (c_start - c_end) * np.cos(np.pi * t / 2.0) ** 2  # (1 + cos(pi t)) / 2 = cos^2(pi t / 2)


def c_of(layer):
    return float(ops.convert_to_numpy(layer.c))


class CProbe(keras.callbacks.Callback):
    """Reads a layer's `c` before every training step, after the callbacks listed before it."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.values = []

    def on_train_batch_begin(self, batch, logs=None):
        model = self.model  # on JAX, reading it puts the trainer's state back into the variables
        assert model is not None
        self.values.append(c_of(self.layer) if hasattr(self.layer, "c") else None)  # None: not built


def data(n, features=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def noisy_mlp(features=4):
    layers = [NoisyHardTanh(seed=1, name="tanh_a"), NoisyHardTanh(seed=2, name="tanh_b")]
    layers.append(NoisyHardSigmoid(seed=3, name="sigmoid"))
    counter = TraceCounter()
    x = inputs = keras.Input((features,))
    for layer in layers:
        x = layer(keras.layers.Dense(8)(x))
    outputs = keras.layers.Dense(1)(counter(x))
    return keras.Model(inputs, outputs), layers, counter


# ----------------------------------------------------------------------------------------------
# Schedules


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("c_start", "c_end", "duration"), [(30.0, 0.5, 7), (0.1, 2.0, 3), (1.0, 1.0, 1)])
def test_values_match_numpy(schedule, c_start, c_end, duration):
    callback = NoiseAnnealing(c_start, c_end, duration, schedule=schedule)
    n = np.arange(3 * duration + 2)
    actual = [callback.value(int(i)) for i in n]
    np.testing.assert_allclose(actual, numpy_schedule(schedule, c_start, c_end, duration, n), rtol=1e-12)
    assert callback.value(0) == c_start and callback.value(duration) == c_end  # exact ends
    assert callback.value(10 * duration) == c_end


def test_paper_annealing_and_cosine_midpoint():
    exponential = NoiseAnnealing(30.0, 0.5, 10, schedule="exponential")
    assert math.isclose(exponential.value(5), math.sqrt(30.0 * 0.5), rel_tol=1e-12)  # geometric mean
    cosine = NoiseAnnealing(4.0, 0.0, 10, schedule="cosine")
    assert math.isclose(cosine.value(5), 2.0, rel_tol=1e-12)
    assert cosine.value(1) > NoiseAnnealing(4.0, 0.0, 10).value(1)  # cosine starts slower than linear


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("unit", ["step", "epoch"])
def test_each_step_of_a_fit_uses_the_schedule_of_its_unit(schedule, unit):
    epochs, steps, duration = 3, 3, 5
    model, (layer, *_), _ = noisy_mlp()
    model.compile(keras.optimizers.SGD(0.01), "mse")
    callback = NoiseAnnealing(3.0, 0.25, duration, schedule=schedule, unit=unit)
    probe = CProbe(layer)
    x, y = data(steps * 4)
    history = model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[callback, probe])

    step = np.arange(epochs * steps)
    n = step if unit == "step" else step // steps
    expected = numpy_schedule(schedule, 3.0, 0.25, duration, n)
    np.testing.assert_allclose(probe.values, expected.astype("float32"), rtol=1e-6)
    last_of_epoch = expected[steps - 1 :: steps]
    np.testing.assert_allclose(history.history["noise_c"], last_of_epoch, rtol=1e-12)
    positions = range(min(int(n[-1]), duration) + 1)
    assert [i for i, _ in callback.history] == list(positions)
    np.testing.assert_allclose(
        [v for _, v in callback.history], numpy_schedule(schedule, 3.0, 0.25, duration, positions)
    )


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="Keras' PyTorch trainer has no steps_per_execution > 1"
)
def test_steps_per_execution_counts_every_step_of_a_short_last_execution():
    model, (layer, *_), _ = noisy_mlp()
    model.compile("sgd", "mse", steps_per_execution=2)
    callback = NoiseAnnealing(10.0, 0.0, 10)
    probe = CProbe(layer)
    history = model.fit(*data(20), batch_size=4, epochs=2, verbose=0, callbacks=[callback, probe])
    # 5 steps per epoch, run as 2 + 2 + 1: c is set before each execution, from its first step.
    assert probe.values == [10.0, 8.0, 6.0, 5.0, 3.0, 1.0]
    assert history.history["noise_c"] == [6.0, 1.0]


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="Keras' PyTorch trainer has no steps_per_execution > 1"
)
def test_steps_per_execution_on_data_of_unknown_size_counts_the_real_steps():
    tf = pytest.importorskip("tensorflow")
    x, y = data(10)

    def batches():  # a generator: the dataset's size is unknown to Keras
        yield from ((x[i : i + 4], y[i : i + 4]) for i in range(0, 10, 4))

    signature = (tf.TensorSpec((None, 4), "float32"), tf.TensorSpec((None, 1), "float32"))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    model, (layer, *_), _ = noisy_mlp()
    model.compile("sgd", "mse", steps_per_execution=2)
    callback = NoiseAnnealing(1.0, 0.0, duration=100)
    probe = CProbe(layer)
    model.fit(dataset, epochs=3, verbose=0, callbacks=[callback, probe])

    # 3 steps an epoch (batches of 4, 4 and 2), run as 2 + 1: executions start at steps 0, 2, 3, 5, 6, 8.
    starts = [0, 2, 3, 5, 6, 8]
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 9
    assert [n for n, _ in callback.history] == starts
    expected = numpy_schedule("linear", 1.0, 0.0, 100, starts)
    np.testing.assert_allclose([v for _, v in callback.history], expected, rtol=1e-12)
    np.testing.assert_allclose(c_of(layer), np.float32(expected[-1]), rtol=1e-6)  # 0.92, the last step's
    # Each execution's first step ran with the schedule's value. The begin of each epoch's third
    # execution, which finds no data, sets the next step's value (seen by the probe after the
    # callback), which the end of the epoch takes back.
    read = numpy_schedule("linear", 1.0, 0.0, 100, [0, 2, 3, 3, 5, 6, 6, 8, 9])
    assert probe.values == list(read.astype("float32"))


class Interrupt(keras.callbacks.Callback):
    """Stops training at the start of an epoch, as a pre-emption would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("pre-empted")


def test_a_run_resumed_by_backup_and_restore_continues_the_step_schedule(tmp_path):
    x, y = data(16)
    duration, steps, epochs = 16, 4, 4  # 4 steps an epoch

    def run(extra_callbacks):
        model, (layer, *_), _ = noisy_mlp()
        model.compile(keras.optimizers.SGD(0.01), "mse")
        callback, probe = NoiseAnnealing(1.0, 0.0, duration=duration), CProbe(layer)
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        history = model.fit(
            x,
            y,
            batch_size=4,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, backup, *extra_callbacks, probe],
        )
        return history.history["noise_c"], probe.values, callback, layer

    uninterrupted_logs, uninterrupted_values, _, _ = run([])
    expected = numpy_schedule("linear", 1.0, 0.0, duration, np.arange(steps * epochs))
    np.testing.assert_allclose(uninterrupted_values, expected.astype("float32"), rtol=1e-6)

    with pytest.raises(RuntimeError, match="pre-empted"):
        run([Interrupt(epoch=2)])  # epochs 0 and 1 done and backed up
    # A new process would build and compile the model again: BackupAndRestore restores the
    # weights, the optimizer (its step counter) and the epoch.
    logs, values, callback, layer = run([])
    np.testing.assert_allclose(values, expected[8:].astype("float32"), rtol=1e-6)
    np.testing.assert_allclose(values, uninterrupted_values[8:], rtol=0)
    assert [n for n, _ in callback.history] == list(range(8, 16))
    np.testing.assert_allclose(logs, uninterrupted_logs[2:], rtol=0)
    np.testing.assert_allclose(logs, expected[[11, 15]], rtol=1e-12)
    np.testing.assert_allclose(c_of(layer), np.float32(expected[-1]), rtol=1e-6)  # 1/16, not 9/16


def test_unit_step_counts_the_optimizer_steps_of_an_initial_epoch_fit():
    model, (layer, *_), _ = noisy_mlp()
    model.compile("sgd", "mse")
    callback = NoiseAnnealing(2.0, 0.0, 8)
    model.fit(*data(8), batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=[callback])
    # A fresh optimizer: the schedule follows the optimizer's steps (as a learning-rate schedule).
    assert [n for n, _ in callback.history] == [0, 1, 2, 3]
    np.testing.assert_allclose(c_of(layer), np.float32(numpy_schedule("linear", 2.0, 0.0, 8, 3)), rtol=1e-6)


def test_initial_epoch_resumes_an_epoch_schedule():
    model, layers, _ = noisy_mlp()
    model.compile("sgd", "mse")
    callback = NoiseAnnealing(2.0, 0.0, 4, unit="epoch")
    history = model.fit(*data(8), epochs=4, initial_epoch=2, verbose=0, callbacks=[callback])
    assert history.history["noise_c"] == [1.0, 0.5]
    assert callback.history == [(2, 1.0), (3, 0.5)]  # no entry for an epoch that did not run
    assert all(c_of(layer) == 0.5 for layer in layers)


# ----------------------------------------------------------------------------------------------
# Compiled training


def test_compiled_fit_anneals_every_noisy_layer_without_retracing():
    model, layers, counter = noisy_mlp()
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=JIT_COMPILE)
    callback = NoiseAnnealing(2.0, 0.1, duration=20, schedule="cosine")
    x, y = data(16)
    before = counter.traces
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[callback])  # 12 steps

    expected = numpy_schedule("cosine", 2.0, 0.1, 20, [3, 7, 11])
    np.testing.assert_allclose(history.history["noise_c"], expected, rtol=1e-12)
    for layer in layers:
        np.testing.assert_allclose(c_of(layer), np.float32(expected[-1]), rtol=1e-6)
    traced = counter.traces - before
    if JIT_COMPILE:  # (an eager step runs the Python body every time)
        assert 1 <= traced <= 2  # traced once (or twice), not once per step as c changed 12 times

    # A second fit continues the schedule from the optimizer's step 12 (as Keras' learning-rate
    # schedules do): c changes 8 more times, the compiled step is reused.
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    continued = numpy_schedule("cosine", 2.0, 0.1, 20, [15, 19])
    np.testing.assert_allclose(history.history["noise_c"], continued, rtol=1e-12)
    assert [n for n, _ in callback.history] == list(range(12, 20))
    if JIT_COMPILE:
        assert counter.traces - before == traced
    assert len({c_of(layer) for layer in layers}) == 1


def test_the_compiled_step_draws_noise_of_the_scheduled_scale():
    # Saturated input x = 3 with p = 1 and a learning rate of 0: the train-mode output is its
    # inference value plus d * sigma * xi, so the MSE to the inference value is sigma^2 * mean(xi^2),
    # sigma = c * (sigmoid(p * delta) - 0.5)^2 with delta = h(3) - 3 = -2.
    layer = NoisyHardTanh(p_initializer="ones", seed=4)
    model = keras.Sequential([keras.Input((64,)), layer])
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=True)
    x = np.full((64, 64), 3.0, "float32")
    y = model.predict(x, verbose=0)  # inference: no noise, independent of c for normal noise
    np.testing.assert_allclose(y, 0.7, rtol=1e-6)  # 1 - (1 - 1.15) * (-2)
    callback = NoiseAnnealing(2.0, 0.0, duration=4, unit="epoch")
    loss = model.fit(x, y, batch_size=64, epochs=5, verbose=0, callbacks=[callback]).history["loss"]

    c = np.array([2.0, 1.5, 1.0, 0.5, 0.0])
    sigma = c * (1.0 / (1.0 + np.exp(2.0)) - 0.5) ** 2
    np.testing.assert_allclose(loss[:4], sigma[:4] ** 2, rtol=0.15)  # 4096 draws per step
    assert loss[0] > 10 * loss[3]
    assert loss[4] < 1e-12  # c_end = 0: no noise at all in the last epoch
    noisy = ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(noisy, y, atol=1e-6)  # and none after training
    layer.c.assign(2.0)
    assert np.std(ops.convert_to_numpy(layer(x, training=True))) > 0.1


# ----------------------------------------------------------------------------------------------
# Which layers


@keras.saving.register_keras_serializable(package="kaa_tests")
class NoisyCell(keras.layers.Layer):
    """A minimal RNN cell holding a noisy layer as an attribute (as a noisy LSTM cell does)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.dense = keras.layers.Dense(units)
        self.gate = NoisyHardSigmoid(seed=5)

    def build(self, input_shape):
        self.dense.build((input_shape[0], input_shape[-1] + self.units))
        self.gate.build((input_shape[0], self.units))

    def call(self, inputs, states, training=None):
        h = self.gate(self.dense(ops.concatenate([inputs, states[0]], axis=-1)), training=training)
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_finds_noisy_layers_in_nested_models_wrappers_and_rnn_cells():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(5), NoisyHardTanh(name="inner")])
    x = inputs = keras.Input((3, 5))
    x = keras.layers.TimeDistributed(inner)(x)
    # unroll: on JAX a cell of one's own with a noisy layer inside `lax.scan` cannot advance its seed
    x = keras.layers.Bidirectional(keras.layers.RNN(NoisyCell(4), unroll=True), name="birnn")(x)
    top = NoisyHardTanh(name="top")
    model = keras.Model(inputs, keras.layers.Dense(1)(top(x)))
    birnn = model.get_layer("birnn")
    expected = [inner.layers[-1], birnn.forward_layer.cell.gate, birnn.backward_layer.cell.gate, top]

    callback = NoiseAnnealing(1.5, 0.5, duration=2)
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3, 5)).astype("float32"), np.zeros((4, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])
    assert {id(layer) for layer in callback.noisy_layers} == {id(layer) for layer in expected}
    assert len(callback.noisy_layers) == 4
    assert [c_of(layer) for layer in expected] == [1.0] * 4  # the second step's value


def test_layers_argument_restricts_the_annealing():
    model, (tanh_a, tanh_b, sigmoid), _ = noisy_mlp()
    model.compile("sgd", "mse")
    callback = NoiseAnnealing(1.0, 0.25, duration=2, unit="epoch", layers=[tanh_a, "sigmoid", tanh_a])
    model.fit(*data(8), epochs=3, verbose=0, callbacks=[callback])
    assert callback.noisy_layers == [tanh_a, sigmoid]
    assert c_of(tanh_a) == 0.25 and c_of(sigmoid) == 0.25
    assert c_of(tanh_b) == 0.5  # NoisyHardTanh's own default, untouched


def test_an_unbuilt_model_is_annealed_from_the_step_after_it_is_built():
    layer = NoisyHardTanh(seed=0)
    model = keras.Sequential([keras.layers.Dense(4), layer])  # no Input
    model.compile("sgd", "mse")
    callback = NoiseAnnealing(1.0, 0.0, duration=3, unit="epoch")
    probe = CProbe(layer)
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 4), "float32")
    fit = functools.partial(model.fit, x, y, batch_size=2, epochs=2, verbose=0, callbacks=[callback, probe])
    if keras.backend.backend() == "tensorflow":  # builds the model in the first step, after on_train_begin
        with pytest.warns(UserWarning, match=r"not built yet.*first training step uses their own `c`"):
            fit()
        # Step 0 builds the layer (with its own c = 0.5); epoch 0's value reaches it before step 1.
        assert probe.values[0] is None
    else:  # JAX and torch build the model before on_train_begin
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="NoiseAnnealing")
            fit()
        assert probe.values[0] == 1.0
    assert probe.values[1:] == [1.0, np.float32(2 / 3), np.float32(2 / 3)]
    assert c_of(layer) == np.float32(2 / 3)


# ----------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c_start": -1.0}, "c_start=-1.0"),
        ({"c_start": float("inf")}, "c_start=inf"),
        ({"c_end": float("nan")}, "c_end=nan"),
        ({"c_end": "0.5"}, "c_end='0.5'"),
        ({"duration": 0}, "duration=0"),
        ({"duration": 2.5}, "duration=2.5"),
        ({"duration": True}, "duration=True"),
        ({"schedule": "cos"}, "schedule='cos'"),
        ({"unit": "batch"}, "unit='batch'"),
        ({"schedule": "exponential", "c_end": 0.0}, "c_end=0.0"),
        ({"schedule": "exponential", "c_start": 0}, "c_start=0"),
        ({"layers": []}, "layers=[]"),
        ({"layers": "tanh_a"}, "layers='tanh_a'"),
        ({"layers": ["tanh_a", 3]}, "layers[1]=3"),
    ],
)
def test_bad_arguments_raise_with_the_received_value(kwargs, message):
    arguments = {"c_start": 1.0, "c_end": 0.5, "duration": 10, **kwargs}
    with pytest.raises(ValueError, match=r"Received: .*") as error:
        NoiseAnnealing(**arguments)
    assert message in str(error.value)


def test_exponential_to_zero_suggests_another_schedule():
    with pytest.raises(ValueError, match=r"linear.*cosine"):
        NoiseAnnealing(1.0, 0.0, 10, schedule="exponential")


def test_layers_that_are_not_noisy_are_refused():
    with pytest.raises(ValueError, match=r"layers\[0\]=<Dense"):
        NoiseAnnealing(1.0, 0.5, 10, layers=[keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="n=-1"):
        NoiseAnnealing(1.0, 0.5, 10).value(-1)


def test_a_model_without_noisy_layers_fails_at_fit_start():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="plain")
    model.compile("sgd", "mse")
    kernel = ops.convert_to_numpy(model.layers[0].kernel)
    with pytest.raises(ValueError, match=r"no noisy layer.*'plain'"):
        model.fit(*data(8), verbose=0, callbacks=[NoiseAnnealing(1.0, 0.5, 10)])
    np.testing.assert_array_equal(ops.convert_to_numpy(model.layers[0].kernel), kernel)  # no step ran


def test_layers_must_belong_to_the_model():
    model, _, _ = noisy_mlp()
    model.compile("sgd", "mse")
    for layers, message in [(["nope"], "no noisy layer named 'nope'"), ([NoisyHardTanh()], "not part of")]:
        with pytest.raises(ValueError, match=message):
            model.fit(*data(8), verbose=0, callbacks=[NoiseAnnealing(1.0, 0.5, 10, layers=layers)])


# ----------------------------------------------------------------------------------------------
# Serialisation


def test_config_round_trip():
    callback = NoiseAnnealing(30, 0.5, 100, schedule="exponential", unit="epoch", layers=["a", "b"])
    config = callback.get_config()
    assert config == {
        "c_start": 30.0,
        "c_end": 0.5,
        "duration": 100,
        "schedule": "exponential",
        "unit": "epoch",
        "layers": ["a", "b"],
    }
    assert NoiseAnnealing.from_config(config).get_config() == config

    serialized = keras.saving.serialize_keras_object(callback)
    assert serialized["registered_name"] == "keras_adaptive_acts>NoiseAnnealing"
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(rebuilt, NoiseAnnealing) and rebuilt.get_config() == config
    assert kaa.get(serialized).get_config() == config
    assert rebuilt.value(50) == callback.value(50)


def test_config_stores_layer_names():
    layer = NoisyHardSigmoid(name="gate")
    config = NoiseAnnealing(1.0, 0.5, 3, layers=[layer]).get_config()
    assert config["layers"] == ["gate"] and config["schedule"] == "linear" and config["unit"] == "step"
