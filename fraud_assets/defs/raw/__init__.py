"""The `raw` layer: landing files registered and ingested as received, PAN tokenised; the landing and
missing-day sensors and the jobs a landed file runs.

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is its jobs and sensors.
"""

import dagster as dg

from fraud_assets.defs.raw.assets import RAW_ASSETS
from fraud_assets.defs.raw.checks import RAW_CHECKS
from fraud_assets.defs.raw.jobs import RAW_JOBS
from fraud_assets.defs.raw.sensors import RAW_SENSORS

control = dg.Definitions(jobs=RAW_JOBS, sensors=RAW_SENSORS)
defs = dg.Definitions.merge(dg.Definitions(assets=RAW_ASSETS, asset_checks=RAW_CHECKS), control)
