"""The video-to-policy steps as typed functions: collect, idm, bc, diffusion, finetune, evaluate, value, chain.

Each step takes a frozen config (:class:`CollectConfig`, :class:`IDMStep`, …) and a ``log`` callable,
reads and writes a dataset folder (``records``), and returns its metrics. :func:`chain` runs them in
one process on one :class:`Dataset`, so the records are loaded once. ``python -m
train.video_to_policy`` (:mod:`.cli`) only turns flags into these configs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

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
from .steps import (BC_DEFAULTS, DIFFUSION_DEFAULTS, IDM_DEFAULTS, BCStep, ChainConfig, CollectConfig, DiffusionStep,
                    EvaluateStep, FinetuneStep, IDMStep, ValueStep)

DEFAULTS = {"point": {"size": 32, "steps": 40}, "dishwashing": {"size": 64, "steps": 100},
            "dishwashing_reduced": {"size": sim.REDUCED_DISHWASHING["size"],
                                    "steps": sim.REDUCED_DISHWASHING["episode_length"]}}


# ----------------------------------------------------------------------------- helpers


class Dataset:
    """A dataset folder and its task (built once per process and shared by the steps of :func:`chain`)."""

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


def _labels(ctx: Dataset, kind: str, idm_path: str | None) -> dict | None:
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


def collect(a: CollectConfig, log=print) -> dict:
    """Collects and renders the demos and play episodes; returns ``{"records": n}``."""
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


def idm(a: IDMStep, log=print, ctx: Dataset | None = None) -> dict:
    """Trains the IDM, labels the demos (``labels.npz``) and returns its held-out metrics."""
    ctx = ctx or Dataset(a.data)
    play, demos = ctx.records("play"), ctx.records("demo")
    cfg = a.model
    variables, losses = idm_mod.train(play, cfg, jax.random.PRNGKey(a.seed), quiet=a.quiet)
    net = cfg.net(ctx.task.action_size)
    acc = idm_mod.accuracy(net, variables, demos)
    labels = idm_mod.predict(net, variables, demos)
    path = ctx.path(a.out, "idm")
    metrics = {**acc, **_loss_ends(losses)}
    common.save_checkpoint(path, "idm", ctx.task_name, variables, {**vars_json(cfg), "action_size": ctx.task.action_size},
                           metrics)
    np.savez(os.path.join(path, "labels.npz"), **labels)
    log(f"IDM on {len(play)} play episodes, held-out on {len(demos)} demos ({acc['windows']} steps): "
        f"action MSE {acc['mse']:.4f} vs mean-action baseline {acc['baseline_mse']:.4f}, R² {acc['r2']:.3f} -> {path}")
    return metrics


def vars_json(cfg) -> dict:
    """A model config as the JSON of its checkpoint's meta (tuples as lists); :func:`saved_config` reads it back."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def saved_config(cls, c: dict):
    """The ``cls`` model config of a checkpoint's meta config ``c`` (lists as tuples; other keys ignored)."""
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items() if k in cls.__dataclass_fields__})


def _loss_ends(losses) -> dict:
    """The mean of the first and of the last ten training losses."""
    return {"loss_first": float(losses[:10].mean()), "loss_last": float(losses[-10:].mean())}


def _train_on_demos(a: BCStep | DiffusionStep, ctx: Dataset | None, train_fn):
    """:func:`bc` and :func:`diffusion`'s training: ``train_fn`` on the demos with ``a.labels``.

    Returns (dataset, demos, variables, the loss metrics).
    """
    ctx = ctx or Dataset(a.data)
    labels = _labels(ctx, a.labels, a.idm_path)
    demos = ctx.records("demo")
    variables, losses = train_fn(demos, a.model, jax.random.PRNGKey(a.seed), labels=labels, quiet=a.quiet)
    return ctx, demos, variables, _loss_ends(losses)


def _save_policy(ctx: Dataset, a: BCStep | DiffusionStep, kind: str, path: str, variables, metrics: dict) -> None:
    common.save_checkpoint(path, kind, ctx.task_name, variables,
                           {**vars_json(a.model), "labels": a.labels, "action_size": ctx.task.action_size}, metrics)


def bc(a: BCStep, log=print, ctx: Dataset | None = None) -> dict:
    """Behaviour cloning; returns the losses and the MSE against the hidden true actions."""
    ctx, demos, variables, metrics = _train_on_demos(a, ctx, bc_mod.train)
    mse = bc_mod.heldout_mse(a.model.net(ctx.task.action_size), variables, demos, a.model)
    metrics["mse_vs_true_actions"] = mse
    path = ctx.path(a.out, f"bc_{a.labels}")
    _save_policy(ctx, a, "bc", path, variables, metrics)
    log(f"BC ({a.labels} labels) on {len(demos)} demos: loss {metrics['loss_first']:.4f} -> {metrics['loss_last']:.4f}, "
        f"MSE vs true actions {mse:.4f} -> {path}")
    return metrics


def diffusion(a: DiffusionStep, log=print, ctx: Dataset | None = None) -> dict:
    """Trains the diffusion policy; returns its first and last ε-losses."""
    ctx, demos, variables, metrics = _train_on_demos(a, ctx, dif.train)
    path = ctx.path(a.out, "diffusion")
    _save_policy(ctx, a, "diffusion", path, variables, metrics)
    log(f"diffusion policy ({a.labels} labels) on {len(demos)} demos: ε-loss {metrics['loss_first']:.4f} -> "
        f"{metrics['loss_last']:.4f} -> {path}")
    return metrics


def _bc_spec(ctx: Dataset, path: str, name: str) -> ev.PolicySpec:
    variables, meta = common.load_checkpoint(path, "bc", ctx.task_name)
    c = meta["config"]
    cfg = saved_config(bc_mod.BCConfig, c)
    act = bc_mod.make_act(cfg.net(c["action_size"]), variables)
    return ev.PolicySpec(name, lambda s, f, p, k: act(jnp.asarray(f), jnp.asarray(p))[:, None], cfg.obs_horizon,
                         cfg.use_vision)


def _diffusion_spec(ctx: Dataset, path: str, name: str) -> ev.PolicySpec:
    variables, meta = common.load_checkpoint(path, "diffusion", ctx.task_name)
    c = meta["config"]
    cfg = saved_config(dif.DiffusionConfig, c)
    act = dif.make_act(cfg.net(c["action_size"]), variables, cfg, c["action_size"])
    return ev.PolicySpec(name, lambda s, f, p, k: act(f, p, k), cfg.obs_horizon, cfg.use_vision)


def _ppo_cfg(c: dict):
    from train.config import PPOConfig

    return PPOConfig(**c)


def _ppo_spec(ctx: Dataset, path: str, name: str) -> ev.PolicySpec:
    from . import finetune as ft

    variables, meta = common.load_checkpoint(path, "ppo", ctx.task_name)
    cfg = _ppo_cfg(meta["config"]["ppo"])
    return ft.obs_policy_spec(name, ctx.task, cfg, variables["policy"], ft.norm_from_dict(variables["norm"]))


def finetune(a: FinetuneStep, log=print, ctx: Dataset | None = None) -> dict:
    """Distills the cloned policy into PPO's network and fine-tunes it; returns the distillation MSE and evals."""
    from . import finetune as ft

    ctx = ctx or Dataset(a.data)
    teacher = _bc_spec(ctx, ctx.path(a.bc, "bc_idm"), "cloned policy")
    cfg = a.ppo_config()
    k_d, k_p = jax.random.split(jax.random.PRNGKey(a.seed))
    t0 = time.time()
    pol, norm, mse = ft.distill(ctx.task, teacher, cfg, k_d, episodes=a.distill_episodes, size=ctx.size,
                                steps=a.distill_steps, init_std=a.init_std)
    log(f"distilled the cloned video policy into PPO's policy network: action MSE {mse:.4f} ({time.time() - t0:.0f}s)")
    n_chunks = max(1, a.iterations // cfg.eval_every)
    with common.Progress("PPO fine-tune", n_chunks, a.quiet) as bar:
        state, evals = ft.finetune(ctx.task, cfg, pol, norm, k_p, chunks=n_chunks, critic_warmup=a.critic_warmup,
                                   freeze_norm=a.freeze_norm, progress=lambda i, e: bar.update(i, info=f"MPᵣ {e['mp']:.1f} prod {e['productivity_parity']:.2f}"))
    path = ctx.path(a.out, "ppo")
    variables = {"policy": state.params["policy"], "norm": ft.norm_to_dict(state.norm),
                 "distilled": pol, "distilled_norm": ft.norm_to_dict(norm)}
    metrics = {"distill_mse": mse, "evals": evals}
    common.save_checkpoint(path, "ppo", ctx.task_name, variables, {"ppo": cfg.to_dict()}, metrics)
    log(f"PPO fine-tune: {cfg.num_envs} robots x {n_chunks * cfg.eval_every} iterations; eval MPᵣ "
        f"{evals[0]['mp']:.1f} -> {evals[-1]['mp']:.1f}/h -> {path}")
    return metrics


def evaluate(a: EvaluateStep, log=print, ctx: Dataset | None = None) -> dict:
    """Evaluates every policy; writes ``evaluation.md``/``.png``/``.json``; returns the rows and the table."""
    from . import finetune as ft

    ctx = ctx or Dataset(a.data)
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


def value(a: ValueStep, log=print, ctx: Dataset | None = None) -> dict:
    """Values every demonstration and writes ``data_value.csv``; returns the valuation's columns."""
    from . import value as val

    ctx = ctx or Dataset(a.data)
    path = ctx.path(a.idm_path, "idm")
    variables, meta = common.load_checkpoint(path, "idm", ctx.task_name)
    c = meta["config"]
    cfg = saved_config(idm_mod.IDMConfig, c)
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


def chain(c: ChainConfig, log=print) -> dict:
    """collect -> idm -> bc (true, idm) -> diffusion -> finetune -> evaluate -> value, in one process.

    Returns:
      what :func:`evaluate` returns.
    """
    t0 = time.time()
    col, quiet = c.collect, c.collect.quiet
    if not (c.reuse and os.path.exists(os.path.join(col.out, "index.json"))):
        collect(col, log)
    ctx = Dataset(col.out)
    data = col.out
    idm(IDMStep(data, dataclasses.replace(IDM_DEFAULTS, steps=c.idm_steps), quiet=quiet), log, ctx)
    for labels in ("true", "idm"):
        bc(BCStep(data, dataclasses.replace(BC_DEFAULTS, steps=c.bc_steps), labels=labels, quiet=quiet), log, ctx)
    if c.diffusion_steps > 0:
        diffusion(DiffusionStep(data, dataclasses.replace(DIFFUSION_DEFAULTS, steps=c.diffusion_steps), quiet=quiet),
                  log, ctx)
    if c.ppo_iterations > 0:
        finetune(FinetuneStep(data, iterations=c.ppo_iterations, quiet=quiet), log, ctx)
    res = evaluate(EvaluateStep(data, episodes=c.episodes, random=True, distilled=c.ppo_iterations > 0, quiet=quiet),
                   log, ctx)
    value(ValueStep(data, quiet=quiet), log, ctx)
    log(f"chain done in {time.time() - t0:.0f}s")
    return res
