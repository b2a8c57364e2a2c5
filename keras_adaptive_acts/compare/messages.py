"""Error text of `kaa compare`: one line each, as the command prints it."""

from __future__ import annotations

__all__ = ["one_line", "root_message"]


def one_line(error: BaseException | str) -> str:
    """The message with its whitespace, line breaks included, collapsed to single spaces."""
    return " ".join(str(error).split())


def root_message(error: BaseException) -> str:
    """The innermost error's message (Keras wraps constructor errors raised in `from_config`)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return one_line(error)
