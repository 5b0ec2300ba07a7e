"""The video-to-policy point task: :class:`envs.point.PointDeliver` at the pipeline's settings.

Video-to-policy renders its demonstrations with :func:`envs.point.render` (pure JAX, vmappable)
and labels them with :func:`envs.point.expert`; this variant moves a little faster (larger
steps and radii, 4 s per step) and keeps objects off the border of the frame.
"""

from __future__ import annotations

from envs.contract import State
from envs.point import PointData, PointParams, expert, render
from envs.point import PointDeliver as _PointDeliver
from vpjax import economics as E


class PointDeliver(_PointDeliver):
    """The point task with video-to-policy's defaults (one robot; vmap for batches)."""

    def __init__(self, episode_length: int = 40, dt: float = 4.0):
        econ = E.EconParams.create(human_mp=60.0, human_wage=18.0, price_per_unit=0.30, anneal_steps=50.0)
        params = PointParams.create(econ, max_step=0.15, grasp_radius=0.15, drop_radius=0.15, rough_speed=0.98,
                                    spawn_range=0.9)
        super().__init__(episode_length=episode_length, dt=dt, params=params)


__all__ = ["PointDeliver", "PointData", "PointParams", "State", "expert", "render"]
