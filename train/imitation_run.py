"""Host loop of an imitation run: rounds, the run folder, checkpoints, resume, progress.

The run folder has the layout of a PPO run, so ``python -m evaluate --policy RUN`` and
``python -m train --init RUN`` read it unchanged: ``config.json``, ``training_metrics.csv`` (one row per
round, the economic columns of a PPO run plus the imitation diagnostics), ``checkpoints/`` (orbax: the
whole state, buffer included, so a resumed run ends bit-identical to an uninterrupted one),
``policy.msgpack`` and ``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vpjax import economics as E
from vpjax.cli import write_json

from . import checkpoint as ckpt
from .acting import curriculum_end
from .imitation import Buffer, ImitationConfig, make_imitation
from .members import econ_to_dict
from .metrics_log import CSV_COLUMNS, append_rows, csv_columns, truncate_csv
from .policy_file import export_policy, load_policy

IMITATION_COLUMNS = ["dagger_beta", "expert_fraction", "bc_mse", "bc_l1", "bc_std", "buffer_rows", "learning_rate"]
COLUMNS = CSV_COLUMNS + IMITATION_COLUMNS  # training_metrics.csv of an imitation run
_ECON = {"MP_r": "mp", "e_t": "error_rate", "w_hat_r": "implied_wage", "wage_parity": "wage_parity",
         "productivity_parity": "productivity_parity", "reward_total": "reward_episode", "reward_mp": "reward_mp",
         "reward_error": "reward_error", "reward_wage": "reward_wage"}
_EVAL = {"eval_MP_r": "mp", "eval_e_t": "error_rate", "eval_w_hat_r": "implied_wage",
         "eval_productivity_parity": "productivity_parity", "eval_wage_parity": "wage_parity",
         "eval_success_rate": "success_rate"}


@dataclass
class ImitationResult:
    state: Any
    rows: list = field(default_factory=list)
    final_eval: dict | None = None
    expert_eval: dict | None = None
    rounds: int = 0
    env_steps: int = 0
    wall_time: float = 0.0
    resumed_from: int | None = None
    stopped: str = "finished"
    selected_round: int | None = None  # select="best": the exported student's round (final_eval: the test scenes)
    validation_eval: dict | None = None  # select="best": that student on the validation scenes


class _Best:
    """select="best": the best student so far, in memory (host copies: the next round's jitted collect donates the
    state's buffers) and in the run folder (``policy_best.msgpack`` + ``selection.json``) for ``--resume``."""

    def __init__(self, out: Path | None, state, resume: bool):
        self.out, self.round, self.eval, self.params, self.norm = out, None, None, None, None
        sel_path, pol_path = (out / "selection.json", out / "policy_best.msgpack") if out else (None, None)
        if resume and out and sel_path.is_file() and pol_path.is_file():
            sel = json.loads(sel_path.read_text())
            tree = load_policy(pol_path, {"params": _member_axis(state.params), "norm": _member_axis(state.norm)})
            first = jax.tree.map(lambda x: np.asarray(x)[0], tree)
            self.round, self.eval, self.params, self.norm = sel["round"], sel["eval"], first["params"], first["norm"]

    @staticmethod
    def score(ev: dict) -> tuple[float, float]:
        """The order of students: MPᵣ, then the lower error rate (the first of equals stays)."""
        return ev["mp"], -ev["error_rate"]

    def offer(self, round_number: int, ev: dict, state) -> None:
        if self.eval is not None and self.score(ev) <= self.score(self.eval):
            return
        self.round, self.eval = round_number, ev
        self.params, self.norm = jax.device_get(state.params), jax.device_get(state.norm)
        if self.out:
            self.export(self.out / "policy_best.msgpack", state)
            write_json(self.out / "selection.json", {"round": round_number, "eval": ev})

    def export(self, path: Path, state) -> None:
        export_policy(path, state.replace(params=_member_axis(self.params), norm=_member_axis(self.norm)))


def _floats(d: dict) -> dict:
    return {k: float(v) for k, v in jax.device_get(d).items() if np.ndim(v) == 0}


def _row(cfg: ImitationConfig, r: int, beta: float, lr: float, col: dict, fit: dict, ev: dict | None, env_steps: int,
         sps: float, wall: float, econ, buffer_rows: int, columns: list[str]) -> dict:
    row = {c: "" for c in columns}
    row.update({k: col[v] for k, v in _ECON.items()})
    row.update({k: col[k] for k in columns if k.startswith(E.EXTRA_PREFIX) and k in col})  # a plug-in's own terms
    row.update(episode=float(r + 1), alpha=float(econ.alpha_final), beta=float(econ.beta), gamma=float(econ.gamma_final),
               env_steps=env_steps, steps_per_sec=round(sps, 1), wall_time=round(wall, 2), member=0, seed=cfg.seed,
               iteration=r + 1, episodes_done=cfg.num_envs, stats_iteration=r + 1, dagger_beta=beta,
               expert_fraction=col["expert_fraction"], bc_mse=fit.get("bc_mse", ""), bc_l1=fit.get("bc_l1", ""),
               bc_std=fit.get("bc_std", ""),
               buffer_rows=buffer_rows, learning_rate=lr)
    if ev is not None:
        row.update({k: ev[v] for k, v in _EVAL.items()})
    judged = ev if ev is not None else col
    row["converged"] = float(E.parity_holds(judged["productivity_parity"], judged["wage_parity"], econ))
    row["streak"] = row["converged"]
    return row


def _open_run(out: Path, cfg: ImitationConfig, ppo_cfg, env_params, run_config: dict | None, state, resume: bool,
              log, episode_length: int, columns: list[str]) -> tuple[Any, int, float, int | None]:
    """Writes config.json; with ``resume``, restores the newest good checkpoint and drops the CSV rows after it.

    Returns:
      (state, rounds already done, wall time already spent, the round resumed from or None).
    """
    out.mkdir(parents=True, exist_ok=True)
    conf = dict(run_config or {})
    conf.update({"algorithm": cfg.algorithm, "imitation": cfg.to_dict(), "ppo": ppo_cfg.to_dict(),
                 "members": [{"seed": cfg.seed}], "econ": econ_to_dict(env_params.econ),
                 "jax_version": jax.__version__, "backend": jax.default_backend()})
    csv_path = out / "training_metrics.csv"
    got = None
    if resume:
        # a run continued with more rounds has a larger buffer: restore into the saved run's buffer size, then grow
        template = jax.device_get(state)
        saved = _saved_capacity(out, episode_length)
        if saved is not None and saved != template.buffer.obs.shape[0]:
            obs_size, act_size = template.buffer.obs.shape[1], template.buffer.act.shape[1]
            template = template.replace(buffer=Buffer.init(saved, obs_size, act_size))
        got = ckpt.restore_latest(out / "checkpoints", template, log=log)
    write_json(out / "config.json", conf)  # only now: a refused resume leaves the run's files as they were
    if got is None:
        if resume:
            log(f"--resume: no checkpoint in {out / 'checkpoints'}; starting fresh")
        csv_path.unlink(missing_ok=True)
        return state, 0, 0.0, None
    restored, meta = got
    restored = jax.tree.map(jnp.asarray, restored)
    restored = restored.replace(buffer=grow_buffer(restored.buffer, state.buffer.obs.shape[0]))
    start = int(meta["iteration"])
    truncate_csv(csv_path, start, columns)
    log(f"resumed from {out / 'checkpoints'} at round {start}")
    return restored, start, float(meta["extra"].get("wall_time", 0.0)), start


def _saved_capacity(out: Path, episode_length: int) -> int | None:
    """Buffer rows of the run saved in ``out`` (from its config.json), or None if it cannot be told."""
    try:
        old = json.loads((out / "config.json").read_text())["imitation"]
        return int(old.get("capacity") or old["rounds"] * old["num_envs"]
                   * ImitationConfig(rollout_steps=old.get("rollout_steps", 0)).steps_per_round(episode_length))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def grow_buffer(buf: Buffer, capacity: int) -> Buffer:
    """``buf`` with room for ``capacity`` rows (its rows kept, new rows invalid); refuses to shrink it."""
    old = buf.obs.shape[0]
    if capacity == old:
        return buf
    if capacity < old:
        raise ckpt.CheckpointError(f"--resume: the checkpoint's buffer holds {old} rows, this run's only {capacity} "
                                   "(imitation.rounds or capacity lowered); resume with at least as many rounds")
    pad = lambda x: jnp.concatenate([x, jnp.zeros((capacity - old,) + x.shape[1:], x.dtype)])  # noqa: E731
    # a full ring continues into the new rows; a partly filled one continues where it stopped
    ptr = jnp.where(buf.size >= old, old, buf.ptr).astype(buf.ptr.dtype)
    return Buffer(obs=pad(buf.obs), act=pad(buf.act), valid=pad(buf.valid), ptr=ptr, size=buf.size)


def run_imitation(cfg: ImitationConfig, ppo_cfg, env, env_params, expert, *, out_dir: str | Path | None = None,
                  resume: bool = False, minutes: float | None = None, progress: bool = True,
                  run_config: dict | None = None, max_rounds: int | None = None, log=print) -> ImitationResult:
    """Runs ``cfg.rounds`` rounds of collect + fit, then the held-out evaluation of the student and the expert.

    Args:
      cfg: imitation hyper-parameters; ppo_cfg: the PPOConfig whose networks the student is.
      env, env_params: the task and its params (econ from the config); expert: the teacher.
      out_dir: run folder (None: no files); resume: continue from its newest good checkpoint.
      minutes: wall-clock budget; the run stops (saved) after the first round past it.
      max_rounds: stop after this many rounds in this call (tests simulate a killed run with it).
    """
    t_start = time.time()
    im = make_imitation(cfg, ppo_cfg, env, expert)
    base_key = jax.random.PRNGKey(cfg.seed)
    eval_key = jax.random.fold_in(base_key, 1)  # held-out scenes: a key path training never draws from
    test_key = jax.random.fold_in(base_key, 2)  # select="best": the chosen student's report, unseen by the choice
    state = jax.jit(im.init)(jax.random.fold_in(base_key, 0))
    judge = curriculum_end(env_params)
    out = Path(out_dir) if out_dir is not None else None
    start, wall_before, resumed_from = 0, 0.0, None
    columns = csv_columns(env.metric_names, COLUMNS)  # a reward plug-in's terms after the standard ones
    if out:
        state, start, wall_before, resumed_from = _open_run(out, cfg, ppo_cfg, env_params, run_config, state, resume,
                                                            log, env.episode_length, columns)
    collect = jax.jit(im.collect, donate_argnums=0)
    fit = jax.jit(im.fit, donate_argnums=0)
    evaluate = jax.jit(im.evaluate)
    result = ImitationResult(state=state, resumed_from=resumed_from)
    best = _Best(out, state, resume) if cfg.select == "best" else None
    steps_per_round = cfg.num_envs * im.rollout_steps
    for r in range(start, cfg.rounds):
        t0 = time.time()
        beta = cfg.beta(r)
        lr = cfg.learning_rate * cfg.lr_decay**r
        state, col = collect(state, jnp.float32(beta), env_params)
        col, t_col = _floats(col), time.time() - t0
        state, fit_m = fit(state, jnp.float32(lr))
        fit_m = _floats(fit_m)
        last = r + 1 == cfg.rounds
        ev = None
        if cfg.num_eval_envs and (last or (cfg.eval_every and (r + 1) % cfg.eval_every == 0)):
            ev = _floats(evaluate(state.params, state.norm, eval_key, judge))
        wall = wall_before + time.time() - t_start
        row = _row(cfg, r, beta, lr, col, fit_m, ev, (r + 1) * steps_per_round, steps_per_round / max(t_col, 1e-9),
                   wall, env_params.econ, int(jax.device_get(state.buffer.size)), columns)
        result.rows.append(row)
        result.final_eval = ev if last else None
        if ev is not None and best:
            best.offer(r + 1, ev, state)
        if out:
            _save_round(out, r + 1, row, columns, state, wall)
        if progress:
            log(_progress_line(cfg, r, beta, col, fit_m, ev, ev is not None and best and best.round == r + 1, wall))
        if not last and minutes is not None and (time.time() - t_start) / 60.0 >= minutes:
            result.stopped = "time budget"
        elif not last and max_rounds is not None and r + 1 - start >= max_rounds:
            result.stopped = "max_rounds"
        if result.stopped != "finished":
            break
    result.rounds = start + len(result.rows)
    result.env_steps = result.rounds * steps_per_round
    if result.final_eval is not None and best:
        _report_best(result, best, im, evaluate, test_key, judge, out, state, log if progress else None)
    elif result.final_eval is not None:
        result.expert_eval = _floats(jax.jit(im.evaluate_expert)(eval_key, judge))
    result.state = state
    result.wall_time = wall_before + time.time() - t_start
    if out:
        write_json(out / "summary.json", {
            "algorithm": cfg.algorithm, "rounds": result.rounds, "env_steps": result.env_steps,
            "wall_time": result.wall_time, "stopped": result.stopped, "resumed_from": resumed_from,
            "held_out_eval": result.final_eval, "expert_eval": result.expert_eval, "num_eval_envs": cfg.num_eval_envs,
            "select": cfg.select, "selected_round": result.selected_round, "validation_eval": result.validation_eval})
    return result


def _report_best(result: ImitationResult, best: _Best, im, evaluate, test_key, judge, out: Path | None, state,
                 log) -> None:
    """select="best": the chosen student and the expert on the test scenes; the run's policy is that student
    (the checkpoints keep the last round's, for resume)."""
    result.selected_round, result.validation_eval = best.round, best.eval
    result.final_eval = _floats(evaluate(best.params, best.norm, test_key, judge))
    result.expert_eval = _floats(jax.jit(im.evaluate_expert)(test_key, judge))
    if out:
        best.export(out / "policy.msgpack", state)
    if log:
        log(f"selected round {best.round}'s student (validation MPᵣ {best.eval['mp']:.1f}/h; "
            f"on the test scenes {result.final_eval['mp']:.1f}/h, the expert {result.expert_eval['mp']:.1f}/h)")


def _save_round(out: Path, round_number: int, row: dict, columns: list, state, wall: float) -> None:
    """A round's CSV row, checkpoint (the whole state, for resume) and policy file."""
    append_rows(out / "training_metrics.csv", [row], columns)
    ckpt.save(out / "checkpoints", round_number, state, {"wall_time": wall}, keep=2)
    export_policy(out / "policy.msgpack", state.replace(params=_member_axis(state.params), norm=_member_axis(state.norm)))


def _progress_line(cfg: ImitationConfig, r: int, beta: float, col: dict, fit_m: dict, ev: dict | None, is_best: bool,
                   wall: float) -> str:
    who = "expert" if beta >= 1 else "student" if beta <= 0 else "mixed"
    held = f"  held-out prod {ev['productivity_parity']:.2f}{' (best)' if is_best else ''}" if ev else ""
    return (f"round {r + 1}/{cfg.rounds}  β {beta:.2f}  {who} MPᵣ {col['mp']:.1f}/h  e {col['error_rate']:.3f}  "
            f"prod {col['productivity_parity']:.2f}  bc_mse {fit_m.get('bc_mse', float('nan')):.4f}{held}  {wall:.0f} s")


def _member_axis(tree):
    """The policy file's layout: a leading member axis of 1."""
    return jax.tree.map(lambda x: jnp.asarray(x)[None], tree)


def print_comparison(result: ImitationResult, unit: str = "units", console=None) -> None:
    """The student against the expert on the same held-out scenes (fits 100 columns)."""
    from rich.console import Console
    from rich.table import Table

    if not result.final_eval:
        return
    chosen = f", round {result.selected_round}'s student, test scenes" if result.selected_round else ""
    t = Table(title=f"held-out evaluation ({result.rounds} rounds, {result.env_steps:,} env steps, "
                    f"{result.wall_time:.0f} s{chosen})")
    for c in ("policy", f"MPᵣ {unit}/h", "e", "ŵᵣ $/h", "prod. parity", "wage parity", "success"):
        t.add_column(c, justify="right")
    for name, ev in (("student", result.final_eval), ("expert", result.expert_eval)):
        if ev:
            t.add_row(name, f"{ev['mp']:.1f}", f"{ev['error_rate']:.3f}", f"{ev['implied_wage']:.2f}",
                      f"{ev['productivity_parity']:.3f}", f"{ev['wage_parity']:.3f}", f"{ev['success_rate']:.2f}")
    (console or Console(width=100)).print(t)
    if result.expert_eval and result.expert_eval["mp"] > 0:
        print(f"student / expert MPᵣ: {result.final_eval['mp'] / result.expert_eval['mp']:.3f}")


__all__ = ["COLUMNS", "IMITATION_COLUMNS", "ImitationResult", "print_comparison", "run_imitation"]
