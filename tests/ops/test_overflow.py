"""Every op overflows only where its true value does, in float16, bfloat16 and float32.

Each op runs on inputs from 1 up to the dtype's largest value (both signs) and is compared with a
float64 NumPy reference rounded to the dtype: an `inf` where the rounded true value is finite (an
intermediate such as a square overflowing first) fails, as does a NaN. The documented overflow
thresholds of J-SquaredReLU are derived here from the same reference, not written by hand.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import keras
import ml_dtypes
import numpy as np
import pytest
from keras import ops
from noisy_reference import input_noise, output_noise

import keras_adaptive_acts as kaa
from keras_adaptive_acts.ops import (
    competitive_relu,
    hard_sigmoid,
    hard_tanh,
    j_squared_relu,
    noisy_input,
    noisy_output,
    rrelu,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
DTYPES = ("float16", "bfloat16", "float32")
NUMPY_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}
# Relative tolerance: a few units in the last place of each dtype.
RTOL = {"float16": 4 * 2.0**-10, "bfloat16": 4 * 2.0**-7, "float32": 64 * 2.0**-23}


def largest(dtype: str) -> float:
    return float(ml_dtypes.finfo(NUMPY_DTYPES[dtype]).max)


def rounded(values, dtype: str) -> np.ndarray:
    """float64 `values` rounded to `dtype` (inf where they overflow it), back in float64."""
    with np.errstate(over="ignore"):
        return np.asarray(values, "float64").astype(np.float32).astype(NUMPY_DTYPES[dtype]).astype("float64")


def representable_inputs(dtype: str, columns: int = 1, seed: int = 0) -> np.ndarray:
    """Magnitudes from 1 up to the dtype's largest value, log-spaced, random signs, exact in `dtype`."""
    rng = np.random.default_rng(seed)
    magnitudes = np.exp(rng.uniform(0.0, math.log(largest(dtype)), size=(256, columns)))
    magnitudes = np.minimum(magnitudes, largest(dtype))
    signs = rng.choice([-1.0, 1.0], size=magnitudes.shape)
    return rounded(signs * magnitudes, dtype)


def assert_overflows_only_where_the_true_value_does(actual, reference, dtype: str) -> None:
    actual = np.asarray(ops.convert_to_numpy(ops.cast(actual, "float32")), "float64")
    expected = rounded(reference, dtype)
    assert not np.isnan(actual[~np.isnan(expected)]).any(), f"NaN where the true value is a number ({dtype})"
    # Within a rounding of the dtype's largest value, either answer is right.
    at_the_edge = np.abs(reference) >= largest(dtype) * (1 - RTOL[dtype])
    wrong = (np.isinf(actual) != np.isinf(expected)) & ~at_the_edge
    assert not wrong.any(), (
        f"{dtype}: {int(wrong.sum())} entries overflow differently from the true value, e.g. "
        f"true {reference[wrong][:3]} gave {actual[wrong][:3]}"
    )
    both_finite = np.isfinite(actual) & np.isfinite(expected)
    # atol: the bounded ops cancel terms of size 1 (h - (1 - alpha) * delta), losing absolute precision.
    np.testing.assert_allclose(actual[both_finite], expected[both_finite], rtol=RTOL[dtype], atol=RTOL[dtype])


def in_dtype(values, dtype: str):
    return ops.cast(ops.convert_to_tensor(np.asarray(values, "float32")), dtype)


def competitive_reference(x, alpha, beta, competition, scale_bound=2.0, eps=1e-6):
    """CAReLU per the spec in float64, one slice per row."""
    positive = np.maximum(x, 0)
    if competition == "energy":
        share = np.sum(positive**2, axis=1, keepdims=True) / (np.sum(x**2, axis=1, keepdims=True) + eps)
    elif competition == "l1":
        share = np.sum(positive, axis=1, keepdims=True) / (np.sum(np.abs(x), axis=1, keepdims=True) + eps)
    else:
        share = np.mean(x > 0, axis=1, keepdims=True)
    return np.maximum(scale_bound * np.tanh(alpha * share + beta) * x, 0)


XI = 0.7  # a fixed noise draw: the noise formulas are deterministic given xi

ELEMENTWISE = {
    "j_squared_relu": (j_squared_relu, lambda x: np.maximum(x, 0) + 0.5 * np.maximum(x, 0) ** 2),
    "hard_tanh": (hard_tanh, lambda x: np.clip(x, -1, 1)),
    "hard_sigmoid": (hard_sigmoid, lambda x: np.clip(0.25 * x + 0.5, 0, 1)),
    "rrelu": (lambda x: rrelu(x, 0.3), lambda x: np.where(x >= 0, x, 0.3 * x)),
    "noisy_output": (
        lambda x: noisy_output(x, 1.0, 0.5, ops.full_like(x, XI), alpha=1.15),
        lambda x: output_noise(x, 1.0, 0.5, XI, "tanh", 1.15, False),
    ),
    "noisy_output_sigmoid_half_normal": (
        lambda x: noisy_output(
            x, 1.0, 0.5, ops.full_like(x, XI), base="sigmoid", alpha=0.9, half_normal=True
        ),
        lambda x: output_noise(x, 1.0, 0.5, XI, "sigmoid", 0.9, True),
    ),
    "noisy_input": (
        lambda x: noisy_input(x, 0.25, ops.full_like(x, XI)),
        lambda x: input_noise(x, 0.25, XI, "tanh", "input", 1.0),
    ),
    "noisy_input_learned": (
        lambda x: noisy_input(x, 0.25, ops.full_like(x, XI), mode="input_learned", p=1.0),
        lambda x: input_noise(x, 0.25, XI, "tanh", "input_learned", 1.0, p=1.0),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_ops_overflow_only_where_the_true_value_does(name, dtype):
    function, reference = ELEMENTWISE[name]
    x = representable_inputs(dtype)
    with np.errstate(over="ignore"):
        expected = reference(x)
    assert_overflows_only_where_the_true_value_does(function(in_dtype(x, dtype)), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("competition", ("energy", "l1", "count"))
def test_competitive_relu_overflows_only_where_the_true_value_does(competition, dtype):
    # Rows of 8 entries mixing all magnitudes: the sums of the share must not overflow although the
    # share itself is bounded (before the fix, energy was NaN for any row with an entry above 1.8e19).
    x = representable_inputs(dtype, columns=8, seed=1)
    expected = competitive_reference(x, 2.0, -1.0, competition=competition)
    actual = competitive_relu(in_dtype(x, dtype), 2.0, -1.0, competition=competition)
    assert_overflows_only_where_the_true_value_does(actual, expected, dtype)


@pytest.mark.parametrize("competition", ("energy", "l1"))
def test_competitive_relu_gradients_stay_finite_for_huge_finite_inputs(competition):
    # alpha's gradient: sum over winners of x * K (1 - tanh^2) * p; with rows scaled to about 1e20 the
    # true value is about 1e20 times that of the same rows at scale 1, finite in float32.
    rows = np.array([[3.0, -1.0, 0.5, 2.0], [-2.0, 1.0, 0.25, -0.5]], "float32")
    layer = kaa.CompetitiveReLU(competition=competition, init="competition")
    layer.build(rows.shape)

    def gradients(x):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = ops.sum(layer(x))
        return [float(g) for g in tape.gradient(loss, layer.trainable_weights)]

    if keras.backend.backend() != "tensorflow":
        pytest.skip(
            "uses tf.GradientTape; the op's gradient is checked on every backend in test_competitive.py"
        )
    small, huge = gradients(rows), gradients(rows * 1e20)
    np.testing.assert_allclose(huge, np.array(small) * 1e20, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# J-SquaredReLU's overflow threshold, derived per dtype and compared with what the docs say


def j_squared_relu_threshold(dtype: str) -> float:
    """The largest input of `dtype` whose J-SquaredReLU output is finite, by bisection over the dtype."""
    numpy_dtype = NUMPY_DTYPES[dtype]
    low, high = 1.0, largest(dtype)  # finite at 1, inf at the largest value
    for _ in range(200):
        middle = float(np.asarray(math.sqrt(low * high)).astype(numpy_dtype))
        if middle in (low, high):
            # Neighbours on the log scale: walk the few representable values between them.
            candidates = np.unique(rounded(np.linspace(low, high, 64), dtype))
            outputs = ops.convert_to_numpy(ops.cast(j_squared_relu(in_dtype(candidates, dtype)), "float32"))
            return float(candidates[np.isfinite(outputs)].max())
        output = ops.convert_to_numpy(ops.cast(j_squared_relu(in_dtype([middle], dtype)), "float32"))[0]
        low, high = (middle, high) if np.isfinite(output) else (low, middle)
    raise AssertionError("bisection did not converge")


def true_threshold(dtype: str) -> float:
    """The input where x + x**2 / 2 reaches the dtype's largest value: -1 + sqrt(1 + 2 * max)."""
    return -1.0 + math.sqrt(1.0 + 2.0 * largest(dtype))


def about(value: float) -> str:
    """How the docs write a threshold: a whole number below 10000, else three figures ("2.61e19")."""
    if value < 1e4:
        return str(round(value))
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_j_squared_relu_is_finite_up_to_its_true_threshold(dtype):
    threshold = j_squared_relu_threshold(dtype)
    # Within one unit in the last place of the true threshold (where the rounding of x + x**2/2 decides).
    assert threshold == pytest.approx(true_threshold(dtype), rel=2 * RTOL[dtype] / 4)
    just_above = np.nextafter(np.float32(threshold), np.float32(np.inf)) if dtype == "float32" else None
    if just_above is not None:
        assert not np.isfinite(ops.convert_to_numpy(j_squared_relu(in_dtype([just_above], dtype)))[0]), (
            "the next float32 after the threshold should overflow"
        )


def documented_thresholds(text: str) -> dict[str, str]:
    """The mixed-precision guide's table rows `| dtype | largest value | threshold |`."""
    rows = re.findall(
        r"^ *\| `?(float16|bfloat16|float32)`? \| [^|]+ \| about ([0-9.e]+) \|", text, re.MULTILINE
    )
    return dict(rows)


def test_the_documented_thresholds_are_the_derived_ones():
    derived = {dtype: about(j_squared_relu_threshold(dtype)) for dtype in DTYPES}
    guide = (DOCS / "guides" / "mixed-precision.md").read_text()
    assert documented_thresholds(guide) == derived, "update the table in docs/guides/mixed-precision.md"
    layer_page = (DOCS / "layers" / "activation-sparsity.md").read_text()
    sentence = (
        f"`inf` above about {derived['float32']} (float16: about {derived['float16']}; "
        f"bfloat16: about {derived['bfloat16']}"
    )
    assert sentence in layer_page, f"docs/layers/activation-sparsity.md should say: {sentence!r}"
    bad_input = (DOCS / "bad-input.md").read_text()
    assert f"`inf` above about {derived['float32']}" in bad_input, "the JSquaredReLU huge-input row"
