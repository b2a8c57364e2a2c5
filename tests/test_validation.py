"""The shared argument checks, and what they promise the layers: NumPy scalars taken as Keras takes
them, and configs of plain Python numbers."""

import json
import math

import keras
import numpy as np
import pytest

from keras_adaptive_acts import (
    CompetitiveReLU,
    MixedActivation,
    NoisyHardTanh,
    NoisyLSTMCell,
    RReLU,
    Snake,
    SparsifiedMLP,
)
from keras_adaptive_acts.regularizers import ActivationL1, KLSparsity
from keras_adaptive_acts.validation import check_number


@pytest.mark.parametrize("value", [np.float32(0.1), np.float16(2.5), np.float64(3.0), np.int64(2), 4, 0.5])
def test_a_finite_real_number_of_python_or_numpy_comes_back_as_a_python_float(value):
    result = check_number("value", value, minimum=0.0)
    assert type(result) is float
    assert result == float(value)


@pytest.mark.parametrize(
    "value", [True, np.bool_(True), np.float32("nan"), np.float32("inf"), -math.inf, "1.0", None, np.ones(1)]
)
def test_anything_else_is_refused_with_its_value(value):
    with pytest.raises(ValueError, match=r"`value` must be a finite number. Received: value="):
        check_number("value", value)


def test_a_numpy_scalar_below_the_minimum_is_refused_as_a_python_one_is():
    with pytest.raises(ValueError, match=r"`value` must be > 0. Received: value="):
        check_number("value", np.float32(0.0), minimum=0.0, strict=True)


GRID = np.linspace(0.1, 0.3, 3, dtype="float32")  # a sweep's values: NumPy float32 scalars

# (layer made with NumPy scalars, {config key: the value as given})
LAYERS = [
    (lambda: RReLU(lower=GRID[0], upper=GRID[2]), {"lower": GRID[0], "upper": GRID[2]}),
    (lambda: NoisyHardTanh(c=GRID[1], alpha=np.float32(1.5)), {"c": GRID[1], "alpha": np.float32(1.5)}),
    (lambda: CompetitiveReLU(scale_bound=np.float32(3.0)), {"scale_bound": np.float32(3.0)}),
    (lambda: Snake(frequency=np.float32(2.0)), {"frequency": np.float32(2.0)}),
    (lambda: MixedActivation(t=GRID[1]), {"t": GRID[1]}),
    (lambda: SparsifiedMLP(8, dropout=GRID[0]), {"dropout": GRID[0]}),
    (
        lambda: keras.layers.RNN(NoisyLSTMCell(3, gate_c=GRID[1], activation_alpha=np.float32(1.2))),
        {"gate_c": GRID[1], "activation_alpha": np.float32(1.2)},
    ),
    (lambda: keras.layers.Dense(4, activity_regularizer=ActivationL1(GRID[0])), {"strength": GRID[0]}),
    (
        lambda: keras.layers.Dense(4, activity_regularizer=KLSparsity(GRID[0], GRID[1])),
        {"rho": GRID[0], "strength": GRID[1]},
    ),
]


def _entries(config, key):
    """Every value of `key` at any depth of a (serialized) config."""
    if isinstance(config, dict):
        for name, value in config.items():
            if name == key:
                yield value
            yield from _entries(value, key)
    elif isinstance(config, list):
        for value in config:
            yield from _entries(value, key)


@pytest.mark.parametrize(("make", "given"), LAYERS)
def test_numpy_scalars_reach_the_config_as_python_floats_and_the_model_round_trips(make, given, tmp_path):
    layer = make()
    config = keras.saving.serialize_keras_object(layer)
    for key, value in given.items():
        found = list(_entries(config, key))
        assert found, key
        assert all(type(entry) is float for entry in found), (key, found)
        assert float(value) in found, (key, found)
    json.dumps(config)  # a .keras file's config is JSON
    model = keras.Sequential([keras.Input((5, 8)), layer])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    inputs = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), rtol=1e-6)
