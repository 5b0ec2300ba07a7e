"""Causal gain: ensemble training, information gain far from data, TracIn ≥ 0 and first-order exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from valuation import causal_gain as cg

CFG = cg.EnsembleConfig(in_dim=2, out_dim=1, members=4, hidden=(32, 32), learning_rate=1e-2, batch_size=64)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(256, 2)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:] + 0.05 * rng.normal(size=(256, 1))).astype(np.float32)
    key_init, key_train = jax.random.split(jax.random.key(0))
    ens = cg.init(key_init, CFG)
    ens, losses = cg.train(key_train, ens, jnp.asarray(x), jnp.asarray(y), CFG, 300)
    return ens, losses, x, y


def test_training_reduces_loss(trained):
    _, losses, _, _ = trained
    assert losses.shape == (300, 4)
    assert float(losses[-20:].mean()) < float(losses[:20].mean()) - 0.5


def test_far_datapoint_has_higher_information_gain(trained):
    ens, _, x, _ = trained
    near = jnp.asarray(x[:20])
    far = near * 0 + jnp.array([6.0, -6.0])
    ig = jax.jit(cg.information_gain, static_argnums=2)
    ig_near, ig_far = ig(ens, near, CFG), ig(ens, far, CFG)
    assert ig_near.shape == (20,)
    assert float(ig_far.min()) > float(jnp.median(ig_near))
    assert float(ig_far.mean()) > 3 * float(ig_near.mean())
    np.testing.assert_allclose(cg.information_gain(ens, near, CFG), ig_near, rtol=1e-4, atol=1e-6)


def test_tracin_nonnegative_and_matches_exact_step(trained):
    ens, _, x, y = trained
    rng = np.random.default_rng(1)
    xv = jnp.asarray(rng.uniform(-1, 1, size=(64, 2)).astype(np.float32))
    yv = jnp.sin(2 * xv[:, :1]) + 0.5 * xv[:, 1:]
    cand_x = jnp.asarray(np.concatenate([x[:8], rng.uniform(-1, 1, size=(8, 2)).astype(np.float32)]))
    cand_y = jnp.concatenate([jnp.asarray(y[:8]), jnp.asarray(rng.normal(size=(8, 1)).astype(np.float32) * 3)])  # corrupt labels
    f = jax.jit(cg.prediction_error_reduction, static_argnums=5)
    tr = f(ens, cand_x, cand_y, xv, yv, CFG, 1e-6)
    assert tr.shape == (16,) and bool(jnp.all(tr >= 0))
    # a small step: the NLL is sharply curved where the fitted noise variance is small
    exact = jax.jit(cg.prediction_error_reduction_exact, static_argnums=5)(ens, cand_x, cand_y, xv, yv, CFG, 1e-6)
    # first order: unclipped TracIn equals the exact one-step change for a small step
    # the same compiled function with −lr gives the negative part: unclipped = f(lr) − f(−lr)
    unclipped = tr - f(ens, cand_x, cand_y, xv, yv, CFG, -1e-6)
    # (checked on the clean candidates; corrupted labels have gradients too large for any fixed step)
    np.testing.assert_allclose(unclipped[:8], exact[:8], rtol=0.2, atol=5e-2 * float(jnp.max(jnp.abs(exact[:8]))))
    np.testing.assert_allclose(tr, np.maximum(unclipped, 0), rtol=1e-4, atol=1e-9)
    # corrupted labels help less than clean ones on average
    assert float(unclipped[8:].mean()) < float(unclipped[:8].mean())


def test_tracin_over_checkpoints_is_signed_harmful_rows_negative():
    """Rows with flipped labels oppose the validation gradient at every checkpoint: negative TracIn,
    clean rows positive; the cosine form lies in [-1, 1]; bad checkpoint lists are refused."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(96, 2)).astype(np.float32)
    y = (x[:, :1] - 0.5 * x[:, 1:]).astype(np.float32)
    y[:16] *= -1.0  # planted harmful rows
    xv = rng.uniform(-1, 1, size=(64, 2)).astype(np.float32)
    yv = (xv[:, :1] - 0.5 * xv[:, 1:]).astype(np.float32)
    key = jax.random.key(3)
    ens0 = cg.init(key, CFG)
    for cosine in (False, True):
        ens, score = cg.tracin_checkpoints(key, ens0, x, y, xv, yv, CFG, checkpoints=(0, 20, 60), cosine=cosine)
        score = np.asarray(score)
        assert int(ens.step) == 60 and score.shape == (96,)
        assert score[:16].mean() < 0 < score[16:].mean(), score
        assert np.mean(score[:16] < 0) >= 0.8 and np.mean(score[16:] > 0) >= 0.8
    assert np.all(np.abs(score) <= 1.0 + 1e-6)
    with pytest.raises(ValueError, match="increasing step counts"):
        cg.tracin_checkpoints(key, ens0, x, y, xv, yv, CFG, checkpoints=(10, 5))
