"""Writes docs/bad-input.md, the "Bad input" page, from the cases in tests/bad_input_cases.py.

Run from anywhere:

    python docs/scripts/bad_input_table.py           # regenerate the page
    python docs/scripts/bad_input_table.py --check   # exit 1 if the page is not what the cases give

The page is rendered from the case records only; nothing is run. tests/test_bad_input.py runs every
case and checks that the page is current. Cases marked as known issues (`bug`) are left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = ROOT / "tests" / "bad_input_cases.py"
OUTPUT = ROOT / "docs" / "bad-input.md"
COMMAND = "python docs/scripts/bad_input_table.py"

INTRO = """\
# Bad input

What each public layer, callback, regularizer and function of the package does with a bad argument or a
bad input: which error it raises (with the start of its message), or what it returns. Use it to see what
to expect from NaN, infinite, all-zero, huge, integer and empty inputs, and from arguments of the wrong
type, out of range or unknown.

This page is generated from the test cases in `tests/bad_input_cases.py`, and `tests/test_bad_input.py`
runs every one of them (on the TensorFlow backend; the "wrong backend" rows on the others), so each
row is what the code does. Do not edit it by hand; after changing the cases, regenerate it with

```
{command}
```

Every example is run exactly as shown, after

```python
import math

import keras
import numpy as np

import keras_adaptive_acts as kaa
from keras_adaptive_acts import *

nan, inf = math.nan, math.inf
```

and with these helpers of `tests/bad_input_cases.py`:

{helpers}

A result "`ValueError`: ..." means the call raises that exception and its message starts with, or
contains, the text shown. NumPy arrays of Python floats are float64; the layers return float32, their
compute dtype.
"""


def load_cases(path: Path = CASES_FILE) -> ModuleType:
    """The cases module (the one the tests imported, if they did; else loaded from `path`)."""
    module = sys.modules.get("bad_input_cases")
    if module is not None and Path(module.__file__).resolve() == path.resolve():
        return module
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    spec = importlib.util.spec_from_file_location("bad_input_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_input_cases"] = module
    spec.loader.exec_module(module)
    return module


def _text(value: str) -> str:
    """`value` for a table cell: Markdown escapes outside code spans, which must not hold a `|`."""
    if "\n" in value:
        raise ValueError(f"A table cell must be one line. Received: {value!r}")
    parts = value.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"Unbalanced backticks in a table cell. Received: {value!r}")
    for i, part in enumerate(parts):
        if i % 2:
            if "|" in part:
                raise ValueError(f"A code span in a table cell must not hold `|`. Received: {value!r}")
        else:
            parts[i] = re.sub(r"([\\|*_\[\]])", r"\\\1", part).replace("<", "&lt;")
    return "`".join(parts)


def _code(code: str) -> str:
    return _text(f"`{code}`")


def _helper_lines(cases: ModuleType, used: set[str]) -> str:
    lines = []
    for name, function in cases.HELPERS.items():
        if name in used:
            summary = inspect.getdoc(function).splitlines()[0]
            signature = inspect.signature(function).replace(return_annotation=inspect.Signature.empty)
            parameters = ", ".join(parameter.name for parameter in signature.parameters.values())
            lines.append(f"- `{name}({parameters})`: {summary}")
    return "\n".join(lines)


def render(cases: ModuleType) -> str:
    """The Markdown of the page for the cases module `cases`."""
    shown = [case for case in cases.CASES if not case.bug]
    used = {name for case in shown for name in re.findall(r"\b(\w+)\(", case.code) if name in cases.HELPERS}
    out = [INTRO.format(command=COMMAND, helpers=_helper_lines(cases, used))]
    for section, apis in cases.SECTIONS.items():
        out.append(f"## {section}\n")
        for api in apis:
            rows = sorted(
                (case for case in shown if case.api == api), key=lambda case: cases.KINDS.index(case.kind)
            )
            if not rows:
                continue
            out.append(f"### `{api}`\n")
            out.append("| Bad argument or input | Example | Result |")
            out.append("| --- | --- | --- |")
            for case in rows:
                out.append(f"| {case.kind} | {_code(case.code)} | {_text(case.expect.describe())} |")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale; write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the page to write or check")
    args = parser.parse_args(argv)
    text = render(load_cases())
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: regenerate it with `{COMMAND}`.", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
