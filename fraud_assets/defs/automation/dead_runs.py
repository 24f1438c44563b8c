"""`dead_run_sensor`: under the daemon, a run whose worker died is failed, its pool slots are freed and an
alert is sent (lib/dead_runs.py). The sensor runs in the code server, on the host of the run workers the
default run launcher starts, so it can see whether they still exist."""

import dagster as dg

from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.dead_runs import reap_dead_runs

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
