"""From moment estimates to directions: the subspace, Jennrich's algorithm, and contraction-and-merge.

Even-order moments fix each direction only up to sign; the readout's `+-ReLU` features settle the sign.
"""

from __future__ import annotations

import numpy as np


def estimate_subspace(second: np.ndarray, contractions: np.ndarray, k: int) -> np.ndarray:
    """The top-`k` eigenvectors of `M2^2 + mean_t M_{g_t}^2`: an orthonormal basis, shape `(d, k)`.

    `M2 = E[y (x x^T - I)]` alone spans the neurons unless their terms cancel; the degree-4 contractions
    `M_{g_t}` (from `fourth_moment_contractions`) weight the neurons differently and fill such gaps. Squaring
    makes every term positive semi-definite, so neurons of opposite signs cannot cancel in the sum.
    """
    second = np.asarray(second, dtype=np.float64)
    combined = second @ second
    contractions = np.asarray(contractions, dtype=np.float64).reshape(-1, *second.shape)
    if len(contractions):
        combined += np.einsum("tij,tjk->ik", contractions, contractions) / len(contractions)
    eigenvalues, eigenvectors = np.linalg.eigh((combined + combined.T) / 2.0)
    return eigenvectors[:, np.argsort(eigenvalues)[::-1][:k]]


def contraction_vectors(
    second: np.ndarray, k: int, count: int, *, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """`count` random unit vectors `g` in the span of the top `min(2k, d)` eigenvectors of `|M2|`.

    A contraction with `g` weights neuron `i` by `<u_i, g>^2`: about `1/d` for `g` uniform on the whole
    sphere, while the estimate's noise does not shrink with it. Drawn where `M2` says the neurons are,
    `<u_i, g>^2` is about `1/(2k)` instead. On planted networks at d = 50, whole-sphere contractions made
    the subspace error 2-500x larger (about 50x in the median); these left it unchanged.
    """
    second = np.asarray(second, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh((second + second.T) / 2.0)
    span = eigenvectors[:, np.argsort(np.abs(eigenvalues))[::-1][: min(2 * k, second.shape[0])]]
    vectors = np.random.default_rng(seed).standard_normal((count, span.shape[1])) @ span.T
    return _unit_rows(vectors) if count else vectors


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)


def jennrich(
    tensor: np.ndarray, *, trials: int = 8, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Jennrich's algorithm on a symmetric `(k, k, k, k)` tensor `sum_i w_i v_i^(x)4`: returns the `v_i`.

    Two random contractions `A = T(a, a', ., .) = V diag(w <v, a><v, a'>) V^T` and `B` (likewise) share the
    eigenvectors of `A B^-1 = V diag(ratios) V^-1`: the columns of `V`, if the `v_i` are linearly
    independent. Estimated tensors make this noisy, so `trials` random pairs are tried and the one whose
    eigenvalues are the most real and the best separated is kept.

    Returns:
        Unit rows, shape `(k, k)`, in no particular order, each up to sign.
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    k = tensor.shape[0]
    rng = np.random.default_rng(seed)
    best, best_score = None, -np.inf
    for _ in range(trials):
        a, a2, b, b2 = rng.standard_normal((4, k))
        first = np.einsum("abcd,a,b->cd", tensor, a, a2)
        second = np.einsum("abcd,a,b->cd", tensor, b, b2)
        eigenvalues, eigenvectors = np.linalg.eig(first @ np.linalg.pinv(second))
        # Score: the smallest gap between eigenvalues relative to their scale, minus their imaginary parts.
        scale = np.max(np.abs(eigenvalues)) + 1e-300
        gaps = np.abs(eigenvalues[:, None] - eigenvalues[None, :])
        np.fill_diagonal(gaps, np.inf)
        score = (np.min(gaps) - np.max(np.abs(eigenvalues.imag))) / scale if k > 1 else 1.0
        if score > best_score:
            best, best_score = eigenvectors.real.T, score
    return _unit_rows(best)


def merge_directions(
    directions: np.ndarray, merge_angle: float, scores: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters unit vectors that lie within `merge_angle` radians of each other, modulo sign.

    Greedy: the highest-scoring vector opens a cluster and absorbs every vector within the angle (flipped
    to its sign); repeat with the rest. Each cluster's direction is the score-weighted mean of its members.

    Returns:
        `(centres, totals)`: unit rows of the clusters and their summed scores, best first.
    """
    directions = _unit_rows(np.asarray(directions, dtype=np.float64))
    scores = np.ones(len(directions)) if scores is None else np.asarray(scores, dtype=np.float64)
    remaining = np.argsort(scores)[::-1]
    threshold = np.cos(merge_angle)
    centres, totals = [], []
    while len(remaining):
        leader = directions[remaining[0]]
        cosines = directions[remaining] @ leader
        members = remaining[np.abs(cosines) >= threshold]
        signs = np.sign(directions[members] @ leader)
        centres.append((scores[members] * signs) @ directions[members])
        totals.append(scores[members].sum())
        remaining = remaining[np.abs(cosines) < threshold]
    order = np.argsort(totals)[::-1]
    return _unit_rows(np.array(centres))[order], np.array(totals)[order]


def contraction_directions(
    tensor: np.ndarray,
    *,
    n_contractions: int = 200,
    merge_angle: float = 0.15,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Directions from many random contractions of a symmetric `(k, k, k, k)` tensor, merged modulo sign.

    The top eigenvector (largest `|eigenvalue|`) of `T(g, g, ., .) = sum_i w_i <v_i, g>^2 v_i v_i^T` points to
    the neuron, or the cluster of near-parallel neurons, with the largest `|w_i| <v_i, g>^2`; different `g`
    find different neurons. The candidates are merged with `merge_directions`, scored by `|eigenvalue|`.
    Exact for orthogonal `v_i`; otherwise each eigenvector leans slightly towards the other neurons (a
    cosine of ~0.99 in 5 dimensions), which the readout and the refinement absorb. Jennrich's algorithm
    has no such bias.

    Returns:
        `(directions, totals)` as `merge_directions`: every cluster found, best supported first.
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_contractions, tensor.shape[0]))
    matrices = np.einsum("abcd,ta,tb->tcd", tensor, vectors, vectors)
    eigenvalues, eigenvectors = np.linalg.eigh((matrices + matrices.transpose(0, 2, 1)) / 2.0)
    top = np.argmax(np.abs(eigenvalues), axis=1)
    candidates = eigenvectors[np.arange(n_contractions), :, top]
    return merge_directions(candidates, merge_angle, np.abs(eigenvalues[np.arange(n_contractions), top]))
