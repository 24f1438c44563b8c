"""In a range run the raw reconciliation judges each business date on its own: a day with a lost or
doubled line fails alone (its cleaning waits, the other days' flow on) and the range's result names it."""

import duckdb
import pytest

from fraud_assets.defs.raw.checks import RAW_CHECKS, landed_rows_reconcile
from fraud_assets.lib.table_checks import DayResults, TableScope

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]
BAD = DAYS[1]
reconciles = landed_rows_reconcile("authorizations", "rows landed = rows in raw")


@pytest.fixture
def conn():
    """Two authorisation files a day, three rows each, all in raw; one merchants file of four rows."""
    c = duckdb.connect()
    c.execute("CREATE SCHEMA raw")
    c.execute(
        "CREATE TABLE raw.file_register AS SELECT 'ingested' AS status, 'authorizations' AS source, "
        "DATE '2018-04-01' + CAST(i // 2 AS INTEGER) AS business_date, 3 AS rows_landed FROM range(6) t(i) "
        "UNION ALL SELECT 'ingested', 'merchants', DATE '2018-04-01', 4"
    )
    c.execute(
        "CREATE TABLE raw.authorizations AS SELECT business_date FROM raw.file_register, range(3) "
        "WHERE source = 'authorizations'"
    )
    c.execute("CREATE TABLE raw.merchants AS SELECT DATE '2018-04-01' AS business_date FROM range(4)")
    yield c
    c.close()


def test_a_line_lost_on_one_day_fails_that_days_reconciliation_alone(conn):
    conn.execute(
        f"DELETE FROM raw.authorizations WHERE rowid = (SELECT min(rowid) FROM raw.authorizations "
        f"WHERE business_date = DATE '{BAD}')"
    )
    outcome = reconciles.run(TableScope(conn, "raw.authorizations", DAYS, "business_date"))
    assert isinstance(outcome, DayResults)
    assert {d: r.passed for d, r in outcome.per_day.items()} == {DAYS[0]: True, BAD: False, DAYS[2]: True}
    figures = {
        d: (r.metadata["rows_landed"].value, r.metadata["rows_raw"].value) for d, r in outcome.per_day.items()
    }
    assert figures == {DAYS[0]: (6, 6), BAD: (6, 5), DAYS[2]: (6, 6)}
    assert not outcome.overall.passed
    assert outcome.overall.metadata["failing_days"].value == BAD
    assert outcome.overall.metadata["difference"].value == -1


def test_a_one_day_run_and_an_unpartitioned_table_get_one_result(conn):
    day = reconciles.run(TableScope(conn, "raw.authorizations", [BAD], "business_date"))
    assert day.passed
    assert day.metadata["rows_raw"].value == 6
    merchants = landed_rows_reconcile("merchants", "rows landed = rows in raw")
    whole = merchants.run(TableScope(conn, "raw.merchants", None, "business_date"))
    assert whole.passed
    assert whole.metadata["rows_landed"].value == 4
    conn.execute("DROP TABLE raw.merchants")
    missing = merchants.run(TableScope(conn, "raw.merchants", None, "business_date"))
    assert not missing.passed
    assert missing.metadata["rows_raw"].value == 0


def test_every_raw_step_still_declares_its_reconciliation():
    names = {spec.name for checks in RAW_CHECKS for spec in checks.check_specs}
    assert "landed_rows_reconcile" in names
