"""Regenerates the shipped example CSVs from the pricing simulator (seed 7).

    python valuation/examples/make_examples.py

history.csv        300 past datapoints with realized gains (input of valuation.quote)
datapoints.csv     12 new datapoints to quote (valuation.quote)
premium_quotes.csv 60 quotes, realized_mpl.csv their realized gains (valuation.reconcile)
data_value.csv     the 12 columns for the 300 reconciled datapoints (report, compare_tiers)
"""

from pathlib import Path

import numpy as np

from valuation import csv_formats as csvf, simulator
from valuation.settings import ValuationSettings

HERE = Path(__file__).resolve().parent


def main():
    res = simulator.simulate(ValuationSettings(), episodes=372, sharing_rate=0.8, customers=10, seed=7)
    e = res.episodes
    hist = slice(0, 300)
    with open(HERE / "history.csv", "w") as fh:
        fh.write("novelty_score,causal_gain,realized_mpl_gain\n")
        for n, c, r in zip(e["novelty_score"][hist], e["causal_gain"][hist], e["realized_mpl_gain"][hist]):
            fh.write(f"{float(n)!r},{float(c)!r},{float(r)!r}\n")
    with open(HERE / "datapoints.csv", "w") as fh:
        fh.write("datapoint_id,novelty_score,causal_gain,sharing_status\n")
        for i in range(360, 372):
            fh.write(f"dp-{i:04d},{float(e['novelty_score'][i])!r},{float(e['causal_gain'][i])!r},{e['sharing_status'][i]}\n")
    q = res.quotes[300:360]
    csvf.write_quotes_csv(HERE / "premium_quotes.csv", q)
    csvf.write_realized_csv(HERE / "realized_mpl.csv", [(t.datapoint_id, t.realized_mpl) for t in res.trueups[300:360]])
    csvf.write_data_value_csv(HERE / "data_value.csv", res.quotes[:300], res.trueups[:300])
    print("wrote", sorted(p.name for p in HERE.glob("*.csv")), np.bincount(e["tier"], minlength=3))


if __name__ == "__main__":
    main()
