"""docs/migration.md: its table covers every tensorflow-addons activation, and what it names exists."""

import importlib
import re
from pathlib import Path

import keras
import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migration.md"

# The complete `tfa.activations` module of tensorflow-addons 0.23 (its last release), as its API
# reference lists it: https://www.tensorflow.org/addons/api_docs/python/tfa/activations
TFA_ACTIVATIONS = {
    "gelu",
    "hardshrink",
    "lisht",
    "mish",
    "rrelu",
    "snake",
    "softshrink",
    "sparsemax",
    "tanhshrink",
}

# The activation-like layers of `tfa.layers` (https://www.tensorflow.org/addons/api_docs/python/tfa/layers):
# the nonlinearities without a kernel that stand where an `activation=` would. The guide says why
# these and not the rest (FilterResponseNormalization is a normalization, NoisyDense has a kernel).
TFA_ACTIVATION_LAYERS = {"GELU", "Maxout", "Snake", "Sparsemax", "TLU"}


def table_rows():
    """(tfa column, replacement column) of each row of the guide's first table."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## Activations") :]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `tfa."):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0], cells[1]))
    return rows


def test_the_table_lists_every_tfa_activation_and_activation_layer_once():
    names = [re.match(r"`tfa\.(activations|layers)\.(\w+)", tfa).groups() for tfa, _ in table_rows()]
    assert len(names) == len(set(names)), "a name has two rows"
    assert {name for module, name in names if module == "activations"} == TFA_ACTIVATIONS
    assert {name for module, name in names if module == "layers"} == TFA_ACTIVATION_LAYERS


def resolve(dotted):
    module_name, _, attribute = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError:
        return getattr(resolve(module_name), attribute)


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row[0].split("(")[0].strip("`"))
def test_every_replacement_the_table_names_exists(row):
    _, replacement = row
    dotted = re.findall(r"`((?:keras|keras_adaptive_acts)(?:\.\w+)+)", replacement)
    assert dotted, f"no Keras or package name in {replacement!r}"
    for name in dotted:
        assert callable(resolve(name)), name
    for activation in re.findall(r'Activation\("(\w+)"\)', replacement):
        keras.activations.get(activation)  # a Keras activation name
