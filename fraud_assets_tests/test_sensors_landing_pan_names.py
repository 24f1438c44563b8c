"""A landed file whose name carries a card number (issue 13, finding 3, the sensor's side): the landing
sensor's cursor, run tags, run keys and log lines hold the name masked."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from fraud_assets.defs.raw.sensors import TAG_FILES, landing_sensor
from fraud_assets.lib.landing import LandingCursor
from fraud_assets.lib.pan_scan import holds_any
from fraud_assets.resources import LandingZone
from fraud_assets_tests.automation_stubs import stub_definitions

PAN = "4539148803436467"
DAY = "2018-04-01"
NAME = f"acq_a_{DAY}_{PAN}.csv.gz"


@pytest.fixture
def landing(tmp_path):
    root = tmp_path / "data" / "landing"
    (root / "authorizations" / DAY).mkdir(parents=True)
    return root


def tick(landing, instance, cursor=None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=stub_definitions(landing),
        resources={"landing": LandingZone(root=str(landing))},
    )
    return landing_sensor(ctx)


def everything_the_sensor_wrote(result: dg.SensorResult) -> list[str]:
    texts = [result.cursor or ""]
    for request in result.run_requests or []:
        texts += [request.run_key or "", json.dumps(request.tags)]
    return texts


def test_the_cursor_tags_and_run_keys_hold_a_pan_bearing_name_masked(landing):
    (landing / "authorizations" / DAY / NAME).write_bytes(b"one day of authorisations")
    result = tick(landing, dg.DagsterInstance.ephemeral())
    [request] = result.run_requests
    assert "453914******6467" in request.tags[TAG_FILES]
    assert not [t for t in everything_the_sensor_wrote(result) if holds_any(t, {PAN})]


@pytest.mark.parametrize(
    "written",
    ["".join(f"&#{ord(c)};" for c in PAN), "".join(f"%25{ord(c):02X}" for c in PAN)],
    ids=["html-references", "url-encoded-twice"],
)
def test_a_name_holding_an_escaped_pan_is_masked_too(landing, written):
    (landing / "authorizations" / DAY / f"acq_a_{DAY}_{written}.csv.gz").write_bytes(b"authorisations")
    result = tick(landing, dg.DagsterInstance.ephemeral())
    [request] = result.run_requests
    assert "453914******6467" in request.tags[TAG_FILES]
    assert not [t for t in everything_the_sensor_wrote(result) if holds_any(t, {PAN})]


def test_the_log_line_of_a_resent_file_holds_its_name_masked(landing, capfd):
    instance = dg.DagsterInstance.ephemeral()
    (landing / "authorizations" / DAY / NAME).write_bytes(b"same bytes")
    first = tick(landing, instance)
    capfd.readouterr()
    resent = f"acq_a_{DAY}_resend_{PAN}.csv.gz"
    (landing / "authorizations" / DAY / resent).write_bytes(b"same bytes")
    second = tick(landing, instance, first.cursor)
    logged = capfd.readouterr().err
    assert "identical content already handled" in logged
    assert not holds_any(logged, {PAN})
    assert not holds_any(second.cursor, {PAN})


def test_a_file_known_under_its_masked_name_is_not_handled_again(landing):
    instance = dg.DagsterInstance.ephemeral()
    (landing / "authorizations" / DAY / NAME).write_bytes(b"one day")
    first = tick(landing, instance)
    again = tick(landing, instance, first.cursor)
    assert not again.run_requests


def test_a_stored_cursor_with_a_clear_name_is_rekeyed_masked():
    old = json.dumps({"v": 1, "files": {f"authorizations/{DAY}/{NAME}": [1, 2, "ab"]}})
    assert not holds_any(LandingCursor.parse(old).serialize(), {PAN})
