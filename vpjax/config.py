"""Typed configuration: YAML -> frozen dataclasses, validated with one clear line per mistake.

A task config (``configs/dishwashing.yaml``) is layered on top of ``configs/training.yaml``; command
line overrides (``--alpha 0.5`` or ``--set reward.beta=0.7``) go through the same validation as
the files. Every section is parsed by :func:`vpjax.schema.parse_section`, so every error is a
:class:`ConfigError` whose message names the file, the key, the value and the rule, e.g.::

    configs/dishwashing.yaml: data_valuation.kappa_floor = 1.5: must be in (0, 1]

Sections owned by other packages (``ppo`` for the trainer, ``imitation`` for DAgger/BC, ``env`` for
environment overrides) are kept as raw mappings with the file each key came from, and their owners
parse them with :meth:`Config.section`, which gives the same checks and messages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from vpjax import economics, wages
from vpjax.cli import one_line, parse_assignments
from vpjax.schema import (ConfigError, FieldError, at_least, closed_unit, field, fmt, half_open_unit, non_negative,
                          open_unit, parse_section, positive)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BASE_CONFIG = "training.yaml"
EXTERNAL_SECTIONS = ("env", "ppo", "imitation")


# ----------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Task economics: the config file's top-level keys."""

    task: str = field("dishwashing", doc="task name, as registered in envs")
    price_per_unit: float = field(0.30, positive(), "p, $ per unit of output")
    human_mp: float = field(60.0, positive(), "MPₕ, human units per hour")
    human_wage: float | None = field(None, positive(), "wₕ in $/h; null: look up bls_occupation_code")
    damage_cost: float = field(1.0, non_negative(), "cₐ, $ per error")
    bls_occupation_code: str | None = field(None, doc="SOC code, e.g. 35-9021 (Dishwashers)")
    unit_name: str = field("unit", doc="what one unit is called in reports (dish, brick)")

    def __post_init__(self):
        if self.human_wage is None and not self.bls_occupation_code:
            raise FieldError("", "human_wage", None, "give human_wage or bls_occupation_code")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Reward weights and curriculum (α, γ anneal over anneal_episodes per robot)."""

    alpha_initial: float = field(1.0, non_negative(), "α at the start")
    alpha_final: float = field(0.3, non_negative(), "α after anneal_episodes")
    beta: float = field(0.5, non_negative(), "β, error penalty")
    gamma_initial: float = field(0.1, non_negative(), "γ at the start")
    gamma_final: float = field(1.0, non_negative(), "γ after anneal_episodes")
    anneal_episodes: float = field(5000.0, positive(), "curriculum horizon, episodes per robot")
    alpha_schedule: Literal["constant", "linear", "cosine"] = field("linear", doc="α schedule")
    gamma_schedule: Literal["constant", "linear", "cosine"] = field("linear", doc="γ schedule")
    mp_clip: float = field(1.0, positive(), "bound on |ΔMPᵣ/MPₕ|")
    wage_loss: Literal["abs", "squared"] = field("abs", doc="|ŵᵣ/wₕ−1| or its square")


@dataclasses.dataclass(frozen=True)
class ConvergenceConfig:
    productivity_threshold: float = field(0.95, half_open_unit(), "1−ε: MPᵣ/MPₕ needed")
    wage_parity_tolerance: float = field(0.10, positive(), "δ: allowed |ŵᵣ/wₕ − 1|")
    eval_window: int = field(50, at_least(1), "N consecutive evaluations")


@dataclasses.dataclass(frozen=True)
class DataValuationConfig:
    lookback_window: int = field(100, at_least(1), "datapoints in the rolling fit")
    min_samples_for_fit: int = field(10, at_least(1), "datapoints before the first fit")
    confidence_level: float = field(0.80, open_unit(), "two-sided prediction-interval level")
    kappa_floor: float = field(0.3, half_open_unit(), "lowest confidence discount κ")
    tier0_threshold: float = field(0.5, non_negative(), "E[ΔMPL] below this: tier 0")
    tier1_threshold: float = field(3.0, positive(), "E[ΔMPL] below this: tier 1; above: tier 2")

    def __post_init__(self):
        if self.tier0_threshold >= self.tier1_threshold:
            raise FieldError("data_valuation", "tier0_threshold", self.tier0_threshold,
                             f"must be < tier1_threshold ({self.tier1_threshold})")
        if self.min_samples_for_fit > self.lookback_window:
            raise FieldError("data_valuation", "min_samples_for_fit", self.min_samples_for_fit,
                             f"must be <= lookback_window ({self.lookback_window})")


@dataclasses.dataclass(frozen=True)
class PricingConfig:
    base_price_per_task: float = field(0.30, positive(), "p used in quotes")
    horizon_hours: float = field(1000.0, positive(), "H, robot-hours a gain applies over")
    data_sharing_discount: float = field(0.15, closed_unit(), "fraction off a sharing customer's bill")
    trueup_period_days: int = field(90, at_least(1), "reconciliation period")


# ----------------------------------------------------------------------------- the whole config


@dataclasses.dataclass(frozen=True)
class Config:
    """A task's resolved configuration."""

    task: TaskConfig
    reward: RewardConfig
    convergence: ConvergenceConfig
    data_valuation: DataValuationConfig
    pricing: PricingConfig
    human_wage: float  # resolved wₕ ($/h), from the task or its SOC code
    human_wage_source: str
    sections: Mapping[str, Mapping[str, Any]]  # raw external sections (env, ppo, imitation)
    section_sources: Mapping[str, str]  # section -> its source (the files it came from, joined)
    sources: tuple[str, ...]
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)  # "ppo.num_envs" -> its source

    def econ_params(self) -> economics.EconParams:
        """The task's :class:`~vpjax.economics.EconParams` (α, γ at their initial values)."""
        r, c = self.reward, self.convergence
        return economics.EconParams.create(
            price_per_unit=self.task.price_per_unit,
            human_mp=self.task.human_mp,
            human_wage=self.human_wage,
            damage_cost=self.task.damage_cost,
            beta=r.beta,
            alpha_initial=r.alpha_initial,
            alpha_final=r.alpha_final,
            gamma_initial=r.gamma_initial,
            gamma_final=r.gamma_final,
            anneal_steps=r.anneal_episodes,
            alpha_schedule=r.alpha_schedule,
            gamma_schedule=r.gamma_schedule,
            mp_clip=r.mp_clip,
            wage_loss=r.wage_loss,
            productivity_threshold=c.productivity_threshold,
            wage_tolerance=c.wage_parity_tolerance,
            eval_window=c.eval_window,
        )

    def section(self, cls: type, name: str) -> Any:
        """Parses an external section (``ppo``, ``imitation``, …) into ``cls`` with the usual checks.

        A message names the file (or flag) the offending key came from.
        """
        origins = {k.split(".", 1)[1]: v for k, v in self.origins.items() if k.startswith(f"{name}.")}
        return parse_section(cls, self.sections.get(name), self.section_sources.get(name, "config"), name,
                             origins=origins)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (for writing next to a run)."""
        out: dict[str, Any] = dataclasses.asdict(self.task)
        out["human_wage"] = self.human_wage
        out["human_wage_source"] = self.human_wage_source
        for name in ("reward", "convergence", "data_valuation", "pricing"):
            out[name] = dataclasses.asdict(getattr(self, name))
        for name, sec in self.sections.items():
            out[name] = dict(sec)
        out["sources"] = list(self.sources)
        return out


SECTIONS: dict[str, type] = {
    "reward": RewardConfig,
    "convergence": ConvergenceConfig,
    "data_valuation": DataValuationConfig,
    "pricing": PricingConfig,
}

# Command-line flags that map to config keys (README: CLI).
CLI_ALIASES: dict[str, str] = {
    "alpha": "reward.alpha_initial",
    "alpha_final": "reward.alpha_final",
    "beta": "reward.beta",
    "gamma": "reward.gamma_initial",
    "gamma_final": "reward.gamma_final",
    "anneal_episodes": "reward.anneal_episodes",
    "gamma_schedule": "reward.gamma_schedule",
    "wage_loss": "reward.wage_loss",
    "price_per_unit": "price_per_unit",
    "human_mp": "human_mp",
    "human_wage": "human_wage",
    "damage_cost": "damage_cost",
}


def resolve_path(name_or_path: str | Path) -> Path:
    """A task name ("dishwashing") or a YAML path -> the YAML path; clear error if missing."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml") if x.name != BASE_CONFIG)
        raise ConfigError(f"{name_or_path}: no such task config in {CONFIG_DIR} (known: {', '.join(known)})")
    return candidate


def _display(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark is not None else ""
        raise ConfigError(f"{_display(path)}:{line} not valid YAML: {one_line(getattr(e, 'problem', e))}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{_display(path)}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override_value(text: str) -> Any:
    """A command-line value as YAML (``0.5`` -> float, ``linear`` -> str, ``null`` -> None)."""
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: {dotted} = {fmt(value)}: {part} is not a section")
        node = nxt
    node[parts[-1]] = value


def _merge_layers(layers: list[tuple[Path, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Files in order, later keys winning; returns the merged tree and each dotted key's file."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for src, data in layers:
        for key, value in data.items():
            if key in SECTIONS or key in EXTERNAL_SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{_display(src)}: {key} = {fmt(value)}: must be a mapping of keys")
                sec = merged.setdefault(key, {})
                for k, v in value.items():
                    sec[k] = v
                    origin[f"{key}.{k}"] = _display(src)
            else:
                merged[key] = value
                origin[key] = _display(src)
    return merged, origin


def _apply_overrides(merged: dict, origin: dict, overrides: Mapping[str, Any]) -> None:
    for key, raw in overrides.items():
        alias = key.replace("-", "_")
        dotted = CLI_ALIASES.get(alias, key)
        flag = f"--{alias.replace('_', '-')}" if alias in CLI_ALIASES else f"--set {key}"
        _set_dotted(merged, dotted, parse_override_value(raw), f"command line ({flag})")
        origin[dotted] = f"command line ({flag})"


def _sources_of(origin: Mapping[str, str], prefix: str, keys: Any, fallback: str) -> str:
    found = sorted({origin[f"{prefix}.{k}" if prefix else k] for k in keys if (f"{prefix}.{k}" if prefix else k) in origin})
    return " + ".join(found) or fallback


def load_config(
    name_or_path: str | Path = "dishwashing",
    overrides: Mapping[str, Any] | None = None,
    *,
    base: str | Path | None = None,
    bls_file: str | Path | None = None,
) -> Config:
    """Loads ``configs/training.yaml`` then the task YAML, applies overrides, validates all.

    Args:
      name_or_path: a task name in ``configs/`` or a YAML path.
      overrides: dotted keys -> values (strings are parsed as YAML), e.g. ``{"reward.beta": "0.7"}``;
        the CLI aliases (``alpha``, ``gamma``, …) are accepted as keys too.
      base: the base YAML (default ``configs/training.yaml``; pass "" for none).
      bls_file: an official BLS OEWS national file; when given, a wage looked up by SOC code
        comes from it.

    Raises:
      ConfigError: with one line naming file, key, value and rule.
    """
    path = resolve_path(name_or_path)
    layers: list[tuple[Path, dict[str, Any]]] = []
    base_path = CONFIG_DIR / BASE_CONFIG if base is None else (Path(base) if base else None)
    if base_path is not None:
        if not base_path.is_file():
            raise ConfigError(f"{base_path}: base config file not found")
        layers.append((base_path, _read_yaml(base_path)))
    layers.append((path, _read_yaml(path)))
    merged, origin = _merge_layers(layers)
    _apply_overrides(merged, origin, overrides or {})

    shown = _display(path)
    top = {k: v for k, v in merged.items() if k not in SECTIONS and k not in EXTERNAL_SECTIONS}
    task_keys = [f.name for f in dataclasses.fields(TaskConfig)]
    for k in top:
        if k not in task_keys:
            known = ", ".join(task_keys + list(SECTIONS) + list(EXTERNAL_SECTIONS))
            raise ConfigError(f"{origin.get(k, shown)}: {k} = {fmt(top[k])}: unknown key (known: {known})")
    task = parse_section(TaskConfig, top, _sources_of(origin, "", top, shown), origins=origin)
    sections = {}
    for name, cls in SECTIONS.items():
        sec = merged.get(name, {})
        own = {k.split(".", 1)[1]: v for k, v in origin.items() if k.startswith(f"{name}.")}
        sections[name] = parse_section(cls, sec, _sources_of(origin, name, sec, shown), name, origins=own)

    if task.human_wage is not None:
        wage, wage_src = task.human_wage, f"{origin.get('human_wage', shown)}: human_wage"
    else:
        table = wages.load_bls_file(bls_file) if bls_file else wages.default_table()
        row = wages.lookup(task.bls_occupation_code, table, source=str(bls_file or "vpjax wage table"))
        wage, wage_src = row.hourly_wage, row.describe()

    external = {name: dict(merged.get(name, {})) for name in EXTERNAL_SECTIONS if name in merged}
    return Config(
        task=task,
        human_wage=float(wage),
        human_wage_source=wage_src,
        sections=external,
        section_sources={name: _sources_of(origin, name, sec, shown) for name, sec in external.items()},
        sources=tuple(_display(p) for p, _ in layers),
        origins={k: v for k, v in origin.items() if k.split(".", 1)[0] in external},
        **sections,
    )


def add_config_args(parser: Any, *, task_flag: bool = False, economic_flags: bool = True) -> None:
    """Adds the configuration flags every CLI shares to an argparse parser.

    Args:
      parser: an ``argparse.ArgumentParser`` (or argument group).
      task_flag: also add ``--task NAME`` (a config in ``configs/``; ``--config`` wins over it).
      economic_flags: add ``--bls-file`` and the economic shorthands (``--alpha``, ``--human-wage``, …).
    """
    if task_flag:
        parser.add_argument("--task", default="dishwashing", help="task config in configs/ (default: dishwashing)")
    parser.add_argument("--config", default=None, help="task YAML path or name in configs/")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set reward.beta=0.7 (repeatable)")
    if not economic_flags:
        return
    parser.add_argument("--bls-file", default=None, help="BLS OEWS national file (xlsx/csv) to look up wₕ by SOC code")
    for flag, dotted in CLI_ALIASES.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=f"override_{flag}", default=None, metavar="V",
                            help=f"override {dotted}")


def overrides_from_args(args: Any) -> dict[str, str]:
    """The overrides given with :func:`add_config_args` flags, as ``{key: text}`` (``--set`` last, so it wins).

    Raises:
      UserError: a ``--set`` item that is not KEY=VALUE.
    """
    out: dict[str, str] = {}
    for flag in CLI_ALIASES:
        v = getattr(args, f"override_{flag}", None)
        if v is not None:
            out[flag] = v
    out.update(parse_assignments(getattr(args, "set", None) or [], "--set"))
    return out


__all__ = [
    "Config",
    "ConfigError",
    "TaskConfig",
    "RewardConfig",
    "ConvergenceConfig",
    "DataValuationConfig",
    "PricingConfig",
    "FieldError",
    "parse_section",
    "load_config",
    "add_config_args",
    "overrides_from_args",
    "parse_override_value",
    "CLI_ALIASES",
]
