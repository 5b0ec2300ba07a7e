"""Dataset records, stable ids and the window loader."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train.video_to_policy import records as R
from train.video_to_policy.demo_loader import DemoLoader


def _rec(t=5, seed=0, kind="demo", fill=0, hw=8, task="point"):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (t + 1, hw, hw, 3), dtype=np.uint8)
    frames[0, 0, 0, 0] = fill
    return R.Record(frames=frames, timestamps=np.arange(t + 1, dtype=np.float32), proprio=rng.normal(size=(t + 1, 3)),
                    actions=np.arange(t * 2, dtype=np.float32).reshape(t, 2) / 10, states=rng.normal(size=(t + 1, 9)),
                    task=task, seed=seed, kind=kind, summary={"mp": 1.5})


def test_roundtrip_and_stable_id(tmp_path):
    r = _rec()
    rid = R.save(r, str(tmp_path))
    R.write_index(str(tmp_path), "point", [r])
    back = R.load(str(tmp_path), rid)
    assert back.id == rid == r.id == _rec().id  # same content -> same id, across constructions
    np.testing.assert_array_equal(back.frames, r.frames)
    np.testing.assert_allclose(back.actions, r.actions)
    assert back.summary == {"mp": 1.5} and back.task == "point" and back.seed == 0
    assert len(R.load_dataset(str(tmp_path))) == 1


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 255), st.integers(1, 1000))
def test_id_changes_with_content(pixel, seed):
    a = _rec(fill=pixel, seed=seed)
    b = _rec(fill=(pixel + 1) % 256, seed=seed)
    assert a.id != b.id
    assert a.id != _rec(fill=pixel, seed=seed, kind="play").id


def test_shape_errors_name_the_field():
    r = _rec()
    with pytest.raises(ValueError, match="actions"):
        R.Record(frames=r.frames, timestamps=r.timestamps, proprio=r.proprio, actions=r.actions[:-1], states=r.states,
                 task="point", seed=0)
    with pytest.raises(ValueError, match="frames"):
        R.Record(frames=r.frames.astype(np.float32), timestamps=r.timestamps, proprio=r.proprio, actions=r.actions,
                 states=r.states, task="point", seed=0)


def test_missing_and_wrong_task_and_tampered(tmp_path):
    with pytest.raises(FileNotFoundError, match="collect"):
        R.read_index(str(tmp_path / "nope"))
    r = _rec()
    R.save(r, str(tmp_path))
    R.write_index(str(tmp_path), "point", [r])
    with pytest.raises(ValueError, match="task 'dishwashing'"):
        R.load_dataset(str(tmp_path), task="dishwashing")
    with pytest.raises(ValueError, match="dishwashing"):
        R.write_index(str(tmp_path), "dishwashing", [r])
    # edit the stored frames: the content hash no longer matches the id
    path = os.path.join(str(tmp_path), f"{r.id}.npz")
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    d["frames"] = d["frames"].copy()
    d["frames"][0, 0, 0, 0] ^= 1
    np.savez(path, **d)
    with pytest.raises(ValueError, match="content hash"):
        R.load(str(tmp_path), r.id)


def test_loader_windows_clamp_and_mask():
    recs = [_rec(t=5, seed=1), _rec(t=3, seed=2)]
    ld = DemoLoader(recs, frame_offsets=(-1, 0, 1), action_horizon=4, batch_size=3, seed=0)
    assert ld.num_windows == 8
    b = ld.gather(np.array([[0, 0], [0, 4], [1, 2]]))
    assert b["frames"].shape == (3, 3, 8, 8, 3) and b["frames"].dtype == np.uint8
    assert b["proprio"].shape == (3, 3, 3) and b["actions"].shape == (3, 4, 2)
    np.testing.assert_array_equal(b["frames"][0, 0], recs[0].frames[0])  # t-1 clamped to the first frame
    np.testing.assert_array_equal(b["frames"][1, 2], recs[0].frames[5])  # t+1 = T is the last frame
    np.testing.assert_array_equal(b["mask"][1], [1, 0, 0, 0])
    np.testing.assert_allclose(b["actions"][1], np.repeat(recs[0].actions[4:5], 4, 0))  # last action repeated
    np.testing.assert_allclose(b["actions"][2, :1], recs[1].actions[2:3])
    np.testing.assert_array_equal(b["mask"][2], [1, 0, 0, 0])
    batches = list(ld.epoch())
    assert len(batches) == 2 and all(x["frames"].shape[0] == 3 for x in batches)
    seen = np.concatenate([x["where"] for x in batches])
    assert len({tuple(w) for w in seen}) == 6  # a shuffled epoch has no repeats
    assert sum(1 for _ in ld.stream(5)) == 5


def test_loader_labels_override():
    r = _rec(t=4)
    lab = {r.id: np.full((4, 2), 0.5, np.float32)}
    ld = DemoLoader([r], (0,), 1, 2, labels=lab)
    np.testing.assert_allclose(ld.gather(np.array([[0, 1]]))["actions"], 0.5)
    with pytest.raises(ValueError, match="labels"):
        DemoLoader([r], (0,), 1, 2, labels={r.id: np.zeros((3, 2))})
