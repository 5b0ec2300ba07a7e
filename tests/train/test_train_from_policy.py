"""PPO from a policy: --init loads the actor and normalizer bit-exactly; the critic warm-up leaves the
policy alone; an anchor of coefficient 0 is plain PPO; the anchor's schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from train.losses import anchor_coefficient
from train.members import build_members
from train.policy_file import start_from_policy
from train.ppo import make_train


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _assert_same(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def test_init_loads_actor_and_normalizer_bit_exactly(learning_run, point_env, small_cfg, programs):
    _, out = learning_run
    saved = serialization.msgpack_restore((out / "policy.msgpack").read_bytes())
    members, keys, _ = build_members(point_env.default_params, [5, 6], None)
    fresh = programs.init(keys, members)
    state = start_from_policy(fresh, out, small_cfg)  # the run folder; its policy.msgpack is read
    for m in range(2):
        pick = lambda t: jax.tree.map(lambda x: np.asarray(x)[m], t)  # noqa: E731
        _assert_same(pick(state.params["policy"]), jax.tree.map(lambda x: x[0], saved["params"]["policy"]))
        for k in ("mean", "m2", "count"):
            np.testing.assert_array_equal(np.asarray(getattr(state.norm, k))[m], np.asarray(saved["norm"][k])[0])
    _assert_same(state.params["value"], fresh.params["value"])  # the value net stays fresh
    _assert_same(state.env_state, fresh.env_state)
    assert state.anchor is None  # anchor_coef 0: no anchor kept
    with pytest.raises(ValueError, match="ppo.policy_hidden"):
        start_from_policy(fresh, out / "policy.msgpack", small_cfg.replace(policy_hidden=(8, 8)))
    with pytest.raises(SystemExit, match="--init"):
        start_from_policy(fresh, out / "missing", small_cfg)


def test_critic_warmup_updates_only_the_value_net(point_env, small_cfg):
    tr = make_train(small_cfg.replace(critic_warmup_iterations=2), point_env)
    step = jax.jit(tr.training_step)
    s0 = tr.init(jax.random.PRNGKey(0))
    s1, _ = step(s0)
    s2, m2 = step(s1)
    _assert_same(s2.params["policy"], s0.params["policy"])
    _assert_same(s2.norm, s0.norm)
    assert float(m2["grad_norm"]) > 0
    assert not np.array_equal(_leaves(s2.params["value"])[0], _leaves(s0.params["value"])[0])
    s3, _ = step(s2)  # the warm-up is over: the policy learns
    assert not np.array_equal(_leaves(s3.params["policy"])[0], _leaves(s0.params["policy"])[0])


def test_anchor_coefficient_zero_is_plain_ppo(point_env, small_cfg):
    tr = make_train(small_cfg, point_env)
    s0 = tr.init(jax.random.PRNGKey(1))
    assert s0.anchor is None
    # an anchor far from the policy: its KL and gradient are not zero, only its weight is
    other = tr.init(jax.random.PRNGKey(2))
    anchored = s0.replace(anchor={"policy": jax.tree.map(lambda x: 3.0 * x + 0.1, other.params["policy"]),
                                  "norm": s0.norm})
    plain, _ = jax.jit(tr.training_step)(s0)
    with_anchor, metrics = jax.jit(tr.training_step)(anchored)
    assert float(metrics["anchor_kl"]) > 0
    _assert_same(with_anchor.params, plain.params)
    _assert_same(with_anchor.opt_state, plain.opt_state)
    # a positive coefficient pulls the update elsewhere
    tr1 = make_train(small_cfg.replace(anchor_coef=1.0), point_env)
    pulled, _ = jax.jit(tr1.training_step)(anchored)
    assert not np.array_equal(_leaves(pulled.params["policy"])[0], _leaves(plain.params["policy"])[0])


def test_anchor_schedule_and_state():
    from train.config import PPOConfig

    cfg = PPOConfig(anchor_coef=2.0, anchor_anneal_iterations=10)
    got = [float(anchor_coefficient(cfg, jnp.asarray(t))) for t in (0, 5, 10, 20)]
    np.testing.assert_allclose(got, [2.0, 1.0, 0.0, 0.0])
    assert float(anchor_coefficient(cfg.replace(anchor_anneal_iterations=0), jnp.asarray(100))) == 2.0
    with pytest.raises(ValueError, match="ppo.anchor_coef"):
        PPOConfig(anchor_coef=-1.0)


def test_init_with_anchor_keeps_the_loaded_policy(learning_run, point_env, small_cfg):
    _, out = learning_run
    cfg = small_cfg.replace(anchor_coef=0.5)
    tr = make_train(cfg, point_env)
    members, keys, _ = build_members(point_env.default_params, [0], None)
    state = start_from_policy(jax.vmap(tr.init)(keys, members), out, cfg)
    _assert_same(state.anchor["policy"], state.params["policy"])
    _assert_same(state.anchor["norm"], state.norm)


def test_training_from_a_policy_with_an_anchor_runs(learning_run, point_env, small_cfg, tmp_path):
    """The anchor is its own copy of the loaded policy: the donated training state holds no buffer twice."""
    from train.runner import RunConfig, run_training

    _, out = learning_run
    cfg = small_cfg.replace(anchor_coef=0.5, total_timesteps=small_cfg.batch_size * small_cfg.eval_every)
    run = RunConfig(out_dir=tmp_path / "ft", init=out, progress=False, checkpoints=False, run_config={"env": "point"})
    result = run_training(cfg, point_env, run=run)
    assert result.iterations == cfg.eval_every and np.isfinite(result.rows[-1]["loss_policy"])
