"""Jitted Bayesian linear regression with evidence maximization (sklearn's ``BayesianRidge``).

The value model maps datapoint features (novelty, causal gain) to the expected MPL gain E[ΔMPL]
with a predictive interval and the confidence discount κ, refitting
``sklearn.linear_model.BayesianRidge`` on a rolling lookback window after every datapoint. This
module does the same fit as a pure JAX function, so that

* :func:`fit` reproduces ``BayesianRidge().fit`` (same defaults, same MacKay fixed-point updates,
  same convergence test, centering for the intercept, n < p handled) to float64 round-off;
* the rolling window is a fixed-capacity buffer with a mask, so one compiled function serves every
  step of a stream, full window or not;
* :func:`stream` runs a whole stream (predict, then update, per datapoint) as one ``lax.scan``,
  and many streams (one per task or customer) run under ``jax.vmap``;
* :func:`replay` predicts a logged stream with the refits vectorized over time: each refit depends
  only on the contents of its window, not on the previous fit, so the T refits are independent.

Algorithm notes. sklearn takes the SVD of the centred design X (n×p) and iterates in its singular
basis. We take the eigendecomposition of the masked Gram matrix XᵀX (p×p) instead: its eigenvalues
are the squared singular values, padded with zeros when n < p, and zero eigenvalues add nothing to
the effective number of parameters γ = Σ αeᵢ/(λ + αeᵢ) nor to the posterior mean (the projection of
Xᵀy on a null direction of X is zero). The posterior mean (XᵀX + λ/α·I)⁻¹Xᵀy is therefore the same
in both regimes; only the rounding differs, well below the 1e-6 parity we test.

Interval (README, Data economics). ``std`` below is already the predictive standard deviation
sqrt(xᵀΣx + 1/α); it is not square-rooted again. The interval is mean ± q·std where q is the
quantile of the configured confidence level: by default the Normal quantile
(``jax.scipy.stats.norm.ppf``), which is exact for this model's predictive distribution given the
evidence-maximizing point estimates of α and λ (what sklearn reports). ``interval="t"`` uses a
Student-t quantile with ν = n − γ − 1 degrees of freedom instead (γ the effective number of fitted
weights, one more for the intercept); it widens intervals when the window holds few datapoints,
which is the regime the default ``min_samples_for_fit`` = 10 allows.

Inputs must be finite: the jitted functions cannot raise, so a NaN or inf would silently give NaN
coefficients. :func:`check_finite` refuses them on the host with the row and column; rows left
out by the mask never reach the fit, whatever they hold.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from vpjax import economics

Array = jax.Array

_EPS64 = float(jnp.finfo(jnp.float64).eps)  # sklearn adds float64 eps to var(y), whatever the dtype


@struct.dataclass
class BayesRidgeParams:
    """Hyperparameters of the fit and the interval, as array leaves (vmappable, no recompiles).

    Defaults equal sklearn's ``BayesianRidge()`` and the ``data_valuation`` section's defaults.
    """

    max_iter: Array
    tol: Array
    alpha_1: Array
    alpha_2: Array
    lambda_1: Array
    lambda_2: Array
    fit_intercept: Array
    min_samples: Array
    confidence_level: Array
    kappa_floor: Array

    @classmethod
    def create(
        cls,
        *,
        max_iter: int = 300,
        tol: float = 1e-3,
        alpha_1: float = 1e-6,
        alpha_2: float = 1e-6,
        lambda_1: float = 1e-6,
        lambda_2: float = 1e-6,
        fit_intercept: bool = True,
        min_samples: int = 10,
        confidence_level: float = 0.80,
        kappa_floor: float = 0.3,
    ) -> "BayesRidgeParams":
        if not 0.0 < confidence_level < 1.0:
            raise ValueError(f"confidence_level: must lie in (0, 1), got {confidence_level}")
        if not 0.0 <= kappa_floor <= 1.0:
            raise ValueError(f"kappa_floor: must lie in [0, 1], got {kappa_floor}")
        if max_iter < 1:
            raise ValueError(f"max_iter: must be >= 1, got {max_iter}")
        if min_samples < 1:
            raise ValueError(f"min_samples: must be >= 1, got {min_samples}")
        f = lambda v: jnp.asarray(v, float)  # noqa: E731
        return cls(
            max_iter=jnp.asarray(max_iter, jnp.int32),
            tol=f(tol),
            alpha_1=f(alpha_1),
            alpha_2=f(alpha_2),
            lambda_1=f(lambda_1),
            lambda_2=f(lambda_2),
            fit_intercept=jnp.asarray(fit_intercept, bool),
            min_samples=jnp.asarray(min_samples, jnp.int32),
            confidence_level=f(confidence_level),
            kappa_floor=f(kappa_floor),
        )


@struct.dataclass
class BayesRidgeFit:
    """A fitted model (sklearn's attribute names where they exist).

    Attributes:
      coef: [p] posterior mean of the weights (``coef_``).
      intercept: [] (``intercept_``).
      alpha: [] noise precision (``alpha_``).
      lambda_: [] weight precision (``lambda_``).
      sigma: [p, p] posterior covariance of the weights (``sigma_``).
      x_offset: [p] mean of X in the window (``X_offset_``).
      n: [] number of datapoints fitted.
      n_iter: [] iterations run (``n_iter_``).
      gamma: [] effective number of fitted weights.
    """

    coef: Array
    intercept: Array
    alpha: Array
    lambda_: Array
    sigma: Array
    x_offset: Array
    n: Array
    n_iter: Array
    gamma: Array


def fit(x: Array, y: Array, mask: Array | None, params: BayesRidgeParams) -> BayesRidgeFit:
    """Evidence-maximizing Bayesian ridge regression on the rows of ``x`` where ``mask`` is set.

    Args:
      x: [W, p] design; rows with ``mask == False`` are ignored (their values, NaN included, do not matter).
      y: [W] targets.
      mask: [W] bool, or None for all rows.
      params: BayesRidgeParams.

    Returns:
      BayesRidgeFit. With no valid row the fit is finite but meaningless; callers check ``n``.
    """
    x = jnp.asarray(x)
    dtype = jnp.result_type(x.dtype, jnp.float32)
    x = x.astype(dtype)
    y = jnp.asarray(y, dtype)
    w = jnp.ones(y.shape, dtype) if mask is None else jnp.asarray(mask).astype(dtype)
    # 0·NaN is NaN: zero the excluded rows instead of only weighting them by 0
    x = jnp.where(w[:, None] > 0, x, 0.0)
    y = jnp.where(w > 0, y, 0.0)
    n = jnp.sum(w)
    n_safe = jnp.maximum(n, 1.0)
    y_mean = jnp.sum(w * y) / n_safe
    y_var = jnp.sum(w * (y - y_mean) ** 2) / n_safe
    x_off = jnp.where(params.fit_intercept, (w @ x) / n_safe, 0.0).astype(dtype)
    y_off = jnp.where(params.fit_intercept, y_mean, 0.0).astype(dtype)
    xc = (x - x_off) * w[:, None]
    yc = (y - y_off) * w

    eig, vecs = jnp.linalg.eigh(xc.T @ xc)
    eig = jnp.maximum(eig, 0.0)  # round-off can make a null eigenvalue slightly negative
    z = vecs.T @ (xc.T @ yc)  # Xᵀy in the eigenbasis
    xv = xc @ vecs  # X in the eigenbasis, so sse needs one matvec per iteration

    alpha0 = (1.0 / (y_var + _EPS64)).astype(dtype)
    lambda0 = jnp.asarray(1.0, dtype)
    a1, a2 = params.alpha_1.astype(dtype), params.alpha_2.astype(dtype)
    l1, l2 = params.lambda_1.astype(dtype), params.lambda_2.astype(dtype)

    def coef_sse(alpha, lam):
        b = z / (eig + lam / alpha)
        return b, jnp.sum((yc - xv @ b) ** 2)

    def cond(carry):
        it, _, _, _, done = carry
        return (it < params.max_iter) & ~done

    def body(carry):
        it, alpha, lam, coef_old, _ = carry
        b, sse = coef_sse(alpha, lam)
        coef = vecs @ b
        gamma = jnp.sum(alpha * eig / (lam + alpha * eig))
        lam_new = (gamma + 2 * l1) / (jnp.sum(b**2) + 2 * l2)
        alpha_new = (n - gamma + 2 * a1) / (sse + 2 * a2)
        # sklearn tests convergence after updating alpha and lambda, from the second iteration on
        done = (it > 0) & (jnp.sum(jnp.abs(coef_old - coef)) < params.tol)
        return it + 1, alpha_new, lam_new, coef, done

    p = x.shape[1]
    init = (jnp.asarray(0, jnp.int32), alpha0, lambda0, jnp.zeros(p, dtype), jnp.asarray(False))
    n_iter, alpha, lam, _, _ = jax.lax.while_loop(cond, body, init)
    b, _ = coef_sse(alpha, lam)
    coef = vecs @ b
    gamma = jnp.sum(alpha * eig / (lam + alpha * eig))
    sigma = (vecs / (alpha * eig + lam)) @ vecs.T
    return BayesRidgeFit(
        coef=coef,
        intercept=y_off - x_off @ coef,
        alpha=alpha,
        lambda_=lam,
        sigma=sigma,
        x_offset=x_off,
        n=n,
        n_iter=n_iter,
        gamma=gamma,
    )


def predict_mean_std(model: BayesRidgeFit, x: Array) -> tuple[Array, Array]:
    """Predictive mean and standard deviation (sklearn's ``predict(X, return_std=True)``).

    Args:
      model: BayesRidgeFit.
      x: [..., p].

    Returns:
      (mean [...], std [...]); std is a standard deviation, not a variance.
    """
    x = jnp.asarray(x, model.coef.dtype)
    mean = x @ model.coef + model.intercept
    xc = x - model.x_offset
    var = jnp.einsum("...i,ij,...j->...", xc, model.sigma, xc) + 1.0 / model.alpha
    return mean, jnp.sqrt(var)


def student_t_ppf(q: Array, dof: Array, iters: int = 80) -> Array:
    """Quantile of Student's t for q ≥ 0.5, by bisection on the regularized incomplete beta.

    jax.scipy has no t.ppf. For x > 0, P(T ≤ x) = 1 − ½·I_{ν/(ν+x²)}(ν/2, ½); I is increasing in its
    argument, so we bisect u = ν/(ν+x²) ∈ (0, 1] and return x = sqrt(ν(1−u)/u).
    """
    q = jnp.asarray(q, float)
    dof = jnp.asarray(dof, float)
    target = 2.0 * (1.0 - q)

    def step(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = jax.scipy.special.betainc(0.5 * dof, 0.5, mid) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, step, (jnp.zeros_like(target), jnp.ones_like(target)))
    u = 0.5 * (lo + hi)
    return jnp.sqrt(dof * (1.0 - u) / jnp.maximum(u, 1e-300))


class ValuePrediction(NamedTuple):
    """E[ΔMPL] with its interval and κ, per query (shapes [...]).

    ``mean``, ``lower``, ``upper`` are clipped at 0 (a datapoint cannot be worth a negative MPL
    gain to the buyer); ``raw_mean`` and ``std`` are the model's own. Before the window holds
    ``min_samples`` datapoints the model is not fitted and mean = lower = upper = 0, so
    κ = kappa_floor. A NaN mean or bound gives a NaN κ, never the floor, so that callers
    (:func:`valuation.pricing.make_quotes`) refuse it.
    """

    mean: Array
    std: Array
    lower: Array
    upper: Array
    kappa: Array
    raw_mean: Array
    fitted: Array


def interval_quantile(model: BayesRidgeFit, params: BayesRidgeParams, interval: str = "normal") -> Array:
    """Two-sided quantile for ``params.confidence_level`` (e.g. 0.80 → 1.2816 for the Normal)."""
    q = 0.5 + 0.5 * params.confidence_level
    if interval == "normal":
        return jax.scipy.stats.norm.ppf(q)
    if interval == "t":
        dof = jnp.maximum(model.n - model.gamma - params.fit_intercept.astype(float), 1.0)
        return student_t_ppf(q, dof)
    raise ValueError(f"interval: use 'normal' or 't', got {interval!r}")


def predict_value(model: BayesRidgeFit, x: Array, params: BayesRidgeParams, interval: str = "normal") -> ValuePrediction:
    """E[ΔMPL], interval and κ for features ``x`` [..., p] from a fitted model."""
    mean, std = predict_mean_std(model, x)
    z = interval_quantile(model, params, interval)
    fitted = model.n >= params.min_samples
    lower = jnp.where(fitted, jnp.maximum(mean - z * std, 0.0), 0.0)
    upper = jnp.where(fitted, jnp.maximum(mean + z * std, 0.0), 0.0)
    clipped = jnp.where(fitted, jnp.maximum(mean, 0.0), 0.0)
    kap = economics.kappa(clipped, lower, params.kappa_floor)
    kap = jnp.where(jnp.isnan(clipped) | jnp.isnan(lower), jnp.nan, kap)
    fitted = jnp.broadcast_to(fitted, mean.shape)
    return ValuePrediction(clipped, jnp.where(fitted, std, 0.0), lower, upper, kap, mean, fitted)


def check_finite(values, what: str, columns: Sequence[str]) -> None:
    """Refuses a NaN or inf in ``values`` [N, len(columns)] before it reaches a jitted fit.

    Raises:
      ValueError: naming ``what``, the first offending row (0-based), its column and value.
    """
    v = np.asarray(values, float)
    bad = np.argwhere(~np.isfinite(v))
    if bad.size:
        r, c = (int(i) for i in bad[0])
        raise ValueError(f"{what}: row {r}, column {columns[c]!r}: {v[r, c]} is not finite ({len(bad)} such values)")


# ----------------------------------------------------------------------------- rolling window


@struct.dataclass
class RollingState:
    """Fixed-capacity lookback window (a ring buffer) and the model fitted on it.

    Attributes:
      x: [W, p] buffered features.
      y: [W] buffered realized gains.
      count: [] observations seen so far (the window holds min(count, W)).
      model: BayesRidgeFit on the window.
    """

    x: Array
    y: Array
    count: Array
    model: BayesRidgeFit


def rolling_init(window: int, n_features: int, params: BayesRidgeParams, dtype=None) -> RollingState:
    """An empty window of capacity ``window`` (``lookback_window``).

    Raises:
      ValueError: ``window`` < 1, or ``params.min_samples`` > ``window`` (the model would never fit).
    """
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    try:
        need = int(np.max(np.asarray(params.min_samples)))
    except TypeError:  # traced params (under jit or vmap): checked by whoever built them
        need = 0
    if need > window:
        raise ValueError(f"min_samples: {need} > window {window}; the window could never hold enough datapoints to fit")
    dtype = dtype or jnp.zeros(()).dtype
    x = jnp.zeros((window, n_features), dtype)
    y = jnp.zeros((window,), dtype)
    mask = jnp.zeros((window,), bool)
    return RollingState(x=x, y=y, count=jnp.asarray(0, jnp.int32), model=fit(x, y, mask, params))


def window_mask(state: RollingState) -> Array:
    """[W] bool: which buffer rows hold observations."""
    w = state.y.shape[0]
    return jnp.arange(w) < jnp.minimum(state.count, w)


def rolling_update(state: RollingState, x: Array, y: Array, params: BayesRidgeParams) -> RollingState:
    """Adds one observation (features [p], realized gain []) and refits on the window."""
    w = state.y.shape[0]
    pos = state.count % w  # overwrite the oldest once full; the fit does not depend on row order
    bx = state.x.at[pos].set(jnp.asarray(x, state.x.dtype))
    by = state.y.at[pos].set(jnp.asarray(y, state.y.dtype))
    new = state.replace(x=bx, y=by, count=state.count + 1)
    return new.replace(model=fit(bx, by, window_mask(new), params))


def rolling_predict(state: RollingState, x: Array, params: BayesRidgeParams, interval: str = "normal") -> ValuePrediction:
    """E[ΔMPL], interval and κ for features ``x`` [..., p] from the current window."""
    return predict_value(state.model, x, params, interval)


@functools.partial(jax.jit, static_argnames=("interval",))
def stream(state: RollingState, x: Array, y: Array, params: BayesRidgeParams, interval: str = "normal"):
    """Runs a whole stream as one ``lax.scan``: for each datapoint, predict (quote), then update.

    Args:
      state: RollingState (e.g. from :func:`rolling_init`).
      x: [T, p] features in arrival order.
      y: [T] realized gains, revealed after each quote.
      params: BayesRidgeParams.
      interval: "normal" or "t".

    Returns:
      (final RollingState, ValuePrediction with leaves [T]). Many streams: ``jax.vmap(stream,
      in_axes=(0, 0, 0, None))`` over a batch of states, features and gains.
    """

    def step(s, xy):
        xt, yt = xy
        pred = rolling_predict(s, xt, params, interval)
        return rolling_update(s, xt, yt, params), pred

    return jax.lax.scan(step, state, (x, y))


@functools.partial(jax.jit, static_argnames=("window", "interval", "batch_size"))
def replay(x: Array, y: Array, params: BayesRidgeParams, window: int, interval: str = "normal", batch_size: int = 1024) -> ValuePrediction:
    """Same predictions as :func:`stream` from an empty window, with the refits vectorized over time.

    The prediction for datapoint t uses the model fitted on datapoints max(0, t−W) … t−1. Refits
    are independent given their windows, so they run batched (``lax.map`` in blocks of
    ``batch_size``, bounding memory to batch_size × W × p) instead of one after another.

    Args:
      x: [T, p]; y: [T]; window: W.

    Returns:
      ValuePrediction with leaves [T].
    """
    t_idx = jnp.arange(x.shape[0])

    def one(t):
        idx = t - window + jnp.arange(window)
        mask = idx >= 0
        idx = jnp.maximum(idx, 0)
        model = fit(x[idx], y[idx], mask, params)
        return predict_value(model, x[t], params, interval)

    return jax.lax.map(one, t_idx, batch_size=batch_size)


__all__ = [
    "BayesRidgeParams",
    "BayesRidgeFit",
    "ValuePrediction",
    "RollingState",
    "fit",
    "predict_mean_std",
    "predict_value",
    "interval_quantile",
    "student_t_ppf",
    "check_finite",
    "rolling_init",
    "rolling_update",
    "rolling_predict",
    "window_mask",
    "stream",
    "replay",
]
