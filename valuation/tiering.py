"""Tiers from E[ΔMPL] thresholds, tier statistics, and threshold calibration on realized gains.

Tier 0 (redundant): value < t₀; tier 1 (context-novel): t₀ ≤ value < t₁; tier 2 (frontier):
value ≥ t₁. Any number of increasing thresholds works: T thresholds
give T + 1 tiers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

TIER_NAMES = {
    0: "Redundant (no new information)",
    1: "Context-novel (fills gaps in coverage)",
    2: "Causal-novel / Frontier (critical for performance)",
}


def assign_tier(value: Array, thresholds: Array) -> Array:
    """Tier of each value: the number of thresholds it reaches.

    Args:
      value: [...] expected (or realized) MPL gain.
      thresholds: [T] increasing.

    Returns:
      [...] int32 tiers in 0..T.
    """
    thresholds = jnp.asarray(thresholds)
    return jnp.searchsorted(thresholds, jnp.asarray(value, thresholds.dtype), side="right").astype(jnp.int32)


class TierStats(NamedTuple):
    """Per-tier statistics (leaves [n_tiers]); percentages are of all datapoints (sum 100)."""

    count: Array
    percent: Array
    total_value: Array
    mean_value: Array


@functools.partial(jax.jit, static_argnames=("n_tiers",))
def tier_stats(tiers: Array, values: Array, n_tiers: int = 3, mask: Array | None = None) -> TierStats:
    """Count, %, total and mean value per tier.

    Args:
      tiers: [N] int tiers.
      values: [N] values (e.g. premium or E[ΔMPL]).
      n_tiers: number of tiers.
      mask: [N] bool, rows to include (default all).

    Returns:
      TierStats; the mean of an empty tier is 0.
    """
    w = jnp.ones(tiers.shape, float) if mask is None else jnp.asarray(mask).astype(float)
    count = jax.ops.segment_sum(w, tiers, num_segments=n_tiers)
    total = jax.ops.segment_sum(w * values, tiers, num_segments=n_tiers)
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)
    return TierStats(count=count, percent=100.0 * count / n, total_value=total, mean_value=mean)


def confusion_matrix(pred_tier: Array, true_tier: Array, n_tiers: int = 3) -> Array:
    """[n_tiers, n_tiers] counts; rows are predicted tiers, columns realized tiers."""
    flat = pred_tier * n_tiers + true_tier
    return jnp.bincount(flat.ravel(), length=n_tiers * n_tiers).reshape(n_tiers, n_tiers)


class Calibration(NamedTuple):
    """Result of :func:`calibrate_thresholds`.

    Attributes:
      thresholds: [2] calibrated thresholds on the predicted value.
      accuracy: [] share of held-out datapoints whose predicted tier equals the realized tier.
      confusion: [3, 3] predicted (rows) against realized (columns) tier with the calibrated thresholds.
      baseline_accuracy: [] accuracy with the given thresholds.
      baseline_confusion: [3, 3] the same with the given thresholds.
    """

    thresholds: Array
    accuracy: Array
    confusion: Array
    baseline_accuracy: Array
    baseline_confusion: Array


@functools.partial(jax.jit, static_argnames=("n_candidates",))
def calibrate_thresholds(predicted: Array, realized: Array, thresholds: Array, n_candidates: int = 64) -> Calibration:
    """Chooses thresholds on predicted E[ΔMPL] that best reproduce the realized tiers (held out).

    The realized tier of each held-out datapoint uses the configured ``thresholds`` on its realized
    gain: that is what the tier promises. The model's predictions are biased or shrunk (a Bayesian
    ridge shrinks toward the mean), so the same thresholds applied to predictions mis-tier. We
    search pairs (t₀ < t₁) among ``n_candidates`` quantiles of the predictions plus the configured
    thresholds, maximizing accuracy (ties: the pair closest to the configured one).

    Args:
      predicted: [N] predicted E[ΔMPL] on held-out datapoints.
      realized: [N] realized ΔMPL of the same datapoints.
      thresholds: [2] configured thresholds.
      n_candidates: quantile grid size (static).

    Returns:
      Calibration.
    """
    predicted = jnp.asarray(predicted, float)
    realized = jnp.asarray(realized, float)
    thresholds = jnp.asarray(thresholds, float)
    true_tier = assign_tier(realized, thresholds)
    grid = jnp.quantile(predicted, jnp.linspace(0.0, 1.0, n_candidates))
    grid = jnp.concatenate([grid, thresholds, jnp.array([jnp.max(predicted) + 1.0])])
    t0, t1 = jnp.meshgrid(grid, grid, indexing="ij")
    t0, t1 = t0.ravel(), t1.ravel()

    def acc(a, b):
        tier = assign_tier(predicted, jnp.stack([a, b]))
        return jnp.mean(tier == true_tier)

    accs = jax.vmap(acc)(t0, t1)
    accs = jnp.where(t0 <= t1, accs, -1.0)
    dist = jnp.abs(t0 - thresholds[0]) + jnp.abs(t1 - thresholds[1])
    best_acc = jnp.max(accs)
    # Among the most accurate pairs, the one nearest the configured thresholds.
    best = jnp.argmin(jnp.where(accs >= best_acc, dist, jnp.inf))
    new = jnp.stack([t0[best], t1[best]])
    conf = confusion_matrix(assign_tier(predicted, new), true_tier, 3)
    base_tier = assign_tier(predicted, thresholds)
    return Calibration(
        thresholds=new,
        accuracy=accs[best],
        confusion=conf,
        baseline_accuracy=jnp.mean(base_tier == true_tier),
        baseline_confusion=confusion_matrix(base_tier, true_tier, 3),
    )


__all__ = ["TIER_NAMES", "assign_tier", "TierStats", "tier_stats", "confusion_matrix", "Calibration", "calibrate_thresholds"]
