"""``python -m train``: PPO with the economic reward inside the jitted rollout.

Examples::

    python -m train --env dishwashing --algorithm ppo --timesteps 2000000 --out runs/dw
    python -m train --env dishwashing --size auto --out runs/main            # sized to this machine
    python -m train --env dishwashing --episodes 200 --alpha 1.0 --beta 0.5 --gamma 0.1 \
        --alpha-anneal --gamma-schedule linear --out runs/seedlike
    python -m train --env dishwashing --num-seeds 4 --sweep gamma=0.1,0.5,1.0 --out runs/sweep
    python -m train --env dishwashing --out runs/dw --resume                  # continue a killed run

The GPU is used when JAX sees one (install ``vpjax[cuda]``); robots are sharded over all local devices.
Multi-host: see ``train/MULTIHOST.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .config import PPOConfig


def build_parser() -> argparse.ArgumentParser:
    from vpjax.config import add_config_args

    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dishwashing",
                   help="task name (envs.make) or MODULE:FACTORY / path/to/file.py:FACTORY (default dishwashing)")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="env constructor override, e.g. --env-arg action_mode=ee_delta (repeatable)")
    p.add_argument("--algorithm", default="ppo", choices=["ppo"], help="training algorithm (ppo)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--timesteps", type=int, default=None, help="env steps to train for (all robots together)")
    g.add_argument("--episodes", type=int, default=None, help="episodes to train for, per robot")
    p.add_argument("--alpha-anneal", nargs="?", const="linear", default=None, metavar="KIND",
                   help="anneal α from alpha_initial to alpha_final (linear|cosine; default linear)")
    p.add_argument("--no-alpha-anneal", action="store_true", help="keep α at alpha_initial")
    p.add_argument("--reward", default=None,
                   help="reward function: seed (default), one_sided_wage, productivity_level, or MODULE:FUNCTION")
    p.add_argument("--out", default=None, help="run folder (default runs/<env>-<time>)")
    p.add_argument("--num-envs", type=int, default=None, help="parallel robots (global)")
    p.add_argument("--seed", type=int, default=None, help="base PRNG seed")
    p.add_argument("--num-seeds", type=int, default=1, help="train K independent agents in one compiled program")
    p.add_argument("--sweep", default=None, metavar="NAME=v1,v2[;NAME=...]",
                   help="vmap over EconParams/EnvParams values, e.g. gamma=0.1,0.5,1.0 (alpha/gamma: fixed weights)")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    p.add_argument("--size", choices=["auto", "config"], default="config",
                   help="auto: pick num_envs/timesteps/network sizes for this hardware (train/sizing.py)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget; stops and saves when spent")
    p.add_argument("--early-stop", action="store_true", help="stop when the convergence criterion holds")
    p.add_argument("--eval-every", type=int, default=None, help="training iterations between evaluations")
    p.add_argument("--unroll-length", type=int, default=None)
    p.add_argument("--num-minibatches", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--devices", type=int, default=None, help="shard over this many local devices (default all)")
    p.add_argument("--gpu", action="store_true", help="fail unless a GPU is visible (it is used automatically)")
    p.add_argument("--coordinator", default=os.environ.get("VPJAX_COORDINATOR"),
                   help="multi-host: coordinator host:port (env VPJAX_COORDINATOR); see train/MULTIHOST.md")
    p.add_argument("--num-processes", type=int, default=_env_int("VPJAX_NUM_PROCESSES"))
    p.add_argument("--process-id", type=int, default=_env_int("VPJAX_PROCESS_ID"))
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    add_config_args(p)
    return p


def _env_int(name):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else None


def _kv(items, flag) -> dict[str, Any]:
    from vpjax.config import parse_override_value

    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{flag} {item}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_override_value(v.strip())
    return out


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

    if not hasattr(envs, "make"):
        raise SystemExit(f"--env {name}: the envs package has no registry (envs.make) yet")
    return envs.make(name, **kwargs)


def config_name_for(env: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    from vpjax.config import CONFIG_DIR  # type: ignore[attr-defined]

    return env if (":" not in env and (Path(CONFIG_DIR) / f"{env}.yaml").is_file()) else "dishwashing"


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
    config = load_config(config_name_for(args.env, args.config), overrides)
    ppo = PPOConfig.from_mapping(config.sections.get("ppo"), config.section_sources.get("ppo", "config"))
    changes: dict[str, Any] = {}
    size_note = None
    if args.size == "auto":
        size = size_for_hardware(minutes=args.minutes, num_devices=args.devices, env=args.env)
        changes.update(num_envs=size.num_envs, unroll_length=size.unroll_length, num_minibatches=size.num_minibatches,
                       total_timesteps=size.total_timesteps, eval_every=size.eval_every,
                       num_eval_envs=size.num_eval_envs, policy_hidden=size.policy_hidden,
                       value_hidden=size.value_hidden, eval_steps=size.eval_steps)
        if args.minutes is None:
            args.minutes = size.minutes
        size_note = size.note
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
    env_kwargs = {**size_env, **dict(config.sections.get("env", {})), **_kv(args.env_arg, "--env-arg")}
    env = make_env(args.env, reward_fn=reward_fn, **env_kwargs)
    econ = config.econ_params()
    base = env.default_params
    econ = jax_cast_like(econ, base.econ)
    env_params = base.replace(econ=econ)
    run_config = {"env": args.env, "env_kwargs": env_kwargs, "reward": args.reward or "seed",
                  "config": config.to_dict(), "argv": sys.argv[1:], "size": size_note,
                  "sweep": args.sweep, "num_seeds": args.num_seeds, "minutes": args.minutes}
    return ppo, env, env_params, run_config


def jax_cast_like(tree, like):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x, y: jnp.asarray(x, jnp.asarray(y).dtype), tree, like)


def print_summary(result, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    if not result.rows:
        return
    last = {}
    for r in result.rows:
        last[r["member"]] = r
    t = Table(title=f"final evaluation ({result.env_steps:,} env steps, {result.wall_time:.0f} s, {result.stopped})")
    for c in ("member", "seed", "MPᵣ", "e", "ŵᵣ $/h", "productivity parity", "wage parity", "success", "converged",
              "measured at iteration"):
        t.add_column(c)
    for m, r in sorted(last.items()):
        t.add_row(str(m), str(r["seed"]), f"{r['eval_MP_r']:.1f}", f"{r['eval_e_t']:.3f}", f"{r['eval_w_hat_r']:.2f}",
                  f"{r['eval_productivity_parity']:.3f}", f"{r['eval_wage_parity']:.3f}",
                  f"{r['eval_success_rate']:.2f}", "yes" if r["converged"] else "no",
                  str(r["stats_iteration"]) if r["stats_iteration"] >= 0 else "no episode finished yet")
    Console().print(t)
    if out:
        Console().print(f"run folder: {out}  (training_metrics.csv, config.json, checkpoints/, policy.msgpack)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.coordinator or (args.num_processes or 1) > 1:
        import jax

        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    import jax

    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit(f"--gpu: no GPU visible to JAX (backend {jax.default_backend()!r}); install vpjax[cuda]")
    from .runner import parse_sweep, run_training

    ppo, env, env_params, run_config = resolve(args)
    seed = ppo.seed
    seeds = [seed + i for i in range(max(1, args.num_seeds))]
    out = Path(args.out) if args.out else Path("runs") / f"{args.env.split(':')[-1]}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_config.get("size"):
        print(run_config["size"])
    result = run_training(ppo, env, env_params, out_dir=out, seeds=seeds, sweep=parse_sweep(args.sweep),
                          resume=args.resume, minutes=args.minutes, progress=not args.no_progress,
                          num_devices=args.devices, run_config=run_config)
    print_summary(result, out)
    return 0
