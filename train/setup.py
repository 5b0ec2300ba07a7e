"""From ``python -m train`` arguments to what training needs: the config, the env and its params.

Library code (the CLI, the evaluator and the benchmarks call it): :func:`resolve` reads the config
files, applies the command-line overrides and the hardware sizing, and builds the env with
:func:`make_env` (a registered task or a ``MODULE:FACTORY``).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from .config import PPOConfig


def _kv(items, flag) -> dict[str, Any]:
    from vpjax.cli import parse_assignments
    from vpjax.config import parse_override_value

    return {k: parse_override_value(v) for k, v in parse_assignments(items, flag).items()}


def load_factory(spec: str):
    """``module:attr`` or ``path/file.py:attr`` -> the object (an env class or factory)."""
    from .rewards import import_module_or_file

    mod_name, attr = spec.rsplit(":", 1)
    try:
        module = import_module_or_file(mod_name)
    except FileNotFoundError as e:
        raise SystemExit(f"--env {spec}: {e}") from e
    if not hasattr(module, attr):
        raise SystemExit(f"--env {spec}: {mod_name} has no {attr!r}")
    return getattr(module, attr)


def make_env(name: str, reward_fn=None, **kwargs):
    """The env for ``--env``: envs.make(name, ...) for a registered task, else a MODULE:FACTORY."""
    if reward_fn is not None:
        kwargs["reward_fn"] = reward_fn
    if ":" in name:
        return load_factory(name)(**kwargs)
    import envs

    return envs.make(name, **kwargs)


def config_name_for(env: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    from vpjax.config import CONFIG_DIR  # type: ignore[attr-defined]

    return env if (":" not in env and (Path(CONFIG_DIR) / f"{env}.yaml").is_file()) else "dishwashing"


def _from_init_run(spec, read) -> Any:
    """``read(policy file)`` for ``--init spec``; its ValueError becomes one line naming ``--init``."""
    from .policy_file import policy_path

    try:
        return read(policy_path(spec))
    except ValueError as e:
        raise SystemExit(f"--init {spec}: {e}") from None


def init_policy_fields(spec) -> dict:
    """The policy-network fields (``policy_file.POLICY_FIELDS``) of the run that wrote ``--init``'s policy.

    Empty when the policy file has no config.json beside it (the run's own fields are then checked
    against the file's array shapes when it is loaded).
    """
    from .policy_file import source_policy_fields

    return _from_init_run(spec, source_policy_fields)


def init_env_kwargs(spec) -> dict:
    """The env options (``env_kwargs``) of the run that wrote ``--init``'s policy; empty without its config.json."""
    from .policy_file import source_env_kwargs

    return _from_init_run(spec, source_env_kwargs)


def observation_options(env, source: dict, explicit: dict) -> dict:
    """``env``'s ``OBSERVATION_OPTIONS`` as the run ``source`` (its ``env_kwargs``) had them, except those set in
    ``explicit``: the recorded value, else the constructor's default (a run records only what it set)."""
    out = {}
    for key in getattr(type(env), "OBSERVATION_OPTIONS", ()):
        if key in explicit:
            continue
        if key in source:
            out[key] = source[key]
            continue
        for cls in type(env).__mro__:  # the default of the first constructor in the hierarchy that names it
            param = inspect.signature(cls.__init__).parameters.get(key) if "__init__" in vars(cls) else None
            if param is not None and param.default is not inspect.Parameter.empty:
                out[key] = param.default
                break
    return out


def units_label(run_config: dict) -> str:
    """The plural of the run's ``config.unit_name`` (dish -> dishes, brick -> bricks), for report headers."""
    unit = (run_config.get("config") or {}).get("unit_name") or "unit"
    return f"{unit}es" if unit.endswith(("s", "sh", "ch", "x", "z")) else f"{unit}s"


def resolve(args) -> tuple[PPOConfig, Any, Any, dict]:
    """CLI args -> (PPOConfig, env, env_params, resolved run config)."""
    from vpjax.config import load_config, overrides_from_args

    from .rewards import resolve_reward
    from .sizing import size_for_hardware

    overrides = overrides_from_args(args)
    if args.alpha_anneal:
        overrides["reward.alpha_schedule"] = args.alpha_anneal
    if args.no_alpha_anneal:
        overrides["reward.alpha_schedule"] = "constant"
    config_name = config_name_for(args.env, args.config)
    config = load_config(config_name, overrides)
    ppo = config.section(PPOConfig, "ppo")
    changes: dict[str, Any] = {}
    size_note = None
    imitation = dict(config.sections.get("imitation", {}))
    if args.size == "auto":
        size = size_for_hardware(minutes=args.minutes, num_devices=args.devices, env=args.env,
                                 algorithm=args.algorithm, from_policy=args.init is not None)
        sized = dict(num_envs=size.num_envs, unroll_length=size.unroll_length, num_minibatches=size.num_minibatches,
                     total_timesteps=size.total_timesteps, eval_every=size.eval_every,
                     num_eval_envs=size.num_eval_envs, policy_hidden=size.policy_hidden,
                     value_hidden=size.value_hidden, eval_steps=size.eval_steps)
        # what the user set explicitly (--set ppo.KEY=..., --set imitation.KEY=...) wins over the sizing
        changes.update({k: v for k, v in sized.items() if f"ppo.{k}" not in overrides})
        imitation.update({k: v for k, v in size.imitation.items() if f"imitation.{k}" not in overrides})
        if args.minutes is None:
            args.minutes = size.minutes
        size_note = size.note
    if args.init is not None:
        # the actor continues as it was trained: its architecture comes from the --init run
        changes.update(init_policy_fields(args.init))
    for flag, key in (("num_envs", "num_envs"), ("timesteps", "total_timesteps"), ("episodes", "episodes"),
                      ("seed", "seed"), ("eval_every", "eval_every"), ("unroll_length", "unroll_length"),
                      ("num_minibatches", "num_minibatches"), ("learning_rate", "learning_rate")):
        v = getattr(args, flag)
        if v is not None:
            changes[key] = v
    if args.timesteps is not None:
        changes["episodes"] = 0
    if args.early_stop:
        changes["early_stop"] = True
    if changes.get("num_envs") is not None and "num_minibatches" not in changes:
        # keep the minibatch count valid when only the robot count changes
        n = changes["num_envs"] * changes.get("unroll_length", ppo.unroll_length)
        mb = changes.get("num_minibatches", ppo.num_minibatches)
        while n % mb:
            mb //= 2
        changes["num_minibatches"] = max(mb, 1)
    ppo = ppo.replace(**changes)
    reward_fn = resolve_reward(args.reward)
    size_env = size.env_overrides if args.size == "auto" else {}
    explicit = _kv(args.env_arg, "--env-arg")
    # a task config's env: options are that task's constructor args; an env that only borrows the config
    # (a MODULE:FACTORY without --config falls back to dishwashing's economics) does not get them
    borrowed = args.config is None and config_name != args.env
    env_kwargs = {**size_env, **({} if borrowed else dict(config.sections.get("env", {}))), **explicit}
    env = make_env(args.env, reward_fn=reward_fn, **env_kwargs)
    if args.init is not None:
        # the actor continues on the env it was trained on: the options that shape the observation come from
        # its run (over the config's; --env-arg still wins)
        keep = observation_options(env, init_env_kwargs(args.init), explicit)
        if any(getattr(env, k, v) != v for k, v in keep.items()):
            env_kwargs.update(keep)
            env = make_env(args.env, reward_fn=reward_fn, **env_kwargs)
    econ = config.econ_params()
    base = env.default_params
    econ = jax_cast_like(econ, base.econ)
    env_params = base.replace(econ=econ)
    run_config = {"env": args.env, "env_kwargs": env_kwargs, "reward": args.reward or "seed",
                  "config": config.to_dict(), "argv": sys.argv[1:], "size": size_note,
                  "sweep": args.sweep, "num_seeds": args.num_seeds, "minutes": args.minutes,
                  "imitation": imitation}
    return ppo, env, env_params, run_config


def jax_cast_like(tree, like):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x, y: jnp.asarray(x, jnp.asarray(y).dtype), tree, like)
