"""vpjax.wages: shipped table and the BLS OEWS national-file loader (csv and xlsx fixtures)."""

import pandas as pd
import pytest

from vpjax import wages

ROWS = [
    # OEWS national files carry more columns; the loader needs these five.
    {"OCC_CODE": "00-0000", "OCC_TITLE": "All Occupations", "O_GROUP": "total", "TOT_EMP": "151,853,870", "H_MEAN": "31.48", "H_MEDIAN": "23.11"},
    {"OCC_CODE": "35-9021", "OCC_TITLE": "Dishwashers", "O_GROUP": "detailed", "TOT_EMP": "463,340", "H_MEAN": "15.50", "H_MEDIAN": "15.00"},
    {"OCC_CODE": "35-9021", "OCC_TITLE": "Dishwashers", "O_GROUP": "detailed", "TOT_EMP": "1,200", "H_MEAN": "99.00", "H_MEDIAN": "99.00"},
    {"OCC_CODE": "47-2021", "OCC_TITLE": "Brickmasons and Blockmasons", "O_GROUP": "detailed", "TOT_EMP": "63,000", "H_MEAN": "*", "H_MEDIAN": "29.00"},
    {"OCC_CODE": "29-1211", "OCC_TITLE": "Anesthesiologists", "O_GROUP": "detailed", "TOT_EMP": "31,000", "H_MEAN": "#", "H_MEDIAN": "#"},
]


@pytest.fixture(params=["csv", "xlsx"])
def bls_file(tmp_path, request):
    df = pd.DataFrame(ROWS)
    path = tmp_path / f"national_M2023_dl.{request.param}"
    if request.param == "csv":
        df.to_csv(path, index=False)
    else:
        df.columns = [c.lower() for c in df.columns]  # some years use lower-case headers
        df.to_excel(path, index=False)
    return path


def test_loader_reads_official_format(bls_file):
    table = wages.load_bls_file(bls_file)
    row = wages.lookup("35-9021", table)
    assert row.mean_hourly == pytest.approx(15.50)  # the cross-industry (largest) row wins
    assert row.period == "May 2023"
    assert row.verified
    mason = wages.lookup("47-2021", table)
    assert mason.hourly_wage == pytest.approx(29.00)  # '*' mean: falls back to the median
    with pytest.raises(wages.WageLookupError, match="29-1211.*no published wage"):
        wages.lookup("29-1211", table, source=str(bls_file))


def test_loader_rejects_wrong_columns(tmp_path):
    path = tmp_path / "national_M2023_dl.csv"
    pd.DataFrame({"OCC_CODE": ["35-9021"], "WAGE": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"national_M2023_dl.csv: missing BLS OEWS columns"):
        wages.load_bls_file(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        wages.load_bls_file(tmp_path / "absent.xlsx")


def test_shipped_table_marks_verification_and_uses_dishwashers_code():
    table = wages.default_table()
    assert {"soc", "title", "period", "mean_hourly", "median_hourly", "source", "verified"} <= set(table.columns)
    dish = wages.lookup("35-9021")
    assert dish.title == "Dishwashers" and dish.verified
    assert "35-9021" in dish.describe()
    with pytest.raises(wages.WageLookupError, match="35-2021.*no published wage"):
        wages.lookup("35-2021")  # Food Preparation Workers (errata 1): no wage shipped
    with pytest.raises(ValueError, match="must look like"):
        wages.lookup("359021")
    with pytest.raises(wages.WageLookupError, match="99-9999: not in"):
        wages.lookup("99-9999")


def test_config_uses_bls_file(tmp_path, bls_file):
    from vpjax.config import load_config

    cfg_path = tmp_path / "t.yaml"
    cfg_path.write_text('task: dishwashing\nhuman_wage: null\nbls_occupation_code: "35-9021"\n')
    cfg = load_config(cfg_path, bls_file=bls_file)
    assert cfg.human_wage == pytest.approx(15.50)
    assert "national_M2023_dl" in cfg.human_wage_source
