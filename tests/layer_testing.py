"""The project's test helpers: the one layer-test harness, and what the op and layer tests share.

`run_layer_test` is the harness every layer's test file calls: in the spirit of Keras' own
`run_layer_test`, it uses the public Keras API only (config, JSON and `.keras` round trips, the
symbolic output shape, a compiled fit step, the dtype policies). Beside it: gradients of a function
or a layer (`vjp`, `layer_vjp`) and their finite-difference references (`numeric_vjp`), XLA calls
(`jit_call`), tolerances and skips per backend.

Backend-neutral where it can be: gradients and XLA compilation dispatch on `keras.backend.backend()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json

import keras
import numpy as np
import pytest

from keras_adaptive_acts.model_graph import all_layers

BACKEND = keras.backend.backend()

# XLA for `compile(jit_compile=...)`: TensorFlow and JAX. On PyTorch Keras calls `torch.compile`
# instead (not XLA, and it re-runs Python for graph breaks): tests that count traces run eagerly there.
JIT_COMPILE = BACKEND != "torch"


def float64_tolerance(rtol, atol=0.0):
    """`assert_allclose` tolerances for a float64 computation: as given on TensorFlow and PyTorch.

    On JAX, Keras computes some float64 ops in float32 (`tanh`, `sin`: `keras.backend.result_type`
    maps float64 to float32 outside TensorFlow, and JAX's ops follow it), so "float64" results agree
    with a float64 reference only to float32 precision there. PyTorch's rounding ops (`maximum`,
    `minimum`, `divide_no_nan`, `mean`) are worked around by `ops.dtype_preserving`, so the package's
    ops and layers are float64 there; Keras' `Dense` and `LayerNormalization` are not (its `matmul`
    and `mean`), and tests through them do not use these tolerances.
    """
    if BACKEND in ("tensorflow", "torch"):
        return {"rtol": rtol, "atol": atol}
    return {"rtol": max(rtol, 2e-5), "atol": max(atol, 1e-6)}


def tensorflow_or_skip(why: str = "tf.data"):
    """TensorFlow, for tf.data (which Keras reads on every backend) and TensorBoard event files.

    Skips the test, with the reason printed, where TensorFlow is not installed (a PyTorch-only
    setup). `why` says what needs it: tf.data by default, or a program run in a fresh process on
    the TensorFlow backend (the docs' examples, the CPU benchmarks).
    """
    return pytest.importorskip("tensorflow", reason=f"needs TensorFlow ({why}), which is not installed")


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


# ----------------------------------------------------------------------------------------------
# The layer-test harness

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")

# How close a mixed-precision output must be to the float32 output of the same weights, relative to
# the float32 output's scale: a few roundings to 11 (float16) or 8 (bfloat16) significant bits.
POLICY_TOLERANCES = {"mixed_float16": 1e-2, "mixed_bfloat16": 5e-2}


@dataclasses.dataclass
class LayerTestResult:
    """What `run_layer_test` built, for the layer-specific assertions a test adds after it.

    Attributes:
        layer: the float32 layer of the first checks, its weights moved off their initial values.
        output: its inference output on the input data (NumPy).
        clone: `from_config(layer.get_config())`, built, with the layer's weights.
        model: `Input -> Dense -> layer` (or its wrapper) after the fit step; call it as `model([x])`.
        loaded_model: `model` saved as .keras and loaded with `safe_mode=True`.
        loaded_layer: the one instance of the layer's class inside `loaded_model`.
    """

    layer: keras.layers.Layer
    output: np.ndarray
    clone: keras.layers.Layer
    model: keras.Model
    loaded_model: keras.Model
    loaded_layer: keras.layers.Layer


def run_layer_test(
    layer_class,
    init_kwargs=None,
    *,
    tmp_path,
    input_shape=None,
    input_data=None,
    wrap=None,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    supports_masking=None,
    stochastic=False,
    run_training=True,
    policies=POLICIES,
    policy_tolerances=None,
    train_under_policies=False,
    custom_objects=None,
):
    """Checks what every Keras layer owes its users, on the public Keras API only.

    In the spirit of Keras' own `run_layer_test`. Each check builds a fresh
    `layer_class(**init_kwargs)` (placed inside `wrap(layer)` when given, e.g.
    `lambda cell: keras.layers.RNN(cell)` for a recurrent cell) and calls it on `input_data`, or on
    standard normal data times 2 of `input_shape` (both sides of every kink, and the saturated
    regions of the noisy units). Before anything is compared, the float weights are moved off their
    initial values (trainable ones by a small random step, non-trainable ones `v` to `0.9 v + 0.01`,
    then the weight's constraint): a weight that a check fails to carry over shows. In order:

    1. Build: the inference output is float32 and finite, of `expected_output_shape` (None: any
       size); the layer has the expected numbers of trainable and non-trainable weights and
       `supports_masking` (when True, `compute_mask` passes a mask through).
    2. `get_config` / `from_config`: the config survives two round trips unchanged; the copy, given
       the layer's weights, gives the same outputs (and, if `stochastic`, the same training-mode
       draws: the noise stream position is a weight).
    3. JSON: `keras.saving.serialize_keras_object`, `json.dumps`, `json.loads` and
       `deserialize_keras_object` give an object of the same class, serialisation and outputs (the
       layer's, and the wrapper's when wrapped).
    4. Symbolic output shape: `layer(keras.Input(...))` and `compute_output_shape` agree with the
       eager output's shape, for an unknown and a known batch size.
    5. Training: `Input -> Dense -> layer` fit for a few steps, compiled with `jit_compile=True`
       where the backend has XLA (TensorFlow, JAX; PyTorch runs without): finite losses, and every
       trainable weight changed, the layer's and the Dense kernel's (the gradient passes through the
       layer). Skipped with `run_training=False`.
    6. `.keras`: that model, saved and loaded with `keras.saving.load_model(safe_mode=True)` (no
       `custom_objects` unless given: the package's registration must be enough), has the same
       weights and inference outputs. If `stochastic`, the model is first called a few times with
       `training=True`; the loaded model's next training-mode output equals the original's next
       one (which differs from the one before: the noise shows).
    7. Each dtype policy in `policies` besides float32, set globally as a user does: the output is in
       the compute dtype, the float weights stay float32, the output is finite and within
       `POLICY_TOLERANCES` (or `policy_tolerances`) of the float32 output on the same weights. With
       `train_under_policies=True` the fit of check 5 passes under the policy too (for layers with
       gradients of their own: loss scaling, float16 gradients).

    Returns a `LayerTestResult` for the layer-specific assertions of the calling test.
    """
    if (input_shape is None) == (input_data is None):
        raise ValueError("Pass exactly one of `input_shape` and `input_data`.")
    init_kwargs = dict(init_kwargs or {})
    x = _random_input(input_shape) if input_data is None else np.asarray(input_data)
    arguments = ", ".join(f"{key}={value!r}" for key, value in init_kwargs.items())
    what = f"{layer_class.__name__}({arguments})" + (" (wrapped)" if wrap else "")

    def make():
        layer = layer_class(**init_kwargs)
        return layer, (wrap(layer) if wrap else layer)

    with _global_policy("float32"):
        keras.utils.set_random_seed(0)
        layer, subject = make()
        output = _check_build(
            layer,
            subject,
            x,
            what,
            expected_output_shape,
            expected_num_trainable_weights,
            expected_num_non_trainable_weights,
            supports_masking,
        )
        clone = _check_config_round_trip(layer, what)
        clone_subject = wrap(clone) if wrap else clone
        _assert_same_computation(subject, clone_subject, x, stochastic, f"{what}: from_config copy")
        _check_json_round_trip(layer, subject, wrap, x, stochastic, custom_objects, what)
        _check_symbolic_output_shape(make()[1], x, output.shape, what)

        keras.utils.set_random_seed(1)
        model_layer, model_subject = make()
        model = _small_model(model_subject, x)
        _move_off_initial_values(model, seed=1)
        if run_training:
            _check_fit_step(model, x, what)
        loaded_model = _check_keras_file_round_trip(
            model, [x], tmp_path / f"{layer_class.__name__}.keras", custom_objects, stochastic, what
        )
    loaded_layers = [found for found in all_layers(loaded_model) if type(found) is layer_class]
    assert len(loaded_layers) == 1, (
        f"{what}: the loaded model holds {len(loaded_layers)} {layer_class.__name__}"
    )
    assert loaded_layers[0].get_config() == model_layer.get_config(), f"{what}: another config after loading"

    reference_weights = subject.get_weights()
    for policy in policies:
        if policy == "float32":  # the checks above ran under it
            continue
        tolerance = {**POLICY_TOLERANCES, **(policy_tolerances or {})}[policy]
        with _global_policy(policy):
            keras.utils.set_random_seed(2)
            training = run_training and train_under_policies
            _check_policy(
                *make(), x, reference_weights, output, policy, tolerance, stochastic, training, what
            )
    return LayerTestResult(layer, output, clone, model, loaded_model, loaded_layers[0])


def assert_config_round_trip(layer):
    """`from_config(get_config())` rebuilds a layer with the same config, twice over; returns the copy.

    Check 2 of `run_layer_test` alone, for a test's own configurations (without outputs).
    """
    return _check_config_round_trip(layer, type(layer).__name__)


def assert_keras_file_round_trip(model, x, path, custom_objects=None, stochastic=False):
    """Saves `model` as .keras, loads it with `safe_mode=True`, compares weights and outputs.

    Check 6 of `run_layer_test` alone, for a model a test builds itself; returns the loaded model.
    """
    return _check_keras_file_round_trip(model, x, path, custom_objects, stochastic, model.name)


@contextlib.contextmanager
def _global_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _random_input(shape):
    return (np.random.default_rng(0).normal(size=shape) * 2).astype("float32")


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _is_float(weight):
    return keras.backend.is_float_dtype(weight.dtype)


def _move_off_initial_values(layer, seed=0):
    """Moves every float weight of `layer` (sublayers included) off its initial value.

    A trainable weight takes a small random step; a non-trainable one (a noise scale, a mixing
    weight, a frozen shift) becomes `0.9 * value + 0.01`, which keeps [0, 1] and [0, inf) values in
    their range. Then the weight's constraint, if any. Integer weights (a noise stream position)
    are left alone.
    """
    rng = np.random.default_rng(seed)
    trainable = {id(weight) for weight in layer.trainable_weights}
    for weight in layer.weights:
        if not _is_float(weight):
            continue
        value = _numpy(weight)
        if id(weight) in trainable:
            value = value + rng.normal(scale=0.1, size=value.shape).astype(value.dtype)
        else:
            value = 0.9 * value + np.asarray(0.01, value.dtype)
        if weight.constraint is not None:
            value = _numpy(weight.constraint(keras.ops.convert_to_tensor(value)))
        weight.assign(value)


def _check_build(
    layer, subject, x, what, expected_shape, expected_trainable, expected_non_trainable, supports_masking
):
    subject(x)  # builds (an inference call draws no noise)
    _move_off_initial_values(layer)
    output = _numpy(subject(x))
    assert output.dtype == np.float32, f"{what}: float32 output expected, got {output.dtype}"
    assert np.all(np.isfinite(output)), f"{what}: non-finite inference output on finite inputs"
    if expected_shape is not None:
        matches = len(expected_shape) == output.ndim and all(
            expected in (None, actual) for expected, actual in zip(expected_shape, output.shape, strict=False)
        )
        assert matches, f"{what}: output shape {output.shape}, expected {expected_shape}"
    if expected_trainable is not None:
        names = [w.path for w in layer.trainable_weights]
        assert len(names) == expected_trainable, (
            f"{what}: trainable weights {names}, expected {expected_trainable}"
        )
    if expected_non_trainable is not None:
        names = [w.path for w in layer.non_trainable_weights]
        assert len(names) == expected_non_trainable, (
            f"{what}: non-trainable weights {names}, expected {expected_non_trainable}"
        )
    if supports_masking is not None:
        assert layer.supports_masking == supports_masking, (
            f"{what}: supports_masking is {layer.supports_masking}, expected {supports_masking}"
        )
        if supports_masking:
            mask = np.random.default_rng(1).uniform(size=x.shape[:-1]) < 0.5
            passed = layer.compute_mask(x, keras.ops.convert_to_tensor(mask))
            np.testing.assert_array_equal(
                _numpy(passed), mask, err_msg=f"{what}: compute_mask changed the mask"
            )
    return output


def _check_config_round_trip(layer, what):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config, (
        f"{what}: the config changed in a from_config round trip:\n{config}\n-> {clone.get_config()}"
    )
    second = type(layer).from_config(clone.get_config())
    assert second.get_config() == config, f"{what}: the config changed in a second from_config round trip"
    return clone


def _assert_same_computation(subject, copy, x, stochastic, what):
    """`copy`, given `subject`'s weights, gives its outputs (and training-mode draws, if stochastic)."""
    copy(x)  # builds
    names = [w.path for w in subject.weights]
    assert len(copy.weights) == len(names), (
        f"{what}: weights {[w.path for w in copy.weights]}, expected {names}"
    )
    copy.set_weights(subject.get_weights())
    np.testing.assert_array_equal(
        _numpy(copy(x)), _numpy(subject(x)), err_msg=f"{what}: another inference output on the same weights"
    )
    if stochastic:
        np.testing.assert_array_equal(
            _numpy(copy(x, training=True)),
            _numpy(subject(x, training=True)),
            err_msg=f"{what}: another training-mode draw on the same weights (stream position included)",
        )


def _json_round_trip(obj, custom_objects, what):
    serialized = keras.saving.serialize_keras_object(obj)
    text = json.dumps(serialized)
    revived = keras.saving.deserialize_keras_object(json.loads(text), custom_objects=custom_objects)
    assert type(revived) is type(obj), f"{what}: JSON round trip gave a {type(revived).__name__}"
    again = json.dumps(keras.saving.serialize_keras_object(revived), sort_keys=True)
    assert again == json.dumps(serialized, sort_keys=True), (
        f"{what}: serialize_keras_object changed in a JSON round trip:\n{text}\n-> {again}"
    )
    return revived


def _check_json_round_trip(layer, subject, wrap, x, stochastic, custom_objects, what):
    revived = _json_round_trip(layer, custom_objects, what)
    _assert_same_computation(subject, wrap(revived) if wrap else revived, x, stochastic, f"{what}: JSON copy")
    if wrap:
        revived_subject = _json_round_trip(subject, custom_objects, f"{what}'s wrapper")
        _assert_same_computation(subject, revived_subject, x, stochastic, f"{what}: JSON copy of the wrapper")


def _check_symbolic_output_shape(subject, x, eager_shape, what):
    unknown_batch = (None, *eager_shape[1:])
    inputs = keras.Input(batch_shape=(None, *x.shape[1:]), dtype=str(x.dtype))
    symbolic = subject(inputs)
    assert tuple(symbolic.shape) == unknown_batch, (
        f"{what}: symbolic output shape {tuple(symbolic.shape)}, eager output shape {eager_shape}"
    )
    assert keras.backend.standardize_dtype(symbolic.dtype) == "float32", (
        f"{what}: symbolic dtype {symbolic.dtype}"
    )
    for input_shape, expected in (((None, *x.shape[1:]), unknown_batch), (x.shape, tuple(eager_shape))):
        computed = tuple(subject.compute_output_shape(input_shape))
        assert computed == expected, (
            f"{what}: compute_output_shape({input_shape}) is {computed}, expected {expected}"
        )


def _small_model(subject, x):
    """Input -> Dense (as many units as features, so the layer sees the input's shape) -> subject.

    Its inputs are a list of one, called as `model([x])`: the structure Keras 3.10 gives a loaded
    functional model, which warns when called with a bare tensor.
    """
    inputs = keras.Input(shape=x.shape[1:], dtype=str(x.dtype))
    features = keras.layers.Dense(x.shape[-1], name="features")(inputs)
    return keras.Model([inputs], subject(features))


def _check_fit_step(model, x, what, steps=3):
    """Compiled fit steps towards twice the output: finite losses, every trainable weight changed."""
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=JIT_COMPILE)
    targets = 2 * _numpy(keras.ops.cast(model([x]), "float32"))
    before = {w.path: _numpy(w) for w in model.trainable_weights}
    history = model.fit([x], targets, batch_size=len(x), epochs=steps, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), f"{what}: fit losses {losses}"
    for weight in model.trainable_weights:
        value = _numpy(weight)
        assert np.all(np.isfinite(value)), f"{what}: {weight.path} is not finite after the fit"
        assert not np.array_equal(value, before[weight.path]), f"{what}: the fit did not change {weight.path}"


def _check_keras_file_round_trip(model, inputs, path, custom_objects, stochastic, what):
    if stochastic:
        draws = [_numpy(model(inputs, training=True)) for _ in range(3)]
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, custom_objects=custom_objects)
    names = [w.path for w in model.weights]
    assert len(loaded.weights) == len(names), f"{what}: loaded weights {[w.path for w in loaded.weights]}"
    for weight, loaded_weight in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(
            _numpy(loaded_weight), _numpy(weight), err_msg=f"{what}: {weight.path} changed in the .keras file"
        )
    np.testing.assert_array_equal(
        _numpy(loaded(inputs)),
        _numpy(model(inputs)),
        err_msg=f"{what}: another inference output after loading",
    )
    if stochastic:
        expected = _numpy(model(inputs, training=True))
        assert not np.array_equal(expected, draws[-1]), f"{what}: two training-mode calls drew the same noise"
        np.testing.assert_array_equal(
            _numpy(loaded(inputs, training=True)),
            expected,
            err_msg=f"{what}: the loaded model's next draw is not the saved one's (stream position lost)",
        )
    return loaded


def _check_policy(
    layer, subject, x, reference_weights, reference, policy, tolerance, stochastic, run_training, what
):
    what = f"{what} under {policy}"
    compute_dtype = keras.mixed_precision.Policy(policy).compute_dtype
    subject(x)  # builds
    subject.set_weights(reference_weights)
    assert layer.compute_dtype == compute_dtype, f"{what}: compute dtype {layer.compute_dtype}"
    for weight in layer.weights:
        if _is_float(weight):
            assert weight.dtype == "float32", f"{what}: {weight.path} is {weight.dtype}, not float32"
    output = subject(x)
    dtype = keras.backend.standardize_dtype(output.dtype)
    assert dtype == compute_dtype, f"{what}: output dtype {dtype}, expected {compute_dtype}"
    output = _numpy(keras.ops.cast(output, "float32"))
    assert np.all(np.isfinite(output)), f"{what}: non-finite output"
    scale = max(1.0, float(np.max(np.abs(reference))))
    np.testing.assert_allclose(
        output,
        reference,
        rtol=tolerance,
        atol=tolerance * scale,
        err_msg=f"{what}: far from the float32 output",
    )
    if stochastic:  # noise drawn in the compute dtype, or the output would be promoted to float32
        draw = subject(x, training=True)
        dtype = keras.backend.standardize_dtype(draw.dtype)
        assert dtype == compute_dtype, f"{what}: training-mode output dtype {dtype}, expected {compute_dtype}"
        assert np.all(np.isfinite(_numpy(keras.ops.cast(draw, "float32")))), f"{what}: non-finite draw"
    if run_training:
        _check_fit_step(_small_model(subject, x), x, what)
