"""performance_labels_sensor: a labels rebuild recomputes the performance of the days it changed, and
only those (the asset end to end: test_monitoring_per_day.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.monitoring.sensors import performance_labels_sensor
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions
from fraud_assets_tests.test_sensors_lookback import DAYS, label_file, ranges


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def tick(instance, tmp_path: Path, cursor: str | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=stub_definitions(tmp_path))
    result = performance_labels_sensor(ctx)
    return (result if isinstance(result, list) else []), ctx.cursor


def test_new_labels_recompute_the_performance_of_the_days_they_label_and_of_the_day_that_matured(
    instance, tmp_path
):
    days = tuple(DAYS[:20])
    materialize_stub(instance, "monitoring/model_performance", partitions=days)
    # Reports of day 20 on transactions of days 18..19: those days (and the later ones, Card Precision
    # carrying their detections) changed; so did day 11, whose 8th day of reports this is (matured now).
    label_file(
        instance, first_report=DAYS[19], first_transaction=DAYS[17], last_transaction=DAYS[18], changed=2
    )
    requests, cursor = tick(instance, tmp_path)
    assert [r.job_name for r in requests] == ["performance_rebuild"]
    assert ranges(requests) == [(DAYS[19 - 8], DAYS[19])]
    assert (
        requests[0].tags["fraud_assets/performance_cause"] == f"labels changed: performance from {DAYS[11]}"
    )
    assert tick(instance, tmp_path, cursor)[0] == []


def test_labels_that_change_nothing_recompute_no_performance(instance, tmp_path):
    materialize_stub(instance, "monitoring/model_performance", partitions=tuple(DAYS[:5]))
    label_file(instance, first_report="", last_transaction="", changed=0)
    assert tick(instance, tmp_path)[0] == []


def test_new_labels_recompute_the_shadow_comparison_of_the_days_they_change_too(instance, tmp_path):
    """The shadow comparison is measured on labels like performance: its stale days are requested too,
    in the same runs (performance_rebuild selects both)."""
    materialize_stub(instance, "monitoring/model_performance", partitions=tuple(DAYS[:10]))
    materialize_stub(instance, "monitoring/shadow_comparison", partitions=tuple(DAYS[10:20]))
    label_file(
        instance, first_report=DAYS[19], first_transaction=DAYS[15], last_transaction=DAYS[15], changed=1
    )
    requests, _ = tick(instance, tmp_path)
    # From day 11 (min of the first labelled day and the day that matured): shadow days only.
    assert ranges(requests) == [(DAYS[11], DAYS[19])]
    from fraud_assets.definitions import defs

    job = defs.resolve_job_def("performance_rebuild")
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert selected == {"monitoring/model_performance", "monitoring/shadow_comparison"}
