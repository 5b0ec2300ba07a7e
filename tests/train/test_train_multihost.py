"""Multi-host training with real processes: two ``python -m train`` processes on this machine, joined by
``jax.distributed`` (localhost coordinator, gloo CPU collectives), each owning one CPU device, train the
toy task together into one shared run folder. Their run must equal a one-process run on two forced CPU
devices with the same global batch, bit for bit (policy file, whole training state, CSV); so must a
two-process ``--resume`` from the shared folder's checkpoint.

Slow (2-3 minutes on a 2-core CPU: three runs, each compiling); the record is in
``benchmarks/results/multihost_cpu.md``. Run it with ``pytest -m slow tests/train/test_train_multihost.py``.
"""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POINT = "tests/train/point_env.py:PointDeliver"
# 16 robots (8 per process), 2 chunks of 2 iterations, a checkpoint after each chunk
ARGS = ["--env", POINT, "--num-envs", "16", "--unroll-length", "8", "--eval-every", "2", "--timesteps",
        str(16 * 8 * 2 * 2), "--set", "ppo.policy_hidden=[16,16]", "--set", "ppo.value_hidden=[16,16]",
        "--set", "ppo.num_eval_envs=4", "--set", "ppo.checkpoint_every=1", "--no-progress"]
TIMING = {"steps_per_sec", "wall_time"}
TIMEOUT = 480


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPJAX_")}
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env.update({"JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags})
    return env


def _one_process_two_devices(out: Path) -> subprocess.CompletedProcess:
    env = _base_env()
    env["XLA_FLAGS"] = (env["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2").strip()
    return subprocess.run([sys.executable, "-m", "train", *ARGS, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _two_processes(out: Path, extra=()) -> list[tuple[int, str, str]]:
    """Process 0 configured by the VPJAX_* variables, process 1 by the flags (both routes are used)."""
    coord = f"127.0.0.1:{_free_port()}"
    env = {**_base_env(), "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}
    cmd = [sys.executable, "-m", "train", *ARGS, "--out", str(out), *extra]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**env, "VPJAX_COORDINATOR": coord, "VPJAX_NUM_PROCESSES": "2", "VPJAX_PROCESS_ID": "0"}),
        subprocess.Popen(cmd + ["--coordinator", coord, "--num-processes", "2", "--process-id", "1"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env),
    ]
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT)
            results.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _digest(run: Path, ckpt: str) -> str:
    return json.loads((run / "checkpoints" / ckpt / "vpjax_meta.json").read_text())["sha256"]


def _assert_same_run(ref: Path, got: Path) -> None:
    assert (got / "policy.msgpack").read_bytes() == (ref / "policy.msgpack").read_bytes(), \
        "two processes x 1 device: policy differs from one process x 2 devices"
    for ckpt in ("ckpt_00000002", "ckpt_00000004"):  # the whole training state: params, optimizer, envs, keys
        assert _digest(got, ckpt) == _digest(ref, ckpt), ckpt
    assert _csv(got / "training_metrics.csv") == _csv(ref / "training_metrics.csv")


@pytest.mark.slow
def test_two_processes_equal_one_process_two_devices(tmp_path):
    ref, shared = tmp_path / "one_process", tmp_path / "two_processes"
    one = _one_process_two_devices(ref)
    assert one.returncode == 0, one.stderr[-3000:]

    runs = _two_processes(shared)
    for i, (rc, _, err) in enumerate(runs):
        assert rc == 0, f"process {i}: {err[-3000:]}"
    conf = json.loads((shared / "config.json").read_text())
    assert conf["num_devices"] == 2 and conf["backend"] == "cpu"
    assert json.loads((ref / "config.json").read_text())["num_devices"] == 2
    _assert_same_run(ref, shared)

    # --resume on both processes from the shared folder's checkpoint at iteration 2
    shutil.rmtree(shared / "checkpoints" / "ckpt_00000004")
    (shared / "policy.msgpack").unlink()
    runs = _two_processes(shared, ["--resume"])
    for i, (rc, out, err) in enumerate(runs):
        assert rc == 0, f"process {i} (--resume): {err[-3000:]}"
        assert "at iteration 2" in out, f"process {i} did not resume: {out[-2000:]}"
    _assert_same_run(ref, shared)
