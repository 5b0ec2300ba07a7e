"""Realized value of demonstrations by counterfactual retraining (a linear datamodel), in one jitted program.

The valuation engine predicts what a datapoint adds to a robot's marginal product; this module measures
it. A pool of N datapoints (demonstration episodes: observations and the actions to imitate) is split into
M random subsets, each keeping a datapoint with probability ``alpha``. One student is trained by behaviour
cloning per subset -- all M at once, ``jax.vmap`` over the [M, N] inclusion masks -- and each is evaluated
on the same held-out scenes (deterministic, MPᵣ in units/h). The realized gain of datapoint n is the
coefficient of a ridge regression of MPᵣ on the centred inclusion indicators (the datamodel of TRAK's
linear datamodeling score): the MPᵣ a subset gains on average when it holds n. Its noise is reported by a
bootstrap over the M retrains.

Pool kinds (:func:`demonstration_pool`):

* ``clean`` — the expert acts and labels;
* ``noisy`` — Gaussian noise on the labels;
* ``reversed`` — the expert's actions negated (a planted harmful datapoint);
* ``rushed`` — the demonstrator acts and labels at full speed (doubled actions, clipped): it breaks
  what the expert would not (a demonstration that contains errors);
* ``slips`` — a demonstration whose labels are wrong (the expert's action negated) on some of its steps,
  graded: the j-th of the pool's n ``slips`` datapoints errs on a fraction (j + 1) / (n + 1) of its steps,
  drawn at random (a dose of harm that rises across the kind, so the true gains differ by more than the
  retraining noise);
* ``duplicate`` — a near-copy (labels + 1e-3 noise) of the last earlier non-duplicate datapoint;
* ``shifted`` — a clean demonstration on a scene of a shifted distribution (``shifted_params``);
* ``correction`` — a DAgger correction: the states a robot that is not the expert visits, each labelled
  with the expert's action there. The robot is ``actor`` (in the study, the deployed student) or, without
  one, the expert with Gaussian noise of std ``drift`` on the actions it executes (its labels stay clean):
  off the expert's path, the states a learner drifts into and the way back from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vpjax.schema import FieldError

from .acting import evaluate_actor
from .networks import MLP

KINDS = ("clean", "noisy", "reversed", "slips", "rushed", "duplicate", "shifted", "correction")
OUTCOMES = ("mp", "error_rate", "implied_wage")  # what each retrained student is measured by


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """Settings of the counterfactual retraining.

    Attributes:
      subsets: M retrained students.
      alpha: probability that a subset holds each datapoint.
      hidden: the student MLP's hidden sizes.
      sgd_steps: Adam minibatch steps per student.
      batch_size: rows per minibatch (drawn among the subset's rows).
      learning_rate: Adam step size.
      eval_envs: held-out robots each student is evaluated on (the same scenes for all).
      ridge: L2 penalty of the datamodel fit.
      bootstrap: resamples of the M retrains for the interval of each gain.
      seeds: training seeds the subsets share (common random numbers): subset m trains with seed
        ``m % seeds``, i.e. the same initial weights and the same minibatch noise as every other subset of
        its seed, so two students of a seed differ by their data alone (minibatch rows are drawn by
        Gumbel-max over the subset's rows with shared noise: adding a datapoint changes only the draws
        that land on it). 0: every subset its own seed.
    """

    subsets: int = 32
    alpha: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    sgd_steps: int = 300
    batch_size: int = 256
    learning_rate: float = 3e-3
    eval_envs: int = 32
    ridge: float = 1.0
    bootstrap: int = 200
    seeds: int = 0

    def __post_init__(self):
        for name, ok, rule in [("subsets", self.subsets >= 2, "must be >= 2"),
                               ("alpha", 0.0 < self.alpha < 1.0, "must be in (0, 1)"),
                               ("sgd_steps", self.sgd_steps >= 1, "must be >= 1"),
                               ("batch_size", self.batch_size >= 1, "must be >= 1"),
                               ("learning_rate", self.learning_rate > 0, "must be > 0"),
                               ("eval_envs", self.eval_envs >= 1, "must be >= 1"),
                               ("ridge", self.ridge >= 0, "must be >= 0"),
                               ("bootstrap", self.bootstrap >= 0, "must be >= 0"),
                               ("seeds", self.seeds >= 0, "must be >= 0")]:
            if not ok:
                raise FieldError("retrain", name, getattr(self, name), rule)


def demonstration_pool(env, expert: Callable, key, kinds: list[str], steps: int | None = None,
                       noise: float = 0.3, shifted_params=None, actor: Callable | None = None,
                       drift: float = 0.5) -> dict:
    """One demonstration episode per entry of ``kinds``, each on its own scene.

    Args:
      expert: ``(state, key, params) -> action`` (one robot).
      kinds: the kind of each datapoint (see the module docstring).
      steps: control steps per demonstration (default: the episode).
      noise: std of the ``noisy`` kind's label noise.
      shifted_params: the env params the ``shifted`` kind's scenes are drawn with.
      actor: ``obs [O] -> action [A]``, the robot whose states a ``correction`` labels (deterministic);
        None: the expert, its executed actions perturbed by Gaussian noise of std ``drift``.

    Returns:
      {'obs' [N, T, obs], 'act' [N, T, action] (the labels), 'kind' [N] str, 'id' [N] str (content hash)}.

    Raises:
      ValueError: an unknown kind, a ``duplicate`` with nothing before it, or ``shifted`` without params.
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kinds: unknown {bad}; use {KINDS}")
    if "shifted" in kinds and shifted_params is None:
        raise ValueError("kinds: 'shifted' needs shifted_params (the env params of the shifted scenes)")
    steps = steps or env.episode_length
    kind = np.asarray(kinds)
    source = _duplicate_sources(kinds)

    corrects = "correction" in kinds

    def episode(k, rush, correct, params):
        k_reset, k_run = jax.random.split(k)
        s0 = env.reset(k_reset, params)

        def body(s, kk):
            a = expert(s, kk, params)
            a = jnp.where(rush, jnp.clip(2.0 * a, -1.0, 1.0), a)
            if not corrects:
                return env.step(s, a, params), (s.obs, a)
            if actor is None:  # the expert, drifting: the label is its clean action, the step a perturbed one
                drive = jnp.clip(a + drift * jax.random.normal(jax.random.fold_in(kk, 1), a.shape), -1.0, 1.0)
            else:
                drive = actor(s.obs)
            return env.step(s, jnp.where(correct, drive, a), params), (s.obs, a)

        _, (obs, act) = jax.lax.scan(body, s0, jax.random.split(k_run, steps))
        return obs, act

    run = jax.jit(jax.vmap(episode, (0, 0, 0, None)))
    k_eps, k_noise = jax.random.split(key)
    keys = jax.random.split(k_eps, len(kinds))
    obs, act = run(keys, jnp.asarray(kind == "rushed"), jnp.asarray(kind == "correction"), env.default_params)
    if "shifted" in kinds:
        none = jnp.zeros(len(kinds), bool)
        o2, a2 = run(keys, none, none, shifted_params)
        sel = jnp.asarray(kind == "shifted")[:, None, None]
        obs, act = jnp.where(sel, o2, obs), jnp.where(sel, a2, act)
    noise_rows = jax.random.normal(k_noise, act.shape)
    act = jnp.where((kind == "noisy")[:, None, None], jnp.clip(act + noise * noise_rows, -1.0, 1.0), act)
    act = jnp.where((kind == "reversed")[:, None, None], -act, act)
    act = jnp.where(slip_steps(jax.random.fold_in(k_noise, 1), kind, act.shape[1])[:, :, None], -act, act)
    obs, act = obs[source], act[source]  # a duplicate takes its source's demonstration, labels included
    act = jnp.where((kind == "duplicate")[:, None, None], act + 1e-3 * noise_rows, act)
    obs_np, act_np = np.asarray(obs, np.float32), np.asarray(act, np.float32)
    ids = [hashlib.sha256(o.tobytes() + a.tobytes()).hexdigest()[:16] for o, a in zip(obs_np, act_np)]
    return {"obs": obs_np, "act": act_np, "kind": kind, "id": np.asarray(ids)}


def slip_fraction(kinds) -> np.ndarray:
    """[N] the fraction of steps each datapoint errs on: (j + 1) / (n + 1) for the j-th of n ``slips``, else 0."""
    slips = np.asarray(kinds) == "slips"
    frac = np.zeros(len(slips))
    frac[slips] = (np.arange(slips.sum()) + 1.0) / (slips.sum() + 1.0)
    return frac


def slip_steps(key, kinds, steps: int) -> jax.Array:
    """[N, T] bool: the steps whose labels a ``slips`` datapoint reverses (``slip_fraction`` of them, at random)."""
    frac = jnp.asarray(slip_fraction(kinds), jnp.float32)
    n = len(frac)
    order = jnp.argsort(jax.random.uniform(key, (n, steps)), axis=1)  # a random permutation of the steps per row
    rank = jnp.argsort(order, axis=1)
    return rank < jnp.round(frac[:, None] * steps)


def _duplicate_sources(kinds: list[str]) -> np.ndarray:
    """[N] index of the episode each datapoint shows: itself, or for a duplicate its source."""
    source, last = [], None
    for i, k in enumerate(kinds):
        if k == "duplicate":
            if last is None:
                raise ValueError(f"kinds[{i}]: a 'duplicate' needs an earlier non-duplicate datapoint to copy")
            source.append(last)
        else:
            source.append(i)
            last = i
    return np.asarray(source)


def subset_masks(key, num_points: int, cfg: RetrainConfig) -> jax.Array:
    """[M, N] float 0/1: datapoint n is in subset m with probability alpha (each subset holds at least one)."""
    masks = jax.random.bernoulli(key, cfg.alpha, (cfg.subsets, num_points)).astype(jnp.float32)
    first = jax.nn.one_hot(jnp.arange(cfg.subsets) % num_points, num_points)
    return jnp.where(masks.sum(1, keepdims=True) > 0, masks, first)


class Student(NamedTuple):
    """A trained policy the retrained students start from (instead of a fresh MLP).

    Attributes:
      params: its parameters (any pytree); every subset's student starts from them.
      apply: ``(params, obs [B, O]) -> actions [B, A]`` in [-1, 1], deterministic (its own normalization inside).
      loss: ``(params, obs [B, O], act [B, A]) -> scalar``, the behaviour-cloning loss it is fine-tuned with.
      base_obs, base_act: rows every student keeps training on beside its subset's (e.g. the student's
        own DAgger buffer), half of each minibatch; None: the subset's rows only.
    """

    params: Any
    apply: Callable
    loss: Callable
    base_obs: Any = None
    base_act: Any = None


def make_retrain(env, cfg: RetrainConfig, num_points: int, steps: int, student: Student | None = None) -> Callable:
    """Builds ``retrain(key, obs [N, T, O], act [N, T, A], masks [M, N]) -> outcomes`` (jitted).

    ``outcomes`` holds each student's held-out ``mp`` (MPᵣ, units/h), ``error_rate`` and
    ``implied_wage`` (ŵᵣ, $/h), [M] each.

    Each subset's student is an MLP trained by behaviour cloning (MSE of tanh(output) to the labels, rows
    of the subset's datapoints only; observations scaled by the pool's mean and std) and evaluated
    deterministically on ``cfg.eval_envs`` held-out robots, one episode each. With ``student``, every
    subset's student is instead that policy fine-tuned on the subset's rows (``cfg.sgd_steps`` Adam steps
    of ``student.loss``; with ``student.base_obs``, half of each minibatch from those rows): the gain of
    a datapoint is then what it adds to a robot that already works, which is how a correction or a new
    demonstration reaches a deployed policy.
    """
    net = MLP(tuple(cfg.hidden), env.action_size)
    opt = optax.adam(cfg.learning_rate)
    rows = num_points * steps

    with_base = student is not None and student.base_obs is not None
    half = cfg.batch_size // 2 if with_base else cfg.batch_size  # minibatch rows from the subset

    def policy(p, obs, mean, std):
        """A student's deterministic actions: a fresh MLP on the pool-scaled obs, or ``student.apply``."""
        return jnp.tanh(net.apply(p, (obs - mean) / std)) if student is None else student.apply(p, obs)

    def train_one(key, obs, act, mask, mean, std):
        k_init, k_fit = jax.random.split(key)
        row_w = jnp.repeat(mask, steps)  # [rows]
        # the subset's rows first (a stable sort keeps their order), so a uniform draw among its first
        # ``count`` entries picks a row of the subset uniformly; a categorical draw over all rows would cost
        # a Gumbel sample per pool row per minibatch row (most of the study's time on a CPU)
        members, count = jnp.argsort(-row_w, stable=True), jnp.sum(row_w).astype(jnp.int32)
        if student is None:
            params = net.init(k_init, jnp.zeros((1, env.observation_size)))
            row_loss = lambda p, o, a: jnp.mean((policy(p, o, mean, std) - a) ** 2)  # noqa: E731
        else:
            params, row_loss = student.params, student.loss
        if with_base:
            base_o, base_a = jnp.asarray(student.base_obs), jnp.asarray(student.base_act)

        def draw(k):  # the first ``half`` rows from the subset, the rest (if any) from the base rows
            if not with_base:
                return members[jax.random.randint(k, (half,), 0, count)]
            k1, k2 = jax.random.split(k)
            return jnp.concatenate([members[jax.random.randint(k1, (half,), 0, count)],
                                    jax.random.randint(k2, (cfg.batch_size - half,), 0, len(base_o))])

        def loss(p, idx):
            subset = row_loss(p, obs[idx[:half]], act[idx[:half]])
            return 0.5 * (subset + row_loss(p, base_o[idx[half:]], base_a[idx[half:]])) if with_base else subset

        def step(carry, k):
            p, o = carry
            idx = draw(k)
            g = jax.grad(loss)(p, idx)
            u, o = opt.update(g, o, p)
            return (optax.apply_updates(p, u), o), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(k_fit, cfg.sgd_steps))
        return params

    def evaluate_all(params, key, mean, std, m):
        """Every student on the same ``cfg.eval_envs`` scenes, as one batch of M x E robots (one env step
        program for all; a vmap of per-student rollouts made the MJX compile far slower)."""
        e = cfg.eval_envs
        keys = jnp.tile(jax.random.split(key, e), (m, 1))

        def actor(s, _):
            obs = s.obs.reshape(m, e, -1)
            return jax.vmap(policy, (0, 0, None, None))(params, obs, mean, std).reshape(m * e, -1)

        final = evaluate_actor(env, env.default_params, actor, None, m * e, keys=keys, per_robot=True)
        return {k: jnp.mean(final[k].astype(jnp.float32).reshape(m, e), axis=1) for k in OUTCOMES}

    @jax.jit
    def retrain(key, obs, act, masks):
        flat_o = obs.reshape(rows, -1)
        flat_a = act.reshape(rows, -1)
        mean, std = flat_o.mean(0), flat_o.std(0) + 1e-6
        k_train, k_eval = jax.random.split(key)
        params = jax.vmap(train_one, (0, None, None, 0, None, None))(
            train_keys(k_train, masks.shape[0], cfg.seeds), flat_o, flat_a, masks, mean, std)
        return evaluate_all(params, k_eval, mean, std, masks.shape[0])  # same scenes for all

    return retrain


def train_keys(key, m: int, seeds: int) -> jax.Array:
    """[M] training keys: ``seeds`` > 0 gives subset m the key of seed ``m % seeds`` (shared), 0 each its own."""
    if seeds <= 0:
        return jax.random.split(key, m)
    return jax.random.split(key, seeds)[jnp.arange(m) % seeds]


def seed_groups(m: int, seeds: int) -> np.ndarray:
    """[M] the training seed of each subset (``train_keys``); with ``seeds`` 0 each subset is its own group."""
    return np.arange(m) % seeds if seeds > 0 else np.arange(m)


def datamodel(masks, outcomes, ridge: float = 1.0, groups=None) -> np.ndarray:
    """[N] ridge coefficients of ``outcomes`` [M] on the centred inclusion indicators ``masks`` [M, N].

    ``groups`` [M] (the subsets' shared training seeds): centre within each group instead, so a seed's own
    level (its initial weights, its minibatch noise) is a fixed effect and not part of any gain. Groups of
    one subset are centred over all subsets (they carry no within-group contrast).
    """
    x = np.asarray(masks, np.float64)
    y = np.asarray(outcomes, np.float64)
    g = np.zeros(len(y), int) if groups is None else np.asarray(groups)
    if np.bincount(np.unique(g, return_inverse=True)[1]).min() < 2:
        g = np.zeros(len(y), int)
    xc, yc = x.copy(), y.copy()
    for v in np.unique(g):
        sel = g == v
        xc[sel] -= x[sel].mean(0)
        yc[sel] -= y[sel].mean()
    return np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)


def realized_gains(masks, outcomes, cfg: RetrainConfig, seed: int = 0) -> dict:
    """Realized gain per datapoint with a bootstrap interval (``cfg.seeds`` > 0: a datamodel centred within
    each training seed, resampled within each seed).

    Returns:
      {'gain' [N], 'lo' [N], 'hi' [N]} (10th and 90th percentiles of ``cfg.bootstrap`` resamples of the
      M retrains; gain itself when bootstrap is 0).
    """
    masks, outcomes = np.asarray(masks), np.asarray(outcomes)
    groups = seed_groups(len(outcomes), cfg.seeds)
    gain = datamodel(masks, outcomes, cfg.ridge, groups)
    if cfg.bootstrap == 0:
        return {"gain": gain, "lo": gain, "hi": gain}
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == v) for v in np.unique(groups)] if cfg.seeds > 0 else [np.arange(len(outcomes))]

    def resample():
        return np.concatenate([rng.choice(idx, len(idx)) for idx in members])

    boots = np.stack([datamodel(masks[i], outcomes[i], cfg.ridge, groups[i])
                      for i in (resample() for _ in range(cfg.bootstrap))])
    return {"gain": gain, "lo": np.percentile(boots, 10, axis=0), "hi": np.percentile(boots, 90, axis=0)}


__all__ = ["KINDS", "OUTCOMES", "RetrainConfig", "Student", "datamodel", "demonstration_pool", "make_retrain",
           "realized_gains", "seed_groups", "slip_fraction", "slip_steps", "subset_masks", "train_keys"]
