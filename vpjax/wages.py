"""Human wages wₕ by SOC occupation code: a small shipped table and a BLS OEWS file loader.

The shipped table (``vpjax/data/wages.csv``) marks each row as verified or not; a row without a
published wage cannot be used for wₕ. A user with the official national file from the BLS
Occupational Employment and Wage Statistics program (``national_M<year>_dl.xlsx`` or a CSV export,
columns OCC_CODE, OCC_TITLE, H_MEAN, H_MEDIAN, TOT_EMP) can refresh wages with ``--bls-file``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pandas as pd

TABLE_PATH = Path(__file__).resolve().parent / "data" / "wages.csv"
BLS_COLUMNS = ("OCC_CODE", "OCC_TITLE", "H_MEAN", "H_MEDIAN", "TOT_EMP")
_SOC = re.compile(r"^\d{2}-\d{4}$")


class WageLookupError(KeyError):
    """No usable wage for a SOC code. ``str()`` is a full sentence."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plain.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class WageRow:
    soc: str
    title: str
    period: str
    mean_hourly: float
    median_hourly: float
    source: str
    verified: bool

    @property
    def hourly_wage(self) -> float:
        """The mean hourly wage (the national average), else the median."""
        return self.mean_hourly if math.isfinite(self.mean_hourly) else self.median_hourly

    def describe(self) -> str:
        kind = "mean" if math.isfinite(self.mean_hourly) else "median"
        flag = "" if self.verified else " (unverified)"
        return f"{self.soc} {self.title}, {self.period} {kind} hourly wage ${self.hourly_wage:.2f}, {self.source}{flag}"


def _num(v) -> float:
    """BLS writes '*' (not available) and '#' (above the top code) for missing wages."""
    try:
        x = float(str(v).replace(",", "").strip())
    except (TypeError, ValueError):
        return math.nan
    return x


def default_table() -> pd.DataFrame:
    """The shipped table: soc, title, period, mean_hourly, median_hourly, source, verified, note."""
    df = pd.read_csv(TABLE_PATH, dtype={"soc": str, "period": str, "source": str, "note": str})
    df["verified"] = df["verified"].astype(str).str.lower().eq("yes")
    return df.fillna({"period": "", "source": "", "note": ""})


def load_bls_file(path: str | Path) -> pd.DataFrame:
    """Reads an official BLS OEWS national file (xlsx or csv) into the shipped table's columns.

    Where an occupation appears on several rows (industry breakdowns), the row with the largest
    employment (the cross-industry total) is kept.

    Raises:
      FileNotFoundError, ValueError: naming the file and what is wrong with it.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: BLS OEWS file not found")
    try:
        if p.suffix.lower() in (".xlsx", ".xls"):
            raw = pd.read_excel(p, dtype=str)
        else:
            raw = pd.read_csv(p, dtype=str)
    except Exception as e:  # noqa: BLE001 -- any reader failure is reported with the file name
        raise ValueError(f"{p}: cannot read as a BLS OEWS file ({type(e).__name__}: {e})") from None
    raw.columns = [str(c).strip().upper() for c in raw.columns]
    missing = [c for c in BLS_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{p}: missing BLS OEWS columns {missing} (has {list(raw.columns)[:12]})")
    m = re.search(r"M(\d{4})", p.stem, re.IGNORECASE)
    period = f"May {m.group(1)}" if m else "unknown period"
    df = pd.DataFrame(
        {
            "soc": raw["OCC_CODE"].str.strip(),
            "title": raw["OCC_TITLE"].str.strip(),
            "period": period,
            "mean_hourly": raw["H_MEAN"].map(_num),
            "median_hourly": raw["H_MEDIAN"].map(_num),
            "tot_emp": raw["TOT_EMP"].map(_num).fillna(-1.0),
            "source": f"BLS OEWS national file {p.name}",
            "verified": True,
            "note": "",
        }
    )
    df = df.sort_values("tot_emp", ascending=False).drop_duplicates("soc").drop(columns="tot_emp")
    return df.reset_index(drop=True)


def lookup(soc: str, table: pd.DataFrame | None = None, source: str = "vpjax wage table") -> WageRow:
    """The best row for ``soc`` with a usable wage: verified rows first, then the most recent.

    Raises:
      ValueError: the code is not of the form NN-NNNN.
      WageLookupError: no row, or no published wage, for the code.
    """
    if not isinstance(soc, str) or not _SOC.match(soc.strip()):
        raise ValueError(f"SOC code {soc!r}: must look like 35-9021")
    soc = soc.strip()
    table = default_table() if table is None else table
    rows = table[table["soc"] == soc]
    if rows.empty:
        raise WageLookupError(f"SOC {soc}: not in {source}; pass --bls-file with an OEWS national file or set human_wage")
    rows = rows.assign(_year=rows["period"].astype(str).str.extract(r"(\d{4})")[0].astype(float).fillna(-1))
    for _, r in rows.sort_values(["verified", "_year"], ascending=False).iterrows():
        row = WageRow(
            soc=soc,
            title=str(r["title"]),
            period=str(r["period"]),
            mean_hourly=_num(r["mean_hourly"]),
            median_hourly=_num(r["median_hourly"]),
            source=str(r["source"]),
            verified=bool(r["verified"]),
        )
        if math.isfinite(row.hourly_wage):
            return row
    raise WageLookupError(f"SOC {soc} ({rows.iloc[0]['title']}): {source} has no published wage; set human_wage or pass --bls-file")


__all__ = ["WageRow", "WageLookupError", "default_table", "load_bls_file", "lookup", "BLS_COLUMNS"]
