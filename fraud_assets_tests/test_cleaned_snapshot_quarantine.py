"""A bad row in a merchants or cardholders snapshot costs that row only: the snapshot's genuine rows are
kept, the bad ones quarantined with a reason each (cleaned.reference_quarantine), the counts reconciled,
and a quarantined row is no knowledge of its terminal or card: the version before it carries on, so it
neither drops the terminal nor restates the days after it."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_assets.defs.cleaned import assets as cl
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

D1, S2 = s.DAY, "2018-04-03"  # S2: the date of a second snapshot, landed the next day
S2_LANDED = "2018-04-04"


def write_parquet(data_dir, source: str, frame: pd.DataFrame, day: str = S2, landed: str = S2_LANDED) -> str:
    rel = f"{source}/{landed}/{source}_{day}.parquet"
    path = data_dir / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return rel


def second_merchants_snapshot() -> pd.DataFrame:
    """S2: terminal 3 moves to New York (genuine); terminal 5's zone is refused; terminal 6 is new with a
    refused MCC; a row has no terminal id; terminal 4 is not listed (the id-less row may be it)."""
    t = s.TERMINALS[s.TERMINALS["terminal_id"] != 4].copy()
    t["terminal_id"] = t["terminal_id"].astype("Int64")
    t.loc[t["terminal_id"] == 3, ["timezone", "x"]] = ["America/New_York", 9.0]
    t.loc[t["terminal_id"] == 5, "timezone"] = "Mars/Olympus_Mons"
    six = s.TERMINALS.iloc[[0]].assign(terminal_id=6, mcc="54x1").astype({"terminal_id": "Int64"})
    unnamed = s.TERMINALS.iloc[[0]].assign(merchant_id=70).astype({"terminal_id": "Int64"})
    snapshot = pd.concat([t, six, unnamed], ignore_index=True)
    snapshot.loc[len(snapshot) - 1, "terminal_id"] = pd.NA
    return snapshot


def query(data_dir, sql: str) -> list[tuple]:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        return conn.execute(sql).fetchall()


def metadata(results, node: str) -> dict:
    mats = [m for r in results for m in r.asset_materializations_for_node(node)]
    return {k: v.value for k, v in mats[-1].metadata.items()}


def checks(results) -> dict[str, bool]:
    return {ev.check_name: ev.passed for r in results for ev in r.get_asset_check_evaluations()}


def test_a_bad_terminal_row_is_quarantined_and_the_snapshots_genuine_rows_are_kept(data_dir):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1)])
    write_parquet(data_dir, "merchants", second_merchants_snapshot())
    results = s.run_pipeline(data_dir, raise_on_error=False)
    versions = query(
        data_dir,
        "SELECT terminal_id, timezone, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
        "FROM cleaned.terminals ORDER BY terminal_id, valid_from",
    )
    assert versions == [
        (1, "Europe/Paris", D1, None),
        (2, "America/New_York", D1, None),
        (3, "Asia/Tokyo", D1, S2),
        (3, "America/New_York", S2, None),  # the genuine change of the same snapshot is kept
        (4, "UTC", D1, None),  # not dropped: the row without a terminal id may have been it
        (5, "Europe/London", D1, None),  # its bad row is no drop: the version before carries on
    ]  # terminal 6's first listing is bad: not known until a usable one
    quarantined = query(
        data_dir,
        "SELECT source, CAST(business_date AS VARCHAR), row_number, reason, offending_column, "
        f"offending_value FROM {cl.REF_QUAR} WHERE source = 'merchants' ORDER BY row_number",
    )
    assert quarantined == [
        ("merchants", S2, 4, "invalid_timezone", "timezone", "Mars/Olympus_Mons"),
        ("merchants", S2, 5, "invalid_mcc", "mcc", "54x1"),
        ("merchants", S2, 6, "missing_terminal_id", "terminal_id", None),
    ]
    md = metadata(results, "cleaned__terminals")
    assert (md["source_rows"], md["kept_rows"], md["quarantined_rows"]) == (5 + 6, 5 + 3, 3)
    assert md["quarantined_invalid_timezone"] == 1
    passed = checks(results)
    assert passed["merchants_rows_reconcile"]
    assert passed["reference_quarantine_contract"]
    assert all(passed.values()), passed


def test_a_bad_row_in_a_later_snapshot_restates_no_day_and_quarantines_no_transaction(data_dir):
    """Days already cleaned on terminal 5 stay as they are when a snapshot with a bad row for it lands:
    a bad row is not "terminal dropped" (which would make its transactions `unknown_terminal` from S2 on
    and re-clean those days)."""
    s.write_reference(data_dir)
    days = [D1, "2018-04-02", S2]
    for day in days:
        row = s.a_row(int(day[-1]), terminal_id="5", currency="GBP", tx_datetime=f"{day}T12:00:00Z")
        s.write_acq_a(data_dir, [row], name=f"acq_a_{day}.csv.gz", landed=day)
    s.run_pipeline(data_dir, days)
    write_parquet(data_dir, "merchants", second_merchants_snapshot())
    results = s.run_pipeline(data_dir, days)
    md = metadata(results, "cleaned__terminals")
    assert md[cl.RESTATED_DAYS] == []
    assert md[cl.CHANGED_REFERENCE_FIRST] == ""  # terminal 3 moved, but has no transaction
    cleaned = query(data_dir, "SELECT transaction_id FROM cleaned.transactions ORDER BY 1")
    assert cleaned == [(1,), (2,), (3,)]
    assert query(data_dir, "SELECT count(*) FROM cleaned.quarantine") == [(0,)]


def test_a_bad_cardholder_row_is_quarantined_and_the_card_keeps_its_version_before(data_dir):
    """An invalid card number (raw keeps it masked) and an infinite home are each quarantined with their
    reason; the other rows of the snapshot make their versions."""
    s.write_reference(data_dir)
    mistyped = s.PANS[3][:-1] + str((int(s.PANS[3][-1]) + 1) % 10)  # Luhn fails
    later = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "pan": [s.PANS[1], s.PANS[2], mistyped],
            "home_x": [10.0, float("inf"), 30.0],
            "home_y": [10.0, 2.0, 30.0],
            "home_country": ["FR", "JP", "US"],
            "issued_at": pd.to_datetime(["2017-01-01"] * 3).date,
        }
    )
    write_parquet(data_dir, "cardholders", later)
    results = s.run_pipeline(data_dir, raise_on_error=False)
    cards = query(
        data_dir,
        "SELECT customer_id, home_x, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
        "FROM cleaned.cards ORDER BY customer_id, valid_from",
    )
    assert cards == [
        (1, 1.0, D1, S2),
        (1, 10.0, S2, None),  # a genuine move of the same snapshot
        (2, 2.0, D1, None),  # its infinite home opens no version
        (3, 3.0, D1, None),
    ]
    quarantined = query(
        data_dir,
        "SELECT row_number, reason, offending_column, offending_value "
        f"FROM {cl.REF_QUAR} WHERE source = 'cardholders' ORDER BY row_number",
    )
    assert quarantined == [
        (2, "invalid_position", "home_x", "inf"),
        (3, "invalid_pan", "pan", f"{mistyped[:6]}******{mistyped[-4:]}"),
    ]
    md = metadata(results, "cleaned__cards")
    assert (md["source_rows"], md["kept_rows"], md["quarantined_rows"]) == (6, 4, 2)
    passed = checks(results)
    assert passed["cardholders_rows_reconcile"]
    assert all(passed.values()), passed
    text = "".join(str(r) for r in query(data_dir, f"SELECT * FROM {cl.REF_QUAR}"))
    assert mistyped not in text


def test_a_silently_dropped_snapshot_row_fails_the_reconciliation(data_dir):
    s.write_reference(data_dir)
    write_parquet(data_dir, "merchants", second_merchants_snapshot())
    s.run_pipeline(data_dir)
    from fraud_assets.defs.cleaned.checks import reconcile_snapshot  # here: the other tests run on any commit

    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        conn.execute("DELETE FROM cleaned.terminals WHERE terminal_id = 2")
        conn.execute(f"DELETE FROM {cl.REF_QUAR} WHERE source = 'merchants' AND row_number = 4")
        c = reconcile_snapshot(conn, "merchants")
    assert (c["dropped_rows"], c["flagged_rows_not_quarantined"]) == (2, 1)  # terminal 2 in S1 and S2
