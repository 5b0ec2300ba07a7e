"""Slow: a short PPO run on the real dishwashing env raises its shaping reward (learning evidence on MJX)."""

import numpy as np
import pytest

from train.config import PPOConfig


@pytest.mark.slow
def test_dishwashing_shaping_return_rises():
    import envs

    from train.runner import RunConfig, run_training

    env = envs.make("dishwashing", episode_length=200)
    cfg = PPOConfig(num_envs=32, unroll_length=10, num_minibatches=4, update_epochs=4, learning_rate=1e-3,
                    total_timesteps=32 * 10 * 10 * 6, eval_every=10, num_eval_envs=2, eval_steps=20,
                    policy_hidden=(64, 64), value_hidden=(64, 64))
    result = run_training(cfg, env, run=RunConfig(progress=False))
    shaping = np.array([r["step_shaping"] for r in result.rows])
    assert np.all(np.isfinite(shaping))
    assert shaping[-2:].mean() > shaping[:2].mean() * 1.2 + 1e-4, shaping
