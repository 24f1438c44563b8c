"""cleaned.terminals keeps every merchants snapshot as versions (valid_from, valid_to), and a day is cleaned
with the version serving it: a later snapshot's zone never rewrites an earlier day, a terminal a snapshot
drops is `unknown_terminal` from that snapshot's date on only, and a terminal listed late serves the days
before its first snapshot."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from fraud_assets.defs.cleaned import transform
from fraud_assets.defs.cleaned.checks import terminals_exist
from fraud_assets.defs.cleaned.reference import TERMINALS_SQL
from fraud_assets.defs.cleaned.transform import (
    QUAR,
    QUARANTINE_COLUMNS,
    RECON,
    RECONCILIATION_COLUMNS,
    TRANSACTION_COLUMNS,
    TX,
)
from fraud_assets.defs.raw.schemas import COLUMNS
from fraud_assets.lib.table_checks import TableScope
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

NEXT_DAY, NEXT_LANDED = "2018-04-02", "2018-04-03"


def test_a_terminal_dropped_by_the_latest_snapshot_is_gone_from_later_days(data_dir):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1, terminal_id="4"), s.a_row(2, terminal_id="1")])
    s.run_pipeline(data_dir)
    snapshot = data_dir / "landing" / "merchants" / NEXT_DAY / f"merchants_{NEXT_DAY}.parquet"
    snapshot.parent.mkdir(parents=True)
    s.TERMINALS[s.TERMINALS["terminal_id"] != 4].to_parquet(snapshot, index=False)
    later = [
        s.a_row(3, terminal_id="4", tx_datetime=f"{NEXT_DAY}T12:00:00Z"),
        s.a_row(4, terminal_id="1", tx_datetime=f"{NEXT_DAY}T12:00:00Z"),
    ]
    s.write_acq_a(data_dir, later, name=f"acq_a_{NEXT_DAY}.csv.gz", landed=NEXT_LANDED)
    s.run_pipeline(data_dir, [NEXT_DAY])
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        terminals = [
            t
            for (t,) in conn.execute(
                "SELECT terminal_id FROM cleaned.terminals WHERE valid_to IS NULL ORDER BY 1"
            ).fetchall()
        ]
        cleaned = conn.execute(
            "SELECT transaction_id, business_date FROM cleaned.transactions ORDER BY 1"
        ).fetchall()
        quarantined = conn.execute("SELECT transaction_id, reason FROM cleaned.quarantine").fetchall()
    assert terminals == [1, 2, 3, 5]
    assert [t for t, _ in cleaned] == [1, 2, 4]  # transaction 1 on terminal 4 was cleaned before
    assert quarantined == [(3, "unknown_terminal")]


D1, D2, S2 = "2018-04-01", "2018-04-02", "2018-04-03"  # S2: a snapshot dated mid-history


def _landed(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _second_snapshot(data_dir) -> None:
    """Snapshot S2: terminal 3 moves from Tokyo to New York, terminal 4 is dropped, terminal 6 is new."""
    terminals = s.TERMINALS[s.TERMINALS["terminal_id"] != 4].copy()
    terminals.loc[terminals["terminal_id"] == 3, ["timezone", "x"]] = ["America/New_York", 9.0]
    six = s.TERMINALS.iloc[[0]].assign(terminal_id=6, merchant_id=60)
    path = data_dir / "landing" / "merchants" / S2 / f"merchants_{S2}.parquet"
    path.parent.mkdir(parents=True)
    pd.concat([terminals, six]).to_parquet(path, index=False)


def test_days_are_cleaned_with_the_terminal_version_of_their_date(data_dir):
    s.write_reference(data_dir)  # snapshot S1, dated D1
    _second_snapshot(data_dir)
    for day, local in ((D1, "01/04/2018 15:00:00"), (S2, "03/04/2018 05:00:00")):
        s.write_acq_b(
            data_dir, [s.b_row(int(day[-2:]), local_time=local)], f"acq_b_{day}.jsonl.gz", _landed(day)
        )
    at = {"tx_datetime": f"{S2}T12:00:00Z"}
    s.write_acq_a(data_dir, [s.a_row(11, terminal_id="4"), s.a_row(12, terminal_id="6")])
    s.write_acq_a(data_dir, [s.a_row(13, terminal_id="4", **at)], f"acq_a_{S2}.csv.gz", _landed(S2))
    # Every day cleaned (or cleaned again) after S2 landed: what a backfill does.
    s.run_pipeline(data_dir, [D1, D2, S2])
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        cleaned = conn.execute(
            "SELECT transaction_id, CAST(tx_datetime AS VARCHAR), CAST(tx_datetime_local AS VARCHAR) "
            "FROM cleaned.transactions ORDER BY 1"
        ).fetchall()
        quarantined = conn.execute("SELECT transaction_id, reason FROM cleaned.quarantine").fetchall()
    assert cleaned == [
        (1, "2018-04-01 06:00:00", "2018-04-01 15:00:00"),  # D1: read in Tokyo time, as on D1
        (3, "2018-04-03 09:00:00", "2018-04-03 05:00:00"),  # S2 on: read in New York time
        (11, "2018-04-01 12:00:11", "2018-04-01 12:00:11"),  # terminal 4 existed on D1
        (12, "2018-04-01 12:00:12", "2018-04-01 14:00:12"),  # terminal 6, listed late: its first version
    ]
    assert quarantined == [(13, "unknown_terminal")]  # terminal 4 is gone from S2 on
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        versions = conn.execute(
            "SELECT terminal_id, timezone, x, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
            "FROM cleaned.terminals WHERE terminal_id IN (3, 4, 6) ORDER BY terminal_id, valid_from"
        ).fetchall()
    assert versions == [
        (3, "Asia/Tokyo", 3.0, D1, S2),
        (3, "America/New_York", 9.0, S2, None),
        (4, "UTC", 4.0, D1, S2),
        (6, "Europe/Paris", 1.0, S2, None),
    ]


def test_versions_follow_drops_relistings_and_the_latest_landed_file_of_a_snapshot_date(tmp_path):
    """Terminal 1 keeps Paris until a snapshot dated 04-05 moves it (a corrected file of that date, landed
    later, says London: it wins); terminal 2 is dropped on 04-03 and listed again on 04-05. A day no
    version serves (terminal 2 on 04-04) keeps its `unknown_terminal` rows without restating them again."""
    snapshots = [  # (snapshot date, landing date, file, {terminal: zone})
        ("2018-04-01", "2018-04-01", "a", {1: "Europe/Paris", 2: "UTC"}),
        ("2018-04-03", "2018-04-03", "b", {1: "Europe/Paris"}),
        ("2018-04-05", "2018-04-05", "c", {1: "Asia/Tokyo", 2: "UTC"}),
        ("2018-04-05", "2018-04-06", "c_fix", {1: "Europe/London", 2: "UTC"}),
    ]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw; CREATE SCHEMA cleaned")
        columns = ", ".join(f"{c} {t}" for c, t in COLUMNS["raw.merchants"])
        conn.execute(f"CREATE TABLE raw.merchants ({columns})")
        for day, landed, name, zones in snapshots:
            for row, (terminal, zone) in enumerate(zones.items(), start=1):
                conn.execute(
                    "INSERT INTO raw.merchants (terminal_id, timezone, business_date, landing_date, "
                    "source_file, row_number) VALUES (?, ?, ?, ?, ?, ?)",
                    [terminal, zone, day, landed, f"merchants/{landed}/{name}.parquet", row],
                )
        conn.execute(f"CREATE TABLE cleaned.terminals AS {TERMINALS_SQL}")
        versions = conn.execute(
            "SELECT terminal_id, timezone, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
            "FROM cleaned.terminals ORDER BY terminal_id, valid_from"
        ).fetchall()
        served = conn.execute(
            f"SELECT CAST(d AS VARCHAR), t.timezone FROM (VALUES (DATE '2018-03-30'), (DATE '2018-04-04'), "
            f"(DATE '2018-04-05')) days(d) LEFT JOIN ({transform.TERMINAL_VERSIONS_SQL}) t "
            "ON t.terminal_id = 2 AND d >= t._serves_from AND d < t._serves_to ORDER BY 1"
        ).fetchall()
        # restated_days reads the cleaned days off the stored tables
        stored = {TX: TRANSACTION_COLUMNS, QUAR: QUARANTINE_COLUMNS, RECON: RECONCILIATION_COLUMNS}
        for table, cols in stored.items():
            conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
        conn.execute(
            f"INSERT INTO {QUAR} (business_date, reason, offending_value) "
            "VALUES ('2018-04-04', 'unknown_terminal', '2')"
        )
        restated = transform.restated_days(conn, "terminals")
    assert versions == [
        (1, "Europe/Paris", "2018-04-01", "2018-04-05"),
        (1, "Europe/London", "2018-04-05", None),
        (2, "UTC", "2018-04-01", "2018-04-03"),
        (2, "UTC", "2018-04-05", None),
    ]
    assert served == [("2018-03-30", "UTC"), ("2018-04-04", None), ("2018-04-05", "UTC")]
    assert restated == []


def test_a_cleaned_row_no_terminal_version_serves_is_an_orphan(data_dir):
    """The blocking referential check reads the version serving each row's date: terminal 4 exists in
    cleaned.terminals, but not on S2, the date of the snapshot that dropped it."""
    s.write_reference(data_dir)
    _second_snapshot(data_dir)
    s.write_acq_a(data_dir, [s.a_row(11, terminal_id="4")])
    s.run_pipeline(data_dir, [D1])
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        conn.execute(
            f"INSERT INTO {TX} (transaction_id, business_date, terminal_id) "
            f"SELECT 12, DATE '{S2}', 4 UNION ALL SELECT 13, DATE '{D1}', 4"
        )
        orphans = {
            day: terminals_exist.run(TableScope(conn, TX, [day], "business_date"))
            .metadata["orphan_rows"]
            .value
            for day in (D1, S2)
        }
    assert orphans == {D1: 0, S2: 1}
