"""Checks of the scoring layer, run in the scoring assets' own steps: the scores' contract, reconciliation
with the day's cleaned transactions and spread; the queue's budget, its links to the scores and the PAN
scan. A broken table fails its check; a failed blocking check on the scores keeps the queue from being
built."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fraud_assets.defs.scoring.checks import SCORES_CHECKS, alerts_checks
from fraud_assets.lib.contracts import EVALUATED_OVER
from fraud_assets.lib.table_checks import DayResults, TableCheck, TableScope
from fraud_assets_tests.models_world import connect, copy_world, layer_defs, run_job, shared_trained_world

DAY, OTHER_DAY = "2018-08-13", "2018-08-14"
SCORES, ALERTS = "scoring.transaction_scores", "scoring.fraud_alerts"
SCORES_KEY, ALERTS_KEY = (
    dg.AssetKey(["scoring", "transaction_scores"]),
    dg.AssetKey(["scoring", "fraud_alerts"]),
)
PAN = "4539148803436467"


@pytest.fixture
def conn(tmp_path: Path):
    """A day of four scored transactions and its queue, as the scoring assets write them."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        c.execute("CREATE SCHEMA cleaned")
        c.execute("CREATE SCHEMA scoring")
        c.execute(
            "CREATE TABLE cleaned.transactions AS SELECT i::BIGINT AS transaction_id, "
            f"DATE '{DAY}' AS business_date, 'tok' || i AS card_token FROM range(1, 5) t(i)"
        )
        c.execute(
            f"CREATE TABLE {SCORES} AS SELECT transaction_id, card_token, business_date, "
            "transaction_id / 10 AS score, 'lr-20180813T000000000000-0abc' AS model_version, "
            "TIMESTAMP '2018-08-14 01:00:00' AS scored_at FROM cleaned.transactions"
        )
        c.execute(
            f"CREATE TABLE {ALERTS} AS SELECT business_date, "
            "row_number() OVER (ORDER BY score DESC) AS alert_rank, card_token, score, transaction_id, "
            "model_version, 'tx_amount=12.5 (+0.100)' AS drivers FROM scoring.transaction_scores"
        )
        yield c


def _check(checks: list[TableCheck], name: str) -> TableCheck:
    return next(c for c in checks if c.name == name)


def _verdict(conn, check: TableCheck, table: str) -> dg.AssetCheckResult:
    outcome = check.run(TableScope(conn, table, [DAY], "business_date"))
    return outcome.overall if isinstance(outcome, DayResults) else outcome


def test_a_sound_day_passes_every_scoring_check(conn):
    for check in SCORES_CHECKS:
        assert _verdict(conn, check, SCORES).passed, check.name
    for check in alerts_checks(top_k=4):
        assert _verdict(conn, check, ALERTS).passed, check.name


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        ("UPDATE {scores} SET score = 1.5 WHERE transaction_id = 1", "contract"),
        ("UPDATE {scores} SET score = 'nan'::DOUBLE WHERE transaction_id = 1", "contract"),
        ("UPDATE {scores} SET model_version = NULL WHERE transaction_id = 1", "contract"),
        ("UPDATE {scores} SET model_version = '' WHERE transaction_id = 1", "contract"),
        ("INSERT INTO {scores} SELECT * FROM {scores} WHERE transaction_id = 1", "contract"),
        (
            "INSERT INTO {scores} SELECT * FROM {scores} WHERE transaction_id = 1",
            "every_transaction_scored_once",
        ),
        ("DELETE FROM {scores} WHERE transaction_id = 1", "every_transaction_scored_once"),
        (
            "INSERT INTO {scores} SELECT 99, card_token, business_date, score, model_version, scored_at "
            "FROM {scores} WHERE transaction_id = 1",
            "every_transaction_scored_once",
        ),
        (
            f"INSERT INTO {{scores}} SELECT transaction_id, card_token, DATE '{OTHER_DAY}', score, "
            "model_version, scored_at FROM {scores} WHERE transaction_id = 1",
            "every_transaction_scored_once",
        ),
        ("UPDATE {scores} SET score = 0.25", "scores_vary"),
    ],
    ids=[
        "score-above-1",
        "score-nan",
        "no-model-version",
        "empty-model-version",
        "scored-twice-contract",
        "scored-twice",
        "not-scored",
        "score-without-transaction",
        "scored-again-on-another-day",
        "one-score-for-all",
    ],
)
def test_a_broken_scores_table_fails_its_check(conn, broken, check):
    conn.execute(broken.format(scores=SCORES))
    result = _verdict(conn, _check(SCORES_CHECKS, check), SCORES)
    assert not result.passed
    severity = dg.AssetCheckSeverity.WARN if check == "scores_vary" else dg.AssetCheckSeverity.ERROR
    assert result.severity == severity


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        ("", "within_budget"),  # four alerts, a budget of three
        ("UPDATE {alerts} SET card_token = 'tok4' WHERE alert_rank = 2", "within_budget"),
        ("UPDATE {alerts} SET alert_rank = 7 WHERE alert_rank = 2", "within_budget"),
        ("UPDATE {alerts} SET alert_rank = 5 - alert_rank", "within_budget"),  # lowest score ranked first
        ("UPDATE {alerts} SET model_version = 'lr-other' WHERE alert_rank = 1", "alerts_point_to_scores"),
        ("UPDATE {alerts} SET transaction_id = 99 WHERE alert_rank = 1", "alerts_point_to_scores"),
        ("UPDATE {alerts} SET score = 0.99 WHERE alert_rank = 1", "alerts_point_to_scores"),
        (f"UPDATE {{alerts}} SET drivers = 'tx_amount={PAN}' WHERE alert_rank = 1", "no_clear_pan"),
    ],
    ids=[
        "over-budget",
        "card-twice",
        "rank-gap",
        "ranked-against-score",
        "other-model-version",
        "unscored-transaction",
        "other-score",
        "pan-in-drivers",
    ],
)
def test_a_broken_queue_fails_its_check(conn, broken, check):
    if broken:
        conn.execute(broken.format(alerts=ALERTS))
    top_k = 3 if not broken else 4
    result = _verdict(conn, _check(alerts_checks(top_k), check), ALERTS)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert PAN not in repr(result.metadata)


RANGE_DAYS = [DAY, OTHER_DAY, "2018-08-15"]


@pytest.fixture
def range_conn(conn):
    """The day copied onto the two days after it (other transaction ids): a sound three-day range."""
    for i, day in enumerate(RANGE_DAYS[1:], start=1):
        for table in ("cleaned.transactions", SCORES, ALERTS):
            columns = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
            values = ", ".join(
                f"transaction_id + {100 * i}"
                if c == "transaction_id"
                else f"DATE '{day}'"
                if c == "business_date"
                else c
                for c in columns
            )
            conn.execute(
                f"INSERT INTO {table} SELECT {values} FROM {table} WHERE business_date = DATE '{DAY}'"
            )
    return conn


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        ("UPDATE {alerts} SET alert_rank = 7 WHERE alert_rank = 2 AND {bad}", "within_budget"),
        ("UPDATE {alerts} SET card_token = 'tok4' WHERE alert_rank = 2 AND {bad}", "within_budget"),
        ("UPDATE {alerts} SET score = 0.99 WHERE alert_rank = 1 AND {bad}", "alerts_point_to_scores"),
    ],
    ids=["rank-gap", "card-twice", "other-score"],
)
def test_in_a_range_a_broken_day_of_the_queue_fails_its_check_alone(range_conn, broken, check):
    range_conn.execute(broken.format(alerts=ALERTS, bad=f"business_date = DATE '{OTHER_DAY}'"))
    outcome = _check(alerts_checks(top_k=4), check).run(
        TableScope(range_conn, ALERTS, RANGE_DAYS, "business_date")
    )
    assert isinstance(outcome, DayResults)
    assert {day: r.passed for day, r in outcome.per_day.items()} == {
        DAY: True,
        OTHER_DAY: False,
        RANGE_DAYS[2]: True,
    }
    assert not outcome.overall.passed
    assert outcome.overall.metadata["failing_days"].value == OTHER_DAY


def test_in_a_range_the_queue_figures_are_each_days_own(range_conn):
    range_conn.execute(f"DELETE FROM {ALERTS} WHERE alert_rank = 4 AND business_date = DATE '{OTHER_DAY}'")
    outcome = _check(alerts_checks(top_k=4), "within_budget").run(
        TableScope(range_conn, ALERTS, RANGE_DAYS, "business_date")
    )
    most = {day: r.metadata["most_alerts_in_a_day"].value for day, r in outcome.per_day.items()}
    assert most == {DAY: 4, OTHER_DAY: 3, RANGE_DAYS[2]: 4}
    assert outcome.overall.metadata["most_alerts_in_a_day"].value == 4
    assert outcome.overall.passed
    pointing = _check(alerts_checks(), "alerts_point_to_scores").run(
        TableScope(range_conn, ALERTS, RANGE_DAYS, "business_date")
    )
    assert {day: r.metadata["alerts"].value for day, r in pointing.per_day.items()} == {
        DAY: 4,
        OTHER_DAY: 3,
        RANGE_DAYS[2]: 4,
    }
    assert pointing.overall.metadata["alerts"].value == 11


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_trained_world(tmp_path_factory)


def _evaluations(result) -> dict[tuple[str, str, str | None], dg.AssetCheckEvaluation]:
    return {
        (ev.asset_key.path[-1], ev.check_name, ev.partition): ev
        for ev in result.get_asset_check_evaluations()
    }


def test_a_scored_day_is_checked_in_the_scoring_steps_themselves(trained: Path, tmp_path: Path):
    world = copy_world(trained, tmp_path / "data")
    result = run_job(world, "scoring_job", partition=DAY)
    assert result.success
    evs = _evaluations(result)
    assert {(asset, name) for asset, name, _ in evs} == {
        ("transaction_scores", "contract"),
        ("transaction_scores", "every_transaction_scored_once"),
        ("transaction_scores", "scores_vary"),
        ("fraud_alerts", "within_budget"),
        ("fraud_alerts", "alerts_point_to_scores"),
        ("fraud_alerts", "no_clear_pan"),
    }
    assert all(ev.passed and ev.partition == DAY for ev in evs.values())
    # No step of their own: the landed day's run has as many steps as before.
    steps = {e.step_key for e in result.all_events if e.step_key}
    assert steps == {"scoring__transaction_scores", "scoring__fraud_alerts", "scoring__shadow_scores"}


def test_a_range_run_records_each_scoring_checks_verdict_for_every_day(trained: Path, tmp_path: Path):
    world = copy_world(trained, tmp_path / "data")
    result = (
        layer_defs(world)
        .resolve_job_def("scoring_job")
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[SCORES_KEY, ALERTS_KEY],
            tags={"dagster/asset_partition_range_start": DAY, "dagster/asset_partition_range_end": OTHER_DAY},
        )
    )
    assert result.success
    evs = _evaluations(result)
    for asset, name, _ in list(evs):
        for day in (DAY, OTHER_DAY):
            ev = evs[(asset, name, day)]
            assert ev.passed
            assert ev.metadata[EVALUATED_OVER].value.startswith(DAY)


def test_scores_that_fail_a_blocking_check_do_not_feed_the_alert_queue(trained: Path, tmp_path: Path):
    world = copy_world(trained, tmp_path / "data")
    with connect(world) as conn:  # a transaction of the day that has no features, so no score
        conn.execute(
            "INSERT INTO cleaned.transactions SELECT 10000000, business_date, card_token "
            "FROM cleaned.transactions WHERE business_date = ?::DATE LIMIT 1",
            [DAY],
        )
    result = run_job(world, "scoring_job", partition=DAY)
    assert not result.success
    ev = _evaluations(result)[("transaction_scores", "every_transaction_scored_once", DAY)]
    assert not ev.passed
    assert ev.metadata["transactions_not_scored"].value == 1
    done = {e.asset_key for e in result.get_asset_materialization_events()}
    assert SCORES_KEY in done
    assert ALERTS_KEY not in done


def test_in_a_range_run_a_day_with_a_missing_score_fails_its_reconciliation_alone(
    trained: Path, tmp_path: Path
):
    world = copy_world(trained, tmp_path / "data")
    with connect(world) as conn:  # a transaction of the second day that has no features, so no score
        conn.execute(
            "INSERT INTO cleaned.transactions SELECT 10000000, business_date, card_token "
            "FROM cleaned.transactions WHERE business_date = ?::DATE LIMIT 1",
            [OTHER_DAY],
        )
    result = (
        layer_defs(world)
        .resolve_job_def("scoring_job")
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[SCORES_KEY, ALERTS_KEY],
            tags={"dagster/asset_partition_range_start": DAY, "dagster/asset_partition_range_end": OTHER_DAY},
            raise_on_error=False,
        )
    )
    assert not result.success  # blocking
    evs = _evaluations(result)
    reconciled = {
        day: evs[("transaction_scores", "every_transaction_scored_once", day)] for day in (DAY, OTHER_DAY)
    }
    assert {day: ev.passed for day, ev in reconciled.items()} == {DAY: True, OTHER_DAY: False}
    assert reconciled[OTHER_DAY].metadata["transactions_not_scored"].value == 1
    whole = evs[("transaction_scores", "every_transaction_scored_once", None)]
    assert not whole.passed
    # Each day's own counts, not copies of the range's.
    per_day_rows = [ev.metadata["scored_rows"].value for ev in reconciled.values()]
    assert sum(per_day_rows) == whole.metadata["scored_rows"].value
    assert {evs[("transaction_scores", "scores_vary", day)].passed for day in (DAY, OTHER_DAY)} == {True}
