"""The per-backend forms of CompetitiveReLU's slice sums against NumPy in float64."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_adaptive_acts.ops import competitive_paths
from keras_adaptive_acts.ops.competitive_paths import masked_product_sums, sums_over_slices


def _numpy(tensor):
    return ops.convert_to_numpy(tensor)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((6, 4096), (1,)),
        ((3, 8, 8, 5), (1, 2, 3)),
        ((3, 8, 8, 5), (1, 2)),
        ((3, 4, 7, 5), (2, 3)),
        ((2, 3, 9), (2,)),
        ((6, 0), (1,)),
        ((2, 2, 0, 1), (3,)),
        ((0, 4, 3), (1, 2)),
    ],
    ids=[
        "rows",
        "per-sample",
        "per-channel",
        "trailing-two",
        "per-token",
        "empty-slices",
        "no-rows",
        "no-batch",
    ],
)
def test_the_sums_are_numpys_to_float32_rounding(shape, axes):
    term = np.random.default_rng(0).normal(size=shape).astype("float32") ** 2
    expected = np.sum(term.astype("float64"), axis=axes, keepdims=True)
    actual = _numpy(sums_over_slices(ops.convert_to_tensor(term), axes))
    assert actual.shape == expected.shape
    # A sum of n positive float32 terms in any order: relative error at most about n * 2**-24.
    np.testing.assert_allclose(actual, expected, rtol=max(shape[-1], 1) * 2**-24 + 1e-7, atol=0)


@pytest.mark.parametrize(("shape", "axes"), [((3, 8, 8, 5), (1, 2, 3)), ((3, 8, 8, 5), (1, 2))])
def test_masked_product_sums_are_numpys_and_drop_what_the_mask_drops(shape, axes):
    # Per sample the term is a product (the sums are products with ones), per channel a select:
    # both give the float64 sum, and an infinite `first` where the mask is off adds nothing.
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")
    mask = second > 0
    first[~mask] = np.where(rng.uniform(size=(~mask).sum()) < 0.01, np.inf, first[~mask])
    expected = np.sum(np.where(mask, first.astype("float64") * second, 0.0), axis=axes, keepdims=True)
    tensors = (ops.convert_to_tensor(t) for t in (mask, first, second))
    actual = _numpy(masked_product_sums(*tensors, axes))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_a_non_finite_row_changes_no_other_row():
    term = np.random.default_rng(1).normal(size=(4, 1024)).astype("float32")
    clean = _numpy(sums_over_slices(ops.convert_to_tensor(term), (1,)))
    term[1, 7], term[2, 0] = np.nan, np.inf
    dirty = _numpy(sums_over_slices(ops.convert_to_tensor(term), (1,)))
    assert np.isnan(dirty[1, 0]) and dirty[2, 0] == np.inf
    np.testing.assert_array_equal(dirty[[0, 3]], clean[[0, 3]])


def _operation_types(function, spec):
    import tensorflow as tf

    graph = tf.function(function).get_concrete_function(spec).graph
    return [operation.type for operation in graph.get_operations()]


def test_the_sums_are_products_with_ones_where_xla_sees_only_cpus():
    backend = keras.backend.backend()
    # (Keras' distribution API has no PyTorch implementation: `list_devices` fails there.)
    xla = backend in ("tensorflow", "jax")
    products = xla and all(device.startswith("cpu") for device in keras.distribution.list_devices())
    assert competitive_paths._sums_as_products() is products
    assert competitive_paths.sums_are_products((None, 8, 8, 5), (1, 2, 3)) is products
    assert competitive_paths.sums_are_products((None, 8, 8, 5), (1, 2)) is False
    if backend == "tensorflow":
        import tensorflow as tf

        # Against TensorFlow's own device list, not Keras' view of it.
        tensorflow_cpus_only = all(device.device_type == "CPU" for device in tf.config.list_logical_devices())
        assert competitive_paths._only_cpus_visible() is tensorflow_cpus_only
        # Trailing axes, the batch unknown: one view of the term, one product, one reshape back.
        kinds = _operation_types(
            lambda term: sums_over_slices(term, (1, 2, 3)), tf.TensorSpec((None, 8, 8, 5))
        )
        if products:
            assert kinds.count("Reshape") == 2 and "MatMul" in kinds and "Sum" not in kinds, kinds
        else:
            assert "Reshape" not in kinds and "MatMul" not in kinds and "Sum" in kinds, kinds
        # Not the trailing axes (per channel of NHWC): the slice is not contiguous, no view.
        kinds = _operation_types(lambda term: sums_over_slices(term, (1, 2)), tf.TensorSpec((None, 8, 8, 5)))
        assert "Reshape" not in kinds and "MatMul" not in kinds and "Sum" in kinds, kinds
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        def primitives(axes):
            jaxpr = jax.make_jaxpr(lambda term: sums_over_slices(term, axes))(jnp.ones((3, 8, 8, 5)))
            return {equation.primitive.name for equation in jaxpr.jaxpr.eqns}

        assert ("dot_general" in primitives((1, 2, 3))) is products
        assert "dot_general" not in primitives((1, 2)) and "reduce_sum" in primitives((1, 2))
    else:
        pytest.skip(f"{backend}: the sums are reductions as written, which the sums test above checks")


def test_the_op_keeps_the_shape_of_its_input_and_output():
    # Only the sums' terms are viewed flat: a reshape of the input or output kept XLA from fusing
    # them with the layers around (the small CNN's step took 1.32x ReLU's, against 1.15x now).
    if keras.backend.backend() != "tensorflow":
        pytest.skip("reads the op's TensorFlow graph (the layout itself is the same code on JAX)")
    import tensorflow as tf

    from keras_adaptive_acts.ops.competitive import competitive_relu

    graph = (
        tf.function(lambda x: competitive_relu(x, 0.5, 0.2))
        .get_concrete_function(tf.TensorSpec((None, 8, 8, 5)))
        .graph
    )
    x = graph.inputs[0]
    assert all(operation.type != "Reshape" for operation in x.consumers()), [op.type for op in x.consumers()]
    output = graph.outputs[0].op
    while output.type == "Identity":  # tf.function's own outputs
        output = output.inputs[0].op
    assert output.type != "Reshape", output.type


@pytest.mark.parametrize("competition", ["energy", "count"])
def test_terms_summed_as_reductions_end_in_a_select(competition):
    # XLA:CPU hands a large reduction to its fast library only if its input does not end in a
    # product or a convert: per channel (not the trailing axes) every sum of the op's forward and
    # backward pass is a reduction, and each one's input must be a select (or a maximum or abs, l1).
    if keras.backend.backend() != "tensorflow":
        pytest.skip("reads the op's TensorFlow graph (the terms are the same code on JAX)")
    import tensorflow as tf

    from keras_adaptive_acts.ops.competitive import competitive_relu

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = competitive_relu(x, 0.5, 0.2, competition=competition, axis=(1, 2))
        return tape.gradient(y, x)

    graph = tf.function(step).get_concrete_function(tf.TensorSpec((None, 8, 8, 5))).graph
    sums = [
        op
        for op in graph.get_operations()
        if op.type == "Sum" and op.inputs[0].shape.as_list()[1:] == [8, 8, 5]  # input-sized terms
    ]
    # energy: two forward sums and the backward one (the guard's branch has its own graph); count:
    # one and one.
    assert len(sums) == (3 if competition == "energy" else 2), [op.name for op in sums]
    assert all(op.inputs[0].op.type == "SelectV2" for op in sums), [op.inputs[0].op.type for op in sums]


def _compiled_training_step_text(competition, axis):
    """The text of the XLA-compiled gradient of the op (per sample or per channel) on this backend."""
    from keras_adaptive_acts.ops.competitive import competitive_relu

    x = np.random.default_rng(0).normal(size=(4, 8, 8, 5)).astype("float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = competitive_relu(x, 0.5, 0.2, competition=competition, axis=axis)
            return tape.gradient(y, x)

        return step.experimental_get_compiler_ir(tf.constant(x))(stage="optimized_hlo")
    if backend == "jax":
        import jax

        def total(x):
            return competitive_relu(x, 0.5, 0.2, competition=competition, axis=axis).sum()

        return jax.jit(jax.grad(total)).lower(x).compile().as_text()
    pytest.skip(f"{backend}: not compiled by XLA, so a conditional always runs one branch")


@pytest.mark.parametrize("products", [True, False], ids=["sums-as-laid-out-here", "sums-as-reductions"])
@pytest.mark.parametrize("axis", [None, (1, 2)], ids=["per-sample", "per-channel"])
@pytest.mark.parametrize("competition", ["energy", "l1"])
def test_the_overflow_guard_stays_a_conditional_under_xla(competition, axis, products, monkeypatch):
    # The guard's second branch (two more reductions and two more sums over the input) must run
    # only when a sum overflowed. XLA turns a conditional whose branches are cheap into selects
    # that run both; an empty first branch prevents it. A constant returned by that branch (from
    # `ones_like`) ended up inside it on TensorFlow, and wherever the sums are reductions (per
    # channel; on a GPU, per sample too) the guard ran on every step. "sums-as-reductions" lays
    # the sums out as on a GPU, on this CPU.
    if not products:
        monkeypatch.setattr(competitive_paths, "_sums_as_products", lambda: False)
    text = _compiled_training_step_text(competition, axis)
    assert " conditional(" in text, "the overflow guard was compiled into selects that run both branches"
