"""Causal gain of datapoints from a vmapped ensemble of small flax models trained with optax.

The ensemble is K Gaussian MLPs x → (μ, σ²): a behaviour-cloning policy (x = observation,
y = action) or a dynamics model (x = state ⊕ action, y = next state − state). The K members share
one architecture; their parameters carry a leading K axis and everything is ``jax.vmap`` over it,
so training K members costs one compiled program.

Two scores, batched over datapoints:

* **Information gain** (:func:`information_gain`): ½·log(1 + Var_k μ_k(x) / E_k σ_k²(x)), summed
  over output dimensions. This is the mutual information between the model (which member) and the
  outcome at x for a Gaussian mixture treated as Gaussian — the epistemic share of the predictive
  variance. Where members agree relative to their noise, a datapoint at x teaches little.
* **Prediction-error reduction** (:func:`prediction_error_reduction`): the first-order effect of one
  SGD step of size lr on the datapoint on the validation loss, TracIn-style:
  L_val(θ − lr·∇L_i) ≈ L_val(θ) − lr·∇L_val·∇L_i, so the reduction is lr·⟨∇L_val, ∇L_i⟩, averaged
  over members and clipped at 0 (a datapoint that would raise the error is worth 0). Per-example gradients come from
  ``vmap(grad)``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

Array = jax.Array


class GaussianMLP(nn.Module):
    """x [B, d_in] -> (mean [B, d_out], variance [B, d_out])."""

    out_dim: int
    hidden: Sequence[int] = (64, 64)
    min_var: float = 1e-4

    @nn.compact
    def __call__(self, x):
        h = x
        for width in self.hidden:
            h = nn.swish(nn.Dense(width)(h))  # unbounded: members extrapolate apart away from data
        mean = nn.Dense(self.out_dim)(h)
        var = nn.softplus(nn.Dense(self.out_dim)(h)) + self.min_var
        return mean, var


@struct.dataclass
class Ensemble:
    """K members' parameters (leading axis K) and their optimizer state."""

    params: Any
    opt_state: Any
    step: Array


class EnsembleConfig(NamedTuple):
    """Static settings (shapes and the optimizer), fixed when the ensemble is built."""

    in_dim: int
    out_dim: int
    members: int = 5
    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-3
    batch_size: int = 128


def _module(cfg: EnsembleConfig) -> GaussianMLP:
    return GaussianMLP(out_dim=cfg.out_dim, hidden=tuple(cfg.hidden))


def _optimizer(cfg: EnsembleConfig) -> optax.GradientTransformation:
    return optax.adam(cfg.learning_rate)


def gaussian_nll(params: Any, x: Array, y: Array, cfg: EnsembleConfig) -> Array:
    """Mean Gaussian negative log-likelihood (constant dropped) of one member on [B] rows."""
    mean, var = _module(cfg).apply(params, x)
    return jnp.mean(jnp.sum(0.5 * (jnp.log(var) + (y - mean) ** 2 / var), axis=-1))


def init(key: Array, cfg: EnsembleConfig) -> Ensemble:
    """K independently initialized members (one key each)."""
    keys = jax.random.split(key, cfg.members)
    dummy = jnp.zeros((1, cfg.in_dim))
    params = jax.vmap(lambda k: _module(cfg).init(k, dummy))(keys)
    opt_state = jax.vmap(_optimizer(cfg).init)(params)
    return Ensemble(params=params, opt_state=opt_state, step=jnp.asarray(0, jnp.int32))


@functools.partial(jax.jit, static_argnames=("cfg", "steps"))
def train(key: Array, ens: Ensemble, x: Array, y: Array, cfg: EnsembleConfig, steps: int) -> tuple[Ensemble, Array]:
    """``steps`` Adam steps per member on bootstrap-style minibatches (each member its own draws).

    Args:
      key: PRNG key (split per step and member).
      ens: Ensemble.
      x: [N, in_dim]; y: [N, out_dim].
      steps: number of updates (static).

    Returns:
      (trained Ensemble, losses [steps, K]).
    """
    opt = _optimizer(cfg)
    n = x.shape[0]

    def member_step(params, opt_state, k):
        idx = jax.random.randint(k, (cfg.batch_size,), 0, n)  # sampling with replacement decorrelates members
        loss, g = jax.value_and_grad(gaussian_nll)(params, x[idx], y[idx], cfg)
        upd, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, loss

    def step(carry, k):
        params, opt_state = carry
        keys = jax.random.split(k, cfg.members)
        params, opt_state, loss = jax.vmap(member_step)(params, opt_state, keys)
        return (params, opt_state), loss

    keys = jax.random.split(key, steps)
    (params, opt_state), losses = jax.lax.scan(step, (ens.params, ens.opt_state), keys)
    return Ensemble(params=params, opt_state=opt_state, step=ens.step + steps), losses


def predict(ens: Ensemble, x: Array, cfg: EnsembleConfig) -> tuple[Array, Array]:
    """Per-member predictions: (mean [K, B, d_out], variance [K, B, d_out])."""
    return jax.vmap(lambda p: _module(cfg).apply(p, x))(ens.params)


def information_gain(ens: Ensemble, x: Array, cfg: EnsembleConfig) -> Array:
    """[B] ½·Σ_d log(1 + Var_k μ_k / E_k σ_k²): epistemic over aleatoric variance at each x."""
    mean, var = predict(ens, x, cfg)
    epistemic = jnp.var(mean, axis=0)
    aleatoric = jnp.mean(var, axis=0)
    return 0.5 * jnp.sum(jnp.log1p(epistemic / aleatoric), axis=-1)


def _flat_grad(params, x, y, cfg):
    g = jax.grad(gaussian_nll)(params, x, y, cfg)
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(g)])


def _row_grads(params, x: Array, y: Array, x_val: Array, y_val: Array, cfg: EnsembleConfig) -> tuple[Array, Array]:
    """(∇L_i of each row [B, P], ∇L_val of the validation set [P]), flattened."""
    g_val = _flat_grad(params, x_val, y_val, cfg)
    return jax.vmap(lambda xi, yi: _flat_grad(params, xi[None], yi[None], cfg))(x, y), g_val


def prediction_error_reduction(
    ens: Ensemble, x: Array, y: Array, x_val: Array, y_val: Array, cfg: EnsembleConfig, lr: float | Array = 1e-2
) -> Array:
    """[B] TracIn first-order validation-loss reduction of one SGD step on each datapoint, ≥ 0.

    Args:
      ens: trained Ensemble.
      x: [B, in_dim]; y: [B, out_dim] candidate datapoints.
      x_val: [V, in_dim]; y_val: [V, out_dim] validation set.
      lr: step size of the hypothetical update.

    Returns:
      [B] lr·⟨∇L_val, ∇L_i⟩ averaged over members, clipped at 0.
    """

    def member(params):
        g_i, g_val = _row_grads(params, x, y, x_val, y_val, cfg)
        return g_i @ g_val

    dots = jax.vmap(member)(ens.params)  # [K, B]
    return jnp.maximum(lr * jnp.mean(dots, axis=0), 0.0)


def tracin_checkpoints(
    key: Array, ens: Ensemble, x: Array, y: Array, x_val: Array, y_val: Array, cfg: EnsembleConfig,
    checkpoints: tuple[int, ...] = (0, 10, 30, 100, 300), lr: float = 1e-2, cosine: bool = False,
) -> tuple[Ensemble, Array]:
    """TracIn over a training run (Pruthi et al. 2020): Σ_c lr·⟨∇L_val(θ_c), ∇L_i(θ_c)⟩, signed.

    With ``cosine`` each dot product is divided by the two gradients' norms and the checkpoints are
    averaged (gradient similarity, in [-1, 1]): rows with huge gradients no longer decide the sum.

    The ensemble is trained on (x, y) from ``ens`` and the dot products are taken at each step count
    in ``checkpoints``. The early checkpoints carry the signal the converged model has lost: there a
    datapoint whose actions oppose the validation set's has a gradient pointing against it, and its
    score is negative (the one-checkpoint :func:`prediction_error_reduction` clips such rows at 0).

    Args:
      ens: the starting Ensemble (e.g. :func:`init`).
      checkpoints: increasing Adam step counts (static).

    Returns:
      (the ensemble at the last checkpoint, [B] scores; not clipped).
    """
    if list(checkpoints) != sorted(set(checkpoints)) or checkpoints[0] < 0:
        raise ValueError(f"checkpoints must be increasing step counts >= 0, got {checkpoints}")

    @jax.jit
    def dots(params):
        def member(p):
            g_i, g_val = _row_grads(p, x, y, x_val, y_val, cfg)
            dot = g_i @ g_val
            if cosine:
                return dot / (jnp.linalg.norm(g_i, axis=1) * jnp.linalg.norm(g_val) + 1e-12)
            return lr * dot

        return jnp.mean(jax.vmap(member)(params), axis=0)

    total, done = jnp.zeros((x.shape[0],)), 0
    for i, c in enumerate(checkpoints):
        if c > done:
            ens, _ = train(jax.random.fold_in(key, i), ens, x, y, cfg, c - done)
            done = c
        total = total + dots(ens.params)
    return ens, total / len(checkpoints) if cosine else total


def prediction_error_reduction_exact(
    ens: Ensemble, x: Array, y: Array, x_val: Array, y_val: Array, cfg: EnsembleConfig, lr: float = 1e-2
) -> Array:
    """[B] L_val(θ) − L_val(θ − lr·∇L_i), member-averaged, not clipped: the quantity TracIn approximates."""

    def member(params):
        base = gaussian_nll(params, x_val, y_val, cfg)

        def one(xi, yi):
            g = jax.grad(gaussian_nll)(params, xi[None], yi[None], cfg)
            stepped = jax.tree.map(lambda p, gg: p - lr * gg, params, g)
            return base - gaussian_nll(stepped, x_val, y_val, cfg)

        return jax.vmap(one)(x, y)

    return jnp.mean(jax.vmap(member)(ens.params), axis=0)


__all__ = [
    "GaussianMLP",
    "Ensemble",
    "EnsembleConfig",
    "gaussian_nll",
    "init",
    "train",
    "predict",
    "information_gain",
    "prediction_error_reduction",
    "prediction_error_reduction_exact",
    "tracin_checkpoints",
]
