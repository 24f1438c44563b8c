"""The `features` layer: point-in-time-correct transaction features (docs/features.md), and the sensor that
rebuilds the days a late label changes.

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is its job and sensor.
"""

import dagster as dg

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS
from fraud_assets.defs.features.jobs import FEATURES_JOBS
from fraud_assets.defs.features.sensors import FEATURES_SENSORS

control = dg.Definitions(jobs=FEATURES_JOBS, sensors=FEATURES_SENSORS)
defs = dg.Definitions.merge(
    dg.Definitions(assets=[transaction_features], asset_checks=FEATURE_CHECKS), control
)
