"""Dataset record format for demonstration video (one compressed ``.npz`` per demonstration).

A dataset is a folder::

    <root>/index.json          {"format": "vpjax-video-v1", "task": ..., "records": [{"id", "file", "kind", ...}]}
    <root>/<id>.npz            one record (see :class:`Record`)

What a learner may see of a demonstration is its video (``frames``, ``timestamps``) and the robot's
proprioception (``proprio``: joint angles, standing in for a pose estimate from the video). The true
``actions`` and full simulator ``states`` (the env observation) are *hidden*: kept for evaluation only
(IDM accuracy, the "BC on true actions" reference). Records of kind ``"play"`` are the robot's own
labelled data, where the actions are known by construction and may be trained on.

The id is a stable content hash (never a Python ``id()``): SHA-256 over the frames' bytes and the task/seed/kind, so
the same demonstration always gets the same id, and a re-rendered or edited one a new id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Iterable

import numpy as np

FORMAT = "vpjax-video-v1"
KINDS = ("demo", "play")


@dataclasses.dataclass(frozen=True)
class Record:
    """One demonstration (or play episode).

    Attributes:
      frames: uint8 [T+1, H, W, 3]; frame t is rendered *before* action t (frame T after the last).
      timestamps: float32 [T+1] simulated seconds.
      proprio: float32 [T+1, P] robot proprioception (observable).
      actions: float32 [T, A] true actions in [-1, 1] (hidden for kind "demo").
      states: float32 [T+1, O] env observations (hidden; evaluation only).
      task: task name, e.g. "dishwashing".
      seed: the episode's seed.
      kind: "demo" (expert video) or "play" (the robot's own labelled data).
      summary: episode economics at the end (units, errors, mp, ...), floats.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    task: str
    seed: int
    kind: str = "demo"
    summary: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"frames: expected uint8 [T+1, H, W, 3], got {f.dtype} {f.shape}")
        n = f.shape[0]
        if n < 2:
            raise ValueError(f"frames: need at least 2 frames, got {n}")
        for name, want in (("timestamps", n), ("proprio", n), ("states", n), ("actions", n - 1)):
            got = getattr(self, name).shape[0]
            if got != want:
                raise ValueError(f"{name}: expected leading size {want} (frames {n}), got {got}")
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {KINDS}")

    @property
    def length(self) -> int:
        """Number of actions T."""
        return int(self.actions.shape[0])

    @property
    def id(self) -> str:
        return content_id(self.frames, self.task, self.seed, self.kind)


def content_id(frames: np.ndarray, task: str, seed: int, kind: str) -> str:
    """Stable id: first 16 hex digits of SHA-256(frames bytes, shape, task, seed, kind)."""
    h = hashlib.sha256()
    h.update(f"{task}|{int(seed)}|{kind}|{tuple(frames.shape)}|".encode())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()[:16]


def save(rec: Record, root: str) -> str:
    """Writes ``rec`` as ``<root>/<id>.npz`` and returns the id (the index is written by :func:`write_index`)."""
    os.makedirs(root, exist_ok=True)
    rid = rec.id
    np.savez_compressed(
        os.path.join(root, f"{rid}.npz"), frames=rec.frames, timestamps=rec.timestamps.astype(np.float32),
        proprio=rec.proprio.astype(np.float32), actions=rec.actions.astype(np.float32),
        states=rec.states.astype(np.float32),
        meta=np.asarray(json.dumps({"task": rec.task, "seed": int(rec.seed), "kind": rec.kind, "id": rid,
                                    "summary": {k: float(v) for k, v in rec.summary.items()}})))
    return rid


def write_index(root: str, task: str, records: Iterable[Record], extra: dict | None = None) -> str:
    """Writes ``<root>/index.json`` listing ``records`` (merging with an existing index of the same task)."""
    path = os.path.join(root, "index.json")
    entries = {}
    if os.path.exists(path):
        old = read_index(root)
        if old["task"] != task:
            raise ValueError(f"{path}: dataset is for task {old['task']!r}, cannot add {task!r} records")
        entries = {e["id"]: e for e in old["records"]}
    for r in records:
        entries[r.id] = {"id": r.id, "file": f"{r.id}.npz", "kind": r.kind, "seed": int(r.seed), "length": r.length,
                         "frame_shape": list(r.frames.shape[1:])}
    index = {"format": FORMAT, "task": task, "records": sorted(entries.values(), key=lambda e: (e["kind"], e["seed"])),
             **(extra or {})}
    with open(path, "w") as fh:
        json.dump(index, fh, indent=1)
    return path


def read_index(root: str) -> dict:
    """Reads and checks ``<root>/index.json``; a missing folder or index fails with the path and a hint."""
    path = os.path.join(root, "index.json")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset {root!r}: folder not found (run `python -m train.video_to_policy collect "
                                f"--out {root}` first)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset {root!r}: no index.json (not a collected dataset?)")
    with open(path) as fh:
        index = json.load(fh)
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index


def load(root: str, rid: str) -> Record:
    """Loads record ``rid`` from ``root`` and checks its content hash."""
    path = os.path.join(root, f"{rid}.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset {root!r}: record file {path!r} listed in index.json is missing")
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        rec = Record(frames=z["frames"], timestamps=z["timestamps"], proprio=z["proprio"], actions=z["actions"],
                     states=z["states"], task=meta["task"], seed=meta["seed"], kind=meta["kind"],
                     summary=meta.get("summary", {}))
    if rec.id != rid:
        raise ValueError(f"{path}: content hash {rec.id} does not match its id {rid} (file corrupted or edited)")
    return rec


def load_dataset(root: str, kind: str | None = None, task: str | None = None) -> list[Record]:
    """All records of ``root`` (optionally only one ``kind``); ``task`` guards against mixing tasks."""
    index = read_index(root)
    if task is not None and index["task"] != task:
        raise ValueError(f"dataset {root!r} holds task {index['task']!r}, but task {task!r} was requested")
    recs = [load(root, e["id"]) for e in index["records"] if kind is None or e["kind"] == kind]
    if not recs:
        raise ValueError(f"dataset {root!r}: no records of kind {kind!r}")
    return recs
