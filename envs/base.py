"""Shared machinery of the vpjax MJX task environments.

Everything here is pure: an environment object holds only what is fixed at construction (the
compiled MJX model, index tables, the action mode), and ``reset``/``step`` map
``(key | state, action, params)`` to a new :class:`State`. See ``/work/notes/ENV_CONTRACT.md``
(the API the trainer codes against) and DESIGN.md ("Pure environments", "Explicit parameters").

Pieces:

* :class:`State` -- brax's ``envs.State`` field names, plus ``data`` (MuJoCo Playground's name).
* :class:`EnvParams` -- the fields every task shares (economics, shaping scales, money scale,
  instability limit, IK step, domain randomization); tasks subclass it with their constants.
* :class:`Robot` -- static index tables of the humanoid (arms, fingers, actuators, sites).
* :func:`arm_jacobian`, :func:`dls_ik` -- differential IK (damped least squares on the hinge
  Jacobian, position + "gripper points down"), used by the ``ee_delta`` action mode.
* :class:`MjxTaskEnv` -- reset/step skeleton with action modes, substeps, domain randomization,
  economic accounting (dense money reward + episode reward via ``reward_fn``), shaping, metrics and
  the instability guard. A task implements ``_task_reset``, ``_task_step`` and ``_task_obs``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from vpjax import economics
from vpjax.economics import EconParams

Array = jax.Array
ASSETS = Path(__file__).resolve().parent / "assets"

ACTION_MODES = ("joint", "ee_delta")
ARMS = ("both", "right", "left")
SIDES = ("right", "left")  # arm index 0 is the right arm everywhere
ARM_JOINTS = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_pitch", "wrist_roll")
FINGER_OPEN = 0.045  # m, per finger (the slide joints' range upper bound)

ECON_METRICS = (
    "units",
    "errors",
    "attempts",
    "work_seconds",
    "mp",
    "error_rate",
    "implied_wage",
    "productivity_parity",
    "wage_parity",
    "reward_money",
    "reward_episode",
    "reward_mp",
    "reward_error",
    "reward_wage",
    "reward_shaping",
)


# ----------------------------------------------------------------------------- state and params


@struct.dataclass
class State:
    """One robot's environment state (vmap for a batch); brax ``envs.State`` field names.

    Attributes:
      pipeline_state: the ``mjx.Data`` of the scene.
      obs: [obs_size] float32 observation.
      reward: [] float32 reward of the last step.
      done: [] float32, 1 on the episode's last step or on an instability reset.
      metrics: dict of [] float32 scalars, always the same keys (see ``MjxTaskEnv.metric_names``).
      info: dict of per-robot arrays: episode counters (``units, errors, attempts, work_seconds,
        steps``), per-robot memory (``prev_mp, episodes, unstable_resets``), ``rng``, the internal
        clock ``t`` and task bookkeeping.
    """

    pipeline_state: Any
    obs: Array
    reward: Array
    done: Array
    metrics: dict = struct.field(default_factory=dict)
    info: dict = struct.field(default_factory=dict)

    @property
    def data(self):
        """MuJoCo Playground's name for ``pipeline_state``."""
        return self.pipeline_state


@struct.dataclass
class DomainRandomization:
    """Per-robot randomization ranges, sampled uniformly at reset (all array leaves).

    Attributes:
      object_mass: [2] (low, high) multiplier of each object's mass and inertia.
      friction: [2] (low, high) multiplier of the sliding friction of the object contact pairs.
      actuator_gain: [2] (low, high) multiplier of every position servo's stiffness kp.
      object_pos: [] half-width (m) of the uniform xy jitter of objects' initial poses.
      object_yaw: [] half-width (rad) of the uniform yaw jitter of objects' initial poses.
      joint_pos: [] half-width (rad) of the uniform jitter of the robot's initial joint angles.
    """

    object_mass: Array
    friction: Array
    actuator_gain: Array
    object_pos: Array
    object_yaw: Array
    joint_pos: Array

    @classmethod
    def create(
        cls,
        object_mass: Sequence[float] = (0.8, 1.2),
        friction: Sequence[float] = (0.8, 1.2),
        actuator_gain: Sequence[float] = (0.9, 1.1),
        object_pos: float = 0.01,
        object_yaw: float = 3.14159,
        joint_pos: float = 0.02,
    ) -> "DomainRandomization":
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(f(object_mass), f(friction), f(actuator_gain), f(object_pos), f(object_yaw), f(joint_pos))

    @classmethod
    def off(cls) -> "DomainRandomization":
        """No randomization (identity multipliers, no jitter)."""
        return cls.create((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0)


@struct.dataclass
class EnvParams:
    """Fields every task shares; tasks subclass this with their own constants.

    Attributes:
      econ: the task's :class:`vpjax.economics.EconParams`.
      shaping_scales: dict term name -> [] scale of that shaping term (reward per control step
        at term value 1).
      shaping_weight: [] in [0, 1]; multiplies all shaping so a trainer can anneal it away.
      money_scale: [] multiplier of the dense money reward p·Δunits − cₐ·Δerrors ($ -> reward).
      ee_step: [] metres of end-effector motion per control step at |action| = 1 (ee_delta mode).
      qvel_limit: [] instability guard: |qvel| above this (rad/s or m/s) resets the robot.
      dr: :class:`DomainRandomization`.
    """

    econ: EconParams
    shaping_scales: dict
    shaping_weight: Array
    money_scale: Array
    ee_step: Array
    qvel_limit: Array
    dr: DomainRandomization

    @classmethod
    def build(
        cls,
        econ: EconParams,
        shaping_scales: Mapping[str, float],
        dr: DomainRandomization,
        task: Mapping[str, float],
        overrides: Mapping[str, Any] | None = None,
    ) -> "EnvParams":
        """A task's params: the shared defaults (shaping weight 1, money scale 10, IK step 2 cm,
        qvel limit 200) plus the task's ``shaping_scales`` and constants ``task`` (float32 leaves),
        then ``overrides`` applied with :func:`override_params` (unknown keys raise ValueError)."""
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        params = cls(
            econ=econ,
            shaping_scales={k: f(v) for k, v in shaping_scales.items()},
            shaping_weight=f(1.0),
            money_scale=f(10.0),
            ee_step=f(0.02),
            qvel_limit=f(200.0),
            dr=dr,
            **{k: f(v) for k, v in task.items()},
        )
        return override_params(params, overrides) if overrides else params


def _as_leaf(name: str, value: Any, like: Array) -> Array:
    try:
        out = jnp.asarray(value, dtype=like.dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"param {name!r}: cannot convert {value!r} to an array ({e})") from None
    if out.shape != like.shape:
        raise ValueError(f"param {name!r}: expected shape {like.shape}, got {out.shape}")
    return out


def override_params(params: EnvParams, overrides: Mapping[str, Any]) -> EnvParams:
    """``params`` with top-level fields replaced; dict values update ``econ``/``dr``/``shaping_scales``.

    ``econ`` accepts an EconParams or a dict of ``EconParams.create`` keywords (merged over the
    current values is not possible for schedules given as strings, so a dict rebuilds from the
    defaults plus the given keys). Unknown names raise ValueError naming the key.
    """
    names = {f.name for f in dataclasses.fields(params)}
    updates = {}
    for key, value in overrides.items():
        if key not in names:
            raise ValueError(f"unknown param {key!r}; known params: {sorted(names)}")
        current = getattr(params, key)
        if key == "econ":
            if isinstance(value, Mapping):
                value = EconParams.create(**value)
            elif not isinstance(value, EconParams):
                raise ValueError(f"param 'econ': expected EconParams or dict, got {type(value).__name__}")
            updates[key] = value
        elif key == "shaping_scales":
            if not isinstance(value, Mapping):
                raise ValueError("param 'shaping_scales': expected a dict term -> scale")
            unknown = set(value) - set(current)
            if unknown:
                raise ValueError(f"param 'shaping_scales': unknown terms {sorted(unknown)}; known: {sorted(current)}")
            updates[key] = {**current, **{k: _as_leaf(f"shaping_scales.{k}", v, current[k]) for k, v in value.items()}}
        elif key == "dr":
            if isinstance(value, DomainRandomization):
                updates[key] = value
            elif isinstance(value, Mapping):
                dr_names = {f.name for f in dataclasses.fields(current)}
                bad = set(value) - dr_names
                if bad:
                    raise ValueError(f"param 'dr': unknown keys {sorted(bad)}; known: {sorted(dr_names)}")
                updates[key] = current.replace(**{k: _as_leaf(f"dr.{k}", v, getattr(current, k)) for k, v in value.items()})
            else:
                raise ValueError(f"param 'dr': expected DomainRandomization or dict, got {type(value).__name__}")
        else:
            updates[key] = _as_leaf(key, value, current)
    return params.replace(**updates)


# ----------------------------------------------------------------------------- robot tables


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


# ----------------------------------------------------------------------------- the env skeleton


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


class MjxTaskEnv:
    """Base of the vpjax MJX tasks: action modes, physics substeps, economics, guard.

    Subclasses set ``SHAPING_TERMS`` and implement ``_task_reset``, ``_task_step`` and
    ``_task_obs``; see envs/dishwashing.py.

    Constructor args (structural, never params):
      xml: path of the scene MJCF.
      params: default EnvParams of the task.
      action_mode: "joint" (absolute joint position targets, one gripper command per hand) or
        "ee_delta" (per arm: Cartesian delta of the grasp site + gripper, through jitted IK).
      arms: "both", "right" or "left" (the other arm holds its home pose).
      episode_length: control steps per episode.
      n_substeps: physics steps per control step.
      reward_fn: episode reward, signature of ``vpjax.economics.reward_terms``.
      economic_reward: False drops the money and episode parts of the reward.
      idle_arm_contacts: with a single active arm, keep the contact pairs of the idle arm's fingers
        (default False: they are dropped from the model, see :func:`load_model`).
    """

    SHAPING_TERMS: tuple[str, ...] = ()
    name = "base"

    def __init__(
        self,
        xml: str | Path,
        params: EnvParams,
        *,
        action_mode: str = "ee_delta",
        arms: str = "right",
        episode_length: int = 1000,
        n_substeps: int = 4,
        reward_fn: economics.RewardFn | None = None,
        economic_reward: bool = True,
        idle_arm_contacts: bool = False,
        home_targets: Sequence[Sequence[float]] = ((0.30, -0.25, 1.00), (0.30, 0.25, 1.00)),
        workspace: Sequence[Sequence[float]] = ((0.05, -0.75, 0.86), (0.75, 0.75, 1.35)),
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode: unknown mode {action_mode!r}; use one of {ACTION_MODES}")
        if arms not in ARMS:
            raise ValueError(f"arms: unknown value {arms!r}; use one of {ARMS}")
        if int(episode_length) < 1:
            raise ValueError(f"episode_length: must be >= 1, got {episode_length}")
        if int(n_substeps) < 1:
            raise ValueError(f"n_substeps: must be >= 1, got {n_substeps}")
        xml = Path(xml)
        if not xml.exists():
            raise ValueError(f"xml: scene file {xml} does not exist")
        self.reward_fn = reward_fn if reward_fn is not None else economics.reward_terms
        economics.check_reward_fn(self.reward_fn, params.econ)
        self.active_arms = {"both": (0, 1), "right": (0,), "left": (1,)}[arms]
        idle = () if idle_arm_contacts else tuple(SIDES[a] for a in range(2) if a not in self.active_arms)
        self.mj_model = load_model(xml, idle_sides=idle)
        self.mjx_model = mjx.put_model(self.mj_model)
        self.robot = Robot.from_model(self.mj_model)
        self.action_mode = action_mode
        self.arms = arms
        self.episode_length = int(episode_length)
        self.n_substeps = int(n_substeps)
        self.economic_reward = bool(economic_reward)
        self.dt = float(self.mj_model.opt.timestep * self.n_substeps)
        self.workspace = np.asarray(workspace, np.float32)
        self.default_params = params
        self.home_qpos, self.home_ee = _home_pose(str(xml), tuple(map(tuple, home_targets)))
        self._data0 = mjx.make_data(self.mjx_model)
        # a physically safe state to fall back to when the guard fires (kinematic fields are filled in
        # by the next step's physics; computing them eagerly here would cost ~a minute on CPU)
        self._safe_data = self._data0.replace(qpos=jnp.asarray(self.home_qpos), ctrl=self._home_ctrl())
        self._gain_act = np.arange(self.mj_model.nu)
        self._obs_size = None

    # -- sizes
    @property
    def action_size(self) -> int:
        n = len(self.active_arms)
        if self.action_mode == "ee_delta":
            return 4 * n
        return 7 * n + (1 if self.arms == "both" else 0)

    @property
    def observation_size(self) -> int:
        if self._obs_size is None:
            st = jax.eval_shape(self.reset, jax.random.PRNGKey(0))
            self._obs_size = int(st.obs.shape[-1])
        return self._obs_size

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ECON_METRICS + tuple(f"shaping_{k}" for k in self.SHAPING_TERMS) + ("unstable",)

    @property
    def backend(self) -> str:  # brax wrappers read this attribute on some paths
        return "mjx"

    @property
    def unwrapped(self):
        return self

    # -- hooks for tasks
    def _task_reset(self, key: Array, qpos: Array, params: EnvParams) -> tuple[Array, dict]:
        """Returns (qpos with objects placed, task info dict)."""
        raise NotImplementedError

    def _task_step(self, data0, data, info: dict, aux: dict, params: EnvParams) -> tuple[Any, dict, dict, dict]:
        """Task logic after physics.

        Returns:
          (data possibly with recycled objects, new task info, counter deltas dict with keys
          ``units, errors, attempts`` ([] float32), shaping terms dict (unscaled)).
        """
        raise NotImplementedError

    def _task_obs(self, data, info: dict, params: EnvParams) -> Array:
        raise NotImplementedError

    def _object_mass_bodies(self) -> np.ndarray:
        """Body ids whose mass the domain randomization scales."""
        return np.zeros((0,), np.int32)

    def _object_pairs(self) -> np.ndarray:
        """Pair ids whose friction the domain randomization scales."""
        return np.zeros((0,), np.int32)

    def _substep_aux_init(self, data) -> dict:
        """Per-step quantities tracked across substeps (e.g. the lowest object velocity)."""
        return {}

    def _substep_aux_update(self, aux: dict, data) -> dict:
        return aux

    # -- helpers
    def _home_ctrl(self) -> Array:
        ctrl = np.zeros(self.mj_model.nu, np.float32)
        r = self.robot
        ctrl[r.waist_act] = self.home_qpos[r.waist_qpos]
        for a in range(2):
            ctrl[r.arm_act[a]] = self.home_qpos[r.arm_qpos[a]]
            ctrl[r.finger_act[a]] = FINGER_OPEN
        return jnp.asarray(ctrl)

    def model_for(self, info: dict):
        """The MJX model with this robot's domain randomization applied (vmaps per robot)."""
        m = self.mjx_model
        dr = info["dr"]
        bodies = self._object_mass_bodies()
        pairs = self._object_pairs()
        gain = dr["gain_scale"]  # [nu]
        kp = m.actuator_gainprm[:, 0] * gain
        updates = dict(
            actuator_gainprm=m.actuator_gainprm.at[:, 0].set(kp),
            actuator_biasprm=m.actuator_biasprm.at[:, 1].set(-kp),
        )
        if len(bodies):
            ms = dr["mass_scale"]
            updates["body_mass"] = m.body_mass.at[bodies].multiply(ms)
            updates["body_inertia"] = m.body_inertia.at[bodies].multiply(ms[:, None])
        if len(pairs):
            fr = m.pair_friction.at[pairs, :2].multiply(dr["friction_scale"])
            updates["pair_friction"] = fr
        return m.replace(**updates)

    def _sample_dr(self, key: Array, params: EnvParams) -> dict:
        k1, k2, k3 = jax.random.split(key, 3)
        dr = params.dr
        n_obj = len(self._object_mass_bodies())
        u = lambda k, rng, shape: jax.random.uniform(k, shape, minval=rng[0], maxval=rng[1])  # noqa: E731
        return {
            "mass_scale": u(k1, dr.object_mass, (n_obj,)),
            "friction_scale": u(k2, dr.friction, ()),
            "gain_scale": u(k3, dr.actuator_gain, (self.mj_model.nu,)),
        }

    def _ctrl_from_action(self, data, info: dict, action: Array, params: EnvParams) -> tuple[Array, dict]:
        """Maps an action in [-1, 1] to actuator controls; returns (ctrl [nu], info updates)."""
        r = self.robot
        action = jnp.clip(jnp.nan_to_num(action), -1.0, 1.0)
        ctrl = info["ctrl_hold"]
        lo, hi = jnp.asarray(r.ctrl_low), jnp.asarray(r.ctrl_high)
        updates = {}
        if self.action_mode == "joint":
            i = 0
            if self.arms == "both":
                w = r.waist_act
                ctrl = ctrl.at[w].set(lo[w] + (action[0] + 1.0) * 0.5 * (hi[w] - lo[w]))
                i = 1
            for arm in self.active_arms:
                ids = r.arm_act[arm]
                ctrl = ctrl.at[ids].set(lo[ids] + (action[i : i + 6] + 1.0) * 0.5 * (hi[ids] - lo[ids]))
                ctrl = ctrl.at[r.finger_act[arm]].set((action[i + 6] + 1.0) * 0.5 * FINGER_OPEN)
                i += 7
        else:
            target = info["ee_target"]
            wlo, whi = jnp.asarray(self.workspace[0]), jnp.asarray(self.workspace[1])
            q_home = jnp.asarray(self.home_qpos)
            for j, arm in enumerate(self.active_arms):
                a = action[4 * j : 4 * j + 4]
                t = jnp.clip(target[arm] + a[:3] * params.ee_step, wlo, whi)
                target = target.at[arm].set(t)
                q = dls_ik(data, r, arm, t, q_home[r.arm_qpos[arm]])
                ids = r.arm_act[arm]
                ctrl = ctrl.at[ids].set(q)
                ctrl = ctrl.at[r.finger_act[arm]].set((a[3] + 1.0) * 0.5 * FINGER_OPEN)
            updates["ee_target"] = target
        return jnp.clip(ctrl, lo, hi), updates

    # -- API
    def reset(self, key: Array, params: EnvParams | None = None) -> State:
        """A fresh episode for one robot.

        Args:
          key: PRNG key.
          params: EnvParams (None -> ``default_params``).
        Returns:
          State with zeroed counters, ``prev_mp = episodes = unstable_resets = 0``.
        """
        params = self.default_params if params is None else params
        k_dr, k_q, k_task, k_rng = jax.random.split(key, 4)
        del key
        r = self.robot
        qpos = jnp.asarray(self.home_qpos)
        noise = jax.random.uniform(k_q, (len(r.robot_qpos),), minval=-1.0, maxval=1.0) * params.dr.joint_pos
        qpos = qpos.at[r.robot_qpos].add(noise)
        qpos = qpos.at[r.finger_qpos].set(FINGER_OPEN)
        qpos, task_info = self._task_reset(k_task, qpos, params)
        ctrl = self._home_ctrl()
        data = self._data0.replace(qpos=qpos, ctrl=ctrl)
        data = mjx.kinematics(self.mjx_model, data)
        ee = data.site_xpos[jnp.asarray(r.grasp_site)]
        zero = jnp.zeros((), jnp.float32)
        info = {
            "units": zero,
            "errors": zero,
            "attempts": zero,
            "work_seconds": zero,
            "steps": jnp.zeros((), jnp.int32),
            "t": jnp.zeros((), jnp.int32),
            "prev_mp": zero,
            "episodes": jnp.zeros((), jnp.int32),
            "unstable_resets": jnp.zeros((), jnp.int32),
            "rng": k_rng,
            "dr": self._sample_dr(k_dr, params),
            "ctrl_hold": ctrl,
            "ee_target": ee,
            **task_info,
        }
        obs = self._obs(data, info, params)
        metrics = {k: zero for k in self.metric_names}
        return State(pipeline_state=data, obs=obs, reward=zero, done=zero, metrics=metrics, info=info)

    def _obs(self, data, info, params) -> Array:
        return jnp.nan_to_num(self._task_obs(data, info, params).astype(jnp.float32), posinf=0.0, neginf=0.0)

    def physics(self, model, data, n_substeps: int | None = None, aux: dict | None = None):
        """``n_substeps`` mjx.step calls in a scan; returns (data, aux tracked across substeps)."""
        n = self.n_substeps if n_substeps is None else n_substeps
        aux = self._substep_aux_init(data) if aux is None else aux

        def body(carry, _):
            d, a = carry
            d = mjx.step(model, d)
            return (d, self._substep_aux_update(a, d)), None

        (data, aux), _ = jax.lax.scan(body, (data, aux), None, length=n)
        return data, aux

    def step(self, state: State, action: Array, params: EnvParams | None = None) -> State:
        """One control step (``n_substeps`` physics steps) of one robot; pure.

        Args:
          state: State from ``reset``/``step``.
          action: [action_size] in [-1, 1] (clipped; NaN -> 0).
          params: EnvParams (None -> ``default_params``).
        Returns:
          the next State; ``done = 1`` on the episode's last step or an instability reset.
        """
        params = self.default_params if params is None else params
        info = state.info
        data0 = state.pipeline_state
        ctrl, act_updates = self._ctrl_from_action(data0, info, action, params)
        model = self.model_for(info)
        data, aux = self.physics(model, data0.replace(ctrl=ctrl))

        # instability guard: a bad robot falls back to a safe state; nothing non-finite leaks out.
        qpos_ok = jnp.all(jnp.isfinite(data.qpos))
        qvel_ok = jnp.all(jnp.isfinite(data.qvel)) & jnp.all(jnp.abs(data.qvel) <= params.qvel_limit)
        bad = ~(qpos_ok & qvel_ok)

        data, task_info, deltas, terms = self._task_step(data0, data, info, aux, params)
        task_keys = list(task_info)
        safe_task = {k: info[k] for k in task_keys}
        task_info = jax.tree.map(lambda new, old: jnp.where(bad, old, new), task_info, safe_task)
        deltas = {k: jnp.where(bad, 0.0, v) for k, v in deltas.items()}
        terms = {k: jnp.where(bad, 0.0, jnp.nan_to_num(v)) for k, v in terms.items()}
        data = jax.tree.map(lambda s, d: d if isinstance(d, np.ndarray) else jnp.where(bad, s, d), self._safe_data, data)

        t = info["t"] + 1
        units = info["units"] + deltas["units"]
        errors = info["errors"] + deltas["errors"]
        attempts = info["attempts"] + deltas["attempts"]
        work_seconds = t.astype(jnp.float32) * self.dt

        econ = params.econ
        mp = economics.marginal_product(units, work_seconds)
        err = economics.error_rate(errors, attempts)
        wage = economics.implied_wage(mp, err, econ)
        terms_ep = self.reward_fn(mp, info["prev_mp"], err, econ)
        scaled = economics.scaled_components(terms_ep, econ)
        last = t == self.episode_length
        reward_money = (econ.price_per_unit * deltas["units"] - econ.damage_cost * deltas["errors"]) * params.money_scale
        reward_episode = jnp.where(last, terms_ep["total"], 0.0)
        if not self.economic_reward:
            reward_money = jnp.zeros_like(reward_money)
            reward_episode = jnp.zeros_like(reward_episode)
        reward_shaping = params.shaping_weight * sum(params.shaping_scales[k] * terms[k] for k in self.SHAPING_TERMS)
        reward = reward_money + reward_episode + reward_shaping
        done = (last | bad).astype(jnp.float32)

        hold = info["ctrl_hold"]
        new_info = {
            **info,
            **act_updates,
            **task_info,
            "units": units,
            "errors": errors,
            "attempts": attempts,
            "work_seconds": work_seconds,
            "t": t,
            "steps": info["steps"] + 1,
            "unstable_resets": info["unstable_resets"] + bad.astype(jnp.int32),
            "ctrl_hold": hold,
        }
        if self.action_mode == "ee_delta":
            # after a guard reset the Cartesian targets restart from the safe pose
            new_info["ee_target"] = jnp.where(bad, self.home_ee, new_info["ee_target"])
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        metrics = {
            "units": units,
            "errors": errors,
            "attempts": attempts,
            "work_seconds": work_seconds,
            "mp": mp,
            "error_rate": err,
            "implied_wage": wage,
            "productivity_parity": economics.productivity_parity(mp, econ),
            "wage_parity": economics.wage_parity(wage, econ),
            "reward_money": reward_money,
            "reward_episode": reward_episode,
            "reward_mp": scaled["reward_mp"],
            "reward_error": scaled["reward_error"],
            "reward_wage": scaled["reward_wage"],
            "reward_shaping": reward_shaping,
            **{f"shaping_{k}": terms[k] for k in self.SHAPING_TERMS},
            "unstable": bad,
        }
        metrics = {k: f32(v) for k, v in metrics.items()}
        obs = self._obs(data, new_info, params)
        return State(pipeline_state=data, obs=obs, reward=f32(reward), done=done, metrics=metrics, info=new_info)

    # -- rendering
    def render(self, states: State | Sequence[State], camera: str | int = "overview", width: int = 320, height: int = 240) -> np.ndarray:
        """RGB frames of unbatched states through MuJoCo's offscreen renderer.

        Args:
          states: one State (unbatched) or a sequence of them, or a State whose leaves carry a
            leading time axis [T, ...].
          camera: camera name or id in the scene.
        Returns:
          uint8 [H, W, 3] for one state, or [T, H, W, 3].
        """
        single = isinstance(states, State) and np.ndim(states.pipeline_state.qpos) == 1
        if isinstance(states, State):
            qpos = np.asarray(states.pipeline_state.qpos).reshape(-1, self.mj_model.nq)
        else:
            qpos = np.stack([np.asarray(s.pipeline_state.qpos) for s in states])
        d = mujoco.MjData(self.mj_model)
        frames = []
        with mujoco.Renderer(self.mj_model, height=height, width=width) as renderer:
            for q in qpos:
                d.qpos[:] = q
                mujoco.mj_forward(self.mj_model, d)
                renderer.update_scene(d, camera=camera)
                frames.append(renderer.render().copy())
        out = np.stack(frames)
        return out[0] if single else out


@functools.lru_cache(maxsize=8)
def _home_pose(xml: str, targets: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Home qpos: arms placed by IK (MuJoCo, NumPy) with grasp sites at ``targets``, pointing down.

    Returns:
      (qpos [nq] float32 with the scene's default object poses, grasp-site positions [2, 3]).
    """
    m = mujoco.MjModel.from_xml_path(xml)
    d = mujoco.MjData(m)
    robot = Robot.from_model(m)
    # seed: upper arm down, forearm forward, hand down -- the elbow-down branch a human uses at a
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
