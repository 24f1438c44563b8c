"""A warehouse held by a process outside the platform (a notebook's write connection): the step waits,
says who holds it, and is retried by Dagster until the holder lets go; a holder that outlasts the retries
fails the step with its name and PID (docs/runbooks.md, lock error). The holder is a real second process:
DuckDB's file lock is per process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.resources import Warehouse, build_resources

HOLD = """
import duckdb, pathlib, sys, time
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS a")
pathlib.Path(sys.argv[2]).touch()
time.sleep(float(sys.argv[3]))
"""


@dg.asset
def reads_the_warehouse(duckdb: Warehouse) -> int:
    with duckdb.get_connection() as conn:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def _holder(tmp_path: Path, seconds: float) -> tuple[subprocess.Popen, Path]:
    db, ready = tmp_path / "warehouse.duckdb", tmp_path / "holding"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(ready), str(seconds)])
    while not ready.exists():
        assert proc.poll() is None, "the holder exited before taking the lock"
        time.sleep(0.05)
    return proc, db


def _run(db: Path, **lock) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [reads_the_warehouse],
        resources={"duckdb": Warehouse(database=str(db), **lock)},
        instance=instance,
        raise_on_error=False,
    )
    return result, [e.user_message for e in instance.all_logs(result.run_id)]


def test_the_platform_opens_the_warehouse_through_the_lock_aware_resource(tmp_path):
    assert isinstance(build_resources(tmp_path, "k" * 32, "r" * 32)["duckdb"], Warehouse)


def test_a_lock_held_outside_the_platform_is_waited_for_named_and_the_step_retried_until_it_is_free(tmp_path):
    holder, db = _holder(tmp_path, seconds=3)
    try:
        result, logs = _run(db, lock_wait_seconds=0.5, lock_retries=30, lock_retry_seconds=1)
    finally:
        holder.wait()
    assert result.success
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert any("warehouse locked by" in m and f"(PID {holder.pid})" in m for m in logs)


def test_a_lock_that_outlasts_the_retries_fails_the_step_naming_the_holder(tmp_path):
    holder, db = _holder(tmp_path, seconds=600)
    try:
        result, _ = _run(db, lock_wait_seconds=0.2, lock_retries=1, lock_retry_seconds=1)
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:  # the innermost error is what the run-failure alert quotes
        error = error.cause
    assert error.cls_name == "IOException"
    assert "Conflicting lock is held in" in error.message
    assert f"(PID {holder.pid})" in error.message


@pytest.mark.parametrize("message", ["IO Error: No space left on device", "IO Error: Permission denied"])
def test_other_io_errors_are_not_taken_for_a_lock(tmp_path, monkeypatch, message):
    import duckdb

    def refuse(*args, **kwargs):
        raise duckdb.IOException(message)

    monkeypatch.setattr(duckdb, "connect", refuse)
    result, _ = _run(tmp_path / "w.duckdb", lock_wait_seconds=5)
    assert not result.success
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


@dg.asset
def waits_long(duckdb: Warehouse) -> int:
    with duckdb.get_connection(lock_wait_seconds=120) as conn:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def test_a_step_whose_retry_costs_more_than_waiting_waits_for_the_lock_itself(tmp_path):
    """The model candidates' registry write after a fit: it waits past the resource's wait instead of
    having Dagster retry the step (and fit again)."""
    holder, db = _holder(tmp_path, seconds=2)
    try:
        result = dg.materialize(
            [waits_long],
            resources={"duckdb": Warehouse(database=str(db), lock_wait_seconds=0.1, lock_retries=0)},
            raise_on_error=False,
        )
    finally:
        holder.wait()
    assert result.success
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
