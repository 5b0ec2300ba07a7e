"""CSV readers refuse random bad rows with their line (hypothesis); the value rules on bad numbers."""

import csv
import datetime as dt
import math
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuation import bayes_linear as bl
from valuation import csv_formats as csvf
from valuation import ledger as lg
from valuation import pricing
from valuation.errors import CSVFormatError
from valuation.quote import quote_batch
from valuation.settings import ValuationSettings

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _quotes(n=6):
    rng = np.random.default_rng(1)
    exp = rng.uniform(0.5, 6.0, n)
    return pricing.make_quotes(
        [f"dp{i}" for i in range(n)], rng.uniform(size=n), rng.uniform(size=n), exp, 0.7 * exp, 1.3 * exp,
        np.full(n, 0.7), [False] * n, price=0.30, horizon=1000.0, thresholds=(0.5, 3.0), trueup_period_days=90, now=T0,
    )  # fmt: skip


# Per file: the reader, a writer of a valid file, and for some columns values each rule refuses.
NEG = st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False).map(repr)
NOT_NUMBER = st.sampled_from(["abc", "", "nan", "inf", "-inf", "1,5", "0x1p3z"])
BAD = {
    "premium_quotes.csv": {
        "premium": NEG, "horizon_hours": st.one_of(NEG, st.just("0")), "price_per_unit": st.one_of(NEG, st.just("0")),
        "kappa": st.one_of(NEG, st.floats(min_value=1.0001, max_value=1e9).map(repr)), "novelty": NEG,
        "expected_mpl": NEG, "tier": st.sampled_from(["3", "-1", "1.5", "x"]), "sharing_status": st.sampled_from(["maybe", "yes"]),
        "timestamp": st.sampled_from(["yesterday", "2026-13-01"]), "datapoint_id": st.just("dp0"),
    },
    "realized_mpl.csv": {"realized_mpl": NOT_NUMBER, "datapoint_id": st.just("dp0")},
    "data_value.csv": {
        "premium_quote": NEG, "kappa": st.floats(min_value=1.0001, max_value=1e9).map(repr), "causal_gain": NEG,
        "confidence_lower": NEG, "datapoint_id": st.just("dp0"), "tier": st.just("7"),
    },
    "history.csv": {"novelty_score": NEG, "causal_gain": NEG, "realized_mpl_gain": NOT_NUMBER},
}  # fmt: skip
READ = {
    "premium_quotes.csv": csvf.read_quotes_csv,
    "realized_mpl.csv": csvf.read_realized_csv,
    "data_value.csv": csvf.read_data_value_csv,
    "history.csv": csvf.read_history,
}


def _write_valid(folder, name):
    path = folder / name
    qs = _quotes()
    if name == "premium_quotes.csv":
        csvf.write_quotes_csv(path, qs)
    elif name == "realized_mpl.csv":
        csvf.write_realized_csv(path, [(q.datapoint_id, 1.0 + i) for i, q in enumerate(qs)])
    elif name == "data_value.csv":
        csvf.write_data_value_csv(path, qs)
    else:
        path.write_text("novelty_score,causal_gain,realized_mpl_gain\n" + "".join(f"0.{i},0.{i + 1},{i - 2}.5\n" for i in range(6)))
    return path


@st.composite
def _bad_file(draw):
    name = draw(st.sampled_from(sorted(BAD)))
    col = draw(st.sampled_from(sorted(BAD[name])))
    value = draw(BAD[name][col])
    line = draw(st.integers(3, 7))  # a data row after the first (duplicates repeat line 2's id)
    return name, col, value, line


@settings(max_examples=60, deadline=None)
@given(case=_bad_file())
def test_random_bad_row_refused_with_its_line_and_nothing_written(case):
    with tempfile.TemporaryDirectory() as d:
        _check_refused(Path(d), *case)


def _check_refused(tmp_path, name, col, value, line):
    path = _write_valid(tmp_path, name)
    READ[name](path)  # the valid file reads
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(col)] = value  # written raw below, so "1,5" adds a field
    path.write_text("".join(",".join(r) + "\n" for r in rows))
    with lg.Ledger(tmp_path / "l.sqlite") as led:
        with pytest.raises(CSVFormatError) as err:
            rows = READ[name](path)
            if name == "premium_quotes.csv":
                led.add_quotes(rows)
        assert f"{name}:{line}: " in str(err.value) and "\n" not in str(err.value)
        assert led.quotes() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "l.sqlite"])


def test_negative_realized_gain_refunds_at_most_the_premium():
    q = pricing.make_quotes(["f"], [0.9], [0.7], [6.0], [4.8], [7.2], [0.8], [False], price=0.30, horizon=1000.0,
                            thresholds=(0.5, 3.0), trueup_period_days=90, now=T0)[0]  # fmt: skip
    t = pricing.compute_trueup(q, -2.0, now=T0)
    assert t.ex_post_premium_cents == 0 and t.trueup_cents == q.premium_cents == 144000
    assert t.realized_mpl == -2.0 and t.prediction_error == 8.0 and not t.within_interval  # the record keeps the raw gain
    _, tu = pricing.trueup_arrays(np.array([1440.0, 1440.0]), 0.8, np.array([-2.0, 0.0]), 0.30, 1000.0, np.array([1.0, 1.0]))
    np.testing.assert_allclose(tu, [1440.0, 1440.0])


def test_value_model_refuses_non_finite_inputs_and_ignores_masked_nan():
    with pytest.raises(ValueError, match=r"history: row 2, column 'causal_gain': nan is not finite"):
        quote_batch(np.array([[0.1, 0.2], [0.2, 0.3], [0.3, np.nan]]), np.ones(3), ["a"], np.array([[0.1, 0.1]]), [False], ValuationSettings())
    with pytest.raises(ValueError, match=r"datapoints: row 0, column 'novelty_score': inf"):
        quote_batch(np.zeros((3, 2)), np.ones(3), ["a"], np.array([[np.inf, 0.1]]), [False], ValuationSettings())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    mask = np.arange(30) < 20
    xp, yp = x.copy(), y.copy()
    xp[25], yp[27] = np.nan, np.inf  # excluded rows
    with jax.enable_x64(True):
        hp = bl.BayesRidgeParams.create()
        a, b = bl.fit(x, y, mask, hp), bl.fit(xp, yp, mask, hp)
    np.testing.assert_array_equal(np.asarray(a.coef), np.asarray(b.coef))
    assert np.all(np.isfinite(np.asarray(b.sigma)))


def test_nan_mean_gives_nan_kappa_not_the_floor_and_quotes_refuse_it():
    with jax.enable_x64(True):
        hp = bl.BayesRidgeParams.create(min_samples=1)
        model = bl.fit(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([1.0, 2.0, 3.0]), None, hp)
        pred = bl.predict_value(model, np.array([[np.nan, 0.0], [0.5, 0.5]]), hp)
    assert math.isnan(float(pred.kappa[0])) and np.isfinite(float(pred.kappa[1]))
    with pytest.raises(ValueError, match=r"row 0 .*'a'.* not finite"):
        pricing.make_quotes(["a", "b"], [0.1, 0.1], [0.1, 0.1], pred.mean, pred.lower, pred.upper, pred.kappa, [False, False],
                            price=0.3, horizon=1000.0, thresholds=(0.5, 3.0), trueup_period_days=90)  # fmt: skip


def test_min_samples_above_window_refused_at_init():
    with pytest.raises(ValueError, match="min_samples: 20 > window 10"):
        bl.rolling_init(10, 2, bl.BayesRidgeParams.create(min_samples=20))
    bl.rolling_init(10, 2, bl.BayesRidgeParams.create(min_samples=10))


def test_report_of_a_period_without_true_ups_says_n_a():
    rep = pricing.reconciliation_report(_quotes(2), [])
    text = pricing.format_report(rep)
    assert "RMSE n/a" in text and "nan" not in text
