"""Quotes, true-ups, the seed's $1,440 example, and the SQLite ledger's guarantees."""

import datetime as dt
import sqlite3

import jax
import numpy as np
import pytest

from valuation import csv_formats as csvf
from valuation import ledger as lg
from valuation import pricing
from valuation.settings import load

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _quotes(n=4, shared=None):
    rng = np.random.default_rng(0)
    exp = rng.uniform(0.2, 8.0, n)
    lower = exp * 0.7
    kap = np.clip(lower / exp, 0.3, 1.0)
    shared = [False] * n if shared is None else shared
    return pricing.make_quotes(
        [f"dp{i}" for i in range(n)], rng.uniform(size=n), rng.uniform(size=n), exp, lower, exp * 1.3, kap, shared,
        price=0.30, horizon=1000.0, thresholds=(0.5, 3.0), trueup_period_days=90, now=T0,
    )  # fmt: skip


def test_seed_premium_example_1440():
    # p = 0.30, κ = 0.8, E[ΔMPL] = 6, H = 1000, S = 1 → $1,440, frontier tier
    qa = pricing.quote_arrays(6.0, 0.8, False, 0.30, 1000.0, np.array([0.5, 3.0]))
    assert float(qa.premium) == pytest.approx(1440.0)
    assert int(qa.tier) == 2
    q = pricing.make_quotes(["f"], [0.9], [0.7], [6.0], [4.8], [7.2], [0.8], [False], price=0.30, horizon=1000.0,
                            thresholds=(0.5, 3.0), trueup_period_days=90, now=T0)[0]  # fmt: skip
    assert q.premium_cents == 144000 and q.sharing_status == "withheld"
    assert q.trueup_due_date - q.timestamp == dt.timedelta(days=90)
    # the same numbers from the shipped config
    s = load("dishwashing")
    assert (s.pricing.base_price_per_task, s.pricing.horizon_hours) == (0.30, 1000.0)
    # sharing: no premium, the customer gets the discount on the service bill instead
    qs = pricing.quote_arrays(6.0, 0.8, True, 0.30, 1000.0, np.array([0.5, 3.0]))
    assert float(qs.premium) == 0.0
    bill = pricing.service_bill(np.array([1000.0, 1000.0]), 0.30, np.array([True, False]), 0.15)
    np.testing.assert_allclose(bill, [255.0, 300.0])


def test_quote_arrays_jit_agrees():
    e = np.array([0.1, 1.0, 6.0]); k = np.array([0.3, 0.5, 0.8]); sh = np.array([False, True, False])
    a = pricing.quote_arrays(e, k, sh, 0.3, 1000.0, np.array([0.5, 3.0]))
    b = jax.jit(pricing.quote_arrays)(e, k, sh, 0.3, 1000.0, np.array([0.5, 3.0]))
    np.testing.assert_allclose(a.premium, b.premium, rtol=1e-6)
    np.testing.assert_array_equal(a.tier, [0, 1, 2])
    r, tu = pricing.trueup_arrays(b.premium, k, np.array([0.1, 2.0, 5.0]), 0.3, 1000.0, b.sharing_coef)
    np.testing.assert_allclose(tu, [0.0, 0.0, 240.0], atol=1e-3)


def test_trueup_refund_bill_and_pct():
    q = pricing.make_quotes(["f"], [0.9], [0.7], [6.0], [4.8], [7.2], [0.8], [False], price=0.30, horizon=1000.0,
                            thresholds=(0.5, 3.0), trueup_period_days=90, now=T0)[0]  # fmt: skip
    t = pricing.compute_trueup(q, 5.0, now=T0)
    assert t.ex_post_premium_cents == 120000 and t.trueup_cents == 24000 and t.direction == "refund"
    assert t.trueup_pct == pytest.approx(100 * 240 / 1440)
    assert t.within_interval
    t2 = pricing.compute_trueup(q, 7.5, now=T0)
    assert t2.trueup_cents == -36000 and t2.direction == "bill" and not t2.within_interval


def test_to_cents_and_ids():
    assert pricing.to_cents(0.1 + 0.2) == 30
    assert pricing.to_cents("1440.005") == 144000  # half to even
    assert pricing.cents_to_str(-1205) == "-12.05"
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert pricing.datapoint_id(a) == pricing.datapoint_id(a.copy())
    assert pricing.datapoint_id(a) != pricing.datapoint_id(a.reshape(3, 2))
    assert pricing.datapoint_id(a) != pricing.datapoint_id(a.astype(np.float64))


def test_reconciliation_report():
    qs = _quotes(4)
    ts = [pricing.compute_trueup(q, q.expected_mpl * f, now=T0) for q, f in zip(qs[:3], [1.0, 0.5, 2.0])]
    rep = pricing.reconciliation_report(qs, ts)
    assert rep["n_quotes"] == 4 and rep["n_reconciled"] == 3 and rep["n_open"] == 1
    assert rep["net_trueup_cents"] == sum(t.trueup_cents for t in ts)
    assert rep["refund_cents"] - rep["bill_cents"] == rep["net_trueup_cents"]
    assert rep["interval_coverage"] == pytest.approx(1 / 3)
    assert "net true-up" in pricing.format_report(rep)
    # a period selects quotes by their timestamp
    assert pricing.reconciliation_report(qs, ts, period_start=T0 + dt.timedelta(days=1))["n_quotes"] == 0


def test_ledger_crash_between_quote_and_trueup(tmp_path):
    db = tmp_path / "ledger.sqlite"
    qs = _quotes(3)
    led = lg.Ledger(db)
    assert led.add_quotes(qs) == 3
    led._con.close()  # the process dies before any true-up (no clean close)
    led = lg.Ledger(db)
    assert [q.datapoint_id for q in led.quotes()] == ["dp0", "dp1", "dp2"]
    assert led.get_quote("dp1") == qs[1]
    t = led.reconcile("dp1", 1.0, now=T0)
    assert t.ex_ante_premium_cents == qs[1].premium_cents
    led.close()


def test_ledger_crash_mid_batch_keeps_committed(tmp_path):
    db = tmp_path / "ledger.sqlite"
    with lg.Ledger(db) as led:
        led.add_quotes(_quotes(4))
        led.reconcile_many([("dp0", 1.0)], now=T0)  # committed batch

        def batch():
            yield ("dp1", 2.0)
            yield ("dp2", 3.0)
            raise RuntimeError("power cut")  # simulated crash inside the batch

        with pytest.raises(RuntimeError, match="power cut"):
            led.reconcile_many(batch(), now=T0)
        # a duplicate-quote error mid-batch rolls that batch back too
        bad = _quotes(4)[0]
        new = pricing.make_quotes(["dpX"], [0.1], [0.1], [1.0], [0.5], [1.5], [0.5], [False], price=0.3,
                                  horizon=1000.0, thresholds=(0.5, 3.0), trueup_period_days=90, now=T0)[0]  # fmt: skip
        import dataclasses

        with pytest.raises(lg.DuplicateQuoteError):
            led.add_quotes([new, dataclasses.replace(bad, kappa=0.99)])
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT datapoint_id FROM trueups")] == ["dp0"]
    assert con.execute("SELECT COUNT(*) FROM quotes").fetchone()[0] == 4
    con.close()


def test_ledger_double_reconcile_and_unknown_id(tmp_path):
    with lg.Ledger(tmp_path / "l.sqlite") as led:
        led.add_quotes(_quotes(2))
        first = led.reconcile("dp0", 2.5, now=T0)
        assert not first.already_reconciled
        again = led.reconcile("dp0", 2.5, now=T0 + dt.timedelta(days=3))
        assert again.already_reconciled
        assert again.trueup_cents == first.trueup_cents and again.timestamp == first.timestamp
        assert len(led.trueups()) == 1
        with pytest.raises(lg.ReconcileConflictError, match="already reconciled"):
            led.reconcile("dp0", 9.0)
        with pytest.raises(lg.UnknownDatapointError, match="'nope': no quote"):
            led.reconcile("nope", 1.0)
        with pytest.raises(lg.UnknownDatapointError):
            led.reconcile_many([("dp1", 1.0), ("nope", 1.0)])
        assert len(led.trueups()) == 1  # dp1 rolled back with the batch


def test_csv_round_trip_and_exports(tmp_path):
    qs = _quotes(5, shared=[False, True, False, True, False])
    csvf.write_quotes_csv(tmp_path / "premium_quotes.csv", qs)
    assert csvf.read_quotes_csv(tmp_path / "premium_quotes.csv") == qs
    csvf.write_realized_csv(tmp_path / "realized_mpl.csv", [("dp0", 1.5), ("dp1", 0.25)])
    with lg.Ledger() as led:
        assert led.add_quotes(csvf.read_quotes_csv(tmp_path / "premium_quotes.csv")) == 5
        ts = led.reconcile_many(csvf.read_realized_csv(tmp_path / "realized_mpl.csv"), now=T0)
        assert ts[1].trueup_cents == 0  # shared: no premium, nothing to true up
        csvf.write_trueups_csv(tmp_path / "trueup_summary.csv", led.trueups())
        csvf.write_data_value_csv(tmp_path / "data_value.csv", led.quotes(), led.trueups())
    header = (tmp_path / "data_value.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == csvf.DATA_VALUE_COLUMNS
    dv = csvf.read_data_value_csv(tmp_path / "data_value.csv")
    assert dv["realized_mpl_gain"][0] == 1.5 and np.isnan(dv["realized_mpl_gain"][2])
    assert tuple((tmp_path / "trueup_summary.csv").read_text().splitlines()[0].split(",")) == csvf.TRUEUP_COLUMNS


@pytest.mark.parametrize(
    "col,value,msg",
    [("kappa", "abc", "'kappa': 'abc' is not a number"), ("tier", "7", "not a tier"),
     ("sharing_status", "maybe", "use 'shared' or 'withheld'"), ("premium", "", "'premium' is empty"),
     ("timestamp", "yesterday", "not an ISO-8601")],
)  # fmt: skip
def test_malformed_csv_row_rejected_with_line_and_nothing_written(tmp_path, col, value, msg):
    path = tmp_path / "premium_quotes.csv"
    csvf.write_quotes_csv(path, _quotes(4))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")  # the third data row is line 4 of the file
    row[header.index(col)] = value
    lines[3] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    with lg.Ledger(tmp_path / "l.sqlite") as led:
        with pytest.raises(csvf.CSVFormatError) as err:
            led.add_quotes(csvf.read_quotes_csv(path))
        assert f"premium_quotes.csv:4: " in str(err.value) and msg in str(err.value)
        assert led.quotes() == []  # nothing written


def test_malformed_realized_csv_nothing_written(tmp_path):
    with lg.Ledger() as led:
        led.add_quotes(_quotes(3))
        p = tmp_path / "realized_mpl.csv"
        p.write_text("datapoint_id,realized_mpl\ndp0,1.0\ndp1,1.0,extra\n")
        with pytest.raises(csvf.CSVFormatError, match=r"realized_mpl.csv:3: 3 fields"):
            led.reconcile_many(csvf.read_realized_csv(p))
        p.write_text("datapoint_id,realized\ndp0,1.0\n")
        with pytest.raises(csvf.CSVFormatError, match=r"realized_mpl.csv:1: header lacks columns \['realized_mpl'\]"):
            led.reconcile_many(csvf.read_realized_csv(p))
        assert led.trueups() == []
