"""Shared fixtures for the trainer tests: the toy contract env and one small PPO config.

Every test that trains uses :data:`SMALL` (or a documented variant) and passes the session's
:class:`train.runner.Programs` for it, so that its compiled functions are shared across tests.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from point_env import PointDeliver  # noqa: E402

from train.config import PPOConfig  # noqa: E402

SMALL = PPOConfig(num_envs=64, unroll_length=10, num_minibatches=4, update_epochs=4, learning_rate=1e-3,
                  discount=0.95, total_timesteps=64 * 10 * 5 * 8, eval_every=5, num_eval_envs=32,
                  policy_hidden=(32, 32), value_hidden=(64, 64), checkpoint_every=1, keep_checkpoints=5)


@pytest.fixture(scope="session")
def point_env():
    return PointDeliver()


@pytest.fixture(scope="session")
def small_cfg():
    return SMALL


@pytest.fixture(scope="session")
def programs(point_env, small_cfg):
    """The compiled programs of :data:`SMALL` on the toy env."""
    from train.runner import Programs

    return Programs(small_cfg, point_env)


@pytest.fixture(scope="session")
def learning_run(point_env, small_cfg, programs, tmp_path_factory):
    """One 8-chunk training run on the toy env (shared by the learning and CSV tests)."""
    from train.runner import RunConfig, run_training

    out = tmp_path_factory.mktemp("learn")
    run = RunConfig(out_dir=out, progress=False, run_config={"env": "point"})
    return run_training(small_cfg, point_env, run=run, programs=programs), out
