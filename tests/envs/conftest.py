"""Shared, session-scoped compiled env functions (MJX compiles take minutes on 2 CPU cores).

Every test of an env reuses one ``jit(vmap(AutoReset(env).reset))``, one
``jit(vmap(AutoReset(env).step))`` and one ``jit(vmap(expert))`` per registered env, with ``params``
as an argument so tests may vary them without recompiling. Long rollouts call the compiled step in a
Python loop (a jitted scan of the step would be one more multi-minute compile).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering test; must precede importing mujoco

import jax
import jax.monitoring
import pytest

import envs
from envs.experts import make_expert
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
        auto = AutoReset(self.env)
        self.reset = jax.jit(jax.vmap(auto.reset, in_axes=(0, None)))
        self.step = jax.jit(jax.vmap(auto.step, in_axes=(0, 0, None)))
        self.expert = jax.jit(jax.vmap(make_expert(self.env), in_axes=(0, None)))

    def fresh(self, seed: int = 0, params=None):
        keys = jax.random.split(jax.random.PRNGKey(seed), BATCH)
        return self.reset(keys, self.params if params is None else params)

    def expert_episode(self, seed: int, params=None):
        """Both robots run the scripted expert for one whole episode (``episode_length`` steps).

        Returns:
          (state after the auto-reset, metrics of the episode's last step), batched [BATCH].
        """
        params = self.params if params is None else params
        s = self.fresh(seed, params)
        for _ in range(self.env.episode_length):
            s = self.step(s, self.expert(s, params), params)
        return s, s.metrics


_CACHE: dict[str, Compiled] = {}


def compiled_env(name: str) -> Compiled:
    if name not in _CACHE:
        _CACHE[name] = Compiled(name)
    return _CACHE[name]


@pytest.fixture(scope="session")
def dish() -> Compiled:
    return compiled_env("dishwashing")
