"""Where an export writes: the path checked before anything is traced or converted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["checked_target"]


def checked_target(path: Any, overwrite: bool, what: str) -> Path:
    """`path` as a `Path`, once nothing stands in the way of writing `what` there.

    Raises:
        ValueError: if `path` is not a str or a path.
        FileExistsError: if `path` exists and `overwrite` is False.
        NotADirectoryError: if a folder on the way to `path` is a file (no `overwrite` helps).
    """
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"`path` must be a str or a path ({what}). Received: path={path!r}")
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} exists: pass overwrite=True to replace it.")
    for parent in target.parents:  # the nearest one that exists must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"Cannot write {str(target)!r}: {str(parent)!r} is a file, not a folder."
                )
            break
    return target
