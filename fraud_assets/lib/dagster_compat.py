"""The few Dagster internals fraud_assets relies on, in one place.

Dagster 1.13 has no public API to tag a run after it was created, to fail a run whose worker is gone, or
to hand back the pool slots such a run still holds (its own run monitoring does all three, but only for
run launchers that can check a worker's health, which the default launcher cannot), nor to name the
materialisation a check evaluation logged by hand is about, to find the latest materialisation of many
partitions in one query, or to tell whether run retries will re-execute a failed run; nor does it
export a compute log manager class to derive step-log storage from (lib/step_logs.py), nor the SQLite
storages the local instance keeps its engines in (lib/sqlite_instance.py). Each function here wraps one
internal call, and the classes are re-exported from here so that this module is the one list of what we
take from Dagster's internals (fraud_assets_tests/test_code_boundaries.py keeps it so);
fraud_assets_tests/test_dagster_compat.py, test_partitioned_checks.py, test_instance_storage.py and
test_sqlite_instance.py pin the behaviour we rely on, so a Dagster upgrade that changes it fails there
first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.compute_log_manager import (  # re-exported for the step-log test
    ComputeIOType as ComputeIOType,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (  # for lib/sqlite_instance.py
    SQLITE_BUSY_TIMEOUT_SECONDS as SQLITE_BUSY_TIMEOUT_SECONDS,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (  # for lib/sqlite_instance.py
    SqliteEventLogStorage as SqliteEventLogStorage,
)
from dagster._core.storage.local_compute_log_manager import (  # re-exported for lib/step_logs.py
    LocalComputeLogManager as LocalComputeLogManager,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import (  # for lib/sqlite_instance.py
    SqliteRunStorage as SqliteRunStorage,
)
from dagster._core.storage.sql import create_engine as create_engine  # for lib/sqlite_instance.py
from dagster._core.storage.sqlite_storage import (  # for lib/sqlite_instance.py
    DagsterSqliteStorage as DagsterSqliteStorage,
)
from dagster._core.storage.tags import WILL_RETRY_TAG


def add_run_tags(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """Add or overwrite tags of an existing run (seen in the UI and by run filters)."""
    instance.add_run_tags(run_id, dict(tags))


def fail_run_unexpectedly_terminated(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    """Mark `run` FAILURE with `message`, as a worker that died, not a step that failed: the run failure
    sensors see it, and Dagster's run retries (`run_retries` in dagster.yaml) re-execute it from failure,
    which they never do for step failures when `retry_on_asset_or_op_failure` is false."""
    instance.report_run_failed(
        run,
        message,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )


def will_be_retried(run: dg.DagsterRun) -> bool:
    """Whether Dagster's run retries (`run_retries` in dagster.yaml) will re-execute this failed run: the
    instance tags a run with its decision when it stores the run's failure, before any sensor sees it."""
    return run.tags.get(WILL_RETRY_TAG) == "true"


def claimed_pool_slots(instance: dg.DagsterInstance) -> Counter[str]:
    """Pool slots claimed right now, counted per run id (every pool)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return Counter()
    claimed: Counter[str] = Counter()
    for pool in storage.get_concurrency_keys():
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            claimed[slot.run_id] += 1
    return claimed


def show_pool_limit(instance: dg.DagsterInstance, pool: str) -> None:
    """Record `pool` with the instance's default pool limit (dagster.yaml `concurrency.pools.default_limit`),
    as Dagster does itself only when a step first claims the pool: until then the UI's Concurrency page
    says no pool limit is configured. A pool already recorded (by a step, or with a limit set by hand) is
    left as it is."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and pool not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(pool)


def free_pool_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Release every pool slot `run_id` holds and drop its steps still waiting for one; waiting steps of
    other runs are then assigned the freed slots."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run_id)


class _StartHookExecutor(dg.Executor):
    """Dagster's executor `inner`, calling `on_start(instance, run_id)` in the run worker first."""

    def __init__(self, inner: dg.Executor, on_start: Callable[[dg.DagsterInstance, str], None]) -> None:
        self._inner = inner
        self._on_start = on_start

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        self._on_start(plan_context.instance, plan_context.run_id)
        yield from self._inner.execute(plan_context, execution_plan)


def in_process_executor_with_start_hook(
    on_start: Callable[[dg.DagsterInstance, str], None], description: str
) -> dg.ExecutorDefinition:
    """`dg.in_process_executor` (same name and config) that calls `on_start(instance, run_id)` in the run
    worker process before any step runs, i.e. before the run can claim a pool slot. Dagster has no run-start
    hook; the executor is the first code of ours every run worker executes, however it was launched (daemon,
    UI, `dagster asset materialize`). `execute_in_process` (`dg.materialize`) replaces the executor and
    never calls it."""
    base = dg.in_process_executor
    return dg.ExecutorDefinition(
        name=base.name,
        config_schema=base.config_schema,
        requirements=base.get_requirements,
        executor_creation_fn=lambda init: _StartHookExecutor(base.executor_creation_fn(init), on_start),
        description=description,
    )


def check_target(
    storage_id: int, run_id: str, timestamp: float
) -> AssetCheckEvaluationTargetMaterializationData:
    """What an `AssetCheckEvaluation` logged by hand names as the materialisation it evaluated: without it
    Dagster pins the evaluation to no materialisation, and a day checked inside a range run would show
    no result for its latest materialisation."""
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=storage_id, run_id=run_id, timestamp=timestamp
    )


def latest_materialization_ids(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]
) -> dict[str, int]:
    """partition -> storage id of its latest materialisation (partitions never materialised are absent),
    in one query: a range run's check records one evaluation per day."""
    return instance.event_log_storage.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
    )
