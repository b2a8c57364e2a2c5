"""The per-backend forms of CompetitiveReLU's slice sums against NumPy in float64."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_adaptive_acts.ops import competitive_paths
from keras_adaptive_acts.ops.competitive_paths import sums_over_slices


def _numpy(tensor):
    return ops.convert_to_numpy(tensor)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((6, 4096), (1,)), ((3, 8, 8, 5), (1, 2, 3)), ((3, 8, 8, 5), (1, 2)), ((6, 0), (1,))],
    ids=["flat-view", "per-sample", "per-channel", "empty-slices"],
)
def test_the_sums_are_numpys_to_float32_rounding(shape, axes):
    term = np.random.default_rng(0).normal(size=shape).astype("float32") ** 2
    expected = np.sum(term.astype("float64"), axis=axes, keepdims=True)
    actual = _numpy(sums_over_slices(ops.convert_to_tensor(term), axes))
    assert actual.shape == expected.shape
    # A sum of n positive float32 terms in any order: relative error at most about n * 2**-24.
    np.testing.assert_allclose(actual, expected, rtol=max(shape[-1], 1) * 2**-24 + 1e-7, atol=0)


def test_a_non_finite_row_changes_no_other_row():
    term = np.random.default_rng(1).normal(size=(4, 1024)).astype("float32")
    clean = _numpy(sums_over_slices(ops.convert_to_tensor(term), (1,)))
    term[1, 7], term[2, 0] = np.nan, np.inf
    dirty = _numpy(sums_over_slices(ops.convert_to_tensor(term), (1,)))
    assert np.isnan(dirty[1, 0]) and dirty[2, 0] == np.inf
    np.testing.assert_array_equal(dirty[[0, 3]], clean[[0, 3]])


def test_the_flat_view_and_the_product_form_are_tensorflows_alone():
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert competitive_paths.uses_flat_slices() is on_tensorflow
    if not on_tensorflow:
        return
    import tensorflow as tf

    # Against TensorFlow's own device list: the product with ones only where it sees CPUs alone.
    assert competitive_paths._only_cpus_visible() is all(
        device.device_type == "CPU" for device in tf.config.list_logical_devices()
    )
    graph = tf.function(lambda term: sums_over_slices(term, (1,))).get_concrete_function(
        tf.TensorSpec((6, 4096), tf.float32)
    )
    kinds = {operation.type for operation in graph.graph.get_operations()}
    if competitive_paths._only_cpus_visible():
        assert "MatMul" in kinds and "Sum" not in kinds, kinds
    else:
        assert "Sum" in kinds and "MatMul" not in kinds, kinds
