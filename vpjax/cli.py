"""What every command-line tool shares: one-line user errors with exit status 2, one KEY=VALUE parser,
and files written whole or not at all (:func:`write_atomic`).

A mistake in the user's input (a config key, a flag, a path) is a :class:`UserError`; :func:`run_main`
prints its message as one line on stderr and returns 2, with no traceback. Anything else is a bug and
keeps its traceback. :class:`ArgumentParser` reports bad flags the same way (argparse prints the usage
block first, which buries the one line that says what is wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

USER_ERROR_STATUS = 2


class UserError(Exception):
    """A mistake in the user's input. The message is one line naming the file, flag, key, value and rule."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message`` on stderr, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {one_line(message)}\n")


def write_atomic(path: str | os.PathLike, write: Callable[[Any], None], newline: str | None = "", binary: bool = False,
                 error: type[Exception] = UserError) -> None:
    """Calls ``write(fh)`` on a temporary file beside ``path`` and renames it onto ``path``.

    ``fh`` is a text file (``newline`` as in :func:`open`) or, with ``binary``, a binary one.

    The folder is created if needed. On any failure (including KeyboardInterrupt) the temporary
    file is removed and ``path`` keeps its previous content; an OS error becomes a one-line
    ``error`` naming the path.
    """
    path = Path(path)
    # one temporary name per process: processes of a multi-host run that write the same file do not collide
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") if binary else open(tmp, "w", newline=newline) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise error(f"{path}: cannot write ({e.strerror or e})") from None
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented JSON (non-JSON values as their ``str``) through :func:`write_atomic`."""
    text = json.dumps(data, indent=2, default=str)
    write_atomic(path, lambda fh: fh.write(text))


def one_line(message: Any) -> str:
    """``message`` on one line (its line breaks become "; "), so that a user error is exactly one line."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
             prog: str | None = None) -> int:
    """Runs ``main(argv)``; a :class:`UserError` becomes one stderr line and status 2.

    A ``SystemExit`` carrying a message (``raise SystemExit("--policy runs/x: no config.json")``) is the
    same kind of deliberate refusal and is reported the same way; one carrying a number passes through.
    """
    try:
        return main(argv)
    except UserError as e:
        message = one_line(e)
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        message = one_line(e.code)
    print(f"{prog}: error: {message}" if prog else f"error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


def parse_assignments(items: Iterable[str], flag: str) -> dict[str, str]:
    """``["reward.beta=0.7", "a=b=c"]`` -> ``{"reward.beta": "0.7", "a": "b=c"}`` (values stay text).

    Raises:
      UserError: an item without ``=`` or with an empty key, naming ``flag`` and the item.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


__all__ = ["UserError", "ArgumentParser", "run_main", "parse_assignments", "one_line", "write_atomic", "USER_ERROR_STATUS"]
