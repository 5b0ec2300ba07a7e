"""envs.wrappers.AutoReset on a tiny pure-JAX env with the vpjax env API (compiles in seconds).

The MJX envs run the same wrapper in tests/envs/test_env_generic.py; here every branch of it
(cached / fresh reset, redrawn or kept DR multipliers, a state without a cache) is checked exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.contract import State
from envs.wrappers import CACHE_KEY, AutoReset
from vpjax import economics

B = 3  # robots


class ToyEnv:
    """Counts one unit per step; episode of ``L`` steps; ``pipeline_state`` is a small pytree."""

    L = 4
    dt = 0.5
    action_size = 1
    observation_size = 2
    default_params = {"dr_low": jnp.float32(0.5), "dr_high": jnp.float32(1.5)}

    def _sample_dr(self, key, params):
        return {"mass_scale": jax.random.uniform(key, (2,), minval=params["dr_low"], maxval=params["dr_high"])}

    def reset(self, key, params=None):
        params = self.default_params if params is None else params
        k_pos, k_dr, k_rng = jax.random.split(key, 3)
        pos = jax.random.uniform(k_pos, (3,))
        z = jnp.zeros((), jnp.float32)
        info = {
            "units": z, "errors": z, "attempts": z, "work_seconds": z,
            "steps": jnp.zeros((), jnp.int32), "t": jnp.zeros((), jnp.int32),
            "prev_mp": z, "episodes": jnp.zeros((), jnp.int32), "unstable_resets": jnp.zeros((), jnp.int32),
            "rng": k_rng, "dr": self._sample_dr(k_dr, params), "home": pos,
        }
        return State(pipeline_state={"qpos": pos, "qvel": jnp.zeros(3)}, obs=pos[:2], reward=z, done=z,
                     metrics={"units": z}, info=info)

    def step(self, state, action, params=None):
        info = state.info
        t = info["t"] + 1
        units = info["units"] + 1.0
        qpos = state.pipeline_state["qpos"] + action[0]
        new_info = {**info, "t": t, "steps": info["steps"] + 1, "units": units, "attempts": units,
                    "work_seconds": t.astype(jnp.float32) * self.dt,
                    "unstable_resets": info["unstable_resets"] + (action[0] > 5.0).astype(jnp.int32)}
        return state.replace(pipeline_state={"qpos": qpos, "qvel": state.pipeline_state["qvel"] + 1.0},
                             obs=qpos[:2], reward=units, done=(t == self.L).astype(jnp.float32),
                             metrics={"units": units}, info=new_info)


def _compiled(auto):
    reset = jax.jit(jax.vmap(auto.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(auto.step, in_axes=(0, 0, None)))
    return reset, step


def _run_episode(auto, seed=0):
    env = auto.env
    reset, step = _compiled(auto)
    s0 = reset(jax.random.split(jax.random.PRNGKey(seed), B), env.default_params)
    s = s0
    a = jnp.full((B, 1), 0.25)
    for _ in range(env.L - 1):
        s = step(s, a, env.default_params)
    last = step(s, a, env.default_params)
    return s0, s, last


@pytest.mark.parametrize("resample_dr", [True, False])
def test_cached_reset_restarts_from_the_first_state(resample_dr):
    env = ToyEnv()
    s0, before, out = _run_episode(AutoReset(env, resample_dr=resample_dr))
    assert CACHE_KEY in s0.info and CACHE_KEY in out.info
    np.testing.assert_array_equal(np.asarray(before.done), 0.0)
    # the finishing step's reward/done/metrics, the first state's obs/physics/task info
    np.testing.assert_array_equal(np.asarray(out.done), 1.0)
    np.testing.assert_allclose(np.asarray(out.metrics["units"]), env.L)
    np.testing.assert_allclose(np.asarray(out.reward), env.L)
    np.testing.assert_allclose(np.asarray(out.pipeline_state["qpos"]), np.asarray(s0.pipeline_state["qpos"]))
    np.testing.assert_allclose(np.asarray(out.pipeline_state["qvel"]), 0.0)
    np.testing.assert_allclose(np.asarray(out.obs), np.asarray(s0.obs))
    np.testing.assert_allclose(np.asarray(out.info["home"]), np.asarray(s0.info["home"]))
    for k in ("units", "attempts", "work_seconds", "steps", "t"):
        np.testing.assert_array_equal(np.asarray(out.info[k]), 0, err_msg=k)
    # per-robot memory
    mp = economics.marginal_product(jnp.float32(env.L), jnp.float32(env.L * env.dt))
    np.testing.assert_allclose(np.asarray(out.info["prev_mp"]), float(mp), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out.info["episodes"]), 1)
    # the rng advanced on every step, and differs across robots
    rngs = [np.asarray(x.info["rng"]) for x in (s0, before, out)]
    assert not np.array_equal(rngs[0], rngs[1]) and not np.array_equal(rngs[1], rngs[2])
    assert len({tuple(r) for r in rngs[2]}) == B
    dr0, dr1 = np.asarray(s0.info["dr"]["mass_scale"]), np.asarray(out.info["dr"]["mass_scale"])
    if resample_dr:  # physical multipliers redrawn per episode, within the ranges
        assert not np.allclose(dr0, dr1)
        assert np.all((dr1 >= 0.5) & (dr1 <= 1.5))
    else:
        np.testing.assert_array_equal(dr0, dr1)
    # the cache itself never changes
    jax.tree.map(np.testing.assert_array_equal, s0.info[CACHE_KEY], out.info[CACHE_KEY])


def test_continuing_robots_are_untouched_and_unstable_count_is_kept():
    env = ToyEnv()
    auto = AutoReset(env)
    reset, step = _compiled(auto)
    s = reset(jax.random.split(jax.random.PRNGKey(1), B), env.default_params)
    # robot 0 is one step from the end and had an instability before; the others are at t = 0
    info = dict(s.info)
    info["t"] = info["t"].at[0].set(env.L - 1)
    info["unstable_resets"] = info["unstable_resets"].at[0].set(2)
    s = s.replace(info=info)
    a = jnp.zeros((B, 1)).at[1, 0].set(0.5)
    out = step(s, a, env.default_params)
    np.testing.assert_array_equal(np.asarray(out.done), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(out.info["unstable_resets"]), [2, 0, 0])
    np.testing.assert_array_equal(np.asarray(out.info["t"]), [0, 1, 1])
    np.testing.assert_array_equal(np.asarray(out.info["episodes"]), [1, 0, 0])
    q0, q1 = np.asarray(s.pipeline_state["qpos"]), np.asarray(out.pipeline_state["qpos"])
    np.testing.assert_allclose(q1[1], q0[1] + 0.5)  # robot 1 stepped, not reset
    np.testing.assert_allclose(q1[0], q0[0])  # robot 0 restarted from its first state


def test_fresh_mode_resets_with_a_key_from_the_rng():
    env = ToyEnv()
    auto = AutoReset(env, reset_mode="fresh")
    s0, before, out = _run_episode(auto, seed=2)
    assert CACHE_KEY not in s0.info and CACHE_KEY not in out.info
    # expected: env.reset with the second half of the split of the finishing step's rng
    rng = jax.vmap(lambda k: jax.random.split(k)[1])(before.info["rng"])
    expect = jax.vmap(env.reset, in_axes=(0, None))(rng, env.default_params)
    np.testing.assert_allclose(np.asarray(out.pipeline_state["qpos"]), np.asarray(expect.pipeline_state["qpos"]))
    np.testing.assert_allclose(np.asarray(out.info["home"]), np.asarray(expect.info["home"]))
    assert not np.allclose(np.asarray(out.info["home"]), np.asarray(s0.info["home"]))  # a new scene
    np.testing.assert_array_equal(np.asarray(out.info["episodes"]), 1)
    np.testing.assert_array_equal(np.asarray(out.info["t"]), 0)


def test_state_without_cache_falls_back_to_a_fresh_reset_inside_a_scan():
    env = ToyEnv()
    auto = AutoReset(env)  # cached mode, but the state comes from env.reset (no cache)

    @jax.jit
    def run(keys):
        s = jax.vmap(env.reset)(keys)

        def body(s, _):
            s = jax.vmap(auto.step)(s, jnp.zeros((B, 1)))
            return s, s.done

        return jax.lax.scan(body, s, None, length=2 * env.L)

    s, done = run(jax.random.split(jax.random.PRNGKey(3), B))
    assert CACHE_KEY not in s.info
    np.testing.assert_array_equal(np.asarray(done.sum(0)), 2.0)
    np.testing.assert_array_equal(np.asarray(s.info["episodes"]), 2)


def test_unknown_reset_mode_is_rejected():
    with pytest.raises(ValueError, match="reset_mode"):
        AutoReset(ToyEnv(), reset_mode="sometimes")
