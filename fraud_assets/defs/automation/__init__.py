"""The `automation` layer. `defs` is merged into the code location by fraud_assets/definitions.py."""

import dagster as dg

defs = dg.Definitions()
