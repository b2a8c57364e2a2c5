"""Test configuration: the Keras backend (and JAX's 64-bit mode) is chosen before anything imports keras."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX computes in float32 unless 64-bit types are enabled before it is imported; the float64 checks
# (finite differences, dtype policies) need them.
os.environ.setdefault("JAX_ENABLE_X64", "1")

import keras
import pytest


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and restores float32 afterwards."""

    def set_policy(name):
        keras.config.set_dtype_policy(name)

    yield set_policy
    keras.config.set_dtype_policy("float32")
