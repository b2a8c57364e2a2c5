"""The planted-network generator and `ReLUNetwork`'s NumPy evaluation."""

import math

import numpy as np
import pytest

from keras_adaptive_acts.narrow import (
    ReLUNetwork,
    make_planted_regression,
    planted_network,
    population_variance,
)
from keras_adaptive_acts.narrow import network as network_module


def test_relu_network_matches_the_formula_across_evaluation_batches(monkeypatch):
    rng = np.random.default_rng(0)
    weights, outputs = rng.standard_normal((3, 4)), rng.standard_normal(3)
    net = ReLUNetwork(weights, outputs, bias=0.25)
    x = rng.standard_normal((10, 4))
    expected = np.array([sum(outputs[j] * max(weights[j] @ row, 0.0) for j in range(3)) + 0.25 for row in x])
    monkeypatch.setattr(network_module, "EVALUATION_BATCH", 3)
    np.testing.assert_allclose(net(x), expected, rtol=1e-12)
    assert (net.width, net.input_dim) == (3, 4)


@pytest.mark.parametrize(
    ("weights", "outputs", "bias", "match"),
    [
        (np.ones(3), np.ones(3), 0.0, "shape"),
        (np.ones((3, 2)), np.ones(2), 0.0, "shape"),
        (np.full((2, 2), np.nan), np.ones(2), 0.0, "finite"),
        (np.ones((2, 2)), np.ones(2), math.inf, "finite"),
    ],
)
def test_relu_network_rejects_bad_weights(weights, outputs, bias, match):
    with pytest.raises(ValueError, match=match):
        ReLUNetwork(weights, outputs, bias)


def test_relu_network_rejects_inputs_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        ReLUNetwork(np.ones((1, 2)), np.ones(1))(np.ones((4, 3)))


def test_planted_network_has_unit_neurons_signs_and_scales():
    net = planted_network(30, 6, output_scale=(0.5, 1.5), seed=3)
    np.testing.assert_allclose(np.linalg.norm(net.hidden_weights, axis=1), 1.0, rtol=1e-12)
    magnitudes = np.abs(net.output_weights)
    assert np.all((magnitudes >= 0.5) & (magnitudes <= 1.5))
    assert {-1.0, 1.0} <= set(np.sign(net.output_weights))  # "mixed" has both signs
    assert np.all(planted_network(5, 3, signs="positive", seed=0).output_weights > 0)
    assert np.all(planted_network(5, 3, signs="negative", seed=0).output_weights < 0)
    explicit = planted_network(5, 3, signs=[1, -1, 1], seed=0).output_weights
    np.testing.assert_array_equal(np.sign(explicit), [1, -1, 1])


def test_mixed_signs_are_mixed_for_every_seed():
    for seed in range(50):
        signs = np.sign(planted_network(4, 2, seed=seed).output_weights)
        assert set(signs) == {-1.0, 1.0}


def test_near_parallel_pairs_are_at_the_requested_angle():
    net = planted_network(20, 5, near_parallel_pairs=2, parallel_angle=0.1, seed=1)
    u = net.hidden_weights
    for pair in range(2):
        assert math.acos(u[2 * pair] @ u[2 * pair + 1]) == pytest.approx(0.1, abs=1e-9)
    assert abs(u[0] @ u[4]) < 0.9  # the unpaired unit is a random direction


def test_planted_regression_is_reproducible_and_labels_are_the_network():
    X, y, net = make_planted_regression(500, 7, 3, seed=11)
    X2, y2, net2 = make_planted_regression(500, 7, 3, seed=11)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(net.hidden_weights, net2.hidden_weights)
    expected = np.maximum(X @ net.hidden_weights.T, 0.0) @ net.output_weights
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert not np.array_equal(make_planted_regression(500, 7, 3, seed=12)[0], X)
    X32, _, _ = make_planted_regression(10, 3, 1, dtype="float32", seed=0)
    assert X32.dtype == np.float32


def test_label_noise_is_relative_to_the_targets_standard_deviation():
    X, y, net = make_planted_regression(200_000, 5, 2, label_noise=0.3, seed=5)
    noise = y - net(X)
    expected = 0.3 * math.sqrt(population_variance(net))
    assert noise.std() == pytest.approx(expected, rel=0.01)
    assert abs(noise.mean()) < 5 * expected / math.sqrt(len(y))
    assert abs(np.corrcoef(noise, net(X))[0, 1]) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k"),
        ({"input_dim": 0}, "input_dim"),
        ({"signs": "some"}, "signs"),
        ({"signs": [1, 1]}, "signs"),
        ({"signs": [1, 2, 1]}, "signs"),
        ({"near_parallel_pairs": 2}, "near_parallel_pairs"),
        ({"parallel_angle": -0.1, "near_parallel_pairs": 1}, "parallel_angle"),
        ({"output_scale": (0.0, 1.0)}, "output_scale"),
        ({"output_scale": (2.0, 1.0)}, "output_scale"),
        ({"label_noise": -1.0}, "label_noise"),
        ({"n_samples": 0}, "n_samples"),
        # NumPy's own errors before: a TypeError, an unpacking error, "expected non-negative integer".
        ({"output_scale": 1.0}, r"`output_scale` must be a pair \(low, high\). Received"),
        ({"output_scale": (0.5,)}, r"`output_scale` must be a pair \(low, high\). Received"),
        ({"seed": -1}, "`seed` must be an integer >= 0. Received"),
        ({"dtype": "float16"}, r"`dtype` must be one of \('float32', 'float64'\). Received"),
        ({"dtype": "int32"}, "`dtype` must be one of"),
        ({"dtype": "not a dtype"}, "`dtype` must be one of"),
    ],
)
def test_planted_regression_rejects_bad_arguments(kwargs, match):
    arguments = {"n_samples": 10, "input_dim": 4, "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_planted_regression(**arguments)
