"""The moment estimators are unbiased for `c_l sum_i lambda_i u_i^(x)l` on a planted network."""

import numpy as np
import pytest

from keras_adaptive_acts.narrow import make_planted_regression, planted_network
from keras_adaptive_acts.narrow.exact import relu_hermite_coefficients
from keras_adaptive_acts.narrow.moments import (
    first_moment,
    fourth_moment_contractions,
    low_degree_residual,
    projected_fourth_moment,
    second_moment,
)

C = relu_hermite_coefficients(4)
NETWORK = planted_network(6, 3, seed=7)
U, LAM = NETWORK.hidden_weights, NETWORK.output_weights
G = np.random.default_rng(8).standard_normal((2, 6))  # contraction vectors, not unit
BASIS = np.linalg.qr(np.random.default_rng(9).standard_normal((6, 3)))[0]


def exact_first():
    return C[1] * LAM @ U


def exact_second():
    return C[2] * np.einsum("i,ia,ib->ab", LAM, U, U)


def exact_contractions():
    return C[4] * np.einsum("i,ti,ia,ib->tab", LAM, (U @ G.T).T ** 2, U, U)


def exact_projected():
    V = U @ BASIS
    return C[4] * np.einsum("i,ia,ib,ic,id->abcd", LAM, V, V, V, V)


def replicate(estimator, replicates=24, n=20_000):
    """Mean and standard error of an estimator over independent samples of the planted network."""
    rng = np.random.default_rng(10)
    estimates = []
    for _ in range(replicates):
        X = rng.standard_normal((n, 6))
        estimates.append(estimator(X, NETWORK(X)))
    estimates = np.array(estimates)
    return estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(replicates)


@pytest.mark.parametrize(
    ("estimator", "exact"),
    [
        (first_moment, exact_first),
        (second_moment, exact_second),
        (lambda X, y: fourth_moment_contractions(X, y, G), exact_contractions),
        (lambda X, y: projected_fourth_moment(X, y, BASIS), exact_projected),
    ],
    ids=["first", "second", "contractions", "projected"],
)
def test_estimators_are_unbiased(estimator, exact):
    mean, standard_error = replicate(estimator)
    expected = exact()
    assert mean.shape == expected.shape
    z = np.abs(mean - expected) / standard_error
    assert z.max() < 5.5, f"largest deviation {z.max():.1f} standard errors"
    # ... and not trivially: the signal is well above the standard error somewhere.
    assert (np.abs(expected) / standard_error).max() > 5


def residual_estimator(estimator):
    """The estimator applied to the degree-2 residual, built from the exact low-degree moments."""
    mean = C[0] * LAM.sum()

    def apply(X, y):
        return estimator(X, low_degree_residual(X, y, mean, exact_first(), exact_second()))

    return apply


def test_the_residual_has_the_same_degree_4_moments_and_less_noise():
    def estimator(X, y):
        return fourth_moment_contractions(X, y, G)

    mean, residual_error = replicate(residual_estimator(estimator))
    assert (np.abs(mean - exact_contractions()) / residual_error).max() < 5.5
    _, plain_error = replicate(estimator)
    assert np.median(plain_error / residual_error) > 3  # the point of the residual


def test_the_residual_has_no_degree_0_1_2_part():
    X = np.random.default_rng(11).standard_normal((400_000, 6))
    residual = low_degree_residual(X, NETWORK(X), C[0] * LAM.sum(), exact_first(), exact_second())
    scale = NETWORK(X).std() / np.sqrt(len(X))
    assert abs(residual.mean()) < 6 * scale
    assert np.abs(first_moment(X, residual)).max() < 6 * scale
    assert np.abs(second_moment(X, residual)).max() < 6 * scale * np.sqrt(2)


def test_batching_and_memmaps_do_not_change_the_estimates(tmp_path):
    X, y, _ = make_planted_regression(1000, 6, 3, seed=12)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    for estimator in (
        first_moment,
        second_moment,
        lambda X, y, **kw: fourth_moment_contractions(X, y, G, **kw),
        lambda X, y, **kw: projected_fourth_moment(X, y, BASIS, **kw),
    ):
        reference = estimator(X, y)
        np.testing.assert_allclose(estimator(X, y, batch_size=7), reference, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(estimator(mapped, y), reference)


def test_one_contraction_vector_gives_one_matrix():
    X, y, _ = make_planted_regression(100, 6, 3, seed=13)
    both = fourth_moment_contractions(X, y, G)
    np.testing.assert_allclose(fourth_moment_contractions(X, y, G[1]), both[1], rtol=1e-12)
