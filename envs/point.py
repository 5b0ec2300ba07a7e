"""The point task: pick-and-deliver by a point robot, in pure JAX, for fast tests and smoke runs.

A point robot in the square [-1, 1]² moves by bounded position deltas (the ``ee_delta`` action
mode in miniature), picks the item up when it comes close (an attempt) and earns a unit when it
carries the item to the goal. Moving near full speed while carrying drops (breaks) the item: an
error. It follows the env contract (envs/contract.py) and its economics are those of every task,
:func:`vpjax.economics.account` with the env's ``reward_fn``, so the trainer, the evaluators and
video-to-policy treat it like ``envs.make("dishwashing")`` while a rollout takes milliseconds.
:func:`render` is pure JAX (vmappable), unlike MuJoCo's renderer. Not registered in
:func:`envs.make`: it has no MuJoCo scene, which the registry's generated tests assume.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs.contract import State
from vpjax import economics as E

SHAPING_TERMS = ("reach", "place")


@struct.dataclass
class PointParams:
    """Explicit parameters of the point task (all array leaves).

    Attributes:
      econ: EconParams of the task.
      shaping_scales: dict term -> [] scale of the ``reach`` and ``place`` shaping terms.
      shaping_weight: [] multiplies all shaping (a trainer anneals it away).
      money_scale: [] multiplier of the money reward.
      max_step: [] displacement per step at |action| = 1.
      grasp_radius: [] distance at which the free item is picked up.
      drop_radius: [] distance to the goal at which a carried item is delivered.
      rough_speed: [] |action| above which a carried item is dropped (an error).
      spawn_range: [] half-width of the square the robot, item and goal are drawn in (randomization).
    """

    econ: E.EconParams
    shaping_scales: dict
    shaping_weight: jax.Array
    money_scale: jax.Array
    max_step: jax.Array
    grasp_radius: jax.Array
    drop_radius: jax.Array
    rough_speed: jax.Array
    spawn_range: jax.Array

    @classmethod
    def create(cls, econ: E.EconParams, max_step: float = 0.12, grasp_radius: float = 0.12,
               drop_radius: float = 0.12, rough_speed: float = 0.99, spawn_range: float = 1.0) -> "PointParams":
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(econ=econ, shaping_scales={k: f(1.0) for k in SHAPING_TERMS}, shaping_weight=f(1.0),
                   money_scale=f(1.0), max_step=f(max_step), grasp_radius=f(grasp_radius),
                   drop_radius=f(drop_radius), rough_speed=f(rough_speed), spawn_range=f(spawn_range))


@struct.dataclass
class PointData:
    """The point task's scene (``state.pipeline_state``)."""

    pos: jax.Array  # [2]
    item: jax.Array  # [2]
    goal: jax.Array  # [2]
    carrying: jax.Array  # []


class PointDeliver:
    """Point-mass pick-and-deliver env (one robot; vmap for batches).

    Args:
      episode_length: control steps per episode.
      dt: simulated seconds per step.
      economic_reward: False drops the money and episode parts of the reward.
      reward_fn: episode reward, signature of :func:`vpjax.economics.reward_terms`.
      params: default params (None: :meth:`PointParams.create` over the econ below).
      **econ_overrides: ``EconParams.create`` keywords over MPₕ 60/h, wₕ $18/h, p $0.30 and an
        anneal horizon of 50 episodes (ignored when ``params`` is given).
    """

    name = "point"
    observation_size = 9
    action_size = 2
    proprio_size = 3
    SHAPING_TERMS = SHAPING_TERMS

    def __init__(self, episode_length: int = 40, dt: float = 3.0, economic_reward: bool = True,
                 reward_fn: E.RewardFn | None = None, params: PointParams | None = None, **econ_overrides: Any):
        self.episode_length = int(episode_length)
        self.dt = float(dt)
        self.economic_reward = bool(economic_reward)
        self.reward_fn = reward_fn or E.reward_terms
        if params is None:
            econ = E.EconParams.create(**{"human_mp": 60.0, "human_wage": 18.0, "price_per_unit": 0.30,
                                          "anneal_steps": 50.0, **econ_overrides})
            params = PointParams.create(econ)
        E.check_reward_fn(self.reward_fn, params.econ)
        self.default_params = params
        self._reward_extras = E.reward_extra_names(self.reward_fn, params.econ)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return E.METRIC_NAMES + self._reward_extras + tuple(f"shaping_{k}" for k in SHAPING_TERMS) + ("unstable",)

    @property
    def unwrapped(self):
        return self

    def _obs(self, d: PointData) -> jax.Array:
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        return jnp.concatenate([d.pos, d.item, d.goal, target - d.pos, d.carrying[None]]).astype(jnp.float32)

    def proprio(self, state: State) -> jax.Array:
        """The robot's own sensing: position and gripper (carrying) state, [3]."""
        d = state.pipeline_state
        return jnp.concatenate([d.pos, d.carrying[None]]).astype(jnp.float32)

    def expert_policy(self):
        """The scripted :func:`expert` as ``(state, params) -> action`` (its noise drawn from the state's rng),
        what :func:`envs.experts.make_expert` returns for this env."""
        return lambda state, params: expert(state, jax.random.fold_in(state.info["rng"], 7), params)

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
        return State(pipeline_state=d, obs=self._obs(d), reward=z, done=z, metrics={k: z for k in self.metric_names},
                     info=info)

    def _move(self, d: PointData, a: jax.Array, k_item: jax.Array, k_goal: jax.Array, params: PointParams):
        """The scene after action ``a`` (keys draw a new item and goal); returns (scene, deltas of
        units/errors/attempts, unscaled shaping terms)."""
        pos = jnp.clip(d.pos + params.max_step * a, -1.0, 1.0)
        grab = (d.carrying == 0) & (jnp.linalg.norm(pos - d.item) < params.grasp_radius)
        carrying = jnp.where(grab, 1.0, d.carrying)
        rough = (d.carrying > 0) & (jnp.max(jnp.abs(a)) > params.rough_speed)
        deliver = (carrying > 0) & ~rough & (jnp.linalg.norm(pos - d.goal) < params.drop_radius)
        r = params.spawn_range
        respawn = rough | deliver  # a delivered or broken item is replaced by a new one
        item = jnp.where(respawn, jax.random.uniform(k_item, (2,), minval=-r, maxval=r),
                         jnp.where(carrying > 0, pos, d.item))
        goal = jnp.where(respawn, jax.random.uniform(k_goal, (2,), minval=-r, maxval=r), d.goal)
        nd = PointData(pos=pos, item=item, goal=goal, carrying=jnp.where(respawn, 0.0, carrying))
        deltas = {"units": deliver.astype(jnp.float32), "errors": rough.astype(jnp.float32),
                  "attempts": grab.astype(jnp.float32)}
        target = jnp.where(d.carrying > 0, d.goal, d.item)
        # progress toward the current target (potential-based, so it cannot be farmed)
        progress = jnp.linalg.norm(d.pos - target) - jnp.linalg.norm(pos - target)
        terms = {"reach": jnp.where(d.carrying > 0, 0.0, progress), "place": jnp.where(d.carrying > 0, progress, 0.0)}
        return nd, deltas, terms

    def step(self, state: State, action: jax.Array, params: PointParams | None = None) -> State:
        params = self.default_params if params is None else params
        info = state.info
        rng, k_item, k_goal = jax.random.split(info["rng"], 3)
        nd, deltas, terms = self._move(state.pipeline_state, jnp.clip(action, -1.0, 1.0), k_item, k_goal, params)
        steps = info["steps"] + 1
        counters = {k: info[k] + deltas[k] for k in ("units", "errors", "attempts")}
        counters["work_seconds"] = steps.astype(jnp.float32) * self.dt
        done = (steps >= self.episode_length).astype(jnp.float32)
        shaping = params.shaping_weight * (params.shaping_scales["reach"] * terms["reach"]
                                           + params.shaping_scales["place"] * terms["place"])
        reward, metrics = E.account(counters, deltas, info["prev_mp"], done > 0, params.econ, shaping=shaping,
                                    money_scale=params.money_scale, economic_reward=self.economic_reward,
                                    reward_fn=self.reward_fn)
        metrics.update({f"shaping_{k}": jnp.asarray(v, jnp.float32) for k, v in terms.items()})
        metrics["unstable"] = jnp.zeros((), jnp.float32)
        info = {**info, **counters, "steps": steps, "rng": rng}
        return state.replace(pipeline_state=nd, obs=self._obs(nd), reward=reward, done=done, metrics=metrics,
                             info=info)


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


__all__ = ["PointDeliver", "PointParams", "PointData", "expert", "render", "SHAPING_TERMS"]
