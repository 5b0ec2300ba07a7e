"""The economic-truth study on the point task: a planted harmful demonstration (the expert's actions
reversed) has a negative realized gain by counterfactual retraining, and the engine's cross-fitted
prediction puts it below the clean demonstrations."""

import numpy as np
import pytest

from envs.point import PointDeliver, expert
from train.datamodels import RetrainConfig
from train.economic_truth import StudyConfig, run_study
from train.economic_truth_cli import shifted_params
from valuation import settings as vsettings


def test_reversed_demonstration_realized_negative_and_predicted_below_clean():
    env = PointDeliver()
    cfg = StudyConfig(pool=(("clean", 12), ("reversed", 3), ("noisy", 2), ("duplicate", 2), ("shifted", 2)),
                      retrain=RetrainConfig(subsets=40), removal=(0.2,), repeats=1, loo=3, folds=3)
    res = run_study(env, expert, cfg, vsettings.load("dishwashing"), shifted_params=shifted_params(env),
                    log=lambda *_: None)
    t = res["table"]
    bad, clean = t["kind"] == "reversed", t["kind"] == "clean"
    assert len(set(t["datapoint_id"])) == len(t["kind"])  # content hashes tell the demonstrations apart
    assert res["outcomes"]["mp"].max() > 0  # the retrained students learned something to lose
    assert np.all(t["realized"][bad] < 0), t["realized"][bad]
    assert t["realized"][clean].mean() > 0  # clean demonstrations help on average
    # each one below the clean average with its whole 80% bootstrap interval
    assert np.all(t["realized_hi"][bad] < t["realized"][clean].mean()), (t["realized_hi"][bad], t["realized"][clean])
    # the value model, fitted on the other folds' measured gains, predicts the planted ones below the clean ones
    assert t["pred_raw_mean"][bad].max() < np.median(t["pred_raw_mean"][clean]), (t["pred_raw_mean"], t["kind"])
    card = res["card"]
    assert card["tier_confusion"].sum() == len(t["kind"]) and np.isfinite(card["lds"])
    assert set(res["removal"]) == {(0.2, "top"), (0.2, "random"), (0.2, "bottom")}


@pytest.mark.parametrize("args,names", [
    (["--pool", "clean=4,bogus=2"], ["--pool", "'bogus=2'", "KIND=N"]),
    (["--pool", "noisy=4"], ["--pool", "clean"]),
    (["--subsets", "20"], ["--subsets", "= 20", ">= 36"]),
    (["--eval-envs", "0"], ["--eval-envs 0", ">= 1"]),
    (["--init", "runs/x", "--warm-start", "2"], ["--init", "--warm-start", "give one"]),
    (["--causal", "student"], ["--causal student", "needs a student"]),
    (["--seeds", "-1"], ["--seeds -1", ">= 0"]),
])
def test_cli_refuses_bad_sizes_in_one_line_before_any_work(tmp_path, capsys, args, names):
    from train.economic_truth_cli import main
    from vpjax.cli import run_main

    assert run_main(main, ["--out", str(tmp_path / "out"), *args], prog="python -m train.economic_truth") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in names), err


def test_cli_writes_the_record_and_closes_the_loop_through_reconcile(tmp_path):
    from train.economic_truth_cli import main

    out = tmp_path / "out"
    assert main(["--pool", "clean=6,reversed=1,noisy=1", "--subsets", "16", "--sgd-steps", "60", "--eval-envs", "8",
                 "--removal", "0.25", "--repeats", "1", "--loo", "2", "--folds", "2", "--out", str(out),
                 "--record", str(tmp_path / "rec" / "truth")]) == 0
    md = (out / "economic_truth.md").read_text()
    for part in ("| spearman |", "| coverage |", "| tier_diagonal |", "| median_abs_trueup_pct |", "| lds |",
                 "Tier confusion", "True-ups as % of the premium", "Removal curve", "Leave-one-out"):
        assert part in md, part
    assert (tmp_path / "rec" / "truth.md").read_text() == md and (tmp_path / "rec" / "truth.png").stat().st_size > 0
    for name in ("economic_truth.png", "data_valuation.pdf"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd

    study, trueups = pd.read_csv(out / "study.csv"), pd.read_csv(out / "trueup_summary.csv")
    realized = pd.read_csv(out / "realized_mpl.csv")
    assert len(study) == len(realized) == 8 and set(trueups["datapoint_id"]) == set(study["datapoint_id"])
    assert study.loc[study["kind"] == "reversed", "causal_gain"].iloc[0] >= 0  # the engine's feature stays >= 0
