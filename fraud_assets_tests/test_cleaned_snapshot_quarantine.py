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


def terminal_versions(data_dir) -> list[tuple]:
    return query(
        data_dir,
        "SELECT terminal_id, timezone, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
        "FROM cleaned.terminals ORDER BY terminal_id, valid_from",
    )


def quarantined_rows(data_dir, source: str) -> list[tuple]:
    return query(
        data_dir,
        "SELECT source_file, row_number, reason, offending_column, offending_value "
        f"FROM {cl.REF_QUAR} WHERE source = '{source}' ORDER BY source_file, row_number",
    )


def accounted(md: dict) -> tuple[int, int, int, int]:
    """Where a snapshot source's rows went: source = kept + quarantined + duplicates."""
    return md["source_rows"], md["kept_rows"], md["quarantined_rows"], md["duplicates_removed"]


def test_a_terminal_listed_twice_with_different_zones_is_quarantined_and_keeps_its_version_before(data_dir):
    """S2 lists terminal 5 in Tokyo, then again in London: nobody can tell which row is true. Both are
    quarantined `conflicting_terminal` (the column they differ on, each its own value) and are no
    knowledge of terminal 5: its version of S1 carries on. A bad row beside a usable one (terminal 4) is
    no conflict, and the snapshot's other rows are kept."""
    s.write_reference(data_dir)
    t = s.TERMINALS.copy()
    t.loc[t["terminal_id"] == 3, "timezone"] = "America/New_York"  # a genuine change
    t.loc[t["terminal_id"] == 5, "timezone"] = "Asia/Tokyo"
    london = s.TERMINALS[s.TERMINALS["terminal_id"] == 5]
    bad_four = s.TERMINALS[s.TERMINALS["terminal_id"] == 4].assign(mcc="54x1")
    rel = write_parquet(data_dir, "merchants", pd.concat([t, london, bad_four], ignore_index=True))
    results = s.run_pipeline(data_dir, raise_on_error=False)
    assert terminal_versions(data_dir) == [
        (1, "Europe/Paris", D1, None),
        (2, "America/New_York", D1, None),
        (3, "Asia/Tokyo", D1, S2),
        (3, "America/New_York", S2, None),
        (4, "UTC", D1, None),
        (5, "Europe/London", D1, None),  # neither Tokyo nor London of S2: the version before
    ]
    assert quarantined_rows(data_dir, "merchants") == [
        (rel, 5, "conflicting_terminal", "timezone", "Asia/Tokyo"),
        (rel, 6, "conflicting_terminal", "timezone", "Europe/London"),
        (rel, 7, "invalid_mcc", "mcc", "54x1"),
    ]
    md = metadata(results, "cleaned__terminals")
    assert accounted(md) == (5 + 7, 5 + 4, 3, 0)
    assert md["quarantined_conflicting_terminal"] == 2
    passed = checks(results)
    assert passed["merchants_rows_reconcile"]
    assert all(passed.values()), passed


def test_a_card_listed_twice_with_different_homes_is_quarantined_and_keeps_its_version_before(data_dir):
    """S2 lists card 2 at two homes: both rows are quarantined `conflicting_card` and the card keeps its
    version of S1. Customer 1 holding a second card number is two cards, both kept: no conflict."""
    s.write_reference(data_dir)
    second_card = s.make_pan(serial=4)
    later = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2],
            "pan": [s.PANS[1], second_card, s.PANS[2], s.PANS[2]],
            "home_x": [1.0, 1.0, 20.0, 2.0],
            "home_y": [1.0, 1.0, 2.0, 2.0],
            "home_country": ["FR", "FR", "JP", "JP"],
            "issued_at": pd.to_datetime(["2017-01-01"] * 4).date,
        }
    )
    rel = write_parquet(data_dir, "cardholders", later)
    results = s.run_pipeline(data_dir, raise_on_error=False)
    cards = query(
        data_dir,
        "SELECT customer_id, pan_last4, home_x, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR) "
        "FROM cleaned.cards ORDER BY customer_id, pan_last4, valid_from",
    )
    assert (
        cards
        == [
            (1, s.PANS[1][-4:], 1.0, D1, None),
            (1, second_card[-4:], 1.0, S2, None),
            (2, s.PANS[2][-4:], 2.0, D1, None),  # neither home of S2: the version before
            (3, s.PANS[3][-4:], 3.0, D1, None),
        ]
    )
    assert quarantined_rows(data_dir, "cardholders") == [
        (rel, 3, "conflicting_card", "home_x", "20.0"),
        (rel, 4, "conflicting_card", "home_x", "2.0"),
    ]
    assert accounted(metadata(results, "cleaned__cards")) == (3 + 4, 3 + 2, 2, 0)
    passed = checks(results)
    assert passed["cardholders_rows_reconcile"]
    assert all(passed.values()), passed


def test_identical_rows_of_a_key_in_one_snapshot_are_duplicates_not_conflicts(data_dir):
    s.write_reference(data_dir)
    t = s.TERMINALS
    write_parquet(data_dir, "merchants", pd.concat([t, t[t["terminal_id"] == 2]], ignore_index=True))
    cardholders = pd.read_parquet(data_dir / "landing" / "cardholders" / D1 / f"cardholders_{D1}.parquet")
    write_parquet(data_dir, "cardholders", pd.concat([cardholders, cardholders.iloc[[2]]], ignore_index=True))
    results = s.run_pipeline(data_dir, raise_on_error=False)
    assert query(data_dir, f"SELECT count(*) FROM {cl.REF_QUAR}") == [(0,)]
    assert [v for v in terminal_versions(data_dir) if v[0] == 2] == [(2, "America/New_York", D1, None)]
    assert accounted(metadata(results, "cleaned__terminals")) == (11, 10, 0, 1)
    assert accounted(metadata(results, "cleaned__cards")) == (7, 6, 0, 1)
    evaluations = {ev.check_name: ev for r in results for ev in r.get_asset_check_evaluations()}
    for source in ("merchants", "cardholders"):
        check = evaluations[f"{source}_rows_reconcile"]
        assert check.passed
        assert check.metadata["duplicates_removed"].value == 1
    assert all(checks(results).values())


def test_a_terminal_conflicting_in_one_snapshot_keeps_its_version_until_the_next_usable_listing(data_dir):
    """Snapshots S1 (London), S2 (terminal 5 twice: Tokyo and London), S3 (Tokyo). The days from S2 to
    the day before S3 are cleaned with S1's London (local time = UTC + 1 in April), S3's day on with
    Tokyo (UTC + 9); no day quarantines a transaction `unknown_terminal`."""
    s.write_reference(data_dir)
    t = s.TERMINALS.copy()
    t.loc[t["terminal_id"] == 5, "timezone"] = "Asia/Tokyo"
    london = s.TERMINALS[s.TERMINALS["terminal_id"] == 5]
    write_parquet(data_dir, "merchants", pd.concat([t, london], ignore_index=True))
    s3, s3_landed = "2018-04-05", "2018-04-06"
    write_parquet(data_dir, "merchants", t, day=s3, landed=s3_landed)
    days = [D1, "2018-04-02", S2, "2018-04-04", s3]
    for n, day in enumerate(days, start=1):
        row = s.a_row(n, terminal_id="5", tx_datetime=f"{day}T12:00:00Z")
        s.write_acq_a(data_dir, [row], name=f"acq_a_{day}.csv.gz", landed=day)
    s.run_pipeline(data_dir, days)
    assert [v for v in terminal_versions(data_dir) if v[0] == 5] == [
        (5, "Europe/London", D1, s3),
        (5, "Asia/Tokyo", s3, None),
    ]
    local_hours = query(
        data_dir,
        "SELECT CAST(business_date AS VARCHAR), hour(tx_datetime_local) FROM cleaned.transactions ORDER BY 1",
    )
    assert local_hours == [(D1, 13), ("2018-04-02", 13), (S2, 13), ("2018-04-04", 13), (s3, 21)]
    assert query(data_dir, "SELECT count(*) FROM cleaned.quarantine") == [(0,)]
