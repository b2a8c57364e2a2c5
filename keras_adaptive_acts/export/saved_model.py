"""`export_for_serving`: a Keras model written as a SavedModel for TF Serving.

The `serving_default` signature is the inference path: deterministic, with the noisy layers'
expectation and no random op. An optional `monte_carlo` signature keeps their noise on. Which of
the two a signature computes is decided once, while it is traced, by the noise mode's one owner
(`keras_adaptive_acts.layers.noise.inference_noise`): no layer attribute is written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras

from keras_adaptive_acts.export.serving_interface import (
    INFERENCE_SIGNATURE,
    MONTE_CARLO_SIGNATURE,
    call_structure,
    check_model,
    input_specs,
    output_names,
    require_tensorflow,
)
from keras_adaptive_acts.export.target_path import checked_target
from keras_adaptive_acts.layers.noise import inference_noise

__all__ = ["export_for_serving"]


def _traced_endpoint(model: keras.Model, tf: Any, noise: bool) -> Any:
    """A `tf.function` of `model(inputs, training=False)`, traced with the noise drawn iff `noise`."""
    specs = input_specs(model, tf)
    names = output_names(model)

    def serve(inputs):
        outputs = keras.tree.flatten(model(call_structure(model, inputs), training=False))
        return dict(zip(names, outputs, strict=True))

    function = tf.function(serve, input_signature=[specs], autograph=False)
    # Traced now, inside the mode: the graph keeps the random ops (or their absence) of this
    # endpoint, and the mode is left once tracing is done.
    with inference_noise(noise):
        function.get_concrete_function()
    return function


def export_for_serving(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    monte_carlo: bool = False,
    overwrite: bool = False,
) -> Path:
    """Writes a SavedModel for TF Serving: a deterministic inference signature, optionally a noisy one.

    Signatures (TF Serving's `signature_name`):

    - `"serving_default"`: `model(x, training=False)` with every noisy layer in its inference
      form (the expectation), even one built with `noise_at_inference=True`. No random op.
    - `"monte_carlo"` (with `monte_carlo=True`): the same model with the noise of the noisy layers
      (and of the noisy recurrent cells) on, as in training; other layers (dropout, batch
      normalisation) stay in inference mode. Every call draws new noise.

    Both take the model's inputs by the names of its `keras.Input` tensors, with a free batch size,
    and return a dict keyed by the model's output names: a dict of outputs by its keys, otherwise
    the names of the layers that compute them, numbered where one layer computes several (`rnn`,
    `rnn_1` for an RNN with `return_state=True`). The model's variables are saved with it
    and custom gradients are kept, so the reloaded SavedModel can be differentiated (e.g. for
    fine-tuning). The directory is written to a temporary sibling first and renamed into place, so
    a failed export leaves nothing behind and an existing export is replaced only when complete.

    Args:
        model: a built Sequential or Functional model.
        path: the SavedModel directory to write; TF Serving expects `.../model_name/version`.
            Missing parent directories are created.
        monte_carlo: also write the `"monte_carlo"` signature.
        overwrite: replace an existing `path`. Without it an existing path is an error.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: for a model that is not a built Sequential or Functional model, an input name
            TensorFlow cannot give a signature's input (a space, `:`, a letter beyond ASCII), or a
            `path` that is not a string or path.
        FileExistsError: if `path` exists and `overwrite` is False.
        NotADirectoryError: if a folder on the way to `path` is a file.
        RuntimeError: on a backend other than TensorFlow.

    Examples:
        >>> import keras, tempfile
        >>> from keras_adaptive_acts import NoisyHardTanh
        >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3), NoisyHardTanh()])
        >>> path = export_for_serving(model, tempfile.mkdtemp() + "/model/1", monte_carlo=True)
        >>> sorted(p.name for p in path.iterdir())
        ['assets', 'fingerprint.pb', 'saved_model.pb', 'variables']
    """
    tf = require_tensorflow()
    check_model(model)
    _check_input_names(model)
    for flag, value in (("monte_carlo", monte_carlo), ("overwrite", overwrite)):
        if not isinstance(value, bool):
            raise ValueError(f"`{flag}` must be True or False. Received: {flag}={value!r}")
    target = checked_target(path, overwrite, "the SavedModel's folder")

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(INFERENCE_SIGNATURE, _traced_endpoint(model, tf, noise=False))
    if monte_carlo:
        archive.add_endpoint(MONTE_CARLO_SIGNATURE, _traced_endpoint(model, tf, noise=True))

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # as a plain mkdir would: mkdtemp's 0700 would hide it from a server user
    try:
        archive.write_out(
            str(staging),
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=True),
            verbose=False,
        )
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# The names TensorFlow takes for a graph's nodes, and so for a signature's inputs.
_TENSORFLOW_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


def _check_input_names(model: keras.Model) -> None:
    """Raises `ValueError` for a `keras.Input` name that TensorFlow cannot give a signature's input."""
    for tensor in model.inputs:
        if not _TENSORFLOW_NAME.fullmatch(tensor.name):
            raise ValueError(
                f"The model's input {tensor.name!r} cannot name an input of a SavedModel signature: "
                "TensorFlow takes letters, digits and `_ . - / \\ >` (not first). Rename it where the "
                "model is built (`keras.Input(shape, name=...)`); an ONNX export takes any name."
            )


def _replace(new: Path, target: Path) -> None:
    """Renames `new` to `target`; an existing `target` is removed only once `new` is in place."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
