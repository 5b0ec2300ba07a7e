"""Flax (linen) policy and value networks and the tanh-Gaussian action distribution."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

_ACT = {"swish": nn.swish, "tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu}


class MLP(nn.Module):
    """Plain MLP: hidden layers with ``activation``, then a linear head of ``out`` units."""

    hidden: Sequence[int]
    out: int
    activation: str = "swish"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        act = _ACT[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=nn.initializers.lecun_uniform())(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.variance_scaling(self.out_scale, "fan_in", "uniform"))(x)


@struct.dataclass
class RunningStats:
    """Running mean/variance of observations (parallel Welford), in the training state.

    Attributes:
      mean: [obs]; m2: [obs] sum of squared deviations; count: [] samples seen.
    """

    mean: jax.Array
    m2: jax.Array
    count: jax.Array

    @classmethod
    def init(cls, size: int) -> "RunningStats":
        return cls(mean=jnp.zeros((size,), jnp.float32), m2=jnp.zeros((size,), jnp.float32),
                   count=jnp.zeros((), jnp.float32))

    def update(self, x: jax.Array) -> "RunningStats":
        """Adds a batch ``x`` [N, obs] (Chan et al.'s parallel combination)."""
        x = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
        n = jnp.asarray(x.shape[0], jnp.float32)
        b_mean = x.mean(0)
        b_m2 = ((x - b_mean) ** 2).sum(0)
        total = self.count + n
        delta = b_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.m2 + b_m2 + delta**2 * self.count * n / total
        return RunningStats(mean=mean, m2=m2, count=total)

    @property
    def std(self) -> jax.Array:
        var = jnp.where(self.count > 1, self.m2 / jnp.maximum(self.count - 1, 1.0), 1.0)
        return jnp.sqrt(jnp.maximum(var, 1e-6))

    def normalize(self, obs: jax.Array, enabled: bool = True) -> jax.Array:
        if not enabled:
            return obs
        return jnp.clip((obs - self.mean) / self.std, -10.0, 10.0)


class TanhGaussian:
    """π(a|s): a = tanh(u), u ~ N(loc, softplus(raw) + min_std). PPO ratios use u (the Jacobian cancels)."""

    def __init__(self, min_std: float = 1e-3):
        self.min_std = min_std

    def split(self, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
        loc, raw = jnp.split(logits, 2, axis=-1)
        return loc, jax.nn.softplus(raw) + self.min_std

    def sample_raw(self, logits, key):
        loc, scale = self.split(logits)
        return loc + scale * jax.random.normal(key, loc.shape)

    @staticmethod
    def postprocess(raw: jax.Array) -> jax.Array:
        return jnp.tanh(raw)

    def mode(self, logits):
        return jnp.tanh(self.split(logits)[0])

    def log_prob_raw(self, logits, raw):
        """Gaussian log-density of the pre-tanh action, summed over action dims: [...]."""
        loc, scale = self.split(logits)
        z = (raw - loc) / scale
        return jnp.sum(-0.5 * z**2 - jnp.log(scale) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def entropy(self, logits, key):
        """Entropy of the tanh-squashed distribution, one-sample estimate of the Jacobian term (brax)."""
        loc, scale = self.split(logits)
        gauss = jnp.sum(0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(scale), axis=-1)
        u = loc + scale * jax.random.normal(key, loc.shape)
        log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
        return gauss + log_det

    def kl(self, logits_p, logits_q):
        """KL(p || q) of the pre-tanh Gaussians, summed over action dims: [...].

        tanh is a bijection, so this is also the KL of the squashed action distributions.
        """
        loc_p, scale_p = self.split(logits_p)
        loc_q, scale_q = self.split(logits_q)
        ratio = (scale_p / scale_q) ** 2
        return jnp.sum(0.5 * (ratio + ((loc_p - loc_q) / scale_q) ** 2 - 1.0 - jnp.log(ratio)), axis=-1)


def make_networks(obs_size: int, action_size: int, policy_hidden, value_hidden, activation: str):
    """Returns (policy, value) flax modules: policy -> [.., 2*action] logits, value -> [..]."""
    policy = MLP(hidden=tuple(policy_hidden), out=2 * action_size, activation=activation, out_scale=0.01)
    value = MLP(hidden=tuple(value_hidden), out=1, activation=activation, out_scale=1.0)
    return policy, value


class PPONetworks(NamedTuple):
    """PPO's policy and value networks, their observation normalization and the action distribution.

    ``params`` below is ``{'policy': ..., 'value': ...}``; ``norm`` a :class:`RunningStats`.
    """

    policy: Any
    value: Any
    dist: TanhGaussian
    normalize_obs: bool

    def policy_logits(self, params, norm: RunningStats, obs: jax.Array) -> jax.Array:
        """obs [..., obs] -> [..., 2*action] logits."""
        return self.policy.apply(params["policy"], norm.normalize(obs, self.normalize_obs))

    def value_of(self, params, norm: RunningStats, obs: jax.Array) -> jax.Array:
        """obs [..., obs] -> [...] state values."""
        return self.value.apply(params["value"], norm.normalize(obs, self.normalize_obs))[..., 0]


def make_ppo_networks(obs_size: int, action_size: int, cfg) -> PPONetworks:
    """The networks a :class:`train.config.PPOConfig` describes."""
    policy, value = make_networks(obs_size, action_size, cfg.policy_hidden, cfg.value_hidden, cfg.activation)
    return PPONetworks(policy=policy, value=value, dist=TanhGaussian(cfg.min_std), normalize_obs=cfg.normalize_obs)
