"""Shared CLI plumbing: clear one-line errors instead of tracebacks, rich console output."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from rich.console import Console

from valuation.ledger import LedgerError

console = Console(stderr=True, soft_wrap=True)  # no hard wraps in logs


def run(main: Callable[[argparse.Namespace, argparse.ArgumentParser], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parses ``argv`` and runs ``main``; expected failures print ``error: …`` and return 2."""
    args = parser.parse_args(argv)
    try:
        return int(main(args, parser) or 0)
    except (LedgerError, ValueError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{parser.prog}: error: {msg}", file=sys.stderr)
        return 2
