"""Host loop around the jitted PPO pieces: members (seeds x sweep), sharding, CSV, progress, checkpoints.

The training itself is jitted (``vmap(chunk)`` over members, ``cfg.eval_every`` iterations per call);
only logging and checkpointing happen here, between chunks. :func:`run_training` takes what a run
does besides PPO's hyper-parameters as one :class:`RunConfig`; the compiled programs live in a
:class:`Programs` that the caller may keep and pass again (a resumed run, tests) to compile once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from vpjax.cli import write_json

from . import checkpoint as ckpt
from .config import PPOConfig
from .members import build_members, econ_to_dict, make_mesh, shard_state
from .metrics_log import (CSV_COLUMNS, append_rows, carry_forward, chunk_rows, csv_columns, file_header,  # noqa: F401
                          progress_line, truncate_csv)
from .policy_file import export_policy, start_from_policy
from .ppo import PPOTrain, make_train


@dataclass(frozen=True)
class RunConfig:
    """What a training run does besides PPO's hyper-parameters.

    Attributes:
      out_dir: run folder (CSV, config.json, checkpoints/, policy.msgpack); None = no files.
      seeds: one member per seed (and per sweep combination).
      sweep: {field: values} over EconParams/EnvParams fields (see :func:`train.members.parse_sweep`).
      resume: continue from the newest good checkpoint in ``out_dir/checkpoints``.
      init: a run folder or policy.msgpack whose actor and normalizer start every member (value net fresh).
      minutes: wall-clock budget; training stops (and saves) at the first chunk past it.
      progress: live progress bar.
      num_devices: shard the robots over this many local devices (default: all).
      max_chunks: stop after this many chunks in this call (tests simulate a killed run with it).
      checkpoints: write orbax checkpoints to ``out_dir/checkpoints`` (the policy file is always written).
      run_config: resolved configuration written to ``out_dir/config.json``.
    """

    out_dir: str | Path | None = None
    seeds: Sequence[int] = (0,)
    sweep: Mapping[str, Sequence[float]] | None = None
    resume: bool = False
    init: str | Path | None = None
    minutes: float | None = None
    progress: bool = True
    num_devices: int | None = None
    max_chunks: int | None = None
    checkpoints: bool = True
    run_config: Mapping[str, Any] | None = None


class Programs:
    """The compiled programs of one (cfg, env, eval_env): ``jit(vmap(init))`` and ``jit(vmap(chunk))``.

    The jitted functions depend only on ``cfg`` and the env objects (env params are arguments), so
    runs that share a :class:`Programs` share their compilations. One chunk program is kept per
    mesh and state layout (its output shardings equal the input's, so the loop never recompiles).
    """

    def __init__(self, cfg: PPOConfig, env, eval_env=None, env_params=None):
        self.env = env
        self.eval_env = eval_env
        self.train: PPOTrain = make_train(cfg, env, env_params, eval_env=eval_env)
        self.init = jax.jit(jax.vmap(self.train.init))
        self._chunks: dict = {}

    def matches(self, cfg: PPOConfig, env, eval_env) -> bool:
        return self.train.cfg == cfg and self.env is env and self.eval_env is eval_env

    def chunk(self, state, mesh):
        """jit(vmap(chunk)) for this state's structure, shapes and shardings on ``mesh``."""
        key = (tuple(d.id for d in mesh.devices.flat), jax.tree.structure(state),
               tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(state)))
        if key not in self._chunks:
            shardings = jax.tree.map(lambda x: x.sharding, state)
            rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
            self._chunks[key] = jax.jit(jax.vmap(self.train.chunk), donate_argnums=0,
                                        out_shardings=(shardings, rep, rep))
        return self._chunks[key]


@dataclass
class RunResult:
    state: Any
    rows: list = field(default_factory=list)
    iterations: int = 0
    env_steps: int = 0
    wall_time: float = 0.0
    converged: bool = False
    resumed_from: int | None = None
    stopped: str = "finished"
    chunk_fn: Any = None
    mesh: Any = None


def _write_run_config(out: Path, run: RunConfig, cfg: PPOConfig, desc, env_params, mesh, tr: PPOTrain) -> None:
    out.mkdir(parents=True, exist_ok=True)
    conf = dict(run.run_config or {})
    conf.update({"ppo": cfg.to_dict(), "members": desc, "econ": econ_to_dict(env_params.econ), "num_devices": mesh.size,
                 "num_iterations": tr.num_iterations, "jax_version": jax.__version__,
                 "backend": jax.default_backend()})
    if run.init is not None:
        conf["init"] = str(run.init)
    if jax.process_index() == 0:  # one writer on a multi-host run (the run folder may be shared), whole or not at all
        write_json(out / "config.json", conf)


def _initial_state(programs: Programs, keys, members, run: RunConfig, out: Path | None, log):
    """Fresh member states, started from ``run.init`` or restored from the newest good checkpoint.

    Returns:
      (state [M, ...] on the host's default device, iterations done, wall time before, resumed-from iteration).
    """
    state = programs.init(keys, members)
    if run.init is not None:
        state = start_from_policy(state, run.init, programs.train.cfg)
    if not (run.resume and out):
        return state, 0, 0.0, None
    got = ckpt.restore_latest(out / "checkpoints", jax.device_get(state), log=log)
    if got is None:
        log(f"--resume: no checkpoint in {out / 'checkpoints'}; starting fresh")
        return state, 0, 0.0, None
    state, meta = got
    start = int(meta["iteration"])
    log(f"resumed from {out / 'checkpoints'} at iteration {start}")
    return state, start, float(meta["extra"].get("wall_time", 0.0)), start


def _stop_reason(cfg: PPOConfig, run: RunConfig, rows, converged: bool, t_start: float, done_chunks: int,
                 on_chunk) -> str | None:
    if cfg.early_stop and converged:
        return "converged"
    if run.minutes is not None and (time.time() - t_start) / 60.0 >= run.minutes:
        return "time budget"
    if run.max_chunks is not None and done_chunks >= run.max_chunks:
        return "max_chunks"
    if on_chunk is not None and on_chunk(rows):
        return "callback"
    return None


def _progress_bar(enabled: bool, total_steps: int, done_steps: int):
    """(rich progress bar, its task) or (None, None)."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    bar.start()
    return bar, bar.add_task("compiling ...", total=total_steps, completed=done_steps)


def _finish(result: RunResult, out: Path | None) -> None:
    if out and jax.process_index() == 0:
        export_policy(out / "policy.msgpack", result.state)
        summary = {"iterations": result.iterations, "env_steps": result.env_steps, "wall_time": result.wall_time,
                   "stopped": result.stopped, "converged": result.converged, "resumed_from": result.resumed_from}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))


def run_training(cfg: PPOConfig, env, env_params=None, run: RunConfig = RunConfig(), *, eval_env=None,
                 programs: Programs | None = None, log: Callable[[str], Any] = print,
                 on_chunk: Callable[[list], bool] | None = None) -> RunResult:
    """Trains ``len(run.seeds) x prod(len(sweep values))`` members in one compiled program.

    Args:
      cfg: PPO hyper-parameters.
      env: an env following the vpjax contract; eval_env: the env of evaluations (default ``env``).
      env_params: base EnvParams (``env.default_params`` if None); econ comes from the config.
      run: what the run does besides PPO (files, members, resume, budget, devices).
      programs: compiled programs to reuse (built for ``cfg``, ``env`` and ``eval_env``); None = compile.
      log: receives the resume messages.
      on_chunk: ``f(rows) -> bool`` called with each chunk's CSV rows; True stops training (saved).
    """
    t_start = time.time()
    env_params = env.default_params if env_params is None else env_params
    if programs is None:
        programs = Programs(cfg, env, eval_env, env_params)
    elif not programs.matches(cfg, env, eval_env):
        raise ValueError("run_training: programs were compiled for another config or env")
    tr = programs.train
    members, keys, desc = build_members(env_params, run.seeds, run.sweep)
    mesh = make_mesh(run.num_devices)
    if cfg.num_envs % mesh.size:
        raise ValueError(f"ppo.num_envs={cfg.num_envs}: must be a multiple of the {mesh.size} devices it is sharded over")
    out = Path(run.out_dir) if run.out_dir is not None else None
    csv_path = out / "training_metrics.csv" if out else None
    if out:
        _write_run_config(out, run, cfg, desc, env_params, mesh, tr)
    state, start_iter, wall_before, resumed_from = _initial_state(programs, keys, members, run, out, log)
    state = shard_state(state, mesh)
    chunk_fn = programs.chunk(state, mesh)
    last_measured: dict = {}
    columns = csv_columns(state.env_state.metrics)  # the seed's columns, then the reward's extra terms
    if csv_path is not None:
        if resumed_from is not None:
            last_measured = truncate_csv(csv_path, start_iter, columns)
            columns = file_header(csv_path, columns)
        elif csv_path.exists():
            csv_path.unlink()
    beta = np.asarray(jax.device_get(members.econ.beta)).reshape(-1)
    result = RunResult(state=state, resumed_from=resumed_from, chunk_fn=chunk_fn, mesh=mesh)
    total_steps = tr.num_iterations * cfg.batch_size
    it, done_chunks = start_iter, 0
    bar, task = _progress_bar(run.progress, total_steps, start_iter * cfg.batch_size)
    try:
        for _ in range((tr.num_iterations - start_iter) // cfg.eval_every):
            t0 = time.time()
            state, metrics, ev = chunk_fn(state)
            metrics, ev = jax.device_get((metrics, ev))
            dt = time.time() - t0
            it += cfg.eval_every
            done_chunks += 1
            env_steps = it * cfg.batch_size
            sps = cfg.eval_every * cfg.batch_size * len(desc) / max(dt, 1e-9)
            wall = wall_before + time.time() - t_start
            rows = chunk_rows(metrics, ev, desc, it, cfg, env_steps, sps, wall, beta)
            carry_forward(rows, last_measured)
            result.rows.extend(rows)
            if csv_path is not None:
                append_rows(csv_path, rows, columns)
            if bar is not None:
                bar.update(task, completed=env_steps, description=progress_line(rows, env_steps, total_steps, sps))
            converged = all(r["converged"] for r in rows)
            stop = _stop_reason(cfg, run, rows, converged, t_start, done_chunks, on_chunk)
            last = it >= tr.num_iterations
            if out and run.checkpoints and (last or stop or (cfg.checkpoint_every and done_chunks % cfg.checkpoint_every == 0)):
                ckpt.save(out / "checkpoints", it, state, {"wall_time": wall}, keep=cfg.keep_checkpoints)
            result.converged = converged
            if stop:
                result.stopped = stop
                break
    finally:
        if bar is not None:
            bar.stop()
    result.state, result.iterations, result.env_steps = state, it, it * cfg.batch_size
    result.wall_time = wall_before + time.time() - t_start
    _finish(result, out)
    return result
