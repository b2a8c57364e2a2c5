"""Where an export writes: the path checked before anything is traced or converted.

`overwrite=True` replaces only an earlier export of the same kind (a SavedModel folder, an ONNX
file), never whatever else the path names: a folder of other versions, the source `.keras` file, a
file where a SavedModel folder was asked for. A symbolic link is followed: the export replaces
what the link points to, and the link stays.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["UnreplaceableTargetError", "checked_target", "make_parents", "remove_folders"]


class UnreplaceableTargetError(FileExistsError):
    """The path holds something that is not an earlier export of the kind asked for.

    A `FileExistsError`, so code that catches an existing path catches it too; unlike a plain
    existing export, `overwrite=True` does not help.
    """


def checked_target(path: Any, overwrite: bool, what: str, replaceable: Callable[[Path], str | None]) -> Path:
    """The path to write `what` at, once nothing stands in the way of writing it there.

    `replaceable(existing)` returns `None` when `existing` is an export that `overwrite=True` may
    replace, else why not (a phrase such as "a folder that is not a SavedModel"). A symbolic link
    at `path` is followed: the path returned is where it points, which the export replaces.

    Raises:
        ValueError: if `path` is not a str or a path.
        UnreplaceableTargetError: if `path` exists but is not an export of this kind, or is a
            symbolic link to nothing (whether or not `overwrite` is given).
        FileExistsError: if `path` exists and `overwrite` is False.
        NotADirectoryError: if a folder on the way to `path` is a file (no `overwrite` helps).
    """
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"`path` must be a str or a path ({what}). Received: path={path!r}")
    given = Path(path)
    target = given
    if given.is_symlink():
        target = Path(os.path.realpath(given))
        if not target.exists():
            raise UnreplaceableTargetError(
                f"{str(given)!r} is a symbolic link to {str(target)!r}, which does not exist: "
                "remove the link or point it at an earlier export."
            )
    if target.exists():
        reason = replaceable(target)
        if reason is not None:
            shown = str(given) if target == given else f"{given!s} (a link to {target!s})"
            raise UnreplaceableTargetError(
                f"{shown!r} is {reason}: overwrite=True replaces only an earlier export of this format. "
                "Remove it yourself or choose another path."
            )
        if not overwrite:
            raise FileExistsError(f"{str(given)!r} exists: pass overwrite=True to replace it.")
    for parent in target.parents:  # the nearest one that exists must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"Cannot write {str(given)!r}: {str(parent)!r} is a file, not a folder."
                )
            break
    return target


def make_parents(target: Path) -> list[Path]:
    """Creates the missing folders above `target`; returns those it created, the deepest first.

    If one cannot be created (no permission, a read-only file system), those already created are
    removed again before the `OSError` propagates: a refused export leaves nothing behind.
    """
    missing = []
    for parent in target.parents:
        if parent.exists():
            break
        missing.append(parent)
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.insert(0, folder)
    except OSError:
        remove_folders(created)
        raise
    return created


def remove_folders(folders: list[Path]) -> None:
    """Removes `folders` (from `make_parents`, the deepest first) where they are still empty."""
    for folder in folders:
        # A folder no longer empty (something else wrote there) or already gone is left as it is.
        with contextlib.suppress(OSError):
            folder.rmdir()
