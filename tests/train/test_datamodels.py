"""Counterfactual retraining on the point task: a planted harmful demonstration has a negative realized gain."""

import jax
import numpy as np
import pytest

from envs.point import PointDeliver, expert
from train.datamodels import RetrainConfig, datamodel, demonstration_pool, make_retrain, realized_gains, subset_masks


def test_datamodel_recovers_planted_linear_effects():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, (400, 6)).astype(float)
    truth = np.array([2.0, 0.0, -3.0, 1.0, 0.5, 0.0])
    y = 10 + masks @ truth + rng.normal(0, 0.1, 400)
    np.testing.assert_allclose(datamodel(masks, y, ridge=1e-3), truth, atol=0.05)


def test_reversed_expert_demonstration_has_a_negative_realized_gain():
    env = PointDeliver()
    kinds = ["clean"] * 11 + ["reversed"]
    pool = demonstration_pool(env, expert, jax.random.PRNGKey(0), kinds)
    assert len(set(pool["id"])) == len(kinds)  # content hashes tell the demonstrations apart
    cfg = RetrainConfig()
    masks = subset_masks(jax.random.PRNGKey(1), len(kinds), cfg)
    mp = np.asarray(make_retrain(env, cfg, len(kinds), env.episode_length)(
        jax.random.PRNGKey(2), pool["obs"], pool["act"], masks))
    assert mp.max() > 0  # the students learned something to lose
    g = realized_gains(masks, mp, cfg)
    bad = kinds.index("reversed")
    assert g["hi"][bad] < 0, g  # negative with its whole 80% bootstrap interval
    assert g["gain"][bad] < np.min(np.delete(g["gain"], bad)), g
    assert np.mean(np.delete(g["gain"], bad)) > 0  # clean demonstrations help on average


def test_config_and_pool_refuse_bad_values_naming_them():
    with pytest.raises(ValueError, match="retrain.alpha"):
        RetrainConfig(alpha=1.0)
    with pytest.raises(ValueError, match="kinds: unknown"):
        demonstration_pool(PointDeliver(), expert, jax.random.PRNGKey(0), ["clean", "typo"])
