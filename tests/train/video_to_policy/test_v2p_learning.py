"""Training steps learn: losses decrease, the IDM beats its trivial baseline (reduced ``point`` task)."""

import jax
import numpy as np
import pytest

from train.video_to_policy import diffusion as dif, idm


def test_idm_learns_and_beats_mean_action_baseline(point_records):
    demos, play = point_records
    cfg = idm.IDMConfig(steps=80, batch_size=32, channels=(8, 16), hidden=(64, 64), learning_rate=3e-3)
    variables, losses = idm.train(play, cfg, jax.random.PRNGKey(0), quiet=True)
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()
    acc = idm.accuracy(cfg.net(2), variables, demos)  # held out: the IDM never saw a demo
    assert acc["mse"] < 0.5 * acc["baseline_mse"] and acc["r2"] > 0.5, acc
    labels = idm.predict(cfg.net(2), variables, demos)
    assert set(labels) == {r.id for r in demos} and labels[demos[0].id].shape == demos[0].actions.shape
    emb = idm.embed(cfg.net(2), variables, demos[:2])
    assert emb[demos[0].id].shape == (64,) and not np.allclose(emb[demos[0].id], emb[demos[1].id])


@pytest.mark.slow
def test_idm_from_frames_only_beats_baseline(point_records):
    demos, play = point_records
    cfg = idm.IDMConfig(steps=200, batch_size=32, channels=(16, 32), hidden=(128, 128), use_proprio=False)
    variables, _ = idm.train(play, cfg, jax.random.PRNGKey(0), quiet=True)
    acc = idm.accuracy(cfg.net(2), variables, demos)
    assert acc["r2"] > 0.1, acc


def test_diffusion_loss_decreases(point_records):
    demos, _ = point_records
    cfg = dif.DiffusionConfig(steps=40, batch_size=16, enc_channels=(8, 8), channels=16, blocks=1, cond_dim=32,
                              features=32, diffusion_steps=50, ddim_steps=5)
    variables, losses = dif.train(demos, cfg, jax.random.PRNGKey(2), quiet=True)
    assert np.all(np.isfinite(losses)) and losses[-10:].mean() < 0.8 * losses[:10].mean()
    act = dif.make_act(cfg.net(2), variables, cfg, 2)
    from train.video_to_policy.demo_loader import DemoLoader

    b = DemoLoader(demos, cfg.frame_offsets, 1, 4).gather(np.array([[0, 0], [1, 3]]))
    chunk = act(b["frames"], b["proprio"], jax.random.PRNGKey(3))
    assert chunk.shape == (2, cfg.action_horizon, 2)
