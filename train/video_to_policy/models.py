"""Flax (linen) networks of the video-to-policy pipeline.

* :class:`Encoder`    small conv net: a stack of K RGB frames [.., K, H, W, 3] (uint8) -> features [.., F].
* :class:`IDMNet`     inverse dynamics (VPT): frames (t, t+1) [+ proprio] -> action t.
* :class:`BCNet`      visual behaviour cloning: frames (t-1, t) + proprio -> action t.
* :class:`Denoiser`   diffusion-policy noise predictor: noisy action chunk [.., H, A], diffusion step,
                      observation (frames + proprio) -> predicted noise ε [.., H, A]; a 1-D temporal conv
                      net with FiLM conditioning (Chi et al., Diffusion Policy), scaled down.

Proprioception is standardized by the caller-provided ``(mean, std)`` held with the params
(:class:`Normalizer`) so that checkpoints carry their own statistics.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Normalizer:
    """Standardization of proprioception. mean, std: [P]."""

    mean: jax.Array
    std: jax.Array

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalizer":
        x = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
        return cls(mean=jnp.asarray(x.mean(0)), std=jnp.asarray(np.maximum(x.std(0), 1e-3)))

    def __call__(self, x):
        return jnp.clip((x - self.mean) / self.std, -10.0, 10.0)


def _stack_frames(frames: jax.Array) -> tuple[jax.Array, tuple[int, ...]]:
    """[.., K, H, W, 3] uint8 -> ([N, H, W, 3K] float in [-0.5, 0.5], leading shape)."""
    lead = frames.shape[:-4]
    k, h, w, c = frames.shape[-4:]
    x = frames.astype(jnp.float32) / 255.0 - 0.5
    x = jnp.moveaxis(x, -4, -2).reshape((-1, h, w, k * c))
    return x, lead


def spatial_softmax(x: jax.Array) -> jax.Array:
    """Expected image coordinates of each channel's softmax: [N, h, w, C] -> [N, 2C] in [-1, 1].

    Keypoint features (Levine et al. 2016; robomimic, Diffusion Policy) make positions of objects
    linear in the features, which a flatten-and-dense head has to learn from many more samples.
    """
    n, h, w, c = x.shape
    att = jax.nn.softmax(x.reshape(n, h * w, c), axis=1)
    ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing="ij")
    grid = jnp.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [h*w, 2]
    kp = jnp.einsum("npc,pd->ncd", att, grid)
    return kp.reshape(n, 2 * c)


class Encoder(nn.Module):
    """Conv video encoder over a channel-stacked frame window, with a spatial-softmax keypoint head.

    Attributes:
      features: output width F.
      channels: conv widths; the first conv has stride 2, the others stride 1 (64x64 -> 32x32 maps).
    """

    features: int = 64
    channels: Sequence[int] = (16, 32, 32, 32)

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        """frames: uint8 [.., K, H, W, 3] -> features float32 [.., F]."""
        x, lead = _stack_frames(frames)
        for i, c in enumerate(self.channels):
            x = nn.Conv(c, (3, 3), strides=(2, 2) if i == 0 else (1, 1), padding="SAME")(x)
            x = nn.relu(x) if i < len(self.channels) - 1 else x
        x = nn.LayerNorm()(nn.Dense(self.features)(spatial_softmax(x)))
        return x.reshape(lead + (self.features,))


class _Head(nn.Module):
    hidden: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.gelu(nn.Dense(h)(x))
        return nn.Dense(self.out)(x)


def _obs_features(encoder: Encoder, frames, proprio, use_vision: bool, use_proprio: bool):
    parts = []
    if use_vision:
        parts.append(encoder(frames))
    if use_proprio:
        parts.append(proprio.reshape(proprio.shape[:-2] + (-1,)))
    if not parts:
        raise ValueError("use_vision and use_proprio are both False: the network would see nothing")
    return jnp.concatenate(parts, -1)


class IDMNet(nn.Module):
    """Inverse dynamics model: which action took frame t to frame t+1?

    Attributes:
      action_size: A; hidden: head widths; features: encoder width; use_proprio: also see proprio (t, t+1).
    """

    action_size: int
    hidden: Sequence[int] = (256, 256)
    features: int = 64
    channels: Sequence[int] = (16, 32, 32, 32)
    use_proprio: bool = True

    def setup(self):
        self.encoder = Encoder(self.features, tuple(self.channels))
        self.head = _Head(tuple(self.hidden), self.action_size)

    def __call__(self, frames, proprio):
        """frames uint8 [B, 2, H, W, 3]; proprio [B, 3, P] (readings t, t+1 and their change, standardized)
        -> action [B, A] in (-1, 1)."""
        return jnp.tanh(self.head(_obs_features(self.encoder, frames, proprio, True, self.use_proprio)))

    def embed(self, frames):
        """Video features of a window: [B, 2, H, W, 3] -> [B, F] (the valuation embedding)."""
        return self.encoder(frames)


class BCNet(nn.Module):
    """Behaviour-cloning policy on the last K frames and proprioception.

    Attributes:
      action_size: A; hidden: head widths; use_vision / use_proprio: which inputs the policy sees.
    """

    action_size: int
    hidden: Sequence[int] = (256, 256)
    features: int = 64
    channels: Sequence[int] = (16, 32, 32, 32)
    use_vision: bool = True
    use_proprio: bool = True

    @nn.compact
    def __call__(self, frames, proprio):
        """frames uint8 [B, K, H, W, 3]; proprio [B, K, P] (normalized) -> action [B, A] in (-1, 1)."""
        enc = Encoder(self.features, tuple(self.channels))
        return jnp.tanh(_Head(tuple(self.hidden), self.action_size)(
            _obs_features(enc, frames, proprio, self.use_vision, self.use_proprio)))


def timestep_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal embedding of integer diffusion steps. t: [B] -> [B, dim]."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / max(half - 1, 1))
    ang = t.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)


def _mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


class _FiLMBlock(nn.Module):
    channels: int
    kernel: int

    @nn.compact
    def __call__(self, x, cond):
        h = nn.Conv(self.channels, (self.kernel,), padding="SAME")(x)
        h = _mish(nn.GroupNorm(num_groups=min(8, self.channels))(h))
        scale, shift = jnp.split(nn.Dense(2 * self.channels)(cond), 2, -1)
        h = h * (1.0 + scale[:, None]) + shift[:, None]
        h = nn.Conv(self.channels, (self.kernel,), padding="SAME")(h)
        h = _mish(nn.GroupNorm(num_groups=min(8, self.channels))(h))
        return x + h


class Denoiser(nn.Module):
    """ε-prediction network of the diffusion policy.

    Attributes:
      action_size: A; channels: temporal conv width; blocks: residual FiLM blocks; kernel: conv size;
      cond_dim: width of the observation/step conditioning.
    """

    action_size: int
    channels: int = 64
    blocks: int = 3
    kernel: int = 5
    cond_dim: int = 128
    features: int = 64
    enc_channels: Sequence[int] = (16, 32, 32, 32)
    use_vision: bool = True
    use_proprio: bool = True

    def setup(self):
        self.encoder = Encoder(self.features, tuple(self.enc_channels))
        self.obs_mlp = _Head((self.cond_dim,), self.cond_dim)
        self.t_mlp = _Head((self.cond_dim,), self.cond_dim)
        self.inp = nn.Dense(self.channels)
        self.body = [_FiLMBlock(self.channels, self.kernel) for _ in range(self.blocks)]
        self.out = nn.Dense(self.action_size, kernel_init=nn.initializers.zeros)

    def condition(self, frames, proprio):
        """Observation conditioning (computed once per sampling call): [B, cond_dim]."""
        return self.obs_mlp(_obs_features(self.encoder, frames, proprio, self.use_vision, self.use_proprio))

    def denoise(self, x, t, obs_cond):
        """x [B, H, A] noisy chunk, t [B] int steps, obs_cond [B, cond_dim] -> ε̂ [B, H, A]."""
        cond = _mish(obs_cond + self.t_mlp(timestep_embedding(t, self.cond_dim)))
        h = self.inp(x)
        for blk in self.body:
            h = blk(h, cond)
        return self.out(h)

    def __call__(self, x, t, frames, proprio):
        return self.denoise(x, t, self.condition(frames, proprio))
