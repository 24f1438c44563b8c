"""Which process runs a run, recorded on the run, so a run whose worker died can be told from one still
working (lib/dead_runs.py).

A run worker tags its run with `fraud_assets/run_worker` when it starts: run id, host name, the host's boot
time, pid and the process's start time. On the same host that is enough to say for certain that the
worker is gone: the pid no longer exists, or now belongs to a process that started later (pid reuse), or
the host rebooted since. A worker on another host cannot be seen from here and is never judged.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass

import dagster as dg
import psutil

from fraud_assets.lib.dagster_compat import add_run_tags, in_process_executor_with_start_hook

WORKER_TAG = "fraud_assets/run_worker"
# Start and boot times are recomputed from kernel clock ticks on every read; a second of slack absorbs the
# rounding, and no pid is reused nor host rebooted within a second.
CLOCK_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class RunWorker:
    # The run the record belongs to: a re-execution copies its parent's tags, and must not be judged by
    # its parent's worker.
    run_id: str
    host: str
    boot_time: float
    pid: int
    started: float

    @classmethod
    def current(cls, run_id: str) -> RunWorker:
        return cls(
            run_id=run_id,
            host=socket.gethostname(),
            boot_time=psutil.boot_time(),
            pid=os.getpid(),
            started=psutil.Process().create_time(),
        )

    def tags(self) -> dict[str, str]:
        return {WORKER_TAG: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def of_run(cls, run: dg.DagsterRun) -> RunWorker | None:
        """The worker recorded on `run`, or None: not recorded (yet), unreadable, or another run's."""
        try:
            worker = cls(**json.loads(run.tags[WORKER_TAG]))
        except (KeyError, TypeError, ValueError):
            return None
        return worker if worker.run_id == run.run_id else None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def why_gone(worker: RunWorker) -> str | None:
    """Why `worker` is certainly not running any more, or None: it runs, or it is on another host."""
    if worker.host != socket.gethostname():
        return None
    if abs(worker.boot_time - psutil.boot_time()) > CLOCK_SLACK_SECONDS:
        return "the host restarted since the run started"
    try:
        process = psutil.Process(worker.pid)
        started, status = process.create_time(), process.status()
    except psutil.NoSuchProcess:
        return "the process no longer exists"
    except psutil.AccessDenied:
        return None  # it exists; another user's process is nothing we can judge
    if abs(started - worker.started) > CLOCK_SLACK_SECONDS:
        return "the process no longer exists (its pid now belongs to a later process)"
    if status == psutil.STATUS_ZOMBIE:
        return "the process has exited"
    return None


def record_run_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    add_run_tags(instance, run_id, RunWorker.current(run_id).tags())


recorded_in_process_executor = in_process_executor_with_start_hook(
    record_run_worker,
    description=(
        "Dagster's in-process executor that first tags the run with its worker process "
        f"({WORKER_TAG}), so dead_run_sensor and `make pipeline` can tell a dead run from a running one."
    ),
)
