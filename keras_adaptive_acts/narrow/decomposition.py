"""From moment estimates to directions: the subspace, Jennrich's algorithm, and contraction-and-merge.

Even-order moments fix each direction only up to sign; the readout's `+-ReLU` features settle the sign.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "contraction_directions",
    "contraction_vectors",
    "estimate_subspace",
    "jennrich",
    "merge_directions",
    "rank_one_weights",
]


def estimate_subspace(second: np.ndarray, contractions: np.ndarray, k: int) -> np.ndarray:
    """The top-`k` eigenvectors of `M2^2 + mean_t M_{g_t}^2`: an orthonormal basis, shape `(d, k)`.

    `M2 = E[y (x x^T - I)]` alone spans the neurons unless their terms cancel; the degree-4 contractions
    `M_{g_t}` (from `fourth_moment_contractions`) weight the neurons differently and fill such gaps. Squaring
    makes every term positive semi-definite, so neurons of opposite signs cannot cancel in the sum.
    """
    second = np.asarray(second, dtype=np.float64)
    contractions = np.asarray(contractions, dtype=np.float64).reshape(-1, *second.shape)
    # Divided by a power of two near their largest entry (exact, and the eigenvectors do not change), so
    # that squaring overflows for no finite estimate: inputs far from unit variance have huge moments.
    largest = max(np.max(np.abs(second), initial=0.0), np.max(np.abs(contractions), initial=0.0))
    scale = math.ldexp(1.0, int(np.frexp(largest)[1])) if 0.0 < largest < np.inf else 1.0
    second, contractions = second / scale, contractions / scale
    combined = second @ second
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
    `<u_i, g>^2` is about `1/(2k)` instead. On planted networks at d = 50, k = 2, whole-sphere contractions
    made the subspace error about 5x larger; these did not (checked in the tests).
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

    A cluster whose weighted mean is the zero vector (every score 0, as the contractions of an
    all-zero tensor give) has no direction and is left out.

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
        centre = (scores[members] * signs) @ directions[members]
        if np.any(centre):
            centres.append(centre)
            totals.append(scores[members].sum())
        remaining = remaining[np.abs(cosines) < threshold]
    if not centres:
        return np.zeros((0, directions.shape[1])), np.zeros(0)
    order = np.argsort(totals)[::-1]
    return _unit_rows(np.array(centres))[order], np.array(totals)[order]


def _top_eigenvectors(
    tensor: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenvectors (largest `|eigenvalue|`) of `T(g, g, ., .)` for `count` random `g`, and the values."""
    vectors = rng.standard_normal((count, tensor.shape[0]))
    matrices = np.einsum("abcd,ta,tb->tcd", tensor, vectors, vectors)
    eigenvalues, eigenvectors = np.linalg.eigh((matrices + matrices.transpose(0, 2, 1)) / 2.0)
    top = np.argmax(np.abs(eigenvalues), axis=1)
    return eigenvectors[np.arange(count), :, top], np.abs(eigenvalues[np.arange(count), top])


def rank_one_weights(tensor: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The least-squares `w` of `T ~ sum_l w_l v_l^(x)4` for given unit `v_l` (a small linear system)."""
    gram = (directions @ directions.T) ** 4
    moments = np.einsum("abcd,la,lb,lc,ld->l", tensor, directions, directions, directions, directions)
    return np.linalg.lstsq(gram, moments, rcond=1e-10)[0]


def _deflated(tensor: np.ndarray, directions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return tensor - np.einsum("l,la,lb,lc,ld->abcd", weights, directions, directions, directions, directions)


def contraction_directions(
    tensor: np.ndarray,
    count: int,
    *,
    n_contractions: int = 200,
    merge_angle: float = 0.15,
    polish_rounds: int = 200,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` directions of a symmetric `(k, k, k, k)` tensor, found one at a time by contractions.

    The top eigenvector (largest `|eigenvalue|`) of `T(g, g, ., .) = sum_i w_i <v_i, g>^2 v_i v_i^T` points to
    the neuron, or the cluster of near-parallel neurons, with the largest `|w_i| <v_i, g>^2`. Each round
    draws `n_contractions` random `g`, merges their top eigenvectors modulo sign (`merge_directions`,
    scored by `|eigenvalue|`), keeps the best cluster that is not within `merge_angle` of a direction
    found before, fits the weights of all directions found so far by least squares, and subtracts their
    terms from the tensor (deflation), so that weak neurons are not outvoted by strong ones.

    A contraction's top eigenvector leans towards the other neurons when they are not orthogonal; then
    `polish_rounds` passes replace each direction by the top eigenvector of the tensor with every other
    term deflated, contracted along the direction itself. The exact directions are a fixed point of these
    passes; from the first estimates they converge linearly (an exact tensor with 4 non-orthogonal
    neurons: to 1e-6 in about 100 passes, each pass costing O(count * k^4)).

    Returns:
        `(directions, weights)`: unit rows (fewer than `count` if the rest lie within `merge_angle` of those
        found, as near-parallel neurons do) and their least-squares weights.
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    rng = np.random.default_rng(seed)
    threshold = np.cos(merge_angle)
    found = np.zeros((0, tensor.shape[0]))
    residual = tensor
    for _ in range(count):
        candidates, scores = _top_eigenvectors(residual, n_contractions, rng)
        centres, _ = merge_directions(candidates, merge_angle, scores)
        fresh = [c for c in centres if not np.any(np.abs(found @ c) >= threshold)]
        if not fresh:
            break
        found = np.concatenate([found, fresh[:1]])
        residual = _deflated(tensor, found, rank_one_weights(tensor, found))
    for _ in range(polish_rounds if len(found) > 1 else 0):
        for index in range(len(found)):
            weights = rank_one_weights(tensor, found)
            others = np.arange(len(found)) != index
            alone = _deflated(tensor, found[others], weights[others])
            matrix = np.einsum("abcd,a,b->cd", alone, found[index], found[index])
            eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
            update = eigenvectors[:, np.argmax(np.abs(eigenvalues))]
            found[index] = update * np.sign(update @ found[index] or 1.0)
    return found, rank_one_weights(tensor, found)
