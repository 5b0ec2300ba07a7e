"""Data-valuation report as a multi-page PDF (``python -m valuation.report``).

Example (shipped data)::

    python -m valuation.report --log valuation/examples/data_value.csv --output runs/data_valuation.pdf

Pages: novelty and causal-gain distributions, predicted vs realized gain (with intervals), tier
mix and tier statistics, premiums vs true-ups. Rows without a realized gain are skipped on the
pages that need one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from valuation import _cli, csv_formats as csvf, tiering


def make_pdf(cols: dict[str, np.ndarray], output: str | Path, title: str = "Data valuation") -> int:
    """Writes the report (through a temporary file and a rename); returns the number of pages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    done = ~np.isnan(cols["realized_mpl_gain"])
    tiers = cols["tier"].astype(int)
    pages = 0

    def write(fh):
        @contextlib.contextmanager
        def page(*grid, **kw):
            nonlocal pages
            fig, axes = plt.subplots(*grid, **kw)
            yield fig, axes
            pdf.savefig(fig)
            plt.close(fig)
            pages += 1

        with PdfPages(fh) as pdf:
            with page(1, 2, figsize=(10, 4)) as (fig, axes):
                axes[0].hist(cols["novelty_score"], bins=30)
                axes[0].set_title("novelty_score")
                axes[1].hist(cols["causal_gain"], bins=30, color="tab:orange")
                axes[1].set_title("causal_gain")
                fig.suptitle(f"{title}: {len(tiers)} datapoints")

            with page(figsize=(6, 5)) as (fig, ax):
                if done.any():
                    e, r = cols["expected_mpl_gain"][done], cols["realized_mpl_gain"][done]
                    lo, up = cols["confidence_lower"][done], cols["confidence_upper"][done]
                    ax.errorbar(e, r, xerr=[e - lo, up - e], fmt="o", ms=3, alpha=0.4, elinewidth=0.5)
                    lim = [min(e.min(), r.min()), max(e.max(), r.max())]
                    ax.plot(lim, lim, "k--", lw=1)
                    cover = np.mean((r >= lo) & (r <= up))
                    ax.set_title(f"Predicted vs realized ΔMPL (n={done.sum()}, interval coverage {cover:.0%})")
                else:
                    ax.text(0.5, 0.5, "no realized gains yet", ha="center")
                ax.set_xlabel("E[ΔMPL] (interval as bars)")
                ax.set_ylabel("realized ΔMPL")

            stats = tiering.tier_stats(tiers, cols["premium_quote"])
            with page(1, 2, figsize=(10, 4)) as (fig, axes):
                names = ["0 redundant", "1 context", "2 frontier"]
                axes[0].bar(names, np.asarray(stats.count))
                axes[0].set_title("Tier mix")
                rows = [[names[i], int(stats.count[i]), f"{float(stats.percent[i]):.1f}%", f"${float(stats.total_value[i]):,.2f}", f"${float(stats.mean_value[i]):,.2f}"] for i in range(3)]
                axes[1].axis("off")
                axes[1].table(cellText=rows, colLabels=["tier", "count", "%", "premium total", "premium mean"], loc="center")

            with page(figsize=(6, 5)) as (fig, ax):
                tu = cols["trueup_amount"]
                has = ~np.isnan(tu) & (cols["sharing_status"] == "withheld")
                if has.any():
                    ax.scatter(cols["premium_quote"][has], tu[has], s=8, alpha=0.5)
                    ax.axhline(0, color="k", lw=1)
                    ax.set_title(f"Premiums vs true-ups (refunds ${tu[has][tu[has] > 0].sum():,.2f}, bills ${-tu[has][tu[has] < 0].sum():,.2f})")
                else:
                    ax.text(0.5, 0.5, "no true-ups yet", ha="center")
                ax.set_xlabel("ex-ante premium ($)")
                ax.set_ylabel("true-up ($, + refund / − bill)")

    csvf.write_atomic(output, write, binary=True)
    return pages


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m valuation.report", __doc__)
    p.add_argument("--log", required=True, help="data_value.csv")
    p.add_argument("--output", required=True, help="PDF to write")
    return p


def main_impl(args, parser) -> int:
    if not str(args.output).lower().endswith(".pdf"):
        parser.error(f"--output {args.output!r}: must end in .pdf")
    csvf.check_output_path(args.output, "--output")
    cols = csvf.read_data_value_csv(args.log)
    n = make_pdf(cols, args.output)
    _cli.console.print(f"{n} pages, {len(cols['tier'])} datapoints -> {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _cli.run(main_impl, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
