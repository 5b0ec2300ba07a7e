"""vpjax.economics: the seed's worked examples, invariants, jit/vmap behaviour, no recompiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpjax import economics as E

P = E.EconParams.create()  # the seed's dishwashing example: p=0.30, MPₕ=60, wₕ=18, cₐ=1
floats = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, width=32)


def test_seed_dishwashing_example():
    wage = E.implied_wage(54.0, 0.05, P)
    assert float(wage) == pytest.approx(13.5, rel=1e-6)
    assert float(E.wage_parity(wage, P)) == pytest.approx(0.75, rel=1e-6)
    assert float(E.productivity_parity(54.0, P)) == pytest.approx(0.9, rel=1e-6)


def test_seed_frontier_premium_example():
    assert float(E.noshare_premium(0.30, 0.8, 6.0, 1000.0, 1.0)) == pytest.approx(1440.0, rel=1e-6)


def test_marginal_product_and_error_rate_guard_zero_denominators():
    assert float(E.marginal_product(3, 0.0)) == 0.0
    assert float(E.marginal_product(3, 180.0)) == pytest.approx(60.0)
    assert float(E.error_rate(0, 0)) == 0.0
    assert float(E.error_rate(1, 4)) == pytest.approx(0.25)


def _np_reference(mp, prev, err, p):
    wage = p["p"] * mp - p["c"] * err * mp
    parity = wage / p["wh"]
    delta = np.clip((mp - prev) / p["mph"], -p["clip"], p["clip"])
    loss = np.abs(parity - 1.0) ** p["q"]
    total = p["alpha"] * delta - p["beta"] * err - p["gamma"] * loss
    return wage, parity, delta, loss, total


@pytest.mark.parametrize("wage_loss, q", [("abs", 1.0), ("squared", 2.0)])
def test_jit_matches_numpy(wage_loss, q):
    rng = np.random.default_rng(0)
    mp = rng.uniform(0, 120, 256).astype(np.float32)
    prev = rng.uniform(0, 120, 256).astype(np.float32)
    err = rng.uniform(0, 0.5, 256).astype(np.float32)
    params = E.EconParams.create(wage_loss=wage_loss, alpha=0.7, gamma=0.4, beta=0.3, mp_clip=0.5)
    ref = dict(p=0.3, c=1.0, wh=18.0, mph=60.0, clip=0.5, q=q, alpha=0.7, beta=0.3, gamma=0.4)

    @jax.jit
    def f(mp, prev, err, params):
        w = E.implied_wage(mp, err, params)
        terms = E.reward_terms(mp, prev, err, params)
        return w, E.wage_parity(w, params), terms["delta_mp"], terms["wage_loss"], terms["total"]

    for got, want in zip(f(mp, prev, err, params), _np_reference(mp, prev, err, ref)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-5)


@settings(max_examples=200, deadline=None)
@given(mean=st.floats(-10, 1e3, allow_nan=False), lower=st.floats(-10, 1e3, allow_nan=False),
       floor=st.floats(0.01, 1.0))
def test_kappa_stays_in_floor_one(mean, lower, floor):
    k = float(E.kappa(mean, lower, floor))
    assert np.float32(floor) <= k <= 1.0
    if mean <= 0:
        assert k == pytest.approx(floor)


@settings(max_examples=100, deadline=None)
@given(p=floats, k=st.floats(0, 1), gain=floats, horizon=floats)
def test_premium_is_zero_when_shared(p, k, gain, horizon):
    assert float(E.noshare_premium(p, k, gain, horizon, 0.0)) == 0.0


@settings(max_examples=100, deadline=None)
@given(mp=st.floats(0.1, 500), scale=st.floats(0.1, 10))
def test_parities_linear_in_mp_without_errors(mp, scale):
    pp1 = float(E.productivity_parity(mp, P))
    pp2 = float(E.productivity_parity(mp * scale, P))
    wp1 = float(E.wage_parity(E.implied_wage(mp, 0.0, P), P))
    wp2 = float(E.wage_parity(E.implied_wage(mp * scale, 0.0, P), P))
    assert pp2 == pytest.approx(scale * pp1, rel=1e-5)
    assert wp2 == pytest.approx(scale * wp1, rel=1e-5)
    assert wp1 == pytest.approx(pp1, rel=1e-5)  # p·MPₕ = wₕ in the seed example


@settings(max_examples=100, deadline=None)
@given(power=st.sampled_from(["abs", "squared"]), parity=st.floats(-5, 5))
def test_wage_loss_zero_exactly_at_parity(power, parity):
    params = E.EconParams.create(wage_loss=power)
    assert float(E.wage_loss(1.0, params)) == 0.0
    if abs(parity - 1.0) > 1e-3:
        assert float(E.wage_loss(parity, params)) > 0.0


def test_reward_terms_clip_and_weights():
    params = E.EconParams.create(alpha=2.0, beta=0.5, gamma=0.25, mp_clip=0.1)
    t = E.reward_terms(60.0, 0.0, 0.0, params)  # at parity, big jump clipped to 0.1
    assert float(t["delta_mp"]) == pytest.approx(0.1)
    assert float(t["wage_loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(t["total"]) == pytest.approx(0.2)
    comps = E.scaled_components(t, params)
    assert float(comps["reward_mp"]) == pytest.approx(0.2)


def test_schedule_kinds_endpoints_and_midpoints():
    base = dict(alpha_initial=1.0, alpha_final=0.0, gamma_initial=0.0, gamma_final=1.0, anneal_steps=100)
    lin = E.EconParams.create(**base, alpha_schedule="linear", gamma_schedule="linear")
    cos = E.EconParams.create(**base, alpha_schedule="cosine", gamma_schedule="cosine")
    const = E.EconParams.create(**base, alpha_schedule="constant", gamma_schedule="constant")
    sched = jax.jit(E.schedule)
    assert np.allclose(sched(0, lin), (1.0, 0.0))
    assert np.allclose(sched(50, lin), (0.5, 0.5))
    assert np.allclose(sched(100, lin), (0.0, 1.0))
    assert np.allclose(sched(1000, lin), (0.0, 1.0))  # holds the final value
    assert np.allclose(sched(25, cos), (1 - 0.5 * (1 - np.cos(np.pi / 4)), 0.5 * (1 - np.cos(np.pi / 4))), atol=1e-6)
    assert np.allclose(sched(70, const), (1.0, 0.0))
    p = E.with_schedule(lin, 50)
    assert float(p.alpha) == pytest.approx(0.5) and float(p.gamma) == pytest.approx(0.5)


def test_unknown_schedule_and_loss_are_clear_errors():
    with pytest.raises(ValueError, match="alpha_schedule"):
        E.EconParams.create(alpha_schedule="exponential")
    with pytest.raises(ValueError, match="wage_loss"):
        E.EconParams.create(wage_loss="cubic")


def test_convergence_update_needs_n_consecutive_and_latches():
    params = E.EconParams.create(eval_window=3)
    update = jax.jit(E.convergence_update)
    s = E.ConvergenceState.init()
    seq = [(1.0, 1.0), (1.0, 1.05), (0.5, 1.0), (0.96, 0.95), (1.2, 1.09), (1.0, 1.0), (0.1, 0.1)]
    streaks, conv = [], []
    for pp, wp in seq:
        s = update(s, pp, wp, params)
        streaks.append(int(s.streak))
        conv.append(bool(s.converged))
    assert streaks == [1, 2, 0, 1, 2, 3, 0]
    assert conv == [False] * 5 + [True, True]


def test_convergence_rejects_wage_outside_tolerance():
    params = E.EconParams.create(eval_window=1)
    s = E.convergence_update(E.ConvergenceState.init(), 1.0, 1.2, params)
    assert not bool(s.converged)


def test_gamma_sweep_of_16_compiles_once():
    traces = []

    def batch_reward(params, mp, prev, err):
        traces.append(1)  # runs only while tracing
        return E.reward_terms(mp, prev, err, params)["total"]

    f = jax.jit(jax.vmap(batch_reward, in_axes=(0, None, None, None)))
    gammas = jnp.linspace(0.0, 1.5, 16)
    sweep = jax.vmap(lambda g: E.EconParams.create().replace(gamma=g))(gammas)
    out1 = f(sweep, 50.0, 40.0, 0.1)
    sweep2 = jax.vmap(lambda g: E.EconParams.create(beta=0.9, human_wage=20.0).replace(gamma=g))(gammas * 2)
    out2 = f(sweep2, 55.0, 45.0, 0.2)
    assert out1.shape == (16,) and out2.shape == (16,)
    assert len(traces) == 1
    # Each member really used its own γ: total falls linearly in γ with slope −wage_loss.
    loss = float(E.reward_terms(50.0, 40.0, 0.1, E.EconParams.create())["wage_loss"])
    np.testing.assert_allclose(np.diff(np.asarray(out1)), -loss * np.diff(np.asarray(gammas)), rtol=1e-4, atol=1e-6)


def one_sided_wage(mp, prev_mp, err, params):
    """The README's example variant: no penalty for earning above the human wage."""
    terms = E.reward_terms(mp, prev_mp, err, params)
    shortfall = jnp.maximum(0.0, 1.0 - E.wage_parity(E.implied_wage(mp, err, params), params))
    loss = shortfall ** params.wage_loss_power
    total = params.alpha * terms["delta_mp"] - params.beta * err - params.gamma * loss
    return {**terms, "wage_loss": loss, "total": total}


def test_user_reward_variant_plugs_in():
    E.check_reward_fn(one_sided_wage, P)
    params = E.EconParams.create(gamma=1.0)
    fast = jax.jit(one_sided_wage)(90.0, 90.0, 0.0, params)  # 1.5× parity: no penalty
    slow = jax.jit(one_sided_wage)(30.0, 30.0, 0.0, params)  # 0.5× parity: penalized
    assert float(fast["wage_loss"]) == 0.0
    assert float(slow["wage_loss"]) == pytest.approx(0.5)
    assert float(E.reward_terms(90.0, 90.0, 0.0, params)["wage_loss"]) == pytest.approx(0.5)


def test_bad_reward_fn_is_rejected_with_its_name():
    def bad(mp, prev_mp, err, params):
        return {"total": mp}

    with pytest.raises(TypeError, match="bad.*lacks keys"):
        E.check_reward_fn(bad, P)


def test_trueup_sign_convention():
    assert float(E.trueup(100.0, 60.0)) == pytest.approx(40.0)  # refund
    assert float(E.trueup(60.0, 100.0)) == pytest.approx(-40.0)  # further bill


# ----------------------------------------------------------------------------- accounting and plug-ins


def test_parity_holds_matches_the_convergence_rule():
    pp = jnp.array([0.95, 0.94, 1.2, 1.0])
    wp = jnp.array([1.05, 1.0, 0.89, 1.0])
    np.testing.assert_array_equal(np.asarray(E.parity_holds(pp, wp, P)), [True, False, False, True])
    st = E.convergence_update(E.ConvergenceState.init((4,)), pp, wp, P)
    np.testing.assert_array_equal(np.asarray(st.streak), [1, 0, 0, 1])


def test_account_matches_the_formulas_and_is_jittable():
    counters = {"units": 3.0, "errors": 1.0, "attempts": 4.0, "work_seconds": 180.0}
    deltas = {"units": 1.0, "errors": 0.0}
    for last in (False, True):
        reward, m = jax.jit(E.account, static_argnames="economic_reward")(
            counters, deltas, 30.0, last, P, shaping=0.25, money_scale=10.0)
        assert set(m) == set(E.METRIC_NAMES) and all(v.dtype == jnp.float32 for v in m.values())
        mp, err = 60.0, 0.25
        assert float(m["mp"]) == pytest.approx(mp) and float(m["error_rate"]) == pytest.approx(err)
        assert float(m["implied_wage"]) == pytest.approx(0.30 * mp - 1.0 * err * mp)
        total = float(E.reward_terms(mp, 30.0, err, P)["total"])
        assert float(m["reward_money"]) == pytest.approx(10.0 * 0.30)
        assert float(m["reward_episode"]) == pytest.approx(total if last else 0.0)
        assert float(reward) == pytest.approx(3.0 + (total if last else 0.0) + 0.25, rel=1e-6)
    reward, m = E.account(counters, deltas, 30.0, True, P, shaping=0.25, economic_reward=False)
    assert float(reward) == pytest.approx(0.25) and float(m["reward_money"]) == float(m["reward_episode"]) == 0.0


def _bonus_reward(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    return {**terms, "total": terms["total"] + 1.0, "bonus": 0.5 * mp / params.human_mp}


def test_account_honours_the_reward_fn_and_reports_its_extra_terms():
    counters = {"units": 2.0, "errors": 0.0, "attempts": 2.0, "work_seconds": 240.0}
    deltas = {"units": 0.0, "errors": 0.0}
    base, _ = E.account(counters, deltas, 0.0, True, P)
    reward, m = E.account(counters, deltas, 0.0, True, P, reward_fn=_bonus_reward)
    assert float(reward) == pytest.approx(float(base) + 1.0, rel=1e-6)
    assert float(m["reward_extra_bonus"]) == pytest.approx(0.5 * 30.0 / 60.0)
    assert E.reward_extra_names(_bonus_reward, P) == ("reward_extra_bonus",)
    assert E.metric_names(_bonus_reward, P) == E.METRIC_NAMES + ("reward_extra_bonus",)
    assert tuple(m) == E.metric_names(_bonus_reward, P)
    assert E.metric_names(E.reward_terms, P) == E.METRIC_NAMES


def _vector_total(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    return {**terms, "total": jnp.stack([terms["total"]] * 3)}


def _int_total(mp, prev_mp, err, params):
    return {**E.reward_terms(mp, prev_mp, err, params), "total": jnp.int32(1)}


def _vector_extra(mp, prev_mp, err, params):
    return {**E.reward_terms(mp, prev_mp, err, params), "per_dish": jnp.zeros((4,))}


def _python_if(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    if mp > prev_mp:
        return {**terms, "total": terms["total"] + 1.0}
    return terms


@pytest.mark.parametrize("fn, names", [
    (_vector_total, ("_vector_total", "'total'", "shape (3,)")),
    (_int_total, ("_int_total", "'total'", "int32")),
    (_vector_extra, ("_vector_extra", "'per_dish'", "shape (4,)")),
    (_python_if, ("_python_if", "Python if", "jnp.where")),
])
def test_check_reward_fn_names_the_function_and_the_term(fn, names):
    with pytest.raises(TypeError) as info:
        E.check_reward_fn(fn, P)
    msg = str(info.value)
    assert "\n" not in msg
    for part in names:
        assert part in msg, msg
