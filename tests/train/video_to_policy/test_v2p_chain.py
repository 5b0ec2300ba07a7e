"""The CLI chain collect -> idm -> bc -> evaluate -> value on a few short demos of the reduced task."""

import csv
import json
import os
import shutil

import pytest

from train.video_to_policy import cli, records as R

SEED_COLUMNS = ["datapoint_id", "novelty_score", "causal_gain", "expected_mpl_gain", "confidence_lower",
                "confidence_upper", "kappa", "tier", "premium_quote", "sharing_status", "realized_mpl_gain",
                "trueup_amount"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("v2p") / "data")
    q = ["--quiet"]
    assert cli.main(["collect", "--task", "point", "--out", d, "--demos", "8", "--play", "6", "--steps", "30",
                     "--size", "32"] + q) == 0
    assert cli.main(["idm", "--data", d, "--steps", "100", "--batch-size", "32", "--hidden", "64,64",
                     "--channels", "8,16"] + q) == 0
    assert cli.main(["bc", "--data", d, "--labels", "idm", "--steps", "150", "--batch-size", "32",
                     "--hidden", "128,128", "--channels", "16,32"] + q) == 0
    assert cli.main(["evaluate", "--data", d, "--episodes", "8", "--random"] + q) == 0
    assert cli.main(["value", "--data", d] + q) == 0
    return d


def test_chain_outputs(chain):
    idx = R.read_index(chain)
    assert idx["task"] == "point" and sum(e["kind"] == "demo" for e in idx["records"]) == 8
    meta = json.load(open(os.path.join(chain, "idm", "meta.json")))
    assert meta["metrics"]["mse"] < meta["metrics"]["baseline_mse"]  # IDM beats its trivial baseline (held out)
    assert meta["metrics"]["loss_last"] < meta["metrics"]["loss_first"]
    bcm = json.load(open(os.path.join(chain, "bc_idm", "meta.json")))["metrics"]
    assert bcm["loss_last"] < 0.5 * bcm["loss_first"]
    rows = {r["policy"]: r for r in json.load(open(os.path.join(chain, "evaluation.json")))}
    assert set(rows) == {"scripted expert", "random", "BC (IDM labels)"}
    assert rows["scripted expert"]["mp"] > 0
    # BC from IDM-labelled video beats a random policy on the reduced task
    bc_, rnd = rows["BC (IDM labels)"], rows["random"]
    assert bc_["units"] > rnd["units"]
    assert bc_["mp"] > rnd["mp"], (bc_, rnd)
    assert "| policy | MPᵣ" in open(os.path.join(chain, "evaluation.md")).read()
    assert os.path.getsize(os.path.join(chain, "evaluation.png")) > 1000


def test_data_value_csv(chain):
    with open(os.path.join(chain, "data_value.csv")) as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == SEED_COLUMNS
        rows = list(reader)
    demo_ids = {e["id"] for e in R.read_index(chain)["records"] if e["kind"] == "demo"}
    assert {r["datapoint_id"] for r in rows} == demo_ids
    for r in rows:
        assert float(r["novelty_score"]) > 0 and float(r["causal_gain"]) >= 0
        assert 0.0 < float(r["kappa"]) <= 1.0 and r["tier"] in {"0", "1", "2"}
        assert float(r["confidence_lower"]) <= float(r["expected_mpl_gain"]) <= float(r["confidence_upper"])


def test_clear_errors(chain, tmp_path, capsys):
    assert cli.main(["idm", "--data", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "folder not found" in capsys.readouterr().err
    # a checkpoint from another task is refused, naming both tasks
    bad = str(tmp_path / "idm_other")
    shutil.copytree(os.path.join(chain, "idm"), bad)
    meta = json.load(open(os.path.join(bad, "meta.json")))
    meta["task"] = "dishwashing"
    json.dump(meta, open(os.path.join(bad, "meta.json"), "w"))
    assert cli.main(["bc", "--data", chain, "--labels", "idm", "--idm", bad, "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dishwashing" in err and "point" in err and len(err.strip().splitlines()) == 1
    # wrong kind
    assert cli.main(["value", "--data", chain, "--idm", os.path.join(chain, "bc_idm"), "--quiet"]) == 2
    assert "'bc' checkpoint" in capsys.readouterr().err
