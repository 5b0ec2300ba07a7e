"""Data-parallel sharding: 2 CPU devices give the same training as 1 device on the same global batch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from train.members import make_mesh, shard_state

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, "tests/train")
    import jax, numpy as np
    from point_env import PointDeliver
    from train.config import PPOConfig
    from train.runner import RunConfig, run_training
    assert jax.device_count() == 2, jax.devices()
    env = PointDeliver()
    cfg = PPOConfig(num_envs=32, unroll_length=8, num_minibatches=4, update_epochs=2, learning_rate=1e-3,
                    total_timesteps=32 * 8 * 2 * 2, eval_every=2, num_eval_envs=8, policy_hidden=(16, 16),
                    value_hidden=(16, 16))
    one = run_training(cfg, env, run=RunConfig(progress=False, num_devices=1))
    two = run_training(cfg, env, run=RunConfig(progress=False, num_devices=2))
    shard = two.state.env_state.obs.sharding
    out = {"devices_two": len(shard.device_set), "spec": str(shard.spec),
           "max_abs": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                          for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(two.state.params))),
           "ret_one": [r["episode_return"] for r in one.rows], "ret_two": [r["episode_return"] for r in two.rows],
           "mp_one": [r["eval_MP_r"] for r in one.rows], "mp_two": [r["eval_MP_r"] for r in two.rows]}
    print("RESULT" + json.dumps(out))
""")


def test_two_devices_equal_one_device():
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    out = json.loads(line[0][len("RESULT"):])
    assert out["devices_two"] == 2 and "data" in out["spec"]
    assert out["max_abs"] < 1e-4, out
    np.testing.assert_allclose(out["ret_one"], out["ret_two"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["mp_one"], out["mp_two"], rtol=1e-4, atol=1e-4)


def test_num_envs_must_divide_devices(point_env, small_cfg):
    from train.runner import RunConfig, run_training

    if jax.device_count() < 2:
        mesh = make_mesh(1)
        assert mesh.size == 1
        with pytest.raises(ValueError, match="--devices 5"):
            make_mesh(5)
    else:  # pragma: no cover - only with forced host devices
        with pytest.raises(ValueError, match="num_envs"):
            run_training(small_cfg.replace(num_envs=63, num_minibatches=1), point_env, run=RunConfig(num_devices=2))
