"""The narrow ReLU learner at scale: success, time and peak memory for every d <= 100 and k <= 8.

Issue 20's goal: the moment route (`NarrowReLULearner` as a user gets it: moments, directions by its
default `method`, least-squares readout, then refinement) succeeds on 10 seeds at every configuration
with d in {20, 50, 100} and k in {2, 4, 6, 8}, each fit in under 60 s on the 2-core CPU, and the
table says how its time and peak memory grow with d, k and N. The data, the learner's settings and
the success threshold are those of `narrow_relu.py` beside this file (planted targets,
N = max(20 d k^3, 20,000) rows, 8000 refinement steps, final relative population MSE < 1e-3).

Each configuration runs in a fresh process of this script (`--one d k`), so that its peak
resident memory (the process's `ru_maxrss`: the data, the moments and TensorFlow together) is its
own; the wall time of a fit is measured inside, as in `narrow_relu.py`. A second sweep varies N
alone at d = 50, k = 6 (0.5x to 4x the recommended N, 3 seeds) to separate N's share.

Usage:
    python benchmarks/narrow_scale.py [--quick] [--method M] [--json PATH] [--markdown PATH]
        [--plot PATH | --no-plot]

`--method jennrich` measures the other method instead of the default (`narrow_relu.DEFAULT_METHOD`).

`--quick` runs two small configurations with 2 seeds and 500 steps: a smoke run, figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
import warnings

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DIMENSIONS, WIDTHS = (20, 50, 100), (2, 4, 6, 8)
SEEDS = tuple(range(10))
N_SWEEP = {"d": 50, "k": 6, "factors": (0.5, 1.0, 2.0, 4.0), "seeds": (0, 1, 2)}
QUICK = {"configs": ((20, 2), (20, 4)), "seeds": (0, 1), "steps": 500, "n_factors": (1.0,)}
DEFAULT_PLOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "docs", "assets", "narrow-scale.png"
)


def run_one(d, k, seeds, factor, steps, method):
    """Fits of the moment route at one (d, k, N factor), in this process: a list of run dicts."""
    import narrow_relu

    from keras_adaptive_acts.narrow import make_planted_regression

    n = int(factor * narrow_relu.samples_for({"d": d, "k": k}, quick=False))
    runs = []
    for seed in seeds:
        X, y, target = make_planted_regression(
            n,
            d,
            k,
            near_parallel_pairs=0,
            parallel_angle=narrow_relu.PARALLEL_ANGLE,
            dtype="float32",
            seed=seed,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*samples of dimension.*")  # factor < 1 on purpose
            run = narrow_relu.run_moments(X, y, target, k, seed, steps, method)
        runs.append(
            {
                "seed": seed,
                "samples": n,
                "final_error": run["final_error"],
                "seconds": run["seconds"],
                "stage_seconds": run["stage_seconds"],
            }
        )
        print(
            f"d={d} k={k} N={n} seed {seed}: final {run['final_error']:.2e}, {run['seconds']:.1f} s",
            file=sys.stderr,
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    return {"d": d, "k": k, "factor": factor, "samples": n, "runs": runs, "peak_rss_mib": peak_mib}


def run_in_subprocess(d, k, seeds, factor, steps, method):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--one",
        str(d),
        str(k),
        "--factor",
        str(factor),
        "--steps",
        str(steps),
        "--method",
        method,
        "--seeds",
        *map(str, seeds),
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(entry):
    import narrow_relu

    seconds = [run["seconds"] for run in entry["runs"]]
    successes = sum(run["final_error"] < narrow_relu.SUCCESS for run in entry["runs"])
    stages = {}
    for run in entry["runs"]:
        for stage, value in run["stage_seconds"].items():
            stages.setdefault(stage, []).append(value)
    return {
        "successes": successes,
        "fits": len(entry["runs"]),
        "worst_error": max(run["final_error"] for run in entry["runs"]),
        "median_seconds": sorted(seconds)[len(seconds) // 2],
        "max_seconds": max(seconds),
        "median_stage_seconds": {stage: sorted(v)[len(v) // 2] for stage, v in stages.items()},
    }


def markdown_report(results):
    import narrow_relu

    machine = results["machine"]
    lines = [
        "## Narrow ReLU learner at scale",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"keras-adaptive-acts {machine['keras_adaptive_acts']}.",
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all).",
        "",
        f'The moment route of `narrow_relu.py` (`method="{results["method"]}"`, least-squares readout, '
        f"{results['steps']} refinement steps), N = max(20 d k^3, 20,000) rows, seeds "
        f"{', '.join(map(str, results['seeds']))}; success: final relative population MSE < "
        f"{narrow_relu.SUCCESS:g}. Time: the whole `fit`, median and slowest over the seeds; its stages "
        "are medians. Peak memory: the largest resident set of the process that ran the "
        "configuration (data, moments and TensorFlow).",
        "",
        "| d | k | N | successes | worst error | fit s (median) | fit s (slowest) | moments s | refine s "
        "| peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["grid"]:
        s = entry["summary"]
        stages = s["median_stage_seconds"]
        lines.append(
            f"| {entry['d']} | {entry['k']} | {entry['samples']:,} | {s['successes']}/{s['fits']} | "
            f"{s['worst_error']:.1e} | {s['median_seconds']:.1f} | {s['max_seconds']:.1f} | "
            f"{stages.get('moments', float('nan')):.1f} | {stages.get('refine', float('nan')):.1f} | "
            f"{entry['peak_rss_mib']:.0f} |"
        )
    goal = results["goal"]
    lines += [
        "",
        f"**Goal** (every fit succeeds, each under {narrow_relu.TIME_GOAL:.0f} s): **{goal['verdict']}**, "
        f"{goal['successes']}/{goal['fits']} fits succeed, the slowest took {goal['max_seconds']:.1f} s.",
        "",
        f"N alone, at d = {results['n_sweep'][0]['d']}, k = {results['n_sweep'][0]['k']} "
        f"(seeds {', '.join(map(str, results['n_sweep_seeds']))}):",
        "",
        "| N / recommended | N | successes | fit s (median) | moments s | refine s | peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["n_sweep"]:
        s = entry["summary"]
        stages = s["median_stage_seconds"]
        lines.append(
            f"| {entry['factor']:g} | {entry['samples']:,} | {s['successes']}/{s['fits']} | "
            f"{s['median_seconds']:.1f} | {stages.get('moments', float('nan')):.1f} | "
            f"{stages.get('refine', float('nan')):.1f} | {entry['peak_rss_mib']:.0f} |"
        )
    if results["plot"]:
        lines += [
            "",
            "![Fit time and peak memory against d, per k, and against N.]"
            f"(assets/{os.path.basename(results['plot'])})",
        ]
    return "\n".join(lines) + "\n"


def draw_plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis, n_axis) = plt.subplots(1, 3, figsize=(13, 4))
    for k in sorted({entry["k"] for entry in results["grid"]}):
        entries = [entry for entry in results["grid"] if entry["k"] == k]
        ds = [entry["d"] for entry in entries]
        time_axis.plot(ds, [entry["summary"]["median_seconds"] for entry in entries], "o-", label=f"k={k}")
        memory_axis.plot(ds, [entry["peak_rss_mib"] for entry in entries], "o-", label=f"k={k}")
    time_axis.axhline(60, color="gray", linestyle="--", label="60 s goal")
    time_axis.set(xlabel="d", ylabel="fit time, s (median over seeds)", title="time")
    memory_axis.set(xlabel="d", ylabel="peak resident memory, MiB", title="memory")
    sweep = results["n_sweep"]
    n_axis.plot(
        [e["samples"] for e in sweep], [e["summary"]["median_seconds"] for e in sweep], "o-", label="fit s"
    )
    n_twin = n_axis.twinx()
    n_twin.plot(
        [e["samples"] for e in sweep], [e["peak_rss_mib"] for e in sweep], "s--", color="tab:red", label="MiB"
    )
    d, k = sweep[0]["d"], sweep[0]["k"]
    n_axis.set(xscale="log", xlabel="N (rows)", ylabel="fit time, s", title=f"N alone (d={d}, k={k})")
    n_twin.set_ylabel("peak resident memory, MiB")
    for axis in (time_axis, memory_axis):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args():
    import narrow_relu
    from activation_speed import add_output_arguments

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two small configurations, 2 seeds, 500 steps")
    parser.add_argument("--one", nargs=2, type=int, metavar=("D", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--factor", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 .. 9)")
    parser.add_argument(
        "--method",
        choices=narrow_relu.MOMENT_ROUTES,
        default=None,
        help=f"the learner's method (default: its own, {narrow_relu.DEFAULT_METHOD})",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--plot", metavar="PATH", default=DEFAULT_PLOT, help="the figure (default: docs/assets)"
    )
    parser.add_argument("--no-plot", action="store_true", help="draw no figure")
    return parser.parse_args()


def main():
    args = parse_args()
    import narrow_relu

    method = args.method or narrow_relu.DEFAULT_METHOD
    if args.one:  # a child process: one configuration, its runs as one JSON line on stdout
        print(json.dumps(run_one(*args.one, args.seeds, args.factor, args.steps, method)))
        return
    from activation_speed import machine_description, publish

    begin = time.perf_counter()
    steps = QUICK["steps"] if args.quick else narrow_relu.STEPS
    seeds = tuple(args.seeds) if args.seeds else (QUICK["seeds"] if args.quick else SEEDS)
    configs = QUICK["configs"] if args.quick else [(d, k) for d in DIMENSIONS for k in WIDTHS]
    grid = [run_in_subprocess(d, k, seeds, 1.0, steps, method) for d, k in configs]
    sweep_seeds = QUICK["seeds"] if args.quick else N_SWEEP["seeds"]
    factors = QUICK["n_factors"] if args.quick else N_SWEEP["factors"]
    sweep_config = configs[0] if args.quick else (N_SWEEP["d"], N_SWEEP["k"])
    n_sweep = [run_in_subprocess(*sweep_config, sweep_seeds, factor, steps, method) for factor in factors]
    for entry in grid + n_sweep:
        entry["summary"] = summarise(entry)
    fits = sum(entry["summary"]["fits"] for entry in grid)
    successes = sum(entry["summary"]["successes"] for entry in grid)
    slowest = max(entry["summary"]["max_seconds"] for entry in grid)
    verdict = "PASS" if successes == fits and slowest < narrow_relu.TIME_GOAL else "MISS"
    results = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "steps": steps,
        "method": method,
        "seeds": list(seeds),
        "n_sweep_seeds": list(sweep_seeds),
        "machine": machine_description(include_jax=False),
        "grid": grid,
        "n_sweep": n_sweep,
        "goal": {"fits": fits, "successes": successes, "max_seconds": slowest, "verdict": verdict},
        "total_seconds": time.perf_counter() - begin,
        "plot": None
        if args.no_plot or (args.quick and args.plot == DEFAULT_PLOT)
        else os.path.normpath(args.plot),
    }
    if results["plot"]:
        draw_plot(results, results["plot"])
    publish(markdown_report(results), results, args)


if __name__ == "__main__":
    main()
