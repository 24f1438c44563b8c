"""Which process runs a run, recorded on the run, so a run whose worker died can be told from one still
working (lib/dead_runs.py).

A run worker tags its run with `fraud_assets/run_worker` when it starts: run id, host name, the host's boot
(Linux's boot id, and the boot time), pid and the process's start as seconds after boot. On the same host
that is enough to say for certain that the worker is gone: the pid no longer exists, or now belongs to a
process that started later (pid reuse), or the host rebooted since. A worker on another host cannot be
seen from here and is never judged.

Clock-proof on Linux: the wall-clock boot time moves whenever the clock is stepped (NTP on a fresh machine,
a VM resumed from a snapshot), so a reboot is told by the boot id, and a process by its start in clock
ticks since boot (`create_time() - boot_time()`: psutil adds the current boot time to the ticks, so the
difference is the ticks whatever the clock did). Elsewhere both fall back to wall-clock times.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import psutil

from fraud_assets.lib.dagster_compat import add_run_tags, in_process_executor_with_start_hook

WORKER_TAG = "fraud_assets/run_worker"
# A random id per boot of a Linux host; elsewhere the boot time (in seconds) tells reboots apart.
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# Where times are wall-clock (no boot id, or not Linux), a second of slack absorbs their rounding and a
# small clock step; no pid is reused nor host rebooted within a second.
CLOCK_SLACK_SECONDS = 1.0


def boot_id() -> str:
    """This boot's id, "" where the kernel has none."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return ""


def _started_after_boot(process: psutil.Process) -> float:
    return process.create_time() - psutil.boot_time()


@dataclass(frozen=True)
class RunWorker:
    # The run the record belongs to: a re-execution copies its parent's tags, and must not be judged by
    # its parent's worker.
    run_id: str
    host: str
    boot_id: str
    boot_time: float
    pid: int
    started_after_boot: float

    @classmethod
    def current(cls, run_id: str) -> RunWorker:
        return cls(
            run_id=run_id,
            host=socket.gethostname(),
            boot_id=boot_id(),
            boot_time=psutil.boot_time(),
            pid=os.getpid(),
            started_after_boot=_started_after_boot(psutil.Process()),
        )

    def tags(self) -> dict[str, str]:
        return {WORKER_TAG: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def of_run(cls, run: dg.DagsterRun) -> RunWorker | None:
        """The worker recorded on `run`, or None: not recorded (yet), unreadable, or another run's."""
        try:
            fields = json.loads(run.tags[WORKER_TAG])
            if isinstance(fields, dict) and "started" in fields:
                # Recorded before the boot id: its wall-clock start is judged by the boot-time fallback.
                started = fields.pop("started")
                fields |= {"boot_id": "", "started_after_boot": started - fields.get("boot_time", 0.0)}
            worker = cls(**fields)
        except (KeyError, TypeError, ValueError):
            return None
        return worker if worker.run_id == run.run_id else None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def why_gone(worker: RunWorker) -> str | None:
    """Why `worker` is certainly not running any more, or None: it runs, or it is on another host."""
    if worker.host != socket.gethostname():
        return None
    here = boot_id()
    if worker.boot_id and here:
        rebooted = worker.boot_id != here
    else:
        rebooted = abs(worker.boot_time - psutil.boot_time()) > CLOCK_SLACK_SECONDS
    if rebooted:
        return "the host restarted since the run started"
    try:
        process = psutil.Process(worker.pid)
        started, status = _started_after_boot(process), process.status()
    except psutil.NoSuchProcess:
        return "the process no longer exists"
    except psutil.AccessDenied:
        return None  # it exists; another user's process is nothing we can judge
    if abs(started - worker.started_after_boot) > CLOCK_SLACK_SECONDS:
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
