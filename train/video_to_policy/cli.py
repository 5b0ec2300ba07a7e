"""``python -m train.video_to_policy collect|idm|bc|diffusion|finetune|evaluate|value|chain``.

The small CPU chain (documented settings; the reduced ``point`` task)::

    python -m train.video_to_policy chain --task point --out runs/v2p_point

or step by step::

    python -m train.video_to_policy collect  --task point --out runs/v2p --demos 16 --play 24
    python -m train.video_to_policy idm      --data runs/v2p
    python -m train.video_to_policy bc       --data runs/v2p --labels idm
    python -m train.video_to_policy bc       --data runs/v2p --labels true
    python -m train.video_to_policy diffusion --data runs/v2p --labels idm
    python -m train.video_to_policy finetune --data runs/v2p
    python -m train.video_to_policy evaluate --data runs/v2p
    python -m train.video_to_policy value    --data runs/v2p

Checkpoints go to ``<data>/<name>/`` by default (``idm``, ``bc_idm``, ``bc_true``, ``diffusion``, ``ppo``).

Reduced dishwashing (``--task dishwashing_reduced``: the dishwashing scene with a 2 s washing time,
400-step = 16 s episodes, 64x64 frames, human reference MPₕ = 3600/(20 + 2) dishes/h at p = $0.11; see
``sim.REDUCED_DISHWASHING``), the documented CPU run (2 shared cores, ~60-70 min under load)::

    MUJOCO_GL=egl python -m train.video_to_policy chain --task dishwashing_reduced --out runs/v2p_dish \\
        --demos 16 --play 16 --noise 0.1 --random-frac 0.05 --idm-steps 600 --bc-steps 600 \\
        --diffusion-steps 1000 --ppo-iterations 40 --episodes 8

(play noise 0.1 and 5 % random actions: with the point task's 0.3 and 20 % the perturbed expert never
holds a dish, so the IDM never sees a closed hand and fails on the demos, R² < 0.)

Rendering uses MuJoCo's offscreen renderer; ``MUJOCO_GL`` defaults to ``egl`` (set before MuJoCo is
imported). A 64x64 frame costs ~12-20 ms on a CPU (software EGL, shadows off).
"""

from __future__ import annotations

import os

# MuJoCo picks its GL backend when it is first imported: offscreen EGL unless the caller chose one
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import json
import sys
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import bc as bc_mod
from . import common
from . import diffusion as dif
from . import evaluate as ev
from . import idm as idm_mod
from . import records as R
from . import sim

DEFAULTS = {"point": {"size": 32, "steps": 40}, "dishwashing": {"size": 64, "steps": 100},
            "dishwashing_reduced": {"size": sim.REDUCED_DISHWASHING["size"],
                                    "steps": sim.REDUCED_DISHWASHING["episode_length"]}}


def _console():
    from rich.console import Console

    return Console(width=max(160, Console().width))


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 64,64")


# ----------------------------------------------------------------------------- helpers


class Context:
    """A dataset folder and its task (built once per process and shared by the steps of ``chain``)."""

    def __init__(self, data: str):
        self.data = data
        self.index = R.read_index(data)
        self.task_name = self.index["task"]
        self.episode_length = int(self.index.get("episode_length", DEFAULTS[self.task_name]["steps"]))
        self.size = int(self.index.get("size", DEFAULTS[self.task_name]["size"]))
        self._task = None
        self._recs = {}

    @property
    def task(self) -> sim.Task:
        if self._task is None:
            self._task = sim.get_task(self.task_name, episode_length=self.episode_length)
        return self._task

    def records(self, kind: str) -> list[R.Record]:
        if kind not in self._recs:
            self._recs[kind] = R.load_dataset(self.data, kind=kind, task=self.task_name)
        return self._recs[kind]

    def path(self, given: str | None, name: str) -> str:
        return given or os.path.join(self.data, name)


def _labels(ctx: Context, kind: str, idm_path: str | None) -> dict | None:
    if kind == "true":
        return None
    path = ctx.path(idm_path, "idm")
    common.load_checkpoint(path, "idm", ctx.task_name)  # clear error for a missing / wrong-task checkpoint
    lab = os.path.join(path, "labels.npz")
    if not os.path.exists(lab):
        raise common.CheckpointError(f"{lab}: IDM labels missing; rerun `idm --data {ctx.data}`")
    with np.load(lab) as z:
        labels = {k: z[k] for k in z.files}
    missing = [r.id for r in ctx.records("demo") if r.id not in labels]
    if missing:
        raise common.CheckpointError(f"{lab}: no IDM labels for demos {missing[:3]}; rerun `idm --data {ctx.data}`")
    return labels


# ----------------------------------------------------------------------------- commands


def cmd_collect(a, log) -> dict:
    d = DEFAULTS.get(a.task, {"size": 64, "steps": 100})
    size, steps = a.size or d["size"], a.steps or d["steps"]
    task = sim.get_task(a.task, episode_length=steps)
    out = []
    for kind, n, base, noise, rf in (("demo", a.demos, a.seed, 0.0, 0.0),
                                     ("play", a.play, a.seed + 100_000, a.noise, a.random_frac)):
        if n <= 0:
            continue
        with common.Progress(f"collect {kind}", n, a.quiet) as bar:
            recs = sim.collect(task, range(base, base + n), kind=kind, size=size, steps=steps, noise=noise,
                               random_frac=rf, progress=lambda i: bar.update(i))
        for r in recs:
            R.save(r, a.out)
        out.extend(recs)
    R.write_index(a.out, task.name, out, extra={"episode_length": steps, "size": size})
    demo = [r for r in out if r.kind == "demo"]
    mp = np.mean([r.summary["mp"] for r in demo]) if demo else float("nan")
    log(f"collected {len(demo)} demos + {len(out) - len(demo)} play episodes of {steps} steps at {size}x{size} "
        f"({a.task}) -> {a.out}; expert MPᵣ in the demos {mp:.1f}/h")
    return {"records": len(out)}


def cmd_idm(a, log, ctx: Context | None = None) -> dict:
    ctx = ctx or Context(a.data)
    play, demos = ctx.records("play"), ctx.records("demo")
    cfg = idm_mod.IDMConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, use_proprio=not a.no_proprio,
                            channels=a.channels, hidden=a.hidden)
    variables, losses = idm_mod.train(play, cfg, jax.random.PRNGKey(a.seed), quiet=a.quiet)
    net = cfg.net(ctx.task.action_size)
    acc = idm_mod.accuracy(net, variables, demos)
    labels = idm_mod.predict(net, variables, demos)
    path = ctx.path(a.out, "idm")
    metrics = {**acc, "loss_first": float(losses[:10].mean()), "loss_last": float(losses[-10:].mean())}
    common.save_checkpoint(path, "idm", ctx.task_name, variables, {**vars_json(cfg), "action_size": ctx.task.action_size},
                           metrics)
    np.savez(os.path.join(path, "labels.npz"), **labels)
    log(f"IDM on {len(play)} play episodes, held-out on {len(demos)} demos ({acc['windows']} steps): "
        f"action MSE {acc['mse']:.4f} vs mean-action baseline {acc['baseline_mse']:.4f}, R² {acc['r2']:.3f} -> {path}")
    return metrics


def vars_json(cfg) -> dict:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def cmd_bc(a, log, ctx: Context | None = None) -> dict:
    ctx = ctx or Context(a.data)
    labels = _labels(ctx, a.labels, a.idm)
    demos = ctx.records("demo")
    cfg = bc_mod.BCConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, use_vision=not a.no_vision,
                          use_proprio=not a.no_proprio, channels=a.channels, hidden=a.hidden)
    variables, losses = bc_mod.train(demos, cfg, jax.random.PRNGKey(a.seed), labels=labels, quiet=a.quiet)
    mse = bc_mod.heldout_mse(cfg.net(ctx.task.action_size), variables, demos, cfg)
    path = ctx.path(a.out, f"bc_{a.labels}")
    metrics = {"loss_first": float(losses[:10].mean()), "loss_last": float(losses[-10:].mean()),
               "mse_vs_true_actions": mse}
    common.save_checkpoint(path, "bc", ctx.task_name, variables,
                           {**vars_json(cfg), "labels": a.labels, "action_size": ctx.task.action_size}, metrics)
    log(f"BC ({a.labels} labels) on {len(demos)} demos: loss {metrics['loss_first']:.4f} -> {metrics['loss_last']:.4f}, "
        f"MSE vs true actions {mse:.4f} -> {path}")
    return metrics


def cmd_diffusion(a, log, ctx: Context | None = None) -> dict:
    ctx = ctx or Context(a.data)
    labels = _labels(ctx, a.labels, a.idm)
    demos = ctx.records("demo")
    cfg = dif.DiffusionConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, obs_horizon=a.obs_horizon,
                              pred_horizon=a.pred_horizon, action_horizon=a.action_horizon, ddim_steps=a.ddim_steps,
                              schedule=a.schedule, enc_channels=a.channels, channels=a.width)
    variables, losses = dif.train(demos, cfg, jax.random.PRNGKey(a.seed), labels=labels, quiet=a.quiet)
    path = ctx.path(a.out, "diffusion")
    metrics = {"loss_first": float(losses[:10].mean()), "loss_last": float(losses[-10:].mean())}
    common.save_checkpoint(path, "diffusion", ctx.task_name, variables,
                           {**vars_json(cfg), "labels": a.labels, "action_size": ctx.task.action_size}, metrics)
    log(f"diffusion policy ({a.labels} labels) on {len(demos)} demos: ε-loss {metrics['loss_first']:.4f} -> "
        f"{metrics['loss_last']:.4f} -> {path}")
    return metrics


def _bc_spec(ctx: Context, path: str, name: str) -> ev.PolicySpec:
    variables, meta = common.load_checkpoint(path, "bc", ctx.task_name)
    c = meta["config"]
    cfg = bc_mod.BCConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items()
                             if k in bc_mod.BCConfig.__dataclass_fields__})
    act = bc_mod.make_act(cfg.net(c["action_size"]), variables)
    return ev.PolicySpec(name, lambda s, f, p, k: act(jnp.asarray(f), jnp.asarray(p))[:, None], cfg.obs_horizon,
                         cfg.use_vision)


def _diffusion_spec(ctx: Context, path: str, name: str) -> ev.PolicySpec:
    variables, meta = common.load_checkpoint(path, "diffusion", ctx.task_name)
    c = meta["config"]
    cfg = dif.DiffusionConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items()
                                 if k in dif.DiffusionConfig.__dataclass_fields__})
    act = dif.make_act(cfg.net(c["action_size"]), variables, cfg, c["action_size"])
    return ev.PolicySpec(name, lambda s, f, p, k: act(f, p, k), cfg.obs_horizon, cfg.use_vision)


def _ppo_cfg(c: dict):
    from train.config import PPOConfig

    return PPOConfig(**c)


def _ppo_spec(ctx: Context, path: str, name: str) -> ev.PolicySpec:
    from . import finetune as ft

    variables, meta = common.load_checkpoint(path, "ppo", ctx.task_name)
    cfg = _ppo_cfg(meta["config"]["ppo"])
    return ft.obs_policy_spec(name, ctx.task, cfg, variables["policy"], ft.norm_from_dict(variables["norm"]))


def cmd_finetune(a, log, ctx: Context | None = None) -> dict:
    from train.config import PPOConfig

    from . import finetune as ft

    ctx = ctx or Context(a.data)
    teacher = _bc_spec(ctx, ctx.path(a.bc, "bc_idm"), "cloned policy")
    n_envs = a.num_envs
    cfg = PPOConfig(num_envs=n_envs, unroll_length=a.unroll, num_minibatches=a.minibatches, update_epochs=a.epochs,
                    policy_hidden=a.policy_hidden, value_hidden=a.value_hidden, learning_rate=a.lr,
                    total_timesteps=n_envs * a.unroll * a.iterations, eval_every=a.eval_every,
                    num_eval_envs=a.eval_envs, entropy_cost=a.entropy_cost, seed=a.seed)
    k_d, k_p = jax.random.split(jax.random.PRNGKey(a.seed))
    t0 = time.time()
    pol, norm, mse = ft.distill(ctx.task, teacher, cfg, k_d, episodes=a.distill_episodes, size=ctx.size,
                                steps=a.distill_steps, init_std=a.init_std)
    log(f"distilled the cloned video policy into PPO's policy network: action MSE {mse:.4f} ({time.time() - t0:.0f}s)")
    n_chunks = max(1, a.iterations // a.eval_every)
    with common.Progress("PPO fine-tune", n_chunks, a.quiet) as bar:
        state, evals = ft.finetune(ctx.task, cfg, pol, norm, k_p, chunks=n_chunks, critic_warmup=a.critic_warmup,
                                   freeze_norm=not a.no_freeze_norm, progress=lambda i, e: bar.update(i, info=f"MPᵣ {e['mp']:.1f} prod {e['productivity_parity']:.2f}"))
    path = ctx.path(a.out, "ppo")
    variables = {"policy": state.params["policy"], "norm": ft.norm_to_dict(state.norm),
                 "distilled": pol, "distilled_norm": ft.norm_to_dict(norm)}
    metrics = {"distill_mse": mse, "evals": evals}
    common.save_checkpoint(path, "ppo", ctx.task_name, variables, {"ppo": cfg.to_dict()}, metrics)
    log(f"PPO fine-tune: {cfg.num_envs} robots x {n_chunks * a.eval_every} iterations; eval MPᵣ "
        f"{evals[0]['mp']:.1f} -> {evals[-1]['mp']:.1f}/h -> {path}")
    return metrics


def cmd_evaluate(a, log, ctx: Context | None = None) -> dict:
    from . import finetune as ft

    ctx = ctx or Context(a.data)
    task = ctx.task
    specs = [ev.expert_spec(task)]
    if a.random:
        specs.append(ev.random_spec(task))
    wanted = [("bc_true", a.bc_true, "BC (true actions)", _bc_spec), ("bc_idm", a.bc_idm, "BC (IDM labels)", _bc_spec),
              ("diffusion", a.diffusion, "diffusion policy (IDM labels)", _diffusion_spec),
              ("ppo", a.ppo, "PPO fine-tuned", _ppo_spec)]
    for name, given, label, make in wanted:
        path = ctx.path(given, name)
        if given is None and not os.path.exists(os.path.join(path, "meta.json")):
            log(f"(skipping {label}: no checkpoint at {path})")
            continue
        specs.append(make(ctx, path, label))
        if name == "ppo" and a.distilled:
            v, meta = common.load_checkpoint(path, "ppo", ctx.task_name)
            specs.insert(-1, ft.obs_policy_spec("distilled (PPO init)", task, _ppo_cfg(meta["config"]["ppo"]),
                                                v["distilled"], ft.norm_from_dict(v["distilled_norm"])))
    rows = []
    with common.Progress("evaluate", len(specs), a.quiet) as bar:
        for i, spec in enumerate(specs):
            t0 = time.time()
            m = ev.rollout(task, spec, a.episodes, a.seed, ctx.size, ctx.episode_length)
            rows.append({**ev.summarize(spec.name, m, task.env.default_params.econ), "seconds": time.time() - t0})
            bar.update(i, info=spec.name)
    table = ev.markdown_table(rows)
    md = a.out_md or os.path.join(ctx.data, "evaluation.md")
    png = a.out_png or os.path.join(ctx.data, "evaluation.png")
    with open(md, "w") as fh:
        fh.write(f"Task {ctx.task_name}, {a.episodes} evaluation episodes of {ctx.episode_length} steps "
                 f"(seed {a.seed}), frames {ctx.size}x{ctx.size}.\n\n{table}")
    ev.plot(rows, png, f"{ctx.task_name}: {a.episodes} episodes x {ctx.episode_length} steps")
    with open(os.path.join(ctx.data, "evaluation.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    log(table)
    log(f"-> {md}, {png}")
    return {"rows": rows, "table": table}


def cmd_value(a, log, ctx: Context | None = None) -> dict:
    from . import value as val

    ctx = ctx or Context(a.data)
    path = ctx.path(a.idm, "idm")
    variables, meta = common.load_checkpoint(path, "idm", ctx.task_name)
    c = meta["config"]
    cfg = idm_mod.IDMConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items()
                               if k in idm_mod.IDMConfig.__dataclass_fields__})
    net = cfg.net(c["action_size"])
    demos = ctx.records("demo")
    labels = _labels(ctx, "idm", path)
    out = a.out or os.path.join(ctx.data, "data_value.csv")
    res = val.export(demos, net, variables, labels, out, jax.random.PRNGKey(a.seed), history=a.history,
                     shared=(a.sharing == "shared"), realized_csv=a.realized,
                     embeddings_out=os.path.join(ctx.data, "embeddings.npz"), log=log)
    tiers = np.bincount(res["tier"], minlength=3).tolist()
    log(f"valued {len(demos)} demonstrations (history {os.path.relpath(res['history'])}): novelty "
        f"{np.mean(res['novelty']):.3f}, causal gain {np.mean(res['causal_gain']):.4f}, E[ΔMPL] "
        f"{np.mean(res['expected']):.2f}, tiers 0/1/2 = {tiers}, premiums ${np.sum(res['premium']):.2f} -> {out}")
    return res


def cmd_chain(a, log) -> dict:
    """collect -> idm -> bc (true, idm) -> diffusion -> finetune -> evaluate -> value, in one process."""
    t0 = time.time()
    parser = build_parser()
    common_args = ["--quiet"] if a.quiet else []

    def sub(*argv):
        return parser.parse_args(list(argv) + common_args)

    if not (a.reuse and os.path.exists(os.path.join(a.out, "index.json"))):
        cmd_collect(sub("collect", "--task", a.task, "--out", a.out, "--demos", str(a.demos), "--play", str(a.play),
                        *(["--size", str(a.size)] if a.size else []), *(["--steps", str(a.steps)] if a.steps else []),
                        "--noise", str(a.noise), "--random-frac", str(a.random_frac), "--seed", str(a.seed)), log)
    ctx = Context(a.out)
    s = str
    cmd_idm(sub("idm", "--data", a.out, "--steps", s(a.idm_steps)), log, ctx)
    cmd_bc(sub("bc", "--data", a.out, "--labels", "true", "--steps", s(a.bc_steps)), log, ctx)
    cmd_bc(sub("bc", "--data", a.out, "--labels", "idm", "--steps", s(a.bc_steps)), log, ctx)
    if a.diffusion_steps > 0:
        cmd_diffusion(sub("diffusion", "--data", a.out, "--labels", "idm", "--steps", s(a.diffusion_steps)), log, ctx)
    if a.ppo_iterations > 0:
        cmd_finetune(sub("finetune", "--data", a.out, "--iterations", s(a.ppo_iterations)), log, ctx)
    res = cmd_evaluate(sub("evaluate", "--data", a.out, "--episodes", s(a.episodes), "--random",
                           *(["--distilled"] if a.ppo_iterations > 0 else [])), log, ctx)
    cmd_value(sub("value", "--data", a.out), log, ctx)
    log(f"chain done in {time.time() - t0:.0f}s")
    return res


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.video_to_policy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = p.add_subparsers(dest="command", required=True)

    def base(name, help_, data=True):
        q = sp.add_parser(name, help=help_, description=help_)
        if data:
            q.add_argument("--data", required=True, help="dataset folder written by `collect`")
        q.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")
        return q

    c = base("collect", "run the scripted expert (demos) and the perturbed expert (play) and render them", data=False)
    c.add_argument("--task", default="point", choices=sim.TASKS, help="task (default point: the reduced CPU task)")
    c.add_argument("--out", required=True, help="dataset folder to write (records merge into an existing one)")
    c.add_argument("--demos", type=int, default=16, help="expert demonstrations (default 16)")
    c.add_argument("--play", type=int, default=24, help="play episodes for the IDM (default 24)")
    c.add_argument("--size", type=int, default=None, help="frame size in pixels (default 32 point, 64 dishwashing)")
    c.add_argument("--steps", type=int, default=None, help="steps per episode (default 40 point, 100 dishwashing)")
    c.add_argument("--noise", type=float, default=0.3, help="play: Gaussian action noise on the expert (default 0.3)")
    c.add_argument("--random-frac", type=float, default=0.2, help="play: fraction of uniform random actions (0.2)")

    def training(q, steps, lr=1e-3):
        q.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
        q.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
        q.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
        q.add_argument("--channels", type=_ints, default=(16, 32), help="encoder conv widths (default 16,32)")

    i = base("idm", "train the inverse dynamics model on play data; label the demos; report held-out accuracy")
    training(i, 400)
    i.add_argument("--hidden", type=_ints, default=(256, 256), help="head widths (default 256,256)")
    i.add_argument("--no-proprio", action="store_true", help="frames only (no proprioception)")
    i.add_argument("--out", default=None, help="checkpoint folder (default <data>/idm)")

    b = base("bc", "behaviour cloning from the demos (IDM labels or the hidden true actions)")
    training(b, 400)
    b.add_argument("--labels", choices=("idm", "true"), default="idm", help="action labels (default idm)")
    b.add_argument("--idm", default=None, help="IDM checkpoint (default <data>/idm)")
    b.add_argument("--hidden", type=_ints, default=(256, 256), help="head widths (default 256,256)")
    b.add_argument("--no-vision", action="store_true", help="proprioception only")
    b.add_argument("--no-proprio", action="store_true", help="frames only")
    b.add_argument("--out", default=None, help="checkpoint folder (default <data>/bc_<labels>)")

    d = base("diffusion", "diffusion policy with action chunks (DDPM training, DDIM sampling)")
    training(d, 600)
    d.add_argument("--labels", choices=("idm", "true"), default="idm", help="action labels (default idm)")
    d.add_argument("--idm", default=None, help="IDM checkpoint (default <data>/idm)")
    d.add_argument("--obs-horizon", type=int, default=2)
    d.add_argument("--pred-horizon", type=int, default=16)
    d.add_argument("--action-horizon", type=int, default=8, help="executed actions per chunk (default 8)")
    d.add_argument("--ddim-steps", type=int, default=10)
    d.add_argument("--schedule", choices=dif.SCHEDULES, default="cosine")
    d.add_argument("--width", type=int, default=64, help="temporal conv channels (default 64)")
    d.add_argument("--out", default=None, help="checkpoint folder (default <data>/diffusion)")

    f = base("finetune", "distill the cloned policy into PPO's network and fine-tune it with the economic reward")
    f.add_argument("--bc", default=None, help="BC checkpoint to start from (default <data>/bc_idm)")
    f.add_argument("--num-envs", type=int, default=32)
    f.add_argument("--unroll", type=int, default=8)
    f.add_argument("--minibatches", type=int, default=4)
    f.add_argument("--epochs", type=int, default=2)
    f.add_argument("--iterations", type=int, default=40, help="PPO iterations (default 40)")
    f.add_argument("--eval-every", type=int, default=10)
    f.add_argument("--eval-envs", type=int, default=8)
    f.add_argument("--lr", type=float, default=1e-4, help="PPO learning rate (default 1e-4, gentle on a cloned init)")
    f.add_argument("--entropy-cost", type=float, default=1e-3)
    f.add_argument("--policy-hidden", type=_ints, default=(64, 64))
    f.add_argument("--value-hidden", type=_ints, default=(64, 64))
    f.add_argument("--distill-episodes", type=int, default=8)
    f.add_argument("--distill-steps", type=int, default=400)
    f.add_argument("--init-std", type=float, default=0.3,
                   help="std (pre-tanh) the distilled policy starts PPO with (default 0.3)")
    f.add_argument("--critic-warmup", type=int, default=0,
                   help="chunks of --eval-every iterations that train only the critic first (default 0)")
    f.add_argument("--no-freeze-norm", action="store_true",
                   help="let PPO move the observation statistics the distilled policy was fitted with")
    f.add_argument("--out", default=None, help="checkpoint folder (default <data>/ppo)")

    e = base("evaluate", "MPᵣ, e, ŵᵣ and parities of the expert and every trained policy; table + plot")
    e.set_defaults(seed=10_000)
    e.add_argument("--episodes", type=int, default=8, help="evaluation episodes per policy (default 8)")
    e.add_argument("--bc-true", default=None)
    e.add_argument("--bc-idm", default=None)
    e.add_argument("--diffusion", default=None)
    e.add_argument("--ppo", default=None)
    e.add_argument("--random", action="store_true", help="add a uniform random policy row")
    e.add_argument("--distilled", action="store_true", help="add the distilled PPO initialization row")
    e.add_argument("--out-md", default=None)
    e.add_argument("--out-png", default=None)

    v = base("value", "per-demonstration embeddings -> valuation engine -> data_value.csv")
    v.add_argument("--idm", default=None, help="IDM checkpoint (default <data>/idm)")
    v.add_argument("--out", default=None, help="CSV path (default <data>/data_value.csv)")
    v.add_argument("--history", default=None, help="history CSV (novelty_score, causal_gain, realized_mpl_gain)")
    v.add_argument("--sharing", choices=("shared", "withheld"), default="withheld",
                   help="sharing status of the demos (default withheld: the premium is quoted)")
    v.add_argument("--realized", default=None, help="realized gains CSV (datapoint_id, realized_mpl) for true-up")

    ch = base("chain", "collect -> idm -> bc -> diffusion -> finetune -> evaluate -> value (small settings)", data=False)
    ch.add_argument("--task", default="point", choices=sim.TASKS)
    ch.add_argument("--out", required=True)
    ch.add_argument("--reuse", action="store_true", help="reuse an existing dataset in --out")
    ch.add_argument("--demos", type=int, default=16)
    ch.add_argument("--play", type=int, default=24)
    ch.add_argument("--size", type=int, default=None)
    ch.add_argument("--steps", type=int, default=None)
    ch.add_argument("--noise", type=float, default=0.3, help="play: Gaussian action noise (default 0.3)")
    ch.add_argument("--random-frac", type=float, default=0.2, help="play: fraction of random actions (default 0.2)")
    ch.add_argument("--idm-steps", type=int, default=400)
    ch.add_argument("--bc-steps", type=int, default=400)
    ch.add_argument("--diffusion-steps", type=int, default=600, help="0 skips the diffusion policy")
    ch.add_argument("--ppo-iterations", type=int, default=40, help="0 skips PPO fine-tuning")
    ch.add_argument("--episodes", type=int, default=8)
    return p


COMMANDS = {"collect": cmd_collect, "idm": cmd_idm, "bc": cmd_bc, "diffusion": cmd_diffusion,
            "finetune": cmd_finetune, "evaluate": cmd_evaluate, "value": cmd_value, "chain": cmd_chain}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    con = _console()
    log = (lambda m: con.print(m, markup=False, highlight=False))
    try:
        COMMANDS[args.command](args, log)
    except (FileNotFoundError, common.CheckpointError, ValueError) as e:
        con.print(f"[bold red]error:[/] {e}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
