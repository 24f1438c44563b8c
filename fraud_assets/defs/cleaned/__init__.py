"""The `cleaned` layer: typed EUR/UTC transactions, quarantine, labels, cards, terminals, FX.

`defs` is merged into the code location by fraud_assets/definitions.py.
"""

import dagster as dg

from fraud_assets.defs.cleaned.assets import CLEANED_ASSETS
from fraud_assets.defs.cleaned.checks import CLEANED_CHECKS

defs = dg.Definitions(assets=CLEANED_ASSETS, asset_checks=CLEANED_CHECKS)
