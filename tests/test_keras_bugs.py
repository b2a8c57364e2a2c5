"""Reproductions, with Keras alone, of the Keras bugs pinned in `tests/keras_bugs.py`."""

import keras
import numpy as np
from keras_bugs import NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE, TORCH_MAXIMUM_ROUNDS_FLOAT64


@NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE
def test_a_model_rebuilt_from_an_older_config_follows_the_training_argument():
    inputs = keras.Input((100,))
    model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=1)(inputs))
    config = model.get_config()
    # What Keras 3.10 to 3.15 write into every node of a layer whose call takes `training`.
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            if layer["class_name"] == "Dropout":
                node["kwargs"]["training"] = False
    rebuilt = keras.Model.from_config(config)
    outputs = keras.ops.convert_to_numpy(rebuilt(np.ones((1, 100), "float32"), training=True))
    dropped = int(np.sum(outputs == 0))
    assert 20 < dropped < 80, f"Dropout(0.5) in training mode dropped {dropped} of 100 entries"


@TORCH_MAXIMUM_ROUNDS_FLOAT64
def test_the_maximum_of_two_float64_tensors_is_float64():
    # 1 + 2**-40 is not a float32: rounded, it becomes 1.
    x = keras.ops.convert_to_tensor(np.array([1.0 + 2.0**-40, -3.0]), "float64")
    y = keras.ops.convert_to_tensor(np.array([0.5, -4.0]), "float64")
    result = keras.ops.maximum(x, y)
    assert keras.backend.standardize_dtype(result.dtype) == "float64"
    assert keras.ops.convert_to_numpy(result).tolist() == [1.0 + 2.0**-40, -3.0]
