"""The pricing simulation: customers share or withhold datapoints; who pays what, who learns.

Synthetic ground truth (explicit, so the value model's calibration can be checked):

* Each episode produces one datapoint for one customer, with latent features
  novelty n ~ Beta(2, 5) and causal gain c ~ Beta(1.5, 6) (most data is redundant, a few
  datapoints are frontier).
* Its realized MPL gain is linear in the features plus Gaussian noise,
  ΔMPL = β₀ + βₙ·n + β_c·c + ε,  ε ~ N(0, σ²)  (defaults β = (0, 4, 6), σ = 0.5 units/h),
  so a Bayesian linear model is well specified: its intervals should cover the configured share of
  realized gains and its coefficients should approach β.
* Provider learning: only shared datapoints train the provider's fleet policy. Its MPL saturates
  toward a ceiling with the accumulated realized gain G of shared data,
  MPL(G) = MPL_cap − (MPL_cap − MPL₀)·exp(−G / G_scale), the diminishing returns a fleet sees.
* Customers: a share ``data_sharing_rate`` of customers share all their data (drawn once per
  customer). Each episode bills the customer for the units the fleet produces, units =
  MPL·hours_per_episode, at p, with ``data_sharing_discount`` off for sharers; a withheld datapoint
  is quoted P_noshare = p·κ·E[ΔMPL]·H and trued up against its realized ΔMPL (clipped at 0, as
  :mod:`valuation.pricing` does).

The value model is the rolling Bayesian ridge of :mod:`valuation.bayes_linear` run as one
``lax.scan`` over the stream (quote each datapoint, then observe its realized gain).

Outputs: a per-episode CSV, a summary CSV (customer cost with and without sharing, provider MPL
growth, tier mix, premiums against true-ups, calibration), and PNG plots.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np

from valuation import bayes_linear as bl
from valuation import pricing, tiering
from valuation.settings import ValuationSettings


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """The simulation's latent world (see the module docstring)."""

    beta0: float = 0.0
    beta_novelty: float = 4.0
    beta_causal: float = 6.0
    noise_std: float = 0.5
    novelty_ab: tuple[float, float] = (2.0, 5.0)
    causal_ab: tuple[float, float] = (1.5, 6.0)
    mpl_initial: float = 30.0
    mpl_ceiling: float = 80.0
    gain_scale: float = 2000.0
    hours_per_episode: float = 8.0

    def realized_gain(self, novelty: np.ndarray, causal: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.beta0 + self.beta_novelty * novelty + self.beta_causal * causal + self.noise_std * noise

    def mpl(self, cumulative_gain: np.ndarray) -> np.ndarray:
        return self.mpl_ceiling - (self.mpl_ceiling - self.mpl_initial) * np.exp(-cumulative_gain / self.gain_scale)


@dataclasses.dataclass
class SimulationResult:
    episodes: dict[str, np.ndarray]
    summary: dict[str, float]
    customers: dict[str, np.ndarray]
    mpl_curves: dict[str, np.ndarray]
    quotes: list
    trueups: list


def simulate(
    settings: ValuationSettings,
    *,
    episodes: int = 1000,
    sharing_rate: float = 0.8,
    customers: int = 20,
    seed: int = 0,
    truth: GroundTruth = GroundTruth(),
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Runs the pricing simulation.

    Args:
      settings: configured p, H, discount, thresholds, κ floor, confidence, window.
      episodes: datapoints in the stream (one per episode).
      sharing_rate: share of customers who share their data.
      customers: number of customers.
      seed: NumPy seed of the synthetic world.
      truth: GroundTruth.
      progress: optional callback for status lines.

    Returns:
      SimulationResult.
    """
    if episodes < 1:
        raise ValueError(f"episodes: must be >= 1, got {episodes}")
    if not 0.0 <= sharing_rate <= 1.0:
        raise ValueError(f"sharing_rate: must lie in [0, 1], got {sharing_rate}")
    if customers < 1:
        raise ValueError(f"customers: must be >= 1, got {customers}")
    say = progress or (lambda _: None)
    pr = settings.pricing
    price, horizon = pr.base_price_per_task, pr.horizon_hours
    w = _draw_world(np.random.default_rng(seed), truth, episodes, customers, sharing_rate)
    say(f"value model: rolling Bayesian ridge over {episodes} datapoints (one lax.scan)")
    x = np.stack([w.nov, w.cau], 1)
    pred, coef = _value_model(settings, x, w.realized)
    th = np.asarray(settings.thresholds)
    qa = pricing.quote_arrays(pred.mean, pred.kappa, w.shared, price, horizon, th)
    premium = np.asarray(qa.premium)
    _, trueup = pricing.trueup_arrays(premium, pred.kappa, w.realized, price, horizon, np.asarray(qa.sharing_coef))
    trueup = np.asarray(trueup)
    tier = np.asarray(qa.tier)
    curves, units, bill = _provider(truth, w, price, pr.data_sharing_discount)
    costs = _customer_costs(w, units, bill, premium - trueup, pred.kappa, price, horizon, pr.data_sharing_discount)
    eps = {
        "episode": np.arange(episodes),
        "customer": w.cust,
        "sharing_status": np.where(w.shared, pricing.SHARED, pricing.WITHHELD),
        "novelty_score": w.nov,
        "causal_gain": w.cau,
        "expected_mpl_gain": pred.mean,
        "confidence_lower": pred.lower,
        "confidence_upper": pred.upper,
        "kappa": pred.kappa,
        "tier": tier,
        "premium_quote": premium,
        "realized_mpl_gain": w.realized,
        "realized_tier": np.asarray(tiering.assign_tier(w.realized, th)),
        "trueup_amount": trueup,
        "provider_mpl": curves["actual"],
        "units": units,
        "service_bill": bill,
    }
    summary = _summary(eps, costs, curves, w, pred, coef, th, truth, settings.data_valuation.confidence_level,
                       sharing_rate)
    quotes, trueups = _ledger_records(seed, x, w, pred, price, horizon, th, pr.trueup_period_days)
    return SimulationResult(episodes=eps, summary=summary, customers=costs, mpl_curves=curves, quotes=quotes,
                            trueups=trueups)


class _World(NamedTuple):
    """The synthetic world's draws: who shares, whose episode each is, its features and realized gain."""

    cust_shares: np.ndarray  # [customers] bool
    cust: np.ndarray  # [episodes] customer of each episode
    shared: np.ndarray  # [episodes] bool
    nov: np.ndarray  # [episodes] novelty
    cau: np.ndarray  # [episodes] causal gain
    realized: np.ndarray  # [episodes] realized ΔMPL


def _draw_world(rng: np.random.Generator, truth: GroundTruth, episodes: int, customers: int,
                sharing_rate: float) -> _World:
    cust_shares = rng.uniform(size=customers) < sharing_rate
    cust = rng.integers(0, customers, size=episodes)
    nov = rng.beta(*truth.novelty_ab, size=episodes)
    cau = rng.beta(*truth.causal_ab, size=episodes)
    realized = truth.realized_gain(nov, cau, rng.normal(size=episodes))
    return _World(cust_shares=cust_shares, cust=cust, shared=cust_shares[cust], nov=nov, cau=cau, realized=realized)


def _value_model(settings: ValuationSettings, x: np.ndarray, realized: np.ndarray):
    """The rolling Bayesian ridge over the stream (quote, then observe); returns (predictions, final coefficients)."""
    with jax.enable_x64(True):
        hp = settings.bayes_params()
        state = bl.rolling_init(settings.data_valuation.lookback_window, 2, hp)
        final, pred = bl.stream(state, x, realized, hp)
        return jax.tree.map(np.asarray, pred), np.asarray(final.model.coef)


def _provider(truth: GroundTruth, w: _World, price: float, discount: float):
    """The provider's MPL curves (only shared data trains the fleet; the counterfactuals reuse the same
    datapoints), and each episode's units and service bill; returns (curves, units, bill)."""

    def curve(mask):
        return truth.mpl(np.cumsum(np.where(mask, np.maximum(w.realized, 0.0), 0.0)))

    n = len(w.realized)
    curves = {"actual": curve(w.shared), "all_share": curve(np.ones(n, bool)), "none_share": curve(np.zeros(n, bool))}
    mpl_before = np.concatenate([[truth.mpl_initial], curves["actual"][:-1]])  # the fleet that served this episode
    units = mpl_before * truth.hours_per_episode
    return curves, units, np.asarray(pricing.service_bill(units, price, w.shared, discount))


def _customer_costs(w: _World, units, bill, ex_post, kappa, price: float, horizon: float, discount: float) -> dict:
    """Per customer: what they paid (``ex_post``: the final premium of withheld data), and what the same
    episodes would cost under either choice."""
    customers = len(w.cust_shares)
    realized_premium_all = price * kappa * np.maximum(w.realized, 0.0) * horizon
    return {"customer": np.arange(customers), "shares": w.cust_shares,
            "cost": np.bincount(w.cust, bill + ex_post, minlength=customers),
            "cost_if_sharing": np.bincount(w.cust, units * price * (1 - discount), minlength=customers),
            "cost_if_withholding": np.bincount(w.cust, units * price + realized_premium_all, minlength=customers)}


def _summary(eps: dict, costs: dict, curves: dict, w: _World, pred, coef, th, truth: GroundTruth,
             confidence_level: float, sharing_rate: float) -> dict:
    """The summary CSV's metrics, in its row order."""
    realized, tier, premium, trueup = eps["realized_mpl_gain"], eps["tier"], eps["premium_quote"], eps["trueup_amount"]
    cost, cust_shares, realized_tier = costs["cost"], w.cust_shares, eps["realized_tier"]
    fitted = pred.fitted.astype(bool)
    covered = (realized >= pred.lower) & (realized <= pred.upper)
    cal = tiering.calibrate_thresholds(pred.mean[fitted], realized[fitted], th) if fitted.sum() >= 10 else None
    stats = tiering.tier_stats(tier, premium)
    return {
        "episodes": len(realized),
        "customers": len(cust_shares),
        "sharing_rate_target": sharing_rate,
        "sharing_rate_actual": float(w.shared.mean()),
        "provider_mpl_initial": truth.mpl_initial,
        "provider_mpl_final": float(curves["actual"][-1]),
        "provider_mpl_final_all_share": float(curves["all_share"][-1]),
        "provider_mpl_final_none_share": float(curves["none_share"][-1]),
        "customer_cost_total": float(cost.sum()),
        "customer_cost_mean_sharers": float(cost[cust_shares].mean()) if cust_shares.any() else float("nan"),
        "customer_cost_mean_withholders": float(cost[~cust_shares].mean()) if (~cust_shares).any() else float("nan"),
        "cost_per_customer_if_sharing": float(costs["cost_if_sharing"].mean()),
        "cost_per_customer_if_withholding": float(costs["cost_if_withholding"].mean()),
        "service_bill_total": float(eps["service_bill"].sum()),
        "premium_total": float(premium.sum()),
        "trueup_total": float(trueup.sum()),
        "refund_total": float(trueup[trueup > 0].sum()),
        "bill_total": float(-trueup[trueup < 0].sum()),
        "tier0_pct": float(stats.percent[0]),
        "tier1_pct": float(stats.percent[1]),
        "tier2_pct": float(stats.percent[2]),
        "interval_coverage": float(covered[fitted].mean()) if fitted.any() else float("nan"),
        "confidence_level": confidence_level,
        "mean_abs_error": float(np.abs(pred.raw_mean - realized)[fitted].mean()) if fitted.any() else float("nan"),
        "coef_novelty_fit": float(coef[0]),
        "coef_causal_fit": float(coef[1]),
        "coef_novelty_true": truth.beta_novelty,
        "coef_causal_true": truth.beta_causal,
        "tier_accuracy": float(np.mean(tier[fitted] == realized_tier[fitted])) if fitted.any() else float("nan"),
        "tier_accuracy_calibrated": float(cal.accuracy) if cal is not None else float("nan"),
    }


def _ledger_records(seed: int, x: np.ndarray, w: _World, pred, price: float, horizon: float, th,
                    trueup_period_days: int) -> tuple[list, list]:
    """Ledger-ready quotes and true-ups (ids are content hashes of the simulation seed, episode and features)."""
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    ids = [pricing.datapoint_id([np.int64(seed), np.int64(i), x[i]]) for i in range(len(x))]
    quotes = pricing.make_quotes(
        ids, w.nov, w.cau, pred.mean, pred.lower, pred.upper, pred.kappa, w.shared,
        price=price, horizon=horizon, thresholds=th,
        trueup_period_days=trueup_period_days, now=t0,
    )  # fmt: skip
    later = t0 + dt.timedelta(days=trueup_period_days)
    return quotes, [pricing.compute_trueup(q, r, now=later) for q, r in zip(quotes, w.realized)]


def write_outputs(result: SimulationResult, output_csv: str | Path, plots_dir: str | Path | None = None) -> list[Path]:
    """Writes the per-episode CSV, ``<stem>_summary.csv``, ``<stem>_customers.csv`` and PNG plots."""
    import pandas as pd

    from .csv_formats import write_atomic

    out = Path(output_csv)
    s = out.with_name(out.stem + "_summary.csv")
    c = out.with_name(out.stem + "_customers.csv")
    tables = ((out, pd.DataFrame(result.episodes)),
              (s, pd.DataFrame({"metric": list(result.summary), "value": list(result.summary.values())})),
              (c, pd.DataFrame(result.customers)))
    written = []
    for path, frame in tables:  # each file is written whole or not at all (an older one stays as it was)
        write_atomic(path, lambda fh, frame=frame: frame.to_csv(fh, index=False))
        written.append(path)
    written += write_plots(result, Path(plots_dir) if plots_dir else out.parent, out.stem)
    return written


def write_plots(result: SimulationResult, folder: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    e, paths = result.episodes, []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in result.mpl_curves.items():
        ax.plot(ys, label=name.replace("_", " "))
    ax.set_xlabel("episode")
    ax.set_ylabel("provider MPL (units/h)")
    ax.set_title("Provider MPL growth: actual sharing vs all / none")
    ax.legend()
    paths.append(_save(fig, folder / f"{stem}_mpl_growth.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    c = result.customers
    idx = np.arange(len(c["customer"]))
    ax.bar(idx - 0.2, c["cost_if_sharing"], 0.4, label="if sharing")
    ax.bar(idx + 0.2, c["cost_if_withholding"], 0.4, label="if withholding")
    ax.set_yscale("log")
    ax.set_xlabel("customer")
    ax.set_ylabel("total cost ($)")
    ax.set_title("Customer cost with vs without sharing")
    ax.legend()
    paths.append(_save(fig, folder / f"{stem}_customer_cost.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    counts = np.bincount(e["tier"], minlength=3)
    ax.bar(["0 redundant", "1 context", "2 frontier"], counts)
    ax.set_ylabel("datapoints")
    ax.set_title("Tier mix")
    paths.append(_save(fig, folder / f"{stem}_tier_mix.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    w = e["sharing_status"] == pricing.WITHHELD
    ax.scatter(e["premium_quote"][w], (e["premium_quote"] - e["trueup_amount"])[w], s=6, alpha=0.5)
    lim = float(max(e["premium_quote"][w].max(initial=1.0), 1.0))
    ax.plot([0, lim], [0, lim], "k--", lw=1)
    ax.set_xlabel("ex-ante premium ($)")
    ax.set_ylabel("ex-post premium ($)")
    ax.set_title("Premium vs true-up (withheld data)")
    paths.append(_save(fig, folder / f"{stem}_premium_vs_trueup.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["GroundTruth", "SimulationResult", "simulate", "write_outputs", "write_plots"]
