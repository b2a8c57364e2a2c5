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


# The layer-level tests: what the Keras version matrix and the other backends run (`-m layer_level`).
# Paths relative to tests/; a folder takes every test under it.
LAYER_LEVEL = (
    "layers/",
    "ops/",
    "test_backends.py",
    "test_bad_input.py",
    "test_callbacks.py",
    "test_floor_file.py",
    "test_fuzz_regressions.py",
    "test_keras_bugs.py",
    "test_keras_internals.py",
    "test_measurement.py",
    "test_properties.py",
    "test_registry.py",
    "test_regularizers.py",
    "test_sparsity_callbacks.py",
    "test_surgery.py",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "layer_level: run by the Keras version matrix and the backend jobs")


def pytest_collection_modifyitems(config, items):
    tests_folder = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        relative = os.path.relpath(str(item.path), tests_folder).replace(os.sep, "/")
        if any(
            relative == path or (path.endswith("/") and relative.startswith(path)) for path in LAYER_LEVEL
        ):
            item.add_marker(pytest.mark.layer_level)
