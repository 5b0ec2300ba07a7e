"""Shared, session-scoped compiled env functions (MJX compiles take minutes on 2 CPU cores).

Every test of an env reuses one ``jit(vmap(reset))`` and one ``jit(vmap(AutoReset(env).step))``
per registered env, with ``params`` as an argument so tests may vary them without recompiling.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering test; must precede importing mujoco

import jax
import jax.monitoring
import pytest

import envs
from envs.wrappers import AutoReset

BATCH = 2  # robots per batch on CPU

_COMPILES: list[str] = []


def _on_event(event: str, duration: float, **kw) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(event)


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compile_count() -> int:
    """Number of XLA backend compiles so far in this process."""
    return len(_COMPILES)


class Compiled:
    """An env with its jitted, vmapped reset and auto-resetting step (params unbatched)."""

    def __init__(self, name: str):
        self.name = name
        self.env = envs.make(name)
        self.params = self.env.default_params
        self.reset = jax.jit(jax.vmap(self.env.reset, in_axes=(0, None)))
        self.step = jax.jit(jax.vmap(AutoReset(self.env).step, in_axes=(0, 0, None)))

    def fresh(self, seed: int = 0, params=None):
        keys = jax.random.split(jax.random.PRNGKey(seed), BATCH)
        return self.reset(keys, self.params if params is None else params)


_CACHE: dict[str, Compiled] = {}


def compiled_env(name: str) -> Compiled:
    if name not in _CACHE:
        _CACHE[name] = Compiled(name)
    return _CACHE[name]


@pytest.fixture(scope="session")
def dish() -> Compiled:
    return compiled_env("dishwashing")
