"""The Keras form of a `ReLUNetwork`, `Dense(width, relu, use_bias=False) -> Dense(1)`, and its training."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_adaptive_acts.narrow.network import ReLUNetwork
from keras_adaptive_acts.validation import check_choice

__all__ = ["build_keras_model", "narrow_relu_model", "network_from_keras", "train_square_loss"]


# Adam steps per call of the compiled training step on TensorFlow and JAX (Keras' `steps_per_execution`).
# The refinement's steps are tiny (a batch of 256 through a width-2k layer), so Keras' per-step work in
# Python dominates at one step per call. 32 per call refined the README's example 2.6x faster on
# TensorFlow, 128 or a whole epoch per call no faster (docs/benchmarks.md, "Reading the numbers" of the
# narrow learner). Keras' PyTorch trainer takes one step per call only.
STEPS_PER_EXECUTION = 32

# The dtypes a model can be built in: float32 (Keras' default) and float64, for networks whose weights
# lie outside float32's range (targets far from unit size, fitted without rescaling them).
MODEL_DTYPES = ("float32", "float64")


def narrow_relu_model(
    input_dim: int, width: int, *, name: str = "narrow_relu_network", dtype: str = "float32"
) -> keras.Sequential:
    """`Dense(width, relu, use_bias=False) -> Dense(1)` on inputs of size `input_dim`, with Keras' default
    (random) initialisation: the model `build_keras_model` initialises by moments instead. `dtype` is
    `"float32"` (default) or `"float64"` (a `ValueError` where this Keras computes a float64 `Dense` in
    float32: `check_float64_dense`)."""
    return _architecture(input_dim, width, name=name, dtype=dtype, initializer="glorot_uniform")


def _architecture(input_dim: int, width: int, *, name: str, dtype: str, initializer: str) -> keras.Sequential:
    check_choice("dtype", dtype, MODEL_DTYPES)
    if dtype == "float64":
        check_float64_dense()
    return keras.Sequential(
        [
            keras.Input((input_dim,), name="x", dtype=dtype),
            keras.layers.Dense(
                width,
                activation="relu",
                use_bias=False,
                kernel_initializer=initializer,
                dtype=dtype,
                name="hidden",
            ),
            keras.layers.Dense(1, kernel_initializer=initializer, dtype=dtype, name="readout"),
        ],
        name=name,
    )


def build_keras_model(
    network: ReLUNetwork, *, name: str = "narrow_relu_network", dtype: str = "float32"
) -> keras.Sequential:
    """A Keras model that computes `network` (to the precision of `dtype`), initialised from its weights.

    The layers are created with zero initialisers, which draw no random numbers: building the model
    leaves Python's, NumPy's and Keras' global random state as it was (the weights are overwritten).

    Args:
        network: the `ReLUNetwork` to copy.
        name: the model's name.
        dtype: `"float32"` (default) or `"float64"`, the dtype of the model's weights and computation.
            Keras' `predict` and `fit` cast NumPy inputs to `keras.config.floatx()` (float32 by default)
            before the model sees them: call a float64 model directly (`model(x)`), or set floatx.

    Raises:
        ValueError: with `dtype="float32"`, a layer's weights do not fit in float32: the largest
            overflows (above about `3.4e38`) or the largest non-zero one underflows (below about
            `1.2e-38`, where float32 loses precision and then rounds to 0). Fit rescaled targets, or pass
            `dtype="float64"`. With `dtype="float64"`, this Keras does not compute a float64 `Dense` in
            float64 (`check_float64_dense`).

    Examples:

    >>> net = ReLUNetwork(np.eye(3)[:2], np.array([1.0, -2.0]), bias=0.5)
    >>> model = build_keras_model(net)
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> float(model.predict(x, verbose=0)[0, 0]), float(net(x)[0])
    (-2.5, -2.5)
    """
    check_choice("dtype", dtype, MODEL_DTYPES)
    readout = np.append(network.output_weights, network.bias)
    if dtype == "float32":
        check_float32_range("hidden weights", network.hidden_weights)
        check_float32_range("output weights and bias", readout)
    model = _architecture(network.input_dim, network.width, name=name, dtype=dtype, initializer="zeros")
    model.layers[0].set_weights([network.hidden_weights.T])
    model.layers[1].set_weights([network.output_weights[:, None], np.array([network.bias])])
    return model


def check_float32_range(what: str, values: np.ndarray) -> None:
    """Raises `ValueError` when `values` (float64) do not fit in float32, naming the offending value.

    Only the largest magnitude is judged: a weight far below its layer's largest is negligible whether
    float32 keeps it or not, but a whole layer below float32's smallest normal number loses its
    precision (and then rounds to 0), and one above float32's largest number becomes infinite.
    """
    largest = float(np.max(np.abs(values), initial=0.0))
    limits = np.finfo(np.float32)
    highest, lowest = float(limits.max), float(limits.tiny)  # Python floats: no float32 cast of `largest`
    if largest > highest or 0.0 < largest < lowest:
        if largest > highest:
            bound = f"above float32's largest number {highest:.3g}"
        else:
            bound = f"below float32's smallest normal number {lowest:.3g}"
        raise ValueError(
            f"The network's {what} do not fit in a float32 Keras model: the largest in size is "
            f"{largest:.3g}, {bound}. Fit targets rescaled to about unit size (e.g. y / {largest:.0e}) and "
            'scale the predictions back, or build the model in float64 (dtype="float64").'
        )


def check_float64_dense() -> None:
    """Raises `ValueError` when this Keras does not compute a float64 `Dense` layer in float64.

    Asked of Keras itself, with a one-weight `Dense(1, use_bias=False)` on `1 + 2**-40` (not a float32
    number), not read from its version: a float64 model that computes in float32 would turn the weights
    it was asked for (beyond float32's range, or its precision) into infinities, zeros or rounded
    values without a word. Two cases are known. Keras' PyTorch backend, from Keras 3.12 on, casts a
    float64 matrix product to float32 (its `result_type` maps 64-bit types to 32-bit outside
    TensorFlow; keras-team/keras#23704, open, with 3.15.1 and keras-nightly 3.16.0.dev2026102704).
    JAX has no float64 unless `JAX_ENABLE_X64=1` was set before it was imported.
    """
    probe = keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones", dtype="float64", name="float64_dense_probe"
    )
    value = 1.0 + 2.0**-40
    with warnings.catch_warnings():  # JAX without 64-bit types warns as it truncates: the error says it
        warnings.simplefilter("ignore")
        output = probe(keras.ops.convert_to_tensor(np.array([[value]]), dtype="float64"))
    dtype = keras.backend.standardize_dtype(output.dtype)
    result = float(keras.ops.convert_to_numpy(output)[0, 0])
    if dtype == "float64" and result == value:
        return
    backend = keras.backend.backend()
    if backend == "jax" and dtype != "float64":
        cause = "JAX's 64-bit types are disabled: set JAX_ENABLE_X64=1 before JAX is imported."
    elif backend == "torch":
        cause = (
            "Keras' PyTorch backend casts a float64 matrix product to float32 (keras-team/keras#23704): "
            "use the TensorFlow backend, or JAX with JAX_ENABLE_X64=1."
        )
    else:
        cause = "Use the TensorFlow backend, or JAX with JAX_ENABLE_X64=1."
    raise ValueError(
        f"Keras {keras.__version__} on the {backend} backend does not compute a float64 Dense layer in "
        f"float64 (for 1 + 2**-40 it gave {result!r} in {dtype}), "
        f"so a float64 model would not hold the network's weights. {cause} Or fit targets rescaled to "
        "about unit size, and build the model in float32."
    )


def network_from_keras(model: keras.Model) -> ReLUNetwork:
    """The `ReLUNetwork` of a `Dense(width, relu, use_bias=False) -> Dense(1)` model (`build_keras_model`).

    Raises:
        ValueError: the model is not of that form.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if (
        len(dense) != 2
        or len(model.layers) != 2
        or dense[0].use_bias
        or keras.activations.serialize(dense[0].activation) != "relu"
        or dense[1].units != 1
        or keras.activations.serialize(dense[1].activation) != "linear"
    ):
        raise ValueError(
            "Expected a model of exactly Dense(width, activation='relu', use_bias=False) -> Dense(1). "
            f"Received: {[type(layer).__name__ for layer in model.layers]}"
        )
    hidden = dense[0].get_weights()[0]
    kernel, *bias = dense[1].get_weights()
    return ReLUNetwork(hidden.T, kernel[:, 0], float(bias[0][0]) if bias else 0.0)


def train_square_loss(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    callbacks: list | None = None,
    verbose: int | str = 0,
) -> dict[str, list[float]]:
    """Trains `model` on the square loss with Adam, the learning rate decaying to 0 along a cosine.

    `steps` is rounded up to whole epochs; the rows are not shuffled (the learner's rows are i.i.d.
    already), so no global random state is involved. Returns the `History.history` dict.

    On TensorFlow and JAX the compiled step runs `STEPS_PER_EXECUTION` (32) Adam steps per call (Keras'
    `steps_per_execution`; the steps and their losses are the same): `callbacks` see their epoch hooks
    at every epoch, but their batch hooks once per 32 steps (and at an epoch's last, shorter call).
    """
    steps_per_epoch = -(-len(inputs) // batch_size)
    epochs = -(-steps // steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps_per_epoch)
    steps_per_execution = (
        1 if keras.backend.backend() == "torch" else min(STEPS_PER_EXECUTION, steps_per_epoch)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="mse", steps_per_execution=steps_per_execution
    )
    history = model.fit(
        np.asarray(inputs, dtype=np.float32),
        np.asarray(targets, dtype=np.float32),
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )
    return history.history
