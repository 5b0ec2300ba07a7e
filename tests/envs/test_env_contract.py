"""The env contract (envs/contract.py) and the reward plug-in on every task, the point task included."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.experts import make_expert
from envs.point import PointDeliver
from vpjax import economics as E


def bonus_reward(mp, prev_mp, err, params):
    """The built-in reward plus 1 on the last step, and an extra term the metrics must carry."""
    terms = E.reward_terms(mp, prev_mp, err, params)
    return {**terms, "total": terms["total"] + 1.0, "bonus": 0.5 * mp / params.human_mp}


TASKS = envs.registered() + ("point",)
# the plug-in runs in MjxTaskEnv.step, shared by the MJX tasks: bricklaying's own compile (165 s in CI)
# is in the slow set, dishwashing and the point task stay in the default suite
PLUGIN_TASKS = [pytest.param(n, marks=pytest.mark.slow) if n == "bricklaying" else n for n in TASKS]


def _make(name: str, **kw):
    return PointDeliver(episode_length=2, **kw) if name == "point" else envs.make(name, episode_length=2, **kw)


def test_envs_follow_the_protocol_and_experts_are_registered_with_their_tasks():
    assert isinstance(PointDeliver(), envs.Env)
    for name in envs.registered():
        env = envs.make(name)
        assert isinstance(env, envs.Env)
        assert env.metric_names[: len(E.METRIC_NAMES)] == E.METRIC_NAMES
        assert callable(make_expert(env))
    assert callable(make_expert(PointDeliver()))  # an env from MODULE:FACTORY may bring its own expert
    with pytest.raises(ValueError, match="no scripted expert for env 'crane'; experts exist for"):
        make_expert(SimpleNamespace(name="crane"))  # neither registered nor bringing one


def test_reward_fn_with_a_non_scalar_term_is_refused_at_construction():
    def wide(mp, prev_mp, err, params):
        return {**E.reward_terms(mp, prev_mp, err, params), "total": jnp.zeros((3,))}

    with pytest.raises(TypeError, match="'wide': term 'total' must be a scalar float"):
        PointDeliver(reward_fn=wide)
    with pytest.raises(TypeError, match="'wide': term 'total'"):
        envs.make("dishwashing", reward_fn=wide)


@pytest.mark.parametrize("name", PLUGIN_TASKS)
def test_reward_plugin_changes_the_reward_and_logs_its_extra_terms(name):
    env = _make(name, reward_fn=bonus_reward)
    assert "reward_extra_bonus" in env.metric_names
    step = jax.jit(env.step)
    s = env.reset(jax.random.PRNGKey(0))
    assert set(s.metrics) == set(env.metric_names)
    a = jnp.zeros((env.action_size,))
    s = step(step(s, a), a)  # the episode's last step: the episode reward is paid
    m = {k: float(v) for k, v in s.metrics.items()}
    assert set(m) == set(env.metric_names) and float(s.done) == 1.0
    builtin = float(E.reward_terms(m["mp"], 0.0, m["error_rate"], env.default_params.econ)["total"])
    assert m["reward_episode"] == pytest.approx(builtin + 1.0, rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(float(s.reward), m["reward_money"] + m["reward_shaping"] + builtin + 1.0,
                               rtol=1e-5, atol=1e-5)
    assert m["reward_extra_bonus"] == pytest.approx(0.5 * m["mp"] / float(env.default_params.econ.human_mp),
                                                    rel=1e-6, abs=1e-7)
