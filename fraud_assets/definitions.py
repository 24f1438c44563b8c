"""The fraud_assets code location: every layer's assets, jobs and sensors, the automation policy, code
references and classification tags applied once, and the shared resources."""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs import cleaned, features, models, monitoring, raw, scoring
from fraud_assets.defs.policy import apply_policies, automation_sensor
from fraud_assets.lib.classification import apply_classification
from fraud_assets.lib.code_references import with_code_references
from fraud_assets.lib.run_worker import recorded_in_process_executor
from fraud_assets.lib.sqlite_instance import install as install_sqlite_synchronous
from fraud_assets.resources import build_resources

LAYERS = (raw, cleaned, features, models, scoring, monitoring)

# Every process that loads this code location (run workers, code server, `make pipeline`) writes the local
# SQLite instance's events with the durability FRAUD_SQLITE_SYNCHRONOUS asks for (lib/sqlite_instance.py).
install_sqlite_synchronous()


def control_path() -> dg.Definitions:
    """Every layer's jobs, sensors and schedules and the automation sensor, without assets: what decides
    when things run (the tests run it on a stand-in asset graph)."""
    return dg.Definitions.merge(
        raw.control,
        cleaned.control,
        features.control,
        models.control,
        scoring.control,
        monitoring.control,
        dg.Definitions(sensors=[automation_sensor]),
    )


def _layers() -> dg.Definitions:
    return dg.Definitions.merge(
        *(layer.defs for layer in LAYERS),
        dg.Definitions(sensors=[automation_sensor]),
        # In-process: one worker process per run instead of one per step. DuckDB admits one writer at a
        # time anyway (the `duckdb` pool), so per-step processes only add start-up time to every run.
        # The worker records itself on the run, so a run whose worker died is found (lib/dead_runs.py).
        dg.Definitions(resources=build_resources(), executor=recorded_in_process_executor),
    )


# One Definitions at module scope: Dagster refuses a module that holds two.
defs = apply_classification(apply_policies(with_code_references(_layers())))
