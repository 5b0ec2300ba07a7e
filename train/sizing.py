"""Sizing the main job to the hardware: how many robots and steps fit a wall-clock budget.

``python -m train --size auto`` uses :func:`size_for_hardware`: on a CPU a short run (a few minutes
including compilation), on a GPU thousands of robots. ``--num-envs``/``--timesteps`` still override.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax


@dataclass(frozen=True)
class Size:
    num_envs: int
    unroll_length: int
    num_minibatches: int
    total_timesteps: int
    eval_every: int
    num_eval_envs: int
    minutes: float
    policy_hidden: tuple[int, ...]
    value_hidden: tuple[int, ...]
    eval_steps: int
    env_overrides: dict
    note: str
    imitation: dict = field(default_factory=dict)


# Measured anchors: dishwashing-class MJX tasks run ~1k control steps/s on 2 CPU cores and 160-230k on an
# H200 (DESIGN.md); PPO's update roughly halves that.
_CPU_STEPS_PER_SEC = 400.0
_GPU_STEPS_PER_SEC = 80_000.0


# Shorter episodes on a CPU so that a few-minute run completes episodes (economics need whole ones).
_CPU_ENV = {"dishwashing": {"episode_seconds": 60.0}, "bricklaying": {"episode_seconds": 60.0}}


# The student of the demonstration route (DAgger, then PPO from it): 3 x 256 (a 4 x 128 student stalled at
# 0.3x the expert on dishwashing; benchmarks/results/learn_dishwashing_cpu.md).
STUDENT_HIDDEN = (256, 256, 256)
# One DAgger round on 2 CPU cores: 96k collected steps at ~2k steps/s plus 4,000 minibatches: ~70 s.
_CPU_ROUND_SECONDS = 70.0


def size_imitation(backend: str, minutes: float | None, n_dev: int) -> tuple[float, dict, str]:
    """(minutes, imitation-section overrides, note) of a DAgger/BC run on this hardware.

    CPU: 32 robots x 3,000 steps (two work cycles) per round, as many rounds as the budget (default
    12 minutes) holds after compilation and the held-out evaluation. GPU: 2,048 robots per device x 3,000
    steps, 12 rounds, 128 held-out robots.
    """
    if backend == "cpu":
        minutes = 12.0 if minutes is None else minutes
        rounds = max(4, int((minutes * 60.0 - 60.0 - 150.0) / _CPU_ROUND_SECONDS))  # compile; held-out eval
        over = {"num_envs": 32, "rollout_steps": 3000, "rounds": rounds, "sgd_steps": 4000}
        return minutes, over, f"CPU x{n_dev}: DAgger sized to {minutes:g} min: 32 robots x 3,000 steps per round"
    minutes = 15.0 if minutes is None else minutes
    num_envs = 2048 * n_dev
    # 6M rows per round; the buffer keeps the newest 36M (~16 GiB on the device; the oldest rounds drop out)
    over = {"num_envs": num_envs, "rollout_steps": 3000, "rounds": 12, "sgd_steps": 8000, "batch_size": 4096,
            "num_eval_envs": 128, "capacity": 36_000_000}
    return minutes, over, f"{backend.upper()} x{n_dev}: DAgger sized to {minutes:g} min: {num_envs} robots x 3,000 steps per round"


def size_for_hardware(backend: str | None = None, minutes: float | None = None, num_devices: int | None = None,
                      cpu_steps_per_sec: float = _CPU_STEPS_PER_SEC, env: str | None = None,
                      algorithm: str = "ppo", from_policy: bool = False) -> Size:
    """A PPO size for the default backend (or ``backend``) and a wall-clock budget in minutes.

    CPU: 32 robots, 4 x 10-step unrolls per minute of budget after ~1.5 minutes of compilation
    (default budget 4 minutes in all), 60-second episodes for the MJX tasks (the full task when
    ``from_policy``: a policy's time-left observation is tied to its episode length), convergence judged on the
    training episodes (no second compiled env step; ``python -m evaluate`` does the deterministic one).
    ``algorithm`` "dagger"/"bc": see :func:`size_imitation`.
    GPU: 4096 robots per device, unroll 16, budget 10 minutes, evaluations of 1500 steps (60 s of work).
    """
    backend = backend or jax.default_backend()
    n_dev = num_devices or jax.local_device_count()
    if algorithm in ("dagger", "bc"):
        minutes, over, note = size_imitation(backend, minutes, n_dev)
        return Size(num_envs=over["num_envs"], unroll_length=16, num_minibatches=32, total_timesteps=0, eval_every=20,
                    num_eval_envs=0, minutes=minutes, policy_hidden=STUDENT_HIDDEN,
                    value_hidden=(256, 256, 256, 256, 256), eval_steps=0, env_overrides={}, note=note, imitation=over)
    if backend == "cpu":
        minutes = 4.0 if minutes is None else minutes
        train_seconds = max(30.0, (minutes - 1.5) * 60.0)
        num_envs = 32
        unroll = 10
        steps = int(cpu_steps_per_sec * train_seconds)
        steps = max(steps - steps % (num_envs * unroll * 20), num_envs * unroll * 20)
        return Size(num_envs=num_envs, unroll_length=unroll, num_minibatches=4, total_timesteps=steps, eval_every=20,
                    num_eval_envs=0, minutes=minutes, policy_hidden=(64, 64), value_hidden=(128, 128),
                    eval_steps=300, env_overrides={} if from_policy else dict(_CPU_ENV.get(env or "", {})),
                    note=f"CPU x{n_dev}: {num_envs} robots, ~{steps:,} steps in ~{minutes:g} min incl. compile")
    minutes = 10.0 if minutes is None else minutes
    num_envs = 4096 * n_dev
    steps = int(_GPU_STEPS_PER_SEC * n_dev * minutes * 60.0 * 0.9)
    return Size(num_envs=num_envs, unroll_length=16, num_minibatches=32, total_timesteps=steps, eval_every=20,
                num_eval_envs=128, minutes=minutes, policy_hidden=STUDENT_HIDDEN,
                value_hidden=(256, 256, 256, 256, 256), eval_steps=1500, env_overrides={},
                note=f"{backend.upper()} x{n_dev}: {num_envs} robots, up to {steps:,} steps in {minutes:g} min")
