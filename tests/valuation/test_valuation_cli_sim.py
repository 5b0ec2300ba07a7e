"""Simulator calibration against its known ground truth, and every CLI end to end on shipped data."""

from pathlib import Path

import numpy as np
import pytest

import valuation
from valuation import compare_tiers, csv_formats as csvf, ledger as lg, quote, reconcile, report, simulate, simulator
from valuation.settings import ValuationSettings

EX = Path(valuation.__file__).resolve().parent / "examples"


def test_simulator_calibrated_against_ground_truth():
    res = simulator.simulate(ValuationSettings(), episodes=1500, sharing_rate=0.8, customers=12, seed=3)
    s = res.summary
    assert abs(s["interval_coverage"] - 0.80) < 0.05  # well-specified model: nominal coverage
    # the final window holds 100 datapoints: standard errors ≈ 0.4 on each coefficient
    assert s["coef_novelty_fit"] == pytest.approx(4.0, abs=1.5)
    assert s["coef_causal_fit"] == pytest.approx(6.0, abs=1.5)
    e = res.episodes
    fitted = np.arange(len(e["tier"])) >= 10
    pred = e["expected_mpl_gain"][fitted]
    assert abs(np.mean(pred - e["realized_mpl_gain"][fitted])) < 0.1  # unbiased on average
    assert s["cost_per_customer_if_sharing"] < s["cost_per_customer_if_withholding"]
    assert s["provider_mpl_final_none_share"] == s["provider_mpl_initial"] < s["provider_mpl_final"] <= s["provider_mpl_final_all_share"]
    assert s["tier0_pct"] + s["tier1_pct"] + s["tier2_pct"] == pytest.approx(100.0)
    # premiums minus true-ups equal the realized premiums of withheld data (a realized gain below 0 priced as 0)
    w = e["sharing_status"] == "withheld"
    realized = np.maximum(e["realized_mpl_gain"][w], 0.0)
    np.testing.assert_allclose((e["premium_quote"] - e["trueup_amount"])[w], 0.3 * e["kappa"][w] * realized * 1000, rtol=1e-4, atol=1e-2)
    assert np.all(e["premium_quote"][~w] == 0)


def test_examples_parse():
    assert len(csvf.read_quotes_csv(EX / "premium_quotes.csv")) == 60
    assert len(csvf.read_realized_csv(EX / "realized_mpl.csv")) == 60
    assert len(csvf.read_data_value_csv(EX / "data_value.csv")["tier"]) == 300


def test_cli_quote_and_reconcile(tmp_path, capsys):
    db = tmp_path / "ledger.sqlite"
    assert quote.main(["--history", str(EX / "history.csv"), "--datapoints", str(EX / "datapoints.csv"),
                       "--output", str(tmp_path / "pq.csv"), "--data-value", str(tmp_path / "dv.csv"),
                       "--ledger", str(db), "--now", "2026-02-01T00:00:00Z"]) == 0  # fmt: skip
    qs = csvf.read_quotes_csv(tmp_path / "pq.csv")
    assert len(qs) == 12 and {q.datapoint_id for q in qs} == {f"dp-{i:04d}" for i in range(360, 372)}
    assert all(q.premium_cents == 0 for q in qs if q.sharing_status == "shared")
    assert any(q.premium_cents > 0 for q in qs if q.sharing_status == "withheld")
    args = ["--quotes", str(EX / "premium_quotes.csv"), "--realized", str(EX / "realized_mpl.csv"),
            "--output", str(tmp_path / "tu.csv"), "--ledger", str(db), "--report", str(tmp_path / "r.json")]  # fmt: skip
    assert reconcile.main(args) == 0
    first = (tmp_path / "tu.csv").read_text()
    assert reconcile.main(args) == 0  # idempotent, and says so
    assert "already reconciled" in capsys.readouterr().err
    assert (tmp_path / "tu.csv").read_text().splitlines()[1:] == first.splitlines()[1:]
    with lg.Ledger(db) as led:
        assert len(led.trueups()) == 60 and len(led.quotes()) == 72


def test_cli_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "realized_mpl.csv"
    bad.write_text("datapoint_id,realized_mpl\nx,1.0\ny,zero\n")
    rc = reconcile.main(["--quotes", str(EX / "premium_quotes.csv"), "--realized", str(bad), "--output", str(tmp_path / "o.csv")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "realized_mpl.csv:3: column 'realized_mpl': 'zero' is not a number" in err
    assert not (tmp_path / "o.csv").exists()
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("datapoint_id,realized_mpl\nnot-a-quote,1.0\n")
    assert reconcile.main(["--quotes", str(EX / "premium_quotes.csv"), "--realized", str(unknown), "--output", str(tmp_path / "o.csv")]) == 2
    assert "'not-a-quote': no quote" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        report.main(["--help"])
    assert e.value.code == 0 and "--log" in capsys.readouterr().out


def test_cli_simulate_report_compare(tmp_path):
    out = tmp_path / "pricing_simulation.csv"
    assert simulate.main(["--task", "dishwashing", "--data-sharing-rate", "0.8", "--episodes", "300",
                          "--output", str(out), "--ledger-dir", str(tmp_path / "logs")]) == 0  # fmt: skip
    for name in ["pricing_simulation_summary.csv", "pricing_simulation_customers.csv", "pricing_simulation_mpl_growth.png",
                 "pricing_simulation_tier_mix.png", "pricing_simulation_premium_vs_trueup.png", "pricing_simulation_customer_cost.png"]:  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0, name
    dv = tmp_path / "logs" / "data_value.csv"
    assert tuple(dv.read_text().splitlines()[0].split(",")) == csvf.DATA_VALUE_COLUMNS
    assert report.main(["--log", str(EX / "data_value.csv"), "--output", str(tmp_path / "data_valuation.pdf")]) == 0
    pdf = (tmp_path / "data_valuation.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type/Page") >= 1
    assert compare_tiers.main(["--log", str(dv), "--output", str(tmp_path / "tier_comparison.pdf")]) == 0
    table = (tmp_path / "tier_comparison.csv").read_text()
    assert "calibrated (held out)" in table and "configured" in table


def test_simulation_outputs_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A failure while writing one output leaves that file as it was (no truncated CSV)."""
    import pandas as pd

    out = tmp_path / "sim.csv"
    customers = tmp_path / "sim_customers.csv"
    customers.write_text("old,intact\n")
    result = simulator.simulate(ValuationSettings(), episodes=50, seed=1)
    real = pd.DataFrame.to_csv

    def failing(frame, fh=None, **kw):
        if "cost_if_sharing" in frame.columns:  # the customers table
            fh.write("partial")
            raise OSError(28, "No space left on device")
        return real(frame, fh, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    with pytest.raises(valuation.errors.ValuationError, match="sim_customers.csv"):
        simulator.write_outputs(result, out, plots_dir=tmp_path)
    assert customers.read_text() == "old,intact\n"
    assert not list(tmp_path.glob("*.tmp"))


def test_valuation_never_imports_envs_or_train():
    import ast

    pkg = Path(valuation.__file__).resolve().parent
    for f in list(pkg.glob("*.py")) + list(pkg.glob("examples/*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert n.split(".")[0] not in ("envs", "train"), f"{f.name} imports {n}"
