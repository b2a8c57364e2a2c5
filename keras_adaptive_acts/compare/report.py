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
    "learning_curves_figure",
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


# Each activation gets its own line style and marker as well as its colour, so that two activations
# with the same curve (e.g. `competitive_relu` and `competitive_relu:competition=l1` early on) both
# show, one dashed over the other.
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def learning_curves_figure(records: Sequence[dict[str, Any]], dataset: str | None = None) -> Any:
    """The matplotlib figure `plot_learning_curves` saves (for a caller that wants to adjust it).

    Three panels: test accuracy and test loss per epoch (the mean over the seeds, a band from the
    lowest to the highest seed), and the final test accuracy of each activation, every seed a point
    and the mean a bar, on a scale that fits the final values only, so that a spread of a few tenths
    of a percent reads. The title names the dataset (if given) and the number of seeds.
    """
    matplotlib = require("matplotlib", "examples", "the plot")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["activation"], []).append(record)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    panels = (("val_accuracy", "test accuracy"), ("val_loss", "test loss"))
    colours = {}
    for axis, (key, title) in zip(axes[:2], panels, strict=True):
        for index, (label, group) in enumerate(groups.items()):
            curves = np.array([record["history"][key] for record in group], dtype="float64")
            epochs = np.arange(1, curves.shape[1] + 1)
            line = axis.plot(
                epochs,
                curves.mean(axis=0),
                label=label,
                linestyle=_LINE_STYLES[index % len(_LINE_STYLES)],
                marker=_MARKERS[index % len(_MARKERS)],
                markevery=max(1, len(epochs) // 10),
                markersize=5,
            )[0]
            colours[label] = line.get_color()
            axis.fill_between(
                epochs, curves.min(axis=0), curves.max(axis=0), color=colours[label], alpha=0.15
            )
        axis.set(title=title, xlabel="epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    _final_accuracy_panel(axes[2], groups, colours)
    seeds = max(len(group) for group in groups.values())
    seed_words = f"{seeds} seed" + ("" if seeds == 1 else "s")
    where = f"{dataset}: " if dataset else ""
    figure.suptitle(f"{where}mean over {seed_words}; bands and points: each seed")
    figure.tight_layout()
    return figure


def _final_accuracy_panel(
    axis: Any, groups: dict[str, list[dict[str, Any]]], colours: dict[str, str]
) -> None:
    """The last epoch's test accuracy per activation: each seed a point, the mean a short bar."""
    finals = {
        label: [record["history"]["val_accuracy"][-1] for record in group] for label, group in groups.items()
    }
    for position, (label, values) in enumerate(finals.items()):
        axis.scatter([position] * len(values), values, color=colours[label], s=18, zorder=3)
        axis.hlines(np.mean(values), position - 0.3, position + 0.3, color=colours[label], linewidth=2)
    every = np.concatenate([np.asarray(values, dtype="float64") for values in finals.values()])
    low, high = float(every.min()), float(every.max())
    margin = max((high - low) * 0.15, 0.002)  # a visible range even when every run ends alike
    axis.set_ylim(low - margin, high + margin)
    axis.set_xticks(range(len(finals)), list(finals), rotation=30, ha="right", fontsize="small")
    axis.set(title="final test accuracy")
    axis.grid(alpha=0.3, axis="y")


def plot_learning_curves(
    records: Sequence[dict[str, Any]], path: str | os.PathLike, dataset: str | None = None
) -> Path:
    """Draws the learning curves and final accuracies into a PNG file (see `learning_curves_figure`).

    Needs matplotlib (the `examples` extra). Returns the path written.
    """
    figure = learning_curves_figure(records, dataset)
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
