"""Dishwashing: a humanoid upper body washes dirty dishes and puts them in a drying rack.

What the economic counters count (per robot, per episode, in simulated time):

* **unit** -- a dish that was *washed* (held by a hand, i.e. both fingers of that hand touching it,
  inside the wash-station zone above the sink for a total of ``params.washing_time`` seconds) and is
  then *resting in a rack slot* (on the counter within ``slot_tolerance`` of a slot centre, slower
  than ``rest_speed``, touched by no finger). The dish is then recycled to its home spot on the
  counter as a new dirty dish.
* **error** -- a *broken* dish (it lands on the counter faster than ``break_velocity``, judged from
  the lowest vertical velocity during the control step's physics substeps; or it leaves the
  counter), or a dish *racked unwashed*. The dish is recycled as well, so work goes on.
* **attempt** -- a dish *picked up*: grasped (both fingers of one hand in contact) and lifted
  2 cm above its resting height, counted once per dish until it is recycled. A dish that ends in an
  error without ever having been picked up also counts as an attempt (so e = errors/attempts ≤ 1).

Work seconds are control steps × ``env.dt`` (no multipliers). With the defaults (washing time 40 s,
episode 240 s = 6000 control steps of 0.04 s) the scripted expert's cycle (fetch, lift, carry at
0.3 m/s, wash 40 s in the sink, rack, return: ~46 s) gives 4–5 units per episode, 60–75 dishes/h,
i.e. 1.0–1.25 × MPₕ = 60 dishes/h.

Physics note: MuJoCo's soft contacts let a dish pinched by two capsule fingers creep down slowly
(a few mm/s), so dishes are carried low and briefly and washed resting on the sink floor while held.


Shaping terms (unscaled in ``metrics['shaping_*']``, scaled by ``params.shaping_scales``):
``reach`` (hand close to a dirty dish, 1 while holding one), ``grasp`` (a dish held and lifted),
``wash`` (a held dirty dish inside the wash zone), ``place`` (a washed dish close to a rack slot).

Run ``python -m envs.dishwashing --expert --render out.mp4`` for a video of the scripted expert.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from envs.base import ASSETS, MjxTaskEnv, fine_relation
from envs.params import DomainRandomization, EnvParams
from envs.robot import pair_touching
from vpjax.economics import EconParams

Array = jax.Array
COUNTER_Z = 0.85
REST_LIFT = 0.02  # m above resting height that counts as "lifted"
WASH_HEIGHT = 0.25  # m above the counter: top of the wash zone


@struct.dataclass
class DishwashingParams(EnvParams):
    """EnvParams of dishwashing (all array leaves; vmappable).

    Attributes (besides :class:`envs.params.EnvParams`):
      washing_time: [] s a dish must be held in the wash zone.
      break_velocity: [] m/s landing speed above which a dish breaks.
      slot_tolerance: [] m, xy distance to a slot centre that counts as "in the slot".
      rest_speed: [] m/s below which a dish counts as resting.
    """

    washing_time: Array
    break_velocity: Array
    slot_tolerance: Array
    rest_speed: Array

    @classmethod
    def create(cls, econ: EconParams | None = None, **kw: Any) -> "DishwashingParams":
        """Default params; ``kw`` overrides fields (see :func:`envs.params.override_params`)."""
        return cls.build(
            econ=EconParams.create() if econ is None else econ,
            shaping_scales={"reach": 0.02, "grasp": 0.05, "wash": 0.05, "place": 0.1},
            dr=DomainRandomization.create(),
            task=dict(washing_time=40.0, break_velocity=1.2, slot_tolerance=0.03, rest_speed=0.05),
            overrides=kw,
        )


class Dishwashing(MjxTaskEnv):
    """The dishwashing task (see the module docstring for unit/error/attempt).

    Args:
      params: default params (None -> ``DishwashingParams.create()``).
      episode_seconds: episode duration in simulated seconds (used unless ``episode_length``).
      episode_length: control steps per episode (overrides ``episode_seconds``).
      fine_obs: append each dish's relations to the hands, the sink and the free slot a second time at
        millimetre resolution (:func:`envs.base.fine_relation`), as bricklaying does. Off by default so that policies
        trained without them keep loading; `configs/dishwashing.yaml` turns it on for new runs (a run's
        ``env_kwargs`` in config.json records which one it was trained with).
      **kw: :class:`envs.base.MjxTaskEnv` constructor args (action_mode, arms, n_substeps,
        reward_fn, economic_reward).
    """

    SHAPING_TERMS = ("reach", "grasp", "wash", "place")
    OBSERVATION_OPTIONS = MjxTaskEnv.OBSERVATION_OPTIONS + ("fine_obs",)
    name = "dishwashing"

    def __init__(
        self,
        params: DishwashingParams | None = None,
        *,
        episode_seconds: float = 240.0,
        episode_length: int | None = None,
        n_substeps: int = 4,
        xml: str | None = None,
        fine_obs: bool = False,
        **kw: Any,
    ):
        self.fine_obs = bool(fine_obs)
        xml = str(ASSETS / "dishwashing.xml") if xml is None else xml
        params = DishwashingParams.create() if params is None else params
        m = mujoco.MjModel.from_xml_path(xml)
        dt = float(m.opt.timestep) * int(n_substeps)
        if episode_length is None:
            episode_length = int(round(float(episode_seconds) / dt))
        super().__init__(xml, params, episode_length=episode_length, n_substeps=n_substeps, **kw)
        m = self.mj_model
        self._free_objects("dish")
        self.n_dishes = len(self.object_body)
        self.dish_rest_z = COUNTER_Z + m.geom_size[self.object_geom, 2]  # [N] ellipsoid z semi-axis
        self.object_spawn_z = self.dish_rest_z + 0.001
        self.dish_home = m.body_pos[self.object_body].astype(np.float32)  # [N, 3]
        sink = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "sink")
        self.sink_center = m.site_pos[sink].astype(np.float32)
        self.sink_half = m.site_size[sink][:2].astype(np.float32)
        slots = [i for i in range(m.nsite) if (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, i) or "").startswith("slot")]
        self.slots = m.site_pos[slots].astype(np.float32)  # [S, 3]

    # -- task hooks
    def _task_reset(self, key, qpos, params):
        n = self.n_dishes
        home = self._sample_home(key, params, self.dish_home)
        qpos = self._place_objects(qpos, home)
        info = {
            "dish_home": home,  # [N, 3] x, y, yaw
            "wash_time": jnp.zeros(n),
            "picked": jnp.zeros(n),
            "held": jnp.zeros(n),
            "washed": jnp.zeros(n),
        }
        return qpos, info

    def _dish_state(self, data):
        pos, vel = self._object_pos_vel(data)  # [N, 3] each
        return pos, vel

    def _in_sink(self, pos):
        sx, sy = self.sink_center[0], self.sink_center[1]
        return (
            (jnp.abs(pos[:, 0] - sx) < self.sink_half[0])
            & (jnp.abs(pos[:, 1] - sy) < self.sink_half[1])
            & (pos[:, 2] < COUNTER_Z + WASH_HEIGHT)
        )

    def _task_step(self, data0, data, info, aux, params):
        n = self.n_dishes
        pos, vel = self._dish_state(data)
        touch = pair_touching(data, self.finger_geoms, self.object_geom)  # [4, N]
        grasp_by = touch[0::2] & touch[1::2]  # [2, N]: right, left hand
        held = jnp.any(grasp_by, axis=0)
        any_touch = jnp.any(touch, axis=0)
        height = pos[:, 2] - jnp.asarray(self.dish_rest_z)
        lifted = height > REST_LIFT
        in_sink = self._in_sink(pos)
        washing = held & in_sink
        wash_time = info["wash_time"] + self.dt * washing
        washed = wash_time >= params.washing_time
        picked = info["picked"] > 0
        new_pick = held & lifted & ~picked

        on_counter = height < 0.01
        speed = jnp.linalg.norm(vel, axis=-1)
        # landed (or about to, within this step) faster than the threshold
        impact = (height < 0.02) & (aux["min_vz"] < -params.break_velocity)
        lo, hi = self.workspace
        lost = (pos[:, 0] < 0.1) | (pos[:, 0] > 0.95) | (jnp.abs(pos[:, 1]) > 0.8) | (height < -0.05)
        slot_d = jnp.linalg.norm(pos[:, None, :2] - jnp.asarray(self.slots)[None, :, :2], axis=-1)  # [N, S]
        in_slot = jnp.min(slot_d, axis=-1) < params.slot_tolerance
        racked = in_slot & on_counter & (speed < params.rest_speed) & ~any_touch & ~impact
        unit = racked & washed
        unwashed = racked & ~washed
        broken = (impact | lost) & ~unit
        error = broken | unwashed
        recycle = unit | error

        deltas = {
            "units": jnp.sum(unit).astype(jnp.float32),
            "errors": jnp.sum(error).astype(jnp.float32),
            "attempts": jnp.sum(new_pick | (error & ~picked)).astype(jnp.float32),
        }

        # shaping (computed before recycling, from this step's physics)
        ee = data.site_xpos[jnp.asarray(self.robot.grasp_site[list(self.active_arms)])]  # [A, 3]
        d_hand = jnp.min(jnp.linalg.norm(ee[:, None, :] - pos[None, :, :], axis=-1), axis=0)  # [N]
        dirty_free = ~held & ~washed
        reach = jnp.where(jnp.any(held), 1.0, jnp.max(jnp.where(dirty_free, 1.0 - jnp.tanh(5.0 * d_hand), 0.0)))
        grasp = jnp.max((held & lifted).astype(jnp.float32))
        wash = jnp.max((washing & ~washed).astype(jnp.float32))
        d_slot = jnp.sqrt(jnp.min(slot_d, axis=-1) ** 2 + height**2)  # to the nearest slot's resting pose
        place = jnp.max(jnp.where(washed, 1.0 - jnp.tanh(5.0 * d_slot), 0.0))
        terms = {"reach": reach, "grasp": grasp, "wash": wash, "place": place}

        # recycle racked/broken dishes to their home spots as new dirty dishes
        home = info["dish_home"]
        data = self._recycle_objects(data, recycle, home)

        task_info = {
            "dish_home": home,
            "wash_time": jnp.where(recycle, 0.0, wash_time),
            "picked": ((picked | new_pick) & ~recycle).astype(jnp.float32),
            "held": (held & ~recycle).astype(jnp.float32),
            "washed": (washed & ~recycle).astype(jnp.float32),
        }
        del n
        return data, task_info, deltas, terms

    def _task_obs(self, data, info, params):
        r = self.robot
        pos, vel = self._dish_state(data)
        ee = data.site_xpos[jnp.asarray(r.grasp_site)]  # [2, 3]
        q = data.qpos[jnp.asarray(r.robot_qpos)]
        qd = data.qvel[jnp.asarray(r.robot_dof)]
        rel = pos[None, :, :] - ee[:, None, :]  # [2, N, 3]
        wash_frac = jnp.clip(info["wash_time"] / params.washing_time, 0.0, 1.0)
        # what the work's next step depends on, made explicit (a capped fraction near 1 is hard to tell
        # from 1): the washed flag and the first free rack slot, the one a washed dish goes to
        slot_d = jnp.linalg.norm(pos[:, None, :2] - jnp.asarray(self.slots)[None, :, :2], axis=-1)  # [N, S]
        occupied = jnp.any((slot_d < 0.06) & (info["held"] <= 0)[:, None], axis=0)  # [S]
        free = jnp.argmin(jnp.where(occupied, 1e3, jnp.arange(self.slots.shape[0])))
        per_dish = jnp.concatenate(
            [
                pos - jnp.array([0.3, 0.0, COUNTER_Z]),
                rel.transpose(1, 0, 2).reshape(self.n_dishes, 6),
                jnp.clip(vel, -5.0, 5.0),
                wash_frac[:, None],
                info["held"][:, None],
                self._in_sink(pos).astype(jnp.float32)[:, None],
                (jnp.asarray(self.sink_center) - pos),
                (jnp.asarray(self.slots)[free] - pos),
                info["washed"][:, None],
            ],
            axis=-1,
        )
        if self.fine_obs:  # the expert's switches (descend within 8 mm, close within 1.2 cm, rack within 3 cm)
            per_dish = jnp.concatenate([
                per_dish,
                fine_relation(rel.transpose(1, 0, 2).reshape(self.n_dishes, 6)),
                fine_relation(jnp.asarray(self.sink_center) - pos),
                fine_relation(jnp.asarray(self.slots)[free] - pos),
            ], axis=-1)
        time_left = 1.0 - info["t"].astype(jnp.float32) / self.episode_length
        return jnp.concatenate(
            [q, jnp.clip(qd * 0.1, -10.0, 10.0), ee.reshape(-1), per_dish.reshape(-1), time_left[None]]
        )


def _main(argv=None) -> int:
    from envs.cli import main

    return main("dishwashing", argv, cameras="overview, front, head")


if __name__ == "__main__":
    raise SystemExit(_main())
