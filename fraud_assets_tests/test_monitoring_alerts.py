"""Alerting: failed checks and runs reach the sink (log, outbox, monitoring.alerts), never a clear PAN."""

from __future__ import annotations

import json

import dagster as dg
import duckdb

from fraud_assets.defs.monitoring.alerts import (
    CheckAlertCursor,
    check_failure_alerts,
    failed_only_on_blocking_checks,
)
from fraud_assets.lib.alerting import Alert, AlertSink

PAN = "4539148803436467"


def test_an_alert_lands_in_the_outbox_and_the_alerts_table(tmp_path):
    sink = AlertSink(data_dir=str(tmp_path))
    sink.send([Alert(severity="ERROR", kind="run_failure", subject="job", message="boom", run_id="r1")])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        rows = conn.execute("SELECT severity, kind, subject, run_id FROM monitoring.alerts").fetchall()
    assert rows == [("ERROR", "run_failure", "job", "r1")]
    assert len(sink.read_outbox()) == 1


def test_the_same_alert_sent_twice_is_stored_once(tmp_path):
    sink = AlertSink(data_dir=str(tmp_path))
    alert = Alert(severity="WARN", kind="check_failure", subject="a:c", message="m", details={"event_id": 7})
    sink.send([alert])
    sink.send([alert])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        assert conn.execute("SELECT count(*) FROM monitoring.alerts").fetchone()[0] == 1


def test_alerts_wait_in_the_outbox_while_the_warehouse_is_locked(tmp_path):
    sink = AlertSink(data_dir=str(tmp_path))
    # Another process would hold the file; a read-only connection in this one takes a conflicting config.
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()
    holder = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        sink.send([Alert(severity="WARN", kind="k", subject="s", message="m")])
    finally:
        holder.close()
    assert len(sink.read_outbox()) == 1
    assert sink.flush() == 1


def test_a_card_number_in_an_alert_is_masked_everywhere(tmp_path):
    sink = AlertSink(data_dir=str(tmp_path))
    sink.send([Alert(severity="ERROR", kind="k", subject="s", message=f"bad row {PAN}", details={"v": PAN})])
    assert PAN not in (tmp_path / "alerts" / "alerts.jsonl").read_text()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        assert PAN not in str(conn.execute("SELECT * FROM monitoring.alerts").fetchall())


def test_masking_keeps_measurements_that_look_like_card_numbers_and_masks_numeric_pans():
    psi = float(f"0.{PAN}")  # a PSI whose digits read as a Luhn-valid 16-digit run
    details = {"max_psi": psi, "nested": [{"pan": int(PAN)}, f"card {PAN}"], "n": 3, "ok": True}
    alert = Alert(severity="ERROR", kind="check_failure", subject="s", message="m", details=details)
    assert alert.details["max_psi"] == psi
    assert alert.details["n"] == 3
    assert alert.details["ok"] is True
    masked = f"{PAN[:6]}******{PAN[-4:]}"
    assert alert.details["nested"] == [{"pan": masked}, f"card {masked}"]
    assert json.loads(alert.as_row()["details"]) == alert.details  # valid JSON, numbers intact


def test_failed_checks_become_alerts_with_their_severity():
    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("soft", asset="scored"),
            dg.AssetCheckSpec("hard", asset="scored"),
            dg.AssetCheckSpec("fine", asset="scored"),
        ]
    )
    def scored():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name="soft", passed=False, severity=dg.AssetCheckSeverity.WARN),
                dg.AssetCheckResult(check_name="hard", passed=False, severity=dg.AssetCheckSeverity.ERROR),
                dg.AssetCheckResult(check_name="fine", passed=True),
            ]
        )

    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([scored], instance=instance)
    alerts, cursor = check_failure_alerts(instance, None)
    assert sorted((a.subject, a.severity) for a in alerts) == [
        ("scored:hard", "ERROR"),
        ("scored:soft", "WARN"),
    ]
    assert check_failure_alerts(instance, cursor)[0] == []


def test_a_check_that_keeps_failing_for_the_same_cause_alerts_once_then_daily():
    state = {"passed": False, "cause": "truncated.csv.gz"}

    @dg.asset(check_specs=[dg.AssetCheckSpec("no_rejected_files", asset="register")])
    def register():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_rejected_files",
                    passed=state["passed"],
                    metadata={"rejections": state["cause"]},
                )
            ]
        )

    instance = dg.DagsterInstance.ephemeral()

    def run_and_alert(cursor, now):
        dg.materialize([register], instance=instance)
        alerts, cursor = check_failure_alerts(instance, cursor, now=now)
        return [a.message for a in alerts], cursor

    sent, cursor = run_and_alert(None, now=1_000.0)
    assert sent == ["check no_rejected_files failed"]
    sent, cursor = run_and_alert(cursor, now=1_100.0)
    assert sent == []  # same failure, same cause: no repeat
    cursor = CheckAlertCursor.parse(cursor.serialize())  # survives the sensor cursor round trip
    state["cause"] = "truncated.csv.gz, empty.json.gz"
    sent, cursor = run_and_alert(cursor, now=1_200.0)
    assert sent == ["check no_rejected_files failed"]  # a new cause
    sent, cursor = run_and_alert(cursor, now=1_200.0 + 25 * 3600)
    assert sent == ["still failing: check no_rejected_files failed"]  # daily reminder
    state["passed"] = True
    sent, cursor = run_and_alert(cursor, now=100_000.0)
    assert sent == []
    assert cursor.open == {}
    state["passed"] = False
    sent, cursor = run_and_alert(cursor, now=100_100.0)
    assert sent == ["check no_rejected_files failed"]  # failing again after a pass


def test_a_failure_that_describes_its_cause_alerts_again_only_when_the_description_changes():
    # The drift check: its description names the day, the worst feature and the counts; its metadata also
    # carries every PSI, and the score's PSI joins once a champion has scored the day.
    state = {"description": "2018-05-15: card_nb_tx_1d PSI 0.293; 1 at act", "metadata": {"max_psi": 0.293}}

    @dg.asset(check_specs=[dg.AssetCheckSpec("psi_below_thresholds", asset="drift")])
    def drift():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="psi_below_thresholds",
                    passed=False,
                    description=state["description"],
                    metadata=state["metadata"],
                )
            ]
        )

    instance = dg.DagsterInstance.ephemeral()

    def run_and_alert(cursor):
        dg.materialize([drift], instance=instance)
        alerts, cursor = check_failure_alerts(instance, cursor, now=1_000.0)
        return [a.message for a in alerts], cursor

    sent, cursor = run_and_alert(None)
    assert sent == [state["description"]]
    state["metadata"] = {"max_psi": 0.293, "score_psi": 0.02}
    sent, cursor = run_and_alert(cursor)
    assert sent == []  # same cause, one more measurement
    state["description"] = "2018-05-16: card_nb_tx_1d PSI 0.31; 1 at act"
    sent, _ = run_and_alert(cursor)
    assert sent == [state["description"]]


def test_a_run_stopped_only_by_a_blocking_check_is_left_to_the_check_alert():
    @dg.asset
    def evaluation():
        return 1

    @dg.asset_check(asset=evaluation, blocking=True)
    def gate():
        return dg.AssetCheckResult(passed=False, description="challenger AP below the champion's")

    @dg.asset(deps=[evaluation])
    def champion():
        return 2

    @dg.asset
    def broken():
        raise RuntimeError("boom")

    instance = dg.DagsterInstance.ephemeral()
    gated = dg.materialize([evaluation, gate, champion], instance=instance, raise_on_error=False)
    crashed = dg.materialize([evaluation, gate, champion, broken], instance=instance, raise_on_error=False)
    assert not gated.success
    assert not crashed.success
    assert failed_only_on_blocking_checks(instance, gated.run_id)
    # A step that raised is a run failure to alert, even when a blocking check failed beside it.
    assert not failed_only_on_blocking_checks(instance, crashed.run_id)
    [alert] = check_failure_alerts(instance, None)[0][:1]
    assert (alert.subject, alert.severity) == ("evaluation:gate", "ERROR")
