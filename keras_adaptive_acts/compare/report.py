"""The report of `kaa compare`: a summary per activation, a plain-text table, result files and a plot."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_adaptive_acts.extras import require

__all__ = [
    "SUMMARY_FIELDS",
    "TABLE_HEADER",
    "format_table",
    "plot_learning_curves",
    "summarize",
    "write_results",
]

SUMMARY_FIELDS = (
    "activation",
    "accuracy_mean",
    "accuracy_std",
    "loss_mean",
    "zero_fraction",
    "step_ms",
    "params",
    "params_added",
    "seeds",
)


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per activation (in order of first appearance) from `compare_activations` records.

    Row keys: `activation`, `accuracy_mean`, `accuracy_std` (population std over the seeds,
    ddof=0), `loss_mean`, `zero_fraction` (mean over the seeds; None for records without it),
    `step_ms` (median over the runs of their step time, in milliseconds;
    None if no run was timed), `params`, `params_added` and `seeds` (number of runs).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["activation"], []).append(record)
    rows = []
    for label, group in groups.items():
        accuracies = np.array([r["test_accuracy"] for r in group], dtype="float64")
        losses = np.array([r["test_loss"] for r in group], dtype="float64")
        steps = [r["step_seconds"] for r in group if r.get("step_seconds") is not None]
        zeros = [r["zero_fraction"] for r in group if r.get("zero_fraction") is not None]
        rows.append(
            {
                "activation": label,
                "accuracy_mean": float(accuracies.mean()),
                "accuracy_std": float(accuracies.std()),
                "loss_mean": float(losses.mean()),
                "zero_fraction": float(np.mean(zeros)) if zeros else None,
                "step_ms": float(statistics.median(steps)) * 1000.0 if steps else None,
                "params": int(group[0]["params"]),
                "params_added": int(group[0]["params_added"]),
                "seeds": len(group),
            }
        )
    return rows


TABLE_HEADER = ("activation", "accuracy (mean ± std)", "loss", "zeros", "step ms", "params added", "seeds")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of `summarize` rows, columns aligned, numbers right-aligned."""
    body = [
        (
            str(row["activation"]),
            f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f}",
            f"{row['loss_mean']:.4f}",
            "n/a" if row.get("zero_fraction") is None else f"{row['zero_fraction']:.3f}",
            "n/a" if row["step_ms"] is None else f"{row['step_ms']:.2f}",
            f"{row['params_added']:+d}" if row["params_added"] else "0",
            str(row["seeds"]),
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [TABLE_HEADER, *body]) for i in range(len(TABLE_HEADER))]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(TABLE_HEADER), rule, *(line(cells) for cells in body)])


def write_results(
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike,
    meta: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Writes `results.json` (every record with its history, the summary and `meta`) and `summary.csv`.

    The directory is created if needed. Returns the paths of the two files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "results.json", out / "summary.csv"
    payload = {"meta": dict(meta or {}), "records": list(records), "summary": list(rows)}
    payload = _finite_or_none(payload)  # a diverged run's NaN loss is written as null (valid JSON)
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in _finite_or_none(list(rows)):
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in SUMMARY_FIELDS})
    return json_path, csv_path


def _finite_or_none(value: Any) -> Any:
    """A copy of nested dicts/lists with NaN and infinite floats replaced by None."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_learning_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Draws test accuracy and test loss per epoch, one line per activation, into a PNG file.

    Each line is the mean over the seeds, with a band from the lowest to the highest seed. Needs
    matplotlib (the `examples` extra). Returns the path written.
    """
    matplotlib = require("matplotlib", "examples", "the plot")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["activation"], []).append(record)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = (("val_accuracy", "test accuracy"), ("val_loss", "test loss"))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for label, group in groups.items():
            curves = np.array([record["history"][key] for record in group], dtype="float64")
            epochs = np.arange(1, curves.shape[1] + 1)
            line = axis.plot(epochs, curves.mean(axis=0), label=label)[0]
            axis.fill_between(
                epochs, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2
            )
        axis.set(title=title, xlabel="epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    seeds = max(len(group) for group in groups.values())
    figure.suptitle(f"mean over {seeds} seed(s); bands: lowest to highest seed")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
