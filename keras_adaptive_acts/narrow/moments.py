"""Sample estimators of the Hermite moment tensors `T_l = E[y He_l(x)]`, in batches of rows.

Each estimator reads `X` a batch at a time (an array or a `np.load(..., mmap_mode="r")` memmap), so its
working memory is O(batch * d + d^2) besides `X` and `y` themselves; no estimator forms a `d^4` tensor.
For `y = sum_i lambda_i relu(<u_i, x>)` and unit `u_i`, each estimate is unbiased for
`T_l = c_l sum_i lambda_i u_i^(x)l` (`c_l` from `relu_hermite_coefficients`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = [
    "first_moment",
    "fourth_moment_contractions",
    "low_degree_residual",
    "projected_fourth_moment",
    "second_moment",
]

# Rows per batch: 8192 rows of d = 50 are 3 MiB of float64.
DEFAULT_BATCH_SIZE = 8192


def iterate_batches(
    inputs: np.ndarray, targets: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields `(x, y)` float64 batches of at most `batch_size` rows."""
    for start in range(0, len(inputs), batch_size):
        yield (
            np.asarray(inputs[start : start + batch_size], dtype=np.float64),
            np.asarray(targets[start : start + batch_size], dtype=np.float64),
        )


def first_moment(
    inputs: np.ndarray, targets: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """`E[y x]`, shape `(d,)`: `0.5 * sum_i lambda_i u_i` for a ReLU network."""
    total = np.zeros(inputs.shape[1])
    for x, y in iterate_batches(inputs, targets, batch_size):
        total += y @ x
    return total / len(inputs)


def second_moment(
    inputs: np.ndarray, targets: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """`E[y (x x^T - I)]`, shape `(d, d)`: `(1 / sqrt(2 pi)) sum_i lambda_i u_i u_i^T` for a ReLU network."""
    total = np.zeros((inputs.shape[1], inputs.shape[1]))
    weight = 0.0
    for x, y in iterate_batches(inputs, targets, batch_size):
        total += (x * y[:, None]).T @ x
        weight += y.sum()
    total[np.diag_indices_from(total)] -= weight
    return total / len(inputs)


def fourth_moment_contractions(
    inputs: np.ndarray, targets: np.ndarray, vectors: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """`M_g = E[y He_4(x)](g, g, ., .)` for each row `g` of `vectors`, without forming the degree-4 tensor.

    For one `g`, with `s = <g, x>` and `r = |g|^2`, the contracted Hermite tensor is the matrix

    ```
    He_4(x)(g, g, ., .) = (s^2 - r) (x x^T - I) - 2 s (x g^T + g x^T) + 2 g g^T
    ```

    and for a ReLU network `M_g = c_4 sum_i lambda_i <u_i, g>^2 u_i u_i^T` (`c_4 = -1 / sqrt(2 pi)`).

    Args:
        inputs: `X`, shape `(N, d)`.
        targets: `y`, shape `(N,)`.
        vectors: the contraction vectors, shape `(t, d)` (or `(d,)` for one).

    Returns:
        Shape `(t, d, d)` (or `(d, d)` for one vector).
    """
    g = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    count, dim = g.shape
    gram = np.zeros((count, dim, dim))
    scalar = np.zeros(count)  # sum_n y (s^2 - r)
    cross = np.zeros((count, dim))  # sum_n y s x
    squared_norms = np.einsum("td,td->t", g, g)
    weight = 0.0  # sum_n y
    for x, y in iterate_batches(inputs, targets, batch_size):
        s = x @ g.T  # (batch, t)
        weights = y[:, None] * (s**2 - squared_norms)
        for index in range(count):
            gram[index] += (x * weights[:, index : index + 1]).T @ x
        scalar += weights.sum(axis=0)
        cross += (y[:, None] * s).T @ x
        weight += y.sum()
    moments = gram - scalar[:, None, None] * np.eye(dim)
    outer = np.einsum("ti,tj->tij", cross, g)
    moments -= 2.0 * (outer + outer.transpose(0, 2, 1))
    moments += 2.0 * weight * np.einsum("ti,tj->tij", g, g)
    moments /= len(inputs)
    return moments[0] if np.ndim(vectors) == 1 else moments


def projected_fourth_moment(
    inputs: np.ndarray, targets: np.ndarray, basis: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """`E[y He_4(P^T x)]`, the degree-4 moment tensor of the inputs projected onto the columns of `basis`.

    With orthonormal columns (`P`, shape `(d, k)`), `z = P^T x ~ N(0, I_k)`, and the result is the
    `(k, k, k, k)` tensor `c_4 sum_i lambda_i (P^T u_i)^(x)4`: cheap for a narrow network, where `k` is small.
    """
    basis = np.asarray(basis, dtype=np.float64)
    k = basis.shape[1]
    eye = np.eye(k)
    total = np.zeros((k, k, k, k))
    second = np.zeros((k, k))
    weight = 0.0
    for x, y in iterate_batches(inputs, targets, batch_size):
        z = x @ basis
        yz = z * y[:, None]
        pairs_of_z = (z[:, :, None] * z[:, None, :]).reshape(len(z), k * k)
        total += ((yz[:, :, None] * z[:, None, :]).reshape(len(z), k * k).T @ pairs_of_z).reshape(k, k, k, k)
        second += yz.T @ z
        weight += y.sum()
    # He_4(z)_abcd = z_a z_b z_c z_d - (the 6 terms z_p z_q delta_rs) + (the 3 terms delta delta)
    pairs = sum(
        np.einsum(f"{pq},{rs}->abcd", second, eye)
        for pq, rs in (("ab", "cd"), ("ac", "bd"), ("ad", "bc"), ("bc", "ad"), ("bd", "ac"), ("cd", "ab"))
    )
    deltas = sum(
        np.einsum(f"{pq},{rs}->abcd", eye, eye) for pq, rs in (("ab", "cd"), ("ac", "bd"), ("ad", "bc"))
    )
    return (total - pairs + weight * deltas) / len(inputs)


def low_degree_residual(
    inputs: np.ndarray,
    targets: np.ndarray,
    mean: float,
    first: np.ndarray,
    second: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """`y` minus its Hermite expansion up to degree 2: `y - mean - <first, x> - (x^T S x - tr S) / 2`.

    `He_4` is orthogonal to every polynomial of degree < 4, so the degree-4 moments of the residual equal
    those of `y`; but the residual's variance is far smaller (degrees 0-2 carry ~98% of a ReLU's energy),
    and so is the variance of the degree-4 estimates. Pass `mean = E[y]`, `first = E[y x]`,
    `second = E[y (x x^T - I)]`.
    """
    residual = np.empty(len(inputs))
    trace = float(np.trace(second))
    for start in range(0, len(inputs), batch_size):
        x = np.asarray(inputs[start : start + batch_size], dtype=np.float64)
        y = np.asarray(targets[start : start + batch_size], dtype=np.float64)
        quadratic = 0.5 * (((x @ second) * x).sum(axis=1) - trace)
        residual[start : start + len(x)] = y - mean - x @ first - quadratic
    return residual
