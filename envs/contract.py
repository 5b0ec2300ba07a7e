"""The env contract every vpjax task follows: :class:`State` and the :class:`Env` protocol.

The trainer, the wrappers, the experts and the evaluators code against this and nothing else, as
brax's ``envs/base.py`` makes its ``Env`` explicit. Environments are pure (DESIGN.md, "Pure
environments"): ``reset(key, params=None)`` and ``step(state, action, params=None)`` map inputs to
a new :class:`State`; nothing on the env object changes after construction. ``params=None``
means ``env.default_params``, so brax's and Playground's trainers drive the envs unchanged.

``state.info`` carries each robot's episode counters (``units, errors, attempts, work_seconds,
steps``) and its memory across episodes (``prev_mp, episodes, unstable_resets``; see
:data:`envs.wrappers.CARRY_KEYS`); ``state.metrics`` always has the keys ``env.metric_names``, those
of :func:`vpjax.economics.account` first.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
from flax import struct

Array = jax.Array


@struct.dataclass
class State:
    """One robot's environment state (vmap for a batch); brax ``envs.State`` field names.

    Attributes:
      pipeline_state: the simulator state (``mjx.Data`` of the scene for the MJX tasks).
      obs: [obs_size] float32 observation.
      reward: [] float32 reward of the last step.
      done: [] float32, 1 on the episode's last step or on an instability reset.
      metrics: dict of [] float32 scalars, always the same keys (see ``Env.metric_names``).
      info: dict of per-robot arrays: episode counters (``units, errors, attempts, work_seconds,
        steps``), per-robot memory (``prev_mp, episodes, unstable_resets``), ``rng``, the internal
        clock ``t`` and task bookkeeping.
    """

    pipeline_state: Any
    obs: Array
    reward: Array
    done: Array
    metrics: dict = struct.field(default_factory=dict)
    info: dict = struct.field(default_factory=dict)

    @property
    def data(self):
        """MuJoCo Playground's name for ``pipeline_state``."""
        return self.pipeline_state


@runtime_checkable
class Env(Protocol):
    """What a vpjax env offers (one robot; ``jax.vmap`` for a batch).

    Attributes:
      default_params: the params pytree used when ``params`` is None (all array leaves).
      observation_size: length of ``state.obs``.
      action_size: length of the action, each entry in [-1, 1].
      episode_length: control steps per episode.
      dt: simulated seconds per control step (work seconds grow by ``dt`` per step).
      metric_names: the keys of ``state.metrics``.
    """

    default_params: Any

    @property
    def observation_size(self) -> int: ...

    @property
    def action_size(self) -> int: ...

    @property
    def episode_length(self) -> int: ...

    @property
    def dt(self) -> float: ...

    @property
    def metric_names(self) -> tuple[str, ...]: ...

    def reset(self, key: Array, params: Any = None) -> State:
        """A fresh episode: zeroed counters, ``metrics`` with every name at 0."""
        ...

    def step(self, state: State, action: Array, params: Any = None) -> State:
        """One control step; ``done = 1`` on the episode's last step."""
        ...


__all__ = ["State", "Env"]
