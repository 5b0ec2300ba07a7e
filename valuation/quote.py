"""Ex-ante quotes: fit the value model on history, quote new datapoints (``python -m valuation.quote``).

Example (shipped data)::

    python -m valuation.quote --history valuation/examples/history.csv \
        --datapoints valuation/examples/datapoints.csv --output runs/premium_quotes.csv

history.csv: novelty_score, causal_gain, realized_mpl_gain (in arrival order; the last
``lookback_window`` rows are used, as the rolling model would). datapoints.csv: novelty_score,
causal_gain, sharing_status and optionally datapoint_id (default: a content hash of the row).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import jax
import numpy as np

from valuation import _cli, bayes_linear as bl, ledger as lg, pricing
from valuation.ledger import CSVFormatError, _Field, _rows
from valuation.settings import add_config_args, settings_from_args


def read_history(path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for line, row in _rows(path, ("novelty_score", "causal_gain", "realized_mpl_gain")):
        f = _Field(path, line)
        xs.append((f.num(row, "novelty_score"), f.num(row, "causal_gain")))
        ys.append(f.num(row, "realized_mpl_gain"))
    if not ys:
        raise CSVFormatError(f"{path}: no data rows")
    return np.asarray(xs, float), np.asarray(ys, float)


def read_datapoints(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids, xs, shared, seen = [], [], [], {}
    for line, row in _rows(path, ("novelty_score", "causal_gain", "sharing_status")):
        f = _Field(path, line)
        x = (f.num(row, "novelty_score"), f.num(row, "causal_gain"))
        dp = (row.get("datapoint_id") or "").strip() or pricing.datapoint_id(np.asarray(x))
        if dp in seen:
            raise CSVFormatError(f"{path}:{line}: datapoint_id {dp!r} repeats line {seen[dp]}")
        seen[dp] = line
        ids.append(dp)
        xs.append(x)
        shared.append(f.sharing(row, "sharing_status") == pricing.SHARED)
    if not ids:
        raise CSVFormatError(f"{path}: no data rows")
    return ids, np.asarray(xs, float), np.asarray(shared, bool)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m valuation.quote", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", required=True, help="CSV of past datapoints with realized gains")
    p.add_argument("--datapoints", required=True, help="CSV of datapoints to quote")
    p.add_argument("--output", required=True, help="premium_quotes.csv to write")
    p.add_argument("--data-value", default=None, help="also write data_value.csv here")
    p.add_argument("--ledger", default=None, help="SQLite ledger to record the quotes in (created if absent)")
    p.add_argument("--interval", choices=("normal", "t"), default="normal", help="interval quantile (default normal)")
    p.add_argument("--now", default=None, help="quote time, ISO-8601 (default: now, UTC)")
    add_config_args(p)
    return p


def main_impl(args, parser) -> int:
    s = settings_from_args(args, parser)
    hx, hy = read_history(args.history)
    ids, x, shared = read_datapoints(args.datapoints)
    w = s.lookback_window
    with jax.enable_x64(True):
        hp = s.bayes_params()
        n = min(len(hy), w)
        mask = np.ones(n, bool)
        model = bl.fit(hx[-n:], hy[-n:], mask, hp)
        pred = jax.tree.map(np.asarray, bl.predict_value(model, x, hp, args.interval))
    if not bool(np.all(pred.fitted)):
        _cli.console.print(f"[yellow]history has {len(hy)} rows < min_samples_for_fit {s.min_samples_for_fit}: quoting E[ΔMPL] = 0, κ = floor")
    now = pricing.parse_time(args.now) if args.now else pricing.utcnow()
    quotes = pricing.make_quotes(
        ids, x[:, 0], x[:, 1], pred.mean, pred.lower, pred.upper, pred.kappa, shared,
        price=s.price_per_unit, horizon=s.horizon_hours, thresholds=s.thresholds,
        trueup_period_days=s.trueup_period_days, now=now,
    )  # fmt: skip
    lg.write_quotes_csv(args.output, quotes)
    if args.data_value:
        lg.write_data_value_csv(args.data_value, quotes)
    if args.ledger:
        with lg.Ledger(args.ledger) as led:
            added = led.add_quotes(quotes)
        _cli.console.print(f"ledger {args.ledger}: {added} new quotes, {len(quotes) - added} already present")
    total = sum(q.premium_cents for q in quotes)
    tiers = np.bincount([q.tier for q in quotes], minlength=3)
    _cli.console.print(
        f"quoted {len(quotes)} datapoints ({int(shared.sum())} shared) on a model fitted to {min(len(hy), w)} rows; "
        f"tiers 0/1/2 = {tiers.tolist()}; premiums ${pricing.cents_to_str(total)} -> {args.output}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
