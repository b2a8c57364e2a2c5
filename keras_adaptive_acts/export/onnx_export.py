"""`export_onnx`: a Keras model written as an ONNX file, at the noisy layers' expectation.

Built on Keras' own `model.export(path, format="onnx")`, which on the TensorFlow backend traces the
model with `tf.function` and converts the graph with tf2onnx. Around it:

- The trace runs inside `inference_noise(False)`, as the SavedModel's inference signature does: every
  noisy layer and cell is exported at its expectation, with no random op, and no layer attribute
  is written.
- The inputs are named after the model's `keras.Input` tensors, with a free batch size, and the
  outputs after the model's output names (tf2onnx names them after TensorFlow's graph, e.g.
  `"Identity:0"`): an ONNX Runtime client asks for `"logits"` as a TF Serving client does.
- The file is written beside its target, passed through the ONNX checker, and moved into place: a
  failed export leaves nothing behind, and an existing file is replaced only by a complete one.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras

from keras_adaptive_acts.export.serving_interface import (
    call_structure,
    check_model,
    input_specs,
    output_names,
    require_tensorflow,
)
from keras_adaptive_acts.export.target_path import (
    checked_target,
    make_parents,
    remove_folders,
)
from keras_adaptive_acts.layers.noise import inference_noise

__all__ = ["export_onnx", "require_onnx"]

INSTALL_HINT = 'pip install "keras-adaptive-acts[onnx]"'


def require_onnx(*modules: str) -> Any:
    """The `onnx` module, once `modules` (and `onnx`) import; an `ImportError` saying what to install."""
    try:
        onnx = importlib.import_module("onnx")
        for module in modules:
            importlib.import_module(module)
    except ImportError as error:
        needed = ", ".join(dict.fromkeys(("onnx", *modules)))
        raise ImportError(f"ONNX export and verification need {needed}: {INSTALL_HINT} ({error})") from error
    return onnx


def export_onnx(model: keras.Model, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Writes a model's inference path, `model(x, training=False)`, as a deterministic ONNX file.

    Every noisy layer and noisy recurrent cell takes its inference form (the expectation), even one
    built with `noise_at_inference=True`, and the graph has no random op: the model is traced
    inside `inference_noise(False)`, as the SavedModel's `serving_default` signature is. The
    conversion is Keras' `model.export(path, format="onnx")` (tf2onnx, on the TensorFlow backend).

    The ONNX model takes the model's inputs by the names of its `keras.Input` tensors, with a free
    batch size, and gives its outputs by the model's output names (`output_names` of a Functional
    model, the last layer's name for a Sequential one). The file is written to a temporary sibling,
    checked by the ONNX checker (`onnx.checker.check_model(full_check=True)`) and renamed into
    place: a failed export leaves nothing behind, and an existing file is replaced in one step,
    only by a complete one. Needs the `onnx` extra (tf2onnx and onnx).

    Args:
        model: a built Sequential or Functional model.
        path: the ONNX file to write, e.g. `"my_model.onnx"`. Missing parent directories are created.
        overwrite: replace an existing file at `path`, which must be an earlier ONNX model (or
            empty).
            Without it an existing path is an error. A symbolic link is followed: the file it
            points to is replaced, the link stays.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: for a model that is not a built Sequential or Functional model, a model with
            nested outputs or with an output named like an input, or a `path` that is not a string
            or path.
        FileExistsError: if `path` exists and `overwrite` is False; an
            `UnreplaceableTargetError` (a `FileExistsError`) if `path` is not an ONNX model (the
            source `.keras` file, say) or a link to nothing, whatever `overwrite` says.
        IsADirectoryError: if `path` is a directory.
        NotADirectoryError: if a folder on the way to `path` is a file.
        OSError: if the folder cannot be created or written (checked before the conversion).
        RuntimeError: if the conversion fails or the ONNX checker rejects its result (the message
            ends with the converter's or the checker's error), or on a backend other than TensorFlow.
        ImportError: without tf2onnx or onnx.

    Examples:
        >>> import keras, tempfile
        >>> from keras_adaptive_acts import NoisyHardTanh
        >>> inputs = keras.Input((4,), name="x")
        >>> model = keras.Model(inputs, NoisyHardTanh(name="y")(keras.layers.Dense(3)(inputs)))
        >>> export_onnx(model, tempfile.mkdtemp() + "/model.onnx").name
        'model.onnx'
    """
    tf = require_tensorflow("ONNX export")
    check_model(model, exporter="export_onnx")
    _check_output_names(model)
    if not isinstance(overwrite, bool):
        raise ValueError(f"`overwrite` must be True or False. Received: overwrite={overwrite!r}")
    if isinstance(path, str | os.PathLike) and Path(path).is_dir():
        raise IsADirectoryError(
            f"{str(path)!r} is a directory: give the path of the ONNX file to write, "
            f"e.g. {str(Path(path) / 'model.onnx')!r}."
        )
    onnx = require_onnx("tf2onnx")
    target = checked_target(
        path, overwrite, "the ONNX file to write", lambda existing: _replaceable_onnx(existing, onnx)
    )

    # The folders and the staging file are made first: a path that cannot be written fails before
    # the (slow) conversion.
    created = make_parents(target)
    try:
        handle, staging_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent
        )
    except OSError:
        remove_folders(created)
        raise
    os.close(handle)
    staging = Path(staging_name)
    written = False
    try:
        converter_errors = _convert(model, staging, tf)
        proto = onnx.load(str(staging))
        _name_outputs(proto, output_names(model), onnx)
        _check(proto, onnx, converter_errors)
        onnx.save(proto, str(staging))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o666 & ~umask)  # as a plain open() would: mkstemp's 0600 would hide it from a server
        os.replace(staging, target)  # atomic: a reader sees the old file or the new one, never a part
        written = True
    finally:
        staging.unlink(missing_ok=True)
        if not written:
            remove_folders(created)
    return Path(path)


def _replaceable_onnx(existing: Path, onnx: Any) -> str | None:
    """`None` if `existing` is an ONNX model file or an empty file (nothing to lose), else what it is
    instead."""
    if existing.is_dir():  # a link to a folder (a plain folder is refused before)
        return "a folder, not an ONNX file"
    if existing.stat().st_size == 0:
        return None
    try:
        proto = onnx.load(str(existing), load_external_data=False)
    except Exception:  # protobuf's DecodeError, among others: not an ONNX model
        return "a file that is not an ONNX model"
    # An empty or unrelated file can parse as an empty protobuf message: an ONNX model has an IR
    # version and a graph with outputs.
    if not proto.ir_version or not proto.graph.output:
        return "a file that is not an ONNX model"
    return None


def _check_output_names(model: keras.Model) -> None:
    """Raises `ValueError` for an output named like an input, which an ONNX graph cannot have.

    A SavedModel's signature keeps its inputs and outputs apart; an ONNX graph names tensors, so an
    output cannot take an input's name (a dict output keyed like the input of an autoencoder, or
    an input passed through as an output, which Keras names after the input).
    """
    inputs = {tensor.name for tensor in model.inputs}
    for name in output_names(model):
        if name in inputs:
            raise ValueError(
                f"The model's output {name!r} has the name of one of its inputs, which an ONNX model "
                "cannot give an output. Rename the output: a dict output's key, or the layer that "
                f"computes it (an input passed through: wrap it in keras.layers.Identity(name="
                f"{name + '_output'!r}))."
            )


class _ConverterErrors(logging.Handler):
    """Collects the errors tf2onnx logs.

    tf2onnx logs a node it cannot convert and goes on, leaving the TensorFlow op in the graph: the
    ONNX checker then rejects the model, and these errors say why.
    """

    def __init__(self):
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # "Failed to convert node 'name' (fct=<bound method ...>)", then the node: the first part.
        text = record.getMessage().splitlines()[0].split(" (fct=")[0]
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]}"
        self.errors.append(" ".join(text.split()))


def _convert(model: keras.Model, path: Path, tf: Any) -> list[str]:
    """Keras' ONNX export of `model` to `path`, traced in the expectation mode; the errors tf2onnx logged."""
    # An explicit signature: the inputs get the keras.Input names and a free batch size, as in the
    # SavedModel, and Keras does not ask for a model that has been called once (its default does).
    signature = [call_structure(model, input_specs(model, tf))]
    collector = _ConverterErrors()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(collector)
    try:
        with warnings.catch_warnings():
            # Keras' numpy-2 patch of tf2onnx tests `hasattr(np, "object")`, which warns on every export.
            warnings.filterwarnings("ignore", message=r"In the future `np\.object`", category=FutureWarning)
            with inference_noise(False):
                model.export(str(path), format="onnx", verbose=False, input_signature=signature)
    except OSError:
        raise  # the disk, not the converter: left as it is
    except Exception as error:
        import tf2onnx

        detail = " ".join(str(error).split()) or type(error).__name__
        raise RuntimeError(f"ONNX conversion (tf2onnx {tf2onnx.__version__}) failed: {detail}") from error
    finally:
        logger.removeHandler(collector)
    return collector.errors


def _name_outputs(proto: Any, names: list[str], onnx: Any) -> None:
    """Gives the graph's outputs the model's output names, in order, through `Identity` nodes.

    An `Identity` node per renamed output leaves every tensor of the graph as tf2onnx named it, so
    no reference to it (in a loop's body, say) needs to change. Outputs that tf2onnx already named so (a
    dict's keys) stay as they are.
    """
    graph = proto.graph
    if len(graph.output) != len(names):
        raise RuntimeError(f"The ONNX model has {len(graph.output)} outputs; the Keras model has {names}.")
    taken = {name for node in graph.node for name in node.output}
    taken |= {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    for output, name in zip(graph.output, names, strict=True):
        if output.name == name:
            continue
        if name in taken:
            raise RuntimeError(
                f"Cannot name the ONNX output {output.name!r} {name!r}: a tensor has that name."
            )
        graph.node.append(onnx.helper.make_node("Identity", [output.name], [name], name=f"{name}/output"))
        output.name = name
        taken.add(name)


def _check(proto: Any, onnx: Any, converter_errors: list[str]) -> None:
    """The ONNX checker, with strict type and shape inference: what ONNX Runtime would refuse to load."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:  # ValidationError, or InferenceError from the shape inference
        detail = " ".join(str(error).split())
        if converter_errors:
            # tf2onnx names ONNX's element types by number ("dtype 10"): their names are added.
            errors = "; ".join(
                re.sub(r"dtype (\d+)", lambda m: f"dtype {m[1]} ({_type_name(onnx, int(m[1]))})", text)
                for text in dict.fromkeys(converter_errors)
            )
            import tf2onnx

            raise RuntimeError(
                f"ONNX conversion (tf2onnx {tf2onnx.__version__}) failed: {errors}; the ONNX checker "
                f"rejects the result: {detail}"
            ) from error
        hint = (
            " (bfloat16: tf2onnx mixes float16 and bfloat16 tensors; export a float32 or mixed_float16 model)"
            if "bfloat16" in detail
            else ""
        )
        raise RuntimeError(f"The ONNX checker rejects the converted model{hint}: {detail}") from error


def _type_name(onnx: Any, number: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(number)
    except ValueError:
        return "unknown type"
