"""sklearn BayesianRidge parity (float64, pinned sklearn), rolling window, scan stream, replay, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import BayesianRidge  # noqa: E402

from valuation import bayes_linear as bl  # noqa: E402

SKLEARN_PINNED = "1.9.1"  # pyproject dev extra pins scikit-learn==1.9.1


def _problem(rng, n, p):
    x = rng.normal(size=(n, p)) * rng.uniform(0.1, 5.0, size=p) + rng.normal(size=p)
    y = x @ rng.normal(size=p) + rng.normal(size=n) * rng.uniform(0.05, 2.0) + rng.normal()
    return x, y


def _rel(a, b, scale=None):
    a, b = np.asarray(a, float), np.asarray(b, float)
    s = np.maximum(np.abs(b), 1e-12) if scale is None else scale
    return float(np.max(np.abs(a - b) / s))


def test_sklearn_version_pinned():
    assert sklearn.__version__ == SKLEARN_PINNED


@pytest.mark.parametrize("seed", range(3))
def test_fit_matches_sklearn_float64(seed):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        hp = bl.BayesRidgeParams.create()
        fit = jax.jit(bl.fit)
        # n > p, n == p, n < p (the SVD branch sklearn takes for wide problems)
        for n, p in [(40, 3), (8, 8), (5, 12), (3, 2), (60, 1), (7, 30)]:
            x, y = _problem(rng, n, p)
            sk = BayesianRidge().fit(x, y)
            f = fit(x, y, None, hp)
            assert f.coef.dtype == jnp.float64
            assert _rel(f.coef, sk.coef_, scale=np.max(np.abs(sk.coef_))) < 1e-6, (n, p)
            assert _rel(f.intercept, sk.intercept_, scale=max(1.0, abs(sk.intercept_))) < 1e-6
            assert _rel(f.alpha, sk.alpha_) < 1e-6
            assert _rel(f.lambda_, sk.lambda_) < 1e-6
            assert int(f.n_iter) == sk.n_iter_
            assert _rel(f.sigma, sk.sigma_, scale=np.max(np.abs(sk.sigma_))) < 1e-6
            xq = rng.normal(size=(7, p))
            m, s = bl.predict_mean_std(f, xq)
            ms, ss = sk.predict(xq, return_std=True)
            assert _rel(s, ss) < 1e-6
            assert _rel(m, ms, scale=max(1.0, np.max(np.abs(ms)))) < 1e-6


def test_masked_fit_equals_fit_on_rows():
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        hp = bl.BayesRidgeParams.create()
        x, y = _problem(rng, 30, 2)
        mask = rng.uniform(size=30) < 0.5
        xg = np.where(mask[:, None], x, 1e6)  # garbage in masked rows must not matter
        a = bl.fit(xg, y, mask, hp)
        sk = BayesianRidge().fit(x[mask], y[mask])
        assert _rel(a.coef, sk.coef_, scale=np.max(np.abs(sk.coef_))) < 1e-6
        assert _rel(a.alpha, sk.alpha_) < 1e-6


def test_interval_uses_configured_quantile_and_std_not_rooted():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x, y = _problem(rng, 50, 2)
        y = y + 20.0
        for level, z in [(0.80, 1.2815515655446004), (0.95, 1.959963984540054)]:
            hp = bl.BayesRidgeParams.create(confidence_level=level)
            f = bl.fit(x, y, None, hp)
            pred = bl.predict_value(f, x[:5], hp)
            sk = BayesianRidge().fit(x, y)
            ms, ss = sk.predict(x[:5], return_std=True)
            np.testing.assert_allclose(pred.upper, ms + z * ss, rtol=1e-6)
            np.testing.assert_allclose(pred.lower, np.maximum(ms - z * ss, 0), rtol=1e-6)
            np.testing.assert_allclose(pred.kappa, np.clip(np.maximum(ms - z * ss, 0) / ms, 0.3, 1.0), rtol=1e-6)
        # Student-t widens and its quantile matches scipy
        scipy_stats = pytest.importorskip("scipy.stats")
        q = bl.student_t_ppf(0.9, 7.0)
        np.testing.assert_allclose(q, scipy_stats.t.ppf(0.9, 7.0), rtol=1e-8)
        hp = bl.BayesRidgeParams.create()
        f = bl.fit(x[:12], y[:12], None, hp)
        pt = bl.predict_value(f, x[:3], hp, interval="t")
        pn = bl.predict_value(f, x[:3], hp)
        assert np.all(pt.upper > pn.upper)


def _seed_reference(x, y, window, min_samples, level):
    """The seed's DataValueEstimator loop, with errata 3 (std is a std, configured quantile)."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    out = []
    hist = []
    for t in range(len(y)):
        if len(hist) < min_samples:
            out.append((0.0, 0.0, 0.0))
        else:
            hx = np.array([h[0] for h in hist])
            hy = np.array([h[1] for h in hist])
            m = BayesianRidge().fit(hx, hy)
            mu, sd = m.predict(x[t : t + 1], return_std=True)
            out.append((max(0.0, mu[0]), max(0.0, mu[0] - z * sd[0]), max(0.0, mu[0] + z * sd[0])))
        hist.append((x[t], y[t]))
        hist = hist[-window:]
    return np.array(out)


def test_stream_scan_and_replay_match_seed_loop():
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        hp = bl.BayesRidgeParams.create(min_samples=10, confidence_level=0.8)
        t, w = 60, 25
        x = rng.uniform(0, 1, size=(t, 2))
        y = 1.0 + 4 * x[:, 0] + 2 * x[:, 1] + rng.normal(size=t) * 0.3
        ref = _seed_reference(x, y, w, 10, 0.8)
        state = bl.rolling_init(w, 2, hp)
        final, pred = bl.stream(state, x, y, hp)
        got = np.stack([pred.mean, pred.lower, pred.upper], 1)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
        assert int(final.count) == t
        assert not bool(pred.fitted[9]) and bool(pred.fitted[10])
        np.testing.assert_allclose(pred.kappa[:10], 0.3)  # errata 4: unfitted → floor
        rep = bl.replay(x, y, hp, window=w, batch_size=16)
        np.testing.assert_allclose(rep.raw_mean, pred.raw_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(rep.std, pred.std, rtol=1e-9)


def test_many_streams_under_vmap_and_no_recompile():
    rng = np.random.default_rng(5)
    hp = bl.BayesRidgeParams.create(min_samples=5)
    b, t, w = 4, 30, 12
    x = jnp.asarray(rng.uniform(size=(b, t, 2)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(b, t)), jnp.float32)
    states = jax.vmap(lambda _: bl.rolling_init(w, 2, hp))(jnp.arange(b))
    _, preds = jax.vmap(bl.stream, in_axes=(0, 0, 0, None))(states, x, y, hp)
    assert preds.mean.shape == (b, t)
    for i in range(b):
        _, single = bl.stream(bl.rolling_init(w, 2, hp), x[i], y[i], hp)
        # float32: compare once the window is full enough to be well conditioned
        np.testing.assert_allclose(preds.raw_mean[i, w:], single.raw_mean[w:], rtol=1e-3, atol=1e-3)
    # a new confidence level is a new array leaf: no recompile
    n0 = bl.stream._cache_size()
    bl.stream(bl.rolling_init(w, 2, hp), x[0], y[0], bl.BayesRidgeParams.create(min_samples=5, confidence_level=0.9))
    assert bl.stream._cache_size() == n0


def test_rolling_update_jit_equals_eager():
    rng = np.random.default_rng(2)
    hp = bl.BayesRidgeParams.create(min_samples=3)
    s1 = s2 = bl.rolling_init(5, 2, hp)
    upd = jax.jit(bl.rolling_update)
    for _ in range(6):
        xi, yi = rng.uniform(size=2).astype(np.float32), np.float32(rng.normal())
        s1 = bl.rolling_update(s1, xi, yi, hp)
        s2 = upd(s2, xi, yi, hp)
    np.testing.assert_allclose(s1.model.coef, s2.model.coef, rtol=1e-4, atol=1e-5)
    assert int(s2.count) == 6 and int(jnp.sum(bl.window_mask(s2))) == 5
