"""Runs whose worker died, under the daemon (dead_run_sensor) and at `make pipeline` start-up: failed with a
reason, their pool slots freed, alerted once; live workers left alone. Real instance, real run worker
processes, really killed (SIGKILL)."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import pytest

from fraud_assets.cli.dagster_home import write_dagster_yaml
from fraud_assets.defs.monitoring.sensors import dead_run_sensor, run_failure_alert_sensor
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.dagster_compat import (
    add_run_tags,
    claimed_pool_slots,
    fail_run_unexpectedly_terminated,
)
from fraud_assets.lib.dead_runs import reap_dead_runs
from fraud_assets.lib.run_worker import RunWorker
from fraud_assets_tests.dead_run_support import slot_holder_process


@pytest.fixture
def slot_holder(tmp_path):
    with slot_holder_process(tmp_path) as holder:
        yield holder


def evaluate_dead_run_sensor(instance: dg.DagsterInstance, sink: AlertSink) -> None:
    dead_run_sensor(dg.build_sensor_context(instance=instance, resources={"alert_sink": sink}))


def evaluate_run_failure_sensor(instance: dg.DagsterInstance, run: dg.DagsterRun, sink: AlertSink) -> None:
    [failure] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alert_sink": sink},
    ).for_run_failure()
    run_failure_alert_sensor(context)


def test_dead_run_sensor_fails_a_run_whose_worker_was_killed_frees_its_slot_and_alerts(
    slot_holder,
    data_dir,
):
    sink = AlertSink(data_dir=str(data_dir))
    slot_holder.kill()
    assert slot_holder.run.status == dg.DagsterRunStatus.STARTED  # a SIGKILLed worker reports nothing

    evaluate_dead_run_sensor(slot_holder.instance, sink)

    run = slot_holder.run
    assert run.status == dg.DagsterRunStatus.FAILURE
    [failure] = slot_holder.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert f"pid {slot_holder.proc.pid}" in failure.event_log_entry.dagster_event.message
    assert "the process no longer exists" in failure.event_log_entry.dagster_event.message
    assert claimed_pool_slots(slot_holder.instance) == {}
    [alert] = sink.read_outbox()
    assert (alert["kind"], alert["run_id"], alert["severity"]) == ("dead_run", run.run_id, "ERROR")


def test_dead_run_sensor_leaves_a_run_whose_worker_is_alive(slot_holder, data_dir):
    sink = AlertSink(data_dir=str(data_dir))
    evaluate_dead_run_sensor(slot_holder.instance, sink)
    assert slot_holder.run.status == dg.DagsterRunStatus.STARTED
    assert claimed_pool_slots(slot_holder.instance) == {slot_holder.run.run_id: 1}
    assert sink.read_outbox() == []


def test_a_dead_run_is_alerted_once_not_again_as_a_run_failure(slot_holder, data_dir):
    sink = AlertSink(data_dir=str(data_dir))
    slot_holder.kill()
    evaluate_dead_run_sensor(slot_holder.instance, sink)
    evaluate_run_failure_sensor(slot_holder.instance, slot_holder.run, sink)

    assert [a["kind"] for a in sink.read_outbox()] == ["dead_run"]


def test_a_failed_run_that_run_retries_reexecute_is_a_warning_not_a_page(slot_holder, data_dir):
    # Its worker died under the code server (not dead_run_sensor's case): Dagster retries it, and a retry
    # that succeeds should not have paged anyone.
    sink = AlertSink(data_dir=str(data_dir))
    slot_holder.kill()
    fail_run_unexpectedly_terminated(slot_holder.instance, slot_holder.run, "worker gone")
    evaluate_run_failure_sensor(slot_holder.instance, slot_holder.run, sink)

    [alert] = sink.read_outbox()
    assert (alert["kind"], alert["severity"]) == ("run_failure", "WARN")
    assert "retries the run automatically" in alert["message"]


def test_a_run_the_code_server_failed_after_its_worker_died_is_alerted_with_how_it_died(
    slot_holder, data_dir
):
    # What the code server records when a run's process ends before its run: an engine event saying how,
    # then a failure with a generic message.
    sink = AlertSink(data_dir=str(data_dir))
    slot_holder.kill()
    run = slot_holder.run
    crash = f"Run execution process for {run.run_id} was terminated by signal 9 (SIGKILL)."
    slot_holder.instance.report_engine_event(f"[DagsterApiServer] {crash}", run)
    slot_holder.instance.report_run_failed(run)
    evaluate_run_failure_sensor(slot_holder.instance, slot_holder.run, sink)

    [alert] = sink.read_outbox()
    assert crash in alert["message"]
    assert json.loads(alert["details"])["runbook"] == "docs/runbooks.md#a-run-that-died"


def test_a_run_that_failed_by_itself_is_not_called_killed(slot_holder, data_dir):
    sink = AlertSink(data_dir=str(data_dir))
    slot_holder.kill()
    slot_holder.instance.report_run_failed(slot_holder.run, "Steps failed: ['x'].")
    evaluate_run_failure_sensor(slot_holder.instance, slot_holder.run, sink)

    [alert] = sink.read_outbox()
    assert "Run execution process" not in alert["message"]
    assert json.loads(alert["details"])["runbook"] == "docs/runbooks.md#recover-a-failed-run"


def test_a_finished_run_still_holding_a_slot_gives_it_back(slot_holder, data_dir):
    # The code server fails a run whose worker process died under it, but leaves its slots claimed.
    slot_holder.kill()
    slot_holder.instance.report_run_failed(slot_holder.run, "Run execution process unexpectedly exited")
    assert claimed_pool_slots(slot_holder.instance) == {slot_holder.run.run_id: 1}

    reaped = reap_dead_runs(slot_holder.instance, AlertSink(data_dir=str(data_dir)))

    assert reaped.released == {slot_holder.run.run_id: 1}
    assert claimed_pool_slots(slot_holder.instance) == {}


def test_a_finished_run_whose_worker_cannot_be_checked_keeps_its_slot_until_the_grace_ends(
    slot_holder, data_dir
):
    # Another host's worker may still be finishing a write after its run was marked failed.
    slot_holder.kill()
    instance, run = slot_holder.instance, slot_holder.run
    elsewhere = dataclasses.replace(RunWorker.of_run(run), host="another-host")
    add_run_tags(instance, run.run_id, elsewhere.tags())
    instance.report_run_failed(run, "Exceeded maximum runtime")
    sink = AlertSink(data_dir=str(data_dir))
    ended = instance.get_run_record_by_id(run.run_id).end_time
    grace = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]

    assert reap_dead_runs(instance, sink, now=ended + grace - 1).released == {}
    assert reap_dead_runs(instance, sink, now=ended + grace + 1).released == {run.run_id: 1}


def test_dagster_yaml_frees_slots_of_finished_runs_and_retries_a_run_whose_worker_died(tmp_path):
    home = write_dagster_yaml(tmp_path / "home").parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
