"""Ex-ante quotes, ex-post true-ups and period reconciliation reports.

Formulas (vpjax.economics; README, Data economics):

* P_noshare = p·κ·E[ΔMPL]·H·S with S = 1 for a withheld datapoint and 0 for a shared one.
* A sharing customer instead gets ``data_sharing_discount`` off the service bill (units produced ×
  p over the period): :func:`service_bill`, not a per-datapoint credit.
* True-up = quoted − realized premium, where the realized premium re-prices the quote with the
  realized ΔMPL (same p, κ, H, S): positive is a refund to the customer, negative a further bill.
  A realized gain below 0 is priced as 0, as the quote prices E[ΔMPL] clipped at 0: a datapoint
  that turned out harmful costs the customer nothing, so the refund is at most the premium.
* Money leaves this module as integer cents (:func:`to_cents`, round half to even); floats are
  used inside the models only.

The array functions (:func:`quote_arrays`, :func:`trueup_arrays`) are pure and jittable; the
records (:class:`Quote`, :class:`TrueUp`) carry ids, timestamps and cents for the ledger and CSVs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vpjax import economics
from valuation import tiering

Array = jax.Array

SHARED = "shared"
WITHHELD = "withheld"
_SHARING_ALIASES = {
    "shared": SHARED,
    "share": SHARED,
    "withheld": WITHHELD,
    "withhold": WITHHELD,
    "no_share": WITHHELD,
    "noshare": WITHHELD,
}


# ----------------------------------------------------------------------------- money, ids, time


def to_cents(dollars: float | Decimal | str) -> int:
    """Dollars → integer cents, round half to even (floats go through their shortest repr)."""
    if isinstance(dollars, Decimal):
        d = dollars
    elif isinstance(dollars, str):
        d = Decimal(dollars.strip())
    else:
        d = Decimal(repr(float(dollars)))
    if not d.is_finite():
        raise ValueError(f"amount {dollars!r} is not a finite number of dollars")
    return int((d * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def cents_to_str(cents: int) -> str:
    """Integer cents → "1440.00" (exact; for CSVs)."""
    sign = "-" if cents < 0 else ""
    c = abs(int(cents))
    return f"{sign}{c // 100}.{c % 100:02d}"


def normalize_sharing(value: str) -> str:
    """'shared'/'share' → 'shared'; 'withheld'/'no_share'/… → 'withheld'; else ValueError."""
    key = str(value).strip().lower()
    if key not in _SHARING_ALIASES:
        raise ValueError(f"sharing_status {value!r}: use 'shared' or 'withheld'")
    return _SHARING_ALIASES[key]


def datapoint_id(content: bytes | str | np.ndarray | Sequence[np.ndarray]) -> str:
    """Stable content hash of a datapoint: sha256 of dtype, shape and bytes, 32 hex chars.

    Arrays are hashed in C order with their dtype and shape, so the same content always gets the
    same id across processes and machines; callers with their own ids use those instead.
    """
    h = hashlib.sha256()
    parts = content if isinstance(content, (list, tuple)) else [content]
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        if isinstance(part, bytes):
            h.update(b"b" + len(part).to_bytes(8, "little") + part)
        else:
            a = np.ascontiguousarray(np.asarray(part))
            h.update(f"a{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()[:32]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    """ISO-8601 (a trailing Z allowed) or a POSIX timestamp in seconds (``time.time()``)."""
    s = str(text).strip()
    try:
        return dt.datetime.fromtimestamp(float(s), dt.timezone.utc)
    except ValueError:
        pass
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


# ----------------------------------------------------------------------------- array functions


class QuoteArrays(NamedTuple):
    """Per-datapoint quote values (leaves [...]): premium in $ (float), tier, S."""

    premium: Array
    tier: Array
    sharing_coef: Array


def quote_arrays(expected: Array, kappa_: Array, shared: Array, price: Array, horizon: Array, thresholds: Array) -> QuoteArrays:
    """P_noshare and tier for a batch of datapoints (jittable).

    Args:
      expected: [...] E[ΔMPL] (units/h).
      kappa_: [...] confidence discount κ.
      shared: [...] bool, True where the customer shares the datapoint (S = 0).
      price: p, $ per unit.
      horizon: H, robot-hours.
      thresholds: [2] tier thresholds on E[ΔMPL].
    """
    s = jnp.where(jnp.asarray(shared), 0.0, 1.0)
    premium = economics.noshare_premium(price, kappa_, expected, horizon, s)
    return QuoteArrays(premium=premium, tier=tiering.assign_tier(expected, thresholds), sharing_coef=s)


def trueup_arrays(premium: Array, kappa_: Array, realized: Array, price: Array, horizon: Array, sharing_coef: Array) -> tuple[Array, Array]:
    """(realized premium, true-up) in $: true-up > 0 refunds the customer, < 0 bills them.

    A realized gain below 0 is priced as 0 (module docstring), so the true-up is ≤ the premium.
    """
    realized_premium = economics.noshare_premium(price, kappa_, jnp.maximum(realized, 0.0), horizon, sharing_coef)
    return realized_premium, economics.trueup(premium, realized_premium)


def service_bill(units: Array, price: Array, shares: Array, discount: Array) -> Array:
    """A customer's service bill over a period: units × p, less the discount if sharing.

    Args:
      units: [...] units produced for the customer in the period.
      price: p.
      shares: [...] bool, the customer shares its data.
      discount: fraction off (``data_sharing_discount``).
    """
    gross = jnp.asarray(units, float) * price
    return jnp.where(jnp.asarray(shares), gross * (1.0 - discount), gross)


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class Quote:
    """One ex-ante quote, as stored in the ledger and ``premium_quotes.csv``."""

    datapoint_id: str
    timestamp: dt.datetime
    novelty: float
    causal_gain: float
    expected_mpl: float
    confidence_lower: float
    confidence_upper: float
    kappa: float
    tier: int
    sharing_status: str
    premium_cents: int
    price_per_unit: float
    horizon_hours: float
    trueup_due_date: dt.datetime

    @property
    def sharing_coef(self) -> float:
        return 0.0 if self.sharing_status == SHARED else 1.0

    @property
    def premium(self) -> float:
        return self.premium_cents / 100.0


@dataclasses.dataclass(frozen=True)
class TrueUp:
    """One ex-post reconciliation (``trueup_summary.csv``).

    ``trueup_cents`` > 0 is a refund to the customer, < 0 a further bill; ``already_reconciled``
    is set when the ledger returned an earlier identical reconciliation instead of a new one.
    """

    datapoint_id: str
    timestamp: dt.datetime
    ex_ante_premium_cents: int
    ex_post_premium_cents: int
    expected_mpl: float
    realized_mpl: float
    prediction_error: float
    trueup_cents: int
    trueup_pct: float
    within_interval: bool
    already_reconciled: bool = False

    @property
    def direction(self) -> str:
        return "refund" if self.trueup_cents > 0 else ("bill" if self.trueup_cents < 0 else "none")


def make_quotes(
    ids: Sequence[str],
    novelty: Sequence[float],
    causal_gain: Sequence[float],
    expected: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    kappa_: Sequence[float],
    shared: Sequence[bool],
    *,
    price: float,
    horizon: float,
    thresholds: Sequence[float],
    trueup_period_days: int,
    now: dt.datetime | None = None,
) -> list[Quote]:
    """Quote records for a batch of valued datapoints (premium rounded to cents).

    Raises:
      ValueError: duplicate ids, lengths that differ, or a non-finite value (naming its row).
    """
    now = now or utcnow()
    n = len(ids)
    if len(set(ids)) != n:
        dup = sorted({i for i in ids if list(ids).count(i) > 1})[:3]
        raise ValueError(f"ids: duplicate datapoint ids {dup}")
    for name, seq in [("novelty", novelty), ("causal_gain", causal_gain), ("expected", expected), ("lower", lower), ("upper", upper), ("kappa", kappa_), ("shared", shared)]:
        if len(seq) != n:
            raise ValueError(f"{name}: length {len(seq)} != {n} ids")
    for name, seq in [("novelty", novelty), ("causal_gain", causal_gain), ("expected", expected), ("lower", lower), ("upper", upper), ("kappa", kappa_)]:
        bad = np.flatnonzero(~np.isfinite(np.asarray(seq, float)))
        if bad.size:
            raise ValueError(f"{name}: row {int(bad[0])} (datapoint_id {str(ids[bad[0]])!r}) is {float(np.asarray(seq, float)[bad[0]])}, not finite")
    qa = quote_arrays(np.asarray(expected, float), np.asarray(kappa_, float), np.asarray(shared, bool), price, horizon, np.asarray(thresholds, float))
    premium = np.asarray(qa.premium, float)
    tier = np.asarray(qa.tier)
    due = now + dt.timedelta(days=int(trueup_period_days))
    return [
        Quote(
            datapoint_id=str(ids[i]),
            timestamp=now,
            novelty=float(novelty[i]),
            causal_gain=float(causal_gain[i]),
            expected_mpl=float(expected[i]),
            confidence_lower=float(lower[i]),
            confidence_upper=float(upper[i]),
            kappa=float(kappa_[i]),
            tier=int(tier[i]),
            sharing_status=SHARED if shared[i] else WITHHELD,
            premium_cents=to_cents(float(premium[i])),
            price_per_unit=float(price),
            horizon_hours=float(horizon),
            trueup_due_date=due,
        )
        for i in range(n)
    ]


def compute_trueup(quote: Quote, realized_mpl: float, now: dt.datetime | None = None) -> TrueUp:
    """Ex-post true-up of one quote with its realized ΔMPL (money in cents, exact arithmetic after rounding).

    The realized premium prices max(realized ΔMPL, 0) (module docstring): the refund is at most
    the premium; ``realized_mpl``, ``prediction_error`` and ``within_interval`` keep the raw value.
    """
    realized_mpl = float(realized_mpl)
    if not np.isfinite(realized_mpl):
        raise ValueError(f"realized_mpl for {quote.datapoint_id!r}: {realized_mpl} is not finite")
    ex_post = quote.price_per_unit * quote.kappa * max(realized_mpl, 0.0) * quote.horizon_hours * quote.sharing_coef
    ex_post_cents = to_cents(ex_post)
    trueup_cents = quote.premium_cents - ex_post_cents
    pct = 100.0 * trueup_cents / quote.premium_cents if quote.premium_cents != 0 else 0.0
    return TrueUp(
        datapoint_id=quote.datapoint_id,
        timestamp=now or utcnow(),
        ex_ante_premium_cents=quote.premium_cents,
        ex_post_premium_cents=ex_post_cents,
        expected_mpl=quote.expected_mpl,
        realized_mpl=realized_mpl,
        prediction_error=abs(realized_mpl - quote.expected_mpl),
        trueup_cents=trueup_cents,
        trueup_pct=pct,
        within_interval=bool(quote.confidence_lower <= realized_mpl <= quote.confidence_upper),
    )


def reconciliation_report(
    quotes: Iterable[Quote],
    trueups: Iterable[TrueUp],
    period_start: dt.datetime | None = None,
    period_end: dt.datetime | None = None,
) -> dict:
    """Period totals: premiums, realized premiums, refunds, bills, net, prediction error, coverage.

    Quotes are selected by their timestamp in [period_start, period_end] (open ends allowed);
    true-ups of other quotes are ignored.
    """
    qs = {
        q.datapoint_id: q
        for q in quotes
        if (period_start is None or q.timestamp >= period_start) and (period_end is None or q.timestamp <= period_end)
    }
    ts = [t for t in trueups if t.datapoint_id in qs]
    errs = np.array([t.prediction_error for t in ts], float)
    signed = np.array([t.realized_mpl - t.expected_mpl for t in ts], float)
    withheld = [q for q in qs.values() if q.sharing_status == WITHHELD]
    tier_counts = [sum(1 for q in qs.values() if q.tier == k) for k in range(3)]
    return {
        "period_start": iso(period_start) if period_start else "",
        "period_end": iso(period_end) if period_end else "",
        "n_quotes": len(qs),
        "n_withheld": len(withheld),
        "n_shared": len(qs) - len(withheld),
        "n_reconciled": len(ts),
        "n_open": len(qs) - len(ts),
        "tier_counts": tier_counts,
        "total_premium_cents": sum(q.premium_cents for q in qs.values()),
        "reconciled_premium_cents": sum(t.ex_ante_premium_cents for t in ts),
        "realized_premium_cents": sum(t.ex_post_premium_cents for t in ts),
        "refund_cents": sum(t.trueup_cents for t in ts if t.trueup_cents > 0),
        "bill_cents": -sum(t.trueup_cents for t in ts if t.trueup_cents < 0),
        "net_trueup_cents": sum(t.trueup_cents for t in ts),
        "mean_abs_prediction_error": float(errs.mean()) if len(ts) else float("nan"),
        "mean_prediction_bias": float(signed.mean()) if len(ts) else float("nan"),
        "rmse": float(np.sqrt(np.mean(signed**2))) if len(ts) else float("nan"),
        "interval_coverage": float(np.mean([t.within_interval for t in ts])) if len(ts) else float("nan"),
    }


def format_report(report: Mapping) -> str:
    """A plain-text rendering of :func:`reconciliation_report` for the terminal."""
    c = cents_to_str

    def g(key: str) -> str:  # no true-up in the period: no error statistics
        return "n/a" if report["n_reconciled"] == 0 else f"{report[key]:.4g}"

    coverage = "n/a" if report["n_reconciled"] == 0 else f"{report['interval_coverage']:.1%}"
    lines = [
        f"quotes {report['n_quotes']} (withheld {report['n_withheld']}, shared {report['n_shared']}); "
        f"reconciled {report['n_reconciled']}, open {report['n_open']}; tiers 0/1/2 = {report['tier_counts']}",
        f"premiums quoted ${c(report['total_premium_cents'])}; of reconciled: quoted ${c(report['reconciled_premium_cents'])}, "
        f"realized ${c(report['realized_premium_cents'])}",
        f"refunds ${c(report['refund_cents'])}, further bills ${c(report['bill_cents'])}, net true-up ${c(report['net_trueup_cents'])} "
        "(positive = refunded to customers)",
        f"prediction error: mean |e| {g('mean_abs_prediction_error')}, bias {g('mean_prediction_bias')}, "
        f"RMSE {g('rmse')}; interval coverage {coverage}",
    ]
    return "\n".join(lines)


__all__ = [
    "SHARED",
    "WITHHELD",
    "to_cents",
    "cents_to_str",
    "normalize_sharing",
    "datapoint_id",
    "utcnow",
    "iso",
    "parse_time",
    "QuoteArrays",
    "quote_arrays",
    "trueup_arrays",
    "service_bill",
    "Quote",
    "TrueUp",
    "make_quotes",
    "compute_trueup",
    "reconciliation_report",
    "format_report",
]
