"""Training members (seeds x sweep values) and their data-parallel sharding over devices.

Every member is a full PPO agent with its own env params; the runner stacks them on a leading
member axis and vmaps the jitted chunk over it, so a ``--sweep`` or ``--num-seeds`` run is one program.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

_ALIASES = {"alpha": ("alpha", "alpha_initial", "alpha_final"), "gamma": ("gamma", "gamma_initial", "gamma_final"),
            "anneal_episodes": ("anneal_steps",)}


def parse_sweep(text: str | None) -> dict[str, list[float]]:
    """``"gamma=0.1,0.5,1.0;beta=0.2,0.5"`` -> ``{"gamma": [0.1, 0.5, 1.0], "beta": [0.2, 0.5]}``."""
    out: dict[str, list[float]] = {}
    if not text:
        return out
    for part in text.replace(" ", "").split(";"):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"--sweep {part!r}: expected NAME=v1,v2,...")
        name, values = part.split("=", 1)
        try:
            out[name] = [float(v) for v in values.split(",") if v]
        except ValueError as e:
            raise ValueError(f"--sweep {name}: values must be numbers ({e})") from e
        if not out[name]:
            raise ValueError(f"--sweep {name}: no values")
    return out


def _set_field(env_params, name: str, value: float):
    econ = env_params.econ
    econ_fields = set(econ.__dataclass_fields__)
    targets = _ALIASES.get(name, (name,))
    if all(t in econ_fields for t in targets):
        # Sweeping alpha or gamma fixes the weight for the whole run (initial = final = value).
        changes = {t: jnp.asarray(value, getattr(econ, t).dtype) for t in targets}
        return env_params.replace(econ=econ.replace(**changes))
    if name in getattr(env_params, "__dataclass_fields__", {}) and name != "econ":
        return env_params.replace(**{name: jnp.asarray(value, jnp.asarray(getattr(env_params, name)).dtype)})
    known = sorted(econ_fields | set(_ALIASES) | (set(getattr(env_params, "__dataclass_fields__", {})) - {"econ"}))
    raise ValueError(f"--sweep {name}: not an EconParams or EnvParams field (known: {', '.join(known)})")


def build_members(env_params, seeds: Sequence[int], sweep: dict[str, list[float]] | None):
    """Cartesian product of sweep values x seeds.

    Returns:
      (stacked env params with a leading member axis [M], keys [M, 2], descriptions: list of dicts).
    """
    sweep = sweep or {}
    names = list(sweep)
    combos = list(itertools.product(*[sweep[n] for n in names])) if names else [()]
    params, keys, desc = [], [], []
    for combo in combos:
        p = env_params
        for n, v in zip(names, combo):
            p = _set_field(p, n, v)
        for s in seeds:
            params.append(p)
            keys.append(jax.random.PRNGKey(int(s)))
            desc.append({"seed": int(s), **dict(zip(names, combo))})
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)
    return stacked, jnp.stack(keys), desc


def econ_to_dict(econ) -> dict:
    """EconParams -> {field: float} (JSON; rebuilt by :func:`econ_from_dict`)."""
    return {k: float(np.asarray(getattr(econ, k))) for k in econ.__dataclass_fields__}


def econ_from_dict(d: dict, like) -> Any:
    """Inverse of :func:`econ_to_dict`, with the dtypes of ``like``."""
    return like.replace(**{k: jnp.asarray(v, jnp.asarray(getattr(like, k)).dtype) for k, v in d.items()})


def member_env_params(env_params, desc: dict):
    """The env params of one member described by ``desc`` (its sweep values)."""
    for k, v in desc.items():
        if k != "seed":
            env_params = _set_field(env_params, k, v)
    return env_params


def make_mesh(num_devices: int | None = None):
    """A 1-D ``('data',)`` mesh over the first ``num_devices`` devices (all, over all hosts, by default)."""
    devs = jax.devices()
    if num_devices is not None:
        if num_devices > len(devs):
            raise ValueError(f"--devices {num_devices}: only {len(devs)} device(s) visible")
        devs = devs[:num_devices]
    return jax.sharding.Mesh(np.array(devs), ("data",))


def _put(x, sharding):
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)  # every process built the same initial state from the same keys
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def shard_state(state, mesh):
    """Env-batched leaves (env_state, ep_return: axis 1 after the member axis) split over 'data'; others replicated.

    jit then runs the rollout data-parallel and XLA all-reduces the gradients and normalizer statistics.
    """
    P = jax.sharding.PartitionSpec
    rep = jax.sharding.NamedSharding(mesh, P())
    batch = jax.sharding.NamedSharding(mesh, P(None, "data"))
    tree = state.replace(
        env_state=jax.tree.map(lambda x: batch if np.ndim(x) >= 2 else rep, state.env_state),
        ep_return=batch,
    )
    shardings = jax.tree.map(lambda x: rep, state)
    shardings = shardings.replace(env_state=tree.env_state, ep_return=batch)
    return jax.tree.map(_put, state, shardings)
