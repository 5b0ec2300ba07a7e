"""Learning benchmark: how far, how fast a policy learns its job, by two routes.

``--route dagger`` (the demonstration route; any task with a scripted expert, ``--env``): demonstrations ->
DAgger with ``python -m train --algorithm dagger --size auto``'s settings on the full default task, then a
held-out evaluation of the student alone beside the expert on the same scenes. Writes
``learn_<env>_<backend>.{md,csv,png}`` and the policy to ``benchmarks/results/policy_<env>``::

    python benchmarks/learn_dishwashing.py --route dagger --env dishwashing --rounds 16   # CPU: ~20 min
    python benchmarks/learn_dishwashing.py --route dagger --env bricklaying --rounds 16

``--route ppo`` (default): time and env steps until PPO from scratch reaches wage and productivity parity on
dishwashing.

Target (issue 4): productivity parity ≥ 0.95 and |wage parity − 1| ≤ 0.10 in a deterministic evaluation
(the convergence conditions of README's PPO section, checked once rather than for N evaluations in a row).
The run stops at the target or when ``--minutes`` of wall-clock time (compilation included) are spent.
In the same run the env's scripted expert is evaluated the same way, as the reference of what the
task allows.

Writes to ``--results`` (default benchmarks/results/):
  learn_dishwashing_ppo_<backend>.md   the numbers (date, machine, command, time/steps to target, final economics)
  learn_dishwashing_ppo_<backend>.csv  the learning curve (training_metrics.csv of the run)
  learn_dishwashing_ppo_<backend>.png  wage and productivity parity over training
and saves the policy to ``--policy-out`` (default benchmarks/results/policy_dishwashing_ppo: config.json +
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
    p.add_argument("--policy-out", default=None,
                   help="run folder for the trained policy (config.json, policy.msgpack, CSV; no checkpoints; "
                        "default benchmarks/results/policy_<env>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--route", choices=["ppo", "dagger"], default="ppo",
                   help="ppo: PPO from scratch; dagger: demonstrations -> DAgger from the scripted expert "
                        "(python -m train --algorithm dagger --size auto)")
    p.add_argument("--env", default="dishwashing", help="task (the dagger route; PPO is dishwashing only)")
    p.add_argument("--rounds", type=int, default=None, help="dagger route: DAgger rounds (default --size auto's)")
    args = p.parse_args(argv)
    if args.policy_out is None:
        suffix = "" if args.route == "dagger" else "_ppo"
        args.policy_out = str(ROOT / "benchmarks" / "results" / f"policy_{args.env}{suffix}")
    if args.route == "dagger":
        return dagger_route(args, argv)
    if args.env != "dishwashing":
        p.error(f"--env {args.env}: the ppo route learns dishwashing only (use --route dagger)")

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
    stem = f"learn_dishwashing_ppo_{'gpu' if gpu else 'cpu'}"
    shutil.copy(out / "training_metrics.csv", res / f"{stem}.csv")
    plot_parity(result.rows, res / f"{stem}.png", 0, {"productivity_threshold": thr, "wage_tolerance": tol},
                f"dishwashing PPO ({backend}, {num_envs} robots)")
    last = result.rows[-1] if result.rows else {}
    best = max(result.rows, key=lambda r: r["eval_productivity_parity"]) if result.rows else {}
    lines = _record_head(f"Learning dishwashing to wage and productivity parity ({backend.upper()})", argv) + [
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


def _record_head(title: str, argv) -> list[str]:
    """The record's title and provenance lines: date, machine, jax, commit, command."""
    gpu = jax.default_backend() != "cpu"
    device = jax.devices()[0].device_kind if gpu else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cmd = "python benchmarks/learn_dishwashing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return [f"# {title}", "", f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- machine: {device}; jax {jax.__version__}; commit {commit}", f"- command: `{cmd}`"]


def plot_rounds(rows: list[dict], expert_parity: float | None, human_mp: float, path: Path, title: str) -> Path:
    """Productivity parity and units/h of each DAgger round against env steps and wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def num(v) -> float:  # a round's value as a float: a round without a held-out evaluation has "" there,
        return float("nan") if v is None or v == "" else float(v)  # which made matplotlib draw a categorical axis

    steps = [num(r["env_steps"]) for r in rows]
    wall = [num(r["wall_time"]) / 60.0 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, x, label in ((axes[0], steps, "env steps"), (axes[1], wall, "wall time (min, compilation included)")):
        ax.plot(x, [num(r["productivity_parity"]) for r in rows], "-o", ms=3, label="collection rollout (β mix)")
        held = [(xi, num(r.get("eval_productivity_parity"))) for xi, r in zip(x, rows)]
        held = [(xi, v) for xi, v in held if v == v]
        if held:
            ax.plot(*zip(*held), "s", ms=7, color="C3", label="held-out evaluation (student alone)")
        if expert_parity is not None:
            ax.axhline(num(expert_parity), color="k", lw=0.8, ls="--", label="scripted expert (same held-out scenes)")
        ax.axhline(0.95, color="C2", lw=0.8, ls=":", label="parity target 0.95")
        ax.set_xlabel(label)
        ax.set_ylabel("productivity parity MPᵣ/MPₕ")
        ax.grid(alpha=0.3)
        sec = ax.secondary_yaxis("right", functions=(lambda p: p * human_mp, lambda u: u / human_mp))
        sec.set_ylabel("units / h")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def dagger_route(args, argv) -> int:
    """Demonstrations -> DAgger on ``args.env`` (full default task), the record and the committed policy."""
    from envs.experts import make_expert
    from train.cli import build_parser
    from train.imitation import ImitationConfig
    from train.imitation_run import print_comparison, run_imitation
    from train.setup import resolve, units_label
    from vpjax.schema import parse_section

    gpu = jax.default_backend() != "cpu"
    backend = "gpu" if gpu else "cpu"
    cli = ["--env", args.env, "--algorithm", "dagger", "--size", "auto", "--seed", str(args.seed),
           "--minutes", str(args.minutes)]
    for s in args.set:
        cli += ["--set", s]
    for e in args.env_arg:
        cli += ["--env-arg", e]
    targs = build_parser().parse_args(cli)
    ppo, env, env_params, run_config = resolve(targs)
    icfg = parse_section(ImitationConfig, run_config.pop("imitation", None), "imitation (size auto)", "imitation")
    icfg = icfg.replace(seed=args.seed, **({"rounds": args.rounds} if args.rounds else {}),
                        **({"num_envs": args.num_envs} if args.num_envs else {}))
    out = Path(args.policy_out).resolve()
    work = out.with_name(out.name + ".run")  # the run folder with checkpoints; removed once the policy is copied
    if work.exists():
        shutil.rmtree(work)
    result = run_imitation(icfg, ppo, env, env_params, make_expert(env), out_dir=work, minutes=None,
                           run_config={**run_config, "benchmark": "learn_dishwashing --route dagger"})
    print_comparison(result, units_label(run_config))
    # the committed policy: config.json + policy.msgpack + the curve (no checkpoints: they hold the buffer)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("config.json", "policy.msgpack", "training_metrics.csv", "summary.json", "selection.json"):
        if (work / name).is_file():  # selection.json: only a select=best run has it
            shutil.copy(work / name, out / name)
    shutil.rmtree(work)
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    stem = f"learn_{args.env}_{backend}"
    shutil.copy(out / "training_metrics.csv", res / f"{stem}.csv")
    ev, ex = result.final_eval or {}, result.expert_eval or {}
    plot_rounds(result.rows, ex.get("productivity_parity"), float(env_params.econ.human_mp), res / f"{stem}.png",
                f"{args.env}: DAgger from the scripted expert ({backend.upper()}, {icfg.num_envs} robots per round)")
    lines = _record_head(f"Learning {args.env} from the scripted expert: demonstrations -> DAgger ({backend.upper()})",
                         argv) + [
             f"- DAgger: {icfg.rounds} rounds of {icfg.num_envs} robots x "
             f"{icfg.steps_per_round(env.episode_length)} steps, "
             f"β {list(icfg.beta_schedule)} (last repeats), {icfg.sgd_steps} {icfg.loss} minibatches of {icfg.batch_size} per round, "
             f"Adam {icfg.learning_rate} x {icfg.lr_decay}/round; student = PPO policy {ppo.policy_hidden} "
             f"{ppo.activation}; episode {env.episode_length} steps x {env.dt:g} s, domain randomization on",
             f"- evaluation: {icfg.num_eval_envs} held-out robots (scenes no round collected on), deterministic, one whole "
             "episode each; the scripted expert on the same scenes"]
    if result.selected_round:
        lines.append(f"- selection (`imitation.select=best`): the student of round {result.selected_round} had the "
                     f"highest MPᵣ on the {icfg.num_eval_envs} validation scenes (evaluated every {icfg.eval_every} "
                     f"rounds: {result.validation_eval['mp']:.1f}/h there); the table below is that student on "
                     f"{icfg.num_eval_envs} other test scenes, which the choice never saw")
    lines += ["", "| round | β | MPᵣ /h (collection) | e | prod. parity | BC MSE | held-out MPᵣ /h | env steps | wall s |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        held = r.get("eval_MP_r")
        held = f"{held:.1f}" if isinstance(held, (int, float)) and held == held else ""
        lines.append(f"| {int(r['iteration'])} | {r['dagger_beta']:.2f} | {r['MP_r']:.1f} | {r['e_t']:.3f} | "
                     f"{r['productivity_parity']:.2f} | {r['bc_mse']:.4f} | {held} | {int(r['env_steps']):,} | "
                     f"{r['wall_time']:.0f} |")
    lines += ["", f"| {'test scenes' if result.selected_round else 'held-out evaluation'} | MPᵣ /h | e | ŵᵣ $/h | prod. parity | wage parity | success |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, d in (("student (alone)", ev), ("scripted expert", ex)):
        if d:
            lines.append(f"| {name} | {d['mp']:.1f} | {d['error_rate']:.3f} | {d['implied_wage']:.2f} | "
                         f"{d['productivity_parity']:.3f} | {d['wage_parity']:.3f} | {d['success_rate']:.2f} |")
    if ev and ex and ex["mp"] > 0:
        ratio = ev["mp"] / ex["mp"]
        lines += ["", f"Student / expert MPᵣ: **{ratio:.3f}** (target ≥ 0.9); wall time {result.wall_time:.0f} s "
                      f"(goal ≤ 1,200 s) for {result.env_steps:,} env steps."]
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    lines += ["", f"Curve: `{stem}.csv`, plot: `{stem}.png`; policy: `{shown}` "
                  f"(`python -m evaluate --policy {shown} --env {args.env}`)."]
    text = "\n".join(lines) + "\n"
    (res / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
