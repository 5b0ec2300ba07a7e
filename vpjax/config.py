"""Typed configuration: YAML -> frozen dataclasses, validated with one clear line per mistake.

A task config (``configs/dishwashing.yaml``) is layered on top of ``configs/training.yaml``; command
line overrides (``--alpha 0.5`` or ``--set reward.beta=0.7``) go through the same validation as
the files. Every error is a :class:`ConfigError` whose message names the file, the key, the value
and the rule, e.g.::

    configs/dishwashing.yaml: data_valuation.kappa_floor = 1.5: must be in (0, 1]

Sections owned by other packages (``ppo`` for the trainer, ``env`` for environment overrides,
``video_to_policy``) are kept as raw mappings with their source and parsed by their owners through
:func:`parse_section`, so they get the same checks and messages.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml

from vpjax import economics, wages

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BASE_CONFIG = "training.yaml"
EXTERNAL_SECTIONS = ("env", "ppo", "imitation", "video_to_policy")


class ConfigError(ValueError):
    """A config value broke a rule. The message is one line naming file, key, value and rule."""


# ----------------------------------------------------------------------------- rules

Rule = tuple[Callable[[Any], bool], str]


def positive() -> dict:
    return {"rule": (lambda v: v > 0, "must be > 0")}


def non_negative() -> dict:
    return {"rule": (lambda v: v >= 0, "must be >= 0")}


def open_unit() -> dict:
    return {"rule": (lambda v: 0 < v < 1, "must be in (0, 1)")}


def half_open_unit() -> dict:
    return {"rule": (lambda v: 0 < v <= 1, "must be in (0, 1]")}


def closed_unit() -> dict:
    return {"rule": (lambda v: 0 <= v <= 1, "must be in [0, 1]")}


def at_least(lo: float) -> dict:
    return {"rule": (lambda v: v >= lo, f"must be >= {lo}")}


def _field(default: Any, meta: dict | None = None, doc: str = "") -> Any:
    return dataclasses.field(default=default, metadata={**(meta or {}), "doc": doc})


# ----------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Top-level task economics (the seed's first block)."""

    task: str = _field("dishwashing", doc="task name, as registered in envs")
    price_per_unit: float = _field(0.30, positive(), "p, $ per unit of output")
    human_mp: float = _field(60.0, positive(), "MPₕ, human units per hour")
    human_wage: float | None = _field(None, positive(), "wₕ in $/h; null: look up bls_occupation_code")
    damage_cost: float = _field(1.0, non_negative(), "cₐ, $ per error")
    bls_occupation_code: str | None = _field(None, doc="SOC code, e.g. 35-9021 (Dishwashers)")
    unit_name: str = _field("unit", doc="what one unit is called in reports (dish, brick)")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Reward weights and curriculum (α, γ anneal over anneal_episodes per robot)."""

    alpha_initial: float = _field(1.0, non_negative(), "α at the start")
    alpha_final: float = _field(0.3, non_negative(), "α after anneal_episodes")
    beta: float = _field(0.5, non_negative(), "β, error penalty")
    gamma_initial: float = _field(0.1, non_negative(), "γ at the start")
    gamma_final: float = _field(1.0, non_negative(), "γ after anneal_episodes")
    anneal_episodes: float = _field(5000.0, positive(), "curriculum horizon, episodes per robot")
    alpha_schedule: Literal["constant", "linear", "cosine"] = _field("linear", doc="α schedule")
    gamma_schedule: Literal["constant", "linear", "cosine"] = _field("linear", doc="γ schedule")
    mp_clip: float = _field(1.0, positive(), "bound on |ΔMPᵣ/MPₕ|")
    wage_loss: Literal["abs", "squared"] = _field("abs", doc="|ŵᵣ/wₕ−1| or its square")


@dataclasses.dataclass(frozen=True)
class ConvergenceConfig:
    productivity_threshold: float = _field(0.95, half_open_unit(), "1−ε: MPᵣ/MPₕ needed")
    wage_parity_tolerance: float = _field(0.10, positive(), "δ: allowed |ŵᵣ/wₕ − 1|")
    eval_window: int = _field(50, at_least(1), "N consecutive evaluations")


@dataclasses.dataclass(frozen=True)
class DataValuationConfig:
    novelty_metric: Literal["embedding_distance", "state_coverage"] = _field("embedding_distance")
    causal_metric: Literal["information_gain", "prediction_error_reduction"] = _field("information_gain")
    lookback_window: int = _field(100, at_least(1), "datapoints in the rolling fit")
    min_samples_for_fit: int = _field(10, at_least(1), "datapoints before the first fit")
    confidence_level: float = _field(0.80, open_unit(), "two-sided prediction-interval level")
    kappa_floor: float = _field(0.3, half_open_unit(), "lowest confidence discount κ")
    tier0_threshold: float = _field(0.5, non_negative(), "E[ΔMPL] below this: tier 0")
    tier1_threshold: float = _field(3.0, positive(), "E[ΔMPL] below this: tier 1; above: tier 2")


@dataclasses.dataclass(frozen=True)
class PricingConfig:
    base_price_per_task: float = _field(0.30, positive(), "p used in quotes")
    horizon_hours: float = _field(1000.0, positive(), "H, robot-hours a gain applies over")
    data_sharing_discount: float = _field(0.15, closed_unit(), "fraction off a sharing customer's bill")
    trueup_period_days: int = _field(90, at_least(1), "reconciliation period")
    trueup_payment_terms: str = _field("net30")


def _cross_check_task(c: TaskConfig) -> list[tuple[str, Any, str]]:
    if c.human_wage is None and not c.bls_occupation_code:
        return [("human_wage", None, "give human_wage or bls_occupation_code")]
    return []


def _cross_check_valuation(c: DataValuationConfig) -> list[tuple[str, Any, str]]:
    out = []
    if c.tier0_threshold >= c.tier1_threshold:
        out.append(("tier0_threshold", c.tier0_threshold, f"must be < tier1_threshold ({c.tier1_threshold})"))
    if c.min_samples_for_fit > c.lookback_window:
        out.append(("min_samples_for_fit", c.min_samples_for_fit, f"must be <= lookback_window ({c.lookback_window})"))
    return out


CROSS_CHECKS: dict[type, Callable[[Any], list[tuple[str, Any, str]]]] = {
    TaskConfig: _cross_check_task,
    DataValuationConfig: _cross_check_valuation,
}


# ----------------------------------------------------------------------------- generic parsing


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where} = {_fmt(value)}: wrong type")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} = {_fmt(value)}: must be one of {', '.join(map(repr, choices))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {_fmt(value)}: must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {_fmt(value)}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {_fmt(value)}: must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {_fmt(value)}: must be finite")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {_fmt(value)}: must be a string")
        return value
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {_fmt(value)}: must be a list")
        items = [_coerce(v, inner, f"{where}[{i}]") if inner is not Any else v for i, v in enumerate(value)]
        return tuple(items)
    return value


def parse_section(
    cls: type, mapping: Mapping[str, Any] | None, source: str, prefix: str = "", *, cross_checks: bool = True
) -> Any:
    """Builds the frozen dataclass ``cls`` from ``mapping``, validating every key.

    Args:
      cls: a dataclass; field metadata may hold ``rule=(predicate, description)``.
      mapping: the section's raw values (None: all defaults).
      source: where the values came from (a file path or "command line"), used in messages.
      prefix: the section's key path, e.g. "reward", used in messages.
      cross_checks: also run the rules that relate several keys (tier0 < tier1, …).

    Raises:
      ConfigError: one line naming source, key, value and rule.
    """
    mapping = {} if mapping is None else mapping
    dotted = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: k)  # noqa: E731
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{source}: {prefix or 'config'} = {_fmt(mapping)}: must be a mapping of keys")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in mapping:
        if key not in fields:
            raise ConfigError(f"{source}: {dotted(key)}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name not in mapping:
            continue
        where = f"{source}: {dotted(name)}"
        value = _coerce(mapping[name], hints[name], where)
        rule = f.metadata.get("rule")
        if rule is not None and value is not None and not rule[0](value):
            raise ConfigError(f"{where} = {_fmt(value)}: {rule[1]}")
        values[name] = value
    obj = cls(**values)
    check = CROSS_CHECKS.get(cls) if cross_checks else None
    if check:
        for key, value, why in check(obj):
            raise ConfigError(f"{source}: {dotted(key)} = {_fmt(value)}: {why}")
    return obj


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
    sections: Mapping[str, Mapping[str, Any]]  # raw external sections (env, ppo, imitation, video_to_policy)
    section_sources: Mapping[str, str]
    sources: tuple[str, ...]

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
        """Parses an external section (``ppo``, ``env``, …) into ``cls`` with the usual checks."""
        return parse_section(cls, self.sections.get(name), self.section_sources.get(name, "config"), name)

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

# Command-line flags that map to config keys (the seed's CLI names).
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
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{_display(path)}:{line} not valid YAML: {getattr(e, 'problem', e)}") from None
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
            raise ConfigError(f"{source}: {dotted}: {part} is not a section")
        node = nxt
    node[parts[-1]] = value


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

    # Merge section by section, remembering which file each key came from for messages.
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for src, data in layers:
        for key, value in data.items():
            if key in SECTIONS or key in EXTERNAL_SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{_display(src)}: {key} = {_fmt(value)}: must be a mapping of keys")
                sec = merged.setdefault(key, {})
                for k, v in value.items():
                    sec[k] = v
                    origin[f"{key}.{k}"] = _display(src)
            else:
                merged[key] = value
                origin[key] = _display(src)

    for key, raw in (overrides or {}).items():
        dotted = CLI_ALIASES.get(key.replace("-", "_"), key)
        flag = f"--{key.replace('_', '-')}" if key in CLI_ALIASES or key.replace("-", "_") in CLI_ALIASES else f"--set {key}"
        _set_dotted(merged, dotted, parse_override_value(raw), flag)
        origin[dotted] = f"command line ({flag})"

    def src_of(prefix: str, keys: Mapping[str, Any]) -> str:
        found = {origin.get(f"{prefix}.{k}" if prefix else k) for k in keys}
        found.discard(None)
        return found.pop() if len(found) == 1 else " + ".join(sorted(found)) or _display(path)

    # Validate each key against the layer it came from, so messages name the right file.
    top = {k: v for k, v in merged.items() if k not in SECTIONS and k not in EXTERNAL_SECTIONS}
    task_keys = [f.name for f in dataclasses.fields(TaskConfig)]
    for k in top:
        if k not in task_keys:
            known = ", ".join(task_keys + list(SECTIONS) + list(EXTERNAL_SECTIONS))
            raise ConfigError(f"{origin.get(k, _display(path))}: {k}: unknown key (known: {known})")
        parse_section(TaskConfig, {k: top[k]}, origin.get(k, _display(path)), cross_checks=False)
    task = parse_section(TaskConfig, top, src_of("", top))
    sections = {}
    for name, cls in SECTIONS.items():
        sec = merged.get(name, {})
        for k in sec:
            parse_section(cls, {k: sec[k]}, origin.get(f"{name}.{k}", _display(path)), name, cross_checks=False)
        sections[name] = parse_section(cls, sec, src_of(name, sec), name)

    if task.human_wage is not None:
        wage, wage_src = task.human_wage, f"{origin.get('human_wage', _display(path))}: human_wage"
    else:
        table = wages.load_bls_file(bls_file) if bls_file else wages.default_table()
        row = wages.lookup(task.bls_occupation_code, table, source=str(bls_file or "vpjax wage table"))
        wage, wage_src = row.hourly_wage, row.describe()

    external = {name: dict(merged.get(name, {})) for name in EXTERNAL_SECTIONS if name in merged}
    external_src = {name: src_of(name, merged[name]) for name in external}
    return Config(
        task=task,
        human_wage=float(wage),
        human_wage_source=wage_src,
        sections=external,
        section_sources=external_src,
        sources=tuple(_display(p) for p, _ in layers),
        **sections,
    )


def add_config_args(parser: Any) -> None:
    """Adds --config, --bls-file, --set and the seed's economic flags to an argparse parser."""
    parser.add_argument("--config", default=None, help="task YAML path or name in configs/ (default: the --env task)")
    parser.add_argument("--bls-file", default=None, help="BLS OEWS national file (xlsx/csv) to look up wₕ by SOC code")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set reward.beta=0.7 (repeatable)")
    for flag, dotted in CLI_ALIASES.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=f"override_{flag}", default=None, metavar="V",
                            help=f"override {dotted}")


def overrides_from_args(args: Any) -> dict[str, str]:
    """The overrides given with :func:`add_config_args` flags, as ``{key: text}``."""
    out: dict[str, str] = {}
    for flag in CLI_ALIASES:
        v = getattr(args, f"override_{flag}", None)
        if v is not None:
            out[flag] = v
    for item in getattr(args, "set", []) or []:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


__all__ = [
    "Config",
    "ConfigError",
    "TaskConfig",
    "RewardConfig",
    "ConvergenceConfig",
    "DataValuationConfig",
    "PricingConfig",
    "parse_section",
    "load_config",
    "add_config_args",
    "overrides_from_args",
    "parse_override_value",
    "CLI_ALIASES",
]
