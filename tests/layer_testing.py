"""The project's small test helper (Keras' private `keras.src.testing` is not a dependency).

Backend-neutral where it can be: gradients and XLA compilation dispatch on `keras.backend.backend()`.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

# XLA for `compile(jit_compile=...)`: TensorFlow and JAX. On PyTorch Keras calls `torch.compile`
# instead (not XLA, and it re-runs Python for graph breaks): tests that count traces run eagerly there.
JIT_COMPILE = BACKEND != "torch"


def float64_tolerance(rtol, atol=0.0):
    """`assert_allclose` tolerances for a float64 computation: as given on TensorFlow.

    Outside TensorFlow, Keras computes unary float64 ops (tanh, exp, ...) in float32
    (`keras.backend.result_type` maps float64 to float32 on JAX and PyTorch), so "float64" results
    agree with a float64 reference only to float32 precision there.
    """
    if BACKEND == "tensorflow":
        return {"rtol": rtol, "atol": atol}
    return {"rtol": max(rtol, 2e-5), "atol": max(atol, 1e-6)}


def tensorflow_or_skip():
    """TensorFlow, for tf.data (which Keras reads on every backend) and TensorBoard event files.

    Skips the test, with the reason printed, where TensorFlow is not installed (a PyTorch-only setup).
    """
    return pytest.importorskip("tensorflow", reason="needs TensorFlow (tf.data), which is not installed")


requires_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason=f"TensorFlow-only API (tf.function, tf.data, ...); backend is {BACKEND}"
)


def vjp(fn, inputs, upstream):
    """Output of `fn(*inputs)` and the gradients of `sum(output * upstream)` w.r.t. each input."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(v) for v in inputs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = fn(*tensors)
        grads = tape.gradient(out, tensors, output_gradients=tf.cast(upstream, out.dtype))
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        out, pullback = jax.vjp(fn, *[jnp.asarray(v) for v in inputs])
        grads = pullback(jnp.asarray(upstream, out.dtype))
    elif backend == "torch":
        import torch

        tensors = [torch.tensor(np.asarray(v), requires_grad=True) for v in inputs]
        out = fn(*tensors)
        grads = torch.autograd.grad(out, tensors, torch.as_tensor(upstream, dtype=out.dtype))
        out, grads = out.detach(), [g.detach() for g in grads]
    else:
        raise NotImplementedError(f"vjp() does not support the {backend!r} backend")
    return keras.ops.convert_to_numpy(out), [keras.ops.convert_to_numpy(g) for g in grads]


def layer_vjp(layer, inputs, upstream, training=False):
    """Output of `layer(inputs)` and the gradients of `sum(output * upstream)`.

    Returns `(output, input_gradient, {weight.path: gradient})` over the trainable weights, as
    NumPy arrays. `inputs` is one array (or a list, for multi-input layers: then the input gradient
    is a list). On JAX the call is `stateless_call`, so it sees the weights as traced values.
    """
    multiple = isinstance(inputs, (list, tuple))
    arrays = [np.asarray(v) for v in (inputs if multiple else [inputs])]
    if not layer.built:  # a symbolic call builds it without drawing noise
        specs = [keras.KerasTensor(v.shape, dtype=str(v.dtype)) for v in arrays]
        layer(specs if multiple else specs[0])
    weights = list(layer.trainable_variables)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(v) for v in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = layer(tensors if multiple else tensors[0], training=training)
        grads = tape.gradient(out, [*tensors, *weights], output_gradients=tf.cast(upstream, out.dtype))
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def call(values, *tensors):
            args = list(tensors) if multiple else tensors[0]
            return layer.stateless_call(values, non_trainable, args, **_training_kwarg(layer, training))[0]

        out, pullback = jax.vjp(call, [w.value for w in weights], *[jnp.asarray(v) for v in arrays])
        weight_grads, *input_grads = pullback(jnp.asarray(upstream, out.dtype))
        grads = [*input_grads, *weight_grads]
    elif BACKEND == "torch":
        import torch

        tensors = [torch.tensor(np.asarray(v), requires_grad=True) for v in arrays]
        out = layer(tensors if multiple else tensors[0], training=training)
        grads = torch.autograd.grad(
            out,
            [*tensors, *(w.value for w in weights)],
            torch.as_tensor(upstream, dtype=out.dtype),
            allow_unused=True,  # a weight the call did not use gets a zero gradient, as on TF and JAX
            materialize_grads=True,
        )
    else:
        raise NotImplementedError(f"layer_vjp() does not support the {BACKEND!r} backend")
    grads = [keras.ops.convert_to_numpy(g) for g in grads]
    input_grads, weight_grads = grads[: len(arrays)], grads[len(arrays) :]
    return (
        keras.ops.convert_to_numpy(out),
        input_grads if multiple else input_grads[0],
        {w.path: g for w, g in zip(weights, weight_grads, strict=True)},
    )


def jit_call(layer, inputs, training=False):
    """`layer(inputs)` compiled with XLA (TensorFlow, JAX); eager on PyTorch (see JIT_COMPILE)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda v: layer(v, training=training), jit_compile=True)(inputs)
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def call(trainable, non_trainable, v):
            return layer.stateless_call(trainable, non_trainable, v, **_training_kwarg(layer, training))[0]

        return jax.jit(call)(trainable, non_trainable, inputs)
    return layer(inputs, training=training)


def _training_kwarg(layer, training):
    """`stateless_call` passes keywords straight to `call`, which may not take `training`."""
    return {"training": training} if "training" in inspect.signature(layer.call).parameters else {}


def numeric_vjp(fn, inputs, upstream, delta=1e-6):
    """Central finite differences of `sum(fn(*inputs) * upstream)` (NumPy, float64)."""
    inputs = [np.array(v, dtype="float64") for v in inputs]
    upstream = np.asarray(upstream, dtype="float64")

    def objective():
        return float(np.sum(fn(*inputs) * upstream))

    grads = []
    for value in inputs:
        grad = np.zeros_like(value)
        flat, flat_grad = value.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + delta
            plus = objective()
            flat[i] = original - delta
            minus = objective()
            flat[i] = original
            flat_grad[i] = (plus - minus) / (2 * delta)
        grads.append(grad)
    return grads


def away_from_zero(x, margin=1e-2):
    """Moves entries with |x| < margin away from 0, so finite differences never cross a kink."""
    x = np.array(x)
    small = np.abs(x) < margin
    x[small] = np.where(x[small] < 0, -margin, margin) * 2
    return x


def assert_config_round_trip(layer):
    """`from_config(get_config())` rebuilds a layer with the same config; returns the copy."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


def assert_keras_file_round_trip(model, x, path, atol=0.0):
    """Saves `model` to a .keras file, loads it with `safe_mode=True` and compares predictions.

    Loading uses no `custom_objects`: the package's registration must be enough.
    """
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected = model.predict(x, verbose=0)
    actual = loaded.predict(x, verbose=0)
    if atol:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
    else:
        np.testing.assert_array_equal(actual, expected)
    return loaded


def weight_values(layer_or_model):
    """A {path: numpy value} snapshot of the trainable weights."""
    return {w.path: keras.ops.convert_to_numpy(w) for w in layer_or_model.trainable_weights}


class TraceCounter(keras.layers.Layer):
    """Identity whose Python body runs only while a function is traced (or called eagerly): counts traces."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, inputs):
        self.traces += 1
        return inputs
