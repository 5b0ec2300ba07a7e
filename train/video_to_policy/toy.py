"""A reduced task for fast CPU tests and smoke runs: ``point`` pick-and-deliver with a jittable renderer.

The robot is a point in the unit square moving by bounded deltas (the ``ee_delta`` action mode in
miniature). It picks the item up by touching it and earns a unit by carrying it to the goal; moving
at full speed while carrying drops (breaks) the item, an error. Counters, metrics and the reward
split follow the env contract (/work/notes/ENV_CONTRACT.md), so the pipeline treats it exactly like
``envs.make("dishwashing")``. Unlike MuJoCo rendering, :func:`render` is pure JAX (vmappable, fast),
which keeps the end-to-end tests within seconds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from vpjax import economics as E

try:  # the project's State once envs/base.py exists (same field names otherwise)
    from envs.base import State  # type: ignore
except Exception:  # pragma: no cover

    @struct.dataclass
    class State:  # type: ignore[no-redef]
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
    """Explicit parameters (array leaves). ``spawn_range`` is the domain-randomization range of positions."""

    econ: E.EconParams
    shaping_weight: jax.Array
    max_step: jax.Array
    grasp_radius: jax.Array
    drop_radius: jax.Array
    rough_speed: jax.Array
    spawn_range: jax.Array


@struct.dataclass
class PointData:
    pos: jax.Array  # [2]
    item: jax.Array  # [2]
    goal: jax.Array  # [2]
    carrying: jax.Array  # []


METRIC_KEYS = ("units", "errors", "attempts", "work_seconds", "mp", "error_rate", "implied_wage",
               "productivity_parity", "wage_parity", "reward_money", "reward_episode", "reward_mp", "reward_error",
               "reward_wage", "reward_shaping", "shaping_reach", "unstable")


class PointDeliver:
    """Point-mass pick-and-deliver env following the vpjax contract (one robot; vmap for batches)."""

    name = "point"
    observation_size = 9
    action_size = 2
    proprio_size = 3

    def __init__(self, episode_length: int = 40, dt: float = 4.0):
        self.episode_length = int(episode_length)
        self.dt = float(dt)
        econ = E.EconParams.create(human_mp=60.0, human_wage=18.0, price_per_unit=0.30, anneal_steps=50.0)
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        self.default_params = PointParams(econ=econ, shaping_weight=f(1.0), max_step=f(0.15), grasp_radius=f(0.15),
                                          drop_radius=f(0.15), rough_speed=f(0.98), spawn_range=f(0.9))

    def _obs(self, d: PointData) -> jax.Array:
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        return jnp.concatenate([d.pos, d.item, d.goal, target - d.pos, d.carrying[None]]).astype(jnp.float32)

    def proprio(self, state: State) -> jax.Array:
        """The robot's own sensing: position and gripper (carrying) state, [3]."""
        d = state.pipeline_state
        return jnp.concatenate([d.pos, d.carrying[None]]).astype(jnp.float32)

    def reset(self, key: jax.Array, params: PointParams | None = None) -> State:
        params = self.default_params if params is None else params
        k_pos, k_item, k_goal, k_rng = jax.random.split(key, 4)
        r = params.spawn_range
        d = PointData(pos=jax.random.uniform(k_pos, (2,), minval=-r, maxval=r),
                      item=jax.random.uniform(k_item, (2,), minval=-r, maxval=r),
                      goal=jax.random.uniform(k_goal, (2,), minval=-r, maxval=r), carrying=jnp.zeros((), jnp.float32))
        z = jnp.zeros((), jnp.float32)
        info = {"units": z, "errors": z, "attempts": z, "work_seconds": z, "steps": jnp.zeros((), jnp.int32),
                "prev_mp": z, "episodes": z, "rng": k_rng, "unstable_resets": z}
        return State(pipeline_state=d, obs=self._obs(d), reward=z, done=z, metrics={k: z for k in METRIC_KEYS},
                     info=info)

    def step(self, state: State, action: jax.Array, params: PointParams | None = None) -> State:
        params = self.default_params if params is None else params
        econ, d, info = params.econ, state.pipeline_state, state.info
        a = jnp.clip(action, -1.0, 1.0)
        pos = jnp.clip(d.pos + params.max_step * a, -1.0, 1.0)
        rng, k_item, k_goal = jax.random.split(info["rng"], 3)
        grab = (d.carrying == 0) & (jnp.linalg.norm(pos - d.item) < params.grasp_radius)
        carrying = jnp.where(grab, 1.0, d.carrying)
        rough = (d.carrying > 0) & (jnp.max(jnp.abs(a)) > params.rough_speed)
        deliver = (carrying > 0) & ~rough & (jnp.linalg.norm(pos - d.goal) < params.drop_radius)
        r = params.spawn_range
        respawn = rough | deliver
        item = jnp.where(respawn, jax.random.uniform(k_item, (2,), minval=-r, maxval=r),
                         jnp.where(carrying > 0, pos, d.item))
        goal = jnp.where(respawn, jax.random.uniform(k_goal, (2,), minval=-r, maxval=r), d.goal)
        nd = PointData(pos=pos, item=item, goal=goal, carrying=jnp.where(respawn, 0.0, carrying))
        d_units, d_errors = deliver.astype(jnp.float32), rough.astype(jnp.float32)
        units, errors = info["units"] + d_units, info["errors"] + d_errors
        attempts = info["attempts"] + grab.astype(jnp.float32)
        steps = info["steps"] + 1
        work_seconds = steps.astype(jnp.float32) * self.dt
        done = (steps >= self.episode_length).astype(jnp.float32)
        mp = E.marginal_product(units, work_seconds)
        err = E.error_rate(errors, attempts)
        wage = E.implied_wage(mp, err, econ)
        terms = E.reward_terms(mp, info["prev_mp"], err, econ)
        comps = E.scaled_components(terms, econ)
        money = econ.price_per_unit * d_units - econ.damage_cost * d_errors
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        progress = jnp.linalg.norm(d.pos - target) - jnp.linalg.norm(pos - target)
        shaping = params.shaping_weight * progress
        reward = (money + done * terms["total"] + shaping).astype(jnp.float32)
        metrics = {"units": units, "errors": errors, "attempts": attempts, "work_seconds": work_seconds, "mp": mp,
                   "error_rate": err, "implied_wage": wage, "productivity_parity": E.productivity_parity(mp, econ),
                   "wage_parity": E.wage_parity(wage, econ), "reward_money": money,
                   "reward_episode": done * terms["total"], "reward_mp": comps["reward_mp"],
                   "reward_error": comps["reward_error"], "reward_wage": comps["reward_wage"],
                   "reward_shaping": shaping, "shaping_reach": progress, "unstable": jnp.zeros(())}
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        info = {**info, "units": units, "errors": errors, "attempts": attempts, "work_seconds": work_seconds,
                "steps": steps, "rng": rng}
        return state.replace(pipeline_state=nd, obs=self._obs(nd), reward=reward, done=done, metrics=metrics, info=info)


def expert(state: State, key: jax.Array, params: PointParams) -> jax.Array:
    """Scripted expert: head to the item, then to the goal, a little below the breaking speed. [2]."""
    d = state.pipeline_state
    target = jnp.where(d.carrying > 0, d.goal, d.item)
    a = (target - d.pos) / params.max_step
    a = a / jnp.maximum(1.0, jnp.max(jnp.abs(a)) / 0.9)
    return jnp.clip(a + 0.03 * jax.random.normal(key, (2,)), -0.95, 0.95)


def render(state: State, size: int = 32) -> jax.Array:
    """Top-down RGB image uint8 [size, size, 3]: goal (blue), item (green; yellow when carried), robot (red)."""
    d = state.pipeline_state
    c = (jnp.arange(size) + 0.5) / size * 2.0 - 1.0
    yy, xx = jnp.meshgrid(c, c, indexing="ij")
    img = jnp.full((size, size, 3), 0.85, jnp.float32)

    def disk(img, p, radius, color):
        m = ((xx - p[0]) ** 2 + (yy - p[1]) ** 2 < radius**2)[..., None]
        return jnp.where(m, jnp.asarray(color, jnp.float32), img)

    img = disk(img, d.goal, 0.16, (0.1, 0.2, 0.9))
    img = disk(img, d.item, 0.11, jnp.where(d.carrying > 0, jnp.array([0.95, 0.85, 0.1]), jnp.array([0.1, 0.7, 0.2])))
    img = disk(img, d.pos, 0.08, (0.85, 0.1, 0.1))
    return (img * 255).astype(jnp.uint8)
