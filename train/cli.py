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
import time
from pathlib import Path
from typing import Any

from .setup import config_name_for, jax_cast_like, load_factory, make_env, resolve, units_label  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    from vpjax.cli import ArgumentParser
    from vpjax.config import add_config_args

    p = ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dishwashing",
                   help="task name (envs.make) or MODULE:FACTORY / path/to/file.py:FACTORY (default dishwashing)")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="env constructor override, e.g. --env-arg action_mode=ee_delta (repeatable)")
    p.add_argument("--algorithm", default="ppo", choices=["ppo", "dagger", "bc"],
                   help="ppo; dagger (the student acts, the scripted expert labels); bc (the expert acts)")
    p.add_argument("--rounds", type=int, default=None, help="dagger/bc: collect + fit rounds (imitation.rounds)")
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
    p.add_argument("--init", default=None, metavar="RUN_OR_POLICY",
                   help="start PPO from this run folder's (or policy.msgpack's) actor and normalizer; value net fresh")
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


def print_summary(result, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    if not result.rows:
        return
    last = {}
    for r in result.rows:
        last[r["member"]] = r
    console = Console(width=100)
    if all(r["stats_iteration"] < 0 for r in last.values()):
        # nothing measured: a table of NaNs says less than one line
        console.print(f"{result.env_steps:,} env steps in {result.wall_time:.0f} s ({result.stopped}): no episode finished "
                      "and no evaluation ran yet (python -m evaluate judges the policy)")
        if out:
            console.print(f"run folder: {out}  (training_metrics.csv, config.json, checkpoints/, policy.msgpack)")
        return
    t = Table(title=f"final evaluation ({result.env_steps:,} env steps, {result.wall_time:.0f} s, {result.stopped})")
    for c in ("member", "seed", "MPᵣ", "e", "ŵᵣ $/h", "productivity parity", "wage parity", "success", "converged",
              "measured at iteration"):
        t.add_column(c)
    for m, r in sorted(last.items()):
        t.add_row(str(m), str(r["seed"]), f"{r['eval_MP_r']:.1f}", f"{r['eval_e_t']:.3f}", f"{r['eval_w_hat_r']:.2f}",
                  f"{r['eval_productivity_parity']:.3f}", f"{r['eval_wage_parity']:.3f}",
                  f"{r['eval_success_rate']:.2f}", "yes" if r["converged"] else "no",
                  str(r["stats_iteration"]) if r["stats_iteration"] >= 0 else "no episode finished yet")
    console.print(t)
    if out:
        console.print(f"run folder: {out}  (training_metrics.csv, config.json, checkpoints/, policy.msgpack)")


def _run_imitation(args, ppo, env, env_params, run_config, out: Path) -> int:
    """``--algorithm dagger|bc``: the student (PPO's policy network) learns from the task's scripted expert."""
    from envs.experts import make_expert
    from vpjax.schema import parse_section

    from .imitation import ImitationConfig
    from .imitation_run import print_comparison, run_imitation

    changes: dict[str, Any] = {"algorithm": args.algorithm, "seed": ppo.seed}
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if args.num_envs is not None:
        changes["num_envs"] = args.num_envs
    source = " + ".join((run_config.get("config") or {}).get("sources", [])) or "config"
    parsed = parse_section(ImitationConfig, run_config.pop("imitation", None), source, "imitation")
    icfg = _user_error(lambda: parsed.replace(**changes))
    if not args.no_progress:
        print(f"{icfg.algorithm}: {icfg.rounds} rounds of {icfg.num_envs} robots x "
              f"{icfg.steps_per_round(env.episode_length)} steps; {icfg.sgd_steps} {icfg.loss} minibatches of "
              f"{icfg.batch_size} per round; {icfg.num_eval_envs} held-out")
    result = run_imitation(icfg, ppo, env, env_params, make_expert(env), out_dir=out, resume=args.resume,
                           minutes=args.minutes, progress=not args.no_progress, run_config=run_config)
    print_comparison(result, units_label(run_config))
    print(f"run folder: {out}  (training_metrics.csv, config.json, checkpoints/, policy.msgpack)")
    return 0


def _user_error(fn):
    """``fn()``, with the ValueError a flag's validator raises (naming the flag) turned into a UserError."""
    from vpjax.cli import UserError

    try:
        return fn()
    except ValueError as e:
        raise UserError(str(e)) from None


def check_args(args) -> None:
    """Refuses bad flags before any config is read or env is built (cheap: nothing compiles).

    Raises:
      vpjax.cli.UserError: a bad ``--reward``, ``--sweep``, ``--init`` or count, naming the flag.
    """
    from vpjax.cli import UserError

    from .members import parse_sweep
    from .rewards import resolve_reward

    if ":" not in args.env:
        import envs

        if args.env not in envs.registered():
            raise UserError(f"--env {args.env}: not a registered task ({', '.join(envs.registered())}) "
                            "nor MODULE:FACTORY")
    _user_error(lambda: parse_sweep(args.sweep))
    _user_error(lambda: resolve_reward(args.reward))
    if args.init is not None and not Path(args.init).exists():
        raise UserError(f"--init {args.init}: no such run folder or policy file")
    for flag in ("num_seeds", "devices", "rounds", "num_envs", "eval_every", "unroll_length", "num_minibatches"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} {v}: must be >= 1")
    if args.minutes is not None and not args.minutes > 0:
        raise UserError(f"--minutes {args.minutes}: must be > 0")


def main(argv=None) -> int:
    """``python -m train``; a user's mistake raises :class:`vpjax.cli.UserError` (``__main__`` prints it)."""
    args = build_parser().parse_args(argv)
    check_args(args)
    if args.coordinator or (args.num_processes or 1) > 1:
        import jax

        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    import jax

    if args.gpu and jax.default_backend() != "gpu":
        raise SystemExit(f"--gpu: no GPU visible to JAX (backend {jax.default_backend()!r}); install vpjax[cuda]")
    from vpjax.cli import UserError

    from .members import build_members, parse_sweep
    from .runner import RunConfig, run_training

    try:
        ppo, env, env_params, run_config = resolve(args)
    except ValueError as e:
        if not str(e).startswith("envs.make("):  # envs.make names an unknown --env-arg / env: key this way
            raise
        raise UserError(f"--env-arg / env section: {e}") from None
    seed = ppo.seed
    seeds = [seed + i for i in range(max(1, args.num_seeds))]
    _user_error(lambda: build_members(env_params, seeds[:1], parse_sweep(args.sweep)))  # sweep names the env lacks
    out = Path(args.out) if args.out else Path("runs") / f"{args.env.split(':')[-1]}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_config.get("size"):
        print(run_config["size"])
    if args.algorithm in ("dagger", "bc"):
        return _run_imitation(args, ppo, env, env_params, run_config, out)
    run = RunConfig(out_dir=out, seeds=tuple(seeds), sweep=parse_sweep(args.sweep), resume=args.resume,
                    init=args.init, minutes=args.minutes, progress=not args.no_progress, num_devices=args.devices,
                    run_config=run_config)
    result = run_training(ppo, env, env_params, run)
    print_summary(result, out)
    return 0
