"""Behaviour cloning from video: proprioception plus visual features -> action (MSE), jitted.

Trained on IDM-labelled demonstrations (the VPT recipe) or, as the reference, on the hidden true
actions. The policy sees the last ``obs_horizon`` frames and proprioception readings.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import common
from .demo_loader import DemoLoader
from .models import BCNet, Normalizer
from .records import Record


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """BC policy size and training settings (CPU-sized defaults)."""

    hidden: tuple[int, ...] = (256, 256)
    features: int = 64
    channels: tuple[int, ...] = (16, 32, 32, 32)
    obs_horizon: int = 2
    use_vision: bool = True
    use_proprio: bool = True
    steps: int = 600
    batch_size: int = 64
    learning_rate: float = 1e-3

    def net(self, action_size: int) -> BCNet:
        return BCNet(action_size=action_size, hidden=tuple(self.hidden), features=self.features,
                     channels=tuple(self.channels), use_vision=self.use_vision, use_proprio=self.use_proprio)

    @property
    def frame_offsets(self) -> tuple[int, ...]:
        return tuple(range(-(self.obs_horizon - 1), 1))


def _device_batch(batch: dict, norm: Normalizer) -> dict:
    return {"frames": jnp.asarray(batch["frames"]), "proprio": norm(jnp.asarray(batch["proprio"])),
            "actions": jnp.asarray(batch["actions"][:, 0])}


def train(demos: Sequence[Record], cfg: BCConfig, key: jax.Array, labels: Mapping[str, np.ndarray] | None = None,
          quiet: bool = False):
    """Clones a policy from ``demos`` with ``labels`` ({id: [T, A]}, e.g. IDM labels) or their true actions.

    Returns:
      (variables {"params", "norm"}, losses [steps]).
    """
    k_seed, k_init, k_fit = jax.random.split(key, 3)
    loader = DemoLoader(demos, cfg.frame_offsets, 1, cfg.batch_size, seed=int(jax.random.randint(k_seed, (), 0, 2**30)),
                        labels=labels)
    norm = Normalizer.fit(loader.proprio)
    net = cfg.net(loader.action_size)
    sample = _device_batch(loader.gather(loader.windows[:2]), norm)
    params = net.init(k_init, sample["frames"], sample["proprio"])["params"]
    with common.Progress("BC", cfg.steps, quiet) as bar:
        params, losses = common.fit(params, common.mse_loss(net), loader.stream(cfg.steps), cfg.steps, cfg.learning_rate,
                                    k_fit, progress=bar.update, to_device=lambda b: _device_batch(b, norm))
    return {"params": params, "norm": {"mean": norm.mean, "std": norm.std}}, losses


def make_act(net: BCNet, variables):
    """Jitted ``act(frames [N, K, H, W, 3], proprio [N, K, P]) -> [N, A]`` (raw proprio; normalized inside)."""
    norm = Normalizer(mean=variables["norm"]["mean"], std=variables["norm"]["std"])
    params = variables["params"]

    @jax.jit
    def act(frames, proprio):
        return net.apply({"params": params}, frames, norm(proprio))

    return act


def heldout_mse(net: BCNet, variables, demos: Sequence[Record], cfg: BCConfig) -> float:
    """Action MSE of the policy against the demos' hidden true actions (an offline check)."""
    act = make_act(net, variables)
    loader = DemoLoader(demos, cfg.frame_offsets, 1, 256)
    err = [np.asarray((act(jnp.asarray(b["frames"]), jnp.asarray(b["proprio"])) - b["actions"][:, 0]) ** 2)
           for b in loader.sequential()]
    return float(np.concatenate(err).mean())
