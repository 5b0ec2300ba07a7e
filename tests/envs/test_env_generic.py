"""Tests every registered env must pass (generated over ``envs.registered()``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from conftest import BATCH, compile_count, compiled_env

import envs
from envs.wrappers import CACHE_KEY
from vpjax import economics

NAMES = envs.registered()


def test_registry_lists_dishwashing_and_rejects_unknown():
    assert "dishwashing" in NAMES
    with pytest.raises(ValueError, match="unknown env 'nope'"):
        envs.make("nope")
    with pytest.raises(ValueError, match="not_a_param"):
        envs.make("dishwashing", not_a_param=1.0)
    with pytest.raises(ValueError, match="action_mode"):
        envs.make("dishwashing", action_mode="teleport")


@pytest.mark.parametrize("name", NAMES)
def test_make_splits_constructor_args_and_params(name):
    env = envs.make(name, action_mode="joint", arms="both", money_scale=3.0, econ={"price_per_unit": 0.5})
    assert env.action_mode == "joint" and env.arms == "both"
    assert env.action_size == 15  # waist + 2 x (6 arm joints + 1 gripper)
    assert float(env.default_params.money_scale) == 3.0
    assert float(env.default_params.econ.price_per_unit) == 0.5
    right = envs.make(name)  # default: ee_delta, right arm
    assert right.action_size == 4
    assert right.observation_size > 0


def _pairs(m):
    """{(geom name, geom name): (friction, solref, solimp, condim)} of a model's contact pairs."""
    name = lambda g: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, int(g))  # noqa: E731
    return {
        tuple(sorted((name(a), name(b)))): (tuple(m.pair_friction[i]), tuple(m.pair_solref[i]), tuple(m.pair_solimp[i]), int(m.pair_dim[i]))
        for i, (a, b) in enumerate(zip(m.pair_geom1, m.pair_geom2))
    }


@pytest.mark.parametrize("name", NAMES)
def test_single_arm_model_drops_only_the_idle_fingers_pairs(name):
    both = _pairs(envs.make(name, arms="both").mj_model)
    for arms, idle in (("right", "left_finger"), ("left", "right_finger")):
        one = _pairs(envs.make(name, arms=arms).mj_model)
        dropped = set(both) - set(one)
        assert dropped and all(any(g.startswith(idle) for g in pair) for pair in dropped), dropped
        assert not any(g.startswith(idle) for pair in one for g in pair)
        assert all(both[k] == v for k, v in one.items())  # the kept pairs are unchanged
    # 19 -> 11 in both scenes: 3 objects x 2 idle fingers + 2 idle fingers vs the surface
    assert len(both) - len(_pairs(envs.make(name).mj_model)) == 8
    assert len(_pairs(envs.make(name, idle_arm_contacts=True).mj_model)) == len(both)


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_reset_step_do_not_recompile(name):
    c = compiled_env(name)
    s = c.fresh(0)
    a = jnp.zeros((BATCH, c.env.action_size))
    s = c.step(s, a, c.params)  # compiles
    jax.block_until_ready(s)
    # second call, new keys, new param *values* (same structure and dtypes): no recompilation.
    # Inputs are prepared first: eager array ops compile small kernels of their own.
    keys = jax.random.split(jax.random.PRNGKey(1), BATCH)
    p2 = c.params.replace(
        money_scale=c.params.money_scale * 2.0,
        econ=c.params.econ.replace(price_per_unit=jnp.full_like(c.params.econ.price_per_unit, 0.7)),
    )
    a2 = a + 0.5
    jax.block_until_ready((keys, p2, a2))
    before = compile_count()
    s2 = c.reset(keys, c.params)
    s2 = c.step(s2, a, p2)
    s2 = c.step(s2, a2, c.params)
    jax.block_until_ready(s2)
    assert compile_count() == before
    assert s2.obs.shape == (BATCH, c.env.observation_size)
    assert s2.reward.shape == (BATCH,) and s2.done.shape == (BATCH,)
    assert set(s2.metrics) == set(c.env.metric_names)
    assert all(v.shape == (BATCH,) and v.dtype == jnp.float32 for v in s2.metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_1000_random_steps_stay_finite_and_count_time(name):
    c = compiled_env(name)
    s = c.fresh(2)
    key = jax.random.PRNGKey(3)
    finite = jnp.ones((BATCH,), bool)
    n = 1000
    for _ in range(n):
        key, k = jax.random.split(key)
        # actions beyond [-1, 1] must be clipped, not break the physics
        a = jax.random.uniform(k, (BATCH, c.env.action_size), minval=-1.5, maxval=1.5)
        s = c.step(s, a, c.params)
        finite = finite & jnp.all(jnp.isfinite(s.obs), -1) & jnp.isfinite(s.reward)
    assert bool(jnp.all(finite))
    for k, v in s.metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), k
    assert n < c.env.episode_length  # no episode boundary in between
    np.testing.assert_array_equal(np.asarray(s.info["steps"]), n)
    np.testing.assert_allclose(np.asarray(s.info["work_seconds"]), n * c.env.dt, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s.metrics["work_seconds"]), n * c.env.dt, rtol=1e-6)
    assert np.all(np.asarray(s.metrics["unstable"]) == 0)


@pytest.mark.parametrize("name", NAMES)
def test_autoreset_ends_episode_and_carries_prev_mp(name):
    c = compiled_env(name)
    env = c.env
    s = c.fresh(4)
    L = env.episode_length
    # jump to the episode's last step with 3 units / 1 error / 4 attempts already counted
    info = {
        **s.info,
        "t": jnp.full((BATCH,), L - 1, jnp.int32),
        "steps": jnp.full((BATCH,), L - 1, s.info["steps"].dtype),
        "units": jnp.full((BATCH,), 3.0, jnp.float32),  # explicit dtypes: weak types would recompile
        "errors": jnp.full((BATCH,), 1.0, jnp.float32),
        "attempts": jnp.full((BATCH,), 4.0, jnp.float32),
        "prev_mp": jnp.array([0.0, 30.0], jnp.float32),
    }
    s = s.replace(info=info)
    out = c.step(s, jnp.zeros((BATCH, env.action_size)), c.params)
    hours = L * env.dt / 3600.0
    mp = np.asarray(out.metrics["units"]) / hours
    np.testing.assert_array_equal(np.asarray(out.done), 1.0)
    assert np.all(np.asarray(out.metrics["units"]) >= 3.0)
    np.testing.assert_allclose(np.asarray(out.metrics["work_seconds"]), L * env.dt, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out.metrics["mp"]), mp, rtol=1e-5)
    # the episode part of the reward is the seed's r(t) with this robot's previous MP
    err = np.asarray(out.metrics["error_rate"])
    expect = np.asarray(economics.reward_terms(jnp.asarray(mp), jnp.array([0.0, 30.0]), jnp.asarray(err), c.params.econ)["total"])
    np.testing.assert_allclose(np.asarray(out.metrics["reward_episode"]), expect, rtol=1e-5, atol=1e-6)
    # fresh episode, per-robot memory carried over
    np.testing.assert_array_equal(np.asarray(out.info["t"]), 0)
    np.testing.assert_array_equal(np.asarray(out.info["units"]), 0.0)
    np.testing.assert_allclose(np.asarray(out.info["prev_mp"]), mp, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(out.info["episodes"]), 1)
    assert not np.array_equal(np.asarray(out.info["rng"]), np.asarray(s.info["rng"]))
    # AutoReset's default "cached" mode: the new episode starts from each robot's first state
    first = s.info[CACHE_KEY]
    np.testing.assert_array_equal(np.asarray(out.pipeline_state.qpos), np.asarray(first["pipeline_state"].qpos))
    np.testing.assert_array_equal(np.asarray(out.obs), np.asarray(first["obs"]))
    assert set(out.info) == set(s.info)
    jax.tree.map(np.testing.assert_array_equal, out.info[CACHE_KEY], first)


@pytest.mark.parametrize("name", NAMES)
def test_instability_guard_resets_only_the_bad_robot(name):
    c = compiled_env(name)
    s = c.fresh(5)
    data = s.pipeline_state
    qvel = data.qvel.at[0].set(jnp.nan)  # robot 0 explodes, robot 1 is fine
    s = s.replace(pipeline_state=data.replace(qvel=qvel))
    out = c.step(s, jnp.zeros((BATCH, c.env.action_size)), c.params)
    np.testing.assert_array_equal(np.asarray(out.metrics["unstable"]), [1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(out.done), [1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(out.info["unstable_resets"]), [1, 0])
    assert np.all(np.isfinite(np.asarray(out.obs))) and np.all(np.isfinite(np.asarray(out.reward)))
    assert np.all(np.isfinite(np.asarray(out.pipeline_state.qpos)))
    out2 = c.step(out, jnp.zeros((BATCH, c.env.action_size)), c.params)
    assert np.all(np.asarray(out2.metrics["unstable"]) == 0)


@pytest.mark.parametrize("name", NAMES)
def test_brax_training_wrap_accepts_the_env_state(name):
    """brax's ``wrappers.training.wrap`` (vmap, episode, auto-reset) traces our reset/step.

    Cheap default-suite check (``jax.eval_shape`` traces without compiling: seconds instead of a
    multi-minute MJX compile): brax's wrappers accept our State, find ``info['steps']``/``metrics``
    and keep shapes; the slow test below runs the wrapped env for real.
    """
    from brax.envs.wrappers import training

    env = envs.make(name)
    wrapped = training.wrap(env, episode_length=50)
    state = jax.eval_shape(wrapped.reset, jax.random.split(jax.random.PRNGKey(0), BATCH))
    out = jax.eval_shape(wrapped.step, state, jax.ShapeDtypeStruct((BATCH, env.action_size), jnp.float32))
    assert out.obs.shape == (BATCH, env.observation_size)
    assert out.reward.shape == (BATCH,) and out.done.shape == (BATCH,)
    assert set(out.info["episode_metrics"]) >= set(env.metric_names)
    assert "first_pipeline_state" in out.info and "truncation" in out.info
    assert jax.tree.structure(out.pipeline_state) == jax.tree.structure(state.pipeline_state)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_brax_training_wrap_drives_the_env(name):
    from brax.envs.wrappers import training

    env = envs.make(name)
    wrapped = training.wrap(env, episode_length=50)
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(0), BATCH))
    step = jax.jit(wrapped.step)
    for _ in range(3):
        state = step(state, jnp.zeros((BATCH, env.action_size)))
    assert state.obs.shape == (BATCH, env.observation_size)
    assert np.all(np.isfinite(np.asarray(state.obs)))
    assert "episode_metrics" in state.info and "units" in state.info["episode_metrics"]
