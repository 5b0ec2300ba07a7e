"""CLI plumbing: sizing, config resolution, and (slow) python -m train / evaluate / --resume end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import serialization

from train.cli import build_parser
from train.setup import resolve
from train.sizing import size_for_hardware

ROOT = Path(__file__).resolve().parents[2]
POINT = "tests/train/point_env.py:PointDeliver"


def test_sizing_cpu_and_gpu():
    cpu = size_for_hardware("cpu", minutes=4.0, num_devices=1)
    assert cpu.num_envs <= 64 and cpu.minutes == 4.0
    assert cpu.total_timesteps % (cpu.num_envs * cpu.unroll_length * cpu.eval_every) == 0
    assert size_for_hardware("cpu", env="dishwashing").env_overrides == {"episode_seconds": 60.0}
    gpu = size_for_hardware("gpu", minutes=10.0, num_devices=2)
    assert gpu.num_envs == 8192 and gpu.total_timesteps > 100 * cpu.total_timesteps


def test_sizing_of_the_demonstration_route():
    # DAgger: full tasks, the 3 x 256 student, rounds that fit the budget; thousands of robots on a GPU
    short, longer = (size_for_hardware("cpu", minutes=m, env="dishwashing", algorithm="dagger") for m in (8.0, 20.0))
    assert short.env_overrides == {} and short.policy_hidden == (256, 256, 256)
    assert 4 <= short.imitation["rounds"] < longer.imitation["rounds"]
    gpu = size_for_hardware("gpu", num_devices=1, algorithm="dagger")
    assert gpu.imitation["num_envs"] >= 1024 and gpu.imitation["num_envs"] * gpu.imitation["rollout_steps"] >= 3e6
    # PPO from a policy keeps the full task (the policy's time-left observation is tied to the episode length)
    assert size_for_hardware("cpu", env="dishwashing", from_policy=True).env_overrides == {}


def test_explicit_set_wins_over_size_auto(monkeypatch):
    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(["--env", POINT, "--size", "auto", "--set", "ppo.num_eval_envs=7",
                                      "--set", "ppo.policy_hidden=[8,8]"])
    ppo, _, _, _ = resolve(args)
    assert ppo.num_eval_envs == 7 and ppo.policy_hidden == (8, 8)
    args = build_parser().parse_args(["--env", POINT, "--size", "auto", "--algorithm", "dagger",
                                      "--set", "imitation.num_eval_envs=0"])
    assert resolve(args)[3]["imitation"]["num_eval_envs"] == 0


def test_resolve_cli_overrides(monkeypatch):
    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(["--env", POINT, "--num-envs", "48", "--timesteps", "9600", "--alpha", "0.7",
                                      "--gamma", "0.2", "--gamma-schedule", "cosine", "--alpha-anneal",
                                      "--set", "ppo.unroll_length=10", "--env-arg", "episode_length=30"])
    ppo, env, env_params, conf = resolve(args)
    assert ppo.num_envs == 48 and ppo.total_timesteps == 9600 and ppo.unroll_length == 10
    assert (48 * 10) % ppo.num_minibatches == 0
    assert env.episode_length == 30
    econ = env_params.econ
    assert float(econ.alpha_initial) == pytest.approx(0.7) and float(econ.gamma_initial) == pytest.approx(0.2)
    assert int(econ.gamma_schedule) == 2 and int(econ.alpha_schedule) == 1
    assert conf["env_kwargs"] == {"episode_length": 30}


def _run(args, env=None, timeout=900):
    e = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=e)


@pytest.mark.slow
def test_cli_train_evaluate_resume(tmp_path):
    out = tmp_path / "run"
    common = ["train", "--env", POINT, "--num-envs", "32", "--unroll-length", "10", "--eval-every", "2",
              "--set", "ppo.policy_hidden=[16,16]", "--set", "ppo.value_hidden=[16,16]", "--set", "ppo.num_eval_envs=8",
              "--set", "ppo.checkpoint_every=1", "--out", str(out), "--no-progress"]
    p = _run(common + ["--timesteps", str(32 * 10 * 2 * 2)])
    assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "training_metrics.csv").is_file() and (out / "policy.msgpack").is_file()
    # continue the run to twice the steps
    p = _run(common + ["--timesteps", str(32 * 10 * 2 * 4), "--resume"])
    assert p.returncode == 0, p.stderr[-2000:]
    assert "resumed from" in p.stdout + p.stderr
    rows = (out / "training_metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4
    p = _run(["evaluate", "--policy", str(out), "--robots", "8", "--json", str(tmp_path / "ev.json")])
    assert p.returncode == 0, p.stderr[-2000:]
    assert "wage parity" in p.stdout and (out / "parity.png").stat().st_size > 1000
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert {"mp", "error_rate", "implied_wage", "productivity_parity", "wage_parity", "success_rate"} <= set(ev)
    # PPO from that policy: during the critic warm-up the actor and normalizer stay the loaded ones, bit for bit
    warm = tmp_path / "warm"
    p = _run([*common[:-3], "--out", str(warm), "--no-progress", "--timesteps", str(32 * 10 * 2), "--init", str(out),
              "--set", "ppo.critic_warmup_iterations=2"])
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = (serialization.msgpack_restore((d / "policy.msgpack").read_bytes()) for d in (out, warm))
    for x, y in zip(jax.tree.leaves((a["params"]["policy"], a["norm"])), jax.tree.leaves((b["params"]["policy"], b["norm"]))):
        np.testing.assert_array_equal(x, y)
    assert json.loads((warm / "config.json").read_text())["init"] == str(out)


def test_init_continues_on_the_env_its_policy_was_trained_on(monkeypatch, tmp_path):
    """--init takes the options that shape the observation (``OBSERVATION_OPTIONS``) from the policy's run, over
    the config's: its recorded value, else the constructor's default; other env options and --env-arg as usual."""
    monkeypatch.chdir(ROOT)
    src = tmp_path / "src"
    src.mkdir()
    (src / "policy.msgpack").write_bytes(b"")  # resolve only reads the run's config.json

    def run_of(env_kwargs, *extra):
        (src / "config.json").write_text(json.dumps({"env": "dishwashing", "env_kwargs": env_kwargs}))
        return resolve(build_parser().parse_args(["--env", "dishwashing", "--init", str(src), *extra]))

    _, fresh, _, conf = resolve(build_parser().parse_args(["--env", "dishwashing"]))
    assert fresh.fine_obs is True and conf["env_kwargs"] == {"fine_obs": True}  # configs/dishwashing.yaml
    _, env, _, _ = run_of({})  # a run from before fine_obs: the constructor's default
    assert env.fine_obs is False and env.action_mode == "ee_delta"
    _, env, _, conf = run_of({"fine_obs": True, "episode_length": 25})  # not an observation option: not taken
    assert env.fine_obs is True and env.episode_length == fresh.episode_length
    _, env, _, _ = run_of({"fine_obs": False}, "--env-arg", "fine_obs=true")
    assert env.fine_obs is True
    (src / "config.json").write_text("{not json")
    with pytest.raises(SystemExit, match="--init"):
        resolve(build_parser().parse_args(["--env", "dishwashing", "--init", str(src)]))
