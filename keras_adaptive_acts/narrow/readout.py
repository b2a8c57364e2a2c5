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
    `relu(t) - relu(-t) = t`, so the pair also absorbs any linear part of the target. The normal
    equations are accumulated a batch at a time (memory O(batch * m)) and solved with a small ridge
    (`ridge` times the mean feature energy) that keeps near-parallel directions well posed.

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
    regulariser = ridge * np.trace(gram) / width
    solution = np.linalg.solve(gram + regulariser * np.eye(width), moment)
    return ReLUNetwork(hidden, solution[:-1], solution[-1])
