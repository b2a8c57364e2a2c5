"""Runs every case of tests/bad_input_cases.py, and checks that docs/bad-input.md is rendered from them."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path

import bad_input_cases as cases
import keras
import pytest

import keras_adaptive_acts as kaa

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "bad-input.md"


def _load_renderer():
    spec = importlib.util.spec_from_file_location(
        "bad_input_table", ROOT / "docs" / "scripts" / "bad_input_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


renderer = _load_renderer()


def _missing(needs: str) -> str | None:
    """Why a case that `needs` something cannot run here; None if it can."""
    backend = keras.backend.backend()
    if needs == "tensorflow" and backend != "tensorflow":
        return f"{cases.NEEDS[needs]}; the backend is {backend}"
    if needs == "other backend" and backend == "tensorflow":
        return cases.NEEDS[needs]
    if needs == "onnx":
        if backend != "tensorflow":
            return f"{cases.NEEDS[needs]}; the backend is {backend}"
        for module in ("tf2onnx", "onnx", "onnxruntime"):
            if importlib.util.find_spec(module) is None:
                return f"{cases.NEEDS[needs]}: {module} is not installed"
    if needs == "keras_tuner":
        try:
            importlib.import_module("keras_adaptive_acts.tuning")
        except ImportError as error:
            return f"{cases.NEEDS[needs]}: {error}"
    return None


def _params():
    for case in cases.CASES:
        marks = [pytest.mark.xfail(strict=True, reason=f"known issue: {case.bug}")] if case.bug else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_case(case):
    reason = _missing(case.needs)
    if reason:
        pytest.skip(reason)
    expect = case.expect
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(expect, cases.Raises):
            with pytest.raises(Exception) as raised:
                cases.evaluate(case)
            error = raised.value
            assert type(error) is expect.error, f"raised {type(error).__name__}: {error}"
            assert expect.message in str(error), f"the message is: {error}"
            return
        value = cases.evaluate(case)
    if isinstance(expect, cases.Warns):
        messages = [str(w.message) for w in caught if issubclass(w.category, expect.warning)]
        assert any(expect.message in message for message in messages), f"warnings: {messages}"
    else:
        assert expect.check(value), f"returned {value!r}"


def test_cases_are_well_formed():
    ids = [case.id for case in cases.CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    apis = [api for apis in cases.SECTIONS.values() for api in apis]
    assert len(apis) == len(set(apis))
    for case in cases.CASES:
        assert case.kind in cases.KINDS, case.id
        assert case.api in apis, case.id
        assert case.needs in ("", *cases.NEEDS), case.id
    assert {case.api for case in cases.CASES} == set(apis)


def test_every_public_api_has_documented_cases():
    documented = {case.api for case in cases.CASES if not case.bug}
    modules = {"narrow", "ops", "regularizers", "surgery", "__version__"}
    public = [name for name in kaa.__all__ if name not in modules]
    public += ["ActivationL1", "HoyerSquare", "KLSparsity"]
    public += [f"ops.{name}" for name in kaa.ops.__all__]
    public += ["surgery.swap_activations", "narrow.NarrowReLULearner"]
    public += ["tuning.choose_activation", "tuning.fix_activation"]
    public += ["export.export_for_serving", "export.verify_serving"]
    public += ["export.export_onnx", "export.verify_onnx"]
    assert sorted(set(public) - documented) == []


def test_the_page_is_rendered_from_the_cases():
    expected = renderer.render(cases)
    assert PAGE.read_text(encoding="utf-8") == expected, (
        f"{PAGE.relative_to(ROOT)} is stale: regenerate it with `{renderer.COMMAND}`"
    )
    for case in cases.CASES:
        assert (f"`{case.code}`" in expected) != bool(case.bug), case.id


def test_check_mode_reports_a_stale_page_and_writing_fixes_it(tmp_path, capsys):
    page = tmp_path / "bad-input.md"
    page.write_text("stale\n", encoding="utf-8")
    assert renderer.main(["--check", "--output", str(page)]) == 1
    assert page.read_text(encoding="utf-8") == "stale\n"
    assert renderer.COMMAND in capsys.readouterr().err
    assert renderer.main(["--output", str(page)]) == 0
    assert renderer.main(["--check", "--output", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == renderer.render(cases)
