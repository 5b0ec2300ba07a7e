"""Networks, the noise schedule and the DDIM sampler (shapes, jit, determinism)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train.video_to_policy import diffusion as dif
from train.video_to_policy.models import BCNet, Denoiser, IDMNet, spatial_softmax


def test_network_shapes_under_jit():
    k = jax.random.PRNGKey(0)
    frames = jnp.zeros((3, 2, 32, 32, 3), jnp.uint8)
    prop = jnp.zeros((3, 2, 5))
    idm = IDMNet(action_size=4, hidden=(32,), channels=(8, 8))
    p = idm.init(k, frames, prop)
    out = jax.jit(idm.apply)(p, frames, prop)
    assert out.shape == (3, 4) and bool(jnp.all(jnp.abs(out) < 1))
    assert jax.jit(lambda p, f: idm.apply(p, f, method=IDMNet.embed))(p, frames).shape == (3, 64)
    bc = BCNet(action_size=4, hidden=(32,), channels=(8, 8), use_vision=False)
    pb = bc.init(k, frames, prop)
    assert jax.jit(bc.apply)(pb, frames, prop).shape == (3, 4)
    den = Denoiser(action_size=4, channels=16, blocks=1, cond_dim=32, enc_channels=(8, 8))
    x = jnp.zeros((3, 16, 4))
    pd = den.init(k, x, jnp.zeros((3,), jnp.int32), frames, prop)
    assert jax.jit(den.apply)(pd, x, jnp.arange(3), frames, prop).shape == (3, 16, 4)
    with pytest.raises(ValueError, match="both False"):
        BCNet(action_size=2, use_vision=False, use_proprio=False).init(k, frames, prop)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 7), st.integers(0, 7))
def test_spatial_softmax_finds_the_peak(i, j):
    x = jnp.full((1, 8, 8, 1), -1e4).at[0, i, j, 0].set(0.0)
    kp = np.asarray(spatial_softmax(x))[0]
    grid = np.linspace(-1, 1, 8)
    np.testing.assert_allclose(kp, [grid[j], grid[i]], atol=1e-5)


@pytest.mark.parametrize("kind", dif.SCHEDULES)
def test_schedule(kind):
    s = dif.make_schedule(100, kind)
    ac = np.asarray(s.alphas_cumprod)
    assert ac.shape == (100,) and np.all(np.diff(ac) < 0) and 0 < ac[-1] < ac[0] <= 1
    assert ac[-1] < 0.01  # x_T is (almost) pure noise
    np.testing.assert_array_equal(dif.ddim_timesteps(100, 10), np.arange(90, -1, -10))


def test_q_sample_moments():
    s = dif.make_schedule(100, "cosine")
    x0 = jnp.ones((4000, 1, 1))
    t = jnp.full((4000,), 50)
    xt = dif.q_sample(s, x0, t, jax.random.normal(jax.random.PRNGKey(1), x0.shape))
    ab = float(s.alphas_cumprod[50])
    assert abs(float(xt.mean()) - np.sqrt(ab)) < 0.05 and abs(float(xt.var()) - (1 - ab)) < 0.05


def test_ddim_sampler_is_deterministic_under_a_fixed_key():
    cfg = dif.DiffusionConfig(channels=16, blocks=1, cond_dim=32, enc_channels=(8, 8), diffusion_steps=20,
                              ddim_steps=5)
    net = cfg.net(3)
    frames = jax.random.randint(jax.random.PRNGKey(0), (2, 2, 16, 16, 3), 0, 255).astype(jnp.uint8)
    prop = jnp.ones((2, 2, 4))
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((2, 16, 3)), jnp.zeros((2,), jnp.int32), frames, prop)["params"]
    sample = dif.make_sampler(net, dif.make_schedule(20, "cosine"), cfg, 3)
    a = sample(params, frames, prop, jax.random.PRNGKey(7))
    b = sample(params, frames, prop, jax.random.PRNGKey(7))
    c = sample(params, frames, prop, jax.random.PRNGKey(8))
    assert a.shape == (2, 16, 3) and bool(jnp.all(jnp.abs(a) <= 1))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))


def test_diffusion_config_errors():
    with pytest.raises(ValueError, match="action_horizon"):
        dif.DiffusionConfig(action_horizon=17)
    with pytest.raises(ValueError, match="schedule"):
        dif.DiffusionConfig(schedule="quadratic")
