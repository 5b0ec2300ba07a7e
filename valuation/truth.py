"""How true are the quotes? Predicted value against value measured by counterfactual retraining.

The retraining tool (``python -m train.economic_truth``) measures each datapoint's realized ΔMPL and
retrains students on held-out subsets; this module scores the value model's predictions against
those measurements, on arrays only (``valuation`` never imports ``envs`` or ``train``):

* :func:`spearman` — rank correlation (ties get their average rank);
* :func:`lds` — TRAK's linear datamodeling score: the rank correlation, over held-out random subsets,
  between the sum of the predicted values of a subset's datapoints and the MPᵣ a student trained on
  that subset reached;
* :func:`coverage` — share of realized gains inside the predicted intervals;
* :func:`tier_confusion` — predicted tier (from E[ΔMPL]) against the tier of the realized gain;
* :func:`trueup_percent` — each true-up as a % of its ex-ante premium (:func:`valuation.pricing.compute_trueup`);
* :func:`scorecard` — all of them against the goals of :data:`GOALS`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from valuation import pricing, tiering

# goal of each score (issue "Are the data prices true?"): (description, test)
GOALS = {
    "spearman": ("≥ 0.6", lambda v: v >= 0.6),
    "coverage": ("75–85%", lambda v: 0.75 <= v <= 0.85),
    "tier_diagonal": ("≥ 70%", lambda v: v >= 0.70),
    "median_abs_trueup_pct": ("≤ 20%", lambda v: v <= 20.0),
}


def spearman(a, b) -> float:
    """Spearman rank correlation of two [N] arrays (average ranks for ties; NaN when one is constant)."""
    ra = pd.Series(np.asarray(a, float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, float)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def lds(values, masks, outcomes) -> float:
    """Linear datamodeling score: Spearman between ``masks`` [M, N] @ ``values`` [N] and ``outcomes`` [M]."""
    return spearman(np.asarray(masks, float) @ np.asarray(values, float), outcomes)


def coverage(realized, lower, upper) -> float:
    """Share of ``realized`` [N] inside [lower, upper]."""
    r = np.asarray(realized, float)
    return float(np.mean((r >= np.asarray(lower, float)) & (r <= np.asarray(upper, float))))


def tier_confusion(expected, realized, thresholds: Sequence[float]) -> np.ndarray:
    """[3, 3] counts: row = tier of the prediction, column = tier of the realized gain."""
    th = np.asarray(thresholds, float)
    pred = np.asarray(tiering.assign_tier(np.asarray(expected, float), th))
    true = np.asarray(tiering.assign_tier(np.asarray(realized, float), th))
    return np.asarray(tiering.confusion_matrix(pred, true, 3))


def trueup_percent(quotes: Sequence[pricing.Quote], realized: Sequence[float]) -> np.ndarray:
    """[N] true-up of each quote with its realized gain, as % of the premium (NaN where the premium is 0)."""
    out = []
    for q, r in zip(quotes, realized):
        t = pricing.compute_trueup(q, float(r))
        out.append(t.trueup_pct if q.premium_cents else float("nan"))
    return np.asarray(out, float)


def scorecard(expected, lower, upper, realized, thresholds, quotes, lds_masks=None, lds_outcomes=None) -> dict:
    """The scores of the predictions against the realized gains, with the goal each is held to.

    Returns:
      {'spearman', 'coverage', 'lds' (NaN without held-out subsets), 'tier_confusion' [3, 3],
      'tier_diagonal', 'trueup_pct' [N], 'median_abs_trueup_pct', 'goals': {name: (goal, met)}}.
    """
    conf = tier_confusion(expected, realized, thresholds)
    pct = trueup_percent(quotes, realized)
    finite = pct[np.isfinite(pct)]
    out = {
        "spearman": spearman(expected, realized),
        "coverage": coverage(realized, lower, upper),
        "lds": lds(expected, lds_masks, lds_outcomes) if lds_masks is not None else float("nan"),
        "tier_confusion": conf,
        "tier_diagonal": float(np.trace(conf) / max(conf.sum(), 1)),
        "trueup_pct": pct,
        "median_abs_trueup_pct": float(np.median(np.abs(finite))) if finite.size else float("nan"),
    }
    out["goals"] = {k: (goal, bool(np.isfinite(out[k]) and test(out[k]))) for k, (goal, test) in GOALS.items()}
    return out


__all__ = ["GOALS", "coverage", "lds", "scorecard", "spearman", "tier_confusion", "trueup_percent"]
