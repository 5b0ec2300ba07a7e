"""Are the data prices true? The valuation engine's quotes against value measured by retraining.

``python -m train.economic_truth --env envs.point:PointDeliver --out runs/truth_point`` (the CLI is
:mod:`train.economic_truth_cli`)

1. A pool of demonstrations of several kinds (:func:`train.datamodels.demonstration_pool`). The ``slips``
   carry a planted dose of harm (the share of steps whose labels they reverse): a ranking known without
   retraining, against which the record checks both the realized gains and the predictions. The
   ``correction`` datapoints are DAgger corrections of the deployed student (the states it visits,
   labelled by the expert), or of a drifting expert when the students start fresh.
2. Realized ΔMPL of each by counterfactual retraining: M students on random subsets, all in one
   jitted program, and a ridge datamodel (:mod:`train.datamodels`); split-half reliability from
   the gains of the first and the second half of the retrains.
3. The engine's features of each datapoint: ``novelty_score`` (leave-one-out embedding novelty of its
   standardized observation-action rows against the other datapoints', :mod:`valuation.novelty`)
   and ``causal_gain``: TracIn of its rows, the gradient similarity of each row's loss with the
   validation loss averaged over the checkpoints of a behaviour-cloning ensemble trained on the pool
   (:func:`valuation.causal_gain.tracin_checkpoints`; the validation rows are clean expert rows of
   fresh scenes). A datapoint's TracIn is the sum of its rows' (influence adds over a group); it is
   clipped at 0 (the engine's feature is non-negative) and reported unclipped as ``tracin_signed``.

   What was tried (the test's point pool, 21 demonstrations, 3 of them with reversed actions):
   TracIn at the converged ensemble only, each row clipped at 0
   (:func:`valuation.causal_gain.prediction_error_reduction`), scored the reversed demonstrations as
   high as clean ones (0.9-1.7 vs 0.0-2.5) and the cross-fitted predictions ranked them above the
   median clean one. Over checkpoints 0-300 their TracIn is negative at every checkpoint. The cosine
   form ranked the realized gains better than raw dot products (Spearman 0.48-0.55 vs 0.36-0.52
   over three ensemble seeds). The row mean instead of the sum put causal_gain at ~0.1 beside
   novelty's ~1.5, and the value model's isotropic prior then all but ignored it (predicted
   reversed 0.16, -0.26, -0.76 vs a clean median of -0.01; with the sum -1.1, -1.1, -2.5 vs 0.4).
4. Cross-fitted quotes: the value model (:func:`valuation.quote.quote_batch`) is fitted on the other
   folds' features and realized gains and quotes the fold (E[ΔMPL], interval, κ, tier, premium).
5. A second retraining call (same M rows, so nothing recompiles): the full pool minus its top-,
   random- and bottom-valued k% (the removal curve), leave-one-out rows for a few datapoints, and
   fresh random subsets for the LDS.
6. :func:`valuation.truth.scorecard`: Spearman, LDS, coverage, tier confusion, true-ups, against goals.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from envs.batching import vmap_robots
from valuation import causal_gain as cg, truth
from valuation.novelty import embedding_novelty

from .acting import evaluate_actor
from .datamodels import (RetrainConfig, Student, datamodel, demonstration_pool, make_retrain, realized_gains,
                         seed_groups, slip_fraction, subset_masks)

DEFAULT_POOL = (("clean", 12), ("slips", 10), ("noisy", 4), ("reversed", 2), ("rushed", 3), ("duplicate", 4),
                ("shifted", 5), ("correction", 4))


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Settings of the study (the retraining ones in ``retrain``).

    Attributes:
      pool: (kind, count) pairs; the datapoints are shuffled (a duplicate copies an earlier one).
      removal: fractions k of the pool removed by predicted value (top, random, bottom).
      repeats: retrains of each removal and leave-one-out row.
      loo: datapoints checked by leave-one-out.
      folds: cross-fitting folds of the value model.
      val_episodes: clean expert episodes of fresh scenes (the causal-gain validation rows).
      causal: what the value model's ``causal_gain`` is: ``ensemble`` (TracIn over a behaviour-cloning
        ensemble trained on the pool, validated on clean expert rows) or ``student`` (TracIn on the
        deployed student itself, validated on the states it visits: :func:`student_tracin`; needs a
        student with base rows).
    """

    pool: tuple = DEFAULT_POOL
    retrain: RetrainConfig = RetrainConfig(subsets=64)
    removal: tuple[float, ...] = (0.1, 0.2, 0.3)
    repeats: int = 2
    loo: int = 4
    folds: int = 4
    val_episodes: int = 4
    causal: str = "ensemble"
    seed: int = 0

    def __post_init__(self):
        if self.causal not in ("ensemble", "student"):
            raise ValueError(f"causal (--causal) = {self.causal!r}: one of ensemble, student")

    def kinds(self) -> list[str]:
        kinds = [k for k, n in self.pool for _ in range(int(n))]
        order = np.random.default_rng(self.seed).permutation(len(kinds))
        kinds = [kinds[i] for i in order]
        first = next(i for i, k in enumerate(kinds) if k != "duplicate")
        kinds[0], kinds[first] = kinds[first], kinds[0]
        return kinds


def warm_start_student(env, expert, rounds: int, seed: int = 0, num_envs: int = 16, sgd_steps: int = 1500,
                       log=print) -> tuple[Student, dict]:
    """A student that already does the job, for the retrained students to start from: ``rounds`` rounds of
    DAgger (:func:`train.imitation_run.run_imitation`; the PPO policy network, 3 x 256) on ``env``. Its
    DAgger buffer comes along as the base rows each retrained student keeps training on, so a subset's
    demonstrations are added to what the deployed student knows rather than replacing it.

    Args:
      expert: ``(state, params) -> action`` (one robot; :func:`envs.experts.make_expert`).

    Returns:
      (the :class:`train.datamodels.Student`, its evaluation on 8 held-out robots: mp, error_rate, ...).
    """
    from .acting import curriculum_end, policy_fn
    from .config import PPOConfig
    from .imitation import ImitationConfig
    from .imitation_run import run_imitation

    ppo_cfg = PPOConfig(policy_hidden=(256, 256, 256), value_hidden=(32,))
    cfg = ImitationConfig(rounds=rounds, num_envs=num_envs, beta_schedule=(1.0, 0.5, 0.0), sgd_steps=sgd_steps,
                          batch_size=512, balance=0.0, num_eval_envs=8, seed=seed)
    params = curriculum_end(env.default_params)
    log(f"warm start: {rounds} DAgger rounds x {num_envs} robots")
    res = run_imitation(cfg, ppo_cfg, env, params, expert, progress=False, log=lambda *_: None)
    act, norm = policy_fn(ppo_cfg, env.observation_size, env.action_size), res.state.norm

    def apply(p, obs):
        return act(p, norm, obs)

    def loss(p, obs, act):
        return jnp.mean((apply(p, obs) - act) ** 2)

    buf = jax.device_get(res.state.buffer)
    keep = np.asarray(buf.valid) > 0
    ev = {k: float(v) for k, v in (res.final_eval or {}).items()}
    log(f"warm start: the student alone racks MPr {ev.get('mp', float('nan')):.1f} units/h "
        f"(e {ev.get('error_rate', float('nan')):.3f}) on 8 held-out robots")
    student = Student(params=res.state.params, apply=apply, loss=loss, base_obs=np.asarray(buf.obs)[keep],
                      base_act=np.asarray(buf.act)[keep])
    return student, ev


def on_policy_rows(env, actor, expert, key, robots: int, steps: int, params=None) -> dict:
    """The states a policy visits, labelled by the expert (one DAgger round at beta 0): ``robots`` fresh
    scenes, ``steps`` control steps each, the policy acting (:func:`train.acting.evaluate_actor`'s loop:
    a robot whose episode ends early stays at its last state).

    Args:
      actor: ``obs [O] -> action [A]`` (the deployed policy, deterministic).
      expert: ``(state, key, params) -> action`` (one robot).

    Returns:
      {'obs' [R, T, O], 'act' [R, T, A] (the expert's labels), 'mp' [R] (the policy's MPᵣ on these scenes)}.
    """
    params = env.default_params if params is None else params
    per_robot = jax.vmap(jax.random.split)(jax.random.split(key, robots))  # [R, 2]: scene key, label key

    def label(s, t):
        ks = jax.vmap(jax.random.fold_in, (0, None))(per_robot[:, 1], t)
        return s.obs, vmap_robots(expert, (0, 0, None))(s, ks, params)  # as imitation batches the expert

    @jax.jit
    def run():
        return evaluate_actor(env, params, lambda s, _: jax.vmap(actor)(s.obs), None, robots, keys=per_robot[:, 0],
                              steps=steps, per_robot=True, record=label)

    final, (obs, act) = run()
    return {"obs": np.asarray(obs, np.float32).swapaxes(0, 1), "act": np.asarray(act, np.float32).swapaxes(0, 1),
            "mp": np.asarray(final["mp"])}


def student_from_policy(env, spec, expert, robots: int = 16, seed: int = 0, log=print) -> tuple[Student, dict]:
    """A deployed policy (``python -m train`` run folder or ``policy.msgpack``) as the retrained students'
    start, instead of :func:`warm_start_student`'s DAgger rounds.

    The students are fine-tuned with the loss the run was trained with (``imitation.loss`` of its
    config.json: ``l1`` or ``mse``; PPO runs: mse). Their base rows are the states the policy visits on
    ``robots`` fresh scenes of a full episode, labelled by the expert: what a DAgger round would add.

    Returns:
      (the Student, {'mp': the policy's mean MPᵣ on those scenes, 'rows': base rows}).
    """
    from .acting import policy_fn
    from .config import PPOConfig
    from .policy_file import _source_config, load_policy, policy_path, policy_template

    path = policy_path(spec)
    conf = _source_config(path)
    if "ppo" not in conf:
        raise ValueError(f"--init {spec}: no config.json with the run's ppo settings beside {path}")
    cfg = PPOConfig(**conf["ppo"])
    try:
        loaded = load_policy(path, policy_template(cfg, env.observation_size, env.action_size))
        params, norm = jax.tree.map(lambda x: jnp.asarray(x)[0],  # member 0's actor (the critic is not tuned)
                                    ({"policy": loaded["params"]["policy"]}, loaded["norm"]))
        act = policy_fn(cfg, env.observation_size, env.action_size)
        act(params, norm, jnp.zeros((env.observation_size,)))
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"--init {spec}: its policy does not fit this env (observation {env.observation_size}, "
                         f"action {env.action_size}): {e}") from None
    kind = (conf.get("imitation") or {}).get("loss", "mse") if conf.get("algorithm") == "dagger" else "mse"

    def apply(p, obs):
        return act(p, norm, obs)

    def loss(p, obs, a):
        err = apply(p, obs) - a
        return jnp.mean(jnp.abs(err)) if kind == "l1" else jnp.mean(err ** 2)

    rows = on_policy_rows(env, lambda o: apply(params, o), expert, jax.random.PRNGKey(seed + 77), robots,
                          env.episode_length)
    log(f"--init {spec}: the policy racks MPr {rows['mp'].mean():.1f} units/h on {robots} fresh scenes; "
        f"its {robots * env.episode_length} visited states, labelled by the expert, are the students' base rows "
        f"(fine-tuned with {kind})")
    student = Student(params=params, apply=apply, loss=loss, base_obs=rows["obs"].reshape(-1, env.observation_size),
                      base_act=rows["act"].reshape(-1, env.action_size))
    return student, {"mp": float(rows["mp"].mean()), "rows": rows}


def _rows(pool) -> np.ndarray:
    """[N, T, O + A] standardized observation-action rows."""
    x = np.concatenate([pool["obs"], pool["act"]], axis=-1)
    flat = x.reshape(-1, x.shape[-1])
    return (x - flat.mean(0)) / (flat.std(0) + 1e-6)


def engine_features(pool, val, key) -> tuple[np.ndarray, np.ndarray]:
    """([N, 2] novelty_score, causal_gain; [N] signed TracIn) of each datapoint (module docstring, step 3)."""
    rows = jnp.asarray(_rows(pool))
    n, t, d = rows.shape
    nov = embedding_novelty(d, k=5, capacity=(n - 1) * t, members=4, embed_dim=16)
    k_nov, k_ens, k_fit = jax.random.split(key, 3)
    state0 = nov.init(k_nov)

    def loo_novelty(i):
        others = jnp.arange(n - 1) + (jnp.arange(n - 1) >= i)
        st = nov.update(state0, rows[others].reshape(-1, d))
        return jnp.mean(nov.score(st, rows[i]).novelty)

    novelty = jax.jit(lambda: jax.lax.map(loo_novelty, jnp.arange(n)))()
    obs, act = pool["obs"].reshape(n * t, -1), pool["act"].reshape(n * t, -1)
    cfg = cg.EnsembleConfig(in_dim=obs.shape[1], out_dim=act.shape[1], members=4, hidden=(64, 64))
    v_obs, v_act = val["obs"].reshape(-1, obs.shape[1]), val["act"].reshape(-1, act.shape[1])
    _, per_row = cg.tracin_checkpoints(k_fit, cg.init(k_ens, cfg), obs, act, v_obs, v_act, cfg, cosine=True)
    signed = np.asarray(per_row).reshape(n, t).sum(1)  # TracIn of a group of rows is the sum of theirs
    causal = np.maximum(signed, 0.0)  # the engine's causal_gain is >= 0; a harmful datapoint scores 0
    return np.stack([np.asarray(novelty, float), causal], axis=1), signed


def student_tracin(student: Student, pool, val, chunk: int = 512, max_val: int = 8192, seed: int = 0) -> np.ndarray:
    """[N] signed TracIn of each datapoint on the deployed student itself: the cosine between each row's
    gradient of ``student.loss`` at the student's parameters and the gradient of the loss on ``val`` (the
    states the student visits, labelled by the expert: :func:`on_policy_rows`), summed over the
    datapoint's rows. A row whose label would move the student towards the expert on its own states
    scores > 0.

    ``val`` rows beyond ``max_val`` are subsampled; rows are processed ``chunk`` at a time.

    One checkpoint only, so it measures the direction in which the student still errs on its own states.
    Where it hardly errs the cosines are noise: on the point task (40 rows per demonstration) it did not
    rank a reversed demonstration below the clean ones for students trained 10-300 steps
    (benchmarks/results/economic_truth_point.md); on dishwashing (1,500 rows) it did.
    """
    flat = jax.flatten_util.ravel_pytree
    v_obs = np.asarray(val["obs"]).reshape(-1, np.shape(val["obs"])[-1])
    v_act = np.asarray(val["act"]).reshape(-1, np.shape(val["act"])[-1])
    if len(v_obs) > max_val:
        pick = np.random.default_rng(seed).choice(len(v_obs), max_val, replace=False)
        v_obs, v_act = v_obs[pick], v_act[pick]
    g_val = flat(jax.grad(student.loss)(student.params, jnp.asarray(v_obs), jnp.asarray(v_act)))[0]
    g_val = g_val / (jnp.linalg.norm(g_val) + 1e-12)

    def row_cos(o, a):
        g = flat(jax.grad(student.loss)(student.params, o[None], a[None]))[0]
        return g @ g_val / (jnp.linalg.norm(g) + 1e-12)

    n, t = pool["obs"].shape[:2]
    obs = pool["obs"].reshape(n * t, -1)
    act = pool["act"].reshape(n * t, -1)
    pad = (-len(obs)) % chunk
    obs = np.concatenate([obs, np.zeros((pad, obs.shape[1]), obs.dtype)])
    act = np.concatenate([act, np.zeros((pad, act.shape[1]), act.dtype)])
    run = jax.jit(lambda o, a: jax.lax.map(lambda oa: jax.vmap(row_cos)(*oa), (o, a)))
    cos = np.asarray(run(jnp.asarray(obs.reshape(-1, chunk, obs.shape[1])),
                         jnp.asarray(act.reshape(-1, chunk, act.shape[1])))).reshape(-1)[: n * t]
    return cos.reshape(n, t).sum(1)


def cross_fit_quotes(features, gains, ids, settings, folds: int, seed: int = 0, strata=None):
    """Quotes of every datapoint by a value model fitted on the other folds (``quote_batch``).

    ``strata`` [N] (e.g. the kinds) spreads each stratum over the folds, so every fold's history holds
    datapoints of each kind it has at least ``folds`` of.

    Returns:
      (quotes in datapoint order, {'mean', 'lower', 'upper', 'kappa', 'raw_mean', 'raw_lower', 'raw_upper'}
      [N] each). ``mean``, ``lower``, ``upper`` are the quotes' (clipped at 0, as priced); ``raw_*`` the
      value model's own prediction and interval (``raw_mean`` ± z·std, z the Normal quantile of
      ``confidence_level``), negative values kept: what a raw realized gain is scored against. ``fitted``
      is 0 where the fold's history held fewer than ``min_samples_for_fit`` rows: that quote is E[ΔMPL] = 0
      at the κ floor, and its interval has zero width around the unfitted model's raw mean.
    """
    from valuation.quote import quote_batch

    n = len(gains)
    rng = np.random.default_rng(seed)
    strata = np.zeros(n, int) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    fold = np.zeros(n, int)
    start = 0
    for s_ in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == s_))
        fold[members] = (start + np.arange(len(members))) % folds
        start += len(members)
    quotes, pred = [None] * n, {k: np.zeros(n) for k in ("mean", "lower", "upper", "kappa", "raw_mean", "std",
                                                         "fitted")}
    for f in range(folds):
        test, hist = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        batch = quote_batch(features[hist], gains[hist], [ids[i] for i in test], features[test],
                            [False] * len(test), settings)
        for j, i in enumerate(test):
            quotes[i] = batch.quotes[j]
        for k in pred:
            pred[k][test] = np.asarray(getattr(batch.prediction, k))
    z = float(jax.scipy.stats.norm.ppf(0.5 + 0.5 * settings.data_valuation.confidence_level))  # quote_batch's "normal"
    pred["raw_lower"], pred["raw_upper"] = pred["raw_mean"] - z * pred["std"], pred["raw_mean"] + z * pred["std"]
    del pred["std"]
    return quotes, pred


def check_sizes(cfg: StudyConfig, rows: int | None = None) -> None:
    """Refuses a ``retrain.subsets`` too small for the second call's removal and leave-one-out rows plus
    8 LDS subsets (``rows``: their count; default the most ``cfg`` can ask for)."""
    rows = cfg.repeats * (1 + 3 * len(cfg.removal) + max(cfg.loo, 2)) if rows is None else rows
    if cfg.retrain.subsets < rows + 8:
        raise ValueError(f"retrain.subsets (--subsets) = {cfg.retrain.subsets}: the removal and leave-one-out "
                         f"rows need {rows}, plus at least 8 for the LDS; raise it to >= {rows + 8}")


def second_masks(key, n: int, value, cfg: StudyConfig, loo_ids) -> tuple[np.ndarray, dict]:
    """[M, N] rows of the second retraining call and where each part lies in it (module docstring, step 5)."""
    order = np.argsort(-np.asarray(value))  # most valuable first
    rng = np.random.default_rng(cfg.seed + 1)
    rows, parts = [], {"full": [], "removal": {}, "loo": {}}

    def add(mask):
        rows.append(mask.astype(np.float32))
        return len(rows) - 1

    full = np.ones(n)
    parts["full"] = [add(full) for _ in range(cfg.repeats)]
    for k in cfg.removal:
        m = max(1, int(round(k * n)))
        for name, drop in (("top", order[:m]), ("random", rng.permutation(n)[:m]), ("bottom", order[-m:])):
            mask = full.copy()
            mask[drop] = 0
            parts["removal"][(k, name)] = [add(mask) for _ in range(cfg.repeats)]
    for i in loo_ids:
        mask = full.copy()
        mask[i] = 0
        parts["loo"][int(i)] = [add(mask) for _ in range(cfg.repeats)]
    spare = cfg.retrain.subsets - len(rows)
    check_sizes(cfg, len(rows))
    lds = np.asarray(subset_masks(key, n, dataclasses.replace(cfg.retrain, subsets=spare)))
    parts["lds"] = list(range(len(rows), len(rows) + spare))
    return np.concatenate([np.stack(rows), lds]), parts


def run_study(env, expert, cfg: StudyConfig, settings, shifted_params=None, steps: int | None = None,
              log=print, student: Student | None = None) -> dict:
    """The whole study (module docstring); returns the per-datapoint table, the scorecard and the curves.

    Args:
      expert: ``(state, key, params) -> action`` (one robot).
      settings: :class:`valuation.settings.ValuationSettings` (value model, κ, tiers, pricing).
      student: the policy every retrained student starts from (:func:`warm_start_student`); None: fresh MLPs.
    """
    check_sizes(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    k_pool, k_val, k_m1, k_r1, k_feat, k_m2, k_r2 = jax.random.split(key, 7)
    kinds = cfg.kinds()
    steps = steps or env.episode_length
    # a correction labels the states the deployed student visits; without a student, those of a drifting expert
    actor = None if student is None else (lambda o: student.apply(student.params, o[None])[0])
    pool = demonstration_pool(env, expert, k_pool, kinds, steps=steps, shifted_params=shifted_params, actor=actor)
    val = demonstration_pool(env, expert, k_val, ["clean"] * cfg.val_episodes, steps=steps)
    n, rc = len(kinds), cfg.retrain
    log(f"pool: {n} demonstrations x {steps} steps; retraining {rc.subsets} students x 2 calls")
    retrain = make_retrain(env, rc, n, steps, student)
    masks = np.asarray(subset_masks(k_m1, n, rc))
    out1 = jax.tree.map(np.asarray, retrain(k_r1, pool["obs"], pool["act"], masks))
    g = realized_gains(masks, out1["mp"], rc, seed=cfg.seed)
    # two independent halves of the retrains: the first and the second half, or with shared training seeds
    # (rc.seeds >= 2) the even and the odd seeds' subsets, so neither half shares a seed with the other
    groups = seed_groups(rc.subsets, rc.seeds)
    first = groups % 2 == 0 if rc.seeds >= 2 else np.arange(rc.subsets) < rc.subsets // 2
    reliability = truth.spearman(datamodel(masks[first], out1["mp"][first], rc.ridge, groups[first]),
                                 datamodel(masks[~first], out1["mp"][~first], rc.ridge, groups[~first]))
    log(f"students' MPr: mean {out1['mp'].mean():.2f}, range {out1['mp'].min():.2f}-{out1['mp'].max():.2f}; "
        f"split-half reliability of the gains {reliability:.2f}")
    features, signed = engine_features(pool, val, k_feat)
    on_student = None
    if student is not None and student.base_obs is not None:
        on_student = student_tracin(student, pool, {"obs": student.base_obs, "act": student.base_act}, seed=cfg.seed)
        log(f"TracIn on the student: by kind " + ", ".join(
            f"{k} {on_student[pool['kind'] == k].mean():+.1f}" for k in sorted(set(kinds))))
    if cfg.causal == "student":
        if on_student is None:
            raise ValueError("causal (--causal) = 'student' needs a student with base rows (--warm-start or --init)")
        features, signed = np.stack([features[:, 0], np.maximum(on_student, 0.0)], axis=1), on_student
    quotes, pred = cross_fit_quotes(features, g["gain"], list(pool["id"]), settings, cfg.folds, cfg.seed,
                                    strata=pool["kind"])
    loo_ids = np.unique(np.concatenate([[np.argmax(g["gain"]), np.argmin(g["gain"])],
                                        np.random.default_rng(cfg.seed).permutation(n)[: max(cfg.loo - 2, 0)]]))
    masks2, parts = second_masks(k_m2, n, pred["raw_mean"], cfg, loo_ids)
    out2 = jax.tree.map(np.asarray, retrain(k_r2, pool["obs"], pool["act"], masks2))
    mp2 = out2["mp"]
    full = mp2[parts["full"]].mean()
    removal = {key_: float(mp2[idx].mean()) for key_, idx in parts["removal"].items()}
    loo = {i: float(full - mp2[idx].mean()) for i, idx in parts["loo"].items()}
    # the value model predicts the raw gain (negatives kept), so it is scored on it; the true-ups price
    # max(realized, 0) inside valuation.pricing, and a negative gain is tier 0 either way
    # coverage: the model's own interval against the raw gain; the quotes' interval (clipped at 0, as priced)
    # is scored against the gain clipped at 0 (what is billed) as coverage_clipped
    card = truth.scorecard(pred["raw_mean"], pred["raw_lower"], pred["raw_upper"], g["gain"], settings.thresholds,
                           quotes, masks2[parts["lds"]], mp2[parts["lds"]])
    card["spearman_clipped"] = truth.spearman(pred["raw_mean"], np.maximum(g["gain"], 0.0))
    card["coverage_clipped"] = truth.coverage(np.maximum(g["gain"], 0.0), pred["lower"], pred["upper"])
    # the measurement's own precision, beside the true-up goal: a true-up within 20% of the premium needs the
    # realized gain known to within ~20% of the quoted E[ΔMPL]
    card["realized_halfwidth"] = float(np.median(g["hi"] - g["lo"]) / 2)  # median 80% bootstrap half-width
    card["unfitted"] = int(np.sum(pred["fitted"] == 0))
    if card["unfitted"]:
        log(f"warning: the value model was not fitted for {card['unfitted']} of {n} datapoints (their fold's "
            f"history held fewer than min_samples_for_fit = {settings.data_valuation.min_samples_for_fit} rows; "
            f"lower --folds or enlarge the pool)")
    priced = np.asarray([q.premium_cents > 0 for q in quotes])
    card["priced_expected_median"] = float(np.median(pred["mean"][priced])) if priced.any() else float("nan")
    # each feature alone against the realized gains: what the value model has to work with. A model whose
    # slopes shrink to 0 predicts the other folds' mean, which is anti-correlated with the held-out gains
    card["spearman_novelty"] = truth.spearman(features[:, 0], g["gain"])
    card["spearman_causal_gain"] = truth.spearman(features[:, 1], g["gain"])
    card["spearman_tracin_signed"] = truth.spearman(signed, g["gain"])
    if on_student is not None:
        card["spearman_tracin_student"] = truth.spearman(on_student, g["gain"])
    # the slips carry a planted dose of harm (the share of steps they reverse): a ranking known without any
    # retraining, against which the measurement and the prediction can each be checked
    dose, slips = slip_fraction(kinds), np.asarray(kinds) == "slips"
    if slips.sum() >= 3:
        for name, v in (("realized", g["gain"]), ("predicted", pred["raw_mean"]), ("tracin", signed)):
            card[f"dose_spearman_{name}"] = truth.spearman(v[slips], -dose[slips])
    table = {"datapoint_id": pool["id"], "kind": pool["kind"], "slip_fraction": dose, "novelty_score": features[:, 0],
             "causal_gain": features[:, 1], "tracin_signed": signed,
             **({} if on_student is None else {"tracin_student": on_student}),
             "realized": g["gain"], "realized_lo": g["lo"], "realized_hi": g["hi"],
             **{f"pred_{k}": v for k, v in pred.items()},
             "tier": np.asarray([q.tier for q in quotes]),
             "premium": np.asarray([q.premium_cents / 100 for q in quotes]), "trueup_pct": card["trueup_pct"]}
    return {"table": table, "quotes": quotes, "card": card, "reliability": reliability, "removal": removal,
            "full_mp": float(full), "loo": loo, "outcomes": out1, "masks": masks}


if __name__ == "__main__":
    import sys

    from train.economic_truth_cli import main
    from vpjax.cli import run_main

    sys.exit(run_main(main, prog="python -m train.economic_truth"))

__all__ = ["DEFAULT_POOL", "StudyConfig", "check_sizes", "cross_fit_quotes", "engine_features", "on_policy_rows",
           "run_study", "second_masks", "student_from_policy", "student_tracin", "warm_start_student"]
