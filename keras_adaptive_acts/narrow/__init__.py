"""Learning narrow one-hidden-layer ReLU networks by moments, and initialising Keras models with them.

The public API: the learner, the exact Gaussian facts it rests on, the sample estimators it is built
from, and a planted-network generator to try it on. Everything but `to_keras` and the refinement is NumPy.
"""

from keras_adaptive_acts.narrow.decomposition import (
    contraction_directions,
    contraction_vectors,
    estimate_subspace,
    jennrich,
    merge_directions,
    rank_one_weights,
)
from keras_adaptive_acts.narrow.exact import (
    arccos_kernel,
    population_mse,
    population_variance,
    relative_population_mse,
    relu_hermite_coefficients,
)
from keras_adaptive_acts.narrow.inputs import gaussian_check, recommended_samples
from keras_adaptive_acts.narrow.keras_model import (
    build_keras_model,
    narrow_relu_model,
    network_from_keras,
    train_square_loss,
)
from keras_adaptive_acts.narrow.learner import NarrowReLULearner
from keras_adaptive_acts.narrow.moments import (
    first_moment,
    fourth_moment_contractions,
    low_degree_residual,
    projected_fourth_moment,
    second_moment,
)
from keras_adaptive_acts.narrow.network import ReLUNetwork
from keras_adaptive_acts.narrow.planted import make_planted_regression, planted_network
from keras_adaptive_acts.narrow.readout import least_squares_readout

__all__ = [
    "NarrowReLULearner",
    "ReLUNetwork",
    "arccos_kernel",
    "build_keras_model",
    "contraction_directions",
    "contraction_vectors",
    "estimate_subspace",
    "first_moment",
    "fourth_moment_contractions",
    "gaussian_check",
    "jennrich",
    "least_squares_readout",
    "low_degree_residual",
    "make_planted_regression",
    "merge_directions",
    "narrow_relu_model",
    "network_from_keras",
    "planted_network",
    "population_mse",
    "population_variance",
    "projected_fourth_moment",
    "rank_one_weights",
    "recommended_samples",
    "relative_population_mse",
    "relu_hermite_coefficients",
    "second_moment",
    "train_square_loss",
]
