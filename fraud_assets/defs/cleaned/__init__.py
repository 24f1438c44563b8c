"""The `cleaned` layer: typed EUR/UTC transactions, quarantine, labels, cards, terminals, FX, and the sensor
that cleans again the days a late FX rate or terminal changes.

`defs` is merged into the code location by fraud_assets/definitions.py; `control` is its job and sensor.
"""

import dagster as dg

from fraud_assets.defs.cleaned.assets import CLEANED_ASSETS
from fraud_assets.defs.cleaned.checks import CLEANED_CHECKS
from fraud_assets.defs.cleaned.jobs import CLEANED_JOBS
from fraud_assets.defs.cleaned.sensors import CLEANED_SENSORS

control = dg.Definitions(jobs=CLEANED_JOBS, sensors=CLEANED_SENSORS)
defs = dg.Definitions.merge(dg.Definitions(assets=CLEANED_ASSETS, asset_checks=CLEANED_CHECKS), control)
