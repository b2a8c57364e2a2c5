"""The Python blocks of the README and of the docs pages run as written, in a fresh process.

Each README block runs alone, as a newcomer pastes it: the README's blocks promise not to depend on
each other. A docs page's blocks run one after the other in one process, as a reader follows the page,
so a block may use what an earlier block of its page defined, and nothing from another page. Everything
runs in an empty working directory with the TensorFlow backend; a block that raises fails its test with
its own traceback. Where a page shows what a `print` gives, `PRINTED` checks the output against it.

An HTML comment on the line above a block (blank lines between are allowed), not shown on the site,
changes how it runs:

- `<!-- doc-test: own-process -->`: the block is a script of its own (a worker of a multi-process run,
  or a load in another process). It runs alone in a fresh process, after the rest of its page and in
  the same directory, so it sees the files the page wrote.
- `<!-- doc-test: skip: REASON -->`: the block cannot run here (it needs a server, or a package that
  no longer installs). It is compiled, not run, and its test is reported as skipped with REASON (`-ra`).
  Keep these rare, and mark only the part that cannot run.

Bash blocks are not run: they install packages or start servers and long runs; `kaa` itself has its
own tests (tests/test_cli.py).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import pytest
from layer_testing import tensorflow_or_skip

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md",)
# Pages whose blocks are not run: none today (the tuple stays so that a page can be excused, with the
# reason in a comment beside it).
NOT_YET: tuple[str, ...] = ()
# Every page runs with the slow tests: each is a fresh process that imports TensorFlow and trains,
# 6 to 13 s for the short pages and up to a minute for the longest (CPU seconds on a 2-core machine
# like CI's: narrow-relu-learner 61, serving 29, mixed-precision 29, tuning 26, distribution 20,
# api/compare 17). The README's blocks run in the everyday suite, but for the one fit below.
SLOW_README_BLOCKS = ("A narrow ReLU network from moments",)  # by heading; 22 s: a fit and its refinement


@dataclasses.dataclass(frozen=True)
class Block:
    name: str  # the document, the line of its fence and the heading above it
    code: str
    mode: str = "run"  # "run", "own-process" or "skip"
    reason: str = ""


def markers(text: str) -> list[tuple[int, str, str]]:
    """`(offset, mode, reason)` of every doc-test comment of `text`; an unknown one raises."""
    found = []
    for match in re.finditer(r"<!-- doc-test:(.*?)-->", text, flags=re.DOTALL):
        body = match.group(1).strip()
        if body == "own-process":
            found.append((match.start(), "own-process", ""))
        elif body.startswith("skip:") and body[len("skip:") :].strip():
            found.append((match.start(), "skip", body[len("skip:") :].strip()))
        else:
            raise ValueError(f"unknown doc-test comment: {match.group(0)!r}")
    return found


def python_blocks(document: str | pathlib.Path) -> list[Block]:
    """Each fenced ```python block of `document`, with the doc-test comment just above it, if any."""
    text = (ROOT / document).read_text(encoding="utf-8")
    comments = markers(text)
    blocks, attached = [], set()
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], flags=re.MULTILINE)
        name = f"{document}:{line} ({headings[-1] if headings else 'top'})"
        mode, reason = "run", ""
        for offset, comment_mode, comment_reason in comments:
            end = text.index("-->", offset) + len("-->")
            if end <= match.start() and not text[end : match.start()].strip():
                mode, reason = comment_mode, comment_reason
                attached.add(offset)
        blocks.append(Block(name, match.group(1), mode, reason))
    stray = [text.count("\n", 0, offset) + 1 for offset, _, _ in comments if offset not in attached]
    if stray:
        raise ValueError(f"{document}: doc-test comments not directly above a python block, lines {stray}")
    return blocks


def pages() -> list[str]:
    """Every docs page with a Python block, less those in NOT_YET."""
    found = []
    for path in sorted((ROOT / "docs").rglob("*.md")):
        page = path.relative_to(ROOT).as_posix()
        if not page.startswith(NOT_YET) and "```python" in path.read_text(encoding="utf-8"):
            found.append(page)
    return found


def number_between(low: float, high: float):
    def check(line: str) -> bool:
        try:
            return low <= float(line) <= high
        except ValueError:
            return False

    check.__name__ = f"a number between {low:g} and {high:g}"
    return check


def serving_report() -> list[str]:
    """The report that the serving guide shows, as patterns: the TensorFlow version and the number of
    op types change with TensorFlow, and are left free."""
    text = (ROOT / "docs" / "guides" / "serving.md").read_text(encoding="utf-8")
    report = text.split("The printed report, for the model above:\n\n```text\n", 1)[1].split("```", 1)[0]
    patterns = []
    for line in report.splitlines():
        line = re.sub(r"(?<=TensorFlow )[0-9.]+|(?<=ops: )[0-9]+", "FREE", line)
        patterns.append(re.escape(line).replace("FREE", r"\S+"))
    return patterns


def serving_and_onnx_reports() -> list[str]:
    """The SavedModel's report, then the ONNX report that the serving guide shows, as patterns: the
    versions, the number of op types and the largest error (ONNX Runtime's kernels are not
    TensorFlow's) are left free."""
    text = (ROOT / "docs" / "guides" / "serving.md").read_text(encoding="utf-8")
    report = text.split("The printed ONNX report, for the model above:\n\n```text\n", 1)[1].split("```", 1)[0]
    free = (
        r"(?<=opset )[0-9]+|(?<=tf2onnx )[0-9.]+|(?<=ONNX Runtime )[0-9.]+|(?<=ops: )[0-9]+|(?<=logits: )\S+"
    )
    patterns = [re.escape(re.sub(free, "FREE", line)).replace("FREE", r"\S+") for line in report.splitlines()]
    return serving_report() + patterns


# What the pages say their `print` calls give: for each page, patterns (regular expressions that a
# whole line of the output must match) or checks of one line, found in this order in the output (a
# function returns the list, read from the page when the test runs).
PRINTED = {
    "docs/guides/distribution.md": ["2"],
    "docs/guides/existing-models.md": [
        re.escape(
            "Saw 66 activation(s): 49 silu (not targeted), 16 sigmoid (not targeted), "
            "1 softmax (not targeted)."
        ),
        re.escape("Replaced 0 activation(s)."),
        re.escape("The model holds Lambda layers that run Python lambdas: ['double'].") + ".*",
    ],
    "docs/guides/mixed-precision.md": [
        "LossScaleOptimizer",
        "float16 float32",
        "float32",
        "float32",
        re.escape("{'rtol': 0.01, 'atol': 0.01}"),
    ],
    "docs/guides/serving.md": serving_and_onnx_reports,
    "docs/layers/activation-sparsity.md": [
        re.escape("[[0.  0.  1.5 4. ]]"),
        r"\[0\.0, 0\.333\d*, 0\.666\d*, 1\.0\]",
        r"\[0\.333\d*, 0\.666\d*, 1\.0, 1\.0\]",
        "True",
        re.escape("[-0.5  0.5  0.5  3. ]"),
        "0.3",
        "1.4",
        re.escape("[0.3]"),
        "0.5",
        r"\{'hidden': 0\.(4[5-9]|5[0-4])\d*\}",
    ],
    "docs/layers/competitive-relu.md": ["0.8095 1.101"],
    "docs/narrow-relu-learner.md": [
        number_between(1e-4, 1e-2),  # the moment estimate: about 1e-3
        number_between(0.0, 1e-15),  # after refinement: 1e-15 or less
    ],
}


def run_python(code: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    tensorflow_or_skip("the docs' examples run on the TensorFlow backend, the default")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def announced(block: Block) -> str:
    """The block, after a line on stderr that names it, so that a failure says which block it was."""
    return f"import sys; print({block.name!r}, file=sys.stderr)\n{block.code}"


def missing_lines(expected: list, printed: str) -> list[str]:
    """The expected lines that the output lacks, each looked for after the one before it."""
    lines, position, missing = printed.splitlines(), 0, []
    for check in expected:
        matches = check if callable(check) else lambda line, check=check: re.fullmatch(check, line)
        for index in range(position, len(lines)):
            if matches(lines[index]):
                position = index + 1
                break
        else:
            missing.append(getattr(check, "__name__", check) if callable(check) else check)
    return missing


README_BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]
SLOW_README_ENDINGS = tuple(f"({heading})" for heading in SLOW_README_BLOCKS)
PAGES = pages()
SKIPPED = [block for page in PAGES for block in python_blocks(page) if block.mode == "skip"]


def test_the_readme_has_the_blocks_this_test_runs():
    # The extraction itself: a change of fence style would otherwise make every block "pass" unseen.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks("README.md")) == readme.count("```python") >= 3


def test_every_page_with_python_blocks_is_run():
    assert "docs/getting-started.md" in PAGES and "docs/guides/serving.md" in PAGES
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        assert len(python_blocks(page)) == text.count("```python"), f"{page}: an indented or odd fence"
    for ending in SLOW_README_ENDINGS:
        assert any(block.name.endswith(ending) for block in README_BLOCKS), f"no README block under {ending}"
    assert set(PRINTED) <= set(PAGES)


def test_the_doc_test_comments_are_read_as_documented(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.md").write_text(
        "```python\na = 1\n```\n\n<!-- doc-test: own-process -->\n\n```python\nb = 2\n```\n"
        "<!-- doc-test: skip: needs a server -->\n```python\nc = 3\n```\n"
    )
    blocks = [(block.mode, block.reason) for block in python_blocks(docs / "page.md")]
    assert blocks == [("run", ""), ("own-process", ""), ("skip", "needs a server")]
    (docs / "stray.md").write_text("<!-- doc-test: own-process -->\nText.\n\n```python\na = 1\n```\n")
    with pytest.raises(ValueError, match="not directly above"):
        python_blocks(docs / "stray.md")
    (docs / "typo.md").write_text("<!-- doc-test: own-procces -->\n```python\na = 1\n```\n")
    with pytest.raises(ValueError, match="unknown doc-test comment"):
        python_blocks(docs / "typo.md")
    assert missing_lines(["a", r"\d+", "c"], "a\nb\n12\nc\n") == []
    assert missing_lines(["c", "a"], "a\nc\n") == ["a"]


def slow_if(condition: bool) -> list:
    return [pytest.mark.slow] if condition else []


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(block, id=block.name, marks=slow_if(block.name.endswith(SLOW_README_ENDINGS)))
        for block in README_BLOCKS
    ],
)
def test_a_readme_block_runs_as_written(block, tmp_path):
    if block.mode == "skip":
        pytest.skip(f"{block.name}: {block.reason}")
    result = run_python(block.code, tmp_path)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_a_page_runs_from_top_to_bottom(page, tmp_path):
    blocks = python_blocks(page)
    in_order = [block for block in blocks if block.mode == "run"]
    assert in_order, f"{page} has no Python block that runs"
    result = run_python("\n\n".join(announced(block) for block in in_order), tmp_path)
    assert result.returncode == 0, f"{page} failed:\n{result.stderr[-3000:]}"
    expected = PRINTED.get(page, [])
    missing = missing_lines(expected() if callable(expected) else expected, result.stdout)
    assert not missing, f"{page} does not print what it shows: {missing}\nIt printed:\n{result.stdout}"
    for block in blocks:
        if block.mode == "own-process":
            alone = run_python(announced(block), tmp_path)
            assert alone.returncode == 0, f"{block.name}, alone, failed:\n{alone.stderr[-3000:]}"


@pytest.mark.parametrize("block", SKIPPED, ids=[block.name for block in SKIPPED])
def test_a_skipped_block_compiles_and_says_why(block):
    compile(block.code, block.name, "exec")
    pytest.skip(f"{block.name}: {block.reason}")
