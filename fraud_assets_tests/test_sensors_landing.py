"""Landing and label sensors: which runs a landing zone produces (docs/landing-zone.md, monitoring.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.automation.sensors import TAG_KIND, label_sensor, landing_sensor
from fraud_assets.resources import LandingZone
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

DAY = "2018-04-01"
DAILY_CHAIN = [
    "raw/file_register",
    "raw/authorizations",
    "cleaned/transactions",
    "features/transaction_features",
    "scoring/transaction_scores",
    "scoring/fraud_alerts",
]
REFERENCE = ["raw/merchants", "raw/fx_rates", "cleaned/terminals", "cleaned/fx_rates"]


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


def keys(request: dg.RunRequest) -> list[str]:
    return [k.to_user_string() for k in request.asset_selection]


def ready_platform(instance) -> None:
    """Reference data and a champion exist: a landed day can go all the way to scores."""
    materialize_stub(instance, "raw/merchants", "raw/fx_rates", "cleaned/terminals", "cleaned/fx_rates")
    materialize_stub(instance, "cleaned/labels", "models/champion")


def test_new_authorization_file_adds_its_day_and_runs_its_chain_to_scores(landing, instance):
    ready_platform(instance)
    sha = land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"auth day 1")
    result = tick(landing_sensor, instance, landing)
    [req] = result.run_requests
    assert req.partition_key == DAY
    assert sorted(keys(req)) == sorted(DAILY_CHAIN)
    assert req.tags["dagster/priority"] == "10"  # ahead of automation's follow-ups and training
    assert req.run_key.endswith(sha)
    assert result.dynamic_partitions_requests[0].partition_keys == [DAY]


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
    assert result.dynamic_partitions_requests == []


def test_two_feeds_of_one_day_share_one_run(landing, instance):
    ready_platform(instance)
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    land(landing, f"authorizations/{DAY}/acq_b_{DAY}.jsonl.gz", b"b")
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"a2")
    requests = tick(landing_sensor, instance, landing).run_requests
    assert [r.partition_key for r in requests] == [DAY, "2018-04-02"]


def test_authorizations_wait_for_reference_files_landing_in_the_same_tick(landing, instance):
    materialize_stub(instance, "models/champion")
    land(landing, f"merchants/{DAY}/merchants_{DAY}.parquet", b"m")
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    first = tick(landing_sensor, instance, landing)
    [ref] = first.run_requests
    assert ref.tags[TAG_KIND] == "reference"
    assert sorted(keys(ref)) == sorted(["raw/file_register", *REFERENCE])
    assert first.dynamic_partitions_requests[0].partition_keys == [DAY]
    # The reference run happened; the next tick sends the day.
    materialize_stub(instance, *REFERENCE)
    [auth] = tick(landing_sensor, instance, landing, first.cursor).run_requests
    assert auth.partition_key == DAY


def test_scores_are_left_to_automation_until_a_champion_exists(landing, instance):
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    [req] = tick(landing_sensor, instance, landing).run_requests
    assert keys(req) == [k for k in DAILY_CHAIN if not k.startswith("scoring/")]


def test_chargeback_files_update_labels_in_one_run(landing, instance):
    instance.add_dynamic_partitions("business_date", [DAY])
    materialize_stub(instance, "scoring/transaction_scores", partitions=(DAY,))
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb1")
    land(landing, "chargebacks/2018-04-02/chargebacks_2018-04-02.csv", b"cb2")
    first = tick(label_sensor, instance, landing)
    [req] = first.run_requests
    assert keys(req) == [
        "raw/file_register",
        "raw/chargebacks",
        "cleaned/labels",
    ]  # monitoring/model_performance follows by automation (test_automation_policy)
    land(landing, "chargebacks/2018-04-05/chargebacks_2018-04-02_resend.csv", b"cb2")
    assert tick(label_sensor, instance, landing, first.cursor).run_requests == []


def test_landing_sensor_leaves_chargebacks_to_the_label_sensor(landing, instance):
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb1")
    assert tick(landing_sensor, instance, landing).run_requests == []


def test_a_multi_asset_that_cannot_run_yet_leaves_the_run_whole():
    from fraud_assets.defs.automation.graph import runnable_now
    from fraud_assets.lib.partitions import business_date_partitions

    raw = dg.AssetSpec(["raw", "authorizations"], partitions_def=business_date_partitions)

    @dg.asset(key=["cleaned", "terminals"])
    def terminals(): ...

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                ["cleaned", "transactions"], deps=[raw, terminals], partitions_def=business_date_partitions
            ),
            dg.AssetSpec(["cleaned", "quarantine"], deps=[raw], partitions_def=business_date_partitions),
        ]
    )
    def cleaned(): ...

    graph = dg.Definitions(assets=[cleaned, terminals, raw]).get_repository_def().asset_graph
    keys = [dg.AssetKey(["cleaned", "quarantine"]), dg.AssetKey(["cleaned", "transactions"])]
    # cleaned/terminals was never materialised: transactions cannot run, and quarantine cannot run alone.
    assert runnable_now(dg.DagsterInstance.ephemeral(), graph, keys) == []


def test_on_a_fresh_platform_days_wait_for_the_first_chargebacks_run(landing, instance):
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates")
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    first = tick(landing_sensor, instance, landing)
    assert first.run_requests == []  # features need labels: the label sensor goes first
    tags = {"fraud_assets/trigger": "landing", TAG_KIND: "chargebacks"}
    instance.add_run(DagsterRun(job_name="j", run_id="labels", status=DagsterRunStatus.SUCCESS, tags=tags))
    materialize_stub(instance, "cleaned/labels")
    [req] = tick(landing_sensor, instance, landing, first.cursor).run_requests
    assert "features/transaction_features" in keys(req)
