"""The typed configs of the video-to-policy steps (:mod:`.pipeline`); defaults are the CLI's.

The model defaults here are the small CPU settings the chain is documented with (a two-layer
encoder, 400-600 optimizer steps); the model configs' own defaults are larger.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from train.config import PPOConfig

from . import bc as bc_mod
from . import diffusion as dif
from . import idm as idm_mod

IDM_DEFAULTS = idm_mod.IDMConfig(steps=400, channels=(16, 32))
BC_DEFAULTS = bc_mod.BCConfig(steps=400, channels=(16, 32))
DIFFUSION_DEFAULTS = dif.DiffusionConfig(steps=600, enc_channels=(16, 32), channels=64)
# fine-tuning a cloned policy: a small gentle PPO (a low learning rate keeps the cloned behaviour)
FINETUNE_PPO = PPOConfig(num_envs=32, unroll_length=8, num_minibatches=4, update_epochs=2, learning_rate=1e-4,
                         entropy_cost=1e-3, policy_hidden=(64, 64), value_hidden=(64, 64), eval_every=10,
                         num_eval_envs=8)


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """:func:`collect`: expert demos and perturbed-expert play episodes of ``task``, rendered into ``out``.

    ``size``/``steps`` None take the task's defaults (:data:`DEFAULTS`); play episodes add Gaussian
    action noise and a fraction ``random_frac`` of uniform random actions to the expert.
    """

    task: str = "point"
    out: str = ""
    demos: int = 16
    play: int = 24
    size: int | None = None
    steps: int | None = None
    noise: float = 0.3
    random_frac: float = 0.2
    seed: int = 0
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class IDMStep:
    """:func:`idm`: train the inverse dynamics model on ``data``'s play episodes (checkpoint in ``out``)."""

    data: str
    model: idm_mod.IDMConfig = IDM_DEFAULTS
    seed: int = 0
    out: str | None = None
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class _DemoPolicyStep:
    """The fields of :class:`BCStep` and :class:`DiffusionStep`: a policy trained on ``data``'s demos.

    ``labels`` "idm" takes the actions the IDM at ``idm_path`` labelled the demos with, "true" the
    recorded ones; ``model`` is the policy's model config (each subclass gives its default).
    """

    data: str
    model: Any = None
    labels: str = "idm"
    idm_path: str | None = None
    seed: int = 0
    out: str | None = None
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class BCStep(_DemoPolicyStep):
    """:func:`bc`: behaviour cloning on the demos with ``labels`` "idm" (from ``idm_path``) or "true"."""

    model: bc_mod.BCConfig = BC_DEFAULTS


@dataclasses.dataclass(frozen=True)
class DiffusionStep(_DemoPolicyStep):
    """:func:`diffusion`: a diffusion policy with action chunks on the demos (labels as in :class:`BCStep`)."""

    model: dif.DiffusionConfig = DIFFUSION_DEFAULTS


@dataclasses.dataclass(frozen=True)
class FinetuneStep:
    """:func:`finetune`: distill the BC policy at ``bc`` into PPO's network, then PPO with the economic reward.

    PPO runs ``iterations`` iterations of ``ppo`` (its total_timesteps and seed come from
    ``iterations`` and ``seed``: :meth:`ppo_config`). ``critic_warmup`` chunks of ``ppo.eval_every``
    iterations train only the critic first; ``freeze_norm`` keeps the observation statistics the
    distilled policy was fitted with.
    """

    data: str
    bc: str | None = None
    ppo: PPOConfig = FINETUNE_PPO
    iterations: int = 40
    distill_episodes: int = 8
    distill_steps: int = 400
    init_std: float = 0.3
    critic_warmup: int = 0
    freeze_norm: bool = True
    seed: int = 0
    out: str | None = None
    quiet: bool = False

    def ppo_config(self) -> PPOConfig:
        """The :class:`train.config.PPOConfig` of the fine-tuning run."""
        p = self.ppo
        return p.replace(total_timesteps=p.num_envs * p.unroll_length * self.iterations, seed=self.seed)


@dataclasses.dataclass(frozen=True)
class EvaluateStep:
    """:func:`evaluate`: the expert and every trained policy found (or named) in ``data``; table and plot.

    A checkpoint path left None is looked up in ``data`` and skipped when absent.
    """

    data: str
    episodes: int = 8
    bc_true: str | None = None
    bc_idm: str | None = None
    diffusion: str | None = None
    ppo: str | None = None
    random: bool = False
    distilled: bool = False
    out_md: str | None = None
    out_png: str | None = None
    seed: int = 10_000
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class ValueStep:
    """:func:`value`: per-demonstration embeddings -> valuation engine -> ``data_value.csv``."""

    data: str
    idm_path: str | None = None
    out: str | None = None
    history: str | None = None
    sharing: str = "withheld"
    realized: str | None = None
    seed: int = 0
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class ChainConfig:
    """:func:`chain`: collect -> idm -> bc (true, idm) -> diffusion -> finetune -> evaluate -> value.

    ``diffusion_steps`` or ``ppo_iterations`` 0 skips that stage; ``reuse`` keeps an existing dataset.
    """

    collect: CollectConfig
    reuse: bool = False
    idm_steps: int = 400
    bc_steps: int = 400
    diffusion_steps: int = 600
    ppo_iterations: int = 40
    episodes: int = 8
