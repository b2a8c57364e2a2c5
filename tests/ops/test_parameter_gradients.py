"""Trainable parameters spread over an activation's input: values kept, gradients summed from a select."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_adaptive_acts.ops import noisy_input, noisy_output, snake, tlu
from keras_adaptive_acts.ops.parameter_gradients import parameter_where_nonzero


def test_the_parameter_is_spread_where_the_factor_is_not_zero():
    factor = np.array([[0.0, -2.0, np.inf], [np.nan, 0.0, 3.0]], dtype="float32")
    parameter = np.array([1.5, -0.5, 2.0], dtype="float32")
    spread = ops.convert_to_numpy(parameter_where_nonzero(parameter, factor))
    np.testing.assert_array_equal(spread, [[0.0, -0.5, 2.0], [1.5, 0.0, 2.0]])  # NaN != 0
    assert parameter_where_nonzero(0.25, factor) == 0.25  # a number has no gradient: left as it is


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_a_scalar_parameter_keeps_its_dtype(dtype):
    # PyTorch promoted where(condition, 0-d float16, 0.0) to float32: Snake under mixed_float16
    # returned float32.
    factor = ops.convert_to_tensor(np.array([[0.0, 2.0], [1.0, -3.0]]), dtype)
    parameter = ops.convert_to_tensor(np.array(0.5), dtype)
    spread = parameter_where_nonzero(parameter, factor)
    assert keras.backend.standardize_dtype(spread.dtype) == dtype
    np.testing.assert_array_equal(ops.convert_to_numpy(spread), [[0.0, 0.5], [0.5, 0.5]])


# Each: the activation of `x` with its trainable parameter (per unit, or a scalar for Snake).
PARAMETERIZED = {
    "NAN": lambda x, p, xi: noisy_output(x, p, 0.5, xi),
    "NAH": lambda x, p, xi: noisy_output(x, p, 0.5, xi, half_normal=True),
    "NANIL": lambda x, p, xi: noisy_input(x, 0.25, xi, mode="input_learned", p=p),
    "Snake": lambda x, p, xi: snake(x, p[0]),
    "TLU-affine": lambda x, p, xi: tlu(x, 0.1, alpha=p),
}


@pytest.mark.parametrize("name", list(PARAMETERIZED))
def test_a_parameter_gradient_is_summed_from_a_select(name):
    # XLA:CPU hands a large sum to its fast reduction library only if the sum's term ends in a
    # select: these gradients ended in products, and the ops' training steps took 1.9x (noisy
    # output), 1.6x (NANIL), 1.5x (Snake) and 2.6x (affine TLU) the time they take now.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("reads the op's TensorFlow graph (the formula is the same code on JAX)")
    import tensorflow as tf

    parameter = tf.Variable(np.full(5, 0.5, dtype="float32"))

    def step(x, xi):
        with tf.GradientTape() as tape:
            y = PARAMETERIZED[name](x, parameter, xi)
        return tape.gradient(y, parameter)

    spec = tf.TensorSpec((2, 8, 8, 5))  # static: TensorFlow adds no-op sums to gradients of unknown shape
    graph = tf.function(step).get_concrete_function(spec, spec).graph
    # The ops the parameter's gradient is computed from (the graph also holds gradients nobody asked for).
    needed, pending = set(), [tensor.op for tensor in graph.outputs]
    while pending:
        op = pending.pop()
        if op not in needed:
            needed.add(op)
            pending.extend(tensor.op for tensor in op.inputs)
    sums = [op for op in needed if op.type == "Sum" and op.inputs[0].shape.as_list() == [2, 8, 8, 5]]
    assert sums, "no input-sized sum in the parameter's gradient"
    assert all(op.inputs[0].op.type == "SelectV2" for op in sums), [op.inputs[0].op.type for op in sums]
