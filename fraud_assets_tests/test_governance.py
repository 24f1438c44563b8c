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
    PERMISSIVE_GATE,
    TRAINER,
    bootstrap_training,
    connect,
    copy_world,
    decide,
    failure_message,
    layer_defs,
    run_config,
    run_job,
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


def test_the_first_request_says_the_bootstrap_approves_it(tmp_path: Path):
    """Else models/approval_request keeps reading 'awaits approval' for a version already champion."""
    _, result = bootstrap_training(tmp_path)
    [request] = result.asset_materializations_for_node("models__approval_request")
    assert request.metadata["action"].value.endswith(
        "; no champion was ever appointed, so models/champion approves it (bootstrap)"
    )


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
    # The champion was re-scored on the challenger's fold-0 test window, and the gate compared both there.
    assert set(pack["same_window"]) == {pending, champion}
    assert "same-window AP" in pack["gate_reason"]
    with connect(pending_world) as conn:
        at = dict(
            conn.execute(
                "SELECT model_version, max(evaluated_at) FROM models.evaluation WHERE scope = "
                "'reloaded_artifact' AND model_version IN (?, ?) GROUP BY ALL",
                [pending, champion],
            ).fetchall()
        )
    assert at[pending] == at[champion]
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


@pytest.mark.parametrize("identity", ["user_tag", "operator_env"])
def test_the_launcher_compared_is_who_trained_the_challenger_not_who_asked_for_its_approval(
    tmp_path_factory, monkeypatch, identity
):
    """alice's training run stops before the request (a failure, a partial selection); bob's run asks for
    approval. alice may still not approve her own model, whether the runs carry `dagster/user` or the
    operators are told apart by FRAUD_OPERATOR in their own processes."""
    root = tmp_path_factory.mktemp("asked_by_another")
    world = copy_world(shared_trained_world(tmp_path_factory), root / "data")
    for k, v in PERMISSIVE_GATE.items():
        monkeypatch.setenv(k, v)
    instance = dg.DagsterInstance.ephemeral()
    training = layer_defs(world).resolve_job_def("training_job")
    request_and_after = {dg.AssetKey(["models", "approval_request"]), dg.AssetKey(["models", "champion"])}

    def run_as(person: str, assets: list[dg.AssetKey]):
        monkeypatch.setenv("FRAUD_OPERATOR", person)
        user = person if identity == "user_tag" else None
        return run_job(
            world, "training_job", run_config(root / "cards"), user, instance=instance, assets=assets
        )

    trained = run_as(
        "alice", [k for k in training.asset_layer.selected_asset_keys if k not in request_and_after]
    )
    assert trained.success
    assert run_as("bob", [dg.AssetKey(["models", "approval_request"])]).success
    _, pending = _state(world)
    with connect(world) as conn:
        assert registry.pending_request(conn, pending)["launched_by"] == "alice"
        assert registry.get_version(conn, pending).run_id == trained.run_id
    refused = decide(world, "approve", approver="alice", version=pending, reason="mine", instance=instance)
    assert "four eyes" in failure_message(refused)


def test_a_request_whose_training_run_dagster_does_not_know_is_refused(world: Path):
    """Dagster's record of the training run is where its launcher is read: without it, nobody can tell
    who must not approve, so nothing is put up for approval."""
    with connect(world) as conn:  # its pending_approval event, so that it is asked for again
        conn.execute(
            "DELETE FROM models.model_events WHERE event_id = (SELECT max(event_id) FROM models.model_events)"
        )
    with pytest.MonkeyPatch.context() as mp:
        for k, v in PERMISSIVE_GATE.items():
            mp.setenv(k, v)
        result = run_job(world, "training_job", run_config(world.parent / "cards"), user="bob",
                         assets=[dg.AssetKey(["models", "approval_request"])])  # fmt: skip
    assert not result.success
    assert "cannot tell who trained" in failure_message(result)


def test_putting_back_a_withdrawn_model_needs_someone_other_than_its_trainer(world: Path):
    _, pending = _state(world)  # trained by TRAINER
    assert decide(world, "approve", approver="erin", version=pending, reason="MRM-8").success
    with connect(world) as conn:
        former = registry.previous_champion(conn)
    assert decide(world, "rollback", approver="oncall", version=former, reason="INC-10 alert flood").success
    refused = decide(world, "rollback", approver=TRAINER, version=pending, reason="it was fine")
    assert "four eyes" in failure_message(refused)
    assert _state(world)[0] == former
    assert decide(world, "rollback", approver="frank", version=pending, reason="INC-10 closed").success
    with connect(world) as conn:
        event = registry.alias_history(conn, registry.CHAMPION)[-1]
    assert (event["event"], event["to_version"], event["launched_by"]) == ("rolled_back", pending, TRAINER)


def test_events_deleted_from_the_end_of_the_ledger_are_refused_even_after_a_new_event(world: Path):
    """The chain verifies whatever was cut from its end; the head Dagster recorded does not. Here the
    emergency disable is deleted and the platform's next event written on top: scoring and the next
    decision both refuse (the disabled model must never score again)."""
    instance = dg.DagsterInstance.ephemeral()
    _, pending = _state(world)
    assert decide(world, "approve", approver="erin", version=pending, reason="go", instance=instance).success
    assert decide(
        world, "disable", approver="oncall", version=pending, reason="INC-9", instance=instance
    ).success
    with connect(world) as conn:
        conn.execute(
            "DELETE FROM models.model_events WHERE event_id = (SELECT max(event_id) FROM models.model_events)"
        )
        assert registry.current_alias(conn, registry.CHAMPION) == pending  # the disabled model is back...
        registry.append_event(
            conn, SIGNER, registry.CHALLENGER_CHOSEN, model_version=pending, alias=registry.CHALLENGER,
            to_version=pending, actor="platform", reason="the next legitimate event",
        )  # fmt: skip
        registry.verify_registry(conn, SIGNER)  # ...and the chain alone verifies
    for key in registry.LEDGER_WRITERS:  # "Report materialization" (UI, API): no run wrote it, no head
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey(list(key))))
    scoring = run_job(world, "scoring_job", partition="2018-08-14", instance=instance)
    assert not scoring.success
    assert "events were removed from the end of the ledger" in failure_message(scoring)
    decision = decide(world, "reject", approver="erin", version=pending, reason="x", instance=instance)
    assert "events were removed from the end of the ledger" in failure_message(decision)
    # Without Dagster's record (a new instance) the same ledger loads: the anchor is what tells.
    assert run_job(world, "scoring_job", partition="2018-08-14").success


def test_an_emergency_disable_whose_run_fails_after_its_append_cannot_be_deleted_unseen(world: Path):
    """Whoever can write the data directory can fail the decision's step after the event was appended
    (here: an unreadable model card of the fallback), so the step never materialises; the head it left
    is in Dagster's event log all the same, and deleting the disable is refused."""
    instance = dg.DagsterInstance.ephemeral()
    champion, pending = _state(world)
    assert decide(world, "approve", approver="erin", version=pending, reason="go", instance=instance).success
    (world / "models" / "cards" / f"{champion}.embedded.md").write_bytes(b"\xff\xfe not utf-8")
    failed = decide(world, "disable", approver="oncall", version=pending, reason="INC-9", instance=instance)
    assert not failed.success
    with connect(world) as conn:
        assert registry.version_status(conn, pending) == "disabled"  # the switch took effect...
        conn.execute(
            "DELETE FROM models.model_events WHERE event_id = (SELECT max(event_id) FROM models.model_events)"
        )
        assert registry.current_alias(conn, registry.CHAMPION) == pending  # ...and was cut off the ledger
    scoring = run_job(world, "scoring_job", partition="2018-08-14", instance=instance)
    assert not scoring.success
    assert "events were removed from the end of the ledger" in failure_message(scoring)


def test_disabling_the_champion_does_not_hand_it_to_a_former_champion_the_disabler_trained(world: Path):
    """The fallback of a disable puts a withdrawn model back, like a rollback: the trainer of a former
    champion who may not roll back to it may not get it back by disabling the one that replaced it."""
    bootstrap_champion, pending = _state(world)  # pending trained by TRAINER
    assert decide(world, "approve", approver="erin", version=pending, reason="MRM-8").success
    assert decide(world, "rollback", approver="oncall", version=bootstrap_champion, reason="INC-10").success
    assert "four eyes" in failure_message(
        decide(world, "rollback", approver=TRAINER, version=pending, reason="it was fine")
    )
    assert decide(
        world, "disable", approver=TRAINER, version=bootstrap_champion, reason="INC-11", user=TRAINER
    ).success
    with connect(world) as conn:
        assert registry.version_status(conn, bootstrap_champion) == "disabled"
        assert registry.current_alias(conn, registry.CHAMPION) is None  # not TRAINER's own model
    assert decide(world, "rollback", approver="frank", version=pending, reason="INC-11 reviewed").success
    assert _state(world)[0] == pending


def test_a_ledger_cut_back_to_before_any_champion_is_refused_not_read_as_no_champion_yet(world: Path):
    """Scoring reads the champion alias from the ledger: cut back to before the first approval, the
    ledger names no champion at all, which must be refused as a truncation (the head Dagster recorded
    is gone), not reported as a fresh platform that needs training."""
    instance = dg.DagsterInstance.ephemeral()
    _, pending = _state(world)
    assert decide(world, "approve", approver="erin", version=pending, reason="go", instance=instance).success
    with connect(world) as conn:
        first = registry.alias_history(conn, registry.CHAMPION)[0]["event_id"]
        conn.execute("DELETE FROM models.model_events WHERE event_id >= ?", [first])
        assert registry.current_alias(conn, registry.CHAMPION) is None
        registry.verify_registry(conn, SIGNER)  # what is left verifies on its own
    scoring = run_job(world, "scoring_job", partition="2018-08-14", instance=instance)
    assert not scoring.success
    assert "events were removed from the end of the ledger" in failure_message(scoring)


def test_the_gate_reason_states_the_thresholds_it_applied_and_that_passing_is_not_promoting():
    """The reason is the `Gate:` line of the approver's evidence pack: a CP@100 below the champion's
    passes only by a tolerance, which the line must show, and passing puts up for approval, not
    promotes."""
    from fraud_assets.lib.model_selection import gate_decision

    def metrics(ap: float, cp: float) -> dict[str, float]:
        return {"average_precision_mean": ap, "card_precision_at_100_mean": cp, "auc_mean": 0.9}

    d = gate_decision(
        "new", metrics(0.56, 0.0857), "old", metrics(0.49, 0.0875), ap_margin=0.005, cp_tolerance=0.01
    )
    assert d.promote
    assert "CP@100 0.0857 >= 0.0875 - tolerance 0.01" in d.reason
    assert "promoted" not in d.reason
    worse = gate_decision("new", metrics(0.56, 0.07), "old", metrics(0.49, 0.0875), cp_tolerance=0.01)
    assert "worse than champion 0.0875 - tolerance 0.01" in worse.reason
    first = gate_decision("new", {**metrics(0.56, 0.09), "fraud_rate_mean": 0.01}, None, None)
    assert first.promote
    assert "bootstrap" not in first.reason  # with no champion after a disable, a person approves


def test_the_decision_evidence_carries_the_gate_reason_of_the_request(world: Path):
    _, pending = _state(world)
    with connect(world) as conn:
        gate_reason = registry.pending_request(conn, pending)["reason"]
    result = decide(world, "approve", approver="erin", version=pending, reason="MRM-9")
    assert result.success
    with connect(world) as conn:
        event = registry.alias_history(conn, registry.CHAMPION)[-1]
    pack = json.loads((world / "models" / event["evidence_path"]).read_text())
    assert pack["gate_reason"] == gate_reason
    assert (
        f"Gate: {gate_reason}" in (world / "models" / event["evidence_path"]).with_suffix(".md").read_text()
    )


def test_a_training_run_after_the_last_champion_was_disabled_says_there_is_no_champion(world: Path):
    """Not 'champion None stays': the approver reading the run's log is told why nothing is approved."""
    champion, pending = _state(world)
    assert decide(world, "disable", approver="oncall", version=champion, reason="INC-12").success
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(world, "training_job", instance=instance, assets=[dg.AssetKey(["models", "champion"])])
    assert result.success
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.step_key == "models__champion"]
    assert any(m.startswith("no champion (the last one was disabled): ") and pending in m for m in logged)
    assert not any("champion None" in m for m in logged)


def test_the_champion_plots_the_models_figures_not_the_search_configurations():
    from fraud_assets.defs.models.champion import headline_metrics

    metrics = {"average_precision_mean": 0.7, "auc_std": 0.01, "search0_fit_seconds_mean": 3.0}
    assert headline_metrics(metrics) == {"average_precision_mean": 0.7, "auc_std": 0.01}
