"""The fresh-process half of `verify_serving`: a SavedModel loaded and called by TensorFlow alone.

`verify_serving` runs this file by its path, in a new interpreter:

    python serving_check.py SAVED_MODEL SIGNATURE INPUTS.npz OUTPUTS.npz

It loads the SavedModel with `tf.saved_model.load`, calls the signature twice on the inputs (an
`.npz` keyed by input name), writes both results to OUTPUTS.npz (`first/<output>`,
`second/<output>`) and prints one JSON line: the ops of the signature's graph (nested functions
included), those outside core TensorFlow, TensorFlow's version, and whether `keras_adaptive_acts`
was imported.

The point is to show that the SavedModel serves as TF Serving would run it, without this package.
So the file imports nothing from `keras_adaptive_acts`, and before importing anything else it
makes every import of the package fail. Its module-level code only defines: importing it (as the
doctest collection does) runs nothing.
"""

import json
import os
import sys

__all__ = ["PackageImportRefusal", "main", "refuse_package_imports"]

PACKAGE = "keras_adaptive_acts"


class PackageImportRefusal:
    """A `sys.meta_path` finder that fails every import of `packages` (default: this package)."""

    def __init__(self, packages=(PACKAGE,)):
        self.packages = tuple(packages)

    def find_spec(self, name, path=None, target=None):
        package = name.split(".")[0]
        if package in self.packages:
            raise ImportError(f"{package} must not be imported by the serving check (import of {name!r})")
        return None  # every other import is left to the usual finders


def refuse_package_imports(packages=(PACKAGE,)):
    """Makes every later import of `packages` (by default this package) fail, by any name.

    Run as a script, this file's folder (inside the package) is the first entry of `sys.path`,
    where its sibling modules would be importable as top-level modules, out of the finder's
    sight: the folder is removed from the path first. (`onnx_check.py`, its sibling, uses this
    function too, with Keras and TensorFlow added to the refused packages.)
    """
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    sys.meta_path.insert(0, PackageImportRefusal(packages))


def main(argv):
    """Runs the check on `argv` (SAVED_MODEL SIGNATURE INPUTS.npz OUTPUTS.npz) and prints its JSON line."""
    refuse_package_imports()
    import numpy as np  # imported only now: the refusal covers whatever they import in turn
    import tensorflow as tf

    path, signature, inputs_file, outputs_file = argv
    loaded = tf.saved_model.load(path)  # kept: the signature's variables live as long as it does
    function = loaded.signatures[signature]
    specs = function.structured_input_signature[1]
    with np.load(inputs_file) as data:
        # The function takes Python argument names (TensorFlow makes "Input-1" `Input_1`); the sample
        # is keyed by the signature's input names, which each spec keeps.
        inputs = {
            argument: tf.constant(data[spec.name], dtype=spec.dtype) for argument, spec in specs.items()
        }
    first = function(**inputs)
    second = function(**inputs)

    def plain(tensor):  # .npz cannot hold bfloat16; float32 holds it exactly
        return tf.cast(tensor, tf.float32).numpy() if tensor.dtype == tf.bfloat16 else tensor.numpy()

    np.savez(
        outputs_file,
        **{f"first/{name}": plain(value) for name, value in first.items()},
        **{f"second/{name}": plain(value) for name, value in second.items()},
    )
    graph = function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for library_function in graph.library.function:
        ops |= {node.op for node in library_function.node_def}
    core = set(dir(tf.raw_ops))
    result = {
        "ops": sorted(ops),
        "non_core": sorted(ops - core),
        "tensorflow": tf.__version__,
        "package_imported": any(module.split(".")[0] == PACKAGE for module in sys.modules),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
