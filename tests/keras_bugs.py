"""Keras bugs that the tests meet, each pinned to the Keras versions that have it.

Each marker is an expected failure with `strict=True`. Where the affected releases are known, the pin
names them: when a Keras release fixes the bug, the test passes, pytest reports the pin as broken, and
the pin comes out. Where a bug is seen only in an unreleased Keras, whether the installed Keras has it
is asked of Keras itself (a probe with Keras alone), so that the release, fixed or not, keeps the tests
green and the pin honest. `tests/test_keras_bugs.py` holds a reproduction of each bug with Keras alone,
so that it is clear the fault is not this package's.
"""

import keras
import numpy as np
import pytest

KERAS_RELEASE = tuple(int(part) for part in keras.__version__.split(".")[:2])


def rebuilt_model_keeps_recorded_training_false() -> bool:
    """Whether this Keras runs a layer in inference mode when its recorded `training=False` meets
    `model(x, training=True)`: the bug below, reproduced with Keras' own `Dropout` and nothing else.

    Builds a one-layer Functional model, writes into its config the `training=False` that Keras 3.10
    to 3.15 record in each node of a layer whose `call` takes `training`, rebuilds it and calls it
    in training mode: `Dropout(0.5)` must then drop about half of 100 ones.
    """
    inputs = keras.Input((100,))
    config = keras.Model(inputs, keras.layers.Dropout(0.5, seed=1)(inputs)).get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "Dropout":
            for node in layer["inbound_nodes"]:
                node["kwargs"]["training"] = False
    rebuilt = keras.Model.from_config(config)
    outputs = keras.ops.convert_to_numpy(rebuilt(np.ones((1, 100), "float32"), training=True))
    dropped = int(np.sum(outputs == 0))
    if not (dropped == 0 or 20 < dropped < 80):
        raise AssertionError(f"Dropout(0.5) in training mode dropped {dropped} of 100 entries")
    return dropped == 0


# keras-nightly 3.16.0.dev (seen on 3.16.0.dev2026102704): a Functional model rebuilt from a config
# written by Keras <= 3.15 (which records `training=False` in the keyword arguments of every node of a
# layer whose `call` takes `training`) keeps that recorded value, so `model(x, training=True)` runs
# those layers in inference mode: Keras' own Dropout drops nothing, and a noisy layer draws no noise.
# Keras 3.10 to 3.15 let the outer call's `training` win. Not found in the stored copy of Keras'
# issue tracker (keras-team/keras) as of 2026-12-04; reproduction: tests/test_keras_bugs.py.
#
# Where it applies is asked of Keras itself, not read from its version: Keras 3.16.0 was not released
# when this was written, and a pin on "3.16.0.dev" alone would turn the README's test command red for
# every newcomer if 3.16.0 shipped with the bug (while a pin on ">= 3.16" would, strict, turn it red if
# 3.16.0 shipped fixed). Keras 3.10 to 3.15 are known not to have it: the probe runs from 3.16 on only,
# and `tests/test_keras_bugs.py` checks the older ones.
NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE = pytest.mark.xfail(
    condition=KERAS_RELEASE >= (3, 16) and rebuilt_model_keeps_recorded_training_false(),
    reason=(
        f"Keras {keras.__version__} keeps the training=False that a config written by Keras <= 3.15 "
        "recorded in each node, so model(x, training=True) runs those layers in inference mode (Keras' "
        "Dropout too; see tests/test_keras_bugs.py)"
    ),
    strict=True,
)

# Keras' PyTorch backend, from Keras 3.12 (whose `result_type` began to map 64-bit types to 32-bit
# outside TensorFlow; 3.11.3's did not) to 3.15.1 and keras-nightly 3.16.0.dev2026102704:
# `ops.maximum`, `ops.minimum` and `ops.divide_no_nan` cast their inputs to `keras.backend.result_type`,
# so two float64 tensors give a float32 result (JAX and TensorFlow keep float64). Reported as
# keras-team/keras#23223 (closed by #23225; the releases above still have it).
# `keras_adaptive_acts/ops/dtype_preserving.py` works around it; reproduction: tests/test_keras_bugs.py.
TORCH_MAXIMUM_ROUNDS_FLOAT64 = pytest.mark.xfail(
    condition=keras.backend.backend() == "torch" and KERAS_RELEASE >= (3, 12),
    reason=(
        "Keras' PyTorch ops.maximum, ops.minimum and ops.divide_no_nan round float64 inputs to float32 "
        "(keras-team/keras#23223; see tests/test_keras_bugs.py); keras_adaptive_acts.ops.dtype_preserving "
        "works around it"
    ),
    strict=True,
)

# Keras' PyTorch and JAX backends (JAX with 64-bit types enabled), the same releases: `ops.mean` casts
# its input to `result_type(dtype, "float32")`, float32, sums there and casts the mean back, so a
# float64 mean carries float32's precision under a float64 dtype. Keras' own float64
# `LayerNormalization` is then float32-precise there. Not found in the stored copy of Keras' issue
# tracker as of 2026-12-07 (keras-team/keras#23704 reports the same `result_type` cause for `Dense`).
# `keras_adaptive_acts/ops/dtype_preserving.py` works around it; reproduction: tests/test_keras_bugs.py.
MEAN_ROUNDS_FLOAT64 = pytest.mark.xfail(
    condition=keras.backend.backend() in ("torch", "jax") and KERAS_RELEASE >= (3, 12),
    reason=(
        "Keras' PyTorch and JAX ops.mean sum float64 in float32 (see tests/test_keras_bugs.py); "
        "keras_adaptive_acts.ops.dtype_preserving works around it"
    ),
    strict=True,
)


def dense_keeps_float64() -> bool:
    """Whether a float64 `Dense` computes in float64 here, asked of Keras alone (and, on JAX, of
    whether its 64-bit types are enabled): `Dense(1, use_bias=False)` with a kernel of 1 must return
    `1 + 2**-40`, which float32 rounds to 1, as float64."""
    layer = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", dtype="float64")
    value = 1.0 + 2.0**-40
    output = layer(keras.ops.convert_to_tensor(np.array([[value]]), "float64"))
    return (
        keras.backend.standardize_dtype(output.dtype) == "float64"
        and float(keras.ops.convert_to_numpy(output)[0, 0]) == value
    )


# Keras' PyTorch backend, from Keras 3.12 (the same `result_type` change as above) to 3.15.1 and
# keras-nightly 3.16.0.dev2026102704: `ops.matmul` casts two float64 inputs to float32 and multiplies
# them there, so a float64 `Dense` computes in float32 (with a bias, its output is float64 again,
# but rounded). Reported as keras-team/keras#23704 (open). `narrow.build_keras_model(dtype="float64")`
# refuses to build a model that would not hold its weights (the package leaves Dense and the recurrent
# cells' products to Keras: docs/guides/backends.md); reproduction: tests/test_keras_bugs.py.
TORCH_DENSE_ROUNDS_FLOAT64 = pytest.mark.xfail(
    condition=keras.backend.backend() == "torch" and KERAS_RELEASE >= (3, 12),
    reason=(
        "Keras' PyTorch ops.matmul computes two float64 inputs in float32, so a float64 Dense does "
        "(keras-team/keras#23704; see tests/test_keras_bugs.py)"
    ),
    strict=True,
)
