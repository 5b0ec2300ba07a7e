"""Ex-post true-up of quotes against realized ΔMPL (``python -m valuation.reconcile``).

Example (shipped data)::

    python -m valuation.reconcile --quotes valuation/examples/premium_quotes.csv \
        --realized valuation/examples/realized_mpl.csv --output runs/trueup_summary.csv

Everything is validated before anything is written: both CSVs row by row (a bad row is reported
with its file and line), every realized id against the quotes and the ledger, the flags. The
quotes and their true-ups are then committed to the ledger in one transaction, and only after
the commit are --output and --report written (each through a temporary file and a rename).
Re-running the same reconciliation on a ledger file is idempotent and says so. A realized gain
below 0 is trued up as 0: the refund is at most the premium (README, Data economics).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from valuation import _cli, csv_formats as csvf, pricing
from valuation.errors import ValuationError
from valuation.settings import add_config_args, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m valuation.reconcile", __doc__)
    p.add_argument("--quotes", required=True, help="premium_quotes.csv")
    p.add_argument("--realized", required=True, help="realized_mpl.csv (datapoint_id, realized_mpl)")
    p.add_argument("--output", required=True, help="trueup_summary.csv to write")
    p.add_argument("--ledger", default=":memory:", help="SQLite ledger file (default: in memory; its folder must exist)")
    p.add_argument("--report", default=None, help="also write the period report as JSON here")
    p.add_argument("--period-start", default=None, help="report only quotes issued at/after this ISO time")
    p.add_argument("--period-end", default=None, help="report only quotes issued at/before this ISO time")
    p.add_argument("--now", default=None, help="reconciliation time, ISO-8601 (default: now)")
    add_config_args(p)
    return p


def _check_ids(realized: Sequence[csvf.RealizedRow], known: set[str], path: str, ledger: str) -> None:
    for r in realized:
        if r.datapoint_id not in known:
            where = "the quotes file" if ledger == ":memory:" else f"the quotes file nor ledger {ledger}"
            raise ValuationError(f"{path}:{r.line}: datapoint_id {r.datapoint_id!r}: no quote in {where}")


def main_impl(args, parser) -> int:
    s = settings_from_args(args, parser)
    now = _cli.time_flag(args.now, "--now")
    start = _cli.time_flag(args.period_start, "--period-start")
    end = _cli.time_flag(args.period_end, "--period-end")
    csvf.check_output_path(args.output, "--output")
    if args.report:
        csvf.check_output_path(args.report, "--report")
    quotes = csvf.read_quotes_csv(args.quotes, default_price=s.pricing.base_price_per_task)
    realized = csvf.read_realized_rows(args.realized)
    with _cli.ledger(args.ledger) as led:
        _check_ids(realized, {q.datapoint_id for q in quotes} | led.ids(), args.realized, args.ledger)
        added, results = led.record(quotes, [(r.datapoint_id, r.realized_mpl) for r in realized], now=now)
        rep = pricing.reconciliation_report(led.quotes(), led.trueups(), start, end)
    csvf.write_trueups_csv(args.output, results)
    if args.report:
        csvf.write_atomic(args.report, lambda fh: json.dump(rep, fh, indent=2), newline=None)
    again = sum(t.already_reconciled for t in results)
    if again:
        _cli.console.print(f"[yellow]{again} of {len(results)} datapoints were already reconciled in {args.ledger}; their stored true-ups are reported unchanged")
    _cli.console.print(f"{added} quotes recorded; {len(results) - again} new true-ups -> {args.output}")
    _cli.console.print(pricing.format_report(rep))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
