"""Export for TF Serving, and its verification by loaders that do not import this package.

The one TensorFlow-specific module of the package (see DESIGN.md). `export_for_serving` writes a
SavedModel whose `serving_default` signature is the inference path: deterministic, with the noisy
layers' expectation and no random op. An optional `monte_carlo` signature keeps their noise on.
`verify_serving` checks the result in a fresh Python process and with `saved_model_cli`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts.layers.stochastic import StochasticLayer
from keras_adaptive_acts.measurement import all_layers, is_graph_model

__all__ = [
    "INFERENCE_SIGNATURE",
    "MONTE_CARLO_SIGNATURE",
    "ServingReport",
    "ServingVerificationError",
    "convert_to_litert",
    "export_for_serving",
    "verify_serving",
]

INFERENCE_SIGNATURE = "serving_default"
MONTE_CARLO_SIGNATURE = "monte_carlo"

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
RANDOM_OPS = frozenset({"Multinomial", "TruncatedNormal", "ParameterizedTruncatedNormal", "RngSkip"})
"""Random ops whose names do not contain "Random" (every op whose name does counts as well)."""


def _require_tensorflow() -> Any:
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "SavedModel export for TF Serving needs the TensorFlow backend (KERAS_BACKEND=tensorflow). "
            f"Current backend: {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    return tf


# ----------------------------------------------------------------------------------------------
# Export


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            f"The model {model.name!r} is not built: give it a keras.Input (or call it on a batch) "
            "before exporting, so that its input shapes are known."
        )
    if not is_graph_model(model):
        raise ValueError(
            "export_for_serving needs a Sequential or Functional model, whose keras.Input names the "
            f"signature's inputs. {type(model).__name__} is subclassed: wrap it as "
            "keras.Model(inputs, subclassed_model(inputs)) with named keras.Input tensors."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"The model {model.name!r} is not built: give it a keras.Input (or call it on a batch) "
            "before exporting, so that its input shapes are known."
        )


def _output_names(model: keras.Model) -> list[str]:
    names = getattr(model, "output_names", None)  # Functional models have them; Sequential does not
    return list(names) if names else [model.layers[-1].name]


def _input_specs(model: keras.Model, tf: Any) -> dict[str, Any]:
    return {
        tensor.name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=tensor.name)
        for tensor in model.inputs
    }


def _call_structure(model: keras.Model, inputs: Mapping[str, Any]) -> Any:
    # A Functional model is called with the structure (tensor, list or dict) it was built with;
    # Keras keeps it in a private attribute. Sequential models take their single input tensor.
    structure = getattr(model, "_inputs_struct", None)
    if structure is None:
        return inputs[model.inputs[0].name]
    return keras.tree.map_structure(lambda tensor: inputs[tensor.name], structure)


@contextlib.contextmanager
def _noise_at_inference(model: keras.Model, on: bool) -> Iterator[None]:
    """Sets `noise_at_inference` of every noisy layer (cells' units included) while tracing."""
    layers = [layer for layer in all_layers(model) if isinstance(layer, StochasticLayer)]
    saved = [layer.noise_at_inference for layer in layers]
    try:
        for layer in layers:
            layer.noise_at_inference = on
        yield
    finally:
        for layer, value in zip(layers, saved, strict=True):
            layer.noise_at_inference = value


def _traced_endpoint(model: keras.Model, tf: Any, noise: bool) -> Any:
    specs = _input_specs(model, tf)
    names = _output_names(model)

    def serve(inputs):
        outputs = keras.tree.flatten(model(_call_structure(model, inputs), training=False))
        return dict(zip(names, outputs, strict=True))

    function = tf.function(serve, input_signature=[specs], autograph=False)
    with _noise_at_inference(model, noise):
        function.get_concrete_function()  # traced now, with the noise setting of this endpoint
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
    and return a dict keyed by the model's output names. The model's variables are saved with it
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
        ValueError: for a model that is not a built Sequential or Functional model.
        FileExistsError: if `path` exists and `overwrite` is False.
        RuntimeError: on a backend other than TensorFlow.

    Examples:
        >>> import keras, tempfile
        >>> from keras_adaptive_acts import NoisyHardTanh
        >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3), NoisyHardTanh()])
        >>> path = export_for_serving(model, tempfile.mkdtemp() + "/model/1", monte_carlo=True)
        >>> sorted(p.name for p in path.iterdir())
        ['assets', 'fingerprint.pb', 'saved_model.pb', 'variables']
    """
    tf = _require_tensorflow()
    _check_model(model)
    for flag, value in (("monte_carlo", monte_carlo), ("overwrite", overwrite)):
        if not isinstance(value, bool):
            raise ValueError(f"`{flag}` must be True or False. Received: {flag}={value!r}")
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} exists: pass overwrite=True to replace it.")

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


def convert_to_litert(path: str | os.PathLike, signature: str = INFERENCE_SIGNATURE) -> bytes:
    """Converts one signature of an exported SavedModel to a LiteRT (TFLite) model, built-in ops only.

    Every layer of the package converts, except that a recurrent layer (`RNN` with a noisy cell,
    like Keras' own `LSTM`) needs `unroll=True`: its `while` loop uses tensor lists, which the
    built-in ops cannot lower. The serving guide has the table, which the tests measure.

    Args:
        path: the SavedModel directory, from `export_for_serving`.
        signature: the signature to convert (the inference one by default).

    Returns:
        The LiteRT flatbuffer, to write to a `.tflite` file or give to a LiteRT interpreter.

    Raises:
        RuntimeError: when the converter fails; the message ends with the converter's own error.
        FileNotFoundError: if `path` holds no SavedModel.
    """
    tf = _require_tensorflow()
    _signature_def(Path(path), signature)
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


# ----------------------------------------------------------------------------------------------
# Verification

# Runs in a fresh interpreter: loads the SavedModel with TensorFlow alone (this package cannot be
# imported there), calls the signature twice and lists the ops of its graph and nested functions.
_FRESH_PROCESS = r"""
import json, sys

class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "keras_adaptive_acts":
            raise ImportError("keras_adaptive_acts must not be imported by the serving check")

sys.meta_path.insert(0, _Refuse())
import numpy as np
import tensorflow as tf

path, signature, inputs_file, outputs_file = sys.argv[1:5]
loaded = tf.saved_model.load(path)  # kept: the signature's variables live as long as it does
function = loaded.signatures[signature]
specs = function.structured_input_signature[1]
with np.load(inputs_file) as data:
    inputs = {name: tf.constant(data[name], dtype=specs[name].dtype) for name in specs}
first = function(**inputs)
second = function(**inputs)
def plain(tensor):  # .npz cannot hold bfloat16; float32 holds it exactly
    return tf.cast(tensor, tf.float32).numpy() if tensor.dtype == tf.bfloat16 else tensor.numpy()
np.savez(outputs_file, **{f"first/{k}": plain(v) for k, v in first.items()},
         **{f"second/{k}": plain(v) for k, v in second.items()})
graph = function.graph.as_graph_def()
ops = {node.op for node in graph.node}
for library_function in graph.library.function:
    ops |= {node.op for node in library_function.node_def}
core = set(dir(tf.raw_ops))
print(json.dumps({"ops": sorted(ops), "non_core": sorted(ops - core), "tensorflow": tf.__version__,
                  "package_imported": any(m.startswith("keras_adaptive_acts") for m in sys.modules)}))
"""


class ServingVerificationError(AssertionError):
    """A SavedModel failed `verify_serving`; `report` holds every check's result."""

    def __init__(self, report: ServingReport):
        super().__init__(str(report))
        self.report = report


@dataclasses.dataclass
class ServingReport:
    """What `verify_serving` checked and found. `problems` is empty when every check passed."""

    path: str
    signature: str
    signature_text: str
    tolerance: dict[str, float]
    max_abs_error: dict[str, float]
    saved_model_cli_max_abs_error: dict[str, float]
    deterministic: bool
    ops: list[str]
    random_ops: list[str]
    python_ops: list[str]
    non_core_ops: list[str]
    tensorflow_version: str
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        def errors(values: dict[str, float]) -> str:
            return ", ".join(f"{name}: {value:.3g}" for name, value in values.items())

        lines = [
            f"SavedModel {self.path}, signature {self.signature!r} (loaded by TensorFlow "
            f"{self.tensorflow_version} in a fresh process without keras_adaptive_acts):",
            *("  " + line for line in self.signature_text.strip().splitlines()),
            *(
                [
                    f"max |served - reference|: {errors(self.max_abs_error)} "
                    f"(tolerance: rtol={self.tolerance['rtol']:g}, atol={self.tolerance['atol']:g})",
                    f"max |saved_model_cli run - reference|: {errors(self.saved_model_cli_max_abs_error)}",
                ]
                if self.max_abs_error
                else ["outputs not compared: a Monte Carlo signature has no reference"]
            ),
            f"two calls identical: {self.deterministic}",
            f"ops: {len(self.ops)} types, random: {self.random_ops or 'none'}, "
            f"Python: {self.python_ops or 'none'}, outside core TensorFlow: {self.non_core_ops or 'none'}",
            "PASSED"
            if self.passed
            else "FAILED:\n" + "\n".join(f"  - {problem}" for problem in self.problems),
        ]
        return "\n".join(lines)


def _signature_def(path: Path, signature: str) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {str(path)!r} (no saved_model.pb).")
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    if signature not in signatures:
        names = sorted(name for name in signatures if not name.startswith("__"))
        raise ValueError(f"The SavedModel has no signature {signature!r}. It has: {names}")
    return signatures[signature]


def _sample_inputs(signature_def: Any, sample: Any, tf: Any) -> dict[str, np.ndarray]:
    """The sample as `{input name: array}`, checked against the signature's shapes and dtypes."""
    specs = signature_def.inputs
    if isinstance(sample, Mapping):
        arrays = {str(name): np.asarray(value) for name, value in sample.items()}
    elif len(specs) == 1:
        arrays = {next(iter(specs)): np.asarray(sample)}
    else:
        raise ValueError(f"The signature has several inputs {sorted(specs)}: give the sample as a dict.")
    if set(arrays) != set(specs):
        raise ValueError(f"The sample's inputs {sorted(arrays)} are not the signature's {sorted(specs)}.")
    checked = {}
    for name, info in specs.items():
        dtype = tf.as_dtype(info.dtype).as_numpy_dtype
        shape = [dim.size for dim in info.tensor_shape.dim]
        value = arrays[name]
        fits = value.ndim == len(shape) and all(s in (-1, v) for s, v in zip(shape, value.shape, strict=True))
        if not fits or value.shape[0] == 0:
            expected = "(" + ", ".join("None" if s == -1 else str(s) for s in shape) + ")"
            raise ValueError(
                f"The sample for input {name!r} has shape {value.shape}; the signature expects {expected} "
                "with at least one row."
            )
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise ValueError(
                f"The sample for input {name!r} has dtype {value.dtype}; the signature takes {dtype}."
            )
        checked[name] = value.astype(dtype)
    return checked


def _reference(model: Any, expected: Any, inputs: dict[str, np.ndarray], names: list[str]) -> dict:
    if (model is None) == (expected is None):
        raise ValueError(
            "Give exactly one reference: `model` (its predict is compared) or `expected` outputs."
        )
    if model is not None:
        if isinstance(model, str | os.PathLike):
            model = keras.saving.load_model(model)
        _check_model(model)
        outputs = model.predict(_call_structure(model, inputs), verbose=0)
        expected = dict(zip(_output_names(model), keras.tree.flatten(outputs), strict=True))
    if not isinstance(expected, Mapping):
        if len(names) != 1:
            raise ValueError(f"The signature has several outputs {names}: give `expected` as a dict.")
        expected = {names[0]: expected}
    if set(expected) != set(names):
        raise ValueError(f"The reference outputs {sorted(expected)} are not the signature's {sorted(names)}.")
    return {name: np.asarray(value, dtype="float64") for name, value in expected.items()}


def _default_tolerance(signature_def: Any, tf: Any) -> dict[str, float]:
    dtypes = [tf.as_dtype(info.dtype) for info in signature_def.outputs.values()]
    if any(dtype in (tf.bfloat16, tf.float16) for dtype in dtypes):
        return {"rtol": 1e-2, "atol": 1e-2}
    return {"rtol": 1e-5, "atol": 1e-6}


def _run(command: list[str], what: str, timeout: float) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def _saved_model_cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("saved_model_cli")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", *args]


def _load_npy(path: Path) -> np.ndarray:
    """A `.npy` file from `saved_model_cli run`; bfloat16 arrays come back as 2-byte voids."""
    value = np.load(path)
    if value.dtype.kind == "V" and value.dtype.itemsize == 2:
        import ml_dtypes  # a dependency of TensorFlow

        value = value.view(ml_dtypes.bfloat16).astype("float32")
    return value


def _max_errors(got: dict, expected: dict) -> dict[str, float]:
    return {
        name: float(np.max(np.abs(np.asarray(got[name], "float64") - expected[name]))) for name in expected
    }


def verify_serving(
    path: str | os.PathLike,
    sample: Any,
    model: keras.Model | str | os.PathLike | None = None,
    *,
    expected: Any = None,
    signature: str = INFERENCE_SIGNATURE,
    rtol: float | None = None,
    atol: float | None = None,
    timeout: float = 300.0,
) -> ServingReport:
    """Checks a SavedModel as TF Serving would run it, with loaders that do not import this package.

    1. `saved_model_cli show` reports the signature (input and output names, dtypes, shapes).
    2. A fresh Python process, in which `keras_adaptive_acts` cannot be imported, loads the
       SavedModel with `tf.saved_model.load`, calls the signature twice on `sample`, and lists the
       ops of its graph (nested functions included).
    3. `saved_model_cli run`, a second and independent loader, runs it on the same sample.

    Checks: both loaders agree with the reference within `rtol`/`atol`
    (`|served - reference| <= atol + rtol * |reference|`); the two calls give identical results;
    and the graph has no Python op (`py_function`) and only ops of core TensorFlow (`tf.raw_ops`).
    For the inference signature, the graph must also have no random op. For the `"monte_carlo"`
    signature there is no reference (`model` and `expected` are ignored) and the two calls may
    differ: only the graph checks apply.

    Args:
        path: the SavedModel directory.
        sample: the inputs: an array for a single-input signature, or a dict by input name. The
            batch size is free; other dimensions must match the signature.
        model: the reference, a Keras model (or the path of a `.keras` file): `model.predict(sample)`.
        expected: the reference outputs instead of a model: an array, or a dict by output name.
        signature: the signature to check.
        rtol: relative tolerance; default 1e-5 (1e-2 if an output is float16 or bfloat16).
        atol: absolute tolerance; default 1e-6 (1e-2 if an output is float16 or bfloat16).
        timeout: seconds allowed to each of the three processes.

    Returns:
        A `ServingReport`, when every check passed.

    Raises:
        ServingVerificationError: if a check failed; its `report` says which.
        ValueError: for a missing signature, a sample of the wrong shape, dtype or inputs, or not
            exactly one of `model` and `expected`.
        FileNotFoundError: if `path` holds no SavedModel.
    """
    tf = _require_tensorflow()
    path = Path(path)
    signature_def = _signature_def(path, signature)
    inputs = _sample_inputs(signature_def, sample, tf)
    output_names = sorted(signature_def.outputs)
    reference = None
    if signature == INFERENCE_SIGNATURE:
        reference = _reference(model, expected, inputs, output_names)
    defaults = _default_tolerance(signature_def, tf)
    tolerance = {
        "rtol": defaults["rtol"] if rtol is None else rtol,
        "atol": defaults["atol"] if atol is None else atol,
    }

    with tempfile.TemporaryDirectory(prefix="kaa-verify-") as work:
        work_dir = Path(work)
        signature_text = _run(
            _saved_model_cli("show", "--dir", str(path), "--tag_set", "serve", "--signature_def", signature),
            "saved_model_cli show",
            timeout,
        )
        np.savez(work_dir / "inputs.npz", **inputs)
        fresh = json.loads(
            _run(
                [
                    sys.executable,
                    "-c",
                    _FRESH_PROCESS,
                    str(path),
                    signature,
                    str(work_dir / "inputs.npz"),
                    str(work_dir / "outputs.npz"),
                ],
                "Loading the SavedModel in a fresh process",
                timeout,
            )
            .strip()
            .splitlines()[-1]
        )
        with np.load(work_dir / "outputs.npz") as data:
            first = {name: data[f"first/{name}"] for name in output_names}
            second = {name: data[f"second/{name}"] for name in output_names}
        for name, value in inputs.items():
            np.save(work_dir / f"input_{name}.npy", value)
        cli_inputs = ";".join(f"{name}={work_dir / f'input_{name}.npy'}" for name in inputs)
        _run(
            _saved_model_cli(
                "run",
                "--dir",
                str(path),
                "--tag_set",
                "serve",
                "--signature_def",
                signature,
                "--inputs",
                cli_inputs,
                "--outdir",
                str(work_dir / "cli"),
                "--overwrite",
            ),
            "saved_model_cli run",
            timeout,
        )
        cli = {name: _load_npy(work_dir / "cli" / f"{name}.npy") for name in output_names}

    ops = fresh["ops"]
    report = ServingReport(
        path=str(path),
        signature=signature,
        signature_text=signature_text,
        tolerance=tolerance,
        max_abs_error=_max_errors(first, reference) if reference else {},
        saved_model_cli_max_abs_error=_max_errors(cli, reference) if reference else {},
        deterministic=all(np.array_equal(first[name], second[name]) for name in output_names),
        ops=ops,
        random_ops=[op for op in ops if "Random" in op or op in RANDOM_OPS],
        python_ops=[op for op in ops if op in PYTHON_OPS],
        non_core_ops=fresh["non_core"],
        tensorflow_version=fresh["tensorflow"],
        problems=[],
    )
    report.problems = _problems(report, first, cli, reference, signature, fresh["package_imported"])
    if report.problems:
        raise ServingVerificationError(report)
    return report


def _problems(
    report: ServingReport,
    first: dict,
    cli: dict,
    reference: dict | None,
    signature: str,
    package_imported: bool,
) -> list[str]:
    problems = []
    rtol, atol = report.tolerance["rtol"], report.tolerance["atol"]
    if reference is not None:
        for loader, outputs in (("the fresh process", first), ("saved_model_cli run", cli)):
            for name, value in outputs.items():
                if not np.allclose(np.asarray(value, "float64"), reference[name], rtol=rtol, atol=atol):
                    problems.append(
                        f"output {name!r} from {loader} differs from the reference beyond the tolerance"
                    )
    inference = signature == INFERENCE_SIGNATURE
    if inference and not report.deterministic:
        problems.append("two calls with the same input gave different outputs")
    if inference and report.random_ops:
        problems.append(f"the inference graph has random ops: {report.random_ops}")
    if report.python_ops:
        problems.append(f"the graph has Python ops, which TF Serving cannot run: {report.python_ops}")
    if report.non_core_ops:
        problems.append(f"the graph has ops outside core TensorFlow: {report.non_core_ops}")
    if package_imported:
        problems.append("keras_adaptive_acts was imported by the loader")
    return problems
