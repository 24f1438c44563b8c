"""`feature_lookback_sensor`: rebuild the features of the days that follow a day cleaned after them.

A day's features read the cleaned transactions of the 37 days before it (card windows, terminal windows
behind the label delay). Dagster does not see that lookback as a dependency (business dates are dynamic
partitions, which have no time-window mapping), so on its own it would never notice that:
- a late or corrected file re-cleaned day D after days D+1.. had their features computed, or
- days that landed together ran concurrently and D+1's features were written before D was cleaned.
In both cases the later days' windows miss D's transactions. This sensor reads the instance (never DuckDB):
for every new materialisation of `cleaned/transactions` for day D, the features partitions of days in
(D, D + lookback] whose latest materialisation is older than it are stale; it requests one run rebuilding
them (a partition range: `features/transaction_features` runs a range in one set-based pass). Scores of
those days then follow by the automation policy (new features for a day rescore that day). Steady state
(each new day cleaned after every earlier one) requests nothing.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.events import DagsterEventType

from fraud_assets.defs.automation import graph as g
from fraud_assets.defs.automation.sensors import PRIORITY_TAG, TAG_TRIGGER, in_process_config
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets.lib.partitions import BUSINESS_DATE

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
TAG_CAUSE = "fraud_assets/lookback_cause"
BATCH = 500


def _day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)


def stale_feature_days(
    instance: dg.DagsterInstance, after_storage_id: int | None
) -> tuple[list[list[str]], str, int]:
    """(stale feature partitions as runs of consecutive partitions in partition order, a short cause, the
    newest storage id read)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=g.CLEANED_TRANSACTIONS, after_storage_id=after_storage_id),
        limit=BATCH,
        ascending=True,
    ).records
    if not records:
        return [], "", after_storage_id or 0
    latest_features = instance.event_log_storage.get_latest_storage_id_by_partition(
        g.FEATURES, DagsterEventType.ASSET_MATERIALIZATION
    )
    featured = [(day, _day(day), storage_id) for day, storage_id in latest_features.items()]
    stale: set[str] = set()
    causes: set[str] = set()
    for rec in records:
        cleaned = rec.partition_key
        if not cleaned:
            continue
        cleaned_day = _day(cleaned)
        later = {
            day
            for day, date, storage_id in featured
            if 0 < (date - cleaned_day).days <= LOOKBACK_DAYS and storage_id < rec.storage_id
        }
        if later:
            stale |= later
            causes.add(cleaned)
    # Consecutive stale partitions form one range; a partition in between that is not stale (never
    # featured: its day was blocked, or is still running) splits it.
    blocks: list[list[str]] = []
    previous_stale = False
    for key in instance.get_dynamic_partitions(BUSINESS_DATE):
        if key in stale:
            if not previous_stale:
                blocks.append([])
            blocks[-1].append(key)
        previous_stale = key in stale
    shown = sorted(causes)
    cause = ",".join(shown[:3]) + (f",+{len(shown) - 3}" if len(shown) > 3 else "")
    return blocks, cause, records[-1].storage_id


@dg.sensor(
    name="feature_lookback_sensor",
    description=(
        "Rebuilds features/transaction_features for the days whose 37-day lookback includes a day that was "
        "cleaned after them (a late or corrected file, or days that landed together and ran out of order), "
        "so no day's windows miss an earlier day's transactions. One run per batch, a partition range; "
        "scores follow by automation. Reads only the Dagster instance."
    ),
    target=dg.AssetSelection.assets(g.FEATURES),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def feature_lookback_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    blocks, cause, newest = stale_feature_days(context.instance, after)
    context.update_cursor(str(newest))
    if not blocks:
        return dg.SkipReason("no day's features are older than a day cleaned in their lookback")
    return [
        dg.RunRequest(
            run_key=f"lookback:{newest}:{block[0]}",
            asset_selection=[g.FEATURES],
            tags={
                RANGE_START: block[0],
                RANGE_END: block[-1],
                TAG_TRIGGER: "lookback",
                TAG_CAUSE: f"cleaned after: {cause}"[:200],
                PRIORITY_TAG: "0",
            },
            run_config=in_process_config(context),
        )
        for block in blocks
    ]
