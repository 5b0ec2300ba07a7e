"""Learning benchmark: time and env steps until a PPO policy reaches wage and productivity parity on dishwashing.

Target (issue 4): productivity parity ≥ 0.95 and |wage parity − 1| ≤ 0.10 in a deterministic evaluation
(the convergence conditions of the seed, checked once rather than for N evaluations in a row).
The run stops at the target or when ``--minutes`` of wall-clock time (compilation included) are spent.
In the same run the env's scripted expert is evaluated the same way, as the reference of what the
task allows.

Writes to ``--results`` (default benchmarks/results/):
  learn_dishwashing_<backend>.md   the numbers (date, machine, command, time/steps to target, final economics)
  learn_dishwashing_<backend>.csv  the learning curve (training_metrics.csv of the run)
  learn_dishwashing_<backend>.png  wage and productivity parity over training
and saves the policy to ``--policy-out`` (default benchmarks/results/policy_dishwashing: config.json +
policy.msgpack, small enough to commit; ``python -m evaluate --policy`` reads it on a CPU).

GPU (H100/H200, ~5 min)::

    python benchmarks/learn_dishwashing.py --minutes 5 --num-envs 4096
CPU smoke run (checks the pipeline end to end in ~9 min; a 40 s episode is too short to wash a dish, so
neither the policy nor the expert can reach parity in it)::

    python benchmarks/learn_dishwashing.py --minutes 8 --num-envs 32 --episode-seconds 40 --results /tmp/learn_cpu --policy-out /tmp/learn_cpu/policy
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402


def expert_economics(env, env_params, robots: int, seed: int = 7) -> dict | None:
    """The scripted expert's deterministic-episode economics (the loop that judges the policy), or None."""
    from envs.batching import vmap_robots
    from envs.experts import make_expert
    from train.acting import evaluate_actor

    try:
        expert = make_expert(env)
    except ValueError as e:  # an env without a registered expert
        print(f"no expert: {e}")
        return None
    run = jax.jit(lambda key: evaluate_actor(env, env_params, vmap_robots(expert, (0, None)), key, robots))
    return {k: float(v) for k, v in jax.device_get(run(jax.random.PRNGKey(seed))).items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget, compilation included")
    p.add_argument("--num-envs", type=int, default=None, help="robots (default 4096 on GPU, 32 on CPU)")
    p.add_argument("--timesteps", type=int, default=None, help="upper bound on env steps (default: ample)")
    p.add_argument("--unroll-length", type=int, default=None)
    p.add_argument("--num-minibatches", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None, help="iterations between evaluations")
    p.add_argument("--num-eval-envs", type=int, default=None)
    p.add_argument("--eval-steps", type=int, default=None,
                   help="control steps per evaluation (default 1500 = 60 s of work on GPU, 300 on CPU)")
    p.add_argument("--episode-seconds", type=float, default=None, help="shorter episodes learn faster on CPU")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help="env overrides")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (ppo.*, reward.*)")
    p.add_argument("--no-expert", action="store_true", help="skip the scripted-expert reference")
    p.add_argument("--keep-going", action="store_true", help="train for the whole budget even after the target")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--policy-out", default=str(ROOT / "benchmarks" / "results" / "policy_dishwashing"),
                   help="run folder for the trained policy (config.json, policy.msgpack, CSV; no checkpoints)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from train.acting import curriculum_end
    from train.cli import build_parser
    from train.setup import resolve
    from train.evaluate import plot_parity
    from train.runner import RunConfig, run_training

    gpu = jax.default_backend() != "cpu"
    backend = jax.default_backend()
    num_envs = args.num_envs or (4096 if gpu else 32)
    cli = ["--env", "dishwashing", "--num-envs", str(num_envs), "--seed", str(args.seed),
           "--timesteps", str(args.timesteps or (2_000_000_000 if gpu else 50_000_000))]
    if args.unroll_length:
        cli += ["--unroll-length", str(args.unroll_length)]
    cli += ["--num-minibatches", str(args.num_minibatches or (32 if gpu else 4))]
    cli += ["--eval-every", str(args.eval_every or (10 if gpu else 5))]
    sets = list(args.set)
    sets.append(f"ppo.num_eval_envs={args.num_eval_envs or (128 if gpu else 4)}")
    sets.append(f"ppo.eval_steps={args.eval_steps or (1500 if gpu else 300)}")
    if not gpu and not any(s.startswith("ppo.policy_hidden") for s in sets):
        sets += ["ppo.policy_hidden=[64,64]", "ppo.value_hidden=[128,128]"]
    for s in sets:
        cli += ["--set", s]
    env_args = list(args.env_arg)
    if args.episode_seconds:
        env_args.append(f"episode_seconds={args.episode_seconds}")
    for e in env_args:
        cli += ["--env-arg", e]
    targs = build_parser().parse_args(cli)
    ppo, env, env_params, run_config = resolve(targs)
    econ = env_params.econ
    thr, tol = float(econ.productivity_threshold), float(econ.wage_tolerance)
    hit: dict = {}
    t_start = time.time()

    def on_chunk(rows):
        r = rows[0]
        if not hit and r["eval_productivity_parity"] >= thr and abs(r["eval_wage_parity"] - 1.0) <= tol:
            hit.update(time=time.time() - t_start, env_steps=r["env_steps"], row=dict(r))
            return not args.keep_going
        return False

    out = Path(args.policy_out)
    if out.exists():
        shutil.rmtree(out)
    run = RunConfig(out_dir=out, seeds=(ppo.seed,), minutes=args.minutes, checkpoints=False,
                    run_config={**run_config, "benchmark": "learn_dishwashing"})
    result = run_training(ppo, env, env_params, run, on_chunk=on_chunk)
    wall = time.time() - t_start
    expert = None

    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    stem = f"learn_dishwashing_{'gpu' if gpu else 'cpu'}"
    shutil.copy(out / "training_metrics.csv", res / f"{stem}.csv")
    plot_parity(result.rows, res / f"{stem}.png", 0, {"productivity_threshold": thr, "wage_tolerance": tol},
                f"dishwashing PPO ({backend}, {num_envs} robots)")
    last = result.rows[-1] if result.rows else {}
    best = max(result.rows, key=lambda r: r["eval_productivity_parity"]) if result.rows else {}
    device = jax.devices()[0].device_kind if gpu else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cmd = "python benchmarks/learn_dishwashing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Learning dishwashing to wage and productivity parity ({backend.upper()})", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
             f"- machine: {device}; jax {jax.__version__}; commit {commit}",
             f"- command: `{cmd}`",
             f"- PPO: {ppo.num_envs} robots, unroll {ppo.unroll_length}, {ppo.num_minibatches} minibatches, "
             f"{ppo.update_epochs} epochs, lr {ppo.learning_rate}, networks {ppo.policy_hidden}/{ppo.value_hidden}; "
             f"episode {env.episode_length} steps x {env.dt:g} s",
             f"- target: eval productivity parity ≥ {thr:.2f} and |wage parity − 1| ≤ {tol:.2f}", "",
             "| quantity | value |", "|---|---:|"]
    if hit:
        lines += [f"| time to target (incl. compile) | {hit['time']:.0f} s |",
                  f"| env steps to target | {hit['env_steps']:,} |"]
    else:
        lines += [f"| time to target | not reached in {wall:.0f} s |", "| env steps to target | — |"]
    lines += [f"| env steps trained | {result.env_steps:,} |", f"| wall time | {result.wall_time:.0f} s |",
              f"| stop reason | {result.stopped if not hit else 'target reached'} |"]
    for name, r in (("final", last), ("best", best)):
        if r:
            lines.append(f"| {name} eval: MPᵣ / e / ŵᵣ | {r['eval_MP_r']:.1f} /h / {r['eval_e_t']:.3f} / "
                         f"${r['eval_w_hat_r']:.2f}/h |")
            lines.append(f"| {name} eval: productivity / wage parity / success | {r['eval_productivity_parity']:.3f} / "
                         f"{r['eval_wage_parity']:.3f} / {r['eval_success_rate']:.2f} |")
    tail = ["", f"Curve: `{stem}.csv`, plot: `{stem}.png`; policy: `{out}` (`python -m evaluate --policy {out}`)."]
    md = res / f"{stem}.md"
    md.write_text("\n".join(lines + tail) + "\n")  # written now, so a timeout in the expert run keeps it
    if not args.no_expert:
        expert = expert_economics(env, curriculum_end(env_params), min(max(ppo.num_eval_envs, 4), 64))
    if expert:
        lines.append(f"| scripted expert (same env, full episode): MPᵣ / e / prod. parity / wage parity | "
                     f"{expert['mp']:.1f} / {expert['error_rate']:.3f} / {expert['productivity_parity']:.3f} / "
                     f"{expert['wage_parity']:.3f} |")
    text = "\n".join(lines + tail) + "\n"
    md.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
