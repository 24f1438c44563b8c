"""The `raw` layer: landing files registered and ingested as received, PAN tokenised.

`defs` is merged into the code location by fraud_assets/definitions.py.
"""

import dagster as dg

from fraud_assets.defs.raw.assets import RAW_ASSETS
from fraud_assets.defs.raw.checks import RAW_CHECKS

defs = dg.Definitions(assets=RAW_ASSETS, asset_checks=RAW_CHECKS)
