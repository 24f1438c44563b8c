"""The retraining trigger: bootstrap, drift and decay each request training with the reason in its tags."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.models.sensors import TAG_DETAIL, TAG_REASON, training_trigger_sensor
from fraud_assets_tests.automation_stubs import materialize_stub, stub_definitions

TRAINING_CHAIN = ["models/training_set", "models/candidates", "models/evaluation", "models/champion"]
DAYS = tuple(f"2018-04-{d:02d}" for d in range(1, 23))


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    return inst


def tick(instance, tmp_path: Path):
    ctx = dg.build_sensor_context(instance=instance, definitions=stub_definitions(tmp_path / "landing"))
    result = training_trigger_sensor(ctx)
    return result if isinstance(result, list) else []


def report(instance, key: str, **metadata) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key.split("/"), metadata=metadata))


def report_drift(instance, day: str, max_psi: float = 0.6, feature: str = "card_nb_tx_30d") -> None:
    report(
        instance,
        "monitoring/feature_drift",
        max_psi=max_psi,
        max_psi_feature=feature,
        current_business_date=day,
    )


def test_without_a_champion_enough_labelled_days_bootstrap_training(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_BOOTSTRAP_MIN_DAYS", "21")
    materialize_stub(instance, "features/transaction_features", partitions=DAYS)
    materialize_stub(instance, "cleaned/labels")
    [req] = tick(instance, tmp_path)
    job = stub_definitions(tmp_path / "landing").resolve_job_def(req.job_name)
    assert req.job_name == "training_job"
    assert sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys) == sorted(TRAINING_CHAIN)
    assert req.tags[TAG_REASON] == "bootstrap"
    assert int(job.run_tags["dagster/priority"]) < 0  # behind landed days


def test_without_enough_days_there_is_no_bootstrap(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_BOOTSTRAP_MIN_DAYS", "30")
    materialize_stub(instance, "features/transaction_features", partitions=DAYS)
    materialize_stub(instance, "cleaned/labels")
    assert tick(instance, tmp_path) == []


def test_drift_at_the_act_threshold_requests_training_with_the_reason(instance, tmp_path):
    materialize_stub(instance, "models/champion")
    report(
        instance,
        "monitoring/feature_drift",
        max_psi=0.31,
        max_psi_feature="tx_amount",
        current_business_date="2018-04-22",
    )
    [req] = tick(instance, tmp_path)
    assert req.tags[TAG_REASON] == "drift"
    assert "tx_amount" in req.tags[TAG_DETAIL]
    assert "0.310" in req.tags[TAG_DETAIL]


def test_drift_below_the_act_threshold_requests_nothing(instance, tmp_path):
    materialize_stub(instance, "models/champion")
    report(instance, "monitoring/feature_drift", max_psi=0.2, max_psi_feature="tx_amount")
    assert tick(instance, tmp_path) == []


def test_one_drift_measurement_triggers_one_training_run(instance, tmp_path):
    materialize_stub(instance, "models/champion")
    report(instance, "monitoring/feature_drift", max_psi=0.4, max_psi_feature="score")
    first, second = tick(instance, tmp_path), tick(instance, tmp_path)
    assert first[0].run_key == second[0].run_key  # same key: Dagster launches it once


def test_matured_ap_below_the_floor_requests_training(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_AP_FLOOR", "0.3")
    materialize_stub(instance, "models/champion")
    report(
        instance,
        "monitoring/model_performance",
        mean_ap_last_7_matured_days=0.12,
        latest_matured_business_date="2018-04-10",
    )
    [req] = tick(instance, tmp_path)
    assert req.tags[TAG_REASON] == "decay"


def test_one_matured_day_below_the_floor_does_not_request_training_when_the_weeks_mean_is_above_it(
    instance, tmp_path, monkeypatch
):
    """Each day is the latest matured one for a while: a small day's AP crosses the floor by chance, and a
    retraining on it would be refused by the gate (a failed run); decay is the 7 latest days' mean."""
    monkeypatch.setenv("FRAUD_AP_FLOOR", "0.3")
    materialize_stub(instance, "models/champion")
    report(
        instance,
        "monitoring/model_performance",
        latest_matured_ap=0.299,
        mean_ap_last_7_matured_days=0.55,
        latest_matured_business_date="2018-04-13",
    )
    assert tick(instance, tmp_path) == []


def test_bootstrap_waits_until_no_run_is_in_flight(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_BOOTSTRAP_MIN_DAYS", "21")
    materialize_stub(instance, "features/transaction_features", partitions=DAYS)
    materialize_stub(instance, "cleaned/labels")
    instance.add_run(
        dg.DagsterRun(job_name="__ASSET_JOB", run_id="still-running", status=dg.DagsterRunStatus.STARTED)
    )
    assert tick(instance, tmp_path) == []
    instance.delete_run("still-running")  # the run is gone: the platform is quiet
    assert [r.tags[TAG_REASON] for r in tick(instance, tmp_path)] == ["bootstrap"]


def test_drift_on_a_day_the_models_were_trained_with_does_not_retrain(instance, tmp_path):
    # The feedback loop this guards against: training re-materialises monitoring/feature_drift, the same
    # latest day still drifts against the (lagging) training window, and a new run would be requested.
    materialize_stub(instance, "models/champion")
    report(instance, "models/training_set", latest_business_date="2018-04-22")
    report_drift(instance, "2018-04-22")
    assert tick(instance, tmp_path) == []
    report_drift(instance, "2018-04-23")
    [req] = tick(instance, tmp_path)
    assert req.tags[TAG_REASON] == "drift"
    assert "2018-04-23" in req.tags[TAG_DETAIL]


def test_a_newer_day_drift_is_not_hidden_by_an_older_day_measured_after_it(instance, tmp_path):
    # Drift is partitioned by day: a lookback rebuild may re-measure 04-22 after 04-23 drifted.
    materialize_stub(instance, "models/champion")
    report(instance, "models/training_set", latest_business_date="2018-04-21")
    report_drift(instance, "2018-04-23", max_psi=2.4)
    report_drift(instance, "2018-04-22", max_psi=0.1)
    [req] = tick(instance, tmp_path)
    assert req.tags[TAG_REASON] == "drift"
    assert req.run_key == "drift:2018-04-23"


def test_a_re_measured_drifted_day_keeps_its_run_key(instance, tmp_path):
    materialize_stub(instance, "models/champion")
    keys = []
    for _ in range(2):  # e.g. drift recomputed after scoring, then again after a training run
        report_drift(instance, "2018-04-22", max_psi=0.4, feature="score")
        keys.append(tick(instance, tmp_path)[0].run_key)
    assert keys == ["drift:2018-04-22", "drift:2018-04-22"]


def test_decay_is_keyed_on_the_matured_day(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_AP_FLOOR", "0.3")
    materialize_stub(instance, "models/champion")
    keys = []
    for _ in range(2):
        report(
            instance,
            "monitoring/model_performance",
            mean_ap_last_7_matured_days=0.12,
            latest_matured_business_date="2018-04-10",
        )
        keys.append(tick(instance, tmp_path)[0].run_key)
    assert keys == ["decay:2018-04-10", "decay:2018-04-10"]


def _weekly(instance, tmp_path):
    from datetime import UTC, datetime

    from fraud_assets.defs.models.sensors import weekly_retrain

    ctx = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2018, 4, 23, 3, tzinfo=UTC),
        repository_def=stub_definitions(tmp_path / "landing").get_repository_def(),
    )
    return weekly_retrain(ctx)


def test_no_weekly_retrain_while_a_challenger_awaits_approval(tmp_path):
    # A schedule context needs an instance it can reference (not an ephemeral one).
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    materialize_stub(instance, "models/champion")
    report(instance, "models/approval_request", pending_version="hgb-1")
    assert isinstance(_weekly(instance, tmp_path), dg.SkipReason)
    report(instance, "models/champion", decided_version="hgb-1")  # someone decided
    assert isinstance(_weekly(instance, tmp_path), dg.RunRequest)


def test_weekly_retrain_widens_the_search(tmp_path):
    # The backfill's search keeps to its time budget; the weekly retrain (nobody waits on it) also tries
    # WIDE_SEARCH_SPACE, through run config the training job accepts.
    from fraud_assets.defs import models
    from fraud_assets.defs.models.candidates import FAMILIES
    from fraud_assets.resources import build_resources

    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    request = _weekly(instance, tmp_path)
    assert isinstance(request, dg.RunRequest)
    ops = request.run_config["ops"]
    assert {op: c["config"]["wide_search"] for op, c in ops.items()} == {
        f"models__candidate_{f}": True for f in FAMILIES
    }
    defs = dg.Definitions.merge(models.defs, dg.Definitions(resources=build_resources(tmp_path, "k", "k")))
    dg.validate_run_config(defs.resolve_job_def("training_job"), request.run_config)
