"""keras-adaptive-acts: adaptive activation layers for Keras 3."""

from keras_adaptive_acts import narrow, ops, regularizers, surgery
from keras_adaptive_acts.callbacks import (
    ActivationMixing,
    CompetitionMonitor,
    GammaUplift,
    NoiseAnnealing,
    SparsityMonitor,
)
from keras_adaptive_acts.layers import (
    TLU,
    ActivitySparsity,
    CompetitiveReLU,
    JSquaredReLU,
    LiSHT,
    MixedActivation,
    NoisyGRUCell,
    NoisyHardSigmoid,
    NoisyHardTanh,
    NoisyLSTMCell,
    RestrictedLayerNormalization,
    RReLU,
    Snake,
    SparsifiedMLP,
    ZerothBias,
    inference_noise,
)
from keras_adaptive_acts.measurement import measure_sparsity
from keras_adaptive_acts.registry import get

__version__ = "0.1.0"


def __getattr__(name: str):
    # `tuning` needs the optional KerasTuner and `export` needs TensorFlow, so they are imported on
    # first use, not with the package (and are not in `__all__`, so that `import *` works without).
    if name in ("tuning", "export"):
        import importlib

        return importlib.import_module(f"keras_adaptive_acts.{name}")
    raise AttributeError(f"module 'keras_adaptive_acts' has no attribute {name!r}")


__all__ = [
    "TLU",
    "ActivationMixing",
    "ActivitySparsity",
    "CompetitionMonitor",
    "CompetitiveReLU",
    "GammaUplift",
    "JSquaredReLU",
    "LiSHT",
    "MixedActivation",
    "NoiseAnnealing",
    "NoisyGRUCell",
    "NoisyHardSigmoid",
    "NoisyHardTanh",
    "NoisyLSTMCell",
    "RReLU",
    "RestrictedLayerNormalization",
    "Snake",
    "SparsifiedMLP",
    "SparsityMonitor",
    "ZerothBias",
    "__version__",
    "get",
    "inference_noise",
    "measure_sparsity",
    "narrow",
    "ops",
    "regularizers",
    "surgery",
]
