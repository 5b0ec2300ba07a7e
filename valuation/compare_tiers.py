"""Compare tiering strategies on realized gains (``python -m valuation.compare_tiers``).

Example (shipped data)::

    python -m valuation.compare_tiers --log valuation/examples/data_value.csv \
        --output runs/tier_comparison.pdf

Strategies, each scored by how often the tier of E[ΔMPL] equals the tier of the realized gain
(realized tiers use the configured thresholds): the configured thresholds; thresholds calibrated
on the first half of the reconciled rows and evaluated on the second (held out); and
equal-frequency (tercile) thresholds. Writes a PDF of confusion matrices (predicted rows, realized
columns) and a CSV table next to it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from valuation import _cli, csv_formats as csvf, tiering
from valuation.errors import ValuationError
from valuation.settings import add_config_args, settings_from_args


def compare(pred: np.ndarray, realized: np.ndarray, thresholds: Sequence[float], premium: np.ndarray | None = None) -> list[dict]:
    """Scores strategies on held-out data (second half); returns one dict per strategy."""
    n = len(pred)
    if n < 4:
        raise ValueError(f"need at least 4 datapoints with realized gains to compare tiers, got {n}")
    half = n // 2
    th = jnp.asarray(thresholds, float)
    cal = tiering.calibrate_thresholds(pred[:half], realized[:half], th)
    strategies = {
        "configured": np.asarray(thresholds, float),
        "calibrated (held out)": np.asarray(cal.thresholds),
        "terciles": np.quantile(pred[:half], [1 / 3, 2 / 3]),
    }
    test_p, test_r = pred[half:], realized[half:]
    true_tier = tiering.assign_tier(test_r, th)
    out = []
    for name, t in strategies.items():
        tier = tiering.assign_tier(test_p, jnp.asarray(t))
        conf = np.asarray(tiering.confusion_matrix(tier, true_tier))
        stats = tiering.tier_stats(tier, jnp.asarray(test_p if premium is None else premium[half:]))
        out.append(
            {
                "strategy": name,
                "tier0_threshold": float(t[0]),
                "tier1_threshold": float(t[1]),
                "accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
                "n_test": int(conf.sum()),
                "tier_counts": np.asarray(stats.count).astype(int).tolist(),
                "confusion": conf,
            }
        )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m valuation.compare_tiers", __doc__)
    p.add_argument("--log", required=True, help="data_value.csv with realized_mpl_gain filled in")
    p.add_argument("--output", required=True, help="PDF to write (a CSV with the same stem is written too)")
    add_config_args(p)
    return p


def main_impl(args, parser) -> int:
    import pandas as pd

    if not str(args.output).lower().endswith(".pdf"):
        parser.error(f"--output {args.output!r}: must end in .pdf")
    s = settings_from_args(args, parser)
    out = csvf.check_output_path(args.output, "--output")
    csvf.check_output_path(out.with_suffix(".csv"), "--output (its .csv table)")
    cols = csvf.read_data_value_csv(args.log)
    done = ~np.isnan(cols["realized_mpl_gain"])
    if done.sum() < 4:
        raise ValuationError(f"{args.log}: {int(done.sum())} rows have a realized_mpl_gain; comparing tiers needs at least 4")
    res = compare(cols["expected_mpl_gain"][done], cols["realized_mpl_gain"][done], s.thresholds, cols["premium_quote"][done])
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "confusion"} for r in res])
    csvf.write_atomic(out, lambda fh: _write_pdf(fh, res), binary=True)
    csvf.write_atomic(out.with_suffix(".csv"), lambda fh: table.to_csv(fh, index=False))
    for r in res:
        _cli.console.print(f"{r['strategy']:>22}: thresholds ({r['tier0_threshold']:.3f}, {r['tier1_threshold']:.3f}) accuracy {r['accuracy']:.1%} on {r['n_test']} held-out, tiers {r['tier_counts']}")
    _cli.console.print(f"-> {out}, {out.with_suffix('.csv')}")
    return 0


def _write_pdf(fh, res: list[dict]) -> None:
    """One page of confusion matrices (predicted rows, realized columns), one per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(fh) as pdf:
        fig, axes = plt.subplots(1, len(res), figsize=(4 * len(res), 4))
        for ax, r in zip(axes, res):
            ax.imshow(r["confusion"], cmap="Blues")
            for (i, j), v in np.ndenumerate(r["confusion"]):
                ax.text(j, i, int(v), ha="center", va="center")
            ax.set_title(f"{r['strategy']}\nt=({r['tier0_threshold']:.2f}, {r['tier1_threshold']:.2f}) acc {r['accuracy']:.0%}")
            ax.set_xlabel("realized tier")
            ax.set_ylabel("predicted tier")
        fig.tight_layout()
        pdf.savefig(fig)
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
