"""cleaned.terminals is the latest full merchants snapshot: a terminal it no longer lists is gone, and
later days' authorisations on it are quarantined `unknown_terminal`; days cleaned before keep theirs."""

from __future__ import annotations

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
            t for (t,) in conn.execute("SELECT terminal_id FROM cleaned.terminals ORDER BY 1").fetchall()
        ]
        cleaned = conn.execute(
            "SELECT transaction_id, business_date FROM cleaned.transactions ORDER BY 1"
        ).fetchall()
        quarantined = conn.execute("SELECT transaction_id, reason FROM cleaned.quarantine").fetchall()
    assert terminals == [1, 2, 3, 5]
    assert [t for t, _ in cleaned] == [1, 2, 4]  # transaction 1 on terminal 4 was cleaned before
    assert quarantined == [(3, "unknown_terminal")]
