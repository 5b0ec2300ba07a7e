"""Shared pieces: checkpoints (msgpack params + JSON metadata) and the jitted supervised update loop."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

CKPT_FORMAT = "vpjax-v2p-ckpt-v1"


class CheckpointError(ValueError):
    """A checkpoint is missing, of the wrong kind, or from another task."""


def save_checkpoint(path: str, kind: str, task: str, variables: Any, config: dict, metrics: dict | None = None) -> str:
    """Writes ``<path>/params.msgpack`` and ``<path>/meta.json``.

    Args:
      path: checkpoint folder (created).
      kind: "idm", "bc", "diffusion" or "ppo" (checked on load).
      task: env task name (checked on load).
      variables: pytree of arrays (params and normalizer statistics).
      config: JSON-able model/training settings needed to rebuild the network.
      metrics: JSON-able numbers (final losses, held-out accuracy).
    """
    os.makedirs(path, exist_ok=True)
    host = jax.tree.map(np.asarray, variables)
    with open(os.path.join(path, "params.msgpack"), "wb") as fh:
        fh.write(serialization.msgpack_serialize(serialization.to_state_dict(host)))
    meta = {"format": CKPT_FORMAT, "kind": kind, "task": task, "config": config, "metrics": metrics or {},
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(os.path.join(path, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, default=float)
    return path


def load_checkpoint(path: str, kind: str, task: str | None = None) -> tuple[Any, dict]:
    """Reads a checkpoint; fails clearly on a missing folder, another kind or another task.

    Returns:
      (variables as nested dicts of jnp arrays, meta dict).
    """
    meta_path = os.path.join(path, "meta.json")
    if not os.path.exists(meta_path):
        raise CheckpointError(f"checkpoint {path!r}: not found (no meta.json); train it first with "
                              f"`python -m train.video_to_policy {kind} ...`")
    with open(meta_path) as fh:
        meta = json.load(fh)
    if meta.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"checkpoint {path!r}: format {meta.get('format')!r}, expected {CKPT_FORMAT!r}")
    if meta["kind"] != kind:
        raise CheckpointError(f"checkpoint {path!r}: is a {meta['kind']!r} checkpoint, expected {kind!r}")
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"checkpoint {path!r}: trained on task {meta['task']!r}, but this run is for task "
                              f"{task!r}")
    with open(os.path.join(path, "params.msgpack"), "rb") as fh:
        raw = serialization.msgpack_restore(fh.read())
    return jax.tree.map(jnp.asarray, raw), meta


def make_optimizer(lr: float, steps: int, clip: float = 1.0, weight_decay: float = 1e-4) -> optax.GradientTransformation:
    """AdamW with cosine decay to 10% and global-norm clipping (the usual BC / diffusion-policy recipe)."""
    sched = optax.cosine_decay_schedule(lr, max(1, steps), alpha=0.1)
    return optax.chain(optax.clip_by_global_norm(clip), optax.adamw(sched, weight_decay=weight_decay))


def make_update(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """Jitted ``update(params, opt_state, batch, key) -> (params, opt_state, loss, aux)``.

    ``loss_fn(params, batch, key) -> (loss, aux dict)``.
    """

    @jax.jit
    def update(params, opt_state, batch, key):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return update


def mse_loss(net) -> Callable:
    """``loss(params, batch, key) -> (mse, aux)``: ``net``'s action MSE on a batch's frames and proprio (BC, IDM)."""

    def loss(params, batch, key):
        del key
        pred = net.apply({"params": params}, batch["frames"], batch["proprio"])
        mse = jnp.mean((pred - batch["actions"]) ** 2)
        return mse, {"mse": mse}

    return loss


def fit(params, loss_fn: Callable, batches: Iterable[dict], steps: int, lr: float, key: jax.Array,
        progress: Callable[[int, float], None] | None = None, to_device: Callable[[dict], dict] | None = None):
    """Runs ``steps`` optimizer updates over ``batches``.

    Returns:
      (params, losses [steps] as a NumPy array).
    """
    opt = make_optimizer(lr, steps)
    opt_state = opt.init(params)
    update = make_update(loss_fn, opt)
    losses = []
    for i, batch in enumerate(batches):
        if i >= steps:
            break
        key, sub = jax.random.split(key)
        b = to_device(batch) if to_device else {k: jnp.asarray(v) for k, v in batch.items()}
        params, opt_state, loss, _ = update(params, opt_state, b, sub)
        losses.append(loss)
        if progress is not None:
            progress(i, float(loss) if (i % 10 == 0 or i == steps - 1) else float("nan"))
    return params, np.asarray(jax.device_get(losses), np.float64)


def r2_score(pred: np.ndarray, true: np.ndarray, baseline: np.ndarray) -> float:
    """1 − SSE(pred)/SSE(baseline); the baseline is the training mean action (the trivial predictor)."""
    sse = float(np.sum((pred - true) ** 2))
    sst = float(np.sum((true - baseline) ** 2))
    return 1.0 - sse / max(sst, 1e-12)


class Progress:
    """Rich progress bar when stdout is a terminal-capable console; silent when ``quiet``."""

    def __init__(self, description: str, total: int, quiet: bool = False):
        self.quiet = quiet
        self.total = total
        self.description = description
        self._p = None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, Progress as RP, TextColumn, TimeElapsedColumn

            self._p = RP(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                         TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
            self._p.__enter__()
            self._task = self._p.add_task(self.description, total=self.total, info="")
        return self

    def update(self, i: int, loss: float = float("nan"), **fields):
        if self._p is None:
            return
        info = fields.get("info") or ("" if np.isnan(loss) else f"loss {loss:.4f}")
        if info:
            self._p.update(self._task, completed=i + 1, info=info)
        else:
            self._p.update(self._task, completed=i + 1)

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)
        return False
