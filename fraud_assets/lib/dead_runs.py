"""Runs whose worker died (SIGKILL, out of memory, a host restart): marked failed with the reason, their
pool slots handed back, alerted once.

A worker killed by the system writes no failure: its run stays STARTED and keeps the `duckdb` pool slot
it held, so every later DuckDB writer waits for ever. Dagster's run monitoring would fail such a run, but
only for run launchers that can check a worker's health, which the default launcher cannot; and Dagster
frees the slots of finished runs only from its daemon (`free_slots_after_run_end_seconds`). So the
platform checks its workers itself (lib/run_worker.py): `make pipeline` at start-up, since it has no
daemon, and `dead_run_sensor` under the daemon. Failed as "unexpected termination", the run is re-executed
from failure by Dagster's run retries when dagster.yaml enables them (it does: cli/dagster_home.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import dagster as dg

from fraud_assets.lib.alerting import Alert, AlertSink
from fraud_assets.lib.dagster_compat import (
    add_run_tags,
    claimed_pool_slots,
    fail_run_unexpectedly_terminated,
    free_pool_slots,
)
from fraud_assets.lib.run_worker import WORKER_TAG, RunWorker, why_gone

# Set (value = the run's own id) on a run this module failed: run_failure_alert_sensor leaves it to the
# `dead_run` alert sent here. A re-execution copies its parent's tags, hence the id.
DEAD_RUN_TAG = "fraud_assets/dead_run"
IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A finished run whose worker cannot be checked (not recorded, or on another host) may still be finishing
# a write: its slots go back only this long after it ended, as Dagster's daemon does.
DEFAULT_SLOT_GRACE_SECONDS = 60
_log = logging.getLogger("fraud_assets.dead_runs")


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    reason: str
    freed_slots: int


@dataclass
class Reaped:
    """What one pass did: runs failed because their worker died, and slots freed from finished runs."""

    dead: list[DeadRun]
    released: dict[str, int]

    def summary(self) -> str:
        slots = sum(self.released.values())
        return (
            f"{len(self.dead)} dead run(s) failed and alerted; "
            f"{slots} slot(s) released from {len(self.released)} finished run(s)"
        )


def dead_run_reason(worker: RunWorker, gone: str) -> str:
    return (
        f"Run worker ({worker.describe()}) is gone: {gone}. It was killed by the system (SIGKILL, out of "
        "memory) or its host went down; the run is marked failed and its pool slots are freed."
    )


def _fail_dead_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, claimed: int
) -> tuple[DeadRun, Alert] | None:
    worker = RunWorker.of_run(run)
    gone = why_gone(worker) if worker else None
    if worker is None or gone is None:
        return None
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.is_finished:  # it finished between the listing and now
        return None
    reason = dead_run_reason(worker, gone)
    add_run_tags(instance, run.run_id, {DEAD_RUN_TAG: run.run_id})
    fail_run_unexpectedly_terminated(instance, current, reason)
    free_pool_slots(instance, run.run_id)
    tags = {
        k: v
        for k, v in run.tags.items()
        if k.startswith(("fraud_assets/", "dagster/partition")) and k not in (DEAD_RUN_TAG, WORKER_TAG)
    }
    alert = Alert(
        severity="ERROR",
        kind="dead_run",
        subject=run.job_name,
        message=reason,
        run_id=run.run_id,
        details={"tags": tags, "worker": asdict(worker), "freed_slots": claimed, "event_id": run.run_id},
    )
    return DeadRun(run.run_id, reason, claimed), alert


def _release_finished(
    instance: dg.DagsterInstance, claimed: dict[str, int], grace_seconds: float, now: float
) -> dict[str, int]:
    """Free slots still held by finished runs: at once when their worker is known to be gone, else after
    `grace_seconds` (it may still be finishing a step on a host we cannot see)."""
    if not claimed:
        return {}
    records = instance.get_run_records(dg.RunsFilter(run_ids=list(claimed)))
    released = {}
    for record in records:
        run = record.dagster_run
        if not run.is_finished:
            continue
        worker = RunWorker.of_run(run)
        gone = worker is not None and why_gone(worker) is not None
        ended = record.end_time or record.update_timestamp.timestamp()
        if gone or now - ended > grace_seconds:
            free_pool_slots(instance, run.run_id)
            released[run.run_id] = claimed[run.run_id]
    return released


def reap_dead_runs(
    instance: dg.DagsterInstance,
    alert_sink: AlertSink,
    log: logging.Logger | None = None,
    now: float | None = None,
) -> Reaped:
    """Fail every in-progress run whose recorded worker is gone on this host, free its pool slots and send
    one `dead_run` alert each; then free the slots finished runs still hold. Runs whose worker is alive,
    unrecorded or on another host are left alone."""
    logger = log or _log
    claimed = claimed_pool_slots(instance)
    dead, alerts = [], []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        failed = _fail_dead_run(instance, record.dagster_run, claimed.pop(record.dagster_run.run_id, 0))
        if failed:
            dead.append(failed[0])
            alerts.append(failed[1])
    settings = instance.run_monitoring_settings
    grace = settings.get("free_slots_after_run_end_seconds") or DEFAULT_SLOT_GRACE_SECONDS
    released = _release_finished(instance, claimed, grace, time.time() if now is None else now)
    for run_id, n in released.items():
        logger.info(f"run {run_id} had finished but still held {n} pool slot(s): released")
    if alerts:
        alert_sink.send(alerts, log=logger)
    return Reaped(dead=dead, released=released)
