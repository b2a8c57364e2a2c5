"""One process of tests/test_jax_distribution.py: `python jax_distribution_worker.py OUT_DIR`.

Keras' JAX distribution API (`keras.distribution.DataParallel`) on two CPU devices that XLA makes of
this machine's one. The test starts it with `KERAS_BACKEND=jax` and
`XLA_FLAGS=--xla_force_host_platform_device_count=2` in its environment (XLA reads them before JAX
starts). The model with every layer of the package, its noise on, trained by `fit` on one device and
then under DataParallel from the same initial weights; the model saved under the distribution,
reloaded on one device. Writes OUT_DIR/result.json.

Importing this module changes nothing and needs no JAX: pytest imports every module of tests/ for
its doctests, on every backend, and the environment of its process must stay as it was.
"""

import json
import os
import sys

import keras
import numpy as np
from every_layer_model import CLASSES, FEATURES, STEPS, functional_model

ROWS, BATCH, EPOCHS = 16, 8, 2  # each of the 2 devices gets 4 rows of a global batch of 8


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, STEPS, FEATURES)).astype("float32")
    return x, rng.integers(0, CLASSES, size=ROWS)


def train():
    """The noisy model (noise on) trained from seed 0: `(model, each epoch's loss)`."""
    keras.utils.set_random_seed(0)
    model = functional_model(deterministic=False)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(*data(), batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model, history.history["loss"]


def as_lists(arrays):
    return [np.asarray(a).tolist() for a in arrays]


def error_name(function):
    """The name of the exception that `function()` raises, or None."""
    try:
        function()
    except Exception as error:
        return type(error).__name__
    return None


def main(out_dir):
    import jax

    if keras.backend.backend() != "jax" or len(jax.devices()) != 2:
        raise SystemExit(f"needs KERAS_BACKEND=jax and two XLA devices; has {keras.backend.backend()}")
    single, single_losses = train()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    distributed, distributed_losses = train()
    x_test = data()[0][:4]  # under DataParallel, a batch the devices divide
    predictions = distributed.predict(x_test, verbose=0)
    path = os.path.join(out_dir, "data_parallel.keras")
    distributed.save(path)
    # Where the distribution put a weight and a batch: one copy of the weight on each device, each
    # device a share of the rows.
    weight_devices = len(distributed.trainable_variables[0].value.sharding.device_set)
    layout = keras.distribution.distribution().get_data_layout(x_test.shape)
    batch = keras.distribution.distribute_tensor(x_test, layout)
    batch_shards = [shard.data.shape[0] for shard in batch.addressable_shards]
    result = {
        "devices": [str(device) for device in jax.devices()],
        "weight_devices": weight_devices,
        "batch_shards": batch_shards,
        "single": {"losses": single_losses, "weights": as_lists(single.get_weights())},
        "data_parallel": {"losses": distributed_losses, "weights": as_lists(distributed.get_weights())},
        "predictions": predictions.tolist(),
    }
    # The limits the guide names, last: a batch the devices do not divide fails, and leaves the
    # model without its weights (Keras' JAX trainer takes them out for `predict` and puts them
    # back only when it ends normally).
    result["five_rows_error"] = error_name(lambda: distributed.predict(data()[0][:5], verbose=0))
    result["weights_after_the_error"] = error_name(distributed.get_weights)
    keras.distribution.set_distribution(None)
    reloaded = keras.saving.load_model(path)
    result["reloaded_predictions"] = reloaded.predict(x_test, verbose=0).tolist()
    result["reloaded_weights"] = as_lists(reloaded.get_weights())
    with open(os.path.join(out_dir, "result.json"), "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main(sys.argv[1])
