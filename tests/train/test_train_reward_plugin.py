"""--reward: built-ins and user MODULE:FUNCTION reach the jitted env.step; bad specs fail clearly."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from point_env import PointDeliver

from train.config import PPOConfig
from train.acting import robot_params
from train.rewards import BUILTIN, resolve_reward
from vpjax import economics as E

PLUGIN = Path(__file__).with_name("my_reward_plugin.py")


def test_resolve_builtin_and_user():
    assert resolve_reward(None) is None and resolve_reward("seed") is None
    assert resolve_reward("one_sided_wage") is BUILTIN["one_sided_wage"]
    fn = resolve_reward(f"{PLUGIN}:level_reward")
    assert fn.__name__ == "level_reward"
    with pytest.raises(ValueError, match="has no function 'nope'"):
        resolve_reward(f"{PLUGIN}:nope")
    with pytest.raises(TypeError, match="lacks keys"):
        resolve_reward(f"{PLUGIN}:broken_reward")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        resolve_reward("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="not a built-in"):
        resolve_reward("fancy")


@pytest.mark.parametrize("spec", ["plugin", "one_sided_wage"])
def test_plugin_reward_paid_on_last_step(spec):
    fn = resolve_reward(f"{PLUGIN}:level_reward" if spec == "plugin" else spec)
    env = PointDeliver(episode_length=6, reward_fn=fn)
    econ = env.default_params.econ

    @jax.jit
    def episode(key):
        s = env.reset(key)
        def body(s, _):
            s = env.step(s, jnp.array([0.5, 0.5]))
            return s, (s.metrics["reward_episode"], s.metrics["mp"], s.metrics["error_rate"], s.done)
        return jax.lax.scan(body, s, None, length=6)[1]

    r_ep, mp, err, done = jax.device_get(episode(jax.random.PRNGKey(0)))
    assert done[-1] == 1 and done[:-1].sum() == 0
    expect = fn(mp[-1], 0.0, err[-1], econ)["total"]
    np.testing.assert_allclose(r_ep[-1], expect, rtol=1e-6)
    assert np.all(r_ep[:-1] == 0)


def test_robot_params_schedule_per_robot():
    env = PointDeliver()
    episodes = jnp.array([0.0, 25.0, 50.0, 500.0])
    p, axes = robot_params(env.default_params, episodes, 0.0)
    a, g = E.schedule(episodes, env.default_params.econ)
    np.testing.assert_allclose(p.econ.alpha, a)
    np.testing.assert_allclose(p.econ.gamma, g)
    assert axes.econ.alpha == 0 and axes.econ.beta is None
    p2, axes2 = robot_params(env.default_params, episodes, 100.0)
    np.testing.assert_allclose(p2.shaping_weight, [1.0, 0.75, 0.5, 0.0])
    assert axes2.shaping_weight == 0


def test_ppo_config_validation():
    with pytest.raises(ValueError, match="ppo.num_minibatches"):
        PPOConfig(num_envs=10, unroll_length=3, num_minibatches=4)
    with pytest.raises(ValueError, match="ppo.lr_schedule"):
        PPOConfig(lr_schedule="exp")
    cfg = PPOConfig.from_mapping({"num_envs": 64, "policy_hidden": [8, 8]}, "training.yaml")
    assert cfg.policy_hidden == (8, 8) and cfg.num_envs == 64
    with pytest.raises(ValueError, match="nmu_envs"):
        PPOConfig.from_mapping({"nmu_envs": 3}, "training.yaml")
