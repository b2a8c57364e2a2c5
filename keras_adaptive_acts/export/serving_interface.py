"""What a served model looks like from outside: its signatures, named inputs and named outputs.

Shared by the export (which writes the signatures), the verification (which calls the Keras model
the same way to get a reference), the LiteRT conversion (which reads a signature back) and the ONNX
export (whose model takes the inputs and gives the outputs by the same names).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from keras_adaptive_acts.model_graph import is_graph_model

__all__ = [
    "INFERENCE_SIGNATURE",
    "MONTE_CARLO_SIGNATURE",
    "call_structure",
    "check_model",
    "input_specs",
    "output_names",
    "read_signature",
    "require_tensorflow",
]

INFERENCE_SIGNATURE = "serving_default"
MONTE_CARLO_SIGNATURE = "monte_carlo"


def require_tensorflow(what: str = "SavedModel export for TF Serving") -> Any:
    """The `tensorflow` module; a `RuntimeError` naming `what` on another backend.

    A SavedModel is TensorFlow's, and the ONNX export converts a TensorFlow graph (tf2onnx).
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
            f"Current backend: {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    return tf


def check_model(model: Any, exporter: str = "export_for_serving") -> None:
    """Raises `ValueError` unless `model` is a built Sequential or Functional model.

    Only those have `keras.Input` tensors, whose names become the signature's input names (and
    the ONNX model's). `exporter` is the function the messages name.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            f"The model {model.name!r} is not built: give it a keras.Input (or call it on a batch) "
            "before exporting, so that its input shapes are known."
        )
    if not is_graph_model(model):
        raise ValueError(
            f"{exporter} needs a Sequential or Functional model, whose keras.Input names the "
            f"signature's inputs. {type(model).__name__} is subclassed: wrap it as "
            "keras.Model(inputs, subclassed_model(inputs)) with named keras.Input tensors."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"The model {model.name!r} is not built: give it a keras.Input (or call it on a batch) "
            "before exporting, so that its input shapes are known."
        )
    if not isinstance(model, keras.Sequential):
        _check_flat_outputs(model)


def _check_flat_outputs(model: keras.Model) -> None:
    """Raises `ValueError` for nested outputs (a dict of lists, a list of dicts, ...).

    A signature, and an ONNX graph, gives a flat dict of named tensors: one tensor, a list of
    tensors or a dict of tensors map onto it by name (`output_names`), a nested structure does not
    without names made up here, which a client would have to guess.
    """
    structure = model.output
    children = structure.values() if isinstance(structure, Mapping) else structure
    if keras.tree.is_nested(structure) and any(keras.tree.is_nested(child) for child in children):
        shape = keras.tree.map_structure(lambda tensor: "tensor", structure)
        raise ValueError(
            f"The model {model.name!r} has nested outputs {shape}: an export gives one flat dict of "
            "named outputs. Build the model with a flat dict (or list) of outputs, e.g. "
            "{'heads_0': t0, 'heads_1': t1} instead of {'heads': [t0, t1]}."
        )


def input_specs(model: keras.Model, tf: Any) -> dict[str, Any]:
    """`{input name: tf.TensorSpec}` for the model's inputs, with a free batch size."""
    return {
        tensor.name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=tensor.name)
        for tensor in model.inputs
    }


def output_names(model: keras.Model) -> list[str]:
    """The names of the model's outputs, one per tensor, in the order of `keras.tree.flatten(model(...))`.

    A model built with a dict of outputs is served by its keys, as `predict()` and Keras' own
    `model.export()` name them (flattened in sorted order, as the outputs are). Otherwise the names
    are Keras' `output_names`, the layers that compute the outputs. A layer that computes several
    (an RNN with `return_state=True`, a layer shared by two heads) gives its name to each: the
    repeats are numbered as Keras numbers layers, `rnn`, `rnn_1`, `rnn_2`, so that no output is lost.
    """
    if isinstance(model, keras.Sequential):
        return [model.layers[-1].name]
    structure = model.output
    if isinstance(structure, Mapping) and all(isinstance(key, str) for key in structure):
        return keras.tree.flatten({key: key for key in structure})
    names: list[str] = []
    for name in model.output_names:
        unique, number = name, 0
        while unique in names or (number and unique in model.output_names):
            number += 1
            unique = f"{name}_{number}"
        names.append(unique)
    return names


def call_structure(model: keras.Model, inputs: Mapping[str, Any]) -> Any:
    """`inputs`, given by input name, arranged as the model takes them (tensor, list or dict)."""
    if isinstance(model, keras.Sequential):
        # A Sequential model takes its one input tensor; its `input` property is only defined once
        # the model has been called, not when it was built from a keras.Input.
        return inputs[model.inputs[0].name]
    # A Functional model's `input` is the structure of keras.Input tensors it was built with.
    return keras.tree.map_structure(lambda tensor: inputs[tensor.name], model.input)


def read_signature(path: Path, signature: str) -> Any:
    """The `SignatureDef` named `signature` of the SavedModel at `path`, read without loading it.

    Raises:
        FileNotFoundError: if `path` holds no SavedModel.
        ValueError: if the SavedModel has no such signature (the message lists those it has).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {str(path)!r} (no saved_model.pb).")
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    if signature not in signatures:
        names = sorted(name for name in signatures if not name.startswith("__"))
        raise ValueError(f"The SavedModel has no signature {signature!r}. It has: {names}")
    return signatures[signature]
