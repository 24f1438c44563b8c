"""The landing sensor: which runs of the named jobs a landing zone produces (docs/landing-zone.md,
monitoring.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.raw.sensors import TAG_KIND, evaluate_landing, landing_sensor
from fraud_assets.lib.pan_leaks import pans_in
from fraud_assets.lib.runs import RANGE_END, RANGE_START
from fraud_assets.resources import LandingZone
from fraud_assets_tests.automation_stubs import STUB_ASSETS, materialize_stub, stub_definitions

DAY = "2018-04-01"


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "landing"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def land(root: Path, rel: str, content: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def tick(sensor, instance, landing: Path, cursor: str | None = None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=stub_definitions(landing),
        resources={"landing": LandingZone(root=str(landing))},
    )
    return sensor(ctx)


def selected(instance, landing: Path, request: dg.RunRequest) -> list[str]:
    """The assets the request runs: its asset selection, else its whole job."""
    if request.asset_selection is not None:
        return sorted(k.to_user_string() for k in request.asset_selection)
    job = stub_definitions(landing).resolve_job_def(request.job_name)
    return sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)


def ready_platform(instance) -> None:
    """A champion exists: a landed day goes all the way to scores."""
    materialize_stub(instance, "models/champion")


def test_new_authorization_file_runs_the_landed_day_job_for_its_day(landing, instance):
    ready_platform(instance)
    sha = land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"auth day 1")
    [req] = tick(landing_sensor, instance, landing).run_requests
    assert (req.job_name, req.partition_key, req.asset_selection) == ("landed_day", DAY, None)
    assert req.run_key.endswith(sha)
    job = stub_definitions(landing).resolve_job_def("landed_day")
    assert job.run_tags["dagster/priority"] == "10"  # ahead of automation's follow-ups and training
    assert {"raw/authorizations", "cleaned/transactions", "features/transaction_features"} <= set(
        selected(instance, landing, req)
    )
    assert "scoring/fraud_alerts" in selected(instance, landing, req)


def test_identical_resent_file_launches_no_run(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"auth day 1")
    first = tick(landing_sensor, instance, landing)
    land(landing, f"authorizations/2018-04-03/acq_a_{DAY}_resend.csv.gz", b"auth day 1")
    second = tick(landing_sensor, instance, landing, first.cursor)
    assert second.run_requests == []


def test_corrected_file_launches_a_run_for_its_day(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"auth day 1")
    first = tick(landing_sensor, instance, landing)
    sha = land(landing, f"authorizations/2018-04-03/acq_a_{DAY}_002.csv.gz", b"auth day 1 corrected")
    [req] = tick(landing_sensor, instance, landing, first.cursor).run_requests
    assert (req.partition_key, req.run_key) == (DAY, f"authorizations:{DAY}:{sha}")


def test_late_file_runs_for_its_business_date_not_its_landing_date(landing, instance):
    ready_platform(instance)
    land(landing, "authorizations/2018-04-20/acq_b_2018-04-02.jsonl.gz", b"late")
    [req] = tick(landing_sensor, instance, landing).run_requests
    assert req.partition_key == "2018-04-02"


def test_run_keys_survive_a_lost_cursor(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"auth day 1")
    once = tick(landing_sensor, instance, landing).run_requests
    again = tick(landing_sensor, instance, landing, cursor=None).run_requests
    assert [r.run_key for r in once] == [r.run_key for r in again]


def test_files_still_being_written_and_unrecognised_names_launch_nothing(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/.acq_a_{DAY}.csv.gz", b"partial")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz.tmp", b"partial")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.part", b"partial")
    land(landing, f"authorizations/{DAY}/notes.txt", b"hello")
    land(landing, f"authorizations/{DAY}/acq_z_{DAY}.csv", b"unknown feed")
    result = tick(landing_sensor, instance, landing)
    assert result.run_requests == []


def test_two_feeds_of_one_day_share_one_run(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    land(landing, f"authorizations/{DAY}/acq_b_{DAY}.jsonl.gz", b"b")
    [req] = tick(landing_sensor, instance, landing).run_requests
    assert req.partition_key == DAY


def test_consecutive_days_are_one_range_run_and_a_gap_splits_it(landing, instance):
    ready_platform(instance)
    for day in ("2018-04-01", "2018-04-02", "2018-04-03", "2018-04-05"):
        land(landing, f"authorizations/{day}/acq_a_{day}.csv.gz", day.encode())
    first, second = tick(landing_sensor, instance, landing).run_requests
    assert (first.tags[RANGE_START], first.tags[RANGE_END], first.partition_key) == (
        "2018-04-01",
        "2018-04-03",
        None,
    )
    assert second.partition_key == "2018-04-05"
    # Two dates joined by punctuation would read as a 16-digit card number to the deployment's PAN scan.
    assert first.tags["fraud_assets/business_date"] == "2018-04-01 to 2018-04-03"
    assert not pans_in(first.run_key)


def test_a_day_and_the_inputs_that_landed_with_it_go_in_one_run(landing, instance):
    """The daily case: FX rates, a merchants snapshot and chargebacks land with one day's authorisations.
    One run of the landed_day job loads the inputs, then takes the day to scores."""
    ready_platform(instance)
    land(landing, f"merchants/{DAY}/merchants_{DAY}.parquet", b"m")
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    first = tick(landing_sensor, instance, landing)
    [run] = first.run_requests
    assert (run.job_name, run.partition_key) == ("landed_day", DAY)
    assert {"raw/merchants", "cleaned/fx_rates", "cleaned/labels"} <= set(selected(instance, landing, run))
    assert run.tags[TAG_KIND] == "authorizations+chargebacks+reference"
    assert run.run_key.startswith(f"authorizations+chargebacks+reference:{DAY}:")
    assert tick(landing_sensor, instance, landing, first.cursor).run_requests == []


def test_inputs_that_landed_alone_run_the_inputs_job(landing, instance):
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"merchants/{DAY}/merchants_{DAY}.parquet", b"m")
    [run] = tick(landing_sensor, instance, landing).run_requests
    assert (run.job_name, run.partition_key, run.tags[TAG_KIND]) == ("landed_inputs", None, "reference")
    inputs = selected(instance, landing, run)
    assert {"raw/file_register", "raw/fx_rates", "cleaned/fx_rates", "cleaned/terminals"} <= set(inputs)
    assert not {"raw/authorizations", "cleaned/transactions"} & set(inputs)


def test_scores_are_left_to_automation_until_a_champion_exists(landing, instance):
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    [req] = tick(landing_sensor, instance, landing).run_requests
    keys = selected(instance, landing, req)
    assert "features/transaction_features" in keys
    assert not [k for k in keys if k.startswith("scoring/")]


def test_chargeback_files_update_labels_in_one_run(landing, instance):
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb1")
    land(landing, "chargebacks/2018-04-02/chargebacks_2018-04-02.csv", b"cb2")
    first = tick(landing_sensor, instance, landing)
    [req] = first.run_requests
    # monitoring/model_performance follows by automation (test_automation_policy)
    assert "cleaned/labels" in selected(instance, landing, req)
    assert (req.job_name, req.tags[TAG_KIND]) == ("landed_inputs", "chargebacks")
    land(landing, "chargebacks/2018-04-05/chargebacks_2018-04-02_resend.csv", b"cb2")
    assert tick(landing_sensor, instance, landing, first.cursor).run_requests == []


def sensor_at(instance, landing: Path, now: dt.datetime, cursor: str | None = None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=stub_definitions(landing))
    return evaluate_landing(ctx, LandingZone(root=str(landing)), now=now)


def test_a_day_not_over_yet_runs_once_its_partition_exists(landing, instance):
    ready_platform(instance)
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"early")
    early = sensor_at(instance, landing, dt.datetime(2018, 4, 2, 18, tzinfo=dt.UTC))
    assert early.run_requests == []
    [req] = sensor_at(
        instance, landing, dt.datetime(2018, 4, 3, 0, 5, tzinfo=dt.UTC), early.cursor
    ).run_requests
    assert req.partition_key == "2018-04-02"


def test_a_day_not_over_yet_is_not_read_until_it_is(landing, instance, monkeypatch):
    """A file dated ahead (years, a hostile producer) would otherwise be hashed on every tick until then."""
    from fraud_assets.lib import landing as ln

    read = []
    monkeypatch.setattr(ln, "sha256_fd", lambda fd: read.append(fd) or "0" * 64)
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-05.csv.gz", b"days ahead")
    assert sensor_at(instance, landing, dt.datetime(2018, 4, 3, 0, 5, tzinfo=dt.UTC)).run_requests == []
    assert read == []


def test_a_day_outside_the_platforms_days_launches_nothing(landing, instance):
    ready_platform(instance)
    land(landing, "authorizations/2017-04-02/acq_a_2017-04-02.csv.gz", b"before the first business date")
    assert tick(landing_sensor, instance, landing).run_requests == []


INPUT_FILES = {
    "cardholders": f"cardholders/{DAY}/cardholders_{DAY}.parquet",
    "merchants": f"merchants/{DAY}/merchants_{DAY}.parquet",
    "fx_rates": f"fx_rates/{DAY}/fx_rates_{DAY}.csv",
    "chargebacks": f"chargebacks/{DAY}/chargebacks_{DAY}.csv",
}
INPUT_ASSETS = {
    "cardholders": {"raw/cardholders", "cleaned/cards"},
    "merchants": {"raw/merchants", "cleaned/terminals"},
    "fx_rates": {"raw/fx_rates", "cleaned/fx_rates"},
    "chargebacks": {"raw/chargebacks"},
}


def _first_day_with_every_input(landing, instance, status: dg.DagsterRunStatus) -> dg.SensorResult:
    """Day 1 lands with a file of every input source; its run ends with `status` (run record with the
    sensor's run key), having built the inputs when it succeeded."""
    ready_platform(instance)
    for source, rel in INPUT_FILES.items():
        land(landing, rel, source.encode())
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"day 1")
    first = tick(landing_sensor, instance, landing)
    [run] = first.run_requests
    assert set().union(*INPUT_ASSETS.values()) <= set(selected(instance, landing, run))
    _run_with_key(instance, run.run_key, status)
    return first


def _run_with_key(instance, run_key: str, status: dg.DagsterRunStatus) -> None:
    """The run the daemon launches for `run_key`: a success materialises every input (really executed
    stub assets), any other status materialises nothing."""
    tags = {"dagster/run_key": run_key}
    if status == dg.DagsterRunStatus.SUCCESS:
        keys = {dg.AssetKey.from_user_string(k) for k in set().union(*INPUT_ASSETS.values())}
        assets = [a for a in STUB_ASSETS if a.key in keys]
        assert dg.materialize(assets, instance=instance, tags=tags).success
    else:
        run = dg.DagsterRun(job_name="landed_day", run_id=str(uuid.uuid4()), status=status, tags=tags)
        instance.add_run(run)


def test_a_day_leaves_out_the_inputs_of_sources_that_sent_nothing_since_their_last_build(landing, instance):
    first = _first_day_with_every_input(landing, instance, dg.DagsterRunStatus.SUCCESS)
    land(landing, "fx_rates/2018-04-02/fx_rates_2018-04-02.csv", b"fx 2")
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"day 2")
    [run] = tick(landing_sensor, instance, landing, first.cursor).run_requests
    keys = set(selected(instance, landing, run))
    assert {"raw/file_register", "raw/authorizations", "scoring/fraud_alerts"} <= keys
    assert INPUT_ASSETS["fx_rates"] | {"cleaned/labels"} <= keys  # new FX file; labels judge the new day
    assert not (INPUT_ASSETS["cardholders"] | INPUT_ASSETS["merchants"] | INPUT_ASSETS["chargebacks"]) & keys


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.STARTED])
def test_inputs_handed_to_a_run_that_failed_or_has_not_ended_are_built_by_the_next_day(
    landing, instance, status
):
    first = _first_day_with_every_input(landing, instance, status)
    materialize_stub(instance, *set().union(*INPUT_ASSETS.values()))  # built before, by earlier files
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"day 2")
    second = tick(landing_sensor, instance, landing, first.cursor)
    [run] = second.run_requests
    assert set().union(*INPUT_ASSETS.values()) <= set(selected(instance, landing, run))
    # Still owed, now to the second run: the third day leaves them out only once that one built them.
    _run_with_key(instance, run.run_key, status)
    land(landing, "authorizations/2018-04-03/acq_a_2018-04-03.csv.gz", b"day 3")
    third = tick(landing_sensor, instance, landing, second.cursor)
    [run] = third.run_requests
    assert set().union(*INPUT_ASSETS.values()) <= set(selected(instance, landing, run))
    _run_with_key(instance, run.run_key, dg.DagsterRunStatus.SUCCESS)
    land(landing, "authorizations/2018-04-04/acq_a_2018-04-04.csv.gz", b"day 4")
    [fourth] = tick(landing_sensor, instance, landing, third.cursor).run_requests
    assert not set().union(*INPUT_ASSETS.values()) & set(selected(instance, landing, fourth))


def test_inputs_owed_to_a_run_key_dagster_had_already_used_are_built_by_the_next_day(landing, instance):
    """A day re-sent as content an earlier run already handled gets that run's key: Dagster launches
    nothing, and that old run (which succeeded) never saw the input files owed since."""
    first = _first_day_with_every_input(landing, instance, dg.DagsterRunStatus.FAILURE)
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"day 2")
    [old] = tick(landing_sensor, instance, landing, first.cursor).run_requests
    _run_with_key(instance, old.run_key, dg.DagsterRunStatus.SUCCESS)  # before the owed key is recorded
    second = tick(landing_sensor, instance, landing, first.cursor)  # the same request again
    assert second.run_requests[0].run_key == old.run_key
    land(landing, "authorizations/2018-04-03/acq_a_2018-04-03.csv.gz", b"day 3")
    [third] = tick(landing_sensor, instance, landing, second.cursor).run_requests
    assert set().union(*INPUT_ASSETS.values()) <= set(selected(instance, landing, third))


def test_a_cursor_from_before_owed_inputs_builds_every_input_once(landing, instance):
    first = _first_day_with_every_input(landing, instance, dg.DagsterRunStatus.SUCCESS)
    old_cursor = json.dumps({k: v for k, v in json.loads(first.cursor).items() if k != "owed"})
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"day 2")
    [run] = tick(landing_sensor, instance, landing, old_cursor).run_requests
    assert set().union(*INPUT_ASSETS.values()) <= set(selected(instance, landing, run))


def test_inputs_never_built_are_built_by_a_day_whatever_the_cursor_says(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"day 1")
    [run] = tick(landing_sensor, instance, landing).run_requests
    assert run.asset_selection is None  # the whole job
