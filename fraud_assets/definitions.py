"""The fraud_assets code location: every layer's definitions merged with the shared resources."""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs import automation, cleaned, features, models, monitoring, raw, scoring
from fraud_assets.resources import build_resources

LAYERS = (raw, cleaned, features, models, scoring, monitoring, automation)

defs = dg.Definitions.merge(
    *(layer.defs for layer in LAYERS),
    dg.Definitions(resources=build_resources()),
)
