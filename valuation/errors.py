"""Errors a user can cause and fix (a bad file, value or flag), apart from internal failures.

A :class:`ValuationError` is a :class:`vpjax.cli.UserError`: the CLIs print it as one line,
``prog: error: <message>``, and exit with status 2; anything else is a bug and keeps its traceback. Messages name where the problem is (file
and line, column, flag) and the rule that was broken, and hold no line breaks.
"""

from __future__ import annotations

from vpjax.cli import UserError


class ValuationError(UserError):
    """An invalid input: a CSV row, a ledger file, a command-line value."""


class CSVFormatError(ValuationError, ValueError):
    """A CSV file that cannot be read as its format: names the file, line and column."""


class LedgerError(ValuationError):
    """Base class of ledger errors (a path that cannot hold a ledger, an id conflict)."""


__all__ = ["ValuationError", "CSVFormatError", "LedgerError"]
