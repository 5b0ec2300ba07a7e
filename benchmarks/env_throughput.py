"""Control steps per second of the vpjax dishwashing env against its physics floor and a known peer.

One run measures, at each batch size:

* ``env``   -- ``jax.vmap(AutoReset(env).step)`` of our env (action mode, IK, DR, economics, shaping,
  instability guard, auto-reset): what the trainer runs;
* ``bare``  -- ``mjx.step`` x ``n_substeps`` on the same MJX model from the same initial states with
  fixed controls: the physics floor, no env logic;
* ``brax humanoid`` -- brax's ``humanoid`` env with ``backend="mjx"`` (a known reference workload;
  skip with ``--skip-brax``).

Each workload is one jitted function running ``--steps-per-call`` control steps in a ``lax.scan``
for the whole batch; compilation and one warm-up call are excluded from timing, every timed call
ends with ``block_until_ready``, and timing runs for ``--seconds`` per cell. Prints a markdown
table (env overhead over bare physics = bare/env − 1) and writes it with ``--out``.

Examples::

    python benchmarks/env_throughput.py --batch-sizes 1,16,64 --seconds 5 --out benchmarks/results/env_throughput_cpu.md
    python benchmarks/env_throughput.py --batch-sizes 1024,4096,16384 --seconds 10 --out benchmarks/results/env_throughput_h100.md
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
import jax.numpy as jnp  # noqa: E402


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


def _time_fn(fn, state, seconds: float):
    """Compile + warm up, then call ``fn`` repeatedly for ``seconds``; returns (calls, elapsed, compile_s)."""
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(state))
    compile_s = time.perf_counter() - t0
    state = jax.block_until_ready(fn(state))  # warm-up (first call after compile)
    calls = 0
    t0 = time.perf_counter()
    while True:
        state = fn(state)
        jax.block_until_ready(state)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls, elapsed, compile_s


def make_workloads(batch: int, steps: int, env_name: str, skip_brax: bool):
    from mujoco import mjx

    import envs
    from envs.wrappers import AutoReset

    env = envs.make(env_name)
    params = env.default_params
    auto = AutoReset(env)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    s0 = jax.jit(jax.vmap(env.reset))(keys)

    @jax.jit
    def env_run(carry):
        state, key = carry
        key, k = jax.random.split(key)
        actions = jax.random.uniform(k, (batch, env.action_size), minval=-1.0, maxval=1.0)

        def body(s, _):
            return jax.vmap(auto.step, in_axes=(0, 0, None))(s, actions, params), None

        state, _ = jax.lax.scan(body, state, None, length=steps)
        return state, key

    model = env.mjx_model
    n_sub = env.n_substeps
    d0 = s0.pipeline_state

    @jax.jit
    def bare_run(d):
        def one(d):
            def sub(d, _):
                return mjx.step(model, d), None

            return jax.lax.scan(sub, d, None, length=n_sub)[0]

        def body(d, _):
            return jax.vmap(one)(d), None

        return jax.lax.scan(body, d, None, length=steps)[0]

    work = [
        ("env", env_run, (s0, jax.random.PRNGKey(1))),
        ("bare", bare_run, d0),
    ]
    if not skip_brax:
        from brax import envs as brax_envs

        h = brax_envs.get_environment("humanoid", backend="mjx")
        hs0 = jax.jit(jax.vmap(h.reset))(jax.random.split(jax.random.PRNGKey(2), batch))

        @jax.jit
        def brax_run(carry):
            state, key = carry
            key, k = jax.random.split(key)
            actions = jax.random.uniform(k, (batch, h.action_size), minval=-1.0, maxval=1.0)

            def body(s, _):
                return jax.vmap(h.step)(s, actions), None

            state, _ = jax.lax.scan(body, state, None, length=steps)
            return state, key

        work.append(("brax_humanoid", brax_run, (hs0, jax.random.PRNGKey(3))))
    return env, work


def _report(args, argv, env, rows, console, final: bool) -> None:
    cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    lines = [
        f"# Env throughput: {args.env}",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {_machine()}",
        f"- software: jax {jax.__version__}, mujoco {__import__('mujoco').__version__}, python {platform.python_version()}",
        f"- command: `{cmd}`",
        f"- env: `envs.make({args.env!r})` defaults: action_mode={env.action_mode}, arms={env.arms}, "
        f"nq={env.mj_model.nq}, nv={env.mj_model.nv}, contact pairs={env.mj_model.npair}, "
        f"{env.n_substeps} substeps x {env.mj_model.opt.timestep} s = control dt {env.dt} s, "
        f"solver iterations {env.mj_model.opt.iterations}/{env.mj_model.opt.ls_iterations}",
        f"- timing: {args.steps_per_call} control steps per jitted call (lax.scan over a vmapped batch), "
        f"{args.seconds:g} s per cell after compile + one warm-up call, block_until_ready after each call",
        "- env = `vmap(AutoReset(env).step)` (IK, DR, economics, shaping, guard, auto-reset); "
        "bare = `mjx.step` x substeps on the same model (physics floor); overhead = bare/env − 1",
        "",
        "| batch | env steps/s | bare mjx.step steps/s | env overhead vs bare | brax humanoid (mjx) steps/s | env / brax humanoid |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        over = r["bare"] / r["env"] - 1.0
        brax = r.get("brax_humanoid")
        lines.append(
            f"| {r['batch']} | {r['env']:,.0f} | {r['bare']:,.0f} | {100 * over:+.1f}% | "
            + (f"{brax:,.0f} | {r['env'] / brax:.2f} |" if brax else "– | – |")
        )
    lines += ["", "Compile seconds (excluded above): " + "; ".join(
        f"batch {r['batch']}: env {r['env_compile']:.0f}, bare {r['bare_compile']:.0f}"
        + (f", brax {r['brax_humanoid_compile']:.0f}" if "brax_humanoid_compile" in r else "")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,16,64", help="comma-separated numbers of parallel robots (GPU: 1024,4096,16384)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per cell, after compile and warm-up")
    parser.add_argument("--steps-per-call", type=int, default=10, help="control steps per jitted call (lax.scan)")
    parser.add_argument("--env", default="dishwashing", help="registered env name")
    parser.add_argument("--skip-brax", action="store_true", help="do not measure brax's humanoid")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch-sizes: expected comma-separated integers, got {args.batch_sizes!r}")
    if not batches or min(batches) < 1:
        parser.error("--batch-sizes: need at least one positive integer")

    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    rows = []
    info = None
    with Progress(console=console) as progress:
        task = progress.add_task("benchmark", total=len(batches) * (2 if args.skip_brax else 3))
        for b in batches:
            env, work = make_workloads(b, args.steps_per_call, args.env, args.skip_brax)
            info = env
            row = {"batch": b}
            for name, fn, state in work:
                progress.update(task, description=f"batch {b}: {name} (compile + time)")
                calls, elapsed, comp = _time_fn(fn, state, args.seconds)
                row[name] = calls * args.steps_per_call * b / elapsed
                row[name + "_compile"] = comp
                progress.advance(task)
            rows.append(row)
            console.print(f"batch {b}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items() if k in ("env", "bare", "brax_humanoid")))
            _report(args, argv, env, rows, console, final=False)  # partial results survive a time limit

    _report(args, argv, info, rows, console, final=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
