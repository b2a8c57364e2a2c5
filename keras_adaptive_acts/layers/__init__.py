"""The package's public layers, one per module."""

from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU
from keras_adaptive_acts.layers.noisy_gru_cell import NoisyGRUCell
from keras_adaptive_acts.layers.noisy_hard_sigmoid import NoisyHardSigmoid
from keras_adaptive_acts.layers.noisy_hard_tanh import NoisyHardTanh
from keras_adaptive_acts.layers.noisy_lstm_cell import NoisyLSTMCell
from keras_adaptive_acts.layers.rrelu import RReLU

__all__ = ["CompetitiveReLU", "NoisyGRUCell", "NoisyHardSigmoid", "NoisyHardTanh", "NoisyLSTMCell", "RReLU"]
