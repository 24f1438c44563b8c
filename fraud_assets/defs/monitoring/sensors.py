"""The monitoring layer's sensors: failed runs, failed checks and dead runs reach the alert sink; new
labels recompute the performance (and the shadow comparison) of the days they change.

They read only the Dagster instance (and, for dead runs, this host's processes: they run in the code
server, on the host of the run workers the default run launcher starts); the sink owns where alerts go
(log, outbox file, `monitoring.alerts`, a webhook when configured).

`monitoring/model_performance` and `monitoring/shadow_comparison` are partitioned by business date, and a
day's AP, alert precision and maturity read the labels known now, its Card Precision@100 the cards
detected on the model's earlier days. Labels are one unpartitioned table, so Dagster cannot map "labels
changed" to the days they affect (following it declaratively would recompute every day): a labels rebuild
whose changed labels' earliest transaction date is T and earliest report date R makes stale the days of
both from min(T, R - 8) on (R - 8: the days whose labels matured with these reports) computed before it.
"""

import datetime as dt

import dagster as dg

from fraud_assets.defs.cleaned.assets import CHANGED_FIRST_REPORT, CHANGED_FIRST_TRANSACTION, CHANGED_LABELS
from fraud_assets.defs.monitoring.alerts import (
    CheckAlertCursor,
    check_failure_alerts,
    failed_only_on_blocking_checks,
    step_failure_causes,
    worker_crash,
)
from fraud_assets.defs.monitoring.jobs import LABELLED_MONITORS, performance_job
from fraud_assets.defs.monitoring.thresholds import MATURITY_DAYS
from fraud_assets.lib.alerting import RUNBOOKS, Alert, AlertSink
from fraud_assets.lib.dagster_compat import will_be_retried
from fraud_assets.lib.dead_runs import DEAD_RUN_TAG, reap_dead_runs
from fraud_assets.lib.partitions import consecutive_blocks
from fraud_assets.lib.runs import (
    TAG_TRIGGER,
    days_request,
    materializations_after,
    metadata_value,
    partitions_written_after,
)

LABELS = dg.AssetKey(["cleaned", "labels"])
TAG_CAUSE = "fraud_assets/performance_cause"
BATCH = 500


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
    # The code server fails a run whose worker died under it with a generic message; its engine event
    # beside it says how the process ended (signal, exit code).
    crash = worker_crash(context.instance, run.run_id)
    if crash:
        error = f"{error} {crash}"
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
                details={
                    "tags": tags,
                    "event_id": run.run_id,
                    **({"runbook": RUNBOOKS["dead_run"]} if crash else {}),
                },
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


def _performance_start(record) -> dt.date | None:
    """The first business day whose performance a cleaned/labels materialisation changed: its changed
    labels' earliest transaction day (their own day, then the later days Card Precision carries its
    detections to), or the day that matured with its earliest report if earlier; None when it changed none.
    A materialisation without the first transaction date counts from its first report."""
    if not metadata_value(record, CHANGED_LABELS) or not (
        report := metadata_value(record, CHANGED_FIRST_REPORT)
    ):
        return None
    report_day = dt.date.fromisoformat(report)
    first = dt.date.fromisoformat(metadata_value(record, CHANGED_FIRST_TRANSACTION) or report)
    return min(first, report_day - dt.timedelta(days=MATURITY_DAYS + 1))


def stale_performance_days(instance: dg.DagsterInstance, records: list) -> list[str]:
    """The days of the labelled monitors (performance, shadow comparison) computed before a labels
    materialisation of `records` that changed them."""
    starts = [(start, r.storage_id) for r in records if (start := _performance_start(r)) is not None]
    if not starts:
        return []
    stale: set[str] = set()
    for key in LABELLED_MONITORS:
        computed = sorted(instance.get_materialized_partitions(key))
        for start, storage_id in starts:
            days = [day for day in computed if day >= start.isoformat()]
            stale |= set(days) - partitions_written_after(instance, key, days, storage_id)
    return sorted(stale)


@dg.sensor(
    name="performance_labels_sensor",
    description=(
        "Recomputes monitoring/model_performance and monitoring/shadow_comparison (performance_rebuild, one "
        "run per block of days) for the days a cleaned/labels rebuild changed: the days its labels belong "
        "to and every later day (Card Precision carries a day's detections to the next days), and the day "
        "whose labels matured with its reports. Reads only the Dagster instance."
    ),
    job=performance_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def performance_labels_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    records = materializations_after(context.instance, LABELS, after, BATCH)
    if not records:
        return dg.SkipReason("no labels rebuild since the last tick")
    context.update_cursor(str(records[-1].storage_id))
    days = stale_performance_days(context.instance, records)
    if not days:
        return dg.SkipReason("the new labels change no computed performance day")
    stamp = records[-1].storage_id
    tags = {TAG_TRIGGER: "labels", TAG_CAUSE: f"labels changed: performance from {days[0]}"}
    return [
        days_request(performance_job.name, block, f"performance:{stamp}:{block[0]}", tags)
        for block in consecutive_blocks(days)
    ]


MONITORING_SENSORS = [
    run_failure_alert_sensor,
    check_failure_alert_sensor,
    dead_run_sensor,
    performance_labels_sensor,
]
