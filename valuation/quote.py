"""Ex-ante quotes: fit the value model on history, quote new datapoints (``python -m valuation.quote``).

Example (shipped data)::

    python -m valuation.quote --history valuation/examples/history.csv \
        --datapoints valuation/examples/datapoints.csv --output runs/premium_quotes.csv

history.csv: novelty_score, causal_gain, realized_mpl_gain (in arrival order; the last
``lookback_window`` rows are used, as the rolling model would). datapoints.csv: novelty_score,
causal_gain, sharing_status and optionally datapoint_id (default: a content hash of the row).

Everything is validated first; with --ledger the quotes are committed to the ledger, and only
then are the CSVs written (each through a temporary file and a rename).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import NamedTuple, Sequence

import jax
import numpy as np

from valuation import _cli, bayes_linear as bl, csv_formats as csvf, pricing
from valuation.csv_formats import read_datapoints, read_history
from valuation.settings import ValuationSettings, add_config_args, settings_from_args

FEATURES = ("novelty_score", "causal_gain")


class QuoteBatch(NamedTuple):
    """Quotes of a batch and the value model's predictions behind them.

    Attributes:
      quotes: one :class:`valuation.pricing.Quote` per datapoint, in input order.
      prediction: :class:`valuation.bayes_linear.ValuePrediction`, NumPy leaves [N].
      n_fit: history rows the model was fitted on (the last ``lookback_window``).
      fitted: False when ``n_fit`` < ``min_samples_for_fit`` (E[ΔMPL] = 0, κ = floor).
    """

    quotes: list
    prediction: bl.ValuePrediction
    n_fit: int
    fitted: bool


def quote_batch(
    history_x: np.ndarray,
    history_y: np.ndarray,
    ids: Sequence[str],
    x: np.ndarray,
    shared: Sequence[bool],
    settings: ValuationSettings,
    *,
    interval: str = "normal",
    now: dt.datetime | None = None,
) -> QuoteBatch:
    """Fits the value model on the last ``lookback_window`` history rows and quotes ``x``.

    Args:
      history_x: [N, 2] novelty_score, causal_gain of past datapoints, in arrival order.
      history_y: [N] their realized ΔMPL.
      ids: [B] datapoint ids of the batch.
      x: [B, 2] the batch's novelty_score, causal_gain.
      shared: [B] True where the customer shares the datapoint.
      settings: ``data_valuation`` (window, fit, interval, κ, tiers) and ``pricing`` (p, H, period).
      interval: "normal" or "t" quantile.
      now: quote time (default: now, UTC).

    Raises:
      ValueError: a non-finite input (naming the array, row and column) or prediction.
    """
    hx, hy, x = np.asarray(history_x, float), np.asarray(history_y, float), np.asarray(x, float)
    bl.check_finite(hx, "history", FEATURES)
    bl.check_finite(hy[:, None], "history", ("realized_mpl_gain",))
    bl.check_finite(x, "datapoints", FEATURES)
    n = min(len(hy), settings.data_valuation.lookback_window)
    with jax.enable_x64(True):
        hp = settings.bayes_params()
        model = bl.fit(hx[len(hy) - n :], hy[len(hy) - n :], np.ones(n, bool), hp)
        pred = jax.tree.map(np.asarray, bl.predict_value(model, x, hp, interval))
    pr = settings.pricing
    quotes = pricing.make_quotes(
        list(ids), x[:, 0], x[:, 1], pred.mean, pred.lower, pred.upper, pred.kappa, list(shared),
        price=pr.base_price_per_task, horizon=pr.horizon_hours, thresholds=settings.thresholds,
        trueup_period_days=pr.trueup_period_days, now=now,
    )  # fmt: skip
    return QuoteBatch(quotes, pred, n, bool(np.all(pred.fitted)))


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m valuation.quote", __doc__)
    p.add_argument("--history", required=True, help="CSV of past datapoints with realized gains")
    p.add_argument("--datapoints", required=True, help="CSV of datapoints to quote")
    p.add_argument("--output", required=True, help="premium_quotes.csv to write")
    p.add_argument("--data-value", default=None, help="also write data_value.csv here")
    p.add_argument("--ledger", default=None, help="SQLite ledger to record the quotes in (created if absent; its folder must exist)")
    p.add_argument("--interval", choices=("normal", "t"), default="normal", help="interval quantile (default normal)")
    p.add_argument("--now", default=None, help="quote time, ISO-8601 (default: now, UTC)")
    add_config_args(p)
    return p


def main_impl(args, parser) -> int:
    s = settings_from_args(args, parser)
    now = _cli.time_flag(args.now, "--now") or pricing.utcnow()
    csvf.check_output_path(args.output, "--output")
    if args.data_value:
        csvf.check_output_path(args.data_value, "--data-value")
    hx, hy = read_history(args.history)
    ids, x, shared = read_datapoints(args.datapoints)
    batch = quote_batch(hx, hy, ids, x, shared, s, interval=args.interval, now=now)
    quotes = batch.quotes
    notes = []
    if args.ledger:
        with _cli.ledger(args.ledger) as led:
            added = led.add_quotes(quotes)
        notes.append(f"ledger {args.ledger}: {added} new quotes, {len(quotes) - added} already present")
    csvf.write_quotes_csv(args.output, quotes)
    if args.data_value:
        csvf.write_data_value_csv(args.data_value, quotes)
    if not batch.fitted:
        _cli.console.print(f"[yellow]history has {len(hy)} rows < min_samples_for_fit {s.data_valuation.min_samples_for_fit}: quoting E[ΔMPL] = 0, κ = floor")
    for note in notes:
        _cli.console.print(note)
    total = sum(q.premium_cents for q in quotes)
    tiers = np.bincount([q.tier for q in quotes], minlength=3)
    _cli.console.print(
        f"quoted {len(quotes)} datapoints ({int(shared.sum())} shared) on a model fitted to {batch.n_fit} rows; "
        f"tiers 0/1/2 = {tiers.tolist()}; premiums ${pricing.cents_to_str(total)} -> {args.output}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
