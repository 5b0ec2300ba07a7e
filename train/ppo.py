"""Jittable PPO whose rollout computes the economic reward inside ``env.step`` (PureJaxRL style).

``make_train(cfg, env) -> train``; ``train(key)`` is one jittable function that runs the whole
training. The host runner (:mod:`train.runner`) instead calls the pieces that ``make_train``
attaches to ``train`` -- ``train.init``, ``train.chunk`` (``cfg.eval_every`` iterations followed by a
deterministic evaluation) -- so that logging and checkpoints stay outside jit.

The loop is built from small named steps, brax-style::

    training_step = rollout (lax.scan over vmap(AutoReset(env).step)) -> GAE -> update_epochs x sgd_step
    sgd_step      = shuffle -> lax.scan over minibatch_step
    minibatch_step= grad of (clipped PPO + value loss - entropy) -> optax (clip, adam, schedule)

Economics: α and γ come from :func:`vpjax.economics.schedule` evaluated *per robot* at that
robot's number of finished episodes (``info['episodes']``), so the curriculum is the same whatever the
number of parallel robots; they reach ``env.step`` through ``params.econ`` (array leaves), so new
values never recompile. The env params live in the training state, which makes ``--sweep`` a vmap.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from envs.batching import vmap_robots
from vpjax import economics as E

from .config import PPOConfig
from .networks import RunningStats, TanhGaussian, make_networks

# Episode-level env metrics averaged over the episodes that finish in an iteration (the CSV's source).
EPISODE_METRICS = ("mp", "error_rate", "implied_wage", "productivity_parity", "wage_parity", "units", "errors",
                   "attempts", "reward_episode", "reward_mp", "reward_error", "reward_wage")


def auto_reset(env):
    """``envs.wrappers.AutoReset(env)`` when the project provides it, else the contract's semantics here."""
    try:
        from envs.wrappers import AutoReset  # type: ignore
    except Exception:
        return ContractAutoReset(env)
    return AutoReset(env)


class ContractAutoReset:
    """AutoReset as specified in the env contract (fallback used only if envs.wrappers is missing).

    On ``done`` it returns the finishing step's reward/done/metrics with a fresh episode's obs,
    pipeline state and counters; ``prev_mp`` := the finished episode's MPᵣ and ``episodes`` += 1.
    """

    def __init__(self, env):
        self.env = env
        for name in ("observation_size", "action_size", "dt", "episode_length", "default_params"):
            setattr(self, name, getattr(env, name))

    def reset(self, key, params=None):
        return self.env.reset(key, params)

    def step(self, state, action, params=None):
        nxt = self.env.step(state, action, params)
        rng, key = jax.random.split(nxt.info["rng"])
        fresh = self.env.reset(key, params)
        info = {**fresh.info, "prev_mp": nxt.metrics["mp"].astype(fresh.info["prev_mp"].dtype),
                "episodes": nxt.info["episodes"] + 1, "rng": rng,
                "unstable_resets": nxt.info["unstable_resets"]}
        fresh = fresh.replace(info=info)
        done = nxt.done > 0
        pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)  # noqa: E731
        return nxt.replace(pipeline_state=pick(fresh.pipeline_state, nxt.pipeline_state), obs=pick(fresh.obs, nxt.obs),
                           info=pick(fresh.info, nxt.info))


@struct.dataclass
class TrainState:
    """Everything training needs to continue (one member; the runner stacks members on axis 0).

    Attributes:
      params: {'policy', 'value'} flax params.
      opt_state: optax state (its step count drives the learning-rate schedule).
      norm: running observation statistics.
      env_state: batched env state [num_envs, ...].
      env_params: EnvParams of this member (econ sweeps vmap over it).
      ep_return: [num_envs] running undiscounted return of the current episodes.
      key: PRNG key.
      iteration: training iterations done.
      conv: convergence streak over evaluations.
    """

    params: Any
    opt_state: Any
    norm: RunningStats
    env_state: Any
    env_params: Any
    ep_return: jax.Array
    key: jax.Array
    iteration: jax.Array
    conv: E.ConvergenceState


@struct.dataclass
class Transition:
    obs: jax.Array
    raw_action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


def gae(rewards, values, dones, last_value, discount, lam):
    """Generalized advantage estimation.

    Args:
      rewards, values, dones: [T, B]; ``dones[t]`` = 1 when the episode ended at step t (next obs is fresh).
      last_value: [B] value of the observation after the last step.

    Returns:
      (advantages, value targets), both [T, B].
    """

    def body(carry, x):
        adv, next_value = carry
        r, v, d = x
        delta = r + discount * next_value * (1.0 - d) - v
        adv = delta + discount * lam * (1.0 - d) * adv
        return (adv, v), adv

    _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), (rewards, values, dones), reverse=True)
    return adv, adv + values


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


def num_iterations(cfg: PPOConfig, episode_length: int) -> int:
    """Training iterations for ``cfg.total_timesteps`` (or ``cfg.episodes`` per robot), rounded up to chunks."""
    if cfg.episodes > 0:
        iters = math.ceil(cfg.episodes * episode_length / cfg.unroll_length)
    else:
        iters = math.ceil(cfg.total_timesteps / cfg.batch_size)
    chunks = max(1, math.ceil(iters / cfg.eval_every))
    return chunks * cfg.eval_every


def make_train(cfg: PPOConfig, env, env_params=None, eval_env=None) -> Callable:
    """Builds the PPO training function for ``env``.

    Args:
      cfg: PPO hyper-parameters.
      env: an env following the vpjax contract (reset(key, params), step(state, action, params)).
      env_params: default EnvParams for ``train(key)`` (``env.default_params`` if None).
      eval_env: env used for deterministic evaluation (defaults to ``env``).

    Returns:
      ``train(key) -> (TrainState, metrics, eval_metrics)``, jittable, with attributes ``init(key,
      env_params)``, ``training_step(state)``, ``chunk(state)``, ``evaluate(state, key)``,
      ``num_iterations``, ``num_chunks``, ``networks`` and ``distribution``.
    """
    env_params = env.default_params if env_params is None else env_params
    eval_env = env if eval_env is None else eval_env
    wrapped = auto_reset(env)
    policy_net, value_net = make_networks(env.observation_size, env.action_size, cfg.policy_hidden,
                                          cfg.value_hidden, cfg.activation)
    dist = TanhGaussian(cfg.min_std)
    n_iters = num_iterations(cfg, env.episode_length)
    n_chunks = n_iters // cfg.eval_every
    total_updates = n_iters * cfg.update_epochs * cfg.num_minibatches
    if cfg.lr_schedule == "linear":
        lr = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.lr_end_fraction, total_updates)
    elif cfg.lr_schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.learning_rate, total_updates, alpha=cfg.lr_end_fraction)
    else:
        lr = cfg.learning_rate
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))
    norm_on = cfg.normalize_obs

    def policy_logits(params, norm, obs):
        return policy_net.apply(params["policy"], norm.normalize(obs, norm_on))

    def value_fn(params, norm, obs):
        return value_net.apply(params["value"], norm.normalize(obs, norm_on))[..., 0]

    def init(key, env_params=env_params) -> TrainState:
        """Fresh training state of one member. key: PRNG key; env_params: this member's EnvParams."""
        k_pol, k_val, k_env, k_next = jax.random.split(key, 4)
        dummy = jnp.zeros((1, env.observation_size), jnp.float32)
        params = {"policy": policy_net.init(k_pol, dummy), "value": value_net.init(k_val, dummy)}
        env_state = vmap_robots(wrapped.reset, (0, None))(jax.random.split(k_env, cfg.num_envs), env_params)
        return TrainState(params=params, opt_state=optimizer.init(params), norm=RunningStats.init(env.observation_size),
                          env_state=env_state, env_params=env_params,
                          ep_return=jnp.zeros((cfg.num_envs,), jnp.float32), key=k_next,
                          iteration=jnp.zeros((), jnp.int32), conv=E.ConvergenceState.init())

    # ------------------------------------------------------------------ rollout
    def env_step(carry, key):
        """One control step of every robot; the economic reward is computed inside env.step.

        Episode statistics are accumulated per robot in the carry (``acc``: sums over the episodes that
        end in this step, and per-step sums of α, γ and the shaping reward) rather than stacked per step:
        the rollout then writes only what GAE and the update need.
        """
        env_state, ep_return, params, norm, env_params, acc = carry
        logits = policy_logits(params, norm, env_state.obs)
        raw = dist.sample_raw(logits, key)
        logp = dist.log_prob_raw(logits, raw)
        p_b, axes = robot_params(env_params, env_state.info["episodes"], cfg.shaping_anneal_episodes)
        nxt = vmap_robots(wrapped.step, (0, 0, axes))(env_state, dist.postprocess(raw), p_b)
        reward = nxt.reward.astype(jnp.float32)
        done = nxt.done.astype(jnp.float32)
        ep_total = ep_return + reward
        m = nxt.metrics
        econ = env_params.econ
        ended = {k: m[k].astype(jnp.float32) for k in EPISODE_METRICS}
        ended["episode_return"] = ep_total
        ended["parity_ok"] = ((m["productivity_parity"] >= econ.productivity_threshold)
                              & (jnp.abs(m["wage_parity"] - 1.0) <= econ.wage_tolerance)).astype(jnp.float32)
        shaping = m["reward_shaping"].astype(jnp.float32) if "reward_shaping" in m else jnp.zeros_like(reward)
        acc = {**{f"sum_{k}": acc[f"sum_{k}"] + v * done for k, v in ended.items()},
               "episodes_done": acc["episodes_done"] + done,
               "alpha": acc["alpha"] + p_b.econ.alpha.astype(jnp.float32),
               "gamma": acc["gamma"] + p_b.econ.gamma.astype(jnp.float32),
               "reward_shaping": acc["reward_shaping"] + shaping}
        out = (env_state.obs, raw, logp, reward * cfg.reward_scaling, done)
        return (nxt, ep_total * (1.0 - done), params, norm, env_params, acc), out

    def rollout(state: TrainState, key):
        """[T = unroll_length] steps of all robots.

        Returns:
          (env_state, ep_return, Transition [T, B], acc): ``acc`` maps ``sum_<metric>`` (sums over the
          episodes that ended, per robot), ``episodes_done`` and the per-step sums of ``alpha``,
          ``gamma`` and ``reward_shaping`` to [B] arrays. The values are computed after the scan, in
          one batched call over all T x B observations (the same parameters act throughout the rollout).
        """
        keys = jax.random.split(key, cfg.unroll_length)
        zeros = jnp.zeros_like(state.ep_return)
        acc = {f"sum_{k}": zeros for k in EPISODE_METRICS + ("episode_return", "parity_ok")}
        acc.update(episodes_done=zeros, alpha=zeros, gamma=zeros, reward_shaping=zeros)
        carry = (state.env_state, state.ep_return, state.params, state.norm, state.env_params, acc)
        (env_state, ep_return, *_, acc), (obs, raw, logp, reward, done) = jax.lax.scan(env_step, carry, keys)
        value = value_fn(state.params, state.norm, obs)
        traj = Transition(obs=obs, raw_action=raw, logp=logp, value=value, reward=reward, done=done)
        return env_state, ep_return, traj, acc

    # ------------------------------------------------------------------ updates
    def loss_fn(params, norm, mb, key):
        logits = policy_logits(params, norm, mb["obs"])
        value = value_fn(params, norm, mb["obs"])
        logp = dist.log_prob_raw(logits, mb["raw_action"])
        ratio = jnp.exp(logp - mb["logp"])
        adv = mb["adv"]
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv))
        v_loss = 0.5 * jnp.mean((value - mb["target"]) ** 2)
        entropy = jnp.mean(dist.entropy(logits, key))
        total = pg + cfg.value_cost * v_loss - cfg.entropy_cost * entropy
        approx_kl = jnp.mean((ratio - 1.0) - jnp.log(ratio))
        return total, {"loss_policy": pg, "loss_value": v_loss, "entropy": entropy, "approx_kl": approx_kl}

    def minibatch_step(carry, xs):
        params, opt_state, norm = carry
        mb, key = xs
        grads, aux = jax.grad(loss_fn, has_aux=True)(params, norm, mb, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        aux["grad_norm"] = optax.global_norm(grads)
        return (params, opt_state, norm), aux

    def sgd_step(carry, key):
        params, opt_state, norm, batch = carry
        k_perm, k_ent = jax.random.split(key)
        n = cfg.batch_size
        perm = jax.random.permutation(k_perm, n)
        shuffled = jax.tree.map(lambda x: x[perm].reshape((cfg.num_minibatches, n // cfg.num_minibatches) + x.shape[1:]),
                                batch)
        (params, opt_state, norm), aux = jax.lax.scan(
            minibatch_step, (params, opt_state, norm), (shuffled, jax.random.split(k_ent, cfg.num_minibatches)))
        return (params, opt_state, norm, batch), aux

    def training_step(state: TrainState, _=None):
        """Rollout -> GAE -> epochs of minibatch SGD -> normalizer update. Returns (state, iteration metrics)."""
        key, k_roll, k_sgd = jax.random.split(state.key, 3)
        env_state, ep_return, traj, acc = rollout(state, k_roll)
        last_value = value_fn(state.params, state.norm, env_state.obs)
        adv, target = gae(traj.reward, traj.value, traj.done, last_value, cfg.discount, cfg.gae_lambda)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        batch = {"obs": flat(traj.obs), "raw_action": flat(traj.raw_action), "logp": flat(traj.logp),
                 "adv": flat(adv), "target": flat(target)}
        (params, opt_state, _, _), aux = jax.lax.scan(
            sgd_step, (state.params, state.opt_state, state.norm, batch), jax.random.split(k_sgd, cfg.update_epochs))
        norm = state.norm.update(traj.obs) if norm_on else state.norm
        # Episode metrics: sums over the episodes finishing in this iteration, and their count.
        metrics = {k: jnp.sum(v) for k, v in acc.items() if k.startswith("sum_")}
        metrics["episodes_done"] = jnp.sum(acc["episodes_done"])
        steps = cfg.unroll_length * acc["alpha"].shape[0]
        metrics["step_shaping"] = jnp.sum(acc["reward_shaping"]) / steps
        metrics["alpha"] = jnp.sum(acc["alpha"]) / steps
        metrics["gamma"] = jnp.sum(acc["gamma"]) / steps
        metrics["episodes_per_robot"] = jnp.mean(env_state.info["episodes"].astype(jnp.float32))
        metrics["step_reward"] = jnp.mean(traj.reward) / cfg.reward_scaling
        metrics.update({k: jnp.mean(v) for k, v in aux.items()})
        new = state.replace(params=params, opt_state=opt_state, norm=norm, env_state=env_state, ep_return=ep_return,
                            key=key, iteration=state.iteration + 1)
        return new, metrics

    # ------------------------------------------------------------------ evaluation
    def evaluate(state: TrainState, key):
        """Deterministic (policy mode) full episodes of ``cfg.num_eval_envs`` robots, no auto-reset.

        Returns:
          dict of scalars: the episode's economics (mean over robots), its return and the success rate
          (the fraction of robots meeting both parity conditions).
        """
        progress = jnp.mean(state.env_state.info["episodes"].astype(jnp.float32))
        econ = E.with_schedule(state.env_params.econ, progress)
        act = lambda obs: dist.mode(policy_logits(state.params, state.norm, obs))  # noqa: E731
        return evaluate_policy(eval_env, state.env_params.replace(econ=econ), act, key, cfg.num_eval_envs,
                               steps=cfg.eval_steps)

    def chunk(state: TrainState):
        """``cfg.eval_every`` training iterations, then one evaluation and a convergence update."""
        state, metrics = jax.lax.scan(training_step, state, None, length=cfg.eval_every)
        key, k_eval = jax.random.split(state.key)
        if cfg.num_eval_envs > 0:
            ev = evaluate(state, k_eval)
            conv = E.convergence_update(state.conv, ev["productivity_parity"], ev["wage_parity"], state.env_params.econ)
        else:  # judge the training episodes that finished in this chunk (no second env-step program)
            n = jnp.sum(metrics["episodes_done"])
            # NaN (not 0) when no episode finished in this chunk: nothing was measured
            avg = lambda k: jnp.where(n > 0, jnp.sum(metrics[f"sum_{k}"]) / jnp.maximum(n, 1.0), jnp.nan)  # noqa: E731
            ev = {k: avg(k) for k in EPISODE_METRICS}
            ev["episode_return"] = avg("episode_return")
            ev["success_rate"] = avg("parity_ok")
            upd = E.convergence_update(state.conv, ev["productivity_parity"], ev["wage_parity"], state.env_params.econ)
            conv = jax.tree.map(lambda a, b: jnp.where(n > 0, a, b), upd, state.conv)
        ev["streak"] = conv.streak.astype(jnp.float32)
        ev["converged"] = conv.converged.astype(jnp.float32)
        return state.replace(key=key, conv=conv), metrics, ev

    def train(key):
        """Whole training as one jittable function. Returns (state, metrics [chunks, eval_every], evals [chunks])."""
        state = init(key)

        def body_once(state, _):
            stop = state.conv.converged & cfg.early_stop
            shapes = jax.eval_shape(chunk, state)
            skip = lambda s: (s,) + jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes[1:])  # noqa: E731
            new, metrics, ev = jax.lax.cond(stop, skip, chunk, state)
            return new, (metrics, ev)

        state, (metrics, evals) = jax.lax.scan(body_once, state, None, length=n_chunks)
        return state, metrics, evals

    train.init = init
    train.training_step = training_step
    train.chunk = chunk
    train.evaluate = evaluate
    train.rollout = rollout
    train.num_iterations = n_iters
    train.num_chunks = n_chunks
    train.networks = (policy_net, value_net)
    train.distribution = dist
    train.optimizer = optimizer
    train.cfg = cfg
    train.env = env
    return train


def evaluate_policy(env, env_params, act: Callable, key, num_envs: int, return_states: bool = False,
                    steps: int = 0):
    """Runs ``num_envs`` robots for one full episode with ``act(obs [N, obs]) -> actions``, no auto-reset.

    Robots whose episode ends early (instability) are frozen at their last state. ``steps`` > 0 stops
    after that many control steps (the economics are rates over the time worked so far).

    Returns:
      dict of scalars -- the economics of the episode (mean over robots), ``episode_return`` and
      ``success_rate`` (fraction of robots meeting both parity conditions) -- plus, with
      ``return_states``, robot 0's per-step ``pipeline_state.qpos`` [T, nq] (for rendering).
    """
    econ = env_params.econ
    s = vmap_robots(env.reset, (0, None))(jax.random.split(key, num_envs), env_params)

    def body(carry, _):
        s, alive, ret, final = carry
        s2 = vmap_robots(env.step, (0, 0, None))(s, act(s.obs), env_params)
        ret = ret + alive * s2.reward
        final = jax.tree.map(lambda new, old: jnp.where(alive > 0, new, old), s2.metrics, final)
        alive_next = alive * (1.0 - s2.done)
        keep = alive_next > 0
        s = jax.tree.map(lambda new, old: jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), new, old), s2, s)
        rec = None
        if return_states:  # robot 0 only; qpos suffices for MuJoCo rendering
            ps = s2.pipeline_state
            rec = ps.qpos[0] if hasattr(ps, "qpos") else jax.tree.map(lambda x: x[0], ps)
        return (s, alive_next, ret, final), rec

    ones = jnp.ones((num_envs,), jnp.float32)
    (s, _, ret, final), states = jax.lax.scan(body, (s, ones, 0.0 * ones, s.metrics), None,
                                                 length=min(steps, env.episode_length) if steps else env.episode_length)
    ok = (final["productivity_parity"] >= econ.productivity_threshold) & (
        jnp.abs(final["wage_parity"] - 1.0) <= econ.wage_tolerance)
    out = {k: jnp.mean(final[k].astype(jnp.float32)) for k in EPISODE_METRICS}
    out["episode_return"] = jnp.mean(ret)
    out["success_rate"] = jnp.mean(ok.astype(jnp.float32))
    if return_states:
        return out, states
    return out


def policy_fn(cfg: PPOConfig, observation_size: int, action_size: int):
    """Deterministic policy ``act(params, norm, obs) -> action`` for evaluation/rendering outside training."""
    policy_net, _ = make_networks(observation_size, action_size, cfg.policy_hidden, cfg.value_hidden, cfg.activation)
    dist = TanhGaussian(cfg.min_std)

    def act(params, norm, obs):
        return dist.mode(policy_net.apply(params["policy"], norm.normalize(obs, cfg.normalize_obs)))

    return act
