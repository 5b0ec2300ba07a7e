"""PPO fine-tuning from the cloned policy, with the economic reward, using :func:`train.ppo.make_train`.

PPO acts on the env observation (no rendering inside the jitted rollout), while the cloned policy
acts on video. So the cloned policy is first *distilled* into PPO's own policy network: the visual
policy drives the robot in simulation (the robot's own experience, where the observation is
available), and PPO's MLP is fitted to its actions at the observations it visits (DAgger-style:
the executed actions are perturbed so that the student also sees recoveries). The PPO state from
``make_train(...).init`` then gets these policy weights and the observation statistics, and training
continues with ``train.chunk`` -- the same compiled steps as ``python -m train``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from train.config import PPOConfig
from train.networks import RunningStats, TanhGaussian, make_networks
from train.ppo import make_train, policy_fn

from . import common
from .evaluate import PolicySpec, rollout
from .sim import Task


def distill(task: Task, teacher: PolicySpec, cfg: PPOConfig, key: jax.Array, episodes: int = 8, seed: int = 20_000,
            size: int = 64, steps: int = 400, init_std: float = 0.3, action_noise: float = 0.2, quiet: bool = True):
    """Fits PPO's policy MLP to ``teacher``'s actions along teacher rollouts.

    Returns:
      (policy params for ``make_networks(...)[0]``, RunningStats of the visited observations, final MSE).
    """
    data = rollout(task, teacher, episodes, seed, size, record=True, action_noise=action_noise)
    obs = data["obs"].reshape(-1, data["obs"].shape[-1]).astype(np.float32)
    act = data["actions"].reshape(-1, data["actions"].shape[-1]).astype(np.float32)
    norm = RunningStats.init(obs.shape[-1]).update(jnp.asarray(obs))
    policy_net, _ = make_networks(task.env.observation_size, task.action_size, cfg.policy_hidden, cfg.value_hidden,
                                  cfg.activation)
    dist = TanhGaussian(cfg.min_std)
    k_init, k_fit = jax.random.split(key)
    params = policy_net.init(k_init, jnp.zeros((1, obs.shape[-1])))
    x = norm.normalize(jnp.asarray(obs), cfg.normalize_obs)
    y = jnp.asarray(act)

    def loss(p, batch, k):
        del k
        loc, scale = dist.split(policy_net.apply(p, batch["x"]))
        mse = jnp.mean((jnp.tanh(loc) - batch["y"]) ** 2)
        # keep some exploration noise for PPO: pull the std toward init_std instead of collapsing it
        return mse + 0.1 * jnp.mean((scale - init_std) ** 2), {"mse": mse}

    n = x.shape[0]
    bs = min(256, n)
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            idx = rng.integers(0, n, bs)
            yield {"x": x[idx], "y": y[idx]}

    params, losses = common.fit(params, loss, batches(), steps, 3e-3, k_fit, to_device=lambda b: b)
    mse = float(jnp.mean((dist.mode(policy_net.apply(params, x)) - y) ** 2))
    return params, norm, mse


def freeze_stats(norm: RunningStats, weight: float = 1e6) -> RunningStats:
    """``norm`` with the same mean and std but ``weight`` times the sample count.

    PPO keeps updating its running observation statistics; the distilled policy was fitted on inputs
    standardized with ``norm``, and after a few hundred PPO batches the teacher's statistics would weigh
    only a few per cent, so the same policy weights would see shifted inputs. A large count keeps the
    statistics (practically) fixed without changing the trainer.
    """
    count = norm.count * weight
    # RunningStats.std = sqrt(m2 / (count - 1)): rescale m2 so that the std is exactly the same
    m2 = norm.m2 * (count - 1.0) / jnp.maximum(norm.count - 1.0, 1.0)
    return RunningStats(mean=norm.mean, m2=m2, count=count)


def finetune(task: Task, cfg: PPOConfig, init_policy, init_norm: RunningStats | None, key: jax.Array,
             chunks: int | None = None, progress=None, critic_warmup: int = 0, freeze_norm: bool = True):
    """PPO from the distilled policy.

    Args:
      task: the adapter (its env is trained with the economic reward it computes).
      cfg: PPO settings (``policy_hidden`` etc. must match the distilled network).
      init_policy: policy params from :func:`distill` (None = PPO from scratch, the control).
      init_norm: observation statistics matching ``init_policy``.
      key: PRNG key.
      chunks: evaluation chunks to run after the warm-up (None: all of ``cfg``; 0: only the warm-up).
      progress: optional callable(i, eval dict) after each chunk.
      critic_warmup: chunks run first with the policy reset to ``init_policy`` after each one, so that
        only the value function learns (on the cloned policy's own returns). A random critic gives
        random advantages, and the first PPO updates then move the cloned policy at random.
      freeze_norm: keep ``init_norm`` (practically) fixed during PPO (see :func:`freeze_stats`).

    Returns:
      (final TrainState, list of evaluation dicts of the chunks after the warm-up).
    """
    if critic_warmup and init_policy is None:
        raise ValueError("critic_warmup needs init_policy (there is no policy to hold fixed)")
    tr = make_train(cfg, task.env)
    state = tr.init(key)
    if init_policy is not None:
        state = state.replace(params={**state.params, "policy": init_policy})
        state = state.replace(opt_state=tr.optimizer.init(state.params))
    if init_norm is not None:
        state = state.replace(norm=freeze_stats(init_norm) if freeze_norm else init_norm)
    chunk = jax.jit(tr.chunk)
    for _ in range(critic_warmup):
        state, _, _ = chunk(state)
        state = state.replace(params={**state.params, "policy": init_policy})
    if critic_warmup:  # fresh Adam moments: the policy's moments came from updates that were discarded
        state = state.replace(opt_state=tr.optimizer.init(state.params))
    evals = []
    for i in range(tr.num_chunks if chunks is None else chunks):
        state, _, ev = chunk(state)
        ev = {k: float(v) for k, v in jax.device_get(ev).items()}
        evals.append(ev)
        if progress:
            progress(i, ev)
    return state, evals


def obs_policy_spec(name: str, task: Task, cfg: PPOConfig, policy_params, norm: RunningStats) -> PolicySpec:
    """Deterministic PPO policy (mode of π) as an evaluator :class:`PolicySpec`."""
    act = jax.jit(policy_fn(cfg, task.env.observation_size, task.action_size))
    return PolicySpec(name, lambda s, f, p, k: act({"policy": policy_params}, norm, s.obs)[:, None])


def to_host(tree):
    return jax.tree.map(np.asarray, tree)


def norm_to_dict(norm: RunningStats) -> dict:
    return {"mean": norm.mean, "m2": norm.m2, "count": norm.count}


def norm_from_dict(d) -> RunningStats:
    return RunningStats(mean=jnp.asarray(d["mean"]), m2=jnp.asarray(d["m2"]), count=jnp.asarray(d["count"]))


__all__ = ["distill", "finetune", "freeze_stats", "obs_policy_spec", "norm_to_dict", "norm_from_dict"]
