"""The bodies of the `kaa` commands; the arguments and start-up are in `keras_adaptive_acts_cli`.

`kaa` (and `python -m keras_adaptive_acts.cli`) parse the command line in `keras_adaptive_acts_cli`,
which needs no Keras, and call `COMMANDS[name](args)` here only when a command runs.

```
kaa compare                                   # the default activations on the digits dataset
kaa compare --activations relu,competitive_relu:competition=l1 --epochs 10 --seeds 5 --out results
python -m keras_adaptive_acts.cli compare --dataset my_data.npz --out my-results
kaa compare --epochs 10 --overwrite           # replaces the results of the first line
kaa tune --activations relu,competitive_relu,rrelu --trials 20
kaa export model.keras serving/my_model/1 --monte-carlo --verify
kaa export model.keras my_model.onnx --format onnx --verify
```
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

from keras_adaptive_acts_cli import PROG, MissingDependency, UsageError, main, one_line

__all__ = ["COMMANDS", "main"]


def _run_compare(args: argparse.Namespace) -> int:
    import keras

    from keras_adaptive_acts import __version__, compare

    specs = list(args.activations or compare.DEFAULT_ACTIVATIONS)
    # Everything the user typed is checked before the first model trains; errors raised later
    # (during training) are bugs and keep their traceback.
    try:
        parsed = [compare.parse_activation(spec) for spec in specs]
        labels = [label for label, _ in parsed]
        repeated = compare.repeated_activations(parsed)
        if repeated:
            same = "; ".join(" and ".join(group) for group in repeated)
            raise ValueError(f"activations given more than once (the same layer each time): {same}")
        data = compare.load_dataset(args.dataset)
        _make_folder(args.out, "--out", files=_OUT_FILES)
        if not args.overwrite:
            _refuse_earlier_results(args.out)
    except ValueError as err:
        raise UsageError(one_line(err)) from None
    except ImportError as err:
        raise MissingDependency(one_line(err)) from None
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    backend = keras.backend.backend()

    print(
        f"dataset: {args.dataset} ({len(data.x_train)} train / {len(data.x_test)} test samples, "
        f"{data.x_train.shape[1]} features, {n_classes} classes)"
    )
    print(f"activations: {', '.join(labels)}")
    print(
        f"seeds: {_seed_list(args.seeds)} | epochs: {args.epochs} | "
        f"batch size: {args.batch_size} | Keras {keras.__version__}, {backend} backend"
    )
    print(flush=True)

    total = len(specs) * args.seeds
    width = max(len(label) for label in labels)
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
        "seconds": 0.0,
        "runs_planned": total,
        "complete": False,
    }
    records: list[dict] = []
    saved = 0  # the runs in the files: an interrupt while they are written leaves the earlier ones
    start = time.perf_counter()

    def save(complete: bool) -> tuple[Path, Path]:
        nonlocal saved
        meta.update(seconds=time.perf_counter() - start, complete=complete)
        paths = compare.write_results(records, compare.summarize(records), args.out, meta=meta)
        saved = len(records)
        return paths

    def progress(record: dict) -> None:
        records.append(record)
        save(complete=False)  # before the line: once "[k/N]" shows, k runs are on disk
        step = "n/a" if record["step_seconds"] is None else f"{record['step_seconds'] * 1000:.2f} ms"
        print(
            f"[{len(records):>{len(str(total))}}/{total}] {record['activation']:<{width}}  "
            f"seed {record['seed']}  accuracy {record['test_accuracy']:.4f}  "
            f"loss {record['test_loss']:.4f}  step {step}  fit {record['train_seconds']:.1f} s",
            flush=True,
        )
        stop.check()  # between runs: an interrupt swallowed outside a batch stops here

    # The plot is drawn once, at the end: one left by an earlier run (--overwrite) must not sit beside
    # these results meanwhile.
    plot_path = Path(args.out) / "curves.png"
    plot_path.unlink(missing_ok=True)
    json_path = Path(args.out) / "results.json"
    with compare.stop_on_interrupt() as stop:
        try:
            save(complete=False)  # no run yet: the earlier run's files are replaced at once
            compare.compare_activations(
                data,
                specs,
                epochs=args.epochs,
                seeds=args.seeds,
                batch_size=args.batch_size,
                verbose=(1 if sys.stdout.isatty() else 0) if args.verbose is None else args.verbose,
                on_result=progress,
                callbacks=[stop],
            )
        except KeyboardInterrupt:
            verb = "is" if saved == 1 or total == 1 else "are"
            raise KeyboardInterrupt(
                f"{saved} of {total} run{'' if total == 1 else 's'} {verb} saved in {json_path}"
            ) from None
    elapsed = time.perf_counter() - start
    # The files first, the table after: output closed early (`kaa compare | head`) must not lose them.
    json_path, csv_path = save(complete=True)
    rows = compare.summarize(records)
    written = [str(json_path), str(csv_path)]
    try:
        written.append(
            str(compare.plot_learning_curves(records, plot_path, dataset=Path(str(args.dataset)).name))
        )
    except Exception as err:  # matplotlib missing, or failing: the results are written all the same
        plot_path.unlink(missing_ok=True)  # nothing half-drawn is left
        print(f"{PROG}: note: no plot: {one_line(err)}", file=sys.stderr)
    print()
    print(compare.format_table(rows))
    print()
    print(f"{len(records)} run{'' if len(records) == 1 else 's'} in {elapsed:.1f} s.")
    print(f"Results written to {', '.join(written)}.")
    return 0


def _seed_list(count: int) -> str:
    """The seeds 0 .. count-1 for the header: listed when they are a few, else as a range (the list
    of `--seeds 1000000` was a line of 7.9 million characters)."""
    return ", ".join(str(seed) for seed in range(count)) if count <= 5 else f"0..{count - 1}"


def _refuse_earlier_results(path: str) -> None:
    """Refuses (`ValueError`) an --out folder that holds what an earlier `kaa compare` wrote, as `kaa
    export` refuses to replace an export: the default folder is the same for every run, and a long
    comparison was replaced without a word by the next quick one."""
    found = [name for name in _OUT_FILES if (Path(path) / name).is_file()]
    if found:
        raise ValueError(
            f"--out {path!r} holds the results of an earlier run ({', '.join(found)}): pass --overwrite "
            "to replace them, or give another --out"
        )


_OUT_FILES = ("results.json", "summary.csv", "curves.png")
"""What `kaa compare` writes into --out."""


def _make_folder(path: str, option: str, files: tuple[str, ...] = (), folders: tuple[str, ...] = ()) -> None:
    """Creates the folder a command writes into and checks that it can write there, before any
    training: a path that cannot be a folder (under a file, say), a folder it cannot write in, or a
    `files` entry that exists but is no file (a `folders` entry that is no folder) is a usage error
    then, not a traceback after the runs."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{option} {path!r} cannot be a folder: {one_line(err)}") from None
    # Permission bits do not tell (root writes anywhere, /proc refuses root): write a file and remove it.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kaa-write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"{option} {path!r} is not writable: {err.strerror or one_line(err)}") from None
    for name in files:
        target = folder / name
        if target.exists() and not target.is_file():
            raise ValueError(f"{option} {path!r} holds {name}, which is not a file: it cannot be written")
    for name in folders:
        target = folder / name
        if target.exists() and not target.is_dir():
            raise ValueError(
                f"{option} {path!r} holds {name}, which is not a folder: the search is kept there"
            )


def _run_tune(args: argparse.Namespace) -> int:
    from keras_adaptive_acts import compare

    try:
        from keras_adaptive_acts import tuning
    except ImportError as err:
        raise MissingDependency(one_line(err)) from None
    try:
        tuning.ActivationHyperModel(compare.build_model, choices=args.activations)  # checks the names
        data = compare.load_dataset(args.dataset)
        _make_folder(args.directory, "--directory", folders=(tuning.PROJECT_NAME,))
    except ValueError as err:
        raise UsageError(one_line(err)) from None
    except ImportError as err:
        raise MissingDependency(one_line(err)) from None
    project = os.path.join(args.directory, tuning.PROJECT_NAME)
    resuming = not args.overwrite and os.path.isdir(project)
    print(
        f"dataset: {args.dataset} | trials: {args.trials} | epochs: {args.epochs} | seed: {args.seed} | "
        f"{'resuming' if resuming else 'search'} in {project}",
        flush=True,
    )
    start = time.perf_counter()
    with compare.stop_on_interrupt() as stop:
        try:
            tuner, rows = tuning.search_activations(
                data,
                choices=args.activations,
                max_trials=args.trials,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                directory=args.directory,
                overwrite=args.overwrite,
                callbacks=[stop],
            )
        except tuning.StoredSearchMismatch as err:  # raised before any trial: the other errors are bugs
            raise UsageError(one_line(err)) from None
        except KeyboardInterrupt:
            # KerasTuner saved each finished trial as it ended; the one that was running starts again.
            again = "the same command without --overwrite" if args.overwrite else "the same command"
            raise KeyboardInterrupt(
                f"the finished trials are kept in {project}: {again} resumes the search"
            ) from None
    elapsed = time.perf_counter() - start
    print()
    print(_trials_table(rows))
    with warnings.catch_warnings():  # the best model is rebuilt with a fresh optimizer: only weights load
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best = tuner.get_best_models(1)[0]
    scores = best.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0, return_dict=True)
    print()
    print(
        f"best: trial {rows[0]['trial']}, {rows[0]['activation']}: test accuracy "
        f"{scores['accuracy']:.4f}, test loss {scores['loss']:.4f} ({elapsed:.1f} s)"
    )
    return 0


def _trials_table(rows: list[dict]) -> str:
    header = ("trial", "activation", "arguments", "val accuracy")
    body = [
        (
            str(row["trial"]),
            row["activation"],
            ", ".join(
                f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
                for name, value in row["arguments"].items()
            )
            or "-",
            "n/a" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *body]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _load_sample(path: str | None, model) -> object:
    import numpy as np

    if path is None:
        rng = np.random.default_rng(0)
        sample = {}
        for tensor in model.inputs:
            if any(dim is None for dim in tensor.shape[1:]):
                raise UsageError(f"input {tensor.name!r} has shape {tensor.shape}: give --sample")
            if tensor.dtype == "string":  # no made-up text: it would only hit the out-of-vocabulary entry
                raise UsageError(f"input {tensor.name!r} takes strings: give --sample")
            sample[tensor.name] = rng.standard_normal((4, *tensor.shape[1:])).astype(tensor.dtype)
        return sample
    # NumPy's errors for a file that is neither .npy nor .npz, and for object arrays, suggest
    # allow_pickle=True, which `kaa` never passes (a pickle can run code): say what the file must be.
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as err:
        reason = "it is neither a .npy array nor a .npz archive" if "pickle" in str(err) else one_line(err)
        raise UsageError(
            f"cannot read the sample {path!r}: {reason} (write it with numpy.save or numpy.savez)"
        ) from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        sample = {}
        for name in loaded.files:
            try:
                sample[name] = loaded[name]
            except ValueError:
                raise UsageError(
                    f"cannot read the sample {path!r}: {name} is an object array (pickled Python objects), "
                    "which kaa does not load: a pickle can run code. Save numeric arrays."
                ) from None
        return sample


def _model_input_specs(model) -> dict:
    """`{input name: (shape with a free batch size, NumPy dtype)}` of a Keras model's inputs."""
    import ml_dtypes  # noqa: F401 (NumPy's names for bfloat16; TensorFlow's dependency)
    import numpy as np

    def numpy_dtype(dtype: str):
        # Keras' "string" has no NumPy name; TensorFlow gives its strings as `object`, which
        # `sample_inputs` takes to mean a string input.
        return np.dtype(object) if dtype == "string" else np.dtype(dtype)

    return {tensor.name: ((None, *tensor.shape[1:]), numpy_dtype(tensor.dtype)) for tensor in model.inputs}


def _check_export_paths(args: argparse.Namespace) -> None:
    """Refuses, before the model is loaded, a PATH that `kaa export` must not write or replace."""
    if args.sample is not None and not args.verify:
        raise UsageError("--sample is the input of --verify: pass --verify too (or leave out --sample)")
    if not args.model.endswith(".keras") or not os.path.isfile(args.model):
        raise UsageError(f"MODEL must be an existing .keras file, got {args.model!r}")
    if not zipfile.is_zipfile(args.model):  # Keras' own message says "File not found"
        raise UsageError(
            f"{args.model!r} is not a valid .keras file: it is not a zip archive "
            "(a truncated download, or a Git LFS pointer file?)"
        )
    if os.path.exists(args.path) and os.path.samefile(args.path, args.model):
        raise UsageError(f"PATH {args.path!r} is MODEL itself: give another path to export to")
    if args.format == "savedmodel" and Path(args.path).suffix.lower() == ".onnx":
        raise UsageError(
            f"PATH {args.path!r} names an ONNX file, but --format is savedmodel (a folder): "
            "pass --format onnx, or give the SavedModel's folder"
        )


def _run_export(args: argparse.Namespace) -> int:
    if args.format == "onnx" and args.monte_carlo:
        raise UsageError(
            "--monte-carlo is for --format savedmodel: an ONNX file holds the inference path only"
        )
    _check_export_paths(args)
    import keras

    import keras_adaptive_acts  # noqa: F401 (registers the layers for loading)
    from keras_adaptive_acts import export
    from keras_adaptive_acts.export.verification import sample_inputs

    try:
        model = keras.saving.load_model(args.model, safe_mode=True)
        sample = _load_sample(args.sample, model) if args.verify else None
        if sample is not None:  # checked now: a wrong sample must not leave an export behind
            sample_inputs(_model_input_specs(model), sample, source="model")
        if args.format == "onnx":
            path = export.export_onnx(model, args.path, overwrite=args.overwrite)
        else:
            path = export.export_for_serving(
                model, args.path, monte_carlo=args.monte_carlo, overwrite=args.overwrite
            )
    except export.UnreplaceableTargetError as err:  # not an earlier export: --overwrite does not help
        raise UsageError(one_line(err).replace("overwrite=True", "--overwrite")) from None
    except FileExistsError:
        raise UsageError(f"{args.path!r} exists: pass --overwrite to replace it") from None
    except ImportError as err:  # the onnx extra
        raise MissingDependency(one_line(err)) from None
    except (ValueError, RuntimeError, IsADirectoryError, NotADirectoryError) as err:
        raise UsageError(one_line(err)) from None
    except OSError as err:  # PATH's folder cannot be created or written: the export removed what it made
        raise UsageError(f"cannot write PATH {args.path!r}: {err.strerror or one_line(err)}") from None
    if args.format == "onnx":
        print(f"ONNX model written to {path}.")
        checks = [lambda: export.verify_onnx(path, sample, model)]
    else:
        signatures = [export.INFERENCE_SIGNATURE] + [export.MONTE_CARLO_SIGNATURE] * args.monte_carlo
        print(f"SavedModel written to {path} (signatures: {', '.join(signatures)}).")
        checks = [
            lambda signature=signature: export.verify_serving(path, sample, model, signature=signature)
            for signature in signatures
        ]
    if not args.verify:
        return 0
    status = 0
    for check in checks:
        try:
            report = check()
        except ValueError as err:
            raise UsageError(one_line(err)) from None
        except ImportError as err:
            raise MissingDependency(one_line(err)) from None
        except export.ServingVerificationError as failure:
            report, status = failure.report, 1
        except RuntimeError as err:  # a loader that failed to run: the export is not verified
            print(f"{PROG}: verification could not run: {one_line(err)}", file=sys.stderr)
            status = 1
            continue
        print()
        print(report)
    return status


COMMANDS = {"compare": _run_compare, "tune": _run_tune, "export": _run_export}


if __name__ == "__main__":
    sys.exit(main())
