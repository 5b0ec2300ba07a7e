"""Sizing the main job to the hardware: how many robots and steps fit a wall-clock budget.

``python -m train --size auto`` uses :func:`size_for_hardware`: on a CPU a short run (a few minutes
including compilation), on a GPU thousands of robots. ``--num-envs``/``--timesteps`` still override.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# Measured anchors: dishwashing-class MJX tasks run ~1k control steps/s on 2 CPU cores and 160-230k on an
# H200 (DESIGN.md); PPO's update roughly halves that.
_CPU_STEPS_PER_SEC = 400.0
_GPU_STEPS_PER_SEC = 80_000.0


# Shorter episodes on a CPU so that a few-minute run completes episodes (economics need whole ones).
_CPU_ENV = {"dishwashing": {"episode_seconds": 60.0}, "bricklaying": {"episode_seconds": 60.0}}


def size_for_hardware(backend: str | None = None, minutes: float | None = None, num_devices: int | None = None,
                      cpu_steps_per_sec: float = _CPU_STEPS_PER_SEC, env: str | None = None) -> Size:
    """A PPO size for the default backend (or ``backend``) and a wall-clock budget in minutes.

    CPU: 32 robots, 4 x 10-step unrolls per minute of budget after ~1.5 minutes of compilation
    (default budget 4 minutes in all), 60-second episodes for the MJX tasks, convergence judged on the
    training episodes (no second compiled env step; ``python -m evaluate`` does the deterministic one).
    GPU: 4096 robots per device, unroll 16, budget 10 minutes, evaluations of 1500 steps (60 s of work).
    """
    backend = backend or jax.default_backend()
    n_dev = num_devices or jax.local_device_count()
    if backend == "cpu":
        minutes = 4.0 if minutes is None else minutes
        train_seconds = max(30.0, (minutes - 1.5) * 60.0)
        num_envs = 32
        unroll = 10
        steps = int(cpu_steps_per_sec * train_seconds)
        steps = max(steps - steps % (num_envs * unroll * 20), num_envs * unroll * 20)
        return Size(num_envs=num_envs, unroll_length=unroll, num_minibatches=4, total_timesteps=steps, eval_every=20,
                    num_eval_envs=0, minutes=minutes, policy_hidden=(64, 64), value_hidden=(128, 128),
                    eval_steps=300, env_overrides=dict(_CPU_ENV.get(env or "", {})),
                    note=f"CPU x{n_dev}: {num_envs} robots, ~{steps:,} steps in ~{minutes:g} min incl. compile")
    minutes = 10.0 if minutes is None else minutes
    num_envs = 4096 * n_dev
    steps = int(_GPU_STEPS_PER_SEC * n_dev * minutes * 60.0 * 0.9)
    return Size(num_envs=num_envs, unroll_length=16, num_minibatches=32, total_timesteps=steps, eval_every=20,
                num_eval_envs=128, minutes=minutes, policy_hidden=(128, 128, 128, 128),
                value_hidden=(256, 256, 256, 256, 256), eval_steps=1500, env_overrides={},
                note=f"{backend.upper()} x{n_dev}: {num_envs} robots, up to {steps:,} steps in {minutes:g} min")
