"""Streams shuffled batches of windows from demonstration records.

A *window* is (record r, time t) with 0 <= t < T_r. For each window the loader gathers

* ``frames``  uint8 [B, K, H, W, 3] at times ``t + o`` for the K ``frame_offsets`` (e.g. (0, 1) for the
  inverse dynamics model, (-1, 0) for a policy with observation horizon 2);
* ``proprio`` float32 [B, K, P] at the same times;
* ``actions`` float32 [B, H, A] at t .. t+H-1 (``action_horizon`` H; 1 for BC, 16 for the diffusion policy);
* ``mask``    float32 [B, H], 1 where t+h is inside the episode;
* ``where``   int32 [B, 2] (record, t).

Times before the start / after the end are clamped to the first / last frame (and the last action is
repeated, masked), as diffusion-policy implementations pad. All records are held in memory once
(concatenated); batches are gathered with NumPy fancy indexing, so a batch costs one copy.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np

from .records import Record


class DemoLoader:
    """Shuffled window batches over a list of :class:`Record`.

    Args:
      records: the demonstrations (all with the same frame shape, proprio and action sizes).
      frame_offsets: K time offsets of the frames and proprioception per window.
      action_horizon: H actions per window.
      batch_size: windows per batch.
      seed: seed of the shuffling (NumPy; shuffling is host-side work, outside jit).
      labels: optional {record id: [T, A]} actions replacing the records' own (e.g. IDM labels).
    """

    def __init__(self, records: Sequence[Record], frame_offsets: Sequence[int] = (0,), action_horizon: int = 1,
                 batch_size: int = 64, seed: int = 0, labels: Mapping[str, np.ndarray] | None = None):
        if not records:
            raise ValueError("records: empty; nothing to load")
        shapes = {r.frames.shape[1:] for r in records}
        if len(shapes) > 1:
            raise ValueError(f"records: mixed frame shapes {sorted(shapes)}")
        if batch_size < 1 or action_horizon < 1:
            raise ValueError(f"batch_size={batch_size}, action_horizon={action_horizon}: both must be >= 1")
        self.frame_offsets = np.asarray(frame_offsets, np.int64)
        self.action_horizon = int(action_horizon)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.ids = [r.id for r in records]
        acts = []
        for r in records:
            a = r.actions if labels is None or r.id not in labels else np.asarray(labels[r.id], np.float32)
            if a.shape != r.actions.shape:
                raise ValueError(f"labels[{r.id}]: shape {a.shape}, expected {r.actions.shape}")
            acts.append(a)
        self.frames = np.concatenate([r.frames for r in records])
        self.proprio = np.concatenate([r.proprio for r in records]).astype(np.float32)
        # actions padded with one repeated row per record so that frame and action indices line up
        self.actions = np.concatenate([np.concatenate([a, a[-1:]]) for a in acts]).astype(np.float32)
        lengths = np.asarray([r.length for r in records])
        self.starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])  # first frame of each record
        self.lengths = lengths
        self.windows = np.concatenate([np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(lengths)])

    @property
    def num_windows(self) -> int:
        return int(self.windows.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[1:])

    @property
    def proprio_size(self) -> int:
        return int(self.proprio.shape[1])

    @property
    def action_size(self) -> int:
        return int(self.actions.shape[1])

    def gather(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Batch for explicit windows ``[B, 2]`` (record, t)."""
        rec, t = windows[:, 0], windows[:, 1]
        start, n = self.starts[rec], self.lengths[rec]
        ft = np.clip(t[:, None] + self.frame_offsets[None], 0, n[:, None])  # frames exist for 0..T
        fidx = start[:, None] + ft
        ht = t[:, None] + np.arange(self.action_horizon)[None]
        mask = (ht < n[:, None]).astype(np.float32)
        aidx = start[:, None] + np.minimum(ht, n[:, None] - 1)
        return {"frames": self.frames[fidx], "proprio": self.proprio[fidx], "actions": self.actions[aidx],
                "mask": mask, "where": windows.astype(np.int32)}

    def epoch(self) -> Iterator[dict[str, np.ndarray]]:
        """One shuffled pass; the last partial batch is dropped (fixed shapes keep jit from recompiling)."""
        perm = self.rng.permutation(self.num_windows)
        nb = max(1, self.num_windows // self.batch_size)
        for b in range(nb):
            sel = perm[b * self.batch_size:(b + 1) * self.batch_size]
            if sel.shape[0] < self.batch_size:  # fewer windows than one batch: sample with replacement
                sel = self.rng.integers(0, self.num_windows, self.batch_size)
            yield self.gather(self.windows[sel])

    def stream(self, steps: int) -> Iterator[dict[str, np.ndarray]]:
        """``steps`` batches, reshuffling at each epoch boundary."""
        done = 0
        while done < steps:
            for batch in self.epoch():
                yield batch
                done += 1
                if done >= steps:
                    return

    def sequential(self, batch_size: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """All windows in order (evaluation / labelling); the last batch may be smaller."""
        bs = batch_size or self.batch_size
        for i in range(0, self.num_windows, bs):
            yield self.gather(self.windows[i:i + bs])
