"""Slow checks: the full chain with the diffusion policy and PPO fine-tuning; the dishwashing adapter."""

import json
import os

import numpy as np
import pytest

from train.video_to_policy import cli


@pytest.mark.slow
def test_full_chain_with_diffusion_and_finetune(tmp_path):
    d = str(tmp_path / "data")
    assert cli.main(["chain", "--task", "point", "--out", d, "--demos", "4", "--play", "4", "--steps", "30",
                     "--idm-steps", "30", "--bc-steps", "30", "--diffusion-steps", "30", "--ppo-iterations", "10",
                     "--episodes", "4", "--quiet"]) == 0
    rows = {r["policy"] for r in json.load(open(os.path.join(d, "evaluation.json")))}
    assert rows == {"scripted expert", "random", "BC (true actions)", "BC (IDM labels)",
                    "diffusion policy (IDM labels)", "distilled (PPO init)", "PPO fine-tuned"}
    meta = json.load(open(os.path.join(d, "ppo", "meta.json")))
    assert meta["kind"] == "ppo" and len(meta["metrics"]["evals"]) == 1


@pytest.mark.slow
def test_dishwashing_collect_renders_records(tmp_path):
    pytest.importorskip("mujoco")
    from train.video_to_policy import records as R
    from train.video_to_policy import sim

    task = sim.get_task("dishwashing", episode_length=12)
    recs = sim.collect(task, [0, 1], size=32, steps=12)
    assert len(recs) == 2 and recs[0].frames.shape == (13, 32, 32, 3) and recs[0].frames.dtype == np.uint8
    assert recs[0].proprio.shape == (13, task.proprio_size) and recs[0].actions.shape == (12, task.action_size)
    assert recs[0].id != recs[1].id and recs[0].frames.std() > 0  # rendered, not blank
    assert np.all(np.abs(recs[0].actions) <= 1.0)
    R.save(recs[0], str(tmp_path))
    assert R.load(str(tmp_path), recs[0].id).task == "dishwashing"


@pytest.mark.slow
def test_reduced_dishwashing_chain_end_to_end(tmp_path):
    """The documented reduced-dishwashing chain at tiny sizes: every stage runs and writes its outputs.

    (Several MJX compiles: 26 min on 2 shared CPU cores at load ~8. The recorded sizes are in
    benchmarks/results/video_to_policy_dishwashing_cpu.md.)
    """
    pytest.importorskip("mujoco")
    d = str(tmp_path / "dish")
    assert cli.main(["chain", "--task", "dishwashing_reduced", "--out", d, "--demos", "2", "--play", "2",
                     "--steps", "24", "--size", "32", "--noise", "0.1", "--random-frac", "0.05", "--idm-steps", "20",
                     "--bc-steps", "20", "--diffusion-steps", "10", "--ppo-iterations", "10", "--episodes", "2",
                     "--quiet"]) == 0
    idx = json.load(open(os.path.join(d, "index.json")))
    assert idx["task"] == "dishwashing_reduced" and idx["episode_length"] == 24 and idx["size"] == 32
    rows = {r["policy"]: r for r in json.load(open(os.path.join(d, "evaluation.json")))}
    assert set(rows) == {"scripted expert", "random", "BC (true actions)", "BC (IDM labels)",
                         "diffusion policy (IDM labels)", "distilled (PPO init)", "PPO fine-tuned"}
    assert all(r["episodes"] == 2 and np.isfinite(r["mp"]) for r in rows.values())
    with open(os.path.join(d, "data_value.csv")) as fh:
        assert len(fh.read().strip().splitlines()) == 1 + 2  # header + one row per demonstration
