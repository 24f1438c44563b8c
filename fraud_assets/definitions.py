"""The fraud_assets code location: every layer's definitions merged with the shared resources."""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs import automation, cleaned, features, models, monitoring, raw, scoring
from fraud_assets.defs.automation import apply_policies
from fraud_assets.lib.run_worker import recorded_in_process_executor
from fraud_assets.resources import build_resources

LAYERS = (raw, cleaned, features, models, scoring, monitoring, automation)

# Automation conditions and freshness policies are set per layer in one place (defs/automation/policy.py).
defs = apply_policies(
    dg.Definitions.merge(
        *(layer.defs for layer in LAYERS),
        # In-process: one worker process per run instead of one per step. DuckDB admits one writer at a
        # time anyway (the `duckdb` pool), so per-step processes only added start-up time to every run.
        # The worker records itself on the run, so a run whose worker died is found (lib/dead_runs.py).
        dg.Definitions(resources=build_resources(), executor=recorded_in_process_executor),
    )
)
