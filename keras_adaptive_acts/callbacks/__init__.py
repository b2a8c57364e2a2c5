"""Training callbacks: schedules of the layers' hyper-parameters, and monitors of their activations.

Schedules (`NoiseAnnealing`, `ActivationMixing`, `GammaUplift`, in `schedules`) share one counting
machinery (`scheduling`): a position `n` in training steps or epochs, the layers of a type found at
any depth of the model, and the JAX state sync. Monitors (`SparsityMonitor`, `CompetitionMonitor`,
in `monitors`) measure chosen layers on a fixed sample of data every few epochs and write the values
into the epoch's `logs`.
"""

from keras_adaptive_acts.callbacks.monitors import CompetitionMonitor, SparsityMonitor
from keras_adaptive_acts.callbacks.schedules import ActivationMixing, GammaUplift, NoiseAnnealing

__all__ = ["ActivationMixing", "CompetitionMonitor", "GammaUplift", "NoiseAnnealing", "SparsityMonitor"]
