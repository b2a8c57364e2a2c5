#!/usr/bin/env bash
# Packaging check: what `pip install keras-adaptive-acts` would give a user, tested as a user gets it.
#
#  1. Builds the sdist and the wheel (the wheel from the sdist, as `python -m build` does) from a clean
#     copy of the source tree (tracked files plus untracked, non-ignored ones) in a throwaway venv, so
#     nothing is written into the repository and no stale *.egg-info can leak into the sdist.
#  2. `twine check --strict` on both (the README renders as the long description).
#  3. The wheel's file list: the package and its metadata only (no tests/, docs/, benchmarks/,
#     examples/, kaa-results/), every file of keras_adaptive_acts/ present (the files the package opens
#     by path, e.g. export/serving_check.py, and any data file), the `kaa` entry point. The sdist's file
#     list: everything the build and the tests need, no venvs or build outputs.
#  4. A fresh venv with the WHEEL installed (with the main job's extras), used from a directory outside
#     the repository: the package imports from site-packages, `kaa compare --epochs 1 --seeds 1` writes
#     its files, and a `.keras` file of the package's layers loads in a fresh process with equal outputs.
#
# Run from the repository root: .ci/wheel_check.sh  (needs python3 >= 3.10, git and PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

export KERAS_BACKEND=tensorflow
export TF_CPP_MIN_LOG_LEVEL=2
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH  # the installed wheel is under test, nothing else

started=$SECONDS
step() { printf '\n--- wheel_check: %s (%d s)\n' "$1" $((SECONDS - started)); }
fail() {
    printf 'wheel_check: FAILED: %s\n' "$1" >&2
    exit 1
}

repo=$(pwd -P)
work=$(mktemp -d "${TMPDIR:-/tmp}/kaa-wheel-check.XXXXXX")
work=$(cd "$work" && pwd -P)
trap 'cd / && rm -rf "$work"' EXIT
case "$work/" in
"$repo"/*) fail "the temporary directory $work is inside the repository (set TMPDIR elsewhere)" ;;
esac
src=$work/src dist=$work/dist run=$work/run
mkdir -p "$src" "$dist" "$run"

step "copying the source tree (git ls-files) to $src"
git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "$repo is not a git checkout"
# Tracked files that were deleted in the working tree are left out (tar would stop on them).
while IFS= read -r -d '' path; do
    if [[ -e $path || -L $path ]]; then printf '%s\0' "$path"; fi
done < <(git ls-files -z --cached --others --exclude-standard) |
    tar --null --files-from=- -cf - | tar -C "$src" -xf -
echo "$(find "$src" -type f | wc -l) files"

step "building the sdist and the wheel in a throwaway venv"
python3 -m venv "$work/build-venv"
build_py=$work/build-venv/bin/python
"$build_py" -m pip install --quiet build twine
"$build_py" -m build --outdir "$dist" "$src" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    fail "python -m build"
}
shopt -s nullglob
wheels=("$dist"/*.whl) sdists=("$dist"/*.tar.gz)
shopt -u nullglob
((${#wheels[@]} == 1 && ${#sdists[@]} == 1)) || fail "expected one wheel and one sdist in $dist: $(ls "$dist")"
wheel=${wheels[0]} sdist=${sdists[0]}
ls -l "$dist"

step "twine check --strict"
"$build_py" -m twine check --strict "$wheel" "$sdist"

step "the file lists of the wheel and the sdist"
"$build_py" - "$wheel" "$sdist" "$src" <<'PY'
import configparser
import pathlib
import sys
import tarfile
import zipfile

wheel, sdist, src = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
package = "keras_adaptive_acts"
problems = []
source = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
source = {p for p in source if "__pycache__" not in p and not p.endswith((".pyc", ".pyo"))}
setup_cfg = configparser.ConfigParser()
setup_cfg.read(src / "setup.cfg")
# Top-level modules beside the package (setup.cfg's py_modules) and the console scripts, as declared.
py_modules = [f"{m}.py" for m in setup_cfg["options"].get("py_modules", "").split()]
scripts = dict(
    (part.strip() for part in line.split("=", 1))
    for line in setup_cfg["options.entry_points"]["console_scripts"].strip().splitlines()
)
if "kaa" not in scripts:
    problems.append("setup.cfg declares no `kaa` console script")

with zipfile.ZipFile(wheel) as archive:
    in_wheel = {name for name in archive.namelist() if not name.endswith("/")}
    dist_info = next(n.split("/")[0] for n in in_wheel if n.split("/")[0].endswith(".dist-info"))
    entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    metadata = archive.read(f"{dist_info}/METADATA").decode()
tops = sorted({name.split("/")[0] for name in in_wheel})
print(f"wheel: {len(in_wheel)} files; top level: {', '.join(tops)}")
for top in ("tests", "docs", "benchmarks", "examples", "kaa-results"):
    if top in tops:
        problems.append(f"the wheel holds {top}/")
for top in sorted(set(tops) - {package, dist_info, *py_modules}):
    problems.append(f"the wheel holds {top!r} beside the package, its modules and its metadata")
for name in sorted(in_wheel):
    if "__pycache__" in name or name.endswith((".pyc", ".pyo")):
        problems.append(f"the wheel holds compiled Python: {name}")
package_files = sorted(p for p in source if p.startswith(package + "/"))
missing = [p for p in package_files + py_modules if p not in in_wheel]
problems += [f"the wheel lacks {p} (in the source tree)" for p in missing]
data_files = [p for p in package_files if not p.endswith(".py")]
print(f"wheel: all {len(package_files)} files of {package}/ present" if not missing else "wheel: files missing")
print(f"wheel: modules beside the package: {', '.join(py_modules) or 'none'}")
print(f"wheel: data files inside the package: {', '.join(data_files) or 'none'}")
# Files the package opens by path or needs to work at all, named so that a rename fails here loudly.
for needed in ("export/serving_check.py", "compare/datasets.py"):
    if f"{package}/{needed}" not in in_wheel:
        problems.append(f"the wheel lacks {package}/{needed}")
for name, target in scripts.items():
    module = target.split(":")[0].replace(".", "/")
    if f"{name} = {target}" not in entry_points.splitlines():
        problems.append(f"the wheel's entry_points.txt lacks `{name} = {target}`")
    elif not {f"{module}.py", f"{module}/__init__.py"} & in_wheel:
        problems.append(f"the console script {name} runs {target}, whose module the wheel lacks")
    else:
        print(f"wheel: console script `{name} = {target}`, its module inside")
for extra in ("tensorflow-cpu", "examples"):
    if f"Provides-Extra: {extra}" not in metadata:
        problems.append(f"the wheel's METADATA lacks the extra {extra!r}")

with tarfile.open(sdist) as archive:
    members = [m.name for m in archive.getmembers() if m.isfile()]
root = members[0].split("/")[0]
in_sdist = {m.split("/", 1)[1] for m in members if "/" in m}
print(f"sdist: {len(in_sdist)} files under {root}/")
needed_dirs = (package, "tests", "docs", "examples", "benchmarks", ".ci")
needed = [p for p in source if p.split("/")[0] in needed_dirs] + py_modules
needed += ["pyproject.toml", "setup.cfg", "README.md", "LICENSE", "PKG-INFO"]
lacking = sorted(set(needed) - in_sdist)
problems += [f"the sdist lacks {p}" for p in lacking]
for name in sorted(in_sdist):
    top = name.split("/")[0]
    if top.startswith((".venv", ".tox")) or top in ("build", "dist", "kaa-results", "kaa-tuning", "site"):
        problems.append(f"the sdist holds {name}")
    if "__pycache__" in name or name.endswith((".pyc", ".pyo")):
        problems.append(f"the sdist holds compiled Python: {name}")
if not lacking:
    print(f"sdist: every file of {', '.join(needed_dirs)}/ and the build files present")
left_out = sorted(source - in_sdist)
print(f"sdist: source files not in it (allowed): {', '.join(left_out) or 'none'}")

if problems:
    sys.exit("wheel_check: FAILED:\n  " + "\n  ".join(problems))
print("file lists: OK")
PY

step "installing the wheel (not the source tree) with the main job's extras in a fresh venv"
venv=$work/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "${wheel}[tensorflow-cpu,examples]"
"$venv/bin/python" -m pip check

cd "$run"  # outside the repository: the source tree cannot shadow the installed package
cat >where.py <<'PY'
"""Fails unless keras_adaptive_acts (and the modules of its console scripts) come from this venv's
site-packages, installed from a wheel file."""
import importlib
import importlib.metadata
import json
import pathlib
import sysconfig

import keras_adaptive_acts

site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
distribution = importlib.metadata.distribution("keras-adaptive-acts")
scripts = [e for e in distribution.entry_points if e.group == "console_scripts"]
for module in [keras_adaptive_acts] + [importlib.import_module(e.module) for e in scripts]:
    path = pathlib.Path(module.__file__).resolve()
    assert site in path.parents, f"{module.__name__} imported from {path}, not from {site}"
    print(f"{module.__name__} from {path}")
# pip records where it installed from: a wheel file here, not a directory (editable or not).
origin = json.loads(distribution.read_text("direct_url.json"))
assert "archive_info" in origin and origin["url"].endswith(".whl"), origin
assert keras_adaptive_acts.__version__ == distribution.version
print(f"keras-adaptive-acts {distribution.version}, installed from {origin['url']}")
PY
step "the installed package imports from the venv's site-packages"
"$venv/bin/python" where.py

step "kaa compare --epochs 1 --seeds 1 (in $run)"
"$venv/bin/kaa" compare --epochs 1 --seeds 1
for file in results.json summary.csv curves.png; do
    [[ -s kaa-results/$file ]] || fail "kaa compare did not write kaa-results/$file"
done
"$venv/bin/python" -c '
import json
results = json.load(open("kaa-results/results.json"))
assert results, "results.json is empty"
print("kaa-results/: results.json, summary.csv, curves.png written")
'

step ".keras round trip: saved here, loaded in a fresh process"
cat >round_trip.py <<'PY'
"""`save`: a small model of the package's layers, one training step, then its inputs, outputs and .keras
file. `load` (a fresh process): the file loads (safe_mode) into the same layer classes, equal outputs."""
import sys

import keras
import numpy as np

import keras_adaptive_acts as kaa

mode = sys.argv[1]
if mode == "save":
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16),
            kaa.CompetitiveReLU(),
            keras.layers.Dense(16),
            kaa.NoisyHardTanh(seed=1),
            keras.layers.Dense(16),
            kaa.RReLU(seed=2),
            kaa.JSquaredReLU(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 8)), rng.normal(size=(32, 3)), epochs=1, verbose=0)
    inputs = rng.normal(size=(5, 8)).astype("float32")
    np.save("inputs.npy", inputs)
    np.save("outputs.npy", model.predict(inputs, verbose=0))
    model.save("model.keras")
    print("saved model.keras:", ", ".join(type(layer).__name__ for layer in model.layers))
else:
    model = keras.saving.load_model("model.keras")  # safe_mode=True
    names = [type(layer).__name__ for layer in model.layers]
    for name in ("CompetitiveReLU", "NoisyHardTanh", "RReLU", "JSquaredReLU"):
        assert name in names, f"{name} did not come back: {names}"
    for layer in model.layers:
        assert type(layer).__module__.startswith(("keras_adaptive_acts.", "keras.")), type(layer)
    outputs = model.predict(np.load("inputs.npy"), verbose=0)
    np.testing.assert_array_equal(outputs, np.load("outputs.npy"))
    print("loaded model.keras in a fresh process: same layers, equal outputs")
PY
"$venv/bin/python" round_trip.py save
"$venv/bin/python" round_trip.py load

step "done: all packaging checks passed"
