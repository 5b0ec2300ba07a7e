"""The configuration valuation uses: the ``data_valuation`` and ``pricing`` sections of a task config.

``valuation`` functions take their parameters as arguments; this module only gathers them for the
CLIs. The sections are :mod:`vpjax.config`'s own frozen dataclasses, kept whole and under their
own key names (``settings.pricing.base_price_per_task`` is p in quotes), so a key means the same
thing in YAML, on the command line and in code.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Mapping

from vpjax import config as vconfig


@dataclasses.dataclass(frozen=True)
class ValuationSettings:
    """A task name and its ``data_valuation`` and ``pricing`` sections (defaults: the schema's)."""

    task: str = vconfig.TaskConfig.task
    data_valuation: vconfig.DataValuationConfig = dataclasses.field(default_factory=vconfig.DataValuationConfig)
    pricing: vconfig.PricingConfig = dataclasses.field(default_factory=vconfig.PricingConfig)

    @property
    def thresholds(self) -> tuple[float, float]:
        """(tier0_threshold, tier1_threshold) on E[ΔMPL]."""
        dv = self.data_valuation
        return (dv.tier0_threshold, dv.tier1_threshold)

    def bayes_params(self, **overrides: Any):
        """:class:`valuation.bayes_linear.BayesRidgeParams` from ``data_valuation`` (plus overrides)."""
        from valuation.bayes_linear import BayesRidgeParams

        dv = self.data_valuation
        kw = dict(min_samples=dv.min_samples_for_fit, confidence_level=dv.confidence_level, kappa_floor=dv.kappa_floor)
        kw.update(overrides)
        return BayesRidgeParams.create(**kw)


def from_config(cfg: "vconfig.Config") -> ValuationSettings:
    """Settings from a loaded :class:`vpjax.config.Config`."""
    return ValuationSettings(task=cfg.task.task, data_valuation=cfg.data_valuation, pricing=cfg.pricing)


def load(task_or_path: str = "dishwashing", overrides: Mapping[str, Any] | None = None) -> ValuationSettings:
    """Loads a task config (name in configs/ or a YAML path) and returns its valuation settings."""
    return from_config(vconfig.load_config(task_or_path, overrides))


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Adds --task / --config / --set to a CLI parser (:func:`vpjax.config.add_config_args`)."""
    vconfig.add_config_args(parser.add_argument_group("configuration"), task_flag=True, economic_flags=False)


def settings_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ValuationSettings:
    """Settings from --task/--config/--set.

    Raises:
      vpjax.cli.UserError: a bad --set item, key or value (the loader's one-line message).
    """
    del parser
    return load(args.config or args.task, vconfig.overrides_from_args(args))


__all__ = ["ValuationSettings", "from_config", "load", "add_config_args", "settings_from_args"]
