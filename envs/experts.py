"""Scripted experts: jittable policies ``(state, params) -> action`` that prove a task is doable.

``make_expert(env)`` returns the expert of ``env.name`` for the env's action mode. Experts are
stateless: the phase of the work is read from the state (dish poses, which dish a hand holds, wash
timers), so they vmap and scan like any policy and can be restarted from any state.

Each task's expert lives beside the task (envs/dishwashing_expert.py, envs/bricklaying_expert.py)
and is registered with it in envs/__init__.py (``_BUILTIN``, imported on first use; other tasks call
``register(name, Env, expert=...)``), where
:func:`make_expert` looks it up. This module holds what they share: :func:`goal_policy` turns a
phase machine's Cartesian goal into an action for either action mode; :func:`rollout` scans one.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

import envs
from envs.robot import dls_ik

Policy = Callable[[Any, Any], jax.Array]


def _step_toward(cur: jax.Array, goal: jax.Array, max_step: jax.Array) -> jax.Array:
    d = goal - cur
    n = jnp.linalg.norm(d)
    return cur + d * jnp.minimum(1.0, max_step / jnp.maximum(n, 1e-9))


def require_right_arm(env, who: str) -> None:
    """Raises ValueError unless ``env`` drives the right arm (the arm the task experts use)."""
    if 0 not in env.active_arms:
        raise ValueError(f"{who} drives the right arm; env has arms={env.arms!r}")


def goal_policy(
    env,
    goal_and_grip: Callable[[Any, Any], tuple[jax.Array, jax.Array, jax.Array]],
    joint_lead: float = 0.0,
    wrist: Callable[[Any, jax.Array], jax.Array] | None = None,
) -> Policy:
    """The right arm's action from a phase machine's Cartesian goal, for the env's action mode.

    Args:
      env: the (unwrapped) env; its ``action_mode`` and ``arms`` pick the action layout.
      goal_and_grip: ``(state, params) -> (goal [3] m, speed [] m/s, grip [] in [-1 shut, 1 open])``.
      joint_lead: joint mode: metres the IK target runs ahead of the measured grasp point beyond one
        step at ``speed`` (the position servos lag the command; ee_delta targets lead by themselves).
      wrist: joint mode: ``(data, q [6]) -> q [6]`` adjusting the IK's arm targets (e.g. the roll).
    Returns:
      ``(state, params) -> action``; with ``arms="both"`` the left arm holds its home pose, gripper open.
    """
    r = env.robot
    if env.action_mode == "ee_delta":

        def policy(state, params):
            goal, speed, grip = goal_and_grip(state, params)
            target = state.info["ee_target"][0]
            new = _step_toward(target, goal, speed * env.dt)
            delta = jnp.clip((new - target) / params.ee_step, -1.0, 1.0)
            right = jnp.concatenate([delta, grip[None]])
            if env.arms == "both":
                return jnp.concatenate([right, jnp.array([0.0, 0.0, 0.0, 1.0])])
            return right

        return policy

    lo, hi = jnp.asarray(r.ctrl_low), jnp.asarray(r.ctrl_high)
    q_home = jnp.asarray(env.home_qpos)

    def joint_policy(state, params):
        goal, speed, grip = goal_and_grip(state, params)
        data = state.pipeline_state
        ee = data.site_xpos[r.grasp_site[0]]
        new = _step_toward(ee, goal, speed * env.dt + joint_lead)
        q = dls_ik(data, r, 0, new, q_home[r.arm_qpos[0]])
        if wrist is not None:
            q = wrist(data, q)
        ids = r.arm_act[0]
        a_arm = 2.0 * (q - lo[ids]) / (hi[ids] - lo[ids]) - 1.0
        right = jnp.concatenate([jnp.clip(a_arm, -1.0, 1.0), grip[None]])
        if env.arms == "both":
            w = r.waist_act
            a_waist = 2.0 * (q_home[r.waist_qpos] - lo[w]) / (hi[w] - lo[w]) - 1.0
            ids_l = r.arm_act[1]
            a_left = 2.0 * (q_home[r.arm_qpos[1]] - lo[ids_l]) / (hi[ids_l] - lo[ids_l]) - 1.0
            return jnp.concatenate([a_waist[None], right, a_left, jnp.ones(1)])
        return right

    return joint_policy



def make_expert(env) -> Policy:
    """The scripted expert of ``env`` as a jittable ``(state, params) -> action``.

    The one registered with ``env.name`` (:func:`envs.register`); an env loaded as ``MODULE:FACTORY``
    may bring its own instead, as a method ``expert_policy()`` returning that function.

    Raises:
      ValueError: neither exists (the message lists the tasks that have experts).
    """
    base = getattr(env, "unwrapped", env)
    name = getattr(env, "name", None)
    if name not in envs.registered() and hasattr(base, "expert_policy"):
        return base.expert_policy()
    return envs.expert_factory(name)(base)


def rollout(env, policy: Policy, state, n_steps: int, params=None):
    """Scans ``n_steps`` of ``policy`` on ``env`` (no auto-reset); returns (final state, metrics [T])."""
    params = env.default_params if params is None else params

    def body(s, _):
        s = env.step(s, policy(s, params), params)
        return s, s.metrics

    return jax.lax.scan(body, state, None, length=n_steps)
