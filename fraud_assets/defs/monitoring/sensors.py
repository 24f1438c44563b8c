"""The monitoring layer's sensors: failed runs, failed checks and dead runs reach the alert sink.

They read only the Dagster instance (and, for dead runs, this host's processes: they run in the code
server, on the host of the run workers the default run launcher starts); the sink owns where alerts go
(log, outbox file, `monitoring.alerts`, a webhook when configured).
"""

import dagster as dg

from fraud_assets.defs.monitoring.alerts import (
    CheckAlertCursor,
    check_failure_alerts,
    failed_only_on_blocking_checks,
    step_failure_causes,
)
from fraud_assets.lib.alerting import Alert, AlertSink
from fraud_assets.lib.dagster_compat import will_be_retried
from fraud_assets.lib.dead_runs import DEAD_RUN_TAG, reap_dead_runs


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    description=(
        "Sends every failed run of this code location to the alert sink (ERROR) with its error, except "
        "runs that failed only because blocking checks failed: check_failure_alert_sensor reports those "
        "once, with the check's reason (one alert per cause, not two); and runs whose worker died, which "
        "dead_run_sensor (or make pipeline) failed and reported as dead_run. A failed run that Dagster's run "
        "retries will re-execute is a WARN: the ERROR comes only if its last retry fails too."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_sink: AlertSink) -> None:
    run = context.dagster_run
    if run.tags.get(DEAD_RUN_TAG) == run.run_id:
        context.log.info(f"run {run.run_id}: its worker died; alerted as dead_run")
        return
    if failed_only_on_blocking_checks(context.instance, run.run_id):
        context.log.info(
            f"run {run.run_id} stopped by blocking checks: reported by check_failure_alert_sensor"
        )
        return
    error = context.failure_event.message or "run failed"
    causes = step_failure_causes(context.instance, run.run_id)
    if causes:  # the run's message only names the failed steps; the first cause says what went wrong
        error = f"{error} Cause: {causes[0]}"
    # A retried run (its worker died, or it never started) often succeeds: warn now, page on the last try.
    retried = will_be_retried(run)
    if retried:
        error = f"{error} Dagster retries the run automatically (run_retries); ERROR if the retry fails too."
    days = ("dagster/partition", "dagster/asset_partition")  # a run's day, or its range of days
    tags = {k: v for k, v in run.tags.items() if k.startswith(("fraud_assets/", *days))}
    alert_sink.send(
        [
            Alert(
                severity="WARN" if retried else "ERROR",
                kind="run_failure",
                subject=run.job_name,
                message=error[:2000],
                run_id=run.run_id,
                details={"tags": tags, "event_id": run.run_id},
            )
        ],
        log=context.log,
    )


@dg.sensor(
    name="check_failure_alert_sensor",
    description=(
        "Sends failed asset check evaluations (WARN and ERROR) to the alert sink: once when a check starts "
        "failing or its cause changes, again daily while it stays failing; a pass closes it. Retries "
        "loading the alert outbox into monitoring.alerts when the warehouse was busy."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alert_sink: AlertSink):
    alerts, cursor = check_failure_alerts(context.instance, CheckAlertCursor.parse(context.cursor))
    if alerts:
        alert_sink.send(alerts, log=context.log)
    else:
        alert_sink.flush(context.log)
    context.update_cursor(cursor.serialize())
    failing = len(cursor.open)
    return dg.SkipReason(f"{len(alerts)} check failure(s) alerted; {failing} check(s) failing now")


# A dead run may hold the `duckdb` slot every landed day waits for: look often (the check is one query of
# in-progress runs and a process lookup each).
DEAD_RUN_SENSOR_INTERVAL_SECONDS = 15


@dg.sensor(
    name="dead_run_sensor",
    description=(
        "Finds in-progress runs whose worker process is gone on this host (killed: SIGKILL, out of memory; "
        "or the host restarted), marks them failed with the reason, frees the pool slots they held and "
        "sends one dead_run alert each; Dagster's run retries then re-execute them from failure. Also frees "
        "slots still held by finished runs. Runs on other hosts are left to their launcher's monitoring."
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=DEAD_RUN_SENSOR_INTERVAL_SECONDS,
)
def dead_run_sensor(context: dg.SensorEvaluationContext, alert_sink: AlertSink) -> dg.SkipReason:
    return dg.SkipReason(reap_dead_runs(context.instance, alert_sink, log=context.log).summary())


MONITORING_SENSORS = [run_failure_alert_sensor, check_failure_alert_sensor, dead_run_sensor]
