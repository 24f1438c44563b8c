"""Raw + cleaned run end to end on a hand-written landing zone: idempotent, crash-safe, loud about
refused files but not stopped by them."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pandas as pd

from fraud_assets.defs.raw import snapshots
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

TABLES = (
    "raw.file_register",
    "raw.authorizations",
    "cleaned.transactions",
    "cleaned.quarantine",
    "cleaned.reconciliation",
    "cleaned.terminals",
    "cleaned.cards",
    "cleaned.fx_rates",
    "cleaned.labels",
)


def land_small_world(data_dir, n: int = 40) -> None:
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(i) for i in range(1, n)] + [s.a_row(1), s.a_row(900, amount="-1")])
    s.write_acq_b(data_dir, [s.b_row(1000 + i) for i in range(n)] + ["{broken"])
    s.write_chargebacks(
        data_dir,
        [
            {
                "chargeback_id": "cb1",
                "transaction_id": "3",
                "pan": s.PANS[1],
                "tx_datetime": "2018-04-01T12:00:03Z",
                "reported_at": "2018-04-05T09:00:00Z",
                "reason_code": "10.4",
                "amount": "10.00",
                "currency": "EUR",
            }
        ],
        "2018-04-05",
    )


def snapshot(data_dir) -> dict[str, pd.DataFrame]:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in TABLES}


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for t in TABLES:
        pd.testing.assert_frame_equal(a[t], b[t], obj=t)


def failed_checks(results) -> set[tuple[str, str]]:
    return {
        (ev.asset_key.to_user_string(), ev.check_name)
        for r in results
        for ev in r.get_asset_check_evaluations()
        if not ev.passed
    }


def test_a_clean_landing_zone_materialises_with_every_check_passing(data_dir):
    land_small_world(data_dir)
    results = s.run_pipeline(data_dir)
    assert all(r.success for r in results)
    assert not failed_checks(results)
    tables = snapshot(data_dir)
    assert len(tables["cleaned.transactions"]) == 39 + 40
    assert tables["cleaned.reconciliation"]["duplicates_removed"].sum() == 1
    assert tables["cleaned.labels"]["transaction_id"].tolist() == [3]


def test_materialisation_metadata_reports_counts_schema_and_quarantine_reasons(data_dir):
    land_small_world(data_dir)
    results = s.run_pipeline(data_dir)
    mats = {
        m.asset_key.to_user_string(): m.metadata
        for r in results
        for m in r.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
    q = mats["cleaned/quarantine"]
    assert q["quarantine_by_reason"].value == {"negative_amount": 1, "malformed_line": 1}
    assert mats["cleaned/transactions"]["dagster/partition_row_count"].value == 79
    assert {c.name for c in mats["cleaned/transactions"]["dagster/column_schema"].schema.columns} >= {
        "transaction_id",
        "tx_amount",
        "card_token",
    }
    assert mats["cleaned/transactions"]["duplicates_removed"].value == 1


def test_rematerialising_a_partition_gives_identical_tables(data_dir):
    land_small_world(data_dir)
    instance = dg.DagsterInstance.ephemeral()
    s.run_pipeline(data_dir, instance=instance)
    first = snapshot(data_dir)
    s.run_pipeline(data_dir, instance=instance)
    assert_same(first, snapshot(data_dir))


def test_an_unreadable_file_fails_a_check_visibly_while_the_rest_flows(data_dir):
    land_small_world(data_dir)
    good = gzip.compress(s.csv_text([s.a_row(500)]).encode())
    s.write(data_dir, f"authorizations/{s.LANDED}/acq_a_{s.DAY}_002.csv.gz", good[: len(good) // 2])
    results = s.run_pipeline(data_dir, raise_on_error=False)
    assert all(r.success for r in results)
    assert failed_checks(results) == {("raw/file_register", "no_rejected_files")}
    tables = snapshot(data_dir)
    reg = tables["raw.file_register"].set_index("source_file")
    assert reg.loc[f"authorizations/{s.LANDED}/acq_a_{s.DAY}_002.csv.gz", "reason"] == "truncated_gzip"
    assert len(tables["cleaned.transactions"]) == 79


def test_a_rejected_file_alarms_until_its_complete_resend_is_ingested(data_dir):
    """The simulator's truncated file and its complete `_002` re-send a day later: the alarm names the
    file while it is missing, and clears once the producer re-sent it (the demo world has two such)."""
    s.write_reference(data_dir)
    good = gzip.compress(s.csv_text([s.a_row(i) for i in range(1, 6)]).encode())
    s.write(data_dir, f"authorizations/{s.DAY}/acq_a_{s.DAY}.csv.gz", good[: len(good) // 2])
    results = s.run_pipeline(data_dir, raise_on_error=False)
    [alarm] = [ev for r in results for ev in r.get_asset_check_evaluations() if not ev.passed]
    assert alarm.check_name == "no_rejected_files"
    name = f"authorizations/{s.DAY}/acq_a_{s.DAY}.csv.gz"
    assert alarm.description == f"1 rejected landing file(s) not re-sent: {name} (truncated_gzip)"

    s.write(data_dir, f"authorizations/{s.LANDED}/acq_a_{s.DAY}_002.csv.gz", good)
    results = s.run_pipeline(data_dir, raise_on_error=False)
    [check] = [
        ev for r in results for ev in r.get_asset_check_evaluations() if ev.check_name == "no_rejected_files"
    ]
    assert check.passed
    assert (check.metadata["rejected_files"].value, check.metadata["rejected_not_resent"].value) == (1, 0)
    assert f"acq_a_{s.DAY}_002.csv.gz" in check.metadata["rejections"].value
    assert len(snapshot(data_dir)["cleaned.transactions"]) == 5


def test_a_blocking_contract_failure_stops_downstream_assets(data_dir, monkeypatch):
    # Raw gives such a row its `invalid_timezone` and cleaned quarantines it (test_raw_snapshots.py);
    # without that guard the blocking contract is the last line, which this test is about.
    rules = [rule for rule in snapshots.ROW_RULES["merchants"] if rule[0] != "invalid_timezone"]
    monkeypatch.setitem(snapshots.ROW_RULES, "merchants", rules)
    land_small_world(data_dir)
    path = data_dir / "landing" / "merchants" / s.DAY / f"merchants_{s.DAY}.parquet"
    s.TERMINALS.assign(timezone="Mars/Olympus_Mons").to_parquet(path, index=False)
    instance = dg.DagsterInstance.ephemeral()
    defs = s.defs_for(data_dir)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=build_resources(data_dir, TEST_PAN_KEY),
        instance=instance,
        partition_key=s.DAY,
        raise_on_error=False,
    )
    assert ("cleaned/terminals", "contract") in failed_checks([result])
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "cleaned/terminals" in done
    assert "raw/authorizations" in done
    assert "cleaned/transactions" not in done


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fraud_assets.defs.raw.assets import ingest_authorizations
    from fraud_assets.resources import build_resources

    data_dir, marker = Path(sys.argv[1]), Path(sys.argv[2])

    class Stall:
        # Delegates to a DuckDB connection; after the partition's INSERT (inside the open
        # transaction, before COMMIT) it signals the parent and waits to be killed.
        def __init__(self, conn):
            self._conn = conn
        def __getattr__(self, name):
            return getattr(self._conn, name)
        def cursor(self):
            return Stall(self._conn.cursor())
        def execute(self, sql, *args):
            out = self._conn.execute(sql, *args)
            if sql.startswith("INSERT INTO raw.authorizations"):
                marker.write_text("in transaction")
                time.sleep(120)
            return out

    res = build_resources(data_dir, sys.argv[3])
    with res["duckdb"].get_connection() as conn:
        ingest_authorizations(Stall(conn), res["landing"], res["pan_tokenizer"].tokenizer(), [sys.argv[4]])
    """
)


def test_a_write_killed_mid_transaction_leaves_the_table_intact_and_a_rerun_identical(data_dir, tmp_path):
    land_small_world(data_dir, n=400)
    instance = dg.DagsterInstance.ephemeral()
    s.run_pipeline(data_dir, instance=instance)
    committed = snapshot(data_dir)
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        # Another key: the killed write would change every card_token if any of it landed.
        [sys.executable, "-c", CHILD, str(data_dir), str(marker), "another-key-0123456789abcdef", s.DAY],
        env={**os.environ},
    )
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert child.poll() is None, "the writer exited before reaching its transaction"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # The killed transaction had deleted and re-inserted the partition: none of it is visible.
    assert marker.read_text() == "in transaction"
    assert_same(committed, snapshot(data_dir))
    s.run_pipeline(data_dir, instance=instance)
    assert_same(committed, snapshot(data_dir))
