"""The fresh-process half of `verify_onnx`: an ONNX file run by ONNX Runtime alone.

`verify_onnx` runs this file by its path, in a new interpreter:

    python onnx_check.py MODEL.onnx INPUTS.npz OUTPUTS.npz

It loads the model in an `onnxruntime.InferenceSession` on the CPU, runs it twice on the inputs (an
`.npz` keyed by input name), writes both results to OUTPUTS.npz (`first/<output>`,
`second/<output>`) and prints one JSON line: ONNX Runtime's version, the session's output names,
and which of `keras_adaptive_acts`, Keras and TensorFlow were imported.

The point is to show that the file runs where only ONNX Runtime (and NumPy) are installed. So the
file imports nothing from `keras_adaptive_acts`, and before importing anything else it makes every
import of the package, of Keras and of TensorFlow fail, with `refuse_package_imports` of its
sibling `serving_check.py` (loaded by its path: the package cannot be imported). Its module-level
code only defines: importing it (as the doctest collection does) runs nothing.
"""

import importlib.util
import json
import os
import sys

__all__ = ["REFUSED", "main"]

REFUSED = ("keras_adaptive_acts", "keras", "tensorflow")
"""The packages the check refuses to import: the ONNX file must run without them."""


def main(argv):
    """Runs the check on `argv` (MODEL.onnx INPUTS.npz OUTPUTS.npz) and prints its JSON line."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("serving_check", os.path.join(here, "serving_check.py"))
    serving_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serving_check)  # it only defines; nothing of the package is imported
    serving_check.refuse_package_imports(REFUSED)
    import numpy as np  # imported only now: the refusal covers whatever they import in turn
    import onnxruntime

    path, inputs_file, outputs_file = argv
    # The CPU provider, named: a GPU build of ONNX Runtime would otherwise pick CUDA first.
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    with np.load(inputs_file) as data:
        inputs = {value.name: data[value.name] for value in session.get_inputs()}
    # A string input's sample comes as UTF-8 bytes (saved without a pickle); ONNX Runtime takes str.
    inputs = {
        name: np.char.decode(value, "utf-8").astype(object) if value.dtype.kind == "S" else value
        for name, value in inputs.items()
    }
    first = session.run(names, inputs)
    second = session.run(names, inputs)
    np.savez(
        outputs_file,
        **{f"first/{name}": value for name, value in zip(names, first, strict=True)},
        **{f"second/{name}": value for name, value in zip(names, second, strict=True)},
    )
    result = {
        "onnxruntime": onnxruntime.__version__,
        "outputs": names,
        "imported": sorted({module.split(".")[0] for module in sys.modules} & set(REFUSED)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
