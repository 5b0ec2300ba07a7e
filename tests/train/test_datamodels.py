"""Counterfactual retraining on the point task: a planted harmful demonstration has a negative realized gain."""

import jax
import numpy as np
import pytest

from envs.point import PointDeliver, expert
from train.datamodels import (RetrainConfig, datamodel, demonstration_pool, make_retrain, realized_gains, seed_groups,
                              subset_masks, train_keys)


def test_datamodel_recovers_planted_linear_effects():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, (400, 6)).astype(float)
    truth = np.array([2.0, 0.0, -3.0, 1.0, 0.5, 0.0])
    y = 10 + masks @ truth + rng.normal(0, 0.1, 400)
    np.testing.assert_allclose(datamodel(masks, y, ridge=1e-3), truth, atol=0.05)


def test_shared_seeds_are_a_fixed_effect_of_the_datamodel():
    """Subsets that share a training seed share its level (its initial weights and minibatch noise): centred
    within each seed, the datamodel recovers the effects; centred over all subsets it mixes the levels in."""
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 2, (96, 6)).astype(float)
    effect = np.array([2.0, 0.0, -3.0, 1.0, 0.5, 0.0])
    groups = seed_groups(96, 4)
    assert list(groups[:6]) == [0, 1, 2, 3, 0, 1]  # repeats of one mask on adjacent rows get different seeds
    y = masks @ effect + np.array([0.0, 25.0, -15.0, 40.0])[groups] + rng.normal(0, 0.05, 96)
    np.testing.assert_allclose(datamodel(masks, y, 1e-3, groups), effect, atol=0.1)
    assert np.abs(datamodel(masks, y, 1e-3) - effect).max() > 0.5
    rc = RetrainConfig(subsets=96, seeds=4, bootstrap=50)
    g = realized_gains(masks, y, rc)
    assert np.all(g["lo"] <= g["gain"] + 1e-9) and np.all(g["gain"] <= g["hi"] + 1e-9)
    np.testing.assert_allclose(g["gain"], datamodel(masks, y, rc.ridge, groups))
    keys = np.asarray(train_keys(jax.random.PRNGKey(0), 8, 4))  # legacy uint32 keys: [8, 2]
    assert (keys[0] == keys[4]).all() and not (keys[0] == keys[1]).all()
    own = np.asarray(train_keys(jax.random.PRNGKey(0), 8, 0))
    assert len({tuple(k.ravel()) for k in own}) == 8


def test_config_and_pool_refuse_bad_values_naming_them():
    with pytest.raises(ValueError, match="retrain.alpha"):
        RetrainConfig(alpha=1.0)
    with pytest.raises(ValueError, match="retrain.seeds"):
        RetrainConfig(seeds=-1)
    with pytest.raises(ValueError, match="kinds: unknown"):
        demonstration_pool(PointDeliver(), expert, jax.random.PRNGKey(0), ["clean", "typo"])
    with pytest.raises(ValueError, match="needs an earlier non-duplicate"):
        demonstration_pool(PointDeliver(), expert, jax.random.PRNGKey(0), ["duplicate", "clean"])
    with pytest.raises(ValueError, match="needs shifted_params"):
        demonstration_pool(PointDeliver(), expert, jax.random.PRNGKey(0), ["clean", "shifted"])


def test_pool_kinds_rushed_duplicate_shifted():
    env = PointDeliver(episode_length=20)
    shifted = env.default_params.replace(spawn_range=env.default_params.spawn_range * 0.3)
    pool = demonstration_pool(env, expert, jax.random.PRNGKey(0), ["clean", "duplicate", "rushed", "shifted"],
                              shifted_params=shifted)
    assert len(set(pool["id"])) == 4
    np.testing.assert_allclose(pool["act"][1], pool["act"][0], atol=1e-2)  # a near-copy of its source
    np.testing.assert_array_equal(pool["obs"][1], pool["obs"][0])
    assert np.abs(pool["act"][2]).max() > 0.95 >= np.abs(pool["act"][0]).max()  # at full speed
    assert not np.allclose(pool["obs"][3], pool["obs"][0])


def test_pool_slips_reverse_a_graded_share_of_their_steps():
    env = PointDeliver(episode_length=20)
    kinds = ["clean", "slips", "clean", "slips", "slips"]
    pool = demonstration_pool(env, expert, jax.random.PRNGKey(0), kinds)
    clean = demonstration_pool(env, expert, jax.random.PRNGKey(0), ["clean"] * 5)  # same scenes, no slips
    np.testing.assert_array_equal(pool["obs"], clean["obs"])
    flipped = np.all(np.isclose(pool["act"], -clean["act"]) & ~np.isclose(clean["act"], 0.0), axis=-1)
    # the j-th of 3 slips errs on (j + 1) / 4 of its 20 steps: 5, 10, 15; the clean ones on none
    np.testing.assert_array_equal(flipped.sum(1), [0, 5, 0, 10, 15])
    np.testing.assert_array_equal(pool["act"][0], clean["act"][0])


def test_pool_corrections_label_the_states_another_robot_visits_with_the_experts_action():
    env = PointDeliver(episode_length=20)
    key, step = jax.random.PRNGKey(0), float(env.default_params.max_step)
    clean = demonstration_pool(env, expert, key, ["clean", "clean"])
    drift = demonstration_pool(env, expert, key, ["clean", "correction"])  # same scenes, a drifting expert
    actor = demonstration_pool(env, expert, key, ["correction"], actor=lambda o: -0.5 * o[:2])
    np.testing.assert_array_equal(drift["obs"][0], clean["obs"][0])
    assert not np.allclose(drift["obs"][1], clean["obs"][1])  # the perturbed steps took it off the expert's path

    def expert_mean(o):  # the scripted expert's action at an observation, without its 0.03 noise
        a = (np.where(o[:, 8:9] > 0, o[:, 4:6], o[:, 2:4]) - o[:, :2]) / step
        return np.clip(a / np.maximum(1.0, np.abs(a).max(1, keepdims=True) / 0.9), -0.95, 0.95)

    for pool in (drift, actor):  # every label is the expert's action at the state the robot visited
        np.testing.assert_allclose(pool["act"][-1], expert_mean(pool["obs"][-1]), atol=0.15)
    moves = lambda o: np.diff(o[:, :2], axis=0) / step  # noqa: E731  the actions the robot executed
    np.testing.assert_allclose(moves(actor["obs"][0]), -0.5 * actor["obs"][0, :-1, :2], atol=1e-4)
    assert np.abs(moves(drift["obs"][1]) - drift["act"][1, :-1]).mean() > 0.2  # it did not follow its labels
