"""Partitioned blocking checks in a partition-range run (single-run backfill, the lookback rebuild).

Dagster records such a run's check evaluation once, without a partition, and the per-partition check
status that automation reads (`all_deps_blocking_checks_passed`) ignores it: every day of the range
would stay unchecked and its downstream assets would wait for good. `per_partition` records the range's
verdict for each day; checks declared with `partitioned_asset_check` go through it. These tests run real
materialisations in a real (ephemeral) instance and evaluate a real automation condition on top.
"""

import dagster as dg
import pytest

from fraud_assets.defs.monitoring.alerts import check_failure_alerts
from fraud_assets.lib.contracts import EVALUATED_OVER, partitioned_asset_check
from fraud_assets.lib.partitions import business_date_partitions as P

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]
RANGE = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}


def _graph(passes: bool, record_per_partition: bool) -> list:
    @dg.asset(partitions_def=P, backfill_policy=dg.BackfillPolicy.single_run())
    def upstream() -> None:
        return None

    declare = partitioned_asset_check if record_per_partition else dg.asset_check

    @declare(asset=upstream, name="complete", blocking=True, partitions_def=P)
    def complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=passes, metadata={"days": len(context.partition_keys)})

    @dg.asset(
        deps=[upstream],
        partitions_def=P,
        automation_condition=dg.AutomationCondition.all_deps_blocking_checks_passed(),
    )
    def downstream() -> None:
        return None

    return [upstream, complete, downstream]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    return inst


def _range_run(instance: dg.DagsterInstance, graph: list) -> "dg.ExecuteInProcessResult":
    upstream, complete, _ = graph
    return dg.materialize([upstream, complete], instance=instance, tags=RANGE, raise_on_error=False)


def _cleared(instance: dg.DagsterInstance, graph: list) -> set[str]:
    """The days automation would let downstream run for: their blocking check passed."""
    result = dg.evaluate_automation_conditions(defs=graph, instance=instance)
    subset = result.get_requested_partitions(dg.AssetKey("downstream"))
    return set(subset) if subset else set()


def test_a_passing_range_run_clears_every_day_of_the_range(instance):
    graph = _graph(passes=True, record_per_partition=True)
    result = _range_run(instance, graph)
    assert result.success
    copies = [e for e in result.get_asset_check_evaluations() if e.partition]
    assert sorted(e.partition for e in copies) == DAYS
    assert all(e.metadata[EVALUATED_OVER].value == f"{DAYS[0]}..{DAYS[-1]} (3 partitions)" for e in copies)
    assert _cleared(instance, graph) == set(DAYS)


def test_without_the_per_day_record_dagster_leaves_the_range_unchecked(instance):
    # Why per_partition exists (a plain @dg.asset_check); if a Dagster upgrade records range evaluations
    # per partition itself, this test fails and the workaround can go.
    graph = _graph(passes=True, record_per_partition=False)
    assert _range_run(instance, graph).success
    assert _cleared(instance, graph) == set()


def test_a_failing_range_run_holds_back_every_day_and_alerts_once(instance):
    graph = _graph(passes=False, record_per_partition=True)
    result = _range_run(instance, graph)
    assert not result.success  # blocking
    assert _cleared(instance, graph) == set()
    alerts, _ = check_failure_alerts(instance, None)
    assert [(a.subject, a.details["partition"]) for a in alerts] == [("upstream:complete", "")]


def test_a_single_day_run_is_recorded_by_dagster_alone(instance):
    graph = _graph(passes=True, record_per_partition=True)
    upstream, complete, _ = graph
    result = dg.materialize([upstream, complete], instance=instance, partition_key=DAYS[1])
    assert [e.partition for e in result.get_asset_check_evaluations()] == [DAYS[1]]
    assert _cleared(instance, graph) == {DAYS[1]}


def test_each_days_record_names_that_days_latest_materialisation(instance):
    # What lib/dagster_compat relies on: latest_materialization_ids finds each day's latest materialisation,
    # and the target check_target names is the one Dagster stores.
    graph = _graph(passes=True, record_per_partition=True)
    result = _range_run(instance, graph)
    latest = {
        r.partition_key: r.storage_id
        for r in instance.fetch_materializations(dg.AssetKey("upstream"), limit=10).records
    }
    copies = [e for e in result.get_asset_check_evaluations() if e.partition]
    assert {e.partition: e.target_materialization_data.storage_id for e in copies} == latest
