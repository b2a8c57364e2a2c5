"""Packaging promises checked without building: what the package needs at run time reaches the wheel.

`.ci/wheel_check.sh` builds and installs the wheel; these tests catch the same mistakes in a second:
a subpackage that `packages = find:` would skip, or a file opened by path that the wheel would lack.
"""

import ast
import configparser
import fnmatch
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_adaptive_acts"

# Ways a module names a file beside it (or in a package) instead of importing it.
FILE_REFERENCES = (
    re.compile(r"__file__\)(?:\.resolve\(\))?\.with_name\(\s*[\"']([^\"']+)[\"']"),
    re.compile(r"__file__\)(?:\.resolve\(\))?\.parent\s*/\s*[\"']([^\"']+)[\"']"),
    re.compile(r"os\.path\.dirname\([^()]*__file__[^()]*\)\)?\s*,\s*[\"']([^\"']+)[\"']"),
)
RESOURCE_REFERENCES = re.compile(
    r"resources\.files\(\s*[\"']([\w.]+)[\"']\s*\)\s*(?:/\s*|\.joinpath\(\s*)[\"']([^\"']+)[\"']"
)


def _setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _source_files():
    return [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _found_packages():
    """The dotted names `packages = find:` would pick: directories with an __init__.py, filtered by the
    `include` patterns of [options.packages.find] (setuptools matches them with fnmatch)."""
    patterns = [p.strip() for p in _setup_cfg()["options.packages.find"]["include"].split(",") if p.strip()]
    tops = [p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")]
    tops = [p for p in tops if p.name not in ("build", "dist", "site", "kaa-results")]
    inits = [init for top in tops for init in sorted(top.rglob("__init__.py"))]
    names = [".".join(init.parent.relative_to(ROOT).parts) for init in inits]
    return {n for n in names if any(fnmatch.fnmatchcase(n, pattern) for pattern in patterns)}


def _referenced_files():
    """(module, referenced path) for every file a module of the package opens by path."""
    found = []
    for module in sorted(PACKAGE.rglob("*.py")):
        text = module.read_text()
        for pattern in FILE_REFERENCES:
            found += [(module, module.parent / name) for name in pattern.findall(text)]
        for package, name in RESOURCE_REFERENCES.findall(text):
            found.append((module, ROOT.joinpath(*package.split(".")) / name))
    return found


def test_every_directory_of_the_package_reaches_the_wheel():
    # A folder of modules without an __init__.py imports from the source tree (as a namespace package)
    # but `packages = find:` skips it, so the installed wheel would lack it. A folder of data files only
    # still reaches the wheel today, with setuptools warning that it is "absent from the `packages`
    # configuration" (deprecated): it needs an __init__.py too.
    packages = _found_packages()
    assert "keras_adaptive_acts" in packages
    folders = {p.parent for p in _source_files()}
    skipped = sorted(
        folder.relative_to(ROOT).as_posix()
        for folder in folders
        if ".".join(folder.relative_to(ROOT).parts) not in packages
    )
    assert not skipped, f"folders of keras_adaptive_acts/ that the wheel would not hold: {skipped}"
    assert not {p for p in packages if not p.startswith("keras_adaptive_acts")}, packages  # no tests/


def test_files_the_package_opens_by_path_are_shipped():
    references = _referenced_files()
    # The scan still recognises the one file the package runs by its path today.
    assert any(target.name == "serving_check.py" for _, target in references), references
    for module, target in references:
        where = f"{module.relative_to(ROOT)} refers to {target.relative_to(ROOT)}"
        assert target.is_file(), f"{where}, which does not exist"
        assert PACKAGE in target.parents, f"{where}, outside the package: the wheel would not hold it"


def test_data_files_inside_the_package_are_package_data():
    # Python modules reach the wheel with their packages; any other file only as package data, which
    # here means include_package_data plus MANIFEST.in grafting the package (one rule for all of them).
    data = [p for p in _source_files() if p.suffix not in (".py", ".pyc")]
    data += [target for _, target in _referenced_files() if target.suffix != ".py"]
    options = _setup_cfg()["options"]
    assert options.getboolean("include_package_data", fallback=False), "setup.cfg: include_package_data"
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "graft keras_adaptive_acts" in manifest
    for path in data:  # a file outside keras_adaptive_acts/ is no package data, whatever the rules say
        assert PACKAGE in path.parents, path.relative_to(ROOT)


def test_console_scripts_run_code_the_wheel_holds():
    # `kaa` must name a function of a module that reaches the wheel: one inside a found package, or a
    # module beside the package listed in py_modules (and present).
    config = _setup_cfg()
    modules = config["options"].get("py_modules", "").split()
    for name in modules:
        assert (ROOT / f"{name}.py").is_file(), f"setup.cfg py_modules names {name}, which does not exist"
    packages = _found_packages()
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    scripts = dict((part.strip() for part in line.split("=", 1)) for line in lines)
    assert "kaa" in scripts, scripts
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        parent, _, leaf = module.rpartition(".")
        if module in modules:
            path = ROOT / f"{module}.py"
        else:
            assert module in packages or parent in packages, f"{name} = {target}: the wheel lacks {module}"
            path = ROOT.joinpath(*module.split("."))
            path = path / "__init__.py" if module in packages else path.with_name(f"{leaf}.py")
        assert path.is_file(), f"{name} = {target}: no {path.relative_to(ROOT)}"
        tree = ast.parse(path.read_text(), filename=str(path))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"{name} = {target}: {path.relative_to(ROOT)} defines no {function}()"


def test_the_getting_started_table_lists_every_extra_with_what_it_installs():
    """docs/getting-started.md's table of extras against setup.cfg: each extra has a row, and each
    requirement of it is named there by its project name (or the row says what stands for it)."""
    extras = _setup_cfg()["options.extras_require"]
    text = (ROOT / "docs" / "getting-started.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = cells[1]
    assert set(rows) == set(extras), "the table's extras are not setup.cfg's"
    for extra, requirements in extras.items():
        if extra == "keras-hub":  # the row names the rule (KerasHub's requirements) instead of the list
            assert "KerasHub's requirements" in rows[extra]
            continue
        names = [re.split(r"[<>=!\[;\s]", line.strip())[0] for line in requirements.splitlines()]
        for name in filter(None, names):
            assert f"`{name}" in rows[extra] or (extra == "test" and name in TEST_REQUIREMENTS_BY_GROUP), (
                extra,
                name,
            )


# The test extra's row names these by group: "the datasets", "the `onnx` extra's three".
TEST_REQUIREMENTS_BY_GROUP = {"mlxtend", "mnist1d", "tf2onnx", "onnx", "onnxruntime", "tensorboard", "six"}
