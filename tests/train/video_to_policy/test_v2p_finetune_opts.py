"""PPO fine-tuning options: frozen observation statistics (cheap) and the critic warm-up (slow: a PPO compile)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train.networks import RunningStats
from train.video_to_policy import finetune as ft


def test_freeze_stats_keeps_mean_and_std_under_updates():
    x = jax.random.normal(jax.random.PRNGKey(0), (320, 5)) * 2.0 + 3.0
    norm = RunningStats.init(5).update(x)
    frozen = ft.freeze_stats(norm)
    np.testing.assert_allclose(frozen.mean, norm.mean, rtol=1e-6)
    np.testing.assert_allclose(frozen.std, norm.std, rtol=1e-3)
    far = jnp.full((256, 5), 100.0)  # a PPO batch far from the teacher's states
    moved, kept = jax.jit(lambda n: n.update(far))(norm), jax.jit(lambda n: n.update(far))(frozen)
    assert float(jnp.max(jnp.abs(moved.mean - norm.mean))) > 10.0  # the plain statistics follow PPO's data
    assert float(jnp.max(jnp.abs(kept.mean - norm.mean))) < 0.01  # the frozen ones stay put
    np.testing.assert_allclose(kept.std, norm.std, rtol=0.05)


@pytest.mark.slow
def test_critic_warmup_trains_only_the_value_function():
    from train.config import PPOConfig
    from train.video_to_policy import sim

    task = sim.get_task("point", episode_length=20)
    cfg = PPOConfig(num_envs=8, unroll_length=4, num_minibatches=2, update_epochs=1, policy_hidden=(16,),
                    value_hidden=(16,), learning_rate=1e-3, total_timesteps=8 * 4 * 4, eval_every=2, num_eval_envs=2)
    from train.networks import make_networks

    pnet, _ = make_networks(task.env.observation_size, task.action_size, cfg.policy_hidden, cfg.value_hidden,
                            cfg.activation)
    init = pnet.init(jax.random.PRNGKey(1), jnp.zeros((1, task.env.observation_size)))
    diff = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    key = jax.random.PRNGKey(2)
    s0, _ = ft.finetune(task, cfg, init, None, key, chunks=0)  # nothing run: the initial state
    s_warm, ev_warm = ft.finetune(task, cfg, init, None, key, chunks=0, critic_warmup=1)
    assert ev_warm == [] and int(s_warm.iteration) == cfg.eval_every
    assert diff(s_warm.params["policy"], init) == 0.0  # the warm-up leaves the cloned policy as it was
    assert diff(s_warm.params["value"], s0.params["value"]) > 0  # ... and trains the critic
    s_ppo, ev = ft.finetune(task, cfg, init, None, key, chunks=1, critic_warmup=1)
    assert len(ev) == 1 and diff(s_ppo.params["policy"], init) > 0  # PPO proper then moves the policy
    with pytest.raises(ValueError, match="critic_warmup"):
        ft.finetune(task, cfg, None, None, key, chunks=1, critic_warmup=1)
