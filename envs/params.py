"""Task parameters and domain randomization: the explicit params pytree of every MJX task.

Everything a researcher varies is an array leaf here (DESIGN.md, "Explicit parameters"), so a
sweep is a ``jax.vmap`` and a new value never recompiles. :class:`EnvParams` holds the fields every
task shares; a task subclasses it with its own constants. :func:`sample_dr` draws one robot's
physical multipliers and :func:`randomized_model` applies them to the MJX model inside ``step``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from vpjax.economics import EconParams

Array = jax.Array


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



def sample_dr(key: Array, dr: DomainRandomization, n_objects: int, n_actuators: int) -> dict:
    """One robot's physical multipliers, uniform in the ranges of ``dr``.

    Returns:
      dict with ``mass_scale`` [n_objects], ``friction_scale`` [] and ``gain_scale`` [n_actuators].
    """
    k1, k2, k3 = jax.random.split(key, 3)
    u = lambda k, rng, shape: jax.random.uniform(k, shape, minval=rng[0], maxval=rng[1])  # noqa: E731
    return {
        "mass_scale": u(k1, dr.object_mass, (n_objects,)),
        "friction_scale": u(k2, dr.friction, ()),
        "gain_scale": u(k3, dr.actuator_gain, (n_actuators,)),
    }


def randomized_model(model, dr: Mapping[str, Array], bodies: np.ndarray, pairs: np.ndarray):
    """``model`` (mjx.Model) with one robot's multipliers from :func:`sample_dr` applied (vmaps per robot).

    Args:
      model: the task's mjx.Model.
      dr: the robot's ``info["dr"]``.
      bodies: [n_objects] body ids whose mass and inertia ``mass_scale`` multiplies.
      pairs: [P] contact pair ids whose sliding friction ``friction_scale`` multiplies.
    """
    kp = model.actuator_gainprm[:, 0] * dr["gain_scale"]  # a position servo biases by -kp·q: scale both
    updates = dict(
        actuator_gainprm=model.actuator_gainprm.at[:, 0].set(kp),
        actuator_biasprm=model.actuator_biasprm.at[:, 1].set(-kp),
    )
    if len(bodies):
        ms = dr["mass_scale"]
        updates["body_mass"] = model.body_mass.at[bodies].multiply(ms)
        updates["body_inertia"] = model.body_inertia.at[bodies].multiply(ms[:, None])
    if len(pairs):
        updates["pair_friction"] = model.pair_friction.at[pairs, :2].multiply(dr["friction_scale"])
    return model.replace(**updates)


__all__ = ["DomainRandomization", "EnvParams", "override_params", "sample_dr", "randomized_model"]
