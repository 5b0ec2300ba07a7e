"""Checkpoints: a killed-and-resumed run equals the uninterrupted one; corrupt checkpoints are skipped."""

import csv
import shutil

import jax
import numpy as np
import pytest

from train import checkpoint as ckpt
from train.runner import RunConfig, run_training


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.fixture(scope="module")
def runs(point_env, small_cfg, programs, tmp_path_factory):
    def train(out, **run):
        return run_training(small_cfg, point_env, run=RunConfig(out_dir=out, progress=False, **run), programs=programs)

    ref_dir = tmp_path_factory.mktemp("ref")
    ref = train(ref_dir, max_chunks=4)
    cut_dir = tmp_path_factory.mktemp("cut")
    first = train(cut_dir, max_chunks=2)
    # Simulate the kill: the chunk after the last checkpoint was logged but never checkpointed.
    with (cut_dir / "training_metrics.csv").open("a") as f:
        f.write(",".join(["999"] * len(first.rows[0])) + "\n")
    resumed = train(cut_dir, resume=True, max_chunks=2)
    return ref, ref_dir, first, resumed, cut_dir


def test_resumed_equals_uninterrupted(runs):
    ref, ref_dir, first, resumed, cut_dir = runs
    assert first.iterations == 10 and resumed.resumed_from == 10 and resumed.iterations == ref.iterations == 20
    for a, b in zip(_leaves(ref.state), _leaves(resumed.state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with (ref_dir / "training_metrics.csv").open() as f:
        ref_rows = list(csv.DictReader(f))
    with (cut_dir / "training_metrics.csv").open() as f:
        cut_rows = list(csv.DictReader(f))
    assert [r["iteration"] for r in cut_rows] == [r["iteration"] for r in ref_rows] == ["5", "10", "15", "20"]
    for ra, rb in zip(ref_rows, cut_rows):
        for k in ("MP_r", "episode_return", "eval_productivity_parity", "alpha", "gamma"):
            assert np.isclose(float(ra[k]), float(rb[k]), rtol=1e-4, atol=1e-6, equal_nan=True), k


def test_corrupt_checkpoint_falls_back(runs, point_env, small_cfg, tmp_path):
    ref, ref_dir, *_ = runs
    work = tmp_path / "ck"
    shutil.copytree(ref_dir / "checkpoints", work)
    paths = ckpt.list_checkpoints(work)
    assert [p.name for p in paths][-2:] == ["ckpt_00000015", "ckpt_00000020"]
    template = jax.device_get(ref.state)
    # Newest: flip bytes in its array data -> checksum (or orbax) failure.
    newest = paths[-1]
    victims = [p for p in (newest / "state").rglob("*") if p.is_file() and p.stat().st_size > 64]
    assert victims
    for v in victims:
        data = bytearray(v.read_bytes())
        data[len(data) // 2] ^= 0xFF
        data[-10] ^= 0xFF
        v.write_bytes(bytes(data))
    messages = []
    state, meta = ckpt.restore_latest(work, template, log=messages.append)
    assert meta["iteration"] == 15
    assert len(messages) == 1 and "ckpt_00000020" in messages[0] and "falling back" in messages[0]
    # Partial: a save killed before its meta file (the commit marker) was written.
    (paths[-2] / ckpt.META).unlink()
    messages.clear()
    state, meta = ckpt.restore_latest(work, template, log=messages.append)
    assert meta["iteration"] == 10
    assert any("partial checkpoint" in m and "ckpt_00000015" in m for m in messages)
    # The restored state is exactly what was saved at iteration 10.
    assert int(np.asarray(state.iteration).reshape(-1)[0]) == 10
    # Nothing usable among completed checkpoints (corrupt markers) -> a clear error naming the folder.
    for p in ckpt.list_checkpoints(work):
        (p / ckpt.META).write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="no usable checkpoint"):
        ckpt.restore_latest(work, template, log=lambda m: None)
    # Only partial checkpoints (killed during the first save): no save ever finished, the run starts fresh.
    for p in ckpt.list_checkpoints(work):
        (p / ckpt.META).unlink()
    messages.clear()
    assert ckpt.restore_latest(work, template, log=messages.append) is None
    assert "only partial checkpoints" in messages[-1] and "starting fresh" in messages[-1]
