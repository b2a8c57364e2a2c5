"""The report of `kaa compare`: a summary per activation, a plain-text table, result files and a plot."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

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

    Row keys: `activation`, `accuracy_mean`, `accuracy_std` (the sample standard deviation over the
    seeds, ddof=1 as in pandas and `statistics.stdev`; None for a single run, whose spread is
    unknown), `loss_mean`, `zero_fraction` (mean over the seeds; None for records without it),
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
                "accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else None,
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
    """A plain-text table of `summarize` rows, columns aligned, numbers right-aligned; a spread that
    is unknown (one seed) is `n/a`."""
    body = [
        (
            str(row["activation"]),
            f"{row['accuracy_mean']:.4f} ± {_number_or_na(row.get('accuracy_std'), '.4f')}",
            f"{row['loss_mean']:.4f}",
            _number_or_na(row.get("zero_fraction"), ".3f"),
            _number_or_na(row["step_ms"], ".2f"),
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


def _number_or_na(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def write_results(
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike,
    meta: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Writes `results.json` (every record with its history, the summary and `meta`) and `summary.csv`.

    The directory is created if needed. Each file is replaced whole (written beside it under a
    temporary name, then renamed), so that a reader, or an interrupt, meets the earlier file or the
    new one, never part of one: `kaa compare` rewrites both after every run. Returns their paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "results.json", out / "summary.csv"
    payload = {"meta": dict(meta or {}), "records": list(records), "summary": list(rows)}
    payload = _finite_or_none(payload)  # a diverged run's NaN loss is written as null (valid JSON)
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    _replace_whole(json_path, lambda handle: handle.write(text))

    def write_csv(handle) -> None:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in _finite_or_none(list(rows)):
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in SUMMARY_FIELDS})

    _replace_whole(csv_path, write_csv)
    return json_path, csv_path


def _replace_whole(path: Path, write: Callable[[TextIO], Any]) -> None:
    """Writes `path` through `write(handle)` into a temporary file in the same folder, then renames it
    over `path` (`os.replace`, atomic within a file system). The temporary file is opened as any other
    file (not with `tempfile`, whose files are private to their owner), so the result has the usual
    permissions; the process id in its name keeps two processes apart."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:  # an interrupt too: no temporary file is left behind
        temporary.unlink(missing_ok=True)
        raise


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
    last_epoch = max(len(record["history"]["val_accuracy"]) for record in records)
    for axis, (key, title) in zip(axes[:2], panels, strict=True):
        lines = []
        for index, (label, group) in enumerate(groups.items()):
            curves = np.array([record["history"][key] for record in group], dtype="float64")
            epochs = np.arange(1, curves.shape[1] + 1)
            line = axis.plot(
                epochs,
                curves.mean(axis=0),
                linestyle=_LINE_STYLES[index % len(_LINE_STYLES)],
                marker=_MARKERS[index % len(_MARKERS)],
                markevery=max(1, len(epochs) // 10),
                markersize=5,
            )[0]
            lines.append(line)
            colours[label] = line.get_color()
            axis.fill_between(
                epochs, curves.min(axis=0), curves.max(axis=0), color=colours[label], alpha=0.15
            )
        axis.set(title=title, xlabel="epoch")
        # Half an epoch of margin on each side: around a single epoch, matplotlib's own limits span a
        # tenth of one, and even an integer locator then ticks at fractions of it (0.945 .. 1.05).
        axis.set_xlim(0.5, last_epoch + 0.5)
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)
        if key == "val_accuracy":
            # Handles and labels given, not read from the lines: matplotlib leaves a line out of an
            # automatic legend when its label starts with "_".
            axis.legend(lines, [_literal(label) for label in groups], fontsize="small")
    _final_accuracy_panel(axes[2], groups, colours)
    seeds = max(len(group) for group in groups.values())
    seed_words = f"{seeds} seed" + ("" if seeds == 1 else "s")
    where = f"{_literal(dataset)}: " if dataset else ""
    figure.suptitle(f"{where}mean over {seed_words}; bands and points: each seed")
    figure.tight_layout()
    return figure


def _literal(text: str) -> str:
    """`text` as matplotlib draws it letter for letter: with its `$` escaped, matplotlib reads no part
    of it as a formula (`$\\nosuch$` in a label or a file name failed the whole plot)."""
    return str(text).replace("$", r"\$")


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
    axis.set_xticks(
        range(len(finals)), [_literal(label) for label in finals], rotation=30, ha="right", fontsize="small"
    )
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
