"""Jittable PPO whose rollout computes the economic reward inside ``env.step`` (PureJaxRL style).

``make_train(cfg, env) -> PPOTrain``; ``PPOTrain.train(key)`` is one jittable function that runs the
whole training. The host runner (:mod:`train.runner`) instead calls its pieces -- ``init``, ``chunk``
(``cfg.eval_every`` iterations followed by a deterministic evaluation) -- so that logging and
checkpoints stay outside jit.

The loop is built from small named, module-level steps (brax splits them the same way: acting,
losses, networks)::

    training_step = acting.rollout -> losses.gae -> update_epochs x sgd_step
    sgd_step      = shuffle -> lax.scan over minibatch_step
    minibatch_step= grad of losses.ppo_loss -> optax (clip, adam, schedule)

The env params live in the training state, which makes ``--sweep`` a vmap (see :mod:`train.acting`
for how α and γ reach ``env.step``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from envs.batching import vmap_robots
from envs.wrappers import AutoReset
from vpjax import economics as E

from .acting import EPISODE_METRICS, Transition, evaluate_policy, policy_fn, robot_params, rollout  # noqa: F401
from .config import PPOConfig
from .losses import anchor_coefficient, gae, ppo_loss  # noqa: F401
from .networks import PPONetworks, RunningStats, make_ppo_networks


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
      anchor: None, or ``{'policy': params, 'norm': RunningStats}`` of the initial policy that the
        imitation anchor keeps the policy near (only when ``cfg.anchor_coef > 0``).
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
    anchor: Any = None


def num_iterations(cfg: PPOConfig, episode_length: int) -> int:
    """Training iterations for ``cfg.total_timesteps`` (or ``cfg.episodes`` per robot), rounded up to chunks."""
    if cfg.episodes > 0:
        iters = math.ceil(cfg.episodes * episode_length / cfg.unroll_length)
    else:
        iters = math.ceil(cfg.total_timesteps / cfg.batch_size)
    chunks = max(1, math.ceil(iters / cfg.eval_every))
    return chunks * cfg.eval_every


def make_optimizer(cfg: PPOConfig, total_updates: int) -> optax.GradientTransformation:
    """Global-norm clipping then Adam with ``cfg.lr_schedule`` over ``total_updates`` minibatch steps."""
    if cfg.lr_schedule == "linear":
        lr = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.lr_end_fraction, total_updates)
    elif cfg.lr_schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.learning_rate, total_updates, alpha=cfg.lr_end_fraction)
    else:
        lr = cfg.learning_rate
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))


class Learner(NamedTuple):
    """The fixed pieces every training step uses (static: closed over by jit, never traced)."""

    cfg: PPOConfig
    nets: PPONetworks
    optimizer: optax.GradientTransformation
    env: Any  # the auto-resetting training env
    eval_env: Any  # the env of deterministic evaluations (no auto-reset)


def init_state(learner: Learner, key, env_params) -> TrainState:
    """Fresh training state of one member. key: PRNG key; env_params: this member's EnvParams."""
    cfg, nets, env = learner.cfg, learner.nets, learner.env
    k_pol, k_val, k_env, k_next = jax.random.split(key, 4)
    dummy = jnp.zeros((1, env.observation_size), jnp.float32)
    params = {"policy": nets.policy.init(k_pol, dummy), "value": nets.value.init(k_val, dummy)}
    env_state = vmap_robots(env.reset, (0, None))(jax.random.split(k_env, cfg.num_envs), env_params)
    norm = RunningStats.init(env.observation_size)
    anchor = {"policy": params["policy"], "norm": norm} if cfg.anchor_coef > 0 else None
    return TrainState(params=params, opt_state=learner.optimizer.init(params), norm=norm,
                      env_state=env_state, env_params=env_params,
                      ep_return=jnp.zeros((cfg.num_envs,), jnp.float32), key=k_next,
                      iteration=jnp.zeros((), jnp.int32), conv=E.ConvergenceState.init(), anchor=anchor)


class Update(NamedTuple):
    """What this iteration's minibatch steps share: the learner, the anchor and the warm-up flag."""

    learner: Learner
    anchor: Any  # None or {'policy', 'norm'} of π_init
    anchor_coef: Any  # [] weight of KL(π_init || π) at this iteration
    critic_only: Any  # None, or [] bool: critic warm-up (the policy's gradient is zeroed)


def minibatch_step(up: Update, carry, xs):
    """One optax step on one minibatch. carry: (params, opt_state, norm); xs: (minibatch, PRNG key)."""
    params, opt_state, norm = carry
    mb, key = xs
    cfg = up.learner.cfg
    grads, aux = jax.grad(ppo_loss, argnums=2, has_aux=True)(up.learner.nets, cfg, params, norm, mb, key,
                                                             up.anchor, up.anchor_coef)
    if up.critic_only is not None:  # zero gradients leave Adam's moments, hence the policy, unchanged
        grads = {**grads, "policy": jax.tree.map(lambda g: jnp.where(up.critic_only, jnp.zeros_like(g), g),
                                                 grads["policy"])}
    updates, opt_state = up.learner.optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    aux["grad_norm"] = optax.global_norm(grads)
    return (params, opt_state, norm), aux


def sgd_step(up: Update, carry, key):
    """One epoch: shuffle the batch [N, ...] into ``num_minibatches`` and scan :func:`minibatch_step`."""
    params, opt_state, norm, batch = carry
    cfg = up.learner.cfg
    k_perm, k_ent = jax.random.split(key)
    n = cfg.batch_size
    perm = jax.random.permutation(k_perm, n)
    shuffled = jax.tree.map(lambda x: x[perm].reshape((cfg.num_minibatches, n // cfg.num_minibatches) + x.shape[1:]),
                            batch)
    (params, opt_state, norm), aux = jax.lax.scan(
        partial(minibatch_step, up), (params, opt_state, norm), (shuffled, jax.random.split(k_ent, cfg.num_minibatches)))
    return (params, opt_state, norm, batch), aux


def _iteration_metrics(cfg: PPOConfig, env_state, traj: Transition, acc: dict, aux: dict) -> dict:
    """Scalars of one iteration: sums over the episodes finishing in it and their count, means of the rest."""
    metrics = {k: jnp.sum(v) for k, v in acc.items() if k.startswith("sum_")}
    metrics["episodes_done"] = jnp.sum(acc["episodes_done"])
    steps = cfg.unroll_length * acc["alpha"].shape[0]
    metrics["step_shaping"] = jnp.sum(acc["reward_shaping"]) / steps
    metrics["alpha"] = jnp.sum(acc["alpha"]) / steps
    metrics["gamma"] = jnp.sum(acc["gamma"]) / steps
    metrics["episodes_per_robot"] = jnp.mean(env_state.info["episodes"].astype(jnp.float32))
    metrics["step_reward"] = jnp.mean(traj.reward) / cfg.reward_scaling
    metrics.update({k: jnp.mean(v) for k, v in aux.items()})
    return metrics


def training_step(learner: Learner, state: TrainState, _=None):
    """Rollout -> GAE -> epochs of minibatch SGD -> normalizer update. Returns (state, iteration metrics)."""
    cfg, nets = learner.cfg, learner.nets
    key, k_roll, k_sgd = jax.random.split(state.key, 3)
    env_state, ep_return, traj, acc = rollout(learner.env, nets, cfg, state.params, state.norm, state.env_state,
                                              state.ep_return, state.env_params, k_roll)
    last_value = nets.value_of(state.params, state.norm, env_state.obs)
    adv, target = gae(traj.reward, traj.value, traj.done, last_value, cfg.discount, cfg.gae_lambda)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    batch = {"obs": flat(traj.obs), "raw_action": flat(traj.raw_action), "logp": flat(traj.logp),
             "adv": flat(adv), "target": flat(target)}
    critic_only = state.iteration < cfg.critic_warmup_iterations if cfg.critic_warmup_iterations > 0 else None
    up = Update(learner, state.anchor, anchor_coefficient(cfg, state.iteration), critic_only)
    (params, opt_state, _, _), aux = jax.lax.scan(
        partial(sgd_step, up), (state.params, state.opt_state, state.norm, batch), jax.random.split(k_sgd, cfg.update_epochs))
    norm = state.norm.update(traj.obs) if cfg.normalize_obs else state.norm
    if critic_only is not None:  # the warm-up judges the initial policy as it is: its normalizer stays too
        norm = jax.tree.map(lambda old, new: jnp.where(critic_only, old, new), state.norm, norm)
    metrics = _iteration_metrics(cfg, env_state, traj, acc, aux)
    new = state.replace(params=params, opt_state=opt_state, norm=norm, env_state=env_state, ep_return=ep_return,
                        key=key, iteration=state.iteration + 1)
    return new, metrics


def evaluate(learner: Learner, state: TrainState, key):
    """Deterministic (policy mode) full episodes of ``cfg.num_eval_envs`` robots, no auto-reset.

    Returns:
      dict of scalars: the episode's economics (mean over robots), its return and the success rate
      (the fraction of robots meeting both parity conditions).
    """
    cfg, nets = learner.cfg, learner.nets
    progress = jnp.mean(state.env_state.info["episodes"].astype(jnp.float32))
    econ = E.with_schedule(state.env_params.econ, progress)
    act = lambda obs: nets.dist.mode(nets.policy_logits(state.params, state.norm, obs))  # noqa: E731
    return evaluate_policy(learner.eval_env, state.env_params.replace(econ=econ), act, key, cfg.num_eval_envs,
                           steps=cfg.eval_steps)


def _judge_training_episodes(state: TrainState, metrics: dict):
    """Evaluation dict and convergence from the training episodes that finished in a chunk.

    Used when ``num_eval_envs = 0`` (no second env-step program to compile). A chunk in which no
    episode finished measured nothing: its economics are NaN and the convergence state is kept.
    """
    n = jnp.sum(metrics["episodes_done"])
    avg = lambda k: jnp.where(n > 0, jnp.sum(metrics[f"sum_{k}"]) / jnp.maximum(n, 1.0), jnp.nan)  # noqa: E731
    ev = {k: avg(k) for k in EPISODE_METRICS}
    ev["episode_return"] = avg("episode_return")
    ev["success_rate"] = avg("parity_ok")
    upd = E.convergence_update(state.conv, ev["productivity_parity"], ev["wage_parity"], state.env_params.econ)
    conv = jax.tree.map(lambda a, b: jnp.where(n > 0, a, b), upd, state.conv)
    return ev, conv


def chunk(learner: Learner, state: TrainState):
    """``cfg.eval_every`` training iterations, then one evaluation and a convergence update.

    Returns:
      (state, metrics {name: [eval_every]}, evaluation {name: []}).
    """
    cfg = learner.cfg
    state, metrics = jax.lax.scan(partial(training_step, learner), state, None, length=cfg.eval_every)
    key, k_eval = jax.random.split(state.key)
    if cfg.num_eval_envs > 0:
        ev = evaluate(learner, state, k_eval)
        conv = E.convergence_update(state.conv, ev["productivity_parity"], ev["wage_parity"], state.env_params.econ)
    else:
        ev, conv = _judge_training_episodes(state, metrics)
    ev["streak"] = conv.streak.astype(jnp.float32)
    ev["converged"] = conv.converged.astype(jnp.float32)
    return state.replace(key=key, conv=conv), metrics, ev


def train_all(learner: Learner, env_params, num_chunks: int, key):
    """Whole training as one jittable function. Returns (state, metrics [chunks, eval_every], evals [chunks])."""
    state = init_state(learner, key, env_params)
    step = partial(chunk, learner)

    def body_once(state, _):
        stop = state.conv.converged & learner.cfg.early_stop
        shapes = jax.eval_shape(step, state)
        skip = lambda s: (s,) + jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes[1:])  # noqa: E731
        new, metrics, ev = jax.lax.cond(stop, skip, step, state)
        return new, (metrics, ev)

    state, (metrics, evals) = jax.lax.scan(body_once, state, None, length=num_chunks)
    return state, metrics, evals


class PPOTrain(NamedTuple):
    """What :func:`make_train` builds: the jittable pieces of PPO for one env and config.

    Attributes:
      init: ``(key, env_params=default) -> TrainState`` of one member.
      training_step: ``(state, _=None) -> (state, metrics)``, one iteration.
      chunk: ``state -> (state, metrics [eval_every], evaluation)``.
      evaluate: ``(state, key) -> evaluation dict``.
      rollout: ``(state, key) -> (env_state, ep_return, Transition [T, B], acc)``.
      num_iterations, num_chunks: the training's length.
      networks: the :class:`PPONetworks`; distribution: its action distribution.
      optimizer: the optax transformation; cfg, env: what it was built for.
      train: ``key -> (state, metrics [chunks, eval_every], evals [chunks])``, the whole training.
    """

    init: Callable
    training_step: Callable
    chunk: Callable
    evaluate: Callable
    rollout: Callable
    num_iterations: int
    num_chunks: int
    networks: PPONetworks
    distribution: Any
    optimizer: optax.GradientTransformation
    cfg: PPOConfig
    env: Any
    train: Callable


def make_train(cfg: PPOConfig, env, env_params=None, eval_env=None) -> PPOTrain:
    """Builds PPO's training pieces for ``env``.

    Args:
      cfg: PPO hyper-parameters.
      env: an env following the vpjax contract (reset(key, params), step(state, action, params)).
      env_params: default EnvParams for ``init`` and ``train`` (``env.default_params`` if None).
      eval_env: env used for deterministic evaluation (defaults to ``env``).
    """
    env_params = env.default_params if env_params is None else env_params
    n_iters = num_iterations(cfg, env.episode_length)
    n_chunks = n_iters // cfg.eval_every
    nets = make_ppo_networks(env.observation_size, env.action_size, cfg)
    optimizer = make_optimizer(cfg, n_iters * cfg.update_epochs * cfg.num_minibatches)
    learner = Learner(cfg=cfg, nets=nets, optimizer=optimizer, env=AutoReset(env),
                      eval_env=env if eval_env is None else eval_env)

    def init(key, env_params=env_params) -> TrainState:
        return init_state(learner, key, env_params)

    def rollout_of(state: TrainState, key):
        return rollout(learner.env, nets, cfg, state.params, state.norm, state.env_state, state.ep_return,
                       state.env_params, key)

    return PPOTrain(init=init, training_step=partial(training_step, learner), chunk=partial(chunk, learner),
                    evaluate=partial(evaluate, learner), rollout=rollout_of, num_iterations=n_iters,
                    num_chunks=n_chunks, networks=nets, distribution=nets.dist, optimizer=optimizer, cfg=cfg,
                    env=env, train=partial(train_all, learner, env_params, n_chunks))
