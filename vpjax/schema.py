"""The one mechanism that turns a raw mapping into a frozen, validated config dataclass.

Every section of a run's configuration (``reward``, ``pricing``, ``ppo``, ``imitation``, …) goes
through :func:`parse_section`, so every mistake reads the same::

    configs/mytask.yaml: data_valuation.kappa_floor = 1.5: must be in (0, 1]

A field's type comes from its annotation; its range from ``rule=(predicate, description)`` in the
field's metadata (see :func:`positive` and friends). Rules that relate several fields, or that a
dataclass checks on construction, raise :class:`FieldError`, which names the key so that the
message can name the file the key came from.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, Literal, Mapping

from vpjax.cli import UserError

Rule = tuple[Callable[[Any], bool], str]


class ConfigError(UserError, ValueError):
    """A config value broke a rule. The message is one line naming file, key, value and rule."""


class FieldError(ConfigError):
    """A rule on one field of a config dataclass, raised by the dataclass itself (``__post_init__``).

    Args:
      section: the section's name (``ppo``) or "" for top-level keys.
      key: the field. value: its value. rule: what it must satisfy ("must be >= 1").
    """

    def __init__(self, section: str, key: str, value: Any, rule: str):
        self.section, self.key, self.value, self.rule = section, key, value, rule
        super().__init__(f"{dotted(section, key)} = {fmt(value)}: {rule}")


# ----------------------------------------------------------------------------- rules


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


def field(default: Any, meta: dict | None = None, doc: str = "") -> Any:
    """A dataclass field with an optional rule (``positive()``, …) and a one-line doc."""
    return dataclasses.field(default=default, metadata={**(meta or {}), "doc": doc})


# ----------------------------------------------------------------------------- messages


def fmt(v: Any) -> str:
    """A value as it appears in a message: strings quoted, long values cut (a message is one line)."""
    text = repr(v) if isinstance(v, str) else str(v)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


# ----------------------------------------------------------------------------- types


def _number(value: Any, tp: type, where: str) -> Any:
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {fmt(value)}: must be an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} = {fmt(value)}: must be a number")
    if not math.isfinite(value):
        raise ConfigError(f"{where} = {fmt(value)}: must be finite")
    return float(value)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp``; ints are accepted for floats, lists for tuples.

    Raises:
      ConfigError: ``{where} = {value}: must be …``.
    """
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
                return coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where} = {fmt(value)}: wrong type")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} = {fmt(value)}: must be one of {', '.join(map(repr, choices))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {fmt(value)}: must be true or false")
        return value
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {fmt(value)}: must be a string")
        return value
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {fmt(value)}: must be a list")
        return tuple(coerce(v, inner, f"{where}[{i}]") if inner is not Any else v for i, v in enumerate(value))
    return value


# ----------------------------------------------------------------------------- sections


def parse_section(
    cls: type,
    mapping: Mapping[str, Any] | None,
    source: str,
    prefix: str = "",
    *,
    origins: Mapping[str, str] | None = None,
) -> Any:
    """Builds the frozen dataclass ``cls`` from ``mapping``, validating every key.

    Args:
      cls: a dataclass; field metadata may hold ``rule=(predicate, description)``; its
        ``__post_init__`` may raise :class:`FieldError` for rules that relate several fields.
      mapping: the section's raw values (None: all defaults).
      source: where the values came from (a file path or "command line"), used in messages.
      prefix: the section's key path, e.g. "reward", used in messages.
      origins: key -> source for keys that came from elsewhere (a later layer, a flag); a message
        about that key names its own source.

    Raises:
      ConfigError: one line, ``{source}: {prefix}.{key} = {value}: {rule}``.
    """
    mapping = {} if mapping is None else mapping
    origins = origins or {}
    src = lambda k: origins.get(k, source)  # noqa: E731
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{source}: {prefix or 'config'} = {fmt(mapping)}: must be a mapping of keys")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in mapping:
        if key not in fields:
            raise ConfigError(f"{src(key)}: {dotted(prefix, key)} = {fmt(mapping[key])}: unknown key "
                              f"(known: {', '.join(fields)})")
    values = {}
    for name, value in mapping.items():
        where = f"{src(name)}: {dotted(prefix, name)}"
        value = coerce(value, hints[name], where)
        rule = fields[name].metadata.get("rule")
        if rule is not None and value is not None and not rule[0](value):
            raise ConfigError(f"{where} = {fmt(value)}: {rule[1]}")
        values[name] = value
    try:
        return cls(**values)
    except FieldError as e:
        raise ConfigError(f"{src(e.key)}: {dotted(prefix, e.key)} = {fmt(e.value)}: {e.rule}") from None


__all__ = [
    "ConfigError",
    "FieldError",
    "Rule",
    "parse_section",
    "coerce",
    "field",
    "fmt",
    "dotted",
    "positive",
    "non_negative",
    "open_unit",
    "half_open_unit",
    "closed_unit",
    "at_least",
]
