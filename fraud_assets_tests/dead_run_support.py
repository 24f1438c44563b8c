"""Real run workers for the dead-run tests, stopped at a known point so that a test can SIGKILL them there.

- `hold_duckdb_slot(marker)`: a run worker (the code location's executor, so it records itself on its run)
  whose step claims the `duckdb` pool slot, touches `marker` and sleeps.
- `python -m fraud_assets_tests.dead_run_support pipeline-mid-write <marker> [args]`: `make pipeline`'s
  entry point, parked inside the transaction that writes cleaned transactions (the INSERT has run, the
  COMMIT has not): it touches `marker` and sleeps. Only this test launcher wraps `duckdb.connect`; the
  pipeline itself runs unchanged.
- `slot_holder_process(tmp_path)`: such a worker, alive, for a fixture; `start(...)`,
  `wait_for_marker(...)`, `kill(...)` drive any of these processes from a test.
"""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from fraud_assets.cli.dagster_home import write_dagster_yaml
from fraud_assets.lib.run_worker import recorded_in_process_executor

PARK_SECONDS = 600
# Generous: a worker imports Dagster and the definitions on a shared, loaded 2-core machine.
WORKER_START_TIMEOUT = 300
CLEANED_TRANSACTIONS_INSERT = re.compile(r'^\s*INSERT\s+INTO\s+"?cleaned"?\s*\.\s*"?transactions\b', re.I)


# -- a run worker holding the duckdb slot ---------------------------------------------------------------
@dg.op(pool="duckdb", config_schema={"marker": str})
def hold_slot(context) -> None:
    Path(context.op_config["marker"]).touch()
    time.sleep(PARK_SECONDS)


@dg.job(executor_def=recorded_in_process_executor)
def slot_holding_job() -> None:
    hold_slot()


def hold_duckdb_slot(marker: str) -> None:
    """Run `slot_holding_job` as a run worker does: through the instance in $DAGSTER_HOME."""
    with dg.DagsterInstance.get() as instance:
        dg.execute_job(
            dg.reconstructable(slot_holding_job),
            instance=instance,
            run_config={"ops": {"hold_slot": {"config": {"marker": marker}}}},
        )


# -- make pipeline parked in the middle of a DuckDB write -------------------------------------------------
class _ParkingConnection:
    """A DuckDB connection that parks the process after the INSERT into cleaned.transactions."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, marker: Path) -> None:
        self._conn, self._marker = conn, marker

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def cursor(self):
        return _ParkingConnection(self._conn.cursor(), self._marker)

    def execute(self, query, *args, **kwargs):
        result = self._conn.execute(query, *args, **kwargs)
        if isinstance(query, str) and CLEANED_TRANSACTIONS_INSERT.match(query):
            self._marker.touch()
            time.sleep(PARK_SECONDS)
        return result


def pipeline_parked_mid_write(marker: Path, argv: list[str]) -> None:
    real_connect = duckdb.connect

    def connect(*args, **kwargs):
        return _ParkingConnection(real_connect(*args, **kwargs), marker)

    duckdb.connect = connect
    sys.argv = ["fraud_assets.cli.pipeline", *argv]
    runpy.run_module("fraud_assets.cli.pipeline", run_name="__main__", alter_sys=True)


# -- fixtures --------------------------------------------------------------------------------------------
@dataclass
class SlotHolder:
    proc: subprocess.Popen
    instance: dg.DagsterInstance

    @property
    def run(self) -> dg.DagsterRun:
        [record] = self.instance.get_run_records()
        return record.dagster_run

    def kill(self) -> None:
        kill(self.proc)


@contextlib.contextmanager
def slot_holder_process(tmp_path: Path) -> Iterator[SlotHolder]:
    """A real run worker process, alive, parked in a step that holds the `duckdb` pool slot, on the instance
    in $DAGSTER_HOME (conftest: under tmp_path) with the platform's dagster.yaml."""
    home = Path(os.environ["DAGSTER_HOME"])
    write_dagster_yaml(home)
    marker, log = tmp_path / "holding-slot", tmp_path / "worker.log"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        proc = start(["-m", "fraud_assets_tests.dead_run_support", "hold-duckdb-slot", str(marker)], {}, log)
        try:
            wait_for_marker(proc, marker, WORKER_START_TIMEOUT, log)
            yield SlotHolder(proc, instance)
        finally:
            if proc.poll() is None:
                kill(proc)


# -- driving a worker from a test -------------------------------------------------------------------------
def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for_marker(proc: subprocess.Popen, marker: Path, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) before {marker.name}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"worker never reached {marker.name} in {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(0.2)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL, as the kernel's OOM killer does: no handler, no clean-up, no failure event."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


if __name__ == "__main__":
    command, marker_arg, *rest = sys.argv[1:]
    if command == "pipeline-mid-write":
        pipeline_parked_mid_write(Path(marker_arg), rest)
    elif command == "hold-duckdb-slot":
        # The job must come from the importable module, not __main__, to be reconstructable.
        from fraud_assets_tests.dead_run_support import hold_duckdb_slot as hold

        hold(marker_arg)
    else:
        raise SystemExit(f"unknown command {command!r}")
