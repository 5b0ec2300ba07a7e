"""Bricklaying: a humanoid upper body takes bricks from a pallet, mortars them and lays a wall course.

What the economic counters count (per robot, per episode, in simulated time):

* **unit** -- a brick *laid within tolerance after mortar*: it dwelt in the mortar zone (the box up
  to ``MORTAR_HEIGHT`` above the mortar tub) for a total of ``params.mortar_time`` seconds, and it
  then *settled* (slower than ``rest_speed``, touched by no finger, resting on the bench) within
  ``params.pos_tolerance`` (xy) of a free target pose of the wall course, with an orientation error
  (the larger of the yaw error modulo the brick's half-turn symmetry and the tilt) below
  ``params.orient_tolerance``. A laid brick stays in the course; when every target pose of the course
  is filled the course is struck and its bricks go back to the pallet, so work goes on.
* **error** (rework, costs cₐ = ``econ.damage_cost``) -- a brick *laid out of tolerance* (settled in
  the wall zone, within ``wall_zone`` of a free target, but out of position/orientation tolerance or
  without mortar) or *dropped* (it lands faster than ``drop_velocity``, judged from the lowest
  vertical velocity during the control step's substeps; it leaves the bench; or, after being picked
  up, it settles anywhere but the pallet, the mortar tub or the wall). The brick goes back to the
  pallet at once.
* **attempt** -- a brick *picked up*: grasped (both fingers of one hand touching it) and lifted 2 cm,
  counted once per brick until it is laid or reworked. A brick that ends in a unit or an error
  without having been picked up counts as an attempt too (so e = errors/attempts ≤ 1).

Work seconds are control steps × ``env.dt`` (no multipliers). With the defaults (mortar time 40 s,
episode 300 s) the scripted expert's cycle takes about 50 s, i.e. near MPₕ = 60 bricks/h.
The mortar time stands for a mason's whole per-brick routine at the tub (picking up mortar,
buttering the brick's end and bed); it is the knob that sets the task's human pace.

In ``ee_delta`` mode the env also *holds the gripper square to the course*: each active arm's
wrist roll is servoed so the hand's yaw stays at the course yaw (``yaw_hold=True``, structural); the
differential IK leaves that yaw free, and a mason keeps a brick square by hand. ``yaw_hold=False``
leaves the wrist roll to the IK's null space.

Shaping terms (unscaled in ``metrics['shaping_*']``, scaled by ``params.shaping_scales``):
``reach`` (hand close to a pallet brick, 1 while holding one), ``grasp`` (a brick held and lifted),
``mortar`` (a held brick in the mortar zone, not yet mortared), ``place`` (a mortared brick close to
the nearest free target pose).

Run ``python -m envs.bricklaying --expert --render out.mp4`` for a video of the scripted expert.
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
BENCH_Z = 0.85
REST_LIFT = 0.02  # m above resting height that counts as "lifted"
MORTAR_HEIGHT = 0.12  # m above the bench: top of the mortar zone
SETTLE_HEIGHT = 0.04  # m: a brick lower than this above its resting height is "down" (flat, on its side or end)


def _bricklaying_econ() -> EconParams:
    """EconParams of configs/bricklaying.yaml (p, MPₕ, wₕ, cₐ, curriculum)."""
    from vpjax.config import load_config

    return load_config("bricklaying").econ_params()


def _wrap_half_turn(a: Array) -> Array:
    """Angle modulo π into [-π/2, π/2) (a brick and a parallel gripper look the same turned half way)."""
    return (a + jnp.pi / 2) % jnp.pi - jnp.pi / 2


@struct.dataclass
class BricklayingParams(EnvParams):
    """EnvParams of bricklaying (all array leaves; vmappable).

    Attributes (besides :class:`envs.params.EnvParams`):
      mortar_time: [] s a brick must dwell in the mortar zone to get mortar.
      drop_velocity: [] m/s landing speed above which a brick counts as dropped.
      pos_tolerance: [] m, xy distance of a laid brick's centre to its target pose.
      orient_tolerance: [] rad, largest yaw error (mod π) or tilt of a laid brick.
      wall_zone: [] m, xy distance to a free target within which a settled brick is judged as laid.
      rest_speed: [] m/s below which a brick counts as settled.
    """

    mortar_time: Array
    drop_velocity: Array
    pos_tolerance: Array
    orient_tolerance: Array
    wall_zone: Array
    rest_speed: Array

    @classmethod
    def create(cls, econ: EconParams | None = None, **kw: Any) -> "BricklayingParams":
        """Default params; ``kw`` overrides fields (see :func:`envs.params.override_params`)."""
        return cls.build(
            econ=_bricklaying_econ() if econ is None else econ,
            shaping_scales={"reach": 0.02, "grasp": 0.05, "mortar": 0.05, "place": 0.1},
            # pallet bricks are stacked square: small yaw jitter only (the base default is a full turn)
            dr=DomainRandomization.create(object_yaw=0.05),
            task=dict(mortar_time=40.0, drop_velocity=0.8, pos_tolerance=0.02, orient_tolerance=0.15, wall_zone=0.08, rest_speed=0.03),
            overrides=kw,
        )


class Bricklaying(MjxTaskEnv):
    """The bricklaying task (see the module docstring for unit/error/attempt).

    Args:
      params: default params (None -> ``BricklayingParams.create()``).
      episode_seconds: episode duration in simulated seconds (used unless ``episode_length``).
      episode_length: control steps per episode (overrides ``episode_seconds``).
      yaw_hold: in ``ee_delta`` mode, servo the wrist roll so the hand stays square to the course.
      **kw: :class:`envs.base.MjxTaskEnv` constructor args (action_mode, arms, n_substeps,
        reward_fn, economic_reward).
    """

    SHAPING_TERMS = ("reach", "grasp", "mortar", "place")
    name = "bricklaying"

    def __init__(
        self,
        params: BricklayingParams | None = None,
        *,
        episode_seconds: float = 300.0,
        episode_length: int | None = None,
        n_substeps: int = 4,
        yaw_hold: bool = True,
        xml: str | None = None,
        **kw: Any,
    ):
        xml = str(ASSETS / "bricklaying.xml") if xml is None else xml
        params = BricklayingParams.create() if params is None else params
        m = mujoco.MjModel.from_xml_path(xml)
        dt = float(m.opt.timestep) * int(n_substeps)
        if episode_length is None:
            episode_length = int(round(float(episode_seconds) / dt))
        super().__init__(xml, params, episode_length=episode_length, n_substeps=n_substeps, **kw)
        self.yaw_hold = bool(yaw_hold)
        m = self.mj_model
        self._free_objects("brick")
        self.n_bricks = len(self.object_body)
        self.brick_half = m.geom_size[self.object_geom].astype(np.float32)  # [N, 3] box half sizes
        self.brick_rest_z = (BENCH_Z + self.brick_half[:, 2]).astype(np.float32)  # [N]
        self.object_spawn_z = self.brick_rest_z + 0.0005
        self.brick_home = m.body_pos[self.object_body].astype(np.float32)  # [N, 3]

        def site(name):
            i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, name)
            if i < 0:
                raise ValueError(f"{xml}: lacks site {name!r}")
            return i

        mortar = site("mortar")
        self.mortar_center = m.site_pos[mortar].astype(np.float32)
        self.mortar_half = m.site_size[mortar][:2].astype(np.float32)
        pallet = site("pallet")
        self.pallet_center = m.site_pos[pallet].astype(np.float32)
        self.pallet_half = m.site_size[pallet][:2].astype(np.float32)
        course = sorted(
            (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, i), i)
            for i in range(m.nsite)
            if (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, i) or "").startswith("course")
        )
        if not course:
            raise ValueError(f"{xml}: no sites named course*")
        ids = [i for _, i in course]
        self.slots = m.site_pos[ids].astype(np.float32)  # [S, 3] target centres (xy used)
        quat = m.site_quat[ids]
        self.slot_yaw = np.arctan2(2 * (quat[:, 0] * quat[:, 3] + quat[:, 1] * quat[:, 2]), 1 - 2 * (quat[:, 2] ** 2 + quat[:, 3] ** 2)).astype(np.float32)
        self.n_slots = len(ids)
        # the gripper is held square to the course (the first target's yaw)
        self.course_yaw = float(self.slot_yaw[0])

    # -- action: the base's modes, plus the square-to-course wrist in ee_delta mode
    def hand_yaw(self, data, arm: int) -> Array:
        """[] world yaw of the hand's x axis (the gripper closes along the hand's y axis)."""
        rot = data.site_xmat[self.robot.grasp_site[arm]].reshape(3, 3)
        return jnp.arctan2(rot[1, 0], rot[0, 0])

    def roll_target(self, data, arm: int, yaw: Array | float) -> Array:
        """[] wrist-roll position target turning the hand to ``yaw`` (mod π) about the vertical.

        The roll axis is vertical while the gripper points down, so yaw moves one-for-one with roll
        times the axis' z component (its sign says up or down).
        """
        r = self.robot
        axis_z = data.xaxis[r.arm_jnt[arm][5]][2]
        err = _wrap_half_turn(yaw - self.hand_yaw(data, arm))
        return data.qpos[r.arm_qpos[arm][5]] + err * axis_z

    def _ctrl_from_action(self, data, info, action, params):
        ctrl, updates = super()._ctrl_from_action(data, info, action, params)
        if self.action_mode == "ee_delta" and self.yaw_hold:
            r = self.robot
            for arm in self.active_arms:
                a = r.arm_act[arm][5]
                ctrl = ctrl.at[a].set(jnp.clip(self.roll_target(data, arm, self.course_yaw), r.ctrl_low[a], r.ctrl_high[a]))
        return ctrl, updates

    # -- task hooks
    def _task_reset(self, key, qpos, params):
        n = self.n_bricks
        home = self._sample_home(key, params, self.brick_home)
        qpos = self._place_objects(qpos, home)
        info = {
            "brick_home": home,  # [N, 3] x, y, yaw on the pallet
            "mortar_time": jnp.zeros(n),
            "picked": jnp.zeros(n),
            "held": jnp.zeros(n),
            "laid": jnp.zeros(n),  # in the course as a unit (stays until the course is struck)
            "slot_filled": jnp.zeros(self.n_slots),
            "courses": jnp.zeros((), jnp.float32),
        }
        return qpos, info

    def brick_state(self, data) -> tuple[Array, Array, Array]:
        """Brick centres [N, 3], linear velocities [N, 3] and rotation matrices [N, 3, 3]."""
        pos, vel = self._object_pos_vel(data)  # [N, 3] each
        rot = data.xmat[jnp.asarray(self.object_body)].reshape(-1, 3, 3)
        return pos, vel, rot

    def in_mortar(self, pos: Array) -> Array:
        """[N] bool: brick centre inside the mortar zone."""
        c, h = self.mortar_center, self.mortar_half
        return (jnp.abs(pos[:, 0] - c[0]) < h[0]) & (jnp.abs(pos[:, 1] - c[1]) < h[1]) & (pos[:, 2] < BENCH_Z + MORTAR_HEIGHT)

    def _in_pallet(self, pos: Array) -> Array:
        c, h = self.pallet_center, self.pallet_half
        return (jnp.abs(pos[:, 0] - c[0]) < h[0]) & (jnp.abs(pos[:, 1] - c[1]) < h[1])

    def slot_errors(self, pos: Array, rot: Array, slot_filled: Array) -> tuple[Array, Array, Array]:
        """Errors of each brick w.r.t. its nearest *free* target pose.

        Returns:
          (slot index [N] int, xy distance [N] m, orientation error [N] rad = max(|yaw error| mod π, tilt)).
        """
        d = jnp.linalg.norm(pos[:, None, :2] - jnp.asarray(self.slots)[None, :, :2], axis=-1)  # [N, S]
        d = jnp.where(slot_filled[None, :] > 0, 1e3, d)
        s = jnp.argmin(d, axis=-1)
        dist = jnp.take_along_axis(d, s[:, None], axis=-1)[:, 0]
        yaw = jnp.arctan2(rot[:, 1, 0], rot[:, 0, 0])
        yaw_err = jnp.abs(_wrap_half_turn(yaw - jnp.asarray(self.slot_yaw)[s]))
        tilt = jnp.arccos(jnp.clip(rot[:, 2, 2], -1.0, 1.0))
        return s, dist, jnp.maximum(yaw_err, tilt)

    def _task_step(self, data0, data, info, aux, params):
        n, n_s = self.n_bricks, self.n_slots
        pos, vel, rot = self.brick_state(data)
        laid = info["laid"] > 0
        slot_filled = info["slot_filled"]
        touch = pair_touching(data, self.finger_geoms, self.object_geom)  # [4, N]
        grasp_by = touch[0::2] & touch[1::2]  # [2, N]: right, left hand
        held = jnp.any(grasp_by, axis=0)
        any_touch = jnp.any(touch, axis=0)
        height = pos[:, 2] - jnp.asarray(self.brick_rest_z)
        lifted = height > REST_LIFT
        mortaring = self.in_mortar(pos) & ~laid
        mortar_time = info["mortar_time"] + self.dt * mortaring
        mortared = mortar_time >= params.mortar_time
        picked = info["picked"] > 0
        new_pick = held & lifted & ~picked & ~laid

        speed = jnp.linalg.norm(vel, axis=-1)
        settled = (speed < params.rest_speed) & ~any_touch & (height < SETTLE_HEIGHT)
        impact = (height < 0.01) & (aux["min_vz"] < -params.drop_velocity)
        lost = (pos[:, 0] < 0.02) | (pos[:, 0] > 0.95) | (jnp.abs(pos[:, 1]) > 0.8) | (height < -0.05)
        s, dist, orient = self.slot_errors(pos, rot, slot_filled)
        in_wall = dist < params.wall_zone
        judged = settled & in_wall & ~laid & ~impact & ~lost
        within = (dist < params.pos_tolerance) & (orient < params.orient_tolerance) & (height < 0.01)
        unit_cand = judged & within & mortared
        # at most one brick fills a target per step (two bricks settling at the same free target:
        # the lower index is laid, the other is judged against the next free target next step)
        claim = unit_cand[:, None] & (s[:, None] == jnp.arange(n_s)[None, :])  # [N, S]
        first = claim & (jnp.cumsum(claim, axis=0) == 1)
        unit = jnp.any(first, axis=-1)
        bad_lay = judged & ~(within & mortared)
        stray = settled & picked & ~in_wall & ~self._in_pallet(pos) & ~self.in_mortar(pos)
        dropped = (impact | lost | stray) & ~laid
        error = (bad_lay | dropped) & ~unit
        slot_filled = jnp.maximum(slot_filled, jnp.any(first, axis=0).astype(jnp.float32))
        laid = laid | unit

        deltas = {
            "units": jnp.sum(unit).astype(jnp.float32),
            "errors": jnp.sum(error).astype(jnp.float32),
            "attempts": jnp.sum(new_pick | ((unit | error) & ~picked)).astype(jnp.float32),
        }

        # shaping (from this step's physics, before recycling)
        ee = data.site_xpos[jnp.asarray(self.robot.grasp_site[list(self.active_arms)])]  # [A, 3]
        d_hand = jnp.min(jnp.linalg.norm(ee[:, None, :] - pos[None, :, :], axis=-1), axis=0)  # [N]
        free = ~held & ~laid & ~mortared
        reach = jnp.where(jnp.any(held & ~laid), 1.0, jnp.max(jnp.where(free, 1.0 - jnp.tanh(5.0 * d_hand), 0.0)))
        grasp = jnp.max((held & lifted & ~laid).astype(jnp.float32))
        mortar = jnp.max((mortaring & held & ~mortared).astype(jnp.float32))
        d_slot = jnp.sqrt(dist**2 + height**2)
        place = jnp.max(jnp.where(mortared & ~laid, 1.0 - jnp.tanh(5.0 * d_slot), 0.0))
        terms = {"reach": reach, "grasp": grasp, "mortar": mortar, "place": place}

        # a full course is struck: its bricks go back to the pallet; reworked bricks go back at once
        course_done = jnp.all(slot_filled > 0)
        recycle = error | (laid & course_done)
        home = info["brick_home"]
        data = self._recycle_objects(data, recycle, home)

        task_info = {
            "brick_home": home,
            "mortar_time": jnp.where(recycle, 0.0, mortar_time),
            "picked": ((picked | new_pick) & ~recycle & ~laid).astype(jnp.float32),
            "held": (held & ~recycle).astype(jnp.float32),
            "laid": (laid & ~recycle).astype(jnp.float32),
            "slot_filled": jnp.where(course_done, 0.0, slot_filled),
            "courses": info["courses"] + course_done.astype(jnp.float32),
        }
        return data, task_info, deltas, terms

    def _task_obs(self, data, info, params):
        r = self.robot
        pos, vel, rot = self.brick_state(data)
        ee = data.site_xpos[jnp.asarray(r.grasp_site)]  # [2, 3]
        q = data.qpos[jnp.asarray(r.robot_qpos)]
        qd = data.qvel[jnp.asarray(r.robot_dof)]
        rel = pos[None, :, :] - ee[:, None, :]  # [2, N, 3]
        yaw2 = 2.0 * jnp.arctan2(rot[:, 1, 0], rot[:, 0, 0])  # half-turn symmetric yaw features
        s, _, _ = self.slot_errors(pos, rot, info["slot_filled"])
        slot = jnp.asarray(self.slots)[s]
        per_brick = jnp.concatenate(
            [
                pos - jnp.array([0.3, 0.0, BENCH_Z]),
                rel.transpose(1, 0, 2).reshape(self.n_bricks, 6),
                jnp.clip(vel, -5.0, 5.0),
                jnp.sin(yaw2)[:, None],
                jnp.cos(yaw2)[:, None],
                rot[:, 2, 2][:, None],
                jnp.clip(info["mortar_time"] / params.mortar_time, 0.0, 1.0)[:, None],
                # the expert moves a brick on to the course once mortared: a flag, not a capped fraction
                (info["mortar_time"] >= params.mortar_time).astype(jnp.float32)[:, None],
                info["held"][:, None],
                info["laid"][:, None],
                self.in_mortar(pos).astype(jnp.float32)[:, None],
                jnp.asarray(self.mortar_center) - pos,
                slot - pos,
                # the same relations at millimetre resolution: the work's decisions (descend once within 6 mm
                # of a brick, set it down within 1 cm of the tub's centre, let go within 8 mm of its target)
                # are a few mm wide on features that span tens of cm, too fine for a normalized input
                fine_relation(rel.transpose(1, 0, 2).reshape(self.n_bricks, 6)),
                fine_relation(jnp.asarray(self.mortar_center) - pos),
                fine_relation(slot - pos),
            ],
            axis=-1,
        )
        time_left = 1.0 - info["t"].astype(jnp.float32) / self.episode_length
        return jnp.concatenate(
            [q, jnp.clip(qd * 0.1, -10.0, 10.0), ee.reshape(-1), per_brick.reshape(-1), info["slot_filled"], time_left[None]]
        )


# ----------------------------------------------------------------------------- CLI


def _main(argv=None) -> int:
    from envs.cli import main

    return main("bricklaying", argv, cameras="overview, front, head")


if __name__ == "__main__":
    raise SystemExit(_main())
