"""`convert_to_litert`: one signature of an exported SavedModel as a LiteRT (TFLite) flatbuffer."""

from __future__ import annotations

import os
import re
from pathlib import Path

from keras_adaptive_acts.export.serving_interface import (
    INFERENCE_SIGNATURE,
    read_signature,
    require_tensorflow,
)

__all__ = ["convert_to_litert"]


def convert_to_litert(path: str | os.PathLike, signature: str = INFERENCE_SIGNATURE) -> bytes:
    """Converts one signature of an exported SavedModel to a LiteRT (TFLite) model, built-in ops only.

    Every layer of the package converts in a float32 model, except that a recurrent layer (`RNN`
    with a noisy cell, like Keras' own `LSTM`) needs `unroll=True`: its `while` loop uses tensor
    lists, which the built-in ops cannot lower. The serving guide has the table, which the tests
    measure. A model that computes in float16 or float64 does not convert, not even a Keras `Dense`
    (the built-in ops have no such `MatMul`): convert a float32 copy of it.

    Args:
        path: the SavedModel directory, from `export_for_serving`.
        signature: the signature to convert (the inference one by default).

    Returns:
        The LiteRT flatbuffer, to write to a `.tflite` file or give to a LiteRT interpreter.

    Raises:
        RuntimeError: when the converter fails; the message ends with the converter's own error.
        FileNotFoundError: if `path` holds no SavedModel.
        ValueError: if the SavedModel has no such signature.
    """
    tf = require_tensorflow("LiteRT conversion")
    read_signature(Path(path), signature)  # a clear error before the converter's long one
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # the converter raises its own ConverterError (and others)
        errors = [  # the converter's errors, without the graph locations it puts in front
            re.sub(r"^loc\(.*\)\):\s*", "", line.split("error:", 1)[1].strip())
            for line in str(error).splitlines()
            if "error:" in line
        ]
        detail = "; ".join(dict.fromkeys(errors)) or str(error)  # each distinct error once
        hint = " (a recurrent layer: build it with unroll=True)" if "TensorList" in str(error) else ""
        raise RuntimeError(f"LiteRT conversion of {signature!r} failed{hint}: {detail}") from error
