"""Imitation from the scripted experts: demonstrations, behaviour cloning and DAgger, in JAX.

The student is PPO's own policy network and observation normalizer (:func:`train.networks.make_networks`,
:class:`train.networks.RunningStats`), so ``python -m train --init RUN`` continues from it with PPO and
no distillation step.

One DAgger round (:func:`make_imitation` builds the jitted pieces)::

    collect : num_envs robots -> lax.scan over rollout_steps:
              the expert labels the state; the student (deterministic) or, with probability β per robot
              and step, the expert acts; (obs, expert action) rows go into a fixed-size device buffer.
              A robot whose episode is not over continues it in the next round, and one whose episode
              ended starts a fresh scene: with rollout_steps shorter than the episode, the rounds
              cover every part of it (with 3,000 of 6,000 steps, round 1 the first half of 32 scenes,
              round 2 their second half), not only its beginning
    fit     : sgd_steps minibatches drawn from the whole buffer (rows re-weighted by how rare their
              expert action is, so grasps and releases are not drowned by "hold still in the sink")

β follows ``beta_schedule`` (one value per round, the last repeated): a round with β = 1 is a round of
pure demonstrations, so ``--algorithm bc`` is DAgger with β ≡ 1. The collection of a β = 0 round is the
student acting alone (on episodes it started, or continued from the previous round's policy, on scenes no
evaluation uses), which the run records as its learning curve: the economics of each robot's episode so
far. The final evaluation uses separate held-out scenes, whole episodes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from envs.batching import vmap_robots
from vpjax.schema import FieldError

from .acting import evaluate_actor, hold_finished, summarize_episodes
from .networks import RunningStats, TanhGaussian, make_networks

ALGORITHMS = ("dagger", "bc")
SELECT = ("last", "best")  # which round's student a run exports (ImitationConfig.select)
LOSSES = ("mse", "l1")  # the imitation loss on the policy's mode (ImitationConfig.loss)


@dataclasses.dataclass(frozen=True)
class ImitationConfig:
    """Hyper-parameters of behaviour cloning and DAgger (the ``imitation`` config section).

    Attributes:
      algorithm: "dagger" (the student acts, the expert labels) or "bc" (the expert acts: β ≡ 1).
      rounds: collect + fit rounds.
      num_envs: robots collected per round (their episodes continue across rounds).
      rollout_steps: control steps per robot per round (0 = one whole episode; at most one episode). A
        robot's episode continues across rounds until it ends, so a value that divides the episode
        length wastes no steps.
      beta_schedule: β of each round (probability that the expert's action is executed); the last value
        repeats. Round 0 at β = 1 is a round of demonstrations.
      sgd_steps: minibatch updates per round (on the whole aggregated buffer).
      batch_size: rows per minibatch.
      learning_rate: Adam step size; ``lr_decay`` multiplies it each round.
      lr_decay: per-round learning-rate factor.
      balance: exponent of the rarity weighting: a row of an expert-action bin holding n rows weighs n^-balance
        (0 = uniform sampling).
      keyframe_weight: extra weight of a row whose expert action changed since the robot's previous step:
        the row weighs 1 + keyframe_weight * min(1, max |Δ action|) (see :func:`keyframe_weights`; 0 = off).
        The decisions of a phase machine (start the descent, close the hand, let go) are single steps
        among long stretches of steady motion; a student that misses one waits forever.
      loss: "mse" (squared error of the policy's mode against the expert's action) or "l1" (absolute error).
        Where nearby states carry different labels (move on, or hold still), the squared error's optimum is
        their mean, a small action the robot can stall on; the absolute error's is their median, one of
        the labels (ACT, Zhao et al. 2023, found L1 more precise for fine manipulation).
      init_std: the standard deviation the policy's scale head is trained toward: PPO's exploration noise
        when it continues from the student.
      capacity: buffer rows (0 = every row of every round).
      num_eval_envs: held-out robots of the final evaluation (and of each ``eval_every`` evaluation).
      eval_every: evaluate on the held-out scenes every this many rounds (0 = after the last round only).
      select: which round's student the run exports: "last", or "best": the one with the highest MPᵣ on the
        held-out (validation) scenes among the ``eval_every`` evaluations (ties: the lower error rate), then
        reported on separate test scenes that selection never saw. A DAgger student's result swings between
        rounds; early stopping on a validation set keeps the good one.
      seed: PRNG seed of the run.
    """

    algorithm: str = "dagger"
    rounds: int = 8
    num_envs: int = 16
    rollout_steps: int = 0
    beta_schedule: tuple[float, ...] = (1.0, 0.5, 0.25, 0.0)
    sgd_steps: int = 4000
    batch_size: int = 1024
    learning_rate: float = 1e-3
    lr_decay: float = 1.0
    balance: float = 0.5
    keyframe_weight: float = 0.0
    loss: str = "mse"
    init_std: float = 0.1
    capacity: int = 0
    num_eval_envs: int = 16
    eval_every: int = 0
    select: str = "last"
    seed: int = 0

    def __post_init__(self):
        checks = [
            ("algorithm", self.algorithm in ALGORITHMS, f"one of {', '.join(ALGORITHMS)}"),
            ("rounds", self.rounds >= 1, "must be >= 1"),
            ("num_envs", self.num_envs >= 1, "must be >= 1"),
            ("rollout_steps", self.rollout_steps >= 0, "must be >= 0"),
            ("beta_schedule", len(self.beta_schedule) >= 1 and all(0.0 <= b <= 1.0 for b in self.beta_schedule),
             "values in [0, 1], at least one"),
            ("sgd_steps", self.sgd_steps >= 0, "must be >= 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("lr_decay", 0 < self.lr_decay <= 1, "must be in (0, 1]"),
            ("balance", 0.0 <= self.balance <= 1.0, "must be in [0, 1]"),
            ("keyframe_weight", self.keyframe_weight >= 0.0, "must be >= 0"),
            ("loss", self.loss in LOSSES, f"one of {', '.join(LOSSES)}"),
            ("init_std", self.init_std > 0, "must be > 0"),
            ("capacity", self.capacity >= 0, "must be >= 0"),
            ("num_eval_envs", self.num_eval_envs >= 0, "must be >= 0"),
            ("eval_every", self.eval_every >= 0, "must be >= 0"),
            ("select", self.select in SELECT, f"one of {', '.join(SELECT)}"),
            ("select", self.select == "last" or self.num_eval_envs > 0,
             "best needs held-out evaluations (num_eval_envs > 0)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise FieldError("imitation", name, getattr(self, name), rule)

    def steps_per_round(self, episode_length: int) -> int:
        """Control steps each robot is collected for per round: ``rollout_steps``, at most one episode."""
        return min(self.rollout_steps or episode_length, episode_length)

    def beta(self, round_index: int) -> float:
        """β of round ``round_index`` (1 for every round of ``bc``)."""
        if self.algorithm == "bc":
            return 1.0
        return float(self.beta_schedule[min(round_index, len(self.beta_schedule) - 1)])

    def replace(self, **kw) -> "ImitationConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["beta_schedule"] = list(self.beta_schedule)
        return d


@struct.dataclass
class Buffer:
    """Aggregated (observation, expert action) rows on the device, filled as a ring.

    Attributes:
      obs: [capacity, obs]; act: [capacity, action]; valid: [capacity] 0 for a row never written, else the
        row's sampling weight (1, or its keyframe weight);
      ptr: [] next row to write; size: [] rows written (at most capacity).
    """

    obs: jax.Array
    act: jax.Array
    valid: jax.Array
    ptr: jax.Array
    size: jax.Array

    @classmethod
    def init(cls, capacity: int, obs_size: int, action_size: int) -> "Buffer":
        return cls(obs=jnp.zeros((capacity, obs_size), jnp.float32), act=jnp.zeros((capacity, action_size), jnp.float32),
                   valid=jnp.zeros((capacity,), jnp.float32), ptr=jnp.zeros((), jnp.int32),
                   size=jnp.zeros((), jnp.int32))

    def add(self, obs: jax.Array, act: jax.Array, valid: jax.Array) -> "Buffer":
        """Appends M rows (``obs`` [M, obs], ``act`` [M, action], ``valid`` [M]); the oldest are overwritten."""
        cap = self.obs.shape[0]
        m = obs.shape[0]
        if m > cap:
            raise ValueError(f"imitation buffer: {m} rows per round exceed its capacity {cap}")
        idx = (self.ptr + jnp.arange(m)) % cap
        return Buffer(obs=self.obs.at[idx].set(obs.astype(jnp.float32)), act=self.act.at[idx].set(act),
                      valid=self.valid.at[idx].set(valid), ptr=(self.ptr + m) % cap,
                      size=jnp.minimum(self.size + m, cap))


@struct.dataclass
class ImitationState:
    """Everything an imitation run needs to continue (checkpointed whole).

    Attributes:
      params: {'policy', 'value'} flax params (the value net is PPO's, untouched here, so the run
        folder's policy file has PPO's layout).
      opt_state: Adam state of the policy params.
      norm: observation statistics of every collected row.
      buffer: the aggregated dataset.
      key: PRNG key.
      round: rounds done.
      envs: the collecting robots' env states [num_envs] (their episodes continue in the next round).
      alive: [num_envs] 1 where that robot's episode is not over; 0 starts a fresh scene.
    """

    params: Any
    opt_state: Any
    norm: RunningStats
    buffer: Buffer
    key: jax.Array
    round: jax.Array
    envs: Any
    alive: jax.Array


def action_bins(act: jax.Array, num_bins: int = 4096) -> jax.Array:
    """[N, A] actions in [-1, 1] -> [N] bin ids: each dimension cut into thirds (-1/3, 1/3), then hashed."""
    level = jnp.digitize(act, jnp.array([-1.0 / 3.0, 1.0 / 3.0])).astype(jnp.int32)  # [N, A] in {0, 1, 2}
    powers = (3 ** jnp.arange(act.shape[-1], dtype=jnp.int32)) % num_bins
    return jnp.sum(level * powers, axis=-1) % num_bins


def keyframe_weights(labels: jax.Array, first: jax.Array, weight: float) -> jax.Array:
    """[T, N] row weights of one round's labels [T, N, A]: 1 + weight * min(1, max_a |a_t - a_{t-1}|).

    ``first`` [N, A] is each robot's label before the round's first step (its own first label: change 0).
    """
    prev = jnp.concatenate([first[None], labels[:-1]], axis=0)
    change = jnp.minimum(1.0, jnp.max(jnp.abs(labels - prev), axis=-1))
    return 1.0 + weight * change


def sample_weights(buf: Buffer, balance: float) -> jax.Array:
    """[capacity] sampling weights: each row's stored weight (``valid``: 0 for rows never written, else 1 or its
    keyframe weight) times (rows in its action bin)^-balance."""
    if balance == 0.0:
        return buf.valid
    bins = action_bins(buf.act)
    counts = jax.ops.segment_sum((buf.valid > 0).astype(jnp.float32), bins, num_segments=4096)
    return buf.valid * jnp.maximum(counts[bins], 1.0) ** (-balance)


def bc_loss(policy_net, dist: TanhGaussian, policy_params, norm: RunningStats, obs, act, normalize: bool,
            init_std: float, kind: str = "mse"):
    """Error of the policy's mode against the expert's action, plus a pull of its scale to init_std.

    Args:
      obs: [M, obs]; act: [M, action] expert actions in [-1, 1].
      kind: "mse" (squared error) or "l1" (absolute error; see :class:`ImitationConfig`).

    Returns:
      (loss, {'bc_mse', 'bc_l1', 'bc_std'}): both errors are reported whichever one is minimized.
    """
    logits = policy_net.apply(policy_params, norm.normalize(obs, normalize))
    loc, scale = dist.split(logits)
    err = jnp.tanh(loc) - act
    mse, l1 = jnp.mean(err ** 2), jnp.mean(jnp.abs(err))
    std_loss = jnp.mean((jnp.log(scale) - jnp.log(init_std)) ** 2)
    fit = {"mse": mse, "l1": l1}[kind]
    return fit + 1e-2 * std_loss, {"bc_mse": mse, "bc_l1": l1, "bc_std": jnp.mean(scale)}


class Imitation(NamedTuple):
    """The jitted-ready pieces of an imitation run (see :func:`make_imitation`)."""

    init: Callable  # (key) -> ImitationState
    collect: Callable  # (state, beta, env_params) -> (state, rollout metrics)
    fit: Callable  # (state, learning_rate) -> (state, loss metrics)
    evaluate: Callable  # (params, norm, key, env_params) -> evaluation metrics
    evaluate_expert: Callable  # (key, env_params) -> evaluation metrics of the expert on the same scenes
    act: Callable  # (params, norm, obs [N, obs]) -> deterministic actions [N, action]
    rollout_steps: int
    capacity: int


def make_imitation(cfg: ImitationConfig, ppo_cfg, env, expert: Callable) -> Imitation:
    """Builds the imitation pieces for ``env`` and its ``expert`` ``(state, params) -> action``.

    Args:
      cfg: imitation hyper-parameters.
      ppo_cfg: the PPOConfig whose policy/value networks, ``min_std`` and ``normalize_obs`` the student uses.
      env: an env following the vpjax contract (no auto-reset: a robot whose episode ended waits, frozen,
        for the next round's fresh scene).
      expert: the teacher, jittable and stateless.
    """
    steps = cfg.steps_per_round(env.episode_length)
    capacity = cfg.capacity or cfg.rounds * cfg.num_envs * steps
    policy_net, value_net = make_networks(env.observation_size, env.action_size, ppo_cfg.policy_hidden,
                                          ppo_cfg.value_hidden, ppo_cfg.activation)
    dist = TanhGaussian(ppo_cfg.min_std)
    norm_on = ppo_cfg.normalize_obs
    # Adam without its step size: the round's learning rate is an argument of fit (no recompile per round)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam())
    expert_b = vmap_robots(expert, (0, None))

    def act(params, norm, obs):
        return dist.mode(policy_net.apply(params["policy"], norm.normalize(obs, norm_on)))

    def init(key) -> ImitationState:
        k_pol, k_val, k_next = jax.random.split(key, 3)
        dummy = jnp.zeros((1, env.observation_size), jnp.float32)
        params = {"policy": policy_net.init(k_pol, dummy), "value": value_net.init(k_val, dummy)}
        # zeros in the shape of the robots' states: alive 0 makes the first round reset every robot
        shapes = jax.eval_shape(vmap_robots(env.reset, (0, None)), jnp.zeros((cfg.num_envs, 2), jnp.uint32),
                                env.default_params)
        envs = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        return ImitationState(params=params, opt_state=optimizer.init(params["policy"]),
                              norm=RunningStats.init(env.observation_size),
                              buffer=Buffer.init(capacity, env.observation_size, env.action_size), key=k_next,
                              round=jnp.zeros((), jnp.int32), envs=envs, alive=jnp.zeros((cfg.num_envs,), jnp.float32))

    def loss(params, norm, obs, a):
        return bc_loss(policy_net, dist, params, norm, obs, a, norm_on, cfg.init_std, cfg.loss)

    def evaluate(params, norm, key, env_params):
        return evaluate_actor(env, env_params, lambda s, p: act(params, norm, s.obs), key, cfg.num_eval_envs)

    def evaluate_expert(key, env_params):
        return evaluate_actor(env, env_params, expert_b, key, cfg.num_eval_envs)

    return Imitation(init=init, collect=_make_collect(cfg, env, expert_b, act, norm_on, steps),
                     fit=_make_fit(cfg, loss, optimizer), evaluate=evaluate, evaluate_expert=evaluate_expert,
                     act=act, rollout_steps=steps, capacity=capacity)


def _make_collect(cfg: ImitationConfig, env, expert_b: Callable, act: Callable, norm_on: bool, steps: int):
    """The collection round of :func:`make_imitation`: ``(state, beta, env_params) -> (state, metrics)``."""
    reset_b = vmap_robots(env.reset, (0, None))
    step_b = vmap_robots(env.step, (0, 0, None))

    def collect(state: ImitationState, beta, env_params):
        """One round's rollouts of ``cfg.num_envs`` robots; rows go into the buffer.

        Robots whose episode is not over continue it; the others start fresh scenes.

        Returns:
          (state, metrics): the economics of each robot's episode so far at the round's last step (mean over
          robots; with β = 0 the student's own deterministic performance) and ``expert_fraction`` (the
          share of steps the expert acted).
        """
        key, k_reset, k_mix = jax.random.split(state.key, 3)
        fresh = reset_b(jax.random.split(k_reset, cfg.num_envs), env_params)
        s = hold_finished(state.alive > 0, state.envs, fresh)

        def body(carry, k):
            s, alive = carry
            label = expert_b(s, env_params)
            own = act(state.params, state.norm, s.obs)
            use_expert = jax.random.uniform(k, (cfg.num_envs,)) < beta
            a = jnp.where(use_expert[:, None], label, own)
            s2 = step_b(s, a, env_params)
            alive2 = alive * (1.0 - s2.done)
            return (hold_finished(alive2 > 0, s2, s), alive2), (s.obs, label, alive, use_expert.astype(jnp.float32) * alive)

        (s, alive), (obs, labels, valid, used) = jax.lax.scan(body, (s, jnp.ones((cfg.num_envs,), jnp.float32)),
                                                              jax.random.split(k_mix, steps))
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        weight = valid
        if cfg.keyframe_weight > 0:
            # (a round's first step counts as no change: a continued episode's previous label is not kept)
            weight = valid * keyframe_weights(labels, labels[0], cfg.keyframe_weight)
        buffer = state.buffer.add(flat(obs), flat(labels), flat(weight))
        norm = state.norm.update(flat(obs)) if norm_on else state.norm
        metrics = summarize_episodes(s.metrics, env_params.econ)
        metrics["expert_fraction"] = jnp.sum(used) / jnp.maximum(jnp.sum(valid), 1.0)
        return state.replace(buffer=buffer, norm=norm, key=key, envs=s, alive=alive), metrics

    return collect


def _make_fit(cfg: ImitationConfig, loss: Callable, optimizer):
    """The training round of :func:`make_imitation`: ``(state, learning_rate) -> (state, metrics)``.

    ``loss`` is ``(policy_params, norm, obs, expert_act) -> (loss, aux)``.
    """

    def fit(state: ImitationState, learning_rate):
        """``cfg.sgd_steps`` minibatch updates of the policy on the aggregated buffer."""
        key, k_fit = jax.random.split(state.key)
        buf = state.buffer
        cdf = jnp.cumsum(sample_weights(buf, cfg.balance))
        cdf = cdf / jnp.maximum(cdf[-1], 1e-12)

        def step(carry, k):
            params, opt_state = carry
            idx = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(k, (cfg.batch_size,))), cdf.shape[0] - 1)
            (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params, state.norm, buf.obs[idx], buf.act[idx])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            updates = jax.tree.map(lambda u: -learning_rate * u, updates)
            return (optax.apply_updates(params, updates), opt_state), aux

        (policy, opt_state), aux = jax.lax.scan(step, (state.params["policy"], state.opt_state),
                                                jax.random.split(k_fit, cfg.sgd_steps))
        metrics = {k: jnp.mean(v[-max(1, cfg.sgd_steps // 10):]) for k, v in aux.items()} if cfg.sgd_steps else {}
        params = {**state.params, "policy": policy}
        return state.replace(params=params, opt_state=opt_state, key=key, round=state.round + 1), metrics

    return fit


__all__ = ["ALGORITHMS", "LOSSES", "Buffer", "Imitation", "ImitationConfig", "ImitationState", "action_bins", "bc_loss",
           "keyframe_weights", "make_imitation", "sample_weights"]
