"""The Keras form of a `ReLUNetwork`, `Dense(width, relu, use_bias=False) -> Dense(1)`, and its training."""

from __future__ import annotations

import keras
import numpy as np

from keras_adaptive_acts.narrow.network import ReLUNetwork

__all__ = ["build_keras_model", "narrow_relu_model", "network_from_keras", "train_square_loss"]


def narrow_relu_model(input_dim: int, width: int, *, name: str = "narrow_relu_network") -> keras.Sequential:
    """`Dense(width, relu, use_bias=False) -> Dense(1)` on inputs of size `input_dim`, with Keras' default
    (random) initialisation: the model `build_keras_model` initialises by moments instead."""
    return keras.Sequential(
        [
            keras.Input((input_dim,), name="x"),
            keras.layers.Dense(width, activation="relu", use_bias=False, name="hidden"),
            keras.layers.Dense(1, name="readout"),
        ],
        name=name,
    )


def build_keras_model(network: ReLUNetwork, *, name: str = "narrow_relu_network") -> keras.Sequential:
    """A Keras model that computes `network` (to float32 precision), initialised from its weights.

    Examples:

    >>> net = ReLUNetwork(np.eye(3)[:2], np.array([1.0, -2.0]), bias=0.5)
    >>> model = build_keras_model(net)
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> float(model.predict(x, verbose=0)[0, 0]), float(net(x)[0])
    (-2.5, -2.5)
    """
    model = narrow_relu_model(network.input_dim, network.width, name=name)
    model.layers[0].set_weights([network.hidden_weights.T])
    model.layers[1].set_weights([network.output_weights[:, None], np.array([network.bias])])
    return model


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
    """
    steps_per_epoch = -(-len(inputs) // batch_size)
    epochs = -(-steps // steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
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
