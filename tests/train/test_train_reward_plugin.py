"""--reward: built-ins and user MODULE:FUNCTION reach the jitted env.step; bad specs fail clearly."""

import csv
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from point_env import PointDeliver

from train.acting import robot_params
from train.config import PPOConfig
from train.metrics_log import CSV_COLUMNS
from train.rewards import BUILTIN, resolve_reward
from train.runner import RunConfig, run_training
from vpjax import economics as E

PLUGIN = Path(__file__).with_name("my_reward_plugin.py")


def test_resolve_builtin_and_user():
    assert resolve_reward(None) is None and resolve_reward("seed") is None
    assert resolve_reward("one_sided_wage") is BUILTIN["one_sided_wage"]
    fn = resolve_reward(f"{PLUGIN}:level_reward")
    assert fn.__name__ == "level_reward"
    with pytest.raises(ValueError, match="has no function 'nope'"):
        resolve_reward(f"{PLUGIN}:nope")
    with pytest.raises(ValueError, match="'broken_reward' lacks keys"):
        resolve_reward(f"{PLUGIN}:broken_reward")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        resolve_reward("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="not a built-in"):
        resolve_reward("fancy")


@pytest.mark.parametrize("fn, term, got", [("vector_total", "total", "shape (3,)"), ("int_total", "total", "int32")])
def test_plugin_with_a_bad_term_is_refused_in_one_line(fn, term, got):
    with pytest.raises(ValueError) as info:
        resolve_reward(f"{PLUGIN}:{fn}")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("--reward "), msg
    for part in (f"'{fn}'", f"term '{term}'", got):
        assert part in msg, msg


# 2 chunks of 2 iterations on 8 robots with 6-step episodes: every iteration finishes episodes
TINY = PPOConfig(num_envs=8, unroll_length=6, num_minibatches=2, update_epochs=1, total_timesteps=8 * 6 * 2 * 2,
                 eval_every=2, num_eval_envs=0, policy_hidden=(8,), value_hidden=(8,), checkpoint_every=1)


def test_extra_terms_reach_the_training_csv_and_a_resume_keeps_its_header(tmp_path):
    env = PointDeliver(episode_length=6, reward_fn=resolve_reward(f"{PLUGIN}:logged_reward"))
    extras = ["reward_extra_parity", "reward_extra_two"]
    assert [k for k in env.metric_names if k.startswith("reward_extra_")] == extras
    first = run_training(TINY, env, run=RunConfig(out_dir=tmp_path, progress=False, max_chunks=1))
    path = tmp_path / "training_metrics.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert header == CSV_COLUMNS + extras
    resumed = run_training(TINY, env, run=RunConfig(out_dir=tmp_path, progress=False, resume=True))
    assert resumed.resumed_from == 2 and resumed.iterations == 4
    with path.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == header and [r["iteration"] for r in rows] == ["2", "4"]
    for r, mem in zip(rows, first.rows + resumed.rows):
        assert float(r["episodes_done"]) > 0
        assert float(r["reward_extra_two"]) == pytest.approx(2.0)  # the mean of a constant term is that constant
        # the parity term is averaged over the same finished episodes as the productivity_parity column
        assert np.isfinite(float(r["reward_extra_parity"]))
        assert float(r["reward_extra_parity"]) == pytest.approx(float(r["productivity_parity"]), rel=1e-5, abs=1e-7)
        assert float(r["reward_extra_two"]) == pytest.approx(mem["reward_extra_two"])


def test_extra_terms_reach_a_dagger_runs_csv_and_survive_its_resume(tmp_path):
    from envs.experts import make_expert
    from train.imitation import ImitationConfig
    from train.imitation_run import COLUMNS, run_imitation

    env = PointDeliver(episode_length=6, reward_fn=resolve_reward(f"{PLUGIN}:logged_reward"))
    cfg = ImitationConfig(rounds=3, num_envs=4, sgd_steps=4, batch_size=16, num_eval_envs=0)
    ppo = PPOConfig(policy_hidden=(8,), value_hidden=(8,))
    kw = dict(out_dir=tmp_path, progress=False, log=lambda *_: None)
    run_imitation(cfg, ppo, env, env.default_params, make_expert(env), max_rounds=2, **kw)
    run_imitation(cfg, ppo, env, env.default_params, make_expert(env), resume=True, **kw)
    with (tmp_path / "training_metrics.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS + ["reward_extra_parity", "reward_extra_two"]
    assert [r["iteration"] for r in rows] == ["1", "2", "3"]
    for r in rows:
        assert float(r["reward_extra_two"]) == pytest.approx(2.0)
        assert float(r["reward_extra_parity"]) == pytest.approx(float(r["productivity_parity"]), rel=1e-5, abs=1e-7)


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
