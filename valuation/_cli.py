"""Shared CLI plumbing: a user's error is one line on stderr and exit status 2; rich console output.

A user's error is a :class:`vpjax.cli.UserError`: a :class:`~valuation.errors.ValuationError`
(bad file, value, ledger path), a :class:`vpjax.config.ConfigError`, or a bad flag (argparse).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rich.console import Console

from valuation import ledger as lg, pricing
from valuation.errors import ValuationError
from vpjax.cli import USER_ERROR_STATUS, ArgumentParser, UserError, one_line

console = Console(stderr=True, soft_wrap=True)  # no hard wraps in logs


def parser(prog: str, doc: str | None) -> ArgumentParser:
    """A parser whose errors are one line (:class:`vpjax.cli.ArgumentParser`)."""
    return ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(main: Callable[[argparse.Namespace, argparse.ArgumentParser], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parses ``argv`` and runs ``main``; a user's error prints ``prog: error: …`` and returns 2."""
    args = parser.parse_args(argv)
    try:
        return int(main(args, parser) or 0)
    except UserError as e:
        print(f"{parser.prog}: error: {one_line(e)}", file=sys.stderr)
        return USER_ERROR_STATUS


def time_flag(text: str | None, flag: str) -> dt.datetime | None:
    """Parses an ISO-8601 time or POSIX timestamp given with ``flag`` (None stays None)."""
    if text is None:
        return None
    try:
        return pricing.parse_time(text)
    except (ValueError, OverflowError, OSError):
        raise ValuationError(f"{flag} {text!r}: not an ISO-8601 time or POSIX timestamp") from None


def number(kind: type, rule: str) -> Callable[[str], float]:
    """An argparse ``type`` that parses ``kind`` and checks ``rule`` (">= 0", "> 0", ">= 1", "[0, 1]")."""
    checks = {">= 0": lambda x: x >= 0, "> 0": lambda x: x > 0, ">= 1": lambda x: x >= 1, "[0, 1]": lambda x: 0 <= x <= 1}
    ok = checks[rule]

    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (x == x and abs(x) != float("inf")) or not ok(x):  # NaN and inf break every rule
            raise argparse.ArgumentTypeError(f"{text} must be {rule if rule != '[0, 1]' else 'in [0, 1]'}")
        return x

    return parse


@contextlib.contextmanager
def ledger(path: str) -> Iterator[lg.Ledger]:
    """Opens the ledger at ``path``; if the command fails and the file is new, it is removed.

    A failed command then leaves the ledger exactly as before: absent if it was absent, and
    otherwise unchanged, since every write is one transaction.
    """
    new = path != ":memory:" and not os.path.exists(path)
    try:
        with lg.Ledger(path) as led:
            yield led
    except BaseException:
        if new:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
        raise
