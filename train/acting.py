"""Acting in the env: the training rollout and the deterministic evaluation of a policy.

The rollout is a ``lax.scan`` over ``vmap(AutoReset(env).step)``; the economic reward is computed
inside ``env.step``. α and γ come from :func:`vpjax.economics.schedule` evaluated *per robot* at that
robot's number of finished episodes (``info['episodes']``), so the curriculum is the same whatever the
number of parallel robots; they reach ``env.step`` through ``params.econ`` (array leaves), so new
values never recompile.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from envs.batching import vmap_robots
from vpjax import economics as E

from .config import PPOConfig
from .networks import PPONetworks, make_ppo_networks

# Episode-level env metrics averaged over the episodes that finish in an iteration (the CSV's source).
EPISODE_METRICS = ("mp", "error_rate", "implied_wage", "productivity_parity", "wage_parity", "units", "errors",
                   "attempts", "reward_episode", "reward_mp", "reward_error", "reward_wage")


def episode_metric_names(metric_names) -> tuple[str, ...]:
    """:data:`EPISODE_METRICS`, then the reward function's extra terms among ``metric_names``.

    The extra terms are ``reward_extra_<term>`` (:func:`vpjax.economics.account`); the rollout sums them
    over the episodes that finish, like the other reward parts (the CSV's ``reward_extra_<term>`` columns).
    """
    return EPISODE_METRICS + tuple(k for k in metric_names if k.startswith(E.EXTRA_PREFIX))


@struct.dataclass
class Transition:
    """One rollout, all leaves [T, B, ...]: observation, pre-tanh action, its log-density, value, reward, done."""

    obs: jax.Array
    raw_action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


def _none_like(tree):
    return jax.tree.map(lambda _: None, tree)


def robot_params(env_params, episodes, shaping_anneal_episodes: float):
    """Per-robot env params: α, γ (and the shaping weight) at each robot's progress.

    Args:
      env_params: the member's EnvParams (unbatched).
      episodes: [B] finished episodes per robot.

    Returns:
      (params with batched leaves, the matching vmap in_axes tree).
    """
    econ = env_params.econ
    alpha, gamma = E.schedule(episodes, econ)
    econ_b = econ.replace(alpha=alpha.astype(econ.alpha.dtype), gamma=gamma.astype(econ.gamma.dtype))
    econ_axes = _none_like(econ).replace(alpha=0, gamma=0)
    params = env_params.replace(econ=econ_b)
    axes = _none_like(env_params).replace(econ=econ_axes)
    if shaping_anneal_episodes > 0 and hasattr(env_params, "shaping_weight"):
        frac = jnp.clip(1.0 - episodes / shaping_anneal_episodes, 0.0, 1.0)
        params = params.replace(shaping_weight=(env_params.shaping_weight * frac).astype(env_params.shaping_weight.dtype))
        axes = axes.replace(shaping_weight=0)
    return params, axes


def env_step(env, nets: PPONetworks, cfg: PPOConfig, carry, key):
    """One control step of every robot (the rollout's scan body).

    Episode statistics are accumulated per robot in the carry (``acc``: sums over the episodes that
    end in this step, and per-step sums of α, γ and the shaping reward) rather than stacked per step:
    the rollout then writes only what GAE and the update need.

    Args:
      env: the auto-resetting env.
      carry: (env_state [B], ep_return [B], params, norm, env_params, acc).
      key: PRNG key of this step's action noise.
    """
    env_state, ep_return, params, norm, env_params, acc = carry
    dist = nets.dist
    logits = nets.policy_logits(params, norm, env_state.obs)
    raw = dist.sample_raw(logits, key)
    logp = dist.log_prob_raw(logits, raw)
    p_b, axes = robot_params(env_params, env_state.info["episodes"], cfg.shaping_anneal_episodes)
    nxt = vmap_robots(env.step, (0, 0, axes))(env_state, dist.postprocess(raw), p_b)
    reward = nxt.reward.astype(jnp.float32)
    done = nxt.done.astype(jnp.float32)
    ep_total = ep_return + reward
    m = nxt.metrics
    econ = env_params.econ
    ended = {k: m[k].astype(jnp.float32) for k in episode_metric_names(m)}
    ended["episode_return"] = ep_total
    ended["parity_ok"] = E.parity_holds(m["productivity_parity"], m["wage_parity"], econ).astype(jnp.float32)
    shaping = m["reward_shaping"].astype(jnp.float32) if "reward_shaping" in m else jnp.zeros_like(reward)
    acc = {**{f"sum_{k}": acc[f"sum_{k}"] + v * done for k, v in ended.items()},
           "episodes_done": acc["episodes_done"] + done,
           "alpha": acc["alpha"] + p_b.econ.alpha.astype(jnp.float32),
           "gamma": acc["gamma"] + p_b.econ.gamma.astype(jnp.float32),
           "reward_shaping": acc["reward_shaping"] + shaping}
    out = (env_state.obs, raw, logp, reward * cfg.reward_scaling, done)
    return (nxt, ep_total * (1.0 - done), params, norm, env_params, acc), out


def rollout(env, nets: PPONetworks, cfg: PPOConfig, params, norm, env_state, ep_return, env_params, key):
    """[T = unroll_length] steps of all robots with the stochastic policy.

    Args:
      env: the auto-resetting env; env_state: its batched state [B]; ep_return: [B] running returns.

    Returns:
      (env_state, ep_return, Transition [T, B], acc): ``acc`` maps ``sum_<metric>`` (sums over the
      episodes that ended, per robot, of :func:`episode_metric_names`, ``episode_return`` and
      ``parity_ok``), ``episodes_done`` and the per-step sums of ``alpha``, ``gamma`` and
      ``reward_shaping`` to [B] arrays. The values are computed after the scan, in
      one batched call over all T x B observations (the same parameters act throughout the rollout).
    """
    keys = jax.random.split(key, cfg.unroll_length)
    zeros = jnp.zeros_like(ep_return)
    acc = {f"sum_{k}": zeros for k in episode_metric_names(env_state.metrics) + ("episode_return", "parity_ok")}
    acc.update(episodes_done=zeros, alpha=zeros, gamma=zeros, reward_shaping=zeros)
    carry = (env_state, ep_return, params, norm, env_params, acc)
    (env_state, ep_return, *_, acc), (obs, raw, logp, reward, done) = jax.lax.scan(
        partial(env_step, env, nets, cfg), carry, keys)
    value = nets.value_of(params, norm, obs)
    traj = Transition(obs=obs, raw_action=raw, logp=logp, value=value, reward=reward, done=done)
    return env_state, ep_return, traj, acc


def hold_finished(keep, new, old):
    """``new`` where ``keep`` [N] is true, else ``old``: robots whose episode ended stay at their last state."""
    return jax.tree.map(lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (n.ndim - 1)), n, o), new, old)


def summarize_episodes(metrics: dict, econ) -> dict:
    """Per-robot episode metrics [N] -> their means (a reward plug-in's ``reward_extra_<term>`` included) and
    ``success_rate`` (robots meeting both parity conditions)."""
    out = {k: jnp.mean(metrics[k].astype(jnp.float32)) for k in EPISODE_METRICS}
    out.update({k: jnp.mean(v.astype(jnp.float32)) for k, v in metrics.items() if k.startswith(E.EXTRA_PREFIX)})
    ok = E.parity_holds(metrics["productivity_parity"], metrics["wage_parity"], econ)
    out["success_rate"] = jnp.mean(ok.astype(jnp.float32))
    return out


def curriculum_end(env_params):
    """The params a trained policy is judged with: α and γ at the end of their curriculum."""
    econ = env_params.econ
    return env_params.replace(econ=econ.replace(alpha=econ.alpha_final, gamma=econ.gamma_final))


def evaluate_actor(env, env_params, actor: Callable, key, num_envs: int, return_states: bool = False,
                   steps: int = 0, keys=None, per_robot: bool = False, record: Callable | None = None):
    """Runs ``num_envs`` robots for one full episode with ``actor(states, env_params) -> actions``, no auto-reset.

    The actor sees the whole batched state, so a scripted expert and a policy are judged by the same loop.
    Robots whose episode ends early (instability) are frozen at their last state. ``steps`` > 0 stops
    after that many control steps (the economics are rates over the time worked so far).

    Args:
      keys: [num_envs] the robots' scene keys (default: ``key`` split ``num_envs`` ways).
      per_robot: return each robot's final metrics [num_envs] (and ``episode_return``) instead of means.
      record: ``(states, t) -> pytree`` of the batched states each step acts from (a finished robot's held
        state), e.g. their observations and an expert's labels; stacked over the steps, [T, ...].

    Returns:
      dict of scalars -- the economics of the episode (mean over robots), ``episode_return`` and
      ``success_rate`` (fraction of robots meeting both parity conditions) -- then, with
      ``return_states``, robot 0's per-step ``pipeline_state.qpos`` [T, nq] (for rendering), and with
      ``record`` its stacked outputs (a tuple when there is more than the dict).
    """
    econ = env_params.econ
    keys = jax.random.split(key, num_envs) if keys is None else keys
    s = vmap_robots(env.reset, (0, None))(keys, env_params)

    def body(carry, t):
        s, alive, ret, final = carry
        seen = record(s, t) if record is not None else None
        s2 = vmap_robots(env.step, (0, 0, None))(s, actor(s, env_params), env_params)
        ret = ret + alive * s2.reward
        final = jax.tree.map(lambda new, old: jnp.where(alive > 0, new, old), s2.metrics, final)
        alive_next = alive * (1.0 - s2.done)
        s = hold_finished(alive_next > 0, s2, s)
        rec = None
        if return_states:  # robot 0 only; qpos suffices for MuJoCo rendering
            ps = s2.pipeline_state
            rec = ps.qpos[0] if hasattr(ps, "qpos") else jax.tree.map(lambda x: x[0], ps)
        return (s, alive_next, ret, final), (rec, seen)

    ones = jnp.ones((num_envs,), jnp.float32)
    length = min(steps, env.episode_length) if steps else env.episode_length
    (s, _, ret, final), (states, seen) = jax.lax.scan(body, (s, ones, 0.0 * ones, s.metrics), jnp.arange(length))
    if per_robot:
        out = {**final, "episode_return": ret}
    else:
        out = summarize_episodes(final, econ)
        out["episode_return"] = jnp.mean(ret)
    extra = ((states,) if return_states else ()) + ((seen,) if record is not None else ())
    return (out, *extra) if extra else out


def evaluate_policy(env, env_params, act: Callable, key, num_envs: int, return_states: bool = False,
                    steps: int = 0):
    """:func:`evaluate_actor` with a policy of the observations, ``act(obs [N, obs]) -> actions``."""
    return evaluate_actor(env, env_params, lambda s, _: act(s.obs), key, num_envs, return_states, steps)


def policy_fn(cfg: PPOConfig, observation_size: int, action_size: int):
    """Deterministic policy ``act(params, norm, obs) -> action`` for evaluation/rendering outside training."""
    nets = make_ppo_networks(observation_size, action_size, cfg)

    def act(params, norm, obs):
        return nets.dist.mode(nets.policy_logits(params, norm, obs))

    return act
