"""Writes `$DAGSTER_HOME/dagster.yaml` (idempotent): telemetry and first-run pop-up off, the `duckdb` pool
limited to one step at a time, because DuckDB allows one writer process per file, and what happens to a
run whose worker died: its slots are freed and it is re-executed once (docs/runbooks.md).

Instance storage is SQLite under DAGSTER_HOME (Dagster's files, through lib/sqlite_instance.SqliteStorage)
unless `DAGSTER_PG_HOST` is set: then runs, event log and schedules live in Postgres
(`postgres_storage_yaml`), written when the process starts from its environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

DAGSTER_YAML = """\
# Written by fraud_assets (python -m fraud_assets.cli.dagster_home) from the environment when a process
# starts. Storage: SQLite under DAGSTER_HOME, or Postgres when DAGSTER_PG_HOST is set (appended at the end;
# docs/environments.md). The pool settings are the same everywhere.
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


# Every pool the platform's assets and checks declare: each is limited by `default_limit` above.
POOLS = ("duckdb",)


def show_pools(home: Path) -> None:
    """Record every pool with its limit in the instance under `home`, so the UI's Concurrency page lists it
    from the start: Dagster records a pool only when a step first claims it, and shows "no pool limits"
    until then. Dagster is imported here only: `scripts/with-env` runs this module before every command."""
    import dagster as dg

    from fraud_assets.lib.dagster_compat import show_pool_limit

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for pool in POOLS:
            show_pool_limit(instance, pool)


class InstanceConfigError(ValueError):
    """The environment asks for an instance that cannot be written (e.g. Postgres without a password)."""


PG_HOST = "DAGSTER_PG_HOST"
PG_PASSWORD = "DAGSTER_PG_PASSWORD"  # noqa: S105 - the variable's name, not a password
PG_DEFAULTS = {"DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_DB": "dagster"}


def postgres_storage_yaml() -> str:
    """Storage in Postgres when `DAGSTER_PG_HOST` is set, else "" (SQLite under DAGSTER_HOME).

    Host, port, user and database are written as values (`DAGSTER_PG_PORT`, `DAGSTER_PG_USER`,
    `DAGSTER_PG_DB`, defaults 5432 / dagster / dagster; `DAGSTER_PG_SSLMODE` optional); the password only
    as a reference to `DAGSTER_PG_PASSWORD`, which Dagster reads from each process's environment.
    Step logs go to the data volume (fraud_assets/lib/step_logs.py), where the code server's run workers
    write them and the webserver reads them.
    """
    host = os.environ.get(PG_HOST, "").strip()
    if not host:
        return ""
    if not os.environ.get(PG_PASSWORD):
        raise InstanceConfigError(f"{PG_HOST} is set but {PG_PASSWORD} is not: set it from the secret store")
    pg = {name: os.environ.get(name) or default for name, default in PG_DEFAULTS.items()}
    if not pg["DAGSTER_PG_PORT"].isdigit():
        raise InstanceConfigError(f"DAGSTER_PG_PORT must be a port number, got {pg['DAGSTER_PG_PORT']!r}")
    db = {
        "hostname": host,
        "port": int(pg["DAGSTER_PG_PORT"]),
        "username": pg["DAGSTER_PG_USER"],
        "password": {"env": PG_PASSWORD},
        "db_name": pg["DAGSTER_PG_DB"],
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
        "scheme": "postgresql+psycopg2",
    }
    if sslmode := os.environ.get("DAGSTER_PG_SSLMODE", "").strip():
        db["params"] = {"sslmode": sslmode}
    # Processes apart share no DAGSTER_HOME, and a run worker takes its instance from the launching
    # process's configuration: both directories are resolved by each process from its own environment.
    compute_logs = {"module": "fraud_assets.lib.step_logs", "class": "DataVolumeComputeLogManager"}
    artifacts = {
        "module": "dagster.core.storage.root",
        "class": "LocalArtifactStorage",
        "config": {"base_dir": {"env": "DAGSTER_HOME"}},
    }
    instance = {
        "storage": {"postgres": {"postgres_db": db}},
        "compute_logs": compute_logs,
        "local_artifact_storage": artifacts,
    }
    return yaml.safe_dump(instance, sort_keys=False)


def sqlite_storage_yaml(home: Path) -> str:
    """Dagster's SQLite files under `home` (where Dagster puts them by default), read and written through
    lib/sqlite_instance.SqliteStorage: one SQLAlchemy engine per database kept (a third of each event's
    cost)."""
    storage = {
        "module": "fraud_assets.lib.sqlite_instance",
        "class": "SqliteStorage",
        "config": {"base_dir": str(home.resolve())},
    }
    return yaml.safe_dump({"storage": {"custom": storage}}, sort_keys=False)


def write_dagster_yaml(home: Path) -> Path:
    text = DAGSTER_YAML + (postgres_storage_yaml() or sqlite_storage_yaml(home))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


if __name__ == "__main__":
    try:
        write_dagster_yaml(Path(sys.argv[1]))
    except InstanceConfigError as exc:
        sys.exit(f"dagster.yaml not written: {exc}")
