"""Fault runs: ``kill -9`` of a training process once it has checkpointed, then ``--resume``, ends with
the same policy, bit for bit, as a run that was never interrupted (PPO and DAgger)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POINT = "tests/train/point_env.py:PointDeliver"
PPO = ["--env", POINT, "--num-envs", "16", "--unroll-length", "10", "--eval-every", "2", "--timesteps",
       str(16 * 10 * 2 * 40), "--set", "ppo.policy_hidden=[16,16]", "--set", "ppo.value_hidden=[16,16]",
       "--set", "ppo.num_eval_envs=4", "--set", "ppo.checkpoint_every=1", "--set", "ppo.keep_checkpoints=2"]
DAGGER = ["--env", "dishwashing", "--algorithm", "dagger", "--env-arg", "episode_length=40", "--num-envs", "2",
          "--rounds", "6", "--set", "imitation.sgd_steps=200", "--set", "imitation.batch_size=64",
          "--set", "imitation.num_eval_envs=0", "--set", "ppo.policy_hidden=[32,32]"]


def _cmd(args, out):
    return [sys.executable, "-m", "train", *args, "--out", str(out), "--no-progress"]


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _killed_then_resumed(args, out: Path, first_ckpt: str, timeout: float = 600):
    """Starts the run, SIGKILLs it once ``first_ckpt`` is complete, resumes it; returns (killed?, resume rc)."""
    proc = subprocess.Popen(_cmd(args, out), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = out / "checkpoints" / first_ckpt / "vpjax_meta.json"
    t0 = time.time()
    while not marker.exists() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(_cmd(args + ["--resume"], out), cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=timeout)
    return killed, resumed


# the DAgger case compiles the dishwashing env in three processes (~2 min): slow, so the default suite keeps
# its 15-minute budget (passed 2026-12-02: pytest -m slow tests/train/test_train_kill_resume.py)
@pytest.mark.parametrize("name,args,first_ckpt", [("ppo", PPO, "ckpt_00000004"),
                                                  pytest.param("dagger", DAGGER, "ckpt_00000002", marks=pytest.mark.slow)])
def test_kill_9_then_resume_is_bit_identical(tmp_path, name, args, first_ckpt):
    clean = subprocess.run(_cmd(args, tmp_path / "clean"), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed, resumed = _killed_then_resumed(args, tmp_path / "killed", first_ckpt)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert killed, f"{name}: the run finished before it could be killed; lengthen it"
    a = (tmp_path / "clean" / "policy.msgpack").read_bytes()
    b = (tmp_path / "killed" / "policy.msgpack").read_bytes()
    assert a == b, f"{name}: the resumed run's policy differs from the uninterrupted run's"
