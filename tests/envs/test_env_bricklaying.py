"""Bricklaying-specific tests: what counts as unit/error/attempt, and the scripted expert.

The generic env tests (tests/envs/test_env_generic.py, generated over ``envs.registered()``) already
cover bricklaying's jit/vmap without recompiles, 1000 random steps without NaN, work seconds,
auto-reset, the instability guard and brax's wrappers. MJX compiles take minutes on 2 CPU cores, so
these tests reuse the same session-scoped compiled reset/step (``conftest.compiled_env``): scenario
tests edit states (brick poses, mortar timers) and step them; the expert adds only a small jitted
policy (``conftest.Compiled.expert``). The expert's whole-episode economics at default settings run
on that shared step (a Python loop, slow-marked: 7500 steps); the joint-mode episode is slow too.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BATCH, compiled_env

import envs
from envs.bricklaying import BricklayingParams


@pytest.fixture(scope="module")
def brick():
    return compiled_env("bricklaying")


def _set_brick(env, states, robot, brick, xyz, yaw=0.0, **info):
    """Places brick ``brick`` of robot ``robot`` at ``xyz`` (flat, ``yaw``) and sets per-brick info."""
    q = states.pipeline_state.qpos
    a = int(env.object_qpos[brick])
    pose = jnp.array([*xyz, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)], jnp.float32)
    q = q.at[robot, a : a + 7].set(pose)
    new_info = dict(states.info)
    for k, v in info.items():
        new_info[k] = new_info[k].at[robot, brick].set(v)
    return states.replace(pipeline_state=states.pipeline_state.replace(qpos=q), info=new_info)


def _run(c, s, n):
    """n zero-action steps; returns (state, rewards [n, B], units [n, B], errors [n, B])."""
    a = jnp.zeros((BATCH, c.env.action_size))
    rew, units, errors = [], [], []
    for _ in range(n):
        s = c.step(s, a, c.params)
        rew.append(np.asarray(s.reward))
        units.append(np.asarray(s.metrics["units"]))
        errors.append(np.asarray(s.metrics["errors"]))
    return s, np.stack(rew), np.stack(units), np.stack(errors)


def _max_shaping(params) -> float:
    return float(params.shaping_weight) * sum(float(v) for v in params.shaping_scales.values()) + 1e-4


def test_defaults_come_from_the_bricklaying_config():
    env = envs.make("bricklaying")
    econ = env.default_params.econ  # configs/bricklaying.yaml
    assert float(econ.price_per_unit) == pytest.approx(0.5)
    assert float(econ.human_mp) == pytest.approx(60.0)
    assert float(econ.damage_cost) == pytest.approx(2.0)
    assert env.episode_length == round(300.0 / env.dt)
    assert float(envs.make("bricklaying", mortar_time=12.0).default_params.mortar_time) == 12.0
    with pytest.raises(ValueError, match="mortar_tim"):
        envs.make("bricklaying", mortar_tim=3.0)
    with pytest.raises(ValueError, match="pos_tolerance"):
        BricklayingParams.create(pos_tolerance=[0.1, 0.2])
    # params are a vmappable pytree
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), env.default_params)
    assert batched.orient_tolerance.shape == (2,)


def test_dropped_brick_is_an_error(brick):
    c, env = brick, brick.env
    s = c.fresh(2)
    # robot 0: brick 1 was picked up and falls from 15 cm (lands at ~1.7 m/s); robot 1: untouched
    hx, hy = (float(v) for v in env.brick_home[1, :2])
    s = _set_brick(env, s, 0, 1, (hx, hy, float(env.brick_rest_z[1]) + 0.15), picked=1.0)
    s = s.replace(info={**s.info, "attempts": s.info["attempts"].at[0].set(1.0)})  # its pick was counted
    s, rew, units, errors = _run(c, s, 40)
    m = s.metrics
    assert float(m["errors"][0]) == 1.0 and float(m["units"][0]) == 0.0
    assert float(m["attempts"][0]) == 1.0 and float(m["error_rate"][0]) == 1.0
    assert float(m["errors"][1]) == 0.0 and float(m["attempts"][1]) == 0.0
    # rework costs c_a in the dense money reward, on the step of the error
    k = int(np.argmax(errors[:, 0] >= 1))
    ca, ms = float(c.params.econ.damage_cost), float(c.params.money_scale)
    assert rew[k, 0] == pytest.approx(-ca * ms, abs=_max_shaping(c.params))
    # the brick went back to its pallet spot
    pos = np.asarray(s.pipeline_state.qpos[0, int(env.object_qpos[1]) : int(env.object_qpos[1]) + 3])
    assert abs(pos[2] - float(env.brick_rest_z[1])) < 0.01
    assert np.linalg.norm(pos[:2] - np.asarray(s.info["brick_home"][0, 1, :2])) < 0.01
    np.testing.assert_allclose(np.asarray(m["work_seconds"]), 40 * env.dt, rtol=1e-6)


def test_laying_needs_mortar_and_tolerance(brick):
    """A mortared brick resting square on a free target is a unit; turned out of tolerance, or
    without mortar, it is an error (rework, back to the pallet)."""
    c, env = brick, brick.env
    mt = float(c.params.mortar_time)
    z = float(env.brick_rest_z[0]) + 0.0005
    s = c.fresh(3)
    (x0, y0), (x1, y1), (x2, y2) = (tuple(float(v) for v in env.slots[i, :2]) for i in range(3))
    # robot 0: brick 0 mortared, 5 mm off and 0.03 rad turned on target 0 -> unit;
    #          brick 2 mortared but turned 0.5 rad on target 2 -> error
    s = _set_brick(env, s, 0, 0, (x0 + 0.005, y0, z), yaw=0.03, mortar_time=mt + 1.0, picked=1.0)
    s = _set_brick(env, s, 0, 2, (x2, y2, z), yaw=0.5, mortar_time=mt + 1.0, picked=1.0)
    # robot 1: brick 0 square on target 1 but never mortared -> error; brick 1 mortared and
    # 4 cm off target 0 (inside the wall zone, outside the 2 cm tolerance) -> error
    s = _set_brick(env, s, 1, 0, (x1, y1, z), mortar_time=0.0, picked=1.0)
    s = _set_brick(env, s, 1, 1, (x0 + 0.04, y0, z), mortar_time=mt + 1.0, picked=1.0)
    s, rew, units, errors = _run(c, s, 30)
    m = s.metrics
    assert float(m["units"][0]) == 1.0 and float(m["errors"][0]) == 1.0
    assert float(m["units"][1]) == 0.0 and float(m["errors"][1]) == 2.0
    # the laid brick stays in the course and fills target 0; the reworked ones went home
    assert float(s.info["laid"][0, 0]) == 1.0 and float(s.info["slot_filled"][0, 0]) == 1.0
    assert float(s.info["laid"][0, 2]) == 0.0 and float(s.info["slot_filled"][0, 2]) == 0.0
    # dense money on the judging step: +p per unit, -c_a per error, times money_scale
    p, ca, ms = float(c.params.econ.price_per_unit), float(c.params.econ.damage_cost), float(c.params.money_scale)
    du, de = np.diff(units, axis=0, prepend=0.0), np.diff(errors, axis=0, prepend=0.0)
    for r in range(BATCH):
        for k in np.nonzero((du[:, r] > 0) | (de[:, r] > 0))[0]:
            assert rew[k, r] == pytest.approx((p * du[k, r] - ca * de[k, r]) * ms, abs=_max_shaping(c.params))
    assert float(m["mp"][0]) == pytest.approx(3600.0 / float(m["work_seconds"][0]), rel=1e-5)


def _expert_rollout(c, seconds: float):
    """Both robots (seed 11) run the expert on the shared compiled step for ``seconds``.

    Returns:
      (final state, its metrics, units [T, B], errors [T, B]).
    """
    s = c.fresh(11)
    units, errors = [], []
    for _ in range(int(round(seconds / c.env.dt))):
        s = c.step(s, c.expert(s, c.params), c.params)
        units.append(s.metrics["units"])  # device arrays: no host sync inside the loop
        errors.append(s.metrics["errors"])
    return s, s.metrics, np.asarray(jnp.stack(units)), np.asarray(jnp.stack(errors))


@pytest.fixture(scope="module")
def expert_run(brick):
    """The first 110 s of simulated time (two cycles)."""
    return _expert_rollout(brick, 110.0)


@pytest.fixture(scope="module")
def expert_episode(brick):
    """One whole default episode (300 s); ends on the auto-reset step."""
    return _expert_rollout(brick, brick.env.episode_length * brick.env.dt)


def test_expert_lays_bricks_at_human_pace_without_errors(brick, expert_run):
    """No errors in the first 110 s, and the expert's steady cycle (time between its first and
    second unit) is an MP within 0.8-1.5x MPh."""
    s, _, units, errors = expert_run
    env = brick.env
    assert np.all(errors[-1] == 0), errors[-1]
    human = float(brick.params.econ.human_mp)
    for r in range(BATCH):
        assert units[-1, r] >= 2, f"robot {r}: only {units[-1, r]} units in 110 s"
        t1 = int(np.argmax(units[:, r] >= 1))
        t2 = int(np.argmax(units[:, r] >= 2))
        mp = 3600.0 / ((t2 - t1) * env.dt)
        assert 0.8 * human <= mp <= 1.5 * human, f"robot {r}: {mp:.1f} bricks/h"
    assert np.all(np.asarray(s.info["attempts"]) >= units[-1])
    assert np.all(np.asarray(s.info["unstable_resets"]) == 0)


@pytest.mark.slow
def test_expert_default_episode_matches_human_mp(brick, expert_episode):
    """Issue point 5 at DEFAULT settings (ee_delta, mortar 40 s, 300 s episode), two robots:
    the whole-episode MPr within 0.8-1.5x MPh and e <= 5%. On the shared compiled step (no extra
    compile), but 7500 dispatched steps took 333 s on the shared 2-core machine: slow-marked."""
    s, final, units, errors = expert_episode
    env = brick.env
    human = float(brick.params.econ.human_mp)
    mp, err = np.asarray(final["mp"]), np.asarray(final["error_rate"])
    assert np.all((mp >= 0.8 * human) & (mp <= 1.5 * human)), mp
    assert np.all(err <= 0.05), err
    np.testing.assert_array_equal(np.asarray(s.done), 1.0)  # the episode ended on its last step
    np.testing.assert_allclose(np.asarray(final["work_seconds"]), env.episode_length * env.dt, rtol=1e-6)
    np.testing.assert_allclose(mp, units[-1] * 3600.0 / (env.episode_length * env.dt), rtol=1e-5)
    assert np.all(np.asarray(final["attempts"]) >= units[-1])
    np.testing.assert_array_equal(np.asarray(s.info["unstable_resets"]), 0)
    np.testing.assert_allclose(np.asarray(s.info["prev_mp"]), mp, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("action_mode", ["ee_delta", "joint"])
def test_expert_full_episode_economics(action_mode):
    """A whole default episode (300 s) in each action mode, one compiled scan: MPr within
    0.8-1.5x MPh and e <= 5% (the default-suite test above covers ee_delta with the shared step)."""
    from envs.experts import make_expert, rollout

    env = envs.make("bricklaying", action_mode=action_mode)
    policy = make_expert(env)
    run = jax.jit(jax.vmap(lambda k: rollout(env, policy, env.reset(k), env.episode_length)[0].metrics))
    m = run(jax.random.split(jax.random.PRNGKey(5), BATCH))
    human = float(env.default_params.econ.human_mp)
    mp, err = np.asarray(m["mp"]), np.asarray(m["error_rate"])
    assert np.all(mp >= 0.8 * human) and np.all(mp <= 1.5 * human), mp
    assert np.all(err <= 0.05), err
