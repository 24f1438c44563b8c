"""The `monitoring` layer: drift (PSI) and performance on matured labels (docs/monitoring.md).
`defs` is merged into the code location by fraud_assets/definitions.py."""

import dagster as dg

from fraud_assets.defs.monitoring.assets import feature_drift, model_performance
from fraud_assets.defs.monitoring.shadow_comparison import shadow_comparison

defs = dg.Definitions(assets=[feature_drift, model_performance, shadow_comparison])
