"""Ex-post true-up of quotes against realized ΔMPL (``python -m valuation.reconcile``).

Example (shipped data)::

    python -m valuation.reconcile --quotes valuation/examples/premium_quotes.csv \
        --realized valuation/examples/realized_mpl.csv --output runs/trueup_summary.csv

Both CSVs are validated before anything is written; a bad row is reported with its file and line.
With --ledger the quotes and true-ups are recorded in (or read from) a SQLite ledger:
re-running the same reconciliation is idempotent and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from valuation import _cli, ledger as lg, pricing
from valuation.settings import add_config_args, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m valuation.reconcile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quotes", required=True, help="premium_quotes.csv")
    p.add_argument("--realized", required=True, help="realized_mpl.csv (datapoint_id, realized_mpl)")
    p.add_argument("--output", required=True, help="trueup_summary.csv to write")
    p.add_argument("--ledger", default=":memory:", help="SQLite ledger file (default: in memory)")
    p.add_argument("--report", default=None, help="also write the period report as JSON here")
    p.add_argument("--period-start", default=None, help="report only quotes issued at/after this ISO time")
    p.add_argument("--period-end", default=None, help="report only quotes issued at/before this ISO time")
    p.add_argument("--now", default=None, help="reconciliation time, ISO-8601 (default: now)")
    add_config_args(p)
    return p


def main_impl(args, parser) -> int:
    s = settings_from_args(args, parser)
    quotes = lg.read_quotes_csv(args.quotes, default_price=s.price_per_unit)
    realized = lg.read_realized_csv(args.realized)
    now = pricing.parse_time(args.now) if args.now else None
    with lg.Ledger(args.ledger) as led:
        added = led.add_quotes(quotes)
        results = led.reconcile_many(realized, now=now)
        again = sum(t.already_reconciled for t in results)
        lg.write_trueups_csv(args.output, results)
        start = pricing.parse_time(args.period_start) if args.period_start else None
        end = pricing.parse_time(args.period_end) if args.period_end else None
        rep = pricing.reconciliation_report(led.quotes(), led.trueups(), start, end)
    if again:
        _cli.console.print(f"[yellow]{again} of {len(results)} datapoints were already reconciled in {args.ledger}; their stored true-ups are reported unchanged")
    _cli.console.print(f"{added} quotes recorded; {len(results) - again} new true-ups -> {args.output}")
    _cli.console.print(pricing.format_report(rep))
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(rep, fh, indent=2)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
