"""Narrow ReLU networks: the moment-initialised Keras model against the same model from random init.

The target is a planted network `f(x) = sum_i lambda_i relu(<u_i, x>)`, unit `u_i`, `|lambda_i|` drawn
from U(0.5, 1.5) with mixed signs, `x ~ N(0, I_d)`, no label noise (`make_planted_regression`). For each
configuration (d, k) and seed, one data set of N rows is drawn (float32 inputs) and every route is
trained on the same rows:

    configurations   (d, k) in {20, 50} x {2, 4, 6}, and the near-parallel case: units 0 and 1 at
                     0.1 rad from each other, at (d, k) = (20, 4) and (50, 4)
    samples          N = max(recommended_samples(d, k), 20_000) = max(20 d k^3, 20_000)
    seeds            0 .. 9 (`--seeds`): the seed of the data, of the learner and of Keras' init

Routes, all trained with the same budget: `train_square_loss` (the learner's own refinement), 8000 Adam
steps rounded up to whole epochs over all N rows, batch 256, learning rate 3e-3 decaying to 0 along a
cosine, no shuffling.

    contraction      NarrowReLULearner(k, seed=seed, refine_samples=None).fit(X, y), the learner as a
                     user gets it (`method="contraction"`, its default): moments, random contractions
                     merged modulo sign one neuron at a time, least-squares readout, then refinement of
                     the Keras model Dense(2k, relu, use_bias=False) -> Dense(1) initialised from it
    random-2k        keras.utils.set_random_seed(seed); narrow_relu_model(d, 2k) (Keras' default init,
                     the same model as the moment route's) trained with train_square_loss
    random-k         the same at width k: the narrow model one would write by hand
    jennrich         the learner with method="jennrich" (opt-in: `--routes`, see below)

The error is the exact relative population MSE, `relative_population_mse(target, network)`: the
closed-form E[(f - f_hat)^2] / Var[f] under x ~ N(0, I_d), with no sampling noise. A callback records
it at the start of training and at the end of every epoch (the learning curves); for a moment route
the readout error (`moment_network_`, before refinement) is recorded as well. A fit succeeds when its
final error is below 1e-3. Wall time is the whole `fit` for a moment route (input checks, moments,
directions, readout, refinement; the stage split is reported) and model construction plus training for
the random routes; the callback's own time (a few milliseconds) is included.

Reported per configuration and route: success rate, median final error, median readout error (moment
routes), median and maximum wall time per fit, samples used (N). The goal, checked in the report:
the moment route of the learner's default method succeeds on every seed of every d <= 50, k <= 6
configuration (the six non-parallel ones) with every fit under 60 s on this CPU; the near-parallel
case is reported but is not part of the goal. The gap to random initialisation is reported beside it.

The moment route of the goal is the learner's default method, whichever that is (`DEFAULT_METHOD`, read
from `NarrowReLULearner`'s signature), so that the benchmark measures what a user gets. The Jennrich route
is opt-in: it adds a third to the run time (the default run takes about 35 minutes on a 2-core CPU,
about 47 with it).

Usage:
    python benchmarks/narrow_relu.py [--seeds 0 1 ...] [--configs d20k2 ...] [--routes contraction ...]
        [--quick] [--json PATH] [--markdown PATH] [--plot PATH]

`--quick` runs 2 seeds with N = 4000 and 500 steps: a smoke run whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import statistics
import sys
import time
import warnings

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from activation_speed import add_output_arguments, machine_description, publish

from keras_adaptive_acts.narrow import (
    NarrowReLULearner,
    make_planted_regression,
    narrow_relu_model,
    network_from_keras,
    recommended_samples,
    relative_population_mse,
    train_square_loss,
)
from keras_adaptive_acts.narrow.learner import METHODS, scaled_network

# Every fit builds a new model, so Keras traces new functions by design: TF's retracing warning is noise.
tf.get_logger().setLevel("ERROR")

STEPS, BATCH, LEARNING_RATE = 8000, 256, 3e-3  # the learner's refinement defaults
MIN_SAMPLES = 20_000
QUICK = {"samples": 4000, "steps": 500, "seeds": (0, 1)}
SUCCESS = 1e-3  # final relative population MSE below this is a success
TIME_GOAL = 60.0  # seconds per fit of a moment route
PARALLEL_ANGLE = 0.1  # radians between units 0 and 1 in the near-parallel configurations
PLOT_FLOOR = 1e-12  # errors are drawn no lower than this on the log axes
DEFAULT_PLOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "docs", "assets", "narrow-relu.png"
)
DEFAULT_SEEDS = tuple(range(10))
CURVE_CONFIG = "d50k6"  # the configuration of the learning-curve panel

CONFIGS = {
    f"d{d}k{k}": {"d": d, "k": k, "pairs": 0, "label": f"d={d}, k={k}"} for d in (20, 50) for k in (2, 4, 6)
}
CONFIGS.update(
    {
        f"d{d}k4-parallel": {"d": d, "k": 4, "pairs": 1, "label": f"d={d}, k=4, near-parallel"}
        for d in (20, 50)
    }
)
GOAL_CONFIGS = tuple(name for name, config in CONFIGS.items() if config["pairs"] == 0)

# A moment route is named by the learner's `method` it runs; the goal is judged on the learner's default.
DEFAULT_METHOD = inspect.signature(NarrowReLULearner).parameters["method"].default
ROUTES = {
    "contraction": "moments (contraction) + refinement, width 2k",
    "jennrich": "moments (Jennrich) + refinement, width 2k",
    "random-2k": "random init, width 2k",
    "random-k": "random init, width k",
}
MOMENT_ROUTES = METHODS  # the learner's methods, one route each
DEFAULT_ROUTES = (DEFAULT_METHOD, "random-2k", "random-k")
COLORS = {
    "contraction": "tab:blue",
    "jennrich": "tab:green",
    "random-2k": "tab:orange",
    "random-k": "tab:red",
}


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


class ErrorCurve(keras.callbacks.Callback):
    """Records the exact relative population error of the model at the start and after every epoch.

    Epoch ends only: a batch-level hook would make Keras dispatch every step synchronously and so
    change the time being measured. `learner`: the `NarrowReLULearner` whose refinement this watches.
    It trains its model on the targets centred and scaled (`target_offset_`, `target_scale_`, set
    before the refinement starts), so its networks are mapped back to the targets' units as the
    learner maps its own; the random routes train on the targets as they are.
    """

    def __init__(self, target, learner=None):
        super().__init__()
        self.target, self.learner = target, learner
        self.steps, self.errors = [], []
        self.seconds = 0.0

    def _record(self, step):
        start = time.perf_counter()
        self.steps.append(step)
        network = network_from_keras(self.model)
        if self.learner is not None:
            network = scaled_network(network, self.learner.target_scale_, self.learner.target_offset_)
        self.errors.append(relative_population_mse(self.target, network))
        self.seconds += time.perf_counter() - start

    def on_train_begin(self, logs=None):
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record((epoch + 1) * self.params["steps"])


def run_moments(X, y, target, k, seed, steps, method):
    learner = NarrowReLULearner(k, seed=seed, method=method, refine_steps=steps, refine_samples=None)
    curve = ErrorCurve(target, learner)
    start = time.perf_counter()
    learner.fit(X, y, callbacks=[curve])
    seconds = time.perf_counter() - start
    return {
        "final_error": relative_population_mse(target, learner.network_),
        "readout_error": relative_population_mse(target, learner.moment_network_),
        "seconds": seconds,
        "stage_seconds": dict(learner.fit_seconds_),
        "curve_steps": curve.steps,
        "curve_errors": curve.errors,
        "callback_seconds": curve.seconds,
    }


def run_random(X, y, target, width, seed, steps):
    curve = ErrorCurve(target)
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = narrow_relu_model(X.shape[1], width)
    train_square_loss(
        model, X, y, steps=steps, batch_size=BATCH, learning_rate=LEARNING_RATE, callbacks=[curve]
    )
    seconds = time.perf_counter() - start
    return {
        "final_error": relative_population_mse(target, network_from_keras(model)),
        "seconds": seconds,
        "curve_steps": curve.steps,
        "curve_errors": curve.errors,
        "callback_seconds": curve.seconds,
    }


def run_route(route, X, y, target, k, seed, steps):
    if route in MOMENT_ROUTES:
        return run_moments(X, y, target, k, seed, steps, method=route)
    return run_random(X, y, target, 2 * k if route == "random-2k" else k, seed, steps)


def samples_for(config, quick):
    return QUICK["samples"] if quick else max(recommended_samples(config["d"], config["k"]), MIN_SAMPLES)


def run_all(configs, routes, seeds, quick):
    """{config: {route: [run per seed]}}; the routes of one seed run back to back on the same data."""
    steps = QUICK["steps"] if quick else STEPS
    runs = {}
    for name in configs:
        config = CONFIGS[name]
        n = samples_for(config, quick)
        runs[name] = {route: [] for route in routes}
        for seed in seeds:
            X, y, target = make_planted_regression(
                n,
                config["d"],
                config["k"],
                near_parallel_pairs=config["pairs"],
                parallel_angle=PARALLEL_ANGLE,
                dtype="float32",
                seed=seed,
            )
            for route in routes:
                with warnings.catch_warnings():
                    if quick:  # the smoke run's N is below the learner's recommendation on purpose
                        warnings.filterwarnings("ignore", message=".*samples of dimension.*")
                    run = run_route(route, X, y, target, config["k"], seed, steps)
                run.update(seed=seed, samples=n, steps=run["curve_steps"][-1])
                runs[name][route].append(run)
                readout = f", readout {run['readout_error']:.2e}" if "readout_error" in run else ""
                print(
                    f"{name:>14} {route:>11} seed {seed}: final {run['final_error']:.2e}{readout}, "
                    f"{run['seconds']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


# ---------------------------------------------------------------------------------------------
# Summary and report
# ---------------------------------------------------------------------------------------------


def summarise(runs):
    summary = {}
    for name, by_route in runs.items():
        summary[name] = {}
        for route, route_runs in by_route.items():
            finals = [run["final_error"] for run in route_runs]
            seconds = [run["seconds"] for run in route_runs]
            entry = {
                "fits": len(route_runs),
                "successes": sum(error < SUCCESS for error in finals),
                "median_final_error": statistics.median(finals),
                "max_final_error": max(finals),
                "median_seconds": statistics.median(seconds),
                "max_seconds": max(seconds),
                "samples": route_runs[0]["samples"],
                "steps": route_runs[0]["steps"],
            }
            if route in MOMENT_ROUTES:
                entry["median_readout_error"] = statistics.median(run["readout_error"] for run in route_runs)
                entry["median_stage_seconds"] = {
                    stage: statistics.median(run["stage_seconds"][stage] for run in route_runs)
                    for stage in route_runs[0]["stage_seconds"]
                }
                # The rest of `fit`: bookkeeping (and, before `fit_seconds_` had a "checks" stage, the checks)
                entry["median_stage_seconds"]["other"] = statistics.median(
                    run["seconds"] - sum(run["stage_seconds"].values()) for run in route_runs
                )
                entry["median_stage_seconds"].setdefault("checks", 0.0)
            summary[name][route] = entry
    return summary


def goal_verdict(summary):
    """The goal on the configurations of the run among the six non-parallel ones, or None without any."""
    names = [name for name in GOAL_CONFIGS if name in summary and DEFAULT_METHOD in summary[name]]
    if not names:
        return None
    entries = [summary[name][DEFAULT_METHOD] for name in names]
    successes, fits = sum(e["successes"] for e in entries), sum(e["fits"] for e in entries)
    slowest = max(e["max_seconds"] for e in entries)
    return {
        "configs": names,
        "successes": successes,
        "fits": fits,
        "max_seconds": slowest,
        "all_succeed": successes == fits,
        "all_fast": slowest < TIME_GOAL,
        "verdict": "PASS" if successes == fits and slowest < TIME_GOAL else "MISS",
        "complete": len(names) == len(GOAL_CONFIGS),
    }


def error_text(value):
    return f"{value:.1e}"


def markdown_report(results):
    summary, machine, verdict = results["summary"], results["machine"], results["goal"]
    routes, seeds = results["routes"], results["seeds"]
    quick = " **Smoke run (`--quick`): these figures mean nothing.**" if results["quick"] else ""
    samples = f"{QUICK['samples']:,}" if results["quick"] else f"max(20 d k^3, {MIN_SAMPLES:,})"
    lines = [
        "## Narrow ReLU learner: moment initialisation against random initialisation",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"keras-adaptive-acts {machine['keras_adaptive_acts']}.",
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all).{quick}",
        "",
        "Setup: planted targets `f(x) = sum_i lambda_i relu(<u_i, x>)`, unit `u_i`, `|lambda_i|` from "
        "U(0.5, 1.5) with mixed signs, `x ~ N(0, I_d)`, no label noise; near-parallel: units 0 and 1 at "
        f"{PARALLEL_ANGLE:g} rad. N = {samples} float32 rows per (configuration, seed), shared by every "
        f"route; seeds {', '.join(map(str, seeds))}. Every route trains "
        "`Dense(width, relu, use_bias=False) -> Dense(1)` with `train_square_loss`: Adam, learning rate "
        f"{LEARNING_RATE:g} with cosine decay to 0, batch {BATCH}, {results['steps']} steps rounded up to "
        "whole epochs over all N rows. The moment routes start from `NarrowReLULearner`'s estimate "
        "(moments, directions by the `method` the route is named after, least-squares readout); "
        f"`{DEFAULT_METHOD}` is the learner's default. The random routes start from Keras' default "
        "initialisation after `keras.utils.set_random_seed(seed)`. Error: the exact relative population "
        f"MSE (closed form, no sampling); success: final error < {SUCCESS:g}. Wall time: the whole `fit` "
        "of a moment route (moments and refinement), model construction and training for the random "
        "routes.",
        "",
    ]
    if verdict is not None:
        lines += verdict_lines(summary, verdict, routes)
    lines += [
        "",
        "### All configurations",
        "",
        "| configuration | N | steps | route | success | median final error | worst final error "
        "| median readout error | median s per fit (max) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, by_route in summary.items():
        for route, entry in by_route.items():
            readout = error_text(entry["median_readout_error"]) if "median_readout_error" in entry else "—"
            lines.append(
                f"| {CONFIGS[name]['label']} | {entry['samples']:,} | {entry['steps']} | {ROUTES[route]} | "
                f"{entry['successes']}/{entry['fits']} | {error_text(entry['median_final_error'])} | "
                f"{error_text(entry['max_final_error'])} | {readout} | "
                f"{entry['median_seconds']:.1f} ({entry['max_seconds']:.1f}) |"
            )
    moment_routes = [route for route in MOMENT_ROUTES if route in routes]
    if moment_routes:
        lines += [
            "",
            "Where the moment route's time goes (median seconds per fit, from `fit_seconds_`; `checks` are "
            "the input checks (finite values, the Gaussian check); `refine` is the same training as the "
            "random routes'; `other` is the rest of `fit`):",
            "",
            "| configuration | route | checks | moments | directions | readout | refine | other | fit |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, by_route in summary.items():
            for route in moment_routes:
                entry = by_route[route]
                stages = entry["median_stage_seconds"]
                lines.append(
                    f"| {CONFIGS[name]['label']} | {route} | {stages['checks']:.2f} | "
                    f"{stages['moments']:.2f} | "
                    f"{stages['directions']:.3f} | {stages['readout']:.2f} | {stages['refine']:.1f} | "
                    f"{stages['other']:.2f} | {entry['median_seconds']:.1f} |"
                )
    if results["plot"] == os.path.normpath(DEFAULT_PLOT):  # the figure the docs page shows
        lines += [
            "",
            "![Top: median relative population error against the optimizer step at d=50, k=6, with the "
            "interquartile band over the seeds, for each route; the moment route's readout error is its "
            "starting point. Bottom: the final error of every fit, per configuration and route, with the "
            "success threshold 1e-3.](assets/narrow-relu.png)",
        ]
    return "\n".join(lines) + "\n"


def verdict_lines(summary, verdict, routes):
    status = "" if verdict["complete"] else " (only part of the goal's configurations were run)"
    lines = [
        "### Goal verdict",
        "",
        f"Goal: the moment route of the learner's default method (`{DEFAULT_METHOD}`) succeeds on every "
        "seed at every d <= 50, k <= 6 configuration (the "
        f"{len(GOAL_CONFIGS)} non-parallel ones), each fit in under {TIME_GOAL:.0f} s on this CPU. "
        f"**{verdict['verdict']}**{status}: {verdict['successes']}/{verdict['fits']} fits succeed "
        f"({'all' if verdict['all_succeed'] else 'not all'}), the slowest fit took "
        f"{verdict['max_seconds']:.1f} s ({'under' if verdict['all_fast'] else 'over'} {TIME_GOAL:.0f} s). "
        "The near-parallel configurations are reported below but are not part of the goal.",
        "",
        "The gap to random initialisation, with the same model, data and training budget "
        "(success rate, median final error):",
        "",
        "| configuration | " + " | ".join(ROUTES[route] for route in routes) + " |",
        "|---" + "|---:" * len(routes) + "|",
    ]
    for name, by_route in summary.items():
        cells = [
            f"{by_route[route]['successes']}/{by_route[route]['fits']}, "
            f"{error_text(by_route[route]['median_final_error'])}"
            for route in routes
        ]
        lines.append(f"| {CONFIGS[name]['label']} | " + " | ".join(cells) + " |")
    totals = []
    for route in routes:
        entries = [summary[name][route] for name in verdict["configs"]]
        totals.append(f"{sum(e['successes'] for e in entries)}/{sum(e['fits'] for e in entries)}")
    lines.append("| **goal configurations in all** | " + " | ".join(totals) + " |")
    return lines


# ---------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------


def draw_plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, routes = results["runs"], results["routes"]
    curve_config = CURVE_CONFIG if CURVE_CONFIG in runs else list(runs)[-1]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.0, 10.5))

    for route in routes:
        route_runs = runs[curve_config][route]
        steps = np.asarray(route_runs[0]["curve_steps"])
        errors = np.maximum(np.asarray([run["curve_errors"] for run in route_runs]), PLOT_FLOOR)
        low, median, high = np.percentile(errors, [25, 50, 75], axis=0)
        top.plot(steps, median, color=COLORS[route], label=ROUTES[route], marker=".", lw=1.8)
        top.fill_between(steps, low, high, color=COLORS[route], alpha=0.2, lw=0)
        if route in MOMENT_ROUTES:
            readout = statistics.median(run["readout_error"] for run in route_runs)
            top.plot(
                [0], [max(readout, PLOT_FLOOR)], marker="*", ms=14, color=COLORS[route], ls="none",
                label=f"{route}: readout error (the moment estimate)",
            )  # fmt: skip
    top.axhline(SUCCESS, color="black", ls="--", lw=1, label=f"success threshold {SUCCESS:g}")
    top.set_yscale("log")
    top.set_xlabel("optimizer step (error recorded at the end of every epoch)")
    top.set_ylabel(f"relative population MSE\n(values below {PLOT_FLOOR:g} drawn at {PLOT_FLOOR:g})")
    config = CONFIGS[curve_config]
    top.set_title(
        f"Learning curves at {config['label']} (N = {runs[curve_config][routes[0]][0]['samples']:,}): "
        f"median and interquartile band over {len(results['seeds'])} seed{'s' * (len(results['seeds']) > 1)}",
        fontsize=10,
    )
    top.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    top.grid(True, which="major", alpha=0.3)

    names = list(runs)
    rng = np.random.default_rng(0)
    width = 0.8 / len(routes)
    for position, name in enumerate(names):
        for index, route in enumerate(routes):
            finals = np.maximum([run["final_error"] for run in runs[name][route]], PLOT_FLOOR)
            x = position - 0.4 + width * (index + 0.5) + rng.uniform(-0.3, 0.3, len(finals)) * width
            bottom.scatter(
                x,
                finals,
                s=16,
                color=COLORS[route],
                alpha=0.75,
                label=ROUTES[route] if position == 0 else None,
            )
    bottom.axhline(SUCCESS, color="black", ls="--", lw=1, label=f"success threshold {SUCCESS:g}")
    bottom.set_yscale("log")
    bottom.set_xticks(range(len(names)))
    bottom.set_xticklabels(
        [CONFIGS[name]["label"].replace(", near", ",\nnear") for name in names], fontsize=8
    )
    bottom.set_xlabel("configuration")
    bottom.set_ylabel(f"final relative population MSE\n(values below {PLOT_FLOOR:g} drawn at {PLOT_FLOOR:g})")
    bottom.set_title(
        f"Final error of every fit (same data and budget per seed; below {SUCCESS:g} is a success)",
        fontsize=10,
    )
    bottom.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    bottom.grid(True, axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 .. 9)")
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=None, help="configurations (default: all)"
    )
    parser.add_argument(
        "--routes",
        nargs="+",
        choices=list(ROUTES),
        default=None,
        help=f"routes (default: {' '.join(DEFAULT_ROUTES)})",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, N = 4000, 500 steps: a smoke run")
    add_output_arguments(parser)
    parser.add_argument(
        "--plot", metavar="PATH", default=DEFAULT_PLOT, help="write the figure here (default: docs/assets)"
    )
    parser.add_argument("--no-plot", action="store_true", help="draw no figure")
    args = parser.parse_args()
    if args.seeds is None:
        args.seeds = list(QUICK["seeds"] if args.quick else DEFAULT_SEEDS)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error("--seeds must be distinct and >= 0")
    args.configs = [name for name in CONFIGS if name in (args.configs or CONFIGS)]
    args.routes = [route for route in ROUTES if route in (args.routes or DEFAULT_ROUTES)]
    return args


def main():
    args = parse_args()
    begin = time.perf_counter()
    runs = run_all(args.configs, args.routes, args.seeds, args.quick)
    summary = summarise(runs)
    results = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "seeds": args.seeds,
        "configs": args.configs,
        "routes": args.routes,
        "steps": QUICK["steps"] if args.quick else STEPS,
        "machine": machine_description(include_jax=False),
        "runs": runs,
        "summary": summary,
        "goal": goal_verdict(summary),
        "total_seconds": time.perf_counter() - begin,
        "plot": None if args.no_plot else os.path.normpath(args.plot),
    }
    if results["plot"]:
        draw_plot(results, results["plot"])
    publish(markdown_report(results), results, args)


if __name__ == "__main__":
    main()
