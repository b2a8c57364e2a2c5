"""Activity regularizers: the documented scale whatever the Keras version, serialisation, bad input."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import assert_keras_file_round_trip

import keras_adaptive_acts.regularizers as regularizers_module
from keras_adaptive_acts import ActivitySparsity, JSquaredReLU, MixedActivation
from keras_adaptive_acts.regularizers import ActivationL1, ActivityPenalty, HoyerSquare, KLSparsity

RNG = np.random.default_rng(0)


def regularizers():
    return [ActivationL1(0.01), HoyerSquare(0.001), KLSparsity(0.1, 0.5)]


@pytest.mark.parametrize("batch", [2, 16])
def test_activity_regularizer_adds_exactly_the_penalty_at_any_batch_size(batch):
    x = RNG.uniform(0.01, 0.99, size=(batch, 5)).astype("float32")
    for regularizer in regularizers():
        layer = keras.layers.Activation("linear", activity_regularizer=regularizer)
        layer(x)
        expected = float(ops.convert_to_numpy(regularizer.penalty(x)))
        np.testing.assert_allclose(float(ops.convert_to_numpy(layer.losses[0])), expected, rtol=1e-6)
        sparsity = ActivitySparsity(regularizer)
        sparsity(x)
        np.testing.assert_allclose(float(ops.convert_to_numpy(sparsity.losses[0])), expected, rtol=1e-6)


def test_an_empty_batch_adds_a_loss_of_zero_on_every_backend():
    empty = np.zeros((0, 5), "float32")
    for regularizer in regularizers():
        layer = keras.layers.Activation("linear", activity_regularizer=regularizer)
        layer(empty)
        sparsity = ActivitySparsity(regularizer)
        sparsity(empty)
        for loss in (regularizer.penalty(empty), layer.losses[0], sparsity.losses[0]):
            assert float(ops.convert_to_numpy(loss)) == 0.0


def test_penalty_values_follow_the_documented_formulas():
    a = np.array([[1.0, -2.0, 0.0], [0.0, 0.0, 4.0]], dtype="float32")
    assert float(ActivationL1(0.5).penalty(a)) == pytest.approx(0.5 * (3 + 4) / 2)
    assert float(HoyerSquare(2.0).penalty(a)) == pytest.approx(2.0 * (9 / 5 + 16 / 16) / 2)
    p = np.array([[0.2, 0.05]], dtype="float32")
    kl = 0.05 * np.log(0.05 / 0.2) + 0.95 * np.log(0.95 / 0.8)
    assert float(KLSparsity(0.05, 3.0).penalty(p)) == pytest.approx(3.0 * kl, rel=1e-5)


def test_the_penalty_is_in_the_training_loss_under_jit():
    x = RNG.normal(size=(32, 6)).astype("float32")
    y = np.zeros((32, 1), "float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", activity_regularizer=ActivationL1(0.1)),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    features = keras.Model(model.inputs, model.layers[0].output)
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    penalty = 0.1 * np.abs(features.predict(x, verbose=0)).sum(1).mean()
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=32, verbose=0), mse + penalty, rtol=1e-5)


def numpy_penalties(a):
    """Float64 references of `regularizers()`' penalties, from their documented formulas."""
    a = np.asarray(a, "float64").reshape(len(a), -1)
    l1, squares = np.abs(a).sum(1), (a**2).sum(1)
    hoyer = np.where(squares > 0, l1**2 / np.where(squares > 0, squares, 1.0), 0.0).mean()
    rho_hat = np.clip(a.mean(0), 1e-7, 1 - 1e-7)
    kl = np.sum(0.1 * np.log(0.1 / rho_hat) + 0.9 * np.log(0.9 / (1 - rho_hat)))
    return [0.01 * l1.mean(), 0.001 * hoyer, 0.5 * kl]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e3])  # float16: subnormal outputs; squares beyond 65504
def test_under_mixed_precision_dense_layers_add_the_float64_penalty_in_float32(dtype_policy, policy, scale):
    dtype_policy(policy)
    x = RNG.normal(size=(16, 6)).astype("float32")
    for regularizer, reference, activation in zip(
        regularizers(), range(3), ["relu", None, "sigmoid"], strict=True
    ):
        layer = keras.layers.Dense(
            8,
            activation=activation,
            activity_regularizer=regularizer,
            kernel_initializer=keras.initializers.RandomNormal(stddev=scale, seed=1),
        )
        outputs = layer(x)
        assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]
        loss = layer.losses[0]
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
        expected = numpy_penalties(ops.convert_to_numpy(outputs))[reference]
        np.testing.assert_allclose(float(ops.convert_to_numpy(loss)), expected, rtol=1e-5)


def test_fit_with_a_loss_scale_optimizer_minimises_the_loss_with_the_penalty(dtype_policy):
    dtype_policy("mixed_float16")
    x, y = RNG.normal(size=(64, 6)).astype("float32"), RNG.normal(size=(64, 1)).astype("float32")
    for regularizer, reference, activation in zip(
        regularizers(), range(3), ["relu", None, "sigmoid"], strict=True
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation=activation, activity_regularizer=regularizer),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01)), "mse")
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
        assert np.all(np.isfinite(history)) and history[-1] < history[0]
        hidden = keras.Model(model.inputs[0], model.layers[0].output)(x)
        mse = np.mean((ops.convert_to_numpy(model(x)).astype("float64") - y) ** 2)
        expected = mse + numpy_penalties(ops.convert_to_numpy(hidden))[reference]
        np.testing.assert_allclose(model.evaluate(x, y, batch_size=64, verbose=0), expected, rtol=2e-3)


def test_serialisation(tmp_path):
    for regularizer in regularizers():
        clone = type(regularizer).from_config(regularizer.get_config())
        assert clone.get_config() == regularizer.get_config()
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activity_regularizer=HoyerSquare(0.01)),
            MixedActivation("relu", "j_squared_relu", t=0.25),
            ActivitySparsity(KLSparsity(0.1)),
            JSquaredReLU(),
        ]
    )
    loaded = assert_keras_file_round_trip(model, RNG.normal(size=(5, 4)), tmp_path / "sparsity.keras")
    assert isinstance(loaded.layers[0].activity_regularizer, HoyerSquare)
    assert loaded.layers[2].regularizer.rho == 0.1


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ActivationL1(-0.1), "strength=-0.1"),
        (lambda: HoyerSquare(float("nan")), "strength=nan"),
        (lambda: KLSparsity(0.0), "rho=0.0"),
        (lambda: KLSparsity(1.0), "rho=1.0"),
        (lambda: KLSparsity(0.05, -1), "strength=-1"),
        (lambda: ActivitySparsity("l1"), "regularizer='l1'"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_all_lists_the_penalties_and_their_base_class():
    expected = {"ActivationL1", "ActivityPenalty", "HoyerSquare", "KLSparsity"}
    assert set(regularizers_module.__all__) == expected and len(regularizers_module.__all__) == len(expected)
    namespace = {}
    exec("from keras_adaptive_acts.regularizers import *", namespace)
    assert {name for name in namespace if name != "__builtins__"} == expected
    for name in expected:
        assert issubclass(getattr(regularizers_module, name), ActivityPenalty), name


class SquarePenalty(ActivityPenalty):
    """A penalty of one's own, as the `ActivityPenalty` docstring describes: `strength * sum(a**2) / B`."""

    def penalty(self, activations):
        return self.strength * ops.sum(ops.square(activations)) / ops.shape(activations)[0]


@pytest.mark.parametrize("batch", [2, 16])
def test_a_subclass_of_activity_penalty_adds_exactly_its_penalty(batch):
    x = RNG.normal(size=(batch, 5)).astype("float32")
    expected = 0.3 * float(np.sum(x.astype("float64") ** 2)) / batch
    layer = keras.layers.Activation("linear", activity_regularizer=SquarePenalty(0.3))
    layer(x)
    np.testing.assert_allclose(float(ops.convert_to_numpy(layer.losses[0])), expected, rtol=1e-5)
    sparsity = ActivitySparsity(SquarePenalty(0.3))
    sparsity(x)
    np.testing.assert_allclose(float(ops.convert_to_numpy(sparsity.losses[0])), expected, rtol=1e-5)


PROBE_INSIDE_BUILD = """
import numpy as np, keras
from keras_adaptive_acts.regularizers import ActivationL1

class Block(keras.layers.Layer):
    # Creates its regularized sublayer in build, as KerasHub layers do.
    def build(self, input_shape):
        self.dense = keras.layers.Dense(
            4, kernel_initializer="ones", activity_regularizer=ActivationL1(0.1)
        )
        self.dense.build(input_shape)

    def call(self, x):
        return self.dense(x)

# No Input: fit builds the block while it traces the train step, so the process's first
# regularizer, and the probe of how Keras scales it, is created inside the trace.
model = keras.Sequential([Block(), keras.layers.Dense(1, kernel_initializer="zeros")])
model.compile(keras.optimizers.SGD(0.0), "mse")
print(model.fit(np.ones((8, 3), "float32"), np.zeros((8, 1)), batch_size=8, verbose=0).history["loss"][0])
"""


@pytest.mark.slow  # fresh processes or a network per activation: 8 to 26 s on CI's machine
def test_the_first_regularizer_of_a_process_may_be_created_inside_a_traced_step():
    import os
    import subprocess
    import sys

    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE_INSIDE_BUILD],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Each example's Dense output is 3 per unit (ones in, a kernel of ones): penalty 0.1 * 12 = 1.2;
    # the zero head predicts the zero targets, so the loss is the penalty alone.
    assert float(result.stdout.split()[-1]) == pytest.approx(1.2, rel=1e-6)
