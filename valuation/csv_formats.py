"""The valuation CSV files: column lists, validating readers and atomic writers.

Files (README, Data valuation): ``premium_quotes.csv`` (:data:`QUOTE_COLUMNS`), ``realized_mpl.csv``
(:data:`REALIZED_COLUMNS`), ``trueup_summary.csv`` (:data:`TRUEUP_COLUMNS`), ``data_value.csv``
(:data:`DATA_VALUE_COLUMNS`), and the quote CLI's inputs ``history.csv`` (:data:`HISTORY_COLUMNS`)
and ``datapoints.csv`` (:data:`DATAPOINT_COLUMNS`). Dollar columns hold two decimals.

Readers parse and check every row before returning anything: a bad row raises
:class:`~valuation.errors.CSVFormatError` naming the file, line, column, value and rule. Values
are checked against what the valuation engine can produce: scores and gains are finite, novelty,
causal gain, E[ΔMPL] and its interval are ≥ 0, κ lies in [0, 1], premiums are ≥ 0, prices and
horizons > 0, ids are unique, and a file with no data rows is refused. Realized gains may be
negative (the true-up clips them at 0, :func:`valuation.pricing.compute_trueup`).

Writers go through a temporary file beside the target and an atomic rename; on any failure the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import csv
import math
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from valuation import pricing
from vpjax import cli
from valuation.errors import CSVFormatError, ValuationError
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
HISTORY_COLUMNS = ("novelty_score", "causal_gain", "realized_mpl_gain")
DATAPOINT_COLUMNS = ("novelty_score", "causal_gain", "sharing_status")  # datapoint_id optional


class Rule(NamedTuple):
    """A range a number must lie in: ``ok(x)``, described as ``text`` in messages."""

    ok: Callable[[float], bool]
    text: str


NON_NEGATIVE = Rule(lambda x: x >= 0.0, "must be >= 0")
POSITIVE = Rule(lambda x: x > 0.0, "must be > 0")
UNIT = Rule(lambda x: 0.0 <= x <= 1.0, "must be in [0, 1]")


# ----------------------------------------------------------------------------- parsing


def _rows(path: str | os.PathLike, required: Sequence[str], aliases: dict[str, str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yields (line number, row) of a CSV after checking its header names ``required``."""
    path = Path(path)
    if not path.is_file():
        raise CSVFormatError(f"{path}: {'is a folder, not a file' if path.is_dir() else 'file not found'}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            fieldnames = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as e:
            raise CSVFormatError(f"{path}:1: not a CSV file ({e})") from None
        if fieldnames is None:
            raise CSVFormatError(f"{path}:1: empty file; expected a header with columns {list(required)}")
        names = [(aliases or {}).get(n.strip(), n.strip()) for n in fieldnames]
        reader.fieldnames = names
        missing = [c for c in required if c not in names]
        if missing:
            raise CSVFormatError(f"{path}:1: header lacks columns {missing}; it has {names}")
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise CSVFormatError(f"{path}:{reader.line_num}: not a CSV row ({e})") from None
            line = reader.line_num
            if None in row:
                raise CSVFormatError(f"{path}:{line}: {len(names) + len(row[None])} fields, header has {len(names)}")
            if all((v or "").strip() == "" for v in row.values()):
                continue
            yield line, row


def _no_rows(path) -> CSVFormatError:
    return CSVFormatError(f"{path}:2: no data rows (the file has a header only)")


class _Field:
    """Typed, range-checked cells of one row; errors name ``file:line`` and the column."""

    def __init__(self, path, line):
        self.where = f"{path}:{line}"

    def _raw(self, row, col):
        v = row.get(col)
        if v is None or v.strip() == "":
            raise CSVFormatError(f"{self.where}: column {col!r} is empty")
        return v.strip()

    def _empty(self, row, col) -> bool:
        return row.get(col) is None or row[col].strip() == ""

    def text(self, row, col) -> str:
        return self._raw(row, col)

    def num(self, row, col, rule: Rule | None = None, *, optional=False) -> float:
        if optional and self._empty(row, col):
            return math.nan
        v = self._raw(row, col)
        try:
            x = float(v)
        except ValueError:
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not finite")
        if rule is not None and not rule.ok(x):
            raise CSVFormatError(f"{self.where}: column {col!r}: {v} {rule.text}")
        return x

    def cents(self, row, col, rule: Rule | None = None, *, optional=False) -> int | None:
        if optional and self._empty(row, col):
            return None
        v = self._raw(row, col)
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not an amount of dollars") from None
        if not d.is_finite():
            raise CSVFormatError(f"{self.where}: column {col!r}: {v!r} is not finite")
        if rule is not None and not rule.ok(float(d)):
            raise CSVFormatError(f"{self.where}: column {col!r}: {v} {rule.text}")
        return pricing.to_cents(d)

    def tier(self, row, col) -> int:
        v = self._raw(row, col)
        try:
            t = int(float(v))
            exact = float(v) == t
        except (ValueError, OverflowError):
            t, exact = -1, False
        if t not in (0, 1, 2) or not exact:
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

    def interval(self, row, lower_col, upper_col) -> tuple[float, float]:
        lo, up = self.num(row, lower_col, NON_NEGATIVE), self.num(row, upper_col, NON_NEGATIVE)
        if lo > up:
            raise CSVFormatError(f"{self.where}: {lower_col} {lo} > {upper_col} {up}")
        return lo, up


class _Ids:
    """Refuses an id seen on an earlier line of the same file."""

    def __init__(self, path):
        self.path, self.seen = path, {}

    def add(self, dp: str, line: int) -> str:
        if dp in self.seen:
            raise CSVFormatError(f"{self.path}:{line}: datapoint_id {dp!r} repeats line {self.seen[dp]}")
        self.seen[dp] = line
        return dp


def read_quotes_csv(path: str | os.PathLike, default_price: float | None = None) -> list[Quote]:
    """Parses ``premium_quotes.csv``; raises CSVFormatError at the first bad row (file:line)."""
    required = [c for c in QUOTE_COLUMNS if c not in QUOTE_OPTIONAL]
    out: list[Quote] = []
    ids = _Ids(path)
    for line, row in _rows(path, required):
        f = _Field(path, line)
        dp = ids.add(f.text(row, "datapoint_id"), line)
        price = f.num(row, "price_per_unit", POSITIVE, optional=True)
        if math.isnan(price):
            if default_price is None:
                raise CSVFormatError(f"{path}:{line}: column 'price_per_unit' is empty and no default price was given")
            price = float(default_price)
        lo, up = f.interval(row, "confidence_lower", "confidence_upper")
        stamp, due = f.time(row, "timestamp"), f.time(row, "trueup_due_date")
        if due < stamp:
            raise CSVFormatError(f"{path}:{line}: trueup_due_date {iso(due)} is before timestamp {iso(stamp)}")
        out.append(
            Quote(
                datapoint_id=dp, timestamp=stamp, novelty=f.num(row, "novelty", NON_NEGATIVE),
                causal_gain=f.num(row, "causal_gain", NON_NEGATIVE), expected_mpl=f.num(row, "expected_mpl", NON_NEGATIVE),
                confidence_lower=lo, confidence_upper=up, kappa=f.num(row, "kappa", UNIT), tier=f.tier(row, "tier"),
                sharing_status=f.sharing(row, "sharing_status"), premium_cents=f.cents(row, "premium", NON_NEGATIVE),
                price_per_unit=price, horizon_hours=f.num(row, "horizon_hours", POSITIVE), trueup_due_date=due,
            )  # fmt: skip
        )
    if not out:
        raise _no_rows(path)
    return out


class RealizedRow(NamedTuple):
    """One row of ``realized_mpl.csv`` with the line it came from."""

    line: int
    datapoint_id: str
    realized_mpl: float


def read_realized_rows(path: str | os.PathLike) -> list[RealizedRow]:
    """Parses ``realized_mpl.csv`` (datapoint_id, realized_mpl; ``realized_mpl_gain`` accepted)."""
    out, ids = [], _Ids(path)
    for line, row in _rows(path, REALIZED_COLUMNS, aliases={"realized_mpl_gain": "realized_mpl"}):
        f = _Field(path, line)
        out.append(RealizedRow(line, ids.add(f.text(row, "datapoint_id"), line), f.num(row, "realized_mpl")))
    if not out:
        raise _no_rows(path)
    return out


def read_realized_csv(path: str | os.PathLike) -> list[tuple[str, float]]:
    """(datapoint_id, realized ΔMPL) pairs of ``realized_mpl.csv`` (:func:`read_realized_rows`)."""
    return [(r.datapoint_id, r.realized_mpl) for r in read_realized_rows(path)]


def read_data_value_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parses ``data_value.csv`` into columns (realized/true-up NaN where not yet filled in)."""
    cols: dict[str, list] = {c: [] for c in DATA_VALUE_COLUMNS}
    ids = _Ids(path)
    for line, row in _rows(path, DATA_VALUE_COLUMNS):
        f = _Field(path, line)
        cols["datapoint_id"].append(ids.add(f.text(row, "datapoint_id"), line))
        for c in ("novelty_score", "causal_gain", "expected_mpl_gain"):
            cols[c].append(f.num(row, c, NON_NEGATIVE))
        lo, up = f.interval(row, "confidence_lower", "confidence_upper")
        cols["confidence_lower"].append(lo)
        cols["confidence_upper"].append(up)
        cols["kappa"].append(f.num(row, "kappa", UNIT))
        cols["tier"].append(f.tier(row, "tier"))
        cols["premium_quote"].append(f.cents(row, "premium_quote", NON_NEGATIVE) / 100.0)
        cols["sharing_status"].append(f.sharing(row, "sharing_status"))
        cols["realized_mpl_gain"].append(f.num(row, "realized_mpl_gain", optional=True))
        tu = f.cents(row, "trueup_amount", optional=True)
        cols["trueup_amount"].append(math.nan if tu is None else tu / 100.0)
    if not cols["datapoint_id"]:
        raise _no_rows(path)
    return {k: np.asarray(v) for k, v in cols.items()}


def read_history(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``history.csv`` in arrival order: (x [N, 2] novelty_score, causal_gain; y [N] realized gain)."""
    xs, ys = [], []
    for line, row in _rows(path, HISTORY_COLUMNS):
        f = _Field(path, line)
        xs.append((f.num(row, "novelty_score", NON_NEGATIVE), f.num(row, "causal_gain", NON_NEGATIVE)))
        ys.append(f.num(row, "realized_mpl_gain"))
    if not ys:
        raise _no_rows(path)
    return np.asarray(xs, float), np.asarray(ys, float)


def read_datapoints(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``datapoints.csv``: (ids, x [N, 2] novelty_score, causal_gain; shared [N] bool).

    A row without a ``datapoint_id`` gets the content hash of its features.
    """
    out_ids, xs, shared = [], [], []
    ids = _Ids(path)
    for line, row in _rows(path, DATAPOINT_COLUMNS):
        f = _Field(path, line)
        x = (f.num(row, "novelty_score", NON_NEGATIVE), f.num(row, "causal_gain", NON_NEGATIVE))
        dp = (row.get("datapoint_id") or "").strip() or pricing.datapoint_id(np.asarray(x))
        out_ids.append(ids.add(dp, line))
        xs.append(x)
        shared.append(f.sharing(row, "sharing_status") == pricing.SHARED)
    if not out_ids:
        raise _no_rows(path)
    return out_ids, np.asarray(xs, float), np.asarray(shared, bool)


# ----------------------------------------------------------------------------- writing


def check_output_path(path: str | os.PathLike, flag: str) -> Path:
    """Refuses, before any work, an output path that cannot be written as a file.

    Raises:
      ValuationError: ``path`` is a folder, or a parent of it is a file (naming ``flag``).
    """
    p = Path(path)
    if p.is_dir():
        raise ValuationError(f"{flag} {str(path)!r}: is a folder; give a file path")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValuationError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return p


def write_atomic(path: str | os.PathLike, write: Callable[[object], None], newline: str | None = "", binary: bool = False) -> None:
    """:func:`vpjax.cli.write_atomic` with an OS error reported as a :class:`ValuationError`."""
    cli.write_atomic(path, write, newline, binary, error=ValuationError)


def _write(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    def write(fh):
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)

    write_atomic(path, write)


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
    "HISTORY_COLUMNS",
    "DATAPOINT_COLUMNS",
    "CSVFormatError",
    "RealizedRow",
    "read_quotes_csv",
    "read_realized_rows",
    "read_realized_csv",
    "read_data_value_csv",
    "read_history",
    "read_datapoints",
    "check_output_path",
    "write_atomic",
    "write_quotes_csv",
    "write_realized_csv",
    "write_trueups_csv",
    "write_data_value_csv",
]
