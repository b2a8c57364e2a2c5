"""The optional extras: what `require` says when one is missing, and what the `tuner` extra must add.

KerasTuner imports `six` without declaring it, so a setup without TensorFlow (which brings `six`)
could not import it: the PyTorch backend's test run found it. The extra names `six` itself.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import pathlib
import re
import sys

import pytest

from keras_adaptive_acts.extras import require

ROOT = pathlib.Path(__file__).resolve().parents[1]


def requirement_name(requirement: str) -> str:
    """The distribution a requirement line names, normalised as PyPI does (`keras_tuner` -> `keras-tuner`)."""
    return re.split(r"[\s;<>=!~\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def extra_requirements(extra: str) -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.extras_require"][extra].split() + config["options"]["install_requires"].split()
    return {requirement_name(line) for line in lines}


def module_level_imports(package_root: pathlib.Path) -> dict[str, set[str]]:
    """Top-level names imported unconditionally (at module level, not inside `try`) by a package's files."""
    imports: dict[str, set[str]] = {}
    for path in package_root.rglob("*.py"):
        if "test" in path.name:  # keras-tuner ships its tests beside the code
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                imports.setdefault(name.split(".")[0], set()).add(path.relative_to(package_root).as_posix())
    return imports


def distributions_by_top_level_module() -> dict[str, set[str]]:
    """`{top-level module: names of the installed distributions whose files hold it}`.

    Read from each distribution's list of files, as `importlib.metadata.packages_distributions()` does
    from Python 3.11 on; on Python 3.10 that function reads only `top_level.txt`, which namespace
    packages lack (protobuf's `google`), so it would report them as provided by nothing.
    """
    providers: dict[str, set[str]] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        for file in distribution.files or []:
            top = file.parts[0]
            if top == ".." or top.endswith((".dist-info", ".egg-info", ".data")) or top == "__pycache__":
                continue
            module = top.split(".")[0] if len(file.parts) == 1 else top  # `six.py`, `_cffi.so`: a module
            providers.setdefault(module, set()).add(name)
    return providers


def test_every_module_keras_tuner_imports_is_declared_by_it_or_by_our_tuner_extra():
    keras_tuner = pytest.importorskip(
        "keras_tuner", reason="the test extra installs KerasTuner; it is missing here"
    )
    declared = {
        requirement_name(line)
        for line in importlib.metadata.requires("keras-tuner") or []
        if "extra ==" not in line  # keras-tuner's own extras are not installed with it
    }
    ours = extra_requirements("tuner")
    distributions = distributions_by_top_level_module()
    undeclared = {}
    for top_level, files in module_level_imports(pathlib.Path(keras_tuner.__file__).parent).items():
        if top_level in sys.stdlib_module_names or top_level == "keras_tuner":
            continue
        # The module's own name counts too: keras-nightly provides `keras` under another name, in
        # place of the `keras` that keras-tuner requires (CI's nightly job swaps them).
        providers = {requirement_name(name) for name in [*distributions.get(top_level, ()), top_level]}
        if not providers & (declared | ours):
            undeclared[top_level] = sorted(files)[:3]
    assert not undeclared, (
        f"KerasTuner imports modules that neither it nor the 'tuner' extra (with install_requires) "
        f"declares; add them to the extra in setup.cfg: {undeclared}"
    )


def test_a_missing_module_names_the_extra_to_install():
    with pytest.raises(ImportError) as raised:
        require("no_such_module_for_kaa", "datasets", "the 'mnist' dataset")
    message = str(raised.value)
    assert "the 'mnist' dataset needs no_such_module_for_kaa" in message
    assert 'pip install "keras-adaptive-acts[datasets]"' in message


def test_an_installed_module_that_lacks_its_own_dependency_is_not_called_missing(tmp_path, monkeypatch):
    package = tmp_path / "kaa_broken_package"
    package.mkdir()
    (package / "__init__.py").write_text("import kaa_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as raised:
        require("kaa_broken_package", "tuner", "keras_adaptive_acts.tuning")
    message = str(raised.value)
    assert "installed but cannot be imported" in message
    assert "'kaa_dependency_nobody_installed' is missing" in message
    assert 'pip install "keras-adaptive-acts[tuner]"' in message
    assert "install it with" not in message  # pip would answer that it is installed already


def test_an_unknown_extra_is_refused_by_name():
    with pytest.raises(ValueError, match="`extra` must be one of"):
        require("json", "no_such_extra", "this example")
