"""ActivationMixing, GammaUplift, SparsityMonitor, CompetitionMonitor: NumPy references, compiled fits,
TensorBoard, layer choice, errors and configs."""

import glob
import os

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import JIT_COMPILE, TraceCounter, tensorflow_or_skip

import keras_adaptive_acts as kaa
from keras_adaptive_acts import CompetitiveReLU, MixedActivation
from keras_adaptive_acts.callbacks import ActivationMixing, CompetitionMonitor, GammaUplift, SparsityMonitor
from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization
from keras_adaptive_acts.measurement import measure_sparsity


def value_of(variable):
    return ops.convert_to_numpy(variable)


def np_relu(x):
    return np.maximum(x, 0.0)


def np_j_squared_relu(x):
    return np_relu(x) + 0.5 * np_relu(x) ** 2


def zero_fraction(a):
    a = np.asarray(a)
    return np.count_nonzero(a == 0) / a.size


class Probe(keras.callbacks.Callback):
    """Reads a variable of a layer before every training step, after the callbacks listed before it."""

    def __init__(self, read):
        super().__init__()
        self.read = read
        self.values = []

    def on_train_batch_begin(self, batch, logs=None):
        if hasattr(self.model, "jax_state_sync"):  # JAX: the trainer holds the values during an epoch
            self.model.jax_state_sync()
        self.values.append(self.read())


# ----------------------------------------------------------------------------------------------
# ActivationMixing


def mixing_model(seed=0):
    counter = TraceCounter()
    mix = MixedActivation("relu", "j_squared_relu", name="mix")
    init = keras.initializers.GlorotNormal
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, kernel_initializer=init(seed), bias_initializer="ones", name="in")(inputs)
    out = keras.layers.Dense(1, kernel_initializer=init(seed + 1), name="out")(counter(mix(hidden)))
    return keras.Model(inputs, out), mix, counter


def numpy_mixing_model(model, x, t):
    w1, b1 = (value_of(v).astype("float64") for v in model.get_layer("in").weights)
    w2, b2 = (value_of(v).astype("float64") for v in model.get_layer("out").weights)
    h = x.astype("float64") @ w1 + b1
    return ((1.0 - t) * np_relu(h) + t * np_j_squared_relu(h)) @ w2 + b2


def test_mixing_t_follows_the_formula_in_a_compiled_fit_and_ends_on_the_end_activation():
    model, mix, counter = mixing_model()
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=JIT_COMPILE)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    mixing = ActivationMixing(duration=7)
    probe = Probe(lambda: float(value_of(mix.t)))
    before = counter.traces
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[mixing, probe])  # 12 steps

    expected = np.minimum(np.arange(12) / 7.0, 1.0)
    np.testing.assert_allclose(probe.values, expected.astype("float32"), rtol=1e-7)
    np.testing.assert_allclose(history.history["mixing_t"], expected[3::4], rtol=1e-12)
    assert probe.values[7:] == [1.0] * 5 and history.history["mixing_t"][-1] == 1.0  # exactly 1
    assert [n for n, _ in mixing.history] == list(range(8))
    if JIT_COMPILE:  # (an eager step runs the Python body every time)
        assert 1 <= counter.traces - before <= 2  # t changed 8 times, the compiled step was not retraced

    # t == 1: the model is the end activation alone (NumPy J-SquaredReLU), compiled predict included.
    assert float(value_of(mix.t)) == 1.0
    predicted = model.predict(x, verbose=0)
    np.testing.assert_allclose(predicted, numpy_mixing_model(model, x, 1.0), rtol=1e-5, atol=1e-6)
    hidden = model.get_layer("in")(x)
    np.testing.assert_allclose(value_of(mix(hidden)), np_j_squared_relu(value_of(hidden)), rtol=1e-6)


def test_the_compiled_train_step_computes_with_the_scheduled_t():
    # A learning rate of 0 and one step per epoch: each epoch's loss is the MSE of the model at t_n.
    model, _, _ = mixing_model(seed=3)
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=True)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    loss = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[ActivationMixing(2)]).history[
        "loss"
    ]
    expected = [np.mean((numpy_mixing_model(model, x, t) - y) ** 2) for t in (0.0, 0.5, 1.0, 1.0)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert abs(expected[0] - expected[2]) > 1e-2  # the three activations give distinguishable losses


def test_mixing_by_epoch_on_chosen_layers():
    inputs = keras.Input((3,))
    mix_a = MixedActivation(name="mix_a")
    mix_b = MixedActivation(t=0.25, name="mix_b")
    model = keras.Model(inputs, mix_b(mix_a(keras.layers.Dense(3)(inputs))))
    model.compile("sgd", "mse")
    mixing = ActivationMixing(4, unit="epoch", layers=["mix_a"])
    x = np.ones((8, 3), "float32")
    history = model.fit(x, x, batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=[mixing])
    assert history.history["mixing_t"] == [0.25, 0.5]  # epochs 1 and 2 of a resumed run
    assert mixing.scheduled_layers == [mix_a]
    assert float(value_of(mix_a.t)) == 0.5 and float(value_of(mix_b.t)) == 0.25


def test_mixing_errors_and_config():
    for kwargs, message in [
        ({"duration": 0}, "duration=0"),
        ({"duration": 2.5}, "duration=2.5"),
        ({"duration": True}, "duration=True"),
        ({"duration": 3, "unit": "batch"}, "unit='batch'"),
        ({"duration": 3, "layers": []}, "layers=[]"),
        ({"duration": 3, "layers": [keras.layers.ReLU()]}, "layers[0]=<ReLU"),
    ]:
        with pytest.raises(ValueError, match="Received: ") as error:
            ActivationMixing(**kwargs)
        assert message in str(error.value)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)], name="plain")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"no MixedActivation layer in the model 'plain'"):
        model.fit(np.ones((2, 2)), np.ones((2, 1)), verbose=0, callbacks=[ActivationMixing(3)])
    with pytest.raises(ValueError, match="`n` must be an integer >= 0"):
        ActivationMixing(3).value(-1)

    mixing = ActivationMixing(5, unit="epoch", layers=[MixedActivation(name="m")])
    config = mixing.get_config()
    assert config == {"duration": 5, "unit": "epoch", "layers": ["m"]}
    serialized = keras.saving.serialize_keras_object(mixing)
    assert serialized["registered_name"] == "keras_adaptive_acts>ActivationMixing"
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config
    assert kaa.get(serialized).get_config() == config


# ----------------------------------------------------------------------------------------------
# GammaUplift


def numpy_uplift(gamma, floor):
    """The spec's rule, written with NumPy's copysign (sign+: +0 and -0 both count as positive)."""
    gamma = np.asarray(gamma, "float64")
    magnitude = np.maximum(np.abs(gamma), floor)
    return np.where(gamma == 0, magnitude, np.copysign(magnitude, gamma))


GAMMA = np.array([-3.0, -0.6, -0.1, -0.0, 0.0, 1e-4, 0.3, 0.8, 2.5], "float32")


def uplift_model(gamma=GAMMA):
    norm = RestrictedLayerNormalization(mode="finetune", name="rln")
    plain = keras.layers.LayerNormalization(name="plain_ln")
    scratch = RestrictedLayerNormalization(mode="scratch", name="scratch_rln")
    model = keras.Sequential([keras.Input((len(gamma),)), norm, plain, scratch, keras.layers.Dense(2)])
    norm.gamma.assign(gamma)
    plain.gamma.assign(np.full(len(gamma), 0.1, "float32"))
    plain.trainable = False  # its gamma changes only if the callback changes it
    return model, norm, plain, scratch


def data(n, features, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def test_uplift_applies_the_rule_after_each_step():
    model, norm, plain, _ = uplift_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")  # no update: only the uplift changes gamma
    uplift = GammaUplift(duration=8)
    probe = Probe(lambda: value_of(norm.gamma).copy())
    history = model.fit(*data(12, 9), batch_size=4, epochs=2, verbose=0, callbacks=[uplift, probe])

    # Before step k (0-based) gamma holds the projection after k steps, with floor k / 8.
    for k, gamma in enumerate(probe.values):
        np.testing.assert_array_equal(gamma, numpy_uplift(GAMMA, k / 8).astype("float32"))
    final = value_of(norm.gamma)
    np.testing.assert_array_equal(final, numpy_uplift(GAMMA, 6 / 8).astype("float32"))
    assert np.all(np.abs(final) >= 0.75) and np.all(np.sign(final[:3]) == -1)
    assert np.all(final[4:] > 0) and final[3] == 0.75  # zeros (even -0.0) go up: sign+(0) = +1
    assert history.history["gamma_floor"] == [3 / 8, 6 / 8]
    assert uplift.history == [(n, n / 8) for n in range(1, 7)]
    assert uplift.uplifted_layers == [norm]
    np.testing.assert_array_equal(value_of(plain.gamma), np.float32(0.1))  # not a finetune RLN: untouched


def test_uplift_during_compiled_training_reaches_one_and_keeps_the_signs():
    model, norm, _, scratch = uplift_model()
    counter = TraceCounter()
    model = keras.Sequential([keras.Input((len(GAMMA),)), *model.layers[:-1], counter, model.layers[-1]])
    model.compile(keras.optimizers.Adam(0.05), "mse", jit_compile=JIT_COMPILE)
    uplift = GammaUplift(duration=5)
    before = counter.traces
    model.fit(*data(16, 9, seed=1), batch_size=4, epochs=2, verbose=0, callbacks=[uplift])  # 8 steps
    gamma = value_of(norm.gamma)
    assert np.all(np.abs(gamma) >= 1.0)  # n = 8 >= duration: the floor is 1
    # Adam moves each entry by about 0.05 a step and the projection keeps |gamma| >= floor >= 0.2
    # from the first step on: the entries larger than a step keep their sign. (A zero takes the
    # sign of its first update, which comes before the first projection.)
    large = np.abs(GAMMA) > 0.05
    np.testing.assert_array_equal(np.sign(gamma[large]), np.sign(GAMMA[large]))
    assert np.all(value_of(scratch.gamma) >= 1.0)  # its own constraint; not the callback's business
    assert uplift.scheduled_layers == [norm]
    if JIT_COMPILE:
        assert 1 <= counter.traces - before <= 2  # 8 assignments, no retracing


def test_uplift_by_epoch_on_chosen_layers_and_resumed():
    model, norm, plain, _ = uplift_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    uplift = GammaUplift(duration=4, unit="epoch", layers=[plain, "rln"])
    history = model.fit(*data(8, 9), batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=[uplift])
    assert history.history["gamma_floor"] == [0.5, 0.75]  # after epochs 1 and 2: n = 2, 3
    np.testing.assert_array_equal(value_of(norm.gamma), numpy_uplift(GAMMA, 0.75).astype("float32"))
    np.testing.assert_array_equal(value_of(plain.gamma), 0.75)  # a plain LayerNormalization, when listed


def test_a_second_fit_keeps_the_floor_the_optimizer_steps_reached():
    model, norm, _, _ = uplift_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    uplift = GammaUplift(duration=4)
    x, y = data(8, 9)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[uplift])  # 6 steps: floor 1 from step 4
    np.testing.assert_array_equal(value_of(norm.gamma), numpy_uplift(GAMMA, 1.0).astype("float32"))

    norm.gamma.assign(GAMMA)  # lowered by hand between the fits
    probe = Probe(lambda: value_of(norm.gamma).copy())
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[uplift, probe])
    # The counter goes on from 6: after steps 7 and 8 the floor is min(n / 4, 1) = 1, not 1/4 and 2/4.
    assert uplift.history == [(7, 1.0)] and history.history["gamma_floor"] == [1.0]
    np.testing.assert_array_equal(probe.values[1], numpy_uplift(GAMMA, 1.0).astype("float32"))
    np.testing.assert_array_equal(value_of(norm.gamma), numpy_uplift(GAMMA, 1.0).astype("float32"))


def test_uplift_errors_and_config():
    for kwargs, message in [
        ({"duration": 0}, "duration=0"),
        ({"duration": 3, "unit": "steps"}, "unit='steps'"),
        ({"duration": 3, "layers": [keras.layers.Dense(2)]}, "layers[0]=<Dense"),
        ({"duration": 3, "layers": "rln"}, "layers='rln'"),
    ]:
        with pytest.raises(ValueError, match="Received: ") as error:
            GammaUplift(**kwargs)
        assert message in str(error.value)
    x, y = data(4, 4)
    scratch_only = keras.Sequential(
        [keras.Input((4,)), RestrictedLayerNormalization(), keras.layers.Dense(2)]
    )
    scratch_only.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no RestrictedLayerNormalization in mode 'finetune'"):
        scratch_only.fit(x, y, verbose=0, callbacks=[GammaUplift(3)])
    no_scale = keras.layers.LayerNormalization(scale=False, name="no_scale")
    model = keras.Sequential([keras.Input((4,)), no_scale, keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"\['no_scale'\] have no gamma"):
        model.fit(x, y, verbose=0, callbacks=[GammaUplift(3, layers=[no_scale])])
    with pytest.raises(ValueError, match="no LayerNormalization layer named 'nope'"):
        model.fit(x, y, verbose=0, callbacks=[GammaUplift(3, layers=["nope"])])

    config = GammaUplift(10, unit="epoch", layers=["a"]).get_config()
    assert config == {"duration": 10, "unit": "epoch", "layers": ["a"]}
    rebuilt = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(GammaUplift(**config))
    )
    assert isinstance(rebuilt, GammaUplift) and rebuilt.get_config() == config
    assert [GammaUplift(4).value(n) for n in (0, 1, 4, 9)] == [0.0, 0.25, 1.0, 1.0]


# ----------------------------------------------------------------------------------------------
# SparsityMonitor


def dropout_model():
    inputs = keras.Input((16,))
    x = keras.layers.Dense(32, activation="relu", name="dense_relu")(inputs)
    x = keras.layers.Dropout(0.5, seed=7, name="dropout")(x)
    x = keras.layers.Activation("relu", name="act")(x)
    x = keras.layers.Dense(16, name="dense")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x))


def sample_and_targets(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(64, 16)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")


def test_sparsity_monitor_logs_inference_and_training_fractions():
    model = dropout_model()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x, y = sample_and_targets()
    sample = x[:40]
    monitor = SparsityMonitor(sample, batch_size=40)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[monitor]).history

    layers = ["dense_relu", "act", "relu"]
    keys = [f"zero_fraction{mode}/{name}" for name in layers for mode in ("", "_train")]
    assert sorted(k for k in history if k.startswith("zero_fraction")) == sorted(keys)
    assert all(len(history[key]) == 3 for key in keys)
    assert [epoch for epoch, _ in monitor.history] == [0, 1, 2]

    # The last measurement used the final weights: recompute it layer by layer, in NumPy.
    dense_relu = value_of(model.get_layer("dense_relu")(sample))
    bn = model.get_layer("bn")
    z = value_of(model.get_layer("dense")(dense_relu)).astype("float64")
    gamma, beta, mean, var = (value_of(v).astype("float64") for v in bn.weights)
    normalised = gamma * (z - mean) / np.sqrt(var + bn.epsilon) + beta
    expected = {"dense_relu": zero_fraction(dense_relu), "act": zero_fraction(dense_relu)}
    expected["relu"] = zero_fraction(np_relu(normalised))
    for name in layers:
        np.testing.assert_allclose(history[f"zero_fraction/{name}"][-1], expected[name], atol=1e-3)

    # Training mode: no randomness before dense_relu; dropout zeros about half of what is left.
    assert history["zero_fraction_train/dense_relu"] == history["zero_fraction/dense_relu"]
    for inference, training in zip(
        history["zero_fraction/act"], history["zero_fraction_train/act"], strict=True
    ):
        assert abs(training - (inference + (1.0 - inference) * 0.5)) < 0.04
    # BatchNormalization on the batch's statistics centres each unit: close to half zeros.
    assert all(abs(value - 0.5) < 0.1 for value in history["zero_fraction_train/relu"])


def test_monitoring_does_not_change_training():
    x, y = sample_and_targets(seed=1)
    results = []
    for monitored in (True, False):
        keras.utils.set_random_seed(5)
        model = dropout_model()
        model.compile(keras.optimizers.SGD(0.05), "mse")
        callbacks = [SparsityMonitor(x[:32])] if monitored else []
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
        results.append([value_of(v) for v in model.variables])
    for with_monitor, without in zip(*results, strict=True):
        np.testing.assert_array_equal(with_monitor, without)  # BN statistics and dropout seeds included


def test_every_and_chosen_layers():
    tf = tensorflow_or_skip()
    model = dropout_model()
    model.compile("sgd", "mse")
    x, y = sample_and_targets()
    monitor = SparsityMonitor(tf.data.Dataset.from_tensor_slices(x[:20]).batch(8), layers=["act"], every=2)
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[monitor]).history
    assert [epoch for epoch, _ in monitor.history] == [1, 3]  # as fit's validation_freq
    # One entry per epoch, NaN on the epochs not measured.
    measured = [values["zero_fraction/act"] for _, values in monitor.history]
    assert np.isnan(history["zero_fraction/act"][0::2]).all() and "zero_fraction/relu" not in history
    assert history["zero_fraction/act"][1::2] == measured
    assert monitor.monitored_layers == [model.get_layer("act")]
    assert monitor.measure()["zero_fraction/act"] == measure_sparsity(model, x[:20], layers=["act"])["act"]


def test_every_epoch_has_the_same_keys_so_csv_logger_and_pandas_line_up(tmp_path):
    pandas = pytest.importorskip("pandas")
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(
        4, kernel_initializer="glorot_uniform", bias_initializer="ones", name="dense"
    )(inputs)
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(hidden))
    model.compile(keras.optimizers.SGD(0.0), "mse")  # no update: the fraction is the reference's
    x = np.random.default_rng(3).normal(size=(16, 3)).astype("float32")
    kernel, bias = (value_of(weight).astype("float64") for weight in model.get_layer("dense").weights)
    expected = zero_fraction(np_relu(x.astype("float64") @ kernel + bias))
    path = tmp_path / "log.csv"
    callbacks = [SparsityMonitor(x, every=2), keras.callbacks.CSVLogger(str(path))]
    history = model.fit(x, x @ np.ones((3, 4), "float32"), epochs=4, verbose=0, callbacks=callbacks).history

    frame = pandas.DataFrame(history)  # ragged lists would raise here
    assert len(frame) == 4
    for key in ("zero_fraction/relu", "zero_fraction_train/relu"):
        assert np.isnan(frame[key][[0, 2]]).all()
        np.testing.assert_allclose(frame[key][[1, 3]], expected, rtol=1e-12)
    written = pandas.read_csv(path)
    assert list(written["epoch"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(
        written["zero_fraction/relu"], [np.nan, expected, np.nan, expected], rtol=1e-12
    )


def test_competition_monitor_writes_nan_on_the_epochs_it_does_not_measure():
    model, data_x, data_y = small_competitive_model()
    monitor = CompetitionMonitor(data_x, every=3)
    history = model.fit(data_x, data_y, epochs=3, verbose=0, callbacks=[monitor]).history
    keys = [f"competition/carelu/{name}" for name in ("alpha", "beta", "p_mean", "s_mean")]
    assert sorted(key for key in history if key != "loss") == sorted(keys)
    for key in keys:
        assert len(history[key]) == 3 and np.isnan(history[key][:2]).all()
        assert history[key][2] == monitor.history[0][1][key]


def test_a_monitor_with_a_dataset_sample_is_deep_copied_sharing_the_sample():
    import copy

    tf = tensorflow_or_skip()
    x, _ = sample_and_targets()
    sample = tf.data.Dataset.from_tensor_slices(x[:20]).batch(8)
    monitor = SparsityMonitor(sample, layers=["act"], every=2, derivative=True)
    copied = copy.deepcopy(monitor)
    assert copied is not monitor and copied.data is sample  # shared: a dataset cannot be copied
    assert copied.layers == ["act"] and copied.layers is not monitor.layers
    assert (copied.every, copied.derivative) == (2, True)
    model = dropout_model()
    copied.set_model(model)
    measured = copied.measure()
    assert measured["zero_fraction/act"] == measure_sparsity(model, x[:20], layers=["act"])["act"]
    assert monitor.model is None  # the original is untouched


def test_a_monitor_with_a_dataset_sample_runs_in_a_keras_tuner_search(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    tf = tensorflow_or_skip()
    x, y = sample_and_targets()

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(hp.Choice("units", [4, 8]), name="hidden"),
                keras.layers.ReLU(name="relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile("sgd", "mse")
        return model

    tuner = keras_tuner.RandomSearch(
        build, objective="loss", max_trials=2, seed=1, directory=str(tmp_path), project_name="monitor"
    )
    monitor = SparsityMonitor(tf.data.Dataset.from_tensor_slices(x[:16]).batch(8))
    tuner.search(x, y, epochs=1, verbose=0, callbacks=[monitor])
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(trial.status == "COMPLETED" for trial in trials)


def scalars(log_dir):
    """{tag: [values]} of the scalars in every event file under `log_dir`."""
    tf = tensorflow_or_skip()  # TensorBoard event files are read with TensorFlow
    found = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":
                    continue  # the model's config, written as text
                found.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return found


class LogRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def small_competitive_model():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    x = CompetitiveReLU(name="carelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(16, 8)).astype("float32"), np.zeros((16, 1), "float32")


def test_only_callbacks_after_the_monitors_see_their_values():
    model, data_x, data_y = small_competitive_model()
    before, after = LogRecorder(), LogRecorder()
    callbacks = [before, SparsityMonitor(data_x), CompetitionMonitor(data_x), after]
    history = model.fit(data_x, data_y, epochs=2, verbose=0, callbacks=callbacks).history
    keys = [key for key in history if key != "loss"]
    assert len(keys) == 2 * 2 + 4  # two layers in two modes; four competition statistics
    for epoch, logs in enumerate(after.logs):
        assert {key: logs[key] for key in keys} == {key: history[key][epoch] for key in keys}
    assert all(set(logs) == {"loss"} for logs in before.logs)


def test_tensorboard_after_the_monitors_receives_their_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="keras.callbacks.TensorBoard needs the tensorboard package")
    tensorflow_or_skip()  # so does Keras' TensorBoard callback
    model, data_x, data_y = small_competitive_model()
    after, before = str(tmp_path / "after"), str(tmp_path / "before")
    callbacks = [
        keras.callbacks.TensorBoard(before),
        SparsityMonitor(data_x),
        CompetitionMonitor(data_x),
        keras.callbacks.TensorBoard(after),
    ]
    history = model.fit(data_x, data_y, epochs=2, verbose=0, callbacks=callbacks).history

    written = scalars(after)
    for key in ("zero_fraction/hidden", "zero_fraction_train/carelu", "competition/carelu/p_mean"):
        np.testing.assert_allclose(written[f"epoch_{key}"], history[key], rtol=1e-6)
    assert "epoch_loss" in scalars(before)
    assert not any("zero_fraction" in tag or "competition" in tag for tag in scalars(before))


def test_sparsity_monitor_errors():
    tf = tensorflow_or_skip()
    x = np.ones((4, 16), "float32")
    for kwargs, message in [
        ({"every": 0}, "every=0"),
        ({"every": 1.5}, "every=1.5"),
        ({"layers": []}, "layers=[]"),
        ({"layers": [3]}, "layers[0]=3"),
        ({"batch_size": -1}, "batch_size=-1"),
    ]:
        with pytest.raises(ValueError, match="Received: ") as error:
            SparsityMonitor(x, **kwargs)
        assert message in str(error.value)
    for empty in (np.zeros((0, 16), "float32"), iter([]), tf.data.Dataset.from_tensor_slices(x).take(0)):
        with pytest.raises(ValueError, match="at least one"):
            SparsityMonitor(empty)

    model = dropout_model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.fit(x, np.ones((4, 1)), verbose=0, callbacks=[SparsityMonitor(x, layers=["nope"])])
    with pytest.raises(NotImplementedError, match="not serialisable"):
        SparsityMonitor(x).get_config()
    with pytest.raises(ValueError, match="not attached to a model"):
        SparsityMonitor(x).measure()


# ----------------------------------------------------------------------------------------------
# CompetitionMonitor


def numpy_share(z, competition, eps, axes):
    z = z.astype("float64")
    if competition == "energy":
        share = np.sum(np_relu(z) ** 2, axis=axes) / (np.sum(z**2, axis=axes) + eps)
    elif competition == "l1":
        share = np.sum(np_relu(z), axis=axes) / (np.sum(np.abs(z), axis=axes) + eps)
    else:
        share = np.mean(z > 0, axis=axes)
    return share


def test_competition_monitor_matches_numpy_on_the_layer_inputs():
    inputs = keras.Input((6, 4))
    pre = keras.layers.Dense(
        4, kernel_initializer="identity", bias_initializer=keras.initializers.Constant(3.0), name="pre"
    )(inputs)
    bn = keras.layers.BatchNormalization(momentum=0.0, name="bn")(pre)
    plain = CompetitiveReLU(init="competition", name="plain")(bn)
    aware = CompetitiveReLU(competition="l1", axis=-1, scale_bound=3.0, name="aware")([bn, pre])
    x = keras.layers.Flatten()(keras.layers.Concatenate()([plain, aware]))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    rng = np.random.default_rng(0)
    data_x, data_y = rng.normal(size=(48, 6, 4)).astype("float32"), rng.normal(size=(48, 1)).astype("float32")
    monitor = CompetitionMonitor(data_x[:20], batch_size=8)
    history = model.fit(data_x, data_y, batch_size=48, epochs=3, verbose=0, callbacks=[monitor]).history
    assert sorted(k for k in history if k.startswith("competition/")) == sorted(
        f"competition/{name}/{stat}"
        for name in ("plain", "aware")
        for stat in ("alpha", "beta", "p_mean", "s_mean")
    )

    sample = data_x[:20]
    z_pre = value_of(model.get_layer("pre")(sample))
    z_bn = value_of(model.get_layer("bn")(z_pre, training=False))
    for name, measured_on, competition, axes, scale_bound in [
        ("plain", z_bn, "energy", (1, 2), 2.0),
        ("aware", z_pre, "l1", (2,), 3.0),  # two inputs: p is measured on the source
    ]:
        layer = model.get_layer(name)
        alpha, beta = float(value_of(layer.alpha)), float(value_of(layer.beta))
        p = numpy_share(measured_on, competition, 1e-6, axes)
        s = scale_bound * np.tanh(alpha * p + beta)
        prefix = f"competition/{name}/"
        assert history[prefix + "alpha"][-1] == alpha and history[prefix + "beta"][-1] == beta
        np.testing.assert_allclose(history[prefix + "p_mean"][-1], p.mean(), rtol=1e-5)
        np.testing.assert_allclose(history[prefix + "s_mean"][-1], s.mean(), rtol=1e-5)
    assert history["competition/plain/alpha"][0] != history["competition/plain/alpha"][-1]  # it trains
    # After BatchNorm the competition is degenerate (p about 0.5); before it, positives win.
    assert abs(history["competition/plain/p_mean"][-1] - 0.5) < 0.15
    assert history["competition/aware/p_mean"][-1] > 0.9


def test_competition_monitor_reads_every_call_of_a_shared_layer():
    shared = CompetitiveReLU(scale_bound=2.0, name="shared")
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Add()([shared(inputs), shared(inputs + 1.0)]))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(3).normal(size=(12, 5)).astype("float32")
    history = model.fit(x, x, verbose=0, callbacks=[CompetitionMonitor(x, batch_size=5)]).history
    alpha, beta = float(value_of(shared.alpha)), float(value_of(shared.beta))
    p = np.concatenate([numpy_share(z, "energy", 1e-6, (1,)) for z in (x, x + 1.0)])
    np.testing.assert_allclose(history["competition/shared/p_mean"][-1], p.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        history["competition/shared/s_mean"][-1], 2.0 * np.tanh(alpha * p + beta).mean(), rtol=1e-5
    )


def test_sparsity_monitor_leaves_masked_time_steps_out():
    x = np.random.default_rng(4).normal(size=(6, 5, 3)).astype("float32")
    x[:, 3:] = 0.0  # two padded steps per sequence
    inputs = keras.Input((5, 3))
    hidden = keras.layers.ReLU(name="relu")(keras.layers.Masking(0.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(hidden)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    history = model.fit(x, np.zeros((6, 1)), verbose=0, callbacks=[SparsityMonitor(x)]).history
    expected = np.count_nonzero(x[:, :3] <= 0) / x[:, :3].size
    np.testing.assert_allclose(history["zero_fraction/relu"], [expected])
    np.testing.assert_allclose(history["zero_fraction_train/relu"], [expected])


def test_competition_monitor_errors():
    x = np.ones((4, 3), "float32")
    with pytest.raises(ValueError, match=r"layers\[0\]=<ReLU"):
        CompetitionMonitor(x, layers=[keras.layers.ReLU()])
    with pytest.raises(ValueError, match="every=0"):
        CompetitionMonitor(x, every=0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="dense"), keras.layers.ReLU()])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="found no CompetitiveReLU layer"):
        model.fit(x, x, verbose=0, callbacks=[CompetitionMonitor(x)])
    with pytest.raises(ValueError, match="'dense' is a Dense, not a CompetitiveReLU layer"):
        model.fit(x, x, verbose=0, callbacks=[CompetitionMonitor(x, layers=["dense"])])


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.act = CompetitiveReLU()

    def call(self, inputs):
        return self.act(self.dense(inputs))


def test_monitors_refuse_a_subclassed_model_at_fit_start():
    model = Subclassed()
    model.compile("sgd", "mse")
    x = np.ones((4, 3), "float32")
    model(x)
    for monitor in (SparsityMonitor(x), CompetitionMonitor(x)):
        with pytest.raises(ValueError, match="subclassed model"):
            model.fit(x, x, verbose=0, callbacks=[monitor])
