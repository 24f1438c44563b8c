"""Alerting: failed runs and failed asset checks go to the pluggable `alert_sink` (lib/alerting.py).

Both sensors read only the Dagster instance; the sink owns where alerts go (log + outbox file + the
`monitoring.alerts` table, plus a webhook when configured)."""

from datetime import UTC, datetime

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from fraud_assets.lib.alerting import Alert, AlertSink

CHECK_SENSOR_BATCH = 100


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    description="Sends every failed run of this code location to the alert sink (ERROR) with its error.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_sink: AlertSink) -> None:
    run = context.dagster_run
    error = context.failure_event.message or "run failed"
    tags = {k: v for k, v in run.tags.items() if k.startswith(("fraud_assets/", "dagster/partition"))}
    alert_sink.send(
        [
            Alert(
                severity="ERROR",
                kind="run_failure",
                subject=run.job_name,
                message=error[:2000],
                run_id=run.run_id,
                details={"tags": tags, "event_id": run.run_id},
            )
        ],
        log=context.log,
    )


FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def _check_alerts_for_run(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    alerts = []
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        if ev.passed:
            continue
        severity = "ERROR" if ev.severity == dg.AssetCheckSeverity.ERROR else "WARN"
        md = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
        alerts.append(
            Alert(
                severity=severity,
                kind="check_failure",
                subject=f"{ev.asset_key.to_user_string()}:{ev.check_name}",
                message=ev.description or f"check {ev.check_name} failed",
                run_id=run_id,
                details={"metadata": md, "partition": ev.partition or "", "event_id": rec.storage_id},
            )
        )
    return alerts


def check_failure_alerts(
    instance: dg.DagsterInstance, after: float | None
) -> tuple[list[Alert], float | None]:
    """Alerts for failed check evaluations in runs that finished after `after` (a run update timestamp),
    and the new cursor. Read run by run: the default SQLite event log is sharded by run."""
    since = datetime.fromtimestamp(after, tz=UTC) if after is not None else None
    runs = instance.get_run_records(
        RunsFilter(statuses=FINISHED, updated_after=since),
        limit=CHECK_SENSOR_BATCH,
        order_by="update_timestamp",
        ascending=True,
    )
    alerts = [a for r in runs for a in _check_alerts_for_run(instance, r.dagster_run.run_id)]
    return alerts, (runs[-1].update_timestamp.timestamp() if runs else after)


@dg.sensor(
    name="check_failure_alert_sensor",
    description=(
        "Sends every failed asset check evaluation (WARN and ERROR) to the alert sink, and retries loading "
        "the alert outbox into monitoring.alerts when the warehouse was busy."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alert_sink: AlertSink):
    after = float(context.cursor) if context.cursor else None
    alerts, cursor = check_failure_alerts(context.instance, after)
    if alerts:
        alert_sink.send(alerts, log=context.log)
    else:
        alert_sink.flush(context.log)
    if cursor is not None:
        context.update_cursor(str(cursor))
    return dg.SkipReason(f"{len(alerts)} check failure(s) alerted")
