"""The `kaa` command line tool.

```
kaa compare                                   # the default activations on the digits dataset
kaa compare --activations relu,competitive_relu:competition=l1 --epochs 10 --seeds 5 --out results
python -m keras_adaptive_acts.cli compare --dataset my_data.npz
kaa export model.keras serving/my_model/1 --monte-carlo --verify
```
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

# Before Keras is imported: the TensorFlow backend unless the user chose another, and no TF C++ info
# logs. (Both only take effect if Keras/TensorFlow have not been imported yet in this process.)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "kaa"

_COMPARE_DESCRIPTION = """\
Train the same small network with each activation and each seed, on one fixed
train/test split, and compare them on the test set.

The network is Dense(64) -> activation -> Dense(64) -> activation -> Dense
(logits), trained with Adam(1e-3). For each activation the table shows test
accuracy (mean ± std over the seeds), test loss, the median time of a training
step (epochs after the first, which includes tracing) and the parameters the
activation adds to the ReLU network. With a given seed the Dense layers start from
the same weights for every activation.

An activation is a name, optionally followed by constructor arguments:
name:key=value:key=value. `relu` and `prelu` are Keras' ReLU and PReLU layers;
the other names are this package's layers (case and underscores are ignored)."""

_COMPARE_EPILOG = """\
examples:
  kaa compare
  kaa compare --activations relu,prelu,competitive_relu:init=competition:K=3
  kaa compare --epochs 10 --seeds 5 --out kaa-results
  kaa compare --dataset my_data.npz

A .npz dataset holds arrays x_train, y_train, x_test, y_test, or x, y (then
split 75/25, stratified by class). Features are flattened and used as given
(scale them yourself); labels are classes 0, 1, 2, ...

With --out DIR, DIR/results.json (every run, with its learning curves) and
DIR/summary.csv (the table) are written."""


_EXPORT_DESCRIPTION = """\
Export a .keras model as a SavedModel for TF Serving, and optionally verify it.

The SavedModel's 'serving_default' signature is the inference path: deterministic,
with the noisy layers' expectation. --monte-carlo adds a 'monte_carlo' signature
that keeps their noise on. --verify loads the SavedModel in a fresh Python process
that does not import this package, and with saved_model_cli run; it compares the
outputs with the Keras model's predict, checks that two calls agree and that the
graph has no random, Python or non-core op, and prints the signature."""

_EXPORT_EPILOG = """\
examples:
  kaa export model.keras serving/my_model/1
  kaa export model.keras serving/my_model/2 --monte-carlo --verify
  kaa export model.keras serving/my_model/2 --verify --sample batch.npz --overwrite

The sample (--sample) is a .npy array for a model with one input, or a .npz with
one array per input name. Without it, --verify uses 4 rows of standard normal
values. Exit status: 0 on success, 1 if the verification fails, 2 for bad input."""


class _UsageError(Exception):
    """A command line error, reported as one line and exit status 2."""


class _MissingDependency(Exception):
    """An optional dependency the command needs is not installed: one line, exit status 1."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach `main` (one line, no usage dump, no SystemExit)."""

    def error(self, message: str):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _activation_list(text: str) -> list[str]:
    specs = [spec.strip() for spec in text.split(",") if spec.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("give at least one activation, e.g. relu,competitive_relu")
    return specs


def _subcommand(commands, name: str, summary: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose description and epilog keep their line breaks."""
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The `kaa` argument parser, one subcommand per task."""
    from keras_adaptive_acts import __version__

    parser = _Parser(
        prog=PROG,
        description="keras-adaptive-acts: adaptive activation layers for Keras 3.",
        epilog="Run 'kaa COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    compare = _subcommand(
        commands,
        "compare",
        "compare activations on a dataset (accuracy, loss, step time, parameters)",
        _COMPARE_DESCRIPTION,
        _COMPARE_EPILOG,
    )
    compare.add_argument(
        "--dataset",
        default="digits",
        metavar="NAME|PATH.npz",
        help="'digits' (scikit-learn's 8x8 digits, 1797 images) or a .npz file (default: digits)",
    )
    compare.add_argument(
        "--activations",
        type=_activation_list,
        default=None,
        metavar="A,B,...",
        help="comma-separated activations (default: relu, competitive_relu and its l1 and count "
        "competitions)",
    )
    compare.add_argument(
        "--epochs", type=_positive_int, default=20, metavar="N", help="epochs per run (default: 20)"
    )
    compare.add_argument(
        "--seeds",
        type=_positive_int,
        default=3,
        metavar="N",
        help="runs per activation, with seeds 0 .. N-1 (default: 3)",
    )
    compare.add_argument(
        "--batch-size", type=_positive_int, default=64, metavar="N", help="batch size (default: 64)"
    )
    compare.add_argument("--out", metavar="DIR", help="write results.json and summary.csv to DIR")
    compare.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="Keras' fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: 0)",
    )
    compare.set_defaults(handler=_run_compare)

    export = _subcommand(
        commands,
        "export",
        "export a .keras model as a SavedModel for TF Serving, and verify it",
        _EXPORT_DESCRIPTION,
        _EXPORT_EPILOG,
    )
    export.add_argument(
        "model", metavar="MODEL.keras", help="the model to export (loaded with safe_mode=True)"
    )
    export.add_argument("path", metavar="DIR", help="the SavedModel directory to write, e.g. serving/name/1")
    export.add_argument("--monte-carlo", action="store_true", help="also write the 'monte_carlo' signature")
    export.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    export.add_argument("--verify", action="store_true", help="verify the SavedModel after writing it")
    export.add_argument("--sample", metavar="FILE", help="inputs for --verify: .npy or .npz (see below)")
    export.set_defaults(handler=_run_export)
    return parser


def _run_compare(args: argparse.Namespace) -> int:
    import keras

    from keras_adaptive_acts import __version__, compare

    specs = list(args.activations or compare.DEFAULT_ACTIVATIONS)
    # Everything the user typed is checked before the first model trains; errors raised later
    # (during training) are bugs and keep their traceback.
    try:
        labels = [compare.parse_activation(spec)[0] for spec in specs]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"activations given more than once: {', '.join(duplicates)}")
        data = compare.load_dataset(args.dataset)
    except ValueError as err:
        raise _UsageError(_one_line(err)) from None
    except ImportError as err:
        raise _MissingDependency(_one_line(err)) from None
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    backend = keras.backend.backend()

    print(
        f"dataset: {args.dataset} ({len(data.x_train)} train / {len(data.x_test)} test samples, "
        f"{data.x_train.shape[1]} features, {n_classes} classes)"
    )
    print(f"activations: {', '.join(labels)}")
    print(
        f"seeds: {', '.join(str(s) for s in range(args.seeds))} | epochs: {args.epochs} | "
        f"batch size: {args.batch_size} | Keras {keras.__version__}, {backend} backend"
    )
    print(flush=True)

    total = len(specs) * args.seeds
    width = max(len(label) for label in labels)
    done = 0

    def progress(record: dict) -> None:
        nonlocal done
        done += 1
        step = "n/a" if record["step_seconds"] is None else f"{record['step_seconds'] * 1000:.2f} ms"
        print(
            f"[{done:>{len(str(total))}}/{total}] {record['activation']:<{width}}  seed {record['seed']}  "
            f"accuracy {record['test_accuracy']:.4f}  loss {record['test_loss']:.4f}  "
            f"step {step}  fit {record['train_seconds']:.1f} s",
            flush=True,
        )

    start = time.perf_counter()
    records = compare.compare_activations(
        data,
        specs,
        epochs=args.epochs,
        seeds=args.seeds,
        batch_size=args.batch_size,
        verbose=args.verbose,
        on_result=progress,
    )
    elapsed = time.perf_counter() - start
    rows = compare.summarize(records)
    print()
    print(compare.format_table(rows))
    print()
    print(f"{len(records)} runs in {elapsed:.1f} s.")
    if args.out:
        meta = {
            "command": "compare",
            "dataset": str(args.dataset),
            "n_train": len(data.x_train),
            "n_test": len(data.x_test),
            "n_features": int(data.x_train.shape[1]),
            "n_classes": n_classes,
            "activations": labels,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "batch_size": args.batch_size,
            "keras_version": keras.__version__,
            "backend": backend,
            "keras_adaptive_acts_version": __version__,
            "seconds": elapsed,
        }
        json_path, csv_path = compare.write_results(records, rows, args.out, meta=meta)
        print(f"Results written to {json_path} and {csv_path}.")
    return 0


def _load_sample(path: str | None, model) -> object:
    import numpy as np

    if path is None:
        rng = np.random.default_rng(0)
        sample = {}
        for tensor in model.inputs:
            if any(dim is None for dim in tensor.shape[1:]):
                raise _UsageError(f"input {tensor.name!r} has shape {tensor.shape}: give --sample")
            sample[tensor.name] = rng.standard_normal((4, *tensor.shape[1:])).astype(tensor.dtype)
        return sample
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as err:
        raise _UsageError(f"cannot read the sample {path!r}: {_one_line(err)}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return {name: loaded[name] for name in loaded.files}


def _run_export(args: argparse.Namespace) -> int:
    import keras

    import keras_adaptive_acts  # noqa: F401 (registers the layers for loading)
    from keras_adaptive_acts import export

    if not args.model.endswith(".keras") or not os.path.isfile(args.model):
        raise _UsageError(f"MODEL must be an existing .keras file, got {args.model!r}")
    try:
        model = keras.saving.load_model(args.model, safe_mode=True)
        sample = _load_sample(args.sample, model) if args.verify else None
        path = export.export_for_serving(
            model, args.path, monte_carlo=args.monte_carlo, overwrite=args.overwrite
        )
    except FileExistsError:
        raise _UsageError(f"{args.path!r} exists: pass --overwrite to replace it") from None
    except (ValueError, RuntimeError) as err:
        raise _UsageError(_one_line(err)) from None
    signatures = [export.INFERENCE_SIGNATURE] + [export.MONTE_CARLO_SIGNATURE] * args.monte_carlo
    print(f"SavedModel written to {path} (signatures: {', '.join(signatures)}).")
    if not args.verify:
        return 0
    status = 0
    for signature in signatures:
        try:
            report = export.verify_serving(path, sample, model, signature=signature)
        except ValueError as err:
            raise _UsageError(_one_line(err)) from None
        except export.ServingVerificationError as failure:
            report, status = failure.report, 1
        print()
        print(report)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `kaa` command with `argv` (default: `sys.argv[1:]`) and returns its exit status.

    0 on success, 2 for bad input (reported as one `kaa: error: ...` line on stderr), 1 when an
    optional dependency is missing, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except _UsageError as err:  # bad activations or dataset, found before any training
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except _MissingDependency as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
