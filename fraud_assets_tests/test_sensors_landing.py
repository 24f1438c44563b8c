"""The landing sensor: which runs a landing zone produces (docs/landing-zone.md, monitoring.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from fraud_assets.defs.automation.sensors import TAG_INPUTS, TAG_KIND, landing_sensor
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
LABEL_CHAIN = ["raw/file_register", "raw/chargebacks", "cleaned/labels"]


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


def run_with(instance, run_id: str, status, tags: dict[str, str]) -> None:
    instance.add_run(DagsterRun(job_name="j", run_id=run_id, status=status, tags=tags))


def set_status(instance, run_id: str, status) -> None:
    run = instance.get_run_by_id(run_id)
    instance.run_storage.delete_run(run_id)
    instance.add_run(run.with_status(status))


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
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"a2")
    requests = tick(landing_sensor, instance, landing).run_requests
    assert [r.partition_key for r in requests] == [DAY, "2018-04-02"]


def test_a_day_and_the_inputs_that_landed_with_it_go_in_one_run(landing, instance):
    """The daily case: FX rates, a merchants snapshot and chargebacks land with one day's authorisations.
    One run loads the inputs, then takes the day to scores (one queue wait and one run start, not three)."""
    materialize_stub(instance, "models/champion")
    land(landing, f"merchants/{DAY}/merchants_{DAY}.parquet", b"m")
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    first = tick(landing_sensor, instance, landing)
    [run] = first.run_requests
    assert run.partition_key == DAY
    assert sorted(keys(run)) == sorted({*DAILY_CHAIN, *REFERENCE, *LABEL_CHAIN})
    # Inputs before the day: cleaning needs the snapshot and rates, features the labels.
    order = keys(run)
    for needed, user in [
        ("cleaned/terminals", "cleaned/transactions"),
        ("cleaned/fx_rates", "cleaned/transactions"),
        ("cleaned/labels", "features/transaction_features"),
    ]:
        assert order.index(needed) < order.index(user)
    assert run.tags[TAG_KIND] == "authorizations+chargebacks+reference"
    assert run.tags[TAG_INPUTS] == "true"
    assert run.run_key.startswith(f"authorizations+chargebacks+reference:{DAY}:")
    assert tick(landing_sensor, instance, landing, first.cursor).run_requests == []


def test_inputs_with_several_days_load_first_and_the_days_wait(landing, instance):
    materialize_stub(instance, "models/champion")
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    land(landing, "authorizations/2018-04-02/acq_a_2018-04-02.csv.gz", b"a2")
    first = tick(landing_sensor, instance, landing)
    [inputs] = first.run_requests
    assert (inputs.partition_key, inputs.tags[TAG_KIND]) == (None, "reference")
    assert keys(inputs) == ["raw/file_register", "raw/fx_rates", "cleaned/fx_rates"]
    # The inputs run has not started yet: the days keep waiting.
    run_with(instance, "inputs", DagsterRunStatus.NOT_STARTED, inputs.tags)
    held = tick(landing_sensor, instance, landing, first.cursor)
    assert held.run_requests == []
    # It finished (whatever its outcome: a failure is alerted, the days still run): one run per day.
    set_status(instance, "inputs", DagsterRunStatus.FAILURE)
    materialize_stub(instance, "raw/merchants", "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels")
    days = tick(landing_sensor, instance, landing, held.cursor).run_requests
    assert [r.partition_key for r in days] == [DAY, "2018-04-02"]
    assert all(keys(r) == DAILY_CHAIN and TAG_INPUTS not in r.tags for r in days)


def test_authorizations_alone_wait_for_an_inputs_run_in_flight(landing, instance):
    ready_platform(instance)
    run_with(
        instance, "labels", DagsterRunStatus.STARTED, {"fraud_assets/trigger": "landing", TAG_INPUTS: "true"}
    )
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    held = tick(landing_sensor, instance, landing)
    assert held.run_requests == []
    set_status(instance, "labels", DagsterRunStatus.SUCCESS)
    [req] = tick(landing_sensor, instance, landing, held.cursor).run_requests
    assert req.partition_key == DAY


def test_a_first_day_runs_with_reference_data_it_has_never_seen(landing, instance):
    """A fresh platform: the snapshot the day's cleaning needs was never materialised, but it is loaded in
    the same run, so the day is not left to automation; scores are (no champion yet)."""
    land(landing, f"merchants/{DAY}/merchants_{DAY}.parquet", b"m")
    land(landing, f"fx_rates/{DAY}/fx_rates_{DAY}.csv", b"fx")
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    [run] = tick(landing_sensor, instance, landing).run_requests
    assert "features/transaction_features" in keys(run)
    assert not [k for k in keys(run) if k.startswith("scoring/")]


def test_scores_are_left_to_automation_until_a_champion_exists(landing, instance):
    materialize_stub(instance, "cleaned/terminals", "cleaned/fx_rates", "cleaned/labels")
    land(landing, f"authorizations/{DAY}/acq_a_{DAY}.csv.gz", b"a")
    [req] = tick(landing_sensor, instance, landing).run_requests
    assert keys(req) == [k for k in DAILY_CHAIN if not k.startswith("scoring/")]


def test_chargeback_files_update_labels_in_one_run(landing, instance):
    # Labels are judged against cleaned transactions (unknown_transaction), so a day is cleaned already.
    materialize_stub(instance, "cleaned/transactions", "scoring/transaction_scores", partitions=(DAY,))
    land(landing, f"chargebacks/{DAY}/chargebacks_{DAY}.csv", b"cb1")
    land(landing, "chargebacks/2018-04-02/chargebacks_2018-04-02.csv", b"cb2")
    first = tick(landing_sensor, instance, landing)
    [req] = first.run_requests
    # monitoring/model_performance follows by automation (test_automation_policy)
    assert keys(req) == LABEL_CHAIN
    assert (req.partition_key, req.tags[TAG_KIND], req.tags[TAG_INPUTS]) == (None, "chargebacks", "true")
    land(landing, "chargebacks/2018-04-05/chargebacks_2018-04-02_resend.csv", b"cb2")
    assert tick(landing_sensor, instance, landing, first.cursor).run_requests == []


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
