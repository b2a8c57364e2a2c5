"""The Python blocks of the README and the guides run as written, in a fresh process.

Each README block runs alone, as a newcomer pastes it: the README's blocks promise not to depend on
each other. A guide's blocks run one after the other in one process, as a reader follows the page.
Everything runs in an empty working directory with the TensorFlow backend; a block that raises
fails its test with its own traceback.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md",)
# The guides whose blocks run from top to bottom today. Not yet: guides/backends.md (loads a file it
# does not write), guides/distribution.md (a multi-worker block after a one-process one),
# guides/existing-models.md (a block that shows an error), guides/serving.md (needs the
# tensorflow-serving-api client), guides/tuning.md (uses data no block defines).
GUIDES = ("docs/getting-started.md", "docs/guides/mixed-precision.md")


def python_blocks(document: str) -> list[tuple[str, str]]:
    """`(id, code)` of each fenced ```python block of `document`, the id naming its heading and line."""
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], flags=re.MULTILINE)
        heading = headings[-1] if headings else "top"
        blocks.append((f"{document}:{line} ({heading})", match.group(1)))
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]


def run_python(code: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_readme_has_the_blocks_this_test_runs():
    # The extraction itself: a change of fence style would otherwise make every block "pass" unseen.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks("README.md")) == readme.count("```python") >= 3


@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_readme_block_runs_as_written(name, code, tmp_path):
    result = run_python(code, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("guide", GUIDES)
def test_a_guide_runs_from_top_to_bottom(guide, tmp_path):
    blocks = python_blocks(guide)
    assert blocks, f"{guide} has no Python block"
    # Each block announces itself on stderr, so that a failure names the block it happened in.
    code = "\n\n".join(f"import sys; print({name!r}, file=sys.stderr)\n{block}" for name, block in blocks)
    result = run_python(code, tmp_path)
    assert result.returncode == 0, f"{guide} failed:\n{result.stderr[-3000:]}"
