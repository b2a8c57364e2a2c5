"""Learning narrow one-hidden-layer ReLU networks by moments, and initialising Keras models with them.

What a user calls is importable from here (and listed in `__all__`): the learner and the network type it
returns, the planted-data helpers to try it on, the population error functions to judge a fit, the Keras
bridge, and the input helpers. Everything but the Keras bridge, `NarrowReLULearner.to_keras` and the
refinement is NumPy.

The algorithm's steps are not re-exported: they stay importable from their modules, for a reader who wants
to follow or reuse one stage of the learner:

- `keras_adaptive_acts.narrow.moments`: the sample estimators of the Hermite moment tensors;
- `keras_adaptive_acts.narrow.decomposition`: the subspace, Jennrich's algorithm, contraction-and-merge;
- `keras_adaptive_acts.narrow.readout`: the least-squares output layer;
- `keras_adaptive_acts.narrow.exact`: the exact Gaussian facts (Hermite coefficients, arc-cosine kernel),
  beside the error functions re-exported here.
"""

from keras_adaptive_acts.narrow.exact import population_mse, population_variance, relative_population_mse
from keras_adaptive_acts.narrow.inputs import gaussian_check, recommended_samples
from keras_adaptive_acts.narrow.keras_model import (
    build_keras_model,
    narrow_relu_model,
    network_from_keras,
    train_square_loss,
)
from keras_adaptive_acts.narrow.learner import NarrowReLULearner
from keras_adaptive_acts.narrow.network import ReLUNetwork
from keras_adaptive_acts.narrow.planted import make_planted_regression, planted_network

__all__ = [
    "NarrowReLULearner",
    "ReLUNetwork",
    "build_keras_model",
    "gaussian_check",
    "make_planted_regression",
    "narrow_relu_model",
    "network_from_keras",
    "planted_network",
    "population_mse",
    "population_variance",
    "recommended_samples",
    "relative_population_mse",
    "train_square_loss",
]
