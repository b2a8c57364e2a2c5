"""The package's public layers, one per module."""

from keras_adaptive_acts.layers.activity_sparsity import ActivitySparsity
from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU
from keras_adaptive_acts.layers.j_squared_relu import JSquaredReLU
from keras_adaptive_acts.layers.lisht import LiSHT
from keras_adaptive_acts.layers.mixed_activation import MixedActivation
from keras_adaptive_acts.layers.noise import inference_noise
from keras_adaptive_acts.layers.noisy_gru_cell import NoisyGRUCell
from keras_adaptive_acts.layers.noisy_hard_sigmoid import NoisyHardSigmoid
from keras_adaptive_acts.layers.noisy_hard_tanh import NoisyHardTanh
from keras_adaptive_acts.layers.noisy_lstm_cell import NoisyLSTMCell
from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization
from keras_adaptive_acts.layers.rrelu import RReLU
from keras_adaptive_acts.layers.snake import Snake
from keras_adaptive_acts.layers.sparsified_mlp import SparsifiedMLP
from keras_adaptive_acts.layers.tlu import TLU
from keras_adaptive_acts.layers.zeroth_bias import ZerothBias

__all__ = [
    "TLU",
    "ActivitySparsity",
    "CompetitiveReLU",
    "JSquaredReLU",
    "LiSHT",
    "MixedActivation",
    "NoisyGRUCell",
    "NoisyHardSigmoid",
    "NoisyHardTanh",
    "NoisyLSTMCell",
    "RReLU",
    "RestrictedLayerNormalization",
    "Snake",
    "SparsifiedMLP",
    "ZerothBias",
    "inference_noise",
]
