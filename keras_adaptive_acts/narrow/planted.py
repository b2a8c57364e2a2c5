"""Planted-network data: a random narrow ReLU network and Gaussian samples labelled by it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from keras_adaptive_acts.narrow.exact import population_variance
from keras_adaptive_acts.narrow.network import ReLUNetwork
from keras_adaptive_acts.validation import check_integer, check_number

__all__ = ["make_planted_regression", "planted_network"]


def _random_unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _planted_signs(rng: np.random.Generator, k: int, signs: str | Sequence[float]) -> np.ndarray:
    if isinstance(signs, str):
        if signs == "positive":
            return np.ones(k)
        if signs == "negative":
            return -np.ones(k)
        if signs != "mixed":
            raise ValueError(
                "`signs` must be 'mixed', 'positive', 'negative' or a sequence of k values in {-1, +1}. "
                f"Received: signs={signs!r}"
            )
        drawn = rng.choice([-1.0, 1.0], size=k)
        if k >= 2 and abs(drawn.sum()) == k:  # "mixed" promises both signs
            drawn[-1] = -drawn[-1]
        return drawn
    values = np.asarray(signs, dtype=np.float64).reshape(-1)
    if values.shape != (k,) or not np.all(np.isin(values, (-1.0, 1.0))):
        raise ValueError(f"`signs` must hold k={k} values in {{-1, +1}}. Received: signs={signs!r}")
    return values


# What NumPy's Gaussian generator draws.
SAMPLE_DTYPES = ("float32", "float64")


def planted_network(
    input_dim: int,
    k: int,
    *,
    signs: str | Sequence[float] = "mixed",
    near_parallel_pairs: int = 0,
    parallel_angle: float = 0.1,
    output_scale: tuple[float, float] = (0.5, 1.5),
    seed: int | None = None,
) -> ReLUNetwork:
    """A random target `f(x) = sum_i lambda_i relu(<u_i, x>)` with unit `u_i`, as in the paper's setting.

    Args:
        input_dim: `d`, the input dimension.
        k: the number of hidden units.
        signs: the signs of `lambda_i`: `"mixed"` (random, both signs present when `k >= 2`), `"positive"`,
            `"negative"`, or `k` values in `{-1, +1}`.
        near_parallel_pairs: how many pairs of units are near-parallel: unit `2j + 1` is placed at exactly
            `parallel_angle` radians from unit `2j`, for `j < near_parallel_pairs` (needs `2 * pairs <= k`).
        parallel_angle: the angle within each near-parallel pair, in radians.
        output_scale: `|lambda_i|` is drawn uniformly from this interval.
        seed: seed of the NumPy generator; the same seed gives the same network.

    Examples:

    >>> net = planted_network(20, 3, signs="positive", seed=0)
    >>> net.hidden_weights.shape, bool(np.all(net.output_weights > 0))
    ((3, 20), True)
    """
    check_integer("input_dim", input_dim, 1)
    check_integer("k", k, 1)
    check_integer("near_parallel_pairs", near_parallel_pairs, 0)
    if 2 * near_parallel_pairs > k:
        raise ValueError(
            "`near_parallel_pairs` needs 2 * pairs <= k. "
            f"Received: near_parallel_pairs={near_parallel_pairs}, k={k}"
        )
    if near_parallel_pairs and input_dim < 2:
        raise ValueError("Near-parallel units need input_dim >= 2.")
    angle = check_number("parallel_angle", parallel_angle, minimum=0.0)
    if not isinstance(output_scale, (tuple, list)) or len(output_scale) != 2:
        raise ValueError(
            f"`output_scale` must be a pair (low, high). Received: output_scale={output_scale!r}"
        )
    low, high = output_scale
    check_number("output_scale[0]", low, minimum=0.0, strict=True)
    if check_number("output_scale[1]", high) < low:
        raise ValueError(f"`output_scale` must be (low, high) with low <= high. Received: {output_scale!r}")
    if seed is not None:
        check_integer("seed", seed, 0)
    rng = np.random.default_rng(seed)
    directions = _random_unit_vectors(rng, k, input_dim)
    for pair in range(near_parallel_pairs):
        base = directions[2 * pair]
        other = directions[2 * pair + 1] - (directions[2 * pair + 1] @ base) * base
        other /= np.linalg.norm(other)
        directions[2 * pair + 1] = math.cos(angle) * base + math.sin(angle) * other
    magnitudes = rng.uniform(low, high, size=k)
    return ReLUNetwork(directions, _planted_signs(rng, k, signs) * magnitudes)


def make_planted_regression(
    n_samples: int,
    input_dim: int,
    k: int,
    *,
    signs: str | Sequence[float] = "mixed",
    near_parallel_pairs: int = 0,
    parallel_angle: float = 0.1,
    output_scale: tuple[float, float] = (0.5, 1.5),
    label_noise: float = 0.0,
    dtype: str = "float64",
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, ReLUNetwork]:
    """Samples `(X, y, network)`: `X ~ N(0, I_d)`, `y = network(X) + noise`, from a `planted_network`.

    Args:
        n_samples: `N`, the number of rows of `X`.
        input_dim: `d`, as in `planted_network`.
        k: the number of hidden units, as in `planted_network`.
        signs: the signs of `lambda_i`, as in `planted_network`.
        near_parallel_pairs: pairs of near-parallel units, as in `planted_network`.
        parallel_angle: the angle within each pair, as in `planted_network`.
        output_scale: the interval of `|lambda_i|`, as in `planted_network`.
        label_noise: standard deviation of the Gaussian label noise, as a fraction of the standard deviation
            of `network(X)` (0.1 is a signal-to-noise ratio of 100 in variance).
        dtype: dtype of `X`, `"float64"` or `"float32"` (which halves the memory of large `N`); `y` is
            float64.
        seed: seeds the network and the samples; the same seed gives the same data.

    Examples:

    >>> X, y, net = make_planted_regression(1000, 5, 2, seed=0)
    >>> X.shape, y.shape, bool(np.allclose(y, net(X)))
    ((1000, 5), (1000,), True)
    """
    check_integer("n_samples", n_samples, 1)
    noise = check_number("label_noise", label_noise, minimum=0.0)
    try:
        dtype_name = np.dtype(dtype).name
    except TypeError:  # not a dtype at all
        dtype_name = None
    if dtype_name not in SAMPLE_DTYPES:
        raise ValueError(f"`dtype` must be one of {SAMPLE_DTYPES}. Received: dtype={dtype!r}")
    network = planted_network(
        input_dim,
        k,
        signs=signs,
        near_parallel_pairs=near_parallel_pairs,
        parallel_angle=parallel_angle,
        output_scale=output_scale,
        seed=seed,
    )
    rng = np.random.default_rng(None if seed is None else (seed, 1))
    inputs = rng.standard_normal((n_samples, input_dim), dtype=np.dtype(dtype))
    targets = network(inputs)
    if noise > 0.0:
        targets += noise * math.sqrt(population_variance(network)) * rng.standard_normal(n_samples)
    return inputs, targets, network
