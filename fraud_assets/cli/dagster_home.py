"""Writes `$DAGSTER_HOME/dagster.yaml` (idempotent): telemetry and first-run pop-up off, the `duckdb` pool
limited to one step at a time, because DuckDB allows one writer process per file, and what happens to a
run whose worker died: its slots are freed and it is re-executed once (docs/runbooks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

DAGSTER_YAML = """\
# Written by fraud_assets (python -m fraud_assets.cli.dagster_home); local and CI instance.
# Production replaces storage with Postgres and the run launcher with Kubernetes/Celery
# (docs/environments.md); the pool settings stay as they are.
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  pools:
    # Every DuckDB-writing asset and check declares pool="duckdb": one writer at a time.
    default_limit: 1
    granularity: op
    # Launch up to 2 runs beyond the free slots: their worker processes start while another run writes,
    # instead of one after another (a landed day's run then starts as soon as the slot frees).
    op_granularity_run_buffer: 2
  runs:
    max_concurrent_runs: 4
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # The run queue is read every second instead of every 5 s: a landed day's run starts sooner (one
    # cheap query on the instance's storage per second).
    dequeue_interval_seconds: 1
run_monitoring:
  enabled: true
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
  # A run whose worker died still holds the pool slots of the steps it was in (a `duckdb` slot blocks every
  # later writer). The daemon frees the slots of a finished run this long after it ended; the code server
  # fails a run whose worker process died, dead_run_sensor one whose code server died with it.
  free_slots_after_run_end_seconds: 10
run_retries:
  # Re-execute a run from failure once when its worker died (killed, out of memory, host restart), never
  # for a failed step or check: those are the data or the code, and a retry would only fail again.
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""


def write_dagster_yaml(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != DAGSTER_YAML:
        target.write_text(DAGSTER_YAML)
    return target


if __name__ == "__main__":
    write_dagster_yaml(Path(sys.argv[1]))
