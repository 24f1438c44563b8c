"""Every check of features/transaction_features judges each business date on its own rows, in a range run
(the bootstrap, a backfill) as in a one-day run: each day's check history in the UI names the day and shows
that day's figures, a failing day fails alone, and automation holds back that day's downstream only."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fraud_assets.defs.features import checks
from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.tables import FEATURES_TABLE as TABLE
from fraud_assets.resources import build_resources
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import load_world_into_cleaned
from fraud_assets_tests.conftest import TEST_PAN_KEY
from fraud_assets_tests.days_run import days_run

DAYS = ["2018-04-06", "2018-04-07", "2018-04-08"]
CHECKS = {"one_row_per_transaction", "sampled_naive_recompute", "null_rates", "value_ranges"}


@pytest.fixture(scope="module")
def world():
    return generate_world(
        SimConfig(profile="handbook", days=10, customers=60, terminals=120, seed=7, handbook_labels=True)
    )


@pytest.fixture
def warehouse(data_dir: Path, world) -> Path:
    path = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
    return path


def _run(data_dir: Path, instance: dg.DagsterInstance, days: list[str], checks_only: bool = False):
    assets = [
        transaction_features.to_source_asset() if checks_only else transaction_features,
        *FEATURE_CHECKS,
    ]
    return dg.materialize(
        assets,
        instance=instance,
        resources=build_resources(data_dir, TEST_PAN_KEY),
        selection=dg.AssetSelection.checks(*FEATURE_CHECKS) if checks_only else None,
        raise_on_error=False,
        **days_run(days),
    )


def _by_day(result) -> dict[tuple[str, str | None], dg.AssetCheckEvaluation]:
    return {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}


def _rows_per_day(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path)) as conn:
        return dict(
            conn.execute(
                f"SELECT CAST(business_date AS VARCHAR), count(*) FROM {TABLE} GROUP BY 1"
            ).fetchall()
        )


def _value(evaluation: dg.AssetCheckEvaluation, key: str) -> object:
    return evaluation.metadata[key].value


def test_a_range_run_records_every_check_for_each_day_with_that_days_figures(data_dir, warehouse):
    result = _run(data_dir, dg.DagsterInstance.ephemeral(), DAYS)
    assert result.success
    found = _by_day(result)
    assert {(name, day) for name, day in found if day is not None} == {(c, d) for c in CHECKS for d in DAYS}
    rows = _rows_per_day(warehouse)
    assert len({rows[d] for d in DAYS}) > 1  # the days differ, so a copy of the range's figure would show
    for day in DAYS:
        assert {_value(found[(c, day)], "business_dates") for c in CHECKS} == {day}
        for name in ("one_row_per_transaction", "null_rates", "value_ranges"):
            assert _value(found[(name, day)], "rows") == rows[day], (name, day)
        sampled = _value(found[("sampled_naive_recompute", day)], "rows_compared")
        assert sampled == min(rows[day], checks.day_sample_rows(len(DAYS)))
    # The range's own evaluation (what the alert sensor reads) carries the range's figures.
    assert _value(found[("null_rates", None)], "rows") == sum(rows[d] for d in DAYS)


def test_a_one_day_run_records_every_check_for_its_day(data_dir, warehouse):
    result = _run(data_dir, dg.DagsterInstance.ephemeral(), DAYS[:1])
    assert result.success
    found = _by_day(result)
    assert set(found) == {(c, DAYS[0]) for c in CHECKS}
    rows = _rows_per_day(warehouse)[DAYS[0]]
    assert _value(found[("sampled_naive_recompute", DAYS[0])], "rows_compared") == min(
        rows, checks.SAMPLE_ROWS
    )


def test_a_range_samples_each_day_and_at_least_as_many_rows_as_one_day():
    assert checks.day_sample_rows(1) == checks.SAMPLE_ROWS
    assert checks.day_sample_rows(3) * 3 >= checks.SAMPLE_ROWS
    assert checks.day_sample_rows(183) == checks.MIN_DAY_SAMPLE_ROWS


def _break(path: Path, day: str) -> None:
    """Three rows of `day` with a null and an out-of-range risk, a row lost, a count off by one."""
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            f"UPDATE {TABLE} SET card_avg_amount_7d = NULL, terminal_risk_7d = 1.5 WHERE transaction_id IN "
            f"(SELECT transaction_id FROM {TABLE} WHERE business_date = DATE '{day}' ORDER BY 1 LIMIT 3)"
        )
        conn.execute(
            f"DELETE FROM {TABLE} WHERE transaction_id = "
            f"(SELECT max(transaction_id) FROM {TABLE} WHERE business_date = DATE '{day}')"
        )
        conn.execute(
            f"UPDATE {TABLE} SET card_nb_tx_30d = card_nb_tx_30d + 1 WHERE business_date = DATE '{day}'"
        )


def test_a_broken_day_fails_its_own_checks_only_and_the_range_names_it(data_dir, warehouse, monkeypatch):
    monkeypatch.setattr(checks, "SAMPLE_ROWS", 6)
    monkeypatch.setattr(checks, "MIN_DAY_SAMPLE_ROWS", 1)  # 2 rows of each day: every day still sampled
    instance = dg.DagsterInstance.ephemeral()
    assert _run(data_dir, instance, DAYS).success
    _break(warehouse, DAYS[1])
    found = _by_day(_run(data_dir, instance, DAYS, checks_only=True))
    for name in CHECKS:
        assert {d: found[(name, d)].passed for d in DAYS} == {DAYS[0]: True, DAYS[1]: False, DAYS[2]: True}
        assert found[(name, None)].passed is False, name
    assert {_value(found[("sampled_naive_recompute", d)], "rows_compared") for d in DAYS} == {2}
    # Both sampled rows carry the broken count; a sampled row among the three broken ones adds its null
    # average and its out-of-range risk (the sample is random).
    mismatched = dict(
        part.rstrip(")").split(" (")
        for part in _value(found[("sampled_naive_recompute", DAYS[1])], "mismatched_columns").split(", ")
    )
    assert mismatched.pop("card_nb_tx_30d") == "2"
    assert set(mismatched) <= {"card_avg_amount_7d", "terminal_risk_7d"}
    assert mismatched.get("card_avg_amount_7d") == mismatched.get("terminal_risk_7d")
    assert _value(found[("null_rates", DAYS[1])], "columns_over_threshold") == "card_avg_amount_7d"
    assert _value(found[("value_ranges", DAYS[1])], "risks_are_shares") == 3
    assert _value(found[("one_row_per_transaction", DAYS[1])], "missing_transactions") == 1
    assert _value(found[("null_rates", None)], "failing_days") == DAYS[1]
    assert found[("one_row_per_transaction", DAYS[1])].blocking is True


def test_automation_holds_back_the_failing_days_downstream_only(data_dir, warehouse):
    @dg.asset(
        deps=[transaction_features],
        partitions_def=transaction_features.partitions_def,
        automation_condition=dg.AutomationCondition.all_deps_blocking_checks_passed(),
    )
    def downstream() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    assert _run(data_dir, instance, DAYS).success
    _break(warehouse, DAYS[1])
    assert not _run(data_dir, instance, DAYS, checks_only=True).success  # the blocking check failed
    defs = dg.Definitions(
        assets=[transaction_features, downstream],
        asset_checks=FEATURE_CHECKS,
        resources=build_resources(data_dir, TEST_PAN_KEY),
    )
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert set(evaluation.get_requested_partitions(downstream.key) or ()) == {DAYS[0], DAYS[2]}
