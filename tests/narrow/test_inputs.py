"""`gaussian_check`: the skewness screen, degenerate arrays, and its false-alarm margin on Gaussian data."""

import math

import numpy as np
import pytest

from keras_adaptive_acts.narrow import NarrowReLULearner, gaussian_check
from keras_adaptive_acts.narrow.inputs import GAUSSIAN_CHECK_Z


def skewed_with_gaussian_kurtosis(n, d, seed=0):
    """Whitened features of skewness about 0.25 and kurtosis 3: a Gaussian, exponential, uniform mixture.

    Excess kurtosis of the mix: `6 b^4` (exponential) `- 1.2 c^4` (uniform) `= 0` with `c = 5^(1/4) b`.
    """
    rng = np.random.default_rng(seed)
    b = 0.5
    c = 5**0.25 * b
    a = math.sqrt(1 - b**2 - c**2)
    shape = (n, d)
    X = (
        a * rng.standard_normal(shape)
        + b * (rng.exponential(size=shape) - 1)
        + c * rng.uniform(-math.sqrt(3), math.sqrt(3), size=shape)
    )
    return (X - X.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(X, rowvar=False))).T


def standard_scores(X):
    """NumPy reference: each feature's sample skewness and excess kurtosis, in standard errors."""
    centred = X - X.mean(0)
    variance = (centred**2).mean(0)
    skewness = (centred**3).mean(0) / variance**1.5
    kurtosis = (centred**4).mean(0) / variance**2 - 3.0
    return skewness / math.sqrt(6 / len(X)), kurtosis / math.sqrt(24 / len(X))


def test_skewed_inputs_with_a_gaussian_kurtosis_fail_the_check():
    # They once passed: the check looked at the kurtosis only, and the moment estimate on such data was
    # 15 times worse without a warning (the method relies on E[He_3(x)] = 0).
    X = skewed_with_gaussian_kurtosis(50_000, 10)
    skewness, kurtosis = standard_scores(X)
    assert np.all(np.abs(kurtosis) < GAUSSIAN_CHECK_Z) and np.all(skewness > 2 * GAUSSIAN_CHECK_Z)
    failures = gaussian_check(X)
    assert len(failures) == 1 and "skewness 0.2" in failures[0] and "whitening cannot fix" in failures[0]
    with pytest.raises(ValueError, match="skewness"):
        NarrowReLULearner(3, refine=False).fit(X, np.abs(X[:, 0]))


def test_gaussian_inputs_pass_the_skewness_check_with_a_margin():
    # The false-alarm margin: over 50 Gaussian samples the largest skewness (and kurtosis) of any feature
    # stays far below the threshold of 7 standard errors.
    worst = 0.0
    for seed in range(50):
        X = np.random.default_rng(seed).standard_normal((2_000, 6))
        assert gaussian_check(X, seed=seed) == []
        worst = max(worst, *np.abs(np.concatenate(standard_scores(X))))
    assert worst < 5.0 < GAUSSIAN_CHECK_Z


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.zeros((0, 3)), r"at least one row and one feature. Received: inputs.shape=\(0, 3\)"),
        (np.zeros((10, 0)), r"at least one row and one feature. Received: inputs.shape=\(10, 0\)"),
        (np.full((1_000, 3), np.nan), "row 0 holds a NaN or an infinity"),
    ],
    ids=["no-rows", "no-features", "all-nan"],
)
def test_degenerate_arrays_get_a_clear_error(X, match):
    # NaN and empty arrays once passed ([]: "looks Gaussian"), and zero features crashed in argmax.
    with pytest.raises(ValueError, match=match):
        gaussian_check(X)


def test_a_nan_or_an_infinity_is_named_by_its_row():
    X = np.random.default_rng(0).standard_normal((20_000, 3))
    X[12_345, 1] = np.nan
    with pytest.raises(ValueError, match="row 12345"):
        gaussian_check(X, batch_size=1_000)
    X[12_345, 1] = 0.0
    X[3, 2] = -np.inf
    with pytest.raises(ValueError, match="row 3 "):
        gaussian_check(X)


def test_moments_that_overflow_are_reported_as_a_failure():
    X = np.random.default_rng(0).standard_normal((1_000, 3)) * 1e100  # x^4 overflows float64
    with np.errstate(over="ignore", invalid="ignore"):
        failures = gaussian_check(X)
    assert failures == ["the moments of X overflow float64 (values far from unit variance: whiten X)"]
