"""Orbax checkpoints of the whole training state, with integrity checks and fallback.

A checkpoint ``<run>/checkpoints/ckpt_<iteration:08d>/`` holds the leaves of the training state
(parameters, optimizer state, normalizer, env state, RNG key, iteration and convergence counters)
saved with orbax, and ``vpjax_meta.json`` -- written last, so a run killed mid-save leaves a
checkpoint without it -- recording the leaf count, shapes, dtypes and a SHA-256 of the leaf bytes.
:func:`restore_latest` walks checkpoints from newest to oldest and returns the first that restores
and verifies; each one skipped is reported with the reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vpjax.cli import UserError

META = "vpjax_meta.json"
PREFIX = "ckpt_"


class CheckpointError(UserError, RuntimeError):
    """No usable checkpoint (all corrupt/partial, or none matches the run's configuration).

    A user error: the CLIs report it as one line (``python -m train: error: ...``), status 2."""


def _host(x) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # multi-host: gather the global array
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _checkpointer():
    """Orbax's checkpointer, confined to this process.

    Multi-host, only process 0 saves (the leaves were gathered first) and each process restores by itself;
    orbax's default barrier is a collective over all devices (``sync_global_devices``), which a save on
    process 0 alone would run against the other processes' next training step (a collective mismatch).
    """
    import orbax.checkpoint as ocp

    if jax.process_count() == 1:
        return ocp.PyTreeCheckpointer()
    me = jax.process_index()
    mp = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(multiprocessing_options=mp), multiprocessing_options=mp)


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint folders under ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.is_dir() and p.name.startswith(PREFIX)), key=lambda p: p.name)


def save(directory: str | Path, iteration: int, state: Any, extra: dict | None = None, keep: int = 3) -> Path:
    """Saves ``state`` as ``ckpt_<iteration>``; keeps the newest ``keep`` checkpoints.

    Args:
      directory: the run's checkpoints folder.
      iteration: training iterations done (names the checkpoint).
      state: any pytree of arrays (the runner's stacked TrainState).
      extra: JSON-able data stored in the meta file (wall time, CSV rows written, ...).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PREFIX}{iteration:08d}"
    leaves = [_host(x) for x in jax.tree.leaves(state)]
    if jax.process_index() == 0:
        if path.exists():
            shutil.rmtree(path)
        # orbax refuses zero-size arrays (mjx.Data has some); their shape and dtype in the meta suffice
        _checkpointer().save((path / "state").absolute(),
                             {f"{i:06d}": a for i, a in enumerate(leaves) if a.size > 0})
        meta = {"iteration": int(iteration), "num_leaves": len(leaves), "shapes": [list(a.shape) for a in leaves],
                "dtypes": [str(a.dtype) for a in leaves], "sha256": _digest(leaves), "extra": extra or {}}
        tmp = path / (META + ".tmp")
        tmp.write_text(json.dumps(meta))
        tmp.rename(path / META)  # the commit marker: present only for a complete checkpoint
        for old in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def load(path: str | Path, template: Any) -> tuple[Any, dict]:
    """Restores one checkpoint into the structure of ``template``; raises CheckpointError with the reason."""
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: partial checkpoint ({META} missing; the save did not finish)")
    try:
        meta = json.loads(meta_path.read_text())
    except Exception as e:
        raise CheckpointError(f"{path / META}: unreadable ({e})") from e
    t_leaves, treedef = jax.tree.flatten(template)
    if meta.get("num_leaves") != len(t_leaves):
        raise CheckpointError(f"{path}: holds {meta.get('num_leaves')} arrays, this run's state has {len(t_leaves)} "
                              "(different configuration?)")
    for i, (shape, t) in enumerate(zip(meta["shapes"], t_leaves)):
        if tuple(shape) != tuple(np.shape(t)):
            raise CheckpointError(f"{path}: array {i} has shape {tuple(shape)}, this run expects {tuple(np.shape(t))} "
                                  "(different num_envs/networks?)")
    try:
        restored = _checkpointer().restore((path / "state").absolute())
    except Exception as e:
        raise CheckpointError(f"{path}: orbax could not read the arrays ({type(e).__name__}: {e})") from e
    try:
        arrays = [np.asarray(restored[f"{i:06d}"]) if int(np.prod(shape)) > 0 else
                  np.zeros(shape, np.dtype(dtype)) for i, (shape, dtype) in
                  enumerate(zip(meta["shapes"], meta["dtypes"]))]
    except KeyError as e:
        raise CheckpointError(f"{path}: array {e} missing") from e
    if _digest(arrays) != meta.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (the files were modified or truncated)")
    arrays = [a.astype(np.asarray(t).dtype) if hasattr(t, "dtype") else a for a, t in zip(arrays, t_leaves)]
    return jax.tree.unflatten(treedef, arrays), meta


def restore_latest(directory: str | Path, template: Any, log=None) -> tuple[Any, dict] | None:
    """The newest checkpoint that restores and verifies, or None when there is none at all.

    Corrupt or partial checkpoints are reported (``warnings.warn`` or ``log``) and skipped, falling back to
    the previous one. When every checkpoint is partial (the run was killed during its first save, before
    the commit marker), none was ever completed: None, and the run starts fresh.

    Raises:
      CheckpointError: completed checkpoints exist but none is usable (corrupt, or another configuration's).
    """
    paths = list_checkpoints(directory)
    if not paths:
        return None
    reasons = []
    say = log or (lambda m: warnings.warn(m, stacklevel=2))
    for path in reversed(paths):
        try:
            return load(path, template)
        except CheckpointError as e:
            say(f"skipping corrupt or partial checkpoint: {e}; falling back to the previous one")
            reasons.append(str(e))
    if not any((p / META).is_file() for p in paths):
        say(f"{directory}: only partial checkpoints (no save finished); starting fresh")
        return None
    raise CheckpointError(f"{directory}: no usable checkpoint among {len(paths)}: " + "; ".join(reasons))
