"""The `monitoring` layer: drift (PSI) and performance on matured labels (docs/monitoring.md), and the
sensors that send failed runs, failed checks and dead runs to the alert sink.

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is its job and sensors.
"""

import dagster as dg

from fraud_assets.defs.monitoring.assets import feature_drift, model_performance
from fraud_assets.defs.monitoring.checks import matured_ap_above_floor, psi_below_thresholds
from fraud_assets.defs.monitoring.jobs import MONITORING_JOBS
from fraud_assets.defs.monitoring.sensors import MONITORING_SENSORS
from fraud_assets.defs.monitoring.shadow_comparison import shadow_comparison

control = dg.Definitions(jobs=MONITORING_JOBS, sensors=MONITORING_SENSORS)
defs = dg.Definitions.merge(
    dg.Definitions(
        assets=[feature_drift, model_performance, shadow_comparison],
        asset_checks=[psi_below_thresholds, matured_ap_above_floor],
    ),
    control,
)
