"""DAgger on a short dishwashing setting: the student goes from racking nothing to racking dishes alone."""

import jax
import numpy as np

from envs.batching import vmap_robots
from envs.dishwashing import Dishwashing, DishwashingParams
from envs.experts import make_expert
from train.acting import curriculum_end
from train.config import PPOConfig
from train.imitation import ImitationConfig, make_imitation
from train.imitation_run import run_imitation


def test_dagger_raises_mp_from_zero_on_a_short_dishwashing_setting():
    # 16 s episodes and 2 s of washing: the expert racks ~2 dishes per episode (a cycle of ~8 s)
    env = Dishwashing(DishwashingParams.create(washing_time=2.0), episode_seconds=16.0)
    params = curriculum_end(env.default_params)
    expert = make_expert(env)
    ppo_cfg = PPOConfig(policy_hidden=(256, 256, 256), value_hidden=(32,))
    cfg = ImitationConfig(rounds=5, num_envs=16, beta_schedule=(1.0, 0.5, 0.0), sgd_steps=1500, batch_size=512,
                          balance=0.0, num_eval_envs=0, seed=3)
    im = make_imitation(cfg.replace(num_eval_envs=8), ppo_cfg, env, expert)
    evaluate = jax.jit(im.evaluate)
    held_out = jax.random.PRNGKey(2024)  # scenes no round collects on (those come from PRNGKey(cfg.seed))
    start = jax.jit(im.init)(jax.random.PRNGKey(0))
    before = jax.device_get(evaluate(start.params, start.norm, held_out, params))
    assert float(before["units"]) == 0.0 and float(before["mp"]) == 0.0

    result = run_imitation(cfg, ppo_cfg, env, params, expert, progress=False)
    after = jax.device_get(evaluate(result.state.params, result.state.norm, held_out, params))
    # the student alone, deterministic, on unseen scenes: dishes washed and racked
    assert float(after["mp"]) > 0.0 and float(after["units"]) > 0.0, jax.tree.map(np.asarray, after)
