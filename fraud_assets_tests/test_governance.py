"""Four-eyes model governance: a passing challenger waits for a person, who is not its trainer; every
decision is a signed event naming who, when, why and on which evidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.defs.monitoring.sensors import run_failure_alert_sensor
from fraud_assets.lib import registry
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.signing import Signer
from fraud_assets_tests.conftest import TEST_REGISTRY_KEY
from fraud_assets_tests.models_world import (
    TRAINER,
    connect,
    copy_world,
    decide,
    failure_message,
    layer_defs,
    shared_pending_world,
    shared_trained_world,
)

SIGNER = Signer(TEST_REGISTRY_KEY)


@pytest.fixture(scope="module")
def pending_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pending_world(tmp_path_factory)


@pytest.fixture
def world(pending_world: Path, tmp_path: Path) -> Path:
    return copy_world(pending_world, tmp_path / "data")


def _state(data_dir: Path) -> tuple[str | None, str | None]:
    with connect(data_dir) as conn:
        return registry.current_alias(conn, registry.CHAMPION), registry.pending_version(conn)


def test_the_first_champion_is_auto_approved_at_bootstrap_and_recorded_as_such(tmp_path_factory):
    with connect(shared_trained_world(tmp_path_factory)) as conn:
        [first] = registry.alias_history(conn, registry.CHAMPION)
    assert first["event"] == "bootstrap_approved"
    assert first["actor"] == "platform:bootstrap"
    assert "no champion existed" in first["reason"]


def test_a_challenger_that_passes_the_gate_waits_for_approval_with_its_evidence(pending_world: Path):
    with connect(pending_world) as conn:
        champion, pending = registry.current_alias(conn, registry.CHAMPION), registry.pending_version(conn)
        request = registry.pending_request(conn, pending)
        bootstrap_champion = registry.alias_history(conn, registry.CHAMPION)[-1]["to_version"]
    assert pending is not None
    assert pending != champion
    assert champion == bootstrap_champion  # the gate passed, yet nothing was promoted
    assert request["launched_by"] == TRAINER
    pack = json.loads((pending_world / "models" / request["evidence_path"]).read_text())
    assert (
        hashlib.sha256((pending_world / "models" / request["evidence_path"]).read_bytes()).hexdigest()
        == (request["evidence_sha256"])
    )
    assert pack["training_run"]["launched_by"] == TRAINER
    assert set(pack["prequential"]) == {"challenger", "champion"}
    assert pack["hashes"]["artifact_matches_registry"] is True
    assert pack["data_snapshot"]["parquet_sha256"]
    assert pack["model_card"]["sha256"]


def test_approval_by_the_launcher_of_the_training_run_is_refused(world: Path):
    champion, pending = _state(world)
    result = decide(world, "approve", approver=" Dana ", version=pending, reason="looks good to me")
    assert not result.success
    assert "four eyes" in failure_message(result)
    assert _state(world) == (champion, pending)


def test_approval_moves_the_champion_and_the_audit_trail_names_approver_and_evidence(world: Path):
    _, pending = _state(world)
    result = decide(world, "approve", approver="erin", version=pending, reason="MRM-7: shadow week reviewed")
    assert result.success
    with connect(world) as conn:
        assert registry.current_alias(conn, registry.CHAMPION) == pending
        assert registry.pending_version(conn) is None
        event = registry.alias_history(conn, registry.CHAMPION)[-1]
        registry.verify_registry(conn, SIGNER)
    assert (event["event"], event["actor"], event["launched_by"]) == ("approved", "erin", TRAINER)
    assert event["reason"] == "MRM-7: shadow week reviewed"
    evidence = world / "models" / event["evidence_path"]
    assert hashlib.sha256(evidence.read_bytes()).hexdigest() == event["evidence_sha256"]
    assert json.loads(evidence.read_text())["purpose"] == "approve"
    [mat] = [e for e in result.get_asset_materialization_events()]
    assert mat.materialization.metadata["approver"].value == "erin"


def test_rejection_moves_nothing_and_ends_the_wait(world: Path):
    champion, pending = _state(world)
    assert decide(
        world, "reject", approver="erin", version=pending, reason="CP@100 lower on live days"
    ).success
    assert _state(world) == (champion, None)
    with connect(world) as conn:
        assert registry.version_status(conn, pending) == "rejected"


def test_approving_again_a_version_already_decided_is_refused(world: Path):
    _, pending = _state(world)
    assert decide(world, "reject", approver="erin", version=pending, reason="no").success
    result = decide(world, "approve", approver="frank", version=pending, reason="replayed approval run")
    assert not result.success
    assert "is not pending approval (status: rejected)" in failure_message(result)


def test_an_approver_other_than_the_authenticated_launcher_of_the_approval_run_is_refused(world: Path):
    champion, pending = _state(world)
    result = decide(
        world, "approve", approver="erin", version=pending, reason="on erin's behalf", user="frank"
    )
    assert not result.success
    assert "not the authenticated user" in failure_message(result)
    assert _state(world) == (champion, pending)


def test_a_decision_without_approver_or_reason_is_refused(world: Path):
    _, pending = _state(world)
    assert "needs an `approver` and a `reason`" in failure_message(decide(world, "approve", "", pending))
    assert "needs an `approver` and a `reason`" in failure_message(
        decide(world, "approve", "erin", pending, "")
    )


def test_emergency_disable_of_the_champion_falls_back_to_the_former_one(world: Path):
    _, pending = _state(world)
    assert decide(world, "approve", approver="erin", version=pending, reason="go").success
    with connect(world) as conn:
        former = registry.previous_champion(conn)
    assert decide(world, "disable", approver="oncall", version=pending, reason="INC-9 alerts flood").success
    with connect(world) as conn:
        assert registry.current_alias(conn, registry.CHAMPION) == former
        assert registry.version_status(conn, pending) == "disabled"
        with pytest.raises(registry.DisabledModelError):
            registry.load_version(conn, world / "models", pending, SIGNER)


def test_scoring_refuses_a_tampered_registry_and_the_failure_is_alerted(world: Path, tmp_path: Path):
    with connect(world) as conn:
        conn.execute("UPDATE models.model_versions SET metrics_json = '{}'")  # e.g. to sway the gate
    instance = dg.DagsterInstance.ephemeral()
    result = (
        layer_defs(world)
        .resolve_job_def("scoring_job")
        .execute_in_process(partition_key="2018-08-14", instance=instance, raise_on_error=False)
    )
    assert not result.success
    assert "registry integrity" in failure_message(result)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sink = AlertSink(data_dir=str(tmp_path / "alerts"))
    run_failure_alert_sensor(context, alert_sink=sink)
    [alert] = sink.read_outbox()
    assert alert["severity"] == "ERROR"
    assert "registry integrity" in alert["message"]
