"""label_lookback_sensor: a late chargeback file rebuilds the features computed without its labels.

(A day cleaned again after later days' features needs no sensor: the lookback over cleaned transactions
is a partition mapping automation follows, test_automation_policy.py.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.cleaned.assets import (
    CHANGED_FIRST_REPORT,
    CHANGED_FIRST_TRANSACTION,
    CHANGED_LABELS,
    CHANGED_LAST_TRANSACTION,
    CHANGED_REFERENCE_FIRST,
    CHANGED_REFERENCE_LAST,
)
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets.defs.features.sensors import label_lookback_sensor
from fraud_assets.lib.runs import RANGE_END, RANGE_START
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

START = dt.date(2018, 4, 1)
DAYS = [(START + dt.timedelta(days=i)).isoformat() for i in range(LOOKBACK_DAYS + 3)]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def tick(instance, tmp_path: Path, cursor: str | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=stub_definitions(tmp_path))
    result = label_lookback_sensor(ctx)
    requests = result if isinstance(result, list) else []
    return requests, ctx.cursor


def ranges(requests) -> list[tuple[str, str]]:
    return [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests]


def featured(instance, days) -> None:
    days = tuple(days)
    materialize_stub(instance, "cleaned/transactions", "features/transaction_features", partitions=days)


def label_file(
    instance, first_report: str, last_transaction: str, changed: int = 3, first_transaction: str | None = None
) -> None:
    """A cleaned/labels materialisation whose metadata says which labels it changed (as the asset writes)."""
    first = {CHANGED_FIRST_TRANSACTION: first_transaction} if first_transaction else {}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["cleaned", "labels"]),
            metadata={
                CHANGED_LABELS: changed,
                CHANGED_FIRST_REPORT: first_report,
                CHANGED_LAST_TRANSACTION: last_transaction,
                **first,
            },
        )
    )


def test_a_late_chargeback_file_rebuilds_the_days_featured_without_its_labels(instance, tmp_path):
    featured(instance, DAYS)
    # Reports of day 5 on transactions of days 1..3 arrive after every day was featured: days from the
    # report on, up to the lookback after the newest labelled transaction, used fewer labels than known now.
    label_file(instance, first_report=DAYS[4], last_transaction=DAYS[2])
    requests, cursor = tick(instance, tmp_path)
    assert ranges(requests) == [(DAYS[4], DAYS[2 + LOOKBACK_DAYS])]
    assert {r.job_name for r in requests} == {"features_rebuild"}
    assert requests[0].tags["fraud_assets/lookback_cause"] == f"labels reported from {DAYS[4]}"
    assert tick(instance, tmp_path, cursor)[0] == []


def test_labels_loaded_before_the_days_they_concern_request_nothing(instance, tmp_path):
    # Steady state: a day's chargebacks are loaded in its own run, before its features.
    featured(instance, DAYS[:3])
    label_file(instance, first_report=DAYS[3], last_transaction=DAYS[3])
    featured(instance, DAYS[3:5])
    # A rebuild that changed no label (the same files re-read) says so and requests nothing either.
    label_file(instance, first_report="", last_transaction="", changed=0)
    assert tick(instance, tmp_path)[0] == []


def test_a_day_never_featured_splits_the_range(instance, tmp_path):
    featured(instance, DAYS[:3])
    featured(instance, DAYS[4:8])
    label_file(instance, first_report=DAYS[1], last_transaction=DAYS[1])
    requests, _ = tick(instance, tmp_path)
    assert ranges(requests) == [(DAYS[1], DAYS[2]), (DAYS[4], DAYS[7])]


def test_a_snapshot_that_changes_featured_days_reference_data_rebuilds_them_and_their_lookback(
    instance, tmp_path
):
    """A cleaned/terminals (or cleaned/cards) materialisation says which transaction dates read other
    values now: those days and the days whose lookback reads them are rebuilt; an old numeric cursor (the
    labels' storage id) is still honoured."""
    featured(instance, DAYS)
    label_file(instance, DAYS[0], DAYS[0])
    _, cursor = tick(instance, tmp_path)
    labels_only = cursor.split(";")[0].split("=")[1]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["cleaned", "terminals"]),
            metadata={CHANGED_REFERENCE_FIRST: DAYS[3], CHANGED_REFERENCE_LAST: DAYS[4]},
        )
    )
    requests, _ = tick(instance, tmp_path, labels_only)  # the cursor this sensor kept before
    assert ranges(requests) == [(DAYS[3], DAYS[-1])]  # DAYS[4] + LOOKBACK_DAYS is past the last day
    assert requests[0].tags["fraud_assets/lookback_cause"] == f"terminals changed from {DAYS[3]}"
