"""A tiny pure-JAX "pick and deliver" task that follows the vpjax env contract.

A point robot in the unit square moves by bounded position deltas (like the ``ee_delta`` action
mode of the MJX tasks), picks up an item when it is close, and earns one unit when it carries the
item to the drop zone. Moving too fast while carrying drops the item: an error. The economic counters
(units, errors, attempts, work_seconds), the per-robot memory (prev_mp, episodes) and the reward
split (money every step, the seed's r(t) on the last step, scaled shaping terms) are those of the
env contract in ``/work/notes/ENV_CONTRACT.md``, so the trainer's tests run in seconds on a CPU.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from vpjax import economics as E

try:  # the project's State once envs/base.py exists; the same field names otherwise
    from envs.base import State  # type: ignore
except Exception:  # pragma: no cover - before the env engineer lands envs/base.py

    @struct.dataclass
    class State:
        pipeline_state: Any
        obs: jax.Array
        reward: jax.Array
        done: jax.Array
        metrics: dict
        info: dict

        @property
        def data(self):
            return self.pipeline_state


@struct.dataclass
class PointParams:
    """Explicit parameters of the point task (all array leaves)."""

    econ: E.EconParams
    reach_scale: jax.Array
    place_scale: jax.Array
    shaping_weight: jax.Array
    money_scale: jax.Array
    episode_scale: jax.Array
    max_step: jax.Array
    grasp_radius: jax.Array
    drop_radius: jax.Array
    rough_speed: jax.Array


@struct.dataclass
class PointData:
    pos: jax.Array  # [2]
    item: jax.Array  # [2]
    goal: jax.Array  # [2]
    carrying: jax.Array  # []


SHAPING = ("shaping_reach", "shaping_place")
METRIC_KEYS = (
    "units", "errors", "attempts", "work_seconds", "mp", "error_rate", "implied_wage",
    "productivity_parity", "wage_parity", "reward_money", "reward_episode", "reward_mp",
    "reward_error", "reward_wage", "reward_shaping", *SHAPING, "unstable",
)


class PointDeliver:
    """Point-mass pick-and-deliver env (one robot; vmap for batches)."""

    observation_size = 9
    action_size = 2

    def __init__(self, episode_length: int = 40, dt: float = 3.0, economic_reward: bool = True,
                 reward_fn: Callable | None = None, **econ_overrides):
        self.episode_length = int(episode_length)
        self.dt = float(dt)
        self.economic_reward = bool(economic_reward)
        self.reward_fn = reward_fn or E.reward_terms
        econ = E.EconParams.create(**{"human_mp": 60.0, "human_wage": 18.0, "price_per_unit": 0.30,
                                      "anneal_steps": 50.0, **econ_overrides})
        E.check_reward_fn(self.reward_fn, econ)
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        self.default_params = PointParams(
            econ=econ, reach_scale=f(1.0), place_scale=f(1.0), shaping_weight=f(1.0),
            money_scale=f(1.0), episode_scale=f(1.0), max_step=f(0.12), grasp_radius=f(0.12),
            drop_radius=f(0.12), rough_speed=f(0.99),
        )

    # -- helpers
    def _obs(self, d: PointData) -> jax.Array:
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        return jnp.concatenate([d.pos, d.item, d.goal, target - d.pos, d.carrying[None]]).astype(jnp.float32)

    def reset(self, key: jax.Array, params: PointParams | None = None) -> State:
        params = self.default_params if params is None else params
        k_pos, k_item, k_goal, k_rng = jax.random.split(key, 4)
        d = PointData(
            pos=jax.random.uniform(k_pos, (2,), minval=-1.0, maxval=1.0),
            item=jax.random.uniform(k_item, (2,), minval=-1.0, maxval=1.0),
            goal=jax.random.uniform(k_goal, (2,), minval=-1.0, maxval=1.0),
            carrying=jnp.zeros((), jnp.float32),
        )
        z = jnp.zeros((), jnp.float32)
        info = {"units": z, "errors": z, "attempts": z, "work_seconds": z, "steps": jnp.zeros((), jnp.int32),
                "prev_mp": z, "episodes": z, "rng": k_rng, "unstable_resets": z}
        metrics = {k: z for k in METRIC_KEYS}
        return State(pipeline_state=d, obs=self._obs(d), reward=z, done=z, metrics=metrics, info=info)

    def step(self, state: State, action: jax.Array, params: PointParams | None = None) -> State:
        params = self.default_params if params is None else params
        econ = params.econ
        d: PointData = state.pipeline_state
        info = state.info
        a = jnp.clip(action, -1.0, 1.0)
        pos = jnp.clip(d.pos + params.max_step * a, -1.0, 1.0)
        rng, k_item, k_goal = jax.random.split(info["rng"], 3)
        # pick: touching the free item grabs it (an attempt)
        grab = (d.carrying == 0) & (jnp.linalg.norm(pos - d.item) < params.grasp_radius)
        carrying = jnp.where(grab, 1.0, d.carrying)
        # rough motion while carrying drops (breaks) the item: an error, a new item appears
        rough = (d.carrying > 0) & (jnp.max(jnp.abs(a)) > params.rough_speed)
        deliver = (carrying > 0) & ~rough & (jnp.linalg.norm(pos - d.goal) < params.drop_radius)
        new_item = jax.random.uniform(k_item, (2,), minval=-1.0, maxval=1.0)
        new_goal = jax.random.uniform(k_goal, (2,), minval=-1.0, maxval=1.0)
        respawn = rough | deliver
        item = jnp.where(respawn, new_item, jnp.where(carrying > 0, pos, d.item))
        goal = jnp.where(respawn, new_goal, d.goal)
        carrying = jnp.where(respawn, 0.0, carrying)
        nd = PointData(pos=pos, item=item, goal=goal, carrying=carrying)

        d_units = deliver.astype(jnp.float32)
        d_errors = rough.astype(jnp.float32)
        units = info["units"] + d_units
        errors = info["errors"] + d_errors
        attempts = info["attempts"] + grab.astype(jnp.float32)
        steps = info["steps"] + 1
        work_seconds = steps.astype(jnp.float32) * self.dt
        done = (steps >= self.episode_length).astype(jnp.float32)

        mp = E.marginal_product(units, work_seconds)
        err = E.error_rate(errors, attempts)
        wage = E.implied_wage(mp, err, econ)
        terms = self.reward_fn(mp, info["prev_mp"], err, econ)
        comps = E.scaled_components(terms, econ)
        money = (econ.price_per_unit * d_units - econ.damage_cost * d_errors) * params.money_scale
        episode_r = done * terms["total"] * params.episode_scale
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        # progress toward the current target (potential-based, so it cannot be farmed)
        progress = jnp.linalg.norm(d.pos - target) - jnp.linalg.norm(pos - target)
        reach = jnp.where(d.carrying > 0, 0.0, progress)
        place = jnp.where(d.carrying > 0, progress, 0.0)
        shaping = params.shaping_weight * (params.reach_scale * reach + params.place_scale * place)
        econ_r = money + episode_r if self.economic_reward else 0.0
        reward = (econ_r + shaping).astype(jnp.float32)

        metrics = {
            "units": units, "errors": errors, "attempts": attempts, "work_seconds": work_seconds, "mp": mp,
            "error_rate": err, "implied_wage": wage, "productivity_parity": E.productivity_parity(mp, econ),
            "wage_parity": E.wage_parity(wage, econ), "reward_money": money, "reward_episode": done * terms["total"],
            "reward_mp": comps["reward_mp"], "reward_error": comps["reward_error"], "reward_wage": comps["reward_wage"],
            "reward_shaping": shaping, "shaping_reach": reach, "shaping_place": place,
            "unstable": jnp.zeros((), jnp.float32),
        }
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        info = {**info, "units": units, "errors": errors, "attempts": attempts, "work_seconds": work_seconds,
                "steps": steps, "rng": rng}
        return state.replace(pipeline_state=nd, obs=self._obs(nd), reward=reward, done=done, metrics=metrics,
                             info=info)
