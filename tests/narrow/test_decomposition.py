"""Subspace, Jennrich and contraction-and-merge on exact tensors, and the least-squares readout."""

import math

import numpy as np
import pytest

from keras_adaptive_acts.narrow import ReLUNetwork, make_planted_regression, relative_population_mse
from keras_adaptive_acts.narrow.decomposition import (
    contraction_directions,
    contraction_vectors,
    estimate_subspace,
    jennrich,
    merge_directions,
)
from keras_adaptive_acts.narrow.exact import relu_hermite_coefficients
from keras_adaptive_acts.narrow.readout import least_squares_readout

C = relu_hermite_coefficients(4)


def symmetric_tensor(weights, vectors):
    return np.einsum("i,ia,ib,ic,id->abcd", weights, vectors, vectors, vectors, vectors)


def assert_same_directions_up_to_sign(found, expected, tolerance):
    cosines = np.abs(expected @ found.T)
    assert np.all(cosines.max(axis=1) > 1 - tolerance), cosines.round(6)


def unit_rows(matrix):
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_estimate_subspace_spans_the_neurons_from_exact_moments():
    rng = np.random.default_rng(0)
    U, lam = unit_rows(rng.standard_normal((3, 12))), np.array([1.0, -0.7, 0.5])
    second = C[2] * np.einsum("i,ia,ib->ab", lam, U, U)
    G = rng.standard_normal((4, 12))
    contractions = C[4] * np.einsum("i,ti,ia,ib->tab", lam, (U @ G.T).T ** 2, U, U)
    for parts in (contractions, contractions[:0]):
        basis = estimate_subspace(second, parts, 3)
        assert basis.shape == (12, 3)
        np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(U @ basis, axis=1), 1.0, atol=1e-10)


def test_contractions_fill_a_subspace_that_m2_misses():
    # lambda_1 u_1 u_1^T + lambda_2 u_2 u_2^T with u_1 = e_1, u_2 = e_2, and a third neuron whose M2 term is
    # cancelled exactly by a fourth at the same direction: M2 sees 2 directions; degree 4 weights differ.
    U = np.eye(6)[[0, 1, 2, 2]]
    second = C[2] * np.einsum("i,ia,ib->ab", np.array([1.0, 1.0, 1.0, -1.0]), U, U)
    g = np.eye(6)[[2]] + 0.1
    weighted = np.array([1.0, 1.0, 2.0, -1.0]) * ((U @ g.T)[:, 0] ** 2)  # degree 4 does not cancel
    contractions = C[4] * np.einsum("i,ia,ib->ab", weighted, U, U)[None]
    assert np.linalg.norm(estimate_subspace(second, contractions, 3)[2]) == pytest.approx(1.0, abs=1e-9)


def test_contraction_vectors_are_unit_and_in_the_top_eigenspace():
    rng = np.random.default_rng(1)
    U = unit_rows(rng.standard_normal((2, 10)))
    second = np.einsum("i,ia,ib->ab", np.array([2.0, -1.0]), U, U) + 1e-6 * np.eye(10)
    vectors = contraction_vectors(second, 1, 5, seed=0)  # 2k = 2: the span of U
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-12)
    projection = np.linalg.pinv(U) @ U
    np.testing.assert_allclose(vectors @ projection, vectors, atol=1e-8)
    assert contraction_vectors(second, 1, 0).shape == (0, 10)


@pytest.mark.parametrize("seed", range(3))
def test_jennrich_recovers_non_orthogonal_directions_of_mixed_sign(seed):
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng.standard_normal((4, 4)))
    tensor = symmetric_tensor(np.array([1.2, -0.6, 0.9, -1.4]), vectors)
    found = jennrich(tensor, seed=seed)
    assert found.shape == (4, 4)
    assert_same_directions_up_to_sign(found, vectors, 1e-8)


def test_merge_directions_merges_modulo_sign_within_the_angle():
    base = np.array([1.0, 0.0, 0.0])
    near = np.array([math.cos(0.1), math.sin(0.1), 0.0])
    far = np.array([math.cos(0.3), 0.0, math.sin(0.3)])
    centres, totals = merge_directions(
        np.stack([base, -near, far, np.eye(3)[1]]), 0.15, np.array([3, 1, 1, 2])
    )
    assert len(centres) == 3
    np.testing.assert_allclose(totals, [4, 2, 1])
    expected = unit_rows((3 * base + near)[None])[0]  # -near flipped to the leader's sign, score-weighted
    np.testing.assert_allclose(centres[0], expected, atol=1e-12)
    assert len(merge_directions(np.stack([base, far]), 0.35)[0]) == 1
    # Clusters of score 0 have no direction: left out, as a zero tensor's contractions give.
    centres, totals = merge_directions(np.stack([base, far]), 0.15, np.array([0.0, 2.0]))
    np.testing.assert_allclose(centres, far[None])
    np.testing.assert_allclose(totals, [2.0])
    centres, totals = merge_directions(np.stack([base, far]), 0.15, np.zeros(2))
    assert centres.shape == (0, 3) and totals.shape == (0,)


def test_contraction_directions_of_a_zero_tensor_find_none():
    directions, weights = contraction_directions(np.zeros((3, 3, 3, 3)), 2, seed=0)
    assert directions.shape == (0, 3) and weights.shape == (0,)


def test_contraction_directions_find_orthogonal_directions_exactly():
    vectors = np.linalg.qr(np.random.default_rng(3).standard_normal((5, 3)))[0].T
    weights = np.array([1.0, -0.8, 1.3])
    found, fitted = contraction_directions(symmetric_tensor(weights, vectors), 3, polish_rounds=0, seed=0)
    assert_same_directions_up_to_sign(found, vectors, 1e-10)
    order = np.argmax(np.abs(found @ vectors.T), axis=1)
    np.testing.assert_allclose(fitted, weights[order], rtol=1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_contraction_directions_recover_non_orthogonal_directions_after_polishing(seed):
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng.standard_normal((4, 5)))
    tensor = symmetric_tensor(np.array([1.0, -0.8, 1.3, 0.4]), vectors)  # one weak neuron
    unpolished, _ = contraction_directions(tensor, 4, polish_rounds=0, seed=seed)
    assert_same_directions_up_to_sign(unpolished, vectors, 0.3)  # roughly, the weak one too
    found, _ = contraction_directions(tensor, 4, seed=seed)
    assert_same_directions_up_to_sign(found, vectors, 1e-7)


def test_contraction_directions_find_a_near_parallel_pair_as_one_cluster_first():
    vectors = np.eye(4)[:3].copy()
    vectors[2] = unit_rows((vectors[1] + np.array([0, 0, 0, 0.05]))[None])[0]  # 0.05 rad from vectors[1]
    found, _ = contraction_directions(symmetric_tensor(np.array([1.0, 1.0, 1.0]), vectors), 2, seed=0)
    pair_centre = unit_rows((vectors[1] + vectors[2])[None])[0]
    assert_same_directions_up_to_sign(found, np.stack([vectors[0], pair_centre]), 1e-3)


def test_readout_with_the_true_directions_recovers_the_network():
    X, y, target = make_planted_regression(20_000, 8, 3, seed=4)
    flipped = target.hidden_weights * np.array([[1.0], [-1.0], [1.0]])  # the sign is the readout's job
    estimate = least_squares_readout(X, y, flipped, ridge=0.0)
    assert estimate.width == 6
    np.testing.assert_array_equal(estimate.hidden_weights[3:], -flipped)
    assert relative_population_mse(target, estimate) < 1e-20


def test_readout_equals_least_squares_on_the_explicit_features():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((3000, 4)), rng.standard_normal(3000)
    directions = unit_rows(rng.standard_normal((2, 4)))
    features = np.concatenate(
        [np.maximum(X @ directions.T, 0), np.maximum(-X @ directions.T, 0), np.ones((3000, 1))], 1
    )
    solution = np.linalg.lstsq(features, y, rcond=None)[0]
    estimate = least_squares_readout(X, y, directions, ridge=0.0, batch_size=128)
    np.testing.assert_allclose(estimate.output_weights, solution[:-1], rtol=1e-8, atol=1e-10)
    assert estimate.bias == pytest.approx(solution[-1], abs=1e-10)
    assert isinstance(estimate, ReLUNetwork)


@pytest.mark.parametrize("seed", range(3))
def test_contractions_in_m2_span_beat_whole_sphere_contractions(seed):
    """The reason for `contraction_vectors`: at d = 50 whole-sphere contractions mostly add noise."""
    from keras_adaptive_acts.narrow.moments import (
        first_moment,
        fourth_moment_contractions,
        low_degree_residual,
        second_moment,
    )

    X, y, target = make_planted_regression(100_000, 50, 2, seed=seed)
    first = first_moment(X, y)
    second = second_moment(X, low_degree_residual(X, y, y.mean(), first, np.zeros((50, 50))))
    residual = low_degree_residual(X, y, y.mean(), first, second)

    def subspace_error(vectors):
        basis = estimate_subspace(second, fourth_moment_contractions(X, residual, vectors), 2)
        return 1.0 - np.linalg.norm(target.hidden_weights @ basis, axis=1).min()

    whole_sphere = subspace_error(np.random.default_rng(seed).standard_normal((2, 50)))
    in_span = subspace_error(contraction_vectors(second, 2, 2, seed=seed))
    without = subspace_error(np.zeros((0, 50)))
    assert whole_sphere > 3 * in_span
    assert in_span < 2 * without
