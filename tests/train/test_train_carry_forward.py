"""CSV rows of chunks in which no episode finished repeat the last measured economics."""

import csv
import math

from train import metrics_log


def _row(member, iteration, pp):
    r = {k: pp for k in metrics_log.MEASURED}
    r.update(member=member, iteration=iteration)
    return r


def test_carry_forward_fills_only_unmeasured_rows():
    last = {}
    rows = [_row(0, 10, float("nan")), _row(1, 10, 0.5)]
    metrics_log.carry_forward(rows, last)
    assert rows[0]["stats_iteration"] == -1 and math.isnan(rows[0]["MP_r"])  # nothing measured yet: stays NaN
    assert rows[1]["stats_iteration"] == 10 and rows[1]["MP_r"] == 0.5
    rows = [_row(0, 20, 0.25), _row(1, 20, float("nan"))]
    metrics_log.carry_forward(rows, last)
    assert rows[0]["stats_iteration"] == 20 and rows[0]["eval_wage_parity"] == 0.25
    assert rows[1]["stats_iteration"] == 10 and rows[1]["eval_wage_parity"] == 0.5 and rows[1]["iteration"] == 20
    rows = [_row(0, 30, 0.75)]
    metrics_log.carry_forward(rows, last)
    assert last[0]["MP_r"] == 0.75 and last[1]["MP_r"] == 0.5


def test_truncate_csv_keeps_rows_and_returns_last_measurement(tmp_path):
    path = tmp_path / "training_metrics.csv"
    last = {}
    rows = []
    for it, pp in ((10, 0.5), (20, float("nan")), (30, 0.7)):
        batch = [_row(0, it, pp)]
        metrics_log.carry_forward(batch, last)
        rows += batch
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, metrics_log.CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    got = metrics_log.truncate_csv(path, 20)
    with path.open() as f:
        kept = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in kept] == [10, 20]
    assert got[0]["stats_iteration"] == 10 and got[0]["MP_r"] == 0.5


def test_extra_reward_columns_are_carried_and_a_resumed_file_keeps_its_header(tmp_path):
    cols = metrics_log.csv_columns(("mp", "reward_extra_zeta", "reward_extra_bonus", "unstable"))
    assert cols == metrics_log.CSV_COLUMNS + ["reward_extra_bonus", "reward_extra_zeta"]
    last = {}
    rows = [_row(0, 10, 0.5) | {"reward_extra_bonus": 2.0}, _row(0, 20, float("nan")) | {"reward_extra_bonus": math.nan}]
    metrics_log.carry_forward(rows, last)
    assert rows[1]["reward_extra_bonus"] == 2.0 and rows[1]["stats_iteration"] == 10
    path = tmp_path / "training_metrics.csv"
    old = metrics_log.CSV_COLUMNS + ["reward_extra_bonus"]
    metrics_log.append_rows(path, rows, old)
    # a resume whose reward adds a term keeps the file's columns and appends the new one after them
    got = metrics_log.truncate_csv(path, 10, cols)
    assert got[0]["reward_extra_bonus"] == 2.0
    assert metrics_log.file_header(path, cols) == old + ["reward_extra_zeta"]
    with path.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == old + ["reward_extra_zeta"] and len(list(reader)) == 1
