"""The training CSV (``training_metrics.csv``): its columns, one row per member per chunk, and the
carry-forward of the last measured economics into rows where nothing was measured.

The columns are :data:`CSV_COLUMNS`, then one ``reward_extra_<term>`` per extra term of the run's
reward function (:func:`csv_columns`); a resumed run appends with the header its file already has.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jax
import numpy as np

from vpjax import economics as E
from vpjax.cli import write_atomic

from .config import PPOConfig

# The economic columns (ASCII names), then throughput, then extra diagnostics.
ECON_COLUMNS = ["episode", "MP_r", "e_t", "w_hat_r", "wage_parity", "productivity_parity", "reward_total",
                "reward_mp", "reward_error", "reward_wage", "alpha", "beta", "gamma"]
CSV_COLUMNS = ECON_COLUMNS + [
    "env_steps", "steps_per_sec", "wall_time", "member", "seed", "iteration", "episode_return", "episodes_done",
    "eval_MP_r", "eval_e_t", "eval_w_hat_r", "eval_productivity_parity", "eval_wage_parity", "eval_success_rate",
    "eval_return", "streak", "converged", "step_reward", "step_shaping", "loss_policy", "loss_value", "entropy", "approx_kl", "grad_norm",
    "stats_iteration"]
_FROM_ENV = {"MP_r": "mp", "e_t": "error_rate", "w_hat_r": "implied_wage", "wage_parity": "wage_parity",
             "productivity_parity": "productivity_parity", "reward_total": "reward_episode", "reward_mp": "reward_mp",
             "reward_error": "reward_error", "reward_wage": "reward_wage", "episode_return": "episode_return"}


def extra_columns(names) -> list[str]:
    """The reward function's extra terms among ``names`` (``reward_extra_<term>``), sorted."""
    return sorted(k for k in names if k.startswith(E.EXTRA_PREFIX))


def csv_columns(metric_names, base: list[str] = CSV_COLUMNS) -> list[str]:
    """The columns of a run whose env has ``metric_names``: ``base``, then its ``reward_extra_<term>`` terms."""
    return list(base) + [k for k in extra_columns(metric_names) if k not in base]


def chunk_rows(metrics: dict, ev: dict, desc: list[dict], iteration: int, cfg: PPOConfig, env_steps: int,
               steps_per_sec: float, wall: float, beta: np.ndarray) -> list[dict]:
    """One CSV row per member from a chunk's per-iteration metrics [M, eval_every] and evaluation [M].

    The episode economics, ``reward_extra_<term>`` included, are means over the episodes that finished
    in the chunk (NaN when none did; :func:`carry_forward` fills them).
    """
    extras = extra_columns(k[len("sum_"):] for k in metrics if k.startswith("sum_"))
    rows = []
    for m in range(len(desc)):
        n = float(np.sum(metrics["episodes_done"][m]))
        avg = lambda k: float(np.sum(metrics[f"sum_{k}"][m]) / n) if n > 0 else float("nan")  # noqa: E731
        row = {col: avg(src) for col, src in _FROM_ENV.items()} | {k: avg(k) for k in extras}
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
MEASURED = list(_FROM_ENV) + ["eval_MP_r", "eval_e_t", "eval_w_hat_r", "eval_productivity_parity",
                               "eval_wage_parity", "eval_success_rate", "eval_return"]


def measured_columns(columns) -> list[str]:
    """:data:`MEASURED`, then the ``reward_extra_<term>`` columns among ``columns`` (measured like reward_mp)."""
    return MEASURED + extra_columns(columns)


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
            last[m] = {k: r[k] for k in measured_columns(r) + ["stats_iteration"]}
        elif m in last:
            r.update(last[m])
        else:
            r["stats_iteration"] = -1  # nothing measured yet in this run


def file_header(path: Path, columns: list[str]) -> list[str]:
    """The header rows are appended to ``path`` with: ``columns`` for a new file; else the file's own
    header (a resumed run keeps it), followed by any of ``columns`` it lacks."""
    if not path.is_file():
        return list(columns)
    with path.open(newline="") as f:
        head = next(csv.reader(f), None) or []
    return head + [c for c in columns if c not in head]


def truncate_csv(path: Path, max_iteration: int, columns: list[str] = CSV_COLUMNS) -> dict:
    """Drops rows logged after the checkpoint we resume from (they will be produced again).

    The file is rewritten whole or not at all, with :func:`file_header` (its own header, plus any of
    ``columns`` it lacks). Returns the last measurement per member among the kept rows (for
    :func:`carry_forward`).
    """
    if not path.is_file():
        return {}
    header = file_header(path, columns)
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["iteration"])) <= max_iteration]

    def write(fh):
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows)

    write_atomic(path, write)
    last: dict = {}
    measured_cols = measured_columns(header)
    for r in rows:
        if r.get("stats_iteration") not in (None, "", "-1"):
            measured = {k: float(r[k]) if r.get(k) not in (None, "") else math.nan for k in measured_cols}
            last[int(r["member"])] = measured | {"stats_iteration": int(float(r["stats_iteration"]))}
    return last


def progress_line(rows: list[dict], env_steps: int, total: int, sps: float) -> str:
    r = rows[0]
    return (f"steps {env_steps:,}/{total:,}  {sps:,.0f} steps/s  ep/robot {r['episode']:.1f}  "
            f"prod {r['eval_productivity_parity']:.2f}  wage {r['eval_wage_parity']:.2f}  "
            f"return {r['episode_return']:.3g}  success {r['eval_success_rate']:.2f}  streak {r['streak']}")


def append_rows(path: Path, rows: list[dict], columns: list[str] = CSV_COLUMNS) -> None:
    """Appends ``rows`` to the CSV at ``path`` (with the header ``columns`` when the file is new; process 0 only).

    Give an existing file its own header (:func:`file_header`)."""
    if jax.process_index() != 0:
        return
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, columns)
        if new:
            w.writeheader()
        w.writerows(rows)
