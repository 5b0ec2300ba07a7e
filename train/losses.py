"""PPO's losses: generalized advantage estimation, the clipped surrogate with value and entropy terms,
and the imitation anchor (a KL to the initial policy)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .config import PPOConfig
from .networks import PPONetworks


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


def anchor_coefficient(cfg: PPOConfig, iteration) -> jax.Array:
    """The anchor's weight at ``iteration``: ``anchor_coef``, decaying linearly to 0 over
    ``anchor_anneal_iterations`` (constant when that is 0)."""
    coef = jnp.asarray(cfg.anchor_coef, jnp.float32)
    if cfg.anchor_anneal_iterations > 0:
        coef = coef * jnp.clip(1.0 - iteration / cfg.anchor_anneal_iterations, 0.0, 1.0)
    return coef


def ppo_loss(nets: PPONetworks, cfg: PPOConfig, params, norm, mb: dict, key, anchor: Any = None,
             anchor_coef=0.0):
    """Clipped PPO surrogate + value loss - entropy bonus (+ the anchor), on one minibatch.

    Args:
      params: {'policy', 'value'} being trained; norm: the observation normalizer.
      mb: ``obs`` [N, obs], ``raw_action`` [N, act], ``logp``, ``adv``, ``target`` [N].
      key: PRNG key of the entropy's one-sample estimate.
      anchor: None, or ``{'policy': params, 'norm': RunningStats}`` of the initial policy π_init;
        then ``anchor_coef * KL(π_init || π)`` (mean over the minibatch observations) is added.

    Returns:
      (total loss, dict of its terms and the approximate KL to the acting policy).
    """
    dist = nets.dist
    logits = nets.policy_logits(params, norm, mb["obs"])
    value = nets.value_of(params, norm, mb["obs"])
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
    aux = {"loss_policy": pg, "loss_value": v_loss, "entropy": entropy, "approx_kl": approx_kl}
    if anchor is not None:
        init_logits = jax.lax.stop_gradient(nets.policy_logits({"policy": anchor["policy"]}, anchor["norm"], mb["obs"]))
        anchor_kl = jnp.mean(dist.kl(init_logits, logits))
        total = total + anchor_coef * anchor_kl
        aux["anchor_kl"] = anchor_kl
    return total, aux
