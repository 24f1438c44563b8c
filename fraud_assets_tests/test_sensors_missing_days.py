"""missing_day_sensor: a business day with no authorisation file after its deadline is an alert (the
missing partition of raw/authorizations), sent once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.raw.sensors import evaluate_landing, evaluate_missing_days, overdue_days
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.resources import LandingZone
from fraud_assets_tests.automation_stubs import materialize_stub

# The test world's partitions start 2018-04-01 (conftest.py).
AFTER_THE_THIRD = dt.datetime(2018, 4, 4, 7, tzinfo=dt.UTC)  # 2018-04-03's deadline (06:00) has passed


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "landing").mkdir()
    return tmp_path


def land_day(data_dir: Path, day: str) -> None:
    folder = data_dir / "landing" / "authorizations" / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"acq_a_{day}.csv").write_text("x")


def tick(instance, data_dir: Path, now: dt.datetime, cursor: str | None = None):
    sink = AlertSink(data_dir=str(data_dir))
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    evaluate_missing_days(ctx, LandingZone(root=str(data_dir / "landing")), sink, now=now)
    alerts = [a for a in sink.read_outbox() if a["kind"] == "missing_business_day"]
    return alerts, ctx.cursor


def test_a_day_is_overdue_only_after_its_deadline():
    days = ["2018-04-01", "2018-04-02"]
    before = dt.datetime(2018, 4, 3, 5, 59, tzinfo=dt.UTC)
    assert overdue_days(days, before, dt.timedelta(hours=6)) == ["2018-04-01"]
    assert overdue_days(days, before + dt.timedelta(minutes=1), dt.timedelta(hours=6)) == days


def test_a_day_without_an_authorisation_file_raises_one_alert(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    land_day(data_dir, "2018-04-01")
    land_day(data_dir, "2018-04-03")
    alerts, cursor = tick(instance, data_dir, AFTER_THE_THIRD)
    [alert] = alerts
    assert alert["severity"] == "ERROR"
    assert alert["subject"] == "raw/authorizations"
    assert json.loads(alert["details"])["days"] == ["2018-04-02"]
    # Still missing on the next tick: not alerted again.
    again, _ = tick(instance, data_dir, AFTER_THE_THIRD + dt.timedelta(minutes=1), cursor)
    assert len(again) == 1


def test_the_deadline_is_the_configured_number_of_hours_after_the_day(data_dir, monkeypatch):
    monkeypatch.setenv("FRAUD_AUTHORIZATIONS_DEADLINE_HOURS", "48")
    instance = dg.DagsterInstance.ephemeral()
    land_day(data_dir, "2018-04-01")
    land_day(data_dir, "2018-04-03")
    early, _ = tick(instance, data_dir, AFTER_THE_THIRD)  # past the default 6 h, not past 48 h
    assert early == []
    [alert], _ = tick(instance, data_dir, dt.datetime(2018, 4, 5, tzinfo=dt.UTC))  # 2018-04-02 + 48 h
    details = json.loads(alert["details"])
    assert (details["days"], details["deadline_hours"]) == (["2018-04-02"], 48)


def test_a_day_already_ingested_is_not_missing_when_its_file_is_archived(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    materialize_stub(instance, "raw/authorizations", partitions=("2018-04-01", "2018-04-02"))
    land_day(data_dir, "2018-04-03")
    alerts, _ = tick(instance, data_dir, AFTER_THE_THIRD)
    assert alerts == []


def test_nothing_is_missing_before_the_deadline(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    land_day(data_dir, "2018-04-01")
    alerts, _ = tick(instance, data_dir, dt.datetime(2018, 4, 3, 5, tzinfo=dt.UTC))
    assert alerts == []


def test_a_missing_landing_zone_is_named_by_the_alert_and_the_landing_sensor(data_dir):
    """The landing volume unmounted: the engineer is told the folder is gone, not only that no file came."""
    instance = dg.DagsterInstance.ephemeral()
    (data_dir / "landing").rmdir()
    [alert], _ = tick(instance, data_dir, AFTER_THE_THIRD)
    assert f"the landing zone {data_dir / 'landing'} does not exist" in alert["message"]
    landing = LandingZone(root=str(data_dir / "landing"))
    result = evaluate_landing(dg.build_sensor_context(instance=instance), landing, now=AFTER_THE_THIRD)
    assert f"the landing zone {data_dir / 'landing'} does not exist" in result.skip_reason.skip_message
