"""The humanoid robot model: index tables, scene loading, contact queries and inverse kinematics.

* :class:`Robot` -- static index tables (arms, fingers, actuators, sites) of a compiled model.
* :func:`load_model` -- compiles a scene, without the idle arm's finger contact pairs.
* :func:`pair_touching` -- which geoms of two sets touch (explicit contact pairs).
* :func:`arm_jacobian`, :func:`dls_ik` -- jitted differential IK (damped least squares on the
  hinge Jacobian, position + "gripper points down"), used by the ``ee_delta`` action mode.
* :func:`home_pose` -- the NumPy IK that places the arms' home pose once, at construction.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

Array = jax.Array

SIDES = ("right", "left")  # arm index 0 is the right arm everywhere
ARM_JOINTS = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_pitch", "wrist_roll")
FINGER_OPEN = 0.045  # m, per finger (the slide joints' range upper bound)


@dataclasses.dataclass(frozen=True)
class Robot:
    """Static (NumPy/int) index tables of the humanoid in a compiled MjModel.

    Arrays are [2, ...] with arm 0 = right, arm 1 = left.
    """

    waist_qpos: int
    waist_act: int
    arm_qpos: np.ndarray  # [2, 6] qpos addresses of the arm hinges
    arm_dof: np.ndarray  # [2, 6] dof addresses
    arm_jnt: np.ndarray  # [2, 6] joint ids
    arm_act: np.ndarray  # [2, 6] actuator ids
    finger_qpos: np.ndarray  # [2, 2]
    finger_dof: np.ndarray  # [2, 2]
    finger_act: np.ndarray  # [2, 2]
    finger_geom: np.ndarray  # [2, 2] geom ids of the finger capsules
    grasp_site: np.ndarray  # [2] site ids
    hand_body: np.ndarray  # [2] body ids
    robot_qpos: np.ndarray  # [n] all robot qpos addresses (waist, arms, fingers)
    robot_dof: np.ndarray  # [n]
    ctrl_low: np.ndarray  # [nu]
    ctrl_high: np.ndarray  # [nu]

    @classmethod
    def from_model(cls, m: mujoco.MjModel) -> "Robot":
        def jid(name):
            i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if i < 0:
                raise ValueError(f"robot model lacks joint {name!r}")
            return i

        def aid(name):
            i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
            if i < 0:
                raise ValueError(f"robot model lacks actuator {name!r}")
            return i

        arm_jnt = np.array([[jid(f"{s}_{j}") for j in ARM_JOINTS] for s in SIDES])
        fing_jnt = np.array([[jid(f"{s}_finger_{f}") for f in "ab"] for s in SIDES])
        waist = jid("waist")
        all_jnt = np.concatenate([[waist], arm_jnt.ravel(), fing_jnt.ravel()])
        return cls(
            waist_qpos=int(m.jnt_qposadr[waist]),
            waist_act=aid("waist"),
            arm_qpos=m.jnt_qposadr[arm_jnt],
            arm_dof=m.jnt_dofadr[arm_jnt],
            arm_jnt=arm_jnt,
            arm_act=np.array([[aid(f"{s}_{j}") for j in ARM_JOINTS] for s in SIDES]),
            finger_qpos=m.jnt_qposadr[fing_jnt],
            finger_dof=m.jnt_dofadr[fing_jnt],
            finger_act=np.array([[aid(f"{s}_finger_{f}") for f in "ab"] for s in SIDES]),
            finger_geom=np.array(
                [[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"{s}_finger_{f}") for f in "ab"] for s in SIDES]
            ),
            grasp_site=np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, f"{s}_grasp") for s in SIDES]),
            hand_body=np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"{s}_hand") for s in SIDES]),
            robot_qpos=np.sort(m.jnt_qposadr[all_jnt]),
            robot_dof=np.sort(m.jnt_dofadr[all_jnt]),
            ctrl_low=m.actuator_ctrlrange[:, 0].copy(),
            ctrl_high=m.actuator_ctrlrange[:, 1].copy(),
        )


# ----------------------------------------------------------------------------- model loading


def load_model(xml: str | Path, idle_sides: Sequence[str] = ()) -> mujoco.MjModel:
    """Compiles the scene ``xml``, without the contact pairs of the idle arms' fingers.

    In single-arm mode the other arm holds its home pose above the work surface, so its finger
    pairs (vs every object and vs the counter/bench) never make contact, yet MJX computes every
    explicit pair on every substep: dropping them (19 -> 11 pairs in dishwashing) saves physics
    time and changes nothing the active arm can do. (An object carried into the idle hand then
    passes through it instead of bumping it.) Every other pair keeps its order and parameters.

    Args:
      xml: path of the scene MJCF.
      idle_sides: arm sides ("right"/"left") whose finger pairs are dropped.
    Raises:
      ValueError: unknown side.
    """
    bad = set(idle_sides) - set(SIDES)
    if bad:
        raise ValueError(f"idle_sides: unknown sides {sorted(bad)}; use {SIDES}")
    if not idle_sides:
        return mujoco.MjModel.from_xml_path(str(xml))
    spec = mujoco.MjSpec.from_file(str(xml))
    prefixes = tuple(f"{s}_finger_" for s in idle_sides)
    for pair in list(spec.pairs):
        if pair.geomname1.startswith(prefixes) or pair.geomname2.startswith(prefixes):
            spec.delete(pair)
    return spec.compile()


# ----------------------------------------------------------------------------- contacts


def _contact(data):
    impl = getattr(data, "_impl", None)
    return impl.contact if impl is not None and hasattr(impl, "contact") else data.contact


def pair_touching(data, geom_a: np.ndarray, geom_b: np.ndarray, margin: float = 0.002) -> Array:
    """Whether geoms ``geom_a[i]`` touch ``geom_b[j]`` (contact rows of explicit pairs).

    Args:
      geom_a: [A] geom ids; geom_b: [B] geom ids.
    Returns:
      [A, B] bool: some contact row between the two geoms has dist < margin.
    """
    c = _contact(data)
    g = c.geom  # [ncon, 2]
    close = c.dist < margin  # [ncon]
    a = jnp.asarray(geom_a)[:, None, None]
    b = jnp.asarray(geom_b)[None, :, None]
    g0, g1 = g[None, None, :, 0], g[None, None, :, 1]
    match = ((g0 == a) & (g1 == b)) | ((g0 == b) & (g1 == a))
    return jnp.any(match & close[None, None, :], axis=-1)


# ----------------------------------------------------------------------------- differential IK


def arm_jacobian(data, robot: Robot, arm: int) -> tuple[Array, Array]:
    """Position and rotation Jacobians of an arm's grasp site w.r.t. its 6 hinges.

    Uses the hinge axes and anchors from kinematics (``xaxis``, ``xanchor``): for a hinge,
    ∂p/∂q = axis × (p − anchor) and ∂ω/∂q = axis. Cheaper than ``mjx.jac`` (no tree scan).

    Returns:
      jacp [3, 6], jacr [3, 6].
    """
    p = data.site_xpos[robot.grasp_site[arm]]
    axis = data.xaxis[robot.arm_jnt[arm]]  # [6, 3]
    anchor = data.xanchor[robot.arm_jnt[arm]]
    jacp = jnp.cross(axis, p[None, :] - anchor).T
    return jacp, axis.T


def dls_ik(
    data,
    robot: Robot,
    arm: int,
    target_pos: Array,
    q_rest: Array,
    damping: float = 0.05,
    max_err: float = 0.05,
    rest_gain: float = 0.05,
) -> Array:
    """One damped-least-squares IK step for an arm: joint targets reaching ``target_pos``.

    Constrains the grasp-site position (3) and that the gripper points straight down (2: the
    hand's z axis aligned with world z); the yaw about the vertical is left free. The null space of
    the 5x6 task Jacobian pulls gently toward ``q_rest`` so the redundant joint does not drift.

    Args:
      data: mjx.Data after kinematics.
      robot: index tables.
      arm: 0 right, 1 left (static).
      target_pos: [3] desired grasp-site position (m).
      q_rest: [6] preferred joint angles.
    Returns:
      [6] joint position targets (not yet clipped to ranges).
    """
    q = data.qpos[robot.arm_qpos[arm]]
    jacp, jacr = arm_jacobian(data, robot, arm)
    err_p = target_pos - data.site_xpos[robot.grasp_site[arm]]
    norm = jnp.linalg.norm(err_p)
    err_p = err_p * jnp.minimum(1.0, max_err / jnp.maximum(norm, 1e-9))
    z_hand = data.site_xmat[robot.grasp_site[arm]].reshape(3, 3)[:, 2]
    # rotation taking z_hand to +z: axis-angle ~ z_hand x ez; only its x, y components matter.
    err_r = jnp.cross(z_hand, jnp.array([0.0, 0.0, 1.0]))[:2]
    jac = jnp.concatenate([jacp, jacr[:2]], axis=0)  # [5, 6]
    err = jnp.concatenate([err_p, err_r])
    jjt = jac @ jac.T + (damping**2) * jnp.eye(5)
    pinv = jac.T @ jnp.linalg.solve(jjt, jnp.eye(5))  # [6, 5]
    dq = pinv @ err
    null = jnp.eye(6) - pinv @ jac
    dq = dq + null @ (rest_gain * (q_rest - q))
    return q + dq


@functools.lru_cache(maxsize=8)
def home_pose(xml: str, targets: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Home qpos: arms placed by IK (MuJoCo, NumPy) with grasp sites at ``targets``, pointing down.

    Returns:
      (qpos [nq] float32 with the scene's default object poses, grasp-site positions [2, 3]).
    """
    m = mujoco.MjModel.from_xml_path(xml)
    d = mujoco.MjData(m)
    robot = Robot.from_model(m)
    # initial guess: upper arm down, forearm forward, hand down -- the elbow-down branch a human uses at a
    # counter; the IK below then only refines it (and stays away from the straight-arm singularity)
    for arm in range(2):
        d.qpos[robot.arm_qpos[arm][0]] = 0.0
        d.qpos[robot.arm_qpos[arm][3]] = -1.6
        d.qpos[robot.arm_qpos[arm][4]] = 1.6
    d.qpos[robot.finger_qpos.ravel()] = FINGER_OPEN
    for _ in range(300):
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        for arm in range(2):
            jacp = np.zeros((3, m.nv))
            jacr = np.zeros((3, m.nv))
            sid = robot.grasp_site[arm]
            mujoco.mj_jacSite(m, d, jacp, jacr, sid)
            cols = robot.arm_dof[arm]
            jac = np.concatenate([jacp[:, cols], jacr[:2, cols]])
            z = d.site_xmat[sid].reshape(3, 3)[:, 2]
            err = np.concatenate([np.asarray(targets[arm]) - d.site_xpos[sid], np.cross(z, [0, 0, 1.0])[:2]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(5), err)
            qa = robot.arm_qpos[arm]
            d.qpos[qa] = np.clip(d.qpos[qa] + 0.5 * dq, m.jnt_range[robot.arm_jnt[arm], 0], m.jnt_range[robot.arm_jnt[arm], 1])
    mujoco.mj_kinematics(m, d)
    ee = np.stack([d.site_xpos[robot.grasp_site[a]].copy() for a in range(2)])
    err = np.abs(ee - np.asarray(targets)).max()
    if err > 0.01:
        raise ValueError(f"{xml}: home targets {targets} unreachable (IK error {err:.3f} m)")
    return d.qpos.astype(np.float32).copy(), ee.astype(np.float32)



__all__ = ["SIDES", "ARM_JOINTS", "FINGER_OPEN", "Robot", "load_model", "pair_touching", "arm_jacobian", "dls_ik",
           "home_pose"]
