"""lib/partitions: business-date filters and batches as the SQL of every partitioned step uses them."""

from __future__ import annotations

import duckdb
import pytest

from fraud_assets.lib.partitions import dates_filter, day_batches

DAYS = "SELECT DATE '2018-04-01' + CAST(range AS INTEGER) AS business_date FROM range(5)"


def _selected(where: str) -> list[str]:
    rows = duckdb.sql(f"SELECT CAST(business_date AS VARCHAR) FROM ({DAYS}) WHERE {where} ORDER BY 1")
    return [r[0] for r in rows.fetchall()]


def test_keys_select_exactly_their_days_in_any_order():
    assert _selected(dates_filter(["2018-04-04", "2018-04-02"])) == ["2018-04-02", "2018-04-04"]


def test_no_keys_select_no_day_and_none_selects_every_day():
    """An empty key list never widens to the whole table (a DELETE or a check over it would)."""
    assert _selected(dates_filter([])) == []
    assert len(_selected(dates_filter(None))) == 5


@pytest.mark.parametrize("key", ["2018-04-01' OR TRUE --", "yesterday", "2018-13-01"])
def test_a_key_that_is_not_a_date_never_reaches_the_sql(key):
    with pytest.raises(ValueError, match="isoformat|month"):
        dates_filter(["2018-04-01", key])


def test_day_batches_close_once_they_hold_the_row_budget():
    rows = {"d1": 5, "d2": 5, "d3": 20, "d4": 1}
    assert list(day_batches(["d1", "d2", "d3", "d4"], rows, 10)) == [["d1", "d2"], ["d3"], ["d4"]]
