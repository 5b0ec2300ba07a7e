"""Inverse dynamics model (VPT-style): learn from the robot's own labelled play, then label demo video.

The IDM sees frames (t, t+1) and, optionally, proprioception at t and t+1, and predicts action t. It is
trained only on records of kind ``"play"`` (actions known by construction); its accuracy is measured
on held-out *demonstrations* against their hidden true actions, next to the trivial baseline that
always predicts the training mean action.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import common
from .demo_loader import DemoLoader
from .models import IDMNet, Normalizer
from .records import Record

FRAME_OFFSETS = (0, 1)


@dataclasses.dataclass(frozen=True)
class IDMConfig:
    """IDM size and training settings (CPU-sized defaults)."""

    hidden: tuple[int, ...] = (256, 256)
    features: int = 64
    channels: tuple[int, ...] = (16, 32, 32, 32)
    use_proprio: bool = True
    steps: int = 600
    batch_size: int = 64
    learning_rate: float = 1e-3

    def net(self, action_size: int) -> IDMNet:
        return IDMNet(action_size=action_size, hidden=tuple(self.hidden), features=self.features,
                      channels=tuple(self.channels), use_proprio=self.use_proprio)


def _proprio_features(proprio, norm: Normalizer, dnorm: Normalizer):
    """[B, 2, P] raw -> [B, 3, P]: both readings standardized, plus the standardized change between them.

    The change (a joint velocity) is what inverse dynamics is about; giving it explicitly spares the
    network from learning a small difference of two large, separately normalized numbers.
    """
    proprio = jnp.asarray(proprio)
    delta = dnorm(proprio[:, 1] - proprio[:, 0])
    return jnp.concatenate([norm(proprio), delta[:, None]], 1)


def _device_batch(batch: dict, norm: Normalizer, dnorm: Normalizer) -> dict:
    return {"frames": jnp.asarray(batch["frames"]), "proprio": _proprio_features(batch["proprio"], norm, dnorm),
            "actions": jnp.asarray(batch["actions"][:, 0]), "mask": jnp.asarray(batch["mask"][:, 0])}


def _fit_delta_norm(loader: DemoLoader) -> Normalizer:
    b = loader.gather(loader.windows)
    return Normalizer.fit(b["proprio"][:, 1] - b["proprio"][:, 0])


def train(play: Sequence[Record], cfg: IDMConfig, key: jax.Array, quiet: bool = False):
    """Trains the IDM on play records.

    Returns:
      (variables {"params", "norm": {"mean","std"}, "mean_action"}, losses [steps]).
    """
    loader = DemoLoader(play, FRAME_OFFSETS, 1, cfg.batch_size, seed=int(jax.random.randint(key, (), 0, 2**30)))
    norm = Normalizer.fit(loader.proprio)
    dnorm = _fit_delta_norm(loader)
    net = cfg.net(loader.action_size)
    k_init, k_fit = jax.random.split(key)
    sample = _device_batch(loader.gather(loader.windows[:2]), norm, dnorm)
    params = net.init(k_init, sample["frames"], sample["proprio"])["params"]
    with common.Progress("IDM", cfg.steps, quiet) as bar:
        params, losses = common.fit(params, common.mse_loss(net), loader.stream(cfg.steps), cfg.steps, cfg.learning_rate,
                                    k_fit, progress=bar.update, to_device=lambda b: _device_batch(b, norm, dnorm))
    mean_action = loader.actions.mean(0)
    return {"params": params, "norm": {"mean": norm.mean, "std": norm.std},
            "dnorm": {"mean": dnorm.mean, "std": dnorm.std},
            "mean_action": jnp.asarray(mean_action)}, losses


def _norm(variables) -> Normalizer:
    return Normalizer(mean=variables["norm"]["mean"], std=variables["norm"]["std"])


def _dnorm(variables) -> Normalizer:
    return Normalizer(mean=variables["dnorm"]["mean"], std=variables["dnorm"]["std"])


def _apply_fn(net: IDMNet):
    return jax.jit(lambda p, f, q: net.apply({"params": p}, f, q))


def predict(net: IDMNet, variables, records: Sequence[Record], batch_size: int = 256) -> dict[str, np.ndarray]:
    """Labels every record with IDM actions: {id: [T, A]}."""
    apply = _apply_fn(net)
    norm, dnorm = _norm(variables), _dnorm(variables)
    out = {}
    for r in records:
        loader = DemoLoader([r], FRAME_OFFSETS, 1, batch_size)
        preds = [np.asarray(apply(variables["params"], jnp.asarray(b["frames"]),
                                  _proprio_features(b["proprio"], norm, dnorm)))
                 for b in loader.sequential(batch_size)]
        out[r.id] = np.concatenate(preds).astype(np.float32)
    return out


def embed(net: IDMNet, variables, records: Sequence[Record], batch_size: int = 256) -> dict[str, np.ndarray]:
    """Per-record video embedding: mean encoder features over its (t, t+1) windows, {id: [F]}."""
    enc = jax.jit(lambda p, f: net.apply({"params": p}, f, method=IDMNet.embed))
    out = {}
    for r in records:
        loader = DemoLoader([r], FRAME_OFFSETS, 1, batch_size)
        feats = [np.asarray(enc(variables["params"], jnp.asarray(b["frames"]))) for b in loader.sequential(batch_size)]
        out[r.id] = np.concatenate(feats).mean(0).astype(np.float32)
    return out


def accuracy(net: IDMNet, variables, records: Sequence[Record]) -> dict[str, float]:
    """Held-out accuracy vs the hidden true actions, and the trivial mean-action baseline.

    Returns:
      {"mse", "baseline_mse", "r2", "mae", "windows"}; r2 = 1 − SSE/SSE(baseline).
    """
    labels = predict(net, variables, records)
    pred = np.concatenate([labels[r.id] for r in records])
    true = np.concatenate([r.actions for r in records])
    base = np.broadcast_to(np.asarray(variables["mean_action"]), true.shape)
    return {"mse": float(np.mean((pred - true) ** 2)), "baseline_mse": float(np.mean((base - true) ** 2)),
            "r2": common.r2_score(pred, true, base), "mae": float(np.mean(np.abs(pred - true))),
            "windows": int(true.shape[0])}
