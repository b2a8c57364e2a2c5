"""CompetitiveReLU's op in this tree against the same op at an earlier git revision, in one run.

A change meant to make the op faster is judged by timing both forms side by side: the module
`keras_adaptive_acts/ops/competitive.py` is read from `git show REVISION:...` (with the modules of
`keras_adaptive_acts/ops/` it imports, as they were then), loaded beside the current one, and both
are timed (forward and backward as in a training step: output and the
gradients of the input, `alpha` and `beta`), interleaved with Keras' ReLU as the baseline, under XLA
(`tf.function(jit_compile=True)` on TensorFlow, `jax.jit` on JAX). Before timing, the two forms'
outputs and gradients are compared: a speed-up that changes the results is reported as such.

With `--cnn`, the small CNN's training step (`activation_speed.build_cnn`, batch 128, 32x32x3) is
also timed with CompetitiveReLU running each form of the op, against the same CNN with ReLU: the op
alone is not the whole story, as the op's layout also decides what XLA fuses with the layers around
it.

Usage:
    python benchmarks/op_against_revision.py --revision REV [--backend tensorflow|jax]
        [--competitions energy,l1,count] [--repeats N] [--shape 64,32,32,64] [--axis 1,2]
        [--cnn [--cnn-repeats N]]
        [--markdown PATH]

Not part of run_all: it measures one change, and its table goes into the verdict that describes it.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import tempfile

OP_MODULE = "keras_adaptive_acts/ops/competitive.py"
# The modules of keras_adaptive_acts.ops that the op module imports (at some revisions): loaded as
# they were at the revision too, so that an old op runs with the helpers it was written against.
HELPER_MODULES = ("keras_adaptive_acts/ops/competitive_paths.py",)
SCALE_BOUND, EPS = 2.0, 1e-6  # CompetitiveReLU's defaults


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", required=True, help="the git revision to compare with, e.g. HEAD~1")
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow")
    parser.add_argument("--competitions", default="energy,l1,count")
    parser.add_argument("--repeats", type=int, default=31, help="interleaved rounds (default 31)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--shape", default="64,32,32,64", help="the input's shape (default 64,32,32,64)")
    parser.add_argument(
        "--axis", help="the reduction axes, e.g. 1,2 (per channel of NHWC); default every non-batch axis"
    )
    parser.add_argument("--cnn", action="store_true", help="also time the small CNN's training step")
    parser.add_argument(
        "--cnn-repeats", type=int, default=15, help="interleaved rounds of the CNN (default 15)"
    )
    parser.add_argument("--markdown", help="also write the table to this file")
    arguments = parser.parse_args(argv)
    arguments.shape = tuple(int(size) for size in arguments.shape.split(","))
    arguments.competitions = arguments.competitions.split(",")
    arguments.axis = (
        None if arguments.axis is None else tuple(int(axis) for axis in arguments.axis.split(","))
    )
    return arguments


def _source_at(revision, path, root):
    """The file's text at `revision`, or None if it did not exist there (an unknown revision exits)."""
    shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, capture_output=True, text=True)
    if shown.returncode == 0:
        return shown.stdout
    known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=root)
    if known.returncode != 0:
        raise SystemExit(f"unknown revision {revision!r} in this checkout: {shown.stderr.strip()}")
    return None


def _load_source(source, name):
    # The file stays until the process ends: autograph reads a function's source when it traces it.
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    atexit.register(os.unlink, file.name)
    spec = importlib.util.spec_from_file_location(name, file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_op_module_at(revision, root):
    """The op module as it was at `revision`, imported under a name of its own.

    Its helper modules (`HELPER_MODULES`) are loaded as they were at `revision` as well, and stand
    in for the current ones only while the op module is executed, which binds their names.
    """
    source = _source_at(revision, OP_MODULE, root)
    if source is None:
        raise SystemExit(f"{OP_MODULE} does not exist at {revision}")
    replaced = {}
    try:
        for path in HELPER_MODULES:
            helper_source = _source_at(revision, path, root)
            if helper_source is None:
                continue
            name = path.removesuffix(".py").replace("/", ".")
            replaced[name] = sys.modules.get(name)
            helper = _load_source(helper_source, f"{name}_at_revision")
            sys.modules[name] = helper
        # A name inside the package, so that the module's relative imports (if any) resolve.
        return _load_source(source, "keras_adaptive_acts.ops._competitive_at_revision")
    finally:
        for name, module in replaced.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def step_runners(backend, functions, x, upstream, alpha, beta, calls_per_sample=1):
    """name -> (zero-argument timed callable, callable returning (output, gradients) as NumPy).

    On JAX each timed callable makes `calls_per_sample` calls and waits for them together.
    """
    import numpy as np

    runners = {}
    if backend == "tensorflow":
        import tensorflow as tf

        def make(function):
            @tf.function(jit_compile=True)
            def step(x, upstream, alpha, beta):
                with tf.GradientTape() as tape:
                    tape.watch([x, alpha, beta])
                    y = function(x, alpha, beta)
                return y, tape.gradient(y, [x, alpha, beta], output_gradients=upstream)

            # Fetching one entry of the input's gradient waits for the whole step.
            timed = lambda: step(x, upstream, alpha, beta)[1][0][0, 0, 0, 0].numpy()  # noqa: E731
            return timed, lambda: tf.nest.map_structure(np.asarray, step(x, upstream, alpha, beta))

    else:
        import jax

        def make(function):
            @jax.jit
            def step(x, upstream, alpha, beta):
                y, pullback = jax.vjp(function, x, alpha, beta)
                return y, pullback(upstream)

            # Several calls per timed sample, as activation_speed.py times JAX: one at a time, the
            # same function differed from itself by up to a quarter on a 2-core CPU.
            timed = lambda: jax.block_until_ready(  # noqa: E731
                [step(x, upstream, alpha, beta) for _ in range(calls_per_sample)]
            )
            return timed, lambda: jax.tree_util.tree_map(np.asarray, step(x, upstream, alpha, beta))

    for name, function in functions.items():
        runners[name] = make(function)
    return runners


def largest_difference(first, second):
    """The largest difference between two (output, gradients) results, relative to each array's scale."""
    import numpy as np

    def leaves(result):
        output, gradients = result
        return [output, *gradients]

    worst = 0.0
    for a, b in zip(leaves(first), leaves(second), strict=True):
        scale = max(float(np.max(np.abs(a))), 1e-30)
        worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale)
    return worst


def cnn_step_runners(modules, competitions, axis=None):
    """name -> zero-argument callable: one training step of activation_speed's small CNN (batch
    128, 32x32x3), with ReLU or with CompetitiveReLU running the op of each of `modules` (label ->
    op module)."""
    import keras
    from activation_speed import cnn_step_runners as runners_for

    import keras_adaptive_acts

    def layer_running(module, competition):
        class CompetitiveReLUWithOp(keras_adaptive_acts.CompetitiveReLU):
            def call(self, inputs):
                return module.unchecked_competitive_relu(*self._operands(inputs), **self._options())

        return lambda: CompetitiveReLUWithOp(competition=competition, axis=axis)

    activations = {"ReLU": keras.layers.ReLU}
    for competition in competitions:
        for label, module in modules.items():
            activations[f"{competition} at {label}"] = layer_running(module, competition)
    return runners_for(activations, batch=128, image=32)


def main(argv=None):
    arguments = parse_arguments(argv)
    os.environ["KERAS_BACKEND"] = arguments.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401  (fixes the backend before activation_speed, which sets its own default)
    import numpy as np

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from activation_speed import JAX_CALLS_PER_SAMPLE, median_ms, time_interleaved

    import keras_adaptive_acts.ops.competitive as current

    earlier = load_op_module_at(arguments.revision, os.path.dirname(here))
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal(arguments.shape, dtype=np.float32)
    upstream_host = rng.standard_normal(arguments.shape, dtype=np.float32)
    if arguments.backend == "tensorflow":
        import tensorflow as tf

        convert, relu = tf.constant, tf.nn.relu
    else:
        import jax
        import jax.numpy as jnp

        convert, relu = jnp.asarray, jax.nn.relu
    x, upstream = convert(x_host), convert(upstream_host)
    alpha, beta = convert(np.float32(0.3)), convert(np.float32(0.55))
    axes = arguments.axis or tuple(range(1, len(arguments.shape)))

    functions = {"ReLU": lambda x, alpha, beta: relu(x)}
    for competition in arguments.competitions:
        for label, module in ((arguments.revision, earlier), ("this tree", current)):

            def function(x, alpha, beta, module=module, competition=competition):
                return module.unchecked_competitive_relu(
                    x, alpha, beta, competition=competition, scale_bound=SCALE_BOUND, eps=EPS, axes=axes
                )

            functions[f"{competition} at {label}"] = function
    calls_per_sample = JAX_CALLS_PER_SAMPLE if arguments.backend == "jax" else 1
    runners = step_runners(arguments.backend, functions, x, upstream, alpha, beta, calls_per_sample)
    differences = {
        competition: largest_difference(
            runners[f"{competition} at {arguments.revision}"][1](),
            runners[f"{competition} at this tree"][1](),
        )
        for competition in arguments.competitions
    }
    times = time_interleaved(
        {name: timed for name, (timed, _) in runners.items()}, arguments.repeats, arguments.warmup
    )
    medians = {name: median_ms(seconds) / calls_per_sample for name, seconds in times.items()}

    command = shlex.join(["python", "benchmarks/op_against_revision.py", *(argv or sys.argv[1:])])
    load = os.getloadavg()
    lines = [
        f"`{command}`: {arguments.backend} backend, input {arguments.shape} float32"
        + (f" reduced over axes {arguments.axis}" if arguments.axis else "")
        + ", median of "
        f"{arguments.repeats} interleaved rounds"
        + (f" of {calls_per_sample} calls each (time per call)" if calls_per_sample > 1 else "")
        + f"; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at the end.",
        "",
        f"| competition | ms at {arguments.revision} | ms in this tree | this tree / {arguments.revision} "
        "| / ReLU before | / ReLU after | largest relative difference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    relu_ms = medians["ReLU"]
    for competition in arguments.competitions:
        before, after = (
            medians[f"{competition} at {arguments.revision}"],
            medians[f"{competition} at this tree"],
        )
        lines.append(
            f"| {competition} | {before:.2f} | {after:.2f} | {after / before:.3f} | {before / relu_ms:.2f} "
            f"| {after / relu_ms:.2f} | {differences[competition]:.1e} |"
        )
    lines.append(f"\nReLU: {relu_ms:.2f} ms.")
    if arguments.cnn:
        modules = {arguments.revision: earlier, "this tree": current}
        cnn_times = time_interleaved(
            cnn_step_runners(modules, arguments.competitions, arguments.axis),
            arguments.cnn_repeats,
            arguments.warmup,
        )
        cnn = {name: median_ms(seconds) for name, seconds in cnn_times.items()}
        lines += [
            "",
            "The small CNN's training step (`activation_speed.build_cnn`, batch 128, 32x32x3, "
            f"`train_on_batch`), median of {arguments.cnn_repeats} interleaved rounds, "
            f"load average {os.getloadavg()[0]:.2f} at the end:",
            "",
            f"| competition | ms at {arguments.revision} | ms in this tree "
            f"| this tree / {arguments.revision} | / ReLU before | / ReLU after |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for competition in arguments.competitions:
            before, after = cnn[f"{competition} at {arguments.revision}"], cnn[f"{competition} at this tree"]
            lines.append(
                f"| {competition} | {before:.1f} | {after:.1f} | {after / before:.3f} "
                f"| {before / cnn['ReLU']:.2f} | {after / cnn['ReLU']:.2f} |"
            )
        lines.append(f"\nReLU: {cnn['ReLU']:.1f} ms per step.")
    table = "\n".join(lines)
    print(table)
    if arguments.markdown:
        with open(arguments.markdown, "w") as file:
            file.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
