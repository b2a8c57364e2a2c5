"""The output layer by least squares on `[relu(<v_j, x>), relu(-<v_j, x>), 1]` features."""

from __future__ import annotations

import numpy as np

from keras_adaptive_acts.narrow.moments import DEFAULT_BATCH_SIZE, iterate_batches
from keras_adaptive_acts.narrow.network import ReLUNetwork

__all__ = ["least_squares_readout"]


def least_squares_readout(
    inputs: np.ndarray,
    targets: np.ndarray,
    directions: np.ndarray,
    *,
    ridge: float = 1e-8,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReLUNetwork:
    """Fits the output weights and bias of a network with hidden units `[v_1 .. v_m, -v_1 .. -v_m]`.

    Both signs of each direction are features because even-order moments find `v_j` only up to sign;
    `relu(t) - relu(-t) = t`, so the pairs also absorb the linear part of the target that lies in the
    span of the `v_j` (and only that part: a linear term along a direction outside it stays unfitted).
    The normal equations are accumulated a batch at a time (memory O(batch * m)) and solved with a small
    ridge (`ridge` times the mean feature energy) that keeps near-parallel directions well posed; with
    `ridge=0` they are solved by minimum-norm least squares instead.

    Returns:
        A `ReLUNetwork` of width `2 m`: the first `m` rows are `directions`, the next `m` their negatives.
    """
    directions = np.asarray(directions, dtype=np.float64)
    hidden = np.concatenate([directions, -directions])
    width = hidden.shape[0] + 1
    gram = np.zeros((width, width))
    moment = np.zeros(width)
    for x, y in iterate_batches(inputs, targets, batch_size):
        features = np.empty((len(x), width))
        features[:, :-1] = np.maximum(x @ hidden.T, 0.0)
        features[:, -1] = 1.0
        gram += features.T @ features
        moment += features.T @ y
    if ridge == 0.0:
        # No ridge: the system is singular whenever two features coincide (k above the target's width,
        # a direction found twice), and `solve` would raise a bare LinAlgError. The minimum-norm least
        # squares solution is the limit of the ridge solution as the ridge goes to 0.
        solution = np.linalg.lstsq(gram, moment, rcond=None)[0]
    else:
        regulariser = ridge * np.trace(gram) / width
        solution = np.linalg.solve(gram + regulariser * np.eye(width), moment)
    return ReLUNetwork(hidden, solution[:-1], solution[-1])
