"""Pricing simulation, sharing vs withholding (``python -m valuation.simulate``).

Example::

    python -m valuation.simulate --task dishwashing --data-sharing-rate 0.8 --episodes 2000 \
        --output runs/pricing_simulation.csv

Writes the per-episode CSV, <stem>_summary.csv, <stem>_customers.csv and PNG plots (MPL growth,
customer cost, tier mix, premium vs true-up). The synthetic ground truth is documented in
valuation/simulator.py (realized ΔMPL = β₀ + βₙ·novelty + β_c·causal + noise).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pathlib import Path

from valuation import _cli, csv_formats as csvf, simulator
from valuation.errors import ValuationError
from valuation.settings import add_config_args, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m valuation.simulate", __doc__)
    p.add_argument("--data-sharing-rate", type=_cli.number(float, "[0, 1]"), default=0.8, help="share of customers who share data (default 0.8)")
    p.add_argument("--episodes", type=_cli.number(int, ">= 1"), default=1000, help="datapoints simulated (default 1000)")
    p.add_argument("--customers", type=_cli.number(int, ">= 1"), default=20, help="number of customers (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-std", type=_cli.number(float, ">= 0"), default=simulator.GroundTruth.noise_std, help="σ of the realized-gain noise (>= 0)")
    p.add_argument("--output", required=True, help="per-episode CSV to write")
    p.add_argument("--plots-dir", default=None, help="folder for PNGs (default: next to --output)")
    p.add_argument("--ledger-dir", default=None, help="also write premium_quotes.csv, realized_mpl.csv, trueup_summary.csv, data_value.csv here")
    add_config_args(p)
    return p


def main_impl(args, parser) -> int:
    s = settings_from_args(args, parser)
    csvf.check_output_path(args.output, "--output")
    if args.ledger_dir and Path(args.ledger_dir).exists() and not Path(args.ledger_dir).is_dir():
        raise ValuationError(f"--ledger-dir {args.ledger_dir!r}: is a file, not a folder")
    if args.plots_dir and Path(args.plots_dir).exists() and not Path(args.plots_dir).is_dir():
        raise ValuationError(f"--plots-dir {args.plots_dir!r}: is a file, not a folder")
    truth = simulator.GroundTruth(noise_std=args.noise_std)
    with _cli.console.status("simulating…"):
        res = simulator.simulate(
            s, episodes=args.episodes, sharing_rate=args.data_sharing_rate, customers=args.customers,
            seed=args.seed, truth=truth, progress=lambda m: _cli.console.log(m),
        )  # fmt: skip
        paths = simulator.write_outputs(res, args.output, args.plots_dir)
    if args.ledger_dir:
        d = Path(args.ledger_dir)
        csvf.write_quotes_csv(d / "premium_quotes.csv", res.quotes)
        csvf.write_realized_csv(d / "realized_mpl.csv", [(t.datapoint_id, t.realized_mpl) for t in res.trueups])
        csvf.write_trueups_csv(d / "trueup_summary.csv", res.trueups)
        csvf.write_data_value_csv(d / "data_value.csv", res.quotes, res.trueups)
    sm = res.summary
    _cli.console.print(
        f"provider MPL {sm['provider_mpl_initial']:.1f} -> {sm['provider_mpl_final']:.2f} units/h "
        f"(all share {sm['provider_mpl_final_all_share']:.2f}, none {sm['provider_mpl_final_none_share']:.2f}); "
        f"cost per customer if sharing ${sm['cost_per_customer_if_sharing']:,.2f} vs withholding ${sm['cost_per_customer_if_withholding']:,.2f}; "
        f"tiers {sm['tier0_pct']:.0f}/{sm['tier1_pct']:.0f}/{sm['tier2_pct']:.0f}%; interval coverage {sm['interval_coverage']:.1%} "
        f"at {sm['confidence_level']:.0%}; premiums ${sm['premium_total']:,.2f}, net true-up ${sm['trueup_total']:,.2f}"
    )
    _cli.console.print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
