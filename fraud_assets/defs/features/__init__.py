"""The `features` layer: point-in-time-correct transaction features (docs/features.md).

`defs` is merged into the code location by fraud_assets/definitions.py.
"""

import dagster as dg

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS

defs = dg.Definitions(assets=[transaction_features], asset_checks=FEATURE_CHECKS)
