"""Wrappers with the env API (``reset(key, params=None)``, ``step(state, action, params=None)``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs.base import State
from vpjax import economics

# per-robot memory that survives episode boundaries (everything else in info starts fresh)
CARRY_KEYS = ("prev_mp", "episodes", "unstable_resets")


class AutoReset:
    """Resets a robot whose episode ended, inside ``step`` (for ``jax.vmap`` rollouts).

    On a step with ``done = 1`` the returned state has the finishing step's ``reward``, ``done`` and
    ``metrics``, but the ``obs``, ``pipeline_state`` and ``info`` of a fresh episode reset with a
    key split from ``info['rng']``; ``prev_mp`` becomes the finished episode's MPᵣ, ``episodes``
    grows by one and ``unstable_resets`` is kept.
    """

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:  # observation_size, action_size, dt, ...
        return getattr(self.env, name)

    @property
    def unwrapped(self):
        return getattr(self.env, "unwrapped", self.env)

    def reset(self, key: jax.Array, params: Any = None) -> State:
        return self.env.reset(key, params)

    def step(self, state: State, action: jax.Array, params: Any = None) -> State:
        nxt = self.env.step(state, action, params)
        key, k_reset = jax.random.split(nxt.info["rng"])
        fresh = self.env.reset(k_reset, params)
        mp = economics.marginal_product(nxt.info["units"], nxt.info["work_seconds"])
        fresh_info = {
            **fresh.info,
            "prev_mp": jnp.asarray(mp, fresh.info["prev_mp"].dtype),
            "episodes": nxt.info["episodes"] + 1,
            "unstable_resets": nxt.info["unstable_resets"],
        }
        cont_info = {**nxt.info, "rng": key}
        done = nxt.done > 0
        pick = lambda a, b: jnp.where(done, a, b)  # noqa: E731
        info = jax.tree.map(pick, fresh_info, cont_info)
        data = jax.tree.map(
            lambda a, b: b if not isinstance(b, jax.Array) and not hasattr(b, "dtype") else pick(a, b),
            fresh.pipeline_state,
            nxt.pipeline_state,
        )
        return nxt.replace(pipeline_state=data, obs=pick(fresh.obs, nxt.obs), info=info)
