"""The MJX task env: :class:`MjxTaskEnv`, the reset/step skeleton every humanoid task shares.

An env object holds only what is fixed at construction (the compiled MJX model, index tables, the
action mode), and ``reset``/``step`` map ``(key | state, action, params)`` to a new
:class:`envs.contract.State` (the contract: envs/contract.py). ``step`` runs, in order: the action
mode (:meth:`MjxTaskEnv._ctrl_from_action`), physics substeps on the robot's randomized model, the
task's logic, the instability guard, and the economic accounting of
:func:`vpjax.economics.account` (dense money reward + episode reward via ``reward_fn``) plus the
task's shaping. A task implements ``_task_reset``, ``_task_step`` and ``_task_obs``. Params and
domain randomization live in envs/params.py, the robot model and IK in envs/robot.py.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs.contract import State
from envs.objects import FreeObjects
from envs.params import EnvParams, randomized_model, sample_dr
from envs.robot import FINGER_OPEN, SIDES, Robot, dls_ik, home_pose, load_model
from vpjax import economics


def _import_mjx():
    """``mujoco.mjx`` without its notice about optional backends: on a machine without NVIDIA Warp, the
    import prints "Failed to import warp: ..." to stdout; vpjax uses mjx's JAX backend, so those lines
    are dropped (any other output of the import is passed on)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        from mujoco import mjx as module
    for line in buf.getvalue().splitlines():
        if not line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
            print(line)
    return module


mjx = _import_mjx()

Array = jax.Array
ASSETS = Path(__file__).resolve().parent / "assets"

ACTION_MODES = ("joint", "ee_delta")
ARMS = ("both", "right", "left")
COUNTERS = ("units", "errors", "attempts")  # the counter deltas a task's ``_task_step`` reports


FINE_SCALE = 0.02  # m: scale of the observations' relations at millimetre resolution


def fine_relation(d: jax.Array) -> jax.Array:
    """``tanh(d / FINE_SCALE)``: an offset of a few mm at full scale. The experts' decisions (descend within
    6-8 mm, close within 1 cm) are that narrow on offsets that span tens of cm, too fine for a normalized input."""
    return jnp.tanh(d / FINE_SCALE)


class MjxTaskEnv(FreeObjects):
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
        (default False: they are dropped from the model, see :func:`envs.robot.load_model`).
    """

    SHAPING_TERMS: tuple[str, ...] = ()
    # constructor args that shape the observation or the action: a policy meets only the env it was trained on
    # (``python -m train --init`` rebuilds the env with its run's values)
    OBSERVATION_OPTIONS: tuple[str, ...] = ("action_mode", "arms")
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
        self._reward_extras = economics.reward_extra_names(self.reward_fn, params.econ)
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
        self.home_qpos, self.home_ee = home_pose(str(xml), tuple(map(tuple, home_targets)))
        self._data0 = mjx.make_data(self.mjx_model)
        # a physically safe state to fall back to when the guard fires (kinematic fields are filled in
        # by the next step's physics; computing them eagerly here would cost ~a minute on CPU)
        self._safe_data = self._data0.replace(qpos=jnp.asarray(self.home_qpos), ctrl=self._home_ctrl())
        self._gain_act = np.arange(self.mj_model.nu)
        self._obs_size = None
        self.xml = xml
        none = np.zeros((0,), np.int32)
        self.object_body = self.object_qpos = self.object_dof = self.object_geom = self.object_pairs = none

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
        """Keys of ``state.metrics``: the economics (the reward's extra terms included), shaping terms, ``unstable``."""
        return economics.METRIC_NAMES + self._reward_extras + tuple(f"shaping_{k}" for k in self.SHAPING_TERMS) + ("unstable",)

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
        return randomized_model(self.mjx_model, info["dr"], self._object_mass_bodies(), self._object_pairs())

    def _sample_dr(self, key: Array, params: EnvParams) -> dict:
        """One robot's physical multipliers (``info["dr"]``), drawn at reset and by the auto-reset."""
        return sample_dr(key, params.dr, len(self._object_mass_bodies()), self.mj_model.nu)

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
        """The task's observation; in ``ee_delta`` mode followed by the commanded grasp-point targets
        relative to the grasp points ([A, 3] m for the active arms). An action moves the target, which the
        hand lags (a held dish sags, the sink floor stops it): without this a policy cannot tell where its
        own past actions have put the target."""
        obs = self._task_obs(data, info, params).astype(jnp.float32)
        if self.action_mode == "ee_delta":
            arms = jnp.asarray(self.active_arms)
            ee = data.site_xpos[jnp.asarray(self.robot.grasp_site)[arms]]
            obs = jnp.concatenate([obs, (info["ee_target"][arms] - ee).reshape(-1).astype(jnp.float32)])
        return jnp.nan_to_num(obs, posinf=0.0, neginf=0.0)

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
        data, aux = self.physics(self.model_for(info), data0.replace(ctrl=ctrl))
        bad = self._unstable(data, params)
        data, task_info, deltas, terms = self._task_step(data0, data, info, aux, params)
        data, task_info, deltas, terms = self._guard(bad, data, info, task_info, deltas, terms)

        t = info["t"] + 1
        counters = {k: info[k] + deltas[k] for k in COUNTERS}
        counters["work_seconds"] = t.astype(jnp.float32) * self.dt
        last = t == self.episode_length
        reward, metrics = economics.account(
            counters, deltas, info["prev_mp"], last, params.econ,
            shaping=self._shaping_reward(terms, params), money_scale=params.money_scale,
            economic_reward=self.economic_reward, reward_fn=self.reward_fn,
        )
        metrics.update({f"shaping_{k}": jnp.asarray(terms[k], jnp.float32) for k in self.SHAPING_TERMS})
        metrics["unstable"] = bad.astype(jnp.float32)
        new_info = self._next_info(info, act_updates, task_info, counters, t, bad)
        obs = self._obs(data, new_info, params)
        done = (last | bad).astype(jnp.float32)
        return State(pipeline_state=data, obs=obs, reward=reward, done=done, metrics=metrics, info=new_info)

    def _unstable(self, data, params: EnvParams) -> Array:
        """[] bool: the physics went non-finite or some |qvel| exceeds ``params.qvel_limit``."""
        qpos_ok = jnp.all(jnp.isfinite(data.qpos))
        qvel_ok = jnp.all(jnp.isfinite(data.qvel)) & jnp.all(jnp.abs(data.qvel) <= params.qvel_limit)
        return ~(qpos_ok & qvel_ok)

    def _guard(self, bad: Array, data, info: dict, task_info: dict, deltas: dict, terms: dict):
        """Where ``bad``: the safe scene, the old task bookkeeping, no counts and no shaping, so
        nothing non-finite leaks out of an unstable robot. Returns (data, task_info, deltas, terms)."""
        safe_task = {k: info[k] for k in task_info}
        task_info = jax.tree.map(lambda new, old: jnp.where(bad, old, new), task_info, safe_task)
        deltas = {k: jnp.where(bad, 0.0, v) for k, v in deltas.items()}
        terms = {k: jnp.where(bad, 0.0, jnp.nan_to_num(v)) for k, v in terms.items()}
        data = jax.tree.map(lambda s, d: d if isinstance(d, np.ndarray) else jnp.where(bad, s, d), self._safe_data, data)
        return data, task_info, deltas, terms

    def _shaping_reward(self, terms: dict, params: EnvParams) -> Array:
        """shaping_weight · Σ scale_k · term_k over ``SHAPING_TERMS`` (unscaled terms in, [] out)."""
        return params.shaping_weight * sum(params.shaping_scales[k] * terms[k] for k in self.SHAPING_TERMS)

    def _next_info(self, info: dict, act_updates: dict, task_info: dict, counters: dict, t: Array, bad: Array) -> dict:
        """``info`` after the step: action-mode and task bookkeeping, the counters and the clocks."""
        new_info = {
            **info,
            **act_updates,
            **task_info,
            **counters,
            "t": t,
            "steps": info["steps"] + 1,
            "unstable_resets": info["unstable_resets"] + bad.astype(jnp.int32),
            "ctrl_hold": info["ctrl_hold"],
        }
        if self.action_mode == "ee_delta":
            # after a guard reset the Cartesian targets restart from the safe pose
            new_info["ee_target"] = jnp.where(bad, self.home_ee, new_info["ee_target"])
        return new_info

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

__all__ = ["ASSETS", "ACTION_MODES", "ARMS", "MjxTaskEnv"]
