"""`label_lookback_sensor`: rebuild the features of the days computed without labels known now.

A day's terminal risk and known-fraud counts read the labels reported up to each transaction, and
`cleaned/labels` is one unpartitioned table: Dagster cannot map "labels reported on day R" to the feature
days they change, so this is the one lookback the asset graph does not express (a day re-cleaned after
later days is: features depend on the 60 days of cleaned transactions before them through a
`TimeWindowPartitionMapping`, and automation rebuilds them). Each `cleaned/labels` materialisation says
what it changed (metadata: earliest report date R of the changed labels, latest transaction date T); the
days in [R, T + 60] featured before it are stale. One run per block of consecutive stale days. Reads only
the Dagster instance; a day's chargebacks loaded in its own run, before its features, request nothing.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from fraud_assets.defs.cleaned.assets import CHANGED_FIRST_REPORT, CHANGED_LABELS, CHANGED_LAST_TRANSACTION
from fraud_assets.defs.features.compute import LOOKBACK_DAYS
from fraud_assets.defs.features.jobs import FEATURES, features_job
from fraud_assets.lib.partitions import consecutive_blocks
from fraud_assets.lib.runs import TAG_TRIGGER, days_request, partitions_written_after

LABELS = dg.AssetKey(["cleaned", "labels"])
TAG_CAUSE = "fraud_assets/lookback_cause"
BATCH = 500


def _label_span(record) -> tuple[dt.date, dt.date] | None:
    """(earliest report date, latest transaction date) of the labels a cleaned/labels materialisation
    changed; None when it changed none."""
    md = record.asset_materialization.metadata if record.asset_materialization else {}
    value = lambda k: getattr(md.get(k), "value", None)  # noqa: E731
    if not value(CHANGED_LABELS) or not value(CHANGED_FIRST_REPORT) or not value(CHANGED_LAST_TRANSACTION):
        return None
    return dt.date.fromisoformat(value(CHANGED_FIRST_REPORT)), dt.date.fromisoformat(
        value(CHANGED_LAST_TRANSACTION)
    )


def stale_feature_days(
    instance: dg.DagsterInstance, after: int | None
) -> tuple[list[list[str]], list[str], int | None]:
    """(blocks of consecutive stale days, causes, the storage id read up to)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LABELS, after_storage_id=after), limit=BATCH, ascending=True
    ).records
    if not records:
        return [], [], after
    featured = instance.get_materialized_partitions(FEATURES)
    stale: set[str] = set()
    causes: list[str] = []
    for record in records:
        span = _label_span(record)
        if span is None:
            continue
        first_report, last_transaction = span
        last = last_transaction + dt.timedelta(days=LOOKBACK_DAYS)
        window = [
            (first_report + dt.timedelta(days=i)).isoformat() for i in range((last - first_report).days + 1)
        ]
        window = [day for day in window if day in featured]
        affected = set(window) - partitions_written_after(instance, FEATURES, window, record.storage_id)
        if affected:
            stale |= affected
            causes.append(f"labels reported from {first_report.isoformat()}")
    return consecutive_blocks(sorted(stale)), sorted(set(causes)), records[-1].storage_id


@dg.sensor(
    name="label_lookback_sensor",
    description=(
        "Rebuilds features/transaction_features for the days computed without labels known now (a late or "
        "corrected chargeback file): from the earliest report date of the changed labels to "
        f"{LOOKBACK_DAYS} days after their latest transaction. One run per block of days, a partition "
        "range; scores follow by automation. Reads only the Dagster instance."
    ),
    job=features_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def label_lookback_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    blocks, causes, newest = stale_feature_days(context.instance, after)
    if newest is not None:
        context.update_cursor(str(newest))
    if not blocks:
        return dg.SkipReason("no day's features are older than the labels in their lookback")
    cause = "; ".join(causes[:3]) + (f"; +{len(causes) - 3}" if len(causes) > 3 else "")
    tags = {TAG_TRIGGER: "lookback", TAG_CAUSE: cause[:200]}
    return [days_request(features_job.name, days, f"labels:{newest}:{days[0]}", tags) for days in blocks]


FEATURES_SENSORS = [label_lookback_sensor]
