"""Economic evaluation of policies in simulation: MPᵣ, e, ŵᵣ and both parities, as a table and a plot.

A policy is a :class:`PolicySpec` whose ``act(states, frames, proprio, key)`` returns a chunk of
actions [N, C, A] for N robots (C = 1 for reactive policies, the execution horizon for the diffusion
policy). Visual policies get the last K rendered frames; the frames are rendered from the simulator
on the host at every step, as a camera would deliver them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.batching import vmap_robots
from vpjax import economics as E

from .sim import Task

REPORT_KEYS = ("mp", "error_rate", "implied_wage", "productivity_parity", "wage_parity", "units", "errors")


@dataclasses.dataclass
class PolicySpec:
    """A policy as the evaluator drives it.

    Attributes:
      name: row label.
      act: ``act(states [N], frames [N, K, H, W, 3] | None, proprio [N, K, P], key) -> [N, C, A]``.
      obs_horizon: K frames/proprio readings the policy sees.
      needs_frames: render frames for it (visual policies).
    """

    name: str
    act: Callable
    obs_horizon: int = 1
    needs_frames: bool = False


def _jitted(task: Task):
    c = task._cache
    if "eval" not in c:
        env = task.env
        c["eval"] = (jax.jit(vmap_robots(env.reset, (0, None))), jax.jit(vmap_robots(env.step, (0, 0, None))),
                     jax.jit(jax.vmap(task.proprio)))
    return c["eval"]


def expert_spec(task: Task, params=None) -> PolicySpec:
    params = task.env.default_params if params is None else params
    fn = jax.jit(lambda s, k: jax.vmap(task.expert, in_axes=(0, 0, None))(s, jax.random.split(k, s.obs.shape[0]),
                                                                           params))
    return PolicySpec("scripted expert", lambda s, f, p, k: fn(s, k)[:, None])


def random_spec(task: Task) -> PolicySpec:
    a = task.action_size
    return PolicySpec("random", lambda s, f, p, k: jax.random.uniform(k, (s.obs.shape[0], 1, a), minval=-1.0,
                                                                       maxval=1.0))


def rollout(task: Task, spec: PolicySpec, episodes: int, seed: int = 10_000, size: int = 64, steps: int | None = None,
            params=None, record: bool = False, action_noise: float = 0.0):
    """Runs ``episodes`` robots for one episode each.

    Args:
      task: the adapter; spec: the policy; episodes: N robots in parallel; seed: evaluation seed (its
        scenes differ from the training seeds); size: frame size for visual policies; steps: episode
        length (default the env's); params: EnvParams; record: also return obs [T, N, O] and the policy's
        actions [T, N, A]; action_noise: Gaussian noise added to executed actions (data collection only).

    Returns:
      dict of final-step metrics, each [N] (plus "obs", "actions" when ``record``).
    """
    env = task.env
    params = env.default_params if params is None else params
    steps = int(steps or env.episode_length)
    reset, step, proprio_fn = _jitted(task)
    key = jax.random.PRNGKey(seed)
    key, k_reset = jax.random.split(key)
    s = reset(jax.random.split(k_reset, episodes), params)
    k_h = spec.obs_horizon
    prop = np.asarray(proprio_fn(s))
    p_hist = np.repeat(prop[:, None], k_h, 1)
    f_hist = None
    if spec.needs_frames:
        f0 = task.render(s, size)
        f_hist = np.repeat(f0[:, None], k_h, 1)
    queue, qi = None, 0
    obs_log, act_log = [], []
    for _ in range(steps):
        if queue is None or qi >= queue.shape[1]:
            key, sub = jax.random.split(key)
            queue, qi = np.asarray(spec.act(s, f_hist, p_hist, sub)), 0
        a = queue[:, qi]
        qi += 1
        if record:
            obs_log.append(np.asarray(s.obs))
            act_log.append(a)
        if action_noise > 0:
            key, sub = jax.random.split(key)
            a = np.clip(a + action_noise * np.asarray(jax.random.normal(sub, a.shape)), -1.0, 1.0)
        s = step(s, jnp.asarray(a, jnp.float32), params)
        p_hist = np.concatenate([p_hist[:, 1:], np.asarray(proprio_fn(s))[:, None]], 1)
        if spec.needs_frames:
            f_hist = np.concatenate([f_hist[:, 1:], task.render(s, size)[:, None]], 1)
    out = {k: np.asarray(s.metrics[k], np.float64) for k in REPORT_KEYS}
    if record:
        out["obs"] = np.stack(obs_log)
        out["actions"] = np.stack(act_log)
    return out


def summarize(name: str, metrics: dict, econ: E.EconParams) -> dict:
    """Means over episodes, the std of MPᵣ, and the fraction of robots at both parities."""
    row = {"policy": name, "episodes": int(metrics["mp"].shape[0])}
    for k in REPORT_KEYS:
        row[k] = float(np.mean(metrics[k]))
    row["mp_std"] = float(np.std(metrics["mp"]))
    ok = np.asarray(E.parity_holds(metrics["productivity_parity"], metrics["wage_parity"], econ))
    row["parity_rate"] = float(np.mean(ok))
    return row


def evaluate(task: Task, specs: Sequence[PolicySpec], episodes: int = 4, seed: int = 10_000, size: int = 64,
             steps: int | None = None, progress: Callable[[str], None] | None = None) -> list[dict]:
    """One summary row per policy (same scenes for every policy: the same evaluation seed)."""
    econ = task.env.default_params.econ
    rows = []
    for spec in specs:
        if progress:
            progress(spec.name)
        rows.append(summarize(spec.name, rollout(task, spec, episodes, seed, size, steps), econ))
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The results as a markdown table (MPᵣ in units/h, ŵᵣ in $/h)."""
    head = ("| policy | MPᵣ (units/h) | e | ŵᵣ ($/h) | productivity parity | wage parity | units | errors | "
            "robots at parity |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['policy']} | {r['mp']:.1f} ± {r['mp_std']:.1f} | {r['error_rate']:.3f} | {r['implied_wage']:.2f} | "
        f"{r['productivity_parity']:.3f} | {r['wage_parity']:.3f} | {r['units']:.2f} | {r['errors']:.2f} | "
        f"{r['parity_rate']:.2f} |\n" for r in rows)
    return head + body


def plot(rows: Sequence[dict], path: str, title: str = "") -> str:
    """Bar chart of productivity and wage parity per policy (PNG), with the parity line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["policy"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 3.6))
    ax.bar(x - 0.2, [r["productivity_parity"] for r in rows], 0.4, label="productivity parity MPᵣ/MPₕ")
    ax.bar(x + 0.2, [r["wage_parity"] for r in rows], 0.4, label="wage parity ŵᵣ/wₕ")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("parity")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
