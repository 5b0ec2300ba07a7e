"""The free objects of a task (dishes, bricks): :class:`FreeObjects`, the part of the env that finds them
in the model, places them at reset, puts them back when they are recycled, and tells the domain
randomization and the drop test which bodies, contact pairs and velocities are theirs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs.params import EnvParams

Array = jax.Array


class FreeObjects:
    """Mixin of :class:`envs.base.MjxTaskEnv`; expects ``mj_model``, ``xml`` and ``robot`` on the env.

    A task calls :meth:`_free_objects` in its constructor and sets ``object_spawn_z`` [N] (the height at
    which an object is placed to lie at rest); an env without free objects keeps empty tables.
    """

    def _free_objects(self, prefix: str) -> np.ndarray:
        """Registers the task's free objects, the bodies named ``prefix*`` (dishes, bricks); returns their ids.

        Their masses and the friction of their contact pairs are what the domain randomization scales,
        and the lowest vertical velocity of each during a control step's substeps is ``aux["min_vz"]``
        (what a drop is judged by). Sets ``object_body``, ``object_qpos``, ``object_dof``,
        ``object_geom`` ([N] each), ``object_pairs`` and ``finger_geoms`` ([4]: right a, right b,
        left a, left b).
        """
        m = self.mj_model
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(m.nbody)]
        body = np.array([i for i, n in enumerate(names) if n and n.startswith(prefix)])
        if len(body) == 0:
            raise ValueError(f"{self.xml}: no bodies named {prefix}*")
        jnt = m.body_jntadr[body]
        self.object_body = body
        self.object_qpos = m.jnt_qposadr[jnt]
        self.object_dof = m.jnt_dofadr[jnt]
        self.object_geom = m.body_geomadr[body]
        pair_geoms = np.stack([m.pair_geom1, m.pair_geom2], axis=1)
        self.object_pairs = np.array([p for p, g in enumerate(pair_geoms) if set(g) & set(self.object_geom)], np.int32)
        self.finger_geoms = self.robot.finger_geom.reshape(-1)
        return body

    def _sample_home(self, key: Array, params: EnvParams, home: np.ndarray) -> Array:
        """[N, 3] (x, y, yaw) start spots of the objects: ``home`` [N, 3] jittered by the randomization."""
        k_xy, k_yaw = jax.random.split(key)
        n = len(self.object_body)
        jitter = jax.random.uniform(k_xy, (n, 2), minval=-1.0, maxval=1.0) * params.dr.object_pos
        yaw = jax.random.uniform(k_yaw, (n,), minval=-1.0, maxval=1.0) * params.dr.object_yaw
        return jnp.concatenate([jnp.asarray(home[:, :2]) + jitter, yaw[:, None]], axis=-1)

    def _object_pos_vel(self, data) -> tuple[Array, Array]:
        """World positions and linear velocities of the objects, [N, 3] each."""
        pos = data.qpos[jnp.asarray(self.object_qpos)[:, None] + jnp.arange(3)]
        vel = data.qvel[jnp.asarray(self.object_dof)[:, None] + jnp.arange(3)]
        return pos, vel

    def _object_qpos(self, xy: Array, yaw: Array) -> Array:
        """[N, 7] free-joint qpos of the objects lying at ``xy`` [N, 2], turned by ``yaw`` [N], just above
        their resting height ``object_spawn_z`` [N] (set by the task)."""
        z = jnp.asarray(self.object_spawn_z)
        quat = jnp.stack([jnp.cos(yaw / 2), jnp.zeros_like(yaw), jnp.zeros_like(yaw), jnp.sin(yaw / 2)], -1)
        return jnp.concatenate([xy, z[:, None], quat], axis=-1)

    def _place_objects(self, qpos: Array, home: Array) -> Array:
        """``qpos`` with every object lying at ``home`` [N, 3] (x, y, yaw)."""
        idx = jnp.asarray(self.object_qpos)[:, None] + jnp.arange(7)
        return qpos.at[idx].set(self._object_qpos(home[:, :2], home[:, 2]))

    def _recycle_objects(self, data, recycle: Array, home: Array):
        """``data`` with the objects where ``recycle`` [N] back at ``home`` [N, 3] (x, y, yaw), at rest."""
        fresh = self._object_qpos(home[:, :2], home[:, 2])  # [N, 7]
        qidx = jnp.asarray(self.object_qpos)[:, None] + jnp.arange(7)
        didx = jnp.asarray(self.object_dof)[:, None] + jnp.arange(6)
        qpos = data.qpos.at[qidx].set(jnp.where(recycle[:, None], fresh, data.qpos[qidx]))
        qvel = data.qvel.at[didx].set(jnp.where(recycle[:, None], 0.0, data.qvel[didx]))
        return data.replace(qpos=qpos, qvel=qvel)

    def _object_mass_bodies(self) -> np.ndarray:
        """Body ids whose mass the domain randomization scales."""
        return self.object_body

    def _object_pairs(self) -> np.ndarray:
        """Pair ids whose friction the domain randomization scales."""
        return self.object_pairs

    def _substep_aux_init(self, data) -> dict:
        """Per-step quantities tracked across substeps: the lowest vertical velocity of each free object."""
        return {"min_vz": jnp.zeros(len(self.object_dof))} if len(self.object_dof) else {}

    def _substep_aux_update(self, aux: dict, data) -> dict:
        if not len(self.object_dof):
            return aux
        return {"min_vz": jnp.minimum(aux["min_vz"], data.qvel[self.object_dof + 2])}
