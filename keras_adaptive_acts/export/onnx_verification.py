"""`verify_onnx`: an ONNX file checked as ONNX Runtime runs it, in a process without this package.

A fresh Python process runs `onnx_check.py`, where `keras_adaptive_acts`, Keras and TensorFlow
cannot be imported: ONNX Runtime loads the file and runs it twice. Its outputs are compared with a
reference (the Keras model, or given outputs) with `verify_serving`'s tolerances, and the graph's
ops are read with `onnx` (no random op, only ops of the standard ONNX domains).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts.export.onnx_export import require_onnx
from keras_adaptive_acts.export.verification import (
    ServingVerificationError,
    checked_tolerance,
    default_tolerance,
    differing_outputs,
    identical_outputs,
    max_abs_errors,
    reference_model,
    reference_outputs,
    run_process,
    sample_inputs,
)

__all__ = ["ONNXReport", "verify_onnx"]

RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
"""The ONNX operators that draw random numbers."""

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""The operator sets of the ONNX standard; other domains (e.g. `com.microsoft`) are one runtime's own."""

ONNX_CHECK = Path(__file__).with_name("onnx_check.py")
"""The script the fresh process runs, by its path (it must not import this package, even indirectly)."""

SOURCE = "ONNX model"
"""How the shared checks of `verification` name what the sample and the reference are checked against."""


@dataclasses.dataclass
class ONNXReport:
    """What `verify_onnx` checked and found. `problems` is empty when every check passed."""

    path: str
    producer: str
    opset: int
    inputs: dict[str, str]
    outputs: dict[str, str]
    tolerance: dict[str, float]
    max_abs_error: dict[str, float]
    deterministic: bool
    ops: list[str]
    random_ops: list[str]
    non_standard_ops: list[str]
    onnxruntime_version: str
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        errors = ", ".join(f"{name}: {value:.3g}" for name, value in self.max_abs_error.items())
        lines = [
            f"ONNX model {self.path} (opset {self.opset}, from {self.producer}), run by ONNX Runtime "
            f"{self.onnxruntime_version} in a fresh process without keras_adaptive_acts, Keras or "
            "TensorFlow:",
            *(f"  input {name!r}: {text}" for name, text in self.inputs.items()),
            *(f"  output {name!r}: {text}" for name, text in self.outputs.items()),
            f"max |ONNX Runtime - reference|: {errors} "
            f"(tolerance: rtol={self.tolerance['rtol']:g}, atol={self.tolerance['atol']:g})",
            f"two runs identical: {self.deterministic}",
            f"ops: {len(self.ops)} types, random: {self.random_ops or 'none'}, "
            f"outside the standard ONNX domains: {self.non_standard_ops or 'none'}",
            "PASSED"
            if self.passed
            else "FAILED:\n" + "\n".join(f"  - {problem}" for problem in self.problems),
        ]
        return "\n".join(lines)


def _value_specs(values: Any, onnx: Any) -> dict[str, tuple[tuple[int | None, ...], np.dtype]]:
    """`{name: (shape, NumPy dtype)}` of graph inputs or outputs, `None` for a free dimension."""
    return {
        value.name: (
            tuple(
                dim.dim_value if dim.HasField("dim_value") else None
                for dim in value.type.tensor_type.shape.dim
            ),
            np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)),
        )
        for value in values
    }


def _describe(specs: dict[str, tuple[tuple[int | None, ...], np.dtype]]) -> dict[str, str]:
    return {
        name: f"{dtype.name} (" + ", ".join("None" if dim is None else str(dim) for dim in shape) + ")"
        for name, (shape, dtype) in specs.items()
    }


def _ops(graph: Any) -> set[tuple[str, str]]:
    """`(domain, op type)` of every node of `graph`, in the subgraphs of loops and branches too."""
    found = set()
    for node in graph.node:
        found.add((node.domain, node.op_type))
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                found |= _ops(subgraph)
    return found


def _read(path: Path, onnx: Any) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"No ONNX model at {str(path)!r}.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError, among others
        raise ValueError(f"{str(path)!r} is not an ONNX model: {' '.join(str(error).split())}") from error
    if not proto.graph.output:
        raise ValueError(f"{str(path)!r} is not an ONNX model: it has no graph with outputs.")
    return proto


def verify_onnx(
    path: str | os.PathLike,
    sample: Any,
    model: keras.Model | str | os.PathLike | None = None,
    *,
    expected: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    timeout: float = 300.0,
) -> ONNXReport:
    """Checks an ONNX file as ONNX Runtime runs it, in a fresh process that does not import this package.

    A fresh Python process runs `onnx_check.py` (beside this module) by its path: with
    `keras_adaptive_acts`, Keras and TensorFlow made unimportable, it loads the file in an ONNX
    Runtime session on the CPU and runs it twice on `sample`. The graph's ops (those of loop and
    branch bodies included) are read with `onnx`.

    Checks: the outputs agree with the reference within `rtol`/`atol`
    (`|ONNX Runtime - reference| <= atol + rtol * |reference|`), the tolerances of `verify_serving`;
    the two runs give identical results; the graph has no random op and only ops of the standard
    ONNX domains (another runtime may lack the others); and none of the refused packages was
    imported.

    Args:
        path: the ONNX file, from `export_onnx`.
        sample: the inputs: an array for a single-input model, or a dict by input name. The batch
            size is free; other dimensions must match the ONNX model's.
        model: the reference, a Keras model (or the path of a `.keras` file): its expectation,
            `model(sample, training=False)` inside `inference_noise(False)`, as the ONNX model
            computes it (`predict` would draw noise in layers built with `noise_at_inference=True`).
        expected: the reference outputs instead of a model: an array, or a dict by output name.
        rtol: relative tolerance, >= 0; default 1e-5 (1e-2 if an output is float16 or bfloat16, or
            if `model` computes in float16 or bfloat16 anywhere, as a mixed-precision model does).
        atol: absolute tolerance, >= 0; default: float32 rounding, the larger of 1e-6 and
            `ROUNDING_ULPS` (32) float32 ulps of the largest value of the reference outputs (1e-2
            in the 16-bit cases).
        timeout: seconds allowed to the fresh process (> 0).

    Returns:
        An `ONNXReport`, when every check passed.

    Raises:
        ServingVerificationError: if a check failed; its `report` (an `ONNXReport`) says which.
        ValueError: for a file that is not an ONNX model, a sample of the wrong shape, dtype or
            inputs, not exactly one of `model` and `expected`, or a bad `rtol`, `atol` or `timeout`.
        FileNotFoundError: if there is no file at `path`.
        RuntimeError: if ONNX Runtime cannot load or run the file (the message ends with its error),
            or the fresh process does not finish within `timeout`.
        ImportError: without onnx or onnxruntime.
    """
    onnx = require_onnx("onnxruntime")
    path = Path(path)
    proto = _read(path, onnx)
    initializers = {tensor.name for tensor in proto.graph.initializer}
    input_specs = _value_specs([value for value in proto.graph.input if value.name not in initializers], onnx)
    output_specs = _value_specs(proto.graph.output, onnx)
    inputs = sample_inputs(input_specs, sample, source=SOURCE)
    names = list(output_specs)
    model = reference_model(model)
    reference = reference_outputs(model, expected, inputs, names, source=SOURCE)
    output_dtypes = [dtype.name for _, dtype in output_specs.values()]
    tolerance = checked_tolerance(rtol, atol, timeout, default_tolerance(output_dtypes, model, reference))

    with tempfile.TemporaryDirectory(prefix="kaa-verify-onnx-") as work:
        work_dir = Path(work)
        np.savez(work_dir / "inputs.npz", **inputs)
        fresh = json.loads(
            run_process(
                [
                    sys.executable,
                    str(ONNX_CHECK),
                    str(path),
                    str(work_dir / "inputs.npz"),
                    str(work_dir / "outputs.npz"),
                ],
                "Running the ONNX model with ONNX Runtime in a fresh process",
                timeout,
            )
            .strip()
            .splitlines()[-1]
        )
        with np.load(work_dir / "outputs.npz") as data:
            first = {name: data[f"first/{name}"] for name in names}
            second = {name: data[f"second/{name}"] for name in names}

    ops = _ops(proto.graph)
    for function in proto.functions:  # model-local functions, which nodes may call
        ops |= _ops(function)
    report = ONNXReport(
        path=str(path),
        # tf2onnx writes "1.17.0 <git hash>" as its version ("None" for a release): the version alone.
        producer=f"{proto.producer_name} {(proto.producer_version.split() or [''])[0]}".strip()
        or "an unnamed producer",
        opset=next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), 0),
        inputs=_describe(input_specs),
        outputs=_describe(output_specs),
        tolerance=tolerance,
        max_abs_error=max_abs_errors(first, reference),
        deterministic=identical_outputs(first, second),
        ops=sorted(op if domain in ("", "ai.onnx") else f"{domain}.{op}" for domain, op in ops),
        random_ops=sorted(op for domain, op in ops if domain in ("", "ai.onnx") and op in RANDOM_OPS),
        non_standard_ops=sorted(f"{domain}.{op}" for domain, op in ops if domain not in STANDARD_DOMAINS),
        onnxruntime_version=fresh["onnxruntime"],
        problems=[],
    )
    report.problems = [
        *(
            f"output {name!r} from ONNX Runtime differs from the reference beyond the tolerance"
            for name in differing_outputs(first, reference, tolerance)
        ),
        *(["two runs with the same input gave different outputs"] if not report.deterministic else []),
        *([f"the graph has random ops: {report.random_ops}"] if report.random_ops else []),
        *(
            [f"the graph has ops outside the standard ONNX domains: {report.non_standard_ops}"]
            if report.non_standard_ops
            else []
        ),
        *([f"the fresh process imported {fresh['imported']}"] if fresh["imported"] else []),
    ]
    if report.problems:
        raise ServingVerificationError(report)
    return report
