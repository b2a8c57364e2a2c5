"""Keras bugs that the tests meet, each pinned to the Keras versions that have it.

Each marker is an expected failure with `strict=True`: when a Keras release fixes the bug, the test
passes, pytest reports the pin as broken, and the pin comes out. `tests/test_keras_bugs.py` holds a
reproduction of each bug with Keras alone, so that it is clear the fault is not this package's.
"""

import keras
import pytest

# keras-nightly 3.16.0.dev (seen on 3.16.0.dev2026102704): a Functional model rebuilt from a config
# written by Keras <= 3.15 (which records `training=False` in the keyword arguments of every node of a
# layer whose `call` takes `training`) keeps that recorded value, so `model(x, training=True)` runs
# those layers in inference mode: Keras' own Dropout drops nothing, and a noisy layer draws no noise.
# Keras 3.10 to 3.15 let the outer call's `training` win. Not found in the stored copy of Keras'
# issue tracker (keras-team/keras) as of 2026-12-04; reproduction: tests/test_keras_bugs.py.
NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE = pytest.mark.xfail(
    condition=keras.__version__.startswith("3.16.0.dev"),
    reason=(
        "keras-nightly 3.16.0.dev keeps the training=False that a config written by Keras <= 3.15 "
        "recorded in each node, so model(x, training=True) runs those layers in inference mode (Keras' "
        "Dropout too; see tests/test_keras_bugs.py)"
    ),
    strict=True,
)

# Keras' PyTorch backend, from Keras 3.12 (whose `result_type` began to map 64-bit types to 32-bit
# outside TensorFlow; 3.11.3's did not) to 3.15.1 and keras-nightly 3.16.0.dev2026102704: `ops.maximum`
# and `ops.minimum` cast both inputs to `keras.backend.result_type`, so two float64 tensors give a
# float32 maximum (JAX and TensorFlow keep float64). Reported as keras-team/keras#23223 (closed by
# #23225; the releases above still have it). `keras_adaptive_acts/ops/maximum.py` works around it;
# reproduction: tests/test_keras_bugs.py.
KERAS_RELEASE = tuple(int(part) for part in keras.__version__.split(".")[:2])
TORCH_MAXIMUM_ROUNDS_FLOAT64 = pytest.mark.xfail(
    condition=keras.backend.backend() == "torch" and KERAS_RELEASE >= (3, 12),
    reason=(
        "Keras' PyTorch ops.maximum rounds float64 inputs to float32 (keras-team/keras#23223; "
        "see tests/test_keras_bugs.py); keras_adaptive_acts.ops.maximum works around it"
    ),
    strict=True,
)
