"""Checks of the learner's data: shapes, finiteness, sample size and the Gaussian-input assumption."""

from __future__ import annotations

import math
import warnings

import numpy as np

from keras_adaptive_acts.narrow.moments import DEFAULT_BATCH_SIZE, iterate_batches

__all__ = ["gaussian_check", "recommended_samples"]

# A statistic fails the Gaussian check beyond this many standard errors: with a few hundred statistics the
# largest |z| of truly Gaussian data stays below ~4.5, so a false alarm is rarer than one in a million fits.
GAUSSIAN_CHECK_Z = 7.0
# Directions along which the fourth moment is checked, besides the coordinate axes.
GAUSSIAN_CHECK_DIRECTIONS = 8


def check_shapes(inputs: object, targets: object) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(X, y)` as arrays (no copy of arrays and memmaps), or raises a `ValueError` saying why not."""
    X = inputs if isinstance(inputs, np.ndarray) else np.asarray(inputs)
    y = targets if isinstance(targets, np.ndarray) else np.asarray(targets)
    if X.ndim != 2:
        raise ValueError(f"`X` must be 2-D, shape (n_samples, n_features). Received: X.shape={X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"`y` must be 1-D, shape (n_samples,), one target per row. Received: y.shape={y.shape}"
        )
    if len(X) != len(y):
        raise ValueError(f"`X` and `y` need the same number of rows. Received: {len(X)} and {len(y)}")
    for name, array in (("X", X), ("y", y)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"`{name}` must hold real numbers. Received: {name}.dtype={array.dtype}")
    return X, y


def check_finite(inputs: np.ndarray, targets: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    """Raises a `ValueError` that names the first row holding a NaN or an infinity."""
    for start, (x, y) in enumerate(iterate_batches(inputs, targets, batch_size)):
        bad = ~(np.all(np.isfinite(x), axis=1) & np.isfinite(y))
        if np.any(bad):
            row = start * batch_size + int(np.argmax(bad))
            raise ValueError(f"`X` and `y` must be finite; row {row} holds a NaN or an infinity.")


def recommended_samples(input_dim: int, k: int) -> int:
    """`20 d k^3`: a rough number of samples for a moment estimate that refinement can finish.

    Calibrated on planted networks (unit-norm neurons, `|lambda|` in [0.5, 1.5], no label noise) while the
    learner was developed; `benchmarks/narrow_relu.py` trains with this many samples, and there the
    readout's relative population error had medians of 0.004-0.04 (Jennrich). A heuristic, not a bound:
    near-parallel neurons and label noise need more.

    Examples:

    >>> recommended_samples(50, 6)
    216000
    """
    return int(20 * input_dim * k**3)


def warn_if_few_samples(n_samples: int, input_dim: int, k: int) -> None:
    needed = recommended_samples(input_dim, k)
    if n_samples < needed:
        warnings.warn(
            f"NarrowReLULearner(k={k}) received {n_samples} samples of dimension {input_dim}; the moment "
            f"estimate needs about {needed} (a heuristic: 20 * d * k^3). Expect a poor estimate before "
            "refinement; pass more samples if you can.",
            UserWarning,
            stacklevel=3,
        )


def gaussian_check(
    inputs: np.ndarray, *, seed: int | None = 0, batch_size: int = DEFAULT_BATCH_SIZE
) -> list[str]:
    """Tests the assumption `x ~ N(0, I_d)`; returns the failed checks (empty when none failed).

    Four families of statistics, each compared with its standard error under N(0, I_d) and failed beyond
    `GAUSSIAN_CHECK_Z` standard errors: the mean of each feature, each covariance entry (the covariance must
    be the identity: the data must be whitened), and, for each feature and `GAUSSIAN_CHECK_DIRECTIONS`
    random unit projections `s`, the skewness `E[(s - E s)^3] / Var[s]^1.5 = 0` (standard error
    `sqrt(6 / N)`) and the kurtosis `E[s^4] / E[s^2]^2 = 3` (standard error `sqrt(24 / N)`). Skewness and
    kurtosis catch non-Gaussian shapes that whitening cannot fix; scale alone changes neither. The
    learner relies on odd moments too (`E[He_3(x)] = 0`), so skewed inputs with a Gaussian kurtosis fail.

    Raises:
        ValueError: `inputs` is not 2-D, has no rows or no features, or holds a NaN or an infinity (the
            message names the first such row).
    """
    inputs = inputs if isinstance(inputs, np.ndarray) else np.asarray(inputs)  # no copy of a memmap
    if inputs.ndim != 2:
        raise ValueError(
            f"`inputs` must be 2-D, shape (n_samples, n_features). Received: inputs.shape={inputs.shape}"
        )
    n, dim = inputs.shape
    if n == 0 or dim == 0:
        raise ValueError(
            f"`inputs` needs at least one row and one feature. Received: inputs.shape={inputs.shape}"
        )
    directions = np.random.default_rng(seed).standard_normal((dim, GAUSSIAN_CHECK_DIRECTIONS))
    directions = np.concatenate([np.eye(dim), directions / np.linalg.norm(directions, axis=0)], axis=1)
    total, gram = np.zeros(dim), np.zeros((dim, dim))
    third, fourth = np.zeros(directions.shape[1]), np.zeros(directions.shape[1])
    for start in range(0, n, batch_size):
        x = np.asarray(inputs[start : start + batch_size], dtype=np.float64)
        finite = np.all(np.isfinite(x), axis=1)
        if not np.all(finite):  # NaN statistics compare False with any bound and would pass
            row = start + int(np.argmin(finite))
            raise ValueError(f"`inputs` must be finite; row {row} holds a NaN or an infinity.")
        projections = x @ directions
        total += x.sum(axis=0)
        gram += x.T @ x
        third += (projections**3).sum(axis=0)
        fourth += (projections**4).sum(axis=0)
    statistics = (total, gram, third, fourth)
    if not all(np.all(np.isfinite(statistic)) for statistic in statistics):
        return ["the moments of X overflow float64 (values far from unit variance: whiten X)"]
    root_n = math.sqrt(n)
    failures = []
    mean = total / n
    worst = int(np.argmax(np.abs(mean)))
    if abs(mean[worst]) * root_n > GAUSSIAN_CHECK_Z:
        failures.append(f"feature {worst} has mean {mean[worst]:.4g} (expected 0)")
    deviation = gram / n - np.eye(dim)
    standard_error = np.where(np.eye(dim, dtype=bool), math.sqrt(2.0), 1.0) / root_n
    row, column = np.unravel_index(np.argmax(np.abs(deviation) / standard_error), deviation.shape)
    if abs(deviation[row, column]) / standard_error[row, column] > GAUSSIAN_CHECK_Z:
        entry = "variance of feature" if row == column else "covariance of features"
        where = f"{row}" if row == column else f"{row} and {column}"
        expected = 1 if row == column else 0
        failures.append(f"{entry} {where} is {gram[row, column] / n:.4g} (expected {expected}: whiten X)")
    variances = np.einsum("id,ij,jd->d", directions, gram / n, directions)
    projected_mean = mean @ directions
    centred_variances = np.maximum(variances - projected_mean**2, 0.0)
    # The central third moment from the raw ones; centring makes its standard error sqrt(6 / N).
    central_third = third / n - 3.0 * projected_mean * variances + 2.0 * projected_mean**3
    skewness = central_third / np.maximum(centred_variances**1.5, 1e-300)  # powered first, as below
    worst = int(np.argmax(np.abs(skewness)))
    if abs(skewness[worst]) * root_n / math.sqrt(6.0) > GAUSSIAN_CHECK_Z:
        where = f"feature {worst}" if worst < dim else "a random projection"
        failures.append(
            f"{where} has skewness {skewness[worst]:.4g} (0 for a Gaussian; whitening cannot fix this)"
        )
    kurtosis = (fourth / n) / np.maximum(variances**2, 1e-300)  # squared first: 1e-300**2 is 0
    worst = int(np.argmax(np.abs(kurtosis - 3.0)))
    if abs(kurtosis[worst] - 3.0) * root_n / math.sqrt(24.0) > GAUSSIAN_CHECK_Z:  # its standard error
        where = f"feature {worst}" if worst < dim else "a random projection"
        failures.append(
            f"{where} has kurtosis {kurtosis[worst]:.4g} (3 for a Gaussian; whitening cannot fix this)"
        )
    return failures
