"""vpjax MJX task environments and their registry.

    import envs
    env = envs.make("dishwashing", washing_time=10.0, action_mode="ee_delta")
    state = env.reset(key); state = env.step(state, action)

``make`` splits keyword overrides into constructor arguments (structural: action_mode, arms,
episode_length, episode_seconds, n_substeps, reward_fn, economic_reward, ...) and EnvParams fields
(numeric: washing_time, econ, dr, shaping_scales, ...); an unknown key raises ValueError naming it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from envs.base import MjxTaskEnv
from envs.contract import Env, State
from envs.params import DomainRandomization, EnvParams, override_params

_REGISTRY: dict[str, Callable[..., MjxTaskEnv]] = {}
_EXPERTS: dict[str, Callable[[Any], Callable]] = {}


def register(name: str, factory: Callable[..., MjxTaskEnv], expert: Callable[[Any], Callable] | None = None) -> None:
    """Registers ``factory`` (an env class or a function returning an env) under ``name``.

    Args:
      expert: the task's scripted expert, ``env -> (state, params) -> action`` (see
        :func:`envs.experts.make_expert`), or None for a task without one.
    """
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory
    if expert is not None:
        _EXPERTS[name] = expert


def expert_factory(name: str) -> Callable[[Any], Callable]:
    """The scripted expert registered with env ``name`` (``env -> policy``).

    Raises:
      ValueError: no expert is registered under ``name``.
    """
    _ensure_builtin(name)
    if name not in _EXPERTS:
        raise ValueError(f"no scripted expert for env {name!r}; experts exist for "
                         f"{sorted(set(_EXPERTS) | set(_BUILTIN))}")
    return _EXPERTS[name]


def registered() -> tuple[str, ...]:
    """Names accepted by :func:`make`, sorted."""
    return tuple(sorted(set(_REGISTRY) | set(_BUILTIN)))


def _constructor_args(factory) -> set[str]:
    names = set()
    for cls in getattr(factory, "__mro__", (factory,)):
        init = cls.__init__ if isinstance(cls, type) else cls
        if init is object.__init__:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        names |= {p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names - {"self", "params"}


def make(name: str, **overrides: Any) -> MjxTaskEnv:
    """Builds the registered env ``name``.

    Args:
      name: one of :func:`registered`.
      **overrides: constructor arguments and/or EnvParams fields (the latter replace fields of the
        env's default params; dicts update ``econ``/``dr``/``shaping_scales``).
    Raises:
      ValueError: unknown env name or unknown override key (named in the message).
    """
    _ensure_builtin(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; registered: {list(registered())}")
    factory = _REGISTRY[name]
    ctor_names = _constructor_args(factory)
    ctor = {k: v for k, v in overrides.items() if k in ctor_names}
    param_over = {k: v for k, v in overrides.items() if k not in ctor_names}
    env = factory(**ctor)
    if param_over:
        try:
            env.default_params = override_params(env.default_params, param_over)
        except ValueError as e:
            raise ValueError(f"envs.make({name!r}): {e}; constructor args: {sorted(ctor_names)}") from None
    return env


# ---- the one registration point: every task and its expert -------------------------------------
# Named by module path and imported on first use, so that ``python -m envs.dishwashing`` does not find its
# own module already imported by the package (runpy's RuntimeWarning) and ``import envs`` stays cheap.
_BUILTIN = {
    "dishwashing": ("envs.dishwashing:Dishwashing", "envs.dishwashing_expert:dishwashing_expert"),
    "bricklaying": ("envs.bricklaying:Bricklaying", "envs.bricklaying_expert:bricklaying_expert"),
}


def _load(path: str):
    import importlib

    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def _ensure_builtin(name: str) -> None:
    if name in _BUILTIN and name not in _REGISTRY:
        env_path, expert_path = _BUILTIN[name]
        register(name, _load(env_path), expert=_load(expert_path))


__all__ = ["make", "register", "registered", "expert_factory", "Env", "State", "EnvParams", "DomainRandomization",
           "MjxTaskEnv"]
