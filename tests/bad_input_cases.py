"""The bad-input cases: what each public layer, callback and function does with a bad argument or input.

The single source of truth of the "Bad input" docs page: `tests/test_bad_input.py` runs every case and
`docs/scripts/bad_input_table.py` renders them into `docs/bad-input.md`. A case's `code` is one Python
expression, run as written in `NAMESPACE` (the page shows it), and `expect` is what it does: raise
(`Raises`), return a value (`Returns`) or warn and go on (`Warns`). A case with `bug` set is a known
issue: its `expect` is the intended behaviour, its test a strict expected failure, and the page leaves
it out. Every case is fast: tiny tensors, no training beyond one step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

import keras_adaptive_acts as kaa

# ----------------------------------------------------------------------------------------------
# Records


@dataclasses.dataclass(frozen=True)
class Raises:
    """The call raises exactly `error`, whose message contains `message` (shown on the page)."""

    error: type[BaseException]
    message: str

    def describe(self) -> str:
        return f"`{self.error.__name__}`: {self.message}"


@dataclasses.dataclass(frozen=True)
class Returns:
    """The call returns a value for which `check` is true; `description` says what, for the page."""

    description: str
    check: Callable[[Any], bool]

    def describe(self) -> str:
        return self.description


@dataclasses.dataclass(frozen=True)
class Warns:
    """The call warns with `warning`, whose message contains `message`, and returns."""

    warning: type[Warning]
    message: str

    def describe(self) -> str:
        return f"`{self.warning.__name__}` (a warning; the call goes on): {self.message}"


# The first column of the page, in the order the rows of a table are sorted by.
KINDS = (
    "wrong type",
    "unknown argument",
    "out of range",
    "non-finite argument",
    "unknown choice",
    "conflicting arguments",
    "wrong number of inputs",
    "wrong input rank",
    "wrong input shape",
    "mismatched shapes",
    "wrong input dtype",
    "integer input",
    "NaN input",
    "Inf input",
    "all-zero input",
    "huge input",
    "empty batch",
    "empty slice",
    "empty data",
    "model without the layers",
    "unsupported model",
    "wrong backend",
    "misuse",
)

# Requirements a case may name in `needs`: the reason its test is skipped without them.
NEEDS = {
    "tensorflow": "needs the TensorFlow backend",
    "other backend": "checks the error of a backend other than TensorFlow",
    "keras_tuner": "needs the `tuner` extra (KerasTuner)",
    "onnx": "needs the TensorFlow backend and the `onnx` extra (tf2onnx, onnx, onnxruntime)",
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad argument or input of one API, and what it gives."""

    api: str  # a heading of the page: a name in `kaa.__all__`, or a dotted path below `kaa`
    kind: str  # one of KINDS
    code: str  # one expression, run in NAMESPACE
    expect: Raises | Returns | Warns
    bug: str = ""  # a known issue: what the code does now (`expect` is the intended behaviour)
    needs: str = ""  # a key of NEEDS, or ""

    @property
    def id(self) -> str:
        return self.code


CASES: list[Case] = []


def add(api: str, kind: str, code: str, expect: Raises | Returns | Warns, **options: str) -> None:
    CASES.append(Case(api, kind, code, expect, **options))


def error(message: str, error_type: type[BaseException] = ValueError) -> Raises:
    return Raises(error_type, message)


def returns(description: str, check: Callable[[Any], bool]) -> Returns:
    return Returns(description, check)


# ----------------------------------------------------------------------------------------------
# Checks of returned values


def to_numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def close(expected: Any, dtype: str | None = "float32", rtol: float = 1e-6) -> Callable[[Any], bool]:
    """The value has `expected`'s shape and values (NaN where it is NaN, infinities of its sign)."""
    expected = np.asarray(expected, dtype="float64")

    def check(value: Any) -> bool:
        array = to_numpy(value)
        if dtype is not None and array.dtype != np.dtype(dtype):
            return False
        return array.shape == expected.shape and bool(
            np.allclose(array, expected, rtol=rtol, atol=0.0, equal_nan=True)
        )

    return check


def nan_where(mask: Any) -> Callable[[Any], bool]:
    """The value is NaN exactly where `mask` is true."""
    return lambda value: bool(np.array_equal(np.isnan(to_numpy(value)), np.asarray(mask)))


def shape_is(shape: tuple[int, ...]) -> Callable[[Any], bool]:
    return lambda value: to_numpy(value).shape == shape


def same_pair(dtype: str = "float32") -> Callable[[Any], bool]:
    """A pair of tensors (from `int_vs_float`) of `dtype`, equal to each other."""

    def check(pair: Any) -> bool:
        first, second = (to_numpy(value) for value in pair)
        return first.dtype == second.dtype == np.dtype(dtype) and bool(np.array_equal(first, second))

    return check


def entries(expected: dict[str, float]) -> Callable[[Any], bool]:
    """A dict with these entries (NaN where NaN is expected; other keys may be present)."""
    return lambda value: all(
        key in value and bool(np.isclose(value[key], want, rtol=1e-6, equal_nan=True))
        for key, want in expected.items()
    )


# ----------------------------------------------------------------------------------------------
# Helpers the examples use (the page lists each with the first line of its docstring)

HELPERS: dict[str, Callable[..., Any]] = {}


def helper(function: Callable[..., Any]) -> Callable[..., Any]:
    HELPERS[function.__name__] = function
    return function


@helper
def relu_model() -> keras.Model:
    """A built Sequential model `Input((2,)) -> Dense(2, name="dense") -> ReLU(name="relu")`."""
    return keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, name="dense"), keras.layers.ReLU(name="relu")]
    )


@helper
def dense_model() -> keras.Model:
    """A built Sequential model `Input((2,)) -> Dense(2)`: no activation layer."""
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])


@helper
def noisy_model() -> keras.Model:
    """A built Sequential model `Input((2,)) -> Dense(2) -> NoisyHardTanh(name="noisy")`."""
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2), kaa.NoisyHardTanh(name="noisy")])


@helper
def unbuilt_noisy_model() -> keras.Model:
    """The same model without `keras.Input`: its layers are built by the first step."""
    return keras.Sequential([keras.layers.Dense(2), kaa.NoisyHardTanh(name="noisy")])


@helper
def carelu_model() -> keras.Model:
    """A built Sequential model `Input((2,)) -> CompetitiveReLU(name="carelu")`."""
    return keras.Sequential([keras.Input((2,)), kaa.CompetitiveReLU(name="carelu")])


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)
        self.relu = keras.layers.ReLU()

    def call(self, inputs):
        return self.relu(self.dense(inputs))


@helper
def subclassed_model() -> keras.Model:
    """A subclassed model `Dense(2) -> ReLU`, built on inputs of shape `(1, 2)`."""
    model = _Subclassed()
    model(np.ones((1, 2), "float32"))
    return model


@helper
def built(layer: keras.layers.Layer, shape: tuple[int, ...]) -> keras.layers.Layer:
    """`layer`, called once on ones of `shape` (so it has weights)."""
    layer(np.ones(shape, "float32"))
    return layer


@helper
def fit_with(model: keras.Model, callback: keras.callbacks.Callback) -> dict[str, list[float]]:
    """Compiles `model` (SGD, MSE), fits it one epoch on 4 rows of ones with `callback`; the history."""
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.ones((4, 2), "float32")
    return model.fit(x, x, epochs=1, batch_size=4, verbose=0, callbacks=[callback]).history


@helper
def measured(monitor: keras.callbacks.Callback, model: keras.Model) -> dict[str, float]:
    """`monitor.set_model(model)`, then `monitor.measure()`: the values it would log."""
    monitor.set_model(model)
    return monitor.measure()


@helper
def added_loss(layer: keras.layers.Layer, x: Any) -> float:
    """Calls `layer` on `x`; the loss it added."""
    layer(x)
    (loss,) = layer.losses
    return float(keras.ops.convert_to_numpy(loss))


@helper
def weight_gradients(layer: keras.layers.Layer, x: Any) -> list[float]:
    """The gradients of `sum(layer(x))` for each trainable weight of `layer` (TensorFlow)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    return [float(keras.ops.convert_to_numpy(g)) for g in tape.gradient(loss, layer.trainable_weights)]


@helper
def int_vs_float(layer: keras.layers.Layer, x: np.ndarray) -> tuple[Any, Any]:
    """`layer(x)` for the integer array `x`, and `layer` on `x` as float32."""
    return layer(x), layer(np.asarray(x, "float32"))


@helper
def trained_zeroth_bias() -> kaa.ZerothBias:
    """`ZerothBias(max_len=2, clip=1.0)`, built for `d_model=2`, with every entry of `b0` set to 0.5."""
    layer = built(kaa.ZerothBias(max_len=2, clip=1.0), (1, 2, 2))
    layer.b0.assign(np.full((2, 2), 0.5, "float32"))
    return layer


@helper
def gaussian(n: int, d: int) -> np.ndarray:
    """`n` rows of `N(0, I_d)` samples (seeded)."""
    return np.random.default_rng(0).standard_normal((n, d))


@helper
def with_nan(x: np.ndarray, row: int) -> np.ndarray:
    """A copy of `x` with a NaN in row `row`."""
    x = np.array(x)
    x[row, 0] = math.nan
    return x


@helper
def fitted_learner() -> Any:
    """`NarrowReLULearner(k=1, refine=False, seed=0)` fitted on `gaussian(200, 3)` (3 features)."""
    x = gaussian(200, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few samples for a good estimate; not what is checked here
        return kaa.narrow.NarrowReLULearner(k=1, refine=False, seed=0).fit(x, np.maximum(x[:, 0], 0.0))


@helper
def hp() -> Any:
    """A new `keras_tuner.HyperParameters()`."""
    import keras_tuner

    return keras_tuner.HyperParameters()


@functools.cache
def _temporary(purpose: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"kaa-bad-input-{purpose}-")  # removed at exit


@helper
def scratch_dir() -> str:
    """An existing, empty directory."""
    return _temporary("scratch").name


@helper
@functools.cache
def a_file() -> str:
    """The path of an existing file (not a folder)."""
    path = f"{_temporary('file').name}/a_file"
    with open(path, "w") as file:
        file.write("not a folder")
    return path


@functools.cache
def _export() -> tuple[Any, keras.Model]:
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2, name="y")])
    return kaa.export.export_for_serving(model, f"{_temporary('export').name}/model/1"), model


@helper
def exported() -> Any:
    """The path of a SavedModel of `exported_source()`, written once by `export_for_serving`."""
    return _export()[0]


@helper
def exported_source() -> keras.Model:
    """The exported model: `Input((3,), name="x") -> Dense(2, name="y")`."""
    return _export()[1]


@functools.cache
def _export_onnx() -> Any:
    return kaa.export.export_onnx(exported_source(), f"{_temporary('export-onnx').name}/model.onnx")


@helper
def exported_onnx() -> Any:
    """The path of an ONNX file of `exported_source()`, written once by `export_onnx`."""
    return _export_onnx()


NAMESPACE: dict[str, Any] = {"np": np, "keras": keras, "kaa": kaa, "nan": math.nan, "inf": math.inf}
NAMESPACE.update({name: getattr(kaa, name) for name in kaa.__all__ if not name.startswith("_")})
NAMESPACE.update(HELPERS)


def evaluate(case: Case) -> Any:
    """Runs the case's code; returns its value (or raises what it raises)."""
    return eval(case.code, dict(NAMESPACE))


# ----------------------------------------------------------------------------------------------
# Layers

api = "CompetitiveReLU"
add(api, "wrong type", 'CompetitiveReLU(scale_bound="2")', error("`scale_bound` must be a finite number"))
add(api, "wrong type", 'CompetitiveReLU(axis="1")', error("`axis` must be None, an int or a non-empty tuple"))
add(api, "out of range", "CompetitiveReLU(scale_bound=-1)", error("`scale_bound` must be > 0"))
add(api, "out of range", "CompetitiveReLU(eps=0)", error("`eps` must be > 0"))
add(api, "out of range", "CompetitiveReLU(axis=0)", error("`axis` must not include the batch axis 0"))
add(
    api,
    "non-finite argument",
    "CompetitiveReLU(scale_bound=inf)",
    error("`scale_bound` must be a finite number"),
)
add(api, "non-finite argument", "CompetitiveReLU(eps=nan)", error("`eps` must be a finite number"))
add(
    api,
    "unknown choice",
    'CompetitiveReLU(competition="energetic")',
    error("`competition` must be one of ('energy', 'l1', 'count')"),
)
add(
    api,
    "unknown choice",
    'CompetitiveReLU(init="zeros")',
    error("`init` must be one of ('relu', 'competition')"),
)
add(
    api,
    "conflicting arguments",
    "CompetitiveReLU(scale_bound=0.5)",
    error("init='relu' needs scale_bound > 1"),
)
add(
    api,
    "wrong input rank",
    "CompetitiveReLU()(np.ones(3))",
    error("CompetitiveReLU needs inputs of rank >= 2 (batch, features, ...)"),
)
add(
    api,
    "wrong input rank",
    "built(CompetitiveReLU(), (2, 4))(np.ones((2, 3, 4)))",
    error("expected ndim=2, found ndim=3"),
)
add(
    api,
    "wrong input shape",
    "CompetitiveReLU(axis=5)(np.ones((2, 3)))",
    error("`axis` is out of range for inputs of rank 2"),
)
add(
    api,
    "wrong number of inputs",
    "CompetitiveReLU()([np.ones((2, 3))] * 3)",
    error("CompetitiveReLU takes one tensor or a list [z, source] of two"),
)
add(
    api,
    "mismatched shapes",
    "CompetitiveReLU()([np.ones((2, 3)), np.ones((2, 4))])",
    error("The second input (the tensor `p` is measured on) must have the shape of the first"),
)
add(
    api,
    "integer input",
    "CompetitiveReLU()(np.array([[-1, 2, 3]]))",
    returns("cast to float32: `[[0.0, 2.0, 3.0]]`", close([[0.0, 2.0, 3.0]])),
)
add(
    api,
    "NaN input",
    "CompetitiveReLU()(np.array([[nan, 1.0, 2.0], [-1.0, 0.5, 2.0]]))",
    returns(
        "NaN for every entry of that sample; the other samples are unchanged",
        close([[math.nan] * 3, [0.0, 0.5, 2.0]]),
    ),
)
add(
    api,
    "Inf input",
    "CompetitiveReLU()(np.array([[inf, 1.0, 2.0], [-1.0, 0.5, 2.0]]))",
    returns(
        "the same as NaN: that sample is NaN, the others unchanged", close([[math.nan] * 3, [0.0, 0.5, 2.0]])
    ),
)
add(
    api,
    "Inf input",
    'weight_gradients(CompetitiveReLU(competition="energy"), np.array([[-inf, 1.0, 2.0], [-1.0, 0.5, 2.0]]))',
    returns(
        "finite gradients of `alpha` and `beta`, `[3.04, 8.25]`: `-inf` loses in the backward pass too "
        "(its sample's share stays 0), and its own gradient is 0, as ReLU's",
        # d(sum)/d(alpha*p + beta) is (K - s**2/K) = 1.5 times each sample's winners' sum (3 and 2.5);
        # the shares p are 0 and 4.25 / 5.25.
        close([1.5 * 2.5 * 4.25 / 5.25, 1.5 * (3.0 + 2.5)], dtype=None, rtol=1e-5),
    ),
    needs="tensorflow",
)
for competition in ("energy", "l1"):
    add(
        api,
        "Inf input",
        f'CompetitiveReLU(competition="{competition}")(np.array([[-inf, 1.0, 2.0], [-1.0, 0.5, 2.0]]))',
        returns(
            f"with `{competition}`, `-inf` only loses: `[[0.0, 1.0, 2.0]]` (its share is 0), the other "
            "samples unchanged",
            close([[0.0, 1.0, 2.0], [0.0, 0.5, 2.0]]),
        ),
    )
add(
    api,
    "Inf input",
    'CompetitiveReLU(competition="count")(np.array([[inf, 1.0, 2.0]]))',
    returns(
        "with `count`: `inf` passes as `inf`, the other entries are unchanged", close([[math.inf, 1.0, 2.0]])
    ),
)
add(
    api,
    "all-zero input",
    "CompetitiveReLU()(np.zeros((2, 3)))",
    returns("zeros, no NaN (`eps` keeps the share `p` at 0)", close(np.zeros((2, 3)))),
)
add(
    api,
    "huge input",
    "CompetitiveReLU()(np.array([[1e30, -1e30, 1.0]]))",
    returns(
        "finite, `[[1e30, 0.0, 1.0]]`: each slice is divided by its largest entry before its sums of squares",
        close([[1e30, 0.0, 1.0]]),
    ),
)
add(
    api,
    "huge input",
    'CompetitiveReLU(competition="l1")(np.array([[1e30, -1e30, 1.0]]))',
    returns("with `l1`: finite, `[[1e30, 0.0, 1.0]]`", close([[1e30, 0.0, 1.0]])),
)
add(
    api,
    "empty batch",
    "CompetitiveReLU()(np.zeros((0, 3)))",
    returns("an empty `(0, 3)` tensor", shape_is((0, 3))),
)
for competition in ("energy", "l1", "count"):
    add(
        api,
        "empty slice",
        f'weight_gradients(CompetitiveReLU(competition="{competition}", init="competition"), '
        "np.zeros((2, 0)))",
        returns(
            "an empty output; gradients of `alpha` and `beta` of 0 (an empty slice's share `p` is 0)",
            close([0.0, 0.0], dtype=None),
        ),
        needs="tensorflow",
    )

for api, defaults in (
    ("NoisyHardTanh", {"nan": [[math.nan, 0.5]], "huge": [[-1.5e29, 1.5e29]], "zero": 0.0, "clip": [-1, 1]}),
    (
        "NoisyHardSigmoid",
        {"nan": [[math.nan, 0.625]], "huge": [[-2.5e28, 2.5e28]], "zero": 0.5, "clip": [0, 1]},
    ),
):
    add(api, "wrong type", f'{api}(alpha="1")', error("`alpha` must be a finite number"))
    add(api, "wrong type", f'{api}(half_normal="yes")', error("`half_normal` must be True, False or None"))
    add(api, "wrong type", f"{api}(clip_output=1)", error("`clip_output` must be True or False"))
    add(api, "wrong type", f"{api}(seed=1.5)", error("`seed` must be None or an int"))
    add(
        api,
        "wrong type",
        f'{api}(noise_at_inference="no")',
        error("`noise_at_inference` must be True or False"),
    )
    add(api, "out of range", f"{api}(alpha=0)", error("`alpha` must be > 0"))
    add(api, "out of range", f"{api}(c=-1)", error("`c` must be >= 0"))
    add(api, "out of range", f"{api}(threshold=-1)", error("`threshold` must be >= 0"))
    add(api, "non-finite argument", f"{api}(c=inf)", error("`c` must be a finite number"))
    add(
        api,
        "unknown choice",
        f'{api}(noise="gaussian")',
        error("`noise` must be one of ('output', 'input', 'input_saturated', 'input_learned')"),
    )
    add(
        api,
        "wrong input rank",
        f"{api}()(np.float32(1.0))",
        error("`p` is per unit (the last axis): noise='output' needs inputs of rank >= 1"),
    )
    add(
        api,
        "wrong input shape",
        f"{api}()(keras.Input((None,)))",
        error("The last axis (units) must be known to create `p`"),
    )
    add(
        api,
        "NaN input",
        f"{api}()(np.array([[nan, 0.5]]))",
        returns("NaN where the input is NaN", close(defaults["nan"])),
    )
    low, high = defaults["clip"]
    add(
        api,
        "Inf input",
        f"{api}()(np.array([[inf, -inf]]))",
        returns(
            "`[[-inf, inf]]`: the saturated line (default `alpha > 1`) at its limits",
            close([[-math.inf, math.inf]]),
        ),
    )
    add(
        api,
        "Inf input",
        f"{api}(clip_output=True)(np.array([[inf, -inf]]))",
        returns(f"`[[{low}, {high}]]`: clipped to the range of `h`", close([[low, high]])),
    )
    add(
        api,
        "Inf input",
        f'{api}(p_initializer="zeros")(np.array([[inf]]), training=True)',
        returns("NaN in training where `p == 0` (`sigmoid(0 * inf)`)", close([[math.nan]])),
    )
    zero = defaults["zero"]
    add(
        api,
        "all-zero input",
        f"{api}()(np.zeros((2, 3)), training=True)",
        returns(
            f"`h(0) = {zero}` everywhere, no noise (the linear regime), no NaN", close(np.full((2, 3), zero))
        ),
    )
    add(
        api,
        "huge input",
        f"{api}()(np.array([[1e30, -1e30]]))",
        returns(
            "finite but large, `{}`: the saturated line is unbounded unless `clip_output=True`".format(
                defaults["huge"]
            ),
            close(defaults["huge"]),
        ),
    )
    add(
        api,
        "empty batch",
        f"{api}()(np.zeros((0, 3)))",
        returns("an empty `(0, 3)` tensor", shape_is((0, 3))),
    )

add(
    "NoisyHardTanh",
    "integer input",
    "NoisyHardTanh()(np.array([[-1, 0, 3]]))",
    returns("cast to float32: `[[-1.0, 0.0, 0.7]]`", close([[-1.0, 0.0, 0.7]])),
)
add(
    "NoisyHardSigmoid",
    "integer input",
    'NoisyHardSigmoid(p_initializer="zeros")(np.array([[-1, 0, 3]]))',
    returns("cast to float32: `[[0.25, 0.5, 0.975]]`", close([[0.25, 0.5, 0.975]])),
)

api = "RReLU"
add(api, "wrong type", 'RReLU(lower="0.1")', error("`lower` must be a finite number"))
add(api, "wrong type", 'RReLU(seed="0")', error("`seed` must be None or an int"))
add(api, "wrong type", "RReLU(noise_at_inference=None)", error("`noise_at_inference` must be True or False"))
add(api, "out of range", "RReLU(lower=-0.1)", error("`lower` must be >= 0"))
add(api, "non-finite argument", "RReLU(upper=nan)", error("`upper` must be a finite number"))
add(api, "conflicting arguments", "RReLU(lower=0.3, upper=0.1)", error("`upper` must be >= `lower`"))

api = "inference_noise"
add(api, "wrong type", 'kaa.inference_noise("yes")', error("`draw` must be True or False"))
add(api, "wrong type", "kaa.inference_noise(None)", error("`draw` must be True or False"))
add(
    api,
    "integer input",
    "RReLU()(np.array([[-8, 3]]))",
    returns("cast to float32: `[[-1.8333334, 3.0]]` (slope 11/48)", close([[-8 * 11 / 48, 3.0]])),
)
add(
    api,
    "NaN input",
    "RReLU()(np.array([[nan, -2.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, -2 * 11 / 48]])),
)
add(
    api,
    "Inf input",
    "RReLU()(np.array([[inf, -inf]]), training=True)",
    returns("`[[inf, -inf]]`", close([[math.inf, -math.inf]])),
)
add(
    api,
    "Inf input",
    "RReLU(lower=0.0, upper=0.0)(np.array([[-inf]]))",
    returns("NaN: a slope of 0 times `-inf`", close([[math.nan]])),
)
add(
    api,
    "all-zero input",
    "RReLU()(np.zeros((2, 3)), training=True)",
    returns("zeros", close(np.zeros((2, 3)))),
)
add(
    api,
    "huge input",
    "RReLU()(np.array([[1e30, -1e30]]))",
    returns("finite, `[[1e30, -2.29e29]]`", close([[1e30, -1e30 * 11 / 48]])),
)
add(api, "empty batch", "RReLU()(np.zeros((0, 3)))", returns("an empty `(0, 3)` tensor", shape_is((0, 3))))

api = "JSquaredReLU"
add(
    api,
    "unknown argument",
    "JSquaredReLU(alpha=1)",
    error("Unrecognized keyword arguments passed to JSquaredReLU"),
)
add(
    api,
    "integer input",
    "JSquaredReLU()(np.array([[-1, 2]]))",
    returns("cast to float32: `[[0.0, 4.0]]`", close([[0.0, 4.0]])),
)
add(
    api,
    "NaN input",
    "JSquaredReLU()(np.array([[nan, 1.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, 1.5]])),
)
add(
    api,
    "Inf input",
    "JSquaredReLU()(np.array([[inf, -inf]]))",
    returns("`[[inf, 0.0]]`", close([[math.inf, 0.0]])),
)
add(api, "all-zero input", "JSquaredReLU()(np.zeros((2, 3)))", returns("zeros", close(np.zeros((2, 3)))))
add(
    api,
    "huge input",
    "JSquaredReLU()(np.array([[1e30, 2.6e19]]))",
    returns(
        "`inf` above about 2.61e19 (where the true value overflows float32), else finite",
        close([[math.inf, 2.6e19 + 0.5 * 2.6e19**2]]),
    ),
)
add(
    api,
    "empty batch",
    "JSquaredReLU()(np.zeros((0, 3)))",
    returns("an empty `(0, 3)` tensor", shape_is((0, 3))),
)

api = "LiSHT"
add(api, "unknown argument", "LiSHT(alpha=1)", error("Unrecognized keyword arguments passed to LiSHT"))
add(
    api,
    "integer input",
    "LiSHT()(np.array([[-1, 2]]))",
    returns("cast to float32: `[[0.7615942, 1.9280552]]`", close([[math.tanh(1.0), 2 * math.tanh(2.0)]])),
)
add(
    api,
    "NaN input",
    "LiSHT()(np.array([[nan, 1.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, math.tanh(1.0)]])),
)
add(
    api,
    "Inf input",
    "LiSHT()(np.array([[inf, -inf]]))",
    returns("`[[inf, inf]]` (even)", close([[math.inf, math.inf]])),
)
add(
    api,
    "huge input",
    "LiSHT()(np.array([[1e30, -1e30]]))",
    returns("finite, `[[1e30, 1e30]]`", close([[1e30, 1e30]])),
)
add(api, "empty batch", "LiSHT()(np.zeros((0, 3)))", returns("an empty `(0, 3)` tensor", shape_is((0, 3))))

api = "Snake"
add(api, "wrong type", "Snake(frequency='1')", error("`frequency` must be a finite number"))
add(api, "non-finite argument", "Snake(frequency=nan)", error("`frequency` must be a finite number"))
add(
    api,
    "conflicting arguments",
    "Snake(frequency=2.0, frequency_initializer='ones')",
    error("Pass `frequency` or `frequency_initializer`, not both"),
)
add(
    api,
    "integer input",
    "Snake()(np.array([[-1, 2]]))",
    returns(
        "cast to float32: `[[-0.2919266, 2.8268218]]`",
        close([[-1 + math.sin(-1.0) ** 2, 2 + math.sin(2.0) ** 2]]),
    ),
)
add(
    api,
    "NaN input",
    "Snake()(np.array([[nan, 1.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, 1 + math.sin(1.0) ** 2]])),
)
add(
    api,
    "Inf input",
    "Snake()(np.array([[inf, -inf]]))",
    returns("`[[inf, -inf]]`", close([[math.inf, -math.inf]])),
)
add(
    api,
    "huge input",
    "Snake()(np.array([[1e30, -1e30]]))",
    returns("finite, `[[1e30, -1e30]]` (the periodic part is at most 1)", close([[1e30, -1e30]])),
)
add(api, "empty batch", "Snake()(np.zeros((0, 3)))", returns("an empty `(0, 3)` tensor", shape_is((0, 3))))

api = "TLU"
add(api, "wrong type", "TLU(affine='yes')", error("`affine` must be True or False"))
add(
    api,
    "wrong input rank",
    "built(TLU(), (2, 3, 4))(np.ones((2, 4)))",
    error("expected ndim=3, found ndim=2"),
)
add(api, "wrong type", "TLU(axis='a')", error("`axis` must be an int or a non-empty list of distinct ints"))
add(
    api,
    "wrong input rank",
    "TLU()(np.zeros((2,)))",
    error("`axis` is out of range, or repeats an axis, for inputs of rank 1"),
)
add(
    api,
    "out of range",
    "TLU(axis=5)(np.zeros((2, 3)))",
    error("`axis` is out of range, or repeats an axis, for inputs of rank 2"),
)
add(
    api,
    "integer input",
    "TLU()(np.array([[-1, 2]]))",
    returns("cast to float32: `[[0.0, 2.0]]`", close([[0.0, 2.0]])),
)
add(
    api,
    "NaN input",
    "TLU()(np.array([[nan, 1.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, 1.0]])),
)
add(
    api,
    "Inf input",
    "TLU()(np.array([[inf, -inf]]))",
    returns("`[[inf, 0.0]]` (tau starts at 0)", close([[math.inf, 0.0]])),
)
add(
    api,
    "huge input",
    "TLU()(np.array([[1e30, -1e30]]))",
    returns("finite, `[[1e30, 0.0]]`", close([[1e30, 0.0]])),
)
add(api, "empty batch", "TLU()(np.zeros((0, 3)))", returns("an empty `(0, 3)` tensor", shape_is((0, 3))))

api = "MixedActivation"
add(api, "wrong type", 'MixedActivation(t="0.5")', error("`t` must be a finite number"))
add(
    api,
    "wrong type",
    "MixedActivation(start=42)",
    error("`start` must be a Keras activation name, the name of one of this package's layers, or a layer"),
)
add(
    api,
    "wrong type",
    "MixedActivation(end=None)",
    error("`end` must be a Keras activation name, the name of one of this package's layers, or a layer"),
)
add(api, "out of range", "MixedActivation(t=1.5)", error("`t` must be in [0, 1]"))
add(api, "out of range", "MixedActivation(t=-0.1)", error("`t` must be >= 0"))
add(api, "non-finite argument", "MixedActivation(t=nan)", error("`t` must be a finite number"))
add(
    api,
    "unknown choice",
    'MixedActivation(start="nope")',
    error("`start` must be a Keras activation name, the name of one of this package's layers, or a layer"),
)
add(
    api,
    "unknown choice",
    'MixedActivation(start={"class_name": "Nope", "config": {}})',
    error("Unknown activation 'Nope'"),
)
add(
    api,
    "integer input",
    "MixedActivation(t=0.5)(np.array([[-1, 2]]))",
    returns("cast to float32: `[[0.0, 3.0]]`", close([[0.0, 3.0]])),
)
add(
    api,
    "NaN input",
    "MixedActivation(t=0.5)(np.array([[nan, 2.0]]))",
    returns("NaN where the input is NaN", close([[math.nan, 3.0]])),
)
add(
    api,
    "Inf input",
    "MixedActivation(t=0.5)(np.array([[inf, -inf]]))",
    returns("`[[inf, 0.0]]`", close([[math.inf, 0.0]])),
)
add(
    api,
    "huge input",
    "MixedActivation()(np.array([[1e20, inf, 2.0]]))",
    returns("at `t = 0`, exactly `start(x)`: `[[1e20, inf, 2.0]]`", close([[1e20, math.inf, 2.0]])),
)
add(
    api,
    "all-zero input",
    "MixedActivation(t=0.5)(np.zeros((2, 3)))",
    returns("zeros", close(np.zeros((2, 3)))),
)
add(
    api,
    "empty batch",
    "MixedActivation(t=0.5)(np.zeros((0, 3)))",
    returns("an empty `(0, 3)` tensor", shape_is((0, 3))),
)

api = "ActivitySparsity"
add(
    api,
    "wrong type",
    'ActivitySparsity("l1")',
    error("`regularizer` must be one of the package's activity regularizers"),
)
add(
    api,
    "wrong type",
    "ActivitySparsity(keras.regularizers.L1(0.1))",
    error("`regularizer` must be one of the package's activity regularizers"),
)
add(
    api,
    "unknown choice",
    'ActivitySparsity({"class_name": "Nope", "config": {}})',
    error("Could not locate class 'Nope'", TypeError),
)
add(
    api,
    "integer input",
    "added_loss(ActivitySparsity(kaa.regularizers.ActivationL1(0.1)), np.array([[1, -2]]))",
    returns("the loss of the float input, 0.3", close(0.3, dtype=None)),
)
add(
    api,
    "NaN input",
    "added_loss(ActivitySparsity(kaa.regularizers.ActivationL1(0.1)), np.array([[nan, 1.0]]))",
    returns("a NaN loss (the output is the input, NaN included)", close(math.nan, dtype=None)),
)
add(
    api,
    "all-zero input",
    "added_loss(ActivitySparsity(kaa.regularizers.HoyerSquare(1.0)), np.zeros((2, 3)))",
    returns("a loss of 0, no NaN", close(0.0, dtype=None)),
)
add(
    api,
    "empty batch",
    "added_loss(ActivitySparsity(kaa.regularizers.ActivationL1(0.1)), np.zeros((0, 3)))",
    returns("a loss of 0: an empty batch adds no loss (no NaN)", close(0.0, dtype=None)),
)
add(
    api,
    "wrong input rank",
    "added_loss(ActivitySparsity(kaa.regularizers.ActivationL1(0.1)), np.float32(1.0))",
    error("Sparsity penalties need inputs of rank >= 1 with the batch first"),
)

api = "RestrictedLayerNormalization"
add(
    api,
    "wrong type",
    'RestrictedLayerNormalization(axis="x")',
    error("Expected an int or a list/tuple of ints for the argument 'axis'", TypeError),
)
add(
    api,
    "wrong type",
    "RestrictedLayerNormalization.from_layer_normalization(keras.layers.Dense(2))",
    error("`layer` must be a keras.layers.LayerNormalization"),
)
add(api, "out of range", "RestrictedLayerNormalization(epsilon=-1)", error("`epsilon` must be >= 0"))
add(
    api,
    "non-finite argument",
    "RestrictedLayerNormalization(epsilon=nan)",
    error("`epsilon` must be a finite number"),
)
add(
    api,
    "unknown choice",
    'RestrictedLayerNormalization(mode="train")',
    error("`mode` must be one of ('scratch', 'finetune')"),
)
add(
    api,
    "conflicting arguments",
    "RestrictedLayerNormalization(center=True)",
    error("RestrictedLayerNormalization(mode='scratch') has no bias: `center` must be False"),
)
add(
    api,
    "conflicting arguments",
    "RestrictedLayerNormalization(scale=False)",
    error("RestrictedLayerNormalization needs `scale=True`"),
)
add(
    api,
    "conflicting arguments",
    "RestrictedLayerNormalization(rms_scaling=True)",
    error("RestrictedLayerNormalization does not support `rms_scaling`"),
)
add(
    api,
    "conflicting arguments",
    "RestrictedLayerNormalization.from_layer_normalization("
    'built(keras.layers.LayerNormalization(), (1, 3)), mode="scratch")',
    error("mode='scratch' has no beta"),
)
add(
    api,
    "wrong input shape",
    "RestrictedLayerNormalization(axis=5)(np.ones((2, 3)))",
    error("`axis` is out of range for inputs of rank 2"),
)
add(
    api,
    "integer input",
    "RestrictedLayerNormalization()(np.array([[1, 2, 3]]))",
    returns(
        "cast to float32: the output of the float input (`keras.layers.LayerNormalization` would "
        "normalise in integer arithmetic)",
        close([[-1.2238274, 0.0, 1.2238274]]),
    ),
)
add(
    api,
    "NaN input",
    "RestrictedLayerNormalization()(np.array([[nan, 1.0, 2.0], [1.0, 2.0, 3.0]]))",
    returns(
        "NaN for the whole normalised row; the other rows are unchanged",
        close([[math.nan] * 3, [-1.2238274, 0.0, 1.2238274]]),
    ),
)
add(
    api,
    "Inf input",
    "RestrictedLayerNormalization()(np.array([[inf, 1.0, 2.0], [1.0, 2.0, 3.0]]))",
    returns("the same as NaN: that row is NaN", close([[math.nan] * 3, [-1.2238274, 0.0, 1.2238274]])),
)
add(
    api,
    "all-zero input",
    "RestrictedLayerNormalization()(np.zeros((2, 3)))",
    returns("zeros, no NaN (`epsilon` keeps the division finite)", close(np.zeros((2, 3)))),
)
add(
    api,
    "all-zero input",
    "RestrictedLayerNormalization(epsilon=0.0)(np.zeros((2, 3)))",
    returns(
        "NaN with `epsilon=0`: 0 / 0 (as `keras.layers.LayerNormalization`)", close(np.full((2, 3), math.nan))
    ),
)
add(
    api,
    "huge input",
    'RestrictedLayerNormalization()(np.array([[1e20, -1e20, 1.0]], "float32"))',
    returns(
        "zeros: the float32 variance overflows (above about 1e19), as in `keras.layers.LayerNormalization`",
        close(np.zeros((1, 3))),
    ),
)
add(
    api,
    "empty batch",
    "RestrictedLayerNormalization()(np.zeros((0, 3)))",
    returns("an empty `(0, 3)` tensor", shape_is((0, 3))),
)
add(
    api,
    "misuse",
    "RestrictedLayerNormalization.from_layer_normalization(keras.layers.LayerNormalization())",
    error("`layer` must be built (called once) before it is copied"),
)

api = "SparsifiedMLP"
add(api, "wrong type", "SparsifiedMLP(8.0)", error("`hidden_units` must be an int >= 1"))
add(api, "wrong type", "SparsifiedMLP(8, activation=3)", error("`activation` must be a name (a string)"))
add(api, "wrong type", 'SparsifiedMLP(8, zeroth_bias="yes")', error("`zeroth_bias` must be True or False"))
add(api, "wrong type", 'SparsifiedMLP(8, dropout=0.1, seed="x")', error("Argument `seed` must be an integer"))
add(api, "out of range", "SparsifiedMLP(0)", error("`hidden_units` must be an int >= 1"))
add(api, "out of range", "SparsifiedMLP(8, dropout=1)", error("`dropout` must be < 1"))
add(api, "out of range", "SparsifiedMLP(8, clip=-1)", error("`clip` must be >= 0"))
add(api, "out of range", "SparsifiedMLP(8, epsilon=-1)", error("`epsilon` must be >= 0"))
add(api, "out of range", "SparsifiedMLP(8, max_len=0)", error("`max_len` must be an int >= 1 or None"))
add(
    api,
    "unknown choice",
    'SparsifiedMLP(8, norm="batch")',
    error("`norm` must be one of ('restricted', 'layer')"),
)
add(
    api,
    "unknown choice",
    'SparsifiedMLP(8, zeroth_bias_position="middle")',
    error("`zeroth_bias_position` must be one of ('input', 'output')"),
)
add(
    api,
    "unknown choice",
    'SparsifiedMLP(8, activation="nope")',
    error("`activation` must name one of this package's activation layers (such as 'j_squared_relu')"),
)
add(
    api,
    "unknown choice",
    'SparsifiedMLP(8, activation="sparsified_mlp")',
    error("`activation` must name one of this package's activation layers"),
)
add(
    api,
    "unknown choice",
    'SparsifiedMLP(8, activation="activity_sparsity")',
    error("`activation` must name one of this package's activation layers"),
)
add(
    api,
    "wrong input rank",
    "SparsifiedMLP(8)(np.ones((2, 4)))",
    error("SparsifiedMLP expects inputs of shape (batch, L, d_model)"),
)
add(
    api,
    "wrong input rank",
    "SparsifiedMLP(8, zeroth_bias=False)(np.ones((2, 2, 2, 4)))",
    error("SparsifiedMLP expects inputs of shape (batch, d_model) or (batch, L, d_model)"),
)
add(
    api,
    "wrong input shape",
    "SparsifiedMLP(8, max_len=2)(np.ones((1, 3, 4)))",
    error("The input sequence (length 3) is longer than `max_len`=2"),
)
add(
    api,
    "wrong input shape",
    "SparsifiedMLP(8, max_len=2)(keras.Input((2, None)))",
    error("The last axis (d_model) must be known"),
)
add(
    api,
    "integer input",
    "int_vs_float(SparsifiedMLP(8, max_len=3), np.ones((1, 3, 4), 'int32'))",
    returns("cast to float32: the output of the float input", same_pair()),
)
add(
    api,
    "NaN input",
    "SparsifiedMLP(8, seed=0)(np.array([[[nan, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]]]))",
    returns(
        "NaN for the whole token (position); the other tokens are finite",
        nan_where([[[True] * 4, [False] * 4]]),
    ),
)
add(
    api,
    "all-zero input",
    "SparsifiedMLP(8)(np.zeros((2, 3, 4)))",
    returns("zeros, no NaN", close(np.zeros((2, 3, 4)))),
)
add(
    api,
    "huge input",
    "SparsifiedMLP(8)(np.array([[[1e30, -1e30, 1e30, -1e30]]]))",
    returns(
        "finite: the input plus the block's small output (the residual)",
        close([[[1e30, -1e30, 1e30, -1e30]]]),
    ),
)
add(
    api,
    "empty batch",
    "SparsifiedMLP(8)(np.zeros((0, 3, 4)))",
    returns("an empty `(0, 3, 4)` tensor", shape_is((0, 3, 4))),
)

api = "ZerothBias"
add(api, "wrong type", "ZerothBias(max_len=2.5)", error("`max_len` must be an int >= 1 or None"))
add(
    api,
    "wrong type",
    "ZerothBias(reference_norm=keras.layers.Dense(2))",
    error("`reference_norm` must be a keras.layers.LayerNormalization (or a RestrictedLayerNormalization)"),
)
add(
    api,
    "wrong type",
    "ZerothBias(reference_norm_name=3)",
    error("`reference_norm_name` must be a string or None"),
)
add(api, "out of range", "ZerothBias(max_len=0)", error("`max_len` must be an int >= 1 or None"))
add(api, "out of range", "ZerothBias(clip=-0.1)", error("`clip` must be >= 0"))
add(api, "non-finite argument", "ZerothBias(clip=nan)", error("`clip` must be a finite number"))
add(
    api,
    "unknown argument",
    'ZerothBias(position="output")',
    Warns(DeprecationWarning, "ZerothBias(position=...) is deprecated and ignored"),
)
add(
    api,
    "conflicting arguments",
    "ZerothBias(reference_norm=keras.layers.LayerNormalization(scale=False))",
    error("`reference_norm` must have a gamma (scale=True)"),
)
add(
    api,
    "conflicting arguments",
    'ZerothBias(reference_norm=keras.layers.LayerNormalization(name="ln"), reference_norm_name="other")',
    error("`reference_norm_name` must be the name of `reference_norm` when both are given"),
)
add(
    api,
    "wrong input rank",
    "ZerothBias(max_len=3)(np.ones((2, 4)))",
    error("ZerothBias expects inputs of shape (batch, length, d_model)"),
)
add(
    api,
    "wrong input shape",
    "ZerothBias(max_len=2)(np.ones((1, 3, 4)))",
    error("The input sequence (length 3) is longer than `max_len`=2"),
)
add(
    api,
    "wrong input shape",
    "ZerothBias()(keras.Input((None, 4)))",
    error("`max_len=None` takes the input's sequence length, which is not known here: pass `max_len`"),
)
add(
    api,
    "integer input",
    "trained_zeroth_bias()(np.ones((1, 2, 2), 'int32'))",
    returns("cast to float32: `1.5` everywhere", close(np.full((1, 2, 2), 1.5))),
)
add(
    api,
    "NaN input",
    "ZerothBias(max_len=2)(np.array([[[nan, 1.0], [inf, 2.0]]]))",
    returns("the input, NaN and `inf` included (`b0` is added)", close([[[math.nan, 1.0], [math.inf, 2.0]]])),
)
add(
    api,
    "empty batch",
    "ZerothBias(max_len=2)(np.zeros((0, 2, 2)))",
    returns("an empty `(0, 2, 2)` tensor", shape_is((0, 2, 2))),
)
add(
    api,
    "misuse",
    "ZerothBias(max_len=2).link_reference_norm(relu_model())",
    error("This ZerothBias has no reference (absolute clip): there is nothing to link"),
)
add(
    api,
    "misuse",
    'ZerothBias(max_len=2, reference_norm_name="ln").link_reference_norm(relu_model())',
    error("No layer named 'ln'"),
)

for api, keras_layer, other_layer, width in (
    ("NoisyLSTMCell", "keras.layers.LSTM", "keras.layers.GRU", 16),
    ("NoisyGRUCell", "keras.layers.GRU", "keras.layers.LSTM", 12),
):
    add(api, "wrong type", f"{api}(2.5)", error("`units` must be a positive integer"))
    add(api, "wrong type", f'{api}(4, seed="0")', error("`seed` must be None or an int"))
    add(
        api,
        "wrong type",
        f"{api}(4, noise_at_inference=1)",
        error("`noise_at_inference` must be True or False"),
    )
    add(
        api,
        "unknown argument",
        f'{api}(4, activation="tanh")',
        error(f"{api} does not take `activation`: its gates are NoisyHardSigmoid units"),
    )
    add(api, "out of range", f"{api}(0)", error("`units` must be a positive integer"))
    add(api, "out of range", f"{api}(4, gate_alpha=0)", error("`gate_alpha` must be > 0"))
    add(api, "out of range", f"{api}(4, activation_c=-1)", error("`activation_c` must be >= 0"))
    add(api, "out of range", f"{api}(4, implementation=3)", error("`implementation` must be 1 or 2"))
    add(
        api,
        "out of range",
        f"{api}(4, dropout=1.5).dropout",
        returns("no error: clipped to 1.0 by Keras, and a rate of 1.0 drops nothing", close(1.0, dtype=None)),
    )
    add(
        api,
        "unknown choice",
        f'{api}(4, gate_noise="x")',
        error("`gate_noise` must be one of ('output', 'input', 'input_saturated', 'input_learned')"),
    )
    add(
        api,
        "wrong type",
        f"{api}(4).load_keras_weights(keras.layers.Dense(4))",
        error(f"`source` must be a {keras_layer} layer"),
    )
    add(
        api,
        "wrong type",
        f"{api}(4).load_keras_weights(built({other_layer}(4), (1, 2, 2)))",
        error(f"`source` must be a {keras_layer} layer"),
    )
    add(
        api,
        "mismatched shapes",
        f"{api}(4).load_keras_weights(built({keras_layer}(3), (1, 2, 2)))",
        error("`source` has units=3 but this cell has units=4: the weights are not compatible"),
    )
    add(
        api,
        "mismatched shapes",
        f"built(keras.layers.RNN({api}(4)), (1, 2, 3))"
        f".cell.load_keras_weights(built({keras_layer}(4), (1, 2, 2)))",
        error(f"`source.kernel` has shape (2, {width}) but this cell's has shape (3, {width})"),
    )
    add(
        api,
        "misuse",
        f"{api}(4).load_keras_weights({keras_layer}(4))",
        error("`source` is not built yet: call or fit it first"),
    )
    add(
        api,
        "integer input",
        f"int_vs_float(keras.layers.RNN({api}(2, seed=0)), np.full((1, 3, 2), 2))",
        returns("cast to float32: the output of the float input", same_pair()),
    )
    add(
        api,
        "NaN input",
        f"keras.layers.RNN({api}(2, seed=0))(np.array([[[nan, 1.0], [0.5, 0.5]]]))",
        returns("NaN: it reaches the state, and every later step", close([[math.nan, math.nan]])),
    )
    add(
        api,
        "all-zero input",
        f"keras.layers.RNN({api}(2, seed=0))(np.zeros((1, 3, 2)))",
        returns("zeros, no NaN", close([[0.0, 0.0]])),
    )
    add(
        api,
        "huge input",
        f"keras.layers.RNN({api}(2, seed=0))(np.full((1, 3, 2), 1e30))",
        returns(
            "NaN: the noisy units are unbounded where saturated (`alpha != 1`), the state overflows",
            close([[math.nan, math.nan]]),
        ),
    )
    keras_states = "[np.zeros((1, 2))] * 2" if api == "NoisyLSTMCell" else "[np.zeros((1, 2))]"
    count, names = (3, "h, c, noise_step") if api == "NoisyLSTMCell" else (2, "h, noise_step")
    add(
        api,
        "misuse",
        f"keras.layers.RNN({api}(2))(np.zeros((1, 3, 2)), initial_state={keras_states})",
        error(f"{api} takes {count} states, [{names}]: the last counts the steps"),
    )

add(
    "NoisyGRUCell",
    "wrong type",
    'NoisyGRUCell(4, reset_after="yes")',
    error("`reset_after` must be True or False"),
)
add(
    "NoisyGRUCell",
    "conflicting arguments",
    "NoisyGRUCell(4).load_keras_weights(built(keras.layers.GRU(4, reset_after=False), (1, 2, 2)))",
    error("`source` has reset_after=False but this cell has reset_after=True: the bias layouts differ"),
)

# ----------------------------------------------------------------------------------------------
# Callbacks

api = "NoiseAnnealing"
add(api, "wrong type", 'NoiseAnnealing("1", 0.0, duration=10)', error("`c_start` must be a finite number"))
add(
    api,
    "wrong type",
    "NoiseAnnealing(1.0, 0.0, duration=2.5)",
    error("`duration` must be a positive integer (a number of steps)"),
)
add(
    api,
    "wrong type",
    'NoiseAnnealing(1.0, 0.0, duration=10, layers="noisy")',
    error("`layers` must be None or a non-empty list of noisy layers (or their names)"),
)
add(
    api,
    "wrong type",
    "NoiseAnnealing(1.0, 0.0, duration=10, layers=[keras.layers.Dense(2)])",
    error("`layers` must hold noisy layers or layer names"),
)
add(api, "out of range", "NoiseAnnealing(-1.0, 0.0, duration=10)", error("`c_start` must be >= 0"))
add(
    api,
    "out of range",
    "NoiseAnnealing(1.0, 0.0, duration=0)",
    error("`duration` must be a positive integer (a number of steps)"),
)
add(
    api,
    "out of range",
    "NoiseAnnealing(1.0, 0.0, duration=10, layers=[])",
    error("`layers` must be None or a non-empty list of noisy layers (or their names)"),
)
add(
    api,
    "out of range",
    "NoiseAnnealing(1.0, 0.0, duration=10).value(-1)",
    error("`n` must be an integer >= 0"),
)
add(
    api,
    "non-finite argument",
    "NoiseAnnealing(1.0, nan, duration=10)",
    error("`c_end` must be a finite number"),
)
add(
    api,
    "unknown choice",
    'NoiseAnnealing(1.0, 0.0, duration=10, schedule="step")',
    error("`schedule` must be one of ('linear', 'exponential', 'cosine')"),
)
add(
    api,
    "unknown choice",
    'NoiseAnnealing(1.0, 0.0, duration=10, unit="batch")',
    error("`unit` must be one of ('step', 'epoch')"),
)
add(
    api,
    "conflicting arguments",
    'NoiseAnnealing(1.0, 0.0, duration=10, schedule="exponential")',
    error("The exponential schedule is geometric and needs c_start > 0 and c_end > 0"),
)
add(
    api,
    "model without the layers",
    "fit_with(relu_model(), NoiseAnnealing(1.0, 0.0, duration=10))",
    error("NoiseAnnealing found no noisy layer (NoisyHardTanh, NoisyHardSigmoid, ...) in the model"),
)
add(
    api,
    "model without the layers",
    'fit_with(noisy_model(), NoiseAnnealing(1.0, 0.0, duration=10, layers=["gone"]))',
    error("has no noisy layer named 'gone'"),
)
add(
    api,
    "model without the layers",
    'fit_with(noisy_model(), NoiseAnnealing(1.0, 0.0, duration=10, layers=[NoisyHardTanh(name="other")]))',
    error("the layer 'other' in `layers` is not part of the model"),
)
add(
    api,
    "misuse",
    "fit_with(unbuilt_noisy_model(), NoiseAnnealing(1.0, 0.0, duration=10))",
    Warns(
        UserWarning, "the layers ['noisy'] are not built yet, so the first training step uses their own `c`"
    ),
    needs="tensorflow",  # the JAX trainer builds the model before `on_train_begin`
)

api = "ActivationMixing"
add(
    api,
    "wrong type",
    "ActivationMixing(3, layers=[keras.layers.Dense(2)])",
    error("`layers` must hold MixedActivation layers or layer names"),
)
add(
    api,
    "out of range",
    "ActivationMixing(0)",
    error("`duration` must be a positive integer (a number of steps)"),
)
add(
    api,
    "unknown choice",
    'ActivationMixing(3, unit="epochs")',
    error("`unit` must be one of ('step', 'epoch')"),
)
add(
    api,
    "model without the layers",
    "fit_with(relu_model(), ActivationMixing(3))",
    error("ActivationMixing found no MixedActivation layer in the model"),
)

api = "GammaUplift"
add(
    api, "out of range", "GammaUplift(-1)", error("`duration` must be a positive integer (a number of steps)")
)
add(api, "unknown choice", 'GammaUplift(3, unit="batch")', error("`unit` must be one of ('step', 'epoch')"))
add(
    api,
    "model without the layers",
    "fit_with(relu_model(), GammaUplift(3))",
    error("GammaUplift found no RestrictedLayerNormalization in mode 'finetune' in the model"),
)
add(
    api,
    "conflicting arguments",
    "fit_with(keras.Sequential([keras.Input((2,)), "
    'keras.layers.LayerNormalization(scale=False, name="ln")]), GammaUplift(3, layers=["ln"]))',
    error("GammaUplift: the LayerNormalization layers ['ln'] have no gamma (scale=False)"),
)

for api in ("SparsityMonitor", "CompetitionMonitor"):
    add(api, "wrong type", f'{api}("abc")', error("`data` must be an array (or a dict / list of arrays)"))
    add(api, "out of range", f"{api}(np.ones((4, 2)), every=0)", error("`every` must be a positive integer"))
    add(
        api,
        "out of range",
        f"{api}(np.ones((4, 2)), batch_size=0)",
        error("`batch_size` must be a positive integer"),
    )
    add(
        api,
        "conflicting arguments",
        f"{api}((batch for batch in [np.ones((4, 2))]), batch_size=2)",
        error("`batch_size` is for array data: a dataset or iterable of batches is batched already"),
    )
    add(
        api,
        "mismatched shapes",
        f"{api}([np.ones((2, 2)), np.ones((3, 2))])",
        error("The inputs in `data` have different numbers of samples: [2, 3]"),
    )
    add(api, "empty data", f"{api}(None)", error("`data` must hold at least one sample"))
    add(api, "empty data", f"{api}(np.zeros((0, 2)))", error("`data` must hold at least one sample"))
    add(api, "empty data", f"{api}(batch for batch in [])", error("`data` must hold at least one batch"))
    add(
        api,
        "unsupported model",
        f"fit_with(subclassed_model(), {api}(np.ones((4, 2))))",
        error(f"{api} reads the layers' outputs from the model's graph, which a subclassed model"),
    )
    add(api, "misuse", f"{api}(np.ones((4, 2))).measure()", error(f"{api} is not attached to a model"))
    add(
        api,
        "misuse",
        f"{api}(np.ones((4, 2))).get_config()",
        error(f"{api} holds its data sample and is not serialisable", NotImplementedError),
    )

add(
    "SparsityMonitor",
    "model without the layers",
    "fit_with(dense_model(), SparsityMonitor(np.ones((4, 2))))",
    error("SparsityMonitor found no activation layer in the model"),
)
add(
    "SparsityMonitor",
    "NaN input",
    "measured(SparsityMonitor(np.array([[nan, 0.0]])), keras.Sequential([keras.Input((2,)), "
    'keras.layers.ReLU(name="relu")]))',
    returns(
        "NaN outputs count as non-zero: `zero_fraction/relu` is 0.5",
        entries({"zero_fraction/relu": 0.5, "zero_fraction_train/relu": 0.5}),
    ),
)
add(
    "CompetitionMonitor",
    "wrong type",
    "CompetitionMonitor(np.ones((4, 2)), layers=[keras.layers.Dense(2)])",
    error("`layers` must hold CompetitiveReLU layers or layer names"),
)
add(
    "CompetitionMonitor",
    "model without the layers",
    "fit_with(relu_model(), CompetitionMonitor(np.ones((4, 2))))",
    error("CompetitionMonitor found no CompetitiveReLU layer in the model"),
)
add(
    "CompetitionMonitor",
    "NaN input",
    "measured(CompetitionMonitor(np.array([[nan, 1.0], [1.0, -1.0]])), carelu_model())",
    returns(
        "`p_mean` and `s_mean` are NaN (means over all slices); `alpha` and `beta` are logged as they are",
        entries({"competition/carelu/p_mean": math.nan, "competition/carelu/s_mean": math.nan}),
    ),
)
add(
    "CompetitionMonitor",
    "all-zero input",
    "measured(CompetitionMonitor(np.zeros((2, 2))), carelu_model())",
    returns(
        "`p_mean` 0 and `s_mean` 1 (at the ReLU initialisation), no NaN",
        entries({"competition/carelu/p_mean": 0.0, "competition/carelu/s_mean": 1.0}),
    ),
)

# ----------------------------------------------------------------------------------------------
# Regularizers

for api in ("ActivationL1", "HoyerSquare"):
    add(api, "wrong type", f'kaa.regularizers.{api}("0.1")', error("`strength` must be a finite number"))
    add(api, "out of range", f"kaa.regularizers.{api}(-1)", error("`strength` must be >= 0"))
    add(
        api,
        "non-finite argument",
        f"kaa.regularizers.{api}(inf)",
        error("`strength` must be a finite number"),
    )
    add(
        api,
        "NaN input",
        f"kaa.regularizers.{api}(1.0).penalty(np.array([[nan, 1.0]]))",
        returns("a NaN penalty", close(math.nan, dtype=None)),
    )
    add(
        api,
        "empty batch",
        f"kaa.regularizers.{api}(1.0).penalty(np.zeros((0, 3)))",
        returns("0: an empty batch adds no loss (no NaN)", close(0.0, dtype=None)),
    )

api = "ActivationL1"
add(
    api,
    "integer input",
    "kaa.regularizers.ActivationL1(1.0).penalty(np.array([[1, -2]]))",
    returns("cast to float32: 3.0", close(3.0)),
)
add(
    api,
    "huge input",
    'kaa.regularizers.ActivationL1(1.0).penalty(np.full((1, 3), 1e30, "float32"))',
    returns("finite, 3e30 (float32 holds sums up to about 3e38)", close(3e30)),
)
api = "HoyerSquare"
add(
    api,
    "all-zero input",
    "kaa.regularizers.HoyerSquare(1.0).penalty(np.zeros((2, 3)))",
    returns("0 for an all-zero example, no NaN", close(0.0, dtype=None)),
)

api = "KLSparsity"
add(api, "wrong type", 'kaa.regularizers.KLSparsity(rho="0.05")', error("`rho` must be a finite number"))
add(api, "out of range", "kaa.regularizers.KLSparsity(rho=0)", error("`rho` must be > 0"))
add(api, "out of range", "kaa.regularizers.KLSparsity(rho=1)", error("`rho` must be in (0, 1)"))
add(api, "out of range", "kaa.regularizers.KLSparsity(strength=-1)", error("`strength` must be >= 0"))
add(
    api, "non-finite argument", "kaa.regularizers.KLSparsity(rho=nan)", error("`rho` must be a finite number")
)
add(
    api,
    "NaN input",
    "kaa.regularizers.KLSparsity(0.05).penalty(np.array([[nan, 0.5]]))",
    returns("a NaN penalty", close(math.nan, dtype=None)),
)
add(
    api,
    "all-zero input",
    "kaa.regularizers.KLSparsity(0.05).penalty(np.zeros((2, 3)))",
    returns(
        "finite: the mean activation is clipped to 1e-7", lambda value: bool(np.isfinite(to_numpy(value)))
    ),
)
add(
    api,
    "empty batch",
    "kaa.regularizers.KLSparsity(0.05).penalty(np.zeros((0, 3)))",
    returns("0: an empty batch adds no loss (no NaN)", close(0.0, dtype=None)),
)
add(
    api,
    "huge input",
    'kaa.regularizers.KLSparsity(0.05).penalty(np.array([[2.0, -1.0, 1e30]], "float32"))',
    returns(
        "finite: activations outside [0, 1] are clipped to [1e-7, 1 - 1e-7]",
        lambda value: bool(np.isfinite(to_numpy(value))),
    ),
)

# ----------------------------------------------------------------------------------------------
# Functions

api = "get"
add(api, "unknown choice", 'kaa.get("unknown")', error("Unknown name 'unknown'. Known names: activation_l1"))
add(api, "wrong type", "kaa.get(42)", error("Cannot interpret 42 as an object of this package"))
add(api, "wrong type", "kaa.get(keras.layers.Dense)", error("Dense is not one of this package's objects"))
add(api, "wrong type", 'kaa.get({"config": {}})', error("A config dict needs a 'class_name'"))
add(
    api,
    "out of range",
    'kaa.get({"class_name": "CompetitiveReLU", "config": {"scale_bound": -1}})',
    error("Error when deserializing class 'CompetitiveReLU'", TypeError),
)
add(api, "misuse", 'kaa.get("ActivitySparsity")', error("ActivitySparsity has required arguments"))

api = "measure_sparsity"
add(
    api,
    "wrong type",
    'measure_sparsity(relu_model(), "abc")',
    error("`data` must be an array (or a dict / list of arrays)"),
)
add(
    api,
    "wrong type",
    'measure_sparsity(relu_model(), np.ones((4, 2)), layers="relu")',
    error("`layers` must be None or a non-empty list of layers (or their names)"),
)
add(
    api,
    "out of range",
    "measure_sparsity(relu_model(), np.ones((4, 2)), batch_size=0)",
    error("`batch_size` must be a positive integer"),
)
add(
    api,
    "conflicting arguments",
    "measure_sparsity(relu_model(), (batch for batch in [np.ones((4, 2))]), batch_size=2)",
    error("`batch_size` is for array data"),
)
add(
    api,
    "mismatched shapes",
    "measure_sparsity(relu_model(), np.ones((4, 3)))",
    error("is incompatible with the layer: expected shape=(None, 2), found shape=(4, 3)"),
)
add(
    api,
    "NaN input",
    'measure_sparsity(keras.Sequential([keras.Input((2,)), keras.layers.ReLU(name="relu")]), '
    "np.array([[nan, 0.0]]))",
    returns("NaN is not zero: `{'relu': 0.5}`", entries({"relu": 0.5})),
)
add(
    api,
    "all-zero input",
    "measure_sparsity(keras.Sequential([keras.Input((2, 2)), keras.layers.Masking(0.0), "
    'keras.layers.ReLU(name="relu")]), np.array([[[1.0, -1.0], [0.0, 0.0]]]))',
    returns(
        "a masked (padding) time step is not counted: `{'relu': 0.5}` (its zeros would make it 0.75)",
        entries({"relu": 0.5}),
    ),
)
add(
    api,
    "wrong type",
    'measure_sparsity(relu_model(), np.ones((4, 2)), derivative="yes")',
    error("`derivative` must be True or False"),
)
add(
    api,
    "misuse",
    "measure_sparsity(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation='softmax', "
    "name='head')]), np.ones((4, 2)), layers=['head'], derivative=True)",
    error(
        "the derivative sparsity of the layer 'head' is not defined: its activation 'softmax' mixes entries"
    ),
)
add(
    api,
    "NaN input",
    'measure_sparsity(keras.Sequential([keras.Input((2,)), keras.layers.ReLU(name="relu")]), '
    "np.array([[nan, -1.0]]), derivative=True)",
    returns(
        "the derivative the backend's backward pass uses: ReLU's at NaN is 0 on TensorFlow and JAX "
        "(`NaN > 0` is false), so `{'relu': 1.0}`, and 1 on PyTorch, so `{'relu': 0.5}` there; "
        "a NaN derivative (tanh's) would not count",
        entries({"relu": 0.5 if keras.backend.backend() == "torch" else 1.0}),
    ),
)
add(api, "empty data", "measure_sparsity(relu_model(), None)", error("`data` must hold at least one sample"))
add(
    api,
    "empty data",
    "measure_sparsity(relu_model(), np.zeros((0, 2)))",
    error("`data` must hold at least one sample"),
)
add(api, "empty data", "measure_sparsity(relu_model(), ())", error("`data` must not be an empty tuple"))
add(
    api,
    "empty data",
    "measure_sparsity(relu_model(), (batch for batch in []))",
    error("`data` held no samples: there is nothing to measure"),
)
add(
    api,
    "model without the layers",
    "measure_sparsity(dense_model(), np.ones((4, 2)))",
    error("measure_sparsity found no activation layer in the model"),
)
add(
    api,
    "model without the layers",
    'measure_sparsity(relu_model(), np.ones((4, 2)), layers=["nope"])',
    error("has no layer named 'nope'"),
)
add(
    api,
    "unsupported model",
    "measure_sparsity(subclassed_model(), np.ones((4, 2)))",
    error("measure_sparsity reads the layers' outputs from the model's graph, which a subclassed model"),
)
add(
    api,
    "unsupported model",
    "measure_sparsity(keras.Sequential([keras.layers.ReLU()]), np.ones((4, 2)))",
    error("is not built yet, so its layers have no outputs to read"),
)

api = "ops.competitive_relu"
add(
    api,
    "unknown choice",
    'kaa.ops.competitive_relu(np.ones((1, 3)), 0.0, 0.5, competition="max")',
    error("`competition` must be one of ('energy', 'l1', 'count')"),
)
add(
    api,
    "out of range",
    "kaa.ops.competitive_relu(np.ones((1, 3)), 0.0, 0.5, scale_bound=0)",
    error("`scale_bound` must be > 0"),
)
add(
    api,
    "wrong input rank",
    "kaa.ops.competitive_relu(np.ones(3), 0.0, 0.5)",
    error("CompetitiveReLU needs inputs of rank >= 2"),
)
add(
    api,
    "mismatched shapes",
    "kaa.ops.competitive_relu(np.ones((1, 3)), 0.0, 0.5, np.ones((1, 4)))",
    error("The second input (the tensor `p` is measured on) must have the shape of the first"),
)
add(
    api,
    "integer input",
    "kaa.ops.competitive_relu(np.array([[1, 2]]), 0.0, 0.5)",
    error("`x` must be a floating tensor (cast integers first)"),
)
add(
    api,
    "NaN input",
    "kaa.ops.competitive_relu(np.array([[nan, 1.0], [1.0, -1.0]]), 2.0, -1.0)",
    returns("NaN for that sample; the others unchanged", nan_where([[True, True], [False, False]])),
)
add(
    api,
    "all-zero input",
    "kaa.ops.competitive_relu(np.zeros((2, 2)), 2.0, -1.0)",
    returns("zeros, no NaN", close(np.zeros((2, 2)), dtype="float64")),
)

api = "ops.competition_share"
add(api, "out of range", "kaa.ops.competition_share(np.ones((1, 3)), eps=0)", error("`eps` must be > 0"))
add(
    api,
    "wrong input rank",
    "kaa.ops.competition_share(np.ones(3))",
    error("CompetitiveReLU needs inputs of rank >= 2"),
)
add(
    api,
    "integer input",
    "kaa.ops.competition_share(np.array([[1, -2]]))",
    returns("computed in float32: `[[0.2]]`", close([[0.2]])),
)
add(
    api,
    "NaN input",
    "kaa.ops.competition_share(np.array([[nan, 1.0], [1.0, -1.0]]))",
    returns("NaN for that sample", close([[math.nan], [0.5]], dtype="float64")),
)
add(
    api,
    "all-zero input",
    "kaa.ops.competition_share(np.zeros((2, 2)))",
    returns("0, no NaN", close([[0.0], [0.0]], dtype="float64")),
)

api = "ops.competitive_scale"
add(
    api,
    "out of range",
    "kaa.ops.competitive_scale(np.ones((1, 3)), 0.0, 0.5, scale_bound=-1)",
    error("`scale_bound` must be > 0"),
)
add(
    api,
    "all-zero input",
    "kaa.ops.competitive_scale(np.zeros((1, 2)), 2.0, -1.0)",
    returns(
        "finite, no NaN: `s = scale_bound * tanh(beta)` at `p = 0`",
        close([[2 * math.tanh(-1.0)]], dtype=None),
    ),
)

for api in ("ops.hard_tanh", "ops.hard_sigmoid", "ops.j_squared_relu", "ops.lisht", "ops.snake", "ops.tlu"):
    add(
        api,
        "integer input",
        f"kaa.{api}(np.array([-3, 0, 3]))",
        error("`x` must be a floating tensor (cast integers first)"),
    )
add(
    "ops.lisht",
    "NaN input",
    "kaa.ops.lisht(np.array([nan, inf, -inf, 1e30, 0.0]))",
    returns(
        "NaN stays NaN; `+-inf` give `inf`; huge values stay finite",
        close([math.nan, math.inf, math.inf, 1e30, 0.0], dtype=None),
    ),
)
add(
    "ops.snake",
    "NaN input",
    "kaa.ops.snake(np.array([nan, inf, -inf, 1e30, 0.0]))",
    returns(
        "NaN stays NaN; `+-inf` give `+-inf`; huge values stay finite",
        close([math.nan, math.inf, -math.inf, 1e30, 0.0], dtype=None),
    ),
)
add(
    "ops.snake",
    "wrong type",
    "kaa.ops.snake(np.array([1.0]), frequency='a')",
    error("`frequency` must be a number or a tensor"),
)
add(
    "ops.tlu",
    "NaN input",
    "kaa.ops.tlu(np.array([nan, inf, -inf, 1e30, 0.0]))",
    returns(
        "NaN stays NaN; `-inf` gives `tau`; huge values stay finite",
        close([math.nan, math.inf, 0.0, 1e30, 0.0], dtype=None),
    ),
)
add(
    "ops.tlu",
    "wrong type",
    "kaa.ops.tlu(np.array([1.0, -2.0]), tau='0')",
    error("`tau` must be a number or a tensor"),
)
add(
    "ops.hard_tanh",
    "NaN input",
    "kaa.ops.hard_tanh(np.array([nan, inf, -inf, 1e30, 0.0]))",
    returns(
        "NaN stays NaN; `+-inf` and huge values clip to `+-1`", close([math.nan, 1, -1, 1, 0], dtype=None)
    ),
)
add(
    "ops.hard_sigmoid",
    "NaN input",
    "kaa.ops.hard_sigmoid(np.array([nan, inf, -inf, 1e30, 0.0]))",
    returns("NaN stays NaN; `+inf` gives 1, `-inf` 0", close([math.nan, 1, 0, 1, 0.5], dtype=None)),
)
add(
    "ops.j_squared_relu",
    "NaN input",
    "kaa.ops.j_squared_relu(np.array([nan, inf, -inf], 'float32'))",
    returns("NaN stays NaN; `inf` gives `inf`, `-inf` 0", close([math.nan, math.inf, 0.0])),
)
add(
    "ops.j_squared_relu",
    "huge input",
    "kaa.ops.j_squared_relu(np.array([1e30, 2.6e19], 'float32'))",
    returns(
        "`inf` where the true value overflows float32, else finite",
        close([math.inf, 2.6e19 + 0.5 * 2.6e19**2]),
    ),
)

api = "ops.noisy_output"
add(
    api,
    "unknown choice",
    'kaa.ops.noisy_output(np.array([[3.0]]), 1.0, 0.5, base="relu")',
    error("`base` must be one of ('tanh', 'sigmoid')"),
)
add(
    api,
    "NaN input",
    "kaa.ops.noisy_output(np.array([[nan, inf, 0.5]]), 1.0, 0.5)",
    returns(
        "NaN stays NaN; `inf` follows the saturated line to `-inf`",
        close([[math.nan, -math.inf, 0.5]], dtype=None),
    ),
)
api = "ops.noisy_input"
add(
    api,
    "unknown choice",
    'kaa.ops.noisy_input(np.array([[3.0]]), 0.5, np.ones((1, 1)), mode="gaussian")',
    error("`mode` must be one of ('input', 'input_saturated', 'input_learned')"),
)
add(
    api,
    "misuse",
    'kaa.ops.noisy_input(np.array([[3.0]]), 0.5, np.ones((1, 1)), mode="input_learned")',
    error('`mode="input_learned"` needs the per-unit parameter `p`'),
)
add(
    api,
    "NaN input",
    "kaa.ops.noisy_input(np.array([[nan, inf, 0.5]]), 0.5)",
    returns("inference: `h(x)`, NaN stays NaN, `inf` gives 1", close([[math.nan, 1.0, 0.5]], dtype=None)),
)

api = "ops.rrelu"
add(
    api,
    "NaN input",
    "kaa.ops.rrelu(np.array([nan, -inf, inf, -2.0]), 0.25)",
    returns("NaN stays NaN, `+-inf` stay infinite", close([math.nan, -math.inf, math.inf, -0.5], dtype=None)),
)

api = "ops.zero_fraction"
add(
    api,
    "NaN input",
    "kaa.ops.zero_fraction(np.array([0.0, -0.0, nan, 1.0]))",
    returns("NaN is not zero (and `-0.0` is): 0.5", close(0.5)),
)
add(api, "integer input", "kaa.ops.zero_fraction(np.array([0, 1]))", returns("0.5", close(0.5)))
add(api, "empty batch", "kaa.ops.zero_fraction(np.zeros((0,)))", returns("NaN: 0 / 0", close(math.nan)))

api = "ops.l1_penalty"
add(
    api,
    "wrong input rank",
    "kaa.ops.l1_penalty(2.0)",
    error("Sparsity penalties need inputs of rank >= 1 with the batch first"),
)
add(
    api,
    "empty batch",
    "kaa.ops.l1_penalty(np.zeros((0, 3)))",
    returns("0 on every backend: an empty batch adds no loss (no NaN)", close(0.0, dtype=None)),
)
add(
    api,
    "NaN input",
    "kaa.ops.l1_penalty(np.array([[nan, 1.0]]))",
    returns("NaN", close(math.nan, dtype=None)),
)
add(
    api,
    "integer input",
    "kaa.ops.l1_penalty(np.array([[1, -2]]))",
    returns("computed in float32: 3.0", close(3.0)),
)

api = "ops.hoyer_square_penalty"
add(
    api,
    "all-zero input",
    "kaa.ops.hoyer_square_penalty(np.zeros((2, 3)))",
    returns("0, no NaN (`eps` keeps it finite)", close(0.0, dtype=None)),
)
add(
    api,
    "huge input",
    'kaa.ops.hoyer_square_penalty(np.full((1, 3), 1e20, "float32"))',
    returns("3.0: scale-invariant (each example is first divided by its largest magnitude)", close(3.0)),
)
add(
    api,
    "wrong input rank",
    "kaa.ops.hoyer_square_penalty(np.float32(2.0))",
    error("Sparsity penalties need inputs of rank >= 1 with the batch first"),
)
add(
    api,
    "empty batch",
    "kaa.ops.hoyer_square_penalty(np.zeros((0, 3)))",
    returns("0 on every backend: an empty batch adds no loss (no NaN)", close(0.0, dtype=None)),
)

api = "ops.kl_sparsity_penalty"
add(
    api,
    "out of range",
    "kaa.ops.kl_sparsity_penalty(np.full((2, 2), 0.5), 0.0)",
    error("`rho` must be > 0"),
)
add(
    api,
    "out of range",
    "kaa.ops.kl_sparsity_penalty(np.full((2, 2), 0.5), 1.0)",
    error("`rho` must be in (0, 1)"),
)
add(
    api,
    "wrong input rank",
    "kaa.ops.kl_sparsity_penalty(np.float32(0.5), 0.05)",
    error("Sparsity penalties need inputs of rank >= 1 with the batch first"),
)
add(
    api,
    "empty batch",
    "kaa.ops.kl_sparsity_penalty(np.zeros((0, 3)), 0.05)",
    returns(
        "0 on every backend: an empty batch adds no loss (`rho_hat` is undefined)", close(0.0, dtype=None)
    ),
)
add(
    api,
    "all-zero input",
    "kaa.ops.kl_sparsity_penalty(np.zeros((2, 2)), 0.05)",
    returns(
        "finite: the mean activation is clipped to 1e-7", lambda value: bool(np.isfinite(to_numpy(value)))
    ),
)

# ----------------------------------------------------------------------------------------------
# Tools

api = "surgery.swap_activations"
add(
    api,
    "wrong type",
    "kaa.surgery.swap_activations(relu_model(), int)",
    error("`replacement` must be a Layer class or a factory", TypeError),
)
add(
    api,
    "wrong type",
    'kaa.surgery.swap_activations(relu_model(), "competitve_relu")',
    error("Unknown activation 'competitve_relu'; did you mean 'competitive_relu'?"),
)
add(
    api,
    "wrong type",
    'kaa.surgery.swap_activations(relu_model(), lambda activation: "relu")',
    error("The replacement must build a keras Layer. It returned 'relu' for 'relu'", TypeError),
)
add(
    api,
    "wrong type",
    "kaa.surgery.swap_activations(relu_model(), keras.layers.Dense)",
    error("Dense has required arguments"),
)
add(
    api,
    "wrong type",
    'kaa.surgery.swap_activations("model", CompetitiveReLU)',
    error("`model` must be a keras.Model: swap_activations works on Sequential and Functional", TypeError),
)
add(
    api,
    "unknown choice",
    'kaa.surgery.swap_activations(relu_model(), CompetitiveReLU, targets=("softmax",))',
    error("`targets` must name some of ('relu', 'relu6', 'tanh', 'sigmoid', 'gelu', 'silu')"),
)
add(
    api,
    "out of range",
    "kaa.surgery.swap_activations(relu_model(), CompetitiveReLU, targets=())",
    error("`targets` must name some of ('relu', 'relu6', 'tanh', 'sigmoid', 'gelu', 'silu')"),
)
add(
    api,
    "model without the layers",
    "kaa.surgery.swap_activations(dense_model(), CompetitiveReLU)[1].replaced",
    returns("no error: a copy of the model, and a report that replaced nothing", lambda value: value == []),
)
add(
    api,
    "unsupported model",
    "kaa.surgery.swap_activations(subclassed_model(), CompetitiveReLU)",
    error("swap_activations works on Sequential and Functional models", TypeError),
)
add(
    api,
    "unsupported model",
    "kaa.surgery.swap_activations("
    'keras.Sequential([keras.layers.Dense(2, activation="relu")]), CompetitiveReLU)',
    error("swap_activations needs a built model"),
)
add(
    api,
    "unsupported model",
    "kaa.surgery.swap_activations(keras.Sequential("
    '[keras.Input((2,)), keras.layers.Lambda(lambda x: 2 * x, name="double")]), CompetitiveReLU)',
    error("Lambda layers that run Python lambdas: ['double']. Keras copies and loads these only"),
)

api = "narrow.NarrowReLULearner"
learner = "kaa.narrow.NarrowReLULearner"
add(api, "wrong type", f"{learner}(k=2.5)", error("`k` must be an integer"))
add(api, "wrong type", f'{learner}(k=1, refine="yes")', error("`refine` must be True or False"))
add(
    api,
    "unknown argument",
    f"{learner}(k=1).set_params(depth=2)",
    error("Invalid parameter 'depth' for NarrowReLULearner"),
)
add(api, "out of range", f"{learner}(k=0)", error("`k` must be an integer >= 1"))
add(api, "out of range", f"{learner}(k=1, merge_angle=0)", error("`merge_angle` must be > 0"))
add(api, "out of range", f"{learner}(k=1, seed=-1)", error("`seed` must be an integer >= 0"))
add(
    api,
    "non-finite argument",
    f"{learner}(k=1, learning_rate=nan)",
    error("`learning_rate` must be a finite number"),
)
add(
    api,
    "unknown choice",
    f'{learner}(k=1, method="svd")',
    error("`method` must be one of ('contraction', 'jennrich')"),
)
add(
    api,
    "unknown choice",
    f'{learner}(k=1, input_check="strict")',
    error("`input_check` must be one of ('error', 'warn', 'ignore')"),
)
add(
    api,
    "conflicting arguments",
    f"{learner}(k=4).fit(gaussian(200, 3), np.ones(200))",
    error("`k` must be <= the input dimension d=3"),
)
add(
    api,
    "wrong input rank",
    f"{learner}(k=1).fit(gaussian(200, 3)[:, 0], np.ones(200))",
    error("`X` must be 2-D, shape (n_samples, n_features)"),
)
add(
    api,
    "wrong input rank",
    f"{learner}(k=1).fit(gaussian(200, 3), np.ones((200, 2)))",
    error("`y` must be 1-D, shape (n_samples,), one target per row"),
)
add(
    api,
    "mismatched shapes",
    f"{learner}(k=1).fit(gaussian(200, 3), np.ones(199))",
    error("`X` and `y` need the same number of rows"),
)
add(api, "wrong input shape", "fitted_learner().predict(gaussian(5, 2))", error("`X` must have shape (n, 3)"))
add(
    api,
    "wrong input dtype",
    f"{learner}(k=1).fit(gaussian(200, 3).astype(str), np.ones(200))",
    error("`X` must hold real numbers"),
)
add(
    api,
    "NaN input",
    f"{learner}(k=1).fit(with_nan(gaussian(200, 3), row=5), np.ones(200))",
    error("`X` and `y` must be finite; row 5 holds a NaN or an infinity"),
)
add(
    api,
    "all-zero input",
    f"{learner}(k=1).fit(np.zeros((200, 3)), np.ones(200))",
    error(
        "NarrowReLULearner assumes inputs x ~ N(0, I_d), and X does not look like it: "
        "variance of feature 0 is 0"
    ),
)
add(
    api,
    "huge input",
    f"{learner}(k=1).fit(1e30 * gaussian(200, 3), np.ones(200))",
    error("NarrowReLULearner assumes inputs x ~ N(0, I_d), and X does not look like it"),
)
add(
    api,
    "huge input",
    f"{learner}(k=1, refine=False, seed=0).fit(gaussian(200, 3), 1e200 * np.abs(gaussian(200, 3)[:, 0]))"
    f".predict(gaussian(2, 3)) / 1e200 - {learner}(k=1, refine=False, seed=0)"
    ".fit(gaussian(200, 3), np.abs(gaussian(200, 3)[:, 0])).predict(gaussian(2, 3))",
    returns(
        "no error: `1e200 * y` gives `1e200` times the fit of `y` (the learner fits `y / target_scale_`)",
        lambda value: bool(np.allclose(value, 0.0, atol=1e-9)),
    ),
)
add(
    api,
    "all-zero input",
    "fitted_learner().score(gaussian(5, 3), np.zeros(5))",
    returns(
        "`0.0`: R^2 of a constant `y` is undefined; as scikit-learn's `r2_score`, 0.0 (1.0 for an exact "
        "prediction), not NaN",
        lambda value: value == 0.0,
    ),
)
add(
    api,
    "empty data",
    f"{learner}(k=1).fit(gaussian(3, 3), np.ones(3))",
    error("The readout of k=1 needs at least 2k + 2 = 4 samples"),
)
add(
    api,
    "misuse",
    f'{learner}(k=1, refine=False, input_check="warn").fit(gaussian(200, 3) + 5, np.ones(200))',
    Warns(UserWarning, "NarrowReLULearner assumes inputs x ~ N(0, I_d), and X does not look like it"),
)
add(
    api,
    "misuse",
    f"{learner}(k=1).predict(gaussian(5, 3))",
    error("This NarrowReLULearner is not fitted yet: call `fit(X, y)` first"),
)

api = "narrow.planted_network"
add(api, "out of range", "kaa.narrow.planted_network(3, 0)", error("`k` must be an integer >= 1"))
add(
    api,
    "unknown choice",
    'kaa.narrow.planted_network(3, 2, signs="up")',
    error("`signs` must be 'mixed', 'positive'"),
)
add(
    api,
    "conflicting arguments",
    "kaa.narrow.planted_network(3, 2, near_parallel_pairs=2)",
    error("`near_parallel_pairs` needs 2 * pairs <= k"),
)
add(
    api,
    "conflicting arguments",
    "kaa.narrow.planted_network(3, 2, output_scale=(1.0, 0.5))",
    error("`output_scale` must be (low, high) with low <= high"),
)
add(
    api,
    "wrong type",
    "kaa.narrow.planted_network(3, 2, output_scale=1.0)",
    error("`output_scale` must be a pair (low, high)"),
)
add(api, "out of range", "kaa.narrow.planted_network(3, 2, seed=-1)", error("`seed` must be an integer >= 0"))

api = "narrow.ReLUNetwork"
add(
    api,
    "mismatched shapes",
    "kaa.narrow.ReLUNetwork(np.ones((2, 3)), np.ones(3))",
    error("`hidden_weights` must have shape (width, input_dim) and `output_weights` shape (width,)"),
)
add(
    api,
    "non-finite argument",
    "kaa.narrow.ReLUNetwork(np.full((1, 2), nan), np.ones(1))",
    error("A `ReLUNetwork` needs finite weights and bias"),
)
add(
    api,
    "wrong input shape",
    "kaa.narrow.ReLUNetwork(np.ones((2, 3)), np.ones(2))(np.ones((4, 2)))",
    error("Expected inputs of shape (n, 3)"),
)
add(
    api,
    "NaN input",
    "kaa.narrow.ReLUNetwork(np.ones((1, 2)), np.ones(1))(np.array([[nan, 1.0], [1.0, 1.0]]))",
    returns("NaN for that row", close([math.nan, 2.0], dtype="float64")),
)

api = "narrow.relative_population_mse"
add(
    api,
    "misuse",
    "kaa.narrow.relative_population_mse(kaa.narrow.ReLUNetwork(np.zeros((1, 2)), np.zeros(1)), "
    "kaa.narrow.ReLUNetwork(np.ones((1, 2)), np.ones(1)))",
    error("The target network is constant (zero variance): a relative error is undefined"),
)
add(
    api,
    "mismatched shapes",
    "kaa.narrow.relative_population_mse(kaa.narrow.ReLUNetwork(np.ones((1, 2)), np.ones(1)), "
    "kaa.narrow.ReLUNetwork(np.ones((1, 3)), np.ones(1)))",
    error("Both networks need the same input dimension"),
)

api = "narrow.network_from_keras"
add(
    api,
    "unsupported model",
    "kaa.narrow.network_from_keras(dense_model())",
    error("Expected a model of exactly Dense(width, activation='relu', use_bias=False) -> Dense(1)"),
)

api = "narrow.exact.relu_hermite_coefficients"
add(
    api,
    "out of range",
    "kaa.narrow.exact.relu_hermite_coefficients(-1)",
    error("`max_degree` must be an integer >= 0"),
)

api = "narrow.gaussian_check"
add(
    api,
    "wrong input rank",
    "kaa.narrow.gaussian_check(np.ones(5))",
    error("`inputs` must be 2-D, shape (n_samples, n_features)"),
)

api = "tuning.choose_activation"
options = {"needs": "keras_tuner"}
add(
    api,
    "wrong type",
    'kaa.tuning.choose_activation("hp")',
    error("`hp` must be a keras_tuner.HyperParameters"),
    **options,
)
add(
    api,
    "wrong type",
    'kaa.tuning.choose_activation(hp(), "relu")',
    error("`choices` must be a list of activation names"),
    **options,
)
add(
    api,
    "wrong type",
    "kaa.tuning.choose_activation(hp(), [3])",
    error("Activation choices are names (strings)"),
    **options,
)
add(
    api,
    "wrong type",
    'kaa.tuning.choose_activation(hp(), hp_name="")',
    error("`hp_name` must be a non-empty string"),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.tuning.choose_activation(hp(), ["swish"])',
    error("'swish' cannot be a tuning choice: it has no search space"),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.tuning.choose_activation(hp(), ["mixed_activation"])',
    error("'mixed_activation' cannot be a tuning choice"),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.tuning.choose_activation(hp(), ["relu"], default="rrelu")',
    error("`default` must be one of the choices ['relu']"),
    **options,
)
add(
    api,
    "out of range",
    "kaa.tuning.choose_activation(hp(), [])",
    error("`choices` is empty: give at least one activation name"),
    **options,
)
add(
    api,
    "conflicting arguments",
    'kaa.tuning.choose_activation(hp(), ["relu", "ReLU"])',
    error("`choices` names an activation twice"),
    **options,
)
add(
    api,
    "conflicting arguments",
    'kaa.tuning.choose_activation(hp(), ["competitive_relu"], scale_bound=3.0)',
    error("['scale_bound'] are searched for 'competitive_relu'"),
    **options,
)
add(
    api,
    "conflicting arguments",
    'kaa.tuning.choose_activation(hp(), ["competitive_relu", "relu"], axis=0)',
    error("The fixed arguments {'axis': 0} do not suit 'competitive_relu'"),
    **options,
)

api = "tuning.fix_activation"
add(
    api,
    "wrong type",
    'kaa.tuning.fix_activation(None, "relu")',
    error("`hp` must be a keras_tuner.HyperParameters"),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.tuning.fix_activation(hp(), "swish")',
    error("'swish' cannot be a tuning choice: it has no search space"),
    **options,
)
add(
    api,
    "unknown argument",
    'kaa.tuning.fix_activation(hp(), "competitive_relu", alpha=1.0)',
    error(
        "['alpha'] are not searched for 'competitive_relu' "
        "(its searched arguments: competition, scale_bound, init)"
    ),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.tuning.fix_activation(hp(), "competitive_relu", competition="max")',
    error("'competitive_relu' rejects {'competition': 'max'}"),
    **options,
)

api = "export.export_for_serving"
options = {"needs": "tensorflow"}
add(
    api,
    "wrong type",
    'kaa.export.export_for_serving("model", scratch_dir() + "/model/1")',
    error("`model` must be a keras.Model"),
    **options,
)
add(
    api,
    "wrong type",
    'kaa.export.export_for_serving(relu_model(), scratch_dir() + "/model/1", monte_carlo="yes")',
    error("`monte_carlo` must be True or False"),
    **options,
)
add(
    api,
    "wrong type",
    "kaa.export.export_for_serving(relu_model(), 3)",
    error("`path` must be a str or a path (the SavedModel's folder). Received: path=3"),
    **options,
)
add(
    api,
    "unsupported model",
    'kaa.export.export_for_serving(keras.Sequential([keras.Input((2,), name="my input"), '
    'keras.layers.Dense(2)]), scratch_dir() + "/model/1")',
    error("The model's input 'my input' cannot name an input of a SavedModel signature"),
    **options,
)
add(
    api,
    "misuse",
    'kaa.export.export_for_serving(relu_model(), a_file() + "/model/1", overwrite=True)',
    error("is a file, not a folder", NotADirectoryError),
    **options,
)
add(
    api,
    "unsupported model",
    'kaa.export.export_for_serving(subclassed_model(), scratch_dir() + "/model/1")',
    error("export_for_serving needs a Sequential or Functional model"),
    **options,
)
add(
    api,
    "unsupported model",
    'kaa.export.export_for_serving(keras.Sequential([keras.layers.Dense(2)]), scratch_dir() + "/model/1")',
    error("is not built: give it a keras.Input (or call it on a batch) before exporting"),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.export_for_serving(relu_model(), scratch_dir())",
    error("exists: pass overwrite=True to replace it", FileExistsError),
    **options,
)
add(
    api,
    "wrong backend",
    'kaa.export.export_for_serving(relu_model(), scratch_dir() + "/model/1")',
    error("SavedModel export for TF Serving needs the TensorFlow backend", RuntimeError),
    needs="other backend",
)

api = "export.verify_serving"
add(
    api,
    "wrong type",
    'kaa.export.verify_serving(exported(), np.ones((1, 3)), exported_source(), rtol="1e-3")',
    error("`rtol` must be a finite number. Received: rtol='1e-3'"),
    **options,
)
add(
    api,
    "out of range",
    "kaa.export.verify_serving(exported(), np.ones((1, 3)), exported_source(), atol=-1.0)",
    error("`atol` must be >= 0. Received: atol=-1.0"),
    **options,
)
add(
    api,
    "out of range",
    "kaa.export.verify_serving(exported(), np.ones((1, 3)), exported_source(), timeout=0)",
    error("`timeout` must be > 0. Received: timeout=0"),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.verify_serving(scratch_dir(), np.ones((1, 3)), exported_source())",
    error("No SavedModel at", FileNotFoundError),
    **options,
)
add(
    api,
    "unknown choice",
    'kaa.export.verify_serving(exported(), np.ones((1, 3)), exported_source(), signature="monte_carlo")',
    error("The SavedModel has no signature 'monte_carlo'. It has: ['serving_default']"),
    **options,
)
add(
    api,
    "wrong input shape",
    "kaa.export.verify_serving(exported(), np.ones((1, 4)), exported_source())",
    error("The sample for input 'x' has shape (1, 4); the signature expects (None, 3) with at least one row"),
    **options,
)
add(
    api,
    "wrong input dtype",
    'kaa.export.verify_serving(exported(), np.array([["a", "b", "c"]]), exported_source())',
    error("The sample for input 'x' has dtype"),
    **options,
)
add(
    api,
    "mismatched shapes",
    'kaa.export.verify_serving(exported(), {"z": np.ones((1, 3))}, exported_source())',
    error("The sample's inputs ['z'] are not the signature's ['x']"),
    **options,
)
add(
    api,
    "empty batch",
    "kaa.export.verify_serving(exported(), np.ones((0, 3)), exported_source())",
    error("The sample for input 'x' has shape (0, 3); the signature expects (None, 3) with at least one row"),
    **options,
)
add(
    api,
    "conflicting arguments",
    "kaa.export.verify_serving(exported(), np.ones((1, 3)), exported_source(), expected=np.ones((1, 2)))",
    error("Give exactly one reference: `model` (its predict is compared) or `expected` outputs"),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.verify_serving(exported(), np.ones((1, 3)))",
    error("Give exactly one reference: `model` (its predict is compared) or `expected` outputs"),
    **options,
)

api = "export.export_onnx"
options = {"needs": "onnx"}
add(
    api,
    "wrong type",
    'kaa.export.export_onnx("model", scratch_dir() + "/model.onnx")',
    error("`model` must be a keras.Model"),
    **options,
)
add(
    api,
    "wrong type",
    "kaa.export.export_onnx(relu_model(), 3)",
    error("`path` must be a str or a path (the ONNX file to write). Received: path=3"),
    **options,
)
add(
    api,
    "wrong type",
    'kaa.export.export_onnx(relu_model(), scratch_dir() + "/model.onnx", overwrite="yes")',
    error("`overwrite` must be True or False"),
    **options,
)
add(
    api,
    "unsupported model",
    'kaa.export.export_onnx(subclassed_model(), scratch_dir() + "/model.onnx")',
    error("export_onnx needs a Sequential or Functional model"),
    **options,
)
add(
    api,
    "unsupported model",
    'kaa.export.export_onnx(keras.Sequential([keras.layers.Dense(2)]), scratch_dir() + "/model.onnx")',
    error("is not built: give it a keras.Input (or call it on a batch) before exporting"),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.export_onnx(relu_model(), exported_onnx())",
    error("exists: pass overwrite=True to replace it", FileExistsError),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.export_onnx(relu_model(), scratch_dir(), overwrite=True)",
    error("is a directory: give the path of the ONNX file to write", IsADirectoryError),
    **options,
)
add(
    api,
    "wrong backend",
    'kaa.export.export_onnx(relu_model(), scratch_dir() + "/model.onnx")',
    error("ONNX export needs the TensorFlow backend", RuntimeError),
    needs="other backend",
)

api = "export.verify_onnx"
add(
    api,
    "misuse",
    'kaa.export.verify_onnx(scratch_dir() + "/missing.onnx", np.ones((1, 3)), exported_source())',
    error("No ONNX model at", FileNotFoundError),
    **options,
)
add(
    api,
    "misuse",
    'kaa.export.verify_onnx(exported() / "saved_model.pb", np.ones((1, 3)), exported_source())',
    error("is not an ONNX model: it has no graph with outputs"),
    **options,
)
add(
    api,
    "wrong input shape",
    "kaa.export.verify_onnx(exported_onnx(), np.ones((1, 4)), exported_source())",
    error(
        "The sample for input 'x' has shape (1, 4); the ONNX model expects (None, 3) with at least one row"
    ),
    **options,
)
add(
    api,
    "wrong input dtype",
    'kaa.export.verify_onnx(exported_onnx(), np.array([["a", "b", "c"]]), exported_source())',
    error("The sample for input 'x' has dtype <U1; the ONNX model takes float32"),
    **options,
)
add(
    api,
    "mismatched shapes",
    'kaa.export.verify_onnx(exported_onnx(), {"z": np.ones((1, 3))}, exported_source())',
    error("The sample's inputs ['z'] are not the ONNX model's ['x']"),
    **options,
)
add(
    api,
    "empty batch",
    "kaa.export.verify_onnx(exported_onnx(), np.ones((0, 3)), exported_source())",
    error(
        "The sample for input 'x' has shape (0, 3); the ONNX model expects (None, 3) with at least one row"
    ),
    **options,
)
add(
    api,
    "conflicting arguments",
    "kaa.export.verify_onnx(exported_onnx(), np.ones((1, 3)), exported_source(), expected=np.ones((1, 2)))",
    error("Give exactly one reference: `model` (its predict is compared) or `expected` outputs"),
    **options,
)
add(
    api,
    "misuse",
    "kaa.export.verify_onnx(exported_onnx(), np.ones((1, 3)))",
    error("Give exactly one reference: `model` (its predict is compared) or `expected` outputs"),
    **options,
)

# ----------------------------------------------------------------------------------------------
# The page's sections, and the order of their APIs

SECTIONS: dict[str, tuple[str, ...]] = {
    "Layers": (
        "CompetitiveReLU",
        "NoisyHardTanh",
        "NoisyHardSigmoid",
        "RReLU",
        "JSquaredReLU",
        "LiSHT",
        "Snake",
        "TLU",
        "MixedActivation",
        "ActivitySparsity",
        "RestrictedLayerNormalization",
        "SparsifiedMLP",
        "ZerothBias",
        "NoisyLSTMCell",
        "NoisyGRUCell",
    ),
    "Callbacks": (
        "NoiseAnnealing",
        "ActivationMixing",
        "GammaUplift",
        "SparsityMonitor",
        "CompetitionMonitor",
    ),
    "Regularizers": ("ActivationL1", "HoyerSquare", "KLSparsity"),
    "Functions": (
        "get",
        "inference_noise",
        "measure_sparsity",
        "ops.competitive_relu",
        "ops.competition_share",
        "ops.competitive_scale",
        "ops.hard_tanh",
        "ops.hard_sigmoid",
        "ops.noisy_output",
        "ops.noisy_input",
        "ops.rrelu",
        "ops.j_squared_relu",
        "ops.lisht",
        "ops.snake",
        "ops.tlu",
        "ops.zero_fraction",
        "ops.l1_penalty",
        "ops.hoyer_square_penalty",
        "ops.kl_sparsity_penalty",
    ),
    "Tools": (
        "surgery.swap_activations",
        "narrow.NarrowReLULearner",
        "narrow.planted_network",
        "narrow.ReLUNetwork",
        "narrow.relative_population_mse",
        "narrow.network_from_keras",
        "narrow.exact.relu_hermite_coefficients",
        "narrow.gaussian_check",
        "tuning.choose_activation",
        "tuning.fix_activation",
        "export.export_for_serving",
        "export.verify_serving",
        "export.export_onnx",
        "export.verify_onnx",
    ),
}
