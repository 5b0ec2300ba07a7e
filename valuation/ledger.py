"""A durable SQLite ledger of quotes and true-ups.

Guarantees (tests/valuation/test_valuation_pricing_ledger.py):

* Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``): a batch of quotes or of
  reconciliations is written whole or not at all, so an exception or a crash in the middle of a
  batch loses nothing committed before it and leaves no half batch behind. :meth:`Ledger.record`
  stores quotes and their true-ups in one transaction.
* Money is stored as integer cents (README, Data economics); model quantities as REAL.
* Datapoint ids are stable strings (a content hash from :func:`valuation.pricing.datapoint_id` or
  the caller's id) and the primary key of both tables.
* Reconciling a quote twice with the same realized ΔMPL returns the stored true-up marked
  ``already_reconciled=True`` and writes nothing; with a different value it raises
  :class:`ReconcileConflictError`. An unknown id raises :class:`UnknownDatapointError`.
* A path that cannot hold a ledger (a missing folder, a folder, a file that is not SQLite) raises
  :class:`LedgerError` naming it; nothing is created.

The CSV files that feed and export the ledger are :mod:`valuation.csv_formats`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from valuation import pricing
from valuation.errors import LedgerError
from valuation.pricing import Quote, TrueUp, iso, parse_time


class UnknownDatapointError(LedgerError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ReconcileConflictError(LedgerError):
    pass


class DuplicateQuoteError(LedgerError):
    pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS quotes (
    datapoint_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    novelty REAL NOT NULL,
    causal_gain REAL NOT NULL,
    expected_mpl REAL NOT NULL,
    confidence_lower REAL NOT NULL,
    confidence_upper REAL NOT NULL,
    kappa REAL NOT NULL,
    tier INTEGER NOT NULL,
    sharing_status TEXT NOT NULL CHECK (sharing_status IN ('shared', 'withheld')),
    premium_cents INTEGER NOT NULL,
    price_per_unit REAL NOT NULL,
    horizon_hours REAL NOT NULL,
    trueup_due_date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trueups (
    datapoint_id TEXT PRIMARY KEY REFERENCES quotes(datapoint_id),
    reconciled_at TEXT NOT NULL,
    realized_mpl REAL NOT NULL,
    ex_ante_premium_cents INTEGER NOT NULL,
    ex_post_premium_cents INTEGER NOT NULL,
    trueup_cents INTEGER NOT NULL,
    trueup_pct REAL NOT NULL,
    prediction_error REAL NOT NULL,
    within_interval INTEGER NOT NULL
);
"""


class Ledger:
    """Quotes and true-ups in one SQLite file (``":memory:"`` for a throwaway ledger)."""

    def __init__(self, path: str | os.PathLike = ":memory:"):
        self.path = str(path)
        _check_ledger_path(self.path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly one transaction.
            self._con = sqlite3.connect(self.path, isolation_level=None)
            self._con.execute("PRAGMA foreign_keys = ON")
            self._con.execute("PRAGMA synchronous = FULL")
            self._con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"ledger {self.path}: cannot open it as an SQLite ledger ({e})") from None

    # -- plumbing
    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction: committed on success, rolled back on any exception."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    # -- quotes
    def add_quotes(self, quotes: Iterable[Quote]) -> int:
        """Stores quotes in one transaction; returns how many were new.

        Re-adding an identical quote is a no-op (safe to retry a batch); a different quote under
        an existing id raises :class:`DuplicateQuoteError` and the batch is rolled back.
        """
        with self.transaction() as con:
            return self._insert_quotes(con, quotes)

    def _insert_quotes(self, con: sqlite3.Connection, quotes: Iterable[Quote]) -> int:
        added = 0
        for q in quotes:
            old = self._quote_or_none(q.datapoint_id)
            if old is not None:
                if old != q:
                    raise DuplicateQuoteError(f"datapoint_id {q.datapoint_id!r}: already quoted with different values in {self.path}")
                continue
            con.execute(
                "INSERT INTO quotes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    q.datapoint_id, iso(q.timestamp), q.novelty, q.causal_gain, q.expected_mpl,
                    q.confidence_lower, q.confidence_upper, q.kappa, int(q.tier), q.sharing_status,
                    int(q.premium_cents), q.price_per_unit, q.horizon_hours, iso(q.trueup_due_date),
                ),
            )  # fmt: skip
            added += 1
        return added

    def _quote_or_none(self, datapoint_id: str) -> Quote | None:
        row = self._con.execute("SELECT * FROM quotes WHERE datapoint_id = ?", (datapoint_id,)).fetchone()
        return None if row is None else _quote_from_row(row)

    def get_quote(self, datapoint_id: str) -> Quote:
        q = self._quote_or_none(datapoint_id)
        if q is None:
            raise UnknownDatapointError(f"datapoint_id {datapoint_id!r}: no quote in ledger {self.path}")
        return q

    def quotes(self) -> list[Quote]:
        return [_quote_from_row(r) for r in self._con.execute("SELECT * FROM quotes ORDER BY created_at, datapoint_id")]

    # -- true-ups
    def _trueup_or_none(self, datapoint_id: str) -> TrueUp | None:
        row = self._con.execute(
            "SELECT t.*, q.expected_mpl FROM trueups t JOIN quotes q USING (datapoint_id) WHERE datapoint_id = ?",
            (datapoint_id,),
        ).fetchone()
        return None if row is None else _trueup_from_row(row)

    def trueups(self) -> list[TrueUp]:
        rows = self._con.execute("SELECT t.*, q.expected_mpl FROM trueups t JOIN quotes q USING (datapoint_id) ORDER BY reconciled_at, datapoint_id")
        return [_trueup_from_row(r) for r in rows]

    def reconcile(self, datapoint_id: str, realized_mpl: float, now=None) -> TrueUp:
        """True-up of one quote (its own transaction). See :meth:`reconcile_many`."""
        return self.reconcile_many([(datapoint_id, realized_mpl)], now=now)[0]

    def reconcile_many(self, items: Iterable[tuple[str, float]], now=None) -> list[TrueUp]:
        """Reconciles a batch atomically: all true-ups are stored, or none if anything fails.

        Args:
          items: (datapoint_id, realized ΔMPL) pairs; may be a generator.
          now: reconciliation time (default: now, UTC).

        Returns:
          One TrueUp per item; ``already_reconciled`` marks ones stored earlier with the same value.

        Raises:
          UnknownDatapointError: an id without a quote.
          ReconcileConflictError: an id reconciled before with a different realized ΔMPL, or twice
            in this batch with different values.
        """
        with self.transaction() as con:
            return self._insert_trueups(con, items, now or pricing.utcnow())

    def record(self, quotes: Iterable[Quote], items: Iterable[tuple[str, float]], now=None) -> tuple[int, list[TrueUp]]:
        """Stores quotes and reconciles ``items`` against the ledger in one transaction.

        Returns:
          (quotes that were new, one TrueUp per item), as :meth:`add_quotes` and
          :meth:`reconcile_many`; if anything fails, neither the quotes nor the true-ups are kept.
        """
        with self.transaction() as con:
            added = self._insert_quotes(con, quotes)
            return added, self._insert_trueups(con, items, now or pricing.utcnow())

    def _insert_trueups(self, con: sqlite3.Connection, items: Iterable[tuple[str, float]], now) -> list[TrueUp]:
        out: list[TrueUp] = []
        for datapoint_id, realized in items:
            quote = self.get_quote(datapoint_id)
            old = self._trueup_or_none(datapoint_id)
            if old is not None:
                if old.realized_mpl != float(realized):
                    raise ReconcileConflictError(
                        f"datapoint_id {datapoint_id!r}: already reconciled on {iso(old.timestamp)} with realized ΔMPL "
                        f"{old.realized_mpl!r}; refusing {float(realized)!r}"
                    )
                out.append(dataclasses.replace(old, already_reconciled=True))
                continue
            t = pricing.compute_trueup(quote, realized, now)
            con.execute(
                "INSERT INTO trueups VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    t.datapoint_id, iso(t.timestamp), t.realized_mpl, t.ex_ante_premium_cents,
                    t.ex_post_premium_cents, t.trueup_cents, t.trueup_pct, t.prediction_error,
                    int(t.within_interval),
                ),
            )  # fmt: skip
            out.append(t)
        return out

    def ids(self) -> set[str]:
        """The datapoint ids with a quote in the ledger."""
        return {r[0] for r in self._con.execute("SELECT datapoint_id FROM quotes")}


def _check_ledger_path(path: str) -> None:
    if path == ":memory:" or path.startswith("file:"):
        return
    p = Path(path)
    if p.is_dir():
        raise LedgerError(f"ledger {path}: is a folder; give a file path")
    parent = p.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise LedgerError(f"ledger {path}: folder {str(parent)!r} {what}")


def _quote_from_row(r) -> Quote:
    return Quote(
        datapoint_id=r[0], timestamp=parse_time(r[1]), novelty=r[2], causal_gain=r[3], expected_mpl=r[4],
        confidence_lower=r[5], confidence_upper=r[6], kappa=r[7], tier=int(r[8]), sharing_status=r[9],
        premium_cents=int(r[10]), price_per_unit=r[11], horizon_hours=r[12], trueup_due_date=parse_time(r[13]),
    )  # fmt: skip


def _trueup_from_row(r) -> TrueUp:
    return TrueUp(
        datapoint_id=r[0], timestamp=parse_time(r[1]), realized_mpl=r[2], ex_ante_premium_cents=int(r[3]),
        ex_post_premium_cents=int(r[4]), trueup_cents=int(r[5]), trueup_pct=r[6], prediction_error=r[7],
        within_interval=bool(r[8]), expected_mpl=r[9],
    )  # fmt: skip


__all__ = [
    "LedgerError",
    "UnknownDatapointError",
    "ReconcileConflictError",
    "DuplicateQuoteError",
    "Ledger",
]
