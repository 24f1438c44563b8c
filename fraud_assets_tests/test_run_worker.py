"""A run's recorded worker: gone for certain on this host, or not judged (alive, or another host's)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid

import dagster as dg
import psutil
import pytest

from fraud_assets.lib.run_worker import WORKER_TAG, RunWorker, boot_id, why_gone


def _killed_process_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    proc.kill()
    proc.wait(timeout=30)
    return proc.pid


def test_a_running_worker_is_not_gone():
    assert why_gone(RunWorker.current("run-1")) is None


def test_a_killed_worker_is_gone():
    worker = dataclasses.replace(RunWorker.current("run-1"), pid=_killed_process_pid())
    assert why_gone(worker) == "the process no longer exists"


def test_a_pid_taken_over_by_a_later_process_is_a_gone_worker():
    worker = RunWorker.current("run-1")
    earlier = dataclasses.replace(worker, started_after_boot=worker.started_after_boot - 3600)
    assert "pid now belongs to a later process" in why_gone(earlier)


def test_the_machine_has_a_boot_id():
    # CI's Linux: the reboot test below must exercise the boot id, not the fallback.
    assert boot_id()


def test_every_worker_of_a_host_that_restarted_is_gone():
    worker = RunWorker.current("run-1")
    before_reboot = dataclasses.replace(worker, boot_id=str(uuid.uuid4()))
    assert why_gone(before_reboot) == "the host restarted since the run started"


def test_without_a_boot_id_a_restart_is_told_by_the_boot_time():
    worker = dataclasses.replace(RunWorker.current("run-1"), boot_id="")
    assert why_gone(worker) is None
    before_reboot = dataclasses.replace(worker, boot_time=worker.boot_time - 86400)
    assert why_gone(before_reboot) == "the host restarted since the run started"


def test_a_clock_step_is_not_a_restart_nor_a_new_process(monkeypatch):
    """A stepped clock (NTP on a fresh machine, a VM resumed from a snapshot) moves the wall-clock boot time
    and every process's wall-clock start: a running worker stays running."""
    worker = RunWorker.current("run-1")
    stepped = psutil.boot_time() + 30
    # psutil's own boot time, which its process start times are built on (the public one calls it).
    monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: stepped)
    assert psutil.boot_time() == stepped
    assert why_gone(worker) is None
    assert why_gone(dataclasses.replace(worker, boot_id="")) == "the host restarted since the run started"


def test_a_worker_recorded_before_the_boot_id_is_still_judged():
    worker = RunWorker.current("run-1")
    old = {k: v for k, v in dataclasses.asdict(worker).items() if k not in ("boot_id", "started_after_boot")}
    old["started"] = worker.boot_time + worker.started_after_boot
    run = dg.DagsterRun(job_name="job", run_id="run-1", tags={WORKER_TAG: json.dumps(old)})
    recorded = RunWorker.of_run(run)
    assert recorded is not None
    assert recorded.boot_id == ""
    assert why_gone(recorded) is None
    assert (
        why_gone(dataclasses.replace(recorded, pid=_killed_process_pid())) == "the process no longer exists"
    )


def test_a_worker_on_another_host_is_never_judged():
    here = RunWorker.current("run-1")
    elsewhere = dataclasses.replace(here, host="another-host", pid=_killed_process_pid())
    assert why_gone(elsewhere) is None


def test_a_run_carries_its_worker_as_a_tag():
    worker = RunWorker.current("run-1")
    run = dg.DagsterRun(job_name="job", run_id="run-1", tags=worker.tags())
    assert RunWorker.of_run(run) == worker


def test_a_worker_copied_from_a_parent_run_is_not_the_runs_own():
    # A re-execution copies its parent's tags; the parent's dead worker says nothing about the retry.
    parent_worker = RunWorker.current("parent-run")
    retry = dg.DagsterRun(job_name="job", run_id="retry-run", tags=parent_worker.tags())
    assert RunWorker.of_run(retry) is None


@pytest.mark.parametrize("value", ["", "not json", "[]", json.dumps({"run_id": "run-1"}), "null"])
def test_an_unreadable_worker_tag_is_no_worker(value):
    assert RunWorker.of_run(dg.DagsterRun(job_name="job", run_id="run-1", tags={WORKER_TAG: value})) is None
