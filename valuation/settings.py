"""The configuration values valuation uses, read from ``vpjax.config`` (or given explicitly).

``valuation`` functions take their parameters as arguments; this module only gathers them from a
task config (``data_valuation`` and ``pricing`` sections) for the CLIs, with the seed's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Mapping

from vpjax import config as vconfig


@dataclasses.dataclass(frozen=True)
class ValuationSettings:
    """Values from the ``data_valuation`` and ``pricing`` sections of a task config."""

    # Defaults are the config dataclasses' own, so the two cannot drift apart.
    task: str = vconfig.TaskConfig.task
    lookback_window: int = vconfig.DataValuationConfig.lookback_window
    min_samples_for_fit: int = vconfig.DataValuationConfig.min_samples_for_fit
    confidence_level: float = vconfig.DataValuationConfig.confidence_level
    kappa_floor: float = vconfig.DataValuationConfig.kappa_floor
    tier0_threshold: float = vconfig.DataValuationConfig.tier0_threshold
    tier1_threshold: float = vconfig.DataValuationConfig.tier1_threshold
    price_per_unit: float = vconfig.PricingConfig.base_price_per_task
    horizon_hours: float = vconfig.PricingConfig.horizon_hours
    data_sharing_discount: float = vconfig.PricingConfig.data_sharing_discount
    trueup_period_days: int = vconfig.PricingConfig.trueup_period_days
    trueup_payment_terms: str = vconfig.PricingConfig.trueup_payment_terms

    @property
    def thresholds(self) -> tuple[float, float]:
        return (self.tier0_threshold, self.tier1_threshold)

    def bayes_params(self, **overrides: Any):
        from valuation.bayes_linear import BayesRidgeParams

        kw = dict(
            min_samples=self.min_samples_for_fit,
            confidence_level=self.confidence_level,
            kappa_floor=self.kappa_floor,
        )
        kw.update(overrides)
        return BayesRidgeParams.create(**kw)


def from_config(cfg: "vconfig.Config") -> ValuationSettings:
    """Settings from a loaded :class:`vpjax.config.Config`."""
    dv, pr = cfg.data_valuation, cfg.pricing
    return ValuationSettings(
        task=cfg.task.task,
        lookback_window=dv.lookback_window,
        min_samples_for_fit=dv.min_samples_for_fit,
        confidence_level=dv.confidence_level,
        kappa_floor=dv.kappa_floor,
        tier0_threshold=dv.tier0_threshold,
        tier1_threshold=dv.tier1_threshold,
        price_per_unit=pr.base_price_per_task,
        horizon_hours=pr.horizon_hours,
        data_sharing_discount=pr.data_sharing_discount,
        trueup_period_days=pr.trueup_period_days,
        trueup_payment_terms=pr.trueup_payment_terms,
    )


def load(task_or_path: str = "dishwashing", overrides: Mapping[str, Any] | None = None) -> ValuationSettings:
    """Loads a task config (name in configs/ or a YAML path) and returns its valuation settings."""
    return from_config(vconfig.load_config(task_or_path, overrides))


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Adds --task / --config / --set to a CLI parser."""
    g = parser.add_argument_group("configuration")
    g.add_argument("--task", default="dishwashing", help="task config in configs/ (default: dishwashing)")
    g.add_argument("--config", default=None, help="a task YAML path; overrides --task")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set data_valuation.confidence_level=0.9 (repeatable)",
    )


def settings_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ValuationSettings:
    """Settings from --task/--config/--set; a bad key or value exits with the loader's message."""
    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v
    try:
        return load(args.config or args.task, overrides)
    except (vconfig.ConfigError, FileNotFoundError) as e:
        parser.error(str(e))
        raise  # unreachable; parser.error exits


__all__ = ["ValuationSettings", "from_config", "load", "add_config_args", "settings_from_args"]
