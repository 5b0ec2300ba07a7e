"""PPO fine-tune variants on the reduced point task (reuses a point chain dataset + its bc_idm checkpoint).

Usage: PYTHONPATH=. python benchmarks/results/video_to_policy_cpu/ppo_finetune_variants.py <point chain folder>
Variants: distillation episodes (8 / 32) x {plain PPO, frozen observation statistics + 1 critic warm-up chunk}.
"""
import sys, time, json
import jax, numpy as np
from train.config import PPOConfig
from train.video_to_policy import cli, finetune as ft, evaluate as ev
data = sys.argv[1]; n_eval = 64
ctx = cli.Context(data)
task = ctx.task
econ = task.env.default_params.econ
teacher = cli._bc_spec(ctx, ctx.path(None, "bc_idm"), "BC (IDM labels)")
def row(spec):
    r = ev.summarize(spec.name, ev.rollout(task, spec, n_eval, 10_000, ctx.size, ctx.episode_length), econ)
    return f"{spec.name:40s} MP {r['mp']:6.1f} ± {r['mp_std']:5.1f}  e {r['error_rate']:.3f}  prod {r['productivity_parity']:.3f} wage {r['wage_parity']:.3f}"
print(row(teacher), flush=True)
variants = [("A 8 distill eps, plain (session-1 fine-tune)", 8, 1e-4, False, 0),
            ("B 8 distill eps, freeze warmup1", 8, 1e-4, True, 1),
            ("D 32 distill eps, no-freeze no-warmup", 32, 1e-4, False, 0),
            ("E 32 distill eps, freeze warmup1", 32, 1e-4, True, 1)]
dist_cache = {}
for name, neps, lr, freeze, warm in variants:
    std = 0.3
    t0 = time.time()
    cfg = PPOConfig(num_envs=32, unroll_length=8, num_minibatches=4, update_epochs=2, policy_hidden=(64, 64),
                    value_hidden=(64, 64), learning_rate=lr, total_timesteps=32 * 8 * 40, eval_every=10,
                    num_eval_envs=8, entropy_cost=1e-3, seed=0)
    k_d, k_p = jax.random.split(jax.random.PRNGKey(0))
    if neps not in dist_cache:
        pol, norm, mse = ft.distill(task, teacher, cfg, k_d, episodes=neps, size=ctx.size, steps=400, init_std=std)
        dist_cache[neps] = (pol, norm, mse)
        print(row(ft.obs_policy_spec(f"distilled {neps} eps (mse {mse:.4f})", task, cfg, pol, norm)), flush=True)
    pol, norm, mse = dist_cache[neps]
    state, evals = ft.finetune(task, cfg, pol, norm, k_p, chunks=4, critic_warmup=warm, freeze_norm=freeze)
    print("   train evals MP:", [round(e["mp"], 1) for e in evals], flush=True)
    print(row(ft.obs_policy_spec(name, task, cfg, state.params["policy"], state.norm)), f"({time.time()-t0:.0f}s)", flush=True)
