"""Imitation pieces: the aggregation buffer, rarity weighting, the BC loss and the config's rules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from train.config import PPOConfig
from train.imitation import Buffer, ImitationConfig, action_bins, bc_loss, keyframe_weights, sample_weights
from train.networks import RunningStats, TanhGaussian, make_networks
from vpjax.schema import ConfigError, parse_section


def test_buffer_is_a_ring_and_keeps_the_newest_rows():
    buf = Buffer.init(5, 2, 1)
    add = jax.jit(lambda b, o, a, v: b.add(o, a, v))
    for start in (0, 3, 6):
        o = jnp.arange(start, start + 3, dtype=jnp.float32)[:, None] * jnp.ones((1, 2))
        buf = add(buf, o, o[:, :1], jnp.ones(3))
    assert int(buf.size) == 5 and int(buf.ptr) == 9 % 5
    assert sorted(np.asarray(buf.obs[:, 0]).tolist()) == [4.0, 5.0, 6.0, 7.0, 8.0]
    with pytest.raises(ValueError, match="capacity"):
        buf.add(jnp.zeros((6, 2)), jnp.zeros((6, 1)), jnp.ones(6))


def test_rarity_weighting_balances_action_bins():
    # 90 rows of "hold still", 10 rows of "close the hand": with balance 1 both bins weigh the same in total
    act = jnp.concatenate([jnp.zeros((90, 4)), jnp.tile(jnp.array([[0.0, 0.0, 0.0, -1.0]]), (10, 1))])
    buf = Buffer.init(120, 3, 4).add(jnp.zeros((100, 3)), act, jnp.ones(100))
    bins = np.asarray(jax.jit(action_bins)(buf.act[:100]))
    assert len(set(bins[:90])) == 1 and len(set(bins[90:])) == 1 and bins[0] != bins[95]
    for balance, ratio in ((0.0, 9.0), (0.5, 3.0), (1.0, 1.0)):
        w = np.asarray(jax.jit(sample_weights, static_argnums=1)(buf, balance))
        assert w[100:].sum() == 0.0  # rows never written are never drawn
        np.testing.assert_allclose(w[:90].sum() / w[90:100].sum(), ratio, rtol=1e-5)


def test_keyframe_weights_mark_the_steps_where_the_expert_changes_its_action():
    # robot 0: hover, hover, start the descent (z -0.2), descend, close the hand (grip 1 -> -1); robot 1: still
    z = jnp.array([0.0, 0.0, -0.2, -0.2, -0.2])
    grip = jnp.array([1.0, 1.0, 1.0, 1.0, -1.0])
    r0 = jnp.stack([jnp.zeros(5), jnp.zeros(5), z, grip], axis=-1)
    labels = jnp.stack([r0, jnp.zeros((5, 4))], axis=1)  # [T, N, A]
    w = np.asarray(jax.jit(keyframe_weights, static_argnums=2)(labels, labels[0], 10.0))
    np.testing.assert_allclose(w[:, 0], [1.0, 1.0, 3.0, 1.0, 11.0], rtol=1e-6)  # a change of 2 is capped at 1
    np.testing.assert_allclose(w[:, 1], 1.0)
    # the stored weights scale the draws; the rarity weighting still counts rows, not weights
    buf = Buffer.init(12, 1, 4).add(jnp.zeros((10, 1)), labels.reshape(10, 4), jnp.asarray(w.reshape(10)))
    np.testing.assert_allclose(np.asarray(sample_weights(buf, 0.0))[:10], w.reshape(10), rtol=1e-6)
    assert np.asarray(sample_weights(buf, 0.0))[10:].sum() == 0.0


@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_bc_loss_is_zero_at_the_expert_and_trains_toward_it(kind):
    cfg = PPOConfig(policy_hidden=(16,), value_hidden=(16,))
    net, _ = make_networks(3, 2, cfg.policy_hidden, cfg.value_hidden, cfg.activation)
    dist = TanhGaussian(cfg.min_std)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    target = jnp.tanh(obs[:, :2])
    norm = RunningStats.init(3).update(obs)
    loss = jax.jit(lambda p: bc_loss(net, dist, p, norm, obs, target, True, 0.1, kind)[0])
    grad = jax.jit(jax.grad(lambda p: bc_loss(net, dist, p, norm, obs, target, True, 0.1, kind)[0]))
    before = float(loss(params))
    for _ in range(200):
        params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grad(params))
    assert float(loss(params)) < 0.5 * before


def test_l1_loss_learns_the_majority_label_where_mse_learns_the_mean():
    """One state, two labels: "move" (-0.4) in 60% of the rows, "hold" (0) in 40%. MSE fits their mean, a small
    move a robot can stall on; L1 fits the median, the majority label."""
    cfg = PPOConfig(policy_hidden=(16,), value_hidden=(16,))
    net, _ = make_networks(2, 1, cfg.policy_hidden, cfg.value_hidden, cfg.activation)
    dist = TanhGaussian(cfg.min_std)
    obs = jnp.ones((100, 2))
    act = jnp.where(jnp.arange(100)[:, None] < 60, -0.4, 0.0)
    norm = RunningStats.init(2)
    fitted = {}
    for kind in ("mse", "l1"):
        params = net.init(jax.random.PRNGKey(0), obs[:1])
        opt = optax.adam(1e-2)
        opt_state = opt.init(params)

        @jax.jit
        def step(p, o, kind=kind):
            (_, aux), g = jax.value_and_grad(lambda q: bc_loss(net, dist, q, norm, obs, act, False, 0.1, kind),
                                             has_aux=True)(p)
            u, o = opt.update(g, o, p)
            return optax.apply_updates(p, u), o, aux

        for _ in range(600):
            params, opt_state, aux = step(params, opt_state)
        fitted[kind] = float(dist.mode(net.apply(params, obs[:1]))[0, 0])
        assert set(aux) == {"bc_mse", "bc_l1", "bc_std"}
    assert abs(fitted["mse"] - (-0.24)) < 0.02  # the mean of the labels
    assert abs(fitted["l1"] - (-0.4)) < 0.02  # the majority label


@pytest.mark.parametrize("field,value", [("algorithm", "ppo"), ("rounds", 0), ("beta_schedule", (1.5,)),
                                         ("balance", -0.1), ("init_std", 0.0), ("lr_decay", 0.0),
                                         ("keyframe_weight", -1.0), ("loss", "huber")])
def test_config_refuses_bad_values_naming_the_key(field, value):
    with pytest.raises(ValueError, match=f"imitation.{field}"):
        ImitationConfig(**{field: value})


def test_beta_schedule_repeats_its_last_value_and_bc_always_demonstrates():
    cfg = ImitationConfig(beta_schedule=(1.0, 0.5, 0.0))
    assert [cfg.beta(r) for r in range(5)] == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert all(cfg.replace(algorithm="bc").beta(r) == 1.0 for r in range(5))
    with pytest.raises(ConfigError, match="training.yaml: imitation.bogus = 1: unknown key"):
        parse_section(ImitationConfig, {"bogus": 1}, "training.yaml", "imitation")
    parsed = parse_section(ImitationConfig, {"beta_schedule": [1, 0.5], "rounds": 3}, "training.yaml", "imitation")
    assert parsed.beta_schedule == (1.0, 0.5) and parsed.rounds == 3
    with pytest.raises(ConfigError, match="training.yaml: imitation.rounds = 0: must be >= 1"):
        parse_section(ImitationConfig, {"rounds": 0}, "training.yaml", "imitation")


def test_cli_dagger_run_folder_resume_and_evaluate(tmp_path, capsys):
    """``python -m train --algorithm dagger`` writes a PPO-layout run folder; --resume continues it; evaluate reads it."""
    import csv
    import json

    from train.cli import main
    from train.evaluate import main as evaluate_main

    # the point task as MODULE:FACTORY with its own expert (envs.experts.make_expert): the run folder, resume and
    # evaluate are the same for every env, and the dishwashing collection is compiled by the record's tests
    out = tmp_path / "dagger"
    common = ["--env", "tests/train/point_env.py:PointDeliver", "--algorithm", "dagger", "--env-arg", "episode_length=40",
              "--num-envs", "2", "--out", str(out), "--no-progress", "--set", "imitation.sgd_steps=20",
              "--set", "imitation.batch_size=64", "--set", "imitation.num_eval_envs=0", "--set", "imitation.capacity=160",
              "--set", "ppo.policy_hidden=[32,32]"]
    assert main(common + ["--rounds", "1"]) == 0
    for name in ("config.json", "training_metrics.csv", "policy.msgpack", "summary.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["algorithm"] == "dagger"
    assert main(common + ["--rounds", "2", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "training_metrics.csv").open()))
    assert [int(float(r["iteration"])) for r in rows] == [1, 2]
    assert float(rows[0]["dagger_beta"]) == 1.0 and float(rows[1]["dagger_beta"]) == 0.5
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 1
    assert evaluate_main(["--policy", str(out), "--robots", "2", "--steps", "40", "--no-plot"]) == 0


def test_grow_buffer_keeps_rows_and_continues_the_ring():
    """A DAgger run resumed with more rounds gets a larger buffer holding the saved rows."""
    from train.checkpoint import CheckpointError
    from train.imitation_run import grow_buffer

    full = Buffer.init(4, 2, 1)
    for i in range(3):  # 6 rows into 4: the ring has wrapped
        full = full.add(jnp.full((2, 2), float(i)), jnp.ones((2, 1)), jnp.ones(2))
    grown = grow_buffer(full, 7)
    assert grown.obs.shape == (7, 2) and int(grown.size) == 4 and int(grown.ptr) == 4
    np.testing.assert_array_equal(np.asarray(grown.obs[:4]), np.asarray(full.obs))
    assert np.asarray(grown.valid).tolist() == [1, 1, 1, 1, 0, 0, 0]
    grown = grown.add(jnp.full((2, 2), 99.0), jnp.zeros((2, 1)), jnp.ones(2))
    assert np.asarray(grown.obs[4:6, 0]).tolist() == [99.0, 99.0] and int(grown.size) == 6
    partial = Buffer.init(4, 2, 1).add(jnp.ones((2, 2)), jnp.ones((2, 1)), jnp.ones(2))
    assert int(grow_buffer(partial, 6).ptr) == 2
    with pytest.raises(CheckpointError, match="at least as many rounds"):
        grow_buffer(full, 3)


def test_collection_continues_unfinished_episodes_across_rounds():
    # windows of half an episode: round 1 collects steps 0-4 of 3 scenes, round 2 steps 5-9 of the same
    # scenes (the episode ends), round 3 starts fresh scenes
    from envs.point import PointDeliver, expert
    from train.imitation import make_imitation

    env = PointDeliver(episode_length=10)
    cfg = ImitationConfig(rounds=3, num_envs=3, rollout_steps=5, sgd_steps=1, batch_size=4)
    im = make_imitation(cfg, PPOConfig(policy_hidden=(8,), value_hidden=(8,)), env,
                        lambda s, p: expert(s, jax.random.PRNGKey(0), p))
    collect = jax.jit(im.collect)
    state = jax.jit(im.init)(jax.random.PRNGKey(0))
    steps = []
    for _ in range(3):
        state, _ = collect(state, jnp.float32(1.0), env.default_params)
        steps.append(np.asarray(state.envs.info["steps"]))
    # the frozen robots of round 2 stop at the state before their last step (step 9 of 10)
    np.testing.assert_array_equal(np.stack(steps), [[5] * 3, [9] * 3, [5] * 3])
    np.testing.assert_array_equal(np.asarray(state.alive), np.ones(3))
    rows = np.asarray(state.buffer.obs[:45]).reshape(3, 5, 3, -1)  # [round, step, robot, obs]
    valid = np.asarray(state.buffer.valid[:45]).reshape(3, 5, 3)
    assert valid[0].all() and valid[2].all() and valid[1].all()
    # round 2's first rows continue round 1's scenes: not the fresh scenes round 3 starts from
    assert not np.allclose(rows[1, 0], rows[2, 0])


def test_select_best_exports_the_validation_winner_reported_on_unseen_test_scenes(tmp_path):
    """select="best": the run's policy is the round with the highest held-out MPᵣ (the same student an
    uninterrupted run of that many rounds ends with), reported on other scenes; a resumed run chooses the same."""
    import json

    from envs.point import PointDeliver, expert
    from train.imitation import make_imitation
    from train.imitation_run import run_imitation
    from train.policy_file import load_policy

    env = PointDeliver(episode_length=40)
    ppo_cfg = PPOConfig(policy_hidden=(32, 32), value_hidden=(8,))
    teacher = lambda s, p: expert(s, jax.random.PRNGKey(0), p)  # noqa: E731
    cfg = ImitationConfig(rounds=5, num_envs=8, beta_schedule=(1.0, 0.0), sgd_steps=600, batch_size=64, balance=0.0,
                          num_eval_envs=8, eval_every=1, select="best", seed=5)
    result = run_imitation(cfg, ppo_cfg, env, env.default_params, teacher, out_dir=tmp_path / "full", progress=False)
    scores = [(r["eval_MP_r"], -r["eval_e_t"]) for r in result.rows]
    assert len(set(scores)) > 1, scores  # the students differ: there is a choice to make
    chosen = scores.index(max(scores)) + 1  # the first of equal scores
    sel = json.loads((tmp_path / "full" / "selection.json").read_text())
    assert sel["round"] == result.selected_round == chosen
    assert sel["eval"]["mp"] == pytest.approx(result.rows[chosen - 1]["eval_MP_r"])
    policy = (tmp_path / "full" / "policy.msgpack").read_bytes()
    assert policy == (tmp_path / "full" / "policy_best.msgpack").read_bytes()
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["selected_round"] == chosen and summary["held_out_eval"] == result.final_eval

    # the same student as a plain run that stops at the chosen round, and its report is on the test scenes
    plain = run_imitation(cfg.replace(rounds=chosen, select="last"), ppo_cfg, env, env.default_params, teacher,
                          out_dir=tmp_path / "plain", progress=False)
    assert (tmp_path / "plain" / "policy.msgpack").read_bytes() == policy
    im = make_imitation(cfg, ppo_cfg, env, teacher)
    tree = load_policy(tmp_path / "full" / "policy.msgpack",
                       {"params": jax.tree.map(lambda x: x[None], plain.state.params),
                        "norm": jax.tree.map(lambda x: x[None], plain.state.norm)})
    test_key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2)
    on_test = jax.device_get(jax.jit(im.evaluate)(*jax.tree.map(lambda x: x[0], (tree["params"], tree["norm"])),
                                                  test_key, env.default_params))
    assert result.final_eval["mp"] == pytest.approx(float(on_test["mp"]))

    # killed after 2 rounds and resumed: the same choice and the same exported policy
    run_imitation(cfg, ppo_cfg, env, env.default_params, teacher, out_dir=tmp_path / "cut", progress=False,
                  max_rounds=2)
    resumed = run_imitation(cfg, ppo_cfg, env, env.default_params, teacher, out_dir=tmp_path / "cut", resume=True,
                            progress=False)
    assert resumed.selected_round == chosen
    assert (tmp_path / "cut" / "policy.msgpack").read_bytes() == policy

    with pytest.raises(ValueError, match="imitation.select"):
        ImitationConfig(select="first")
    with pytest.raises(ValueError, match="imitation.select"):
        ImitationConfig(select="best", num_eval_envs=0)
