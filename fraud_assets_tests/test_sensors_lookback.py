"""feature_lookback_sensor: a day cleaned after later days' features rebuilds those features."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.automation.lookback import (
    RANGE_END,
    RANGE_START,
    LookbackCursor,
    feature_lookback_sensor,
)
from fraud_assets.defs.cleaned.assets import CHANGED_FIRST_REPORT, CHANGED_LABELS, CHANGED_LAST_TRANSACTION
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

START = dt.date(2018, 4, 1)
DAYS = [(START + dt.timedelta(days=i)).isoformat() for i in range(LOOKBACK_DAYS + 3)]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    return inst


def tick(instance, tmp_path: Path, cursor: str | None = None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=stub_definitions(tmp_path))
    result = feature_lookback_sensor(ctx)
    requests = result if isinstance(result, list) else []
    return requests, ctx.cursor


def ranges(requests) -> list[tuple[str, str]]:
    return [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests]


def land_in_order(instance, days) -> None:
    for day in days:
        materialize_stub(instance, "cleaned/transactions", "features/transaction_features", partitions=(day,))


def test_days_cleaned_in_order_request_nothing(instance, tmp_path):
    land_in_order(instance, DAYS[:5])
    requests, cursor = tick(instance, tmp_path)
    assert requests == []
    assert cursor  # read up to the newest cleaned day


def test_a_day_cleaned_after_the_next_days_features_rebuilds_them(instance, tmp_path):
    # Days 2 and 3 ran ahead of day 1 (landed together, concurrent runs): their windows missed day 1.
    land_in_order(instance, DAYS[1:3])
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[0],))
    requests, cursor = tick(instance, tmp_path)
    assert ranges(requests) == [(DAYS[1], DAYS[2])]
    [req] = requests
    assert [k.to_user_string() for k in req.asset_selection] == ["features/transaction_features"]
    assert req.tags["fraud_assets/lookback_cause"] == f"cleaned after: {DAYS[0]}"
    # Handled: the next tick asks again only if something new is cleaned.
    assert tick(instance, tmp_path, cursor)[0] == []


def test_a_corrected_day_rebuilds_only_the_days_whose_lookback_holds_it(instance, tmp_path):
    land_in_order(instance, DAYS)
    _, cursor = tick(instance, tmp_path)
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[1],))  # a corrected file for day 2
    requests, _ = tick(instance, tmp_path, cursor)
    # Day 2 itself is rebuilt by its own run; days 3 .. 2 + lookback are stale; later days are not.
    assert ranges(requests) == [(DAYS[2], DAYS[1 + LOOKBACK_DAYS])]


def test_a_day_without_features_splits_the_range(instance, tmp_path):
    land_in_order(instance, DAYS[1:3])
    land_in_order(instance, DAYS[4:6])
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[3],))  # still running: no features
    materialize_stub(instance, "cleaned/transactions", partitions=(DAYS[0],))
    requests, _ = tick(instance, tmp_path)
    assert ranges(requests) == [(DAYS[1], DAYS[2]), (DAYS[4], DAYS[5])]


def label_file(instance, first_report: str, last_transaction: str, changed: int = 3) -> None:
    """A cleaned/labels materialisation whose metadata says which labels it changed (as the asset writes)."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["cleaned", "labels"]),
            metadata={
                CHANGED_LABELS: changed,
                CHANGED_FIRST_REPORT: first_report,
                CHANGED_LAST_TRANSACTION: last_transaction,
            },
        )
    )


def test_a_late_chargeback_file_rebuilds_the_days_featured_without_its_labels(instance, tmp_path):
    land_in_order(instance, DAYS)
    _, cursor = tick(instance, tmp_path)
    # Reports of day 5 on transactions of days 1..3 arrive after every day was featured: days from the
    # report on, up to the lookback after the newest labelled transaction, used fewer labels than known now.
    label_file(instance, first_report=DAYS[4], last_transaction=DAYS[2])
    requests, cursor = tick(instance, tmp_path, cursor)
    assert ranges(requests) == [(DAYS[4], DAYS[2 + LOOKBACK_DAYS])]
    assert requests[0].tags["fraud_assets/lookback_cause"] == f"labels reported from {DAYS[4]}"
    assert tick(instance, tmp_path, cursor)[0] == []


def test_labels_loaded_before_the_days_they_concern_request_nothing(instance, tmp_path):
    # Steady state: a day's chargebacks are loaded in its own run, before its features.
    land_in_order(instance, DAYS[:3])
    label_file(instance, first_report=DAYS[3], last_transaction=DAYS[3])
    land_in_order(instance, DAYS[3:5])
    # A rebuild that changed no label (the same files re-read) says so and requests nothing either.
    label_file(instance, first_report="", last_transaction="", changed=0)
    assert tick(instance, tmp_path)[0] == []


def test_the_cursor_of_the_previous_version_is_read(instance, tmp_path):
    land_in_order(instance, DAYS[1:3])
    _, cursor = tick(instance, tmp_path)
    newest = LookbackCursor.parse(cursor).cleaned
    # The single storage id earlier versions stored: nothing before it is read again.
    assert tick(instance, tmp_path, str(newest))[0] == []
    assert LookbackCursor.parse(str(newest)) == LookbackCursor(cleaned=newest, labels=newest)
