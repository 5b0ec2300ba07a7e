"""PPO hyper-parameters as a frozen, validated dataclass (the ``ppo:`` section of configs/training.yaml)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from vpjax.schema import FieldError, parse_section

ACTIVATIONS = ("swish", "tanh", "relu", "elu", "gelu")
LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of :func:`train.ppo.make_train`.

    Defaults follow brax/Playground manipulation settings scaled for a GPU; :func:`train.sizing.size_for_hardware`
    shrinks ``num_envs`` and ``total_timesteps`` on a CPU.

    Attributes:
      num_envs: parallel robots (global, over all devices).
      unroll_length: env steps per robot per iteration (the rollout's scan length).
      num_minibatches: minibatches per epoch; ``num_envs * unroll_length`` must divide evenly.
      update_epochs: passes over each rollout batch.
      learning_rate, lr_schedule, lr_end_fraction: Adam step size (0 freezes the policy, for benchmarks), its schedule ("constant",
        "linear", "cosine") and the final fraction of the initial rate.
      max_grad_norm: global-norm clipping.
      discount, gae_lambda: γ_RL and λ of GAE (not the economic γ).
      clip_eps: PPO ratio clipping; value_cost, entropy_cost: loss weights.
      reward_scaling: multiplies the env reward before GAE.
      normalize_obs, normalize_advantages: running observation normalization / per-minibatch advantages.
      policy_hidden, value_hidden, activation: network sizes.
      min_std: floor of the policy's standard deviation (pre-tanh).
      total_timesteps: env steps (all robots) to train for; ``episodes`` (per robot) overrides it when > 0.
      episodes: per-robot episodes to train for (``python -m train --episodes``); 0 = use total_timesteps.
      eval_every: training iterations between deterministic evaluations (and log rows).
      num_eval_envs: robots in each evaluation; 0 skips the separate evaluation and judges convergence on
        the training episodes that finished in the chunk (saves compiling a second env step: CPU runs).
      eval_steps: control steps per evaluation episode (0 = the env's full episode); MPᵣ and the
        parities are rates, so a shorter evaluation measures them over its own duration.
      early_stop: stop when the convergence criterion holds for ``eval_window`` evaluations in a row.
      shaping_anneal_episodes: per-robot episodes over which the env's shaping weight goes 1 -> 0
        (0 = keep shaping at full weight).
      critic_warmup_iterations: first iterations in which only the value function learns (the
        policy's parameters and the observation normalizer stay as they are): a fresh critic's
        advantages are noise, and a policy loaded with ``--init`` would follow them (0 = none).
      anchor_coef, anchor_anneal_iterations: weight of the imitation anchor KL(π_init || π) on the
        minibatch observations (π_init: the policy training started from, kept in the training
        state) and the iterations over which it decays linearly to 0 (0 = constant). 0 = plain PPO.
      checkpoint_every: evaluations between checkpoints (0 = only at the end).
      keep_checkpoints: how many checkpoints to keep.
      seed: base PRNG seed.
    """

    num_envs: int = 2048
    unroll_length: int = 16
    num_minibatches: int = 32
    update_epochs: int = 4
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    lr_end_fraction: float = 0.1
    max_grad_norm: float = 1.0
    discount: float = 0.97
    gae_lambda: float = 0.95
    clip_eps: float = 0.3
    value_cost: float = 0.5
    entropy_cost: float = 1e-2
    reward_scaling: float = 1.0
    normalize_obs: bool = True
    normalize_advantages: bool = True
    policy_hidden: tuple[int, ...] = (256, 256, 256)
    value_hidden: tuple[int, ...] = (256, 256, 256, 256, 256)
    activation: str = "swish"
    min_std: float = 1e-3
    total_timesteps: int = 10_000_000
    episodes: int = 0
    eval_every: int = 10
    num_eval_envs: int = 128
    eval_steps: int = 0
    early_stop: bool = False
    shaping_anneal_episodes: float = 0.0
    critic_warmup_iterations: int = 0
    anchor_coef: float = 0.0
    anchor_anneal_iterations: int = 0
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    seed: int = 0

    def __post_init__(self):
        def need(cond, key, why):
            if not cond:
                raise FieldError("ppo", key, getattr(self, key), why)

        object.__setattr__(self, "policy_hidden", tuple(int(h) for h in self.policy_hidden))
        object.__setattr__(self, "value_hidden", tuple(int(h) for h in self.value_hidden))
        need(self.num_eval_envs >= 0, "num_eval_envs", "must be >= 0 (0 = judge the training episodes)")
        for k in ("num_envs", "unroll_length", "num_minibatches", "update_epochs", "eval_every", "keep_checkpoints"):
            need(int(getattr(self, k)) >= 1, k, "must be >= 1")
        need(self.eval_steps >= 0, "eval_steps", "must be >= 0 (0 = full episode)")
        need(self.total_timesteps >= 0, "total_timesteps", "must be >= 0")
        need(self.episodes >= 0, "episodes", "must be >= 0")
        need((self.num_envs * self.unroll_length) % self.num_minibatches == 0, "num_minibatches",
             f"must divide num_envs*unroll_length = {self.num_envs * self.unroll_length}")
        need(self.learning_rate >= 0, "learning_rate", "must be >= 0 (0 freezes the policy: benchmarks only)")
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"use one of {LR_SCHEDULES}")
        need(0.0 <= self.lr_end_fraction <= 1.0, "lr_end_fraction", "must be in [0, 1]")
        need(0.0 < self.discount <= 1.0, "discount", "must be in (0, 1]")
        need(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", "must be in [0, 1]")
        need(self.clip_eps > 0, "clip_eps", "must be > 0")
        need(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        need(self.reward_scaling > 0, "reward_scaling", "must be > 0")
        need(self.activation in ACTIVATIONS, "activation", f"use one of {ACTIVATIONS}")
        need(len(self.policy_hidden) >= 1 and min(self.policy_hidden) >= 1, "policy_hidden", "needs positive widths")
        need(len(self.value_hidden) >= 1 and min(self.value_hidden) >= 1, "value_hidden", "needs positive widths")
        need(self.shaping_anneal_episodes >= 0, "shaping_anneal_episodes", "must be >= 0")
        need(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        for k in ("critic_warmup_iterations", "anchor_coef", "anchor_anneal_iterations"):
            need(getattr(self, k) >= 0, k, "must be >= 0")

    @property
    def batch_size(self) -> int:
        """Env steps per training iteration (all robots)."""
        return self.num_envs * self.unroll_length

    def replace(self, **changes: Any) -> "PPOConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["policy_hidden"] = list(self.policy_hidden)
        d["value_hidden"] = list(self.value_hidden)
        return d

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, source: str = "<ppo>") -> "PPOConfig":
        """Builds the config from the YAML ``ppo:`` section; a bad key fails with the source and ``ppo.`` key.

        Raises:
          vpjax.schema.ConfigError: ``{source}: ppo.{key} = {value}: {rule}``.
        """
        return parse_section(cls, dict(mapping or {}), source, "ppo")
