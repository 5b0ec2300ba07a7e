"""--num-seeds / --sweep members in one compiled program; new α/γ values never recompile."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train.members import build_members, parse_sweep
from train.runner import RunConfig, run_training


def test_parse_sweep():
    assert parse_sweep("gamma=0.1,0.5,1.0") == {"gamma": [0.1, 0.5, 1.0]}
    assert parse_sweep("gamma=0.1;beta=0.2,0.3") == {"gamma": [0.1], "beta": [0.2, 0.3]}
    with pytest.raises(ValueError, match="--sweep gama"):
        build_members(__import__("point_env").PointDeliver().default_params, [0], {"gama": [1.0]})
    with pytest.raises(ValueError, match="expected NAME="):
        parse_sweep("gamma")


def test_members_shapes_and_no_recompile(point_env, small_cfg):
    cfg = small_cfg.replace(total_timesteps=small_cfg.batch_size * small_cfg.eval_every)
    result = run_training(cfg, point_env, run=RunConfig(seeds=(0, 1), sweep={"gamma": [0.1, 1.0]}, progress=False))
    rows = result.rows
    assert len(rows) == 4 and [r["member"] for r in rows] == [0, 1, 2, 3]
    assert [r["seed"] for r in rows] == [0, 1, 0, 1]
    # gamma sweep fixes the weight (initial = final) per member
    np.testing.assert_allclose([r["gamma"] for r in rows], [0.1, 0.1, 1.0, 1.0], rtol=1e-5)
    state = result.state
    assert jax.tree.leaves(state.params)[0].shape[0] == 4
    assert state.env_state.obs.shape == (4, cfg.num_envs, point_env.observation_size)
    # different seeds -> different agents; same seed, different gamma -> same init, different training
    p = [np.asarray(x) for x in jax.tree.leaves(state.params["policy"])]
    assert not np.allclose(p[0][0], p[0][1])

    chunk_fn = result.chunk_fn
    n = chunk_fn._cache_size()
    econ = state.env_params.econ
    new = state.replace(env_params=state.env_params.replace(econ=econ.replace(
        alpha_initial=econ.alpha_initial * 0 + 0.7, gamma_initial=econ.gamma_initial * 0 + 0.3,
        gamma_final=econ.gamma_final * 0 + 0.9, beta=econ.beta * 0 + 0.2)))
    out, metrics, _ = chunk_fn(new)
    jax.block_until_ready(out)
    assert chunk_fn._cache_size() == n == 1
    np.testing.assert_array_less(0.0, np.asarray(metrics["gamma"]))


def test_train_key_fully_jitted(point_env, small_cfg):
    """make_train(...).train(key) is one jittable program (tiny 1-chunk variant, judged on training episodes)."""
    from train.ppo import make_train

    cfg = small_cfg.replace(num_envs=16, num_minibatches=2, total_timesteps=16 * 10 * 8, eval_every=8,
                            num_eval_envs=0)
    tr = make_train(cfg, point_env)
    state, metrics, evals = jax.jit(tr.train)(jax.random.PRNGKey(3))
    assert int(state.iteration) == 8 == tr.num_iterations
    assert metrics["loss_value"].shape == (1, 8) and evals["success_rate"].shape == (1,)
    # 80 steps of 40-step episodes: every robot finished 2 episodes, judged without a separate evaluation
    assert float(metrics["episodes_done"].sum()) == 32
    np.testing.assert_allclose(evals["mp"][0], metrics["sum_mp"].sum() / 32, rtol=1e-5)
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(state.params))
