"""``policy.msgpack``: the members' policy/value params and observation normalizer, and PPO from a policy.

The file holds ``{'params': {'policy', 'value'}, 'norm': RunningStats}`` with a leading member axis
(PPO and imitation runs write the same layout). :func:`start_from_policy` loads member 0's actor
and normalizer into fresh training states: ``python -m train --init RUN_OR_POLICY``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from vpjax.cli import write_atomic

# PPOConfig fields that define the policy network's function; an --init policy must share them.
POLICY_FIELDS = ("policy_hidden", "activation", "min_std", "normalize_obs")


def export_policy(path: Path, state) -> None:
    """Writes the members' policy/value params and normalizer (msgpack; small) for ``python -m evaluate``."""
    data = serialization.to_bytes({"params": jax.device_get(state.params), "norm": jax.device_get(state.norm)})
    write_atomic(path, lambda fh: fh.write(data), binary=True)  # a killed run keeps the previous policy


def policy_template(cfg, observation_size: int, action_size: int) -> dict:
    """The structure of a policy file for a run with PPOConfig ``cfg`` (one member; :func:`load_policy`
    keeps the file's member axis)."""
    from .networks import RunningStats, make_networks

    policy_net, value_net = make_networks(observation_size, action_size, cfg.policy_hidden, cfg.value_hidden,
                                          cfg.activation)
    dummy = jnp.zeros((1, observation_size))
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {"params": {"policy": policy_net.init(k1, dummy), "value": value_net.init(k2, dummy)},
            "norm": RunningStats.init(observation_size)}


def load_policy(path: Path, template) -> dict:
    """The file's pytree, in the structure of ``template`` (the arrays keep the file's shapes)."""
    return serialization.from_bytes(template, Path(path).read_bytes())


def policy_path(spec: str | Path) -> Path:
    """A run folder or a ``policy.msgpack`` -> the policy file; SystemExit naming ``--init`` if absent."""
    path = Path(spec)
    path = path / "policy.msgpack" if path.is_dir() else path
    if not path.is_file():
        raise SystemExit(f"--init {spec}: no policy file (expected a run folder with policy.msgpack, or the file)")
    return path


def _source_config(path: Path) -> dict:
    """The config.json beside the policy file ``path`` ({} when there is none); ValueError naming it when unreadable."""
    conf_path = Path(path).parent / "config.json"
    if not conf_path.is_file():
        return {}
    try:
        conf = json.loads(conf_path.read_text())
    except ValueError as e:
        raise ValueError(f"unreadable {conf_path} ({e})") from None
    if not isinstance(conf, dict):
        raise ValueError(f"unreadable {conf_path} (not a JSON object)")
    return conf


def source_policy_fields(path: Path) -> dict:
    """The :data:`POLICY_FIELDS` of the run that wrote the policy file ``path`` (its ``config.json``).

    Empty when no config.json is beside the file; JSON lists come back as tuples. ValueError naming
    the file when the config.json cannot be read.
    """
    ppo = _source_config(path).get("ppo") or {}
    return {k: tuple(ppo[k]) if isinstance(ppo[k], list) else ppo[k] for k in POLICY_FIELDS if k in ppo}


def source_env_kwargs(path: Path) -> dict:
    """The env constructor options (``env_kwargs``) of the run that wrote the policy file ``path``: the
    environment its observation came from. Empty when no config.json is beside the file; ValueError
    naming the file when it cannot be read."""
    return dict(_source_config(path).get("env_kwargs") or {})


def _check_source_config(path: Path, cfg) -> None:
    """Refuses a policy whose run (its ``config.json``, when beside it) used another policy network."""
    for k, got in source_policy_fields(path).items():
        want = getattr(cfg, k)
        if got != want:
            raise ValueError(f"--init {path}: its run has ppo.{k}={got!r}, this run ppo.{k}={want!r}")


def start_from_policy(state, spec: str | Path, cfg):
    """Member-stacked training state [M, ...] with the actor and normalizer of the policy at ``spec``.

    Member 0 of the file is copied, bit-exactly, into every member; the value network, optimizer
    state, env states and keys stay as they were. A state with an imitation anchor anchors to the
    loaded policy.
    """
    path = policy_path(spec)
    _check_source_config(path, cfg)
    template = {"params": {"policy": state.params["policy"]}, "norm": state.norm}
    data = serialization.msgpack_restore(path.read_bytes())
    if "params" not in data or "policy" not in data["params"] or "norm" not in data:
        raise ValueError(f"--init {path}: not a policy file (needs params.policy and norm)")
    loaded = serialization.from_state_dict(template, {"params": {"policy": data["params"]["policy"]},
                                                      "norm": data["norm"]})

    def member0(have, got, name):
        got = np.asarray(got)
        if got.shape[1:] != have.shape[1:]:
            raise ValueError(f"--init {path}: {name} has shape {got.shape[1:]}, this run expects {have.shape[1:]} "
                             f"(ppo.policy_hidden={cfg.policy_hidden}; same env and observation?)")
        return jnp.broadcast_to(jnp.asarray(got[0], have.dtype), have.shape)

    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    leaves = [member0(h, g, n) for h, g, n in zip(jax.tree.leaves(template), jax.tree.leaves(loaded), names)]
    new = jax.tree.unflatten(jax.tree.structure(template), leaves)
    policy, norm = new["params"]["policy"], new["norm"]
    # the anchor is a copy: the training step donates its state, and one buffer may not be donated twice
    anchor = None if state.anchor is None else jax.tree.map(lambda x: jnp.array(x, copy=True),
                                                            {"policy": policy, "norm": norm})
    return state.replace(params={**state.params, "policy": policy}, norm=norm, anchor=anchor)
