"""In a range run the cleaned transactions' checks judge each business date on its own: one bad day fails
that day's check only (so automation holds back that day's downstream only), and the range's result fails
and names it. One day of a three-day range is broken in each test."""

import duckdb
import pytest

from fraud_assets.defs.cleaned.checks import (
    cards_exist,
    raw_rows_reconcile,
    terminals_exist,
    transaction_id_unique,
)
from fraud_assets.lib.table_checks import DayResults, TableScope

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]
BAD = DAYS[1]


@pytest.fixture
def conn():
    """Two sound transactions a day, each raw row accounted for, every terminal and card known."""
    c = duckdb.connect()
    c.execute("CREATE SCHEMA raw; CREATE SCHEMA cleaned")
    c.execute(
        "CREATE TABLE cleaned.transactions AS SELECT i AS transaction_id, "
        "DATE '2018-04-01' + CAST(i // 2 AS INTEGER) AS business_date, 1 AS terminal_id, "
        "'card1' AS card_token FROM range(6) t(i)"
    )
    c.execute("CREATE TABLE raw.authorizations AS SELECT business_date FROM cleaned.transactions")
    c.execute("CREATE TABLE cleaned.quarantine (business_date DATE)")
    c.execute(
        "CREATE TABLE cleaned.reconciliation AS SELECT business_date, 0 AS duplicates_removed, "
        "0 AS reversal_rows, count(*) AS cleaned_rows, 0 AS quarantined_rows "
        "FROM cleaned.transactions GROUP BY 1"
    )
    c.execute(
        "CREATE TABLE cleaned.terminals AS SELECT 1 AS terminal_id, NULL::DATE AS valid_from, "
        "NULL::DATE AS valid_to"
    )
    c.execute(
        "CREATE TABLE cleaned.cards AS SELECT 'card1' AS card_token, NULL::DATE AS valid_from, "
        "NULL::DATE AS valid_to"
    )
    yield c
    c.close()


def judged(conn, check) -> DayResults:
    outcome = check.run(TableScope(conn, "cleaned.transactions", DAYS, "business_date"))
    assert isinstance(outcome, DayResults)
    return outcome


def verdicts(outcome: DayResults) -> dict[str, bool]:
    return {day: r.passed for day, r in outcome.per_day.items()}


def test_a_sound_range_passes_every_day(conn):
    for check in (transaction_id_unique, terminals_exist, cards_exist, raw_rows_reconcile):
        outcome = judged(conn, check)
        assert verdicts(outcome) == dict.fromkeys(DAYS, True), check.name
        assert outcome.overall.passed
        assert outcome.overall.metadata["failing_days"].value == "none"


def only_the_bad_day_fails(outcome: DayResults) -> None:
    assert verdicts(outcome) == {DAYS[0]: True, BAD: False, DAYS[2]: True}
    assert not outcome.overall.passed
    assert outcome.overall.metadata["failing_days"].value == BAD


def test_a_duplicated_id_fails_its_own_day_only(conn):
    conn.execute(f"INSERT INTO cleaned.transactions VALUES (2, DATE '{BAD}', 1, 'card1')")
    outcome = judged(conn, transaction_id_unique)
    only_the_bad_day_fails(outcome)
    assert outcome.per_day[BAD].metadata["duplicated_ids"].value == 1
    assert outcome.overall.metadata["duplicated_ids"].value == 1


def test_an_id_on_two_days_of_a_range_fails_both_and_counts_once_over_the_range(conn):
    conn.execute(f"INSERT INTO cleaned.transactions VALUES (0, DATE '{BAD}', 1, 'card1')")  # day 1's id 0
    outcome = judged(conn, transaction_id_unique)
    assert verdicts(outcome) == {DAYS[0]: False, BAD: False, DAYS[2]: True}
    assert {d: r.metadata["duplicated_ids"].value for d, r in outcome.per_day.items()} == {
        DAYS[0]: 1,
        BAD: 1,
        DAYS[2]: 0,
    }
    assert outcome.overall.metadata["duplicated_ids"].value == 1


def test_an_unknown_terminal_fails_its_own_day_only(conn):
    conn.execute(f"INSERT INTO cleaned.transactions VALUES (10, DATE '{BAD}', 9, 'card1')")
    outcome = judged(conn, terminals_exist)
    only_the_bad_day_fails(outcome)
    figures = {
        day: (r.metadata["rows"].value, r.metadata["orphan_rows"].value) for day, r in outcome.per_day.items()
    }
    assert figures == {DAYS[0]: (2, 0), BAD: (3, 1), DAYS[2]: (2, 0)}
    assert (outcome.overall.metadata["rows"].value, outcome.overall.metadata["orphan_rows"].value) == (7, 1)


def test_an_unknown_card_warns_on_its_own_day_only(conn):
    conn.execute(f"INSERT INTO cleaned.transactions VALUES (10, DATE '{BAD}', 1, 'card9')")
    only_the_bad_day_fails(judged(conn, cards_exist))


def test_an_unaccounted_raw_row_fails_its_own_day_only(conn):
    conn.execute(f"INSERT INTO raw.authorizations VALUES (DATE '{BAD}')")
    outcome = judged(conn, raw_rows_reconcile)
    only_the_bad_day_fails(outcome)
    assert outcome.per_day[BAD].metadata["unaccounted_rows"].value == 1
    assert outcome.per_day[DAYS[0]].metadata["raw_rows"].value == 2
    assert outcome.overall.metadata["raw_rows"].value == 7


def test_a_one_day_run_gets_one_result_with_that_days_figures(conn):
    conn.execute(f"INSERT INTO raw.authorizations VALUES (DATE '{BAD}')")
    result = raw_rows_reconcile.run(TableScope(conn, "cleaned.transactions", [BAD], "business_date"))
    assert not result.passed
    assert (result.metadata["raw_rows"].value, result.metadata["unaccounted_rows"].value) == (3, 1)
