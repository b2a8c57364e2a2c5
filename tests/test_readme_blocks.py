"""Every Python block of the README runs as written, in a fresh process, as a newcomer pastes it.

Each block runs alone (the README's blocks do not share names), in an empty working directory, with
the TensorFlow backend. A block that raises fails its test with the block's own traceback.
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


def test_the_readme_has_the_blocks_this_test_runs():
    # The extraction itself: a change of fence style would otherwise make every block "pass" unseen.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks("README.md")) == readme.count("```python") >= 3


@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_readme_block_runs_as_written(name, code, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"
