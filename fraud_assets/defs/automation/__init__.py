"""The `automation` layer: sensors, schedules, alerting and the declarative policy (docs/monitoring.md).

`defs` is merged into the code location by fraud_assets/definitions.py, which also calls
`apply_policies` (policy.py) on the merged definitions to set every asset's automation condition and
freshness policy in one place."""

import os

import dagster as dg

from fraud_assets.defs.automation.alerts import check_failure_alert_sensor, run_failure_alert_sensor
from fraud_assets.defs.automation.dead_runs import dead_run_sensor
from fraud_assets.defs.automation.lookback import feature_lookback_sensor
from fraud_assets.defs.automation.policy import apply_policies, automation_sensor
from fraud_assets.defs.automation.sensors import landing_sensor
from fraud_assets.defs.automation.training import training_trigger_sensor, weekly_retrain
from fraud_assets.lib.alerting import AlertSink

WEBHOOK_ENV = "FRAUD_ALERT_WEBHOOK_URL"


def build_alert_sink() -> AlertSink:
    # The webhook is optional: only reference the env var when it is set, so an unset one is not an error.
    webhook = dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None
    return AlertSink(webhook_url=webhook)


defs = dg.Definitions(
    sensors=[
        landing_sensor,
        automation_sensor,
        training_trigger_sensor,
        feature_lookback_sensor,
        run_failure_alert_sensor,
        check_failure_alert_sensor,
        dead_run_sensor,
    ],
    schedules=[weekly_retrain],
    resources={"alert_sink": build_alert_sink()},
)

__all__ = ["apply_policies", "defs"]
