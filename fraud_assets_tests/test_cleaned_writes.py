"""Cleaned transactions, quarantine and reconciliation describe the same raw rows: they are written in
one transaction, so a failure between two of the writes leaves all three as they were."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.cleaned.assets import clean_partitions
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

CLEANED = ("cleaned.transactions", "cleaned.quarantine", "cleaned.reconciliation")


class FailBefore:
    """A DuckDB connection (or cursor) that raises just before the first statement containing `marker`:
    what a crash between two writes looks like to the database."""

    def __init__(self, conn, marker: str):
        self._conn, self._marker = conn, marker

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def cursor(self):
        return FailBefore(self._conn.cursor(), self._marker)

    def execute(self, sql, *args):
        if self._marker in sql:
            raise RuntimeError("killed between writes")
        return self._conn.execute(sql, *args)


def ingest(data_dir) -> None:
    """raw/file_register and raw/authorizations only: the raw rows change, the cleaned tables not yet."""
    defs = s.defs_for(data_dir)
    instance = dg.DagsterInstance.ephemeral()
    for key, partition in (("raw/file_register", None), ("raw/authorizations", s.DAY)):
        dg.materialize(
            defs.assets,
            selection=dg.AssetSelection.assets(dg.AssetKey.from_user_string(key)),
            resources=build_resources(data_dir, TEST_PAN_KEY),
            instance=instance,
            partition_key=partition,
        )


def tables(conn) -> dict[str, pd.DataFrame]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in CLEANED}


@pytest.mark.parametrize("marker", ["INSERT INTO cleaned.quarantine", "INSERT INTO cleaned.reconciliation"])
def test_a_failure_between_the_cleaned_writes_leaves_all_three_tables_as_they_were(data_dir, marker):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, amount="-1")])
    s.run_pipeline(data_dir)
    # A later file changes all three tables for the day: two more transactions, one more quarantined.
    s.write_acq_a(
        data_dir, [s.a_row(3), s.a_row(4), s.a_row(5, terminal_id="999")], name=f"acq_a_{s.DAY}_002.csv.gz"
    )
    ingest(data_dir)
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        before = tables(conn)
        with pytest.raises(RuntimeError, match="killed between writes"):
            clean_partitions(FailBefore(conn, marker), [s.DAY])
        after = tables(conn)
        clean_partitions(conn, [s.DAY])
        rerun = tables(conn)
    for t in CLEANED:
        pd.testing.assert_frame_equal(before[t], after[t], obj=t)
    assert len(rerun["cleaned.transactions"]) == 3
    assert len(rerun["cleaned.quarantine"]) == 2
