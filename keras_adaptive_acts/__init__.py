"""keras-adaptive-acts: adaptive activation layers for Keras 3."""

from keras_adaptive_acts import ops
from keras_adaptive_acts.callbacks import NoiseAnnealing
from keras_adaptive_acts.layers import (
    CompetitiveReLU,
    NoisyGRUCell,
    NoisyHardSigmoid,
    NoisyHardTanh,
    NoisyLSTMCell,
    RReLU,
)
from keras_adaptive_acts.registry import get

__version__ = "0.1.0"

__all__ = [
    "CompetitiveReLU",
    "NoiseAnnealing",
    "NoisyGRUCell",
    "NoisyHardSigmoid",
    "NoisyHardTanh",
    "NoisyLSTMCell",
    "RReLU",
    "__version__",
    "get",
    "ops",
]
