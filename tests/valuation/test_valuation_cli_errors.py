"""Every valuation CLI: a user's error is one stderr line naming it, status 2, and nothing written."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import valuation
from valuation import compare_tiers, ledger as lg, pricing, quote, reconcile, report, simulate

EX = Path(valuation.__file__).resolve().parent / "examples"
NOW = ["--now", "2026-02-01T00:00:00Z"]


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with a hash of its bytes, and the ledger tables' rows."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    db = folder / "ledger.sqlite"
    if db.is_file():
        con = sqlite3.connect(db)
        out["rows"] = [con.execute(f"SELECT * FROM {t} ORDER BY datapoint_id").fetchall() for t in ("quotes", "trueups")]
        con.close()
    return out


@pytest.fixture
def work(tmp_path):
    """A folder holding copies of the examples, a ledger with quotes and true-ups, and an earlier output."""
    for name in ("history.csv", "datapoints.csv", "premium_quotes.csv", "realized_mpl.csv", "data_value.csv"):
        shutil.copy(EX / name, tmp_path / name)
    assert reconcile.main(["--quotes", str(tmp_path / "premium_quotes.csv"), "--realized", str(tmp_path / "realized_mpl.csv"),
                           "--output", str(tmp_path / "tu.csv"), "--ledger", str(tmp_path / "ledger.sqlite")] + NOW) == 0  # fmt: skip
    (tmp_path / "out").mkdir()
    return tmp_path


def _edit(path: Path, line: int, col: str, value: str) -> Path:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[line - 1].split(",")
    row[header.index(col)] = value
    lines[line - 1] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    return path


def _quote_args(w, **kw):
    a = {"--history": w / "history.csv", "--datapoints": w / "datapoints.csv", "--output": w / "out" / "pq.csv",
         "--ledger": w / "ledger.sqlite", **kw}  # fmt: skip
    return [x for k, v in a.items() if v is not None for x in (k, str(v))] + NOW


def _reconcile_args(w, **kw):
    a = {"--quotes": w / "premium_quotes.csv", "--realized": w / "realized_mpl.csv", "--output": w / "out" / "tu.csv",
         "--ledger": w / "ledger.sqlite", **kw}  # fmt: skip
    return [x for k, v in a.items() if v is not None for x in (k, str(v))]


# (name, CLI, arguments from the work folder, prepare(work), what the one line must contain)
CASES = [
    ("quote: bad number", quote, lambda w: _quote_args(w), lambda w: _edit(w / "datapoints.csv", 3, "causal_gain", "lots"),
     ["datapoints.csv:3", "'causal_gain'", "'lots' is not a number"]),
    ("quote: negative novelty", quote, lambda w: _quote_args(w), lambda w: _edit(w / "history.csv", 5, "novelty_score", "-0.5"),
     ["history.csv:5", "'novelty_score'", "-0.5 must be >= 0"]),
    ("quote: duplicate id", quote, lambda w: _quote_args(w), lambda w: _edit(w / "datapoints.csv", 4, "datapoint_id", "dp-0360"),
     ["datapoints.csv:4", "'dp-0360' repeats line 2"]),
    ("quote: header only", quote, lambda w: _quote_args(w), lambda w: (w / "history.csv").write_text("novelty_score,causal_gain,realized_mpl_gain\n"),
     ["history.csv:2", "no data rows"]),
    ("quote: ledger folder missing", quote, lambda w: _quote_args(w, **{"--ledger": w / "nope" / "l.sqlite"}), None,
     ["nope", "does not exist"]),
    ("quote: output is a folder", quote, lambda w: _quote_args(w, **{"--output": w / "out"}), None,
     ["--output", "is a folder"]),
    ("quote: bad --now", quote, lambda w: _quote_args(w)[:-2] + ["--now", "tuesday"], None,
     ["--now", "'tuesday'", "ISO-8601"]),
    ("quote: unknown --set key", quote, lambda w: _quote_args(w) + ["--set", "pricing.nope=1"], None,
     ["pricing.nope"]),
    ("quote: unread key", quote, lambda w: _quote_args(w) + ["--set", "pricing.trueup_payment_terms=net30"], None,
     ["trueup_payment_terms"]),
    ("reconcile: unknown id", reconcile, lambda w: _reconcile_args(w), lambda w: _edit(w / "realized_mpl.csv", 7, "datapoint_id", "ghost"),
     ["realized_mpl.csv:7", "'ghost'", "no quote"]),
    ("reconcile: negative premium", reconcile, lambda w: _reconcile_args(w), lambda w: _edit(w / "premium_quotes.csv", 3, "premium", "-5.00"),
     ["premium_quotes.csv:3", "'premium'", "-5.00 must be >= 0"]),
    ("reconcile: negative price", reconcile, lambda w: _reconcile_args(w), lambda w: _edit(w / "premium_quotes.csv", 4, "price_per_unit", "-0.3"),
     ["premium_quotes.csv:4", "'price_per_unit'", "must be > 0"]),
    ("reconcile: zero horizon", reconcile, lambda w: _reconcile_args(w), lambda w: _edit(w / "premium_quotes.csv", 2, "horizon_hours", "0"),
     ["premium_quotes.csv:2", "'horizon_hours'", "must be > 0"]),
    ("reconcile: header-only realized", reconcile, lambda w: _reconcile_args(w), lambda w: (w / "realized_mpl.csv").write_text("datapoint_id,realized_mpl\n"),
     ["realized_mpl.csv:2", "no data rows"]),
    ("reconcile: report is a folder", reconcile, lambda w: _reconcile_args(w, **{"--report": w / "out"}), None,
     ["--report", "is a folder"]),
    ("reconcile: bad --period-start", reconcile, lambda w: _reconcile_args(w) + ["--period-start", "soon"], None,
     ["--period-start", "'soon'"]),
    ("reconcile: ledger is a folder", reconcile, lambda w: _reconcile_args(w, **{"--ledger": w / "out"}), None,
     ["ledger", "is a folder"]),
    ("reconcile: conflicting realized value", reconcile, lambda w: _reconcile_args(w), lambda w: _edit(w / "realized_mpl.csv", 5, "realized_mpl", "9.5"),
     ["already reconciled", "refusing 9.5"]),
    ("report: duplicate id", report, lambda w: ["--log", str(w / "data_value.csv"), "--output", str(w / "out" / "r.pdf")],
     lambda w: _edit(w / "data_value.csv", 6, "datapoint_id", (w / "data_value.csv").read_text().splitlines()[2].split(",")[0]),
     ["data_value.csv:6", "repeats line 3"]),
    ("report: output is a folder", report, lambda w: ["--log", str(w / "data_value.csv"), "--output", str(w / "out.pdf")],
     lambda w: (w / "out.pdf").mkdir(), ["--output", "is a folder"]),
    ("compare_tiers: kappa out of range", compare_tiers, lambda w: ["--log", str(w / "data_value.csv"), "--output", str(w / "out" / "t.pdf")],
     lambda w: _edit(w / "data_value.csv", 9, "kappa", "1.5"), ["data_value.csv:9", "'kappa'", "must be in [0, 1]"]),
    ("simulate: negative --noise-std", simulate, lambda w: ["--noise-std", "-1", "--output", str(w / "out" / "s.csv")], None,
     ["--noise-std", "-1 must be >= 0"]),
    ("simulate: sharing rate above 1", simulate, lambda w: ["--data-sharing-rate", "1.5", "--output", str(w / "out" / "s.csv")], None,
     ["--data-sharing-rate", "in [0, 1]"]),
    ("simulate: missing --output", simulate, lambda w: [], None, ["--output"]),
]  # fmt: skip


@pytest.mark.parametrize("name,cli,args,prepare,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_status_2_and_nothing_written(work, capsys, name, cli, args, prepare, needles):
    if prepare is not None:
        prepare(work)
    before = _snapshot(work)
    capsys.readouterr()
    try:
        rc = cli.main(args(work))
    except SystemExit as e:  # argparse refusals exit
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m valuation.{cli.__name__.split('.')[-1]}: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert _snapshot(work) == before  # ledger rows and every file, byte for byte; no .tmp left


def test_subprocess_one_line_no_traceback(work):
    # the real entry point: no traceback, nothing else on stderr
    args = _reconcile_args(work)
    _edit(work / "realized_mpl.csv", 2, "datapoint_id", "ghost")
    before = _snapshot(work)
    res = subprocess.run([sys.executable, "-m", "valuation.reconcile", *args], capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"python -m valuation.reconcile: error: {work / 'realized_mpl.csv'}:2: datapoint_id 'ghost': no quote in the quotes file nor ledger {work / 'ledger.sqlite'}"]
    assert _snapshot(work) == before


def test_internal_error_keeps_traceback(work, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pricing, "reconciliation_report", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        reconcile.main(_reconcile_args(work))


def test_crash_before_commit_leaves_ledger_and_outputs_unchanged(work, monkeypatch):
    # the process dies (KeyboardInterrupt stands in for a kill) while the true-ups are being written
    new = work / "realized_new.csv"
    new.write_text("datapoint_id,realized_mpl\n" + "".join(f"{q},1.0\n" for q in ("a", "b")))
    pq = work / "pq_new.csv"
    qs = pricing.make_quotes(["a", "b"], [0.1, 0.2], [0.1, 0.2], [1.0, 2.0], [0.5, 1.5], [1.5, 2.5], [0.5, 0.75], [False, False],
                             price=0.3, horizon=1000.0, thresholds=(0.5, 3.0), trueup_period_days=90)  # fmt: skip
    from valuation import csv_formats as csvf

    csvf.write_quotes_csv(pq, qs)
    before = _snapshot(work)
    calls = []

    def dying(quote, realized, now=None):
        calls.append(quote.datapoint_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(quote, realized, now)

    real = pricing.compute_trueup
    monkeypatch.setattr(pricing, "compute_trueup", dying)
    with pytest.raises(KeyboardInterrupt):
        reconcile.main(_reconcile_args(work, **{"--quotes": pq, "--realized": new, "--report": work / "out" / "r.json"}))
    assert calls == ["a", "b"]
    assert _snapshot(work) == before  # neither the quotes of the batch nor the first true-up were kept


def test_new_ledger_removed_when_the_command_fails(work):
    db = work / "out" / "fresh.sqlite"
    _edit(work / "realized_mpl.csv", 2, "realized_mpl", "1.0")  # premium_quotes.csv still holds every id
    _edit(work / "premium_quotes.csv", 2, "datapoint_id", "renamed")
    assert reconcile.main(_reconcile_args(work, **{"--ledger": db})) == 2  # the realized id on line 2 has no quote
    assert not db.exists()


def test_quote_writes_csv_only_after_the_ledger_commit(work, monkeypatch, capsys):
    out = work / "out" / "pq.csv"

    def refuse(self, quotes):
        raise lg.DuplicateQuoteError("datapoint_id 'dp-0360': already quoted with different values")

    monkeypatch.setattr(lg.Ledger, "add_quotes", refuse)
    before = _snapshot(work)
    assert quote.main(_quote_args(work)) == 2
    assert "already quoted" in capsys.readouterr().err
    assert not out.exists() and _snapshot(work) == before


def test_report_written_atomically_into_a_new_folder(work):
    rep = work / "new" / "deeper" / "report.json"
    assert reconcile.main(_reconcile_args(work, **{"--report": rep})) == 0
    data = json.loads(rep.read_text())
    assert data["n_reconciled"] == 60
    assert not list(rep.parent.glob("*.tmp"))
