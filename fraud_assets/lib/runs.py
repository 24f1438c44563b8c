"""What the control path writes on runs and reads back: who asked for a run, its priority, its days.

Sensors of several layers tag their runs the same way, so a run's cause can be filtered in the UI
(`fraud_assets/trigger=landing`) and a sensor can see what is in flight.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

TAG_TRIGGER = "fraud_assets/trigger"
# Dagster's run priority: the run queue dequeues, and the `duckdb` pool hands slots to, higher values
# first. Files that landed are what people wait for: their runs go ahead of automation's follow-ups (0)
# and of training, which is background work.
PRIORITY_TAG = "dagster/priority"
LANDING_PRIORITY = "10"
TRAINING_PRIORITY = "-10"
# Dagster's tags for a run over a partition range (one run; assets with a single-run backfill policy
# process the whole range in one pass).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def runs_in_flight(instance: dg.DagsterInstance, tags: dict[str, str]) -> int:
    """Runs with these tags that are queued or running (at most 50 counted)."""
    return len(instance.get_run_records(dg.RunsFilter(tags=tags, statuses=IN_FLIGHT), limit=50))


def days_request(
    job_name: str,
    days: Sequence[str],
    run_key: str,
    tags: dict[str, str],
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> dg.RunRequest:
    """A run of `job_name` (or of the `asset_selection` subset of it) over consecutive business days: one
    partition, or one range run."""
    if len(days) == 1:
        return dg.RunRequest(
            job_name=job_name,
            run_key=run_key,
            partition_key=days[0],
            tags=tags,
            asset_selection=asset_selection,
        )
    return dg.RunRequest(
        job_name=job_name,
        run_key=run_key,
        tags={**tags, RANGE_START: days[0], RANGE_END: days[-1]},
        asset_selection=asset_selection,
    )


def materializations_after(
    instance: dg.DagsterInstance, key: dg.AssetKey, storage_id: int | None, limit: int
) -> list[dg.EventLogRecord]:
    """`key`'s materialisations after the event `storage_id` (None: from the first), oldest first, at most
    `limit`: what a sensor reads since its cursor."""
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=storage_id), limit=limit, ascending=True
    ).records


def metadata_value(record: dg.EventLogRecord, key: str):
    """The plain value of metadata entry `key` of a materialisation record (None when absent)."""
    md = record.asset_materialization.metadata if record.asset_materialization else {}
    return getattr(md.get(key), "value", None)


def partitions_written_after(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Sequence[str], storage_id: int
) -> set[str]:
    """The partitions among `partitions` of `key` materialised after the event `storage_id`: a sensor that
    reacts to an input's change skips the days already rebuilt since. No partitions asked: none, without
    a query (an empty filter is no filter)."""
    if not partitions:
        return set()
    found: set[str] = set()
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=list(partitions), after_storage_id=storage_id
            ),
            limit=500,
            cursor=cursor,
        )
        found |= {r.partition_key for r in result.records if r.partition_key}
        if not result.has_more:
            return found
        cursor = result.cursor
