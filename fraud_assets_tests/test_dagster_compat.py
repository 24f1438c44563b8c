"""What fraud_assets relies on in Dagster's internals (lib/dagster_compat.py), pinned on a real instance and
a real run worker: a Dagster upgrade that changes any of it fails here first."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType, RunFailureReason
from dagster._core.execution.retries import auto_reexecution_should_retry_run

from fraud_assets.lib.dagster_compat import (
    claimed_pool_slots,
    fail_run_unexpectedly_terminated,
    free_pool_slots,
    will_be_retried,
)
from fraud_assets.lib.run_worker import RunWorker
from fraud_assets_tests.dead_run_support import slot_holder_process


@pytest.fixture
def slot_holder(tmp_path):
    with slot_holder_process(tmp_path) as holder:
        yield holder


def test_the_start_hook_records_the_worker_on_its_run_before_the_first_step(slot_holder):
    # The worker is parked inside its first step: the record was written before it.
    worker = RunWorker.of_run(slot_holder.run)
    assert worker is not None
    assert worker.pid == slot_holder.proc.pid


def test_a_killed_worker_keeps_its_pool_slot_until_it_is_freed(slot_holder):
    slot_holder.kill()
    run_id = slot_holder.run.run_id
    assert claimed_pool_slots(slot_holder.instance) == {run_id: 1}
    free_pool_slots(slot_holder.instance, run_id)
    assert claimed_pool_slots(slot_holder.instance) == {}


def test_a_run_failed_as_unexpectedly_terminated_is_one_run_retries_reexecute(slot_holder):
    slot_holder.kill()
    instance = slot_holder.instance
    fail_run_unexpectedly_terminated(instance, slot_holder.run, "worker gone")
    run = slot_holder.run
    assert run.status.value == "FAILURE"
    [failure] = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    assert failure.event_log_entry.dagster_event.message == "worker gone"
    reason = RunFailureReason(run.tags["dagster/failure_reason"])
    assert reason == RunFailureReason.UNEXPECTED_TERMINATION
    assert auto_reexecution_should_retry_run(instance, run, reason)
    # The instance records that decision on the run as it stores the failure (the alert sensor reads it).
    assert will_be_retried(run)


def test_a_step_failure_is_not_one_run_retries_reexecute():
    @dg.asset
    def broken() -> None:
        raise RuntimeError("the data or the code")

    with dg.instance_for_test(
        overrides={"run_retries": {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}}
    ) as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not result.success
        assert not will_be_retried(instance.get_run_by_id(result.run_id))
