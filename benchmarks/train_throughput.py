"""Training throughput: vpjax PPO vs brax PPO, and vpjax with vs without the economic reward terms.

All peers train the same env with the same PPO sizes (robots, unroll, minibatches, epochs, networks,
observation normalization) in one process. Throughput is training env steps per second after
compilation: brax's ``training/sps`` of its last training epoch (brax.training.agents.ppo.train, run
with the one-line ``jax.device_put_replicated`` shim from DESIGN.md); for vpjax the wall time of a
jitted scan of ``training_step`` (rollout + GAE + SGD epochs, the same work as one brax training
epoch), timed after a warm-up call.

Usage::

    python benchmarks/train_throughput.py --env dishwashing --num-envs 2048 --iterations 20 --out benchmarks/results/train_throughput_gpu.md
    python benchmarks/train_throughput.py --env tests/train/point_env.py:PointDeliver --num-envs 256 --out benchmarks/results/train_throughput_cpu.md
    # CPU, all five peers (8 robots keep brax's plain vmap clear of the LAPACK deadlock on 2 cores):
    python benchmarks/train_throughput.py --env dishwashing --num-envs 8 --iterations 20 --repeats 6 --peers vpjax,vpjax_noecon,vpjax_rollout,brax_rollout,brax

Reading the numbers: a training epoch's cost depends on what the policy being trained does (MJX's solver
iterates to convergence), so ``--learning-rate 0`` (policies frozen at initialization, every gradient and
update still computed) and the rollout-only peers compare compute on like-for-like trajectories; the XLA
cost analysis printed for the two vpjax variants measures the economic terms without timing noise.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


PEERS = {
    "vpjax": "vpjax PPO (economic reward on)",
    "vpjax_noecon": "vpjax PPO (economic_reward=False)",
    "brax": "brax PPO (brax wrappers)",
    "vpjax_rollout": "vpjax rollout only (no GAE/SGD)",
    "brax_rollout": "brax generate_unroll only (no GAE/SGD)",
}


def make_env(spec: str, economic_reward: bool, episode_length: int | None):
    from train.setup import make_env as _make

    kw = {"economic_reward": economic_reward}
    if episode_length:
        kw["episode_length"] = episode_length
    return _make(spec, **kw)


def xla_cost(compiled) -> dict:
    """flops / transcendentals / bytes accessed of a compiled program (XLA's static cost analysis), or {}."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # pragma: no cover - backend without cost analysis
        return {}
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    return {k: float(ca[k]) for k in ("flops", "transcendentals", "bytes accessed") if ca and k in ca}


def _aot_timer(fn, arg, steps: int, carry=lambda out: out):
    """Compiles ``fn`` ahead of time (donating its argument), so that one executable is timed and costed.

    Args:
      fn: one timed call's work; ``carry(fn(arg))`` is the next call's argument.
      steps: env steps per call.

    Returns:
      (time_once() -> env steps/s, compile + first call seconds, XLA cost analysis of ``fn``).
    """
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0).lower(arg).compile()
    box = {"a": arg}

    def run_once():
        t1 = time.perf_counter()
        out = compiled(box["a"])
        jax.block_until_ready(out)
        box["a"] = carry(out)
        return steps / (time.perf_counter() - t1)

    run_once()
    return run_once, time.perf_counter() - t0, xla_cost(compiled)


def vpjax_timer(env, cfg, iterations: int):
    """vpjax's training epoch: ``iterations`` x training_step (rollout + GAE + SGD epochs), as brax's epoch."""
    from train.ppo import make_train

    tr = make_train(cfg, env)

    def epoch(s):
        return jax.lax.scan(tr.training_step, s, None, length=iterations)

    s0 = jax.jit(tr.init)(jax.random.PRNGKey(0))
    return _aot_timer(epoch, s0, iterations * cfg.batch_size, carry=lambda out: out[0])


class BraxMetricsAdapter:
    """Keeps metric keys that brax's wrappers add (EvalWrapper's 'reward') across ``env.step``.

    brax envs update ``state.metrics`` in place; vpjax envs return a fresh metrics dict, which brax's
    scan over steps rejects. Merging the dicts costs nothing at run time.
    """

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, rng):
        return self.env.reset(rng)

    def step(self, state, action):
        nxt = self.env.step(state, action)
        return nxt.replace(metrics={**state.metrics, **nxt.metrics})


def vpjax_rollout_timer(env, cfg, iterations: int):
    """vpjax's rollout alone (policy sampling, env steps with auto-reset and economics, episode statistics, values)."""
    from train.ppo import make_train

    tr = make_train(cfg, env)
    s0 = jax.jit(tr.init)(jax.random.PRNGKey(0))

    def rollouts(s):
        def body(s, key):
            env_state, ep_return, traj, acc = tr.rollout(s, key)
            # keep the rollout's outputs alive (as training does) so that XLA cannot drop them
            live = sum(x.sum() for x in jax.tree.leaves((traj, acc)))
            return s.replace(env_state=env_state, ep_return=ep_return + 0.0 * live), None

        s, _ = jax.lax.scan(body, s, jax.random.split(s.key, iterations))
        return s.replace(key=jax.random.fold_in(s.key, 1))

    return _aot_timer(rollouts, s0, iterations * cfg.batch_size)


def brax_rollout_timer(env, cfg, iterations: int):
    """brax's rollout alone: ``acting.generate_unroll`` (the function brax's PPO calls) with a brax PPO policy
    (observation normalizer, tanh-normal) on the brax-wrapped env (Episode, Vmap, AutoReset wrappers)."""
    from brax.envs.wrappers import training as brax_wrappers
    from brax.training import acting
    from brax.training.acme import running_statistics
    from brax.training.agents.ppo import networks as ppo_networks

    benv = brax_wrappers.wrap(BraxMetricsAdapter(env), episode_length=env.episode_length, action_repeat=1)
    nets = ppo_networks.make_ppo_networks(env.observation_size, env.action_size,
                                          preprocess_observations_fn=running_statistics.normalize,
                                          policy_hidden_layer_sizes=cfg.policy_hidden,
                                          value_hidden_layer_sizes=cfg.value_hidden)
    norm = running_statistics.init_state(jax.ShapeDtypeStruct((env.observation_size,), jnp.float32))
    policy_params = nets.policy_network.init(jax.random.PRNGKey(1))
    make_policy = ppo_networks.make_inference_fn(nets)
    s0 = jax.jit(benv.reset)(jax.random.split(jax.random.PRNGKey(0), cfg.num_envs))

    def rollouts(carry):
        state, key = carry
        policy = make_policy((norm, policy_params))

        def body(state, k):
            state, data = acting.generate_unroll(benv, state, policy, k, cfg.unroll_length,
                                                 extra_fields=("truncation",))
            live = data.reward.sum() + data.discount.sum() + data.extras["policy_extras"]["log_prob"].sum()
            return state.replace(reward=state.reward + 0.0 * live), None

        key, k = jax.random.split(key)
        state, _ = jax.lax.scan(body, state, jax.random.split(k, iterations))
        return state, key

    return _aot_timer(rollouts, (s0, jax.random.PRNGKey(2)), iterations * cfg.batch_size)


def brax_sps(env, cfg, iterations: int, repeats: int) -> tuple[float, float]:
    """brax PPO on the same env and sizes: last training epoch's training/sps, and total wall time."""
    env = BraxMetricsAdapter(env)
    if not hasattr(jax, "device_put_replicated"):  # DESIGN.md shim: removed in jax >= 0.10
        jax.device_put_replicated = lambda x, devs: jax.tree.map(lambda a: jnp.stack([a] * len(devs)), x)
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    net = functools.partial(ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=cfg.policy_hidden,
                            value_hidden_layer_sizes=cfg.value_hidden)
    sps = []

    def progress(step, metrics):
        if "training/sps" in metrics:
            sps.append(float(metrics["training/sps"]))

    steps_per_epoch = iterations * cfg.batch_size
    t0 = time.perf_counter()
    ppo.train(environment=env, num_timesteps=steps_per_epoch * (repeats + 1), num_evals=repeats + 2,
              episode_length=env.episode_length, num_envs=cfg.num_envs, batch_size=cfg.num_envs // cfg.num_minibatches,
              num_minibatches=cfg.num_minibatches, unroll_length=cfg.unroll_length,
              num_updates_per_batch=cfg.update_epochs, learning_rate=cfg.learning_rate,
              entropy_cost=cfg.entropy_cost, discounting=cfg.discount, gae_lambda=cfg.gae_lambda,
              clipping_epsilon=cfg.clip_eps, reward_scaling=cfg.reward_scaling, normalize_observations=True,
              max_grad_norm=cfg.max_grad_norm, network_factory=net, num_eval_envs=cfg.num_minibatches,
              deterministic_eval=True, progress_fn=progress, seed=0)
    total = time.perf_counter() - t0
    print(f"[brax] training/sps per epoch (the first includes compilation): {[round(x) for x in sps]}", flush=True)
    # the first epoch's sps includes compilation; report the best later one
    return (max(sps[1:]) if len(sps) > 1 else (sps[0] if sps else float("nan"))), total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="dishwashing", help="task name or MODULE:FACTORY / file.py:FACTORY")
    p.add_argument("--episode-length", type=int, default=None, help="override the env's episode length")
    p.add_argument("--num-envs", type=int, default=None, help="robots (default 64 on CPU, 2048 on GPU)")
    p.add_argument("--unroll-length", type=int, default=10)
    p.add_argument("--num-minibatches", type=int, default=8)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--iterations", type=int, default=None, help="training iterations per timed epoch")
    p.add_argument("--repeats", type=int, default=4, help="timed epochs per peer, in alternating order (best is reported)")
    p.add_argument("--hidden", default="64,64", help="policy and value hidden sizes")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam step size of every peer (default: PPOConfig's). 0 freezes the policies at their "
                        "initialization while computing the same gradients and updates: the vpjax variants then "
                        "roll out identical trajectories, so their difference is compute alone")
    p.add_argument("--peers", default="vpjax,vpjax_noecon,brax",
                   help="comma list of: " + ", ".join(f"{k} ({v})" for k, v in PEERS.items()))
    p.add_argument("--out", default=None, help="write the markdown table here")
    args = p.parse_args(argv)

    from train.config import PPOConfig

    gpu = jax.default_backend() != "cpu"
    num_envs = args.num_envs or (2048 if gpu else 64)
    iterations = args.iterations or (20 if gpu else 5)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    cfg = PPOConfig(num_envs=num_envs, unroll_length=args.unroll_length, num_minibatches=args.num_minibatches,
                    update_epochs=args.update_epochs, policy_hidden=hidden, value_hidden=hidden,
                    total_timesteps=num_envs * args.unroll_length * iterations)
    if args.learning_rate is not None:
        if args.learning_rate < 0:
            p.error(f"--learning-rate: must be >= 0, got {args.learning_rate}")
        cfg = cfg.replace(learning_rate=args.learning_rate)
    peers = args.peers.split(",")
    def write_table(results):
        device = jax.devices()[0].device_kind if gpu else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip()
        except Exception:  # pragma: no cover
            commit = "?"
        cmd = "python " + " ".join([str(Path(sys.argv[0]).as_posix())] + (argv if argv is not None else sys.argv[1:]))
        lines = [
            f"# Training throughput: vpjax PPO vs brax PPO ({'GPU' if gpu else 'CPU'})",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- machine: {device}; jax {jax.__version__}; backend {jax.default_backend()}; commit {commit}",
            f"- command: `{cmd}`",
            f"- load average at the end (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())}",
            f"- env: `{args.env}` (episode length {env.episode_length}); robots {num_envs}, unroll {args.unroll_length}, "
            f"minibatches {args.num_minibatches}, epochs {args.update_epochs}, networks {hidden}, "
            f"{iterations} iterations per timed epoch, best of {args.repeats}, learning rate {cfg.learning_rate:g}"
            + (" (policies frozen at initialization)" if cfg.learning_rate == 0 else ""),
            "- measured: training env steps/s after compilation (rollout + GAE + SGD); brax: `training/sps` of its "
            "later training epochs (brax.training.agents.ppo.train with the device_put_replicated shim)",
            "",
            "| peer | env steps/s | compile + first epoch (vpjax) / whole run (brax), s | ratio |",
            "|---|---:|---:|---:|",
        ]
        ref = results.get("brax", (None,))[0]
        for peer, (sps, first) in results.items():
            if peer == "brax":
                ratio = "1.00 (reference)"
            elif peer == "brax_rollout":
                ratio = "1.00 (rollout reference)"
            elif peer == "vpjax_rollout":
                r_ref = results.get("brax_rollout", (None,))[0]
                ratio = f"{sps / r_ref:.2f}x brax rollout" if r_ref else ""
            else:
                ratio = f"{sps / ref:.2f}x brax" if ref else ""
            name = PEERS[peer]
            lines.append(f"| {name} | {sps:,.0f} | {first:.1f} | {ratio} |")
        if "vpjax" in results and "vpjax_noecon" in results:
            on, off = results["vpjax"][0], results["vpjax_noecon"][0]
            lines += ["", f"Economic-reward overhead: {100 * (off - on) / off:.1f}% of throughput "
                          f"(on {on:,.0f} vs off {off:,.0f} steps/s)."]
        if costs.get("vpjax", {}).get("flops") and costs.get("vpjax_noecon", {}).get("flops"):
            c_on, c_off = costs["vpjax"], costs["vpjax_noecon"]
            rel = lambda k: 100 * (c_on[k] - c_off[k]) / c_off[k] if c_off.get(k) else float("nan")  # noqa: E731
            d = {k: c_on.get(k, 0) - c_off.get(k, 0) for k in ("flops", "transcendentals", "bytes accessed")}
            lines += ["", "XLA's static cost analysis of the two compiled training epochs (deterministic and "
                          "machine-independent, unlike the timings; XLA counts each loop body once, so these are "
                          f"the work of one pass through every loop, not a time share): the economic terms add "
                          f"{d['flops']:,.0f} flops, {d['transcendentals']:,.0f} transcendentals and "
                          f"{d['bytes accessed']:,.0f} bytes accessed.", "",
                      "| | flops | transcendentals | bytes accessed |", "|---|---:|---:|---:|",
                      f"| economic reward on | {c_on['flops']:,.0f} | {c_on.get('transcendentals', 0):,.0f} | "
                      f"{c_on.get('bytes accessed', 0):,.0f} |",
                      f"| economic reward off | {c_off['flops']:,.0f} | {c_off.get('transcendentals', 0):,.0f} | "
                      f"{c_off.get('bytes accessed', 0):,.0f} |",
                      f"| on − off | {rel('flops'):+.4f}% | {rel('transcendentals'):+.4f}% | "
                      f"{rel('bytes accessed'):+.4f}% |"]
        lines += ["", "Notes: brax's AutoResetWrapper restores a cached first state instead of resetting, and it does not "
                      "reset the env's per-episode economic counters (units, errors, work seconds), so under brax the "
                      "economics are not per episode; vpjax uses `envs.wrappers.AutoReset`, which resets the robot and "
                      "carries prev_mp/episodes."]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)

    results = {}
    timers = {}
    costs = {}
    env = None
    for peer in peers:
        if peer == "brax":
            continue
        if peer not in PEERS:
            p.error(f"--peers: unknown peer {peer!r}; use some of {', '.join(PEERS)}")
        env = make_env(args.env, economic_reward=(peer != "vpjax_noecon"), episode_length=args.episode_length)
        print(f"[{peer}] compiling ...", flush=True)
        timer = {"vpjax_rollout": vpjax_rollout_timer, "brax_rollout": brax_rollout_timer}.get(peer, vpjax_timer)
        run_once, first, costs[peer] = timer(env, cfg, iterations)
        timers[peer] = (run_once, first)
    # Interleave the vpjax variants' timed epochs so that load changes on the machine hit both alike, and
    # alternate their order (A B, B A, ...): on a 2-core CPU whichever variant ran second in a round was
    # 6-20% faster (measured with both orders), far more than the economic terms' own cost.
    runs = {peer: [] for peer in timers}
    order = list(timers)
    for r in range(args.repeats):
        for peer in (order if r % 2 == 0 else order[::-1]):
            runs[peer].append(timers[peer][0]())
    for peer, (_, first) in timers.items():
        results[peer] = (max(runs[peer]), first)
        print(f"[{peer}] {max(runs[peer]):,.0f} env steps/s (first call incl. compile {first:.1f} s); "
              f"every timed epoch: {[round(x) for x in runs[peer]]}", flush=True)
    if args.out and results:
        write_table(dict(results))  # partial table, in case brax runs past an outer time limit
    if "brax" in peers:
        env = make_env(args.env, economic_reward=True, episode_length=args.episode_length)
        print("[brax] running ...", flush=True)
        results["brax"] = brax_sps(env, cfg, iterations, args.repeats)
        print(f"[brax] {results['brax'][0]:,.0f} env steps/s (whole run incl. compile {results['brax'][1]:.1f} s)",
              flush=True)
    results = {p: results[p] for p in peers if p in results}
    write_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
