"""Where a compiled step's time goes, read from what XLA compiled: its memory traffic and its passes.

`device_speed.py` times each layer's step; this says what the step does with memory, so that a GPU
run can tell whether XLA fused CompetitiveReLU's reductions with what produces their terms (the
question that decides whether a hand-written fused kernel is worth having, issue 20) without a
second call on the device. Everything is read from the entry computation of the step's optimized
HLO text, whose operations are what runs (on a GPU, about one kernel each):

- the bytes the step moves: each operation's operands and outputs, at their sizes (what XLA's cost
  analysis calls "bytes accessed", which it also counts this way). Two kinds of operation are counted
  as what runs on every step, where XLA's cost analysis counts otherwise. A conditional counts its
  outputs only: CompetitiveReLU's overflow guard is one, and its second branch (which XLA's cost
  analysis adds as if it ran) runs only when a sum overflows. A loop (`while`: the recurrent cells,
  JAX's random draws in the noisy layers) counts the state it carries in and out, once, not what its
  body moves on each of an unknown number of iterations (XLA's cost analysis counts the body once);
  so does a call that holds one (newer XLA:CPU wraps JAX's draws so): neither figure is that step's
  traffic, and `has_loop` says so;
- the passes over the input: the operations that read or write an array as large as the layer's input;
- the operations that do work at all (not parameters, constants, tuples or bitcasts, which move no data).

XLA's own cost figures (bytes accessed, floating-point operations, transcendental functions) are kept
beside them. Nothing here imports a framework: the runtime that compiled the step hands over the text
and the cost analysis (`device_runtimes.JaxRuntime.compiled_step`).
"""

from __future__ import annotations

import math
import re

__all__ = ["MOVES_NO_DATA", "entry_operations", "step_census"]

# Opcodes of the entry computation that launch nothing and move no data.
MOVES_NO_DATA = frozenset({"parameter", "constant", "get-tuple-element", "tuple", "bitcast"})

# Bytes per element of HLO's element types; the 8-bit floats (f8e4m3fn, f8e5m2, ...) are 1.
ELEMENT_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2}
ELEMENT_BYTES |= {"s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}

# `[ROOT] [%]name = shape opcode(operands), attributes`; a tuple shape holds spaces, so the shape is the
# shortest text before the first word that is followed by "(".
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.+?)\s+(?P<opcode>[a-z][\w\-]*)\((?P<operands>[^)]*)\)"
)
_ARRAY_SHAPE = re.compile(r"\b(?P<type>[a-z][a-z0-9]*)\[(?P<dimensions>[\d,]*)\]")  # f32[2,3], f8e4m3fn[4]
_NAME = re.compile(r"%?([\w.\-]+)")
_LOOP = re.compile(r"\swhile\(")  # a while instruction, in any computation of the module


def _arrays(shape: str) -> list[tuple[int, int]]:
    """(elements, bytes) of each array in `shape` (an array, or a tuple of them); a scalar has 1 element."""
    arrays = []
    for match in _ARRAY_SHAPE.finditer(shape):
        elements = math.prod(int(size) for size in match.group("dimensions").split(",") if size)
        element_type = match.group("type")
        size = 1 if element_type.startswith("f8") else ELEMENT_BYTES.get(element_type)
        if size is None:  # a token, or a type this table lacks: no data to count
            continue
        arrays.append((elements, elements * size))
    return arrays


def entry_operations(hlo_text: str) -> list[dict]:
    """The instructions of the entry computation: name, opcode, operand names, and the element count of
    its largest output array and the bytes of all its outputs."""
    lines = hlo_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("ENTRY")), None)
    if start is None:
        raise ValueError("no ENTRY computation in this HLO text")
    operations = []
    for line in lines[start + 1 :]:
        if line.startswith("}"):
            break
        match = _INSTRUCTION.match(line)
        if match is None:
            continue
        arrays = _arrays(match.group("shape"))
        operations.append(
            {
                "name": match.group("name"),
                "opcode": match.group("opcode"),
                "elements": max((elements for elements, _ in arrays), default=0),
                "bytes": sum(size for _, size in arrays),
                "operands": _NAME.findall(match.group("operands")),
            }
        )
    return operations


def step_census(hlo_text: str, cost: dict | None, input_elements: int) -> dict:
    """What the step does with memory, read from its optimized HLO (see the module's docstring).

    `cost` is XLA's cost analysis of the same compiled step (keys as XLA names them; None where the
    runtime gave none), kept beside the census; `input_elements` the element count of the layer's input.
    """
    operations = entry_operations(hlo_text)
    by_name = {operation["name"]: operation for operation in operations}
    working = [operation for operation in operations if operation["opcode"] not in MOVES_NO_DATA]

    def operands(operation):
        return [by_name[name] for name in operation["operands"] if name in by_name]

    def moved(operation):
        if operation["opcode"] == "conditional":  # the branch that runs unless a sum overflowed
            return operation["bytes"]
        return operation["bytes"] + sum(operand["bytes"] for operand in operands(operation))

    def input_sized(operation):
        read = [] if operation["opcode"] == "conditional" else operands(operation)  # as in `moved`
        return max([operation["elements"], *(operand["elements"] for operand in read)]) >= input_elements

    cost = cost or {}
    return {
        "bytes_moved": sum(map(moved, working)),
        # Anywhere in the module: XLA may wrap a loop in a call (newer XLA:CPU does, for JAX's draws).
        "has_loop": _LOOP.search(hlo_text) is not None,
        "operations": len(working),
        "input_sized_operations": sum(map(input_sized, working)),
        "xla_bytes_accessed": cost.get("bytes accessed"),
        "flops": cost.get("flops"),
        "transcendentals": cost.get("transcendentals"),
    }
