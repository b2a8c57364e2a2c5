"""Speed and backward memory of CompetitiveReLU against ReLU, PReLU and autodiff.

Three measurements, all in one run so that the ratios compare like with like:

1. The activation alone, forward and backward as in a training step (XLA, output and every
   gradient materialised) on a (64, 32, 32, 64) float32 tensor: median time and ratios to
   Keras `ReLU`, to `PReLU(shared_axes=[1, 2])` and to an autodiff implementation of the same
   formula. TensorFlow backend.
2. The training step (`train_on_batch`, `jit_compile=True`) of a small CNN on 32x32x3 images,
   batch 128, with CompetitiveReLU (each competition, and per channel) against the same CNN with
   ReLU and with the reference floor. TensorFlow backend.
3. The memory the backward pass keeps per input element (the residuals held by `jax.vjp`),
   hand-written gradient against autodiff. JAX backend, in a subprocess of this script, which
   also times the first measurement's candidates (ReLU, each competition, its autodiff and the
   floor) under `jax.jit`.

Usage:
    python benchmarks/activation_speed.py [--repeats N] [--quick] [--json PATH] [--markdown PATH]

`--quick` shrinks everything for a smoke run; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

# The backend is chosen before keras is imported. The memory part re-runs this file with
# KERAS_BACKEND=jax (see `measure_memory_in_subprocess`); everything else is TensorFlow.
MEMORY_ONLY = "--memory-only" in sys.argv
os.environ["KERAS_BACKEND"] = "jax" if MEMORY_ONLY else "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from competition_floor import FLOOR, FLOOR_PER_CHANNEL, FloorActivation, floor_activation  # noqa: E402
from keras import ops  # noqa: E402

import keras_adaptive_acts  # noqa: E402

SCALE_BOUND, EPS = 2.0, 1e-6  # CompetitiveReLU's defaults of scale_bound and eps
COMPETITIONS = ("energy", "l1", "count")
TARGETS = {
    "vs_relu": 1.7,
    "vs_autodiff": 1.0,
    "memory_vs_autodiff": 0.5,
    "cnn_vs_relu": 1.10,
    "jax_vs_relu": 1.5,
}
JAX_CALLS_PER_SAMPLE = 5  # back-to-back calls per timed sample on JAX (see time_on_jax)
FULL = {"shape": (64, 32, 32, 64), "memory_shape": (16, 32, 32, 64), "batch": 128, "image": 32}
QUICK = {"shape": (8, 8, 8, 16), "memory_shape": (4, 8, 8, 16), "batch": 16, "image": 16}


# ---------------------------------------------------------------------------------------------
# The reference: the same formula written with plain keras.ops, differentiated by autodiff.
# ---------------------------------------------------------------------------------------------


def autodiff_competitive_relu(z, alpha, beta, competition="energy"):
    """relu(s * z), s = SCALE_BOUND * tanh(alpha * p + beta), p per sample; no custom gradient."""
    axes = tuple(range(1, len(z.shape)))
    if competition == "energy":
        p = ops.sum(ops.square(ops.relu(z)), axes, keepdims=True) / (
            ops.sum(ops.square(z), axes, keepdims=True) + EPS
        )
    elif competition == "l1":
        p = ops.sum(ops.relu(z), axes, keepdims=True) / (ops.sum(ops.abs(z), axes, keepdims=True) + EPS)
    else:
        p = ops.stop_gradient(ops.mean(ops.cast(z > 0, z.dtype), axes, keepdims=True))
    return ops.relu(SCALE_BOUND * ops.tanh(alpha * p + beta) * z)


class AutodiffCompetitiveReLU(keras.layers.Layer):
    """`autodiff_competitive_relu` with CompetitiveReLU's two weights and their ReLU-identity init."""

    def __init__(self, competition="energy", **kwargs):
        super().__init__(**kwargs)
        self.competition = competition

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(), name="alpha", initializer="zeros")
        beta_init = keras.initializers.Constant(math.atanh(1.0 / SCALE_BOUND))
        self.beta = self.add_weight(shape=(), name="beta", initializer=beta_init)

    def call(self, inputs):
        return autodiff_competitive_relu(inputs, self.alpha, self.beta, self.competition)


# ---------------------------------------------------------------------------------------------
# Timing helpers (TensorFlow backend)
# ---------------------------------------------------------------------------------------------


def time_interleaved(runs, repeats, warmup):
    """Calls each of `runs` (name -> zero-argument callable) `warmup` times, then `repeats` rounds
    of one call each, round-robin, so that drift of the machine affects every candidate alike.
    Returns name -> list of seconds. Each callable must return only once its work is done."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median_ms(seconds):
    return 1000.0 * statistics.median(seconds)


def activation_candidates(quick):
    """name -> layer factory. PReLU shares its slope over H and W (one per channel), as in convnets."""
    candidates = {
        "ReLU": keras.layers.ReLU,
        "PReLU(shared_axes=[1, 2])": lambda: keras.layers.PReLU(shared_axes=[1, 2]),
    }
    for competition in ("energy",) if quick else COMPETITIONS:
        candidates[f"CompetitiveReLU({competition})"] = lambda c=competition: (
            keras_adaptive_acts.CompetitiveReLU(competition=c)
        )
        candidates[f"autodiff({competition})"] = lambda c=competition: AutodiffCompetitiveReLU(c)
    candidates[FLOOR] = FloorActivation
    return candidates


def training_step_runner(layer, x, g):
    """A zero-argument callable: forward and backward of `layer` as in a training step, under XLA.

    The forward runs with `training=True` (noise drawn, as in `fit`); Keras passes `training` only
    to layers whose `call` takes it, so deterministic layers run the same either way.
    """
    import tensorflow as tf

    layer(x)  # build the weights outside the compiled function

    @tf.function(jit_compile=True)
    def step(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return y, tape.gradient(y, [x, *layer.trainable_variables], output_gradients=g)

    def run():
        # Returning y and every gradient makes XLA write them all to buffers (nothing is dead
        # code). TF executes eagerly and synchronously on CPU, so the call returns when they
        # are written; fetching one element of the input gradient is a cheap guard that the
        # work is done, and costs the same for every candidate (a full `.numpy()` of 16 MB
        # would add a copy comparable to the activation itself).
        _, grads = step(x, g)
        return grads[0][0, 0, 0, 0].numpy()

    return run


def bench_activation(shape, repeats, warmup, quick):
    import tensorflow as tf

    # One tf.function per candidate, each traced once: TF's "retracing" warning does not apply.
    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    g = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    runs = {name: training_step_runner(make(), x, g) for name, make in activation_candidates(quick).items()}
    times = time_interleaved(runs, repeats, warmup)
    medians = {name: median_ms(t) for name, t in times.items()}
    return {"shape": list(shape), "times_ms": _to_ms(times), "median_ms": medians}


def _sum_by_matmul(rows):
    """Row sums as `rows @ ones`, with ones XLA cannot prove to be 1 (it would rewrite a dot with a
    constant 1 into the reduce this is meant to avoid)."""
    import tensorflow as tf

    ones = tf.transpose(rows[:1] * 0.0 + 1.0)
    return tf.matmul(rows, ones)[:, 0]


def bench_reductions(shape, repeats, warmup):
    """What one per-sample reduction costs under TF's XLA, with and without an elementwise producer.

    CompetitiveReLU needs three such reductions per training step (two forward, one backward).
    If XLA fuses the producer, `sum(x * x)` costs what `sum(x)` does; if it writes `x * x` out
    first, it costs a full extra pass over memory. This is the floor the activation sits on.
    """
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(2).standard_normal(shape, dtype=np.float32))
    flat = (shape[0], -1)
    functions = {
        "relu(x) (forward only)": lambda x: tf.nn.relu(x),
        "sum(x) per sample": lambda x: tf.reduce_sum(tf.reshape(x, flat), axis=1),
        "sum(x * x) per sample": lambda x: tf.reduce_sum(tf.reshape(x * x, flat), axis=1),
        # Other ways to the same sum, tried to get a reduction that reads x once:
        "sum(x * x) as einsum('ij,ij->i')": lambda x: tf.einsum("ij,ij->i", *[tf.reshape(x, flat)] * 2),
        "sum(x * x) as a matmul with ones": lambda x: _sum_by_matmul(tf.reshape(x * x, flat)),
        "sum(x * x) in two stages": lambda x: tf.reduce_sum(
            tf.reduce_sum(tf.reshape(x * x, (shape[0], 256, -1)), axis=2), axis=1
        ),
        # The overflow guard's largest magnitude per sample, the way it was and the way it is.
        "max(|x|) per sample": lambda x: tf.reduce_max(tf.reshape(tf.abs(x), flat), axis=1),
        "max(max(x), -min(x)) per sample": lambda x: tf.maximum(
            tf.reduce_max(tf.reshape(x, flat), axis=1), -tf.reduce_min(tf.reshape(x, flat), axis=1)
        ),
    }
    runs = {}
    for name, fn in functions.items():
        compiled = tf.function(fn, jit_compile=True)
        runs[name] = lambda f=compiled: f(x).numpy().flat[0]
    times = time_interleaved(runs, repeats, warmup)
    return {
        "shape": list(shape),
        "times_ms": _to_ms(times),
        "median_ms": {k: median_ms(t) for k, t in times.items()},
    }


def build_cnn(activation, image):
    """Three conv blocks (32, 64, 128 filters), each conv -> activation -> max-pool, then GAP -> Dense(10)."""
    layers = [keras.Input((image, image, 3))]
    for filters in (32, 64, 128):
        layers += [keras.layers.Conv2D(filters, 3, padding="same"), activation(), keras.layers.MaxPooling2D()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def cnn_candidates(quick):
    candidates = {
        "ReLU": keras.layers.ReLU,
        "CompetitiveReLU(energy)": keras_adaptive_acts.CompetitiveReLU,
    }
    if not quick:
        for competition in COMPETITIONS[1:]:
            candidates[f"CompetitiveReLU({competition})"] = lambda c=competition: (
                keras_adaptive_acts.CompetitiveReLU(competition=c)
            )
        candidates["CompetitiveReLU(energy, axis=(1, 2))"] = lambda: keras_adaptive_acts.CompetitiveReLU(
            axis=(1, 2)
        )
        # The least an exact competition does, in the same network: the CNN step's floors, per
        # sample and per channel (each slice an (H, W) plane, as with axis=(1, 2)).
        candidates[FLOOR] = FloorActivation
        candidates[FLOOR_PER_CHANNEL] = lambda: FloorActivation(axes=(1, 2))
    return candidates


def cnn_step_runners(activations, batch, image):
    """name -> zero-argument callable: one training step of `build_cnn` with each activation
    (name -> layer factory), on the same batch and from the same initial weights."""
    rng = np.random.default_rng(1)
    images = rng.standard_normal((batch, image, image, 3), dtype=np.float32)
    labels = rng.integers(0, 10, size=(batch,))
    runs = {}
    for name, activation in activations.items():
        keras.utils.set_random_seed(0)  # the same initial weights for every model
        model = build_cnn(activation, image)
        # train_on_batch converts the loss to a Python float: it returns after the step is done.
        runs[name] = lambda m=model: m.train_on_batch(images, labels)
    return runs


def bench_cnn(batch, image, repeats, warmup, quick):
    times = time_interleaved(cnn_step_runners(cnn_candidates(quick), batch, image), repeats, warmup)
    medians = {name: median_ms(t) for name, t in times.items()}
    return {"batch": batch, "image": image, "times_ms": _to_ms(times), "median_ms": medians}


def _to_ms(times):
    return {name: [1000.0 * t for t in seconds] for name, seconds in times.items()}


# ---------------------------------------------------------------------------------------------
# Backward memory (JAX backend, run in a subprocess)
# ---------------------------------------------------------------------------------------------


def residual_bytes(fn, *args):
    """Bytes of the arrays `jax.vjp` keeps for the backward pass, and those that are `args[0]` itself."""
    import jax

    _, vjp_fn = jax.vjp(fn, *args)
    leaves = {id(leaf): leaf for leaf in jax.tree_util.tree_leaves(vjp_fn) if hasattr(leaf, "nbytes")}
    total = sum(leaf.nbytes for leaf in leaves.values())
    input_itself = sum(leaf.nbytes for leaf in leaves.values() if leaf is args[0])
    return total, input_itself


def measure_memory(shape):
    """Per input element: residual bytes of ReLU, the package's op and autodiff of the formula."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    alpha, beta = jnp.float32(0.0), jnp.float32(math.atanh(1.0 / SCALE_BOUND))
    fns = {"ReLU (jax.nn.relu)": (jax.nn.relu, (x,))}
    for c in COMPETITIONS:
        custom = lambda x, a, b, c=c: keras_adaptive_acts.ops.competitive_relu(x, a, b, competition=c)  # noqa: E731
        autodiff = lambda x, a, b, c=c: autodiff_competitive_relu(x, a, b, c)  # noqa: E731
        fns[f"CompetitiveReLU({c})"] = (custom, (x, alpha, beta))
        fns[f"autodiff({c})"] = (autodiff, (x, alpha, beta))
    result = {}
    for name, (fn, args) in fns.items():
        total, input_itself = residual_bytes(fn, *args)
        result[name] = {
            "bytes_per_element": total / x.size,
            "input_itself_per_element": input_itself / x.size,
        }
    return {"shape": list(shape), "jax": jax.__version__, "residuals": result}


def time_on_jax(shape, repeats, warmup):
    """Forward + backward under `jax.jit` of the same candidates: JAX's XLA fuses reductions."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
    g = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
    alpha, beta = jnp.float32(0.0), jnp.float32(math.atanh(1.0 / SCALE_BOUND))
    fns = {"ReLU": lambda x, a, b: jax.nn.relu(x)}
    for c in COMPETITIONS:
        fns[f"CompetitiveReLU({c})"] = lambda x, a, b, c=c: keras_adaptive_acts.ops.competitive_relu(
            x, a, b, competition=c
        )
        fns[f"autodiff({c})"] = lambda x, a, b, c=c: autodiff_competitive_relu(x, a, b, c)
    fns[FLOOR] = lambda x, a, b: floor_activation(x, a)

    def runner(fn):
        @jax.jit
        def step(x, g, a, b):
            y, pullback = jax.vjp(fn, x, a, b)
            return y, pullback(g)

        # Several calls per timed sample, waited for together: one call at a time, the same function
        # timed twice in one run differed by up to a quarter on this CPU; with five, by a few percent.
        return lambda: jax.block_until_ready([step(x, g, alpha, beta) for _ in range(JAX_CALLS_PER_SAMPLE)])

    times = time_interleaved({name: runner(fn) for name, fn in fns.items()}, repeats, warmup)
    per_call = {name: [t / JAX_CALLS_PER_SAMPLE for t in seconds] for name, seconds in times.items()}
    return {
        "shape": list(shape),
        "calls_per_sample": JAX_CALLS_PER_SAMPLE,
        "median_ms": {name: median_ms(t) for name, t in per_call.items()},
    }


def measure_memory_in_subprocess(quick):
    """Runs this file with `--memory-only` on the JAX backend and parses the JSON line it prints."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-only", *sys.argv[1:]]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Targets and report
# ---------------------------------------------------------------------------------------------


def verdict(value, limit):
    return "PASS" if value <= limit else "MISS"


def matching_autodiff(name):
    """The autodiff candidate for a CompetitiveReLU candidate, e.g. `autodiff(l1)`; else None."""
    prefix = "CompetitiveReLU("
    return f"autodiff({name[len(prefix) :]}" if name.startswith(prefix) else None


def evaluate_targets(activation, cnn, memory):
    """A list of (what, ratio, limit, PASS/MISS) for every target, per competition measured."""
    med, res = activation["median_ms"], memory["residuals"]
    checks = []
    for name in med:
        autodiff = matching_autodiff(name)
        if autodiff is None:
            continue
        checks.append((f"{name} / ReLU time", med[name] / med["ReLU"], TARGETS["vs_relu"]))
        if FLOOR in med:  # the same target against what any exact formulation costs on this compiler
            checks.append((f"{name} / {FLOOR} time", med[name] / med[FLOOR], TARGETS["vs_relu"]))
        checks.append((f"{name} / autodiff time", med[name] / med[autodiff], TARGETS["vs_autodiff"]))
        mem = res[name]["bytes_per_element"] / res[autodiff]["bytes_per_element"]
        checks.append((f"{name} / autodiff backward memory", mem, TARGETS["memory_vs_autodiff"]))
    cnn_ms = cnn["median_ms"]
    for name, ms in cnn_ms.items():
        if name in ("ReLU", FLOOR, FLOOR_PER_CHANNEL):
            continue
        checks.append((f"CNN step {name} / ReLU", ms / cnn_ms["ReLU"], TARGETS["cnn_vs_relu"]))
        floor = FLOOR_PER_CHANNEL if "axis=(1, 2)" in name else FLOOR  # slices of the same axes
        if floor in cnn_ms:
            checks.append((f"CNN step {name} / {floor}", ms / cnn_ms[floor], TARGETS["cnn_vs_relu"]))
    jax_ms = memory.get("jax_timing", {}).get("median_ms", {})
    for name, ms in jax_ms.items():
        autodiff = matching_autodiff(name)
        if autodiff is None:
            continue
        checks.append((f"JAX {name} / ReLU time", ms / jax_ms["ReLU"], TARGETS["jax_vs_relu"]))
        if FLOOR in jax_ms:
            checks.append((f"JAX {name} / {FLOOR} time", ms / jax_ms[FLOOR], TARGETS["jax_vs_relu"]))
        checks.append((f"JAX {name} / autodiff time", ms / jax_ms[autodiff], TARGETS["vs_autodiff"]))
    return [(what, ratio, limit, verdict(ratio, limit)) for what, ratio, limit in checks]


def machine_description(include_jax=True):
    """CPU, core count and versions; `include_jax=False` for benchmarks that do not use JAX."""
    import tensorflow as tf

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    description = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_adaptive_acts": keras_adaptive_acts.__version__,
    }
    if include_jax:
        # The JAX rows of a benchmark need JAX; the machine line only reports whether it is there
        # (the README's test extra does not install it).
        try:
            import jax
        except ImportError:
            description["jax"] = "not installed"
        else:
            description["jax"] = jax.__version__
    return description


def markdown_report(results):
    m, act, cnn, mem = results["machine"], results["activation"], results["cnn"], results["memory"]
    med = act["median_ms"]
    lines = [
        "## Activation speed and memory",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores; Python {m['python']}, TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, JAX {m['jax']}, keras-adaptive-acts {m['keras_adaptive_acts']}.",
        "",
        f"Command: `{results['command']}`",
        "",
        f"### Activation, forward + backward (XLA), input {tuple(act['shape'])} float32",
        "",
        f"Median of {results['repeats']} interleaved repetitions after {results['warmup']} warm-up calls. "
        "PReLU shares its slope over H and W (one slope per channel), the usual setting after a conv.",
        "",
        "| activation | median ms | / ReLU | / PReLU | / autodiff |",
        "|---|---:|---:|---:|---:|",
    ]
    prelu = med["PReLU(shared_axes=[1, 2])"]
    for name, ms in med.items():
        autodiff = matching_autodiff(name)
        vs_autodiff = f"{ms / med[autodiff]:.2f}" if autodiff else ""
        lines.append(f"| {name} | {ms:.2f} | {ms / med['ReLU']:.2f} | {ms / prelu:.2f} | {vs_autodiff} |")
    lines += [
        "",
        f"### Memory kept for the backward pass (residuals of `jax.vjp`), input {tuple(mem['shape'])}",
        "",
        f"JAX {mem['jax']} backend, `jax.vjp` outside `jit`: the arrays its backward function holds. "
        "Inside one compiled training step XLA plans buffers itself, so this is the memory a "
        "framework keeps between the forward and the backward pass, not a peak.",
        "",
        "| function | bytes per input element | of which the input itself | / ReLU | / autodiff |",
        "|---|---:|---:|---:|---:|",
    ]
    per_element = {name: r["bytes_per_element"] for name, r in mem["residuals"].items()}
    for name, r in mem["residuals"].items():
        autodiff = matching_autodiff(name)
        vs_autodiff = f"{per_element[name] / per_element[autodiff]:.2f}" if autodiff else ""
        lines.append(
            f"| {name} | {per_element[name]:.2f} | {r['input_itself_per_element']:.2f} | "
            f"{per_element[name] / per_element['ReLU (jax.nn.relu)']:.2f} | {vs_autodiff} |"
        )
    lines += [
        "",
        f"### Training step of a small CNN (batch {cnn['batch']}, {cnn['image']}x{cnn['image']}x3, XLA)",
        "",
        "Conv(32/64/128) -> activation -> max-pool, three blocks, then global average pooling and "
        "Dense(10); SGD with momentum; `train_on_batch`, models interleaved. The floor row puts the "
        "activation of the first table's floor row in the same network.",
        "",
        "| activation | median ms/step | / ReLU |",
        "|---|---:|---:|",
    ]
    for name, ms in cnn["median_ms"].items():
        lines.append(f"| {name} | {ms:.2f} | {ms / cnn['median_ms']['ReLU']:.2f} |")
    jax_med = mem["jax_timing"]["median_ms"]
    lines += [
        "",
        f"### The same activations on the JAX backend (JAX {mem['jax']}, `jax.jit` of forward + backward)",
        "",
        "The same op on JAX's XLA (on this CPU its per-slice sums are products with ones, as on "
        "TensorFlow), timed in the memory subprocess with the same repetitions, each "
        f"sample {mem['jax_timing'].get('calls_per_sample', 1)} calls back to back (time per call).",
        "",
        "| activation | median ms | / ReLU | / autodiff |",
        "|---|---:|---:|---:|",
    ]
    for name, ms in jax_med.items():
        autodiff = matching_autodiff(name)
        vs_autodiff = f"{ms / jax_med[autodiff]:.2f}" if autodiff else ""
        lines.append(f"| {name} | {ms:.2f} | {ms / jax_med['ReLU']:.2f} | {vs_autodiff} |")
    red = results["reductions"]["median_ms"]
    lines += [
        "",
        "### XLA reductions on this machine (the floor under the activation's time)",
        "",
        "One per-sample reduction over the same input, compiled alone. A reduction whose input is "
        "computed (here `x * x`) costs what a plain one does only if XLA fuses the two.",
        "",
        "| computation | median ms | / sum(x) |",
        "|---|---:|---:|",
    ]
    for name, ms in red.items():
        lines.append(f"| {name} | {ms:.2f} | {ms / red['sum(x) per sample']:.2f} |")
    lines += targets_lines(results["targets"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def targets_lines(targets):
    """The Markdown "Targets" table of (what, ratio, limit, PASS/MISS) rows."""
    lines = ["", "### Targets", "", "| ratio | measured | target | |", "|---|---:|---:|---|"]
    return lines + [
        f"| {what} | {ratio:.2f} | <= {limit:g} | {result} |" for what, ratio, limit, result in targets
    ]


def timing_parser(doc):
    """The arguments every timing benchmark takes: --repeats, --warmup, --quick, --json, --markdown."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 30, quick 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per candidate first (>= 1)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: a smoke run")
    add_output_arguments(parser)
    return parser


def add_output_arguments(parser):
    parser.add_argument("--json", metavar="PATH", help="write every raw number here")
    parser.add_argument("--markdown", metavar="PATH", help="write the report as a Markdown section here")


def check_timing_args(parser, args):
    """Fills in the default repetitions and refuses non-positive counts."""
    if args.repeats is None:
        args.repeats = 5 if args.quick else 30
    if args.repeats < 1 or args.warmup < 1:
        parser.error("--repeats and --warmup must be >= 1")
    return args


def publish(report, raw, args):
    """Prints the Markdown report and writes it (--markdown) and the raw numbers (--json)."""
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


def parse_args():
    parser = timing_parser(__doc__)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    return check_timing_args(parser, parser.parse_args())


def main():
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.memory_only:
        memory = measure_memory(sizes["memory_shape"])
        memory["jax_timing"] = time_on_jax(sizes["shape"], args.repeats, args.warmup)
        print(json.dumps(memory))
        return
    results = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine_description(),
        "memory": measure_memory_in_subprocess(args.quick),
        "activation": bench_activation(sizes["shape"], args.repeats, args.warmup, args.quick),
        "cnn": bench_cnn(sizes["batch"], sizes["image"], args.repeats, args.warmup, args.quick),
        "reductions": bench_reductions(sizes["shape"], args.repeats, args.warmup),
    }
    results["targets"] = evaluate_targets(results["activation"], results["cnn"], results["memory"])
    publish(markdown_report(results), results, args)


if __name__ == "__main__":
    main()
