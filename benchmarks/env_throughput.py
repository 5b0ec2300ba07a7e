"""Control steps per second of the vpjax dishwashing env against its physics floor and a known peer.

One run measures, at each batch size:

* ``env``   -- ``jax.vmap(AutoReset(env).step)`` of our env (action mode, IK, DR, economics, shaping,
  instability guard, auto-reset from the cached first state): what the trainer runs;
* ``env_fresh_reset`` (only with ``--compare-fresh``) -- the same with ``AutoReset(reset_mode="fresh")``
  (a full ``env.reset`` computed every step under vmap: the version measured before the cache);
* ``bare``  -- ``mjx.step`` x ``n_substeps`` on the same MJX model from the same initial states with
  fixed controls: the physics floor, no env logic;
* ``brax humanoid`` -- brax's ``humanoid`` env with ``backend="mjx"`` (a known reference workload;
  skip with ``--skip-brax``).

Each workload is one jitted function running ``--steps-per-call`` control steps in a ``lax.scan``
for the whole batch; compilation and one warm-up call are excluded from timing, every timed call
ends with ``block_until_ready``. The workloads of a batch size are timed in ``--rounds``
interleaved rounds (``--seconds`` split among them) and the best round counts, so that a load that
drifts on a shared machine hits every workload alike. Prints a markdown
table (env overhead over bare physics = bare/env − 1) and writes it with ``--out`` (rewritten after
every batch size, so a run stopped by a time limit keeps its finished rows). The 1-minute load
average at the start and the end of the run is recorded (CPU numbers on a shared machine are noisy).

Examples::

    python benchmarks/env_throughput.py --batch-sizes 1,16,64 --seconds 5 --out benchmarks/results/env_throughput_cpu.md
    python benchmarks/env_throughput.py --batch-sizes 16384,4096,1024 --seconds 3 --compare-fresh --out benchmarks/results/env_throughput_h100.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402


def _machine() -> str:
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    kind = getattr(dev, "device_kind", str(dev))
    return f"{dev.platform.upper()} {kind} x{jax.device_count()}; host {cpu}, {os.cpu_count()} cores"


def _compile(fn, state):
    """Compiles ``fn`` and makes one warm-up call; returns (state after both calls, compile seconds)."""
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(state))
    compile_s = time.perf_counter() - t0
    return jax.block_until_ready(fn(state)), compile_s


def _rate(fn, state, seconds: float):
    """Calls ``fn`` repeatedly for ``seconds`` (block_until_ready after each); returns (state, calls/s)."""
    calls = 0
    t0 = time.perf_counter()
    while True:
        state = jax.block_until_ready(fn(state))
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return state, calls / elapsed


def _policy_runner(step, batch: int, action_size: int, steps: int):
    """Jitted ``(state, key) -> (state, key)``: ``steps`` control steps of ``step`` (batched) with
    uniform random actions drawn once per call (the same shape of work for every env)."""

    @jax.jit
    def run(carry):
        state, key = carry
        key, k = jax.random.split(key)
        actions = jax.random.uniform(k, (batch, action_size), minval=-1.0, maxval=1.0)

        def body(s, _):
            return step(s, actions), None

        state, _ = jax.lax.scan(body, state, None, length=steps)
        return state, key

    return run


def make_workloads(batch: int, steps: int, env_name: str, skip_brax: bool, compare_fresh: bool = False):
    from mujoco import mjx

    import envs
    from envs.batching import vmap_robots
    from envs.wrappers import AutoReset

    env = envs.make(env_name)
    params = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    work = []
    for name, mode in [("env", "cached")] + ([("env_fresh_reset", "fresh")] if compare_fresh else []):
        auto = AutoReset(env, reset_mode=mode)
        s0 = jax.jit(vmap_robots(auto.reset))(keys)
        step = vmap_robots(auto.step, (0, 0, None))
        run = _policy_runner(lambda s, a, step=step: step(s, a, params), batch, env.action_size, steps)
        work.append((name, run, (s0, jax.random.PRNGKey(1))))

    model = env.mjx_model
    n_sub = env.n_substeps
    d0 = jax.jit(vmap_robots(env.reset))(keys).pipeline_state

    @jax.jit
    def bare_run(d):
        def one(d):
            def sub(d, _):
                return mjx.step(model, d), None

            return jax.lax.scan(sub, d, None, length=n_sub)[0]

        def body(d, _):
            return vmap_robots(one)(d), None

        return jax.lax.scan(body, d, None, length=steps)[0]

    work.append(("bare", bare_run, d0))
    if not skip_brax:
        from brax import envs as brax_envs

        h = brax_envs.get_environment("humanoid", backend="mjx")
        hs0 = jax.jit(vmap_robots(h.reset))(jax.random.split(jax.random.PRNGKey(2), batch))
        run = _policy_runner(vmap_robots(h.step), batch, h.action_size, steps)
        work.append(("brax_humanoid", run, (hs0, jax.random.PRNGKey(3))))
    return env, work


def _report(args, argv, env, rows, console, final: bool, load_start: str) -> None:
    cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    load_now = _load()
    fresh = any("env_fresh_reset" in r for r in rows)
    lines = [
        f"# Env throughput: {args.env}",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {_machine()}",
        f"- load average (1 min): {load_start} at start, {load_now} at {'end' if final else 'last row'}",
        f"- software: jax {jax.__version__}, mujoco {__import__('mujoco').__version__}, python {platform.python_version()}",
        f"- command: `{cmd}`",
        f"- env: `envs.make({args.env!r})` defaults: action_mode={env.action_mode}, arms={env.arms}, "
        f"nq={env.mj_model.nq}, nv={env.mj_model.nv}, contact pairs={env.mj_model.npair}, "
        f"{env.n_substeps} substeps x {env.mj_model.opt.timestep} s = control dt {env.dt} s, "
        f"solver iterations {env.mj_model.opt.iterations}/{env.mj_model.opt.ls_iterations}",
        f"- timing: {args.steps_per_call} control steps per jitted call (lax.scan over a vmapped batch); "
        f"after compile + one warm-up call of every workload, {args.rounds} interleaved rounds of "
        f"{args.seconds / args.rounds:g} s per workload, block_until_ready after each call; the best round counts",
        "- every workload vmaps its robots with `envs.batching.vmap_robots` (plain vmap, or lax.map groups of <= 32 on a CPU with <= 2 threads, where larger batches deadlock in batched LAPACK Cholesky)\n"
        "- env = `vmap(AutoReset(env).step)` (IK, DR, economics, shaping, guard, auto-reset from the cached "
        "first state); bare = `mjx.step` x substeps on the same model (physics floor); overhead = bare/env − 1"
        + ("; env fresh reset = `AutoReset(env, reset_mode='fresh')` (a full reset computed every step)" if fresh else ""),
        "",
        "| batch | env steps/s | bare mjx.step steps/s | env overhead vs bare |"
        + (" env fresh reset steps/s | its overhead vs bare |" if fresh else "")
        + " brax humanoid (mjx) steps/s | env / brax humanoid |",
        "|---:|---:|---:|---:|" + ("---:|---:|" if fresh else "") + "---:|---:|",
    ]
    for r in rows:
        brax = r.get("brax_humanoid")
        cells = [f"{r['batch']}", f"{r['env']:,.0f}", f"{r['bare']:,.0f}", f"{100 * (r['bare'] / r['env'] - 1.0):+.1f}%"]
        if fresh:
            ef = r.get("env_fresh_reset")
            cells += [f"{ef:,.0f}", f"{100 * (r['bare'] / ef - 1.0):+.1f}%"] if ef else ["–", "–"]
        cells += [f"{brax:,.0f}", f"{r['env'] / brax:.2f}"] if brax else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Compile seconds (excluded above): " + "; ".join(
        f"batch {r['batch']}: " + ", ".join(f"{k[:-8]} {v:.0f}" for k, v in r.items() if k.endswith("_compile"))
        for r in rows
    )]
    text = "\n".join(lines) + "\n"
    if final:
        print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        if final:
            console.print(f"wrote {args.out}")


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover - platforms without getloadavg
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,16,64", help="comma-separated numbers of parallel robots (GPU: 16384,4096,1024)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per cell, after compile and warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per batch size; the best round counts")
    parser.add_argument("--steps-per-call", type=int, default=10, help="control steps per jitted call (lax.scan)")
    parser.add_argument("--env", default="dishwashing", help="registered env name")
    parser.add_argument("--skip-brax", action="store_true", help="do not measure brax's humanoid")
    parser.add_argument("--compare-fresh", action="store_true", help="also time AutoReset(reset_mode='fresh') (one more compile per batch)")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch-sizes: expected comma-separated integers, got {args.batch_sizes!r}")
    if not batches or min(batches) < 1:
        parser.error("--batch-sizes: need at least one positive integer")
    if args.rounds < 1 or args.seconds <= 0:
        parser.error(f"--rounds must be >= 1 and --seconds > 0, got {args.rounds} and {args.seconds}")

    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    load_start = _load()
    rows = []
    info = None
    per_batch = 2 + (0 if args.skip_brax else 1) + (1 if args.compare_fresh else 0)
    with Progress(console=console) as progress:
        task = progress.add_task("benchmark", total=len(batches) * per_batch)
        for b in batches:
            env, work = make_workloads(b, args.steps_per_call, args.env, args.skip_brax, args.compare_fresh)
            info = env
            row = {"batch": b}
            states = {}
            for name, fn, state in work:
                progress.update(task, description=f"batch {b}: {name} (compile)")
                states[name], row[name + "_compile"] = _compile(fn, state)
            # interleaved rounds, best round per workload: on a shared machine the load drifts, and
            # timing each workload once, one after the other, would compare different loads
            for r in range(args.rounds):
                for name, fn, _ in work:
                    progress.update(task, description=f"batch {b}: {name} (round {r + 1}/{args.rounds})")
                    states[name], rate = _rate(fn, states[name], args.seconds / args.rounds)
                    row[name] = max(row.get(name, 0.0), rate * args.steps_per_call * b)
            progress.advance(task, len(work))
            rows.append(row)
            console.print(f"batch {b}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items() if k != "batch" and not k.endswith("_compile")))
            _report(args, argv, env, rows, console, final=False, load_start=load_start)  # partial results survive a time limit

    _report(args, argv, info, rows, console, final=True, load_start=load_start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
