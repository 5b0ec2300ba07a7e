"""Training and data economics as pure, jittable, vmappable functions.

Every quantity a researcher may vary lives in one pytree, :class:`EconParams`. Passing a new
``EconParams`` (or a batch of them under ``jax.vmap``) never recompiles, because all of its fields
are array leaves.

Formulas (see README, "Economics"):

* marginal product        MPᵣ = units / hours                              [units/h]
* error rate              e   = errors / attempts                          [0..1]
* implied wage            ŵᵣ  = p·MPᵣ − cₐ·e·MPᵣ                           [$/h]
* productivity parity         MPᵣ / MPₕ
* wage parity                 ŵᵣ / wₕ
* reward                  r   = α·clip((MPᵣ − MPᵣ_prev)/MPₕ) − β·e − γ·|ŵᵣ/wₕ − 1|^q

The reward function used by the trainer and the environments is pluggable: any function with the
signature of :func:`reward_terms` -- ``(mp, prev_mp, err, params) -> dict`` with at least the
keys ``delta_mp``, ``error``, ``wage_loss`` and ``total``, each a scalar float per robot -- may be
passed where the built-in is used; further terms it returns appear in the env metrics as
``reward_extra_<term>``. :func:`account` is where every task turns its counters into reward and
metrics. Example, a one-sided wage penalty that does not punish exceeding the human wage::

    def one_sided_wage(mp, prev_mp, err, params):
        terms = reward_terms(mp, prev_mp, err, params)
        shortfall = jnp.maximum(0.0, 1.0 - wage_parity(implied_wage(mp, err, params), params))
        loss = shortfall ** params.wage_loss_power
        total = params.alpha * terms["delta_mp"] - params.beta * err - params.gamma * loss
        return {**terms, "wage_loss": loss, "total": total}
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array
ArrayLike = Any

SECONDS_PER_HOUR = 3600.0

# Schedule kinds (stored as int32 leaves so that a sweep over kinds is a vmap, too).
CONSTANT = 0
LINEAR = 1
COSINE = 2
SCHEDULE_KINDS = {"constant": CONSTANT, "linear": LINEAR, "cosine": COSINE}

# Wage-loss kinds map onto the exponent q in |ŵᵣ/wₕ − 1|^q.
WAGE_LOSS_POWERS = {"abs": 1.0, "squared": 2.0}

RewardFn = Callable[[ArrayLike, ArrayLike, ArrayLike, "EconParams"], Mapping[str, Array]]
REWARD_KEYS = ("delta_mp", "error", "wage_loss", "total")
# Per-step metrics of :func:`account`, in this order (CSV columns follow it); a reward function's
# extra terms follow as EXTRA_PREFIX + term name.
METRIC_NAMES = (
    "units", "errors", "attempts", "work_seconds", "mp", "error_rate", "implied_wage", "productivity_parity",
    "wage_parity", "reward_money", "reward_episode", "reward_mp", "reward_error", "reward_wage", "reward_shaping",
)
EXTRA_PREFIX = "reward_extra_"


@struct.dataclass
class EconParams:
    """All economic parameters of one task, as array leaves (vmappable, no recompiles).

    Attributes:
      price_per_unit: p, $ per unit of output.
      human_mp: MPₕ, human units per hour.
      human_wage: wₕ, $ per hour.
      damage_cost: cₐ, $ per error.
      alpha, beta, gamma: current reward weights (the trainer sets alpha/gamma from the schedule).
      alpha_initial, alpha_final, gamma_initial, gamma_final: curriculum end points.
      anneal_steps: curriculum horizon, in the caller's unit of progress (episodes per robot).
      alpha_schedule, gamma_schedule: CONSTANT, LINEAR or COSINE.
      mp_clip: bound on |ΔMPᵣ/MPₕ| in the reward.
      wage_loss_power: q; 1 gives |x| ("abs"), 2 gives x² ("squared").
      productivity_threshold: 1 − ε; productivity parity needed for convergence.
      wage_tolerance: δ; allowed |wage parity − 1| for convergence.
      eval_window: N, consecutive evaluations needed for convergence.
    """

    price_per_unit: Array
    human_mp: Array
    human_wage: Array
    damage_cost: Array
    alpha: Array
    beta: Array
    gamma: Array
    alpha_initial: Array
    alpha_final: Array
    gamma_initial: Array
    gamma_final: Array
    anneal_steps: Array
    alpha_schedule: Array
    gamma_schedule: Array
    mp_clip: Array
    wage_loss_power: Array
    productivity_threshold: Array
    wage_tolerance: Array
    eval_window: Array

    @classmethod
    def create(
        cls,
        *,
        price_per_unit: float = 0.30,
        human_mp: float = 60.0,
        human_wage: float = 18.0,
        damage_cost: float = 1.0,
        beta: float = 0.5,
        alpha_initial: float = 1.0,
        alpha_final: float = 0.3,
        gamma_initial: float = 0.1,
        gamma_final: float = 1.0,
        anneal_steps: float = 5000.0,
        alpha_schedule: str | int = "linear",
        gamma_schedule: str | int = "linear",
        mp_clip: float = 1.0,
        wage_loss: str | float = "abs",
        productivity_threshold: float = 0.95,
        wage_tolerance: float = 0.10,
        eval_window: int = 50,
        alpha: float | None = None,
        gamma: float | None = None,
    ) -> "EconParams":
        """Builds params from Python values (defaults: README's dishwashing example).

        ``alpha``/``gamma`` default to their initial values. Schedules accept "constant",
        "linear", "cosine"; ``wage_loss`` accepts "abs", "squared" or an exponent.
        """

        def kind(v, name):
            if isinstance(v, str):
                if v not in SCHEDULE_KINDS:
                    raise ValueError(f"{name}: unknown schedule {v!r}; use one of {sorted(SCHEDULE_KINDS)}")
                return SCHEDULE_KINDS[v]
            return int(v)

        if isinstance(wage_loss, str):
            if wage_loss not in WAGE_LOSS_POWERS:
                raise ValueError(f"wage_loss: unknown kind {wage_loss!r}; use 'abs' or 'squared'")
            power = WAGE_LOSS_POWERS[wage_loss]
        else:
            power = float(wage_loss)
        f = lambda x: jnp.asarray(x, float)  # noqa: E731
        i = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
        return cls(
            price_per_unit=f(price_per_unit),
            human_mp=f(human_mp),
            human_wage=f(human_wage),
            damage_cost=f(damage_cost),
            alpha=f(alpha_initial if alpha is None else alpha),
            beta=f(beta),
            gamma=f(gamma_initial if gamma is None else gamma),
            alpha_initial=f(alpha_initial),
            alpha_final=f(alpha_final),
            gamma_initial=f(gamma_initial),
            gamma_final=f(gamma_final),
            anneal_steps=f(anneal_steps),
            alpha_schedule=i(kind(alpha_schedule, "alpha_schedule")),
            gamma_schedule=i(kind(gamma_schedule, "gamma_schedule")),
            mp_clip=f(mp_clip),
            wage_loss_power=f(power),
            productivity_threshold=f(productivity_threshold),
            wage_tolerance=f(wage_tolerance),
            eval_window=i(eval_window),
        )


# ----------------------------------------------------------------------------- training economics


def marginal_product(units: ArrayLike, work_seconds: ArrayLike) -> Array:
    """MPᵣ in units per hour; 0 where no time has been worked. Shapes broadcast."""
    units = jnp.asarray(units, float)
    seconds = jnp.asarray(work_seconds, float)
    safe = jnp.where(seconds > 0, seconds, 1.0)
    return jnp.where(seconds > 0, units * SECONDS_PER_HOUR / safe, 0.0)


def error_rate(errors: ArrayLike, attempts: ArrayLike) -> Array:
    """e = errors / attempts, 0 where nothing was attempted. Shapes broadcast."""
    errors = jnp.asarray(errors, float)
    attempts = jnp.asarray(attempts, float)
    safe = jnp.where(attempts > 0, attempts, 1.0)
    return jnp.where(attempts > 0, errors / safe, 0.0)


def implied_wage(mp: ArrayLike, err: ArrayLike, params: EconParams) -> Array:
    """ŵᵣ = p·MPᵣ − cₐ·e·MPᵣ in $/h (damage is charged per hour worked: README, "Economics")."""
    mp = jnp.asarray(mp, float)
    return params.price_per_unit * mp - params.damage_cost * jnp.asarray(err, float) * mp


def productivity_parity(mp: ArrayLike, params: EconParams) -> Array:
    """MPᵣ / MPₕ."""
    return jnp.asarray(mp, float) / params.human_mp


def wage_parity(wage: ArrayLike, params: EconParams) -> Array:
    """ŵᵣ / wₕ."""
    return jnp.asarray(wage, float) / params.human_wage


def wage_loss(parity: ArrayLike, params: EconParams) -> Array:
    """|ŵᵣ/wₕ − 1|^q: q = 1 is the absolute loss, q = 2 the smooth squared loss."""
    return jnp.abs(jnp.asarray(parity, float) - 1.0) ** params.wage_loss_power


def reward_terms(mp: ArrayLike, prev_mp: ArrayLike, err: ArrayLike, params: EconParams) -> dict[str, Array]:
    """The episode reward r = α·ΔMP − β·e − γ·loss, with its unscaled terms.

    Args:
      mp: MPᵣ of this episode, [...] units/h.
      prev_mp: MPᵣ of the same robot's previous episode, [...] units/h.
      err: error rate of this episode, [...].
      params: EconParams (alpha and gamma are used as they are; apply :func:`with_schedule` first).

    Returns:
      dict with ``delta_mp`` (ΔMPᵣ/MPₕ clipped to ±mp_clip), ``error`` (e), ``wage_loss``
      and ``total``; all unscaled except ``total``.
    """
    mp = jnp.asarray(mp, float)
    err = jnp.asarray(err, float)
    delta = (mp - jnp.asarray(prev_mp, float)) / params.human_mp
    delta = jnp.clip(delta, -params.mp_clip, params.mp_clip)
    loss = wage_loss(wage_parity(implied_wage(mp, err, params), params), params)
    total = params.alpha * delta - params.beta * err - params.gamma * loss
    return {"delta_mp": delta, "error": err, "wage_loss": loss, "total": total}


def scaled_components(terms: Mapping[str, Array], params: EconParams) -> dict[str, Array]:
    """The logged components: reward_mp = α·ΔMP, reward_error = β·e, reward_wage = γ·loss."""
    return {
        "reward_mp": params.alpha * terms["delta_mp"],
        "reward_error": params.beta * terms["error"],
        "reward_wage": params.gamma * terms["wage_loss"],
    }


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


def reward_fn_shapes(fn: RewardFn, params: EconParams) -> Mapping[str, Any]:
    """``fn``'s terms for one robot (scalar float32 inputs), as ``jax.ShapeDtypeStruct`` (nothing runs).

    Raises:
      TypeError: one line naming ``fn`` when it does not return a dict or branches in Python on a
        traced value (``if mp > 0:`` must become ``jnp.where``).
    """
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    try:
        out = jax.eval_shape(fn, scalar, scalar, scalar, params)
    except (jax.errors.TracerBoolConversionError, jax.errors.ConcretizationTypeError) as e:
        kind = type(e).__name__
        raise TypeError(f"reward function {_fn_name(fn)!r} uses a Python if/bool on a traced value ({kind}); "
                        "write the branch with jnp.where") from None
    if not isinstance(out, Mapping):
        raise TypeError(f"reward function {_fn_name(fn)!r} must return a dict, got {type(out).__name__}")
    return out


def check_reward_fn(fn: RewardFn, params: EconParams) -> None:
    """Raises a one-line TypeError naming ``fn`` (and the term) if it breaks the reward contract.

    The contract: a dict with at least :data:`REWARD_KEYS`; every term, the extra ones included,
    is a scalar float per robot (shape ``()``, floating dtype) for scalar inputs, and the function
    is traceable (no Python ``if`` on its inputs).
    """
    out = reward_fn_shapes(fn, params)
    missing = [k for k in REWARD_KEYS if k not in out]
    if missing:
        raise TypeError(f"reward function {_fn_name(fn)!r} lacks keys {missing}; it must return {list(REWARD_KEYS)}")
    for key, term in out.items():
        shape, dtype = getattr(term, "shape", None), getattr(term, "dtype", None)
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"reward function {_fn_name(fn)!r}: term name {key!r} must be an identifier string")
        if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"reward function {_fn_name(fn)!r}: term {key!r} must be a scalar float per robot "
                            f"(shape (), float dtype), got shape {shape} dtype {dtype}")


def reward_extra_names(fn: RewardFn, params: EconParams) -> tuple[str, ...]:
    """Metric names of the terms ``fn`` returns beyond :data:`REWARD_KEYS`: ``reward_extra_<term>``, sorted."""
    return tuple(f"{EXTRA_PREFIX}{k}" for k in sorted(reward_fn_shapes(fn, params)) if k not in REWARD_KEYS)


def metric_names(fn: RewardFn, params: EconParams) -> tuple[str, ...]:
    """The keys of :func:`account`'s metrics with reward function ``fn``: :data:`METRIC_NAMES` then the extras."""
    return METRIC_NAMES + reward_extra_names(fn, params)


def parity_holds(prod_parity: ArrayLike, wage_par: ArrayLike, params: EconParams) -> Array:
    """Both parity conditions: MPᵣ/MPₕ ≥ 1 − ε and |ŵᵣ/wₕ − 1| ≤ δ (bool, shapes broadcast)."""
    return (jnp.asarray(prod_parity) >= params.productivity_threshold) & (
        jnp.abs(jnp.asarray(wage_par) - 1.0) <= params.wage_tolerance
    )


def account(
    counters: Mapping[str, ArrayLike],
    deltas: Mapping[str, ArrayLike],
    prev_mp: ArrayLike,
    last: ArrayLike,
    params: EconParams,
    *,
    shaping: ArrayLike = 0.0,
    money_scale: ArrayLike = 1.0,
    economic_reward: bool = True,
    reward_fn: RewardFn | None = None,
) -> tuple[Array, dict[str, Array]]:
    """One robot's step reward and economic metrics, from its episode counters (the one place they are computed).

    The reward is (money + episode) + shaping: money p·Δunits − cₐ·Δerrors every step (times
    ``money_scale``), the episode reward ``reward_fn(...)["total"]`` on the last step, and the
    task's already scaled shaping reward.

    Args:
      counters: the episode's counters after this step: ``units``, ``errors``, ``attempts``,
        ``work_seconds``, each [] (or any common shape).
      deltas: this step's ``units`` and ``errors``, [].
      prev_mp: MPᵣ of the robot's previous episode, [].
      last: [] bool, whether this is the episode's last step.
      params: EconParams (schedules applied).
      shaping: [] the task's scaled shaping reward.
      money_scale: [] multiplier of the money reward ($ -> reward).
      economic_reward: False (static) zeroes the money and episode parts (reward and metrics).
      reward_fn: the episode reward, signature of :func:`reward_terms` (None: :func:`reward_terms`).

    Returns:
      (reward [] float32, metrics dict float32 with the keys :func:`metric_names` gives for
      ``reward_fn``: counters, MPᵣ, e, ŵᵣ, parities, the reward parts and ``reward_extra_<term>``).
    """
    fn = reward_terms if reward_fn is None else reward_fn
    units, errors = counters["units"], counters["errors"]
    mp = marginal_product(units, counters["work_seconds"])
    err = error_rate(errors, counters["attempts"])
    wage = implied_wage(mp, err, params)
    terms = fn(mp, prev_mp, err, params)
    scaled = scaled_components(terms, params)
    money = (params.price_per_unit * deltas["units"] - params.damage_cost * deltas["errors"]) * money_scale
    episode = jnp.where(last, terms["total"], 0.0)
    if not economic_reward:
        money, episode = jnp.zeros_like(money), jnp.zeros_like(episode)
    reward = money + episode + shaping
    metrics = {
        "units": units,
        "errors": errors,
        "attempts": counters["attempts"],
        "work_seconds": counters["work_seconds"],
        "mp": mp,
        "error_rate": err,
        "implied_wage": wage,
        "productivity_parity": productivity_parity(mp, params),
        "wage_parity": wage_parity(wage, params),
        "reward_money": money,
        "reward_episode": episode,
        **scaled,
        "reward_shaping": shaping,
        **{f"{EXTRA_PREFIX}{k}": terms[k] for k in sorted(terms) if k not in REWARD_KEYS},
    }
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return f32(reward), {k: f32(v) for k, v in metrics.items()}


def _anneal(kind: Array, start: Array, end: Array, progress: Array) -> Array:
    linear = progress
    cosine = 0.5 * (1.0 - jnp.cos(jnp.pi * progress))
    frac = jnp.select([kind == LINEAR, kind == COSINE], [linear, cosine], 0.0)
    return start + (end - start) * frac


def schedule(step: ArrayLike, params: EconParams) -> tuple[Array, Array]:
    """(α, γ) at ``step`` (same unit as ``anneal_steps``), from initial to final values.

    A constant schedule stays at the initial value; linear and cosine reach the final value at
    ``anneal_steps`` and stay there.
    """
    horizon = jnp.maximum(params.anneal_steps, 1e-9)
    progress = jnp.clip(jnp.asarray(step, float) / horizon, 0.0, 1.0)
    alpha = _anneal(params.alpha_schedule, params.alpha_initial, params.alpha_final, progress)
    gamma = _anneal(params.gamma_schedule, params.gamma_initial, params.gamma_final, progress)
    return alpha, gamma


def with_schedule(params: EconParams, step: ArrayLike) -> EconParams:
    """``params`` with alpha and gamma set by :func:`schedule` at ``step``."""
    alpha, gamma = schedule(step, params)
    return params.replace(alpha=alpha, gamma=gamma)


@struct.dataclass
class ConvergenceState:
    """Consecutive evaluations meeting both parity conditions, and whether N were reached."""

    streak: Array
    converged: Array

    @classmethod
    def init(cls, shape: tuple[int, ...] = ()) -> "ConvergenceState":
        return cls(streak=jnp.zeros(shape, jnp.int32), converged=jnp.zeros(shape, bool))


def convergence_update(
    state: ConvergenceState, prod_parity: ArrayLike, wage_par: ArrayLike, params: EconParams
) -> ConvergenceState:
    """One evaluation: productivity parity ≥ 1−ε and |wage parity − 1| ≤ δ extend the streak.

    ``converged`` latches once the streak reaches ``eval_window``.
    """
    ok = parity_holds(prod_parity, wage_par, params)
    streak = jnp.where(ok, state.streak + 1, 0)
    return ConvergenceState(streak=streak, converged=state.converged | (streak >= params.eval_window))


# ----------------------------------------------------------------------------- data economics


def kappa(mean: ArrayLike, lower: ArrayLike, floor: ArrayLike) -> Array:
    """Confidence discount κ = lower/mean clipped to [floor, 1]; κ = floor where mean ≤ 0."""
    mean = jnp.asarray(mean, float)
    lower = jnp.asarray(lower, float)
    floor = jnp.asarray(floor, float)
    safe = jnp.where(mean > 0, mean, 1.0)
    return jnp.where(mean > 0, jnp.clip(lower / safe, floor, 1.0), floor)


def noshare_premium(p: ArrayLike, kappa_: ArrayLike, expected_gain: ArrayLike, horizon: ArrayLike, sharing: ArrayLike) -> Array:
    """P_noshare = p·κ·E[ΔMPL]·H·S in $ (S = 0 full share, 1 no share)."""
    return (
        jnp.asarray(p, float)
        * jnp.asarray(kappa_, float)
        * jnp.asarray(expected_gain, float)
        * jnp.asarray(horizon, float)
        * jnp.asarray(sharing, float)
    )


def trueup(ex_ante: ArrayLike, realized: ArrayLike) -> Array:
    """Ex-post true-up = quoted − realized premium: positive is a refund, negative a further bill."""
    return jnp.asarray(ex_ante, float) - jnp.asarray(realized, float)


__all__ = [
    "EconParams", "ConvergenceState", "RewardFn", "REWARD_KEYS", "METRIC_NAMES", "EXTRA_PREFIX", "CONSTANT",
    "LINEAR", "COSINE", "marginal_product", "error_rate", "implied_wage", "productivity_parity",
    "wage_parity", "wage_loss", "reward_terms", "scaled_components", "check_reward_fn", "reward_fn_shapes",
    "reward_extra_names", "metric_names", "parity_holds", "account", "schedule", "with_schedule",
    "convergence_update", "kappa", "noshare_premium", "trueup",
]
