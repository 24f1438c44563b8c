"""Processor B's local times are read through the terminal's IANA zone by DuckDB (ICU) with the documented
DST rules: a time in the repeated autumn hour is its first (summer-time) occurrence, a time in the spring
gap is shifted forward by the gap. Checked every 10 minutes across DST changes of several zones against
Python's zoneinfo (fold=0 reads exactly so) and, wherever a local time exists, against pandas."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
import pytest

from fraud_assets.defs.cleaned.transform import clean_authorizations
from fraud_assets_tests import raw_cleaned_support as s

# (zone, local date of a DST change): half-hour changes (Lord Howe), changes at midnight (Santiago,
# Sao Paulo), the southern hemisphere, and zones without DST.
CHANGES = [
    ("Europe/Paris", "2018-03-25"),
    ("Europe/Paris", "2018-10-28"),
    ("America/New_York", "2018-03-11"),
    ("America/New_York", "2018-11-04"),
    ("Australia/Lord_Howe", "2018-04-01"),
    ("Australia/Lord_Howe", "2018-10-07"),
    ("America/Santiago", "2018-05-13"),
    ("America/Santiago", "2018-08-12"),
    ("America/Sao_Paulo", "2018-11-04"),
    ("Asia/Tokyo", "2018-10-28"),
    ("Asia/Kathmandu", "2018-10-28"),
]


def expected_utc(local: dt.datetime, zone: str) -> dt.datetime:
    aware = local.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=0)
    return aware.astimezone(dt.UTC).replace(tzinfo=None)


def local_times(day: str) -> list[dt.datetime]:
    start = dt.datetime.fromisoformat(day) - dt.timedelta(hours=3)
    return [start + dt.timedelta(minutes=10 * i) for i in range(6 * 30)]  # 30 hours around the change


@pytest.fixture(scope="module")
def converted() -> pd.DataFrame:
    zones = sorted({z for z, _ in CHANGES})
    terminals = pd.DataFrame({"terminal_id": range(1, len(zones) + 1), "timezone": zones})
    terminal_of = dict(zip(zones, terminals["terminal_id"], strict=True))
    cases = [(zone, local) for zone, day in CHANGES for local in local_times(day)]
    b_rows = [
        s.b_row(i, term_id=terminal_of[zone], ccy="EUR", local_time=local.strftime("%d/%m/%Y %H:%M:%S"))
        for i, (zone, local) in enumerate(cases, start=1)
    ]
    raw = s.raw_frame(b_rows=b_rows)
    # Each row in the file of its (expected) UTC day, landed the day after.
    utc = pd.to_datetime([expected_utc(local, zone) for zone, local in cases])
    raw["business_date"] = utc.normalize()
    raw["landing_date"] = utc.normalize() + pd.Timedelta(days=1)
    _, fx = s.reference_frames()
    out = clean_authorizations(raw, terminals, fx)
    assert out.quarantine.empty, out.quarantine[["reason", "offending_value"]]
    got = out.transactions.set_index("transaction_id").sort_index()
    return pd.DataFrame(
        {
            "zone": [z for z, _ in cases],
            "local": pd.to_datetime([loc for _, loc in cases]),
            "expected": utc,
            "duckdb": got["tx_datetime"].to_numpy(),
        }
    )


def test_every_local_time_around_a_dst_change_reads_as_documented(converted):
    wrong = converted[converted["duckdb"] != converted["expected"]]
    assert wrong.empty, wrong


def test_pandas_agrees_wherever_the_local_time_exists(converted):
    checked = 0
    for zone, part in converted.groupby("zone"):
        local = pd.DatetimeIndex(part["local"])
        first = np.ones(len(local), dtype=bool)  # the summer-time occurrence of a repeated hour
        pandas_utc = local.tz_localize(zone, ambiguous=first, nonexistent="NaT").tz_convert("UTC")
        exists = ~pandas_utc.isna()
        checked += int(exists.sum())
        assert (pandas_utc[exists].tz_localize(None) == part["duckdb"][exists].to_numpy()).all(), zone
    assert checked > 0.95 * len(converted)


def test_the_cases_include_repeated_and_skipped_local_times(converted):
    def kind(zone: str, local: dt.datetime) -> str:
        tz = zoneinfo.ZoneInfo(zone)
        first, second = (local.replace(tzinfo=tz, fold=f).astimezone(dt.UTC) for f in (0, 1))
        if first != second:
            back = first.astimezone(tz).replace(tzinfo=None)
            return "repeated" if back == local else "skipped"
        return "plain"

    kinds = {
        kind(z, loc.to_pydatetime()) for z, loc in zip(converted["zone"], converted["local"], strict=True)
    }
    assert kinds == {"plain", "repeated", "skipped"}
