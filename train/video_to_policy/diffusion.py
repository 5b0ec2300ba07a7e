"""Diffusion policy with action chunks (Chi et al. 2023), scaled down: DDPM training, DDIM sampling.

* Observation: the last ``obs_horizon`` (2) frames and proprioception readings.
* Prediction: a chunk of ``pred_horizon`` (16) actions starting at the current step; the policy executes
  the first ``action_horizon`` (8) and then replans.
* Training: ε-prediction, x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, with a cosine (Nichol & Dhariwal) or linear β
  schedule over ``diffusion_steps`` steps; the loss is masked where the chunk runs past the episode end.
* Sampling: deterministic DDIM (η = 0) over ``ddim_steps`` evenly spaced steps, as one ``lax.scan``.
  Given the same key, params and observation it returns the same chunk bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from . import common
from .demo_loader import DemoLoader
from .models import Denoiser, Normalizer
from .records import Record

SCHEDULES = ("cosine", "linear")


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion-policy settings (CPU-sized network, the paper's horizons)."""

    obs_horizon: int = 2
    pred_horizon: int = 16
    action_horizon: int = 8
    diffusion_steps: int = 100
    ddim_steps: int = 10
    schedule: str = "cosine"
    channels: int = 64
    blocks: int = 3
    kernel: int = 5
    cond_dim: int = 128
    features: int = 64
    enc_channels: tuple[int, ...] = (16, 32, 32, 32)
    use_vision: bool = True
    use_proprio: bool = True
    steps: int = 800
    batch_size: int = 64
    learning_rate: float = 1e-3

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: use one of {SCHEDULES}")
        if not 1 <= self.action_horizon <= self.pred_horizon:
            raise ValueError(f"action_horizon={self.action_horizon}: must be in [1, pred_horizon={self.pred_horizon}]")
        if not 1 <= self.ddim_steps <= self.diffusion_steps:
            raise ValueError(f"ddim_steps={self.ddim_steps}: must be in [1, diffusion_steps={self.diffusion_steps}]")

    def net(self, action_size: int) -> Denoiser:
        return Denoiser(action_size=action_size, channels=self.channels, blocks=self.blocks, kernel=self.kernel,
                        cond_dim=self.cond_dim, features=self.features, enc_channels=tuple(self.enc_channels),
                        use_vision=self.use_vision, use_proprio=self.use_proprio)

    @property
    def frame_offsets(self) -> tuple[int, ...]:
        return tuple(range(-(self.obs_horizon - 1), 1))


@struct.dataclass
class NoiseSchedule:
    """β schedule tables. betas, alphas_cumprod: [T]."""

    betas: jax.Array
    alphas_cumprod: jax.Array


def make_schedule(steps: int, kind: str = "cosine") -> NoiseSchedule:
    """Cosine (s = 0.008, β clipped at 0.999) or linear (DDPM 1e-4 .. 0.02 rescaled to ``steps``) schedule."""
    if kind == "cosine":
        s = 0.008
        x = np.linspace(0, steps, steps + 1, dtype=np.float64)
        ac = np.cos(((x / steps) + s) / (1 + s) * np.pi / 2) ** 2
        ac = ac / ac[0]
        betas = np.clip(1 - ac[1:] / ac[:-1], 0.0, 0.999)
    elif kind == "linear":
        scale = 1000.0 / steps  # DDPM's 1e-4..0.02 is for 1000 steps; rescale so that x_T is noise at any T
        betas = np.linspace(1e-4 * scale, min(0.02 * scale, 0.999), steps, dtype=np.float64)
    else:
        raise ValueError(f"schedule kind {kind!r}: use one of {SCHEDULES}")
    return NoiseSchedule(betas=jnp.asarray(betas, jnp.float32),
                         alphas_cumprod=jnp.asarray(np.cumprod(1.0 - betas), jnp.float32))


def q_sample(sched: NoiseSchedule, x0, t, noise):
    """Forward process: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε. x0, noise: [B, H, A]; t: [B] int."""
    ab = sched.alphas_cumprod[t][:, None, None]
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def make_loss(net: Denoiser, sched: NoiseSchedule):
    """``loss(params, batch, key) -> (masked ε-MSE, aux)``; batch: frames, proprio, actions [B, H, A], mask [B, H]."""
    n_steps = sched.betas.shape[0]

    def loss(params, batch, key):
        k_t, k_n = jax.random.split(key)
        x0 = batch["actions"]
        t = jax.random.randint(k_t, (x0.shape[0],), 0, n_steps)
        noise = jax.random.normal(k_n, x0.shape)
        eps = net.apply({"params": params}, q_sample(sched, x0, t, noise), t, batch["frames"], batch["proprio"])
        w = batch["mask"][..., None]
        mse = jnp.sum(w * (eps - noise) ** 2) / (jnp.sum(w) * x0.shape[-1])
        return mse, {"mse": mse}

    return loss


def ddim_timesteps(diffusion_steps: int, ddim_steps: int) -> np.ndarray:
    """Descending DDIM step indices, e.g. (100, 10) -> [90, 80, ..., 0]."""
    return (np.arange(ddim_steps)[::-1] * (diffusion_steps // ddim_steps)).astype(np.int32)


def make_sampler(net: Denoiser, sched: NoiseSchedule, cfg: DiffusionConfig, action_size: int):
    """Jitted ``sample(params, frames [N,K,H,W,3], proprio [N,K,P] normalized, key) -> chunk [N, H, A]``.

    Deterministic DDIM (η = 0): the only randomness is x_T ~ N(0, I) drawn from ``key``.
    """
    ts = jnp.asarray(ddim_timesteps(cfg.diffusion_steps, cfg.ddim_steps))
    prev = jnp.concatenate([ts[1:], jnp.asarray([-1], jnp.int32)])
    ac = sched.alphas_cumprod

    @jax.jit
    def sample(params, frames, proprio, key):
        n = frames.shape[0]
        cond = net.apply({"params": params}, frames, proprio, method=Denoiser.condition)
        x = jax.random.normal(key, (n, cfg.pred_horizon, action_size))

        def body(x, tt):
            t, tp = tt
            eps = net.apply({"params": params}, x, jnp.full((n,), t), cond, method=Denoiser.denoise)
            ab_t = ac[t]
            ab_p = jnp.where(tp >= 0, ac[jnp.maximum(tp, 0)], 1.0)
            x0 = jnp.clip((x - jnp.sqrt(1.0 - ab_t) * eps) / jnp.sqrt(ab_t), -1.0, 1.0)
            eps = (x - jnp.sqrt(ab_t) * x0) / jnp.sqrt(1.0 - ab_t)  # consistent with the clipped x0
            return jnp.sqrt(ab_p) * x0 + jnp.sqrt(1.0 - ab_p) * eps, None

        x, _ = jax.lax.scan(body, x, (ts, prev))
        return jnp.clip(x, -1.0, 1.0)

    return sample


def _device_batch(batch: dict, norm: Normalizer) -> dict:
    return {"frames": jnp.asarray(batch["frames"]), "proprio": norm(jnp.asarray(batch["proprio"])),
            "actions": jnp.asarray(batch["actions"]), "mask": jnp.asarray(batch["mask"])}


def train(demos: Sequence[Record], cfg: DiffusionConfig, key: jax.Array,
          labels: Mapping[str, np.ndarray] | None = None, quiet: bool = False):
    """Trains the denoiser on action chunks of ``demos`` (``labels`` or true actions).

    Returns:
      (variables {"params", "norm"}, losses [steps]).
    """
    k_seed, k_init, k_fit = jax.random.split(key, 3)
    loader = DemoLoader(demos, cfg.frame_offsets, cfg.pred_horizon, cfg.batch_size,
                        seed=int(jax.random.randint(k_seed, (), 0, 2**30)), labels=labels)
    norm = Normalizer.fit(loader.proprio)
    net = cfg.net(loader.action_size)
    sched = make_schedule(cfg.diffusion_steps, cfg.schedule)
    b = _device_batch(loader.gather(loader.windows[:2]), norm)
    params = net.init(k_init, b["actions"], jnp.zeros((2,), jnp.int32), b["frames"], b["proprio"])["params"]
    with common.Progress("diffusion", cfg.steps, quiet) as bar:
        params, losses = common.fit(params, make_loss(net, sched), loader.stream(cfg.steps), cfg.steps,
                                    cfg.learning_rate, k_fit, progress=bar.update,
                                    to_device=lambda x: _device_batch(x, norm))
    return {"params": params, "norm": {"mean": norm.mean, "std": norm.std}}, losses


def make_act(net: Denoiser, variables, cfg: DiffusionConfig, action_size: int):
    """``act(frames, proprio (raw), key) -> [N, action_horizon, A]``: the chunk part that is executed."""
    norm = Normalizer(mean=variables["norm"]["mean"], std=variables["norm"]["std"])
    sample = make_sampler(net, make_schedule(cfg.diffusion_steps, cfg.schedule), cfg, action_size)
    params = variables["params"]

    def act(frames, proprio, key):
        return sample(params, jnp.asarray(frames), norm(jnp.asarray(proprio)), key)[:, : cfg.action_horizon]

    return act
