"""`verify_serving`: a SavedModel checked as TF Serving would run it, by loaders without this package.

Three loaders see the SavedModel: `saved_model_cli show`, a fresh Python process running
`serving_check.py` (where `keras_adaptive_acts` cannot be imported), and `saved_model_cli run`.
Their outputs are compared with a reference (the Keras model's `predict`, or given outputs) and
the graph's ops are checked (no Python op, only core TensorFlow, no random op for inference).
The sample's check, the reference, the tolerances and the comparison serve `verify_onnx` as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts.export.serving_interface import (
    INFERENCE_SIGNATURE,
    call_structure,
    check_model,
    output_names,
    read_signature,
    require_tensorflow,
)
from keras_adaptive_acts.layers.noise import inference_noise
from keras_adaptive_acts.model_graph import all_layers
from keras_adaptive_acts.validation import check_number

__all__ = [
    "LOADERS",
    "ROUNDING_ULPS",
    "ServingReport",
    "ServingVerificationError",
    "checked_tolerance",
    "default_tolerance",
    "differing_outputs",
    "identical_outputs",
    "loader_commands",
    "max_abs_errors",
    "reference_model",
    "reference_outputs",
    "run_process",
    "run_processes",
    "sample_inputs",
    "verify_serving",
]

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
# RngReadAndSkip: how a noise stream advances on TensorFlow (a draw follows it).
RANDOM_OPS = frozenset(
    {"Multinomial", "TruncatedNormal", "ParameterizedTruncatedNormal", "RngSkip", "RngReadAndSkip"}
)
"""Random ops whose names do not contain "Random" (every op whose name does counts as well)."""

SERVING_CHECK = Path(__file__).with_name("serving_check.py")
"""The script the fresh process runs, by its path (it must not import this package, even indirectly)."""


class ServingVerificationError(AssertionError):
    """An export failed `verify_serving` or `verify_onnx`; `report` holds every check's result.

    `report` is a `ServingReport` for a SavedModel, an `ONNXReport` for an ONNX file.
    """

    def __init__(self, report: Any):
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


def sample_inputs(
    specs: Mapping[str, tuple[tuple[int | None, ...], Any]], sample: Any, source: str = "signature"
) -> dict[str, np.ndarray]:
    """The sample as `{input name: array}`, checked against the inputs the `source` takes.

    `specs` maps each input name to its shape (`None` for a free dimension) and NumPy dtype.
    """
    if isinstance(sample, Mapping):
        arrays = {str(name): np.asarray(value) for name, value in sample.items()}
    elif len(specs) == 1:
        arrays = {next(iter(specs)): np.asarray(sample)}
    else:
        raise ValueError(f"The {source} has several inputs {sorted(specs)}: give the sample as a dict.")
    if set(arrays) != set(specs):
        raise ValueError(f"The sample's inputs {sorted(arrays)} are not the {source}'s {sorted(specs)}.")
    checked = {}
    for name, (shape, dtype) in specs.items():
        value = arrays[name]
        fits = value.ndim == len(shape) and all(
            s in (None, v) for s, v in zip(shape, value.shape, strict=True)
        )
        if not fits or value.shape[0] == 0:
            expected = "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"
            raise ValueError(
                f"The sample for input {name!r} has shape {value.shape}; the {source} expects {expected} "
                "with at least one row."
            )
        if np.dtype(dtype) == object:  # a string input (TensorFlow's and ONNX's strings are `object`)
            checked[name] = _string_sample(name, value, source)
            continue
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise ValueError(
                f"The sample for input {name!r} has dtype {value.dtype}; the {source} takes {dtype}."
            )
        checked[name] = value.astype(dtype)
    return checked


def _string_sample(name: str, value: np.ndarray, source: str) -> np.ndarray:
    """A string input's sample as a bytes array (UTF-8): `np.save` writes it without a pickle.

    NumPy gives TensorFlow's string dtype as `object`, whose arrays `np.save` pickles, and the
    loaders read samples with `allow_pickle=False`: bytes arrays need neither, and TensorFlow and
    `saved_model_cli run` feed them to a string input as they are.
    """
    if value.dtype.kind == "O" and all(isinstance(item, str | bytes) for item in value.reshape(-1)):
        value = np.array(
            [item.encode("utf-8") if isinstance(item, str) else item for item in value.reshape(-1)],
            dtype=bytes,
        ).reshape(value.shape)
    if value.dtype.kind == "U":
        value = np.char.encode(value, "utf-8")
    if value.dtype.kind != "S":
        raise ValueError(
            f"The sample for input {name!r} has dtype {value.dtype}; the {source} takes strings "
            "(give str or bytes values)."
        )
    return value


def _signature_specs(signature_def: Any, tf: Any) -> dict[str, tuple[tuple[int | None, ...], Any]]:
    """`{input name: (shape, NumPy dtype)}` of a SignatureDef, `None` for a free dimension."""
    return {
        name: (
            tuple(None if dim.size == -1 else dim.size for dim in info.tensor_shape.dim),
            tf.as_dtype(info.dtype).as_numpy_dtype,
        )
        for name, info in signature_def.inputs.items()
    }


def reference_model(model: Any) -> Any:
    """The reference `model` of a verification, loaded if it is the path of a `.keras` file."""
    return keras.saving.load_model(model) if isinstance(model, str | os.PathLike) else model


def reference_outputs(
    model: Any, expected: Any, inputs: dict[str, np.ndarray], names: list[str], source: str = "signature"
) -> dict[str, np.ndarray]:
    """The outputs an export must give for `inputs`, by output name, in float64.

    From `model` (a Keras model or a `.keras` path), called as the exports trace it, or from
    `expected` (an array for a single output, else a dict by name); exactly one of the two.
    """
    if (model is None) == (expected is None):
        raise ValueError(
            "Give exactly one reference: `model` (its predict is compared) or `expected` outputs."
        )
    if model is not None:
        model = reference_model(model)
        check_model(model)
        # The inference signature (and the ONNX model) serve the expectation even for layers built
        # with noise_at_inference=True, whose predict() draws noise: the reference is computed in
        # the same mode. A direct call, because predict() reuses a graph traced outside the mode.
        with inference_noise(False):
            outputs = model(call_structure(model, inputs), training=False)
        outputs = [keras.ops.convert_to_numpy(output) for output in keras.tree.flatten(outputs)]
        expected = dict(zip(output_names(model), outputs, strict=True))
    if not isinstance(expected, Mapping):
        if len(names) != 1:
            raise ValueError(f"The {source} has several outputs {names}: give `expected` as a dict.")
        expected = {names[0]: expected}
    if set(expected) != set(names):
        raise ValueError(f"The reference outputs {sorted(expected)} are not the {source}'s {sorted(names)}.")
    return {name: np.asarray(value, dtype="float64") for name, value in expected.items()}


_SIXTEEN_BIT = ("bfloat16", "float16")


ROUNDING_ULPS = 32
"""How many float32 units in the last place of the reference's largest value the default `atol` allows.

Another runtime (ONNX Runtime's MLAS kernels, another TensorFlow build) sums a matrix product's
terms in another order: each output then differs by a few float32 ulps of the values summed, and
those grow with the outputs' scale, so an output near 0 can be off by much more than its own
ulps. 32 ulps of the largest output covers a deep float32 MLP with room to spare (a 3 x 2048 ReLU
MLP with outputs up to 10 differs by about 3 ulps), while an error in the model (a wrong weight)
is off by orders of magnitude more.
"""


def default_tolerance(
    output_dtypes: Iterable[str], model: Any = None, reference: Mapping[str, np.ndarray] | None = None
) -> dict[str, float]:
    """`{"rtol", "atol"}` for outputs of these dtypes (by name): looser if one is 16-bit, or if the
    reference `model` computes in 16 bits anywhere (a mixed-precision model with a float32 head, as
    Keras advises, has float32 outputs computed from float16 ones).

    In float32, `rtol` is 1e-5 and `atol` covers the rounding of the computation: the larger of 1e-6
    and `ROUNDING_ULPS` float32 ulps of the largest finite value of the `reference` outputs (given
    by name).
    """
    sixteen_bit = any(dtype in _SIXTEEN_BIT for dtype in output_dtypes)
    if isinstance(model, keras.Model):
        sixteen_bit |= any(layer.compute_dtype in _SIXTEEN_BIT for layer in all_layers(model))
    if sixteen_bit:
        return {"rtol": 1e-2, "atol": 1e-2}
    scale = 0.0
    for value in (reference or {}).values():
        finite = np.abs(value[np.isfinite(value)])
        scale = max(scale, float(finite.max(initial=0.0)))
    return {
        "rtol": 1e-5,
        "atol": max(1e-6, _round_up(ROUNDING_ULPS * float(np.finfo("float32").eps) * scale)),
    }


def _round_up(value: float) -> float:
    """`value` rounded up to two significant digits: a tolerance a report shows as it is used."""
    if value <= 0:
        return value
    unit = 10.0 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(value / unit - 1e-9) * unit:.2g}")


def checked_tolerance(rtol: Any, atol: Any, timeout: Any, defaults: dict[str, float]) -> dict[str, float]:
    """`{"rtol", "atol"}`: those given, else the defaults; `ValueError` for a bad one (or `timeout`)."""
    check_number("timeout", timeout, minimum=0, strict=True)
    return {
        name: defaults[name] if value is None else check_number(name, value, minimum=0)
        for name, value in (("rtol", rtol), ("atol", atol))
    }


def run_process(command: list[str], what: str, timeout: float) -> str:
    """Runs `command` (TensorFlow's log lines off); its stdout, or a `RuntimeError` naming `what`."""
    return run_processes({what: command}, timeout)[what]


def run_processes(commands: Mapping[str, list[str]], timeout: float) -> dict[str, str]:
    """Runs independent commands at the same time; `{what: its stdout}` once all have succeeded.

    Each loader of a verification is a fresh process that mostly imports TensorFlow and loads the
    model, on one core: run side by side, they take about as long as the slowest one where cores are
    free, instead of their sum. `commands` maps what each one does, as an error names it, to the
    command. Each runs with TensorFlow's log lines off, and must finish within `timeout` seconds of
    the start. A `RuntimeError` names the first that failed or ran out of time, in the order given;
    the others are stopped then, and on any exception (Ctrl-C too): no process outlives the call.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with contextlib.ExitStack() as cleanup:
        processes = {}
        for what, command in commands.items():
            # Files, not pipes: a process that fills its pipe would wait while the reader waits for another.
            stdout = cleanup.enter_context(tempfile.TemporaryFile("w+"))
            stderr = cleanup.enter_context(tempfile.TemporaryFile("w+"))
            process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
            cleanup.callback(_stop, process)  # before its files close: callbacks run last in, first out
            processes[what] = (process, stdout, stderr)
        deadline = time.monotonic() + timeout
        outputs = {}
        for what, (process, stdout, stderr) in processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{what} did not finish within timeout={timeout:g} s.") from None
            if process.returncode != 0:
                stderr.seek(0)
                raise RuntimeError(f"{what} failed (exit {process.returncode}):\n{stderr.read()[-3000:]}")
            stdout.seek(0)
            outputs[what] = stdout.read()
        return outputs


def _stop(process: subprocess.Popen) -> None:
    """Kills `process` if it still runs, and reaps it."""
    if process.poll() is None:
        process.kill()
        process.wait()


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


def _abs_errors(got: Any, expected: np.ndarray) -> np.ndarray:
    """`|got - expected|`, elementwise: 0 where both are NaN or both the same infinity, `inf` where
    only one is NaN (a NaN where the reference has a number, or the other way, is an error)."""
    got = np.asarray(got, "float64")
    with np.errstate(invalid="ignore"):  # inf - inf
        errors = np.abs(got - expected)
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    errors = np.where(same, 0.0, errors)
    return np.where(np.isnan(errors), np.inf, errors)


def max_abs_errors(got: dict, expected: dict) -> dict[str, float]:
    """`{output name: max |got - expected|}`; NaNs in the same places on both sides count as equal."""
    return {name: float(np.max(_abs_errors(got[name], expected[name]), initial=0.0)) for name in expected}


def differing_outputs(got: dict, expected: dict, tolerance: dict[str, float]) -> list[str]:
    """The names of the outputs where `|got - expected| <= atol + rtol * |expected|` fails somewhere.

    A NaN matches a NaN in the same place (a model may compute NaN for some inputs, as the
    reference does); a NaN against a number fails.
    """
    return [
        name
        for name, value in got.items()
        if not np.allclose(
            np.asarray(value, "float64"),
            expected[name],
            rtol=tolerance["rtol"],
            atol=tolerance["atol"],
            equal_nan=True,
        )
    ]


def identical_outputs(first: dict, second: dict) -> bool:
    """Whether two runs gave the same outputs, bit for bit, NaNs in the same places included."""
    return all(_identical(first[name], second[name]) for name in first)


def _identical(first: np.ndarray, second: np.ndarray) -> bool:
    if first.dtype.kind in "fc":  # NaN != NaN: two runs that both give NaN in one place agree
        return bool(np.array_equal(first, second, equal_nan=True))
    return bool(np.array_equal(first, second))


LOADERS = ("saved_model_cli show", "Loading the SavedModel in a fresh process", "saved_model_cli run")
"""What each of `verify_serving`'s three loader processes does, as its errors name it."""


def loader_commands(
    path: Path, signature: str, inputs: dict[str, np.ndarray], outputs: list[str], work_dir: Path
) -> dict[str, list[str]]:
    """The commands of `verify_serving`'s three loaders, by `LOADERS`, with their files in `work_dir`.

    Writes the `inputs` they read into `work_dir` (and the folders `saved_model_cli run` writes the
    `outputs` into): the fresh process leaves `outputs.npz` there, and `saved_model_cli run` one
    `.npy` file per output under `cli/`.
    """
    np.savez(work_dir / "inputs.npz", **inputs)
    for name, value in inputs.items():
        np.save(work_dir / f"input_{name}.npy", value)
    cli_inputs = ";".join(f"{name}={work_dir / f'input_{name}.npy'}" for name in inputs)
    # saved_model_cli writes each output to OUTDIR/<output key>.npy: a key with `/` (a dict output's
    # "probs/softmax") needs the folders on the way.
    for name in outputs:
        (work_dir / "cli" / f"{name}.npy").parent.mkdir(parents=True, exist_ok=True)
    serve = ["--dir", str(path), "--tag_set", "serve", "--signature_def", signature]
    shown, fresh_process, cli_run = LOADERS
    return {
        shown: _saved_model_cli("show", *serve),
        fresh_process: [
            sys.executable,
            str(SERVING_CHECK),
            str(path),
            signature,
            str(work_dir / "inputs.npz"),
            str(work_dir / "outputs.npz"),
        ],
        cli_run: _saved_model_cli(
            "run", *serve, "--inputs", cli_inputs, "--outdir", str(work_dir / "cli"), "--overwrite"
        ),
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
    2. A fresh Python process runs `serving_check.py` (beside this module) by its path: with
       `keras_adaptive_acts` made unimportable, it loads the SavedModel with `tf.saved_model.load`,
       calls the signature twice on `sample`, and lists the ops of its graph (nested functions
       included).
    3. `saved_model_cli run`, a second and independent loader, runs it on the same sample.

    The three processes run at the same time: on a machine with free cores the check takes about
    as long as the slowest of them.

    Checks: both loaders agree with the reference within `rtol`/`atol`
    (`|served - reference| <= atol + rtol * |reference|`, a NaN matching a NaN in the same place);
    the two calls give identical results (NaNs included);
    and the graph has no Python op (`py_function`) and only ops of core TensorFlow (`tf.raw_ops`).
    For the inference signature, the graph must also have no random op. For the `"monte_carlo"`
    signature there is no reference (`model` and `expected` are ignored) and the two calls may
    differ: only the graph checks apply.

    Args:
        path: the SavedModel directory.
        sample: the inputs: an array for a single-input signature, or a dict by input name. The
            batch size is free; other dimensions must match the signature. A string input takes
            `str` or `bytes` values.
        model: the reference, a Keras model (or the path of a `.keras` file): its expectation,
            `model(sample, training=False)` inside `inference_noise(False)`, as the inference
            signature computes it (`predict` would draw noise in layers built with
            `noise_at_inference=True`).
        expected: the reference outputs instead of a model: an array, or a dict by output name.
        signature: the signature to check.
        rtol: relative tolerance, >= 0; default 1e-5 (1e-2 if an output is float16 or bfloat16, or
            if `model` computes in float16 or bfloat16 anywhere, as a mixed-precision model does).
        atol: absolute tolerance, >= 0; default: float32 rounding, the larger of 1e-6 and
            `ROUNDING_ULPS` (32) float32 ulps of the largest value of the reference outputs (1e-2
            in the 16-bit cases).
        timeout: seconds allowed to each of the three processes, from their common start (> 0).

    Returns:
        A `ServingReport`, when every check passed.

    Raises:
        ServingVerificationError: if a check failed; its `report` says which.
        ValueError: for a missing signature, a sample of the wrong shape, dtype or inputs, not
            exactly one of `model` and `expected`, a bad `rtol`, `atol` or `timeout`, or an output
            key that `saved_model_cli run` cannot write as a file (absolute, or with `..`).
        FileNotFoundError: if `path` holds no SavedModel.
        RuntimeError: if a loader fails or does not finish within `timeout` (the message names it).
    """
    tf = require_tensorflow("verify_serving (a SavedModel)")
    path = Path(path)
    signature_def = read_signature(path, signature)
    inputs = sample_inputs(_signature_specs(signature_def, tf), sample)
    signature_outputs = sorted(signature_def.outputs)
    for name in signature_outputs:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ValueError(
                f"The output {name!r} cannot be verified: saved_model_cli run writes each output to a "
                "file named after it. Rename the output (a dict output's key)."
            )
    model = reference_model(model)
    reference = None
    if signature == INFERENCE_SIGNATURE:
        reference = reference_outputs(model, expected, inputs, signature_outputs)
    output_dtypes = [tf.as_dtype(info.dtype).name for info in signature_def.outputs.values()]
    tolerance = checked_tolerance(rtol, atol, timeout, default_tolerance(output_dtypes, model, reference))

    with tempfile.TemporaryDirectory(prefix="kaa-verify-") as work:
        work_dir = Path(work)
        commands = loader_commands(path, signature, inputs, signature_outputs, work_dir)
        outputs = run_processes(commands, timeout)  # independent: side by side
        signature_text = outputs[LOADERS[0]]
        fresh = json.loads(outputs[LOADERS[1]].strip().splitlines()[-1])
        with np.load(work_dir / "outputs.npz") as data:
            first = {name: data[f"first/{name}"] for name in signature_outputs}
            second = {name: data[f"second/{name}"] for name in signature_outputs}
        cli = {name: _load_npy(work_dir / "cli" / f"{name}.npy") for name in signature_outputs}

    ops = fresh["ops"]
    report = ServingReport(
        path=str(path),
        signature=signature,
        signature_text=signature_text,
        tolerance=tolerance,
        max_abs_error=max_abs_errors(first, reference) if reference else {},
        saved_model_cli_max_abs_error=max_abs_errors(cli, reference) if reference else {},
        deterministic=identical_outputs(first, second),
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
    if reference is not None:
        for loader, outputs in (("the fresh process", first), ("saved_model_cli run", cli)):
            for name in differing_outputs(outputs, reference, report.tolerance):
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
