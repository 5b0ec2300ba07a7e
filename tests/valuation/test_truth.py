"""Scores of predicted against realized value (valuation.truth)."""

import numpy as np

from valuation import pricing, truth


def test_rank_scores_and_coverage_on_known_inputs():
    assert truth.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert truth.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert np.isnan(truth.spearman([1, 2, 3], [5, 5, 5]))
    masks = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 0, 1]], float)
    values = np.array([1.0, 2.0, 4.0])
    assert truth.lds(values, masks, masks @ values) == 1.0
    assert truth.coverage([0.5, 2.0, -1.0, 1.0], [0, 0, 0, 0], [1, 1, 1, 1]) == 0.5


def test_scorecard_tiers_and_trueups():
    expected = np.array([0.2, 1.0, 5.0, 5.0])
    realized = np.array([0.1, 1.5, 4.0, 0.2])  # the last is quoted frontier but is redundant
    quotes = pricing.make_quotes([f"d{i}" for i in range(4)], [0.0] * 4, [0.0] * 4, expected, expected - 1,
                                 expected + 1, [1.0] * 4, [False] * 4, price=0.3, horizon=1000.0,
                                 thresholds=(0.5, 3.0), trueup_period_days=90)
    card = truth.scorecard(expected, expected - 1, expected + 1, realized, (0.5, 3.0), quotes)
    conf = card["tier_confusion"]
    assert conf.sum() == 4 and np.trace(conf) == 3 and conf[2, 0] == 1
    assert card["tier_diagonal"] == 0.75 and card["goals"]["tier_diagonal"] == ("≥ 70%", True)
    # a refund of (E - max(realized, 0)) / E of the premium
    np.testing.assert_allclose(card["trueup_pct"], 100 * (expected - realized) / expected, atol=0.1)
    assert card["coverage"] == 0.75
