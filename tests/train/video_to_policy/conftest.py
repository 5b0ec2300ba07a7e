"""Shared, session-scoped fixtures of the video-to-policy tests (compiles are slow on 2 CPU cores)."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def point_task():
    from train.video_to_policy import sim

    return sim.get_task("point", episode_length=30)


@pytest.fixture(scope="session")
def point_records(point_task):
    """(demos, play) of the reduced task at 32x32: 6 expert demos, 6 perturbed play episodes."""
    from train.video_to_policy import sim

    demos = sim.collect(point_task, range(6), size=32)
    play = sim.collect(point_task, range(100, 106), kind="play", size=32, noise=0.4, random_frac=0.3)
    return demos, play
