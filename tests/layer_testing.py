"""The project's small test helper (Keras' private `keras.src.testing` is not a dependency).

Backend-neutral where it can be: gradients dispatch on `keras.backend.backend()`.
"""

from __future__ import annotations

import keras
import numpy as np


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
