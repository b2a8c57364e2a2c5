"""Every layer of the package checked and timed on the default device, and the small CNN's training step.

The benchmark for the lent GPU machine, which has JAX and PyTorch but no TensorFlow (and no network):
Keras runs on its JAX backend (steps compiled by `jax.jit`), or with `--backend torch` on its PyTorch
backend (eager steps, as Keras' PyTorch `fit` runs by default); `device_runtimes.py` holds what differs
between the two, and `device_report.py` writes the report from the results alone. Nothing here
imports TensorFlow, not even through Keras. On a machine without a GPU it runs on the CPU, and says
so: its figures are then marked CPU, never GPU. In one run:

1. Every public layer (the layers of `keras_adaptive_acts.__all__`), built at a benchmark shape
   ((64, 32, 32, 64) float32 for the activations), is checked on the device against a float64 NumPy
   reference computed on the CPU (`device_references.py`, written from the papers' formulas): its
   forward output and its gradient with respect to the input, as relative errors against stated
   float32 tolerances. Noisy layers are checked on their inference path, and on their training path
   with the noise switched off by their own arguments (`c=0`; `lower == upper` for RReLU). Layers
   built on matrix products (SparsifiedMLP, the recurrent cells) are checked on a small input with
   float32 matrix products (on a GPU, JAX's default precision for them may be TF32), their gradient
   by finite differences.
2. Each layer's forward (`training=True`) + backward (gradients with respect to the input and the
   weights, for a fixed upstream gradient), jitted on JAX, is timed against Keras' `ReLU` on the same
   input, in the same run: medians of interleaved repetitions, each of several back-to-back calls
   ended by waiting for the device (`jax.block_until_ready`, `torch.cuda.synchronize`), warm-up
   calls excluded, inputs rotating among sets larger together than the GPU's L2 cache; a call doing
   almost nothing gives the dispatch floor, which the report sets beside ReLU's time. The MLP block
   and the recurrent cells are also timed against their Keras counterparts (Dense/ReLU/Dense with
   LayerNormalization, `LSTMCell`, `GRUCell`), the baselines they are judged against. Target: at
   most 1.3x the baseline. CompetitiveReLU's floor (`competition_floor.py`: the least work any exact
   competition does) is timed beside them as a reference row, as on the CPU. On JAX, each row's
   compiled step is also read (`hlo_census.py`): the bytes its operations read and write, against
   ReLU's and, for CompetitiveReLU, against the floor's, and its passes over the input; with
   `--hlo`, its optimized HLO is written too. Whether XLA fused CompetitiveReLU's reductions with what
   produces their terms can so be read from one run, without a second call on the device.
3. The small CNN of `activation_speed.py` (three Conv2D blocks of 32/64/128 filters, each conv ->
   activation -> max-pool, then global average pooling and Dense(10); batch 128 of 32x32x3) is
   trained step by step with ReLU, CompetitiveReLU and CompetitiveReLU(axis=(1, 2)), and with the
   floor per sample and per channel as reference rows: the step `fit` compiles on JAX
   (`stateless_call`, the loss, `optimizer.stateless_apply`, under `jax.jit`), or the eager step of
   Keras' PyTorch `fit`, timed without Keras' per-batch Python around it. Target: at most 1.05x ReLU.
   On JAX each model's compiled step is read as the layers' are (bytes against ReLU's model, passes).

The exit status is 1 if a correctness check failed (or a layer could not be built or timed, or
TensorFlow was imported); the JSON and Markdown files are written in any case: once after step 2,
with the CNN step reported as not measured (what a run stopped by a time limit leaves), and again,
whole, at the end. Speed targets missed are verdicts in the report, not failures.

On the device machine (see "How these figures are made" in docs/benchmarks.md for the one call):

    python3 benchmarks/device_speed.py --json $OUT/device_speed.json --markdown $OUT/device_speed.md \
        --hlo $OUT/device_hlo.tar.gz
    python3 benchmarks/device_speed.py --backend torch --json $OUT/device_speed_torch.json

Usage:
    python benchmarks/device_speed.py [--backend {jax,torch}] [--quick] [--repeats N] [--warmup N]
        [--calls N] [--json PATH] [--markdown PATH] [--hlo PATH]

`--quick` shrinks every shape for a smoke run (about a minute on a 2-core CPU, most of it compiling);
its figures mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import os
import pathlib
import platform
import re
import shlex
import statistics
import sys
import tarfile
import time
import traceback
from collections.abc import Callable

BACKENDS = ("jax", "torch")


def backend_argument(argv) -> str:
    """The `--backend` given (default "jax"), read before Keras is imported: Keras reads its backend
    once, when first imported, whatever the environment says later. An unknown value is left to
    argparse to refuse, with JAX set meanwhile."""
    for index, argument in enumerate(argv):
        if argument == "--backend" and index + 1 < len(argv):
            return argv[index + 1] if argv[index + 1] in BACKENDS else "jax"
        if argument.startswith("--backend="):
            value = argument.split("=", 1)[1]
            return value if value in BACKENDS else "jax"
    return "jax"


# The lent GPU machine has no TensorFlow, and this benchmark must not need it: Keras runs on JAX, or
# on PyTorch with --backend torch.
os.environ["KERAS_BACKEND"] = backend_argument(sys.argv[1:])
HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
# The package comes from this working tree (the device machine does not install it); the references
# sit beside this file.
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import device_references as references  # noqa: E402
import hlo_census  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from competition_floor import FLOOR, FLOOR_PER_CHANNEL, FloorActivation  # noqa: E402
from device_report import check_passed, failures_of, markdown_report, section_markdown, summary_line  # noqa: E402
from device_runtimes import RUNTIMES  # noqa: E402

import keras_adaptive_acts as kaa  # noqa: E402
from keras_adaptive_acts.regularizers import HoyerSquare  # noqa: E402

# What differs between JAX and PyTorch (device arrays, waiting, the gradient step, the CNN step).
RUNTIME = RUNTIMES[os.environ["KERAS_BACKEND"]]()

FULL = {
    "image": (64, 32, 32, 64),  # the activations, as in activation_speed.py
    "sequence": (64, 1024, 64),  # ZerothBias: (batch, length, d_model), as many entries as "image"
    "mlp": (64, 256, 64),  # SparsifiedMLP and its Keras counterpart
    "recurrent": (64, 128, 64),  # the recurrent cells in keras.layers.RNN: (batch, steps, features)
    "hidden_units": 256,
    "recurrent_units": 64,
    "cnn_batch": 128,
    "cnn_image": 32,
    # Four (input, upstream) pairs of 16 MB each: 128 MB, more than the L2 cache of an H100
    # (50 MB) or an H200 (60 MB).
    "input_sets": 4,
}
QUICK = {
    "image": (2, 4, 4, 8),
    "sequence": (2, 16, 8),
    "mlp": (2, 8, 8),
    "recurrent": (2, 5, 4),
    "hidden_units": 16,
    "recurrent_units": 4,
    "cnn_batch": 4,
    "cnn_image": 8,
    "input_sets": 2,
}
# The layers built on matrix products are checked on these (finite differences entry by entry).
SMALL_CHECK = {"mlp": (2, 6, 8), "recurrent": (3, 5, 4), "hidden_units": 16, "recurrent_units": 6}
DEFAULT_TIMING = {
    "full": {"repeats": 30, "warmup": 3, "calls": 10},
    "quick": {"repeats": 3, "warmup": 1, "calls": 2},
}
TARGETS = {"layer": 1.3, "cnn": 1.05}
# A strength that makes the penalty's input gradient about as large as the upstream one (at batch 64),
# so that the check sees it.
HOYER_STRENGTH = 64.0
# The page's sections a report fills (`run_all.py --from-json` writes them as "<name>-gpu"): on JAX
# the rows go to the sections of their layers; on PyTorch the whole report is one section.
SECTION_NAMES = {"jax": ("activation_speed", "noisy_speed", "device_speed"), "torch": ("device_speed_torch",)}


# ---------------------------------------------------------------------------------------------
# References: what each layer must compute, in float64 on the CPU
# ---------------------------------------------------------------------------------------------


def value(variable) -> np.ndarray:
    """A Keras variable's value as a float64 NumPy array (the reference reads the layer's weights)."""
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype="float64")


@dataclasses.dataclass
class Elementwise:
    """A reference for an elementwise function: its gradient is upstream times f' by central differences."""

    function: Callable
    method: str = "elementwise central differences"

    def evaluate(self, x, upstream):
        derivative, mask = references.elementwise_derivative(self.function, x)
        return self.function(x), upstream * derivative, mask


@dataclasses.dataclass
class Analytic:
    """A reference with a hand-written vector-Jacobian product (checked by `references.self_check`)."""

    function: Callable
    vjp: Callable
    method: str = "hand-written (checked by differences)"

    def evaluate(self, x, upstream):
        return self.function(x), self.vjp(x, upstream), None


@dataclasses.dataclass
class FiniteDifference:
    """A reference whose gradient is central differences of sum(upstream * f(x)), entry by entry."""

    function: Callable
    method: str = "central differences per entry"

    def evaluate(self, x, upstream):
        gradient, mask = references.finite_difference_gradient(
            lambda v: float(np.sum(upstream * self.function(v))), x
        )
        return self.function(x), gradient, mask


def unit_function(unit) -> Callable:
    """The deterministic function of a NoisyHardTanh / NoisyHardSigmoid layer (or a cell's unit), as
    the paper defines it, with the layer's own settings and weights."""
    p = value(unit.p) if unit.uses_p else None
    return references.noisy_unit(
        unit.base, unit.noise, unit.alpha, unit.half_normal, unit.clip_output, p, float(value(unit.c))
    )


def snake_reference(layer):
    frequency = float(value(layer.frequency))
    return Elementwise(lambda x: references.snake(x, frequency))


def tlu_reference(layer):
    tau, alpha = value(layer.tau), value(layer.alpha)
    return Elementwise(lambda x: references.tlu(x, tau, alpha))


def mixed_activation_reference(layer):
    """(1 - t) * relu + t * j_squared_relu: the blend of the row's two named activations."""
    t = float(value(layer.t))
    return Elementwise(lambda x: (1 - t) * references.relu(x) + t * references.j_squared_relu(x))


def competitive_reference(layer):
    def arguments(x):
        axes = tuple(range(1, x.ndim)) if layer.axis is None else tuple(a % x.ndim for a in layer.axis)
        alpha, beta = float(value(layer.alpha)), float(value(layer.beta))
        return alpha, beta, layer.competition, layer.scale_bound, layer.eps, axes

    return Analytic(
        lambda x: references.competitive_relu(x, *arguments(x)),
        lambda x, g: references.competitive_relu_vjp(x, g, *arguments(x)),
    )


def layer_normalization_reference(layer):
    gamma, epsilon = value(layer.gamma), layer.epsilon
    return Analytic(
        lambda x: references.layer_normalization(x, gamma, epsilon),
        lambda x, g: references.layer_normalization_vjp(x, g, gamma, epsilon),
    )


def activity_sparsity_reference(layer):
    strength = layer.regularizer.strength
    return Analytic(lambda x: x, lambda x, g: g + strength * references.hoyer_square_gradient(x))


def zeroth_bias_reference(layer):
    bias = value(layer.b0)
    return Analytic(lambda x: x + bias[: x.shape[1]], lambda x, g: g)


def sparsified_mlp_reference(block):
    weights = (
        value(block.norm.gamma),
        block.norm.epsilon,
        value(block.zeroth_bias.b0),
        value(block.fc1.kernel),
        value(block.fc1.bias),
        references.j_squared_relu,
        value(block.fc2.kernel),
        value(block.fc2.bias),
    )
    return FiniteDifference(lambda x: references.sparsified_mlp(x, *weights))


def lstm_reference(rnn):
    cell = rnn.cell
    units = [unit_function(unit) for unit in cell.noisy_units]
    weights = value(cell.kernel), value(cell.recurrent_kernel), value(cell.bias)
    return FiniteDifference(lambda x: references.lstm_sequence(x, *weights, units))


def gru_reference(rnn):
    cell = rnn.cell
    units = [unit_function(unit) for unit in cell.noisy_units]
    weights = value(cell.kernel), value(cell.recurrent_kernel), value(cell.bias)
    return FiniteDifference(lambda x: references.gru_sequence(x, *weights, units))


# ---------------------------------------------------------------------------------------------
# The rows: every public layer, and the baselines they are judged against
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the tables: a layer as timed, how to check it, and what it is compared with."""

    name: str
    make: Callable[[dict], keras.layers.Layer]  # sizes -> a new, unbuilt layer
    shape: str  # "image", "sequence", "mlp" or "recurrent" (a key of FULL / QUICK)
    covers: str | None = None  # the public class this row measures; None for a baseline
    reference: Callable | None = None  # layer -> Elementwise / Analytic / FiniteDifference
    baseline: str | None = "ReLU"  # the row whose time is this one's target
    # Noisy layers: the same layer with its noise off by its own arguments, checked with training=True.
    make_quiet: Callable[[dict], keras.layers.Layer] | None = None
    small_check: bool = False  # matrix products: checked at SMALL_CHECK with float32 matrix products
    prepare: Callable | None = None  # (layer, rng): sets weights whose initial values are trivial


def relu_baseline(shape):
    return Case(
        relu_name(shape),
        lambda sizes: keras.layers.ReLU(),
        shape,
        reference=lambda layer: Elementwise(references.relu),
        baseline=None,
    )


def relu_name(shape):
    return "ReLU" if shape == "image" else f"ReLU ({shape} input)"


def randomize(rng, *variables, low=-0.1, high=0.1):
    for variable in variables:
        variable.assign(rng.uniform(low, high, size=variable.shape).astype("float32"))


def prepare_sparsified_mlp(block, rng):
    randomize(rng, block.norm.gamma, low=1.0, high=2.0)
    randomize(rng, block.zeroth_bias.b0, block.fc1.bias, block.fc2.bias)


def keras_mlp_block(sizes):
    """The MLP block of a transformer from Keras layers alone: SparsifiedMLP's counterpart."""
    shape = sizes["mlp"]
    inputs = keras.Input(shape[1:], batch_size=shape[0])
    hidden = keras.layers.LayerNormalization(epsilon=1e-6)(inputs)
    hidden = keras.layers.Dense(sizes["hidden_units"])(hidden)
    hidden = keras.layers.Dense(shape[-1])(keras.layers.ReLU()(hidden))
    return keras.Model(inputs, keras.layers.Add()([inputs, hidden]), name="keras_mlp_block")


def rnn(cell):
    return keras.layers.RNN(cell, return_sequences=True)


def noisy_activation_reference(layer):
    return Elementwise(unit_function(layer))


def noisy_case(name, layer_class, make, make_quiet):
    return Case(name, make, "image", layer_class, noisy_activation_reference, make_quiet=make_quiet)


def noisy_hard_tanh_cases():
    """NoisyHardTanh in each of the paper's noise modes, as noisy_speed.py times them."""
    modes = {
        "NAN": {},
        "NAH": {"half_normal": True},
        "NANI": {"noise": "input"},
        "NANIS": {"noise": "input_saturated"},
        "NANIL": {"noise": "input_learned"},
    }
    cases = []
    for label, arguments in modes.items():
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
        cases.append(
            noisy_case(
                f"NoisyHardTanh({shown}) ({label})" if shown else f"NoisyHardTanh() ({label})",
                "NoisyHardTanh",
                lambda sizes, a=arguments: kaa.NoisyHardTanh(seed=1, **a),
                lambda sizes, a=arguments: kaa.NoisyHardTanh(seed=1, c=0.0, **a),
            )
        )
    return cases


def cases() -> list[Case]:
    """Every row, baselines first (the order of the tables)."""
    initializer = keras.initializers
    competitive = {
        "alpha_initializer": initializer.Constant(1.5),
        "beta_initializer": initializer.Constant(0.2),
    }
    rows = [relu_baseline(shape) for shape in ("image", "sequence", "mlp", "recurrent")]
    rows += [
        Case(
            "Keras MLP block (LayerNormalization, Dense, ReLU, Dense, residual)",
            keras_mlp_block,
            "mlp",
            baseline=None,
        ),
        Case(
            "keras.layers.LSTMCell in RNN",
            lambda sizes: rnn(keras.layers.LSTMCell(sizes["recurrent_units"])),
            "recurrent",
            baseline=None,
        ),
        Case(
            "keras.layers.GRUCell in RNN",
            lambda sizes: rnn(keras.layers.GRUCell(sizes["recurrent_units"])),
            "recurrent",
            baseline=None,
        ),
    ]
    # alpha = 1.5, beta = 0.2: s = 2 tanh(1.5 p + 0.2) is far from ReLU's identity (alpha = 0), so the
    # gradient through the share p is checked too, and far from 0 (no cancellation in s).
    for label, arguments in (
        ("CompetitiveReLU(energy)", {}),
        ("CompetitiveReLU(l1)", {"competition": "l1"}),
        ("CompetitiveReLU(count)", {"competition": "count"}),
        ("CompetitiveReLU(energy, axis=(1, 2))", {"axis": (1, 2)}),
    ):
        rows.append(
            Case(
                label,
                lambda sizes, a=arguments: kaa.CompetitiveReLU(**competitive, **a),
                "image",
                "CompetitiveReLU",
                competitive_reference,
            )
        )
    # The least work any exact competition does (a reference row, not a layer of the package): the
    # CompetitiveReLU rows are read against it, as on the CPU.
    rows.append(Case(FLOOR, lambda sizes: FloorActivation(), "image", baseline=None))
    rows += [
        Case(
            "JSquaredReLU()",
            lambda sizes: kaa.JSquaredReLU(),
            "image",
            "JSquaredReLU",
            lambda layer: Elementwise(references.j_squared_relu),
        ),
        Case(
            "LiSHT()",
            lambda sizes: kaa.LiSHT(),
            "image",
            "LiSHT",
            lambda layer: Elementwise(references.lisht),
        ),
        Case(
            "Snake()",
            lambda sizes: kaa.Snake(),
            "image",
            "Snake",
            snake_reference,
        ),
        Case(
            "TLU(affine=True)",
            lambda sizes: kaa.TLU(
                affine=True,
                tau_initializer=initializer.RandomUniform(-0.5, 0.0, seed=2),
                alpha_initializer=initializer.RandomUniform(0.0, 0.3, seed=3),
            ),
            "image",
            "TLU",
            tlu_reference,
        ),
        Case(
            'MixedActivation("relu", "j_squared_relu", t=0.5)',
            lambda sizes: kaa.MixedActivation("relu", "j_squared_relu", t=0.5),
            "image",
            "MixedActivation",
            mixed_activation_reference,
        ),
        Case(
            f"ActivitySparsity(HoyerSquare({HOYER_STRENGTH:g}))",
            lambda sizes: kaa.ActivitySparsity(HoyerSquare(HOYER_STRENGTH)),
            "image",
            "ActivitySparsity",
            activity_sparsity_reference,
        ),
        Case(
            "RestrictedLayerNormalization()",
            lambda sizes: kaa.RestrictedLayerNormalization(
                gamma_initializer=initializer.RandomUniform(1.0, 2.0, seed=4)
            ),
            "image",
            "RestrictedLayerNormalization",
            layer_normalization_reference,
        ),
        Case(
            "ZerothBias(max_len=length)",
            lambda sizes: kaa.ZerothBias(max_len=sizes["sequence"][1]),
            "sequence",
            "ZerothBias",
            zeroth_bias_reference,
            baseline=relu_name("sequence"),
            prepare=lambda layer, rng: randomize(rng, layer.b0),
        ),
    ]
    rows += noisy_hard_tanh_cases()
    rows += [
        noisy_case(
            "NoisyHardSigmoid() (NAH)",
            "NoisyHardSigmoid",
            lambda sizes: kaa.NoisyHardSigmoid(seed=5),
            lambda sizes: kaa.NoisyHardSigmoid(seed=5, c=0.0),
        ),
        Case(
            "RReLU()",
            lambda sizes: kaa.RReLU(seed=6),
            "image",
            "RReLU",
            lambda layer: Elementwise(lambda x: references.rrelu(x, (layer.lower + layer.upper) / 2)),
            make_quiet=lambda sizes: kaa.RReLU(lower=0.2, upper=0.2, seed=6),
        ),
        Case(
            "SparsifiedMLP(hidden_units, max_len=length)",
            lambda sizes: kaa.SparsifiedMLP(hidden_units=sizes["hidden_units"], max_len=sizes["mlp"][1]),
            "mlp",
            "SparsifiedMLP",
            sparsified_mlp_reference,
            baseline="Keras MLP block (LayerNormalization, Dense, ReLU, Dense, residual)",
            small_check=True,
            prepare=prepare_sparsified_mlp,
        ),
        Case(
            "NoisyLSTMCell(units) in RNN",
            lambda sizes: rnn(kaa.NoisyLSTMCell(sizes["recurrent_units"], seed=7)),
            "recurrent",
            "NoisyLSTMCell",
            lstm_reference,
            baseline="keras.layers.LSTMCell in RNN",
            make_quiet=lambda sizes: rnn(
                kaa.NoisyLSTMCell(sizes["recurrent_units"], seed=7, gate_c=0.0, activation_c=0.0)
            ),
            small_check=True,
        ),
        Case(
            "NoisyGRUCell(units) in RNN",
            lambda sizes: rnn(kaa.NoisyGRUCell(sizes["recurrent_units"], seed=8)),
            "recurrent",
            "NoisyGRUCell",
            gru_reference,
            baseline="keras.layers.GRUCell in RNN",
            make_quiet=lambda sizes: rnn(
                kaa.NoisyGRUCell(sizes["recurrent_units"], seed=8, gate_c=0.0, activation_c=0.0)
            ),
            small_check=True,
        ),
    ]
    return rows


def public_layer_classes() -> list[str]:
    """The names of the layer classes in `keras_adaptive_acts.__all__`: every one needs a row."""
    return sorted(
        name
        for name in kaa.__all__
        if isinstance(getattr(kaa, name), type) and issubclass(getattr(kaa, name), keras.layers.Layer)
    )


# ---------------------------------------------------------------------------------------------
# Building, stepping and checking on the device
# ---------------------------------------------------------------------------------------------


def build_model(layer, shape, rng, prepare=None) -> keras.Model:
    """`layer` alone in a Sequential model of fixed input shape (which passes `training` to it)."""
    model = keras.Sequential([keras.Input(shape[1:], batch_size=shape[0]), layer])
    if prepare is not None:
        prepare(layer, rng)
    return model


def model_state(model):
    return RUNTIME.model_state(model)


def gradient_step(model, training: bool):
    """The framework's forward + backward step (see `device_runtimes`): (output, input gradient,
    weight gradients, new non-trainable state) for a fixed upstream gradient."""
    return RUNTIME.gradient_step(model, training)


class Inputs:
    """Standard normal float32 arrays by shape and role ("input" or "upstream"), `count` of each on the
    device (rotated while timing); the first of each also as a NumPy array, for the references."""

    def __init__(self, count, seed=0):
        self.count = count
        self.rng = np.random.default_rng(seed)
        self.host_arrays, self.device_arrays = {}, {}

    def _make(self, key):
        if key not in self.host_arrays:
            arrays = [self.rng.standard_normal(key[1], dtype=np.float32) for _ in range(self.count)]
            self.host_arrays[key] = arrays[0]
            self.device_arrays[key] = [RUNTIME.array(array) for array in arrays]
        return key

    def host(self, shape, role="input"):
        return self.host_arrays[self._make((role, tuple(shape)))]

    def device(self, shape, role="input"):
        return self.device_arrays[self._make((role, tuple(shape)))]


def check_path(label, model, layer, case, step, x, upstream, small) -> dict:
    """Runs `step` on (x, upstream) and compares output and input gradient with the case's reference."""
    trainable, non_trainable = model_state(model)
    y, input_gradient, _, _ = RUNTIME.wait(
        step(trainable, non_trainable, RUNTIME.array(x), RUNTIME.array(upstream))
    )
    reference = case.reference(layer)
    x64, upstream64 = x.astype("float64"), upstream.astype("float64")
    forward, gradient, mask = reference.evaluate(x64, upstream64)
    suffix = ", matrix products" if small else ""
    return {
        "path": label,
        "input_shape": list(x.shape),
        "gradient_reference": reference.method,
        "forward": references.comparison(
            keras.ops.convert_to_numpy(y), forward, references.TOLERANCES["forward" + suffix]
        ),
        "gradient": references.comparison(
            keras.ops.convert_to_numpy(input_gradient),
            gradient,
            references.TOLERANCES["gradient" + suffix],
            mask,
        ),
    }


def output_shape(model, shape):
    return tuple(model.compute_output_shape(tuple(shape)))


def check_case(case, sizes, timed, rng, inputs) -> list[dict]:
    """Every check of one row: the timed layer's own path(s), and the noise-free training path.

    `timed` is (model, layer, step) of the timed training path. Layers on matrix products are built
    again at SMALL_CHECK and checked with float32 matrix products (on a GPU, JAX's default for float32
    may be TF32, whose error the check would otherwise measure instead of the layer's).
    """
    if case.reference is None:
        return []
    if case.small_check:
        small_sizes = {**sizes, **SMALL_CHECK}
        with RUNTIME.float32_matrix_products():
            return checks_of(case, small_sizes, None, rng, inputs, small=True)
    return checks_of(case, sizes, timed, rng, inputs, small=False)


def checks_of(case, sizes, timed, rng, inputs, small) -> list[dict]:
    shape = sizes[case.shape]
    if timed is None:
        layer = case.make(sizes)
        model = build_model(layer, shape, rng, case.prepare)
        step = gradient_step(model, training=True)
    else:
        model, layer, step = timed
    x = inputs.host(shape)
    upstream = inputs.host(output_shape(model, shape), "upstream")
    if case.make_quiet is None:  # deterministic: the timed training path itself
        return [check_path("training", model, layer, case, step, x, upstream, small)]
    inference_step = gradient_step(model, training=False)
    results = [check_path("inference", model, layer, case, inference_step, x, upstream, small)]
    quiet = case.make_quiet(sizes)
    quiet_model = build_model(quiet, shape, rng, case.prepare)
    how = "lower = upper" if isinstance(quiet, kaa.RReLU) else "c = 0"
    quiet_step = gradient_step(quiet_model, training=True)
    results.append(
        check_path(f"training, noise off ({how})", quiet_model, quiet, case, quiet_step, x, upstream, small)
    )
    return results


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def layer_runner(step, model, inputs, shape) -> Callable[[int], object]:
    """A callable `run(index)` that dispatches the step on the index-th input set (not waiting for it)."""
    trainable, non_trainable = model_state(model)
    xs = inputs.device(shape)
    upstreams = inputs.device(output_shape(model, shape), "upstream")

    def run(index):
        which = index % len(xs)
        return step(trainable, non_trainable, xs[which], upstreams[which])

    return run


DISPATCH_FLOOR = "dispatch floor"


def dispatch_floor_runner(inputs, shape) -> Callable[[int], object]:
    """A jitted call on the same input sets that does almost nothing: the time per call of dispatching
    alone. A row close to it measures the host, not the device."""
    xs, upstreams = inputs.device(shape), inputs.device(shape, "upstream")
    almost_nothing = RUNTIME.almost_nothing()

    def run(index):
        return almost_nothing(xs[index % len(xs)], upstreams[index % len(xs)])

    return run


def warm_up(runs: dict, warmup: int, errors: dict) -> dict:
    """Calls every run `warmup` times (compiling it); a run that fails is recorded in `errors` and dropped."""
    ready = {}
    for name, run in runs.items():
        try:
            for index in range(warmup):
                RUNTIME.wait(run(index))
        except Exception as error:  # one layer that fails must not cost the others' figures
            errors[name] = describe(error)
            continue
        ready[name] = run
    return ready


def time_interleaved(runs: dict, repeats: int, calls: int) -> dict:
    """name -> seconds per call, one value per repetition. Each repetition dispatches `calls` calls of
    each run back to back and waits for all of them (`jax.block_until_ready`), the runs taking turns so
    that drift of the machine affects every candidate alike. Back-to-back calls keep the device busy
    while Python dispatches the next, so launch latency is not counted once per call."""
    seconds = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs = [run(repeat * calls + index) for index in range(calls)]
            RUNTIME.wait(outputs)
            seconds[name].append((time.perf_counter() - start) / calls)
    return seconds


def milliseconds(seconds):
    return [1000.0 * value for value in seconds]


def describe(error: BaseException) -> str:
    traceback.print_exception(error, file=sys.stderr)
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------
# Every layer: check, then time
# ---------------------------------------------------------------------------------------------


def progress(message):
    """A line on stderr as the run goes: what a run stopped by its time limit leaves in the log."""
    print(f"device_speed: {message}", file=sys.stderr, flush=True)


def build_and_check(case, sizes, rng, inputs, record, hlo_texts):
    """Builds the row's layer, checks it (into `record`) and returns its timing run; None if it cannot run.

    On JAX the compiled step is read too (`read_compiled_step`); its HLO text goes into `hlo_texts`.
    """
    begin = time.perf_counter()
    shape = sizes[case.shape]
    try:
        layer = case.make(sizes)
        model = build_model(layer, shape, rng, case.prepare)
        step = gradient_step(model, training=True)
        run = layer_runner(step, model, inputs, shape)
    except Exception as error:
        record["error"] = describe(error)
        return None
    fields, text = read_compiled_step(step, model, inputs, shape, guarded(layer))
    record.update(fields)
    if text is not None:
        hlo_texts[case.name] = text
    try:
        record["checks"] = check_case(case, sizes, (model, layer, step), rng, inputs)
    except Exception as error:  # the row is still timed: its speed is worth having
        record["check_error"] = describe(error)
    if not record["checks"]:
        verdict = "not checked (a baseline)" if case.reference is None else "CHECK FAILED"
    else:
        verdict = "checked" if all(map(check_passed, record["checks"])) else "CHECK FAILED"
    progress(f"{case.name}: built, {verdict} ({time.perf_counter() - begin:.1f} s)")
    return run


def guarded(layer) -> bool:
    """Whether the layer's op has the overflow guard (energy and l1 do; the count sums no magnitudes)."""
    return isinstance(layer, kaa.CompetitiveReLU) and layer.competition != "count"


def read_compiled_step(step, model, inputs, shape, is_guarded) -> tuple[dict, str | None]:
    """What XLA made of the row's step (JAX only; PyTorch's steps are eager): the record's fields (its
    census, `hlo_census.step_census`: bytes read and written, passes over the input; for a guarded
    CompetitiveReLU, the overflow guard's form), and the optimized HLO text (None where there is none).

    The step is compiled here, before it first runs; `jax.jit` keeps it, so nothing compiles twice.
    A failure here is a line of the report, not a failure of the row, which is still checked and timed.

    The overflow guard's second branch (two reductions for each slice's largest magnitude, both sums
    again on the shrunk slice) must run only when a sum overflowed. XLA turns a conditional whose
    branches hold only cheap instructions into selects that run both; on TensorFlow that happened
    wherever the sums are reductions (as on a GPU). tests/ops/test_competitive_paths.py checks the
    CPU's compiler, with the sums laid out as on a GPU; this reads what XLA's GPU pipeline made of it.
    """
    trainable, non_trainable = model_state(model)
    x = inputs.device(shape)[0]
    upstream = inputs.device(output_shape(model, shape), "upstream")[0]
    try:
        compiled = RUNTIME.compiled_step(step, trainable, non_trainable, x, upstream)
        if compiled is None:
            return {}, None
        text, cost = compiled
        fields = {"compiled": hlo_census.step_census(text, cost, int(np.prod(shape)))}
    except Exception as error:
        fields = {"compiled_error": describe(error)}
        if is_guarded:
            fields["overflow_guard"] = f"unknown ({fields['compiled_error']})"
        return fields, None
    if is_guarded:
        fields["overflow_guard"] = "conditional" if " conditional(" in text else "selects"
    return fields, text


def measure_layers(rows, sizes, timing, inputs, hlo_texts) -> tuple[dict, dict | None]:
    """name -> record (checks, times, ratios, verdict, error) for every row; and the dispatch floor.

    `hlo_texts` receives each compiled row's optimized HLO (JAX), by row name.
    """
    rng = np.random.default_rng(1)
    records, runs = {}, {}
    for case in rows:
        records[case.name] = {
            "covers": case.covers,
            "input_shape": list(sizes[case.shape]),
            "baseline": case.baseline,
            "relu": relu_name(case.shape),  # the ReLU row timed on the same input shape
            "checks": [],
        }
        run = build_and_check(case, sizes, rng, inputs, records[case.name], hlo_texts)
        if run is not None:
            runs[case.name] = run
    runs[DISPATCH_FLOOR] = dispatch_floor_runner(inputs, sizes["image"])
    errors = {}
    runs = warm_up(runs, timing["warmup"], errors)
    progress(f"timing {len(runs)} rows: {timing['repeats']} repetitions of {timing['calls']} calls")
    seconds = time_interleaved(runs, timing["repeats"], timing["calls"])
    floor = seconds.pop(DISPATCH_FLOOR, None)
    errors.pop(DISPATCH_FLOOR, None)  # a reference line only: without it the rows still stand
    for name, error in errors.items():
        records[name]["error"] = error
    for name, times in seconds.items():
        records[name]["times_ms"] = milliseconds(times)
        records[name]["median_ms"] = statistics.median(records[name]["times_ms"])
    for record in records.values():
        add_ratios(record, records)
    dispatch = (
        {"median_ms": statistics.median(milliseconds(floor)), "times_ms": milliseconds(floor)}
        if floor
        else None
    )
    return records, dispatch


def add_ratios(record, records):
    """The ratio to ReLU on the same input (time, and the bytes moved where the step was compiled),
    and to the row's own baseline with its verdict."""
    median = record.get("median_ms")
    relu_median = records[record["relu"]].get("median_ms")
    if median is not None and relu_median:
        record["ratio_to_relu"] = median / relu_median
    traffic = record.get("compiled", {}).get("bytes_moved")
    relu_traffic = records[record["relu"]].get("compiled", {}).get("bytes_moved")
    if traffic is not None and relu_traffic:
        record["bytes_to_relu"] = traffic / relu_traffic
    baseline = record["baseline"]
    baseline_median = records[baseline].get("median_ms") if baseline else None
    if median is not None and baseline_median:
        record["ratio"] = median / baseline_median
        record["target"] = TARGETS["layer"]
        record["verdict"] = "PASS" if record["ratio"] <= TARGETS["layer"] else "MISS"


# ---------------------------------------------------------------------------------------------
# The small CNN's training step
# ---------------------------------------------------------------------------------------------


CNN_FILTERS = (32, 64, 128)  # the three conv blocks' filters, as in activation_speed.py


def build_cnn(activation, image) -> keras.Sequential:
    """Three conv blocks (32, 64, 128 filters), each conv -> activation -> max-pool, then GAP -> Dense(10).

    Seeded initializers give every activation's model the same initial weights (not
    `keras.utils.set_random_seed`, which imports TensorFlow to seed it too where it is installed).
    """
    layers = [keras.Input((image, image, 3))]
    for seed, filters in enumerate(CNN_FILTERS):
        convolution = keras.layers.Conv2D(
            filters, 3, padding="same", kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
        )
        layers += [convolution, activation(), keras.layers.MaxPooling2D()]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(seed=3)),
    ]
    return keras.Sequential(layers)


def cnn_candidates():
    """name -> activation factory; the floors (`competition_floor.py`) are reference rows, not judged."""
    return {
        "ReLU": keras.layers.ReLU,
        "CompetitiveReLU(energy)": kaa.CompetitiveReLU,
        "CompetitiveReLU(energy, axis=(1, 2))": lambda: kaa.CompetitiveReLU(axis=(1, 2)),
        FLOOR: FloorActivation,
        FLOOR_PER_CHANNEL: lambda: FloorActivation(axes=(1, 2)),
    }


def cnn_runner(model, images, labels) -> tuple[Callable[[int], object], Callable[[], float], Callable]:
    """`run(index)`: one training step of `model` (SGD with momentum, as activation_speed.py), carrying
    the weights and the optimizer's state from step to step; a function giving the last loss; and one
    giving the compiled step's HLO text and cost analysis (None on PyTorch).

    The step is the framework's (`device_runtimes`): on JAX what `fit` compiles (`stateless_call`,
    the loss and its gradient, `optimizer.stateless_apply`, in one `jax.jit`, the state donated so
    that XLA updates the weights in place); on PyTorch an eager step, as Keras' PyTorch `fit` runs.
    """
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step, inspect = RUNTIME.cnn_step(model, optimizer, loss_function)
    last_loss = [None]

    def run(index):
        last_loss[0] = step(images, labels)
        return last_loss[0]

    return run, lambda: float(keras.ops.convert_to_numpy(last_loss[0])), lambda: inspect(images, labels)


def cnn_census(inspectors, runs, first_activation_elements) -> dict:
    """name -> census of the compiled CNN step (`hlo_census.step_census`; passes over an array the size
    of the first activation's input), for the models that ran; empty on PyTorch. A failure is recorded
    in the census's place: a report line, not a failure of the run."""
    censuses = {}
    for name in runs:
        try:
            compiled = inspectors[name]()
            if compiled is not None:
                censuses[name] = hlo_census.step_census(*compiled, first_activation_elements)
        except Exception as error:
            censuses[name] = {"error": describe(error)}
    return censuses


def measure_cnn(sizes, timing) -> dict:
    batch, image = sizes["cnn_batch"], sizes["cnn_image"]
    rng = np.random.default_rng(2)
    images = RUNTIME.array(rng.standard_normal((batch, image, image, 3), dtype=np.float32))
    labels = RUNTIME.array(rng.integers(0, 10, size=(batch,)))
    runs, losses, inspectors, errors = {}, {}, {}, {}
    for name, activation in cnn_candidates().items():
        try:
            model = build_cnn(activation, image)
            runs[name], losses[name], inspectors[name] = cnn_runner(model, images, labels)
        except Exception as error:
            errors[name] = describe(error)
    runs = warm_up(runs, timing["warmup"], errors)
    progress(f"timing the CNN step of {len(runs)} models")
    seconds = time_interleaved(runs, timing["repeats"], timing["calls"])
    medians = {name: statistics.median(milliseconds(times)) for name, times in seconds.items()}
    candidates = list(cnn_candidates())
    result = {
        "batch": batch,
        "image": image,
        "candidates": candidates,  # in the report's order
        "judged": [name for name in candidates if name not in ("ReLU", FLOOR, FLOOR_PER_CHANNEL)],
        "times_ms": {name: milliseconds(times) for name, times in seconds.items()},
        "median_ms": medians,
        "last_loss": {name: losses[name]() for name in seconds},
        "errors": errors,
        "ratios": {},
        "verdicts": {},
        # The first activation's input: the first convolution's output.
        "compiled": cnn_census(inspectors, runs, batch * image * image * CNN_FILTERS[0]),
    }
    for name, median in medians.items():
        if name != "ReLU" and medians.get("ReLU"):
            result["ratios"][name] = median / medians["ReLU"]
            if name in result["judged"]:
                result["verdicts"][name] = "PASS" if result["ratios"][name] <= TARGETS["cnn"] else "MISS"
    return result


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="jax",
        help="Keras' backend: jax (default; compiled steps) or torch (eager steps)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repetitions: a smoke run")
    parser.add_argument("--repeats", type=int, help="timed repetitions (default 30, quick 3)")
    parser.add_argument(
        "--warmup", type=int, help="untimed calls of each candidate first (default 3, quick 1)"
    )
    parser.add_argument("--calls", type=int, help="back-to-back calls per repetition (default 10, quick 2)")
    parser.add_argument("--json", metavar="PATH", help="write every raw number here")
    parser.add_argument("--markdown", metavar="PATH", help="write the report as Markdown here")
    parser.add_argument(
        "--hlo",
        metavar="PATH",
        help="write each compiled row's optimized HLO here, one text file per row in a .tar.gz (JAX only)",
    )
    args = parser.parse_args(argv)
    defaults = DEFAULT_TIMING["quick" if args.quick else "full"]
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def environment(args, sizes, started) -> dict:
    framework = RUNTIME.environment()  # the device, and the framework's name and versions
    framework_versions = framework.pop("framework_versions")
    return {
        "benchmark": "device_speed",
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **framework,
        "framework_label": RUNTIME.label,
        "wait_text": RUNTIME.wait_text,
        "cnn_step_text": RUNTIME.step_text,
        "versions": {
            "python": platform.python_version(),
            **framework_versions,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "keras_adaptive_acts": kaa.__version__,
        },
        "keras_backend": keras.backend.backend(),
        "sizes": {key: list(value) if isinstance(value, tuple) else value for key, value in sizes.items()},
        "small_check_sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in SMALL_CHECK.items()},
        "timing": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "calls": args.calls,
            "input_sets": sizes["input_sets"],
        },
        "tolerances": references.TOLERANCES,
        "targets": TARGETS,
        "competition_floor": FLOOR,  # the row CompetitiveReLU's rows are read against
    }


def write_hlo_archive(path, hlo_texts) -> dict:
    """Writes the optimized HLO of each compiled row into one .tar.gz (the device call brings back a few
    files, not a folder of them); returns the row name -> file name inside it, for the results."""
    names = {}
    with tarfile.open(path, "w:gz") as archive:
        for row, text in hlo_texts.items():
            stem = re.sub(r"[^A-Za-z0-9]+", "_", row).strip("_")
            names[row] = f"{len(names):02d}_{stem}.hlo.txt"
            data = text.encode()
            member = tarfile.TarInfo(names[row])
            member.size, member.mtime = len(data), int(time.time())
            archive.addfile(member, io.BytesIO(data))
    return names


def conclude(results, phases, begin, args) -> str:
    """Fills in the run's totals, failures and page sections, writes the files; returns the report."""
    results["phase_seconds"] = phases
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    results["seconds"] = time.perf_counter() - begin
    results["failures"] = failures_of(results)
    if args.backend == "jax":
        results["sections"] = {name: section_markdown(results, name) for name in SECTION_NAMES["jax"]}
    else:  # one section: the whole report (its heading is dropped where it is written)
        results["sections"] = {name: markdown_report(results) for name in SECTION_NAMES[args.backend]}
    report = markdown_report(results)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(report)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return report


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if keras.backend.backend() != args.backend:
        raise SystemExit(f"device_speed: Keras runs on {keras.backend.backend()!r}, not {args.backend!r}")
    begin = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    results = environment(args, sizes, datetime.datetime.now(datetime.timezone.utc))
    timing = {"repeats": args.repeats, "warmup": args.warmup, "calls": args.calls}
    print(
        f"device_speed: {results['device']} ({results['platform']}), {results['framework']}", file=sys.stderr
    )
    results["reference_self_check"] = references.self_check()
    results["public_layers"] = public_layer_classes()
    phases = {}
    phase_start = time.perf_counter()
    hlo_texts = {}
    results["layers"], results["dispatch_floor"] = measure_layers(
        cases(), sizes, timing, Inputs(sizes["input_sets"]), hlo_texts
    )
    phases["layers"] = time.perf_counter() - phase_start
    if args.hlo:
        results["hlo_archive"] = write_hlo_archive(args.hlo, hlo_texts)
    # The files are written once here, without the CNN step, so that a run stopped by the device
    # call's time limit still leaves every layer's figures (its CNN step reported as not measured);
    # the end of the run writes them again, whole.
    results["cnn"] = None
    conclude(results, phases, begin, args)
    progress("the layers' figures written; the CNN step next")
    phase_start = time.perf_counter()
    results["cnn"] = measure_cnn(sizes, timing)
    phases["cnn"] = time.perf_counter() - phase_start
    print(conclude(results, phases, begin, args))
    for failure in results["failures"]:
        print(f"device_speed: FAILED: {failure}", file=sys.stderr)
    print(summary_line(results))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
