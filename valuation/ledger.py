"""A durable SQLite ledger of quotes and true-ups, and the seed's CSV files.

Guarantees (tested in tests/valuation/test_valuation_ledger.py):

* Every write is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``): a batch of quotes or of
  reconciliations is written whole or not at all, so an exception or a crash in the middle of a
  batch loses nothing committed before it and leaves no half batch behind.
* Money is stored as integer cents (errata 7); model quantities as REAL.
* Datapoint ids are stable strings (a content hash from :func:`valuation.pricing.datapoint_id` or
  the caller's id, errata 5) and the primary key of both tables.
* Reconciling a quote twice with the same realized ΔMPL returns the stored true-up marked
  ``already_reconciled=True`` and writes nothing; with a different value it raises
  :class:`ReconcileConflictError`. An unknown id raises :class:`UnknownDatapointError`.
* CSV imports parse and validate every row first; a malformed row raises :class:`CSVFormatError`
  naming the file, line and column, and nothing is written.

CSV files (the seed's names and columns): ``premium_quotes.csv`` (:data:`QUOTE_COLUMNS`),
``realized_mpl.csv`` (:data:`REALIZED_COLUMNS`), ``trueup_summary.csv`` (:data:`TRUEUP_COLUMNS`),
``data_value.csv`` (:data:`DATA_VALUE_COLUMNS`). Dollar columns hold two decimals.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sqlite3
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from valuation import pricing
from valuation.pricing import Quote, TrueUp, cents_to_str, iso, parse_time

QUOTE_COLUMNS = (
    "datapoint_id", "timestamp", "novelty", "causal_gain", "expected_mpl", "confidence_lower",
    "confidence_upper", "kappa", "tier", "sharing_status", "premium", "horizon_hours",
    "trueup_due_date", "price_per_unit",
)  # fmt: skip
QUOTE_OPTIONAL = ("price_per_unit",)
REALIZED_COLUMNS = ("datapoint_id", "realized_mpl")
TRUEUP_COLUMNS = (
    "datapoint_id", "timestamp", "ex_ante_premium", "ex_post_premium", "expected_mpl", "realized_mpl",
    "prediction_error", "trueup_amount", "trueup_pct", "direction", "within_interval",
)  # fmt: skip
DATA_VALUE_COLUMNS = (
    "datapoint_id", "novelty_score", "causal_gain", "expected_mpl_gain", "confidence_lower",
    "confidence_upper", "kappa", "tier", "premium_quote", "sharing_status", "realized_mpl_gain",
    "trueup_amount",
)  # fmt: skip


class LedgerError(Exception):
    """Base class of ledger errors."""


class UnknownDatapointError(LedgerError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ReconcileConflictError(LedgerError):
    pass


class DuplicateQuoteError(LedgerError):
    pass


class CSVFormatError(LedgerError, ValueError):
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
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly one transaction.
        self._con = sqlite3.connect(self.path, isolation_level=None)
        self._con.execute("PRAGMA foreign_keys = ON")
        self._con.execute("PRAGMA synchronous = FULL")
        self._con.executescript(_SCHEMA)

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
        added = 0
        with self.transaction() as con:
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
        now = now or pricing.utcnow()
        out: list[TrueUp] = []
        with self.transaction() as con:
            for datapoint_id, realized in items:
                quote = self.get_quote(datapoint_id)
                old = self._trueup_or_none(datapoint_id)
                if old is not None:
                    if old.realized_mpl != float(realized):
                        raise ReconcileConflictError(
                            f"datapoint_id {datapoint_id!r}: already reconciled on {iso(old.timestamp)} with realized ΔMPL "
                            f"{old.realized_mpl!r}; refusing {float(realized)!r}"
                        )
                    out.append(_replace(old, already_reconciled=True))
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

    # -- CSV
    def import_quotes_csv(self, path: str | os.PathLike, default_price: float | None = None) -> int:
        """Validates every row of a ``premium_quotes.csv`` first, then stores all in one transaction."""
        return self.add_quotes(read_quotes_csv(path, default_price))

    def import_realized_csv(self, path: str | os.PathLike, now=None) -> list[TrueUp]:
        """Validates ``realized_mpl.csv`` first, then reconciles all rows in one transaction."""
        return self.reconcile_many(read_realized_csv(path), now=now)

    def export_quotes_csv(self, path: str | os.PathLike) -> None:
        write_quotes_csv(path, self.quotes())

    def export_trueups_csv(self, path: str | os.PathLike) -> None:
        write_trueups_csv(path, self.trueups())

    def export_data_value_csv(self, path: str | os.PathLike) -> None:
        write_data_value_csv(path, self.quotes(), self.trueups())


def _replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


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


# ----------------------------------------------------------------------------- CSV parsing


def _rows(path: str | os.PathLike, required: Sequence[str], aliases: dict[str, str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yields (line number, row) of a CSV after checking its header names ``required``."""
    path = Path(path)
    if not path.is_file():
        raise CSVFormatError(f"{path}: file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise CSVFormatError(f"{path}:1: empty file; expected a header with columns {list(required)}")
        names = [(aliases or {}).get(n.strip(), n.strip()) for n in reader.fieldnames]
        reader.fieldnames = names
        missing = [c for c in required if c not in names]
        if missing:
            raise CSVFormatError(f"{path}:1: header lacks columns {missing}; it has {names}")
        line = 1
        for row in reader:
            line = reader.line_num
            if None in row:
                raise CSVFormatError(f"{path}:{line}: {len(names) + len(row[None])} fields, header has {len(names)}")
            if all((v or "").strip() == "" for v in row.values()):
                continue
            yield line, row


class _Field:
    def __init__(self, path, line):
        self.where = f"{path}:{line}"

    def _raw(self, row, col):
        v = row.get(col)
        if v is None or v.strip() == "":
            raise CSVFormatError(f"{self.where}: column {col!r} is empty")
        return v.strip()

    def text(self, row, col) -> str:
        return self._raw(row, col)

    def num(self, row, col, *, optional=False) -> float:
        if optional and (row.get(col) is None or row[col].strip() == ""):
            return math.nan
        v = self._raw(row, col)
        try:
            x = float(v)
        except ValueError:
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not finite")
        return x

    def cents(self, row, col, *, optional=False) -> int | None:
        if optional and (row.get(col) is None or row[col].strip() == ""):
            return None
        v = self._raw(row, col)
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not an amount of dollars") from None
        if not d.is_finite():
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not finite")
        return pricing.to_cents(d)

    def tier(self, row, col) -> int:
        v = self._raw(row, col)
        try:
            t = int(float(v))
        except ValueError:
            t = -1
        if t not in (0, 1, 2) or float(v) != t:
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not a tier (0, 1 or 2)")
        return t

    def time(self, row, col):
        v = self._raw(row, col)
        try:
            return parse_time(v)
        except (ValueError, OverflowError, OSError):
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not an ISO-8601 time or POSIX timestamp") from None

    def sharing(self, row, col) -> str:
        try:
            return pricing.normalize_sharing(self._raw(row, col))
        except ValueError as e:
            raise CSVFormatError(f"{self.where}: column {col!r}: {e}") from None


def read_quotes_csv(path: str | os.PathLike, default_price: float | None = None) -> list[Quote]:
    """Parses ``premium_quotes.csv``; raises CSVFormatError at the first bad row (file:line)."""
    required = [c for c in QUOTE_COLUMNS if c not in QUOTE_OPTIONAL]
    out: list[Quote] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, required):
        f = _Field(path, line)
        dp = f.text(row, "datapoint_id")
        if dp in seen:
            raise CSVFormatError(f"{path}:{line}: datapoint_id {dp!r} repeats line {seen[dp]}")
        seen[dp] = line
        price = f.num(row, "price_per_unit", optional=True)
        if math.isnan(price):
            if default_price is None:
                raise CSVFormatError(f"{path}:{line}: column 'price_per_unit' is empty and no default price was given")
            price = float(default_price)
        kap = f.num(row, "kappa")
        if not 0.0 <= kap <= 1.0:
            raise CSVFormatError(f"{path}:{line}: column 'kappa': {kap} is outside [0, 1]")
        lo, up = f.num(row, "confidence_lower"), f.num(row, "confidence_upper")
        if lo > up:
            raise CSVFormatError(f"{path}:{line}: confidence_lower {lo} > confidence_upper {up}")
        out.append(
            Quote(
                datapoint_id=dp, timestamp=f.time(row, "timestamp"), novelty=f.num(row, "novelty"),
                causal_gain=f.num(row, "causal_gain"), expected_mpl=f.num(row, "expected_mpl"),
                confidence_lower=lo, confidence_upper=up, kappa=kap, tier=f.tier(row, "tier"),
                sharing_status=f.sharing(row, "sharing_status"), premium_cents=f.cents(row, "premium"),
                price_per_unit=price, horizon_hours=f.num(row, "horizon_hours"),
                trueup_due_date=f.time(row, "trueup_due_date"),
            )  # fmt: skip
        )
    return out


def read_realized_csv(path: str | os.PathLike) -> list[tuple[str, float]]:
    """Parses ``realized_mpl.csv`` (datapoint_id, realized_mpl; ``realized_mpl_gain`` accepted)."""
    out, seen = [], {}
    for line, row in _rows(path, REALIZED_COLUMNS, aliases={"realized_mpl_gain": "realized_mpl"}):
        f = _Field(path, line)
        dp = f.text(row, "datapoint_id")
        if dp in seen:
            raise CSVFormatError(f"{path}:{line}: datapoint_id {dp!r} repeats line {seen[dp]}")
        seen[dp] = line
        out.append((dp, f.num(row, "realized_mpl")))
    return out


def read_data_value_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parses ``data_value.csv`` into columns (realized/true-up NaN where not yet filled in)."""
    cols: dict[str, list] = {c: [] for c in DATA_VALUE_COLUMNS}
    for line, row in _rows(path, DATA_VALUE_COLUMNS):
        f = _Field(path, line)
        cols["datapoint_id"].append(f.text(row, "datapoint_id"))
        for c in ("novelty_score", "causal_gain", "expected_mpl_gain", "confidence_lower", "confidence_upper", "kappa"):
            cols[c].append(f.num(row, c))
        cols["tier"].append(f.tier(row, "tier"))
        cols["premium_quote"].append(f.cents(row, "premium_quote") / 100.0)
        cols["sharing_status"].append(f.sharing(row, "sharing_status"))
        cols["realized_mpl_gain"].append(f.num(row, "realized_mpl_gain", optional=True))
        tu = f.cents(row, "trueup_amount", optional=True)
        cols["trueup_amount"].append(math.nan if tu is None else tu / 100.0)
    if not cols["datapoint_id"]:
        raise CSVFormatError(f"{path}: no data rows")
    return {k: np.asarray(v) for k, v in cols.items()}


# ----------------------------------------------------------------------------- CSV writing


def _write(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Writes to a temporary file and renames it, so a failed export leaves no partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def _g(x: float) -> str:
    return repr(float(x))


def write_quotes_csv(path: str | os.PathLike, quotes: Iterable[Quote]) -> None:
    _write(
        path,
        QUOTE_COLUMNS,
        (
            [q.datapoint_id, iso(q.timestamp), _g(q.novelty), _g(q.causal_gain), _g(q.expected_mpl),
             _g(q.confidence_lower), _g(q.confidence_upper), _g(q.kappa), q.tier, q.sharing_status,
             cents_to_str(q.premium_cents), _g(q.horizon_hours), iso(q.trueup_due_date), _g(q.price_per_unit)]
            for q in quotes
        ),
    )  # fmt: skip


def write_realized_csv(path: str | os.PathLike, items: Iterable[tuple[str, float]]) -> None:
    _write(path, REALIZED_COLUMNS, ([i, _g(v)] for i, v in items))


def write_trueups_csv(path: str | os.PathLike, trueups: Iterable[TrueUp]) -> None:
    _write(
        path,
        TRUEUP_COLUMNS,
        (
            [t.datapoint_id, iso(t.timestamp), cents_to_str(t.ex_ante_premium_cents), cents_to_str(t.ex_post_premium_cents),
             _g(t.expected_mpl), _g(t.realized_mpl), _g(t.prediction_error), cents_to_str(t.trueup_cents),
             f"{t.trueup_pct:.4f}", t.direction, int(t.within_interval)]
            for t in trueups
        ),
    )  # fmt: skip


def write_data_value_csv(path: str | os.PathLike, quotes: Iterable[Quote], trueups: Iterable[TrueUp] = ()) -> None:
    by_id = {t.datapoint_id: t for t in trueups}

    def row(q: Quote):
        t = by_id.get(q.datapoint_id)
        return [
            q.datapoint_id, _g(q.novelty), _g(q.causal_gain), _g(q.expected_mpl), _g(q.confidence_lower),
            _g(q.confidence_upper), _g(q.kappa), q.tier, cents_to_str(q.premium_cents), q.sharing_status,
            "" if t is None else _g(t.realized_mpl), "" if t is None else cents_to_str(t.trueup_cents),
        ]  # fmt: skip

    _write(path, DATA_VALUE_COLUMNS, (row(q) for q in quotes))


__all__ = [
    "QUOTE_COLUMNS",
    "REALIZED_COLUMNS",
    "TRUEUP_COLUMNS",
    "DATA_VALUE_COLUMNS",
    "LedgerError",
    "UnknownDatapointError",
    "ReconcileConflictError",
    "DuplicateQuoteError",
    "CSVFormatError",
    "Ledger",
    "read_quotes_csv",
    "read_realized_csv",
    "read_data_value_csv",
    "write_quotes_csv",
    "write_realized_csv",
    "write_trueups_csv",
    "write_data_value_csv",
]
