"""The scripts of `benchmarks/` as modules, for their tests: they are scripts, not a package."""

import importlib.util
import pathlib
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    """`benchmarks/<name>.py`, imported by file and registered under `name` (dataclasses look their
    module up in `sys.modules`, and the scripts import each other by these names)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
