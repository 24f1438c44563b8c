"""The declarative automation policy (fraud_assets/defs/policy.py): what runs without a click."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.policy import apply_policies
from fraud_assets_tests.automation_stubs import (
    FAILING_CONTRACT_DAYS,
    materialize_stub,
    run_stub,
    stub_definitions,
)

DAYS = ["2018-04-01", "2018-04-02", "2018-04-03"]
K = dg.AssetKey.from_user_string
BAD_DAY = next(iter(FAILING_CONTRACT_DAYS))


@pytest.fixture
def defs(tmp_path: Path) -> dg.Definitions:
    return stub_definitions(tmp_path / "landing")


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    return inst


def requested(result, key: str) -> set[str | None]:
    subset = result.get_requested_partitions(K(key))
    return set(subset) if subset else set()


def test_every_layer_gets_its_condition_and_freshness_from_the_policy(defs):
    graph = defs.get_repository_def().asset_graph
    labels = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        labels[key.to_user_string()] = node.automation_condition and node.automation_condition.get_label()
        assert node.freshness_policy is not None, key
    assert labels["raw/authorizations"] is None  # raw runs when files land (sensors)
    assert labels["cleaned/transactions"] == "fill_and_follow"
    assert labels["features/transaction_features"] == "fill_and_follow_lookback"
    assert labels["models/champion"] is None  # training is requested, never automatic per day
    assert labels["scoring/transaction_scores"] == "score_when_champion"
    assert labels["monitoring/feature_drift"] == "follow_upstream_inputs"


def test_policy_overrides_a_condition_declared_by_a_layer():
    @dg.asset(
        key=["models", "champion"], group_name="models", automation_condition=dg.AutomationCondition.eager()
    )
    def champion(): ...

    mapped = apply_policies(dg.Definitions(assets=[champion]))
    assert mapped.get_repository_def().asset_graph.get(champion.key).automation_condition is None


def test_days_landed_before_automation_started_are_still_cleaned(defs, instance):
    # Raw partitions exist before the automation sensor's first tick (a seeded landing zone at `make run`).
    for day in DAYS:
        assert run_stub(instance, "raw/authorizations", day)
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(result, "cleaned/transactions") == set(DAYS)


def test_a_day_whose_raw_contract_check_failed_is_not_cleaned(defs, instance):
    # Materialised, but its blocking contract check failed (the step fails; later steps of that run skip).
    assert not run_stub(instance, "raw/authorizations", BAD_DAY)
    assert run_stub(instance, "raw/authorizations", DAYS[1])
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(result, "cleaned/transactions") == {DAYS[1]}


def test_scores_wait_for_a_champion_then_every_featured_day_is_scored(defs, instance):
    materialize_stub(instance, "features/transaction_features", partitions=tuple(DAYS))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(first, "scoring/transaction_scores") == set()
    materialize_stub(instance, "models/champion")
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "scoring/transaction_scores") == set(DAYS)


def test_a_new_champion_does_not_rescore_history(defs, instance):
    materialize_stub(
        instance, "features/transaction_features", "scoring/transaction_scores", partitions=tuple(DAYS)
    )
    materialize_stub(instance, "models/champion")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "models/champion")
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "scoring/transaction_scores") == set()


def test_new_features_for_a_day_rescore_only_that_day(defs, instance):
    materialize_stub(
        instance, "features/transaction_features", "scoring/transaction_scores", partitions=tuple(DAYS)
    )
    materialize_stub(instance, "models/champion")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "features/transaction_features", partitions=(DAYS[1],))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "scoring/transaction_scores") == {DAYS[1]}


def test_training_is_never_requested_by_automation(defs, instance):
    materialize_stub(instance, "features/transaction_features", partitions=tuple(DAYS))
    materialize_stub(instance, "cleaned/labels")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not any(requested(result, k) for k in ("models/training_set", "models/champion"))


def test_monitoring_follows_new_scores(defs, instance):
    materialize_stub(
        instance,
        "cleaned/transactions",
        "features/transaction_features",
        "scoring/transaction_scores",
        partitions=tuple(DAYS),
    )
    materialize_stub(instance, "models/champion", "models/training_set", "cleaned/labels")
    materialize_stub(
        instance, "monitoring/feature_drift", "monitoring/model_performance", partitions=tuple(DAYS)
    )
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "scoring/transaction_scores", partitions=(DAYS[2],))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "monitoring/feature_drift") == {DAYS[2]}  # that day's drift
    assert requested(second, "monitoring/model_performance") == {DAYS[2]}  # and performance


def test_drift_waits_for_the_days_scores_and_runs_once_with_them(defs, instance):
    """A training window exists before the champion that scores the days: drift measured then would run
    again once the scores come (two runs per day, the first without the score's PSI). It waits, and is
    requested in the same tick as the scores, so one run measures both."""
    materialize_stub(instance, "models/training_set", "cleaned/labels")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "features/transaction_features", partitions=tuple(DAYS))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "monitoring/feature_drift") == set()  # no scores, none coming yet
    materialize_stub(instance, "models/champion")
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert requested(third, "scoring/transaction_scores") == set(DAYS)
    assert requested(third, "monitoring/feature_drift") == set(DAYS)  # with them
    materialize_stub(
        instance, "scoring/transaction_scores", "monitoring/feature_drift", partitions=tuple(DAYS)
    )
    fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
    assert requested(fourth, "monitoring/feature_drift") == set()


def test_performance_waits_for_a_champion_then_runs_with_the_first_scores(defs, instance):
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "cleaned/labels")  # labels land with the first days, before any model
    materialize_stub(
        instance, "cleaned/transactions", "features/transaction_features", partitions=tuple(DAYS)
    )
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "monitoring/model_performance") == set()
    materialize_stub(instance, "models/training_set", "models/champion")
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert requested(third, "scoring/transaction_scores") == set(DAYS)
    assert requested(third, "monitoring/model_performance") == set(DAYS)  # with the scores, once


def test_new_labels_do_not_rebuild_every_past_day(defs, instance):
    materialize_stub(
        instance, "features/transaction_features", "scoring/transaction_scores", partitions=tuple(DAYS)
    )
    materialize_stub(instance, "cleaned/labels", "models/champion")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "cleaned/labels")  # a chargeback file arrived
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "features/transaction_features") == set()


def test_snapshot_reference_data_is_not_expected_daily(defs):
    graph = defs.get_repository_def().asset_graph
    fail = {
        k.to_user_string(): graph.get(k).freshness_policy.fail_window.to_timedelta()
        for k in graph.get_all_asset_keys()
    }
    assert fail["raw/merchants"] == fail["cleaned/terminals"] == timedelta(days=8)
    assert fail["raw/authorizations"] == fail["cleaned/fx_rates"] == timedelta(hours=26)


def test_new_labels_do_not_recompute_every_days_performance(defs, instance):
    """A chargeback file changes the figures of the days it labels (and the days after them), not all:
    label_lookback_sensor requests those (test_sensors_lookback.py), automation none."""
    materialize_stub(
        instance, "features/transaction_features", "scoring/transaction_scores", partitions=tuple(DAYS)
    )
    materialize_stub(instance, "cleaned/labels", "models/champion")
    materialize_stub(instance, "monitoring/model_performance", partitions=tuple(DAYS))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "cleaned/labels")  # a chargeback file arrived
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "monitoring/model_performance") == set()


def test_a_day_cleaned_again_rebuilds_the_features_whose_lookback_holds_it(defs, instance):
    """The lookback is declared (TimeWindowPartitionMapping): no sensor, automation follows it."""
    days = [f"2018-05-{d:02d}" for d in range(1, 11)]
    every = tuple(days)
    materialize_stub(instance, "raw/authorizations", "cleaned/transactions", partitions=every)
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels", "cleaned/cards")
    materialize_stub(instance, "features/transaction_features", partitions=every)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(first, "features/transaction_features") == set()
    materialize_stub(instance, "cleaned/transactions", partitions=(days[4],))  # a corrected file for day 5
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "features/transaction_features") == set()  # settles one tick
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert requested(third, "features/transaction_features") == set(days[4:])


def test_a_run_that_wrote_inputs_and_features_together_is_not_followed_by_a_rebuild(defs, instance):
    """The landing run writes a day's cleaned rows and its features. A tick that saw the cleaned update
    but read the features before their materialisations were all stored requested them again (Dagster
    reads a condition's parts at different moments); the features wait one tick after their inputs
    changed, when the run's writes are all visible."""
    days = tuple(f"2018-05-{d:02d}" for d in range(1, 4))
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels", "cleaned/cards")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(instance, "raw/authorizations", "cleaned/transactions", partitions=days)
    # This tick sees the cleaned rows, but (as in the race) not yet the features the same run writes.
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "features/transaction_features") == set()
    materialize_stub(instance, "features/transaction_features", partitions=days)
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert requested(third, "features/transaction_features") == set()


def test_a_day_with_no_authorisations_does_not_hold_back_the_features_after_it(defs, instance):
    days = ["2018-05-01", "2018-05-03"]  # 2018-05-02 never came
    materialize_stub(instance, "raw/authorizations", "cleaned/transactions", partitions=tuple(days))
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels", "cleaned/cards")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(result, "features/transaction_features") == set(days)


def test_every_day_of_a_burst_gets_its_drift_and_a_new_training_window_recomputes_none(defs, instance):
    materialize_stub(instance, "models/champion", "models/training_set")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_stub(
        instance, "features/transaction_features", "scoring/transaction_scores", partitions=tuple(DAYS)
    )
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "monitoring/feature_drift") == set(DAYS)
    materialize_stub(instance, "monitoring/feature_drift", partitions=tuple(DAYS))
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    materialize_stub(instance, "models/training_set")  # a retraining
    fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
    assert requested(fourth, "monitoring/feature_drift") == set()


def test_the_stub_graph_resolves_every_job_of_the_control_path(tmp_path):
    """The stubs stand in for the real graph under the real jobs and sensors: a job selecting an asset the
    stubs lack would fail the machinery end-to-end test's code location; caught here in seconds."""
    jobs = {j.name for j in stub_definitions(tmp_path / "landing").resolve_all_job_defs()}
    assert {"landed_day", "performance_rebuild", "monitoring_job"} <= jobs
