"""Export for TF Serving, LiteRT and ONNX, and its verification by loaders that do not import this package.

The TensorFlow-specific part of the package (see DESIGN.md), one job per module:

- `saved_model`: `export_for_serving` writes the SavedModel and its signatures.
- `verification`: `verify_serving` checks it with `saved_model_cli` and a fresh process that runs
  `serving_check.py`, a script that refuses to import this package.
- `litert`: `convert_to_litert` converts one signature to a LiteRT flatbuffer.
- `onnx_export`: `export_onnx` writes the inference path as an ONNX file (Keras' ONNX export).
- `onnx_verification`: `verify_onnx` runs it with ONNX Runtime in a fresh process running
  `onnx_check.py`, which refuses to import this package, Keras and TensorFlow.
- `target_path`: where an export may write, and what `overwrite=True` may replace.
- `serving_interface`: what they share: the signature names and how a model's named inputs and
  outputs map to a signature's (and to the ONNX model's).
"""

from keras_adaptive_acts.export.litert import convert_to_litert
from keras_adaptive_acts.export.onnx_export import export_onnx
from keras_adaptive_acts.export.onnx_verification import ONNXReport, verify_onnx
from keras_adaptive_acts.export.saved_model import export_for_serving
from keras_adaptive_acts.export.serving_interface import INFERENCE_SIGNATURE, MONTE_CARLO_SIGNATURE
from keras_adaptive_acts.export.target_path import UnreplaceableTargetError
from keras_adaptive_acts.export.verification import (
    ServingReport,
    ServingVerificationError,
    verify_serving,
)

__all__ = [
    "INFERENCE_SIGNATURE",
    "MONTE_CARLO_SIGNATURE",
    "ONNXReport",
    "ServingReport",
    "ServingVerificationError",
    "UnreplaceableTargetError",
    "convert_to_litert",
    "export_for_serving",
    "export_onnx",
    "verify_onnx",
    "verify_serving",
]
