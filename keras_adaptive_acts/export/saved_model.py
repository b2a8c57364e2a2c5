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
from keras_adaptive_acts.export.target_path import (
    checked_target,
    make_parents,
    remove_folders,
)
from keras_adaptive_acts.layers.noise import POSITION_NAME, inference_noise

__all__ = ["export_for_serving"]


def _traced_endpoint(model: keras.Model, tf: Any, noise: bool) -> Any:
    """A `tf.function` of `model(inputs, training=False)`, traced with the noise drawn iff `noise`."""
    specs = input_specs(model, tf)
    names = output_names(model)
    positions = _noise_stream_positions(model) if noise else []

    def serve(inputs):
        for position in positions:
            _draw_fresh_seed(position, tf)
        outputs = keras.tree.flatten(model(call_structure(model, inputs), training=False))
        return dict(zip(names, outputs, strict=True))

    function = tf.function(serve, input_signature=[specs], autograph=False)
    # Traced now, inside the mode: the graph keeps the random ops (or their absence) of this
    # endpoint, and the mode is left once tracing is done.
    with inference_noise(noise):
        function.get_concrete_function()
    return function


def _noise_stream_positions(model: keras.Model) -> list[Any]:
    """The noise-stream positions of the model's noisy layers and cells, each once."""
    positions: dict[int, Any] = {}
    for weight in model.weights:
        if weight.name == POSITION_NAME:
            positions.setdefault(id(weight), weight)
    return list(positions.values())


# The seeds of a stream stay in the range Keras' own seeds take (`random.randint(1, 1e9)` and the
# int32 pair of TensorFlow's stateless ops).
_SEED_RANGE = (1, 2**31 - 1)


def _draw_fresh_seed(position: Any, tf: Any) -> None:
    """Gives a noise stream a seed drawn from the serving process's entropy, its draw count kept.

    The stream's position is a saved variable: without this, every load of the SavedModel (each
    TF Serving replica, each restart) would replay the same noise sequence. `RandomUniformInt`
    with `seed=0, seed2=0` seeds its kernel from the operating system each time a process
    instantiates it, whatever global seed was set when the model was traced (the raw op takes no
    seed from `tf.random.set_seed`), so each load draws its own seeds, and each call a new one.

    On TensorFlow the position is Philox's state `[256 * draws, 0, seed]` (`layers/noise.py`):
    only the seed, element 2, is written, with one scatter, so the draw count that
    `RngReadAndSkip` advances for concurrent calls is never rolled back, and no two calls get the
    same `(seed, draws)` pair.
    """
    variable = position.value
    if tuple(variable.shape) != (3,):
        raise RuntimeError(
            f"A noise-stream position of shape {tuple(variable.shape)}: the Monte Carlo signature "
            "expects TensorFlow's Philox state [256 * draws, 0, seed]."
        )
    seed = tf.raw_ops.RandomUniformInt(
        shape=tf.constant([1], tf.int32),
        minval=tf.constant(_SEED_RANGE[0], variable.dtype),
        maxval=tf.constant(_SEED_RANGE[1], variable.dtype),
        seed=0,
        seed2=0,
    )
    variable.scatter_nd_update(tf.constant([[2]], tf.int64), seed)


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
      normalisation) stay in inference mode. Every call draws new noise from a fresh seed that
      TensorFlow draws from the operating system's entropy in the serving process: two servers
      (or two loads) of one export give independent samples, not the same sequence.

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
        overwrite: replace an existing `path`, which must be an earlier SavedModel (a folder with
            `saved_model.pb` and nothing but a SavedModel's files) or an empty folder. Without it
            an existing path is an error. A symbolic link is followed: what it points to is
            replaced, the link stays.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: for a model that is not a built Sequential or Functional model, a model with
            nested outputs, an input name TensorFlow cannot give a signature's input (a space,
            `:`, `\\`, a letter beyond ASCII), or a `path` that is not a string or path.
        FileExistsError: if `path` exists and `overwrite` is False; an
            `UnreplaceableTargetError` (a `FileExistsError`) if `path` is not an earlier
            SavedModel (a file, a folder holding anything else) or a link to nothing, whatever
            `overwrite` says.
        NotADirectoryError: if a folder on the way to `path` is a file.
        OSError: if the folders cannot be created or written (checked before the model is traced).
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
    target = checked_target(path, overwrite, "the SavedModel's folder", _replaceable_saved_model)

    # The folders are made first: a path that cannot be written fails before the model is traced.
    created = make_parents(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError:
        remove_folders(created)
        raise
    written = False
    try:
        umask = os.umask(0)
        os.umask(umask)
        # As a plain mkdir would: mkdtemp's 0700 would hide the export from a server's user.
        staging.chmod(0o777 & ~umask)
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(INFERENCE_SIGNATURE, _traced_endpoint(model, tf, noise=False))
        if monte_carlo:
            archive.add_endpoint(MONTE_CARLO_SIGNATURE, _traced_endpoint(model, tf, noise=True))
        archive.write_out(
            str(staging),
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=True),
            verbose=False,
        )
        _replace(staging, target)
        written = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not written:
            remove_folders(created)
    return Path(path)


# What a SavedModel folder may hold: TensorFlow's files, Keras' metadata, TF Serving's warm-up data.
_SAVED_MODEL_ENTRIES = frozenset(
    {
        "saved_model.pb",
        "saved_model.pbtxt",
        "fingerprint.pb",
        "keras_metadata.pb",
        "variables",
        "assets",
        "assets.extra",
    }
)


def _replaceable_saved_model(existing: Path) -> str | None:
    """`None` if `existing` is a SavedModel folder holding nothing else, or an empty folder (nothing
    to lose), else what it is instead."""
    if not existing.is_dir():
        return "a file, not a SavedModel folder"
    entries = {entry.name for entry in existing.iterdir()}
    if not entries:
        return None
    if not entries & {"saved_model.pb", "saved_model.pbtxt"}:
        return "a folder that is not a SavedModel (no saved_model.pb)"
    others = sorted(entries - _SAVED_MODEL_ENTRIES)
    if others:
        return f"a SavedModel folder that also holds {others}"
    return None


# The names TensorFlow's graph loaders take for a node, and so for a signature's input (its
# placeholder is a node): `IsValidNodeName` in TensorFlow's node_def_util.cc. Its pattern there is
# written in a C++ string, where `\\-` is an escaped `-`: a backslash is not allowed, and the
# session loader (TF Serving's, `saved_model_cli run`'s) refuses such a SavedModel.
_TENSORFLOW_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")


def _check_input_names(model: keras.Model) -> None:
    """Raises `ValueError` for a `keras.Input` name that TensorFlow cannot give a signature's input."""
    for tensor in model.inputs:
        if not _TENSORFLOW_NAME.fullmatch(tensor.name):
            raise ValueError(
                f"The model's input {tensor.name!r} cannot name an input of a SavedModel signature: "
                "TensorFlow takes letters, digits and `_ . - / >` (`.` or a letter or digit first). "
                "Rename it where the model is built (`keras.Input(shape, name=...)`); an ONNX export "
                "takes any name."
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
    if old.is_dir() and not old.is_symlink():  # a link is removed itself, never what it points to
        shutil.rmtree(old)
    else:
        old.unlink()
