"""Drift reference rows (`ReferenceRows`): sampled within the window, the same whichever days a run reads."""

import duckdb
import pytest

from fraud_assets.defs.monitoring import assets as monitoring

TABLE = "features.transaction_features"


@pytest.fixture
def conn():
    c = duckdb.connect()
    c.execute("CREATE SCHEMA features")
    c.execute(
        f"CREATE TABLE {TABLE} AS SELECT range AS transaction_id, "
        "DATE '2018-04-01' + CAST(range // 1000 AS INTEGER) AS business_date, range * 0.5 AS tx_amount "
        "FROM range(10000)"
    )
    yield c
    c.close()


def test_a_window_holds_its_own_days_rows_not_a_share_of_a_whole_table_sample(conn, monkeypatch):
    """A sample taken before the date filter (DuckDB's USING SAMPLE applies before WHERE) held ~20 % of
    the cap for a 2-day window of a 10-day table; the reference is the window's rows up to the cap."""
    monkeypatch.setattr(monitoring, "MAX_REFERENCE_ROWS", 1500)
    rows = monitoring.ReferenceRows(conn).window(
        TABLE, ["business_date", "tx_amount"], "2018-04-03", "2018-04-04"
    )
    assert len(rows) == 1500
    assert set(rows["business_date"].dt.strftime("%Y-%m-%d")) == {"2018-04-03", "2018-04-04"}
    whole_days = monitoring.ReferenceRows(conn).window(
        TABLE, ["business_date", "tx_amount"], "2018-04-03 00:00:00", "2018-04-03"
    )
    assert len(whole_days) == 1000  # under the cap: every row of the day (a TIMESTAMP's text is a day too)


def test_the_reference_does_not_depend_on_which_days_were_read_before(conn, monkeypatch):
    monkeypatch.setattr(monitoring, "MAX_REFERENCE_ROWS", 1500)
    cols = ["business_date", "tx_amount"]
    warm = monitoring.ReferenceRows(conn)
    for day in ("2018-04-01", "2018-04-02", "2018-04-03"):  # a burst: windows growing a day at a time
        warm.window(TABLE, cols, "2018-04-01", day)
    fresh = monitoring.ReferenceRows(conn).window(TABLE, cols, "2018-04-02", "2018-04-05")
    again = warm.window(TABLE, cols, "2018-04-02", "2018-04-05")
    assert sorted(fresh["tx_amount"]) == sorted(again["tx_amount"])
    assert ("features.transaction_features", "2018-04-01") not in warm.days  # before the window: let go
