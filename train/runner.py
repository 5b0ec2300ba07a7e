"""Host loop around the jitted PPO pieces: members (seeds x sweep), sharding, CSV, progress, checkpoints.

The training itself is jitted (``vmap(chunk)`` over members, ``cfg.eval_every`` iterations per call);
only logging and checkpointing happen here, between chunks.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from . import checkpoint as ckpt
from .config import PPOConfig
from .ppo import make_train

# The seed's columns (ASCII names), then throughput, then extra diagnostics.
SEED_COLUMNS = ["episode", "MP_r", "e_t", "w_hat_r", "wage_parity", "productivity_parity", "reward_total",
                "reward_mp", "reward_error", "reward_wage", "alpha", "beta", "gamma"]
CSV_COLUMNS = SEED_COLUMNS + [
    "env_steps", "steps_per_sec", "wall_time", "member", "seed", "iteration", "episode_return", "episodes_done",
    "eval_MP_r", "eval_e_t", "eval_w_hat_r", "eval_productivity_parity", "eval_wage_parity", "eval_success_rate",
    "eval_return", "streak", "converged", "step_reward", "step_shaping", "loss_policy", "loss_value", "entropy", "approx_kl", "grad_norm",
    "stats_iteration"]
_FROM_ENV = {"MP_r": "mp", "e_t": "error_rate", "w_hat_r": "implied_wage", "wage_parity": "wage_parity",
             "productivity_parity": "productivity_parity", "reward_total": "reward_episode", "reward_mp": "reward_mp",
             "reward_error": "reward_error", "reward_wage": "reward_wage", "episode_return": "episode_return"}
_ALIASES = {"alpha": ("alpha", "alpha_initial", "alpha_final"), "gamma": ("gamma", "gamma_initial", "gamma_final"),
            "anneal_episodes": ("anneal_steps",)}


# ----------------------------------------------------------------------------- members


def parse_sweep(text: str | None) -> dict[str, list[float]]:
    """``"gamma=0.1,0.5,1.0;beta=0.2,0.5"`` -> ``{"gamma": [0.1, 0.5, 1.0], "beta": [0.2, 0.5]}``."""
    out: dict[str, list[float]] = {}
    if not text:
        return out
    for part in text.replace(" ", "").split(";"):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"--sweep {part!r}: expected NAME=v1,v2,...")
        name, values = part.split("=", 1)
        try:
            out[name] = [float(v) for v in values.split(",") if v]
        except ValueError as e:
            raise ValueError(f"--sweep {name}: values must be numbers ({e})") from e
        if not out[name]:
            raise ValueError(f"--sweep {name}: no values")
    return out


def _set_field(env_params, name: str, value: float):
    econ = env_params.econ
    econ_fields = set(econ.__dataclass_fields__)
    targets = _ALIASES.get(name, (name,))
    if all(t in econ_fields for t in targets):
        # Sweeping alpha or gamma fixes the weight for the whole run (initial = final = value).
        changes = {t: jnp.asarray(value, getattr(econ, t).dtype) for t in targets}
        return env_params.replace(econ=econ.replace(**changes))
    if name in getattr(env_params, "__dataclass_fields__", {}) and name != "econ":
        return env_params.replace(**{name: jnp.asarray(value, jnp.asarray(getattr(env_params, name)).dtype)})
    known = sorted(econ_fields | set(_ALIASES) | (set(getattr(env_params, "__dataclass_fields__", {})) - {"econ"}))
    raise ValueError(f"--sweep {name}: not an EconParams or EnvParams field (known: {', '.join(known)})")


def build_members(env_params, seeds: Sequence[int], sweep: dict[str, list[float]] | None):
    """Cartesian product of sweep values x seeds.

    Returns:
      (stacked env params with a leading member axis [M], keys [M, 2], descriptions: list of dicts).
    """
    sweep = sweep or {}
    names = list(sweep)
    combos = list(itertools.product(*[sweep[n] for n in names])) if names else [()]
    params, keys, desc = [], [], []
    for combo in combos:
        p = env_params
        for n, v in zip(names, combo):
            p = _set_field(p, n, v)
        for s in seeds:
            params.append(p)
            keys.append(jax.random.PRNGKey(int(s)))
            desc.append({"seed": int(s), **dict(zip(names, combo))})
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)
    return stacked, jnp.stack(keys), desc


def econ_to_dict(econ) -> dict:
    """EconParams -> {field: float} (JSON; rebuilt by :func:`econ_from_dict`)."""
    return {k: float(np.asarray(getattr(econ, k))) for k in econ.__dataclass_fields__}


def econ_from_dict(d: dict, like) -> Any:
    """Inverse of :func:`econ_to_dict`, with the dtypes of ``like``."""
    return like.replace(**{k: jnp.asarray(v, jnp.asarray(getattr(like, k)).dtype) for k, v in d.items()})


def member_env_params(env_params, desc: dict):
    """The env params of one member described by ``desc`` (its sweep values)."""
    for k, v in desc.items():
        if k != "seed":
            env_params = _set_field(env_params, k, v)
    return env_params


# ----------------------------------------------------------------------------- sharding


def make_mesh(num_devices: int | None = None):
    """A 1-D ``('data',)`` mesh over the first ``num_devices`` devices (all, over all hosts, by default)."""
    devs = jax.devices()
    if num_devices is not None:
        if num_devices > len(devs):
            raise ValueError(f"--devices {num_devices}: only {len(devs)} device(s) visible")
        devs = devs[:num_devices]
    return jax.sharding.Mesh(np.array(devs), ("data",))


def _put(x, sharding):
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)  # every process built the same initial state from the same keys
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def shard_state(state, mesh):
    """Env-batched leaves (env_state, ep_return: axis 1 after the member axis) split over 'data'; others replicated.

    jit then runs the rollout data-parallel and XLA all-reduces the gradients and normalizer statistics.
    """
    P = jax.sharding.PartitionSpec
    rep = jax.sharding.NamedSharding(mesh, P())
    batch = jax.sharding.NamedSharding(mesh, P(None, "data"))
    tree = state.replace(
        env_state=jax.tree.map(lambda x: batch if np.ndim(x) >= 2 else rep, state.env_state),
        ep_return=batch,
    )
    shardings = jax.tree.map(lambda x: rep, state)
    shardings = shardings.replace(env_state=tree.env_state, ep_return=batch)
    return jax.tree.map(_put, state, shardings)


# ----------------------------------------------------------------------------- logging


def chunk_rows(metrics: dict, ev: dict, desc: list[dict], iteration: int, cfg: PPOConfig, env_steps: int,
               steps_per_sec: float, wall: float, beta: np.ndarray) -> list[dict]:
    """One CSV row per member from a chunk's per-iteration metrics [M, eval_every] and evaluation [M]."""
    rows = []
    for m in range(len(desc)):
        n = float(np.sum(metrics["episodes_done"][m]))
        avg = lambda k: float(np.sum(metrics[f"sum_{k}"][m]) / n) if n > 0 else float("nan")  # noqa: E731
        row = {col: avg(src) for col, src in _FROM_ENV.items()}
        row.update({
            "episode": float(metrics["episodes_per_robot"][m][-1]), "alpha": float(metrics["alpha"][m][-1]),
            "beta": float(beta[m]), "gamma": float(metrics["gamma"][m][-1]), "env_steps": int(env_steps),
            "steps_per_sec": float(steps_per_sec), "wall_time": float(wall), "member": m, "seed": desc[m]["seed"],
            "iteration": int(iteration), "episodes_done": n,
            "eval_MP_r": float(ev["mp"][m]), "eval_e_t": float(ev["error_rate"][m]),
            "eval_w_hat_r": float(ev["implied_wage"][m]), "eval_productivity_parity": float(ev["productivity_parity"][m]),
            "eval_wage_parity": float(ev["wage_parity"][m]), "eval_success_rate": float(ev["success_rate"][m]),
            "eval_return": float(ev["episode_return"][m]), "streak": int(ev["streak"][m]),
            "converged": int(ev["converged"][m] > 0),
        })
        for k in ("step_reward", "step_shaping", "loss_policy", "loss_value", "entropy", "approx_kl", "grad_norm"):
            row[k] = float(np.mean(metrics[k][m]))
        rows.append(row)
    return rows


# the episode economics of a row: measured on the episodes that finished in its chunk (or its evaluation)
_MEASURED = list(_FROM_ENV) + ["eval_MP_r", "eval_e_t", "eval_w_hat_r", "eval_productivity_parity",
                               "eval_wage_parity", "eval_success_rate", "eval_return"]


def carry_forward(rows: list[dict], last: dict) -> None:
    """Fills a member's row in which nothing was measured with the last measured values, in place.

    On CPU sizes (``num_eval_envs = 0``) a chunk may end before any robot finishes an episode; its
    economics are then NaN. Like brax's metrics of the last completed episodes, the row repeats the
    most recent measurement instead; ``stats_iteration`` says which iteration measured it (and
    ``episodes_done = 0`` that nothing new finished). ``last`` maps member -> that measurement.
    """
    for r in rows:
        m = r["member"]
        if not np.isnan(r["eval_productivity_parity"]):
            r["stats_iteration"] = r["iteration"]
            last[m] = {k: r[k] for k in _MEASURED + ["stats_iteration"]}
        elif m in last:
            r.update(last[m])
        else:
            r["stats_iteration"] = -1  # nothing measured yet in this run


def _truncate_csv(path: Path, max_iteration: int) -> dict:
    """Drops rows logged after the checkpoint we resume from (they will be produced again).

    Returns the last measurement per member among the kept rows (for :func:`carry_forward`).
    """
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["iteration"])) <= max_iteration]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    last: dict = {}
    for r in rows:
        if r.get("stats_iteration") not in (None, "", "-1"):
            last[int(r["member"])] = {k: float(r[k]) for k in _MEASURED} | {"stats_iteration": int(float(r["stats_iteration"]))}
    return last


def _progress_line(rows: list[dict], env_steps: int, total: int, sps: float) -> str:
    r = rows[0]
    return (f"steps {env_steps:,}/{total:,}  {sps:,.0f} steps/s  ep/robot {r['episode']:.1f}  "
            f"prod {r['eval_productivity_parity']:.2f}  wage {r['eval_wage_parity']:.2f}  "
            f"return {r['episode_return']:.3g}  success {r['eval_success_rate']:.2f}  streak {r['streak']}")


def export_policy(path: Path, state) -> None:
    """Writes the members' policy/value params and normalizer (msgpack; small) for ``python -m evaluate``."""
    data = {"params": jax.device_get(state.params), "norm": jax.device_get(state.norm)}
    path.write_bytes(serialization.to_bytes(data))


def load_policy(path: Path, template) -> dict:
    return serialization.from_bytes(template, Path(path).read_bytes())


# ----------------------------------------------------------------------------- main entry


_COMPILED: dict = {}


def compiled(cfg: PPOConfig, env, eval_env=None, env_params=None):
    """(make_train result, jit(vmap(init)), jit(vmap(chunk))) for (cfg, env), memoized.

    The jitted functions depend only on ``cfg`` and the env objects (env params are arguments), so
    repeated runs in one process -- a resumed run, tests -- reuse one compilation.
    """
    key = (cfg, id(env), id(eval_env))
    hit = _COMPILED.get(key)
    if hit is None or hit[0] is not env or hit[1] is not eval_env:
        tr = make_train(cfg, env, env_params, eval_env=eval_env)
        hit = (env, eval_env, tr, jax.jit(jax.vmap(tr.init)), {})
        _COMPILED[key] = hit
    return hit[2:]


def chunk_program(cfg: PPOConfig, env, eval_env, state, mesh):
    """jit(vmap(chunk)) whose output state keeps the input's shardings (so the loop never recompiles).

    Memoized per (cfg, env, mesh, state structure and shapes).
    """
    tr, _, progs = compiled(cfg, env, eval_env)
    shardings = jax.tree.map(lambda x: x.sharding, state)
    key = (tuple(d.id for d in mesh.devices.flat), jax.tree.structure(state),
           tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(state)))
    if key not in progs:
        rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        progs[key] = jax.jit(jax.vmap(tr.chunk), donate_argnums=0, out_shardings=(shardings, rep, rep))
    return progs[key]


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


def run_training(cfg: PPOConfig, env, env_params=None, *, out_dir: str | Path | None = None,
                 seeds: Sequence[int] = (0,), sweep: dict | None = None, resume: bool = False,
                 minutes: float | None = None, progress: bool = True, num_devices: int | None = None,
                 max_chunks: int | None = None, run_config: dict | None = None, eval_env=None,
                 log=print, on_chunk=None, checkpoints: bool = True) -> RunResult:
    """Trains ``len(seeds) x prod(len(sweep values))`` members in one compiled program.

    Args:
      cfg: PPO hyper-parameters.
      env: an env following the vpjax contract.
      env_params: base EnvParams (``env.default_params`` if None); econ comes from the config.
      out_dir: run folder (CSV, config.json, checkpoints/, policy.msgpack); None = no files.
      seeds: one member per seed (and per sweep combination).
      sweep: {field: values} over EconParams/EnvParams fields (see :func:`parse_sweep`).
      resume: continue from the newest good checkpoint in ``out_dir/checkpoints``.
      minutes: wall-clock budget; training stops (and saves) at the first chunk past it.
      num_devices: shard the robots over this many local devices (default: all).
      max_chunks: stop after this many chunks in this call (tests simulate a killed run with it).
      run_config: resolved configuration written to ``out_dir/config.json``.
      on_chunk: ``f(rows) -> bool`` called with each chunk's CSV rows; True stops training (saved).
      checkpoints: write orbax checkpoints to ``out_dir/checkpoints`` (the policy file is always written).
    """
    t_start = time.time()
    env_params = env.default_params if env_params is None else env_params
    tr, init_fn, _ = compiled(cfg, env, eval_env, env_params)
    members, keys, desc = build_members(env_params, seeds, sweep)
    mesh = make_mesh(num_devices)
    if cfg.num_envs % mesh.size:
        raise ValueError(f"ppo.num_envs={cfg.num_envs}: must be a multiple of the {mesh.size} devices it is sharded over")
    out = Path(out_dir) if out_dir is not None else None
    csv_path = out / "training_metrics.csv" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        conf = dict(run_config or {})
        conf.update({"ppo": cfg.to_dict(), "members": desc, "econ": econ_to_dict(env_params.econ), "num_devices": mesh.size,
                     "num_iterations": tr.num_iterations, "jax_version": jax.__version__,
                     "backend": jax.default_backend()})
        (out / "config.json").write_text(json.dumps(conf, indent=2, default=str))

    state = init_fn(keys, members)
    start_iter, wall_before, resumed_from = 0, 0.0, None
    if resume and out:
        got = ckpt.restore_latest(out / "checkpoints", jax.device_get(state), log=log)
        if got is not None:
            state, meta = got
            start_iter = int(meta["iteration"])
            wall_before = float(meta["extra"].get("wall_time", 0.0))
            resumed_from = start_iter
            log(f"resumed from {out / 'checkpoints'} at iteration {start_iter}")
        else:
            log(f"--resume: no checkpoint in {out / 'checkpoints'}; starting fresh")
    state = shard_state(state, mesh)
    chunk_fn = chunk_program(cfg, env, eval_env, state, mesh)
    last_measured: dict = {}
    if csv_path is not None:
        if resumed_from is not None:
            last_measured = _truncate_csv(csv_path, start_iter)
        elif csv_path.exists():
            csv_path.unlink()
    beta = np.asarray(jax.device_get(members.econ.beta)).reshape(-1)
    result = RunResult(state=state, resumed_from=resumed_from)
    total_steps = tr.num_iterations * cfg.batch_size
    chunks_left = (tr.num_iterations - start_iter) // cfg.eval_every
    it = start_iter
    done_chunks = 0
    bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        bar.start()
        task = bar.add_task("compiling ...", total=total_steps, completed=start_iter * cfg.batch_size)
    try:
        for _ in range(chunks_left):
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
            if csv_path is not None and jax.process_index() == 0:
                new = not csv_path.exists()
                with csv_path.open("a", newline="") as f:
                    w = csv.DictWriter(f, CSV_COLUMNS)
                    if new:
                        w.writeheader()
                    w.writerows(rows)
            if bar is not None:
                bar.update(task, completed=env_steps, description=_progress_line(rows, env_steps, total_steps, sps))
            converged = all(r["converged"] for r in rows)
            last = it >= tr.num_iterations
            stop = None
            if cfg.early_stop and converged:
                stop = "converged"
            elif minutes is not None and (time.time() - t_start) / 60.0 >= minutes:
                stop = "time budget"
            elif max_chunks is not None and done_chunks >= max_chunks:
                stop = "max_chunks"
            elif on_chunk is not None and on_chunk(rows):
                stop = "callback"
            if out and checkpoints and (last or stop or (cfg.checkpoint_every and done_chunks % cfg.checkpoint_every == 0)):
                ckpt.save(out / "checkpoints", it, state, {"wall_time": wall}, keep=cfg.keep_checkpoints)
            result.converged = converged
            if stop:
                result.stopped = stop
                break
    finally:
        if bar is not None:
            bar.stop()
    result.state = state
    result.chunk_fn = chunk_fn
    result.mesh = mesh
    result.iterations = it
    result.env_steps = it * cfg.batch_size
    result.wall_time = wall_before + time.time() - t_start
    if out and jax.process_index() == 0:
        export_policy(out / "policy.msgpack", state)
        summary = {"iterations": it, "env_steps": result.env_steps, "wall_time": result.wall_time,
                   "stopped": result.stopped, "converged": result.converged, "resumed_from": resumed_from}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return result
