"""The report of a `device_speed.py` run, written from its results alone.

`device_speed.py` measures and keeps every figure in one results dictionary (the JSON file it
writes); everything here reads that dictionary and nothing else: the failures that make the exit
status 1, the Markdown of the page sections that `run_all.py --from-json` writes into
docs/benchmarks.md, the whole report, and the one JSON line printed last. It imports no Keras and
no framework.
"""

from __future__ import annotations

import json

import numpy as np

__all__ = [
    "CNN_NOT_MEASURED",
    "check_passed",
    "failures_of",
    "markdown_report",
    "platform_label",
    "section_markdown",
    "summary_line",
]

# What the results say where the run ended before the CNN step (its files are written after the layers).
CNN_NOT_MEASURED = "CNN step: not measured, the run ended before it"


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def failures_of(results) -> list[str]:
    """Everything that makes the exit status 1: failed checks, rows without figures, a missing row."""
    failures = [
        f"reference self-check: {check['reference']} (error {check['relative_error']:.2e})"
        for check in results["reference_self_check"]
        if not check["passed"]
    ]
    covered = {record["covers"] for record in results["layers"].values()}
    failures += [
        f"no row for the public layer {name}" for name in results["public_layers"] if name not in covered
    ]
    for name, record in results["layers"].items():
        for key in ("error", "check_error"):
            if key in record:
                failures.append(f"{name}: {record[key]}")
        for check in record["checks"]:
            for part in ("forward", "gradient"):
                if not check[part]["passed"]:
                    error = check[part]["relative_error"]
                    failures.append(
                        f"{name}, {check['path']}: {part} error {error:.2e} > {check[part]['tolerance']:g}"
                    )
        if record["covers"] is not None and not record["checks"] and "check_error" not in record:
            failures.append(f"{name}: no correctness check ran")
    cnn = results["cnn"]
    if cnn is None:
        failures.append(CNN_NOT_MEASURED)
    else:
        failures += [f"CNN {name}: {error}" for name, error in cnn["errors"].items()]
        failures += [
            f"CNN {name}: the loss is {loss}"
            for name, loss in cnn["last_loss"].items()
            if not np.isfinite(loss)
        ]
    if results["tensorflow_imported"]:
        failures.append("TensorFlow was imported: the device machine has none")
    return failures


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

SECTION_OF_CLASS = {  # the page section of a layer's speed rows; every other layer's go to "device_speed"
    "CompetitiveReLU": "activation_speed",
    "NoisyHardTanh": "noisy_speed",
    "NoisyHardSigmoid": "noisy_speed",
    "RReLU": "noisy_speed",
}


def platform_label(results) -> str:
    """ "GPU" only for figures a GPU measured; the CPU's are marked as such."""
    return "GPU" if results["platform"] in ("gpu", "cuda", "rocm") else results["platform"].upper()


def header_lines(results) -> list[str]:
    versions, timing = results["versions"], results["timing"]
    first = (
        f"Measured on the {platform_label(results)} ({results['device']}) by {results['framework']}, "
        f"Keras {versions['keras']}, NumPy {versions['numpy']}, Python {versions['python']}, "
        f"keras-adaptive-acts {versions['keras_adaptive_acts']}; float32, matrix products at "
        f"{results['framework_label']}'s default precision ({results['matmul_precision']})."
    )
    if platform_label(results) != "GPU":
        first += f" **Not GPU figures: {results['framework_label']} saw no GPU.**"
    if results["quick"]:
        first += " **Smoke run (`--quick`): these figures mean nothing.**"
    return [
        first,
        "",
        f"Command: `{results['command']}` (took {results['seconds']:.0f} s)",
        "",
        f"Times: median of {timing['repeats']} interleaved repetitions, each {timing['calls']} back-to-back "
        f"calls ended by {results['wait_text']} (time per call), after {timing['warmup']} warm-up calls; "
        f"inputs rotate among {timing['input_sets']} sets. Forward (`training=True`) + backward: "
        "gradients with respect to the input and the weights, for a fixed upstream gradient.",
        *dispatch_lines(results),
    ]


def dispatch_lines(results) -> list[str]:
    """The dispatch floor beside ReLU's time, and a warning where the two are close."""
    floor, relu = results.get("dispatch_floor"), results["layers"]["ReLU"].get("median_ms")
    if not floor or relu is None:
        return []
    line = (
        f"Dispatch floor: {floor['median_ms']:.3f} ms per call (a call on the same inputs doing "
        f"almost nothing), against {relu:.3f} ms for ReLU."
    )
    if relu < 2 * floor["median_ms"]:
        line += " **ReLU is within 2x of it: the fastest rows time the host as much as the device.**"
    return ["", line]


def ratio_text(ratio):
    return "" if ratio is None else f"{ratio:.2f}"


def bytes_text(ratio, census) -> str:
    """A bytes ratio, marked "(loop)" where the step has a loop (what its body moves is not counted)."""
    if ratio is None:
        return ""
    return f"{ratio:.2f} (loop)" if census and census.get("has_loop") else f"{ratio:.2f}"


def passes_text(census) -> str:
    """ "passes of operations" of a compiled step's census; empty where there is none."""
    if not census or "operations" not in census:
        return ""
    return f"{census['input_sized_operations']} of {census['operations']}"


def check_passed(check) -> bool:
    return check["forward"]["passed"] and check["gradient"]["passed"]


def checked_names(results) -> list[str]:
    return [name for name, r in results["layers"].items() if r["checks"] or r.get("check_error")]


def compiled(results, names) -> bool:
    """Whether these rows' compiled steps were read (JAX runs; PyTorch's steps are eager)."""
    return any({"compiled", "compiled_error"} & set(results["layers"][name]) for name in names)


def speed_table(results, names) -> list[str]:
    traffic = compiled(results, names)
    extra_header = " bytes / ReLU | passes over the input |" if traffic else ""
    lines = [
        "| layer | input | median ms | / ReLU (same input) | judged against | ratio | target | verdict |"
        + extra_header,
        "|---|---|---:|---:|---|---:|---:|---|" + ("---:|---:|" if traffic else ""),
    ]
    for name in names:
        record = results["layers"][name]
        median = record.get("median_ms")
        shown_median = "failed" if median is None else f"{median:.3f}"
        judged = "(baseline)" if record["baseline"] is None else record["baseline"]
        target = "" if record["baseline"] is None else f"<= {results['targets']['layer']:g}"
        line = (
            f"| {name} | {tuple(record['input_shape'])} | {shown_median} | "
            f"{ratio_text(record.get('ratio_to_relu'))} | {judged} | {ratio_text(record.get('ratio'))} | "
            f"{target} | {record.get('verdict', '')} |"
        )
        if traffic:
            census = record.get("compiled")
            line += f" {bytes_text(record.get('bytes_to_relu'), census)} | {passes_text(census)} |"
        lines.append(line)
    return lines


def traffic_lines(results, names) -> list[str]:
    """What the two census columns mean, and CompetitiveReLU's bytes against its floor's."""
    if not compiled(results, names):
        return []
    lines = [
        "",
        "Bytes / ReLU: the bytes the compiled step's operations read and write, against ReLU's step on "
        "the same input; a conditional (CompetitiveReLU's overflow guard) counts as the branch that runs "
        "unless a sum overflows, and a loop (the recurrent cells, JAX's random draws) counts the state it "
        "carries once, not what its body moves on each iteration: such rows, marked (loop), are not "
        "that step's traffic. Passes over the "
        "input: the step's operations that read or write an array as large as the input, of all its "
        "operations that do work (on a GPU, about one kernel each). Both are counted in the optimized HLO "
        "by `benchmarks/hlo_census.py`.",
    ]
    lines += [
        f"- census of {name}: {results['layers'][name]['compiled_error']}"
        for name in names
        if "compiled_error" in results["layers"][name]
    ]
    floor = results["layers"].get(results.get("competition_floor"), {}).get("compiled")
    rows = [
        (name, results["layers"][name]["compiled"]["bytes_moved"])
        for name in names
        if results["layers"][name]["covers"] == "CompetitiveReLU" and "compiled" in results["layers"][name]
    ]
    if floor and floor["bytes_moved"] and rows and all(traffic for _, traffic in rows):
        against = ", ".join(f"{name} {traffic / floor['bytes_moved']:.2f}x" for name, traffic in rows)
        lines += [
            "",
            f"CompetitiveReLU's bytes against its floor's ({results['competition_floor']}): {against}. "
            "The floor takes one statistic of each slice in each direction, so each direction reads its "
            "input twice (once for the sums, once for the result): the least an exact competition "
            "moves through memory unless a kernel keeps each slice on chip. A row near 1x reaches it "
            "under XLA; well above, intermediates are written out and read back. ReLU's bytes (1x in "
            "the column) are what a one-pass fused kernel would move.",
        ]
    return lines


def correctness_table(results, names) -> list[str]:
    lines = [
        "| layer | path checked | input | forward error | gradient error | left out (kinks) | "
        "tolerance (forward / gradient) | gradient reference | result |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for name in names:
        record = results["layers"][name]
        if record.get("check_error"):
            lines.append(f"| {name} | | | | | | | | **error**: {record['check_error']} |")
        for check in record["checks"]:
            forward, gradient = check["forward"], check["gradient"]
            lines.append(
                f"| {name} | {check['path']} | {tuple(check['input_shape'])} | "
                f"{forward['relative_error']:.1e} | {gradient['relative_error']:.1e} | "
                f"{gradient['left_out_at_kinks']} of {gradient['entries']} | "
                f"{forward['tolerance']:g} / {gradient['tolerance']:g} | {check['gradient_reference']} | "
                f"{'pass' if check_passed(check) else '**FAIL**'} |"
            )
    return lines


def correctness_lines(results) -> list[str]:
    self_check = results["reference_self_check"]
    worst = max(check["relative_error"] for check in self_check)
    return [
        f"### Correctness against float64 NumPy references ({platform_label(results)} result, CPU reference)",
        "",
        "Relative errors `||device - reference|| / ||reference||` of the output and of the input "
        "gradient. Noisy layers: their inference path, and their training path with the noise off by "
        "their own arguments. Layers on matrix products: a small input, float32 matrix products. "
        "Entries within one finite-difference step of a kink are left out. The hand-written reference "
        f"gradients agree with finite differences to {worst:.0e} or better ({len(self_check)} checks).",
        "",
        *correctness_table(results, checked_names(results)),
    ]


def guard_lines(results, names) -> list[str]:
    """One line on how the compiled steps of the guarded CompetitiveReLU rows hold the overflow guard."""
    forms = {name: results["layers"][name].get("overflow_guard") for name in names}
    forms = {name: form for name, form in forms.items() if form}
    if not forms:
        return []
    if all(form == "conditional" for form in forms.values()):
        return [
            "",
            f"Overflow guard: the compiled step keeps it as a conditional in all {len(forms)} guarded "
            "CompetitiveReLU rows (its second branch runs only when a sum overflows).",
        ]
    others = ", ".join(f"{name}: {form}" for name, form in forms.items() if form != "conditional")
    return [
        "",
        f"**Overflow guard not kept as a conditional** ({others}): XLA runs both of its branches on every "
        "step, four more passes over the input; see tests/ops/test_competitive_paths.py.",
    ]


def cnn_lines(results) -> list[str]:
    cnn = results["cnn"]
    if cnn is None:
        return [
            f"### Training step of the small CNN ({platform_label(results)})",
            "",
            f"**{CNN_NOT_MEASURED}.**",
        ]
    censuses = cnn.get("compiled", {})  # JAX: each model's compiled step (absent from older files)
    extra_header = " bytes / ReLU | passes |" if censuses else ""
    lines = [
        f"### Training step of the small CNN (batch {cnn['batch']}, {cnn['image']}x{cnn['image']}x3, "
        f"{platform_label(results)})",
        "",
        "Conv(32/64/128) -> activation -> max-pool, three blocks, then global average pooling and "
        f"Dense(10); SGD with momentum; {results['cnn_step_text']}, steps chained, models interleaved.",
        "",
        "| activation | median ms/step | / ReLU | target | verdict |" + extra_header,
        "|---|---:|---:|---:|---|" + ("---:|---:|" if censuses else ""),
    ]
    relu_bytes = censuses.get("ReLU", {}).get("bytes_moved")
    for name in cnn["candidates"]:
        median = cnn["median_ms"].get(name)
        shown = "failed" if median is None else f"{median:.3f}"
        ratio = cnn["ratios"].get(name, 1.0 if name == "ReLU" and median is not None else None)
        target = f"<= {results['targets']['cnn']:g}" if name in cnn["judged"] else ""
        line = f"| {name} | {shown} | {ratio_text(ratio)} | {target} | {cnn['verdicts'].get(name, '')} |"
        if censuses:
            census = censuses.get(name, {})
            traffic = census.get("bytes_moved")
            bytes_ratio = traffic / relu_bytes if traffic is not None and relu_bytes else None
            line += f" {bytes_text(bytes_ratio, census)} | {passes_text(census)} |"
        lines.append(line)
    if censuses:
        lines += [
            "",
            "Bytes / ReLU and passes as in the layer table; here the passes read or write an array as "
            "large as the first activation's input (the first convolution's output).",
        ]
        lines += [
            f"- census of {name}: {census['error']}" for name, census in censuses.items() if "error" in census
        ]
    return lines


def rows_of_section(results, section) -> list[str]:
    """The speed rows a page section shows: its layers, and the baselines they are judged against."""
    layers = results["layers"]
    chosen = [
        name
        for name, record in layers.items()
        if record["covers"] and SECTION_OF_CLASS.get(record["covers"], "device_speed") == section
    ]
    needed = {layers[name]["baseline"] for name in chosen} | {layers[name]["relu"] for name in chosen}
    if section == "activation_speed":  # CompetitiveReLU's floor, which its rows are read against
        needed.add(results["competition_floor"])
    return [name for name, record in layers.items() if record["covers"] is None and name in needed] + chosen


def check_summary(results, names) -> list[str]:
    """One line on the correctness of the layers `names` (their checks are in the device_speed section)."""
    layers = results["layers"]
    failed = [
        name
        for name in names
        if not layers[name]["checks"] or not all(map(check_passed, layers[name]["checks"]))
    ]
    if failed:
        return [f"**Correctness: failed or not checked for {', '.join(failed)}** (see every layer's checks)."]
    return [
        "Correctness: every layer here matched its float64 NumPy reference, output and input gradient, "
        "within float32 tolerances (every layer's checks are in the section on every layer)."
    ]


def targets_lines(results, names) -> list[str]:
    judged = [(name, results["layers"][name]) for name in names if results["layers"][name].get("verdict")]
    missed = [f"{name} ({record['ratio']:.2f}x)" for name, record in judged if record["verdict"] == "MISS"]
    target = f"Target (at most {results['targets']['layer']:g}x the baseline)"
    if not judged:
        return []
    if not missed:
        return ["", f"{target}: met by all {len(judged)} rows."]
    return ["", f"{target}: **missed** by {', '.join(missed)}."]


def section_markdown(results, section) -> str:
    """The body of one page section (`device_speed.SECTION_NAMES`): its speed rows, the CNN step with
    CompetitiveReLU, every layer's checks in the "device_speed" section and a line on them in the others."""
    names = rows_of_section(results, section)
    layer_names = [name for name in names if results["layers"][name]["covers"]]
    lines = [*header_lines(results), ""]
    if section == "device_speed":
        lines += [*correctness_lines(results), ""]
    else:
        lines += [*check_summary(results, layer_names), ""]
    lines += [f"### Forward + backward against ReLU ({platform_label(results)})", ""]
    lines += [*speed_table(results, names), *targets_lines(results, names), *guard_lines(results, names)]
    lines += traffic_lines(results, names)
    if section == "activation_speed":
        lines += ["", *cnn_lines(results)]
    return "\n".join(lines).strip() + "\n"


def markdown_report(results) -> str:
    """The whole report: every check, every row, the CNN step, the failures."""
    label = platform_label(results)
    names = list(results["layers"])
    lines = [
        f"## Every layer and the CNN step ({label}, {results['framework_label']} backend)",
        "",
        *header_lines(results),
        "",
        *correctness_lines(results),
        "",
        f"### Forward + backward against ReLU ({label})",
        "",
        *speed_table(results, names),
        *targets_lines(results, names),
        *guard_lines(results, names),
        *traffic_lines(results, names),
        "",
        *cnn_lines(results),
    ]
    if results["failures"]:
        lines += ["", f"**{len(results['failures'])} failures:**", ""]
        lines += [f"- {failure}" for failure in results["failures"]]
    return "\n".join(lines) + "\n"


def summary_line(results) -> str:
    """The one JSON line printed last: what a reader of the device tool's output tail needs."""
    cnn_ratios = results["cnn"]["ratios"] if results["cnn"] else {}
    return json.dumps(
        {
            "benchmark": "device_speed",
            "platform": platform_label(results),
            "device": results["device"],
            "quick": results["quick"],
            "checks_passed": not results["failures"],
            "failures": len(results["failures"]),
            "ratios": {name: round(r["ratio"], 3) for name, r in results["layers"].items() if "ratio" in r},
            "cnn_ratios": {name: round(ratio, 3) for name, ratio in cnn_ratios.items()},
            "seconds": round(results["seconds"], 1),
        }
    )
