"""``python -m evaluate --policy runs/NAME --env dishwashing``: the economics of a trained policy.

Prints MPᵣ, e, ŵᵣ, productivity and wage parity, the success rate (robots meeting both parity
conditions) and whether the convergence criterion held during training; writes a PNG of wage and
productivity parity over training (from ``training_metrics.csv``); ``--video out.mp4`` renders one
evaluation episode with the env's ``render()``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vpjax import economics


def build_parser():
    from vpjax.cli import ArgumentParser

    p = ArgumentParser(prog="python -m evaluate", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="run folder written by python -m train (or its policy.msgpack)")
    p.add_argument("--env", default=None, help="task (default: the run's env)")
    p.add_argument("--member", type=int, default=0, help="which member of a --num-seeds/--sweep run")
    p.add_argument("--robots", type=int, default=None,
                   help="robots evaluated in parallel, one episode each (default 16 on CPU, 128 on GPU)")
    p.add_argument("--no-expert", action="store_true",
                   help="skip the scripted expert's column (by default it is evaluated on the same scenes)")
    p.add_argument("--steps", type=int, default=0, help="control steps per evaluation episode (0 = full episode)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--plot", default=None, help="PNG path (default RUN/parity.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--video", default=None, help="render one evaluation episode to this MP4/GIF")
    p.add_argument("--video-size", type=int, default=240, help="frame height and width in pixels")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    return p


def load_run(run: Path, env_name: str | None = None):
    """(PPOConfig, env, env_params, policy params, normalizer, config dict) of a run folder."""
    from .setup import make_env
    from .config import PPOConfig
    from .rewards import resolve_reward
    from .members import econ_from_dict
    from .policy_file import load_policy, policy_template

    conf_path = run / "config.json"
    if not conf_path.is_file():
        raise SystemExit(f"--policy {run}: no config.json (not a run folder written by python -m train)")
    conf = json.loads(conf_path.read_text())
    cfg = PPOConfig(**conf["ppo"])
    name = env_name or conf.get("env", "dishwashing")
    env = make_env(name, reward_fn=resolve_reward(conf.get("reward")), **conf.get("env_kwargs", {}))
    base = env.default_params
    if "econ" in conf:
        base = base.replace(econ=econ_from_dict(conf["econ"], base.econ))
    pol_path = run / "policy.msgpack"
    if not pol_path.is_file():
        raise SystemExit(f"--policy {run}: no policy.msgpack (the run has not finished a chunk yet)")
    data = load_policy(pol_path, policy_template(cfg, env.observation_size, env.action_size))
    return cfg, env, base, data, conf


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


def plot_parity(rows: list[dict], path: Path, member: int, econ: dict, title: str) -> Path:
    """Wage and productivity parity over training (evaluation and training episodes) with the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if int(r.get("member", 0)) == member]
    x = np.array([r["env_steps"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(x, [r["eval_productivity_parity"] for r in rows], "-o", ms=3, label="productivity parity (eval)")
    ax.plot(x, [r["eval_wage_parity"] for r in rows], "-s", ms=3, label="wage parity (eval)")
    ax.plot(x, [r["productivity_parity"] for r in rows], ":", alpha=0.6, label="productivity parity (training)")
    ax.plot(x, [r["wage_parity"] for r in rows], ":", alpha=0.6, label="wage parity (training)")
    thr = econ.get("productivity_threshold", 0.95)
    tol = econ.get("wage_tolerance", 0.10)
    ax.axhline(thr, color="C0", lw=0.8, ls="--")
    ax.axhspan(1 - tol, 1 + tol, color="C1", alpha=0.12, label=f"wage parity target ±{tol:.0%}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("parity")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_video(env, states, path: Path, size: int, fps: float) -> Path:
    """Writes robot 0's evaluation episode (``env.render`` of its qpos trajectory) to ``path``."""
    import imageio

    from types import SimpleNamespace

    if not hasattr(env, "render"):
        raise SystemExit(f"--video: env {type(env).__name__} has no render()")
    qpos = np.asarray(jax.device_get(states))  # [T, nq] of robot 0
    traj = [SimpleNamespace(pipeline_state=SimpleNamespace(qpos=q)) for q in qpos]
    frames = env.render(traj, height=size, width=size)
    frames = [np.asarray(f) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), frames, fps=fps)
    return path


def expert_economics(env, env_params, robots: int, seed: int, steps: int = 0) -> dict | None:
    """The env's scripted expert on the evaluation's scenes (same key), or None if the task has no expert."""
    from envs.batching import vmap_robots
    from envs.experts import make_expert
    from rich.console import Console

    from .acting import evaluate_actor

    try:
        expert = vmap_robots(make_expert(env), (0, None))
    except (ValueError, KeyError) as e:
        print(f"no scripted expert column: {e}")
        return None
    run = jax.jit(lambda k: evaluate_actor(env, env_params, expert, k, robots, steps=steps))
    with Console().status("evaluating the scripted expert on the same scenes ..."):
        out = run(jax.random.PRNGKey(seed))
    return {k: float(v) for k, v in jax.device_get(out).items()}


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    from .acting import curriculum_end, evaluate_policy, policy_fn
    from .members import member_env_params

    args = build_parser().parse_args(argv)
    if args.robots is None:
        args.robots = 16 if jax.default_backend() == "cpu" else 128
    if args.robots < 1:
        raise SystemExit(f"--robots {args.robots}: must be >= 1")
    run = Path(args.policy)
    if run.is_file():
        run = run.parent
    cfg, env, base, data, conf = load_run(run, args.env)
    members = conf.get("members", [{"seed": 0}])
    if not 0 <= args.member < len(members):
        raise SystemExit(f"--member {args.member}: the run has {len(members)} member(s)")
    env_params = member_env_params(base, members[args.member])
    pick = lambda t: jax.tree.map(lambda x: jnp.asarray(x)[args.member], t)  # noqa: E731
    params, norm = pick(data["params"]), pick(data["norm"])
    act_fn = policy_fn(cfg, env.observation_size, env.action_size)
    # Evaluate at the end of the curriculum: the final α, γ are what the trained policy is judged with.
    env_params = curriculum_end(env_params)
    econ = env_params.econ
    want_states = args.video is not None
    ev_fn = jax.jit(lambda k: evaluate_policy(env, env_params, lambda o: act_fn(params, norm, o), k, args.robots,
                                              return_states=want_states, steps=args.steps))
    with Console().status("evaluating (compiling the env) ..."):
        out = ev_fn(jax.random.PRNGKey(args.seed))
    ev, states = out if want_states else (out, None)
    ev = {k: float(v) for k, v in jax.device_get(ev).items()}
    expert_ev = None if args.no_expert else expert_economics(env, env_params, args.robots, args.seed, args.steps)
    rows = read_csv(run / "training_metrics.csv")
    mrows = [r for r in rows if int(r.get("member", 0)) == args.member]
    converged = bool(mrows and mrows[-1].get("converged", 0) > 0)
    streak = int(mrows[-1]["streak"]) if mrows else 0
    thr, tol = float(econ.productivity_threshold), float(econ.wage_tolerance)
    holds_now = bool(economics.parity_holds(ev["productivity_parity"], ev["wage_parity"], econ))
    t = Table(title=f"{conf.get('env')} — {run} (member {args.member}, {args.robots} robots, 1 episode each, "
                    "deterministic policy)")
    t.add_column("metric")
    t.add_column("policy", justify="right")
    if expert_ev is not None:
        t.add_column("scripted expert", justify="right")
    for name, key, fmt in (("MPᵣ (units/h)", "mp", "{:.2f}"), ("e (error rate)", "error_rate", "{:.4f}"),
                           ("ŵᵣ ($/h)", "implied_wage", "{:.2f}"),
                           (f"productivity parity (≥ {thr:.2f})", "productivity_parity", "{:.3f}"),
                           (f"wage parity (1 ± {tol:.2f})", "wage_parity", "{:.3f}"),
                           ("success rate", "success_rate", "{:.3f}"),
                           ("episode return", "episode_return", "{:.3f}")):
        t.add_row(name, fmt.format(ev[key]), *([] if expert_ev is None else [fmt.format(expert_ev[key])]))
    pad = [] if expert_ev is None else [""]
    t.add_row("parity holds in this evaluation", "yes" if holds_now else "no", *pad)
    t.add_row("converged during training", f"{'yes' if converged else 'no'} (streak {streak})", *pad)
    Console(width=100).print(t)
    result = {**ev, "holds_now": holds_now, "converged": converged, "streak": streak}
    if expert_ev is not None:
        ratio = ev["mp"] / expert_ev["mp"] if expert_ev["mp"] > 0 else math.nan
        print(f"policy / expert MPᵣ: {ratio:.3f} (same {args.robots} scenes)")
        result["expert"] = expert_ev
        result["mp_vs_expert"] = ratio
    if not args.no_plot and rows:
        png = plot_parity(rows, Path(args.plot) if args.plot else run / "parity.png", args.member,
                          conf.get("econ", {}), f"{conf.get('env')}: parity over training")
        print(f"plot: {png}")
        result["plot"] = str(png)
    if args.video:
        vid = render_video(env, states, Path(args.video), args.video_size, fps=1.0 / env.dt)
        print(f"video: {vid}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
